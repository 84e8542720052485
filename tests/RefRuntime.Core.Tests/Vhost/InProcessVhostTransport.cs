using System;
using System.Collections.Generic;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;
using Xunit;

namespace RefRuntime.Core.Tests.Vhost;

/// <summary>
/// A front end that talks to a VhostUserSession in this process with in-memory messages - the
/// exact sequence QEMU 7.2 sends a vhost-user-gpio back-end (realize, DRIVER_OK, stop), guest
/// memory split in two regions around a hole like the legacy VGA window - so VirtioGpioChip
/// drives the session, the memory map and the device with no socket and no second process.
/// </summary>
internal sealed unsafe class InProcessVhostTransport : IVirtioGpioTransport
{
    public const ulong UserBase = 0x7f00_0000_0000;
    public const ulong HoleStart = 0xa0000;
    public const ulong HoleEnd = 0xc0000;

    private readonly VhostUserSession _session;
    private readonly FakeVhostPlatform _platform;
    private readonly GuestMemory _memory;
    private readonly byte[] _config = new byte[8];
    private Doorbell? _call;
    private bool _eventq;

    public InProcessVhostTransport(VhostUserSession session, FakeVhostPlatform platform, GuestMemory memory)
    {
        _session = session;
        _platform = platform;
        _memory = memory;
        Kick = new Doorbell(() => _session.OnKick(0));
        EventqKick = new Doorbell(() => _session.OnKick(1));

        // Realize: GET_FEATURES, GET_PROTOCOL_FEATURES, SET_PROTOCOL_FEATURES, SET_OWNER, GET_FEATURES,
        // per ring SET_VRING_CALL + SET_VRING_ERR, GET_CONFIG.
        Features = U64(Call(new VhostUserMessage(VhostUserRequest.GetFeatures, 0, [])));
        ulong proto = U64(Call(new VhostUserMessage(VhostUserRequest.GetProtocolFeatures, 0, [])));
        Assert.NotEqual(0UL, proto & (ulong)VhostUserProtocolFeatures.Config);
        Assert.Null(Call(VhostUserMessage.WithU64(VhostUserRequest.SetProtocolFeatures, proto & 0x208)));
        Assert.Null(Call(new VhostUserMessage(VhostUserRequest.SetOwner, 0, [])));
        Assert.Equal(Features, U64(Call(new VhostUserMessage(VhostUserRequest.GetFeatures, 0, []))));
        for (uint q = 0; q < 2; q++)
        {
            Assert.Null(Call(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, q, fds: [_platform.NotifierFd()])));
            Assert.Null(Call(VhostUserMessage.WithU64(VhostUserRequest.SetVringErr, q, fds: [_platform.NotifierFd()])));
        }

        var cfg = new byte[12 + 8];
        VhostUserMessage.WriteHost32(cfg, 4, 8);
        VhostUserMessage reply = Call(new VhostUserMessage(VhostUserRequest.GetConfig, 0, cfg))!;
        Assert.Equal(20, reply.Payload.Length);
        reply.Payload.AsSpan(12).CopyTo(_config);
    }

    public ulong Features { get; }

    public ulong DeviceFeatures => Features & ~VhostUser.F_PROTOCOL_FEATURES;

    public bool NeedsReset => false;

    public Doorbell Kick { get; }

    public Doorbell EventqKick { get; }

    public List<ushort> StoppedAt { get; } = [];

    public static ulong User(ulong gpa) => UserBase + gpa;

    public uint ReadConfig(int offset, int width)
    {
        uint v = 0;
        for (int i = 0; i < width && offset + i < 8; i++)
        {
            v |= (uint)_config[offset + i] << (8 * i);
        }

        return v;
    }

    public RrStatus Start(ulong features, GuestMemory memory, VirtqRings requestq, VirtqRings? eventq, Doorbell call, out string? error)
    {
        error = null;
        _call = call;
        _eventq = eventq is not null;
        // DRIVER_OK: SET_VRING_CALLs, SET_FEATURES, SET_MEM_TABLE (need_reply, two regions around the
        // hole), then per ring NUM, BASE, ADDR, KICK, CALL, ENABLE 1 - and ENABLE 1 for the eventq
        // even when it is not used (QEMU does).
        Assert.Null(Call(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, 0, fds: [_platform.NotifierFd(() => _call!.Ring())])));
        Assert.Null(Call(VhostUserMessage.WithU64(VhostUserRequest.SetFeatures, features | VhostUser.F_PROTOCOL_FEATURES)));
        var table = new byte[8 + 64];
        VhostUserMessage.WriteHost32(table, 0, 2);
        WriteRegion(table, 8, 0, HoleStart);
        WriteRegion(table, 40, HoleEnd, _memory.Size - HoleEnd);
        VhostUserMessage? ack = Call(new VhostUserMessage(VhostUserRequest.SetMemTable, VhostUser.NeedReplyFlag, table,
            [_platform.MemoryFd(_memory.HostBase, HoleStart), _platform.MemoryFd(_memory.HostBase + HoleEnd, _memory.Size - HoleEnd)]));
        Assert.Equal(0UL, U64(ack));
        StartRing(0, requestq);
        if (eventq is VirtqRings e)
        {
            StartRing(1, e);
        }

        Assert.Null(Call(VhostUserMessage.WithState(VhostUserRequest.SetVringEnable, 1, 1)));
        return RrStatus.Ok;
    }

    public void Reset()
    {
        // Stop: SET_VRING_ENABLE 0, then GET_VRING_BASE, per ring.
        for (uint q = 0; q < (_eventq ? 2u : 1u); q++)
        {
            Assert.Null(Call(VhostUserMessage.WithState(VhostUserRequest.SetVringEnable, q, 0)));
            VhostUserMessage r = Call(VhostUserMessage.WithState(VhostUserRequest.GetVringBase, q, 0))!;
            Assert.True(r.TryReadState(out uint index, out uint num));
            Assert.Equal(q, index);
            StoppedAt.Add((ushort)num);
        }
    }

    /// <summary>Hands <paramref name="m"/> to the session; returns its reply (null: none). Asserts no disconnect.</summary>
    public VhostUserMessage? Call(VhostUserMessage m)
    {
        VhostUserMessage? reply = _session.Handle(m, out bool disconnect);
        Assert.False(disconnect, $"{m.Request} ended the session");
        return reply;
    }

    private void StartRing(uint q, VirtqRings r)
    {
        Assert.Null(Call(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, q, (uint)r.Size)));
        Assert.Null(Call(VhostUserMessage.WithState(VhostUserRequest.SetVringBase, q, 0)));
        var a = new byte[40];
        VhostUserMessage.WriteHost32(a, 0, q);
        VhostUserMessage.WriteHost64(a, 8, User(r.DescGpa));
        VhostUserMessage.WriteHost64(a, 16, User(r.UsedGpa));
        VhostUserMessage.WriteHost64(a, 24, User(r.AvailGpa));
        Assert.Null(Call(new VhostUserMessage(VhostUserRequest.SetVringAddr, 0, a)));
        Assert.Null(Call(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, q, fds: [_platform.NotifierFd()])));
        Assert.Null(Call(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, q, fds: [_platform.NotifierFd(() => _call!.Ring())])));
        Assert.Null(Call(VhostUserMessage.WithState(VhostUserRequest.SetVringEnable, q, 1)));
    }

    private static void WriteRegion(byte[] p, int at, ulong gpa, ulong size)
    {
        VhostUserMessage.WriteHost64(p, at, gpa);
        VhostUserMessage.WriteHost64(p, at + 8, size);
        VhostUserMessage.WriteHost64(p, at + 16, User(gpa));
        VhostUserMessage.WriteHost64(p, at + 24, 0);
    }

    private static ulong U64(VhostUserMessage? m)
    {
        Assert.NotNull(m);
        Assert.True(m!.TryReadU64(out ulong v));
        return v;
    }
}
