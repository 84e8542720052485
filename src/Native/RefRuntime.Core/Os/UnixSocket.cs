// A Unix stream socket that carries file descriptors (unix(7) SCM_RIGHTS): listen, accept,
// connect, and sendmsg/recvmsg with descriptors attached. Received descriptors are created
// close-on-exec (MSG_CMSG_CLOEXEC) and handed to the caller, who owns them from then on; a
// message whose descriptors did not all fit (MSG_CTRUNC: the kernel closed the rest) is reported
// so the caller can treat it as a protocol violation.

using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;

namespace RefRuntime.Core.Os;

/// <summary>What a <see cref="UnixSocket.Receive"/> returned.</summary>
public enum ReceiveOutcome
{
    /// <summary>Bytes were read.</summary>
    Data = 0,

    /// <summary>The peer closed the connection (end of stream).</summary>
    Closed = 1,

    /// <summary>Nothing arrived within the timeout.</summary>
    TimedOut = 2,

    /// <summary>The call failed (the error says why); the connection is unusable.</summary>
    Failed = 3,
}

/// <summary>
/// A byte stream that carries file descriptors: what a vhost-user channel reads and writes. A
/// Unix socket in production, an in-memory pipe in tests.
/// </summary>
public interface IFdStream
{
    /// <summary>As <see cref="UnixSocket.Receive"/>.</summary>
    ReceiveOutcome Receive(Span<byte> buffer, List<int> fds, int timeoutMs, out int received, out bool truncated, out string? error);

    /// <summary>As <see cref="UnixSocket.Send"/>.</summary>
    bool Send(ReadOnlySpan<byte> data, ReadOnlySpan<int> fds, out string? error);

    /// <summary>Closes a descriptor that arrived on this stream and is not wanted.</summary>
    void CloseFd(int fd);
}

/// <summary>A Unix stream socket (see file comment). One reader and one writer at a time.</summary>
public sealed unsafe class UnixSocket : IFdStream, IDisposable
{
    /// <summary>The most descriptors one receive accepts (a vhost-user message carries at most 8).</summary>
    public const int MaxFdsPerMessage = 16;

    private const int SunPathOffset = 2;
    private const int SunPathMax = 108;
    private int _fd;

    private UnixSocket(int fd) => _fd = fd;

    /// <summary>The descriptor (-1 once disposed).</summary>
    public int Fd => Volatile.Read(ref _fd);

    /// <summary>Adopts <paramref name="fd"/> (a Unix stream socket, connected or listening); closed by <see cref="Dispose"/>.</summary>
    public static UnixSocket Adopt(int fd)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        return new UnixSocket(fd);
    }

    /// <summary>Whether the socket is listening (SO_ACCEPTCONN); false also when the query fails.</summary>
    public bool IsListening
    {
        get
        {
            int v = 0;
            uint len = sizeof(int);
            // SAFETY: v and len are locals of the sizes getsockopt(2) writes.
            return Libc.getsockopt(Fd, Libc.SOL_SOCKET, Libc.SO_ACCEPTCONN, &v, &len) == 0 && v != 0;
        }
    }

    /// <summary>Whether <paramref name="fd"/> is a stream socket (SO_TYPE).</summary>
    public static bool IsStreamSocket(int fd)
    {
        int v = 0;
        uint len = sizeof(int);
        // SAFETY: as IsListening.
        return Libc.getsockopt(fd, Libc.SOL_SOCKET, Libc.SO_TYPE, &v, &len) == 0 && v == Libc.SOCK_STREAM;
    }

    /// <summary>Creates a socket listening at <paramref name="path"/> (a stale socket file there is replaced).</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.InvalidArgument"/> / <see cref="RrStatus.Internal"/> with <paramref name="error"/>.</returns>
    public static RrStatus Listen(string path, int backlog, out UnixSocket? listener, out string? error)
    {
        listener = null;
        if (!TryAddress(path, out byte[] addr, out error))
        {
            return RrStatus.InvalidArgument;
        }

        // SAFETY: plain syscall, no pointers.
        int fd = Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            error = $"socket: {OsError.Describe(Libc.Errno)}";
            return RrStatus.Internal;
        }

        // SAFETY: a path string, marshalled by the source generator; a socket file left by an earlier run goes, ENOENT is fine.
        Libc.unlink(path);
        // SAFETY: pins the sockaddr_un bytes for the bind/connect call below only; the kernel reads them during the call.
        fixed (byte* a = addr)
        {
            // SAFETY: a points at a sockaddr_un of addr.Length bytes.
            if (Libc.bind(fd, a, (uint)addr.Length) != 0 || Libc.listen(fd, backlog) != 0)
            {
                error = $"bind/listen {path}: {OsError.Describe(Libc.Errno)}";
                FileDescriptor.Close(fd);
                return RrStatus.Internal;
            }
        }

        listener = new UnixSocket(fd);
        return RrStatus.Ok;
    }

    /// <summary>Connects to the socket at <paramref name="path"/>.</summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NoDevice"/> (nobody listens there); <see cref="RrStatus.InvalidArgument"/>; <see cref="RrStatus.Internal"/>.</returns>
    public static RrStatus Connect(string path, out UnixSocket? socket, out string? error)
    {
        socket = null;
        if (!TryAddress(path, out byte[] addr, out error))
        {
            return RrStatus.InvalidArgument;
        }

        // SAFETY: plain syscall.
        int fd = Libc.socket(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            error = $"socket: {OsError.Describe(Libc.Errno)}";
            return RrStatus.Internal;
        }

        // SAFETY: pins the sockaddr_un bytes for the bind/connect call below only; the kernel reads them during the call.
        fixed (byte* a = addr)
        {
            // SAFETY: a points at a sockaddr_un of addr.Length bytes.
            if (Libc.connect(fd, a, (uint)addr.Length) != 0)
            {
                int e = Libc.Errno;
                error = $"connect {path}: {OsError.Describe(e)}";
                FileDescriptor.Close(fd);
                return e is 2 or 111 ? RrStatus.NoDevice : RrStatus.Internal; // ENOENT, ECONNREFUSED
            }
        }

        socket = new UnixSocket(fd);
        return RrStatus.Ok;
    }

    /// <summary>A connected pair (socketpair(2)).</summary>
    public static RrStatus Pair(out UnixSocket? a, out UnixSocket? b, out string? error)
    {
        a = b = null;
        int* fds = stackalloc int[2];
        // SAFETY: fds holds the two ints socketpair(2) writes.
        if (Libc.socketpair(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC, 0, fds) != 0)
        {
            error = $"socketpair: {OsError.Describe(Libc.Errno)}";
            return RrStatus.Internal;
        }

        a = new UnixSocket(fds[0]);
        b = new UnixSocket(fds[1]);
        error = null;
        return RrStatus.Ok;
    }

    /// <summary>Waits up to <paramref name="timeoutMs"/> for a connection (-1: forever).</summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NotFound"/> (timed out); <see cref="RrStatus.Internal"/> with <paramref name="error"/>.</returns>
    public RrStatus Accept(int timeoutMs, out UnixSocket? connection, out string? error)
    {
        connection = null;
        error = null;
        int r = Poller.WaitReadable(Fd, timeoutMs);
        if (r == 0)
        {
            return RrStatus.NotFound;
        }

        if (r < 0)
        {
            error = $"poll: {OsError.Describe(Libc.Errno)}";
            return RrStatus.Internal;
        }

        // SAFETY: no address wanted (NULL, NULL).
        int fd = Libc.accept4(Fd, null, null, Libc.SOCK_CLOEXEC);
        if (fd < 0)
        {
            int e = Libc.Errno;
            if (e is Libc.EAGAIN or Libc.EINTR or 103) // ECONNABORTED: the client gave up
            {
                return RrStatus.NotFound;
            }

            error = $"accept: {OsError.Describe(e)}";
            return RrStatus.Internal;
        }

        connection = new UnixSocket(fd);
        return RrStatus.Ok;
    }

    /// <summary>Sends all of <paramref name="data"/>, with <paramref name="fds"/> attached to its first byte.</summary>
    /// <returns>False (with <paramref name="error"/>) when the connection failed.</returns>
    public bool Send(ReadOnlySpan<byte> data, ReadOnlySpan<int> fds, out string? error)
    {
        error = null;
        if (data.IsEmpty)
        {
            error = "nothing to send";
            return false;
        }

        if (fds.Length > MaxFdsPerMessage)
        {
            error = $"{fds.Length} descriptors in one message (at most {MaxFdsPerMessage})";
            return false;
        }

        int controlLength = fds.Length == 0 ? 0 : CmsgSpace(fds.Length);
        byte* control = stackalloc byte[CmsgSpace(MaxFdsPerMessage)];
        int sent = 0;
        // SAFETY: pins the payload for the sendmsg calls inside this block; the iovec never outlives it.
        fixed (byte* p = data)
        {
            while (sent < data.Length)
            {
                var iov = new IoVec { Base = p + sent, Length = (nuint)(data.Length - sent) };
                var msg = new MsgHdr { Iov = &iov, IovLength = 1 };
                if (sent == 0 && fds.Length > 0)
                {
                    // SAFETY: control holds CmsgSpace(MaxFdsPerMessage) ≥ controlLength bytes (stackalloc above).
                    new Span<byte>(control, controlLength).Clear();
                    // SAFETY: control holds CmsgSpace(MaxFdsPerMessage) ≥ controlLength bytes; one
                    // header followed by the descriptors, laid out as cmsg(3) CMSG_DATA does.
                    var h = (CmsgHdr*)control;
                    h->Length = (nuint)(sizeof(CmsgHdr) + (sizeof(int) * fds.Length));
                    h->Level = Libc.SOL_SOCKET;
                    h->Type = Libc.SCM_RIGHTS;
                    fds.CopyTo(new Span<int>(control + sizeof(CmsgHdr), fds.Length));
                    msg.Control = control;
                    msg.ControlLength = (nuint)controlLength;
                }

                // SAFETY: msg points at the iovec and control block above, all live on this frame.
                nint n = Libc.sendmsg(Fd, &msg, Libc.MSG_NOSIGNAL);
                if (n < 0)
                {
                    int e = Libc.Errno;
                    if (e == Libc.EINTR)
                    {
                        continue;
                    }

                    if (e == Libc.EAGAIN && Poller.WaitWritable(Fd, 1000) > 0)
                    {
                        continue;
                    }

                    error = $"sendmsg: {OsError.Describe(e)}";
                    return false;
                }

                sent += (int)n;
            }
        }

        return true;
    }

    /// <summary>
    /// Receives up to <paramref name="buffer"/>.Length bytes, waiting up to <paramref name="timeoutMs"/>
    /// (-1: forever) for the first; descriptors that arrive are appended to <paramref name="fds"/>
    /// (the caller owns them, even on failure). <paramref name="truncated"/> is set when some
    /// descriptors did not fit and the kernel discarded them.
    /// </summary>
    public ReceiveOutcome Receive(Span<byte> buffer, List<int> fds, int timeoutMs, out int received, out bool truncated, out string? error)
    {
        received = 0;
        truncated = false;
        error = null;
        if (timeoutMs >= 0)
        {
            int r = Poller.WaitReadable(Fd, timeoutMs);
            if (r == 0)
            {
                return ReceiveOutcome.TimedOut;
            }

            if (r < 0)
            {
                error = $"poll: {OsError.Describe(Libc.Errno)}";
                return ReceiveOutcome.Failed;
            }
        }

        int controlLength = CmsgSpace(MaxFdsPerMessage);
        byte* control = stackalloc byte[controlLength];
        // SAFETY: pins the receive buffer for the recvmsg call inside this block; the iovec never outlives it.
        fixed (byte* p = buffer)
        {
            var iov = new IoVec { Base = p, Length = (nuint)buffer.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)controlLength };
            nint n;
            do
            {
                // SAFETY: msg points at the caller's buffer (pinned) and our control block.
                n = Libc.recvmsg(Fd, &msg, Libc.MSG_CMSG_CLOEXEC);
            }
            while (n < 0 && Libc.Errno == Libc.EINTR);

            if (n < 0)
            {
                int e = Libc.Errno;
                error = $"recvmsg: {OsError.Describe(e)}";
                return e == 104 ? ReceiveOutcome.Closed : ReceiveOutcome.Failed; // ECONNRESET: the peer died
            }

            CollectFds(&msg, fds);
            truncated = (msg.Flags & Libc.MSG_CTRUNC) != 0;
            received = (int)n;
            return n == 0 ? ReceiveOutcome.Closed : ReceiveOutcome.Data;
        }
    }

    private static void CollectFds(MsgHdr* msg, List<int> fds)
    {
        // SAFETY: msg is the header recvmsg just filled; Control/ControlLength describe our own block.
        byte* c = (byte*)msg->Control;
        nuint end = msg->ControlLength;
        nuint off = 0;
        while (off + (nuint)sizeof(CmsgHdr) <= end)
        {
            // SAFETY: off + header size ≤ the control length the kernel reported (inside our block).
            var h = (CmsgHdr*)(c + off);
            if (h->Length < (nuint)sizeof(CmsgHdr) || off + h->Length > end)
            {
                break;
            }

            if (h->Level == Libc.SOL_SOCKET && h->Type == Libc.SCM_RIGHTS)
            {
                int count = (int)((h->Length - (nuint)sizeof(CmsgHdr)) / sizeof(int));
                for (int i = 0; i < count; i++)
                {
                    // SAFETY: i < count, which the header's length bounds inside the block.
                    fds.Add(((int*)(c + off + (nuint)sizeof(CmsgHdr)))[i]);
                }
            }

            off += (h->Length + 7) & ~(nuint)7;
        }
    }

    /// <inheritdoc/>
    public void CloseFd(int fd) => FileDescriptor.Close(fd);

    /// <summary>Wakes a thread blocked on the socket (both directions shut down); the descriptor stays open.</summary>
    public void Shutdown()
    {
        int fd = Fd;
        if (fd >= 0)
        {
            // SAFETY: plain syscall on our own descriptor.
            Libc.shutdown(fd, Libc.SHUT_RDWR);
        }
    }

    /// <summary>Closes the descriptor (once).</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0)
        {
            FileDescriptor.Close(fd);
        }
    }

    /// <summary>CMSG_SPACE for <paramref name="fds"/> descriptors.</summary>
    private static int CmsgSpace(int fds) => sizeof(CmsgHdr) + (((sizeof(int) * fds) + 7) & ~7);

    private static bool TryAddress(string path, out byte[] addr, out string? error)
    {
        addr = [];
        error = null;
        byte[] p = Encoding.UTF8.GetBytes(path);
        if (p.Length == 0 || p.Length >= SunPathMax || Array.IndexOf(p, (byte)0) >= 0)
        {
            error = $"socket path \"{path}\" must be 1 to {SunPathMax - 1} bytes without NUL";
            return false;
        }

        addr = new byte[SunPathOffset + p.Length + 1];
        addr[0] = Libc.AF_UNIX; // sa_family_t, host order (little-endian on the supported targets)
        p.CopyTo(addr, SunPathOffset);
        return true;
    }
}
