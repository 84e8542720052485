// The back-end side of one vhost-user connection (QEMU docs/interop/vhost-user.rst; the roles of
// libvhost-user's vu_dispatch and rust-vmm vhost-user-backend's handler): it takes one framed
// request at a time and answers it, and it owns everything the front-end gave it - the memory
// map, the rings, every descriptor.
//
// Design. Handle(message) validates the payload for that request, changes state, and returns the
// reply (explicit replies: GET_FEATURES, GET_PROTOCOL_FEATURES, GET_VRING_BASE, GET_CONFIG,
// GET_QUEUE_NUM, GET_MAX_MEM_SLOTS; otherwise a REPLY_ACK u64 when need_reply is set). Whatever
// descriptors the request carried and no handler took are closed when Handle returns, so a
// missing or extra descriptor is an error, never a leak. Rings follow VhostUserRing's state
// machine; the device (IVhostUserBackend) receives a ring only once it is started, its
// addresses pinned in a mapped region, and enabled - and loses it (QueueDisabled, QueueStopped)
// before the session touches the queue again, so the queue is never used from two threads.
//
// The front-end is untrusted. Each request is checked before it changes anything: payload sizes
// exact, ring indices in range, ring sizes powers of two within the device's maximum, features a
// subset of the offer, memory regions non-empty, non-wrapping, non-overlapping and backed by a
// file large enough (IVhostPlatform.MapRegion), ring parts inside one region (VirtqDevice.Start),
// config accesses inside the config space. A bad request gets an error answer (u64 1, or a GET_CONFIG
// reply of size 0) when the front-end asked for one, and a log line either way; the session
// goes on. A request whose explicit reply cannot be produced (GET_VRING_BASE of a ring that does
// not exist, a GET_* of a feature never negotiated) ends the session: Handle reports disconnect.
// Framing violations are caught earlier, by VhostUserChannel.
//
// The request handlers for memory and for rings are in VhostUserSession.Memory.cs and
// VhostUserSession.Rings.cs.
//
// Memory changes while rings run (SET_MEM_TABLE, ADD/REM_MEM_REG) take effect for the next chain
// popped; a running ring keeps the regions its parts lie in pinned (GuestMemoryMap), so even a
// front-end that removes the region under a live ring cannot make the device touch unmapped memory.

using System;
using System.Collections.Generic;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Vhost;

/// <summary>One back-end session (see file comment). Not thread-safe: one thread handles a connection.</summary>
public sealed partial class VhostUserSession : IDisposable
{
    /// <summary>The protocol features the session itself implements.</summary>
    public const VhostUserProtocolFeatures SessionProtocolFeatures =
        VhostUserProtocolFeatures.Mq | VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.ConfigureMemSlots | VhostUserProtocolFeatures.ResetDevice;

    private readonly IVhostUserBackend _backend;
    private readonly IVhostPlatform _platform;
    private readonly Action<string>? _log;
    private readonly GuestMemoryMap _memory;
    private readonly VhostUserRing[] _rings;
    private readonly ulong _offeredFeatures;
    private readonly VhostUserProtocolFeatures _offeredProtocol;
    private ulong _ackedFeatures;
    private bool _featuresSet;
    private VhostUserProtocolFeatures _ackedProtocol;
    private bool _owner;
    private bool _disposed;
    private long _requests;
    private long _errors;

    /// <summary>Starts a session serving <paramref name="backend"/>.</summary>
    public VhostUserSession(IVhostUserBackend backend, IVhostPlatform platform, Action<string>? log = null, int maxRegions = GuestMemoryMap.DefaultMaxRegions)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(platform);
        if (backend.QueueCount is < 1 or > 255 || !VirtqLayout.IsValidSize(backend.MaxQueueSize))
        {
            throw new ArgumentException($"a device has 1 to 255 queues of a power-of-two size (got {backend.QueueCount} of {backend.MaxQueueSize})", nameof(backend));
        }

        _backend = backend;
        _platform = platform;
        _log = log;
        _memory = new GuestMemoryMap(maxRegions);
        _offeredFeatures = backend.DeviceFeatures | VhostUser.F_PROTOCOL_FEATURES;
        _offeredProtocol = SessionProtocolFeatures | backend.ProtocolFeatures;
        _rings = new VhostUserRing[backend.QueueCount];
        for (int i = 0; i < _rings.Length; i++)
        {
            VirtqDevice.Create(_memory, backend.MaxQueueSize, VirtqFeatures.None, MalformedChainPolicy.ReturnEmpty, out VirtqDevice? q, out _);
            _rings[i] = new VhostUserRing(i, q!);
        }
    }

    /// <summary>The guest memory the front-end shared.</summary>
    public GuestMemoryMap Memory => _memory;

    /// <summary>Virtio features offered (with VHOST_USER_F_PROTOCOL_FEATURES).</summary>
    public ulong OfferedFeatures => _offeredFeatures;

    /// <summary>Protocol features offered.</summary>
    public VhostUserProtocolFeatures OfferedProtocolFeatures => _offeredProtocol;

    /// <summary>The features the front-end acknowledged (0 before SET_FEATURES).</summary>
    public ulong AckedFeatures => _ackedFeatures;

    /// <summary>Whether SET_OWNER was received.</summary>
    public bool HasOwner => _owner;

    /// <summary>vhost-user messages handled (front-end requests on the socket; not the device's own requests, which travel on the rings).</summary>
    public long Requests => _requests;

    /// <summary>Requests answered with an error (or logged as one).</summary>
    public long Errors => _errors;

    /// <summary>Number of rings.</summary>
    public int RingCount => _rings.Length;

    /// <summary>Whether the device polls the rings' kick descriptors itself (<see cref="IVhostUserBackend.HandlesKicks"/>): the server must not.</summary>
    public bool DeviceHandlesKicks => _backend.HandlesKicks;

    /// <summary>Ring <paramref name="index"/>'s kick descriptor, or -1.</summary>
    public int KickFd(int index) => _rings[index].KickFd;

    /// <summary>Whether ring <paramref name="index"/> is handed to the device.</summary>
    public bool IsRingActive(int index) => _rings[index].Handed;

    /// <summary>Whether ring <paramref name="index"/> is kicked by polling (SET_VRING_KICK without a descriptor).</summary>
    public bool IsRingPolling(int index) => _rings[index].KickPolling && _rings[index].Handed;

    /// <summary>Ring <paramref name="index"/>'s queue (owned by the session).</summary>
    public VirtqDevice Queue(int index) => _rings[index].Queue;

    /// <summary>Call signals sent on ring <paramref name="index"/>.</summary>
    public long Notifications(int index) => _rings[index].Notifications;

    /// <summary>The front-end kicked ring <paramref name="index"/> (its kick descriptor became readable, or it is polled).</summary>
    public void OnKick(int index)
    {
        if ((uint)index < (uint)_rings.Length && _rings[index].Handed)
        {
            _backend.Kick(index);
        }
    }

    /// <summary>
    /// Handles one request (see file comment). Every descriptor the message still owns when this
    /// returns is closed.
    /// </summary>
    /// <param name="message">A framed request (VhostUserChannel).</param>
    /// <param name="disconnect">Set when the session must end (the reply, if any, is still to be sent).</param>
    /// <returns>The reply to send, or null.</returns>
    public VhostUserMessage? Handle(VhostUserMessage message, out bool disconnect)
    {
        ArgumentNullException.ThrowIfNull(message);
        ObjectDisposedException.ThrowIf(_disposed, this);
        disconnect = false;
        _requests++;
        try
        {
            Outcome o = Dispatch(message);
            if (o.Error is not null)
            {
                _errors++;
                Log($"{message.Request}: {o.Error}{(o.Disconnect ? "; closing the connection" : string.Empty)}");
            }

            disconnect = o.Disconnect;
            if (o.Reply is not null)
            {
                return o.Reply;
            }

            return message.NeedReply && !o.Disconnect ? VhostUserMessage.Ack(message, o.Error is null) : null;
        }
        finally
        {
            foreach (int fd in message.TakeRemainingFds())
            {
                _platform.Close(fd);
            }
        }
    }

    /// <summary>Ends the session: rings stopped, device reset, descriptors closed, memory unmapped once unpinned.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        StopAllRings();
        _backend.Reset();
        foreach (VhostUserRing r in _rings)
        {
            r.ReplaceCall(null);
            r.ReplaceErr(null);
            r.Queue.Destroy();
        }

        _memory.Dispose();
    }

    // ---- dispatch ---------------------------------------------------------------------------

    private readonly record struct Outcome(VhostUserMessage? Reply, string? Error, bool Disconnect)
    {
        public static readonly Outcome Ok = default;

        public static Outcome Fail(string error) => new(null, error, false);

        public static Outcome Drop(string error) => new(null, error, true);

        public static Outcome With(VhostUserMessage reply) => new(reply, null, false);
    }

    private Outcome Dispatch(VhostUserMessage m)
    {
        switch (m.Request)
        {
            case VhostUserRequest.GetFeatures:
                return Outcome.With(U64Reply(m, _offeredFeatures));
            case VhostUserRequest.SetFeatures:
                return SetFeatures(m);
            case VhostUserRequest.GetProtocolFeatures:
                return Outcome.With(U64Reply(m, (ulong)_offeredProtocol));
            case VhostUserRequest.SetProtocolFeatures:
                return SetProtocolFeatures(m);
            case VhostUserRequest.SetOwner:
                _owner = true;
                return NoFds(m);
            case VhostUserRequest.ResetOwner:
                // Deprecated; the document recommends disabling the rings. Memory and descriptors stay.
                StopAllRings();
                _backend.Reset();
                return NoFds(m);
            case VhostUserRequest.ResetDevice:
                ResetDevice();
                return NoFds(m);
            case VhostUserRequest.GetQueueNum:
                return Outcome.With(U64Reply(m, (ulong)_rings.Length));
            case VhostUserRequest.GetMaxMemSlots:
                return Outcome.With(U64Reply(m, (ulong)_memory.MaxRegions));
            case VhostUserRequest.SetMemTable:
                return SetMemTable(m);
            case VhostUserRequest.AddMemReg:
                return AddMemReg(m);
            case VhostUserRequest.RemMemReg:
                return RemMemReg(m);
            case VhostUserRequest.SetVringNum:
                return SetVringNum(m);
            case VhostUserRequest.SetVringBase:
                return SetVringBase(m);
            case VhostUserRequest.SetVringAddr:
                return SetVringAddr(m);
            case VhostUserRequest.GetVringBase:
                return GetVringBase(m);
            case VhostUserRequest.SetVringKick:
            case VhostUserRequest.SetVringCall:
            case VhostUserRequest.SetVringErr:
                return SetVringFd(m);
            case VhostUserRequest.SetVringEnable:
                return SetVringEnable(m);
            case VhostUserRequest.GetConfig:
                return GetConfig(m);
            case VhostUserRequest.SetConfig:
                return SetConfig(m);
            case VhostUserRequest.GetInflightFd:
            case VhostUserRequest.PostcopyAdvise:
            case VhostUserRequest.CreateCryptoSession:
                // Explicit replies we cannot give: none of these features was offered.
                return Outcome.Drop("not offered (its protocol feature was never negotiated), and it needs a reply we cannot give");
            case VhostUserRequest.IotlbMsg:
            case VhostUserRequest.PostcopyEnd:
            case VhostUserRequest.GetStatus:
                // u64 replies: answer failure (1).
                return new Outcome(VhostUserMessage.Ack(m, false), "not offered (its protocol feature was never negotiated)", false);
            default:
                return Outcome.Fail(Enum.IsDefined(m.Request) ? "not offered (its protocol feature was never negotiated)" : $"unknown request {(uint)m.Request}");
        }
    }

    private static VhostUserMessage U64Reply(VhostUserMessage m, ulong value)
    {
        var p = new byte[8];
        VhostUserMessage.WriteHost64(p, 0, value);
        return VhostUserMessage.Reply(m, p);
    }

    private static Outcome NoFds(VhostUserMessage m) =>
        m.FdCount == 0 ? Outcome.Ok : Outcome.Fail($"{m.FdCount} unexpected descriptor(s) (closed)");

    // ---- features -------------------------------------------------------------------------------

    private Outcome SetFeatures(VhostUserMessage m)
    {
        if (!m.TryReadU64(out ulong f))
        {
            return Outcome.Fail($"payload of {m.Payload.Length} bytes (u64 expected)");
        }

        if ((f & ~_offeredFeatures) != 0)
        {
            return Outcome.Fail($"features 0x{f:x} include bits never offered (offered 0x{_offeredFeatures:x})");
        }

        _ackedFeatures = f;
        _featuresSet = true;
        _backend.SetFeatures(f & ~VhostUser.F_PROTOCOL_FEATURES);
        foreach (VhostUserRing r in _rings)
        {
            if (!r.Running)
            {
                r.Queue.SetFeatures(RingFeatures());
            }
        }

        return NoFds(m);
    }

    private Outcome SetProtocolFeatures(VhostUserMessage m)
    {
        if (!m.TryReadU64(out ulong f))
        {
            return Outcome.Fail($"payload of {m.Payload.Length} bytes (u64 expected)");
        }

        if ((f & ~(ulong)_offeredProtocol) != 0)
        {
            return Outcome.Fail($"protocol features 0x{f:x} include bits never offered (offered 0x{(ulong)_offeredProtocol:x})");
        }

        _ackedProtocol = (VhostUserProtocolFeatures)f;
        return NoFds(m);
    }

    private VirtqFeatures RingFeatures() => (VirtqFeatures)(_ackedFeatures & (ulong)(VirtqFeatures.EventIdx | VirtqFeatures.IndirectDesc));

    // ---- config space ---------------------------------------------------------------------------

    private Outcome GetConfig(VhostUserMessage m)
    {
        byte[] p = m.Payload;
        if (p.Length < VhostUser.ConfigHeaderSize)
        {
            return new Outcome(VhostUserMessage.Reply(m, []), $"payload of {p.Length} bytes (config header of {VhostUser.ConfigHeaderSize} expected)", false);
        }

        uint offset = VhostUserMessage.ReadHost32(p, 0);
        uint size = VhostUserMessage.ReadHost32(p, 4);
        if (size > VhostUser.MaxConfigSize || p.Length != VhostUser.ConfigHeaderSize + size)
        {
            return new Outcome(VhostUserMessage.Reply(m, []), $"config size {size} in a payload of {p.Length} bytes (at most {VhostUser.MaxConfigSize}, header + size)", false);
        }

        var reply = new byte[VhostUser.ConfigHeaderSize + size];
        p.AsSpan(0, VhostUser.ConfigHeaderSize).CopyTo(reply);
        if (!_backend.TryReadConfig(offset, reply.AsSpan(VhostUser.ConfigHeaderSize)))
        {
            // vhost-user.rst GET_CONFIG: a zero-length payload signals the error.
            return new Outcome(VhostUserMessage.Reply(m, []), $"config bytes [{offset}, +{size}) are outside the device's config space", false);
        }

        Outcome o = NoFds(m);
        return new Outcome(VhostUserMessage.Reply(m, reply), o.Error, false);
    }

    private Outcome SetConfig(VhostUserMessage m)
    {
        byte[] p = m.Payload;
        if (p.Length < VhostUser.ConfigHeaderSize)
        {
            return Outcome.Fail($"payload of {p.Length} bytes (config header of {VhostUser.ConfigHeaderSize} expected)");
        }

        uint offset = VhostUserMessage.ReadHost32(p, 0);
        uint size = VhostUserMessage.ReadHost32(p, 4);
        if (size > VhostUser.MaxConfigSize || p.Length != VhostUser.ConfigHeaderSize + size)
        {
            return Outcome.Fail($"config size {size} in a payload of {p.Length} bytes");
        }

        return _backend.TryWriteConfig(offset, p.AsSpan(VhostUser.ConfigHeaderSize)) ? NoFds(m) : Outcome.Fail($"config bytes [{offset}, +{size}) are not writable");
    }

    private void Log(string line) => _log?.Invoke(line);
}
