// Linux refcount_t semantics over a 32-bit signed counter that lives wherever the caller keeps
// it: a field of a managed object (RefRuntime.RefCount), or native memory shared with C
// (rr_refcount_t in include/refruntime.h).
//
// Spec: docs/refcount.md (Linux include/linux/refcount.h, lib/refcount.c), conformance cases LKDTM L1-L20.
//
// Design. Every value that reads as negative is "bad". The unconditional operations (add, inc,
// sub_and_test, dec_and_test, dec) do one atomic read-modify-write and then inspect the old
// value; if the transition was bad they call the out-of-line WarnSaturate, which stores
// Saturated and records the event. The counter may hold an unchecked value for the short window
// between the RMW and the fix-up store; Saturated sits midway between INT_MAX and UINT_MAX so
// that racing threads cannot push it back into the valid range in that window (docs/refcount.md).
// Only the operations that must *refuse* a transition (add_not_zero, dec_if_one, dec_not_one)
// loop on compare-exchange.
//
// Ordering. .NET's Interlocked operations are full fences on every supported platform, which is
// at least the ordering the kernel asks for (relaxed increments, release decrements, acquire on a
// successful dec_and_test). Reads use Volatile.Read so that a loop re-reads the counter.
//
// All arithmetic is two's complement and wraps: the checks below rely on it (the kernel builds
// with -fno-strict-overflow; here every expression that may overflow is `unchecked`).

using System;
using System.Runtime.CompilerServices;
using System.Threading;

namespace RefRuntime.Core.Sync;

/// <summary>
/// Called for every saturation event, after the counter has been pinned (for types 0..4).
/// <paramref name="counter"/> identifies the counter for the duration of the call only: for a
/// counter inside a managed object it is a transient address that must not be stored or
/// dereferenced after the handler returns.
/// </summary>
/// <param name="counter">Address of the counter that warned.</param>
/// <param name="type">What went wrong.</param>
public unsafe delegate void RefcountWarnHandler(int* counter, RefcountWarning type);

/// <summary>
/// Abstraction over the lock taken by <see cref="Refcount.DecAndLock{TLock}"/>, so the same
/// algorithm serves a <see cref="Lock"/> in .NET and a <c>pthread_mutex_t</c> from C with static
/// dispatch (implement it on a struct).
/// </summary>
public interface IRefcountLock
{
    /// <summary>Acquires the lock.</summary>
    void Enter();

    /// <summary>Releases the lock.</summary>
    void Exit();
}

/// <summary>
/// Saturating reference-count operations with the Linux kernel's <c>refcount_t</c> semantics, on a
/// 32-bit counter passed by reference. Argument order follows the kernel (<c>Add(i, ref r)</c>).
/// </summary>
/// <remarks>
/// <para><b>Invariants:</b> a counter holding a negative value is saturated or on its way to it;
/// once an operation has observed a bad transition the counter is set to <see cref="Saturated"/>,
/// and every later operation that sees it writes <see cref="Saturated"/> back, so it never wraps
/// into the valid range and the object it guards is leaked rather than freed while in use.</para>
/// <para>These methods operate on a raw <c>ref int</c> so that one implementation serves managed
/// fields and native memory. .NET code should normally use the <c>RefRuntime.RefCount</c> class,
/// which cannot be copied by value by accident.</para>
/// </remarks>
public static class Refcount
{
    /// <summary>The largest legal count (<c>REFCOUNT_MAX</c> = <c>INT_MAX</c>).</summary>
    public const int Max = int.MaxValue;

    /// <summary>The value a counter is pinned at after a bad transition (<c>INT_MIN / 2</c>, 0xc000_0000).</summary>
    public const int Saturated = int.MinValue / 2;

    /// <summary>Number of distinct <see cref="RefcountWarning"/> values.</summary>
    public const int WarningTypeCount = 6;

    private static readonly long[] s_warnCounts = new long[WarningTypeCount];
    private static readonly int[] s_warnedOnce = new int[WarningTypeCount];
    private static RefcountWarnHandler? s_handler;

    /// <summary>Stores <paramref name="n"/> (<c>refcount_set</c>).</summary>
    /// <param name="r">The counter.</param>
    /// <param name="n">The new value.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Set(ref int r, int n) => Volatile.Write(ref r, n);

    /// <summary>Reads the counter (<c>refcount_read</c>); a saturated counter reads as <see cref="Saturated"/>.</summary>
    /// <param name="r">The counter.</param>
    /// <returns>The current value.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Read(ref int r) => Volatile.Read(ref r);

    /// <summary>
    /// Adds <paramref name="i"/> (<c>refcount_add</c>). The caller must already hold a reference.
    /// Adding to 0 saturates with <see cref="RefcountWarning.AddUseAfterFree"/>; a negative old
    /// value or sum saturates with <see cref="RefcountWarning.AddOverflow"/>.
    /// </summary>
    /// <param name="i">Amount to add.</param>
    /// <param name="r">The counter.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Add(int i, ref int r)
    {
        int old = unchecked(Interlocked.Add(ref r, i) - i);
        if (old <= 0 || unchecked(old + i) < 0)
        {
            AddSlow(old, ref r);
        }
    }

    /// <summary>Adds one (<c>refcount_inc</c>); see <see cref="Add"/>.</summary>
    /// <param name="r">The counter.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Inc(ref int r)
    {
        int old = unchecked(Interlocked.Increment(ref r) - 1);
        // The good range is 1 <= old <= int.MaxValue - 1 (old + 1 < 0 only when old is negative
        // or int.MaxValue); one unsigned compare covers both ends.
        if (unchecked((uint)(old - 1)) >= int.MaxValue - 1)
        {
            AddSlow(old, ref r);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void AddSlow(int old, ref int r) =>
        WarnSaturate(ref r, old == 0 ? RefcountWarning.AddUseAfterFree : RefcountWarning.AddOverflow);

    /// <summary>
    /// Adds <paramref name="i"/> unless the counter is 0 (<c>refcount_add_not_zero</c>). A
    /// negative old value or sum saturates with <see cref="RefcountWarning.AddNotZeroOverflow"/>
    /// and still returns <see langword="true"/>.
    /// </summary>
    /// <param name="i">Amount to add.</param>
    /// <param name="r">The counter.</param>
    /// <returns><see langword="false"/> when the counter was 0 (nothing written), otherwise <see langword="true"/>.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool AddNotZero(int i, ref int r)
    {
        Interleave.Point("refcount.add-not-zero.load");
        int old = Volatile.Read(ref r);
        while (old != 0)
        {
            Interleave.Point("refcount.add-not-zero.cas");
            // ORDERING: a successful CAS is a full fence; the kernel needs only the control
            // dependency that orders later stores after the increment.
            int seen = Interlocked.CompareExchange(ref r, unchecked(old + i), old);
            if (seen == old)
            {
                break;
            }

            old = seen;
        }

        if (old < 0 || unchecked(old + i) < 0)
        {
            WarnSaturate(ref r, RefcountWarning.AddNotZeroOverflow);
        }

        return old != 0;
    }

    /// <summary>Adds one unless the counter is 0 (<c>refcount_inc_not_zero</c>); see <see cref="AddNotZero"/>.</summary>
    /// <param name="r">The counter.</param>
    /// <returns><see langword="false"/> when the counter was 0.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IncNotZero(ref int r) => AddNotZero(1, ref r);

    /// <summary>
    /// Subtracts <paramref name="i"/> and reports whether that took a positive counter exactly to 0
    /// (<c>refcount_sub_and_test</c>). Release ordering; acquire when it returns
    /// <see langword="true"/>. Going below zero, or starting at zero or below, saturates with
    /// <see cref="RefcountWarning.SubUseAfterFree"/> and returns <see langword="false"/>.
    /// </summary>
    /// <param name="i">Amount to subtract.</param>
    /// <param name="r">The counter.</param>
    /// <returns><see langword="true"/> when the caller dropped the last reference and must free the object.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool SubAndTest(int i, ref int r)
    {
        // ORDERING: Interlocked.Add is a full fence: release for this thread's prior accesses to
        // the object, acquire for the free that follows a true result (pairs with the release of
        // every other owner's decrement).
        int old = unchecked(Interlocked.Add(ref r, -i) + i);
        if (old == i && old > 0)
        {
            return true;
        }

        if (old <= 0 || unchecked(old - i) < 0)
        {
            WarnSaturate(ref r, RefcountWarning.SubUseAfterFree);
        }

        return false;
    }

    /// <summary>Subtracts one and reports whether the counter reached 0 (<c>refcount_dec_and_test</c>); see <see cref="SubAndTest"/>.</summary>
    /// <param name="r">The counter.</param>
    /// <returns><see langword="true"/> when the caller dropped the last reference and must free the object.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool DecAndTest(ref int r)
    {
        Interleave.Point("refcount.dec-and-test");
        int old = unchecked(Interlocked.Decrement(ref r) + 1);
        if (old == 1)
        {
            return true;
        }

        if (old <= 0)
        {
            DecAndTestSlow(ref r);
        }

        return false;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DecAndTestSlow(ref int r) => WarnSaturate(ref r, RefcountWarning.SubUseAfterFree);

    /// <summary>
    /// Subtracts one from a counter that must not reach 0 this way (<c>refcount_dec</c>). Reaching
    /// 0, or starting at a bad value, saturates with <see cref="RefcountWarning.DecLeak"/>: nobody
    /// will free the object.
    /// </summary>
    /// <param name="r">The counter.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Dec(ref int r)
    {
        int old = unchecked(Interlocked.Decrement(ref r) + 1);
        if (old <= 1)
        {
            DecSlow(ref r);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DecSlow(ref int r) => WarnSaturate(ref r, RefcountWarning.DecLeak);

    /// <summary>Takes the counter from exactly 1 to 0 (<c>refcount_dec_if_one</c>); never warns.</summary>
    /// <param name="r">The counter.</param>
    /// <returns><see langword="true"/> when the value was 1 and is now 0.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool DecIfOne(ref int r) => Interlocked.CompareExchange(ref r, 0, 1) == 1;

    /// <summary>
    /// Decrements unless the value is 1 (<c>refcount_dec_not_one</c>). A saturated counter is left
    /// alone; a counter at 0 records <see cref="RefcountWarning.DecNotOneUnderflow"/> and is left
    /// unchanged.
    /// </summary>
    /// <param name="r">The counter.</param>
    /// <returns><see langword="false"/> only when the value is 1 (nothing written).</returns>
    public static bool DecNotOne(ref int r)
    {
        uint val = unchecked((uint)Volatile.Read(ref r));
        while (true)
        {
            if (val == unchecked((uint)Saturated))
            {
                return true;
            }

            if (val == 1)
            {
                return false;
            }

            uint next = unchecked(val - 1);
            if (next > val)
            {
                WarnSaturate(ref r, RefcountWarning.DecNotOneUnderflow);
                return true;
            }

            // ORDERING: full fence; release for the caller's prior accesses (kernel: release).
            uint seen = unchecked((uint)Interlocked.CompareExchange(ref r, (int)next, (int)val));
            if (seen == val)
            {
                return true;
            }

            val = seen;
        }
    }

    /// <summary>
    /// Decrements, taking <paramref name="lock"/> only for the final 1 → 0 transition
    /// (<c>refcount_dec_and_lock</c>).
    /// </summary>
    /// <typeparam name="TLock">The lock type (a struct, for static dispatch).</typeparam>
    /// <param name="r">The counter.</param>
    /// <param name="lock">The lock that guards lookups of the object.</param>
    /// <returns><see langword="true"/> when the counter reached 0; the lock is then held and the caller must release it.</returns>
    public static bool DecAndLock<TLock>(ref int r, ref TLock @lock)
        where TLock : struct, IRefcountLock
    {
        if (DecNotOne(ref r))
        {
            return false;
        }

        @lock.Enter();
        if (DecAndTest(ref r))
        {
            return true;
        }

        @lock.Exit();
        return false;
    }

    /// <summary>
    /// The out-of-line warning path (<c>refcount_warn_saturate</c>): for types 0..4 pins the
    /// counter at <see cref="Saturated"/> first, then counts the event and calls the handler.
    /// <see cref="RefcountWarning.DecNotOneUnderflow"/> is counted and reported without touching
    /// the counter. Called by the fast paths, and by C callers' inline fast paths through the
    /// library.
    /// </summary>
    /// <param name="r">The counter.</param>
    /// <param name="type">The event.</param>
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static unsafe void WarnSaturate(ref int r, RefcountWarning type)
    {
        if ((uint)type >= WarningTypeCount)
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "Not a refcount warning type.");
        }

        if (type != RefcountWarning.DecNotOneUnderflow)
        {
            // INVARIANT: a counter that saw a bad transition holds Saturated from here on.
            Volatile.Write(ref r, Saturated);
        }

        Interlocked.Increment(ref s_warnCounts[(int)type]);

        RefcountWarnHandler? handler = Volatile.Read(ref s_handler);
        // SAFETY: the address is handed out for identification during the call only (see
        // RefcountWarnHandler); for native memory it is the caller's own pointer.
        int* address = (int*)Unsafe.AsPointer(ref r);
        if (handler is not null)
        {
            handler(address, type);
        }
        else if (Interlocked.Exchange(ref s_warnedOnce[(int)type], 1) == 0)
        {
            // Like the kernel's WARN_ONCE: the default report prints each type once per process.
            Console.Error.WriteLine($"refruntime: refcount_t: {Message(type)} (counter at 0x{(nuint)address:x})");
        }
    }

    /// <summary>The kernel's message for a warning type.</summary>
    /// <param name="type">The event.</param>
    /// <returns>The message, without the <c>refcount_t: </c> prefix.</returns>
    public static string Message(RefcountWarning type) => type switch
    {
        RefcountWarning.AddNotZeroOverflow or RefcountWarning.AddOverflow => "saturated; leaking memory",
        RefcountWarning.AddUseAfterFree => "addition on 0; use-after-free",
        RefcountWarning.SubUseAfterFree or RefcountWarning.DecNotOneUnderflow => "underflow; use-after-free",
        RefcountWarning.DecLeak => "decrement hit 0; leaking memory",
        _ => "unknown saturation event!?",
    };

    /// <summary>Number of events of <paramref name="type"/> since the process started.</summary>
    /// <param name="type">The event.</param>
    /// <returns>The count.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not a defined warning.</exception>
    public static ulong WarningCount(RefcountWarning type)
    {
        if ((uint)type >= WarningTypeCount)
        {
            throw new ArgumentOutOfRangeException(nameof(type), type, "Not a refcount warning type.");
        }

        return (ulong)Volatile.Read(ref s_warnCounts[(int)type]);
    }

    /// <summary>
    /// Installs the handler called on every warning, replacing the default (print each type once
    /// to standard error). <see langword="null"/> restores the default. The handler runs on the
    /// thread that hit the bad transition, after the counter is pinned; it must not throw.
    /// </summary>
    /// <param name="handler">The new handler, or <see langword="null"/>.</param>
    /// <returns>The previous handler (<see langword="null"/> for the default).</returns>
    public static RefcountWarnHandler? SetWarnHandler(RefcountWarnHandler? handler) =>
        Interlocked.Exchange(ref s_handler, handler);
}
