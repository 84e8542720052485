// The driver side of a split virtqueue (docs/virtqueue.md; Linux drivers/virtio/virtio_ring.c).
//
// The driver owns the descriptor table and the available ring; the device owns the used ring.
// Adding a chain takes descriptors from a free list, fills them (readable segments first, then
// writable), and writes the head into the next available slot; Publish makes the staged heads
// visible with one release store of avail.idx (so a batch costs one index store), and
// KickPrepare adds the full fence and the notification decision (EVENT_IDX: vring_need_event
// against avail_event; otherwise the device's NO_NOTIFY flag).
//
// The device is untrusted. Everything needed to reclaim a chain — its length in descriptors, the
// links between them, the writable byte total, the caller's token, whether it is in flight — is
// kept in private memory (_state) and never read back from the shared table (the lesson of the
// 2021 "untrusted device" series). Every used entry is checked before it is believed: the used
// index may not move past what is in flight, the id must be < N and a head in flight, and the
// length may not exceed the chain's writable bytes. Any failure marks the queue broken: every
// later call answers Broken until Reset.
//
// Not thread-safe: one thread (or a caller-held lock) drives a queue's driver side, as in Linux.

using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Threading;
using static RefRuntime.Core.Virtio.VirtqLayout;

namespace RefRuntime.Core.Virtio;

/// <summary>One buffer of a chain: a guest-physical address and a length.</summary>
/// <param name="Gpa">Guest-physical address of the first byte.</param>
/// <param name="Length">Bytes.</param>
public readonly record struct VirtqBuffer(ulong Gpa, uint Length);

/// <summary>The addresses of a queue's three parts, as the driver tells the device.</summary>
/// <param name="Size">Entries (N).</param>
/// <param name="DescGpa">Descriptor table.</param>
/// <param name="AvailGpa">Available ring.</param>
/// <param name="UsedGpa">Used ring.</param>
public readonly record struct VirtqRings(int Size, ulong DescGpa, ulong AvailGpa, ulong UsedGpa);

/// <summary>The driver side of a split virtqueue (see file comment).</summary>
/// <remarks><b>Invariants:</b> the free list (<c>_hot.FreeHead</c>, <c>_state[i].Next</c>) holds exactly
/// <c>_hot.NumFree</c> descriptors; every descriptor is either free or part of exactly one chain in
/// flight; <c>_hot.InFlight</c> counts heads with <c>InFlight</c> set.</remarks>
public sealed unsafe class VirtqDriver : VirtqSide
{
    // The fields this side writes on every operation, on cache lines of their own (64 bytes of
    // padding on each side, inside this object): the driver's and the device's objects can be
    // neighbours on the GC heap, and a shared line would cost a cross-CPU transfer per operation.
    [StructLayout(LayoutKind.Explicit, Size = 192)]
    private struct Hot
    {
        [FieldOffset(64)] public int FreeHead;
        [FieldOffset(68)] public int NumFree;
        [FieldOffset(72)] public int InFlight;
        [FieldOffset(76)] public int NumAdded;
        [FieldOffset(80)] public ushort AvailShadow;
        [FieldOffset(82)] public ushort LastUsed;
        [FieldOffset(84)] public ushort UsedIdxSeen; // last used.idx read (and validated); entries before it are published
        [FieldOffset(86)] public bool CallbacksOff;
        [FieldOffset(88)] public long Kicks;
        [FieldOffset(96)] public long KicksSuppressed;
        [FieldOffset(104)] public int FreeTail; // last free descriptor: returned chains go to the back (FIFO)
    }

    private struct DescState
    {
        public ulong Token;
        public uint Writable;     // total device-writable bytes of the chain (head only)
        public ushort Next;       // free-list / chain link: private, never read from shared memory
        public ushort Count;      // main-table descriptors the chain uses (head only)
        public bool InFlight;     // head of a chain the device owns
    }

    private readonly int _n;
    private readonly int _mask;
    private readonly VirtqFeatures _features;
    private readonly bool _eventIdx;
    private readonly byte* _desc;
    private readonly byte* _avail;
    private readonly byte* _used;
    private readonly byte* _usedEvent;
    private readonly byte* _availEvent;
    private readonly VirtqRings _rings;
    private readonly int _indirectMax;
    private readonly byte* _indirect;
    private readonly ulong _indirectGpa;
    private readonly DescState[] _state;
    private readonly GuestRange _range;

    private Hot _hot;

    private VirtqDriver(GuestMemory mem, int n, VirtqFeatures features, ulong ringGpa, int indirectMax, ulong indirectGpa)
        : base(mem)
    {
        _n = n;
        _mask = n - 1;
        _features = features;
        _eventIdx = (features & VirtqFeatures.EventIdx) != 0;
        _rings = new VirtqRings(n, ringGpa, ringGpa + (ulong)AvailOffset(n), ringGpa + (ulong)UsedOffset(n));
        bool ok = mem.TryTranslate(ringGpa, (ulong)TotalBytes(n), out byte* ring);
        Debug.Assert(ok, "the ring was carved from this region");
        _desc = ring;
        _avail = ring + AvailOffset(n);
        _used = ring + UsedOffset(n);
        _usedEvent = _avail + UsedEventOffset(n);
        _availEvent = _used + AvailEventOffset(n);
        _indirectMax = indirectMax;
        _indirectGpa = indirectGpa;
        if (indirectMax > 0)
        {
            ok = mem.TryTranslate(indirectGpa, (ulong)n * (ulong)indirectMax * DescSize, out _indirect);
            Debug.Assert(ok, "the indirect tables were carved from this region");
        }

        _state = new DescState[n];
        _range = new GuestRange(mem);
        InitFreeList();
    }

    /// <summary>Queue size (N).</summary>
    public int Size => _n;

    /// <summary>The negotiated features this side uses.</summary>
    public VirtqFeatures Features => _features;

    /// <summary>Where the three parts are (give these to the device).</summary>
    public VirtqRings Rings => _rings;

    /// <summary>Free descriptors.</summary>
    public int FreeCount => _hot.NumFree;

    /// <summary>Chains the device holds (added, not yet reclaimed).</summary>
    public int InFlight => _hot.InFlight;

    /// <summary>Kicks <see cref="KickPrepare"/> asked for.</summary>
    public long Kicks => _hot.Kicks;

    /// <summary>Kicks <see cref="KickPrepare"/> suppressed (the device said it does not need them).</summary>
    public long KicksSuppressed => _hot.KicksSuppressed;

    /// <summary>
    /// Creates a driver-side queue of <paramref name="size"/> entries in <paramref name="memory"/>,
    /// carving the ring (and, with <paramref name="indirectMax"/> &gt; 0 and INDIRECT_DESC, one
    /// indirect table of that many entries per descriptor) from the region.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> (size not a power of two up to 32768, indirectMax out of 0..N or given without INDIRECT_DESC); <see cref="RrStatus.NoSpace"/> (region too small); <see cref="RrStatus.BadHandle"/> (region destroyed).</returns>
    public static RrStatus Create(GuestMemory memory, int size, VirtqFeatures features, int indirectMax, out VirtqDriver? driver, out string? error)
    {
        ArgumentNullException.ThrowIfNull(memory);
        driver = null;
        error = null;
        if (!IsValidSize(size))
        {
            error = $"queue size {size} is not a power of two from 1 to {MaxSize}";
            return RrStatus.InvalidArgument;
        }

        if (indirectMax < 0 || indirectMax > size || (indirectMax > 0 && (features & VirtqFeatures.IndirectDesc) == 0))
        {
            error = $"indirect tables of {indirectMax} entries need INDIRECT_DESC and at most N = {size} entries";
            return RrStatus.InvalidArgument;
        }

        RrStatus s = memory.TryCarve((ulong)TotalBytes(size), 64, out ulong ringGpa);
        ulong indirectGpa = 0;
        if (s == RrStatus.Ok && indirectMax > 0)
        {
            s = memory.TryCarve((ulong)size * (ulong)indirectMax * DescSize, DescAlign, out indirectGpa);
        }

        if (s != RrStatus.Ok)
        {
            error = $"the region has no room for a {size}-entry queue";
            return s;
        }

        if (!memory.TryAttach())
        {
            error = "the region was destroyed";
            return RrStatus.BadHandle;
        }

        driver = new VirtqDriver(memory, size, features, ringGpa, indirectMax, indirectGpa);
        return RrStatus.Ok;
    }

    /// <summary>
    /// Stages one chain: <paramref name="buffers"/>[0..<paramref name="readable"/>) device-readable,
    /// the rest device-writable. It becomes visible to the device at the next
    /// <see cref="Publish"/> / <see cref="KickPrepare"/>.
    /// </summary>
    /// <param name="buffers">1 to N buffers, each inside the region; 2^32 bytes in all at most.</param>
    /// <param name="readable">How many of them come first and are device-readable.</param>
    /// <param name="token">Handed back by <see cref="TryGetUsed"/> when the device returns the chain.</param>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NoSpace"/> (too few free descriptors); <see cref="RrStatus.InvalidArgument"/> (empty, longer than N, a buffer outside the region, over 4 GiB); <see cref="RrStatus.Broken"/>.</returns>
    public RrStatus TryAdd(ReadOnlySpan<VirtqBuffer> buffers, int readable, ulong token)
    {
        if (_brokenReason is not null)
        {
            return RrStatus.Broken;
        }

        int count = buffers.Length;
        if (count == 0 || count > _n || (uint)readable > (uint)count)
        {
            return RrStatus.InvalidArgument;
        }

        ulong total = 0;
        uint writable = 0;
        for (int k = 0; k < count; k++)
        {
            VirtqBuffer b = buffers[k];
            if (!_range.TryTranslate(b.Gpa, b.Length, out _))
            {
                return RrStatus.InvalidArgument; // outside the region
            }

            total += b.Length;
            if (k >= readable)
            {
                writable += b.Length; // cannot overflow: total ≤ 2^32 − 1 is checked below
            }
        }

        if (total > uint.MaxValue)
        {
            return RrStatus.InvalidArgument;
        }

        bool indirect = _indirectMax > 0 && count > 1 && count <= _indirectMax;
        int needed = indirect ? 1 : count;
        if (_hot.NumFree < needed)
        {
            return RrStatus.NoSpace;
        }

        int head = _hot.FreeHead;
        if (indirect)
        {
            WriteIndirect(head, buffers, readable);
        }
        else if (count == 1)
        {
            // One buffer (the most common chain in a polling benchmark, a rarity in a device
            // protocol): no link to follow.
            WriteDescIfChanged(_desc + (head * DescSize), buffers[0], readable == 0 ? VRING_DESC_F_WRITE : (ushort)0, 0);
            _hot.FreeHead = State(head).Next;
            State(head).Count = 1;
        }
        else
        {
            int i = head;
            for (int k = 0; k < count; k++)
            {
                bool last = k + 1 == count;
                ushort flags = (ushort)((last ? 0 : VRING_DESC_F_NEXT) | (k >= readable ? VRING_DESC_F_WRITE : 0));
                // The shared next mirrors the private link; only the private one is ever followed.
                ushort next = State(i).Next;
                WriteDescIfChanged(_desc + (i * DescSize), buffers[k], flags, last ? (ushort)0 : next);
                if (!last)
                {
                    i = next;
                }
            }

            _hot.FreeHead = State(i).Next;
            State(head).Count = (ushort)count;
        }

        _hot.NumFree -= needed;
        // INVARIANT: the head is in flight with its private metadata set before the device can see it.
        ref DescState hs = ref State(head);
        hs.Token = token;
        hs.Writable = writable;
        hs.InFlight = true;
        _hot.InFlight++;

        Le.Write16(_avail + RingEntries + (2 * (_hot.AvailShadow & _mask)), (ushort)head);
        _hot.AvailShadow++;
        _hot.NumAdded++;
        return RrStatus.Ok;
    }

    /// <summary>Makes every staged chain visible to the device (one release store of avail.idx). No fence, no notification decision: for polling devices.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Publish()
    {
        // ORDERING: release (barrier A): the descriptors and ring entries written by TryAdd are
        // visible before the index; pairs with the device's acquire load of avail.idx.
        Le.WriteRelease16(_avail + RingIdx, _hot.AvailShadow);
    }

    /// <summary>
    /// Publishes the staged chains and decides whether the device must be notified (Linux
    /// <c>virtqueue_kick_prepare</c>): with EVENT_IDX iff avail_event lies in the batch just
    /// published, otherwise iff the device has not set NO_NOTIFY.
    /// </summary>
    /// <returns>True when the caller should notify the device.</returns>
    public bool KickPrepare()
    {
        Publish();
        // ORDERING: full fence (barrier C): the avail.idx store is visible before we read the
        // device's avail_event / flags. Pairs with the fence in VirtqDevice.EnableNotifications
        // (store avail_event, fence, re-read avail.idx): one of the two sides sees the other.
        Interlocked.MemoryBarrier();
        ushort newIdx = _hot.AvailShadow;
        ushort oldIdx = (ushort)(newIdx - _hot.NumAdded);
        // A window of 65535 or more heads (many Publish calls without a kick) has passed every
        // event index the device could have set: notify, as Linux does at num_added == 65535.
        bool wholeSpace = _hot.NumAdded >= ushort.MaxValue;
        _hot.NumAdded = 0;
        bool kick = _eventIdx
            ? wholeSpace || NeedEvent(Le.Read16(_availEvent), newIdx, oldIdx)
            : (Le.Read16(_used + RingFlags) & VRING_USED_F_NO_NOTIFY) == 0;
        if (kick)
        {
            _hot.Kicks++;
        }
        else
        {
            _hot.KicksSuppressed++;
        }

        return kick;
    }

    /// <summary>Whether the device has returned a chain not yet collected (cheap poll).</summary>
    public bool HasUsed => _brokenReason is null && (_hot.LastUsed != _hot.UsedIdxSeen || Le.ReadAcquire16(_used + RingIdx) != _hot.LastUsed);

    /// <summary>
    /// Collects the next used chain, validating the device's entry (see file comment), and returns
    /// its descriptors to the free list.
    /// </summary>
    /// <param name="token">The chain's token.</param>
    /// <param name="length">Bytes the device says it wrote (≤ the chain's writable bytes).</param>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.NotFound"/> (nothing used), or <see cref="RrStatus.Broken"/> (this entry, or an earlier one, broke the protocol).</returns>
    public RrStatus TryGetUsed(out ulong token, out uint length)
    {
        token = 0;
        length = 0;
        if (_brokenReason is not null)
        {
            return RrStatus.Broken;
        }

        // used.idx is read only when every entry seen so far has been collected: the line it
        // lives on is written by the device, and re-reading it per entry would pull it across
        // CPUs once per buffer instead of once per batch.
        if (_hot.LastUsed == _hot.UsedIdxSeen)
        {
            // ORDERING: acquire (barrier B): the entries and the written buffers are read after
            // the index; pairs with the device's release store of used.idx.
            ushort usedIdx = Le.ReadAcquire16(_used + RingIdx);
            if (usedIdx == _hot.LastUsed)
            {
                return RrStatus.NotFound;
            }

            int pending = (ushort)(usedIdx - _hot.LastUsed);
            if (pending > _hot.InFlight)
            {
                return BreakUsedIndex(usedIdx);
            }

            // INVARIANT: entries [_hot.LastUsed, _hot.UsedIdxSeen) are published, and there are at most
            // _hot.InFlight of them; each one collected lowers both by one.
            _hot.UsedIdxSeen = usedIdx;
            PrefetchUsed(pending);
        }

        byte* elem = _used + RingEntries + (UsedElemSize * (_hot.LastUsed & _mask));
        uint id = Le.Read32(elem);
        uint len = Le.Read32(elem + 4);
        if (id >= (uint)_n)
        {
            return BreakUsed(id, len, "out of range");
        }

        ref DescState head = ref State((int)id); // id < N checked just above
        if (!head.InFlight)
        {
            return BreakUsed(id, len, "is not a head in flight");
        }

        if (len > head.Writable)
        {
            return BreakUsedLength(id, len, head.Writable);
        }

        token = head.Token;
        length = len;
        Detach((int)id);
        _hot.LastUsed++;
        if (!_hot.CallbacksOff && _eventIdx)
        {
            // Ask for the next notification as soon as the device uses one more chain.
            Le.Write16(_usedEvent, _hot.LastUsed);
            // ORDERING: full fence (barrier D, Linux virtio_store_mb): used_event is visible
            // before the caller's next look at used.idx.
            Interlocked.MemoryBarrier();
        }

        return RrStatus.Ok;
    }

    /// <summary>
    /// Starts loading the used entries just published (up to 32, 8 to a cache line), so the
    /// misses on lines the device's CPU wrote overlap instead of being taken one per entry
    /// collected (measured: the load of the entry was 62 % of TryGetUsed at batch 32). A prefetch
    /// never faults; the slots are masked into the ring.
    /// </summary>
    private void PrefetchUsed(int pending)
    {
        if (!Sse.IsSupported || pending <= 1)
        {
            return;
        }

        int count = Math.Min(pending, 32);
        for (int k = 0; k < count; k += 8)
        {
            // SAFETY: prefetch is a hint: it never faults, and the slot is inside the ring.
            Sse.Prefetch0(_used + RingEntries + (UsedElemSize * ((_hot.LastUsed + k) & _mask)));
        }

        // The last entry's line, when the run does not start on a line boundary.
        Sse.Prefetch0(_used + RingEntries + (UsedElemSize * ((_hot.LastUsed + count - 1) & _mask)));
    }

    /// <summary>
    /// Asks the device for notifications again (Linux <c>enable_cb_prepare</c> + <c>poll</c>).
    /// </summary>
    /// <returns>True when used chains are already waiting: collect them before sleeping.</returns>
    public bool EnableCallbacks()
    {
        _hot.CallbacksOff = false;
        if (_eventIdx)
        {
            Le.Write16(_usedEvent, _hot.LastUsed);
        }
        else
        {
            Le.Write16(_avail + RingFlags, 0);
        }

        // ORDERING: full fence (barrier D): the request is visible before used.idx is re-read;
        // pairs with the device's fence between publishing used.idx and reading used_event.
        Interlocked.MemoryBarrier();
        return HasUsed;
    }

    /// <summary>
    /// Asks the device not to notify (polling). Without EVENT_IDX this sets NO_INTERRUPT; with it,
    /// used_event is simply no longer advanced, so at most one more notification can come.
    /// </summary>
    public void DisableCallbacks()
    {
        _hot.CallbacksOff = true;
        if (!_eventIdx)
        {
            Le.Write16(_avail + RingFlags, VRING_AVAIL_F_NO_INTERRUPT);
        }
    }

    /// <summary>
    /// Reclaims one chain the device still holds (teardown, after the device stopped; Linux
    /// <c>detach_unused_buf</c>).
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/> with its token, or <see cref="RrStatus.NotFound"/> when none is left.</returns>
    public RrStatus TryDetachUnused(out ulong token)
    {
        for (int i = 0; i < _n; i++)
        {
            if (_state[i].InFlight)
            {
                token = _state[i].Token;
                Detach(i);
                return RrStatus.Ok;
            }
        }

        token = 0;
        return RrStatus.NotFound;
    }

    /// <summary>
    /// Returns the ring to its initial state (zeroed table and rings, all descriptors free,
    /// indices 0, not broken). Chains still in flight are abandoned: collect their tokens with
    /// <see cref="TryDetachUnused"/> first. The device side must be reset too before it runs again.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.BadHandle"/> after <see cref="VirtqSide.Destroy"/>.</returns>
    public RrStatus Reset()
    {
        if (IsDestroyed)
        {
            return RrStatus.BadHandle;
        }

        new Span<byte>(_desc, TotalBytes(_n)).Clear();
        Array.Clear(_state);
        InitFreeList();
        _hot.InFlight = 0;
        _hot.AvailShadow = 0;
        _hot.NumAdded = 0;
        _hot.LastUsed = 0;
        _hot.UsedIdxSeen = 0;
        _hot.CallbacksOff = false;
        _brokenReason = null;
        return RrStatus.Ok;
    }

    /// <summary>The private state of descriptor <paramref name="i"/>, without a bounds check.</summary>
    /// <remarks><b>Safety:</b> <paramref name="i"/> &lt; N: a validated used id, or a free-list /
    /// chain link (private, always &lt; N by the type invariant).</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ref DescState State(int i)
    {
        Debug.Assert((uint)i < (uint)_n);
        // SAFETY: the caller's contract: i < N = _state.Length.
        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(_state), (nint)(uint)i);
    }

    // Messages are built out of line: string interpolation inlined into TryGetUsed would give the
    // hot path a large zero-initialised frame.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private RrStatus BreakUsedIndex(ushort usedIdx) =>
        Break($"used index moved from {_hot.LastUsed} to {usedIdx} with {_hot.InFlight} chains in flight");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private RrStatus BreakUsed(uint id, uint len, string what) => Break($"used id {id} (length {len}) {what} (N = {_n})");

    // The message of a length that is too long is formatted here, not at the call: an
    // interpolated string in TryGetUsed gave the hot path a zeroed 48-byte frame and three more
    // saved registers on every call.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private RrStatus BreakUsedLength(uint id, uint len, uint writable) =>
        BreakUsed(id, len, $"has used length {len}, larger than the chain's {writable} writable bytes");

    /// <summary>Writes a chain into <paramref name="head"/>'s private indirect table and points the head's main descriptor at it.</summary>
    private void WriteIndirect(int head, ReadOnlySpan<VirtqBuffer> buffers, int readable)
    {
        int count = buffers.Length;
        byte* table = _indirect + ((nint)head * _indirectMax * DescSize);
        for (int k = 0; k < count; k++)
        {
            ushort flags = (ushort)((k + 1 < count ? VRING_DESC_F_NEXT : 0) | (k >= readable ? VRING_DESC_F_WRITE : 0));
            WriteDesc(table + (k * DescSize), buffers[k], flags, (ushort)(k + 1 < count ? k + 1 : 0));
        }

        ulong tableGpa = _indirectGpa + ((ulong)head * (ulong)_indirectMax * DescSize);
        WriteDesc(_desc + (head * DescSize), new VirtqBuffer(tableGpa, (uint)(count * DescSize)), VRING_DESC_F_INDIRECT, 0);
        _hot.FreeHead = State(head).Next;
        State(head).Count = 1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Detach(int head)
    {
        // Walk the chain by private links only; the shared table may have been rewritten.
        ref DescState hs = ref State(head);
        int count = hs.Count;
        int tail = head;
        for (int k = 1; k < count; k++)
        {
            tail = State(tail).Next;
        }

        // Back of the free list, not the front: descriptors are reused in ring order, so with
        // completions in order the driver writes the table sequentially (the CPU's prefetchers
        // follow it, where a LIFO list wrote it backwards by head) and a chain reuses the slot,
        // and often the very bytes, it had the previous time round (see WriteDescIfChanged).
        if (_hot.NumFree == 0)
        {
            _hot.FreeHead = head;
        }
        else
        {
            State(_hot.FreeTail).Next = (ushort)head;
        }

        _hot.FreeTail = tail;
        _hot.NumFree += count;
        hs.InFlight = false;
        hs.Token = 0;
        _hot.InFlight--;
        Debug.Assert(_hot.NumFree <= _n && _hot.InFlight >= 0);
    }

    private void InitFreeList()
    {
        for (int i = 0; i < _n; i++)
        {
            _state[i].Next = (ushort)((i + 1) & _mask);
        }

        _hot.FreeHead = 0;
        _hot.FreeTail = _n - 1;
        _hot.NumFree = _n;
    }

    /// <summary>
    /// <see cref="WriteDesc"/>, skipped when the descriptor already holds exactly these bytes. The
    /// device has read the table since the driver last wrote it, so a store takes the line back
    /// from the device's CPU (a cross-CPU round trip per line, what bounds the driver at batch 32)
    /// while a load of an unchanged line is a hit. Equivalent to writing: the driver owns a free
    /// descriptor, and only its private links are ever followed.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteDescIfChanged(byte* d, VirtqBuffer b, ushort flags, ushort next)
    {
        // SAFETY: d is inside the carved table (index < N).
        if (Le.Read64(d + DescAddr) != b.Gpa || Le.Read64(d + DescLen) != DescTail(b.Length, flags, next))
        {
            WriteDesc(d, b, flags, next);
        }
    }

    /// <summary>Bytes 8..15 of a descriptor (len, flags, next) as one little-endian 64-bit value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong DescTail(uint length, ushort flags, ushort next) => length | ((ulong)flags << 32) | ((ulong)next << 48);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteDesc(byte* d, VirtqBuffer b, ushort flags, ushort next)
    {
        // Two 64-bit stores, not four: a store to a line the device's CPU holds waits in the
        // store buffer for the line, and fewer stores fill it less.
        // SAFETY: d is inside the carved table (index < N, or < indirectMax in a private table), 16-byte aligned.
        Le.Write64(d + DescAddr, b.Gpa);
        Le.Write64(d + DescLen, DescTail(b.Length, flags, next));
    }
}
