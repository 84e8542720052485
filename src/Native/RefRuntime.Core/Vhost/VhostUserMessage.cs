// One vhost-user message: header, payload and the descriptors that came with it (QEMU
// docs/interop/vhost-user.rst "Message Specification"), with typed readers and writers for each
// payload layout. Numbers are in the host's byte order, as the document says; RefRuntime runs on
// little-endian hosts only (x86-64, arm64), so "host" is spelled out in the helper names.
//
// Ownership of descriptors: a received message owns its Fds until a handler takes one
// (TakeFd); whatever is left is closed by whoever consumed the message (VhostUserSession closes
// them after each request), so a front-end that sends a descriptor too many leaks nothing.

using System;
using System.Buffers.Binary;
using System.Collections.Generic;

namespace RefRuntime.Core.Vhost;

/// <summary>A vhost-user message (see file comment).</summary>
public sealed class VhostUserMessage
{
    private readonly List<int> _fds;

    /// <summary>Creates a message (version 1 is always set in the flags).</summary>
    public VhostUserMessage(VhostUserRequest request, uint flags, byte[] payload, List<int>? fds = null)
    {
        ArgumentNullException.ThrowIfNull(payload);
        Request = request;
        Flags = (flags & ~VhostUser.VersionMask) | VhostUser.Version;
        Payload = payload;
        _fds = fds ?? [];
    }

    /// <summary>The request code (for a reply: the request it answers).</summary>
    public VhostUserRequest Request { get; }

    /// <summary>Header flags (version, reply, need_reply).</summary>
    public uint Flags { get; }

    /// <summary>The payload bytes (the header's size is their count).</summary>
    public byte[] Payload { get; }

    /// <summary>Descriptors still owned by the message.</summary>
    public IReadOnlyList<int> Fds => _fds;

    /// <summary>Whether the sender asked for an acknowledgement.</summary>
    public bool NeedReply => (Flags & VhostUser.NeedReplyFlag) != 0;

    /// <summary>Whether this is a reply.</summary>
    public bool IsReply => (Flags & VhostUser.ReplyFlag) != 0;

    /// <summary>Takes descriptor <paramref name="index"/> out of the message (the caller owns it now); -1 if there is none.</summary>
    public int TakeFd(int index)
    {
        if ((uint)index >= (uint)_fds.Count || _fds[index] < 0)
        {
            return -1;
        }

        int fd = _fds[index];
        _fds[index] = -1;
        return fd;
    }

    /// <summary>Descriptors not yet taken.</summary>
    public int FdCount
    {
        get
        {
            int n = 0;
            foreach (int fd in _fds)
            {
                n += fd >= 0 ? 1 : 0;
            }

            return n;
        }
    }

    /// <summary>Removes and returns every descriptor not taken (the caller closes them).</summary>
    public List<int> TakeRemainingFds()
    {
        var left = new List<int>();
        for (int i = 0; i < _fds.Count; i++)
        {
            if (_fds[i] >= 0)
            {
                left.Add(_fds[i]);
                _fds[i] = -1;
            }
        }

        return left;
    }

    /// <summary>Header + payload, ready to send.</summary>
    public byte[] Encode()
    {
        var bytes = new byte[VhostUser.HeaderSize + Payload.Length];
        WriteHost32(bytes, 0, (uint)Request);
        WriteHost32(bytes, 4, Flags);
        WriteHost32(bytes, 8, (uint)Payload.Length);
        Payload.CopyTo(bytes, VhostUser.HeaderSize);
        return bytes;
    }

    /// <summary>A request carrying one u64.</summary>
    public static VhostUserMessage WithU64(VhostUserRequest request, ulong value, uint flags = 0, List<int>? fds = null)
    {
        var p = new byte[8];
        WriteHost64(p, 0, value);
        return new VhostUserMessage(request, flags, p, fds);
    }

    /// <summary>A request carrying a vring state {index, num}.</summary>
    public static VhostUserMessage WithState(VhostUserRequest request, uint index, uint num, uint flags = 0)
    {
        var p = new byte[VhostUser.VringStateSize];
        WriteHost32(p, 0, index);
        WriteHost32(p, 4, num);
        return new VhostUserMessage(request, flags, p);
    }

    /// <summary>The reply to <paramref name="request"/> with <paramref name="payload"/>.</summary>
    public static VhostUserMessage Reply(VhostUserMessage request, byte[] payload) =>
        new(request.Request, VhostUser.ReplyFlag, payload);

    /// <summary>The REPLY_ACK answer: u64 0 for success, 1 for failure.</summary>
    public static VhostUserMessage Ack(VhostUserMessage request, bool success)
    {
        var p = new byte[8];
        WriteHost64(p, 0, success ? 0UL : 1UL);
        return new VhostUserMessage(request.Request, VhostUser.ReplyFlag, p);
    }

    /// <summary>The u64 payload, or false when the payload is not exactly 8 bytes.</summary>
    public bool TryReadU64(out ulong value)
    {
        value = Payload.Length == 8 ? ReadHost64(Payload, 0) : 0;
        return Payload.Length == 8;
    }

    /// <summary>The vring state payload, or false when it is not exactly 8 bytes.</summary>
    public bool TryReadState(out uint index, out uint num)
    {
        bool ok = Payload.Length == VhostUser.VringStateSize;
        index = ok ? ReadHost32(Payload, 0) : 0;
        num = ok ? ReadHost32(Payload, 4) : 0;
        return ok;
    }

    /// <summary>Reads a host-order u32 at <paramref name="offset"/>.</summary>
    public static uint ReadHost32(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(b[offset..]);

    /// <summary>Reads a host-order u64 at <paramref name="offset"/>.</summary>
    public static ulong ReadHost64(ReadOnlySpan<byte> b, int offset) => BinaryPrimitives.ReadUInt64LittleEndian(b[offset..]);

    /// <summary>Writes a host-order u32 at <paramref name="offset"/>.</summary>
    public static void WriteHost32(Span<byte> b, int offset, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b[offset..], v);

    /// <summary>Writes a host-order u64 at <paramref name="offset"/>.</summary>
    public static void WriteHost64(Span<byte> b, int offset, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b[offset..], v);
}
