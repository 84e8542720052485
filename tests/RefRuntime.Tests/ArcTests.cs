using System;
using System.Runtime.CompilerServices;
using System.Threading;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>The managed Arc/Weak/UniqueArc handles: explicit ownership, .NET exceptions, leak reports.</summary>
public sealed class ArcTests
{
    private struct Point
    {
        public long X;
        public long Y;
    }

    // Create, read, clone, dispose: the destructor runs once, with the final payload.
    [Fact]
    public void CreateCloneDispose_DestructorRunsOnceWithFinalValue()
    {
        int destroyed = 0;
        long lastX = 0;
        var a = Arc<Point>.Create(new Point { X = 1, Y = 2 }, p =>
        {
            Interlocked.Increment(ref destroyed);
            lastX = p.X;
        });
        Assert.Equal(1, a.Value.X);
        Arc<Point> b = a.Clone();
        Assert.Equal(2, a.StrongCount);
        Assert.True(a.PtrEq(b));
        b.DangerousGetRef().X = 7;
        a.Dispose();
        Assert.Equal(0, destroyed);
        Assert.Equal(7, b.Value.X);
        b.Dispose();
        Assert.Equal(1, destroyed);
        Assert.Equal(7, lastX);
    }

    // Disposing twice is harmless; any use after dispose throws ObjectDisposedException.
    [Fact]
    public void UseAfterDispose_Throws_DoubleDisposeHarmless()
    {
        var a = Arc<long>.Create(5);
        a.Dispose();
        a.Dispose();
        Assert.True(a.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => a.Value);
        Assert.Throws<ObjectDisposedException>(() => a.Clone());
        Assert.Throws<ObjectDisposedException>(() => a.Downgrade());
        Assert.Throws<ObjectDisposedException>(() => a.StrongCount);
        Assert.Throws<ObjectDisposedException>(() => a.IntoRaw());
        Assert.Equal("Arc<Int64>(disposed)", a.ToString());
    }

    // Weak: upgrade while alive, null after; dispose semantics as Arc.
    [Fact]
    public void Weak_UpgradeWhileAlive_NullAfterLastStrong()
    {
        var a = Arc<long>.Create(42);
        using Weak<long> w = a.Downgrade();
        Assert.Equal(1, a.WeakCount);
        using (Arc<long>? up = w.TryUpgrade())
        {
            Assert.NotNull(up);
            Assert.Equal(42, up!.Value);
            Assert.Equal(2, w.StrongCount);
        }

        using Weak<long> w2 = w.Clone();
        Assert.True(w.PtrEq(w2));
        Assert.Equal(2, w.WeakCount);
        a.Dispose();
        Assert.Null(w.TryUpgrade());
        Assert.Equal(0, w.StrongCount);
        Assert.Equal(0, w.WeakCount); // as Rust's Weak::weak_count once no strong reference remains
    }

    [Fact]
    public void Weak_Empty_UpgradesToNullAndDisposes()
    {
        var w = new Weak<int>();
        Assert.True(w.IsEmpty);
        Assert.Null(w.TryUpgrade());
        Assert.Equal(0, w.StrongCount);
        using Weak<int> c = w.Clone();
        Assert.True(c.IsEmpty);
        w.Dispose();
        w.Dispose();
        Assert.Throws<ObjectDisposedException>(() => w.TryUpgrade());
    }

    // IsUnique is get_mut's check: one strong, no weak.
    [Fact]
    public void IsUnique_OnlyWithOneStrongAndNoWeak()
    {
        using var a = Arc<int>.Create(1);
        Assert.True(a.IsUnique);
        using (Weak<int> w = a.Downgrade())
        {
            Assert.False(a.IsUnique);
        }

        Assert.True(a.IsUnique);
        using Arc<int> b = a.Clone();
        Assert.False(a.IsUnique);
    }

    // UniqueArc: mutate freely, share, or take back the last reference.
    [Fact]
    public void UniqueArc_InitialiseShare_IntoUniqueOrDrop()
    {
        int destroyed = 0;
        var u = UniqueArc<Point>.Create(default, _ => Interlocked.Increment(ref destroyed));
        u.Value.X = 10;
        Arc<Point> a = u.Share();
        Assert.Throws<ObjectDisposedException>(() => u.Value.X);
        Arc<Point> b = a.Clone();
        using Weak<Point> w = a.Downgrade();
        Assert.Null(a.IntoUniqueOrDrop()); // b still holds it
        Assert.True(a.IsDisposed);
        UniqueArc<Point>? back = b.IntoUniqueOrDrop();
        Assert.NotNull(back);
        Assert.Null(w.TryUpgrade()); // unique: no upgrade
        back!.Value.Y = 20;
        using Arc<Point> again = back.Share();
        Assert.Equal(20, again.Value.Y);
        Assert.Equal(0, destroyed);
        using (Arc<Point>? up = w.TryUpgrade())
        {
            Assert.NotNull(up);
        }

        UniqueArc<Point> drop = UniqueArc<Point>.Create(default, _ => Interlocked.Increment(ref destroyed));
        drop.Dispose();
        drop.Dispose();
        Assert.Equal(1, destroyed);
    }

    // Raw round trip: IntoRaw hands the reference out, FromRaw takes it back; bad pointers throw.
    [Fact]
    public unsafe void IntoRawFromRaw_RoundTrip_BadPointersThrow()
    {
        var a = Arc<long>.Create(99);
        nint raw = a.IntoRaw();
        Assert.True(a.IsDisposed);
        using Arc<long> back = Arc<long>.FromRaw(raw);
        Assert.Equal(99, back.Value);
        Assert.Equal(1, back.StrongCount);
        Assert.Throws<ArgumentException>(() => Arc<long>.FromRaw(0));
        Assert.Throws<ArgumentException>(() => Arc<long>.FromRaw(raw + 8));
        long onStack = 0;
        nint stackAddress = (nint)(&onStack);
        Assert.Throws<ArgumentException>(() => Arc<long>.FromRaw(stackAddress));
        using var small = Arc<byte>.Create(1);
        nint smallRaw = small.Clone().IntoRaw();
        var e = Assert.Throws<ArgumentException>(() => Arc<Point>.FromRaw(smallRaw));
        Assert.Contains("less than sizeof", e.Message, StringComparison.Ordinal);
        Arc<byte>.FromRaw(smallRaw).Dispose();
    }

    // A forgotten handle is counted and reported (with its creation stack when asked), and its
    // reference is released so the object is still destroyed.
    [Fact]
    public void ForgottenHandle_IsReportedAndReleased()
    {
        int destroyed = 0;
        LeakReport? report = null;
        void OnLeak(LeakReport r) => report ??= r;
        LeakDiagnostics.HandleLeaked += OnLeak;
        LeakDiagnostics.CaptureCreationStacks = true;
        try
        {
            long before = LeakDiagnostics.LeakedHandles;
            Forget(() => Interlocked.Increment(ref destroyed));
            for (int i = 0; i < 5 && Volatile.Read(ref destroyed) == 0; i++)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }

            Assert.Equal(1, Volatile.Read(ref destroyed));
            Assert.True(LeakDiagnostics.LeakedHandles >= before + 1);
            Assert.NotNull(report);
            Assert.Equal("Arc<Int64>", report!.HandleType);
            Assert.NotNull(report.CreationStack);
        }
        finally
        {
            LeakDiagnostics.CaptureCreationStacks = false;
            LeakDiagnostics.HandleLeaked -= OnLeak;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Forget(Action onDestroy) => Arc<long>.Create(1, _ => onDestroy());

    // Many threads cloning, downgrading, upgrading and disposing handles of one object.
    [Fact]
    [Trait("Category", "Stress")]
    public void ManagedHandles_ManyThreads_DestroyedExactlyOnce()
    {
        int destroyed = 0;
        var root = Arc<long>.Create(7, _ => Interlocked.Increment(ref destroyed));
        var threads = new Thread[4];
        int bad = 0;
        for (int t = 0; t < threads.Length; t++)
        {
            Arc<long> mine = root.Clone();
            threads[t] = new Thread(() =>
            {
                using Weak<long> w = mine.Downgrade();
                for (int i = 0; i < 20_000; i++)
                {
                    using Arc<long> c = mine.Clone();
                    using Arc<long>? u = w.TryUpgrade();
                    if (u is null || u.Value != 7)
                    {
                        Interlocked.Increment(ref bad);
                    }
                }

                mine.Dispose();
            });
            threads[t].Start();
        }

        root.Dispose();
        foreach (Thread t in threads)
        {
            t.Join();
        }

        Assert.Equal(0, bad);
        Assert.Equal(1, destroyed);
    }
}
