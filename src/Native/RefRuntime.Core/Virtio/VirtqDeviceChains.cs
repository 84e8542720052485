// Chains a device holds (the device side of a split virtqueue, continued; virtio 1.2 §2.7.13
// "Receiving Used Buffers From The Device" seen from the device; the shape of rust-vmm
// virtio-queue's DescriptorChain and of Linux vringh's riov/wiov).
//
// A real back-end keeps many requests in flight and completes them in any order (a block device
// at queue depth 32 answers whichever I/O finishes first; a GPIO eventq buffer waits for an
// interrupt while requests keep flowing). So every popped chain keeps its translated segments,
// addressed by its head, until AddUsed returns it: the segments as bounded spans (zero copy) and
// copying reads and writes at an offset into the readable or writable part. The head is the
// handle - it is what goes back in the used ring - and a head that is not held is refused.
//
// Memory. A chain over a GuestMemoryMap pins every region its buffers lie in (GuestRegion), so
// its spans stay mapped while it is held even if the front-end removes or replaces the region;
// AddUsed, Reset, Stop and Destroy unpin. A buffer that crosses from one region into an adjacent
// one becomes one segment per region; a gap, or a byte outside every region, makes the chain
// malformed. Segment arrays are kept per head and reused; one that grew past
// RetainedSegmentCapacity is dropped at AddUsed so that a driver that once sent a long chain on
// every head does not keep that much memory.

using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using RefRuntime.Core.Rcu;

namespace RefRuntime.Core.Virtio;

public sealed unsafe partial class VirtqDevice
{
    private const int RetainedSegmentCapacity = 16;

    // Auto layout: the fields are split over two declarations (this file and VirtqDevice.cs) and
    // the order does not matter to anyone (the struct never leaves this class).
    [StructLayout(LayoutKind.Auto)]
    private partial struct HeadState
    {
        public VirtqSegment[]? Segments; // the held chain's segments [0, SegmentCount)
        public int SegmentCount;
        public int Readable;             // segments [0, Readable) are device-readable
        public uint ReadableBytes;
        public GuestRegion? Pin;         // map mode: the first region the chain uses
        public GuestRegion[]? MorePins;  // and the others, [0, MorePinCount)
        public int MorePinCount;
    }

    // Regions pinned while the current chain is walked (committed to its head by Retain).
    private GuestRegion[] _scratchPins = new GuestRegion[4];
    private int _scratchPinCount;

    // One-entry translation cache, valid while the map's table is the one it was filled from.
    private GuestRegion[]? _cacheTable;
    private GuestRegion? _cacheRegion;

    /// <summary>Chains popped and not yet returned (including malformed ones awaiting a length-0 return). O(N).</summary>
    public int HeldCount
    {
        get
        {
            int held = 0;
            for (int i = 0; i < _n && i < _heads.Length; i++)
            {
                held += _heads[i].Held ? 1 : 0;
            }

            return held;
        }
    }

    /// <summary>Whether the chain at <paramref name="head"/> is held (popped, not yet returned).</summary>
    public bool IsHeld(int head) => (uint)head < (uint)_n && _heads[head].Held;

    /// <summary>The shape of a held chain.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.InvalidArgument"/> (not held).</returns>
    public RrStatus GetChain(int head, out VirtqChain chain)
    {
        chain = default;
        if (!IsHeld(head))
        {
            return RrStatus.InvalidArgument;
        }

        ref HeadState hs = ref _heads[head];
        chain = new VirtqChain((ushort)head, hs.Readable, hs.SegmentCount - hs.Readable, hs.ReadableBytes, hs.Writable);
        return RrStatus.Ok;
    }

    /// <summary>
    /// The translated segments of a held chain, readable ones first; empty when <paramref name="head"/>
    /// is not held. Each points into guest memory that stays mapped until the chain is returned.
    /// </summary>
    /// <remarks><b>Safety:</b> the host pointers are valid only while the chain is held; copy what you keep.</remarks>
    public ReadOnlySpan<VirtqSegment> GetSegments(int head)
    {
        if (!IsHeld(head))
        {
            return default;
        }

        ref HeadState hs = ref _heads[head];
        return hs.Segments is null ? default : new ReadOnlySpan<VirtqSegment>(hs.Segments, 0, hs.SegmentCount);
    }

    /// <summary>
    /// Copies the readable bytes of held chain <paramref name="head"/> from byte <paramref name="offset"/>
    /// (counted across its readable segments) into <paramref name="destination"/>, as many as fit.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/> (<paramref name="copied"/> may be short at the end of the chain), or <see cref="RrStatus.InvalidArgument"/> (not held, or offset past the readable bytes).</returns>
    public RrStatus ReadChain(int head, uint offset, Span<byte> destination, out int copied)
    {
        copied = 0;
        if (!IsHeld(head))
        {
            return RrStatus.InvalidArgument;
        }

        ref HeadState hs = ref _heads[head];
        if (offset > hs.ReadableBytes)
        {
            return RrStatus.InvalidArgument;
        }

        ulong skip = offset;
        for (int k = 0; k < hs.Readable && copied < destination.Length; k++)
        {
            VirtqSegment s = hs.Segments![k];
            if (skip >= s.Length)
            {
                skip -= s.Length;
                continue;
            }

            int take = (int)Math.Min(s.Length - skip, (ulong)(destination.Length - copied));
            // SAFETY: [skip, skip + take) lies inside the segment, translated inside guest memory at
            // pop; the chain is held, so its regions are pinned (map) or the region is attached.
            new ReadOnlySpan<byte>(s.Host + skip, take).CopyTo(destination[copied..]);
            copied += take;
            skip = 0;
        }

        return RrStatus.Ok;
    }

    /// <summary>
    /// Copies <paramref name="source"/> into the writable bytes of held chain <paramref name="head"/>
    /// from byte <paramref name="offset"/> (counted across its writable segments), as much as fits.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/> (<paramref name="written"/> may be short), or <see cref="RrStatus.InvalidArgument"/> (not held, or offset past the writable bytes).</returns>
    public RrStatus WriteChain(int head, uint offset, ReadOnlySpan<byte> source, out int written)
    {
        written = 0;
        if (!IsHeld(head))
        {
            return RrStatus.InvalidArgument;
        }

        ref HeadState hs = ref _heads[head];
        if (offset > hs.Writable)
        {
            return RrStatus.InvalidArgument;
        }

        ulong skip = offset;
        for (int k = hs.Readable; k < hs.SegmentCount && written < source.Length; k++)
        {
            VirtqSegment s = hs.Segments![k];
            if (skip >= s.Length)
            {
                skip -= s.Length;
                continue;
            }

            int take = (int)Math.Min(s.Length - skip, (ulong)(source.Length - written));
            // SAFETY: as ReadChain; the segment is device-writable (checked at pop).
            source.Slice(written, take).CopyTo(new Span<byte>(s.Host + skip, take));
            written += take;
            skip = 0;
        }

        return RrStatus.Ok;
    }

    // ---- bookkeeping (called from TryPop / AddUsed / Reset in VirtqDevice.cs) -------------------

    /// <summary>Keeps the chain just walked (segments in <c>_segments</c>) under its head.</summary>
    private void Retain(ref HeadState hs, in VirtqChain chain)
    {
        int count = _hot.SegmentCount;
        VirtqSegment[]? segs = hs.Segments;
        if (segs is null || segs.Length < count)
        {
            segs = new VirtqSegment[Math.Max(count, 4)];
            hs.Segments = segs;
        }

        if (count <= 4)
        {
            // A short chain (the common case) is copied element by element: a Memmove call costs
            // more than the copy itself (measured: 12 % of a one-buffer round trip).
            for (int k = 0; k < count; k++)
            {
                segs[k] = _segments[k];
            }
        }
        else
        {
            new ReadOnlySpan<VirtqSegment>(_segments, 0, count).CopyTo(segs);
        }

        hs.SegmentCount = count;
        hs.Readable = chain.Readable;
        hs.ReadableBytes = chain.ReadableBytes;
        if (_scratchPinCount > 0)
        {
            CommitPins(ref hs);
        }
    }

    /// <summary>Forgets a chain's segments and unpins its regions (it was returned or dropped).</summary>
    private static void Release(ref HeadState hs)
    {
        hs.SegmentCount = 0;
        hs.Readable = 0;
        hs.ReadableBytes = 0;
        if (hs.Segments is { Length: > RetainedSegmentCapacity })
        {
            hs.Segments = null;
        }

        if (hs.Pin is not null)
        {
            hs.Pin.Unpin();
            hs.Pin = null;
            for (int i = 0; i < hs.MorePinCount; i++)
            {
                hs.MorePins![i].Unpin();
                hs.MorePins[i] = null!;
            }

            hs.MorePinCount = 0;
        }
    }

    /// <summary>Drops every held chain without returning it (Reset, Stop, Destroy).</summary>
    private void ReleaseAll()
    {
        for (int i = 0; i < _heads.Length; i++)
        {
            ref HeadState hs = ref _heads[i];
            hs.Held = false;
            hs.Writable = 0;
            Release(ref hs);
        }

        DropScratchPins();
    }

    // ---- translation ---------------------------------------------------------------------------

    /// <summary>TryPop over a map: the walk runs inside a read-side section, pinning what it keeps.</summary>
    private RrStatus TryPopMapped(out VirtqChain chain)
    {
        RcuReader* reader = _map!.Rcu.ReadLockRecord();
        try
        {
            return TryPopCore(out chain);
        }
        finally
        {
            // Pins of a chain that was not kept (malformed, broken queue) go back at once.
            if (_scratchPinCount > 0)
            {
                DropScratchPins();
            }

            RawRcuDomain.ReadUnlock(reader);
        }
    }

    /// <summary>Translates [addr, addr + len) that must lie in one region; in a map, pins it for the chain being walked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TranslateWhole(ulong addr, uint len, out byte* host) =>
        _map is null ? _range.TryTranslate(addr, len, out host) : TranslateWholeMapped(addr, len, out host);

    private bool TranslateWholeMapped(ulong addr, uint len, out byte* host)
    {
        GuestRegion? r = MapFind(addr);
        if (r is null || !r.ContainsGpa(addr, len))
        {
            host = null;
            return false;
        }

        PinForChain(r);
        // SAFETY: the offset is inside the region (ContainsGpa above).
        host = r.Host + (addr - r.Gpa);
        return true;
    }

    /// <summary>
    /// Appends the segments of buffer [addr, addr + len) at <c>_segments[index]</c>: one, or in a
    /// map one per adjacent region it crosses. Returns how many (≥ 1), 0 when a byte is outside
    /// every region, −1 when that would pass ChainLimit segments.
    /// </summary>
    private int AddSegments(ulong addr, uint len, bool writable, int index)
    {
        if (_map is null)
        {
            if (!_range.TryTranslate(addr, len, out byte* host))
            {
                return 0;
            }

            _segments[index] = new VirtqSegment(host, len, writable);
            return 1;
        }

        int added = 0;
        ulong left = len;
        do
        {
            GuestRegion? r = MapFind(addr);
            if (r is null)
            {
                return 0;
            }

            ulong off = addr - r.Gpa;
            uint take = (uint)Math.Min(left, r.Size - off);
            if (index + added >= ChainLimit)
            {
                return -1;
            }

            PinForChain(r);
            // SAFETY: [off, off + take) lies inside the region (take ≤ Size − off).
            _segments[index + added] = new VirtqSegment(r.Host + off, take, writable);
            added++;
            left -= take;
            addr += take; // cannot wrap: a region never ends at 2^64 (GuestMemoryMap.Check)
        }
        while (left > 0);

        return added;
    }

    /// <summary>The region holding <paramref name="addr"/> in the map's current table. Caller is in a read-side section.</summary>
    private GuestRegion? MapFind(ulong addr)
    {
        GuestRegion[] table = _map!.DangerousTable;
        if (!ReferenceEquals(table, _cacheTable))
        {
            _cacheTable = table;
            _cacheRegion = null;
        }

        GuestRegion? c = _cacheRegion;
        if (c is not null && addr >= c.Gpa && addr - c.Gpa < c.Size)
        {
            return c;
        }

        GuestRegion? r = GuestMemoryMap.FindGpa(table, addr);
        if (r is not null)
        {
            _cacheRegion = r;
        }

        return r;
    }

    /// <summary>Pins <paramref name="r"/> for the chain being walked (once per region). Caller is in a read-side section.</summary>
    private void PinForChain(GuestRegion r)
    {
        for (int i = 0; i < _scratchPinCount; i++)
        {
            if (ReferenceEquals(_scratchPins[i], r))
            {
                return;
            }
        }

        if (_scratchPinCount == _scratchPins.Length)
        {
            Array.Resize(ref _scratchPins, _scratchPins.Length * 2);
        }

        r.Pin();
        _scratchPins[_scratchPinCount++] = r;
    }

    private void CommitPins(ref HeadState hs)
    {
        hs.Pin = _scratchPins[0];
        int more = _scratchPinCount - 1;
        if (more > 0)
        {
            if (hs.MorePins is null || hs.MorePins.Length < more)
            {
                hs.MorePins = new GuestRegion[more];
            }

            Array.Copy(_scratchPins, 1, hs.MorePins, 0, more);
        }

        hs.MorePinCount = more;
        Array.Clear(_scratchPins, 0, _scratchPinCount);
        _scratchPinCount = 0;
    }

    private void DropScratchPins()
    {
        for (int i = 0; i < _scratchPinCount; i++)
        {
            _scratchPins[i].Unpin();
            _scratchPins[i] = null!;
        }

        _scratchPinCount = 0;
    }
}
