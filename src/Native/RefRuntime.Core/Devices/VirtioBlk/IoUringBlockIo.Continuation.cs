// The io_uring engine, continued: what a request does with each kernel result (IoUringBlockIo.cs
// has the design). A read or write that transferred less than asked resubmits the rest from an
// advanced copy of its iovecs; a write-zeroes falls back from PUNCH_HOLE to ZERO_RANGE to writes of
// a shared zero buffer as the file system answers EOPNOTSUPP; EAGAIN/EINTR results are retried a
// few times. Every path either returns the request's final result or queues exactly one SQE.

using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using RefRuntime.Core.Os;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <content>Per-result continuation of requests.</content>
public sealed unsafe partial class IoUringBlockIo
{
    /// <summary>Advances a request by one kernel result: its final result, or long.MinValue when a next operation was queued.</summary>
    private long Step(int s, ref Slot slot, int res)
    {
        const long Continued = long.MinValue;
        if (res is -EAGAIN or -EINTR && slot.Retries < MaxRetries && !_disposed)
        {
            slot.Retries++;
            Issue(s, ref slot);
            return Continued;
        }

        switch (slot.Op)
        {
            case Op.Read:
            case Op.Write:
                if (res < 0)
                {
                    return slot.Done > 0 ? slot.Done : res;
                }

                slot.Done += res;
                slot.Remaining -= (ulong)res;
                if (slot.Remaining == 0 || res == 0 || _disposed)
                {
                    return slot.Done; // complete, end of file, or no progress: the count so far
                }

                slot.Offset += (ulong)res;
                AdvanceIovecs(ref slot, (ulong)res);
                slot.Retries = 0;
                Issue(s, ref slot);
                return Continued;

            case Op.ZeroAllocate:
                if (res == -EOPNOTSUPP && !_disposed)
                {
                    if (slot.Mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
                    {
                        slot.Mode = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
                        Issue(s, ref slot);
                        return Continued;
                    }

                    return StartZeroFill(s, ref slot);
                }

                return res < 0 ? res : 0;

            case Op.ZeroFill:
                if (res <= 0)
                {
                    return res < 0 ? res : -EIO;
                }

                slot.Offset += (ulong)res;
                slot.Remaining -= (ulong)res;
                if (slot.Remaining == 0)
                {
                    return 0;
                }

                if (_disposed)
                {
                    return -EIO;
                }

                FillZeroIovecs(ref slot);
                slot.Retries = 0;
                Issue(s, ref slot);
                return Continued;

            default: // Flush, Discard
                return res < 0 ? res : 0;
        }
    }

    private static void AdvanceIovecs(ref Slot slot, ulong bytes)
    {
        while (bytes > 0)
        {
            Debug.Assert(slot.IovFirst < slot.IovCount);
            // SAFETY: IovFirst < IovCount <= IovCapacity, the length of the slot's copy.
            BlockIoVec v = slot.Iov[slot.IovFirst];
            if (bytes >= v.Length)
            {
                bytes -= v.Length;
                slot.IovFirst++;
            }
            else
            {
                // SAFETY: as above; the new base stays inside the caller's buffer (bytes < its length).
                slot.Iov[slot.IovFirst] = new BlockIoVec(v.Base + bytes, v.Length - (nuint)bytes);
                bytes = 0;
            }
        }

        // Skip emptied and zero-length entries so the resubmission starts at real data.
        // SAFETY: bounded by IovCount as above.
        while (slot.IovFirst < slot.IovCount && slot.Iov[slot.IovFirst].Length == 0)
        {
            slot.IovFirst++;
        }
    }

    private long StartZeroFill(int s, ref Slot slot)
    {
        if (slot.Remaining == 0)
        {
            return 0;
        }

        if (_zeroes == null)
        {
            // SAFETY: a fresh allocation, page-aligned so it also suits an O_DIRECT descriptor.
            _zeroes = (byte*)NativeMemory.AlignedAlloc(ZeroChunk, 4096);
            new Span<byte>(_zeroes, ZeroChunk).Clear();
        }

        if (!EnsureIovecs(s, ZeroIovecs))
        {
            return -IoUringSys.ENOMEM;
        }

        slot.Op = Op.ZeroFill;
        slot.Retries = 0;
        FillZeroIovecs(ref slot);
        Issue(s, ref slot);
        return long.MinValue;
    }

    private void FillZeroIovecs(ref Slot slot)
    {
        ulong left = slot.Remaining;
        int n = 0;
        while (left > 0 && n < ZeroIovecs)
        {
            ulong len = Math.Min(left, ZeroChunk);
            // SAFETY: n < ZeroIovecs <= IovCapacity (EnsureIovecs in StartZeroFill).
            slot.Iov[n++] = new BlockIoVec(_zeroes, (nuint)len);
            left -= len;
        }

        slot.IovFirst = 0;
        slot.IovCount = n;
    }
}
