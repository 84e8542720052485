using System;
using System.Diagnostics;
using RefRuntime.Core.Os;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Vhost;
using Xunit;

namespace RefRuntime.Core.Tests.Vhost;

/// <summary>Framing over a real socket pair: a lying size that stalls, too many descriptors, a clean round trip.</summary>
public sealed class VhostUserChannelTests
{
    // A header that announces more than is sent, then nothing: the read gives up after the message timeout.
    [Fact]
    public void LyingSize_ThenStall_IsAViolationAfterTheMessageTimeout_NotAHang()
    {
        Assert.Equal(RrStatus.Ok, UnixSocket.Pair(out UnixSocket? a, out UnixSocket? b, out _));
        using (a)
        using (b)
        {
            var channel = new VhostUserChannel(a!, messageTimeoutMs: 200);
            var bytes = new byte[12 + 10];
            VhostUserMessage.WriteHost32(bytes, 0, (uint)VhostUserRequest.SetVringAddr);
            VhostUserMessage.WriteHost32(bytes, 4, VhostUser.Version);
            VhostUserMessage.WriteHost32(bytes, 8, 40);
            Assert.True(b!.Send(bytes, [], out _));
            var sw = Stopwatch.StartNew();
            VhostReadResult r = channel.Read(-1, expectReply: false, out VhostUserMessage? m, out string? error);
            Assert.True(sw.Elapsed < StressConfig.HangGuard);
            Assert.Equal(VhostReadResult.Violation, r);
            Assert.Null(m);
            Assert.Contains("did not arrive", error, StringComparison.Ordinal);
        }
    }

    // More than 8 descriptors on one message: a violation, and every one of them closed.
    [Fact]
    public void TooManyDescriptors_AreAViolation_AndAllClosed()
    {
        Assert.Equal(RrStatus.Ok, UnixSocket.Pair(out UnixSocket? a, out UnixSocket? b, out _));
        using (a)
        using (b)
        {
            int before = FileDescriptor.CountOpen(Environment.ProcessId);
            var events = new EventFd[12];
            var fds = new int[events.Length];
            for (int i = 0; i < fds.Length; i++)
            {
                events[i] = EventFd.Create();
                fds[i] = events[i].Fd;
            }

            Assert.True(new VhostUserChannel(b!).Write(new VhostUserMessage(VhostUserRequest.SetOwner, 0, [], [.. fds]), out _));
            foreach (EventFd e in events)
            {
                e.Dispose();
            }

            VhostReadResult r = new VhostUserChannel(a!).Read(-1, expectReply: false, out _, out string? error);
            Assert.Equal(VhostReadResult.Violation, r);
            Assert.Contains("12 descriptors", error, StringComparison.Ordinal);
            Assert.Equal(before, FileDescriptor.CountOpen(Environment.ProcessId)); // the 12 received copies were closed
        }
    }

    // A message with a payload and descriptors arrives whole; the peer closing between messages is Closed.
    [Fact]
    public void RoundTrip_WithDescriptors_ThenClose()
    {
        Assert.Equal(RrStatus.Ok, UnixSocket.Pair(out UnixSocket? a, out UnixSocket? b, out _));
        using (a)
        {
            using var e = EventFd.Create();
            Assert.True(new VhostUserChannel(b!).Write(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, 1, VhostUser.NeedReplyFlag, [e.Fd]), out _));
            var ch = new VhostUserChannel(a!);
            Assert.Equal(VhostReadResult.Message, ch.Read(-1, false, out VhostUserMessage? m, out _));
            Assert.Equal(VhostUserRequest.SetVringKick, m!.Request);
            Assert.True(m.NeedReply);
            Assert.True(m.TryReadU64(out ulong v) && v == 1);
            Assert.Equal(1, m.FdCount);
            int fd = m.TakeFd(0);
            Assert.True(EventFd.Signal(e.Fd));
            Assert.Equal(1UL, EventFd.Drain(fd)); // the same eventfd, received
            FileDescriptor.Close(fd);
            Assert.Equal(VhostReadResult.Idle, ch.Read(0, false, out _, out _));
            b!.Dispose();
            Assert.Equal(VhostReadResult.Closed, ch.Read(-1, false, out _, out _));
        }
    }
}
