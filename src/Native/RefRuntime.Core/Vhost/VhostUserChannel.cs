// Framing of vhost-user messages over a descriptor-carrying byte stream (QEMU
// docs/interop/vhost-user.rst "Message Specification"): a 12-byte header, then exactly `size`
// payload bytes; descriptors arrive as ancillary data attached to some of those bytes.
//
// The peer is untrusted, so framing is where a lying peer is caught before any handler runs:
//   * the version bits must be 1, and the reply bit must say what we expect (a request on the
//     back-end, a reply on the front-end);
//   * `size` may not exceed VhostUser.MaxPayloadSize: past that we cannot trust the stream to
//     resynchronise, so it is a violation (the caller disconnects) rather than an error reply;
//   * once the first byte of a message has arrived the rest must follow within the message
//     timeout: a peer that announces 200 bytes and sends 50 does not stall us forever;
//   * at most VhostUser.MaxFds descriptors, and none discarded by the kernel (MSG_CTRUNC).
// On every violation the descriptors received so far are closed here; on success they belong to
// the message.

using System;
using System.Collections.Generic;
using System.Diagnostics;
using RefRuntime.Core.Os;

namespace RefRuntime.Core.Vhost;

/// <summary>What <see cref="VhostUserChannel.Read"/> produced.</summary>
public enum VhostReadResult
{
    /// <summary>A well-framed message.</summary>
    Message = 0,

    /// <summary>Nothing arrived before the first-byte timeout.</summary>
    Idle = 1,

    /// <summary>The peer closed the connection between messages.</summary>
    Closed = 2,

    /// <summary>The peer broke the framing rules (see file comment); disconnect.</summary>
    Violation = 3,

    /// <summary>The transport failed; disconnect.</summary>
    Failed = 4,
}

/// <summary>Reads and writes vhost-user messages on a stream (see file comment). One reader and one writer at a time.</summary>
public sealed class VhostUserChannel
{
    /// <summary>How long the rest of a message may take once its first byte arrived.</summary>
    public const int DefaultMessageTimeoutMs = 5000;

    private readonly IFdStream _stream;
    private readonly int _messageTimeoutMs;
    private readonly byte[] _header = new byte[VhostUser.HeaderSize];

    /// <summary>Frames messages on <paramref name="stream"/>.</summary>
    public VhostUserChannel(IFdStream stream, int messageTimeoutMs = DefaultMessageTimeoutMs)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfNegative(messageTimeoutMs);
        _stream = stream;
        _messageTimeoutMs = messageTimeoutMs;
    }

    /// <summary>
    /// Reads one message, waiting up to <paramref name="firstByteTimeoutMs"/> for it to start (-1:
    /// forever). <paramref name="expectReply"/>: whether the message must carry the reply bit.
    /// </summary>
    public VhostReadResult Read(int firstByteTimeoutMs, bool expectReply, out VhostUserMessage? message, out string? error)
    {
        message = null;
        var fds = new List<int>();
        long start = 0;
        VhostReadResult r = Fill(_header, fds, firstByteTimeoutMs, ref start, out error);
        if (r != VhostReadResult.Message)
        {
            CloseAll(fds);
            return r;
        }

        var request = (VhostUserRequest)VhostUserMessage.ReadHost32(_header, 0);
        uint flags = VhostUserMessage.ReadHost32(_header, 4);
        uint size = VhostUserMessage.ReadHost32(_header, 8);
        if ((flags & VhostUser.VersionMask) != VhostUser.Version)
        {
            return Violate(fds, $"header of {request} has version {flags & VhostUser.VersionMask}, not 1", out error);
        }

        if (((flags & VhostUser.ReplyFlag) != 0) != expectReply)
        {
            return Violate(fds, expectReply ? $"{request}: a request where a reply was expected" : $"{request}: the reply flag is set on a request", out error);
        }

        if (size > VhostUser.MaxPayloadSize)
        {
            return Violate(fds, $"{request} announces {size} payload bytes (at most {VhostUser.MaxPayloadSize})", out error);
        }

        byte[] payload = size == 0 ? [] : new byte[size];
        if (size > 0)
        {
            r = Fill(payload, fds, _messageTimeoutMs, ref start, out error);
            if (r != VhostReadResult.Message)
            {
                CloseAll(fds);
                error = $"{request} ({size} payload bytes announced): {error}";
                return r;
            }
        }

        if (fds.Count > VhostUser.MaxFds)
        {
            return Violate(fds, $"{request} carries {fds.Count} descriptors (at most {VhostUser.MaxFds})", out error);
        }

        message = new VhostUserMessage(request, flags, payload, fds);
        return VhostReadResult.Message;
    }

    /// <summary>Sends <paramref name="message"/> with its descriptors (which stay the caller's).</summary>
    public bool Write(VhostUserMessage message, out string? error)
    {
        ArgumentNullException.ThrowIfNull(message);
        int[] fds = new int[message.Fds.Count];
        for (int i = 0; i < fds.Length; i++)
        {
            fds[i] = message.Fds[i];
        }

        return _stream.Send(message.Encode(), fds, out error);
    }

    /// <summary>Fills <paramref name="buffer"/> completely; the first wait is <paramref name="timeoutMs"/>, then the message deadline.</summary>
    private VhostReadResult Fill(byte[] buffer, List<int> fds, int timeoutMs, ref long start, out string? error)
    {
        error = null;
        int got = 0;
        while (got < buffer.Length)
        {
            int wait = timeoutMs;
            if (start != 0)
            {
                long left = _messageTimeoutMs - (long)Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                wait = (int)Math.Max(0, left);
            }

            ReceiveOutcome o = _stream.Receive(buffer.AsSpan(got), fds, wait, out int n, out bool truncated, out error);
            if (truncated)
            {
                error = "descriptors were discarded by the kernel (more than fit in one message)";
                return VhostReadResult.Violation;
            }

            switch (o)
            {
                case ReceiveOutcome.Data:
                    if (start == 0)
                    {
                        start = Stopwatch.GetTimestamp();
                    }

                    got += n;
                    break;
                case ReceiveOutcome.TimedOut:
                    if (start == 0)
                    {
                        return VhostReadResult.Idle;
                    }

                    error = $"the rest of the message did not arrive within {_messageTimeoutMs} ms";
                    return VhostReadResult.Violation;
                case ReceiveOutcome.Closed:
                    if (start == 0)
                    {
                        return VhostReadResult.Closed;
                    }

                    error = $"the peer closed the connection in the middle of a message ({got} of {buffer.Length} bytes)";
                    return VhostReadResult.Violation;
                default:
                    return VhostReadResult.Failed;
            }
        }

        return VhostReadResult.Message;
    }

    private VhostReadResult Violate(List<int> fds, string reason, out string? error)
    {
        CloseAll(fds);
        error = reason;
        return VhostReadResult.Violation;
    }

    private void CloseAll(List<int> fds)
    {
        foreach (int fd in fds)
        {
            _stream.CloseFd(fd);
        }

        fds.Clear();
    }
}
