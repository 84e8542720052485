// The back-end's event loop: listen on a Unix socket (or use one inherited as a descriptor), serve
// one front-end connection at a time, and after a disconnect serve the next (QEMU
// docs/interop/vhost-user.rst "Backend program conventions": --socket-path, --fd).
//
// One thread does everything for a connection: poll(2) on the socket, every ring's kick eventfd
// and a stop eventfd; a readable kick is drained and becomes IVhostUserBackend.Kick, a readable
// socket becomes one framed message for the session. A device that polls its kicks itself
// (IVhostUserBackend.HandlesKicks: a queue thread per ring) gets no kicks from here. The device does its own work on its own
// threads. A connection ends when the front-end closes it, breaks the framing, or the session
// asks to disconnect; the session is then disposed - rings stopped, device reset, every
// descriptor closed, memory unmapped - before the next accept, so nothing of one front-end
// survives into the next. Stop (any thread, a signal handler) wakes the loop through the stop
// eventfd and Run returns. An unexpected exception while handling a request (a bug, never the
// peer's doing) ends that connection, logged, and the server goes on to the next.

using System;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Os;

namespace RefRuntime.Core.Vhost;

/// <summary>A vhost-user back-end server (see file comment).</summary>
public sealed class VhostUserServer : IDisposable
{
    private const int PollingIntervalMs = 10;

    private readonly IVhostUserBackend _backend;
    private readonly IVhostPlatform _platform;
    private readonly Action<string>? _log;
    private readonly EventFd _stop = EventFd.Create();
    private readonly string? _path;
    private UnixSocket? _listener;
    private UnixSocket? _inherited; // a connected socket passed with --fd: serve it once
    private volatile bool _stopping;
    private int _connections;
    private VhostUserSession? _session;

    private VhostUserServer(IVhostUserBackend backend, IVhostPlatform? platform, Action<string>? log, string? path)
    {
        _backend = backend;
        _log = log;
        _platform = platform ?? new LinuxVhostPlatform(log);
        _path = path;
    }

    /// <summary>When set, every request and reply is logged through it (debugging a front-end).</summary>
    public Action<string>? Trace { get; set; }

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>The session of the connection being served, or null. For diagnostics and tests; its state belongs to the server thread.</summary>
    public VhostUserSession? CurrentSession => Volatile.Read(ref _session);

    /// <summary>Listens at <paramref name="path"/>.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or an error with <paramref name="error"/>.</returns>
    public static RrStatus Listen(string path, IVhostUserBackend backend, Action<string>? log, out VhostUserServer? server, out string? error, IVhostPlatform? platform = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        server = null;
        RrStatus s = UnixSocket.Listen(path, 4, out UnixSocket? listener, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        server = new VhostUserServer(backend, platform, log, path) { _listener = listener };
        return RrStatus.Ok;
    }

    /// <summary>
    /// Serves the inherited socket <paramref name="fd"/>: a listening socket is accepted on like
    /// <see cref="Listen"/>; a connected one is served once, and <see cref="Run"/> returns when it closes.
    /// </summary>
    public static RrStatus FromFd(int fd, IVhostUserBackend backend, Action<string>? log, out VhostUserServer? server, out string? error, IVhostPlatform? platform = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        server = null;
        if (fd < 0 || !UnixSocket.IsStreamSocket(fd))
        {
            error = $"descriptor {fd} is not an open stream socket";
            return RrStatus.InvalidArgument;
        }

        var sock = UnixSocket.Adopt(fd);
        server = new VhostUserServer(backend, platform, log, null);
        if (sock.IsListening)
        {
            server._listener = sock;
        }
        else
        {
            server._inherited = sock;
        }

        error = null;
        return RrStatus.Ok;
    }

    /// <summary>Asks <see cref="Run"/> to return (the connection being served is closed). Any thread.</summary>
    public void Stop()
    {
        _stopping = true;
        _stop.Signal();
    }

    /// <summary>Serves connections until <see cref="Stop"/> (or, for an inherited connected socket, until it closes).</summary>
    public void Run()
    {
        while (!_stopping)
        {
            UnixSocket? conn = Interlocked.Exchange(ref _inherited, null);
            bool once = conn is not null;
            if (conn is null)
            {
                if (_listener is null)
                {
                    return;
                }

                Span<PollFd> p = [new PollFd { Fd = _listener.Fd, Events = Poller.In }, new PollFd { Fd = _stop.Fd, Events = Poller.In }];
                if (Poller.Wait(p, -1) < 0 || (p[1].Revents & Poller.In) != 0)
                {
                    continue;
                }

                RrStatus s = _listener.Accept(0, out conn, out string? error);
                if (s != RrStatus.Ok)
                {
                    if (error is not null)
                    {
                        Log($"accept failed: {error}");
                        Thread.Sleep(10); // out of descriptors, say: do not spin
                    }

                    continue;
                }
            }

            using (conn)
            {
                Serve(conn!);
            }

            if (once)
            {
                return;
            }
        }
    }

    private void Serve(UnixSocket conn)
    {
        int id = Interlocked.Increment(ref _connections);
        Log($"connection {id}: front-end connected");
        var channel = new VhostUserChannel(conn);
        var session = new VhostUserSession(_backend, _platform, line => Log($"connection {id}: {line}"));
        Volatile.Write(ref _session, session);
        string end = "stopping";
        var fds = new List<PollFd>();
        var ringOf = new List<int>();
        var deadKicks = new HashSet<int>();
        TimeSpan cpu0 = CpuTime.Process();
        try
        {
            while (!_stopping)
            {
                fds.Clear();
                ringOf.Clear();
                fds.Add(new PollFd { Fd = conn.Fd, Events = Poller.In });
                fds.Add(new PollFd { Fd = _stop.Fd, Events = Poller.In });
                bool polling = false;
                for (int i = 0; i < session.RingCount && !session.DeviceHandlesKicks; i++)
                {
                    int k = session.KickFd(i);
                    if (k >= 0 && !deadKicks.Contains(k))
                    {
                        fds.Add(new PollFd { Fd = k, Events = Poller.In });
                        ringOf.Add(i);
                    }

                    polling |= session.IsRingPolling(i);
                }

                PollFd[] arr = fds.ToArray();
                if (Poller.Wait(arr, polling ? PollingIntervalMs : -1) < 0)
                {
                    end = "poll failed";
                    break;
                }

                if ((arr[1].Revents & Poller.In) != 0)
                {
                    break;
                }

                for (int j = 2; j < arr.Length; j++)
                {
                    if ((arr[j].Revents & Poller.In) != 0)
                    {
                        EventFd.Drain(arr[j].Fd);
                        session.OnKick(ringOf[j - 2]);
                    }
                    else if ((arr[j].Revents & Poller.Gone) != 0)
                    {
                        deadKicks.Add(arr[j].Fd);
                        Log($"connection {id}: ring {ringOf[j - 2]}'s kick descriptor failed; the ring is no longer kicked");
                    }
                }

                for (int i = 0; polling && i < session.RingCount; i++)
                {
                    if (session.IsRingPolling(i))
                    {
                        session.OnKick(i);
                    }
                }

                if (arr[0].Revents == 0)
                {
                    continue;
                }

                VhostReadResult r = channel.Read(0, expectReply: false, out VhostUserMessage? msg, out string? error);
                if (r == VhostReadResult.Idle)
                {
                    continue;
                }

                if (r != VhostReadResult.Message)
                {
                    end = r == VhostReadResult.Closed ? "the front-end closed the connection" : $"{(r == VhostReadResult.Violation ? "protocol violation" : "transport failure")}: {error}";
                    break;
                }

                Trace?.Invoke($"connection {id}: <- {Describe(msg!)}");
                VhostUserMessage? reply;
                bool disconnect;
                try
                {
                    reply = session.Handle(msg!, out disconnect);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // A bug of ours, not the peer's: end this connection, keep the process serving.
                    end = $"internal error handling {msg!.Request}: {e.GetType().Name}: {e.Message}";
                    break;
                }

                if (reply is not null)
                {
                    Trace?.Invoke($"connection {id}: -> {Describe(reply)}");
                }

                if (reply is not null && !channel.Write(reply, out error))
                {
                    end = $"sending the reply failed: {error}";
                    break;
                }

                if (disconnect)
                {
                    end = "the session ended after an unanswerable request";
                    break;
                }

                deadKicks.RemoveWhere(k => !IsKick(session, k));
            }
        }
        finally
        {
            Volatile.Write(ref _session, null);
            session.Dispose();
            // CPU time of the whole process (getrusage) while this connection was served: the device's cost per request.
            double cpuMs = (CpuTime.Process() - cpu0).TotalMilliseconds;
            Log($"connection {id}: ended ({end}); {session.Requests} messages, {session.Errors} errors, cpu {cpuMs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture)} ms");
        }
    }

    private static string Describe(VhostUserMessage m)
    {
        string payload = m.Payload.Length == 8 ? $"u64 0x{VhostUserMessage.ReadHost64(m.Payload, 0):x}" : $"{m.Payload.Length} bytes";
        return $"{m.Request} flags 0x{m.Flags:x} {payload}{(m.Fds.Count > 0 ? $", {m.Fds.Count} fd(s)" : string.Empty)}";
    }

    private static bool IsKick(VhostUserSession s, int fd)
    {
        for (int i = 0; i < s.RingCount; i++)
        {
            if (s.KickFd(i) == fd)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Closes the listener (and removes its socket file) and the stop descriptor.</summary>
    public void Dispose()
    {
        Stop();
        _listener?.Dispose();
        _inherited?.Dispose();
        if (_path is not null)
        {
            try
            {
                System.IO.File.Delete(_path);
            }
            catch (System.IO.IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        _stop.Dispose();
    }

    private void Log(string line) => _log?.Invoke(line);
}
