// Closing descriptors, describing errno values, and counting a process's open descriptors: the
// small pieces every other wrapper in this folder shares.

using System;
using System.IO;
using System.Runtime.InteropServices;

namespace RefRuntime.Core.Os;

/// <summary>Descriptor helpers.</summary>
public static class FileDescriptor
{
    /// <summary>Closes <paramref name="fd"/> (negative values are ignored). EINTR still closes on Linux, so it is not retried.</summary>
    public static void Close(int fd)
    {
        if (fd >= 0)
        {
            // SAFETY: plain syscall; the caller owns fd and forgets it after this call.
            Libc.close(fd);
        }
    }

    /// <summary>Whether <paramref name="fd"/> names an open descriptor of this process (F_GETFD succeeds).</summary>
    public static bool IsOpen(int fd) =>
        // SAFETY: F_GETFD only reads the descriptor flags.
        fd >= 0 && Libc.fcntl(fd, Libc.F_GETFD, 0) >= 0;

    /// <summary>Open descriptors of process <paramref name="pid"/> (entries of /proc/PID/fd), or -1 when unreadable.</summary>
    public static int CountOpen(int pid)
    {
        try
        {
            return Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;
        }
        catch (IOException)
        {
            return -1;
        }
        catch (UnauthorizedAccessException)
        {
            return -1;
        }
    }
}

/// <summary>errno values as text.</summary>
public static class OsError
{
    /// <summary>"strerror (errno N)" for <paramref name="errno"/>.</summary>
    public static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
