// RCU-protected pointers: publish with release (rcu_assign_pointer), read with a dependency-
// ordered load (rcu_dereference), exchange with a full fence (rcu_xchg_pointer). Spec: docs/rcu.md.
//
// .NET orders data-dependent reads on every supported platform (the runtime memory model), so
// rcu_dereference is a Volatile.Read: acquire is stronger than consume, free on x64, one
// barrier-less load on Arm64 (ldar).

using System.Runtime.CompilerServices;
using System.Threading;

namespace RefRuntime.Core.Rcu;

/// <summary>Publication and reading of RCU-protected pointers and references.</summary>
public static class RawRcuPointer
{
    /// <summary>Publishes <paramref name="value"/>: everything written to it before is visible to readers that load it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Assign(ref nint slot, nint value) => Volatile.Write(ref slot, value);

    /// <summary>Loads a published pointer inside a read-side section.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint Dereference(ref nint slot) => Volatile.Read(ref slot);

    /// <summary>Replaces a published pointer and returns the old one (free it only after a grace period).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static nint Exchange(ref nint slot, nint value) => Interlocked.Exchange(ref slot, value);

    /// <summary>Publishes a reference (see <see cref="Assign(ref nint, nint)"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Assign<T>(ref T? slot, T? value)
        where T : class => Volatile.Write(ref slot, value);

    /// <summary>Loads a published reference inside a read-side section.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T? Dereference<T>(ref T? slot)
        where T : class => Volatile.Read(ref slot);

    /// <summary>Replaces a published reference and returns the old one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T? Exchange<T>(ref T? slot, T? value)
        where T : class => Interlocked.Exchange(ref slot, value);
}
