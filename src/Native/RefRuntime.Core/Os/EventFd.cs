// eventfd(2): the kick, call and error signals of vhost-user. Signal adds 1 to the counter (an
// 8-byte write; the value carries no meaning), Drain reads and clears it. Descriptors are
// non-blocking, so a full counter (2^64 - 2) or an empty one never blocks the caller.

using System;
using System.Threading;

namespace RefRuntime.Core.Os;

/// <summary>An owned eventfd (or any descriptor that takes 8-byte writes, such as a pipe a peer sent).</summary>
public sealed unsafe class EventFd : IDisposable
{
    private int _fd;

    private EventFd(int fd) => _fd = fd;

    /// <summary>The descriptor (-1 once disposed).</summary>
    public int Fd => Volatile.Read(ref _fd);

    /// <summary>Creates a non-blocking, close-on-exec eventfd.</summary>
    /// <exception cref="InvalidOperationException">eventfd(2) failed (out of descriptors).</exception>
    public static EventFd Create()
    {
        // SAFETY: plain syscall.
        int fd = Libc.eventfd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK);
        if (fd < 0)
        {
            throw new InvalidOperationException($"eventfd: {OsError.Describe(Libc.Errno)}");
        }

        return new EventFd(fd);
    }

    /// <summary>
    /// Adopts a descriptor received from a peer; closed by <see cref="Dispose"/>. It is switched to
    /// non-blocking (O_NONBLOCK), so a peer that sent a blocking descriptor that never drains
    /// cannot stall a signalling thread.
    /// </summary>
    public static EventFd Adopt(int fd)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fd);
        // SAFETY: F_GETFL/F_SETFL only change the descriptor's status flags.
        int flags = Libc.fcntl(fd, Libc.F_GETFL, 0);
        if (flags >= 0 && (flags & Libc.O_NONBLOCK) == 0)
        {
            // SAFETY: as above; the descriptor is ours now.
            Libc.fcntl(fd, Libc.F_SETFL, flags | Libc.O_NONBLOCK);
        }

        return new EventFd(fd);
    }

    /// <summary>Adds 1 to the counter. False when the write failed (the peer's descriptor is not an eventfd, or is full).</summary>
    public bool Signal() => Signal(Fd);

    /// <summary>Writes the 8-byte value 1 to <paramref name="fd"/>.</summary>
    public static bool Signal(int fd)
    {
        ulong one = 1;
        // SAFETY: writes the 8 bytes of a local.
        return fd >= 0 && Libc.write(fd, &one, sizeof(ulong)) == sizeof(ulong);
    }

    /// <summary>Reads and clears the counter; 0 when it was already clear (or the read failed).</summary>
    public ulong Drain() => Drain(Fd);

    /// <summary>Reads 8 bytes from <paramref name="fd"/> (non-blocking); 0 when nothing was there.</summary>
    public static ulong Drain(int fd)
    {
        ulong v = 0;
        // SAFETY: reads into the 8 bytes of a local.
        return fd >= 0 && Libc.read(fd, &v, sizeof(ulong)) == sizeof(ulong) ? v : 0;
    }

    /// <summary>Closes the descriptor (once).</summary>
    public void Dispose() => FileDescriptor.Close(Interlocked.Exchange(ref _fd, -1));
}
