// The disk image behind a block device: open(2) a regular file or a block device, learn its size
// (statx(2) for the type, the file size, or the BLKGETSIZE64 ioctl for a block device), take an
// advisory flock(2) so a second writer is refused, and the positioned I/O the engines run:
// preadv(2)/pwritev(2), fdatasync(2), fallocate(2) PUNCH_HOLE and ZERO_RANGE (with a fallback of
// writing zeroes where the file system has neither).
//
// The I/O helpers are static and take the descriptor, so an engine can call them from its own
// threads; each returns bytes (or 0) on success and -errno on failure, never throws, and retries
// EINTR. Short transfers are the caller's business (the engine continues them).

using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace RefRuntime.Core.Os;

/// <summary>An open disk image (see file comment).</summary>
public sealed unsafe partial class BlockFile : IDisposable
{
    private const int ZeroChunk = 1 << 20;
    private static byte[]? s_zeroes;
    private int _fd;

    private BlockFile(int fd, string path, ulong size, bool readOnly, bool blockDevice)
    {
        _fd = fd;
        Path = path;
        Size = size;
        ReadOnly = readOnly;
        IsBlockDevice = blockDevice;
    }

    /// <summary>The descriptor (-1 once disposed).</summary>
    public int Fd => Volatile.Read(ref _fd);

    /// <summary>The path it was opened from (for logs).</summary>
    public string Path { get; }

    /// <summary>Bytes, at open time.</summary>
    public ulong Size { get; }

    /// <summary>Opened O_RDONLY.</summary>
    public bool ReadOnly { get; }

    /// <summary>A block device rather than a regular file.</summary>
    public bool IsBlockDevice { get; }

    /// <summary>
    /// Opens <paramref name="path"/> (O_RDWR, or O_RDONLY when <paramref name="readOnly"/>; O_CLOEXEC),
    /// checks that it is a regular file or a block device, and locks it: exclusively for a writer,
    /// shared for a reader, so a second writer (or a writer beside readers) is refused.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NotFound"/>, <see cref="RrStatus.InvalidArgument"/> (not a file or device), <see cref="RrStatus.Busy"/> (locked by another process), <see cref="RrStatus.NoDevice"/>, each with <paramref name="error"/>.</returns>
    public static RrStatus Open(string path, bool readOnly, out BlockFile? file, out string? error)
    {
        ArgumentNullException.ThrowIfNull(path);
        file = null;
        int fd = BlockLibc.open(path, (readOnly ? BlockLibc.O_RDONLY : BlockLibc.O_RDWR) | BlockLibc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            int e = Libc.Errno;
            error = $"cannot open {path}: {OsError.Describe(e)}";
            return e == Libc.ENOENT ? RrStatus.NotFound : RrStatus.NoDevice;
        }

        RrStatus s = Inspect(fd, path, out ulong size, out bool blockDevice, out error);
        if (s == RrStatus.Ok)
        {
            // SAFETY: plain syscall on a descriptor we own.
            if (BlockLibc.flock(fd, (readOnly ? BlockLibc.LOCK_SH : BlockLibc.LOCK_EX) | BlockLibc.LOCK_NB) != 0)
            {
                int e = Libc.Errno;
                error = e == Libc.EAGAIN
                    ? $"{path} is in use by another process (it holds a conflicting lock: one writer, or any number of readers)"
                    : $"cannot lock {path}: {OsError.Describe(e)}";
                s = e == Libc.EAGAIN ? RrStatus.Busy : RrStatus.NoDevice;
            }
        }

        if (s != RrStatus.Ok)
        {
            FileDescriptor.Close(fd);
            return s;
        }

        file = new BlockFile(fd, path, size, readOnly, blockDevice);
        error = null;
        return RrStatus.Ok;
    }

    private static RrStatus Inspect(int fd, string path, out ulong size, out bool blockDevice, out string? error)
    {
        size = 0;
        blockDevice = false;
        StatX st = default;
        // SAFETY: statx writes at most sizeof(StatX) = 256 bytes into the local; "" with AT_EMPTY_PATH names fd itself.
        if (BlockLibc.statx(fd, string.Empty, BlockLibc.AT_EMPTY_PATH, BlockLibc.STATX_TYPE | BlockLibc.STATX_SIZE, &st) != 0)
        {
            error = $"cannot stat {path}: {OsError.Describe(Libc.Errno)}";
            return RrStatus.NoDevice;
        }

        int type = st.Mode & BlockLibc.S_IFMT;
        if (type == BlockLibc.S_IFREG)
        {
            size = st.Size;
        }
        else if (type == BlockLibc.S_IFBLK)
        {
            ulong bytes = 0;
            // SAFETY: BLKGETSIZE64 writes one u64 into the local.
            if (BlockLibc.ioctl(fd, BlockLibc.BLKGETSIZE64, &bytes) != 0)
            {
                error = $"cannot read the size of block device {path}: {OsError.Describe(Libc.Errno)}";
                return RrStatus.NoDevice;
            }

            size = bytes;
            blockDevice = true;
        }
        else
        {
            error = $"{path} is neither a regular file nor a block device";
            return RrStatus.InvalidArgument;
        }

        error = null;
        return RrStatus.Ok;
    }

    /// <summary>preadv(2) once: bytes read (0 at end of file) or -errno.</summary>
    /// <remarks><b>Safety:</b> <paramref name="iov"/> points at <paramref name="count"/> <c>struct iovec</c>s whose buffers are writable for the call.</remarks>
    public static long PReadV(int fd, void* iov, int count, ulong offset)
    {
        while (true)
        {
            // SAFETY: the caller's contract covers iov and its buffers.
            nint r = BlockLibc.preadv(fd, iov, count, (long)offset);
            if (r >= 0)
            {
                return r;
            }

            int e = Libc.Errno;
            if (e != Libc.EINTR)
            {
                return -e;
            }
        }
    }

    /// <summary>pwritev(2) once: bytes written or -errno.</summary>
    /// <remarks><b>Safety:</b> <paramref name="iov"/> points at <paramref name="count"/> <c>struct iovec</c>s whose buffers are readable for the call.</remarks>
    public static long PWriteV(int fd, void* iov, int count, ulong offset)
    {
        while (true)
        {
            // SAFETY: the caller's contract covers iov and its buffers.
            nint r = BlockLibc.pwritev(fd, iov, count, (long)offset);
            if (r >= 0)
            {
                return r;
            }

            int e = Libc.Errno;
            if (e != Libc.EINTR)
            {
                return -e;
            }
        }
    }

    /// <summary>fdatasync(2): 0 or -errno.</summary>
    public static long DataSync(int fd)
    {
        while (true)
        {
            // SAFETY: plain syscall.
            if (BlockLibc.fdatasync(fd) == 0)
            {
                return 0;
            }

            int e = Libc.Errno;
            if (e != Libc.EINTR)
            {
                return -e;
            }
        }
    }

    /// <summary>
    /// Deallocates [<paramref name="offset"/>, +<paramref name="length"/>) keeping the size
    /// (FALLOC_FL_PUNCH_HOLE); where the file system cannot, writes zeroes instead, so the range
    /// reads back as zeroes either way. 0 or -errno.
    /// </summary>
    public static long Discard(int fd, ulong offset, ulong length)
    {
        long r = Fallocate(fd, BlockLibc.FALLOC_FL_PUNCH_HOLE | BlockLibc.FALLOC_FL_KEEP_SIZE, offset, length);
        return r == -BlockLibc.EOPNOTSUPP ? WriteZeroBytes(fd, offset, length) : r;
    }

    /// <summary>
    /// Zero-fills [<paramref name="offset"/>, +<paramref name="length"/>): with <paramref name="mayUnmap"/>
    /// by punching a hole, otherwise FALLOC_FL_ZERO_RANGE (blocks stay allocated); where the file
    /// system supports neither, by writing zeroes. 0 or -errno.
    /// </summary>
    public static long WriteZeroes(int fd, ulong offset, ulong length, bool mayUnmap)
    {
        long r = mayUnmap
            ? Fallocate(fd, BlockLibc.FALLOC_FL_PUNCH_HOLE | BlockLibc.FALLOC_FL_KEEP_SIZE, offset, length)
            : -BlockLibc.EOPNOTSUPP;
        if (r == -BlockLibc.EOPNOTSUPP)
        {
            r = Fallocate(fd, BlockLibc.FALLOC_FL_ZERO_RANGE | BlockLibc.FALLOC_FL_KEEP_SIZE, offset, length);
        }

        return r == -BlockLibc.EOPNOTSUPP ? WriteZeroBytes(fd, offset, length) : r;
    }

    private static long Fallocate(int fd, int mode, ulong offset, ulong length)
    {
        if (length == 0)
        {
            return 0;
        }

        while (true)
        {
            // SAFETY: plain syscall.
            if (BlockLibc.fallocate(fd, mode, (long)offset, (long)length) == 0)
            {
                return 0;
            }

            int e = Libc.Errno;
            if (e != Libc.EINTR)
            {
                return -e;
            }
        }
    }

    /// <summary>pwrite(2)s zeroes over the range, a megabyte at a time: 0 or -errno.</summary>
    private static long WriteZeroBytes(int fd, ulong offset, ulong length)
    {
        byte[] zeroes = s_zeroes ??= GC.AllocateArray<byte>(ZeroChunk, pinned: true);
        while (length > 0)
        {
            int chunk = (int)Math.Min(length, (ulong)zeroes.Length);
            nint r;
            // SAFETY: the array is pinned (allocated on the pinned heap) and never written; the kernel reads chunk ≤ its length bytes.
            fixed (byte* z = zeroes)
            {
                r = BlockLibc.pwrite(fd, z, (nuint)chunk, (long)offset);
            }

            if (r < 0)
            {
                int e = Libc.Errno;
                if (e == Libc.EINTR)
                {
                    continue;
                }

                return -e;
            }

            if (r == 0)
            {
                return -BlockLibc.EIO;
            }

            offset += (ulong)r;
            length -= (ulong)r;
        }

        return 0;
    }

    /// <summary>Closes the descriptor (the lock goes with it). Once.</summary>
    public void Dispose() => FileDescriptor.Close(Interlocked.Exchange(ref _fd, -1));

    /// <summary>The leading fields of <c>struct statx</c> (256 bytes; the layout is the same on every architecture).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    private struct StatX
    {
        [FieldOffset(28)]
        public ushort Mode;

        [FieldOffset(40)]
        public ulong Size;
    }

    /// <summary>The imports only this file uses (kept out of Libc.cs so other OS wrappers can add theirs without conflict).</summary>
    private static partial class BlockLibc
    {
        public const int O_RDONLY = 0;
        public const int O_RDWR = 2;
        public const int O_CLOEXEC = 0x80000;
        public const int LOCK_SH = 1;
        public const int LOCK_EX = 2;
        public const int LOCK_NB = 4;
        public const int AT_EMPTY_PATH = 0x1000;
        public const uint STATX_TYPE = 1;
        public const uint STATX_SIZE = 0x200;
        public const int S_IFMT = 0xF000;
        public const int S_IFREG = 0x8000;
        public const int S_IFBLK = 0x6000;
        public const ulong BLKGETSIZE64 = 0x80081272; // _IOR(0x12, 114, size_t)
        public const int FALLOC_FL_KEEP_SIZE = 1;
        public const int FALLOC_FL_PUNCH_HOLE = 2;
        public const int FALLOC_FL_ZERO_RANGE = 0x10;
        public const int EIO = 5;
        public const int EOPNOTSUPP = 95;

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int open(string path, int flags, int mode);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int statx(int dirfd, string path, int flags, uint mask, StatX* buffer);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int ioctl(int fd, ulong request, ulong* argument);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int flock(int fd, int operation);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint preadv(int fd, void* iov, int count, long offset);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint pwritev(int fd, void* iov, int count, long offset);

        [LibraryImport("libc", SetLastError = true)]
        public static partial nint pwrite(int fd, void* buffer, nuint count, long offset);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int fdatasync(int fd);

        [LibraryImport("libc", SetLastError = true)]
        public static partial int fallocate(int fd, int mode, long offset, long length);
    }
}
