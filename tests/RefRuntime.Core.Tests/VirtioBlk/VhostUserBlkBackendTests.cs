using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using Microsoft.Win32.SafeHandles;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Tests.Vhost;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;
using Xunit;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Tests.VirtioBlk;

/// <summary>
/// The back-end behind a real vhost-user server and socket in this process, driven by
/// RefRuntime's VhostUserFrontend the way QEMU drives it: handshake (MQ, CONFIG), memory table,
/// rings started, requests on two queues, a kick descriptor replaced while a ring runs, a ring
/// stopped (GET_VRING_BASE) and started again.
/// </summary>
public sealed unsafe class VhostUserBlkBackendTests : IDisposable
{
    private const int RingSize = 64;
    private readonly string _image = Path.Combine(Path.GetTempPath(), $"rr-vblk-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
    private readonly string _socket = BackendProcess.NewSocketPath();
    private readonly BlockFile _file;
    private readonly VhostUserBlkBackend _backend;
    private readonly VhostUserServer _server;
    private readonly Thread _serverThread;
    private readonly List<string> _log = [];

    public VhostUserBlkBackendTests()
    {
        File.WriteAllBytes(_image, BlkQueueFixture.Pattern(256 * 1024));
        Assert.Equal(RrStatus.Ok, BlockFile.Open(_image, false, out BlockFile? f, out _));
        _file = f!;
        Assert.Equal(RrStatus.Ok, VirtioBlkDevice.Create(_file.Size, _image, new VirtioBlkOptions { NumQueues = 2, QueueSize = 128 }, out VirtioBlkDevice? device, out _));
        _backend = new VhostUserBlkBackend(device!, q => new ThreadPoolBlockIo(_file.Fd, 128, 2, $"t{q}"), Log);
        Assert.Equal(RrStatus.Ok, VhostUserServer.Listen(_socket, _backend, Log, out VhostUserServer? server, out string? error));
        Assert.Null(error);
        _server = server!;
        _serverThread = new Thread(_server.Run) { IsBackground = true };
        _serverThread.Start();
    }

    public void Dispose()
    {
        _server.Stop();
        _serverThread.Join();
        _server.Dispose();
        _backend.Dispose();
        _file.Dispose();
        File.Delete(_image);
    }

    private void Log(string line)
    {
        lock (_log)
        {
            _log.Add(line);
        }
    }

    private byte[] ImageBytes()
    {
        using var h = new SafeFileHandle(_file.Fd, ownsHandle: false);
        var b = new byte[RandomAccess.GetLength(h)];
        RandomAccess.Read(h, b, 0);
        return b;
    }

    private sealed class Ring(FrontEndMemory mem, VirtqDriver driver, int index)
    {
        public readonly VirtqDriver Driver = driver;
        public readonly int Index = index;
        public EventFd Kick = EventFd.Create();
        public readonly EventFd Call = EventFd.Create();

        public void Start(VhostUserFrontend fe, ushort base_)
        {
            VirtqRings r = Driver.Rings;
            Assert.Equal(RrStatus.Ok, fe.StartRing(Index, r.Size, base_, mem.UserAddressOf(r.DescGpa), mem.UserAddressOf(r.AvailGpa), mem.UserAddressOf(r.UsedGpa), Kick.Fd, Call.Fd, out string? error));
            Assert.Null(error);
        }
    }

    private static ulong Carve(FrontEndMemory m, int bytes, byte fill)
    {
        Assert.Equal(RrStatus.Ok, m.Memory.TryCarve((ulong)bytes, 64, out ulong gpa));
        Assert.True(m.Memory.TryTranslate(gpa, (ulong)bytes, out byte* p));
        new Span<byte>(p, bytes).Fill(fill);
        return gpa;
    }

    private static Span<byte> At(FrontEndMemory m, ulong gpa, int bytes)
    {
        Assert.True(m.Memory.TryTranslate(gpa, (ulong)bytes, out byte* p));
        return new Span<byte>(p, bytes);
    }

    /// <summary>One request on <paramref name="ring"/>: header, data (readable for OUT, writable for IN), status; returns (status, used length).</summary>
    private static (byte Status, uint Used) Request(FrontEndMemory m, Ring ring, uint type, ulong sector, ulong data, int dataBytes)
    {
        ulong hdr = Carve(m, HeaderSize, 0);
        new VirtioBlkRequestHeader(type, 0, sector).Write(At(m, hdr, HeaderSize));
        ulong st = Carve(m, 1, 0xEE);
        var bufs = new List<VirtqBuffer> { new(hdr, HeaderSize) };
        if (dataBytes > 0)
        {
            bufs.Add(new VirtqBuffer(data, (uint)dataBytes));
        }

        bufs.Add(new VirtqBuffer(st, 1));
        int readable = type == VIRTIO_BLK_T_OUT ? 2 : 1;
        Assert.Equal(RrStatus.Ok, ring.Driver.TryAdd(bufs.ToArray(), readable, 5));
        if (ring.Driver.KickPrepare())
        {
            ring.Kick.Signal();
        }

        var sw = Stopwatch.StartNew();
        while (true)
        {
            RrStatus s = ring.Driver.TryGetUsed(out ulong token, out uint len);
            if (s == RrStatus.Ok)
            {
                Assert.Equal(5UL, token);
                return (At(m, st, 1)[0], len);
            }

            Assert.Equal(RrStatus.NotFound, s);
            Assert.True(sw.Elapsed < StressConfig.HangGuard, $"ring {ring.Index}: no answer");
            Thread.Sleep(1);
        }
    }

    // The whole life of a vhost-user-blk connection, as QEMU runs it.
    [Fact]
    public void Session_HandshakeRequestsKickReplacementAndRestart()
    {
        Assert.Equal(RrStatus.Ok, VhostUserFrontend.Connect(_socket, out VhostUserFrontend? fe, out string? error));
        using (fe)
        {
            Assert.Equal(RrStatus.Ok, fe!.Handshake(VhostUserFrontend.Wanted, out error));
            Assert.NotEqual(VhostUserProtocolFeatures.None, fe.ProtocolFeatures & VhostUserProtocolFeatures.Config);
            Assert.NotEqual(VhostUserProtocolFeatures.None, fe.ProtocolFeatures & VhostUserProtocolFeatures.Mq);
            Assert.Equal(2, fe.QueueCount);
            var cfg = new byte[60];
            Assert.Equal(RrStatus.Ok, fe.GetConfig(0, cfg, out _));
            Assert.Equal(_backend.Device.Config.ToArray(), cfg);
            var partial = new byte[57];
            Assert.Equal(RrStatus.Ok, fe.GetConfig(0, partial, out _));
            Assert.Equal(RrStatus.InvalidArgument, fe.GetConfig(40, new byte[30], out _));

            ulong features = fe.BackendFeatures & (VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_MQ | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC | VhostUser.F_PROTOCOL_FEATURES);
            Assert.Equal(RrStatus.Ok, fe.SetFeatures(features, out _));
            Assert.Equal(RrStatus.Ok, FrontEndMemory.Create(8 << 20, 0x10_0000, out FrontEndMemory? mem, out error));
            using (mem)
            {
                Assert.Equal(RrStatus.Ok, fe.SetMemTable([mem!.Region], [mem.Fd], out error));
                Assert.Null(error);
                var rings = new Ring[2];
                try
                {
                for (int i = 0; i < 2; i++)
                {
                    Assert.Equal(RrStatus.Ok, VirtqDriver.Create(mem.Memory, RingSize, VirtqFeatures.EventIdx, 0, out VirtqDriver? d, out _));
                    rings[i] = new Ring(mem, d!, i);
                    rings[i].Start(fe, 0);
                }

                // A write on queue 1, read back on queue 0.
                ulong w = Carve(mem, 4096, 0x5A);
                Assert.Equal((VIRTIO_BLK_S_OK, 1u), Request(mem, rings[1], VIRTIO_BLK_T_OUT, 8, w, 4096));
                ulong r = Carve(mem, 4096, 0);
                Assert.Equal((VIRTIO_BLK_S_OK, 4097u), Request(mem, rings[0], VIRTIO_BLK_T_IN, 8, r, 4096));
                Assert.True(At(mem, r, 4096).IndexOfAnyExcept((byte)0x5A) < 0);
                Assert.Equal((VIRTIO_BLK_S_OK, 1u), Request(mem, rings[1], VIRTIO_BLK_T_FLUSH, 0, 0, 0));

                // A new kick descriptor while ring 0 runs: the queue thread must follow it.
                EventFd old = rings[0].Kick;
                rings[0].Kick = EventFd.Create();
                Assert.Equal(RrStatus.Ok, fe.Send(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, 0, fds: [rings[0].Kick.Fd]), out error));
                old.Dispose();
                Assert.Equal((VIRTIO_BLK_S_OK, 4097u), Request(mem, rings[0], VIRTIO_BLK_T_IN, 8, r, 4096));

                // Stop ring 1 (GET_VRING_BASE) and start it again from where it stopped, with a new kick.
                Assert.Equal(RrStatus.Ok, fe.StopRing(1, out ushort next, out _));
                Assert.Equal(2, next);
                rings[1].Kick.Dispose();
                rings[1].Kick = EventFd.Create();
                rings[1].Start(fe, next);
                ulong w2 = Carve(mem, 512, 0x6B);
                Assert.Equal((VIRTIO_BLK_S_OK, 1u), Request(mem, rings[1], VIRTIO_BLK_T_OUT, 100, w2, 512));

                byte[] img = ImageBytes();
                Assert.True(img.AsSpan(8 * 512, 4096).IndexOfAnyExcept((byte)0x5A) < 0);
                Assert.True(img.AsSpan(100 * 512, 512).IndexOfAnyExcept((byte)0x6B) < 0);
                Assert.Equal(BlkQueueFixture.Pattern(256 * 1024).AsSpan(0, 8 * 512).ToArray(), img.AsSpan(0, 8 * 512).ToArray());

                Assert.Equal(RrStatus.Ok, fe.StopRing(0, out next, out _));
                Assert.Equal(2, next);
                Assert.Equal(RrStatus.Ok, fe.StopRing(1, out _, out _));
                }
                finally
                {
                    foreach (Ring? ring in rings)
                    {
                        ring?.Driver.Destroy();
                        ring?.Kick.Dispose();
                        ring?.Call.Dispose();
                    }
                }
            }
        }

        BackendProcess.WaitFor(() => _server.CurrentSession is null, "the session to end");
        Assert.False(_backend.Queue(0).IsRunning);
        Assert.False(_backend.Queue(1).IsRunning);
    }
}
