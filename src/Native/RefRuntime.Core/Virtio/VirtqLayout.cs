// The split virtqueue's memory layout (virtio 1.2 §2.7 "Split Virtqueues"; docs/virtqueue.md):
// three parts in guest memory, every field little-endian.
//
//   descriptor table  16·N bytes, align 16   { le64 addr; le32 len; le16 flags; le16 next } × N
//   available ring    6 + 2·N,    align 2    le16 flags; le16 idx; le16 ring[N]; le16 used_event
//   used ring         6 + 8·N,    align 4    le16 flags; le16 idx; {le32 id; le32 len}[N]; le16 avail_event
//
// RefRuntime places the parts of one queue in one carve of guest memory: the descriptor table at
// 0, the available ring right after it, and the used ring on the next 64-byte boundary, so the
// driver-written and device-written indices never share a cache line. The legacy single-region
// formula (used ring at the "Queue Align" boundary) is here too, for hosts that need it.
//
// Every shared field is read through Le (one load each, converted from little-endian) so a value
// the peer may change is fetched once and then checked, never fetched again (no double fetch).

using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Threading;

namespace RefRuntime.Core.Virtio;

/// <summary>Feature bits that change the ring's behaviour (virtio feature bit numbers).</summary>
[Flags]
public enum VirtqFeatures : ulong
{
    /// <summary>Neither.</summary>
    None = 0,

    /// <summary><c>VIRTIO_F_INDIRECT_DESC</c> (bit 28): a descriptor may point to a table of descriptors.</summary>
    IndirectDesc = 1UL << 28,

    /// <summary><c>VIRTIO_F_EVENT_IDX</c> (bit 29): notifications are suppressed with used_event / avail_event.</summary>
    EventIdx = 1UL << 29,
}

/// <summary>Spec constants and the offsets of every field of a split ring of N entries.</summary>
public static class VirtqLayout
{
    /// <summary><c>VRING_DESC_F_NEXT</c>: the chain continues at <c>next</c>.</summary>
    public const ushort VRING_DESC_F_NEXT = 1;

    /// <summary><c>VRING_DESC_F_WRITE</c>: the buffer is device-writable.</summary>
    public const ushort VRING_DESC_F_WRITE = 2;

    /// <summary><c>VRING_DESC_F_INDIRECT</c>: the buffer is a table of descriptors.</summary>
    public const ushort VRING_DESC_F_INDIRECT = 4;

    /// <summary><c>VRING_AVAIL_F_NO_INTERRUPT</c>: the driver asks not to be notified (no EVENT_IDX).</summary>
    public const ushort VRING_AVAIL_F_NO_INTERRUPT = 1;

    /// <summary><c>VRING_USED_F_NO_NOTIFY</c>: the device asks not to be kicked (no EVENT_IDX).</summary>
    public const ushort VRING_USED_F_NO_NOTIFY = 1;

    /// <summary>The largest queue size (2^15).</summary>
    public const int MaxSize = 32768;

    /// <summary>The most entries an indirect table may hold (vhost/QEMU limit).</summary>
    public const int MaxIndirectEntries = 65536;

    /// <summary>
    /// The longest chain a device accepts through an indirect table when the queue is smaller
    /// (QEMU's VIRTQUEUE_MAX_SIZE, Linux's IOV_MAX). The spec asks drivers to keep a chain within
    /// the queue size, but Linux's virtio_blk sizes its requests by the device's seg_max, which a
    /// vhost-user back-end must announce before it learns the ring size: QEMU's own device code
    /// accepts such chains, and so does ours.
    /// </summary>
    public const int MaxIndirectChain = 1024;

    /// <summary>Bytes per descriptor.</summary>
    public const int DescSize = 16;

    /// <summary>Bytes per used-ring element.</summary>
    public const int UsedElemSize = 8;

    /// <summary>Alignment of the descriptor table (<c>VRING_DESC_ALIGN_SIZE</c>).</summary>
    public const int DescAlign = 16;

    /// <summary>Alignment of the available ring (<c>VRING_AVAIL_ALIGN_SIZE</c>).</summary>
    public const int AvailAlign = 2;

    /// <summary>Alignment of the used ring (<c>VRING_USED_ALIGN_SIZE</c>).</summary>
    public const int UsedAlign = 4;

    /// <summary>Offset of a descriptor's <c>addr</c>.</summary>
    public const int DescAddr = 0;

    /// <summary>Offset of a descriptor's <c>len</c>.</summary>
    public const int DescLen = 8;

    /// <summary>Offset of a descriptor's <c>flags</c>.</summary>
    public const int DescFlags = 12;

    /// <summary>Offset of a descriptor's <c>next</c>.</summary>
    public const int DescNext = 14;

    /// <summary>Offset of <c>flags</c> in either ring.</summary>
    public const int RingFlags = 0;

    /// <summary>Offset of <c>idx</c> in either ring.</summary>
    public const int RingIdx = 2;

    /// <summary>Offset of <c>ring[0]</c> in either ring.</summary>
    public const int RingEntries = 4;

    /// <summary>Whether <paramref name="n"/> is a legal queue size: a power of two from 1 to 32768.</summary>
    public static bool IsValidSize(int n) => n > 0 && n <= MaxSize && (n & (n - 1)) == 0;

    /// <summary>Descriptor table bytes: 16·N.</summary>
    public static int DescTableBytes(int n) => DescSize * n;

    /// <summary>Available ring bytes: 2·(3 + N) (flags, idx, ring[N], used_event).</summary>
    public static int AvailRingBytes(int n) => 2 * (3 + n);

    /// <summary>Used ring bytes: 2·3 + 8·N (flags, idx, ring[N], avail_event).</summary>
    public static int UsedRingBytes(int n) => (2 * 3) + (UsedElemSize * n);

    /// <summary>Offset of <c>used_event</c> in the available ring: 4 + 2·N.</summary>
    public static int UsedEventOffset(int n) => RingEntries + (2 * n);

    /// <summary>Offset of <c>avail_event</c> in the used ring: 4 + 8·N.</summary>
    public static int AvailEventOffset(int n) => RingEntries + (UsedElemSize * n);

    /// <summary>Offset of the available ring in RefRuntime's one-carve layout (right after the table).</summary>
    public static int AvailOffset(int n) => DescTableBytes(n);

    /// <summary>Offset of the used ring in RefRuntime's one-carve layout (next 64-byte boundary).</summary>
    public static int UsedOffset(int n) => AlignUp(AvailOffset(n) + AvailRingBytes(n), 64);

    /// <summary>Bytes of RefRuntime's one-carve layout.</summary>
    public static int TotalBytes(int n) => UsedOffset(n) + UsedRingBytes(n);

    /// <summary>Legacy layout: the used ring's offset, round_up(16·N + 2·(3 + N), align).</summary>
    public static int LegacyUsedOffset(int n, int align) => AlignUp(DescTableBytes(n) + AvailRingBytes(n), align);

    /// <summary>Legacy layout: total bytes (Linux <c>vring_size</c>).</summary>
    public static int LegacyTotalBytes(int n, int align) => LegacyUsedOffset(n, align) + UsedRingBytes(n);

    /// <summary>
    /// The event-index test (<c>vring_need_event</c>): true iff <paramref name="eventIdx"/> lies in
    /// the half-open window [<paramref name="oldIdx"/>, <paramref name="newIdx"/>) of the 16-bit
    /// index space, i.e. the peer asked to be notified when the index moved past eventIdx and this
    /// batch moved it past. Correct across the 65535 → 0 wrap.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool NeedEvent(ushort eventIdx, ushort newIdx, ushort oldIdx) =>
        (ushort)(newIdx - eventIdx - 1) < (ushort)(newIdx - oldIdx);

    internal static int AlignUp(int value, int align) => (value + align - 1) & -align;
}

/// <summary>Little-endian loads and stores of shared ring fields, each one access.</summary>
internal static unsafe class Le
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Read16(byte* p) =>
        // SAFETY: callers pass a pointer inside a translated guest-memory range.
        BitConverter.IsLittleEndian ? *(ushort*)p : BinaryPrimitives.ReverseEndianness(*(ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Read32(byte* p) =>
        // SAFETY: as Read16.
        BitConverter.IsLittleEndian ? *(uint*)p : BinaryPrimitives.ReverseEndianness(*(uint*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Read64(byte* p) =>
        // SAFETY: as Read16.
        BitConverter.IsLittleEndian ? *(ulong*)p : BinaryPrimitives.ReverseEndianness(*(ulong*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write16(byte* p, ushort v) =>
        // SAFETY: as Read16.
        *(ushort*)p = BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write32(byte* p, uint v) =>
        // SAFETY: as Read16.
        *(uint*)p = BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Write64(byte* p, ulong v) =>
        // SAFETY: as Read16.
        *(ulong*)p = BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    /// <summary>Acquire load of a ring index: later loads of ring entries cannot move before it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ReadAcquire16(byte* p)
    {
        // SAFETY: as Read16; ring indices are 2-byte aligned (part alignment ≥ 2), so the load is atomic.
        ushort v = Volatile.Read(ref *(ushort*)p);
        return BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
    }

    /// <summary>Release store of a ring index: earlier stores (entries, buffers) are visible first.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteRelease16(byte* p, ushort v)
    {
        // SAFETY: as ReadAcquire16.
        Volatile.Write(ref *(ushort*)p, BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v));
    }
}
