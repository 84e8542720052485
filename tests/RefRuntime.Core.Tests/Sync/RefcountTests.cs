using System;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Sync;
using RefRuntime.Core.Tests.Support;
using Xunit;

namespace RefRuntime.Core.Tests.Sync;

/// <summary>
/// Refcount semantics on a counter in native memory (as a C host would hold it): the LKDTM cases
/// of docs/refcount.md (Linux drivers/misc/lkdtm/refcount.c) and the helper operations.
/// </summary>
public sealed unsafe class RefcountTests : IDisposable
{
    private readonly int* _counter;
    private readonly WarningProbe _probe = new();

    public RefcountTests()
    {
        // SAFETY: 4 bytes, 4-aligned, freed in Dispose.
        _counter = (int*)NativeMemory.AlignedAlloc(sizeof(int), sizeof(int));
    }

    private ref int R => ref *_counter;

    public void Dispose()
    {
        _probe.Dispose();
        NativeMemory.AlignedFree(_counter);
    }

    private void Start(int value) => Refcount.Set(ref R, value);

    // L1: inc up to INT_MAX is silent; one more saturates with ADD_OVF.
    [Fact]
    public void L1_IncOverflow_Saturates()
    {
        Start(Refcount.Max - 1);
        Refcount.Dec(ref R);
        Assert.Equal(Refcount.Max - 2, Refcount.Read(ref R));
        Refcount.Inc(ref R);
        Refcount.Inc(ref R);
        Assert.Equal(int.MaxValue, Refcount.Read(ref R));
        _probe.AssertNone();
        Refcount.Inc(ref R);
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.AddOverflow);
        Assert.Equal(Refcount.Saturated, _probe.LastValueSeenByHandler);
    }

    // L2: add(4) back to MAX-1 is silent; add(4) again wraps and saturates.
    [Fact]
    public void L2_AddOverflow_Saturates()
    {
        Start(Refcount.Max - 1);
        for (int i = 0; i < 4; i++)
        {
            Refcount.Dec(ref R);
        }

        Refcount.Add(4, ref R);
        Assert.Equal(Refcount.Max - 1, Refcount.Read(ref R));
        _probe.AssertNone();
        Refcount.Add(4, ref R);
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.AddOverflow);
    }

    // L3: inc_not_zero at MAX returns true, saturates with ADD_NOT_ZERO_OVF.
    [Fact]
    public void L3_IncNotZeroOverflow_ReturnsTrueAndSaturates()
    {
        Start(Refcount.Max);
        Assert.True(Refcount.IncNotZero(ref R));
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.AddNotZeroOverflow);
    }

    // L4: add_not_zero(6) at MAX returns true, saturates.
    [Fact]
    public void L4_AddNotZeroOverflow_ReturnsTrueAndSaturates()
    {
        Start(Refcount.Max);
        Assert.True(Refcount.AddNotZero(6, ref R));
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.AddNotZeroOverflow);
    }

    // L5: dec from 2 is silent; dec from 1 is a leak.
    [Fact]
    public void L5_DecToZero_SaturatesAsLeak()
    {
        Start(2);
        Refcount.Dec(ref R);
        Assert.Equal(1, Refcount.Read(ref R));
        _probe.AssertNone();
        Refcount.Dec(ref R);
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.DecLeak);
    }

    // L6: dec from 0.
    [Fact]
    public void L6_DecNegative_SaturatesAsLeak()
    {
        Start(0);
        Refcount.Dec(ref R);
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.DecLeak);
    }

    // L7: dec_and_test from 0 returns false and saturates with SUB_UAF.
    [Fact]
    public void L7_DecAndTestNegative_ReturnsFalseAndSaturates()
    {
        Start(0);
        Assert.False(Refcount.DecAndTest(ref R));
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.SubUseAfterFree);
    }

    // L8: sub_and_test(5) from 3.
    [Fact]
    public void L8_SubAndTestNegative_ReturnsFalseAndSaturates()
    {
        Start(3);
        Assert.False(Refcount.SubAndTest(5, ref R));
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.SubUseAfterFree);
    }

    // L9: sub_and_test(0) on 0 is a use-after-free since the 2024 fix (was a silent true).
    [Fact]
    public void L9_SubAndTestZeroOnZero_ReturnsFalseAndSaturates()
    {
        Start(0);
        Assert.False(Refcount.SubAndTest(0, ref R));
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.SubUseAfterFree);
    }

    // L10: inc_not_zero on 0 refuses silently; inc on 0 is a use-after-free.
    [Fact]
    public void L10_IncFromZero_RefusedThenSaturates()
    {
        Start(0);
        Assert.False(Refcount.IncNotZero(ref R));
        Assert.Equal(0, Refcount.Read(ref R));
        _probe.AssertNone();
        Refcount.Inc(ref R);
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.AddUseAfterFree);
    }

    // L11: add_not_zero(3) on 0 refuses silently; add(3) on 0 saturates.
    [Fact]
    public void L11_AddFromZero_RefusedThenSaturates()
    {
        Start(0);
        Assert.False(Refcount.AddNotZero(3, ref R));
        Assert.Equal(0, Refcount.Read(ref R));
        _probe.AssertNone();
        Refcount.Add(3, ref R);
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.AddUseAfterFree);
    }

    public delegate bool? SaturatedOp(ref int r);

    public static TheoryData<string, RefcountWarning, bool?> SaturatedCases => new()
    {
        { "L12 inc", RefcountWarning.AddOverflow, null },
        { "L13 dec", RefcountWarning.DecLeak, null },
        { "L14 add(8)", RefcountWarning.AddOverflow, null },
        { "L15 inc_not_zero", RefcountWarning.AddNotZeroOverflow, true },
        { "L16 add_not_zero(7)", RefcountWarning.AddNotZeroOverflow, true },
        { "L17 dec_and_test", RefcountWarning.SubUseAfterFree, false },
        { "L18 sub_and_test(8)", RefcountWarning.SubUseAfterFree, false },
    };

    private static bool? Apply(string name, ref int r)
    {
        switch (name)
        {
            case "L12 inc": Refcount.Inc(ref r); return null;
            case "L13 dec": Refcount.Dec(ref r); return null;
            case "L14 add(8)": Refcount.Add(8, ref r); return null;
            case "L15 inc_not_zero": return Refcount.IncNotZero(ref r);
            case "L16 add_not_zero(7)": return Refcount.AddNotZero(7, ref r);
            case "L17 dec_and_test": return Refcount.DecAndTest(ref r);
            case "L18 sub_and_test(8)": return Refcount.SubAndTest(8, ref r);
            default: throw new ArgumentOutOfRangeException(nameof(name));
        }
    }

    // L12..L18: every operation on a saturated counter keeps it saturated and warns once.
    [Theory]
    [MemberData(nameof(SaturatedCases))]
    public void L12toL18_OperationOnSaturated_StaysSaturated(string operation, RefcountWarning expected, bool? result)
    {
        Start(Refcount.Saturated);
        Assert.Equal(result, Apply(operation, ref R));
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertWarned(expected);
    }

    // L19/L20 scaled: counting up is silent, the last dec_and_test alone returns true, and
    // counting up to exactly INT_MAX is legal.
    [Fact]
    public void L20_CountUpAndDown_OnlyLastDecAndTestIsTrue()
    {
        const int n = 1_000_000;
        Start(1);
        for (int i = 1; i < n; i++)
        {
            Refcount.Inc(ref R);
        }

        int hits = 0, hitAt = -1;
        for (int i = n; i > 0; i--)
        {
            if (Refcount.DecAndTest(ref R))
            {
                hits++;
                hitAt = i;
            }
        }

        Assert.Equal(1, hits);
        Assert.Equal(1, hitAt);
        Start(Refcount.Max - 1000);
        for (int i = 0; i < 1000; i++)
        {
            Refcount.Inc(ref R);
        }

        Assert.Equal(Refcount.Max, Refcount.Read(ref R));
        Assert.False(Refcount.SubAndTest(Refcount.Max - 1, ref R));
        Assert.True(Refcount.DecAndTest(ref R));
        _probe.AssertNone();
    }

    // dec_if_one: only 1 -> 0, never a warning.
    [Fact]
    public void DecIfOne_OnlyFromOne_NeverWarns()
    {
        Start(2);
        Assert.False(Refcount.DecIfOne(ref R));
        Start(1);
        Assert.True(Refcount.DecIfOne(ref R));
        Assert.Equal(0, Refcount.Read(ref R));
        Assert.False(Refcount.DecIfOne(ref R));
        Start(Refcount.Saturated);
        Assert.False(Refcount.DecIfOne(ref R));
        _probe.AssertNone();
    }

    // dec_not_one: false only at 1; saturated untouched; 0 warns without saturating; other bad
    // values are simply decremented (docs/refcount.md; as lib/refcount.c does).
    [Fact]
    public void DecNotOne_AllBranches()
    {
        Start(2);
        Assert.True(Refcount.DecNotOne(ref R));
        Assert.Equal(1, Refcount.Read(ref R));
        Assert.False(Refcount.DecNotOne(ref R));
        Assert.Equal(1, Refcount.Read(ref R));
        Start(Refcount.Saturated);
        Assert.True(Refcount.DecNotOne(ref R));
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
        _probe.AssertNone();
        Start(0);
        Assert.True(Refcount.DecNotOne(ref R));
        Assert.Equal(0, Refcount.Read(ref R));
        _probe.AssertWarned(RefcountWarning.DecNotOneUnderflow);
        Start(int.MinValue);
        Assert.True(Refcount.DecNotOne(ref R));
        Assert.Equal(int.MaxValue, Refcount.Read(ref R));
    }

    private struct CountingLock : IRefcountLock
    {
        public int Entered;
        public int Exited;

        public void Enter() => Entered++;

        public void Exit() => Exited++;
    }

    // dec_and_lock: the lock is taken only for the final transition and held on true.
    [Fact]
    public void DecAndLock_TakesLockOnlyForLastReference()
    {
        Start(3);
        var lk = new CountingLock();
        Assert.False(Refcount.DecAndLock(ref R, ref lk));
        Assert.False(Refcount.DecAndLock(ref R, ref lk));
        Assert.Equal(0, lk.Entered);
        Assert.True(Refcount.DecAndLock(ref R, ref lk));
        Assert.Equal(1, lk.Entered);
        Assert.Equal(0, lk.Exited); // held for the caller
        Assert.Equal(0, Refcount.Read(ref R));
    }

    // dec_and_lock when another thread takes a reference between dec_not_one and the lock: the
    // lock is released and false returned.
    [Fact]
    public void DecAndLock_RacedByIncrement_ReleasesLockAndReturnsFalse()
    {
        Start(1);
        var lk = new RacingLock(_counter);
        Assert.False(Refcount.DecAndLock(ref R, ref lk));
        Assert.Equal(1, lk.Entered);
        Assert.Equal(1, lk.Exited);
        Assert.Equal(1, Refcount.Read(ref R));
    }

    private struct RacingLock(int* counter) : IRefcountLock
    {
        public int Entered;
        public int Exited;

        public void Enter()
        {
            Entered++;
            // SAFETY: the test's counter, alive for the test.
            Refcount.Inc(ref *counter); // a lookup sneaks in before the lock is held
        }

        public void Exit() => Exited++;
    }

    // An invalid warning type is refused without touching the counter.
    [Fact]
    public void WarnSaturate_InvalidType_Throws()
    {
        Start(5);
        Assert.Throws<ArgumentOutOfRangeException>(() => Refcount.WarnSaturate(ref *_counter, (RefcountWarning)6));
        Assert.Throws<ArgumentOutOfRangeException>(() => Refcount.WarningCount((RefcountWarning)(-1)));
        Assert.Equal(5, Refcount.Read(ref R));
        _probe.AssertNone();
    }

    // The default report (no handler) still counts.
    [Fact]
    public void WarningCount_WithoutHandler_StillCounts()
    {
        RefcountWarnHandler? mine = Refcount.SetWarnHandler(null);
        try
        {
            ulong before = Refcount.WarningCount(RefcountWarning.DecLeak);
            Start(1);
            Refcount.Dec(ref R);
            Assert.Equal(before + 1, Refcount.WarningCount(RefcountWarning.DecLeak));
        }
        finally
        {
            Refcount.SetWarnHandler(mine);
        }
    }

    [Fact]
    public void Message_MatchesKernelText()
    {
        Assert.Equal("saturated; leaking memory", Refcount.Message(RefcountWarning.AddOverflow));
        Assert.Equal("addition on 0; use-after-free", Refcount.Message(RefcountWarning.AddUseAfterFree));
        Assert.Equal("underflow; use-after-free", Refcount.Message(RefcountWarning.SubUseAfterFree));
        Assert.Equal("decrement hit 0; leaking memory", Refcount.Message(RefcountWarning.DecLeak));
        Assert.Equal("unknown saturation event!?", Refcount.Message((RefcountWarning)42));
    }

    // Racing increments at the top of the range: the counter never wraps into the valid range.
    [Fact]
    public void ConcurrentIncAtMax_NeverWrapsToValidRange()
    {
        Start(Refcount.Max - 1000);
        var threads = new Thread[4];
        int observedWrap = 0;
        for (int t = 0; t < threads.Length; t++)
        {
            threads[t] = new Thread(() =>
            {
                for (int i = 0; i < 100_000; i++)
                {
                    Refcount.Inc(ref *_counter);
                    int v = Refcount.Read(ref *_counter);
                    if (v >= 0 && v < Refcount.Max - 1000)
                    {
                        Interlocked.Increment(ref observedWrap);
                    }
                }
            });
            threads[t].Start();
        }

        foreach (Thread t in threads)
        {
            t.Join();
        }

        Assert.Equal(0, observedWrap);
        Assert.Equal(Refcount.Saturated, Refcount.Read(ref R));
    }
}
