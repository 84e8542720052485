// RefRuntime's own virtio-blk front end over vhost-user: the role QEMU's vhost-user-blk device
// plays for a guest (hw/block/vhost-user-blk.c), without a guest - the driver is this process, as
// with DPDK's virtio-user. It drives any vhost-user-blk back-end (RefRuntime's
// refruntime-vhost-blk, QEMU's qemu-storage-daemon) for tests and benchmarks.
//
// Connect performs what QEMU does at realize and at DRIVER_OK (QEMU docs/interop/vhost-user.rst):
// the session handshake (VhostUserFrontend.Handshake: features, protocol features, GET_QUEUE_NUM
// with MQ, SET_OWNER), GET_CONFIG of the configuration space (60 bytes, or the 57 QEMU 7.2 reads
// when the back-end refuses 60), feature negotiation (VIRTIO_F_VERSION_1 required; the block
// features this driver understands when offered: virtio 1.2 §5.2.3), the memory table (one sealed
// memfd, FrontEndMemory), and per queue SET_VRING_NUM/BASE/ADDR/KICK/CALL/ENABLE. Each queue's ring,
// indirect tables and request slots are carved from that one region (VhostUserBlkQueue).
//
// Lifetime. A back-end that hangs up is noticed by any queue waiting for completions (it polls the
// socket) and fails every request in flight with NoDevice; Dispose wakes every waiter the same way.
// There is no in-place reconnect: after a back-end restart, Connect again (a new front end, new
// memory, rings from index 0), which is what a guest driver does after a device reset.

using System;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Os;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>A virtio-blk device in another process, driven over vhost-user (see file comment).</summary>
public sealed unsafe class VhostUserBlkFrontend : IDisposable
{
    /// <summary>The device features this front end negotiates when offered (besides VERSION_1 and the ring features).</summary>
    public const ulong UnderstoodFeatures =
        VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_RO | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH
        | VIRTIO_BLK_F_TOPOLOGY | VIRTIO_BLK_F_MQ | VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES;

    private const ulong GpaBase = 0x1_0000_0000;

    private readonly VhostUserFrontend _vhost;
    private readonly FrontEndMemory _memory;
    private readonly EventFd _close = EventFd.Create();
    private readonly List<EventFd> _eventFds = [];
    private readonly List<VirtqDriver> _drivers = [];
    private readonly List<VhostUserBlkQueue> _queues = [];
    private int _disposed;

    private VhostUserBlkFrontend(VhostUserFrontend vhost, FrontEndMemory memory, VhostUserBlkOptions options)
    {
        _vhost = vhost;
        _memory = memory;
        Options = options;
    }

    /// <summary>What was asked for.</summary>
    public VhostUserBlkOptions Options { get; }

    /// <summary>The device's configuration space, read at connect.</summary>
    public VirtioBlkConfig Config { get; private set; } = VirtioBlkConfig.Parse([]);

    /// <summary>Features the device offered (without VHOST_USER_F_PROTOCOL_FEATURES).</summary>
    public ulong DeviceFeatures { get; private set; }

    /// <summary>Features negotiated (SET_FEATURES, without VHOST_USER_F_PROTOCOL_FEATURES).</summary>
    public ulong Features { get; private set; }

    /// <summary>Protocol features in use.</summary>
    public VhostUserProtocolFeatures ProtocolFeatures => _vhost.ProtocolFeatures;

    /// <summary>Queues the back-end reported with GET_QUEUE_NUM, or -1 without the MQ protocol feature.</summary>
    public int BackendQueueCount => _vhost.QueueCount;

    /// <summary>The device is read-only (VIRTIO_BLK_F_RO negotiated).</summary>
    public bool IsReadOnly => (Features & VIRTIO_BLK_F_RO) != 0;

    /// <summary>Capacity in bytes.</summary>
    public ulong CapacityBytes => Config.Capacity * SectorSize;

    /// <summary>The started request queues.</summary>
    public IReadOnlyList<VhostUserBlkQueue> Queues => _queues;

    /// <summary>Why the connection failed (the back-end hung up, broke the protocol; or the front end was closed), or null.</summary>
    public string? Failure => _vhost.Failure;

    /// <summary>The vhost-user connection (diagnostics, tests that send raw messages).</summary>
    public VhostUserFrontend Connection => _vhost;

    internal int SocketFd => _vhost.SocketFd;

    internal int CloseFd => _close.Fd;

    /// <summary>Connects to the vhost-user-blk back-end at <paramref name="socketPath"/> and starts <see cref="VhostUserBlkOptions.NumQueues"/> queues (see file comment).</summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NoDevice"/> (nobody listens, or the back-end failed the handshake);
    /// <see cref="RrStatus.InvalidArgument"/> (options the device cannot meet: no VERSION_1, too few queues); others with <paramref name="error"/>.</returns>
    public static RrStatus Connect(string socketPath, VhostUserBlkOptions? options, out VhostUserBlkFrontend? frontend, out string? error)
    {
        ArgumentNullException.ThrowIfNull(socketPath);
        options ??= new VhostUserBlkOptions();
        frontend = null;
        if (options.NumQueues < 1 || options.NumQueues > 256 || !VirtqLayout.IsValidSize(options.QueueSize) || options.MaxRequestBytes < SectorSize
            || options.MaxRequestBytes > 16 << 20 || options.MaxRequestBytes % SectorSize != 0)
        {
            error = "options out of range: 1..256 queues, a power-of-two queue size, MaxRequestBytes a multiple of 512 up to 16 MiB";
            return RrStatus.InvalidArgument;
        }

        int n = options.QueueSize;
        int indirectMax = options.Indirect ? n : 0;
        ulong perQueue = (ulong)VirtqLayout.TotalBytes(n) + 64 + ((ulong)n * (ulong)indirectMax * VirtqLayout.DescSize) + 4096
            + ((ulong)n * (ulong)VhostUserBlkQueue.SlotStride(options.MaxRequestBytes));
        ulong size = ((perQueue * (ulong)options.NumQueues) + (1 << 20) + 0xfff) & ~0xfffUL;
        RrStatus s = FrontEndMemory.Create(size, GpaBase, out FrontEndMemory? memory, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        s = VhostUserFrontend.Connect(socketPath, out VhostUserFrontend? vhost, out error, options.ReplyTimeoutMs);
        if (s != RrStatus.Ok)
        {
            memory!.Dispose();
            return s;
        }

        var fe = new VhostUserBlkFrontend(vhost!, memory!, options);
        s = fe.Start(out error);
        if (s != RrStatus.Ok)
        {
            fe.Dispose();
            return s;
        }

        frontend = fe;
        return RrStatus.Ok;
    }

    /// <summary>Stops the rings (when the back-end still answers), closes the connection, wakes every waiter and frees the memory. Call it after the queue threads stopped.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_vhost.Failure is null)
        {
            for (int i = 0; i < _queues.Count; i++)
            {
                _vhost.StopRing(i, out _, out _);
            }
        }

        _vhost.Dispose(); // Failure is set from here on: queues answer NoDevice
        _close.Signal();
        foreach (VirtqDriver d in _drivers)
        {
            d.Destroy();
        }

        _memory.Dispose();
        foreach (EventFd e in _eventFds)
        {
            e.Dispose();
        }

        _close.Dispose();
    }

    /// <summary>A waiter saw the socket hang up.</summary>
    internal void NoteHangUp() => _vhost.MarkFailed("the back-end hung up");

    private RrStatus Start(out string? error)
    {
        RrStatus s = _vhost.Handshake(VhostUserFrontend.Wanted, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        if ((_vhost.ProtocolFeatures & VhostUserProtocolFeatures.Config) == 0)
        {
            error = "the back-end does not offer VHOST_USER_PROTOCOL_F_CONFIG (the configuration space cannot be read)";
            return RrStatus.NoDevice;
        }

        DeviceFeatures = _vhost.BackendFeatures & ~VhostUser.F_PROTOCOL_FEATURES;
        if ((DeviceFeatures & VIRTIO_F_VERSION_1) == 0)
        {
            error = $"the device does not offer VIRTIO_F_VERSION_1 (features 0x{DeviceFeatures:x})";
            return RrStatus.InvalidArgument;
        }

        // The whole structure; QEMU 7.2 itself reads the 57 bytes up to write_zeroes_may_unmap.
        var raw = new byte[VirtioBlkConfigLayout.Size];
        s = _vhost.GetConfig(0, raw, out error);
        if (s == RrStatus.InvalidArgument)
        {
            raw = new byte[VirtioBlkConfigLayout.WriteZeroesMayUnmap + 1];
            s = _vhost.GetConfig(0, raw, out error);
        }

        if (s != RrStatus.Ok)
        {
            return s;
        }

        Config = VirtioBlkConfig.Parse(raw);
        VhostUserBlkOptions o = Options;
        ulong wanted = VIRTIO_F_VERSION_1 | UnderstoodFeatures
            | (o.EventIdx ? VIRTIO_RING_F_EVENT_IDX : 0) | (o.Indirect ? VIRTIO_RING_F_INDIRECT_DESC : 0);
        Features = DeviceFeatures & wanted;
        int numQueues = o.NumQueues;
        if (numQueues > 1)
        {
            int offered = (Features & VIRTIO_BLK_F_MQ) != 0 ? Config.NumQueues : 1;
            if (_vhost.QueueCount >= 0)
            {
                offered = Math.Min(offered, _vhost.QueueCount);
            }

            if (offered < numQueues)
            {
                error = $"{numQueues} queues asked for; the device offers {offered}";
                return RrStatus.InvalidArgument;
            }
        }

        s = _vhost.SetFeatures(Features | (_vhost.BackendFeatures & VhostUser.F_PROTOCOL_FEATURES), out error);
        s = s != RrStatus.Ok ? s
            : o.UseMemSlots && (_vhost.ProtocolFeatures & VhostUserProtocolFeatures.ConfigureMemSlots) != 0
                ? _vhost.AddMemReg(_memory.Region, _memory.Fd, out error)
                : _vhost.SetMemTable([_memory.Region], [_memory.Fd], out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        var ring = (VirtqFeatures)(Features & (VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC));
        int indirectMax = (ring & VirtqFeatures.IndirectDesc) != 0 ? o.QueueSize : 0;
        int segMax = (Features & VIRTIO_BLK_F_SEG_MAX) != 0 ? (int)Math.Min(Config.SegMax, int.MaxValue) : 0;
        for (int i = 0; i < numQueues; i++)
        {
            s = StartQueue(i, ring, indirectMax, segMax, out error);
            if (s != RrStatus.Ok)
            {
                return s;
            }
        }

        return RrStatus.Ok;
    }

    private RrStatus StartQueue(int index, VirtqFeatures ring, int indirectMax, int segMax, out string? error)
    {
        GuestMemory mem = _memory.Memory;
        RrStatus s = VirtqDriver.Create(mem, Options.QueueSize, ring, indirectMax, out VirtqDriver? vq, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        _drivers.Add(vq!);
        ulong slotBytes = (ulong)vq!.Size * (ulong)VhostUserBlkQueue.SlotStride(Options.MaxRequestBytes);
        s = mem.TryCarve(slotBytes, 4096, out ulong slotsGpa);
        if (s != RrStatus.Ok || !mem.TryTranslate(slotsGpa, slotBytes, out byte* slots))
        {
            error = $"no room for queue {index}'s request slots";
            return RrStatus.NoSpace;
        }

        EventFd kick = EventFd.Create();
        EventFd call = EventFd.Create();
        _eventFds.Add(kick);
        _eventFds.Add(call);
        VirtqRings r = vq.Rings;
        s = _vhost.StartRing(index, r.Size, 0, _memory.UserAddressOf(r.DescGpa), _memory.UserAddressOf(r.AvailGpa), _memory.UserAddressOf(r.UsedGpa), kick.Fd, call.Fd, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        _queues.Add(new VhostUserBlkQueue(this, index, vq, kick, call, slots, slotsGpa, Options.MaxRequestBytes, segMax));
        return RrStatus.Ok;
    }
}
