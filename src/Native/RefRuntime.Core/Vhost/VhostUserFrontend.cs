// The front-end side of vhost-user (the role QEMU's hw/virtio/vhost-user.c plays, and DPDK's
// virtio-user): RefRuntime's own drivers drive a back-end in another process. It owns the guest
// memory (FrontEndMemory: a sealed memfd, shared with the back-end by descriptor) and the rings
// inside it, sends the requests of QEMU docs/interop/vhost-user.rst in the order QEMU 7.2 sends
// them, and watches the connection so that a back-end that dies is noticed at once.
//
// Requests are synchronous and serialised (one lock): a request is written, and when it has a
// reply - explicit, or the REPLY_ACK u64 asked for with need_reply - the reply is read before the
// next request goes out. A reply that does not arrive within the reply timeout, or that does not
// match the request, marks the connection failed: the back-end is not trusted either.

using System;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Os;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Vhost;

/// <summary>A vhost-user front-end connection (see file comment). Thread-safe.</summary>
public sealed class VhostUserFrontend : IDisposable
{
    /// <summary>The protocol features RefRuntime's front end uses when the back-end offers them.</summary>
    public const VhostUserProtocolFeatures Wanted =
        VhostUserProtocolFeatures.Mq | VhostUserProtocolFeatures.ReplyAck | VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.ConfigureMemSlots;

    private readonly Lock _lock = new();
    private readonly UnixSocket _socket;
    private readonly VhostUserChannel _channel;
    private readonly int _replyTimeoutMs;
    private volatile string? _failure;
    private ulong _backendFeatures;
    private VhostUserProtocolFeatures _protocol;
    private int _queueCount = -1;

    private VhostUserFrontend(UnixSocket socket, int replyTimeoutMs)
    {
        _socket = socket;
        _channel = new VhostUserChannel(socket, replyTimeoutMs);
        _replyTimeoutMs = replyTimeoutMs;
    }

    /// <summary>Features the back-end offered (GET_FEATURES, with VHOST_USER_F_PROTOCOL_FEATURES).</summary>
    public ulong BackendFeatures => _backendFeatures;

    /// <summary>Protocol features both sides use (after <see cref="Handshake"/>).</summary>
    public VhostUserProtocolFeatures ProtocolFeatures => _protocol;

    /// <summary>Queues the back-end supports (GET_QUEUE_NUM), or -1 when MQ is not offered.</summary>
    public int QueueCount => _queueCount;

    /// <summary>Why the connection failed (the back-end closed it, broke the protocol, timed out), or null.</summary>
    public string? Failure => _failure;

    /// <summary>The socket, for a watcher that polls it for hang-up.</summary>
    public int SocketFd => _socket.Fd;

    /// <summary>Connects to a back-end listening at <paramref name="path"/>.</summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NoDevice"/> (nobody listens); other errors with <paramref name="error"/>.</returns>
    public static RrStatus Connect(string path, out VhostUserFrontend? frontend, out string? error, int replyTimeoutMs = 10_000)
    {
        frontend = null;
        RrStatus s = UnixSocket.Connect(path, out UnixSocket? socket, out error);
        if (s == RrStatus.Ok)
        {
            frontend = new VhostUserFrontend(socket!, replyTimeoutMs);
        }

        return s;
    }

    /// <summary>A front-end over an already connected socket (taken over; closed by <see cref="Dispose"/>).</summary>
    public static VhostUserFrontend Over(UnixSocket socket, int replyTimeoutMs = 10_000)
    {
        ArgumentNullException.ThrowIfNull(socket);
        return new VhostUserFrontend(socket, replyTimeoutMs);
    }

    /// <summary>
    /// The session start QEMU 7.2 performs at realize: GET_FEATURES, GET_PROTOCOL_FEATURES,
    /// SET_PROTOCOL_FEATURES (offered ∩ <paramref name="wanted"/>), GET_QUEUE_NUM (with MQ), SET_OWNER.
    /// </summary>
    public RrStatus Handshake(VhostUserProtocolFeatures wanted, out string? error)
    {
        RrStatus s = GetU64(VhostUserRequest.GetFeatures, out _backendFeatures, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        _protocol = VhostUserProtocolFeatures.None;
        if ((_backendFeatures & VhostUser.F_PROTOCOL_FEATURES) != 0)
        {
            s = GetU64(VhostUserRequest.GetProtocolFeatures, out ulong offered, out error);
            if (s != RrStatus.Ok)
            {
                return s;
            }

            var use = (VhostUserProtocolFeatures)offered & wanted;
            s = Send(VhostUserMessage.WithU64(VhostUserRequest.SetProtocolFeatures, (ulong)use), out error);
            if (s != RrStatus.Ok)
            {
                return s;
            }

            _protocol = use;
            if ((use & VhostUserProtocolFeatures.Mq) != 0)
            {
                s = GetU64(VhostUserRequest.GetQueueNum, out ulong n, out error);
                if (s != RrStatus.Ok)
                {
                    return s;
                }

                _queueCount = (int)Math.Min(n, int.MaxValue);
            }
        }

        return Send(new VhostUserMessage(VhostUserRequest.SetOwner, 0, []), out error);
    }

    /// <summary>GET_CONFIG of <paramref name="destination"/>.Length bytes at <paramref name="offset"/>.</summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> (the back-end answered an error); connection errors.</returns>
    public RrStatus GetConfig(uint offset, Span<byte> destination, out string? error)
    {
        if (destination.Length > VhostUser.MaxConfigSize)
        {
            error = "config reads are at most 256 bytes";
            return RrStatus.InvalidArgument;
        }

        var p = new byte[VhostUser.ConfigHeaderSize + destination.Length];
        VhostUserMessage.WriteHost32(p, 0, offset);
        VhostUserMessage.WriteHost32(p, 4, (uint)destination.Length);
        RrStatus s = Call(new VhostUserMessage(VhostUserRequest.GetConfig, 0, p), out VhostUserMessage? reply, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        if (reply!.Payload.Length != p.Length)
        {
            error = $"GET_CONFIG answered {reply.Payload.Length} bytes (an error, or not {p.Length})";
            return RrStatus.InvalidArgument;
        }

        reply.Payload.AsSpan(VhostUser.ConfigHeaderSize).CopyTo(destination);
        return RrStatus.Ok;
    }

    /// <summary>SET_FEATURES.</summary>
    public RrStatus SetFeatures(ulong features, out string? error) =>
        Send(VhostUserMessage.WithU64(VhostUserRequest.SetFeatures, features), out error);

    /// <summary>SET_MEM_TABLE with one descriptor per region (at most 8).</summary>
    public RrStatus SetMemTable(IReadOnlyList<GuestRegionSpec> regions, IReadOnlyList<int> fds, out string? error)
    {
        ArgumentNullException.ThrowIfNull(regions);
        ArgumentNullException.ThrowIfNull(fds);
        var p = new byte[VhostUser.MemTableHeaderSize + (regions.Count * VhostUser.RegionSize)];
        VhostUserMessage.WriteHost32(p, 0, (uint)regions.Count);
        for (int i = 0; i < regions.Count; i++)
        {
            WriteRegion(p, VhostUser.MemTableHeaderSize + (i * VhostUser.RegionSize), regions[i]);
        }

        return Send(new VhostUserMessage(VhostUserRequest.SetMemTable, 0, p, [.. fds]), out error);
    }

    /// <summary>ADD_MEM_REG (CONFIGURE_MEM_SLOTS).</summary>
    public RrStatus AddMemReg(GuestRegionSpec region, int fd, out string? error)
    {
        var p = new byte[VhostUser.SingleRegionSize];
        WriteRegion(p, 8, region);
        return Send(new VhostUserMessage(VhostUserRequest.AddMemReg, 0, p, [fd]), out error);
    }

    /// <summary>REM_MEM_REG (CONFIGURE_MEM_SLOTS).</summary>
    public RrStatus RemMemReg(GuestRegionSpec region, out string? error)
    {
        var p = new byte[VhostUser.SingleRegionSize];
        WriteRegion(p, 8, region);
        return Send(new VhostUserMessage(VhostUserRequest.RemMemReg, 0, p), out error);
    }

    /// <summary>
    /// Starts ring <paramref name="index"/> the way QEMU does at DRIVER_OK: SET_VRING_NUM, _BASE,
    /// _ADDR (user addresses), _KICK, _CALL, then _ENABLE 1 when protocol features are in use.
    /// </summary>
    public RrStatus StartRing(int index, int size, ushort nextAvail, ulong descUser, ulong availUser, ulong usedUser, int kickFd, int callFd, out string? error)
    {
        RrStatus s = Send(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, (uint)index, (uint)size), out error);
        s = s != RrStatus.Ok ? s : Send(VhostUserMessage.WithState(VhostUserRequest.SetVringBase, (uint)index, nextAvail), out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        var a = new byte[VhostUser.VringAddrSize];
        VhostUserMessage.WriteHost32(a, 0, (uint)index);
        VhostUserMessage.WriteHost64(a, 8, descUser);
        VhostUserMessage.WriteHost64(a, 16, usedUser);
        VhostUserMessage.WriteHost64(a, 24, availUser);
        s = Send(new VhostUserMessage(VhostUserRequest.SetVringAddr, 0, a), out error);
        s = s != RrStatus.Ok ? s : Send(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, (ulong)index, fds: [kickFd]), out error);
        s = s != RrStatus.Ok ? s : Send(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, (ulong)index, fds: [callFd]), out error);
        if (s == RrStatus.Ok && (_backendFeatures & VhostUser.F_PROTOCOL_FEATURES) != 0)
        {
            s = Send(VhostUserMessage.WithState(VhostUserRequest.SetVringEnable, (uint)index, 1), out error);
        }

        return s;
    }

    /// <summary>Stops ring <paramref name="index"/> as QEMU does: SET_VRING_ENABLE 0, then GET_VRING_BASE (the next available index).</summary>
    public RrStatus StopRing(int index, out ushort nextAvail, out string? error)
    {
        nextAvail = 0;
        RrStatus s = RrStatus.Ok;
        error = null;
        if ((_backendFeatures & VhostUser.F_PROTOCOL_FEATURES) != 0)
        {
            s = Send(VhostUserMessage.WithState(VhostUserRequest.SetVringEnable, (uint)index, 0), out error);
        }

        if (s != RrStatus.Ok)
        {
            return s;
        }

        s = Call(VhostUserMessage.WithState(VhostUserRequest.GetVringBase, (uint)index, 0), out VhostUserMessage? reply, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        if (!reply!.TryReadState(out uint i, out uint num) || i != (uint)index || num > ushort.MaxValue)
        {
            return Fail($"GET_VRING_BASE answered a bad vring state ({reply.Payload.Length} bytes)", out error);
        }

        nextAvail = (ushort)num;
        return RrStatus.Ok;
    }

    /// <summary>
    /// Sends <paramref name="message"/>; with REPLY_ACK in use it asks for an acknowledgement and
    /// waits for it. Requests with an explicit reply go through <see cref="Call"/>.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> (the back-end acknowledged with an error); <see cref="RrStatus.NoDevice"/> (the connection failed).</returns>
    public RrStatus Send(VhostUserMessage message, out string? error)
    {
        ArgumentNullException.ThrowIfNull(message);
        bool ack = (_protocol & VhostUserProtocolFeatures.ReplyAck) != 0;
        VhostUserMessage m = ack ? new VhostUserMessage(message.Request, message.Flags | VhostUser.NeedReplyFlag, message.Payload, [.. message.Fds]) : message;
        RrStatus s = Exchange(m, ack, out VhostUserMessage? reply, out error);
        if (s != RrStatus.Ok || !ack)
        {
            return s;
        }

        if (!reply!.TryReadU64(out ulong v))
        {
            return Fail($"{message.Request}: acknowledgement of {reply.Payload.Length} bytes", out error);
        }

        if (v != 0)
        {
            error = $"{message.Request}: the back-end answered error {v}";
            return RrStatus.InvalidArgument;
        }

        return RrStatus.Ok;
    }

    /// <summary>Sends a request with an explicit reply and returns the reply.</summary>
    public RrStatus Call(VhostUserMessage message, out VhostUserMessage? reply, out string? error) =>
        Exchange(message, true, out reply, out error);

    /// <summary>Sends raw bytes with descriptors, no framing check (for tests that play a hostile front-end).</summary>
    public bool SendRaw(ReadOnlySpan<byte> bytes, ReadOnlySpan<int> fds, out string? error)
    {
        lock (_lock)
        {
            return _socket.Send(bytes, fds, out error);
        }
    }

    /// <summary>Reads one reply (tests).</summary>
    public VhostReadResult ReadReply(int timeoutMs, out VhostUserMessage? reply, out string? error)
    {
        lock (_lock)
        {
            return _channel.Read(timeoutMs, expectReply: true, out reply, out error);
        }
    }

    /// <summary>Marks the connection failed (a watcher saw the back-end hang up).</summary>
    public void MarkFailed(string reason) => _failure ??= reason;

    /// <summary>Closes the connection.</summary>
    public void Dispose()
    {
        _failure ??= "the front-end closed the connection";
        _socket.Shutdown();
        lock (_lock)
        {
            _socket.Dispose();
        }
    }

    private RrStatus GetU64(VhostUserRequest request, out ulong value, out string? error)
    {
        value = 0;
        RrStatus s = Call(new VhostUserMessage(request, 0, []), out VhostUserMessage? reply, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        return reply!.TryReadU64(out value) ? RrStatus.Ok : Fail($"{request}: reply of {reply.Payload.Length} bytes (u64 expected)", out error);
    }

    private RrStatus Exchange(VhostUserMessage message, bool wantReply, out VhostUserMessage? reply, out string? error)
    {
        reply = null;
        lock (_lock)
        {
            if (_failure is not null)
            {
                error = _failure;
                return RrStatus.NoDevice;
            }

            if (!_channel.Write(message, out error))
            {
                return Fail($"{message.Request}: {error}", out error);
            }

            if (!wantReply)
            {
                return RrStatus.Ok;
            }

            VhostReadResult r = _channel.Read(_replyTimeoutMs, expectReply: true, out reply, out error);
            if (r != VhostReadResult.Message)
            {
                return Fail($"{message.Request}: no reply ({r}{(error is null ? string.Empty : $": {error}")})", out error);
            }

            foreach (int fd in reply!.TakeRemainingFds())
            {
                FileDescriptor.Close(fd); // a back-end has no business sending descriptors here
            }

            if (reply.Request != message.Request)
            {
                return Fail($"{message.Request}: the reply is for {reply.Request}", out error);
            }

            return RrStatus.Ok;
        }
    }

    private RrStatus Fail(string reason, out string? error)
    {
        _failure ??= reason;
        error = reason;
        return RrStatus.NoDevice;
    }

    private static void WriteRegion(byte[] p, int at, GuestRegionSpec r)
    {
        VhostUserMessage.WriteHost64(p, at, r.Gpa);
        VhostUserMessage.WriteHost64(p, at + 8, r.Size);
        VhostUserMessage.WriteHost64(p, at + 16, r.UserAddr);
        VhostUserMessage.WriteHost64(p, at + 24, r.MmapOffset);
    }
}
