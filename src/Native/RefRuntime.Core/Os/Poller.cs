// poll(2) over a handful of descriptors: the vhost-user loop waits on its socket, every ring's
// kick eventfd and a stop eventfd at once. EINTR is retried with the time that is left.

using System;
using System.Diagnostics;

namespace RefRuntime.Core.Os;

/// <summary>poll(2) wrappers.</summary>
public static unsafe class Poller
{
    /// <summary>POLLIN.</summary>
    public const short In = Libc.POLLIN;

    /// <summary>POLLHUP | POLLERR | POLLNVAL: the descriptor is closed, failed or invalid.</summary>
    public const short Gone = Libc.POLLHUP | Libc.POLLERR | Libc.POLLNVAL;

    /// <summary>Waits until one of <paramref name="fds"/> is ready or <paramref name="timeoutMs"/> passes (-1: forever).</summary>
    /// <returns>The number of ready entries (their Revents are set), 0 on timeout, -1 on failure (errno).</returns>
    public static int Wait(Span<PollFd> fds, int timeoutMs)
    {
        long start = Stopwatch.GetTimestamp();
        while (true)
        {
            int r;
            // SAFETY: pins the pollfd array for the poll call inside this block; the kernel writes revents only during it.
            fixed (PollFd* p = fds)
            {
                // SAFETY: p points at fds.Length pollfd entries (pinned).
                r = Libc.poll(p, (nuint)fds.Length, timeoutMs);
            }

            if (r >= 0 || Libc.Errno != Libc.EINTR)
            {
                return r;
            }

            if (timeoutMs > 0)
            {
                timeoutMs = Math.Max(0, timeoutMs - (int)Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }
    }

    /// <summary>Waits for <paramref name="fd"/> to be readable (or hung up): 1, 0 on timeout, -1 on failure.</summary>
    public static int WaitReadable(int fd, int timeoutMs)
    {
        Span<PollFd> p = [new PollFd { Fd = fd, Events = Libc.POLLIN }];
        return Wait(p, timeoutMs);
    }

    /// <summary>Waits for <paramref name="fd"/> to be writable: 1, 0 on timeout, -1 on failure.</summary>
    public static int WaitWritable(int fd, int timeoutMs)
    {
        Span<PollFd> p = [new PollFd { Fd = fd, Events = 4 }]; // POLLOUT
        return Wait(p, timeoutMs);
    }
}
