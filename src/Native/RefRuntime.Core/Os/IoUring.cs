// io_uring (Linux 5.6+): one submission ring, one completion ring and the SQE array, shared with
// the kernel through three mmaps of the ring descriptor (or two, with IORING_FEAT_SINGLE_MMAP).
// Layouts and constants are from the kernel's UAPI header include/uapi/linux/io_uring.h; system
// call numbers from arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h
// (which arm64 uses): io_uring_setup 425, io_uring_enter 426, io_uring_register 427 on both.
// Other architectures are refused (the numbers differ, e.g. on alpha and mips).
//
// Design. The ring is used by one thread (the device queue's) and never with SQPOLL, so the
// kernel touches the SQ ring only inside io_uring_enter on that thread, and the CQ ring from any
// context at any time. That gives the orderings below:
//   * SQ: we fill an SQE and the SQ array slot, then publish the tail with a release store that
//     pairs with the kernel's smp_load_acquire of sq.tail; the kernel advances sq.head with
//     smp_store_release, read here with an acquire load before trusting that an SQE is consumed.
//     Because the kernel reads the SQ only inside our own io_uring_enter, entries it has not
//     consumed when the call returns may be taken back by lowering the tail (DropUnsubmitted).
//   * CQ: an acquire load of cq.tail pairs with the kernel's release store after it wrote the
//     CQEs; we read the CQEs and then release-store cq.head, so the kernel cannot reuse an entry
//     we are still reading.
//   * The SQE index a submission uses is chosen by the caller (the SQ array is an indirection):
//     the block engine uses its slot number, so one slot's SQE is never rewritten before the
//     kernel consumed it (a slot has one request at a time, and its CQE arrives after consumption).
// CQ overflow: with IORING_FEAT_NODROP (5.5+) the kernel keeps completions that did not fit and
// sets IORING_SQ_CQ_OVERFLOW in sq.flags; io_uring_enter with IORING_ENTER_GETEVENTS moves them
// into the ring once we made room (FlushOverflow).
//
// Unavailability: io_uring_setup answers ENOSYS where the kernel lacks io_uring (or a seccomp
// filter pretends it does) and EPERM where kernel.io_uring_disabled or a seccomp filter forbids
// it; TryCreate turns both into a sentence so the caller can fall back to threads.
//
// syscall(2) is variadic in C; the import below passes six integer arguments, which on the
// x86-64 and AAPCS64 Linux calling conventions travel in the same registers as for a prototyped
// call, and glibc/musl's syscall only moves registers.

using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;

namespace RefRuntime.Core.Os;

/// <summary><c>struct io_sqring_offsets</c> (40 bytes): where each SQ ring field lies in the SQ mapping.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoSqringOffsets
{
    public uint Head;
    public uint Tail;
    public uint RingMask;
    public uint RingEntries;
    public uint Flags;
    public uint Dropped;
    public uint Array;
    public uint Resv1;
    public ulong UserAddr;
}

/// <summary><c>struct io_cqring_offsets</c> (40 bytes): where each CQ ring field lies in the CQ mapping.</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoCqringOffsets
{
    public uint Head;
    public uint Tail;
    public uint RingMask;
    public uint RingEntries;
    public uint Overflow;
    public uint Cqes;
    public uint Flags;
    public uint Resv1;
    public ulong UserAddr;
}

/// <summary><c>struct io_uring_params</c> (120 bytes): in/out argument of io_uring_setup.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct IoUringParams
{
    public uint SqEntries;
    public uint CqEntries;
    public uint Flags;
    public uint SqThreadCpu;
    public uint SqThreadIdle;
    public uint Features;
    public uint WqFd;
    public fixed uint Resv[3];
    public IoSqringOffsets SqOff;
    public IoCqringOffsets CqOff;
}

/// <summary><c>struct io_uring_sqe</c> (64 bytes), with the union members this library uses.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
internal struct IoUringSqe
{
    /// <summary>IORING_OP_*.</summary>
    [FieldOffset(0)] public byte Opcode;

    /// <summary>IOSQE_*.</summary>
    [FieldOffset(1)] public byte Flags;

    [FieldOffset(2)] public ushort IoPrio;

    [FieldOffset(4)] public int Fd;

    /// <summary>File offset (<c>off</c>).</summary>
    [FieldOffset(8)] public ulong Off;

    /// <summary>Buffer or iovec array address (<c>addr</c>); for FALLOCATE the length.</summary>
    [FieldOffset(16)] public ulong Addr;

    /// <summary>Buffer size or iovec count (<c>len</c>); for FALLOCATE the mode.</summary>
    [FieldOffset(24)] public uint Len;

    /// <summary>The per-opcode flags union (<c>rw_flags</c>, <c>fsync_flags</c>, ...).</summary>
    [FieldOffset(28)] public uint OpFlags;

    [FieldOffset(32)] public ulong UserData;

    [FieldOffset(40)] public ushort BufIndex;

    [FieldOffset(42)] public ushort Personality;

    [FieldOffset(44)] public int SpliceFdIn;

    [FieldOffset(48)] public ulong Addr3;

    [FieldOffset(56)] public ulong Pad2;
}

/// <summary><c>struct io_uring_cqe</c> (16 bytes; rings are never set up with IORING_SETUP_CQE32).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct IoUringCqe
{
    public ulong UserData;
    public int Res;
    public uint Flags;
}

/// <summary>The io_uring system calls and constants (see file comment).</summary>
internal static unsafe partial class IoUringSys
{
    public const int SYS_io_uring_setup = 425;
    public const int SYS_io_uring_enter = 426;
    public const int SYS_io_uring_register = 427;

    public const byte IORING_OP_NOP = 0;
    public const byte IORING_OP_READV = 1;
    public const byte IORING_OP_WRITEV = 2;
    public const byte IORING_OP_FSYNC = 3;
    public const byte IORING_OP_FALLOCATE = 17;

    public const uint IORING_FSYNC_DATASYNC = 1;

    public const uint IORING_ENTER_GETEVENTS = 1;

    public const uint IORING_SQ_CQ_OVERFLOW = 2;

    public const uint IORING_FEAT_SINGLE_MMAP = 1;
    public const uint IORING_FEAT_NODROP = 2;

    public const long IORING_OFF_SQ_RING = 0;
    public const long IORING_OFF_CQ_RING = 0x8000000;
    public const long IORING_OFF_SQES = 0x10000000;

    public const uint IORING_REGISTER_EVENTFD = 4;
    public const uint IORING_REGISTER_PROBE = 8;
    public const ushort IO_URING_OP_SUPPORTED = 1;

    /// <summary>Upper bound of io_uring_setup's entries (IORING_MAX_ENTRIES).</summary>
    public const uint MaxEntries = 32768;

    public const int MAP_POPULATE = 0x8000;

    public const int EPERM = 1;
    public const int EBUSY = 16;
    public const int EINVAL = 22;
    public const int ENOMEM = 12;
    public const int ENOSYS = 38;

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    /// <summary>Whether this process's architecture has the system call numbers above (x86-64, arm64).</summary>
    public static bool ArchitectureSupported =>
        OperatingSystem.IsLinux()
        && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    /// <summary>io_uring_setup(2): a ring descriptor, or -errno.</summary>
    /// <remarks>Safety: <paramref name="p"/> points at a writable <see cref="IoUringParams"/>.</remarks>
    public static int Setup(uint entries, IoUringParams* p)
    {
        Debug.Assert(ArchitectureSupported);
        // SAFETY: the caller's contract: p is a writable io_uring_params.
        long r = syscall(SYS_io_uring_setup, entries, (long)p, 0, 0, 0, 0);
        return r < 0 ? -Libc.Errno : (int)r;
    }

    /// <summary>io_uring_enter(2) without a signal mask: the count submitted, or -errno.</summary>
    public static int Enter(int fd, uint toSubmit, uint minComplete, uint flags)
    {
        Debug.Assert(ArchitectureSupported);
        // SAFETY: no pointer arguments (sig = NULL, so sigsz is ignored).
        long r = syscall(SYS_io_uring_enter, fd, toSubmit, minComplete, flags, 0, 0);
        return r < 0 ? -Libc.Errno : (int)r;
    }

    /// <summary>io_uring_register(2): the call's result, or -errno.</summary>
    /// <remarks>Safety: <paramref name="arg"/> is what <paramref name="opcode"/> expects, for <paramref name="count"/> items.</remarks>
    public static int Register(int fd, uint opcode, void* arg, uint count)
    {
        Debug.Assert(ArchitectureSupported);
        // SAFETY: the caller's contract on arg and count.
        long r = syscall(SYS_io_uring_register, fd, opcode, (long)arg, count, 0, 0);
        return r < 0 ? -Libc.Errno : (int)r;
    }

    /// <summary>Why io_uring_setup failed, in words a log reader can act on.</summary>
    public static string DescribeSetupError(int errno) => errno switch
    {
        ENOSYS => $"io_uring is not available: this kernel has no io_uring, or a seccomp filter hides it ({OsError.Describe(errno)})",
        EPERM => $"io_uring is not permitted: the sysctl kernel.io_uring_disabled forbids it, the process is not in kernel.io_uring_group, or a seccomp filter denies it ({OsError.Describe(errno)})",
        ENOMEM => $"io_uring_setup: out of memory or over RLIMIT_MEMLOCK (kernels before 5.12 charge rings to locked memory) ({OsError.Describe(errno)})",
        _ => $"io_uring_setup: {OsError.Describe(errno)}",
    };
}

/// <summary>
/// One io_uring instance (see file comment). Used by one thread at a time, never with SQPOLL.
/// </summary>
/// <remarks>
/// <b>Invariants:</b> while not disposed, <c>_sq*</c>/<c>_cq*</c> point into live mappings of
/// <c>_fd</c> at the offsets the kernel reported; <c>_sqTail</c> - sq.head &lt;= SqEntries; the
/// shared sq.tail equals <c>_sqTail</c> except between <see cref="Queue"/> and the next
/// <see cref="Submit"/>; the shared cq.head equals <c>_cqHead</c>.
/// </remarks>
internal sealed unsafe class IoUring : IDisposable
{
    private int _fd;
    private readonly byte* _sqMap;
    private readonly nuint _sqMapLength;
    private readonly byte* _cqMap;          // == _sqMap with a single mapping
    private readonly nuint _cqMapLength;    // 0 with a single mapping
    private readonly IoUringSqe* _sqes;
    private readonly nuint _sqesLength;

    private readonly uint* _sqHead;
    private readonly uint* _sqTailShared;
    private readonly uint* _sqFlags;
    private readonly uint* _sqArray;
    private readonly uint _sqMask;
    private uint _sqTail;

    private readonly uint* _cqHeadShared;
    private readonly uint* _cqTail;
    private readonly IoUringCqe* _cqes;
    private readonly uint _cqMask;
    private uint _cqHead;

    private IoUring(int fd, in IoUringParams p, byte* sqMap, nuint sqLen, byte* cqMap, nuint cqLen, IoUringSqe* sqes, nuint sqesLen)
    {
        _fd = fd;
        SqEntries = p.SqEntries;
        CqEntries = p.CqEntries;
        Features = p.Features;
        SingleMmap = cqMap == sqMap;
        _sqMap = sqMap;
        _sqMapLength = sqLen;
        _cqMap = cqMap;
        _cqMapLength = cqLen;
        _sqes = sqes;
        _sqesLength = sqesLen;

        // INVARIANT: every pointer below lies inside a mapping the kernel sized from these offsets.
        _sqHead = (uint*)(sqMap + p.SqOff.Head);
        _sqTailShared = (uint*)(sqMap + p.SqOff.Tail);
        _sqFlags = (uint*)(sqMap + p.SqOff.Flags);
        _sqArray = (uint*)(sqMap + p.SqOff.Array);
        // SAFETY: ring_mask is inside the SQ mapping; the kernel wrote it before setup returned.
        _sqMask = *(uint*)(sqMap + p.SqOff.RingMask);
        // SAFETY: as above; nobody else touches the tail yet.
        _sqTail = *_sqTailShared;

        _cqHeadShared = (uint*)(cqMap + p.CqOff.Head);
        _cqTail = (uint*)(cqMap + p.CqOff.Tail);
        _cqes = (IoUringCqe*)(cqMap + p.CqOff.Cqes);
        // SAFETY: ring_mask is inside the CQ mapping (as for the SQ).
        _cqMask = *(uint*)(cqMap + p.CqOff.RingMask);
        // SAFETY: as above.
        _cqHead = *_cqHeadShared;
    }

    /// <summary>Submission ring size (a power of two, at least what was asked for).</summary>
    public uint SqEntries { get; }

    /// <summary>Completion ring size (twice <see cref="SqEntries"/> by the kernel's default).</summary>
    public uint CqEntries { get; }

    /// <summary>IORING_FEAT_* reported by the kernel.</summary>
    public uint Features { get; }

    /// <summary>Whether SQ and CQ rings share one mapping.</summary>
    public bool SingleMmap { get; }

    /// <summary>The ring descriptor (-1 once disposed).</summary>
    public int Fd => _fd;

    /// <summary>Entries queued with <see cref="Queue"/> that the kernel has not consumed.</summary>
    public uint Unsubmitted => _sqTail - SqHead;

    /// <summary>Completions waiting in the CQ ring.</summary>
    // ORDERING: acquire; pairs with the kernel's release store of cq.tail after writing the CQEs.
    public uint CqReady => Volatile.Read(ref *_cqTail) - _cqHead;

    /// <summary>Whether the kernel holds completions that did not fit in the CQ ring (IORING_SQ_CQ_OVERFLOW).</summary>
    // ORDERING: the kernel sets and clears the flag with atomic bit operations; an acquire load suffices to see it.
    public bool CqOverflowPending => (Volatile.Read(ref *_sqFlags) & IoUringSys.IORING_SQ_CQ_OVERFLOW) != 0;

    // ORDERING: acquire; pairs with the kernel's release store of sq.head once it has read the SQEs.
    private uint SqHead => Volatile.Read(ref *_sqHead);

    /// <summary>
    /// Sets up a ring of at least <paramref name="entries"/> SQ entries (kernel default CQ size)
    /// and maps it. <paramref name="separateMappings"/> maps SQ and CQ rings apart even where the
    /// kernel offers IORING_FEAT_SINGLE_MMAP (what a pre-5.4 kernel needs; for tests).
    /// </summary>
    public static bool TryCreate(uint entries, bool separateMappings, out IoUring? ring, out string? error)
    {
        ring = null;
        if (!IoUringSys.ArchitectureSupported)
        {
            error = $"io_uring: unsupported platform {RuntimeInformation.OSDescription} {RuntimeInformation.ProcessArchitecture} (only Linux x86-64 and arm64 system call numbers are known)";
            return false;
        }

        if (entries == 0 || entries > IoUringSys.MaxEntries)
        {
            error = $"io_uring: entries must be 1..{IoUringSys.MaxEntries}, not {entries}";
            return false;
        }

        IoUringParams p = default;
        // SAFETY: p is a local io_uring_params (Setup's contract).
        int fd = IoUringSys.Setup(entries, &p);
        if (fd < 0)
        {
            error = IoUringSys.DescribeSetupError(-fd);
            return false;
        }

        if ((p.Features & IoUringSys.IORING_FEAT_NODROP) == 0)
        {
            FileDescriptor.Close(fd);
            error = "io_uring: the kernel lacks IORING_FEAT_NODROP (needs Linux 5.5 or later)";
            return false;
        }

        nuint sqLen = p.SqOff.Array + (p.SqEntries * sizeof(uint));
        nuint cqLen = p.CqOff.Cqes + (p.CqEntries * (uint)sizeof(IoUringCqe));
        bool single = !separateMappings && (p.Features & IoUringSys.IORING_FEAT_SINGLE_MMAP) != 0;
        if (single)
        {
            sqLen = cqLen = Math.Max(sqLen, cqLen);
        }

        nuint sqesLen = p.SqEntries * (nuint)sizeof(IoUringSqe);
        byte* sqMap = null, cqMap = null, sqes = null;
        error = null;
        // SAFETY: maps the ring descriptor at the kernel's documented offsets with the sizes it reported.
        sqMap = MapRing(fd, sqLen, IoUringSys.IORING_OFF_SQ_RING, ref error);
        if (sqMap != null)
        {
            // SAFETY: as above.
            cqMap = single ? sqMap : MapRing(fd, cqLen, IoUringSys.IORING_OFF_CQ_RING, ref error);
        }

        if (cqMap != null)
        {
            // SAFETY: as above.
            sqes = MapRing(fd, sqesLen, IoUringSys.IORING_OFF_SQES, ref error);
        }

        if (sqes == null)
        {
            // SAFETY: unmaps only what was mapped just above.
            if (cqMap != null && cqMap != sqMap)
            {
                Libc.munmap(cqMap, cqLen);
            }

            if (sqMap != null)
            {
                // SAFETY: as above.
                Libc.munmap(sqMap, sqLen);
            }

            FileDescriptor.Close(fd);
            return false;
        }

        ring = new IoUring(fd, p, sqMap, sqLen, cqMap, single ? 0 : cqLen, (IoUringSqe*)sqes, sqesLen);
        return true;
    }

    private static byte* MapRing(int fd, nuint length, long offset, ref string? error)
    {
        // SAFETY: a fresh shared mapping of the ring descriptor; no existing memory is affected.
        void* m = Libc.mmap(null, length, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | IoUringSys.MAP_POPULATE, fd, offset);
        if (m == (void*)-1)
        {
            error = $"io_uring: mmap of the ring at 0x{offset:x}: {OsError.Describe(Libc.Errno)}";
            return null;
        }

        return (byte*)m;
    }

    /// <summary>Whether the kernel supports every opcode in <paramref name="opcodes"/> (IORING_REGISTER_PROBE, 5.6+).</summary>
    public bool Supports(ReadOnlySpan<byte> opcodes, out string? error)
    {
        const int OpCount = 256;
        // struct io_uring_probe: 16-byte header, then 8-byte io_uring_probe_op entries.
        byte* probe = stackalloc byte[16 + (OpCount * 8)];
        new Span<byte>(probe, 16 + (OpCount * 8)).Clear();
        // SAFETY: probe is a zeroed io_uring_probe with room for OpCount ops.
        int r = IoUringSys.Register(_fd, IoUringSys.IORING_REGISTER_PROBE, probe, OpCount);
        if (r < 0)
        {
            error = $"io_uring: IORING_REGISTER_PROBE: {OsError.Describe(-r)} (needs Linux 5.6 or later)";
            return false;
        }

        // SAFETY: ops_len is byte 1 of the header the kernel just filled.
        int opsLen = probe[1];
        foreach (byte op in opcodes)
        {
            // SAFETY: op < opsLen <= OpCount entries, each 8 bytes from byte 16; flags is the u16 at +2.
            if (op >= opsLen || (*(ushort*)(probe + 16 + (op * 8) + 2) & IoUringSys.IO_URING_OP_SUPPORTED) == 0)
            {
                error = $"io_uring: the kernel does not support opcode {op}";
                return false;
            }
        }

        error = null;
        return true;
    }

    /// <summary>IORING_REGISTER_EVENTFD: the kernel signals <paramref name="eventFd"/> whenever it posts a completion.</summary>
    /// <returns>0, or -errno.</returns>
    public int RegisterEventFd(int eventFd)
    {
        int fdCopy = eventFd;
        // SAFETY: the argument is one int, as IORING_REGISTER_EVENTFD expects.
        return IoUringSys.Register(_fd, IoUringSys.IORING_REGISTER_EVENTFD, &fdCopy, 1);
    }

    /// <summary>The SQE at <paramref name="index"/> (&lt; <see cref="SqEntries"/>), for the caller to fill before <see cref="Queue"/>.</summary>
    /// <remarks><b>Safety:</b> the entry must not be queued and unconsumed; the pointer dies with the ring.</remarks>
    public IoUringSqe* DangerousSqe(uint index)
    {
        Debug.Assert(index < SqEntries);
        // SAFETY: index < SqEntries, the length of the SQE mapping.
        return _sqes + index;
    }

    /// <summary>Appends SQE <paramref name="index"/> to the submission ring (published by the next <see cref="Submit"/>).</summary>
    public void Queue(uint index)
    {
        Debug.Assert(index < SqEntries);
        Debug.Assert(Unsubmitted < SqEntries, "the SQ ring is full");
        // SAFETY: _sqTail & _sqMask < SqEntries, the length of the SQ array.
        _sqArray[_sqTail & _sqMask] = index;
        _sqTail++;
    }

    /// <summary>
    /// Publishes the queued entries and enters the kernel to submit them (one io_uring_enter;
    /// EINTR retried). Returns how many the kernel consumed, or -errno (EAGAIN, EBUSY: resources or
    /// an overflowed CQ; try again after reaping).
    /// </summary>
    public int Submit()
    {
        // ORDERING: release; pairs with the kernel's acquire load of sq.tail, so it sees the SQEs and array slots written before.
        Volatile.Write(ref *_sqTailShared, _sqTail);
        uint pending = Unsubmitted;
        if (pending == 0)
        {
            return 0;
        }

        while (true)
        {
            int r = IoUringSys.Enter(_fd, pending, 0, 0);
            if (r != -Libc.EINTR)
            {
                return r;
            }
        }
    }

    /// <summary>
    /// Takes back every queued entry the kernel has not consumed (they never started) and returns
    /// their SQE indices in queue order.
    /// </summary>
    /// <returns>How many were written to <paramref name="indices"/> (all of them; it must hold <see cref="Unsubmitted"/>).</returns>
    public int DropUnsubmitted(Span<uint> indices)
    {
        uint head = SqHead;
        int n = 0;
        for (uint i = head; i != _sqTail; i++)
        {
            // SAFETY: i & _sqMask < SqEntries, the length of the SQ array.
            indices[n++] = _sqArray[i & _sqMask];
        }

        // Sound because the kernel reads the SQ only inside io_uring_enter on this thread (no SQPOLL).
        _sqTail = head;
        // ORDERING: release, as in Submit.
        Volatile.Write(ref *_sqTailShared, _sqTail);
        return n;
    }

    /// <summary>The <paramref name="i"/>-th waiting completion (<paramref name="i"/> &lt; <see cref="CqReady"/>), copied out.</summary>
    public IoUringCqe PeekCqe(uint i)
    {
        Debug.Assert(i < CqReady);
        // SAFETY: the index is masked into the CQE array; the entry is below the tail we acquired, so the kernel wrote it.
        return _cqes[(_cqHead + i) & _cqMask];
    }

    /// <summary>Hands <paramref name="count"/> read completions back to the kernel.</summary>
    public void AdvanceCq(uint count)
    {
        Debug.Assert(count <= CqReady);
        _cqHead += count;
        // ORDERING: release; the kernel's acquire load of cq.head must not let it overwrite entries before we read them.
        Volatile.Write(ref *_cqHeadShared, _cqHead);
    }

    /// <summary>
    /// Enters the kernel to wait for at least <paramref name="minComplete"/> completions (0: only
    /// move overflowed ones into the ring and run pending completion work).
    /// </summary>
    /// <returns>0 or a count, or -errno (EINTR: a signal arrived; call again).</returns>
    public int GetEvents(uint minComplete) => IoUringSys.Enter(_fd, 0, minComplete, IoUringSys.IORING_ENTER_GETEVENTS);

    /// <summary>Unmaps the rings and closes the descriptor. In-flight requests must have completed (the kernel cancels the rest asynchronously).</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd < 0)
        {
            return;
        }

        // SAFETY: the mappings were made in TryCreate with these lengths and nothing uses them after this point (the object is disposed).
        Libc.munmap(_sqes, _sqesLength);
        if (_cqMapLength != 0)
        {
            // SAFETY: as above (a separate CQ mapping).
            Libc.munmap(_cqMap, _cqMapLength);
        }

        // SAFETY: as above.
        Libc.munmap(_sqMap, _sqMapLength);
        FileDescriptor.Close(fd);
    }
}
