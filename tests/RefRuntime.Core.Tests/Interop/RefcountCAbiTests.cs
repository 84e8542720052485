using System.Runtime.InteropServices;
using RefRuntime.Core.Sync;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Tests.Shared;
using Xunit;

namespace RefRuntime.Core.Tests.Interop;

/// <summary>
/// One counter in native memory driven alternately through the C ABI of librefruntime.so and
/// through RefRuntime.Core: same layout, same semantics, and a bad pointer across the ABI is
/// reported rather than dereferenced.
/// </summary>
public sealed unsafe class RefcountCAbiTests
{
    private static readonly delegate* unmanaged<int*, void> s_inc =
        (delegate* unmanaged<int*, void>)NativeLib.Export("rr_refcount_inc");

    private static readonly delegate* unmanaged<int*, byte> s_decAndTest =
        (delegate* unmanaged<int*, byte>)NativeLib.Export("rr_refcount_dec_and_test");

    private static readonly delegate* unmanaged<int*, int> s_read =
        (delegate* unmanaged<int*, int>)NativeLib.Export("rr_refcount_read");

    private static readonly delegate* unmanaged<int, ulong> s_warnCount =
        (delegate* unmanaged<int, ulong>)NativeLib.Export("rr_refcount_warn_count");

    private static readonly delegate* unmanaged<int> s_takeLastError =
        (delegate* unmanaged<int>)NativeLib.Export("rr_take_last_error");

    // A counter shared by both doors keeps one count.
    [Fact]
    public void SharedCounter_ManagedAndCAbi_AgreeOnEveryTransition()
    {
        int* r = (int*)NativeMemory.AlignedAlloc(4, 4);
        try
        {
            // SAFETY: r is a live, aligned 4-byte block for the whole test.
            Refcount.Set(ref *r, 1);
            s_inc(r);
            Assert.Equal(2, Refcount.Read(ref *r));
            Refcount.Inc(ref *r);
            Assert.Equal(3, s_read(r));
            Assert.Equal(0, s_decAndTest(r));
            Assert.False(Refcount.DecAndTest(ref *r));
            Assert.Equal(1, s_decAndTest(r)); // the C side drops the last reference
            Assert.Equal(0, Refcount.Read(ref *r));
        }
        finally
        {
            NativeMemory.AlignedFree(r);
        }
    }

    // The library's saturation reaches the managed reader, and the library counts the warning.
    [Fact]
    public void CAbiUnderflow_SaturatesCounterSeenByManagedSide()
    {
        int* r = (int*)NativeMemory.AlignedAlloc(4, 4);
        try
        {
            // SAFETY: as above.
            Refcount.Set(ref *r, 0);
            ulong before = s_warnCount((int)RefcountWarning.SubUseAfterFree);
            Assert.Equal(0, s_decAndTest(r));
            Assert.Equal(Refcount.Saturated, Refcount.Read(ref *r));
            Assert.Equal(before + 1, s_warnCount((int)RefcountWarning.SubUseAfterFree));
        }
        finally
        {
            NativeMemory.AlignedFree(r);
        }
    }

    // NULL across the ABI: EINVAL recorded, no crash, library usable afterwards.
    [Fact]
    public void CAbiNullPointer_ReportsInvalidArgument()
    {
        s_takeLastError();
        s_inc(null);
        Assert.Equal(1, s_takeLastError()); // RR_EINVAL
        Assert.Equal(0, s_decAndTest(null));
        Assert.Equal(1, s_takeLastError());
        Assert.Equal(0, s_takeLastError()); // read-and-clear
        Assert.Equal(ulong.MaxValue, s_warnCount(99));
        Assert.Equal(1, s_takeLastError());
    }
}
