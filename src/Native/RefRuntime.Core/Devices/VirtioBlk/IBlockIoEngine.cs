// The asynchronous file I/O a block device queue drives: submit positioned reads and writes
// straight into guest memory (no copy), flushes, discards and zero-fills; learn about completions
// through an eventfd; reap them in any order. One engine per device queue, used by that queue's
// thread only (submit, commit, reap); the engine may do the I/O on threads of its own (the
// thread-pool engine) or in the kernel (io_uring). The image file descriptor belongs to the caller
// and outlives the engine.

using System;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>One buffer of an I/O: laid out as <c>struct iovec</c> so an engine can pass an array of them to the kernel.</summary>
public readonly unsafe struct BlockIoVec(byte* @base, nuint length)
{
    /// <summary>Host address of the buffer (guest memory, kept mapped by the chain the device holds).</summary>
    public readonly byte* Base = @base;

    /// <summary>Bytes.</summary>
    public readonly nuint Length = length;
}

/// <summary>
/// The argument checks every engine makes before it takes a slot: the kernel's file offsets are
/// signed 64-bit, a vectored I/O has 1 to <see cref="MaxIov"/> buffers (the kernel's IOV_MAX) and
/// no null buffer with a length.
/// </summary>
public static unsafe class BlockIoArguments
{
    /// <summary>The most buffers one vectored I/O may have (IOV_MAX).</summary>
    public const int MaxIov = 1024;

    /// <summary>Whether a read or write of <paramref name="iov"/> at <paramref name="offset"/> is well-formed; its byte count in <paramref name="total"/>.</summary>
    public static bool TryVectored(ulong offset, ReadOnlySpan<BlockIoVec> iov, out ulong total)
    {
        total = 0;
        if (iov.Length == 0 || iov.Length > MaxIov || offset > long.MaxValue)
        {
            return false;
        }

        foreach (BlockIoVec v in iov)
        {
            total += v.Length;
            if (total > long.MaxValue || (v.Base == null && v.Length != 0))
            {
                return false;
            }
        }

        return total <= long.MaxValue - offset;
    }

    /// <summary>Whether the byte range [<paramref name="offset"/>, +<paramref name="length"/>) fits the signed file offsets.</summary>
    public static bool IsRange(ulong offset, ulong length) => offset <= long.MaxValue && length <= long.MaxValue - offset;
}

/// <summary>A finished I/O: the submitter's token and the result (bytes transferred, 0 for flush/discard/zeroes, or -errno).</summary>
public readonly record struct BlockIoCompletion(ulong Token, long Result);

/// <summary>An asynchronous I/O engine over one open file (see file comment).</summary>
public interface IBlockIoEngine : IDisposable
{
    /// <summary>Short name for logs and benchmark labels ("threads", "io_uring").</summary>
    string Name { get; }

    /// <summary>The most I/Os in flight at once; a submit beyond it answers <see cref="RrStatus.Busy"/>.</summary>
    int Capacity { get; }

    /// <summary>I/Os submitted and not yet reaped.</summary>
    int InFlight { get; }

    /// <summary>
    /// An eventfd the engine signals when completions are waiting. The queue thread polls it beside
    /// its kick eventfd, reads it (8 bytes) to clear it, then calls <see cref="Reap"/> until empty.
    /// Owned by the engine.
    /// </summary>
    int CompletionFd { get; }

    /// <summary>
    /// A look without a system call at whether <see cref="Reap"/> would return something (for a
    /// queue thread polling before it sleeps); an engine that cannot tell answers false and
    /// relies on <see cref="CompletionFd"/>.
    /// </summary>
    bool HasCompletions => false;

    /// <summary>Reads into <paramref name="iov"/> (copied by the engine; the buffers must stay valid until completion) from byte <paramref name="offset"/>.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.Busy"/> (at capacity), <see cref="RrStatus.InvalidArgument"/>.</returns>
    RrStatus SubmitRead(ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token);

    /// <summary>Writes <paramref name="iov"/> at byte <paramref name="offset"/> (see <see cref="SubmitRead"/>).</summary>
    RrStatus SubmitWrite(ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token);

    /// <summary>Makes every write completed before this submit durable (fdatasync).</summary>
    RrStatus SubmitFlush(ulong token);

    /// <summary>Deallocates [<paramref name="offset"/>, +<paramref name="length"/>) (punch a hole, keep the size); reads of it then return zeroes.</summary>
    RrStatus SubmitDiscard(ulong offset, ulong length, ulong token);

    /// <summary>Zero-fills [<paramref name="offset"/>, +<paramref name="length"/>); with <paramref name="mayUnmap"/> by deallocating where the file system can.</summary>
    RrStatus SubmitWriteZeroes(ulong offset, ulong length, bool mayUnmap, ulong token);

    /// <summary>Starts everything submitted since the last call (one system call for a batch, where the engine can).</summary>
    void Commit();

    /// <summary>Moves finished I/Os into <paramref name="completions"/>, in any order.</summary>
    /// <returns>How many were written (0 when none is waiting).</returns>
    int Reap(Span<BlockIoCompletion> completions);
}
