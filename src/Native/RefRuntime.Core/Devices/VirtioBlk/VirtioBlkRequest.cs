// One virtio-blk request taken apart and checked (virtio 1.2 §5.2.6, as Linux
// drivers/block/virtio_blk.c builds them): the 16-byte header at the start of the readable part,
// the data, and the status byte - the LAST writable byte of the chain. Nothing assumes one
// descriptor per part: the header is read at an offset across however many descriptors carry it,
// and the data buffers are cut out of the chain's segments by byte ranges (zero copy: the engine
// gets host pointers into guest memory, valid while the queue holds the chain).
//
// Validation (docs/virtio-blk.md "Request validation"). Whatever the guest wrote, the outcome is
// a status in the status byte, and nothing outside the chain's own buffers and the image range
// the request names is touched:
//   * no writable byte: there is nowhere to put a status - returned with used length 0;
//   * header shorter than 16 bytes, data not a multiple of 512, a sector range past the capacity
//     or overflowing, IN with device-readable data, OUT / FLUSH-free types with writable data
//     where the spec has none, too many buffers: IOERR;
//   * OUT on a read-only device: IOERR (§5.2.6.2: the device MUST NOT write);
//   * an unknown type, a type whose feature was not negotiated (DISCARD, WRITE_ZEROES), a
//     discard range with any flag, a write-zeroes range with unknown flags: UNSUPP;
//   * discard / write-zeroes payload not a whole number of 16-byte ranges, more than
//     max_*_seg ranges, a range of 0 sectors or more than max_*_sectors: IOERR.

using System;
using RefRuntime.Core.Virtio;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>What to do with a request once it is checked.</summary>
internal enum BlkVerdict
{
    /// <summary>Answer now with <see cref="VirtioBlkRequest.Status"/> and <see cref="VirtioBlkRequest.UsedLength"/>.</summary>
    Complete,

    /// <summary>Hand it to the engine.</summary>
    Submit,

    /// <summary>No writable byte: return the chain with used length 0.</summary>
    NoStatus,
}

/// <summary>A request of a held chain (see file comment); one per head, reused.</summary>
internal sealed unsafe class VirtioBlkRequest
{
    /// <summary>The chain's head.</summary>
    public int Head;

    /// <summary>VIRTIO_BLK_T_*.</summary>
    public uint Type;

    /// <summary>Offset of the status byte in the chain's writable bytes.</summary>
    public uint StatusOffset;

    /// <summary>Data bytes (IN: into the chain; OUT: from it).</summary>
    public uint DataBytes;

    /// <summary>Byte offset in the image.</summary>
    public ulong Offset;

    /// <summary>Discard / write-zeroes: bytes of the range.</summary>
    public ulong RangeLength;

    /// <summary>Write-zeroes: the driver allows deallocation.</summary>
    public bool MayUnmap;

    /// <summary>Write-through (FLUSH not negotiated): a flush follows before the status.</summary>
    public bool SyncAfter;

    /// <summary>The flush that follows a write-through write is in flight.</summary>
    public bool Syncing;

    /// <summary>The data buffers, [0, <see cref="IovCount"/>).</summary>
    public BlockIoVec[] Iov = new BlockIoVec[8];

    /// <summary>Buffers in <see cref="Iov"/>.</summary>
    public int IovCount;

    /// <summary>The status to write (verdict Complete).</summary>
    public byte Status;

    /// <summary>The used length to return (verdict Complete).</summary>
    public uint UsedLength;

    /// <summary>Why the request failed (for the log), or null.</summary>
    public string? Error;

    /// <summary>Takes the held chain apart and checks it against <paramref name="device"/> and the negotiated <paramref name="features"/>.</summary>
    public BlkVerdict Parse(VirtqDevice q, VirtqChain chain, VirtioBlkDevice device, ulong features)
    {
        Head = chain.Head;
        IovCount = 0;
        DataBytes = 0;
        Offset = 0;
        RangeLength = 0;
        MayUnmap = false;
        SyncAfter = false;
        Syncing = false;
        Error = null;
        Type = uint.MaxValue;
        if (chain.WritableBytes == 0)
        {
            Error = "no writable byte for the status";
            return BlkVerdict.NoStatus;
        }

        StatusOffset = chain.WritableBytes - 1;
        UsedLength = 1;
        Span<byte> hdr = stackalloc byte[HeaderSize];
        if (chain.ReadableBytes < HeaderSize || q.ReadChain(Head, 0, hdr, out int got) != RrStatus.Ok || got != HeaderSize)
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"request header of {chain.ReadableBytes} bytes ({HeaderSize} expected)");
        }

        VirtioBlkRequestHeader h = VirtioBlkRequestHeader.Read(hdr);
        Type = h.Type;
        uint readableData = chain.ReadableBytes - HeaderSize;
        uint writableData = chain.WritableBytes - 1;
        bool flushNegotiated = (features & VIRTIO_BLK_F_FLUSH) != 0;
        switch (h.Type)
        {
            case VIRTIO_BLK_T_IN:
                if (readableData != 0)
                {
                    return Fail(VIRTIO_BLK_S_IOERR, $"read with {readableData} device-readable data bytes");
                }

                return Data(q, h.Sector, writableData, writable: true, device);
            case VIRTIO_BLK_T_OUT:
                if (writableData != 0)
                {
                    return Fail(VIRTIO_BLK_S_IOERR, $"write with {writableData} device-writable bytes besides the status");
                }

                if (device.ReadOnly)
                {
                    return Fail(VIRTIO_BLK_S_IOERR, "write to a read-only device");
                }

                SyncAfter = !flushNegotiated;
                return Data(q, h.Sector, readableData, writable: false, device);
            case VIRTIO_BLK_T_FLUSH:
                return BlkVerdict.Submit;
            case VIRTIO_BLK_T_GET_ID:
            {
                int n = (int)Math.Min(writableData, (uint)VIRTIO_BLK_ID_BYTES);
                q.WriteChain(Head, 0, device.Id[..n], out int written);
                Status = VIRTIO_BLK_S_OK;
                UsedLength = (uint)written + 1;
                return BlkVerdict.Complete;
            }

            case VIRTIO_BLK_T_DISCARD:
            case VIRTIO_BLK_T_WRITE_ZEROES:
            {
                bool discard = h.Type == VIRTIO_BLK_T_DISCARD;
                if ((features & (discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) == 0 || device.ReadOnly)
                {
                    return Fail(VIRTIO_BLK_S_UNSUPP, $"{(discard ? "discard" : "write-zeroes")} was not negotiated");
                }

                if (writableData != 0)
                {
                    return Fail(VIRTIO_BLK_S_IOERR, $"{(discard ? "discard" : "write-zeroes")} with {writableData} device-writable bytes besides the status");
                }

                SyncAfter = !flushNegotiated;
                return Range(q, readableData, discard, device);
            }

            default:
                return Fail(VIRTIO_BLK_S_UNSUPP, $"request type {h.Type} is not supported");
        }
    }

    private BlkVerdict Fail(byte status, string why)
    {
        Status = status;
        UsedLength = 1;
        Error = why;
        return BlkVerdict.Complete;
    }

    private BlkVerdict Data(VirtqDevice q, ulong sector, uint bytes, bool writable, VirtioBlkDevice device)
    {
        if ((bytes & (SectorSize - 1)) != 0)
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"{bytes} data bytes (a multiple of {SectorSize} expected)");
        }

        ulong sectors = bytes >> SectorShift;
        if (sector > device.Capacity || sectors > device.Capacity - sector)
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"sectors [{sector}, +{sectors}) beyond the capacity of {device.Capacity}");
        }

        DataBytes = bytes;
        Offset = sector << SectorShift;
        if (bytes == 0)
        {
            Status = VIRTIO_BLK_S_OK;
            UsedLength = 1;
            return BlkVerdict.Complete;
        }

        // IN: writable bytes [0, bytes); OUT: readable bytes [16, 16 + bytes).
        if (!CutBuffers(q.GetSegments(Head), writable, writable ? 0u : HeaderSize, bytes))
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"more than {VirtioBlkDevice.MaxDataSegments} data buffers");
        }

        return BlkVerdict.Submit;
    }

    /// <summary>Fills <see cref="Iov"/> with the bytes [skip, skip + take) of the chain's readable or writable segments.</summary>
    private bool CutBuffers(ReadOnlySpan<VirtqSegment> segments, bool writable, uint skip, uint take)
    {
        int n = 0;
        foreach (VirtqSegment s in segments)
        {
            if (s.Writable != writable || take == 0 || s.Length == 0)
            {
                continue;
            }

            uint len = s.Length;
            if (skip >= len)
            {
                skip -= len;
                continue;
            }

            uint part = Math.Min(len - skip, take);
            if (n == VirtioBlkDevice.MaxDataSegments)
            {
                return false;
            }

            if (n == Iov.Length)
            {
                Array.Resize(ref Iov, Math.Min(Iov.Length * 2, VirtioBlkDevice.MaxDataSegments));
            }

            // SAFETY: skip < len, so s.Host + skip and the part bytes after it lie inside the segment.
            Iov[n++] = new BlockIoVec(s.Host + skip, part);
            take -= part;
            skip = 0;
        }

        IovCount = n;
        return take == 0;
    }

    private BlkVerdict Range(VirtqDevice q, uint payload, bool discard, VirtioBlkDevice device)
    {
        string what = discard ? "discard" : "write-zeroes";
        if (payload == 0 || payload % DiscardSegmentSize != 0)
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"{what} payload of {payload} bytes (whole {DiscardSegmentSize}-byte ranges expected)");
        }

        if (payload / DiscardSegmentSize > VirtioBlkDevice.MaxRangeSegments)
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"{what} with {payload / DiscardSegmentSize} ranges (at most {VirtioBlkDevice.MaxRangeSegments})");
        }

        Span<byte> b = stackalloc byte[DiscardSegmentSize];
        if (q.ReadChain(Head, HeaderSize, b, out int got) != RrStatus.Ok || got != DiscardSegmentSize)
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"{what} range unreadable");
        }

        VirtioBlkDiscardSegment seg = VirtioBlkDiscardSegment.Read(b);
        uint allowed = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
        if ((seg.Flags & ~allowed) != 0)
        {
            return Fail(VIRTIO_BLK_S_UNSUPP, $"{what} range flags 0x{seg.Flags:x}");
        }

        if (seg.NumSectors == 0 || seg.NumSectors > VirtioBlkDevice.MaxRangeSectors)
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"{what} of {seg.NumSectors} sectors (1 to {VirtioBlkDevice.MaxRangeSectors})");
        }

        if (seg.Sector > device.Capacity || seg.NumSectors > device.Capacity - seg.Sector)
        {
            return Fail(VIRTIO_BLK_S_IOERR, $"{what} of sectors [{seg.Sector}, +{seg.NumSectors}) beyond the capacity of {device.Capacity}");
        }

        Offset = seg.Sector << SectorShift;
        RangeLength = (ulong)seg.NumSectors << SectorShift;
        MayUnmap = (seg.Flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) != 0;
        return BlkVerdict.Submit;
    }
}
