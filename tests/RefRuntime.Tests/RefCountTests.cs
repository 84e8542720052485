using System;
using System.Collections.Generic;
using System.Threading;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>The safe .NET RefCount: kernel semantics, .NET argument errors, the Warned event, DecAndLock with Lock.</summary>
public sealed class RefCountTests : IDisposable
{
    private readonly List<RefCountWarning> _warnings = new();
    private readonly Action<RefCountWarning> _handler;

    public RefCountTests()
    {
        _handler = w =>
        {
            lock (_warnings)
            {
                _warnings.Add(w);
            }
        };
        RefCount.Warned += _handler;
    }

    public void Dispose() => RefCount.Warned -= _handler;

    // A fresh counter holds what it was given.
    [Fact]
    public void Constructor_Default_HoldsOne()
    {
        var r = new RefCount();
        Assert.Equal(1, r.Value);
        Assert.False(r.IsSaturated);
        Assert.Equal("RefCount(1)", r.ToString());
    }

    // Negative starting values would be "already saturated": refused the .NET way.
    [Fact]
    public void Constructor_Negative_ThrowsArgumentOutOfRange()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new RefCount(-1));
        Assert.Equal("initial", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new RefCount().Set(-5));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RefCount().Add(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RefCount().AddNotZero(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RefCount().SubAndTest(-1));
    }

    // The usual life cycle: the last DecAndTest is the only true one.
    [Fact]
    public void IncThenDecAndTest_LastDropReturnsTrue()
    {
        var r = new RefCount();
        r.Inc();
        r.Add(2);
        Assert.Equal(4, r.Value);
        Assert.False(r.SubAndTest(2));
        Assert.False(r.DecAndTest());
        Assert.True(r.DecAndTest());
        Assert.Equal(0, r.Value);
        Assert.Empty(_warnings);
    }

    // Taking a reference to an object being released is refused without a warning.
    [Fact]
    public void IncNotZero_OnZero_ReturnsFalseSilently()
    {
        var r = new RefCount(0);
        Assert.False(r.IncNotZero());
        Assert.False(r.AddNotZero(3));
        Assert.Equal(0, r.Value);
        Assert.Empty(_warnings);
    }

    // An extra put (the double-free bug) saturates and leaks instead of reporting zero twice.
    [Fact]
    public void ExtraPut_Saturates_RaisesWarnedAndNeverReturnsTrueAgain()
    {
        var r = new RefCount();
        ulong before = RefCount.WarningCount(RefCountWarning.SubUseAfterFree);
        Assert.True(r.DecAndTest());
        Assert.False(r.DecAndTest()); // the bug: second put
        Assert.True(r.IsSaturated);
        Assert.Equal(RefCount.Saturated, r.Value);
        Assert.False(r.DecAndTest());
        Assert.Equal("RefCount(saturated)", r.ToString());
        Assert.Equal(new[] { RefCountWarning.SubUseAfterFree, RefCountWarning.SubUseAfterFree }, _warnings);
        Assert.Equal(before + 2, RefCount.WarningCount(RefCountWarning.SubUseAfterFree));
    }

    // Overflow pins rather than wraps.
    [Fact]
    public void IncAtMax_Saturates()
    {
        var r = new RefCount(RefCount.Max);
        r.Inc();
        Assert.True(r.IsSaturated);
        Assert.Equal(new[] { RefCountWarning.AddOverflow }, _warnings);
    }

    // Inc on zero is a use-after-free.
    [Fact]
    public void IncOnZero_SaturatesAsUseAfterFree()
    {
        var r = new RefCount(0);
        r.Inc();
        Assert.True(r.IsSaturated);
        Assert.Equal(new[] { RefCountWarning.AddUseAfterFree }, _warnings);
    }

    // Dec that reaches zero is a leak.
    [Fact]
    public void DecToZero_SaturatesAsLeak()
    {
        var r = new RefCount();
        r.Dec();
        Assert.True(r.IsSaturated);
        Assert.Equal(new[] { RefCountWarning.DecLeak }, _warnings);
    }

    // DecIfOne / DecNotOne.
    [Fact]
    public void DecIfOneAndDecNotOne_FollowKernel()
    {
        var r = new RefCount(2);
        Assert.False(r.DecIfOne());
        Assert.True(r.DecNotOne());
        Assert.False(r.DecNotOne());
        Assert.True(r.DecIfOne());
        Assert.Equal(0, r.Value);
        Assert.True(r.DecNotOne()); // underflow: warns, unchanged
        Assert.Equal(0, r.Value);
        Assert.Equal(new[] { RefCountWarning.DecNotOneUnderflow }, _warnings);
    }

    // DecAndLock holds the lock only after the final drop.
    [Fact]
    public void DecAndLock_LastReference_ReturnsTrueWithLockHeld()
    {
        var r = new RefCount(2);
        var gate = new Lock();
        Assert.False(r.DecAndLock(gate));
        Assert.False(gate.IsHeldByCurrentThread);
        Assert.True(r.DecAndLock(gate));
        Assert.True(gate.IsHeldByCurrentThread);
        gate.Exit();
        Assert.Throws<ArgumentNullException>(() => r.DecAndLock(null!));
    }

    // An undefined warning type is an argument error.
    [Fact]
    public void WarningCount_UndefinedType_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => RefCount.WarningCount((RefCountWarning)17));
    }

    // A lookup table guarded by a Lock: DecAndLock removes the entry under the lock on the final
    // drop, so lookups (IncNotZero under the same lock) never hand out a released object.
    [Fact]
    [Trait("Category", "Stress")]
    public void DecAndLock_LookupTable_NoReleasedObjectHandedOut()
    {
        var gate = new Lock();
        var table = new Dictionary<int, Entry>();
        int released = 0, created = 0, badLookups = 0;
        var threads = new Thread[4];
        for (int t = 0; t < threads.Length; t++)
        {
            int seed = t;
            threads[t] = new Thread(() =>
            {
                var rng = new Random(seed);
                for (int i = 0; i < 50_000; i++)
                {
                    int key = rng.Next(16);
                    Entry? e;
                    lock (gate)
                    {
                        if (!table.TryGetValue(key, out e))
                        {
                            e = new Entry(key);
                            table.Add(key, e);
                            Interlocked.Increment(ref created);
                        }
                        else if (!e.Refs.IncNotZero())
                        {
                            Interlocked.Increment(ref badLookups); // a released entry was still listed
                            continue;
                        }
                    }

                    if (e.Released)
                    {
                        Interlocked.Increment(ref badLookups);
                    }

                    if (e.Refs.DecAndLock(gate))
                    {
                        table.Remove(e.Key);
                        e.Released = true;
                        gate.Exit();
                        Interlocked.Increment(ref released);
                    }
                }
            });
            threads[t].Start();
        }

        foreach (Thread t in threads)
        {
            t.Join();
        }

        Assert.Equal(0, badLookups);
        Assert.Empty(table);
        Assert.Equal(created, released);
        Assert.Empty(_warnings);
    }

    private sealed class Entry(int key)
    {
        public int Key { get; } = key;

        public RefCount Refs { get; } = new();

        public volatile bool Released;
    }
}
