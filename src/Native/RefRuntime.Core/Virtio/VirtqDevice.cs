// The device side of a split virtqueue (docs/virtqueue.md; vhost vhost_get_vq_desc,
// QEMU virtqueue_pop, rust-vmm virtio-queue).
//
// The device reads what the driver made available, walks each chain, and returns used entries.
// The driver is untrusted: every ring index, descriptor field and address comes from memory the
// driver can rewrite at any moment, so each is loaded once, checked, and only then used:
//   * the available index may not run more than N ahead of what was consumed;
//   * a head and every `next` must be in range for the table being walked; a chain may visit at
//     most N descriptors (this catches loops) and carry at most 2^32 − 1 bytes;
//   * readable segments come before writable ones;
//   * INDIRECT only if negotiated, never nested, never with NEXT, a table of a non-zero multiple
//     of 16 bytes (at most 65536 entries);
//   * every buffer and table must lie inside the guest-memory region (GuestMemory.TryTranslate).
// A queue-level violation (an index that jumps, a head out of range) breaks the queue. A chain-
// level violation (bad next, loop, bad address, bad indirect table) consumes the chain and, by
// policy, either breaks the queue (vhost/QEMU: the default) or reports RrStatus.Malformed with
// the head, which the caller returns with a used length of 0 (virtio-gpio rule D2).
//
// The walked chain is kept as translated segments (host pointer, length, writable): the last one
// popped for Gather/Scatter, and every chain the device holds by its head until AddUsed
// (VirtqDeviceChains.cs). Once AddUsed returns a chain its buffers belong to the driver again,
// which may already be reusing them (virtio 1.x §2.7.8: the used ring gives the buffers back), so
// TryGather/TryScatter refuse the last popped chain with RrStatus.NotFound and Segments is empty.
// A queue can also live in a multi-region GuestMemoryMap, configured and started after creation
// (VirtqDeviceState.cs). Not thread-safe: one thread serves a queue.

using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Threading;
using static RefRuntime.Core.Virtio.VirtqLayout;

namespace RefRuntime.Core.Virtio;

/// <summary>What the device does with a malformed chain.</summary>
public enum MalformedChainPolicy
{
    /// <summary>Break the queue (vhost, QEMU).</summary>
    BreakQueue = 0,

    /// <summary>Report <see cref="RrStatus.Malformed"/> with the head; the caller returns it with length 0.</summary>
    ReturnEmpty = 1,
}

/// <summary>A translated buffer of a popped chain.</summary>
/// <param name="host">Host address of its first byte (inside the region).</param>
/// <param name="length">Bytes.</param>
/// <param name="writable">Whether the device may write it.</param>
public readonly unsafe struct VirtqSegment(byte* host, uint length, bool writable)
{
    /// <summary>Host address of the first byte (inside the region).</summary>
    public readonly byte* Host = host;

    /// <summary>Bytes.</summary>
    public readonly uint Length = length;

    /// <summary>Whether the device may write it.</summary>
    public readonly bool Writable = writable;
}

/// <summary>A chain taken from the available ring.</summary>
/// <param name="Head">The head descriptor index (the id to return in the used ring).</param>
/// <param name="Readable">Readable segments (they come first).</param>
/// <param name="Writable">Writable segments.</param>
/// <param name="ReadableBytes">Readable bytes in all.</param>
/// <param name="WritableBytes">Writable bytes in all.</param>
public readonly record struct VirtqChain(ushort Head, int Readable, int Writable, uint ReadableBytes, uint WritableBytes);

/// <summary>The device side of a split virtqueue (see file comment).</summary>
public sealed unsafe partial class VirtqDevice : VirtqSide
{
    // The fields this side writes on every operation, on cache lines of their own (see VirtqDriver.Hot).
    [StructLayout(LayoutKind.Explicit, Size = 192)]
    private struct Hot
    {
        [FieldOffset(64)] public int SegmentCount;
        [FieldOffset(68)] public int CurrentReadable; // segments [0, CurrentReadable) of the current chain are readable, the rest writable
        [FieldOffset(72)] public ushort LastAvail;
        [FieldOffset(74)] public ushort AvailIdxSeen;  // last avail.idx read (and validated); heads before it are published
        [FieldOffset(76)] public ushort NextUsed;
        [FieldOffset(78)] public ushort SignalledUsed;
        [FieldOffset(80)] public long Notifications;
        [FieldOffset(88)] public long NotificationsSuppressed;
        [FieldOffset(96)] public long Malformed;
        [FieldOffset(104)] public int CurrentHead;     // the current chain's head, or NoChain / ChainReturned
    }

    private const int NoChain = -1;       // nothing popped since the last TryPop or Reset: Gather/Scatter move 0 bytes
    private const int ChainReturned = -2; // the current chain went back with AddUsed: Gather/Scatter are refused

    private partial struct HeadState
    {
        public uint Writable; // writable bytes of the chain the device holds
        public bool Held;     // popped, not yet returned
    }

    // Set at creation, or by Start for a queue configured after creation (VirtqDeviceState.cs).
    private int _n;
    private int _mask;
    private VirtqFeatures _features;
    private bool _eventIdx;
    private bool _indirect;
    private readonly MalformedChainPolicy _policy;
    private byte* _desc;
    private byte* _avail;
    private byte* _used;
    private byte* _usedEvent;
    private byte* _availEvent;
    private VirtqSegment[] _segments;
    private HeadState[] _heads;
    private readonly GuestRange _range;

    private Hot _hot;
    private string? _lastMalformed;

    private VirtqDevice(GuestMemory mem, int n, VirtqFeatures features, MalformedChainPolicy policy, byte* desc, byte* avail, byte* used)
        : base(mem)
    {
        _n = n;
        _mask = n - 1;
        _features = features;
        _eventIdx = (features & VirtqFeatures.EventIdx) != 0;
        _indirect = (features & VirtqFeatures.IndirectDesc) != 0;
        _policy = policy;
        _desc = desc;
        _avail = avail;
        _used = used;
        _usedEvent = avail + UsedEventOffset(n);
        _availEvent = used + AvailEventOffset(n);
        _segments = new VirtqSegment[SegmentCapacity(n)];
        _heads = new HeadState[n];
        _range = new GuestRange(mem);
        _hot.CurrentHead = NoChain;
        _memory = mem;
        _maxSize = n;
        _configuredRings = new VirtqRings(n, GpaOf(mem, desc), GpaOf(mem, avail), GpaOf(mem, used));
        _ready = true;
        _live = true;
    }

    /// <summary>Queue size (N).</summary>
    public int Size => _n;

    /// <summary>The negotiated features this side uses.</summary>
    public VirtqFeatures Features => _features;

    /// <summary>Why the last malformed chain was refused (<see cref="MalformedChainPolicy.ReturnEmpty"/>), or null.</summary>
    public string? LastMalformedReason => _lastMalformed;

    /// <summary>Malformed chains seen.</summary>
    public long MalformedCount => _hot.Malformed;

    /// <summary>Notifications <see cref="NotifyPrepare"/> asked for.</summary>
    public long Notifications => _hot.Notifications;

    /// <summary>Notifications <see cref="NotifyPrepare"/> suppressed.</summary>
    public long NotificationsSuppressed => _hot.NotificationsSuppressed;

    /// <summary>
    /// Segments of the chain returned by the last successful <see cref="TryPop"/>: valid until the
    /// next, and empty once <see cref="AddUsed"/> has returned that chain.
    /// </summary>
    public ReadOnlySpan<VirtqSegment> Segments => new(_segments, 0, _hot.SegmentCount);

    /// <summary>
    /// Creates the device side over rings the driver placed at <paramref name="rings"/> (guest
    /// addresses, checked: each part aligned and entirely inside the region).
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.InvalidArgument"/> (with <paramref name="error"/>), or <see cref="RrStatus.BadHandle"/> (region destroyed).</returns>
    public static RrStatus Create(GuestMemory memory, VirtqRings rings, VirtqFeatures features, MalformedChainPolicy policy, out VirtqDevice? device, out string? error)
    {
        ArgumentNullException.ThrowIfNull(memory);
        device = null;
        int n = rings.Size;
        if (!IsValidSize(n))
        {
            error = $"queue size {n} is not a power of two from 1 to {MaxSize}";
            return RrStatus.InvalidArgument;
        }

        if ((rings.DescGpa % DescAlign) != 0 || (rings.AvailGpa % AvailAlign) != 0 || (rings.UsedGpa % UsedAlign) != 0)
        {
            error = "a ring part is misaligned (descriptor table 16, available ring 2, used ring 4)";
            return RrStatus.InvalidArgument;
        }

        if (!memory.TryTranslate(rings.DescGpa, (ulong)DescTableBytes(n), out byte* desc)
            || !memory.TryTranslate(rings.AvailGpa, (ulong)AvailRingBytes(n), out byte* avail)
            || !memory.TryTranslate(rings.UsedGpa, (ulong)UsedRingBytes(n), out byte* used))
        {
            error = "a ring part lies outside the guest-memory region";
            return RrStatus.InvalidArgument;
        }

        if (policy is not (MalformedChainPolicy.BreakQueue or MalformedChainPolicy.ReturnEmpty))
        {
            error = $"unknown malformed-chain policy {(int)policy}";
            return RrStatus.InvalidArgument;
        }

        if (!memory.TryAttach())
        {
            error = "the region was destroyed";
            return RrStatus.BadHandle;
        }

        error = null;
        device = new VirtqDevice(memory, n, features, policy, desc, avail, used);
        return RrStatus.Ok;
    }

    /// <summary>Whether the driver has made a chain available that was not popped yet (cheap poll).</summary>
    public bool HasAvailable => _live && _brokenReason is null && (_hot.LastAvail != _hot.AvailIdxSeen || Le.ReadAcquire16(_avail + RingIdx) != _hot.LastAvail);

    /// <summary>
    /// Takes the next available chain and walks it (see file comment for every check).
    /// </summary>
    /// <param name="chain">The chain; its segments are <see cref="Segments"/>.</param>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NotFound"/> (nothing available);
    /// <see cref="RrStatus.Malformed"/> (policy ReturnEmpty: <paramref name="chain"/>.Head must be
    /// returned with length 0); <see cref="RrStatus.Broken"/>.</returns>
    public RrStatus TryPop(out VirtqChain chain) => _map is null ? TryPopCore(out chain) : TryPopMapped(out chain);

    private RrStatus TryPopCore(out VirtqChain chain)
    {
        chain = default;
        _hot.SegmentCount = 0;
        _hot.CurrentReadable = 0;
        _hot.CurrentHead = NoChain;
        if (_brokenReason is not null || !_live)
        {
            return _brokenReason is not null ? RrStatus.Broken : RrStatus.NotFound;
        }

        // avail.idx is read only once every head seen so far has been taken (one transfer of
        // the driver's line per batch, not per chain).
        if (_hot.LastAvail == _hot.AvailIdxSeen)
        {
            // ORDERING: acquire (barrier A): ring entries and descriptors are read after the
            // index; pairs with the driver's release store of avail.idx.
            ushort availIdx = Le.ReadAcquire16(_avail + RingIdx);
            if (availIdx == _hot.LastAvail)
            {
                return RrStatus.NotFound;
            }

            if ((ushort)(availIdx - _hot.LastAvail) > _n)
            {
                return BreakAvailIndex(availIdx);
            }

            _hot.AvailIdxSeen = availIdx;
            PrefetchDescriptors(availIdx);
        }

        uint head = Le.Read16(_avail + RingEntries + (2 * (_hot.LastAvail & _mask)));
        if (head >= (uint)_n)
        {
            return BreakHead(head, "out of range");
        }

        // SAFETY: head < N (checked above) = _heads.Length.
        ref HeadState hs = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_heads), (nint)head);
        if (hs.Held)
        {
            return BreakHead(head, "is already held by the device");
        }

        _hot.LastAvail++;

        // Fast path: one direct descriptor (no NEXT, no INDIRECT). Its fields are read once
        // here; if the path does not apply, Walk reads and checks the descriptor on its own.
        byte* d = _desc + ((nint)head * DescSize);
        ushort flags = Le.Read16(d + DescFlags);
        if ((flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) == 0)
        {
            ulong addr = Le.Read64(d + DescAddr);
            uint len = Le.Read32(d + DescLen);
            if (TranslateWhole(addr, len, out byte* host))
            {
                bool w = (flags & VRING_DESC_F_WRITE) != 0;
                // SAFETY: _segments has N ≥ 1 entries.
                MemoryMarshal.GetArrayDataReference(_segments) = new VirtqSegment(host, len, w);
                _hot.SegmentCount = 1;
                hs.Held = true;
                hs.Writable = w ? len : 0;
                _hot.CurrentReadable = w ? 0 : 1;
                _hot.CurrentHead = (int)head;
                chain = w ? new VirtqChain((ushort)head, 0, 1, 0, len) : new VirtqChain((ushort)head, 1, 0, len, 0);
                Retain(ref hs, chain);
                return RrStatus.Ok;
            }
        }

        string? malformed = Walk((int)head, out chain);
        if (malformed is null)
        {
            hs.Held = true;
            hs.Writable = chain.WritableBytes;
            _hot.CurrentReadable = chain.Readable;
            _hot.CurrentHead = (int)head;
            Retain(ref hs, chain);
            return RrStatus.Ok;
        }

        return Malformed((int)head, malformed, out chain);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private RrStatus Malformed(int head, string malformed, out VirtqChain chain)
    {
        ref HeadState hs = ref _heads[head];
        chain = default;
        _hot.Malformed++;
        _hot.SegmentCount = 0;
        if (_policy == MalformedChainPolicy.BreakQueue)
        {
            return Break($"chain at head {head}: {malformed}");
        }

        // INVARIANT: a malformed chain is held with no writable bytes: it can only go back with length 0.
        _lastMalformed = $"chain at head {head}: {malformed}";
        hs.Held = true;
        hs.Writable = 0;
        chain = new VirtqChain((ushort)head, 0, 0, 0, 0);
        _hot.CurrentReadable = 0;
        _hot.CurrentHead = head;
        return RrStatus.Malformed;
    }

    /// <summary>
    /// Starts loading the descriptors of the heads just published (up to 32), so their cache
    /// misses overlap instead of being taken one chain at a time. A prefetch never faults and the
    /// head is masked into the table, so an unvalidated ring entry costs nothing here; TryPop
    /// still checks every head it takes.
    /// </summary>
    private void PrefetchDescriptors(ushort availIdx)
    {
        if (!Sse.IsSupported)
        {
            return;
        }

        int count = Math.Min((int)(ushort)(availIdx - _hot.LastAvail), 32);
        ushort slot = _hot.LastAvail;
        for (int k = 0; k < count; k++, slot++)
        {
            uint head = Le.Read16(_avail + RingEntries + (2 * (slot & _mask)));
            // SAFETY: prefetch is a hint: it never faults, and the address is inside the table.
            Sse.Prefetch0(_desc + ((nint)(head & (uint)_mask) * DescSize));
        }
    }

    /// <summary>Copies the current chain's readable bytes into <paramref name="destination"/> (as many as fit).</summary>
    /// <returns>Bytes copied: 0 when no chain is popped, or when it was already returned (see <see cref="TryGather"/>).</returns>
    public int Gather(Span<byte> destination)
    {
        TryGather(destination, out int copied);
        return copied;
    }

    /// <summary>Copies <paramref name="source"/> into the current chain's writable segments (as much as fits).</summary>
    /// <returns>Bytes written: 0 when no chain is popped, or when it was already returned (see <see cref="TryScatter"/>).</returns>
    public int Scatter(ReadOnlySpan<byte> source)
    {
        TryScatter(source, out int written);
        return written;
    }

    /// <summary>
    /// Copies the current chain's readable bytes (the chain the last <see cref="TryPop"/> took)
    /// into <paramref name="destination"/>, as many as fit.
    /// </summary>
    /// <param name="destination">Where the bytes go.</param>
    /// <param name="copied">Bytes copied (0 when no chain is popped).</param>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NotFound"/> when <see cref="AddUsed"/>
    /// already returned the chain: its buffers belong to the driver again, nothing is read.</returns>
    public RrStatus TryGather(Span<byte> destination, out int copied)
    {
        copied = 0;
        if (_hot.CurrentHead == ChainReturned)
        {
            return RrStatus.NotFound;
        }

        for (int k = 0; k < _hot.CurrentReadable && k < _hot.SegmentCount && copied < destination.Length; k++)
        {
            VirtqSegment s = _segments[k];
            int take = (int)Math.Min(s.Length, (uint)(destination.Length - copied));
            // SAFETY: the segment was translated inside the region by Walk; take ≤ its length.
            new ReadOnlySpan<byte>(s.Host, take).CopyTo(destination[copied..]);
            copied += take;
        }

        return RrStatus.Ok;
    }

    /// <summary>Copies <paramref name="source"/> into the current chain's writable segments, as much as fits.</summary>
    /// <param name="source">The bytes to write.</param>
    /// <param name="written">Bytes written (0 when no chain is popped).</param>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NotFound"/> when <see cref="AddUsed"/>
    /// already returned the chain: its buffers belong to the driver again, nothing is written.</returns>
    public RrStatus TryScatter(ReadOnlySpan<byte> source, out int written)
    {
        written = 0;
        if (_hot.CurrentHead == ChainReturned)
        {
            return RrStatus.NotFound;
        }

        for (int k = _hot.CurrentReadable; k < _hot.SegmentCount && written < source.Length; k++)
        {
            VirtqSegment s = _segments[k];
            int take = (int)Math.Min(s.Length, (uint)(source.Length - written));
            // SAFETY: as Gather; the segment is device-writable (checked in Walk).
            source.Slice(written, take).CopyTo(new Span<byte>(s.Host, take));
            written += take;
        }

        return RrStatus.Ok;
    }

    /// <summary>
    /// Writes a used entry for a chain this device holds (visible to the driver at the next
    /// <see cref="PublishUsed"/> / <see cref="NotifyPrepare"/>).
    /// </summary>
    /// <param name="head">The chain's head, as popped.</param>
    /// <param name="length">Bytes written into its writable buffers (at most their total).</param>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> (not a chain this device holds, or length too large); <see cref="RrStatus.Broken"/>.</returns>
    public RrStatus AddUsed(int head, uint length)
    {
        if (_brokenReason is not null)
        {
            return RrStatus.Broken;
        }

        if ((uint)head >= (uint)_n)
        {
            return RrStatus.InvalidArgument;
        }

        // SAFETY: head < N (checked above) = _heads.Length.
        ref HeadState hs = ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_heads), (nint)(uint)head);
        if (!hs.Held || length > hs.Writable)
        {
            return RrStatus.InvalidArgument;
        }

        byte* elem = _used + RingEntries + (UsedElemSize * (_hot.NextUsed & _mask));
        // id and len in one 64-bit store (4-byte aligned; the driver reads the two halves only
        // after the release of used.idx): the line is usually still in the driver's CPU, and a
        // store waiting for it holds one store-buffer entry instead of two.
        Le.Write64(elem, (uint)head | ((ulong)length << 32));
        hs.Held = false;
        Release(ref hs);
        _hot.NextUsed++;
        if (head == _hot.CurrentHead)
        {
            // The driver owns these buffers again: forget their host addresses.
            ReturnCurrent();
        }

        return RrStatus.Ok;
    }

    private void ReturnCurrent()
    {
        _hot.SegmentCount = 0;
        _hot.CurrentReadable = 0;
        _hot.CurrentHead = ChainReturned;
    }

    /// <summary>Makes the used entries written so far visible (one release store of used.idx); no notification decision.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void PublishUsed()
    {
        if (!_ready)
        {
            return;
        }

        // ORDERING: release (barrier B): used entries and the bytes written into the chains are
        // visible before the index; pairs with the driver's acquire load of used.idx.
        Le.WriteRelease16(_used + RingIdx, _hot.NextUsed);
    }

    /// <summary>
    /// Publishes the used entries and decides whether to notify the driver: with EVENT_IDX iff
    /// used_event lies in the entries published since the last decision, otherwise iff the driver
    /// has not set NO_INTERRUPT.
    /// </summary>
    /// <returns>True when the caller should notify the driver.</returns>
    public bool NotifyPrepare()
    {
        if (!_ready)
        {
            return false;
        }

        PublishUsed();
        // ORDERING: full fence (barrier D): used.idx is visible before used_event / flags are
        // read; pairs with the driver's fence after writing used_event (VirtqDriver.EnableCallbacks).
        Interlocked.MemoryBarrier();
        ushort oldIdx = _hot.SignalledUsed;
        ushort newIdx = _hot.NextUsed;
        _hot.SignalledUsed = newIdx;
        if (oldIdx == newIdx)
        {
            return false;
        }

        bool notify = _eventIdx
            ? NeedEvent(Le.Read16(_usedEvent), newIdx, oldIdx)
            : (Le.Read16(_avail + RingFlags) & VRING_AVAIL_F_NO_INTERRUPT) == 0;
        if (notify)
        {
            _hot.Notifications++;
        }
        else
        {
            _hot.NotificationsSuppressed++;
        }

        return notify;
    }

    /// <summary>
    /// Asks the driver to kick again when it adds chains (EVENT_IDX: avail_event := the next
    /// index to consume; otherwise clears NO_NOTIFY).
    /// </summary>
    /// <returns>True when chains are already available: pop them before sleeping.</returns>
    public bool EnableNotifications()
    {
        if (!_ready)
        {
            return false;
        }

        if (_eventIdx)
        {
            Le.Write16(_availEvent, _hot.LastAvail);
        }
        else
        {
            Le.Write16(_used + RingFlags, 0);
        }

        // ORDERING: full fence (barrier C): the request is visible before avail.idx is re-read;
        // pairs with the driver's fence in VirtqDriver.KickPrepare.
        Interlocked.MemoryBarrier();
        return HasAvailable;
    }

    /// <summary>Asks the driver not to kick (polling): sets NO_NOTIFY without EVENT_IDX; with it, avail_event is no longer advanced.</summary>
    public void DisableNotifications()
    {
        if (_ready && !_eventIdx)
        {
            Le.Write16(_used + RingFlags, VRING_USED_F_NO_NOTIFY);
        }
    }

    /// <summary>Forgets every index and held chain, and clears the broken state (pair with the driver's Reset).</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.BadHandle"/> after <see cref="VirtqSide.Destroy"/>.</returns>
    public RrStatus Reset()
    {
        if (IsDestroyed)
        {
            return RrStatus.BadHandle;
        }

        ReleaseAll();
        Array.Clear(_heads);
        _hot.SegmentCount = 0;
        _hot.CurrentReadable = 0;
        _hot.CurrentHead = NoChain;
        _hot.LastAvail = 0;
        _hot.AvailIdxSeen = 0;
        _hot.NextUsed = 0;
        _hot.SignalledUsed = 0;
        _brokenReason = null;
        _lastMalformed = null;
        return RrStatus.Ok;
    }

    private protected override RrStatus Break(string reason)
    {
        _hot.SegmentCount = 0;
        return base.Break(reason);
    }

    // The messages are built out of line: string interpolation inlined into TryPop would give
    // the hot path a large zero-initialised frame.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private RrStatus BreakAvailIndex(ushort availIdx) =>
        Break($"driver moved the available index from {_hot.LastAvail} to {availIdx} (more than N = {_n} ahead)");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private RrStatus BreakHead(uint head, string what) => Break($"available head {head} {what} (N = {_n})");

    /// <summary>Walks the chain at <paramref name="head"/> into <c>_segments</c>; null on success, else what was wrong.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private string? Walk(int head, out VirtqChain chain)
    {
        chain = default;
        byte* table = _desc;
        int tableSize = _n;
        bool inIndirect = false;
        int index = head;
        int readable = 0;
        int writable = 0;
        ulong readableBytes = 0;
        ulong writableBytes = 0;
        // At most ChainLimit segments, plus the one descriptor that points to an indirect table.
        int limit = ChainLimit;
        for (int steps = 0; ; steps++)
        {
            if (steps > limit)
            {
                return TooLong(limit);
            }

            byte* d = table + ((nint)index * DescSize);
            // Each field once: the driver may rewrite the descriptor while we look at it.
            ulong addr = Le.Read64(d + DescAddr);
            uint len = Le.Read32(d + DescLen);
            ushort flags = Le.Read16(d + DescFlags);
            ushort next = Le.Read16(d + DescNext);

            if ((flags & VRING_DESC_F_INDIRECT) != 0)
            {
                if (!_indirect)
                {
                    return "INDIRECT descriptor without VIRTIO_F_INDIRECT_DESC";
                }

                if (inIndirect)
                {
                    return "INDIRECT descriptor inside an indirect table";
                }

                if ((flags & VRING_DESC_F_NEXT) != 0)
                {
                    return "INDIRECT and NEXT on the same descriptor";
                }

                if (len == 0 || (len % DescSize) != 0 || len / DescSize > MaxIndirectEntries)
                {
                    return $"indirect table of {len} bytes (must be a non-zero multiple of 16, at most {MaxIndirectEntries} entries)";
                }

                if ((addr % DescAlign) != 0 || !TranslateWhole(addr, len, out byte* t))
                {
                    return $"indirect table [0x{addr:x}, +{len}) outside the region or misaligned";
                }

                // The WRITE flag of the pointing descriptor is ignored (spec).
                table = t;
                tableSize = (int)(len / DescSize);
                inIndirect = true;
                index = 0;
                continue;
            }

            bool isWritable = (flags & VRING_DESC_F_WRITE) != 0;
            if (!isWritable && writable > 0)
            {
                return "a readable descriptor after a writable one";
            }

            if (readable + writable >= limit)
            {
                return TooLong(limit);
            }

            // One segment, or (in a GuestMemoryMap) one per region the buffer crosses.
            int added = AddSegments(addr, len, isWritable, readable + writable);
            if (added <= 0)
            {
                return added == 0
                    ? $"buffer [0x{addr:x}, +{len}) outside the region"
                    : $"buffer [0x{addr:x}, +{len}) crosses regions into more than {limit} segments (N = {_n})";
            }

            if (isWritable)
            {
                writable += added;
                writableBytes += len;
            }
            else
            {
                readable += added;
                readableBytes += len;
            }

            if (readableBytes + writableBytes > uint.MaxValue)
            {
                return "chain longer than 4 GiB";
            }

            if ((flags & VRING_DESC_F_NEXT) == 0)
            {
                break;
            }

            if (next >= tableSize)
            {
                return $"next index {next} out of range ({tableSize} descriptors)";
            }

            index = next;
        }

        _hot.SegmentCount = readable + writable;
        chain = new VirtqChain((ushort)head, readable, writable, (uint)readableBytes, (uint)writableBytes);
        Debug.Assert(_hot.SegmentCount <= limit);
        return null;
    }

    /// <summary>
    /// The most segments a chain may have: N, or with INDIRECT_DESC at least
    /// <see cref="VirtqLayout.MaxIndirectChain"/> (a direct chain cannot exceed N without a loop).
    /// </summary>
    private int ChainLimit => _indirect ? Math.Max(_n, MaxIndirectChain) : _n;

    /// <summary>Segment storage for a queue of <paramref name="n"/> whatever the features: see <see cref="ChainLimit"/>.</summary>
    private static int SegmentCapacity(int n) => Math.Max(n, MaxIndirectChain);

    private string TooLong(int limit) => limit == _n
        ? $"more than N = {_n} descriptors (a loop, or a chain longer than the queue)"
        : $"more than {limit} descriptors (a loop, or a chain longer than an indirect table may make it; N = {_n})";
}
