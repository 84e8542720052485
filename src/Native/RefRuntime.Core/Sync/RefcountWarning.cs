// Saturation events of the refcount, in the Linux kernel's declaration order.
// Spec: docs/refcount.md (enum refcount_saturation_type in Linux include/linux/refcount.h).

namespace RefRuntime.Core.Sync;

/// <summary>
/// The kind of bad transition a refcount detected. Values 0..4 are the Linux
/// <c>enum refcount_saturation_type</c> in declaration order; each of them pins the counter at
/// <see cref="Refcount.Saturated"/>. <see cref="DecNotOneUnderflow"/> is the separate warning of
/// <c>refcount_dec_not_one</c>, which leaves the counter unchanged.
/// </summary>
public enum RefcountWarning
{
    /// <summary><c>add_not_zero</c>/<c>inc_not_zero</c> saw a negative old value or sum: saturated; leaking memory.</summary>
    AddNotZeroOverflow = 0,

    /// <summary><c>add</c>/<c>inc</c> saw a negative old value or sum: saturated; leaking memory.</summary>
    AddOverflow = 1,

    /// <summary><c>add</c>/<c>inc</c> on a counter that was 0: addition on 0; use-after-free.</summary>
    AddUseAfterFree = 2,

    /// <summary><c>sub_and_test</c>/<c>dec_and_test</c> went below zero: underflow; use-after-free.</summary>
    SubUseAfterFree = 3,

    /// <summary><c>dec</c> reached 0 or saw a bad value: decrement hit 0; leaking memory.</summary>
    DecLeak = 4,

    /// <summary><c>dec_not_one</c> saw 0: underflow; use-after-free. The counter is left as it was.</summary>
    DecNotOneUnderflow = 5,
}
