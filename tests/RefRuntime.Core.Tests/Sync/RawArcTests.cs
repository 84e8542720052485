using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Memory;
using RefRuntime.Core.Sync;
using RefRuntime.Core.Tests.Support;
using Xunit;

namespace RefRuntime.Core.Tests.Sync;

/// <summary>RawArc semantics (docs/arc.md) on native objects, as both doors use them.</summary>
public sealed unsafe class RawArcTests : IDisposable
{
    private static long s_destroyed;

    private readonly WarningProbe _probe = new();

    public void Dispose() => _probe.Dispose();

    [UnmanagedCallersOnly]
    private static void CountingDtor(void* payload, void* ctx)
    {
        Interlocked.Increment(ref s_destroyed);
        // SAFETY: ctx is null or a long* counter owned by the test.
        if (ctx != null)
        {
            Interlocked.Increment(ref *(long*)ctx);
        }
    }

    private static void* New(long* counter = null, nuint size = 16)
    {
        Assert.Equal(RrStatus.Ok, RawArc.Create(size, 8, &CountingDtor, counter, out void* p));
        return p;
    }

    // The layout the C header pins with _Static_assert: same offsets here.
    [Fact]
    public void Header_Layout_MatchesCHeader()
    {
        Assert.Equal(48, sizeof(ArcHeader));
        Assert.Equal(RawArc.HeaderSize, sizeof(ArcHeader));
        Assert.Equal(0, (int)Marshal.OffsetOf<ArcHeader>(nameof(ArcHeader.Strong)));
        Assert.Equal(4, (int)Marshal.OffsetOf<ArcHeader>(nameof(ArcHeader.Weak)));
        Assert.Equal(8, (int)Marshal.OffsetOf<ArcHeader>(nameof(ArcHeader.Magic)));
        Assert.Equal(12, (int)Marshal.OffsetOf<ArcHeader>(nameof(ArcHeader.BaseOffset)));
        Assert.Equal(16, (int)Marshal.OffsetOf<ArcHeader>(nameof(ArcHeader.Size)));
        Assert.Equal(24, (int)Marshal.OffsetOf<ArcHeader>(nameof(ArcHeader.Destructor)));
        Assert.Equal(32, (int)Marshal.OffsetOf<ArcHeader>(nameof(ArcHeader.Context)));
        Assert.Equal(40, (int)Marshal.OffsetOf<ArcHeader>(nameof(ArcHeader.Flags)));
        Assert.Equal(0x31415252u, RawArc.MagicLive); // RR_ARC_MAGIC
    }

    // Clone/drop: destructor exactly once at the last strong drop; memory with the last weak.
    [Fact]
    public void CloneDrop_LastDropDestroysOnce_MemoryFreedWithLastWeak()
    {
        long mine = 0;
        long live0 = NativeHeap.LiveCount;
        void* p = New(&mine);
        ArcHeader* h = RawArc.DangerousHeader(p);
        RawArc.Clone(h);
        nuint w = RawArc.Downgrade(h);
        RawArc.Counts(h, out int s, out int wk);
        Assert.Equal((2, 1), (s, wk));
        RawArc.Drop(h);
        Assert.Equal(0, mine);
        RawArc.Drop(h);
        Assert.Equal(1, mine);
        Assert.False(RawArc.Upgrade(h)); // never from zero
        Assert.Equal(live0 + 1, NativeHeap.LiveCount);
        Assert.Equal(RrStatus.Ok, RawArc.TryGetWeakHeader(w, out ArcHeader* wh));
        Assert.True(wh == h);
        RawArc.DropWeak(h);
        Assert.Equal(live0, NativeHeap.LiveCount);
        _probe.AssertNone();
    }

    // Handles: strong and weak cannot be mistaken for each other; NULL and foreign pointers refused.
    [Fact]
    public void TryGetHeader_WrongKindOrForeign_IsBadHandle()
    {
        void* p = New();
        ArcHeader* h = RawArc.DangerousHeader(p);
        nuint w = RawArc.Downgrade(h);
        Assert.Equal(RrStatus.InvalidArgument, RawArc.TryGetHeader(null, out _));
        Assert.Equal(RrStatus.BadHandle, RawArc.TryGetHeader((void*)w, out _));
        Assert.Equal(RrStatus.BadHandle, RawArc.TryGetWeakHeader((nuint)p, out _));
        Assert.Equal(RrStatus.BadHandle, RawArc.TryGetHeader((byte*)p + 16, out _)); // a pointer into the payload
        Assert.Equal(RrStatus.Ok, RawArc.TryGetWeakHeader(0, out ArcHeader* empty));
        Assert.True(empty == null);
        RawArc.DropWeak(h);
        RawArc.Drop(h);
    }

    // A stale handle after free is refused while the memory holds the poisoned header.
    [Fact]
    public void StaleHandle_InQuarantine_IsBadHandleAndPoisoned()
    {
        NativeHeap.Quarantine = true;
        try
        {
            void* p = New(size: 32);
            RawArc.Drop(RawArc.DangerousHeader(p));
            Assert.Equal(RrStatus.BadHandle, RawArc.TryGetHeader(p, out _));
            Assert.NotEqual(RawArc.MagicLive, RawArc.DangerousHeader(p)->Magic);
            Assert.Equal(NativeHeap.PoisonByte, *(byte*)p);
        }
        finally
        {
            NativeHeap.Quarantine = false;
            NativeHeap.ReleaseQuarantine();
        }
    }

    // is_unique: locks weak with a value that never reads as saturated, and releases it.
    [Fact]
    public void IsUnique_OneStrongNoWeak_TrueAndLockReleased()
    {
        void* p = New();
        ArcHeader* h = RawArc.DangerousHeader(p);
        Assert.True(RawArc.IsUnique(h));
        Assert.Equal(1, h->Weak);
        Assert.NotEqual(Refcount.Saturated, RawArc.WeakLocked);
        nuint w = RawArc.Downgrade(h);
        Assert.False(RawArc.IsUnique(h));
        RawArc.DropWeak(h);
        RawArc.Clone(h);
        Assert.False(RawArc.IsUnique(h));
        RawArc.Drop(h);
        Assert.True(RawArc.IsUnique(h));
        RawArc.Drop(h);
        _probe.AssertNone();
        GC.KeepAlive(w);
    }

    // Downgrade waits out the is_unique lock instead of treating it as saturation.
    [Fact]
    public void Downgrade_WhileLocked_WaitsAndNeverSaturates()
    {
        void* p = New();
        ArcHeader* h = RawArc.DangerousHeader(p);
        h->Weak = RawArc.WeakLocked; // as if is_unique held the lock
        nuint w = 0;
        var t = new Thread(() => w = RawArc.Downgrade(RawArc.DangerousHeader(p)));
        t.Start();
        Thread.Sleep(50);
        Assert.True(t.IsAlive); // still waiting for the unlock
        Volatile.Write(ref h->Weak, 1);
        Assert.True(t.Join(60_000));
        Assert.Equal(2, h->Weak);
        Assert.Equal(RawArc.WeakHandle(h), w);
        _probe.AssertNone();
        RawArc.DropWeak(h);
        RawArc.Drop(h);
    }

    // into_unique_or_drop: strong stays 0 while unique, so a weak cannot upgrade; sharing publishes.
    [Fact]
    public void IntoUniqueOrDrop_LastOwner_UniqueBlocksUpgradeUntilShared()
    {
        long mine = 0;
        void* p = New(&mine);
        ArcHeader* h = RawArc.DangerousHeader(p);
        RawArc.Clone(h);
        nuint w = RawArc.Downgrade(h);
        Assert.False(RawArc.IntoUniqueOrDrop(h));
        Assert.True(RawArc.IntoUniqueOrDrop(h));
        Assert.Equal(0, mine);
        Assert.True(RawArc.IsUniquelyOwned(h));
        Assert.False(RawArc.Upgrade(h));
        RawArc.ShareUnique(h);
        Assert.True(RawArc.Upgrade(h));
        RawArc.Drop(h);
        RawArc.Drop(h);
        Assert.Equal(1, mine);
        RawArc.DropWeak(h);
        GC.KeepAlive(w);
    }

    [Theory]
    [InlineData(0, 8)]
    [InlineData(3, 8)]
    [InlineData(8192, 8)]
    [InlineData(16, (long)int.MaxValue)]
    public void Create_BadAlignmentOrSize_InvalidArgument(long align, long size)
    {
        Assert.Equal(RrStatus.InvalidArgument, RawArc.Create((nuint)size, (nuint)align, null, null, out void* p));
        Assert.True(p == null);
    }

    // Saturation: a strong count at the limit pins, warns, and never frees.
    [Fact]
    public void Clone_AtLimit_SaturatesAndLeaks()
    {
        long mine = 0;
        void* p = New(&mine);
        ArcHeader* h = RawArc.DangerousHeader(p);
        h->Strong = Refcount.Max;
        RawArc.Clone(h);
        _probe.AssertWarned(RefcountWarning.AddOverflow);
        for (int i = 0; i < 5; i++)
        {
            RawArc.Drop(h);
        }

        Assert.Equal(Refcount.Saturated, h->Strong);
        Assert.Equal(0, mine);
        // Leaked by design; the holders' references stay usable, but upgrade never hands out a
        // saturated object (an extra drop after the destructor looks the same).
        Assert.False(RawArc.Upgrade(h));
    }

    // Issue 16.1: after the destructor, a caller's extra drop (and clone) saturate the strong
    // count; a Weak still never upgrades, the unique paths refuse it, the destructor ran once.
    [Fact]
    public void ExtraDrop_AfterDestructor_UpgradeNeverRevives()
    {
        long mine = 0;
        void* p = New(&mine);
        ArcHeader* h = RawArc.DangerousHeader(p);
        nuint w = RawArc.Downgrade(h);
        RawArc.Drop(h);
        Assert.Equal(1, mine);
        Assert.True(RawArc.IsDestroyed(h));
        RawArc.Drop(h); // misuse: saturates
        _probe.AssertWarned(RefcountWarning.SubUseAfterFree);
        Assert.Equal(Refcount.Saturated, h->Strong);
        Assert.False(RawArc.Upgrade(h));
        RawArc.Clone(h); // misuse again
        Assert.False(RawArc.Upgrade(h));
        Assert.False(RawArc.IsUniquelyOwned(h));
        Assert.False(RawArc.IsUnique(h));
        Assert.False(RawArc.TryMarkDestroyed(h)); // a second drop_slow would do nothing
        RawArc.Counts(h, out int s, out int wk);
        Assert.Equal((0, 0), (s, wk));
        Assert.Equal(1, mine);
        RawArc.DropWeak(h);
        GC.KeepAlive(w);
    }

    // Issue 16.1: a count that misuse made positive again on a destroyed object (an increment
    // from 0 seen before its saturation fix-up) is never handed out by upgrade.
    [Fact]
    public void Upgrade_PositiveCountOnDestroyedObject_Refused()
    {
        long mine = 0;
        void* p = New(&mine);
        ArcHeader* h = RawArc.DangerousHeader(p);
        RawArc.Downgrade(h);
        RawArc.Drop(h);
        h->Strong = 1; // the transient value of a racing misuse increment
        Assert.False(RawArc.Upgrade(h));
        _probe.AssertWarned(RefcountWarning.AddUseAfterFree);
        Assert.Equal(Refcount.Saturated, h->Strong);
        RawArc.DropWeak(h);
    }

    // Issue 16.2: counts as Rust reports them; the implicit weak is never counted.
    [Fact]
    public void Counts_ImplicitWeakNeverCounted_ZeroAfterDestructor()
    {
        void* p = New();
        ArcHeader* h = RawArc.DangerousHeader(p);
        RawArc.Counts(h, out int s, out int wk);
        Assert.Equal((1, 0), (s, wk));
        Assert.True(RawArc.IntoUniqueOrDrop(h));
        RawArc.Counts(h, out s, out wk);
        Assert.Equal((0, 0), (s, wk)); // unique, no Weak
        nuint w = RawArc.Downgrade(h);
        RawArc.Counts(h, out s, out wk);
        Assert.Equal((0, 1), (s, wk)); // unique, one Weak
        RawArc.ShareUnique(h);
        RawArc.Counts(h, out s, out wk);
        Assert.Equal((1, 1), (s, wk));
        RawArc.Drop(h);
        RawArc.Counts(h, out s, out wk);
        Assert.Equal((0, 0), (s, wk)); // Weak::weak_count is 0 once no strong remains
        RawArc.DropWeak(h);
        GC.KeepAlive(w);
    }
}
