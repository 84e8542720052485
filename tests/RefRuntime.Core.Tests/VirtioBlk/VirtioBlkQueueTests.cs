using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using System.Threading;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Virtio;
using Xunit;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Tests.VirtioBlk;

public class VirtioBlkQueueTests
{
    private static void WaitUntil(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < StressConfig.HangGuard, $"timed out waiting for {what}");
            Thread.Sleep(1);
        }
    }

    private static VirtqBuffer[] Discard(BlkQueueFixture f, ulong sector, uint sectors, uint flags)
    {
        var b = new byte[DiscardSegmentSize];
        new VirtioBlkDiscardSegment(sector, sectors, flags).Write(b);
        return f.DataFrom(b, DiscardSegmentSize);
    }

    // A read of 4 sectors, one buffer per part, fills the data buffer with the image bytes.
    [Theory]
    [InlineData(false, true)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void Read_OneBufferPerPart_ReturnsImageBytes(bool indirect, bool eventIdx)
    {
        ulong features = eventIdx ? BlkQueueFixture.AllFeatures : BlkQueueFixture.AllFeatures & ~VIRTIO_RING_F_EVENT_IDX;
        using var f = new BlkQueueFixture(indirect, features: features);
        VirtqBuffer[] data = f.Data(0, 2048);
        VirtqBuffer st = f.Status();
        uint used = f.Run(1, f.Header(VIRTIO_BLK_T_IN, 3), data, [st]);
        Assert.Equal(2049u, used);
        Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
        Assert.Equal(f.Expected.AsSpan(3 * 512, 2048).ToArray(), f.Read(data));
        f.AssertGuardsIntact();
        Assert.True(f.Notifications > 0);
    }

    // With a polling window (--poll-us) the thread looks at the ring before sleeping with kicks
    // off: back-to-back requests, with and without EVENT_IDX, on both engines, are all answered,
    // each exactly once, with the image's bytes - whether the thread caught them polling or slept.
    [Theory]
    [InlineData(true, BlockIoEngines.Threads)]
    [InlineData(false, BlockIoEngines.Threads)]
    [InlineData(true, BlockIoEngines.IoUring)]
    public void Read_WithPollingWindow_EveryRequestAnsweredOnce(bool eventIdx, string engine)
    {
        if (engine == BlockIoEngines.IoUring && IoUringBlockIoTests.SkipReason is not null)
        {
            return; // io_uring unavailable here: the threads rows cover the window
        }

        ulong features = eventIdx ? BlkQueueFixture.AllFeatures : BlkQueueFixture.AllFeatures & ~VIRTIO_RING_F_EVENT_IDX;
        using var f = new BlkQueueFixture(features: features, pollMicroseconds: 1000, ioUring: engine == BlockIoEngines.IoUring);
        for (int i = 0; i < 200; i++)
        {
            int sector = (i * 7) % 1000;
            VirtqBuffer[] data = f.Data(0, 512);
            VirtqBuffer st = f.Status();
            uint used = f.Run(1, f.Header(VIRTIO_BLK_T_IN, (ulong)sector), data, [st]);
            Assert.Equal(513u, used);
            Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
            Assert.Equal(f.Expected.AsSpan(sector * 512, 512).ToArray(), f.Read(data));
        }

        f.AssertGuardsIntact();
    }

    // The header split over two descriptors, the data over four of odd sizes, and the status byte
    // as the last byte of the last data buffer: the device cuts the parts by bytes, not descriptors.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Read_SplitAcrossDescriptors_StatusInsideLastBuffer(bool indirect)
    {
        using var f = new BlkQueueFixture(indirect);
        VirtqBuffer[] data = f.Data(0, 1, 511, 1000, 537); // 2049 writable bytes: 2048 data + status
        uint used = f.Run(2, f.Header(VIRTIO_BLK_T_IN, 10, 5, 11), data);
        Assert.Equal(2049u, used);
        byte[] got = f.Read(data);
        Assert.Equal(f.Expected.AsSpan(10 * 512, 2048).ToArray(), got[..2048]);
        Assert.Equal(VIRTIO_BLK_S_OK, got[2048]);
        f.AssertGuardsIntact();
    }

    // A write split over many descriptors lands in the image byte for byte, and nothing else changes.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Write_SplitAcrossDescriptors_ImageByteForByte(bool indirect)
    {
        using var f = new BlkQueueFixture(indirect);
        byte[] payload = Enumerable.Range(0, 3 * 512).Select(i => (byte)(i * 13 + 5)).ToArray();
        VirtqBuffer[] hdr = f.Header(VIRTIO_BLK_T_OUT, 100, 3, 13);
        VirtqBuffer[] data = f.DataFrom(payload, 7, 500, 1, 512, 516);
        VirtqBuffer st = f.Status();
        uint used = f.Run(hdr.Length + data.Length, hdr, data, [st]);
        Assert.Equal(1u, used);
        Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
        payload.CopyTo(f.Expected, 100 * 512);
        f.AssertImageExpected();
        f.AssertGuardsIntact();
    }

    // A long chain: 64 data descriptors in an indirect table (more than the ring's free entries would allow directly).
    [Fact]
    public void Write_IndirectTableOfManyBuffers_ThenReadBack()
    {
        using var f = new BlkQueueFixture(indirect: true, queueSize: 128);
        byte[] payload = Enumerable.Range(0, 64 * 512).Select(i => (byte)(i ^ (i >> 8))).ToArray();
        int[] sizes = Enumerable.Repeat(512, 64).ToArray();
        VirtqBuffer[] data = f.DataFrom(payload, sizes);
        VirtqBuffer st = f.Status();
        Assert.Equal(1u, f.Run(1 + data.Length, f.Header(VIRTIO_BLK_T_OUT, 1000), data, [st]));
        Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
        payload.CopyTo(f.Expected, 1000 * 512);
        f.AssertImageExpected();

        VirtqBuffer[] back = f.Data(0, sizes);
        VirtqBuffer st2 = f.Status();
        Assert.Equal((uint)payload.Length + 1, f.Run(1, f.Header(VIRTIO_BLK_T_IN, 1000), back, [st2]));
        Assert.Equal(payload, f.Read(back));
        f.AssertGuardsIntact();
    }

    // FLUSH completes OK with used length 1.
    [Fact]
    public void Flush_ReturnsOk()
    {
        using var f = new BlkQueueFixture();
        VirtqBuffer st = f.Status();
        Assert.Equal(1u, f.Run(1, f.Header(VIRTIO_BLK_T_FLUSH, 0), [st]));
        Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
    }

    // GET_ID writes the serial, zero-padded to 20 bytes: used length 21.
    [Fact]
    public void GetId_WritesSerialZeroPadded()
    {
        using var f = new BlkQueueFixture();
        VirtqBuffer[] id = f.Data(0xCC, VIRTIO_BLK_ID_BYTES);
        VirtqBuffer st = f.Status();
        Assert.Equal(21u, f.Run(1, f.Header(VIRTIO_BLK_T_GET_ID, 0), id, [st]));
        byte[] expected = new byte[20];
        Encoding.ASCII.GetBytes("rr-test-serial", expected);
        Assert.Equal(expected, f.Read(id));
        Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
        f.AssertGuardsIntact();
    }

    // DISCARD and WRITE_ZEROES (with and without UNMAP) leave zeroes in the range, read back through the device too.
    [Theory]
    [InlineData(VIRTIO_BLK_T_DISCARD, 0u)]
    [InlineData(VIRTIO_BLK_T_WRITE_ZEROES, 0u)]
    [InlineData(VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)]
    public void DiscardAndWriteZeroes_ReadBackAsZeroes(uint type, uint flags)
    {
        using var f = new BlkQueueFixture();
        VirtqBuffer st = f.Status();
        VirtqBuffer[] hdr = f.Header(type, 0);
        Assert.Equal(1u, f.Run(2, hdr, Discard(f, 16, 24, flags), [st]));
        Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
        Array.Clear(f.Expected, 16 * 512, 24 * 512);
        f.AssertImageExpected();

        VirtqBuffer[] back = f.Data(0x77, 26 * 512);
        VirtqBuffer st2 = f.Status();
        f.Run(1, f.Header(VIRTIO_BLK_T_IN, 15), back, [st2]);
        Assert.Equal(f.Expected.AsSpan(15 * 512, 26 * 512).ToArray(), f.Read(back));
        f.AssertGuardsIntact();
    }

    // Every malformed request gets the right status, touches no image byte and no byte of its data buffers or around them.
    [Theory]
    [InlineData("header-short", VIRTIO_BLK_S_IOERR)]
    [InlineData("beyond-capacity", VIRTIO_BLK_S_IOERR)]
    [InlineData("write-beyond-capacity", VIRTIO_BLK_S_IOERR)]
    [InlineData("sector-overflow", VIRTIO_BLK_S_IOERR)]
    [InlineData("unknown-type", VIRTIO_BLK_S_UNSUPP)]
    [InlineData("get-lifetime", VIRTIO_BLK_S_UNSUPP)]
    [InlineData("read-not-512", VIRTIO_BLK_S_IOERR)]
    [InlineData("write-not-512", VIRTIO_BLK_S_IOERR)]
    [InlineData("read-with-readable-data", VIRTIO_BLK_S_IOERR)]
    [InlineData("write-with-writable-data", VIRTIO_BLK_S_IOERR)]
    [InlineData("discard-unmap-flag", VIRTIO_BLK_S_UNSUPP)]
    [InlineData("write-zeroes-unknown-flag", VIRTIO_BLK_S_UNSUPP)]
    [InlineData("discard-two-ranges", VIRTIO_BLK_S_IOERR)]
    [InlineData("discard-partial-range", VIRTIO_BLK_S_IOERR)]
    [InlineData("discard-zero-sectors", VIRTIO_BLK_S_IOERR)]
    [InlineData("discard-beyond-capacity", VIRTIO_BLK_S_IOERR)]
    [InlineData("discard-not-negotiated", VIRTIO_BLK_S_UNSUPP)]
    [InlineData("write-zeroes-with-writable-data", VIRTIO_BLK_S_IOERR)]
    public void Malformed_GetsStatus_TouchesNothing(string kind, byte status)
    {
        ulong features = kind == "discard-not-negotiated" ? BlkQueueFixture.AllFeatures & ~(VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES) : BlkQueueFixture.AllFeatures;
        using var f = new BlkQueueFixture(features: features);
        ulong cap = f.Device.Capacity;
        VirtqBuffer st = f.Status();
        const byte Fill = 0x3C;
        VirtqBuffer[] data = [];
        uint used = kind switch
        {
            "header-short" => f.Run(1, f.DataFrom(new byte[8], 8), data = f.Data(Fill, 512), [st]),
            "beyond-capacity" => f.Run(1, f.Header(VIRTIO_BLK_T_IN, cap - 1), data = f.Data(Fill, 1024), [st]),
            "write-beyond-capacity" => f.Run(2, f.Header(VIRTIO_BLK_T_OUT, cap), data = f.Data(Fill, 512), [st]),
            "sector-overflow" => f.Run(1, f.Header(VIRTIO_BLK_T_IN, ulong.MaxValue), data = f.Data(Fill, 512), [st]),
            "unknown-type" => f.Run(1, f.Header(99, 0), data = f.Data(Fill, 512), [st]),
            "get-lifetime" => f.Run(1, f.Header(VIRTIO_BLK_T_GET_LIFETIME, 0), data = f.Data(Fill, 512), [st]),
            "read-not-512" => f.Run(1, f.Header(VIRTIO_BLK_T_IN, 0), data = f.Data(Fill, 100), [st]),
            "write-not-512" => f.Run(2, f.Header(VIRTIO_BLK_T_OUT, 0), data = f.Data(Fill, 700), [st]),
            "read-with-readable-data" => f.Run(2, f.Header(VIRTIO_BLK_T_IN, 0), f.Data(Fill, 512), data = f.Data(Fill, 512), [st]),
            "write-with-writable-data" => f.Run(2, f.Header(VIRTIO_BLK_T_OUT, 0), f.Data(Fill, 512), data = f.Data(Fill, 512), [st]),
            "discard-unmap-flag" => f.Run(2, f.Header(VIRTIO_BLK_T_DISCARD, 0), Discard(f, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP), [st]),
            "write-zeroes-unknown-flag" => f.Run(2, f.Header(VIRTIO_BLK_T_WRITE_ZEROES, 0), Discard(f, 0, 8, 2), [st]),
            "discard-two-ranges" => f.Run(3, f.Header(VIRTIO_BLK_T_DISCARD, 0), Discard(f, 0, 8, 0), Discard(f, 16, 8, 0), [st]),
            "discard-partial-range" => f.Run(2, f.Header(VIRTIO_BLK_T_DISCARD, 0), f.DataFrom(new byte[10], 10), [st]),
            "discard-zero-sectors" => f.Run(2, f.Header(VIRTIO_BLK_T_DISCARD, 0), Discard(f, 0, 0, 0), [st]),
            "discard-beyond-capacity" => f.Run(2, f.Header(VIRTIO_BLK_T_DISCARD, 0), Discard(f, cap - 4, 8, 0), [st]),
            "discard-not-negotiated" => f.Run(2, f.Header(VIRTIO_BLK_T_DISCARD, 0), Discard(f, 0, 8, 0), [st]),
            "write-zeroes-with-writable-data" => f.Run(2, f.Header(VIRTIO_BLK_T_WRITE_ZEROES, 0), Discard(f, 0, 8, 0), data = f.Data(Fill, 512), [st]),
            _ => throw new ArgumentOutOfRangeException(nameof(kind)),
        };

        Assert.Equal(1u, used);
        Assert.Equal(status, f.StatusOf(st));
        Assert.True(f.Read(data).All(b => b == Fill), "a data buffer of a refused request was written");
        f.AssertImageExpected();
        f.AssertGuardsIntact();
        Assert.Equal(1, f.BlkQueue.IoErrors + f.BlkQueue.Unsupported);

        // The queue goes on serving.
        VirtqBuffer[] ok = f.Data(0, 512);
        VirtqBuffer st2 = f.Status();
        Assert.Equal(513u, f.Run(1, f.Header(VIRTIO_BLK_T_IN, 1), ok, [st2]));
        Assert.Equal(f.Expected.AsSpan(512, 512).ToArray(), f.Read(ok));
    }

    // A chain with no writable byte cannot carry a status: returned with used length 0 and counted; nothing written anywhere.
    [Fact]
    public void NoWritableByte_ReturnedWithLengthZero()
    {
        using var f = new BlkQueueFixture();
        VirtqBuffer[] payload = f.Data(0x11, 512);
        uint used = f.Run(2, f.Header(VIRTIO_BLK_T_OUT, 0), payload);
        Assert.Equal(0u, used);
        Assert.Equal(1, f.BlkQueue.NoStatus);
        f.AssertImageExpected();
        f.AssertGuardsIntact();
    }

    // A malformed chain (a descriptor outside guest memory) comes back with length 0 and the queue keeps serving.
    [Fact]
    public void MalformedChain_ReturnedWithLengthZero_QueueGoesOn()
    {
        using var f = new BlkQueueFixture();
        VirtqBuffer st = f.Status();
        VirtqBuffer[] hdr = f.Header(VIRTIO_BLK_T_IN, 0);
        f.Add(1, 1, hdr, [st]);
        f.Publish();
        (ulong t1, uint l1) = f.WaitUsed();
        Assert.Equal((1UL, 1u), (t1, l1));

        // Rewrite the descriptor of a fresh chain's header to point far outside the region, as a hostile driver could.
        var vf = new RawRing(f);
        VirtqBuffer st2 = f.Status();
        f.Add(2, 1, f.Header(VIRTIO_BLK_T_IN, 0), [st2]);
        vf.PointLastHeadOutside();
        f.Publish();
        (ulong t2, uint l2) = f.WaitUsed();
        Assert.Equal((2UL, 0u), (t2, l2));
        Assert.Equal(1, f.BlkQueue.NoStatus);
        Assert.Equal(BlkQueueFixture.StatusPoison, f.StatusOf(st2));

        VirtqBuffer[] ok = f.Data(0, 512);
        VirtqBuffer st3 = f.Status();
        Assert.Equal(513u, f.Run(1, f.Header(VIRTIO_BLK_T_IN, 2), ok, [st3]));
        f.AssertGuardsIntact();
    }

    // A read-only device serves reads and answers IOERR to writes without touching the image.
    [Fact]
    public void ReadOnly_ReadsWork_WritesRefused()
    {
        using var f = new BlkQueueFixture(readOnly: true);
        Assert.NotEqual(0UL, f.Device.DeviceFeatures & VIRTIO_BLK_F_RO);
        Assert.Equal(0UL, f.Device.DeviceFeatures & (VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES));
        VirtqBuffer[] data = f.Data(0, 512);
        VirtqBuffer st = f.Status();
        Assert.Equal(513u, f.Run(1, f.Header(VIRTIO_BLK_T_IN, 7), data, [st]));
        Assert.Equal(f.Expected.AsSpan(7 * 512, 512).ToArray(), f.Read(data));

        VirtqBuffer st2 = f.Status();
        Assert.Equal(1u, f.Run(2, f.Header(VIRTIO_BLK_T_OUT, 7), f.Data(0x99, 512), [st2]));
        Assert.Equal(VIRTIO_BLK_S_IOERR, f.StatusOf(st2));
        VirtqBuffer st3 = f.Status();
        f.Run(2, f.Header(VIRTIO_BLK_T_WRITE_ZEROES, 0), Discard(f, 0, 8, 0), [st3]);
        Assert.Equal(VIRTIO_BLK_S_UNSUPP, f.StatusOf(st3));
        f.AssertImageExpected();
    }

    // 32 reads in flight complete in the reverse of their submission order (the driver hands out heads in
    // increasing order here, and the engine releases the highest head first); each gets its own sector's bytes.
    [Fact]
    public void OutOfOrder_Qd32_EachRequestGetsItsData()
    {
        HoldingEngine? hold = null;
        using var f = new BlkQueueFixture(engine: e => hold = new HoldingEngine(e), queueSize: 128);
        var bufs = new Dictionary<ulong, (VirtqBuffer[] Data, VirtqBuffer Status)>();
        for (ulong i = 0; i < 32; i++)
        {
            VirtqBuffer[] d = f.Data(0, 512);
            VirtqBuffer st = f.Status();
            bufs[i] = (d, st);
            f.Add(i, 1, f.Header(VIRTIO_BLK_T_IN, 40 + (i * 3)), d, [st]);
        }

        f.Publish();
        WaitUntil(() => hold!.Held == 32, "32 completions held");
        Assert.False(f.Driver.HasUsed);
        hold!.Release();
        var order = new List<ulong>();
        for (int k = 0; k < 32; k++)
        {
            (ulong token, uint len) = f.WaitUsed();
            Assert.Equal(513u, len);
            order.Add(token);
        }

        Assert.Equal(Enumerable.Range(0, 32).Select(i => (ulong)(31 - i)), order);
        foreach ((ulong i, (VirtqBuffer[] d, VirtqBuffer st)) in bufs)
        {
            Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
            Assert.Equal(f.Expected.AsSpan((int)(40 + (i * 3)) * 512, 512).ToArray(), f.Read(d));
        }

        f.AssertGuardsIntact();
    }

    // Stop with writes in flight does not return until they finished; each is completed OK and is in the image.
    [Fact]
    public void Stop_WithIoInFlight_WaitsAndLosesNothing()
    {
        HoldingEngine? hold = null;
        using var f = new BlkQueueFixture(engine: e => hold = new HoldingEngine(e));
        var statuses = new List<VirtqBuffer>();
        for (int i = 0; i < 8; i++)
        {
            byte[] payload = Enumerable.Repeat((byte)(0x40 + i), 1024).ToArray();
            VirtqBuffer st = f.Status();
            statuses.Add(st);
            f.Add((ulong)i, 2, f.Header(VIRTIO_BLK_T_OUT, 200 + ((ulong)i * 2)), f.DataFrom(payload, 1024), [st]);
            payload.CopyTo(f.Expected, (200 + (i * 2)) * 512);
        }

        f.Publish();
        WaitUntil(() => hold!.Held == 8, "8 writes finished and held");
        var stop = new Thread(f.BlkQueue.Stop);
        stop.Start();
        Thread.Sleep(200); // let Stop reach its wait; it must still be waiting after this
        Assert.True(stop.IsAlive, "Stop returned while I/O was in flight");
        Assert.True(f.BlkQueue.IsRunning);
        hold!.Release();
        Assert.True(stop.Join(StressConfig.HangGuard), "Stop did not return after the I/O finished");
        Assert.False(f.BlkQueue.IsRunning);
        var seen = new HashSet<ulong>();
        for (int i = 0; i < 8; i++)
        {
            (ulong token, uint len) = f.WaitUsed();
            Assert.Equal(1u, len);
            Assert.True(seen.Add(token));
        }

        Assert.All(statuses, st => Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st)));
        f.AssertImageExpected();
    }

    // A full engine stops the queue from popping; completions make room and the rest follow.
    [Fact]
    public void EngineFull_StopsPopping_UntilCompletionsFreeRoom()
    {
        HoldingEngine? hold = null;
        using var f = new BlkQueueFixture(engine: e => hold = new HoldingEngine(e), capacity: 4);
        var data = new List<(ulong Sector, VirtqBuffer[] Data)>();
        for (ulong i = 0; i < 10; i++)
        {
            VirtqBuffer[] d = f.Data(0, 512);
            data.Add((60 + i, d));
            f.Add(i, 1, f.Header(VIRTIO_BLK_T_IN, 60 + i), d, [f.Status()]);
        }

        f.Publish();
        WaitUntil(() => hold!.Held == 4, "4 completions held");
        Thread.Sleep(50); // a wrong device would pop more meanwhile
        Assert.Equal(4, hold!.Submitted);
        Assert.Equal(4, f.BlkQueue.Requests);
        Assert.Equal(4, f.Queue.NextAvail);
        hold.Release();
        for (int k = 0; k < 10; k++)
        {
            Assert.Equal(513u, f.WaitUsed().Length);
        }

        foreach ((ulong sector, VirtqBuffer[] d) in data)
        {
            Assert.Equal(f.Expected.AsSpan((int)sector * 512, 512).ToArray(), f.Read(d));
        }
    }

    // Without FLUSH negotiated the device is write-through: each write is followed by an fdatasync before its OK.
    [Theory]
    [InlineData(true, 0)]
    [InlineData(false, 1)]
    public void Write_WithoutFlushFeature_IsWriteThrough(bool flushNegotiated, int flushes)
    {
        HoldingEngine? hold = null;
        ulong features = flushNegotiated ? BlkQueueFixture.AllFeatures : BlkQueueFixture.AllFeatures & ~VIRTIO_BLK_F_FLUSH;
        using var f = new BlkQueueFixture(features: features, engine: e => hold = new HoldingEngine(e, holding: false));
        VirtqBuffer st = f.Status();
        f.Run(2, f.Header(VIRTIO_BLK_T_OUT, 5), f.DataFrom(new byte[512], 512), [st]);
        Assert.Equal(VIRTIO_BLK_S_OK, f.StatusOf(st));
        Assert.Equal(flushes, hold!.Flushes);
        Array.Clear(f.Expected, 5 * 512, 512);
        f.AssertImageExpected();
    }

    // A read past the end of a file that shrank under the device (a short read) answers IOERR.
    [Fact]
    public void ShortRead_AnswersIoErr()
    {
        using var f = new BlkQueueFixture();
        f.Truncate(512 * 10);

        VirtqBuffer st = f.Status();
        Assert.Equal(1u, f.Run(1, f.Header(VIRTIO_BLK_T_IN, 9), f.Data(0, 1024), [st]));
        Assert.Equal(VIRTIO_BLK_S_IOERR, f.StatusOf(st));
        Assert.Equal(1, f.BlkQueue.IoFailures);
    }

    /// <summary>Raw access to the fixture's descriptor table, to play a hostile driver.</summary>
    private sealed unsafe class RawRing(BlkQueueFixture f)
    {
        /// <summary>Points the last added chain's head descriptor at an address outside guest memory.</summary>
        public void PointLastHeadOutside()
        {
            VirtqRings r = f.Driver.Rings;
            Span<byte> avail = f.Bytes(r.AvailGpa, 4 + (2 * r.Size));
            // One chain is staged and not yet published: its ring entry is at the published index.
            ushort idx = (ushort)(avail[2] | (avail[3] << 8));
            int slot = idx & (r.Size - 1);
            ushort head = (ushort)(avail[4 + (2 * slot)] | (avail[5 + (2 * slot)] << 8));
            Span<byte> d = f.Bytes(r.DescGpa + ((ulong)head * 16), 16);
            ulong bad = 0xdead_0000_0000;
            BitConverter.TryWriteBytes(d, bad);
        }
    }
}
