// The virtio-blk wire protocol (virtio 1.2 §5.2 "Block Device", device ID 2; see
// docs/virtio-blk.md): feature bits, request types, status codes, the request header, the
// discard/write-zeroes segment and the configuration space layout. Both sides use it: the
// vhost-user back-end (VirtioBlkDevice) and RefRuntime's own front end (VhostUserBlkFrontend).
// All multi-byte fields are little-endian; a sector is always 512 bytes, whatever blk_size says.

using System;
using System.Buffers.Binary;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>Constants of the virtio-blk device (virtio 1.2 §5.2).</summary>
public static class VirtioBlkConst
{
    /// <summary>Virtio device ID of a block device.</summary>
    public const int DeviceId = 2;

    /// <summary>Bytes per sector in request headers and capacity (fixed by the spec).</summary>
    public const int SectorSize = 512;

    /// <summary>log2 of <see cref="SectorSize"/>.</summary>
    public const int SectorShift = 9;

    // ---- feature bits (§5.2.3) ----

    /// <summary><c>VIRTIO_BLK_F_SIZE_MAX</c> (1): size_max is valid.</summary>
    public const ulong VIRTIO_BLK_F_SIZE_MAX = 1UL << 1;

    /// <summary><c>VIRTIO_BLK_F_SEG_MAX</c> (2): seg_max is valid.</summary>
    public const ulong VIRTIO_BLK_F_SEG_MAX = 1UL << 2;

    /// <summary><c>VIRTIO_BLK_F_GEOMETRY</c> (4).</summary>
    public const ulong VIRTIO_BLK_F_GEOMETRY = 1UL << 4;

    /// <summary><c>VIRTIO_BLK_F_RO</c> (5): the device is read-only.</summary>
    public const ulong VIRTIO_BLK_F_RO = 1UL << 5;

    /// <summary><c>VIRTIO_BLK_F_BLK_SIZE</c> (6): blk_size is valid.</summary>
    public const ulong VIRTIO_BLK_F_BLK_SIZE = 1UL << 6;

    /// <summary><c>VIRTIO_BLK_F_FLUSH</c> (9): FLUSH is supported.</summary>
    public const ulong VIRTIO_BLK_F_FLUSH = 1UL << 9;

    /// <summary><c>VIRTIO_BLK_F_TOPOLOGY</c> (10): the topology fields are valid.</summary>
    public const ulong VIRTIO_BLK_F_TOPOLOGY = 1UL << 10;

    /// <summary><c>VIRTIO_BLK_F_CONFIG_WCE</c> (11): the writeback field is writable.</summary>
    public const ulong VIRTIO_BLK_F_CONFIG_WCE = 1UL << 11;

    /// <summary><c>VIRTIO_BLK_F_MQ</c> (12): num_queues is valid.</summary>
    public const ulong VIRTIO_BLK_F_MQ = 1UL << 12;

    /// <summary><c>VIRTIO_BLK_F_DISCARD</c> (13): DISCARD and its config fields.</summary>
    public const ulong VIRTIO_BLK_F_DISCARD = 1UL << 13;

    /// <summary><c>VIRTIO_BLK_F_WRITE_ZEROES</c> (14): WRITE_ZEROES and its config fields.</summary>
    public const ulong VIRTIO_BLK_F_WRITE_ZEROES = 1UL << 14;

    /// <summary><c>VIRTIO_RING_F_INDIRECT_DESC</c> (28).</summary>
    public const ulong VIRTIO_RING_F_INDIRECT_DESC = 1UL << 28;

    /// <summary><c>VIRTIO_RING_F_EVENT_IDX</c> (29).</summary>
    public const ulong VIRTIO_RING_F_EVENT_IDX = 1UL << 29;

    /// <summary><c>VIRTIO_F_VERSION_1</c> (32).</summary>
    public const ulong VIRTIO_F_VERSION_1 = 1UL << 32;

    // ---- request types (§5.2.6) ----

    /// <summary>Read sectors into the writable buffers.</summary>
    public const uint VIRTIO_BLK_T_IN = 0;

    /// <summary>Write sectors from the readable buffers.</summary>
    public const uint VIRTIO_BLK_T_OUT = 1;

    /// <summary>Flush the volatile write cache (fsync).</summary>
    public const uint VIRTIO_BLK_T_FLUSH = 4;

    /// <summary>Device ID string: 20 bytes, zero-padded, not necessarily terminated.</summary>
    public const uint VIRTIO_BLK_T_GET_ID = 8;

    /// <summary>Device lifetime (not offered).</summary>
    public const uint VIRTIO_BLK_T_GET_LIFETIME = 10;

    /// <summary>Discard ranges (segments of <see cref="VirtioBlkDiscardSegment"/>).</summary>
    public const uint VIRTIO_BLK_T_DISCARD = 11;

    /// <summary>Write zeroes over ranges (segments of <see cref="VirtioBlkDiscardSegment"/>).</summary>
    public const uint VIRTIO_BLK_T_WRITE_ZEROES = 13;

    /// <summary>Secure erase (not offered).</summary>
    public const uint VIRTIO_BLK_T_SECURE_ERASE = 14;

    /// <summary>Length of the GET_ID answer.</summary>
    public const int VIRTIO_BLK_ID_BYTES = 20;

    // ---- status byte (§5.2.6) ----

    /// <summary>Success.</summary>
    public const byte VIRTIO_BLK_S_OK = 0;

    /// <summary>Device or driver error.</summary>
    public const byte VIRTIO_BLK_S_IOERR = 1;

    /// <summary>Request not supported.</summary>
    public const byte VIRTIO_BLK_S_UNSUPP = 2;

    /// <summary>Bytes of <see cref="VirtioBlkRequestHeader"/> on the wire.</summary>
    public const int HeaderSize = 16;

    /// <summary>Bytes of one discard / write-zeroes segment on the wire.</summary>
    public const int DiscardSegmentSize = 16;

    /// <summary>Discard / write-zeroes segment flag: the range may be unmapped (write-zeroes only).</summary>
    public const uint VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;
}

/// <summary>The 16-byte request header <c>{le32 type, le32 reserved (ioprio), le64 sector}</c>.</summary>
public readonly record struct VirtioBlkRequestHeader(uint Type, uint Reserved, ulong Sector)
{
    /// <summary>Decodes the header from the first 16 bytes of <paramref name="b"/>.</summary>
    public static VirtioBlkRequestHeader Read(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt32LittleEndian(b), BinaryPrimitives.ReadUInt32LittleEndian(b[4..]), BinaryPrimitives.ReadUInt64LittleEndian(b[8..]));

    /// <summary>Encodes the header into the first 16 bytes of <paramref name="b"/>.</summary>
    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(b, Type);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], Reserved);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], Sector);
    }
}

/// <summary>One discard / write-zeroes range <c>{le64 sector, le32 num_sectors, le32 flags}</c>.</summary>
public readonly record struct VirtioBlkDiscardSegment(ulong Sector, uint NumSectors, uint Flags)
{
    /// <summary>Decodes a segment from the first 16 bytes of <paramref name="b"/>.</summary>
    public static VirtioBlkDiscardSegment Read(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt64LittleEndian(b), BinaryPrimitives.ReadUInt32LittleEndian(b[8..]), BinaryPrimitives.ReadUInt32LittleEndian(b[12..]));

    /// <summary>Encodes the segment into the first 16 bytes of <paramref name="b"/>.</summary>
    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(b, Sector);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], NumSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], Flags);
    }
}

/// <summary>
/// Byte offsets of the configuration space fields (virtio 1.2 §5.2.4, <c>struct virtio_blk_config</c>).
/// QEMU 7.2's vhost-user-blk-pci reads the first 57 bytes (up to write_zeroes_may_unmap) when
/// DISCARD or WRITE_ZEROES is offered; <see cref="Size"/> covers the fields up to the padding after it.
/// </summary>
public static class VirtioBlkConfigLayout
{
    /// <summary>le64 capacity in 512-byte sectors.</summary>
    public const int Capacity = 0;

    /// <summary>le32 size_max: the largest segment, bytes.</summary>
    public const int SizeMax = 8;

    /// <summary>le32 seg_max: the most data segments in one request.</summary>
    public const int SegMax = 12;

    /// <summary>geometry {le16 cylinders, u8 heads, u8 sectors}.</summary>
    public const int Geometry = 16;

    /// <summary>le32 blk_size: the optimal (logical) block size, bytes.</summary>
    public const int BlkSize = 20;

    /// <summary>u8 physical_block_exp (physical block = blk_size &lt;&lt; exp).</summary>
    public const int PhysicalBlockExp = 24;

    /// <summary>u8 alignment_offset (in logical blocks).</summary>
    public const int AlignmentOffset = 25;

    /// <summary>le16 min_io_size (in logical blocks).</summary>
    public const int MinIoSize = 26;

    /// <summary>le32 opt_io_size (in logical blocks).</summary>
    public const int OptIoSize = 28;

    /// <summary>u8 writeback (1 = write-back cache: FLUSH needed for durability).</summary>
    public const int Writeback = 32;

    /// <summary>le16 num_queues.</summary>
    public const int NumQueues = 34;

    /// <summary>le32 max_discard_sectors.</summary>
    public const int MaxDiscardSectors = 36;

    /// <summary>le32 max_discard_seg.</summary>
    public const int MaxDiscardSeg = 40;

    /// <summary>le32 discard_sector_alignment.</summary>
    public const int DiscardSectorAlignment = 44;

    /// <summary>le32 max_write_zeroes_sectors.</summary>
    public const int MaxWriteZeroesSectors = 48;

    /// <summary>le32 max_write_zeroes_seg.</summary>
    public const int MaxWriteZeroesSeg = 52;

    /// <summary>u8 write_zeroes_may_unmap.</summary>
    public const int WriteZeroesMayUnmap = 56;

    /// <summary>Bytes of configuration space served (through unused1[3]).</summary>
    public const int Size = 60;
}
