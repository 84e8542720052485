using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Tests.Shared;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>
/// Cross-language: an object created through the C ABI of librefruntime.so, cloned and dropped
/// through the managed API; the C side sees the right counts and its destructor runs once.
/// </summary>
public sealed unsafe class ArcCAbiTests
{
    private static long s_cDestroyed;

    private static readonly delegate* unmanaged<nuint, nuint, delegate* unmanaged<void*, void*, void>, void*, void**, int> s_new =
        (delegate* unmanaged<nuint, nuint, delegate* unmanaged<void*, void*, void>, void*, void**, int>)NativeLib.Export("rr_arc_new");

    private static readonly delegate* unmanaged<void*, int*, int*, int> s_counts =
        (delegate* unmanaged<void*, int*, int*, int>)NativeLib.Export("rr_arc_counts");

    private static readonly delegate* unmanaged<void*, int> s_drop =
        (delegate* unmanaged<void*, int>)NativeLib.Export("rr_arc_drop");

    private static readonly delegate* unmanaged<void*, int> s_clone =
        (delegate* unmanaged<void*, int>)NativeLib.Export("rr_arc_clone");

    // A "C" destructor: any unmanaged function pointer will do.
    [UnmanagedCallersOnly]
    private static void CDestructor(void* payload, void* ctx) => Interlocked.Increment(ref s_cDestroyed);

    [Fact]
    public void CreatedInC_ClonedAndDroppedInDotNet_CountsAgreeDestructorOnce()
    {
        long destroyed0 = Interlocked.Read(ref s_cDestroyed);
        void* p;
        Assert.Equal(0, s_new(8, 8, &CDestructor, null, &p));
        *(long*)p = 1234;

        // .NET borrows C's reference: clone through the C ABI, hand the clone to a managed handle.
        Assert.Equal(0, s_clone(p));
        var managed = Arc<long>.FromRaw((nint)p);
        Assert.Equal(1234, managed.Value);
        using Arc<long> second = managed.Clone();
        int strong, weak;
        Assert.Equal(0, s_counts(p, &strong, &weak));
        Assert.Equal(3, strong); // C's own + the two managed handles
        using (Weak<long> w = second.Downgrade())
        {
            Assert.Equal(0, s_counts(p, &strong, &weak));
            Assert.Equal(1, weak);
        }

        managed.Dispose();
        Assert.Equal(0, s_drop(p)); // C drops its reference
        Assert.Equal(destroyed0, Interlocked.Read(ref s_cDestroyed));
        Assert.Equal(1, second.StrongCount);
        second.Dispose(); // the last owner is .NET: C's destructor runs, once
        Assert.Equal(destroyed0 + 1, Interlocked.Read(ref s_cDestroyed));
    }

    // Issue 16.1 across the doors: C drops an object one time too many after .NET's last
    // reference ran the destructor; the .NET Weak<T> still never upgrades it.
    [Fact]
    public void ExtraDropInC_AfterDestructor_ManagedWeakNeverUpgrades()
    {
        int destroyed = 0;
        var a = Arc<long>.Create(7, _ => Interlocked.Increment(ref destroyed));
        using Weak<long> w = a.Downgrade();
        nint raw = a.IntoRaw();
        Assert.Equal(0, s_drop((void*)raw)); // the last strong reference: destructor
        Assert.Equal(1, destroyed);
        Assert.Equal(0, s_drop((void*)raw)); // a C caller's extra drop: saturates, leaks
        Assert.Equal(0, s_clone((void*)raw)); // and an extra clone
        Assert.Null(w.TryUpgrade());
        Assert.Equal(0, w.StrongCount);
        Assert.Equal(0, w.WeakCount);
        Assert.Equal(1, destroyed);
    }

    // Created in .NET with a managed destructor, last reference dropped by C: the trampoline runs it.
    [Fact]
    public void CreatedInDotNet_LastDropInC_ManagedDestructorRuns()
    {
        int destroyed = 0;
        var a = Arc<long>.Create(5, v => Interlocked.Add(ref destroyed, (int)v));
        nint raw = a.IntoRaw();
        Assert.Equal(0, s_drop((void*)raw));
        Assert.Equal(5, destroyed);
    }
}
