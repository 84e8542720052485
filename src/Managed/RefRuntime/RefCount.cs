// The safe .NET face of the saturating refcount (Linux refcount_t semantics).
// Spec: docs/refcount.md (Linux refcount_t); the algorithm lives once in RefRuntime.Core.Sync.Refcount.
//
// Why a class: a counter is identity. A struct counter held in a readonly field, captured in a
// lambda, or passed by value is silently copied, and operations on the copy never reach the real
// counter. A sealed class cannot be copied by accident; the cost is one object per counter, and
// the operations themselves are the same single atomic instruction on its field.

using System;
using System.Threading;
using RefRuntime.Core.Sync;

namespace RefRuntime;

/// <summary>
/// A saturating reference counter with the Linux kernel's <c>refcount_t</c> semantics: it never
/// wraps. An increment from 0, an overflow past <see cref="Max"/> or a decrement below 0 pins the
/// counter at <see cref="Saturated"/>, counts a warning (<see cref="WarningCount"/>) and raises
/// <see cref="Warned"/>; the guarded object is then leaked rather than freed while still in use.
/// </summary>
/// <remarks>
/// <para>Thread-safe. Increments need the caller to already own a reference (or otherwise keep
/// the object alive); use <see cref="IncNotZero"/> to take a reference from a lookup. A
/// <see cref="DecAndTest"/> that returns <see langword="true"/> tells the caller that it dropped
/// the last reference and must release the object.</para>
/// <para>Ordering: every operation is a full fence (stronger than the kernel's release on
/// decrement and acquire on the final 1 → 0).</para>
/// </remarks>
public sealed class RefCount
{
    /// <summary>The largest legal count (<c>int.MaxValue</c>).</summary>
    public const int Max = Refcount.Max;

    /// <summary>The value a counter is pinned at after a bad transition (<c>int.MinValue / 2</c>).</summary>
    public const int Saturated = Refcount.Saturated;

    private static readonly object s_warnedLock = new();
    private static Action<RefCountWarning>? s_warned;

    private int _refs;

    /// <summary>Creates a counter holding <paramref name="initial"/> references.</summary>
    /// <param name="initial">The starting count; 1 for an object handed to its creator.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="initial"/> is negative (negative values mean saturated).</exception>
    public RefCount(int initial = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(initial);
        _refs = initial;
    }

    /// <summary>The current count; <see cref="Saturated"/> once saturated.</summary>
    public int Value => Refcount.Read(ref _refs);

    /// <summary>Whether the counter has saturated (any negative value); it never recovers by itself.</summary>
    public bool IsSaturated => Refcount.Read(ref _refs) < 0;

    /// <summary>Stores <paramref name="value"/>, for reinitialising an object that is not shared.</summary>
    /// <param name="value">The new count.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="value"/> is negative.</exception>
    public void Set(int value)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(value);
        Refcount.Set(ref _refs, value);
    }

    /// <summary>Takes one more reference. The caller must already hold one.</summary>
    public void Inc() => Refcount.Inc(ref _refs);

    /// <summary>Takes <paramref name="count"/> more references. The caller must already hold one.</summary>
    /// <param name="count">How many; 0 or more.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative.</exception>
    public void Add(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Refcount.Add(count, ref _refs);
    }

    /// <summary>Takes a reference unless the count is 0 (the object is already being released).</summary>
    /// <returns><see langword="true"/> when a reference was taken (or the counter is saturated).</returns>
    public bool IncNotZero() => Refcount.IncNotZero(ref _refs);

    /// <summary>Takes <paramref name="count"/> references unless the count is 0.</summary>
    /// <param name="count">How many; 0 or more.</param>
    /// <returns><see langword="false"/> when the count was 0 and nothing was taken.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative.</exception>
    public bool AddNotZero(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return Refcount.AddNotZero(count, ref _refs);
    }

    /// <summary>Drops one reference.</summary>
    /// <returns><see langword="true"/> when this was the last reference: the caller must release the object.</returns>
    public bool DecAndTest() => Refcount.DecAndTest(ref _refs);

    /// <summary>Drops <paramref name="count"/> references.</summary>
    /// <param name="count">How many; 0 or more.</param>
    /// <returns><see langword="true"/> when that dropped the last reference.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is negative.</exception>
    public bool SubAndTest(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        return Refcount.SubAndTest(count, ref _refs);
    }

    /// <summary>Drops a reference that is known not to be the last; reaching 0 this way is reported as a leak.</summary>
    public void Dec() => Refcount.Dec(ref _refs);

    /// <summary>Takes the count from exactly 1 to 0.</summary>
    /// <returns><see langword="true"/> when it was 1 and is now 0.</returns>
    public bool DecIfOne() => Refcount.DecIfOne(ref _refs);

    /// <summary>Drops a reference unless it is the last one.</summary>
    /// <returns><see langword="false"/> only when the count is 1 (nothing changed).</returns>
    public bool DecNotOne() => Refcount.DecNotOne(ref _refs);

    /// <summary>
    /// Drops a reference, taking <paramref name="lock"/> only for the final 1 → 0 transition, so
    /// that a lookup structure guarded by the lock never hands out an object being released.
    /// </summary>
    /// <param name="lock">The lock guarding lookups of the object.</param>
    /// <returns><see langword="true"/> when the count reached 0; the lock is then held and the caller must exit it.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="lock"/> is <see langword="null"/>.</exception>
    public bool DecAndLock(Lock @lock)
    {
        if (@lock is null)
        {
            throw new ArgumentNullException(nameof(@lock));
        }

        var adapter = new LockAdapter(@lock);
        return Refcount.DecAndLock(ref _refs, ref adapter);
    }

    /// <summary>Number of warnings of <paramref name="type"/> in this process, from .NET and native callers of the same Core.</summary>
    /// <param name="type">The warning.</param>
    /// <returns>The count.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="type"/> is not defined.</exception>
    public static ulong WarningCount(RefCountWarning type) => Refcount.WarningCount((RefcountWarning)type);

    /// <summary>
    /// Raised on every warning, on the thread that hit the bad transition, after the counter is
    /// pinned. While no handler is attached, each type is printed once to standard error.
    /// Handlers must not throw.
    /// </summary>
    public static event Action<RefCountWarning>? Warned
    {
        add
        {
            lock (s_warnedLock)
            {
                s_warned += value;
                Install();
            }
        }

        remove
        {
            lock (s_warnedLock)
            {
                s_warned -= value;
                Install();
            }
        }
    }

    /// <inheritdoc/>
    public override string ToString() => IsSaturated ? "RefCount(saturated)" : $"RefCount({Value})";

    private static unsafe void Install()
    {
        Action<RefCountWarning>? handlers = s_warned;
        Refcount.SetWarnHandler(handlers is null ? null : (_, type) => handlers((RefCountWarning)type));
    }

    private readonly struct LockAdapter(Lock @lock) : IRefcountLock
    {
        public void Enter() => @lock.Enter();

        public void Exit() => @lock.Exit();
    }
}

/// <summary>What a <see cref="RefCount"/> warning reports (the Linux <c>refcount_saturation_type</c>, in order).</summary>
public enum RefCountWarning
{
    /// <summary><see cref="RefCount.IncNotZero"/>/<see cref="RefCount.AddNotZero"/> overflowed or saw a saturated count.</summary>
    AddNotZeroOverflow = RefcountWarning.AddNotZeroOverflow,

    /// <summary><see cref="RefCount.Inc"/>/<see cref="RefCount.Add"/> overflowed or saw a saturated count.</summary>
    AddOverflow = RefcountWarning.AddOverflow,

    /// <summary><see cref="RefCount.Inc"/>/<see cref="RefCount.Add"/> on a count of 0: use-after-free.</summary>
    AddUseAfterFree = RefcountWarning.AddUseAfterFree,

    /// <summary><see cref="RefCount.DecAndTest"/>/<see cref="RefCount.SubAndTest"/> went below zero: use-after-free.</summary>
    SubUseAfterFree = RefcountWarning.SubUseAfterFree,

    /// <summary><see cref="RefCount.Dec"/> reached 0: nobody will release the object.</summary>
    DecLeak = RefcountWarning.DecLeak,

    /// <summary><see cref="RefCount.DecNotOne"/> saw 0; the count is left unchanged.</summary>
    DecNotOneUnderflow = RefcountWarning.DecNotOneUnderflow,
}
