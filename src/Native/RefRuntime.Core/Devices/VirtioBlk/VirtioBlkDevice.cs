// The virtio-blk device model (virtio 1.2 §5.2; docs/virtio-blk.md): what it offers (feature
// bits), what it says about itself (the configuration space, §5.2.4) and the limits its request
// validation enforces. The image is the caller's (BlockFile); the device is immutable once made,
// so every queue thread reads it without locks.
//
// Image size. capacity counts 512-byte sectors; an image whose size is not a multiple of 512 is
// refused at Create (a clear error beats a guest that silently loses its last partial sector), and
// with a 4096-byte blk_size the size must be a multiple of 4096.

using System;
using System.Buffers.Binary;
using System.Text;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>How a <see cref="VirtioBlkDevice"/> is set up.</summary>
public sealed record VirtioBlkOptions
{
    /// <summary>The largest ring size accepted (QEMU 7.2's vhost-user-blk-pci uses 128 by default).</summary>
    public const int DefaultQueueSize = 256;

    /// <summary>Offer VIRTIO_BLK_F_RO; refuse writes (no DISCARD, no WRITE_ZEROES).</summary>
    public bool ReadOnly { get; init; }

    /// <summary>Request queues (1 to 64).</summary>
    public int NumQueues { get; init; } = 1;

    /// <summary>The largest ring size accepted (a power of two, 4 to 1024); seg_max is min(this, 128) minus 2.</summary>
    public int QueueSize { get; init; } = DefaultQueueSize;

    /// <summary>blk_size: 512 or 4096.</summary>
    public int BlockSize { get; init; } = SectorSize;

    /// <summary>The GET_ID string (at most 20 bytes of ASCII); null: derived from the image's file name.</summary>
    public string? Serial { get; init; }

    /// <summary>
    /// How long a queue thread with nothing to do looks at its ring and engine before it sleeps
    /// (microseconds, 0 to 1000; 0 = sleep at once). While it looks, kicks stay off, so a driver
    /// that adds a request within the window costs neither side a system call (QEMU's
    /// poll-max-ns for IOThreads is the same idea).
    /// </summary>
    public int PollMicroseconds { get; init; } = DefaultPollMicroseconds;

    /// <summary>The default polling window (see docs/virtio-blk.md "The queue thread").</summary>
    public const int DefaultPollMicroseconds = 0;
}

/// <summary>The device model (see file comment).</summary>
public sealed class VirtioBlkDevice
{
    /// <summary>size_max: the largest data segment announced (bytes).</summary>
    public const uint SizeMax = 1 << 20;

    /// <summary>max_discard_sectors / max_write_zeroes_sectors (about 2 GiB per request).</summary>
    public const uint MaxRangeSectors = (1 << 22) - 1;

    /// <summary>max_discard_seg / max_write_zeroes_seg: one range per request (what QEMU's own device and Linux's single-range requests use).</summary>
    public const int MaxRangeSegments = 1;

    /// <summary>The most data buffers one request may have (the kernel's IOV_MAX).</summary>
    public const int MaxDataSegments = ThreadPoolBlockIo.MaxIov;

    private readonly byte[] _config = new byte[VirtioBlkConfigLayout.Size];
    private readonly byte[] _id = new byte[VIRTIO_BLK_ID_BYTES];

    private VirtioBlkDevice(ulong sizeBytes, VirtioBlkOptions o, string serial)
    {
        Capacity = sizeBytes >> SectorShift;
        ReadOnly = o.ReadOnly;
        PollMicroseconds = o.PollMicroseconds;
        NumQueues = o.NumQueues;
        QueueSize = o.QueueSize;
        BlockSize = o.BlockSize;
        Serial = serial;
        Encoding.ASCII.GetBytes(serial, _id);
        DeviceFeatures = VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_TOPOLOGY | VIRTIO_BLK_F_MQ | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC
            | (o.ReadOnly ? VIRTIO_BLK_F_RO : VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES);

        Span<byte> c = _config;
        BinaryPrimitives.WriteUInt64LittleEndian(c[VirtioBlkConfigLayout.Capacity..], Capacity);
        BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.SizeMax..], SizeMax);
        BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.SegMax..], (uint)SegMax);
        BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.BlkSize..], (uint)BlockSize);
        c[VirtioBlkConfigLayout.PhysicalBlockExp] = 0;
        c[VirtioBlkConfigLayout.AlignmentOffset] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(c[VirtioBlkConfigLayout.MinIoSize..], 1);
        BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.OptIoSize..], 0);
        c[VirtioBlkConfigLayout.Writeback] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(c[VirtioBlkConfigLayout.NumQueues..], (ushort)NumQueues);
        if (!o.ReadOnly)
        {
            uint align = (uint)(BlockSize >> SectorShift);
            BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.MaxDiscardSectors..], MaxRangeSectors);
            BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.MaxDiscardSeg..], MaxRangeSegments);
            BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.DiscardSectorAlignment..], align);
            BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.MaxWriteZeroesSectors..], MaxRangeSectors);
            BinaryPrimitives.WriteUInt32LittleEndian(c[VirtioBlkConfigLayout.MaxWriteZeroesSeg..], MaxRangeSegments);
            c[VirtioBlkConfigLayout.WriteZeroesMayUnmap] = 1;
        }
    }

    /// <summary>Capacity in 512-byte sectors.</summary>
    public ulong Capacity { get; }

    /// <summary>Whether writes are refused (VIRTIO_BLK_F_RO).</summary>
    public bool ReadOnly { get; }

    /// <summary>Request queues.</summary>
    public int NumQueues { get; }

    /// <summary>The largest ring size accepted.</summary>
    public int QueueSize { get; }

    /// <summary>The queue threads' polling window in microseconds (VirtioBlkOptions.PollMicroseconds).</summary>
    public int PollMicroseconds { get; }

    /// <summary>
    /// seg_max: the most data segments a request should carry. The config space is read before the
    /// front-end sets a ring size, so this assumes the smaller of the largest ring accepted and
    /// QEMU's default ring (<see cref="AssumedRingSize"/>), minus the header's and the status's
    /// descriptors: a driver without INDIRECT_DESC then never needs a chain longer than the ring.
    /// Longer chains through an indirect table are accepted anyway (VirtqLayout.MaxIndirectChain).
    /// </summary>
    public int SegMax => Math.Min(Math.Min(QueueSize, AssumedRingSize) - 2, MaxDataSegments);

    /// <summary>The ring size seg_max assumes: QEMU's vhost-user-blk-pci default queue-size.</summary>
    public const int AssumedRingSize = 128;

    /// <summary>blk_size.</summary>
    public int BlockSize { get; }

    /// <summary>The GET_ID string.</summary>
    public string Serial { get; }

    /// <summary>The GET_ID answer: <see cref="Serial"/> zero-padded to 20 bytes.</summary>
    public ReadOnlySpan<byte> Id => _id;

    /// <summary>Feature bits offered (virtio 1.2 §5.2.3 and the ring features).</summary>
    public ulong DeviceFeatures { get; }

    /// <summary>The configuration space bytes (<see cref="VirtioBlkConfigLayout.Size"/>).</summary>
    public ReadOnlySpan<byte> Config => _config;

    /// <summary>Checks the options against an image of <paramref name="sizeBytes"/> and makes the device.</summary>
    /// <param name="sizeBytes">The image size (BlockFile.Size).</param>
    /// <param name="imageName">The image's path or name (for the default serial).</param>
    /// <param name="options">Options.</param>
    /// <param name="device">The device.</param>
    /// <param name="error">Why not.</param>
    /// <returns><see cref="RrStatus.Ok"/> or <see cref="RrStatus.InvalidArgument"/>.</returns>
    public static RrStatus Create(ulong sizeBytes, string imageName, VirtioBlkOptions options, out VirtioBlkDevice? device, out string? error)
    {
        ArgumentNullException.ThrowIfNull(imageName);
        ArgumentNullException.ThrowIfNull(options);
        device = null;
        if (options.NumQueues is < 1 or > 64)
        {
            error = $"{options.NumQueues} queues (1 to 64)";
            return RrStatus.InvalidArgument;
        }

        if (options.PollMicroseconds is < 0 or > 1000)
        {
            device = null;
            error = $"polling window {options.PollMicroseconds} us (0 to 1000)";
            return RrStatus.InvalidArgument;
        }

        if (options.QueueSize is < 4 or > 1024 || (options.QueueSize & (options.QueueSize - 1)) != 0)
        {
            error = $"queue size {options.QueueSize} (a power of two from 4 to 1024)";
            return RrStatus.InvalidArgument;
        }

        if (options.BlockSize is not (SectorSize or 4096))
        {
            error = $"block size {options.BlockSize} (512 or 4096)";
            return RrStatus.InvalidArgument;
        }

        if (sizeBytes % (ulong)options.BlockSize != 0)
        {
            error = $"the image is {sizeBytes} bytes, not a multiple of the {options.BlockSize}-byte block size (resize it, e.g. truncate -s)";
            return RrStatus.InvalidArgument;
        }

        string serial = options.Serial ?? DefaultSerial(imageName);
        if (serial.Length > VIRTIO_BLK_ID_BYTES || !Ascii.IsValid(serial) || serial.Contains('\0', StringComparison.Ordinal))
        {
            error = $"serial \"{serial}\" (at most {VIRTIO_BLK_ID_BYTES} ASCII characters, no NUL)";
            return RrStatus.InvalidArgument;
        }

        device = new VirtioBlkDevice(sizeBytes, options, serial);
        error = null;
        return RrStatus.Ok;
    }

    /// <summary>The serial derived from an image path: its file name, non-ASCII and control characters as '_', the last 20 characters.</summary>
    public static string DefaultSerial(string imagePath)
    {
        ArgumentNullException.ThrowIfNull(imagePath);
        string name = System.IO.Path.GetFileName(imagePath.TrimEnd('/'));
        if (name.Length == 0)
        {
            name = "refruntime-blk";
        }

        var sb = new StringBuilder(name.Length);
        foreach (char ch in name)
        {
            sb.Append(ch is >= ' ' and < (char)127 ? ch : '_');
        }

        string s = sb.ToString();
        return s.Length <= VIRTIO_BLK_ID_BYTES ? s : s[^VIRTIO_BLK_ID_BYTES..];
    }

    /// <summary>Reads configuration bytes [<paramref name="offset"/>, +length); false when out of range.</summary>
    public bool TryReadConfig(uint offset, Span<byte> destination)
    {
        if (offset > (uint)_config.Length || (uint)destination.Length > (uint)_config.Length - offset)
        {
            return false;
        }

        _config.AsSpan((int)offset, destination.Length).CopyTo(destination);
        return true;
    }
}
