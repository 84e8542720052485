// The header that precedes every Arc payload in native memory: the layout shared with C
// (rr_arc_header_t in include/refruntime.h, pinned there with _Static_assert and here by a test).
//
//   allocation base                 header (48 bytes)                      payload
//   |<-- pad to payload alignment -->|strong|weak|magic|base_off|size|dtor|ctx|flags|<-- size bytes -->|
//                                     0      4    8     12       16   24   32  40   48
//
// The header sits immediately before the payload, so a payload pointer finds its header by a
// constant subtraction (Rust's into_raw/from_raw, docs/arc.md).

using System.Runtime.InteropServices;

namespace RefRuntime.Core.Sync;

/// <summary>The Arc header in native memory (see file comment for the picture).</summary>
/// <remarks>
/// <b>Invariants:</b> while <see cref="Magic"/> is <see cref="RawArc.MagicLive"/>: the payload is
/// <see cref="Size"/> bytes at <c>this + 48</c>, aligned to at least 16; the allocation starts
/// <see cref="BaseOffset"/> bytes before the header; <see cref="Weak"/> counts every weak
/// reference plus one implicit weak shared by all strong owners (or the unique owner) until the
/// destructor runs; the destructor has started iff <see cref="Flags"/> has
/// <see cref="RawArc.FlagDestroyed"/>, set once by the drop that took <see cref="Strong"/> to 0.
/// </remarks>
[StructLayout(LayoutKind.Sequential, Size = 48)]
public unsafe struct ArcHeader
{
    /// <summary>Strong count, refcount_t semantics (offset 0).</summary>
    public int Strong;

    /// <summary>Weak count including the implicit weak of the strong owners (offset 4); <see cref="RawArc.WeakLocked"/> while <c>is_unique</c> runs.</summary>
    public int Weak;

    /// <summary><see cref="RawArc.MagicLive"/> while the allocation is live (offset 8).</summary>
    public uint Magic;

    /// <summary>Bytes from the allocation base to this header (offset 12).</summary>
    public uint BaseOffset;

    /// <summary>Payload size in bytes (offset 16).</summary>
    public ulong Size;

    /// <summary>Payload destructor, or null (offset 24): called as <c>dtor(payload, ctx)</c> when the last strong reference goes.</summary>
    public delegate* unmanaged<void*, void*, void> Destructor;

    /// <summary>Context passed to <see cref="Destructor"/> (offset 32).</summary>
    public void* Context;

    /// <summary><see cref="RawArc.FlagDestroyed"/> once the destructor has started; other bits reserved, zero (offset 40).</summary>
    public ulong Flags;
}
