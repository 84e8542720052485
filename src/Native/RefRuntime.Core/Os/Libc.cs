// The only place where RefRuntime calls the operating system directly (Linux, LP64): Unix
// sockets with file descriptors in SCM_RIGHTS ancillary data (unix(7), cmsg(3)), mmap/munmap
// (mmap(2)), eventfd(2), memfd_create(2) with seals (fcntl(2) F_ADD_SEALS), poll(2), getrusage(2).
// .NET has no managed API for passing descriptors over a Unix socket (dotnet/runtime#932), so
// these are [LibraryImport]s - source-generated, AOT-clean, no runtime marshalling - and the
// small wrappers beside this file (UnixSocket, EventFd, SharedMemory, Poller) are what the rest
// of the library sees. Code above this folder (the vhost-user protocol, the region table) knows
// no syscall and can be tested with in-memory messages.
//
// Every import sets SetLastError so a wrapper can report errno (Marshal.GetLastPInvokeError).
// Struct layouts are the x86-64 and arm64 Linux ones (both LP64, identical here); OsTests pins them.

using System.Runtime.InteropServices;

namespace RefRuntime.Core.Os;

/// <summary><c>struct iovec</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoVec
{
    public void* Base;
    public nuint Length;
}

/// <summary><c>struct msghdr</c> (LP64: 56 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLength;
    public IoVec* Iov;
    public nuint IovLength;
    public void* Control;
    public nuint ControlLength;
    public int Flags;
}

/// <summary><c>struct cmsghdr</c> header (LP64: 16 bytes, data follows 8-byte aligned).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CmsgHdr
{
    public nuint Length;
    public int Level;
    public int Type;
}

/// <summary><c>struct pollfd</c>.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct PollFd
{
    /// <summary>The descriptor.</summary>
    public int Fd;

    /// <summary>Requested events (POLLIN ...).</summary>
    public short Events;

    /// <summary>Returned events.</summary>
    public short Revents;
}

/// <summary><c>struct rusage</c>: only the two leading <c>timeval</c>s are read.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct RUsage
{
    public long UserSeconds;
    public long UserMicroseconds;
    public long SystemSeconds;
    public long SystemMicroseconds;
    public unsafe fixed long Rest[14];
}

/// <summary>The libc imports (see file comment).</summary>
internal static unsafe partial class Libc
{
    public const int AF_UNIX = 1;
    public const int SOCK_STREAM = 1;
    public const int SOCK_NONBLOCK = 0x800;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1;
    public const int SO_ACCEPTCONN = 30;
    public const int SO_TYPE = 3;
    public const int SCM_RIGHTS = 1;
    public const int MSG_NOSIGNAL = 0x4000;
    public const int MSG_CTRUNC = 0x8;
    public const int MSG_CMSG_CLOEXEC = 0x40000000;
    public const int MSG_DONTWAIT = 0x40;
    public const int SHUT_RDWR = 2;

    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int MAP_SHARED = 1;
    public const int MAP_NORESERVE = 0x4000;

    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;

    public const uint MFD_CLOEXEC = 1;
    public const uint MFD_ALLOW_SEALING = 2;
    public const int F_GETFD = 1;
    public const int F_GETFL = 3;
    public const int F_SETFL = 4;
    public const int O_NONBLOCK = 0x800;
    public const int F_ADD_SEALS = 1033;
    public const int F_GET_SEALS = 1034;
    public const int F_SEAL_SEAL = 1;
    public const int F_SEAL_SHRINK = 2;
    public const int F_SEAL_GROW = 4;

    public const int SEEK_END = 2;

    public const short POLLIN = 1;
    public const short POLLERR = 8;
    public const short POLLHUP = 16;
    public const short POLLNVAL = 32;

    public const int EINTR = 4;
    public const int EAGAIN = 11;
    public const int ENOENT = 2;

    public const int RUSAGE_SELF = 0;
    public const int RUSAGE_THREAD = 1;

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int bind(int fd, byte* addr, uint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int listen(int fd, int backlog);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int accept4(int fd, byte* addr, uint* length, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int connect(int fd, byte* addr, uint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint recvmsg(int fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint sendmsg(int fd, MsgHdr* msg, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int shutdown(int fd, int how);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int getsockopt(int fd, int level, int name, int* value, uint* length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int socketpair(int domain, int type, int protocol, int* fds);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial nint write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int fcntl(int fd, int command, int argument);

    [LibraryImport("libc", SetLastError = true)]
    public static partial long lseek(int fd, long offset, int whence);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int ftruncate(int fd, long length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int dup(int fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int memfd_create(string name, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int eventfd(uint initial, int flags);

    [LibraryImport("libc", SetLastError = true)]
    public static partial void* mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int munmap(void* address, nuint length);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int unlink(string path);

    [LibraryImport("libc", SetLastError = true)]
    public static partial int getrusage(int who, RUsage* usage);

    /// <summary>The errno of the last import called on this thread.</summary>
    public static int Errno => Marshal.GetLastPInvokeError();
}
