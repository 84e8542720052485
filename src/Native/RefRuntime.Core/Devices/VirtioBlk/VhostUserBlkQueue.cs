// One request queue of RefRuntime's vhost-user-blk front end (VhostUserBlkFrontend): the driver
// side of a split ring (VirtqDriver) in the shared memory, a kick and a call eventfd, and a pool
// of request slots carved from the same memory.
//
// Slots. Each ring entry has a slot of MaxRequestBytes + 8 KiB, laid out as
//
//     0 .. 4080   guard            (never part of a chain built by Submit)
//     4080        header (16 B)    type, ioprio, sector
//     4096        data             up to MaxRequestBytes, page aligned
//     4096 + len  status (1 B)     right after the request's data
//     ...         guard
//
// so header, data and status are contiguous and a chain may describe them as one, two or many
// descriptors (BlkChainLayout), and a test can poison the whole slot and check afterwards that the
// device wrote nothing outside the writable descriptors. A slot is reserved by the caller, filled,
// submitted, completed (its data can then be read), and released.
//
// Requests are asynchronous: Submit stages a chain and (by default) publishes it and kicks when
// the device asked for kicks (EVENT_IDX or NO_NOTIFY); Reap collects completions in the order the
// device returns them; WaitForCompletions sleeps on the call eventfd (or spins, for benchmarks).
// The synchronous helpers (Read, Write, ...) are built on the same calls and set aside the
// completions of other requests they meet, so both styles can be mixed on one queue.
//
// Back-end death. The wait also polls the vhost-user socket for hang-up and the front end's close
// eventfd; once the connection failed, completions the device published before dying are still
// reaped as answers, and every other request in flight completes with NoDevice, so no caller waits
// forever. A device that breaks the ring protocol (VirtqDriver validates every used entry) fails
// the queue's requests with Broken.
//
// Not thread-safe: one thread drives a queue (any number of queues run in parallel).

using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using RefRuntime.Core.Os;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>One request queue of a <see cref="VhostUserBlkFrontend"/> (see file comment).</summary>
public sealed unsafe class VhostUserBlkQueue
{
    /// <summary>Offset of the 16-byte request header in a slot.</summary>
    public const int HeaderOffset = DataOffset - VirtioBlkConst.HeaderSize;

    /// <summary>Offset of the data in a slot (page aligned).</summary>
    public const int DataOffset = 4096;

    /// <summary>Status byte written before submit, to tell "the device wrote no status" apart.</summary>
    public const byte NoStatus = 0xff;

    private const byte PhaseFree = 0;
    private const byte PhaseReserved = 1;
    private const byte PhaseInFlight = 2;
    private const byte PhaseCompleted = 3;

    private readonly VhostUserBlkFrontend _owner;
    private readonly VirtqDriver _vq;
    private readonly EventFd _kick;
    private readonly EventFd _call;
    private readonly byte* _slots;
    private readonly ulong _slotsGpa;
    private readonly int _stride;
    private readonly int _maxData;
    private readonly int _segMax;
    private readonly SlotState[] _state;
    private readonly int[] _free;
    private readonly VirtqBuffer[] _chain;
    private readonly Queue<BlkCompletion> _stash = new();
    private int _freeCount;
    private bool _polling;
    private long _submitted;
    private long _completed;

    private struct SlotState
    {
        public ulong Tag;
        public int StatusOffset; // -1: the chain has no writable byte
        public byte Phase;
        public bool Abandoned;   // a synchronous call timed out: release on completion
    }

    internal VhostUserBlkQueue(VhostUserBlkFrontend owner, int index, VirtqDriver vq, EventFd kick, EventFd call, byte* slots, ulong slotsGpa, int maxData, int segMax)
    {
        _owner = owner;
        Index = index;
        _vq = vq;
        _kick = kick;
        _call = call;
        _slots = slots;
        _slotsGpa = slotsGpa;
        _maxData = maxData;
        _stride = SlotStride(maxData);
        _segMax = segMax;
        Depth = vq.Size;
        _state = new SlotState[Depth];
        _free = new int[Depth];
        for (int i = 0; i < Depth; i++)
        {
            _free[i] = Depth - 1 - i;
        }

        _freeCount = Depth;
        _chain = new VirtqBuffer[vq.Size];
    }

    /// <summary>The queue's index (0-based vhost-user ring number).</summary>
    public int Index { get; }

    /// <summary>Slots (= ring entries): the most requests in flight, when each chain fits the free descriptors.</summary>
    public int Depth { get; }

    /// <summary>The largest data length of one request.</summary>
    public int MaxRequestBytes => _maxData;

    /// <summary>Bytes of one slot (see file comment).</summary>
    public int SlotSize => _stride;

    /// <summary>Requests submitted and not yet reaped.</summary>
    public int InFlight => _vq.InFlight;

    /// <summary>Free slots.</summary>
    public int FreeSlots => _freeCount;

    /// <summary>Requests submitted since the queue started.</summary>
    public long Submitted => _submitted;

    /// <summary>Requests completed (answered or failed) since the queue started.</summary>
    public long Completed => _completed;

    /// <summary>Kicks sent / kicks the device let us skip (EVENT_IDX or NO_NOTIFY).</summary>
    public (long Sent, long Suppressed) Kicks => (_vq.Kicks, _vq.KicksSuppressed);

    /// <summary>
    /// Spin instead of sleeping in <see cref="WaitForCompletions"/>, and ask the device not to
    /// signal the call eventfd (benchmarks; costs a CPU).
    /// </summary>
    public bool Polling
    {
        get => _polling;
        set
        {
            _polling = value;
            if (value)
            {
                _vq.DisableCallbacks();
            }
            else
            {
                _vq.EnableCallbacks();
            }
        }
    }

    /// <summary>Bytes of a slot for requests of up to <paramref name="maxData"/> data bytes.</summary>
    public static int SlotStride(int maxData) => DataOffset + maxData + 4096;

    /// <summary>Reserves a free slot.</summary>
    public bool TryReserve(out int slot)
    {
        if (_freeCount == 0)
        {
            slot = -1;
            return false;
        }

        slot = _free[--_freeCount];
        Debug.Assert(_state[slot].Phase == PhaseFree);
        _state[slot] = new SlotState { Phase = PhaseReserved, StatusOffset = -1 };
        return true;
    }

    /// <summary>The data area of a reserved or completed slot (<see cref="MaxRequestBytes"/> bytes).</summary>
    public Span<byte> Data(int slot) => SlotBytes(slot).Slice(DataOffset, _maxData);

    /// <summary>The whole slot (<see cref="SlotSize"/> bytes): raw chains and poison checks.</summary>
    public Span<byte> SlotBytes(int slot)
    {
        CheckOwned(slot);
        // SAFETY: slot < Depth (checked); the slot area was carved as Depth × _stride bytes of the
        // shared memory, which stays mapped until the front end is disposed.
        return new Span<byte>(_slots + ((nint)slot * _stride), _stride);
    }

    /// <summary>Returns a completed (or never submitted) slot to the pool.</summary>
    /// <exception cref="InvalidOperationException">The slot is in flight or free.</exception>
    public void Release(int slot)
    {
        CheckOwned(slot);
        _state[slot].Phase = PhaseFree;
        _free[_freeCount++] = slot;
    }

    /// <summary>
    /// Submits a request of <paramref name="type"/> at <paramref name="sector"/> whose data is the
    /// first <paramref name="dataBytes"/> bytes of the slot's <see cref="Data"/>: header
    /// device-readable; data device-writable for IN and GET_ID, readable otherwise; then the status.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NoSpace"/> (too few free descriptors: reap first);
    /// <see cref="RrStatus.InvalidArgument"/> (bad slot or length, more data segments than seg_max);
    /// <see cref="RrStatus.NoDevice"/> (the back-end is gone); <see cref="RrStatus.Broken"/>.</returns>
    public RrStatus Submit(int slot, uint type, ulong sector, int dataBytes, ulong tag = 0, BlkChainLayout layout = default, bool kick = true)
    {
        if ((uint)slot >= (uint)Depth || _state[slot].Phase != PhaseReserved || (uint)dataBytes > (uint)_maxData || layout.SegmentBytes < 0)
        {
            return RrStatus.InvalidArgument;
        }

        Span<byte> s = SlotBytes(slot);
        new VirtioBlkRequestHeader(type, 0, sector).Write(s[HeaderOffset..]);
        int statusAt = DataOffset + dataBytes;
        s[statusAt] = NoStatus;
        bool dataWritable = type is VirtioBlkConst.VIRTIO_BLK_T_IN or VirtioBlkConst.VIRTIO_BLK_T_GET_ID;
        int n = 0;
        ulong at = SlotGpa(slot);
        if (_segMax > 0 && layout.SegmentBytes > 0 && (dataBytes + layout.SegmentBytes - 1) / layout.SegmentBytes > _segMax)
        {
            return RrStatus.InvalidArgument; // more data segments than the device takes
        }

        if (dataBytes == 0)
        {
            n = Append(at, n, HeaderOffset, VirtioBlkConst.HeaderSize, 0);
            n = Append(at, n, statusAt, 1, 0);
            return Stage(slot, n, 1, statusAt, tag, kick);
        }

        if (dataWritable)
        {
            n = Append(at, n, HeaderOffset, VirtioBlkConst.HeaderSize, 0);
            if (layout.StatusWithData)
            {
                n = Append(at, n, DataOffset, dataBytes + 1, layout.SegmentBytes);
            }
            else
            {
                n = Append(at, n, DataOffset, dataBytes, layout.SegmentBytes);
                n = Append(at, n, statusAt, 1, 0);
            }

            return Stage(slot, n, 1, statusAt, tag, kick);
        }

        if (layout.StatusWithData)
        {
            // Header and data in the readable part: StatusWithData applies to writable data only;
            // for readable data the header joins it instead (VIRTIO_F_ANY_LAYOUT framing).
            n = Append(at, n, HeaderOffset, VirtioBlkConst.HeaderSize + dataBytes, layout.SegmentBytes);
        }
        else
        {
            n = Append(at, n, HeaderOffset, VirtioBlkConst.HeaderSize, 0);
            n = Append(at, n, DataOffset, dataBytes, layout.SegmentBytes);
        }

        int readable = n;
        n = Append(at, n, statusAt, 1, 0);
        return Stage(slot, n, readable, statusAt, tag, kick);
    }

    /// <summary>
    /// Submits a chain of arbitrary ranges of the slot, as given (malformed requests for tests:
    /// short header, no status byte, wrong directions). The caller writes the header and any data.
    /// The status is read from the last byte of the last writable range (none: <see cref="NoStatus"/>).
    /// </summary>
    /// <returns>As <see cref="Submit"/>; <see cref="RrStatus.InvalidArgument"/> also when a range leaves
    /// the slot, or a readable range follows a writable one (a split ring cannot express it).</returns>
    public RrStatus SubmitRaw(int slot, ReadOnlySpan<BlkRawSegment> segments, ulong tag = 0, bool kick = true)
    {
        if ((uint)slot >= (uint)Depth || _state[slot].Phase != PhaseReserved || segments.Length == 0 || segments.Length > _chain.Length)
        {
            return RrStatus.InvalidArgument;
        }

        int readable = 0;
        int statusAt = -1;
        for (int k = 0; k < segments.Length; k++)
        {
            BlkRawSegment g = segments[k];
            if (g.Offset < 0 || g.Length < 0 || g.Offset > _stride - g.Length || (!g.Writable && k > readable))
            {
                return RrStatus.InvalidArgument;
            }

            if (!g.Writable)
            {
                readable++;
            }
            else if (g.Length > 0)
            {
                statusAt = g.Offset + g.Length - 1;
            }

            _chain[k] = new VirtqBuffer(SlotGpa(slot) + (ulong)g.Offset, (uint)g.Length);
        }

        return Stage(slot, segments.Length, readable, statusAt, tag, kick);
    }

    /// <summary>Publishes staged requests and kicks when the device wants it (after submits with kick: false).</summary>
    public void Kick()
    {
        if (_vq.KickPrepare())
        {
            _kick.Signal();
        }
    }

    /// <summary>
    /// Moves finished requests into <paramref name="completions"/>: answers the device returned, in
    /// its order; once the back-end is gone (or the ring broke), every other request in flight,
    /// with <see cref="BlkOutcome.NoDevice"/> (<see cref="BlkOutcome.Broken"/>).
    /// </summary>
    /// <returns>How many were written.</returns>
    public int Reap(Span<BlkCompletion> completions)
    {
        int n = 0;
        while (n < completions.Length && _stash.TryDequeue(out BlkCompletion c))
        {
            completions[n++] = c;
        }

        while (n < completions.Length && TryReapOne(out BlkCompletion c))
        {
            completions[n++] = c;
        }

        return n;
    }

    /// <summary>
    /// Waits until <see cref="Reap"/> has something to return: the device used a chain, or the
    /// back-end is gone with requests in flight (they then fail). Sleeps on the call eventfd
    /// (spins with <see cref="Polling"/>).
    /// </summary>
    /// <param name="timeoutMs">-1: no limit.</param>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NotFound"/> (timed out, or nothing in flight);
    /// <see cref="RrStatus.NoDevice"/> (the back-end is gone and nothing is left to reap).</returns>
    public RrStatus WaitForCompletions(int timeoutMs = -1)
    {
        long start = Stopwatch.GetTimestamp();
        int spins = 0;
        while (true)
        {
            if (_stash.Count > 0 || _vq.HasUsed)
            {
                return RrStatus.Ok;
            }

            if (_owner.Failure is not null || _vq.IsBroken)
            {
                return _vq.InFlight > 0 ? RrStatus.Ok : RrStatus.NoDevice;
            }

            if (_vq.InFlight == 0)
            {
                return RrStatus.NotFound;
            }

            int left = timeoutMs < 0 ? -1 : timeoutMs - (int)Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (timeoutMs >= 0 && left <= 0)
            {
                return RrStatus.NotFound;
            }

            if (_polling)
            {
                // A spinning waiter looks at the socket now and then, so a dead back-end still ends the wait.
                if ((++spins & 1023) == 0)
                {
                    SleepOnce(0);
                }
                else
                {
                    Thread.SpinWait(8);
                }

                continue;
            }

            if (_vq.EnableCallbacks())
            {
                return RrStatus.Ok;
            }

            SleepOnce(left);
        }
    }

    // ---- synchronous helpers (tests, tools) ----

    /// <summary>Reads <paramref name="destination"/>.Length bytes (a multiple of 512, at most <see cref="MaxRequestBytes"/>) from <paramref name="sector"/>.</summary>
    public BlkResult Read(ulong sector, Span<byte> destination, BlkChainLayout layout = default, int timeoutMs = -1) =>
        Execute(VirtioBlkConst.VIRTIO_BLK_T_IN, sector, default, destination, destination.Length, layout, timeoutMs);

    /// <summary>Writes <paramref name="source"/> (a multiple of 512 bytes) at <paramref name="sector"/>.</summary>
    public BlkResult Write(ulong sector, ReadOnlySpan<byte> source, BlkChainLayout layout = default, int timeoutMs = -1) =>
        Execute(VirtioBlkConst.VIRTIO_BLK_T_OUT, sector, source, default, source.Length, layout, timeoutMs);

    /// <summary>Flushes the device's write cache.</summary>
    public BlkResult Flush(int timeoutMs = -1) =>
        Execute(VirtioBlkConst.VIRTIO_BLK_T_FLUSH, 0, default, default, 0, default, timeoutMs);

    /// <summary>Reads the device ID string (20 bytes, zero-padded) into <paramref name="id"/>.</summary>
    public BlkResult GetId(Span<byte> id, int timeoutMs = -1) =>
        Execute(VirtioBlkConst.VIRTIO_BLK_T_GET_ID, 0, default, id, VirtioBlkConst.VIRTIO_BLK_ID_BYTES, default, timeoutMs);

    /// <summary>Discards <paramref name="sectors"/> sectors from <paramref name="sector"/> (one segment).</summary>
    public BlkResult Discard(ulong sector, uint sectors, int timeoutMs = -1) =>
        Segments(VirtioBlkConst.VIRTIO_BLK_T_DISCARD, [new VirtioBlkDiscardSegment(sector, sectors, 0)], timeoutMs);

    /// <summary>Zero-fills <paramref name="sectors"/> sectors from <paramref name="sector"/> (one segment; <paramref name="unmap"/> sets VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP).</summary>
    public BlkResult WriteZeroes(ulong sector, uint sectors, bool unmap = false, int timeoutMs = -1) =>
        Segments(VirtioBlkConst.VIRTIO_BLK_T_WRITE_ZEROES, [new VirtioBlkDiscardSegment(sector, sectors, unmap ? VirtioBlkConst.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0)], timeoutMs);

    /// <summary>A DISCARD or WRITE_ZEROES request with several segments.</summary>
    public BlkResult Segments(uint type, ReadOnlySpan<VirtioBlkDiscardSegment> segments, int timeoutMs = -1)
    {
        var bytes = new byte[segments.Length * VirtioBlkConst.DiscardSegmentSize];
        for (int i = 0; i < segments.Length; i++)
        {
            segments[i].Write(bytes.AsSpan(i * VirtioBlkConst.DiscardSegmentSize));
        }

        return Execute(type, 0, bytes, default, bytes.Length, default, timeoutMs);
    }

    /// <summary>
    /// Submits one request and waits for it, setting aside other completions for <see cref="Reap"/>.
    /// <paramref name="dataOut"/> is copied into the slot before; <paramref name="dataIn"/> receives
    /// the slot's data after (up to its length).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dataBytes"/> is negative or over <see cref="MaxRequestBytes"/>.</exception>
    /// <exception cref="InvalidOperationException">Every slot is reserved by the caller, or the request cannot be submitted (see the message).</exception>
    public BlkResult Execute(uint type, ulong sector, ReadOnlySpan<byte> dataOut, Span<byte> dataIn, int dataBytes, BlkChainLayout layout = default, int timeoutMs = -1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(dataBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(dataBytes, _maxData);
        if (!TryReserveForSync(timeoutMs, out int slot))
        {
            return _owner.Failure is not null ? new BlkResult(BlkOutcome.NoDevice, NoStatus, 0) : throw new InvalidOperationException("no free slot: every slot is reserved by the caller");
        }

        dataOut[..Math.Min(dataOut.Length, dataBytes)].CopyTo(Data(slot));
        RrStatus s = Submit(slot, type, sector, dataBytes, 0, layout);
        while (s == RrStatus.NoSpace && InFlight > 0)
        {
            // Descriptors are short: let other requests finish first.
            StashOne(timeoutMs);
            s = Submit(slot, type, sector, dataBytes, 0, layout);
        }

        if (s != RrStatus.Ok)
        {
            Release(slot);
            return s switch
            {
                RrStatus.NoDevice => new BlkResult(BlkOutcome.NoDevice, NoStatus, 0),
                RrStatus.Broken => new BlkResult(BlkOutcome.Broken, NoStatus, 0),
                _ => throw new InvalidOperationException($"the request cannot be submitted: {s}"),
            };
        }

        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            int left = timeoutMs < 0 ? -1 : Math.Max(0, timeoutMs - (int)Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            while (TryReapOne(out BlkCompletion c))
            {
                if (c.Slot != slot)
                {
                    _stash.Enqueue(c);
                    continue;
                }

                Data(slot)[..Math.Min(dataIn.Length, dataBytes)].CopyTo(dataIn);
                Release(slot);
                return new BlkResult(c.Outcome, c.Status, c.UsedLength);
            }

            if (timeoutMs >= 0 && left == 0)
            {
                _state[slot].Abandoned = true;
                return new BlkResult(BlkOutcome.TimedOut, NoStatus, 0);
            }

            WaitForCompletions(left);
        }
    }

    internal void SignalKick() => _kick.Signal();

    private bool TryReserveForSync(int timeoutMs, out int slot)
    {
        while (!TryReserve(out slot))
        {
            if (InFlight == 0 || !StashOne(timeoutMs))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Waits for one completion and sets it aside; false when none came.</summary>
    private bool StashOne(int timeoutMs)
    {
        WaitForCompletions(timeoutMs);
        if (TryReapOne(out BlkCompletion c))
        {
            _stash.Enqueue(c);
            return true;
        }

        return false;
    }

    private RrStatus Stage(int slot, int count, int readable, int statusAt, ulong tag, bool kick)
    {
        if (_owner.Failure is not null)
        {
            return RrStatus.NoDevice;
        }

        if (count > _chain.Length)
        {
            return RrStatus.InvalidArgument;
        }

        RrStatus s = _vq.TryAdd(_chain.AsSpan(0, count), readable, (ulong)slot);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        ref SlotState st = ref _state[slot];
        st.Phase = PhaseInFlight;
        st.Tag = tag;
        st.StatusOffset = statusAt;
        _submitted++;
        if (kick)
        {
            Kick();
        }

        return RrStatus.Ok;
    }

    /// <summary>Adds [<paramref name="offset"/>, +<paramref name="length"/>) of the slot at <paramref name="slotGpa"/> to the chain, split into pieces of <paramref name="split"/> bytes (0: one).</summary>
    private int Append(ulong slotGpa, int n, int offset, int length, int split)
    {
        int piece = split > 0 ? split : length;
        int at = 0;
        do
        {
            int len = Math.Min(piece, length - at);
            if (n >= _chain.Length)
            {
                return n + 1; // longer than N: Stage answers InvalidArgument
            }

            _chain[n++] = new VirtqBuffer(slotGpa + (ulong)(offset + at), (uint)len);
            at += len;
        }
        while (at < length);
        return n;
    }

    private ulong SlotGpa(int slot) => _slotsGpa + ((ulong)slot * (ulong)_stride);

    private bool TryReapOne(out BlkCompletion completion)
    {
        while (true)
        {
            RrStatus s = _vq.TryGetUsed(out ulong token, out uint len);
            BlkOutcome outcome = BlkOutcome.Completed;
            if (s == RrStatus.NotFound && _owner.Failure is null)
            {
                completion = default;
                return false;
            }

            if (s != RrStatus.Ok)
            {
                // The back-end is gone (nothing more will be used) or the ring broke: fail what is left.
                outcome = s == RrStatus.Broken ? BlkOutcome.Broken : BlkOutcome.NoDevice;
                if (_vq.TryDetachUnused(out token) != RrStatus.Ok)
                {
                    completion = default;
                    return false;
                }

                len = 0;
            }

            int slot = (int)token;
            ref SlotState st = ref _state[slot];
            Debug.Assert(st.Phase == PhaseInFlight);
            st.Phase = PhaseCompleted;
            _completed++;
            byte status = NoStatus;
            if (outcome == BlkOutcome.Completed && st.StatusOffset >= 0)
            {
                // SAFETY: StatusOffset lies inside the slot (checked when the chain was built); slot < Depth (our token).
                status = Volatile.Read(ref _slots[((nint)slot * _stride) + st.StatusOffset]);
            }

            if (st.Abandoned)
            {
                Release(slot);
                continue;
            }

            completion = new BlkCompletion(slot, st.Tag, outcome, status, len);
            return true;
        }
    }

    private void SleepOnce(int timeoutMs)
    {
        Span<PollFd> fds =
        [
            new PollFd { Fd = _call.Fd, Events = Poller.In },
            new PollFd { Fd = _owner.SocketFd, Events = 0 }, // hang-up and errors are reported anyway
            new PollFd { Fd = _owner.CloseFd, Events = Poller.In },
        ];
        if (Poller.Wait(fds, timeoutMs) <= 0)
        {
            return;
        }

        if ((fds[0].Revents & Poller.In) != 0)
        {
            EventFd.Drain(_call.Fd);
        }

        if ((fds[1].Revents & Poller.Gone) != 0)
        {
            _owner.NoteHangUp();
        }
    }

    private void CheckOwned(int slot)
    {
        if ((uint)slot >= (uint)Depth || _state[slot].Phase is PhaseFree or PhaseInFlight)
        {
            throw new InvalidOperationException($"slot {slot} is not reserved or completed");
        }
    }
}
