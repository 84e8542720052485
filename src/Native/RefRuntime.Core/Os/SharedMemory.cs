// Shared memory a peer can map too: memfd_create(2) with seals for the memory we own, and
// mmap(2) MAP_SHARED of a descriptor a peer sent us.
//
// A mapping of a file is only safe to touch where the file has pages: past its end the kernel
// raises SIGBUS, which a .NET process cannot survive. So Map refuses a descriptor whose size
// (lseek SEEK_END) does not cover [offset, offset + length), and anything that cannot seek
// (a pipe, a socket) or has no size (a character device). A peer that shrinks its file after we
// mapped it could still raise SIGBUS; memfds sealed against shrinking (F_SEAL_SHRINK, which QEMU's
// memory-backend-memfd sets by default) cannot shrink, and IsShrinkSealed tells the caller.

using System;
using System.Threading;

namespace RefRuntime.Core.Os;

/// <summary>A MAP_SHARED read/write mapping (see file comment); unmapped once by <see cref="Dispose"/>.</summary>
public sealed unsafe class SharedMapping : IDisposable
{
    private readonly byte* _base;
    private readonly nuint _mappedLength;
    private readonly ulong _length;
    private readonly byte* _address;
    private int _unmapped;

    private SharedMapping(byte* mapBase, nuint mappedLength, byte* address, ulong length)
    {
        _base = mapBase;
        _mappedLength = mappedLength;
        _address = address;
        _length = length;
    }

    /// <summary>The first byte of the requested range.</summary>
    public byte* Address => _address;

    /// <summary>Bytes of the requested range.</summary>
    public ulong Length => _length;

    /// <summary>Whether it has been unmapped.</summary>
    public bool IsUnmapped => Volatile.Read(ref _unmapped) != 0;

    /// <summary>
    /// Maps [<paramref name="offset"/>, +<paramref name="length"/>) of <paramref name="fd"/> shared,
    /// read/write. The descriptor is not consumed (close it when you no longer need it; the mapping stays).
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> (bad range, not a mappable file, file too small); <see cref="RrStatus.OutOfMemory"/>.</returns>
    public static RrStatus Map(int fd, ulong offset, ulong length, out SharedMapping? mapping, out string? error)
    {
        mapping = null;
        error = null;
        ulong page = (ulong)Environment.SystemPageSize;
        if (length == 0 || offset > long.MaxValue || length > long.MaxValue - offset)
        {
            error = $"range [0x{offset:x}, +0x{length:x}) is empty or overflows";
            return RrStatus.InvalidArgument;
        }

        // SAFETY: lseek only reads the file's size; the position of a shared description moves, which nobody relies on.
        long size = Libc.lseek(fd, 0, Libc.SEEK_END);
        if (size < 0)
        {
            error = $"descriptor {fd} is not a mappable file: {OsError.Describe(Libc.Errno)}";
            return RrStatus.InvalidArgument;
        }

        if ((ulong)size < offset + length)
        {
            error = $"descriptor {fd} holds {size} bytes, fewer than offset 0x{offset:x} + size 0x{length:x} (mapping past the end would fault)";
            return RrStatus.InvalidArgument;
        }

        ulong aligned = offset & ~(page - 1);
        ulong slack = offset - aligned;
        if (length > ulong.MaxValue - slack || length + slack > nuint.MaxValue)
        {
            error = "range too large";
            return RrStatus.InvalidArgument;
        }

        nuint mapped = (nuint)(length + slack);
        // SAFETY: a fresh mapping chosen by the kernel; nothing of ours is at that address.
        void* p = Libc.mmap(null, mapped, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_NORESERVE, fd, (long)aligned);
        if (p == (void*)-1)
        {
            int e = Libc.Errno;
            error = $"mmap of descriptor {fd}: {OsError.Describe(e)}";
            return e == 12 ? RrStatus.OutOfMemory : RrStatus.InvalidArgument;
        }

        mapping = new SharedMapping((byte*)p, mapped, (byte*)p + slack, length);
        return RrStatus.Ok;
    }

    /// <summary>Whether <paramref name="fd"/> carries F_SEAL_SHRINK (so its owner cannot truncate it under our mapping).</summary>
    public static bool IsShrinkSealed(int fd)
    {
        // SAFETY: F_GET_SEALS only reads.
        int seals = Libc.fcntl(fd, Libc.F_GET_SEALS, 0);
        return seals >= 0 && (seals & Libc.F_SEAL_SHRINK) != 0;
    }

    /// <summary>
    /// Creates a memfd of <paramref name="size"/> bytes, sealed against shrinking and growing (so a
    /// peer that maps it can trust its size).
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/> with the descriptor (the caller owns it), or <see cref="RrStatus.Internal"/>.</returns>
    public static RrStatus CreateMemfd(string name, ulong size, out int fd, out string? error)
    {
        error = null;
        // SAFETY: plain syscalls on the new descriptor.
        fd = Libc.memfd_create(name, Libc.MFD_CLOEXEC | Libc.MFD_ALLOW_SEALING);
        if (fd < 0)
        {
            error = $"memfd_create: {OsError.Describe(Libc.Errno)}";
            return RrStatus.Internal;
        }

        // SAFETY: sizing and sealing the descriptor just created; no memory is passed.
        if (size > long.MaxValue || Libc.ftruncate(fd, (long)size) != 0
            || Libc.fcntl(fd, Libc.F_ADD_SEALS, Libc.F_SEAL_SHRINK | Libc.F_SEAL_GROW | Libc.F_SEAL_SEAL) != 0)
        {
            error = $"sizing/sealing the memfd: {OsError.Describe(Libc.Errno)}";
            FileDescriptor.Close(fd);
            fd = -1;
            return RrStatus.Internal;
        }

        return RrStatus.Ok;
    }

    /// <summary>Unmaps (once). Nothing may touch the range afterwards.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _unmapped, 1) == 0)
        {
            // SAFETY: the range we mapped, once (the exchange above); the owner guarantees no user is left.
            Libc.munmap(_base, _mappedLength);
        }
    }
}

/// <summary>CPU time of this process or thread (getrusage(2)).</summary>
public static unsafe class CpuTime
{
    /// <summary>User + system CPU time of the whole process.</summary>
    public static TimeSpan Process() => Read(Libc.RUSAGE_SELF);

    /// <summary>User + system CPU time of the calling thread.</summary>
    public static TimeSpan Thread() => Read(Libc.RUSAGE_THREAD);

    private static TimeSpan Read(int who)
    {
        RUsage u;
        // SAFETY: u is a local of the size getrusage(2) writes (struct rusage, 144 bytes on LP64).
        if (Libc.getrusage(who, &u) != 0)
        {
            return TimeSpan.Zero;
        }

        long us = ((u.UserSeconds + u.SystemSeconds) * 1_000_000) + u.UserMicroseconds + u.SystemMicroseconds;
        return TimeSpan.FromMicroseconds(us);
    }
}
