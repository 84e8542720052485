// One virtio-blk request queue served by one thread (docs/virtio-blk.md "The queue thread").
//
// Design. The thread owns the virtqueue while it runs. Each round it
//   1. reaps the engine's completions (any order), writes each request's status byte, returns
//      its chain (AddUsed with the bytes written into it);
//   2. pops available chains while the engine has room, checks each (VirtioBlkRequest) and either
//      answers it at once (errors, GET_ID, empty transfers) or submits it with the chain's guest
//      buffers as the I/O vectors - no copy; the chain stays held, so those buffers stay mapped;
//   3. commits the batch to the engine, publishes the used entries and notifies the driver once
//      (NotifyPrepare: EVENT_IDX or NO_INTERRUPT decides).
// When a round did nothing it re-enables kicks (EnableNotifications, which re-checks the ring)
// and sleeps in poll(2) on the ring's kick eventfd, the engine's completion eventfd and its own
// wake eventfd - no hop through the vhost-user server thread. A full engine stops popping (the
// kick is not polled then) until completions free room. A ring kicked by polling (vhost-user
// "no descriptor") is looked at every PollingIntervalMs.
//
// Write-through. A driver that did not negotiate VIRTIO_BLK_F_FLUSH has no way to make writes
// durable, so the device behaves write-through for it (the cache modes of virtio 1.2 §5.2.5): a
// write, discard or write-zeroes is followed by an fdatasync of the same request before its
// status says OK. With FLUSH, a FLUSH request is an fdatasync whose
// completion comes before the OK; a write is acknowledged only once pwritev completed.
//
// Stop. Stop (any thread but this one) asks the thread to stop popping, waits while it finishes
// every I/O in flight - their buffers are guest memory, so nothing may return before the kernel
// is done with them - and completes those requests into the ring, then joins it. After Stop
// returns the queue is not touched again, so the owner may stop, reset or unmap it.

using System;
using System.Diagnostics;
using System.Threading;
using RefRuntime.Core.Os;
using RefRuntime.Core.Virtio;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>A request queue and its thread (see file comment).</summary>
public sealed class VirtioBlkQueue : IDisposable
{
    /// <summary>How often a ring without a kick descriptor is looked at.</summary>
    public const int PollingIntervalMs = 10;

    private const int LoggedErrors = 10;

    private readonly VirtioBlkDevice _device;
    private readonly IBlockIoEngine _engine;
    private readonly Action<string>? _log;
    private readonly EventFd _wake = EventFd.Create();
    private readonly BlockIoCompletion[] _completions = new BlockIoCompletion[64];
    private VirtioBlkRequest[] _requests = [];
    private Thread? _thread;
    private VirtqDevice? _queue;
    private Action? _notify;
    private Action? _signalError;
    private ulong _features;
    private int _kickFd = -1;
    private volatile bool _stopRequested;
    private bool _broken;
    private int _errorsLogged;
    private long _requestCount;
    private long _ioErrors;
    private long _unsupported;
    private long _noStatus;
    private long _ioFailures;
    private bool _disposed;

    /// <summary>A queue of <paramref name="device"/> doing its I/O through <paramref name="engine"/> (owned from now on).</summary>
    public VirtioBlkQueue(VirtioBlkDevice device, int index, IBlockIoEngine engine, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(engine);
        _device = device;
        _engine = engine;
        _log = log;
        Index = index;
    }

    /// <summary>The queue's index.</summary>
    public int Index { get; }

    /// <summary>The engine.</summary>
    public IBlockIoEngine Engine => _engine;

    /// <summary>Whether the thread runs.</summary>
    public bool IsRunning => _thread is not null;

    /// <summary>Requests taken from the ring (well-formed or not).</summary>
    public long Requests => Interlocked.Read(ref _requestCount);

    /// <summary>Requests answered IOERR for being malformed or out of range.</summary>
    public long IoErrors => Interlocked.Read(ref _ioErrors);

    /// <summary>Requests answered UNSUPP.</summary>
    public long Unsupported => Interlocked.Read(ref _unsupported);

    /// <summary>Chains returned with used length 0: malformed, or no writable byte for a status.</summary>
    public long NoStatus => Interlocked.Read(ref _noStatus);

    /// <summary>I/Os the file system failed (or read short): answered IOERR.</summary>
    public long IoFailures => Interlocked.Read(ref _ioFailures);

    /// <summary>
    /// Starts serving <paramref name="queue"/> (started; used by this queue's thread only until <see cref="Stop"/>).
    /// </summary>
    /// <param name="queue">The virtqueue (started).</param>
    /// <param name="features">The negotiated feature bits.</param>
    /// <param name="kickFd">The driver's kick eventfd (not owned; open until Stop returns), or -1 to poll the ring.</param>
    /// <param name="notify">Signals the driver (used buffers); called from the queue thread.</param>
    /// <param name="signalError">Signals that the ring broke (optional).</param>
    public void Start(VirtqDevice queue, ulong features, int kickFd, Action notify, Action? signalError = null)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(notify);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_thread is not null)
        {
            throw new InvalidOperationException($"queue {Index} is already running");
        }

        _queue = queue;
        _features = features;
        _kickFd = kickFd;
        _notify = notify;
        _signalError = signalError;
        _broken = false;
        _errorsLogged = 0;
        _stopRequested = false;
        if (_requests.Length < queue.Size)
        {
            var grown = new VirtioBlkRequest[queue.Size];
            _requests.CopyTo(grown, 0);
            for (int i = _requests.Length; i < grown.Length; i++)
            {
                grown[i] = new VirtioBlkRequest();
            }

            _requests = grown;
        }

        _thread = new Thread(Run) { IsBackground = true, Name = $"blk-q{Index}" };
        _thread.Start();
    }

    /// <summary>Wakes the thread to look at the ring (a kick that arrived some other way). Any thread.</summary>
    public void Wake() => _wake.Signal();

    /// <summary>
    /// Stops the thread after every I/O in flight finished and was completed into the ring (see
    /// file comment). Not from the queue thread. Idempotent.
    /// </summary>
    public void Stop()
    {
        Thread? t = _thread;
        if (t is null)
        {
            return;
        }

        _stopRequested = true;
        _wake.Signal();
        t.Join();
        _thread = null;
        _queue = null;
        _notify = null;
        _signalError = null;
        _kickFd = -1;
    }

    /// <summary>Stops, then disposes the engine and the wake descriptor.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        Stop();
        _disposed = true;
        _engine.Dispose();
        _wake.Dispose();
    }

    // ---- the queue thread -----------------------------------------------------------------------

    private void Run()
    {
        VirtqDevice q = _queue!;
        int kick = _kickFd;
        bool kickAlive = true;
        Span<PollFd> fds = stackalloc PollFd[3];
        long pollTicks = _device.PollMicroseconds * Stopwatch.Frequency / 1_000_000;
        while (true)
        {
            bool stopping = _stopRequested;
            bool progressed = ReapCompletions(q);
            if (!stopping && !_broken)
            {
                progressed |= PopRequests(q);
            }

            _engine.Commit();
            if (q.NotifyPrepare())
            {
                _notify!();
            }

            if (stopping && _engine.InFlight == 0)
            {
                return;
            }

            if (progressed)
            {
                continue;
            }

            bool full = _engine.InFlight >= _engine.Capacity;
            bool wantRing = !stopping && !full && !_broken;
            if (pollTicks > 0 && !stopping && Poll(q, wantRing, pollTicks))
            {
                continue; // found work while kicks stayed off
            }

            if (wantRing && q.EnableNotifications())
            {
                continue; // chains arrived while kicks were off
            }

            int n = 0;
            fds[n++] = new PollFd { Fd = _wake.Fd, Events = Poller.In };
            fds[n++] = new PollFd { Fd = _engine.CompletionFd, Events = Poller.In };
            bool pollKick = wantRing && kick >= 0 && kickAlive;
            if (pollKick)
            {
                fds[n++] = new PollFd { Fd = kick, Events = Poller.In };
            }

            int timeout = wantRing && kick < 0 ? PollingIntervalMs : -1;
            if (Poller.Wait(fds[..n], timeout) < 0)
            {
                LogError($"poll failed: {OsError.Describe(Libc.Errno)}");
                Thread.Sleep(PollingIntervalMs); // do not spin on a persistent failure
                continue;
            }

            for (int i = 0; i < n; i++)
            {
                if ((fds[i].Revents & Poller.In) != 0)
                {
                    EventFd.Drain(fds[i].Fd);
                }
                else if (i == 2 && (fds[i].Revents & Poller.Gone) != 0)
                {
                    kickAlive = false;
                    LogError("the kick descriptor failed; the ring is no longer kicked");
                }
            }
        }
    }

    /// <summary>
    /// Looks at the ring (when <paramref name="wantRing"/>) and the engine for up to
    /// <paramref name="ticks"/> before the thread sleeps; kicks stay off meanwhile (with EVENT_IDX
    /// avail_event is not advanced, without it NO_NOTIFY stays set), so a request added in the
    /// window costs the driver no kick and this thread no wake-up.
    /// </summary>
    /// <returns>True when there is work.</returns>
    private bool Poll(VirtqDevice q, bool wantRing, long ticks)
    {
        if (wantRing)
        {
            q.DisableNotifications();
        }

        long deadline = Stopwatch.GetTimestamp() + ticks;
        do
        {
            if ((wantRing && q.HasAvailable) || (_engine.InFlight > 0 && _engine.HasCompletions) || _stopRequested)
            {
                return true;
            }

            Thread.SpinWait(16);
        }
        while (Stopwatch.GetTimestamp() < deadline);

        return false;
    }

    /// <summary>Takes every completion the engine has and finishes (or continues) its request.</summary>
    private bool ReapCompletions(VirtqDevice q)
    {
        bool any = false;
        int n;
        while ((n = _engine.Reap(_completions)) > 0)
        {
            any = true;
            for (int i = 0; i < n; i++)
            {
                BlockIoCompletion c = _completions[i];
                if (c.Token >= (ulong)_requests.Length)
                {
                    continue; // not ours: an engine bug, never the guest's doing
                }

                Finish(q, _requests[c.Token], c.Result);
            }
        }

        return any;
    }

    private void Finish(VirtqDevice q, VirtioBlkRequest r, long result)
    {
        bool ok = r.Type switch
        {
            VIRTIO_BLK_T_IN or VIRTIO_BLK_T_OUT => !r.Syncing ? result == r.DataBytes : result == 0,
            _ => result == 0,
        };
        if (ok && r.SyncAfter && !r.Syncing)
        {
            // Write-through: the data is in the file; make it durable before saying so.
            r.Syncing = true;
            if (_engine.SubmitFlush((ulong)r.Head) == RrStatus.Ok)
            {
                return;
            }

            ok = false;
        }

        if (!ok)
        {
            Interlocked.Increment(ref _ioFailures);
            LogError($"{TypeName(r.Type)} at byte {r.Offset} failed: {(result < 0 ? OsError.Describe((int)-result) : $"{result} of {r.DataBytes} bytes")}");
        }

        Answer(q, r, ok ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR, ok && r.Type == VIRTIO_BLK_T_IN ? r.DataBytes + 1 : 1);
    }

    /// <summary>Pops while the engine has room; answers what it can at once, submits the rest.</summary>
    private bool PopRequests(VirtqDevice q)
    {
        bool any = false;
        while (_engine.InFlight < _engine.Capacity)
        {
            RrStatus s = q.TryPop(out VirtqChain chain);
            if (s == RrStatus.NotFound)
            {
                break;
            }

            if (s == RrStatus.Broken)
            {
                _broken = true;
                LogError($"the ring is broken: {q.BrokenReason}");
                _signalError?.Invoke();
                break;
            }

            any = true;
            Interlocked.Increment(ref _requestCount);
            if (s == RrStatus.Malformed)
            {
                Interlocked.Increment(ref _noStatus);
                LogError($"malformed chain: {q.LastMalformedReason}");
                q.AddUsed(chain.Head, 0);
                continue;
            }

            VirtioBlkRequest r = _requests[chain.Head];
            switch (r.Parse(q, chain, _device, _features))
            {
                case BlkVerdict.NoStatus:
                    Interlocked.Increment(ref _noStatus);
                    LogError($"chain at head {chain.Head}: {r.Error}");
                    q.AddUsed(chain.Head, 0);
                    break;
                case BlkVerdict.Complete:
                    if (r.Error is not null)
                    {
                        Interlocked.Increment(ref r.Status == VIRTIO_BLK_S_UNSUPP ? ref _unsupported : ref _ioErrors);
                        LogError($"chain at head {chain.Head}: {r.Error}");
                    }

                    Answer(q, r, r.Status, r.UsedLength);
                    break;
                default:
                    if (Submit(r) != RrStatus.Ok)
                    {
                        Interlocked.Increment(ref _ioFailures);
                        LogError($"chain at head {chain.Head}: the I/O engine refused the request");
                        Answer(q, r, VIRTIO_BLK_S_IOERR, 1);
                    }

                    break;
            }
        }

        return any;
    }

    private RrStatus Submit(VirtioBlkRequest r)
    {
        ulong token = (ulong)r.Head;
        return r.Type switch
        {
            VIRTIO_BLK_T_IN => _engine.SubmitRead(r.Offset, r.Iov.AsSpan(0, r.IovCount), token),
            VIRTIO_BLK_T_OUT => _engine.SubmitWrite(r.Offset, r.Iov.AsSpan(0, r.IovCount), token),
            VIRTIO_BLK_T_FLUSH => _engine.SubmitFlush(token),
            VIRTIO_BLK_T_DISCARD => _engine.SubmitDiscard(r.Offset, r.RangeLength, token),
            VIRTIO_BLK_T_WRITE_ZEROES => _engine.SubmitWriteZeroes(r.Offset, r.RangeLength, r.MayUnmap, token),
            _ => RrStatus.InvalidArgument,
        };
    }

    /// <summary>Writes the status byte and returns the chain.</summary>
    private static void Answer(VirtqDevice q, VirtioBlkRequest r, byte status, uint usedLength)
    {
        ReadOnlySpan<byte> b = [status];
        q.WriteChain(r.Head, r.StatusOffset, b, out _);
        q.AddUsed(r.Head, usedLength); // Broken: the ring is dead and the chain with it
    }

    private static string TypeName(uint type) => type switch
    {
        VIRTIO_BLK_T_IN => "read",
        VIRTIO_BLK_T_OUT => "write",
        VIRTIO_BLK_T_FLUSH => "flush",
        VIRTIO_BLK_T_DISCARD => "discard",
        VIRTIO_BLK_T_WRITE_ZEROES => "write-zeroes",
        _ => $"type {type}",
    };

    /// <summary>Logs the first few request errors of a run, then only counts them (a guest can send millions).</summary>
    private void LogError(string line)
    {
        if (_log is null)
        {
            return;
        }

        int k = ++_errorsLogged;
        if (k <= LoggedErrors)
        {
            _log($"queue {Index}: {line}");
        }
        else if (k == LoggedErrors + 1)
        {
            _log($"queue {Index}: further errors are counted, not logged");
        }
    }
}
