using System;
using System.Collections.Generic;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Os;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Vhost;
using Xunit;
using Xunit.Abstractions;

namespace RefRuntime.Core.Tests.Vhost;

/// <summary>
/// The front-end as an untrusted peer, against the real back-end process: malformed, truncated and
/// lying messages, missing and extra descriptors, bad memory and rings, and random fuzz. Each gets
/// an error reply or a disconnect; the back-end never crashes, leaks no descriptor (its
/// /proc/PID/fd count returns to where it was) and serves the next connection.
/// </summary>
public sealed class HostileFrontendTests(ITestOutputHelper output)
{
    /// <summary>A raw connection that sends whatever it is told.</summary>
    private sealed class Raw : IDisposable
    {
        public readonly UnixSocket Socket;
        public readonly VhostUserChannel Channel;

        public Raw(string path)
        {
            Assert.Equal(RrStatus.Ok, UnixSocket.Connect(path, out UnixSocket? s, out _));
            Socket = s!;
            Channel = new VhostUserChannel(Socket, 2000);
        }

        public void Send(VhostUserMessage m) => Assert.True(Channel.Write(m, out string? e), e);

        public void SendBytes(byte[] bytes, params int[] fds) => Assert.True(Socket.Send(bytes, fds, out string? e), e);

        /// <summary>The next reply, or null when the back-end closed the connection (asserts one of the two happens).</summary>
        public VhostUserMessage? ReplyOrClose()
        {
            VhostReadResult r = Channel.Read((int)StressConfig.HangGuard.TotalMilliseconds, expectReply: true, out VhostUserMessage? m, out string? e);
            Assert.True(r is VhostReadResult.Message or VhostReadResult.Closed, $"{r}: {e}");
            return m;
        }

        /// <summary>Asserts that the back-end closes the connection.</summary>
        public void ExpectClose()
        {
            VhostReadResult r = Channel.Read((int)StressConfig.HangGuard.TotalMilliseconds, expectReply: true, out _, out string? e);
            Assert.True(r is VhostReadResult.Closed or VhostReadResult.Failed, $"expected a disconnect, got {r}: {e}");
        }

        /// <summary>Asserts an error acknowledgement (u64 != 0).</summary>
        public void ExpectError(VhostUserRequest request)
        {
            VhostUserMessage? m = ReplyOrClose();
            Assert.NotNull(m);
            Assert.Equal(request, m!.Request);
            Assert.True(m.TryReadU64(out ulong v) && v != 0, $"{request}: expected an error acknowledgement");
        }

        public void ExpectOk(VhostUserRequest request)
        {
            VhostUserMessage? m = ReplyOrClose();
            Assert.NotNull(m);
            Assert.True(m!.TryReadU64(out ulong v) && v == 0, $"{request}: expected success");
        }

        public void Dispose() => Socket.Dispose();
    }

    private const uint Ack = VhostUser.NeedReplyFlag;

    private static VhostUserMessage Msg(VhostUserRequest r, byte[] payload, uint flags = Ack, params int[] fds) => new(r, flags, payload, [.. fds]);

    private static byte[] Region(ulong gpa, ulong size, ulong uaddr, ulong offset, bool single = false)
    {
        var p = new byte[single ? 40 : 8 + 32];
        int at = 8;
        if (!single)
        {
            VhostUserMessage.WriteHost32(p, 0, 1);
        }

        VhostUserMessage.WriteHost64(p, at, gpa);
        VhostUserMessage.WriteHost64(p, at + 8, size);
        VhostUserMessage.WriteHost64(p, at + 16, uaddr);
        VhostUserMessage.WriteHost64(p, at + 24, offset);
        return p;
    }

    private static int Memfd(ulong size)
    {
        Assert.Equal(RrStatus.Ok, SharedMapping.CreateMemfd("hostile", size, out int fd, out _));
        return fd;
    }

    /// <summary>The back-end's descriptor count once it is idle again after the sessions so far.</summary>
    private static int IdleFds(BackendProcess b, int sessions)
    {
        BackendProcess.WaitFor(() => b.CountLines("ended (") >= sessions, $"{sessions} sessions to end");
        return b.OpenFds;
    }

    // No descriptor leaked: once the sessions have ended, the back-end's descriptors come back to the
    // baseline. A session's regions are released when their last user lets go (deferred), so the
    // count may lag the "ended" line for a moment: wait for it (a hang guard, not a speed check).
    private static void AssertNoFdLeak(BackendProcess b, int baseline, int sessions)
    {
        BackendProcess.WaitFor(() => b.CountLines("ended (") >= sessions, $"{sessions} sessions to end");
        BackendProcess.WaitFor(() => b.OpenFds <= baseline, $"the back-end's descriptors to come back to {baseline}");
    }

    private static void GoodSession(BackendProcess b)
    {
        Assert.Equal(RrStatus.Ok, VhostUserGpioTransport.Connect(b.SocketPath, out VhostUserGpioTransport? t, out string? error));
        Assert.Null(error);
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t!, t!.Memory, out VirtioGpioChip? chip, out error));
        Assert.Equal(RrStatus.Ok, chip!.DirectionOutput(0, true));
        Assert.Equal(RrStatus.Ok, chip.Get(0, out bool v));
        Assert.True(v);
        chip.Dispose();
        t.Dispose();
    }

    // Framing violations end the connection; everything else is answered with an error.
    [Fact]
    public void MalformedMessages_GetErrorRepliesOrDisconnect_NoCrashNoFdLeak()
    {
        using var b = new BackendProcess();
        int sessions = 0;
        try
        {
            GoodSession(b);
            int baseline = IdleFds(b, ++sessions);

            // Framing: bad version, reply flag on a request, huge size, truncated, too many fds.
            var header = new byte[12];
            VhostUserMessage.WriteHost32(header, 0, (uint)VhostUserRequest.GetFeatures);
            foreach (uint flags in new uint[] { 0, 2, 3, VhostUser.Version | VhostUser.ReplyFlag })
            {
                using var r = new Raw(b.SocketPath);
                VhostUserMessage.WriteHost32(header, 4, flags);
                r.SendBytes(header);
                r.ExpectClose();
                sessions++;
            }

            using (var r = new Raw(b.SocketPath))
            {
                VhostUserMessage.WriteHost32(header, 4, VhostUser.Version);
                VhostUserMessage.WriteHost32(header, 8, 1u << 30); // a lying size
                r.SendBytes(header);
                r.ExpectClose();
                sessions++;
            }

            using (var r = new Raw(b.SocketPath))
            {
                var part = new byte[12 + 10];
                VhostUserMessage.WriteHost32(part, 0, (uint)VhostUserRequest.SetVringAddr);
                VhostUserMessage.WriteHost32(part, 4, VhostUser.Version);
                VhostUserMessage.WriteHost32(part, 8, 40); // announces 40, sends 10, then closes
                r.SendBytes(part);
                sessions++;
            }

            using (var r = new Raw(b.SocketPath))
            {
                var events = new EventFd[12];
                var fds = new int[events.Length];
                for (int i = 0; i < fds.Length; i++)
                {
                    events[i] = EventFd.Create();
                    fds[i] = events[i].Fd;
                }

                r.Send(Msg(VhostUserRequest.SetOwner, [], Ack, fds));
                foreach (EventFd e in events)
                {
                    e.Dispose(); // our copies; the back-end must have closed its own
                }

                r.ExpectClose(); // more than 8 descriptors: a framing violation
                sessions++;
            }

            // Semantic errors: one connection, every request answered with an error, the session goes on.
            using (var r = new Raw(b.SocketPath))
            {
                using var evObj = EventFd.Create();
                int ev = evObj.Fd;
                r.Send(Msg(VhostUserRequest.SetOwner, [], Ack, ev)); // an extra descriptor
                r.ExpectError(VhostUserRequest.SetOwner);
                r.Send(Msg(VhostUserRequest.SetFeatures, new byte[4])); // short payload
                r.ExpectError(VhostUserRequest.SetFeatures);
                r.Send(VhostUserMessage.WithU64(VhostUserRequest.SetFeatures, 1UL << 40, Ack)); // never offered
                r.ExpectError(VhostUserRequest.SetFeatures);
                r.Send(VhostUserMessage.WithU64(VhostUserRequest.SetProtocolFeatures, 1UL << 14, Ack)); // in-band: not offered
                r.ExpectError(VhostUserRequest.SetProtocolFeatures);

                // Memory: fd count mismatch, file too small, a pipe, overlap.
                int small = Memfd(4096);
                r.Send(Msg(VhostUserRequest.SetMemTable, Region(0, 1 << 20, 0x7000_0000, 0))); // no fd
                r.ExpectError(VhostUserRequest.SetMemTable);
                r.Send(Msg(VhostUserRequest.SetMemTable, Region(0, 1 << 20, 0x7000_0000, 0), Ack, small)); // 4 KiB file, 1 MiB region
                r.ExpectError(VhostUserRequest.SetMemTable);
                r.Send(Msg(VhostUserRequest.SetMemTable, Region(0, 4096, 0x7000_0000, 4096), Ack, small)); // past the end by the offset
                r.ExpectError(VhostUserRequest.SetMemTable);
                r.Send(Msg(VhostUserRequest.SetMemTable, Region(0, 4096, 0x7000_0000, 0), Ack, ev, small)); // two fds for one region
                r.ExpectError(VhostUserRequest.SetMemTable);
                r.Send(Msg(VhostUserRequest.SetMemTable, Region(ulong.MaxValue - 100, 4096, 0x7000_0000, 0), Ack, small)); // wraps
                r.ExpectError(VhostUserRequest.SetMemTable);
                r.Send(Msg(VhostUserRequest.SetMemTable, Region(0, 4096, 0x7000_0000, 0), Ack, ev)); // an eventfd is no memory
                r.ExpectError(VhostUserRequest.SetMemTable);
                var two = new byte[8 + 64];
                VhostUserMessage.WriteHost32(two, 0, 2);
                Region(0, 4096, 0x7000_0000, 0).AsSpan(8).CopyTo(two.AsSpan(8));
                Region(2048, 2048, 0x9000_0000, 0).AsSpan(8).CopyTo(two.AsSpan(40)); // overlaps in guest addresses
                r.Send(Msg(VhostUserRequest.SetMemTable, two, Ack, small, small));
                r.ExpectError(VhostUserRequest.SetMemTable);
                r.Send(Msg(VhostUserRequest.SetMemTable, Region(0, 4096, 0x7000_0000, 0), Ack, small)); // a good one
                r.ExpectOk(VhostUserRequest.SetMemTable);
                r.Send(Msg(VhostUserRequest.AddMemReg, Region(4096, 4096, 0x7000_0800, 0, single: true), Ack, small)); // user-address overlap
                r.ExpectError(VhostUserRequest.AddMemReg);
                r.Send(Msg(VhostUserRequest.RemMemReg, Region(0x10000, 4096, 0, 0, single: true))); // no such region
                r.ExpectError(VhostUserRequest.RemMemReg);

                // Rings: bad size, bad index, addresses outside memory, kick with the wrong fd count.
                r.Send(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, 0, 3, Ack));
                r.ExpectError(VhostUserRequest.SetVringNum);
                r.Send(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, 0, 1 << 15, Ack));
                r.ExpectError(VhostUserRequest.SetVringNum);
                r.Send(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, 9, 16, Ack));
                r.ExpectError(VhostUserRequest.SetVringNum);
                r.Send(VhostUserMessage.WithState(VhostUserRequest.SetVringBase, 0, 1 << 16, Ack));
                r.ExpectError(VhostUserRequest.SetVringBase);
                r.Send(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, 0, 16, Ack));
                r.ExpectOk(VhostUserRequest.SetVringNum);
                var addr = new byte[40];
                VhostUserMessage.WriteHost64(addr, 8, 0x1234_0000); // desc: outside every region
                VhostUserMessage.WriteHost64(addr, 16, 0x7000_0400);
                VhostUserMessage.WriteHost64(addr, 24, 0x7000_0300);
                r.Send(Msg(VhostUserRequest.SetVringAddr, addr));
                r.ExpectError(VhostUserRequest.SetVringAddr);
                VhostUserMessage.WriteHost64(addr, 8, 0x7000_0ff0); // desc straddles the region's end
                r.Send(Msg(VhostUserRequest.SetVringAddr, addr));
                r.ExpectError(VhostUserRequest.SetVringAddr);
                r.Send(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, 0, Ack, [ev, small]));
                r.ExpectError(VhostUserRequest.SetVringKick);
                r.Send(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, 0, Ack));
                r.ExpectError(VhostUserRequest.SetVringCall); // no fd and no NOFD flag
                r.Send(VhostUserMessage.WithU64(VhostUserRequest.SetVringErr, 0x200, Ack, [ev]));
                r.ExpectError(VhostUserRequest.SetVringErr); // unknown bits
                r.Send(VhostUserMessage.WithState(VhostUserRequest.SetVringEnable, 0, 7, Ack));
                r.ExpectError(VhostUserRequest.SetVringEnable);

                // Config: out of range, bad sizes (an error is a zero-length reply), read-only writes.
                var cfg = new byte[12 + 16];
                VhostUserMessage.WriteHost32(cfg, 4, 16);
                r.Send(Msg(VhostUserRequest.GetConfig, cfg, 0));
                Assert.Empty(r.ReplyOrClose()!.Payload);
                var cfgLie = new byte[12];
                VhostUserMessage.WriteHost32(cfgLie, 4, 200);
                r.Send(Msg(VhostUserRequest.GetConfig, cfgLie, 0));
                Assert.Empty(r.ReplyOrClose()!.Payload);
                var set = new byte[12 + 2];
                VhostUserMessage.WriteHost32(set, 4, 2);
                r.Send(Msg(VhostUserRequest.SetConfig, set));
                r.ExpectError(VhostUserRequest.SetConfig);

                // Not offered / unknown.
                r.Send(Msg(VhostUserRequest.SetLogFd, [], Ack, ev));
                r.ExpectError(VhostUserRequest.SetLogFd);
                r.Send(Msg((VhostUserRequest)99, new byte[3]));
                r.ExpectError((VhostUserRequest)99);

                // Still a working session: the offer is answered.
                r.Send(Msg(VhostUserRequest.GetFeatures, [], 0));
                Assert.True(r.ReplyOrClose()!.TryReadU64(out ulong features) && (features & VhostUser.F_PROTOCOL_FEATURES) != 0);

                // An explicit reply we cannot give ends the session.
                r.Send(VhostUserMessage.WithState(VhostUserRequest.GetVringBase, 200, 0, 0));
                r.ExpectClose();
                FileDescriptor.Close(small);
                sessions++;
            }

            Assert.False(b.Process.HasExited);
            AssertNoFdLeak(b, baseline, sessions);
            GoodSession(b); // and the next connection is served
            AssertNoFdLeak(b, baseline, ++sessions);
        }
        finally
        {
            foreach (string line in b.Stderr)
            {
                output.WriteLine(line);
            }
        }
    }

    /// <summary>SET_OWNER, SET_FEATURES, a memory table and ring 0 started and enabled, as QEMU would.</summary>
    private static void ValidPrefix(Raw r, int memfd)
    {
        r.Send(Msg(VhostUserRequest.SetOwner, []));
        r.ExpectOk(VhostUserRequest.SetOwner);
        r.Send(VhostUserMessage.WithU64(VhostUserRequest.SetFeatures, (1UL << 32) | (1UL << 29) | 1 | VhostUser.F_PROTOCOL_FEATURES, Ack));
        r.ExpectOk(VhostUserRequest.SetFeatures);
        r.Send(Msg(VhostUserRequest.SetMemTable, Region(0, 1 << 16, 0x7000_0000, 0), Ack, memfd));
        r.ExpectOk(VhostUserRequest.SetMemTable);
        r.Send(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, 0, 64, Ack));
        r.ExpectOk(VhostUserRequest.SetVringNum);
        var addr = new byte[40];
        VhostUserMessage.WriteHost64(addr, 8, 0x7000_0000);
        VhostUserMessage.WriteHost64(addr, 16, 0x7000_1000);
        VhostUserMessage.WriteHost64(addr, 24, 0x7000_0800);
        r.Send(Msg(VhostUserRequest.SetVringAddr, addr));
        r.ExpectOk(VhostUserRequest.SetVringAddr);
        using var kick = EventFd.Create();
        using var call = EventFd.Create();
        r.Send(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, 0, Ack, [kick.Fd]));
        r.ExpectOk(VhostUserRequest.SetVringKick);
        r.Send(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, 0, Ack, [call.Fd]));
        r.ExpectOk(VhostUserRequest.SetVringCall);
        r.Send(VhostUserMessage.WithState(VhostUserRequest.SetVringEnable, 0, 1, Ack));
        r.ExpectOk(VhostUserRequest.SetVringEnable);
    }

    // Random requests, flags, payloads and descriptors: no crash, no hang, no descriptor leak.
    [Fact]
    [Trait("Category", "Stress")]
    public void RandomMessages_Fuzz_NoCrashNoFdLeak_NextConnectionServed()
    {
        using var b = new BackendProcess();
        var rng = new Random(17);
        int sessions = 0;
        long messages = 0;
        try
        {
            GoodSession(b);
            int baseline = IdleFds(b, ++sessions);
            int memfd = Memfd(1 << 16);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            int rounds = 0;
            while (rounds < 40 || StressConfig.Continue(clock, StressConfig.Extended, rounds >= 40))
            {
                rounds++;
                using var r = new Raw(b.SocketPath);
                bool open = true;
                if (rounds % 2 == 0)
                {
                    // Half the connections get a valid start first, so the fuzz also meets running rings.
                    ValidPrefix(r, memfd);
                }

                for (int i = 0; i < 60 && open; i++, messages++)
                {
                    var req = (VhostUserRequest)rng.Next(0, 45);
                    if (req is VhostUserRequest.GetVringBase or VhostUserRequest.GetInflightFd or VhostUserRequest.PostcopyAdvise or VhostUserRequest.CreateCryptoSession
                        && rng.Next(8) != 0)
                    {
                        req = VhostUserRequest.SetVringNum; // these end the session when malformed: keep them rare
                    }

                    byte[] payload = new byte[rng.Next(4) switch { 0 => 0, 1 => 8, 2 => 40, _ => rng.Next(0, 300) }];
                    rng.NextBytes(payload);
                    if (payload.Length >= 8 && rng.Next(2) == 0)
                    {
                        VhostUserMessage.WriteHost32(payload, 0, (uint)rng.Next(0, 3)); // a plausible ring index / count
                        VhostUserMessage.WriteHost32(payload, 4, (uint)(1 << rng.Next(0, 12))); // a plausible size
                    }
                    if (req is VhostUserRequest.SetMemTable && payload.Length >= 8)
                    {
                        VhostUserMessage.WriteHost32(payload, 0, (uint)rng.Next(0, 3));
                    }

                    var fds = new List<int>();
                    int nfd = rng.Next(0, 4);
                    for (int k = 0; k < nfd; k++)
                    {
                        fds.Add(rng.Next(2) == 0 ? Libc.eventfd(0, Libc.EFD_CLOEXEC) : Libc.dup(memfd));
                    }

                    // Mostly well-framed (version 1, not a reply), need_reply at random.
                    uint flags = rng.Next(20) == 0 ? (uint)rng.Next(0, 16) : 1u | (rng.Next(2) == 0 ? VhostUser.NeedReplyFlag : 0);

                    // The constructor forces version 1; write the header by hand to send other versions.
                    var bytes = new VhostUserMessage(req, 0, payload).Encode();
                    VhostUserMessage.WriteHost32(bytes, 4, flags);
                    open = r.Socket.Send(bytes, fds.ToArray(), out _);
                    foreach (int fd in fds)
                    {
                        FileDescriptor.Close(fd);
                    }

                    // Drain whatever comes back (a reply, nothing, or a close) without waiting long.
                    VhostReadResult res = r.Channel.Read(1, expectReply: true, out _, out _);
                    open &= res is VhostReadResult.Message or VhostReadResult.Idle;
                }

                sessions++;
            }

            FileDescriptor.Close(memfd);
            output.WriteLine($"{rounds} connections, {messages} fuzzed messages");
            Assert.False(b.Process.HasExited, "the back-end died");
            AssertNoFdLeak(b, baseline, sessions);
            GoodSession(b);
            AssertNoFdLeak(b, baseline, ++sessions);
        }
        finally
        {
            foreach (string line in b.Stderr)
            {
                if (!line.Contains("connection", StringComparison.Ordinal) || line.Contains("ended", StringComparison.Ordinal))
                {
                    output.WriteLine(line);
                }
            }
        }
    }
}
