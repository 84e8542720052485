// The io_uring engine: block I/O submitted to the kernel in batches (one io_uring_enter per
// Commit) and completed through an eventfd registered with the ring (Os/IoUring.cs has the ring).
//
// Design. A fixed table of slots, as many as the ring's SQ entries; a request takes a free slot,
// and the slot number is both the request's user_data and the SQE index it submits with, so a
// slot's SQE is never rewritten while the kernel may still read it (the next SQE of a slot comes
// only after its CQE). Each slot owns a native copy of the caller's iovecs, valid until the
// request completes: the kernel may read it when the request is issued or retried from a worker.
// Since at most Capacity requests are in the kernel and the CQ ring has 2 x SQ entries, the CQ
// cannot overflow; Reap still flushes an overflow if the kernel ever reports one.
//
// Requests that need more than one kernel operation continue from Reap (one io_uring_enter at
// the end of Reap for all of them):
//   * read/write: a short transfer resubmits the remainder (the iovec copy advanced past what
//     was done); a read that returns 0 is end of file and reports the bytes so far; a write that
//     makes no progress reports the bytes so far (short, which the device treats as an error).
//   * write-zeroes: fallocate(ZERO_RANGE | KEEP_SIZE), or PUNCH_HOLE | KEEP_SIZE when the driver
//     allows unmapping (then ZERO_RANGE if punching is unsupported); where the file system answers
//     EOPNOTSUPP (tmpfs has no ZERO_RANGE), writes of a shared zero buffer cover the range.
//   * a -EAGAIN or -EINTR result is retried a few times, then reported.
// A submission the kernel refuses outright (io_uring_enter fails with nothing in flight to wait
// for) completes with -errno through a local queue, and the engine signals its own eventfd so
// the queue thread still wakes up: no request is ever lost or left hanging.
//
// Dispose submits what was queued and waits for every request in the kernel, because the
// buffers are guest memory that the caller unmaps after it.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Os;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>An <see cref="IBlockIoEngine"/> on io_uring (see file comment). Used by one thread; must be disposed.</summary>
/// <remarks>
/// <b>Invariants:</b> a slot is free exactly when it is on <c>_free</c>; a busy slot is in
/// exactly one place: queued in the SQ ring, in the kernel (counted by <c>_inKernel</c>), or in
/// <c>_local</c>; <c>_busy</c> counts busy slots.
/// </remarks>
public sealed unsafe partial class IoUringBlockIo : IBlockIoEngine
{
    /// <summary>The most iovecs one read or write may carry (the kernel's UIO_MAXIOV).</summary>
    public const int MaxIovecs = BlockIoArguments.MaxIov;

    /// <summary>Largest ring this engine asks for.</summary>
    public const int MaxEntries = 4096;

    private const int ZeroChunk = 64 * 1024;
    private const int ZeroIovecs = 16;
    private const int MaxRetries = 8;
    private const int MaxBusyWaits = 50;

    // errno values (include/uapi/asm-generic/errno-base.h, errno.h).
    private const int EINTR = 4;
    private const int EAGAIN = 11;
    private const int EIO = 5;
    private const int EOPNOTSUPP = 95;

    private const uint FALLOC_FL_KEEP_SIZE = 0x01;
    private const uint FALLOC_FL_PUNCH_HOLE = 0x02;
    private const uint FALLOC_FL_ZERO_RANGE = 0x10;

    private enum Op : byte
    {
        Read,
        Write,
        Flush,
        Discard,
        ZeroAllocate,
        ZeroFill,
    }

    private struct Slot
    {
        public bool Busy;
        public Op Op;
        public byte Retries;
        public uint Mode;           // fallocate mode of the pending ZeroAllocate
        public ulong Token;
        public ulong Offset;        // where the next kernel operation starts
        public ulong Remaining;     // bytes still to transfer (read/write/zero-fill) or the length (fallocate)
        public long Done;           // bytes transferred so far (read/write)
        public long Result;         // for a failed submission
        public BlockIoVec* Iov;     // native copy, Capacity entries
        public int IovCapacity;
        public int IovFirst;        // first iovec not fully transferred
        public int IovCount;
    }

    private readonly int _fd;
    private readonly IoUring _ring;
    private readonly EventFd _completion;
    private readonly Slot[] _slots;
    private readonly Stack<int> _free;
    private readonly Queue<int> _local = new();
    private readonly uint[] _dropScratch;
    private byte* _zeroes;
    private int _busy;
    private int _inKernel;
    private bool _disposed;

    private IoUringBlockIo(int fd, IoUring ring, EventFd completion)
    {
        _fd = fd;
        _ring = ring;
        _completion = completion;
        int n = (int)ring.SqEntries;
        _slots = new Slot[n];
        _free = new Stack<int>(n);
        for (int i = n - 1; i >= 0; i--)
        {
            _free.Push(i);
        }

        _dropScratch = new uint[n];
    }

    /// <inheritdoc/>
    public string Name => "io_uring";

    /// <inheritdoc/>
    public int Capacity => _slots.Length;

    /// <inheritdoc/>
    public int InFlight => _busy;

    /// <inheritdoc/>
    public int CompletionFd => _completion.Fd;

    /// <summary>
    /// Sets up an engine over <paramref name="fd"/> (not owned) with a ring of at least
    /// <paramref name="entries"/> requests (rounded up to a power of two by the kernel).
    /// </summary>
    /// <returns>False with <paramref name="error"/> saying why (io_uring unavailable, disabled or too old; bad arguments): the caller can fall back to the thread-pool engine.</returns>
    public static bool TryCreate(int fd, int entries, out IoUringBlockIo? engine, out string? error) =>
        TryCreate(fd, entries, separateMappings: false, out engine, out error);

    internal static bool TryCreate(int fd, int entries, bool separateMappings, out IoUringBlockIo? engine, out string? error)
    {
        engine = null;
        if (fd < 0)
        {
            error = $"io_uring engine: bad file descriptor {fd}";
            return false;
        }

        if (entries < 1 || entries > MaxEntries)
        {
            error = $"io_uring engine: entries must be 1..{MaxEntries}, not {entries}";
            return false;
        }

        if (!IoUring.TryCreate((uint)entries, separateMappings, out IoUring? ring, out error))
        {
            return false;
        }

        ReadOnlySpan<byte> ops = [IoUringSys.IORING_OP_READV, IoUringSys.IORING_OP_WRITEV, IoUringSys.IORING_OP_FSYNC, IoUringSys.IORING_OP_FALLOCATE];
        if (!ring!.Supports(ops, out error))
        {
            ring.Dispose();
            return false;
        }

        EventFd completion;
        try
        {
            completion = EventFd.Create();
        }
        catch (InvalidOperationException e)
        {
            ring.Dispose();
            error = e.Message;
            return false;
        }

        int r = ring.RegisterEventFd(completion.Fd);
        if (r < 0)
        {
            ring.Dispose();
            completion.Dispose();
            error = $"io_uring: IORING_REGISTER_EVENTFD: {OsError.Describe(-r)}";
            return false;
        }

        engine = new IoUringBlockIo(fd, ring, completion);
        return true;
    }

    /// <inheritdoc/>
    public RrStatus SubmitRead(ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token) => SubmitVectored(Op.Read, offset, iov, token);

    /// <inheritdoc/>
    public RrStatus SubmitWrite(ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token) => SubmitVectored(Op.Write, offset, iov, token);

    /// <inheritdoc/>
    public RrStatus SubmitFlush(ulong token)
    {
        if (!TryTake(out int s))
        {
            return _disposed ? RrStatus.InvalidArgument : RrStatus.Busy;
        }

        ref Slot slot = ref Begin(s, Op.Flush, token, 0, 0);
        Issue(s, ref slot);
        return RrStatus.Ok;
    }

    /// <inheritdoc/>
    public RrStatus SubmitDiscard(ulong offset, ulong length, ulong token) =>
        SubmitAllocate(offset, length, token, Op.Discard, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE);

    /// <inheritdoc/>
    public RrStatus SubmitWriteZeroes(ulong offset, ulong length, bool mayUnmap, ulong token) =>
        SubmitAllocate(offset, length, token, Op.ZeroAllocate, mayUnmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);

    /// <inheritdoc/>
    public void Commit()
    {
        if (!_disposed)
        {
            SubmitQueued();
        }
    }

    /// <inheritdoc/>
    public bool HasCompletions => !_disposed && (_local.Count > 0 || _ring.CqReady != 0);

    /// <inheritdoc/>
    public int Reap(Span<BlockIoCompletion> completions)
    {
        if (_disposed)
        {
            return 0;
        }

        int n = 0;
        while (n < completions.Length && _local.Count > 0)
        {
            int s = _local.Dequeue();
            completions[n++] = new BlockIoCompletion(_slots[s].Token, _slots[s].Result);
            Release(s);
        }

        n += DrainCq(completions[n..]);

        // Continuations queued by DrainCq, and anything an earlier Commit could not submit.
        if (_ring.Unsubmitted != 0)
        {
            SubmitQueued();
        }

        return n;
    }

    /// <summary>Submits anything queued, waits for every request in the kernel, then releases the ring, the eventfd and the iovec copies.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true; // from here on no completion continues
        if (_ring.Unsubmitted != 0)
        {
            SubmitQueued();
        }

        bool settled = WaitForKernel();
        _ring.Dispose();
        _completion.Dispose();
        if (!settled)
        {
            // The kernel may still hold requests (an unexpected io_uring_enter failure): leak the
            // iovec copies and the zero buffer rather than free memory it might read.
            Debug.Fail("io_uring engine disposed with requests still in the kernel");
            return;
        }

        for (int i = 0; i < _slots.Length; i++)
        {
            // SAFETY: the copies were allocated with NativeMemory.Alloc and no request uses them any more (none in flight).
            NativeMemory.Free(_slots[i].Iov);
            _slots[i].Iov = null;
        }

        // SAFETY: allocated with AlignedAlloc; no request in flight reads it.
        NativeMemory.AlignedFree(_zeroes);
        _zeroes = null;
    }

    private RrStatus SubmitVectored(Op op, ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token)
    {
        if (!BlockIoArguments.TryVectored(offset, iov, out ulong total))
        {
            return RrStatus.InvalidArgument;
        }

        if (!TryTake(out int s))
        {
            return _disposed ? RrStatus.InvalidArgument : RrStatus.Busy;
        }

        if (!EnsureIovecs(s, iov.Length))
        {
            Release(s);
            return RrStatus.OutOfMemory;
        }

        ref Slot slot = ref Begin(s, op, token, offset, total);
        // SAFETY: EnsureIovecs gave the slot's copy room for iov.Length entries; the slot is not in flight.
        iov.CopyTo(new Span<BlockIoVec>(slot.Iov, iov.Length));
        slot.IovCount = iov.Length;
        Issue(s, ref slot);
        return RrStatus.Ok;
    }

    private RrStatus SubmitAllocate(ulong offset, ulong length, ulong token, Op op, uint mode)
    {
        if (!BlockIoArguments.IsRange(offset, length))
        {
            return RrStatus.InvalidArgument;
        }

        if (!TryTake(out int s))
        {
            return _disposed ? RrStatus.InvalidArgument : RrStatus.Busy;
        }

        ref Slot slot = ref Begin(s, op, token, offset, length);
        slot.Mode = mode;
        if (length == 0)
        {
            // Nothing to do (fallocate would say EINVAL): complete through the local queue.
            slot.Result = 0;
            _local.Enqueue(s);
            _completion.Signal();
            return RrStatus.Ok;
        }

        Issue(s, ref slot);
        return RrStatus.Ok;
    }

    private bool TryTake(out int s)
    {
        if (_disposed || _free.Count == 0)
        {
            s = -1;
            return false;
        }

        s = _free.Pop();
        Debug.Assert(!_slots[s].Busy);
        _busy++;
        return true;
    }

    private ref Slot Begin(int s, Op op, ulong token, ulong offset, ulong remaining)
    {
        ref Slot slot = ref _slots[s];
        // INVARIANT: busy, and about to be queued in the SQ ring by Issue.
        slot.Busy = true;
        slot.Op = op;
        slot.Token = token;
        slot.Offset = offset;
        slot.Remaining = remaining;
        slot.Done = 0;
        slot.Retries = 0;
        slot.Mode = 0;
        slot.IovFirst = 0;
        slot.IovCount = 0;
        return ref slot;
    }

    private void Release(int s)
    {
        Debug.Assert(_slots[s].Busy);
        _slots[s].Busy = false;
        _busy--;
        _free.Push(s);
    }

    private bool EnsureIovecs(int s, int count)
    {
        ref Slot slot = ref _slots[s];
        if (slot.IovCapacity >= count)
        {
            return true;
        }

        int capacity = Math.Max(count, Math.Max(8, slot.IovCapacity * 2));
        capacity = Math.Min(capacity, MaxIovecs);
        // SAFETY: Realloc of this slot's own copy; the slot is not in flight (we just took it or it is between operations).
        void* p = NativeMemory.Realloc(slot.Iov, (nuint)(capacity * sizeof(BlockIoVec)));
        if (p == null)
        {
            return false;
        }

        slot.Iov = (BlockIoVec*)p;
        slot.IovCapacity = capacity;
        return true;
    }

    /// <summary>Writes slot <paramref name="s"/>'s next kernel operation into its SQE and queues it.</summary>
    private void Issue(int s, ref Slot slot)
    {
        // SAFETY: the slot number is < Capacity = SqEntries, and this slot's previous SQE was consumed (its CQE arrived) or never queued.
        IoUringSqe* sqe = _ring.DangerousSqe((uint)s);
        *sqe = default;
        sqe->Fd = _fd;
        sqe->UserData = (ulong)s;
        switch (slot.Op)
        {
            case Op.Read:
            case Op.Write:
            case Op.ZeroFill:
                sqe->Opcode = slot.Op == Op.Read ? IoUringSys.IORING_OP_READV : IoUringSys.IORING_OP_WRITEV;
                sqe->Off = slot.Offset;
                sqe->Addr = (ulong)(slot.Iov + slot.IovFirst);
                sqe->Len = (uint)(slot.IovCount - slot.IovFirst);
                break;
            case Op.Flush:
                sqe->Opcode = IoUringSys.IORING_OP_FSYNC;
                sqe->OpFlags = IoUringSys.IORING_FSYNC_DATASYNC;
                break;
            case Op.Discard:
            case Op.ZeroAllocate:
                // FALLOCATE takes the length in addr and the mode in len (io_uring/sync.c, io_fallocate_prep).
                sqe->Opcode = IoUringSys.IORING_OP_FALLOCATE;
                sqe->Off = slot.Offset;
                sqe->Addr = slot.Remaining;
                sqe->Len = slot.Mode;
                break;
        }

        _ring.Queue((uint)s);
    }

    /// <summary>Submits everything queued in the SQ ring (see the file comment for refusals).</summary>
    private void SubmitQueued()
    {
        int waits = 0;
        while (_ring.Unsubmitted != 0)
        {
            int r = _ring.Submit();
            if (r > 0)
            {
                _inKernel += r;
                continue;
            }

            int errno = r == 0 ? EAGAIN : -r;
            if (errno == EAGAIN || errno == IoUringSys.EBUSY)
            {
                if (_inKernel > 0 && !_disposed)
                {
                    return; // a completion will come; Reap submits the rest
                }

                if (++waits <= MaxBusyWaits)
                {
                    if (_inKernel > 0)
                    {
                        DrainCq([]); // disposing: make room by retiring completions
                    }

                    Thread.Sleep(1);
                    continue;
                }
            }

            FailQueued(-errno);
            return;
        }
    }

    /// <summary>Takes the unsubmitted entries back and completes their requests with <paramref name="result"/> through the local queue.</summary>
    private void FailQueued(long result)
    {
        int n = _ring.DropUnsubmitted(_dropScratch);
        for (int i = 0; i < n; i++)
        {
            int s = (int)_dropScratch[i];
            _slots[s].Result = _slots[s].Done > 0 ? _slots[s].Done : result;
            _local.Enqueue(s);
        }

        if (n > 0)
        {
            _completion.Signal();
        }
    }

    /// <summary>Processes waiting CQEs into <paramref name="completions"/> until it is full or the CQ is empty; flushes a CQ overflow.</summary>
    private int DrainCq(Span<BlockIoCompletion> completions)
    {
        int n = 0;
        while (true)
        {
            uint ready = _ring.CqReady;
            if (ready == 0)
            {
                if (!_ring.CqOverflowPending)
                {
                    break;
                }

                _ring.GetEvents(0); // moves the overflowed completions into the ring we just emptied
                if (_ring.CqReady == 0)
                {
                    break;
                }

                continue;
            }

            uint used = 0;
            while (used < ready && (n < completions.Length || _disposed))
            {
                IoUringCqe cqe = _ring.PeekCqe(used++);
                if (OnCqe(cqe, out BlockIoCompletion done) && !_disposed)
                {
                    completions[n++] = done;
                }
            }

            _ring.AdvanceCq(used);
            if (n == completions.Length && !_disposed)
            {
                break;
            }
        }

        return n;
    }

    /// <summary>Handles one CQE: finishes its request (true, <paramref name="done"/> set) or issues its next operation.</summary>
    private bool OnCqe(in IoUringCqe cqe, out BlockIoCompletion done)
    {
        done = default;
        if (cqe.UserData >= (ulong)_slots.Length || !_slots[(int)cqe.UserData].Busy)
        {
            Debug.Fail($"io_uring completion for unknown user_data {cqe.UserData}");
            return false;
        }

        _inKernel--;
        int s = (int)cqe.UserData;
        ref Slot slot = ref _slots[s];
        long result = Step(s, ref slot, cqe.Res);
        if (result == long.MinValue)
        {
            return false; // continued
        }

        done = new BlockIoCompletion(slot.Token, result);
        Release(s);
        return true;
    }

    /// <summary>Waits until the kernel holds no request of ours; false if io_uring_enter failed in a way that leaves that unknown.</summary>
    private bool WaitForKernel()
    {
        int busyWaits = 0;
        while (true)
        {
            DrainCq([]);
            if (_inKernel == 0)
            {
                return true;
            }

            int r = _ring.GetEvents(1);
            if (r >= 0 || r == -EINTR)
            {
                continue;
            }

            if ((r == -EAGAIN || r == -IoUringSys.EBUSY) && ++busyWaits < 10_000)
            {
                Thread.Sleep(1);
                continue;
            }

            return false;
        }
    }
}
