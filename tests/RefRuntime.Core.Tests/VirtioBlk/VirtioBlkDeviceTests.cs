using System;
using System.Buffers.Binary;
using System.IO;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;
using Xunit;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Tests.VirtioBlk;

public class VirtioBlkDeviceTests
{
    // The configuration space bytes of a writable 1 MiB device with 2 queues of 128.
    [Fact]
    public void Config_Writable_EveryField()
    {
        Assert.Equal(RrStatus.Ok, VirtioBlkDevice.Create(1 << 20, "/images/disk.img", new VirtioBlkOptions { NumQueues = 2, QueueSize = 128 }, out VirtioBlkDevice? d, out _));
        ReadOnlySpan<byte> c = d!.Config;
        Assert.Equal(VirtioBlkConfigLayout.Size, c.Length);
        Assert.Equal(2048UL, BinaryPrimitives.ReadUInt64LittleEndian(c[VirtioBlkConfigLayout.Capacity..]));
        Assert.Equal(VirtioBlkDevice.SizeMax, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.SizeMax..]));
        Assert.Equal(126u, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.SegMax..]));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.Geometry..]));
        Assert.Equal(512u, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.BlkSize..]));
        Assert.Equal(0, c[VirtioBlkConfigLayout.PhysicalBlockExp]);
        Assert.Equal(0, c[VirtioBlkConfigLayout.AlignmentOffset]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(c[VirtioBlkConfigLayout.MinIoSize..]));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.OptIoSize..]));
        Assert.Equal(1, c[VirtioBlkConfigLayout.Writeback]);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(c[VirtioBlkConfigLayout.NumQueues..]));
        Assert.Equal(VirtioBlkDevice.MaxRangeSectors, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.MaxDiscardSectors..]));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.MaxDiscardSeg..]));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.DiscardSectorAlignment..]));
        Assert.Equal(VirtioBlkDevice.MaxRangeSectors, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.MaxWriteZeroesSectors..]));
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(c[VirtioBlkConfigLayout.MaxWriteZeroesSeg..]));
        Assert.Equal(1, c[VirtioBlkConfigLayout.WriteZeroesMayUnmap]);
        Assert.True(c[57..].IndexOfAnyExcept((byte)0) < 0);

        ulong want = VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH
            | VIRTIO_BLK_F_TOPOLOGY | VIRTIO_BLK_F_MQ | VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;
        Assert.Equal(want, d.DeviceFeatures);
    }

    // Read-only: RO offered, no discard / write-zeroes, and their config fields stay zero; 4096-byte blocks.
    [Fact]
    public void Config_ReadOnly4k_NoDiscardFields()
    {
        Assert.Equal(RrStatus.Ok, VirtioBlkDevice.Create(1 << 20, "x", new VirtioBlkOptions { ReadOnly = true, BlockSize = 4096 }, out VirtioBlkDevice? d, out _));
        Assert.NotEqual(0UL, d!.DeviceFeatures & VIRTIO_BLK_F_RO);
        Assert.Equal(0UL, d.DeviceFeatures & (VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32LittleEndian(d.Config[VirtioBlkConfigLayout.BlkSize..]));
        Assert.True(d.Config[VirtioBlkConfigLayout.MaxDiscardSectors..].IndexOfAnyExcept((byte)0) < 0);
    }

    // Config reads inside the space succeed, reads past it fail.
    [Fact]
    public void TryReadConfig_Bounds()
    {
        VirtioBlkDevice.Create(1 << 20, "x", new VirtioBlkOptions(), out VirtioBlkDevice? d, out _);
        var b = new byte[57];
        Assert.True(d!.TryReadConfig(0, b));
        Assert.True(d.TryReadConfig(59, new byte[1]));
        Assert.False(d.TryReadConfig(59, new byte[2]));
        Assert.False(d.TryReadConfig(uint.MaxValue, new byte[1]));
    }

    // Bad option values and an image size that is not a whole number of blocks are refused with a reason.
    [Theory]
    [InlineData(1000UL, 512, 1, 256, null)]
    [InlineData(4608UL, 4096, 1, 256, null)]
    [InlineData(4096UL, 1024, 1, 256, null)]
    [InlineData(4096UL, 512, 0, 256, null)]
    [InlineData(4096UL, 512, 65, 256, null)]
    [InlineData(4096UL, 512, 1, 100, null)]
    [InlineData(4096UL, 512, 1, 2048, null)]
    [InlineData(4096UL, 512, 1, 256, "this serial is far too long")]
    [InlineData(4096UL, 512, 1, 256, "caf\u00e9")]
    public void Create_BadInput_Refused(ulong size, int blockSize, int queues, int queueSize, string? serial)
    {
        Assert.Equal(RrStatus.InvalidArgument, VirtioBlkDevice.Create(size, "x", new VirtioBlkOptions { BlockSize = blockSize, NumQueues = queues, QueueSize = queueSize, Serial = serial }, out VirtioBlkDevice? d, out string? error));
        Assert.Null(d);
        Assert.False(string.IsNullOrEmpty(error));
    }

    // The default serial is the image's file name: its last 20 characters, anything outside printable ASCII as '_'.
    [Theory]
    [InlineData("/var/lib/images/root.img", "root.img")]
    [InlineData("/a/very-long-image-name-of-a-disk.qcow", "-name-of-a-disk.qcow")]
    [InlineData("d\u00efsk.raw", "d_sk.raw")]
    [InlineData("/", "refruntime-blk")]
    public void DefaultSerial_FromFileName(string path, string serial) => Assert.Equal(serial, VirtioBlkDevice.DefaultSerial(path));

    // A second writer is refused while the first holds the image; readers share; a missing file is NotFound.
    [Fact]
    public void BlockFile_Locking_And_Errors()
    {
        string path = Path.Combine(Path.GetTempPath(), $"rr-bf-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
        File.WriteAllBytes(path, new byte[8192]);
        try
        {
            Assert.Equal(RrStatus.Ok, BlockFile.Open(path, false, out BlockFile? w, out _));
            using (w)
            {
                Assert.Equal(8192UL, w!.Size);
                Assert.False(w.IsBlockDevice);
                Assert.Equal(RrStatus.Busy, BlockFile.Open(path, false, out BlockFile? w2, out string? error));
                Assert.Null(w2);
                Assert.Contains("in use", error, StringComparison.Ordinal);
                Assert.Equal(RrStatus.Busy, BlockFile.Open(path, true, out _, out _));
            }

            Assert.Equal(RrStatus.Ok, BlockFile.Open(path, true, out BlockFile? r1, out _));
            Assert.Equal(RrStatus.Ok, BlockFile.Open(path, true, out BlockFile? r2, out _));
            Assert.True(r1!.ReadOnly);
            Assert.Equal(RrStatus.Busy, BlockFile.Open(path, false, out _, out _));
            r1.Dispose();
            r2!.Dispose();
            Assert.Equal(RrStatus.NotFound, BlockFile.Open(path + ".missing", false, out _, out string? missing));
            Assert.Contains(".missing", missing, StringComparison.Ordinal);
            Assert.Equal(RrStatus.InvalidArgument, BlockFile.Open(Path.GetTempPath(), true, out _, out _));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
