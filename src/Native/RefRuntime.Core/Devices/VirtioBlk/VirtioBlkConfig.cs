// The virtio-blk configuration space as typed values (virtio 1.2 §5.2.4, struct virtio_blk_config),
// decoded from the bytes a device serves (VirtioBlkConfigLayout gives the offsets). A field the
// negotiated features do not cover is still decoded; its *Valid flag says whether to believe it.
// A short read (QEMU 7.2 reads 57 bytes) leaves the fields beyond it zero.

using System;
using System.Buffers.Binary;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>A decoded virtio-blk configuration space (see file comment).</summary>
public sealed record VirtioBlkConfig
{
    /// <summary>Size of the device in 512-byte sectors.</summary>
    public ulong Capacity { get; init; }

    /// <summary>The largest data segment in bytes (valid with SIZE_MAX).</summary>
    public uint SizeMax { get; init; }

    /// <summary>The most data segments in one request (valid with SEG_MAX).</summary>
    public uint SegMax { get; init; }

    /// <summary>The logical block size in bytes (valid with BLK_SIZE).</summary>
    public uint BlkSize { get; init; }

    /// <summary>log2 of physical blocks per logical block (valid with TOPOLOGY).</summary>
    public byte PhysicalBlockExp { get; init; }

    /// <summary>Offset of the first aligned logical block (valid with TOPOLOGY).</summary>
    public byte AlignmentOffset { get; init; }

    /// <summary>Suggested minimum I/O size in logical blocks (valid with TOPOLOGY).</summary>
    public ushort MinIoSize { get; init; }

    /// <summary>Optimal I/O size in logical blocks (valid with TOPOLOGY).</summary>
    public uint OptIoSize { get; init; }

    /// <summary>1 when the device has a write-back cache.</summary>
    public byte Writeback { get; init; }

    /// <summary>Request queues the device offers (valid with MQ).</summary>
    public ushort NumQueues { get; init; }

    /// <summary>The most sectors one discard segment may cover (valid with DISCARD).</summary>
    public uint MaxDiscardSectors { get; init; }

    /// <summary>The most segments in one DISCARD request (valid with DISCARD).</summary>
    public uint MaxDiscardSeg { get; init; }

    /// <summary>Discard alignment in sectors (valid with DISCARD).</summary>
    public uint DiscardSectorAlignment { get; init; }

    /// <summary>The most sectors one write-zeroes segment may cover (valid with WRITE_ZEROES).</summary>
    public uint MaxWriteZeroesSectors { get; init; }

    /// <summary>The most segments in one WRITE_ZEROES request (valid with WRITE_ZEROES).</summary>
    public uint MaxWriteZeroesSeg { get; init; }

    /// <summary>1 when WRITE_ZEROES with the UNMAP flag may deallocate (valid with WRITE_ZEROES).</summary>
    public byte WriteZeroesMayUnmap { get; init; }

    /// <summary>How many bytes the device served (57 or 60).</summary>
    public int BytesRead { get; init; }

    /// <summary>Decodes the configuration space from <paramref name="raw"/> (any length; missing fields are zero).</summary>
    public static VirtioBlkConfig Parse(ReadOnlySpan<byte> raw)
    {
        Span<byte> b = stackalloc byte[VirtioBlkConfigLayout.Size];
        b.Clear();
        raw[..Math.Min(raw.Length, b.Length)].CopyTo(b);
        return new VirtioBlkConfig
        {
            Capacity = BinaryPrimitives.ReadUInt64LittleEndian(b[VirtioBlkConfigLayout.Capacity..]),
            SizeMax = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.SizeMax..]),
            SegMax = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.SegMax..]),
            BlkSize = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.BlkSize..]),
            PhysicalBlockExp = b[VirtioBlkConfigLayout.PhysicalBlockExp],
            AlignmentOffset = b[VirtioBlkConfigLayout.AlignmentOffset],
            MinIoSize = BinaryPrimitives.ReadUInt16LittleEndian(b[VirtioBlkConfigLayout.MinIoSize..]),
            OptIoSize = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.OptIoSize..]),
            Writeback = b[VirtioBlkConfigLayout.Writeback],
            NumQueues = BinaryPrimitives.ReadUInt16LittleEndian(b[VirtioBlkConfigLayout.NumQueues..]),
            MaxDiscardSectors = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.MaxDiscardSectors..]),
            MaxDiscardSeg = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.MaxDiscardSeg..]),
            DiscardSectorAlignment = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.DiscardSectorAlignment..]),
            MaxWriteZeroesSectors = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.MaxWriteZeroesSectors..]),
            MaxWriteZeroesSeg = BinaryPrimitives.ReadUInt32LittleEndian(b[VirtioBlkConfigLayout.MaxWriteZeroesSeg..]),
            WriteZeroesMayUnmap = b[VirtioBlkConfigLayout.WriteZeroesMayUnmap],
            BytesRead = Math.Min(raw.Length, VirtioBlkConfigLayout.Size),
        };
    }
}
