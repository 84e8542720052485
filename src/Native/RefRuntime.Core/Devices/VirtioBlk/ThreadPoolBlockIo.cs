// The portable I/O engine: a small fixed set of worker threads doing blocking preadv/pwritev/
// fdatasync/fallocate (BlockFile) on behalf of one device queue.
//
// Design. Submit* copies the request into a pooled operation and appends it to a batch private to
// the queue thread; Commit moves the batch into the shared work queue and wakes as many workers
// as it holds. A worker takes one operation, runs it to the end (continuing short transfers: a
// read that meets the end of the file reports the bytes it got, so the device sees a short
// count), appends the completion to the done queue, returns the operation to the pool and signals
// the completion eventfd. Reap takes from the done queue in whatever order the workers finished.
// Two locks, each held for a few instructions: the work queue's (with Monitor wait/pulse for idle
// workers) and the done queue's (which also guards the pool). InFlight is the queue thread's own
// count (submit +1, reap -1), so capacity is enforced without touching a shared counter.
//
// Threads. One engine per device queue, DefaultThreads workers each (--aio threads): a queue at
// depth 32 keeps 4 requests in the kernel at once, which is what a thread-per-I/O design can do
// without a submission interface; io_uring (IoUringBlockIo) is the engine for more. Dispose lets
// the workers finish everything committed (its buffers are guest memory the caller keeps mapped
// until then), then joins them.

using System;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Os;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>An <see cref="IBlockIoEngine"/> on worker threads (see file comment).</summary>
public sealed unsafe class ThreadPoolBlockIo : IBlockIoEngine
{
    /// <summary>Worker threads per engine when not told otherwise.</summary>
    public const int DefaultThreads = 4;

    /// <summary>The most buffers one read or write may have (the kernel's IOV_MAX).</summary>
    public const int MaxIov = BlockIoArguments.MaxIov;

    private readonly int _fd;
    private readonly int _capacity;
    private readonly EventFd _completion = EventFd.Create();
    private readonly Thread[] _workers;
    private readonly Queue<Op> _work = new();          // guarded by itself
    private readonly Queue<BlockIoCompletion> _done = new(); // guarded by _doneLock
    private int _doneCount; // _done.Count, readable without the lock (HasCompletions)
    private readonly Stack<Op> _pool = new();          // guarded by _doneLock
    private readonly Lock _doneLock = new();
    private readonly List<Op> _batch = [];             // queue thread only
    private int _inFlight;                             // queue thread only
    private bool _stopping;                            // guarded by _work
    private bool _disposed;

    /// <summary>An engine over <paramref name="fd"/> (owned by the caller; it must outlive the engine).</summary>
    /// <param name="fd">The image (BlockFile.Fd).</param>
    /// <param name="capacity">The most I/Os in flight (≥ 1).</param>
    /// <param name="threads">Worker threads (1 to 64).</param>
    /// <param name="name">Thread name prefix (for debuggers and /proc).</param>
    public ThreadPoolBlockIo(int fd, int capacity, int threads = DefaultThreads, string name = "blk-io")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threads, 64);
        _fd = fd;
        _capacity = capacity;
        _workers = new Thread[threads];
        for (int i = 0; i < threads; i++)
        {
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"{name}-{i}" };
            _workers[i].Start();
        }
    }

    private enum OpKind
    {
        Read,
        Write,
        Flush,
        Discard,
        WriteZeroes,
    }

    /// <inheritdoc/>
    public string Name => "threads";

    /// <inheritdoc/>
    public int Capacity => _capacity;

    /// <inheritdoc/>
    public int InFlight => _inFlight;

    /// <inheritdoc/>
    public int CompletionFd => _completion.Fd;

    /// <summary>Worker threads.</summary>
    public int Threads => _workers.Length;

    /// <inheritdoc/>
    public RrStatus SubmitRead(ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token) => SubmitData(OpKind.Read, offset, iov, token);

    /// <inheritdoc/>
    public RrStatus SubmitWrite(ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token) => SubmitData(OpKind.Write, offset, iov, token);

    /// <inheritdoc/>
    public RrStatus SubmitFlush(ulong token) => SubmitRange(OpKind.Flush, 0, 0, false, token);

    /// <inheritdoc/>
    public RrStatus SubmitDiscard(ulong offset, ulong length, ulong token) => SubmitRange(OpKind.Discard, offset, length, false, token);

    /// <inheritdoc/>
    public RrStatus SubmitWriteZeroes(ulong offset, ulong length, bool mayUnmap, ulong token) => SubmitRange(OpKind.WriteZeroes, offset, length, mayUnmap, token);

    private RrStatus SubmitData(OpKind kind, ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!BlockIoArguments.TryVectored(offset, iov, out _))
        {
            return RrStatus.InvalidArgument;
        }

        if (!TryRent(kind, offset, token, out Op op))
        {
            return RrStatus.Busy;
        }

        if (op.Iov.Length < iov.Length)
        {
            op.Iov = new BlockIoVec[Math.Max(iov.Length, op.Iov.Length * 2)];
        }

        iov.CopyTo(op.Iov);
        op.IovCount = iov.Length;
        Enlist(op);
        return RrStatus.Ok;
    }

    /// <summary>An operation record for a new request, or false when the engine is full (Busy).</summary>
    private bool TryRent(OpKind kind, ulong offset, ulong token, out Op op)
    {
        if (_inFlight >= _capacity)
        {
            op = null!;
            return false;
        }

        op = Rent();
        op.Kind = kind;
        op.Offset = offset;
        op.Token = token;
        return true;
    }

    private RrStatus SubmitRange(OpKind kind, ulong offset, ulong length, bool mayUnmap, ulong token)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!BlockIoArguments.IsRange(offset, length))
        {
            return RrStatus.InvalidArgument;
        }

        if (!TryRent(kind, offset, token, out Op op))
        {
            return RrStatus.Busy;
        }

        op.Length = length;
        op.MayUnmap = mayUnmap;
        op.IovCount = 0;
        Enlist(op);
        return RrStatus.Ok;
    }

    private Op Rent()
    {
        lock (_doneLock)
        {
            if (_pool.Count > 0)
            {
                return _pool.Pop();
            }
        }

        return new Op();
    }

    private void Enlist(Op op)
    {
        _batch.Add(op);
        _inFlight++;
    }

    /// <inheritdoc/>
    public void Commit()
    {
        if (_batch.Count == 0)
        {
            return;
        }

        lock (_work)
        {
            foreach (Op op in _batch)
            {
                _work.Enqueue(op);
            }

            if (_batch.Count == 1)
            {
                Monitor.Pulse(_work);
            }
            else
            {
                Monitor.PulseAll(_work);
            }
        }

        _batch.Clear();
    }

    /// <inheritdoc/>
    public bool HasCompletions => Volatile.Read(ref _doneCount) != 0;

    /// <inheritdoc/>
    public int Reap(Span<BlockIoCompletion> completions)
    {
        int n = 0;
        lock (_doneLock)
        {
            while (n < completions.Length && _done.TryDequeue(out BlockIoCompletion c))
            {
                completions[n++] = c;
            }

            Volatile.Write(ref _doneCount, _done.Count);
        }

        _inFlight -= n;
        return n;
    }

    /// <summary>Finishes every committed I/O (uncommitted ones are dropped), stops the workers and closes the eventfd.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _batch.Clear();
        lock (_work)
        {
            _stopping = true;
            Monitor.PulseAll(_work);
        }

        foreach (Thread t in _workers)
        {
            t.Join();
        }

        _completion.Dispose();
    }

    private void Work()
    {
        while (true)
        {
            Op op;
            lock (_work)
            {
                while (_work.Count == 0 && !_stopping)
                {
                    Monitor.Wait(_work);
                }

                if (!_work.TryDequeue(out op!))
                {
                    return; // stopping, and nothing left to do
                }
            }

            long result = Execute(op);
            lock (_doneLock)
            {
                _done.Enqueue(new BlockIoCompletion(op.Token, result));
                Volatile.Write(ref _doneCount, _done.Count);
                _pool.Push(op);
            }

            _completion.Signal();
        }
    }

    private long Execute(Op op) => op.Kind switch
    {
        OpKind.Read or OpKind.Write => Transfer(op),
        OpKind.Flush => BlockFile.DataSync(_fd),
        OpKind.Discard => BlockFile.Discard(_fd, op.Offset, op.Length),
        _ => BlockFile.WriteZeroes(_fd, op.Offset, op.Length, op.MayUnmap),
    };

    /// <summary>preadv/pwritev until every buffer is done, the file ends (read: the bytes so far), or an error (-errno).</summary>
    private long Transfer(Op op)
    {
        const long EIO = 5;
        BlockIoVec[] iov = op.Iov;
        int first = 0;
        long total = 0;
        while (first < op.IovCount)
        {
            long r;
            // SAFETY: iov is pinned for the call; BlockIoVec has struct iovec's layout; its buffers are
            // guest memory the submitter keeps mapped until this operation completes (IBlockIoEngine contract).
            fixed (BlockIoVec* p = iov)
            {
                r = op.Kind == OpKind.Read
                    ? BlockFile.PReadV(_fd, p + first, op.IovCount - first, op.Offset + (ulong)total)
                    : BlockFile.PWriteV(_fd, p + first, op.IovCount - first, op.Offset + (ulong)total);
            }

            if (r < 0)
            {
                return r;
            }

            if (r == 0)
            {
                // End of file: a read reports what it got; a write that makes no progress failed.
                return op.Kind == OpKind.Read ? total : -EIO;
            }

            total += r;
            // Skip the buffers done; trim the one the transfer ended inside.
            while (r > 0 && first < op.IovCount)
            {
                BlockIoVec v = iov[first];
                if ((ulong)r >= v.Length)
                {
                    r -= (long)v.Length;
                    first++;
                }
                else
                {
                    iov[first] = new BlockIoVec(v.Base + r, v.Length - (nuint)r);
                    r = 0;
                }
            }
        }

        return total;
    }

    private sealed class Op
    {
        public OpKind Kind;
        public ulong Offset;
        public ulong Length;
        public bool MayUnmap;
        public ulong Token;
        public BlockIoVec[] Iov = new BlockIoVec[8];
        public int IovCount;
    }
}
