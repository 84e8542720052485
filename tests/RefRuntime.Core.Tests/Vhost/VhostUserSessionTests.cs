using System;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;
using Xunit;
using Driver = RefRuntime.Core.Devices.Pl061.Pl061Driver<RefRuntime.Core.Io.RawDeviceBackend>;

namespace RefRuntime.Core.Tests.Vhost;

/// <summary>
/// The back-end session with in-memory messages and a fake operating system: QEMU 7.2's exact
/// sequence driving the virtio-gpio device through the memory map, and the session's answers to
/// requests in every state. Every descriptor handed to the session must be closed exactly once.
/// </summary>
public sealed unsafe class VhostUserSessionTests
{
    private sealed class Stack : IDisposable
    {
        public readonly RawPl061Model Model = new();
        public readonly Driver Pl061;
        public readonly VirtioGpioDevice Device;
        public readonly FakeVhostPlatform Platform = new();
        public readonly VhostUserSession Session;

        public Stack()
        {
            Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(Model, out Driver? d, out _));
            Pl061 = d!;
            Assert.Equal(RrStatus.Ok, VirtioGpioDevice.Create(Pl061, ["led", null, null, "button", null, null, null, null], true, out VirtioGpioDevice? dev, out _));
            Device = dev!;
            Session = new VhostUserSession(new VhostUserGpioBackend(Device), Platform);
        }

        public void Dispose()
        {
            Session.Dispose();
            Device.Dispose();
            Pl061.Destroy();
            Assert.Empty(Platform.Problems);
            Assert.Equal(0, Platform.Outstanding); // every descriptor the session received was closed
            Assert.Equal(Platform.Mapped, Platform.Unmapped); // and every region unmapped
        }

        public VhostUserMessage? Handle(VhostUserMessage m, bool expectDisconnect = false)
        {
            VhostUserMessage? r = Session.Handle(m, out bool disconnect);
            Assert.Equal(expectDisconnect, disconnect);
            return r;
        }

        public void ExpectAck(VhostUserMessage m, bool ok)
        {
            VhostUserMessage? r = Handle(new VhostUserMessage(m.Request, m.Flags | VhostUser.NeedReplyFlag, m.Payload, [.. m.Fds]));
            Assert.NotNull(r);
            Assert.True(r!.TryReadU64(out ulong v));
            Assert.True(ok == (v == 0), $"{m.Request}: expected {(ok ? "success" : "an error")}, got {v}");
        }
    }

    // QEMU 7.2's realize / DRIVER_OK / stop sequence, two regions around a hole, drives the real chip.
    [Fact]
    public void Qemu72Sequence_DrivesTheChipThroughSessionMapAndDevice()
    {
        using var s = new Stack();
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0, out GuestMemory? mem));
        var t = new InProcessVhostTransport(s.Session, s.Platform, mem!);
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t, mem!, out VirtioGpioChip? chip, out string? error));
        Assert.Null(error);
        Assert.Equal("led", chip!.LineName(0));
        Assert.Equal("button", chip.LineName(3));
        Assert.True(s.Session.IsRingActive(0));
        Assert.True(s.Session.IsRingActive(1));
        Assert.Equal(2, s.Session.Memory.Count);

        Assert.Equal(RrStatus.Ok, chip.DirectionOutput(0, true)); // 2 requests
        Assert.Equal(1, s.Model.Outputs & 1);
        Assert.Equal(RrStatus.Ok, chip.Get(0, out bool v)); // 1
        Assert.True(v);
        Assert.Equal(RrStatus.Ok, chip.DirectionInput(3)); // 1
        Assert.Equal(RrStatus.Ok, chip.SetIrqType(3, RawGpioIrqType.EdgeFalling));
        using var fired = new SemaphoreSlim(0);
        Assert.Equal(RrStatus.Ok, chip.SetIrqHandler(3, _ => fired.Release())); // 1 (SET_IRQ_TYPE) + eventq buffer
        s.Model.SetInput(3, true);
        s.Model.SetInput(3, false);
        Assert.True(fired.Wait(StressConfig.HangGuard), "no interrupt through the session");
        // No assertion on how many calls each queue made: whether the device must call depends on
        // whether the front end was already polling its used ring (EVENT_IDX), a matter of timing.
        // What this test is about is above: every request answered and the interrupt delivered.

        chip.Dispose(); // the transport's Reset: SET_VRING_ENABLE 0 + GET_VRING_BASE per ring
        Assert.Equal(2, t.StoppedAt.Count);
        Assert.Equal(1 + 2 + 1 + 1 + 1, t.StoppedAt[0]); // GET_NAMES, then the requests above
        Assert.True(t.StoppedAt[1] >= 1); // the eventq buffer(s), including one held when it stopped
        Assert.False(s.Session.IsRingActive(0));
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // Requests that are wrong in the state they arrive in get an error and change nothing.
    [Fact]
    public void RingRequests_InTheWrongState_AreRefusedAndChangeNothing()
    {
        using var s = new Stack();
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0, out GuestMemory? mem));
        var t = new InProcessVhostTransport(s.Session, s.Platform, mem!);
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t, mem!, out VirtioGpioChip? chip, out _));
        VirtqRings rings = s.Session.Queue(0).ConfiguredRings;

        // A running ring keeps its size, base and addresses.
        s.ExpectAck(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, 0, 128), false);
        s.ExpectAck(VhostUserMessage.WithState(VhostUserRequest.SetVringBase, 0, 5), false);
        var a = new byte[40];
        VhostUserMessage.WriteHost64(a, 8, rings.DescGpa);
        VhostUserMessage.WriteHost64(a, 16, rings.UsedGpa);
        VhostUserMessage.WriteHost64(a, 24, rings.AvailGpa);
        s.ExpectAck(new VhostUserMessage(VhostUserRequest.SetVringAddr, 0, a), true); // the same addresses (a logging toggle): fine
        VhostUserMessage.WriteHost64(a, 8, rings.DescGpa + 4096);
        s.ExpectAck(new VhostUserMessage(VhostUserRequest.SetVringAddr, 0, a), false);
        Assert.Equal(rings, s.Session.Queue(0).ConfiguredRings);
        Assert.Equal(RrStatus.Ok, chip!.DirectionOutput(2, true)); // still serving

        // A call descriptor replaced while the device signals it: the old one is closed, the new one used.
        int before = s.Platform.Outstanding;
        int newCalls = 0;
        Assert.Null(s.Handle(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, 0, fds: [s.Platform.NotifierFd(() => Interlocked.Increment(ref newCalls))])));
        Assert.Equal(before, s.Platform.Outstanding); // one in, one out
        // With no call descriptor the driver must poll; the request still completes (the chip polls the ring).
        Assert.Equal(RrStatus.Ok, chip.Set(2, false));
        // (Whether the device signalled the new descriptor depends on whether the chip was polling: timing, not asserted.)

        // RESET_OWNER disables the rings; the chip's queues are stopped from then on.
        Assert.Null(s.Handle(new VhostUserMessage(VhostUserRequest.ResetOwner, 0, [])));
        Assert.False(s.Session.IsRingActive(0));
        Assert.False(s.Device.IsServing);
        chip.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // RESET_DEVICE forgets rings, features, notifiers and memory; the session can be set up again.
    [Fact]
    public void ResetDevice_ReturnsToTheInitialState_AndTheSessionCanStartAgain()
    {
        using var s = new Stack();
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0, out GuestMemory? mem));
        var t = new InProcessVhostTransport(s.Session, s.Platform, mem!);
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t, mem!, out VirtioGpioChip? chip, out _));
        Assert.Equal(RrStatus.Ok, chip!.DirectionOutput(1, true));
        int mapped = s.Platform.Mapped;
        Assert.Null(s.Handle(new VhostUserMessage(VhostUserRequest.ResetDevice, 0, [])));
        Assert.Equal(0, s.Session.Memory.Count);
        Assert.Equal(mapped, s.Platform.Unmapped); // the regions are gone: nothing pinned them any more
        Assert.Equal(0UL, s.Session.AckedFeatures);
        Assert.Equal(0, s.Platform.Outstanding); // kicks, calls and errs closed
        Assert.Equal(0, s.Model.Outputs & 2); // the device reset its lines (rule D17)
        chip.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());

        // A new driver on the same session.
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0, out mem));
        var t2 = new InProcessVhostTransport(s.Session, s.Platform, mem!);
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t2, mem!, out chip, out _));
        Assert.Equal(RrStatus.Ok, chip!.DirectionOutput(1, true));
        Assert.Equal(2, s.Model.Outputs & 2);
        chip.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // GET_VRING_BASE of a ring that does not exist cannot be answered: the session ends.
    [Fact]
    public void UnanswerableRequests_EndTheSession()
    {
        using var s = new Stack();
        s.Handle(VhostUserMessage.WithState(VhostUserRequest.GetVringBase, 2, 0), expectDisconnect: true);
        s.Handle(new VhostUserMessage(VhostUserRequest.GetVringBase, 0, new byte[3]), expectDisconnect: true);
        s.Handle(new VhostUserMessage(VhostUserRequest.GetInflightFd, 0, new byte[24]), expectDisconnect: true);
        // An explicit u64 reply that was never negotiated: answered with failure, the session goes on.
        VhostUserMessage? r = s.Handle(new VhostUserMessage(VhostUserRequest.IotlbMsg, 0, new byte[32]));
        Assert.True(r!.TryReadU64(out ulong v) && v != 0);
    }

    // Descriptors: a missing one, an extra one, one of the wrong kind - refused, and closed.
    [Fact]
    public void Descriptors_MissingExtraOrWrongKind_AreRefusedAndClosed()
    {
        using var s = new Stack();
        s.ExpectAck(new VhostUserMessage(VhostUserRequest.SetOwner, 0, [], [s.Platform.OtherFd()]), false);
        s.ExpectAck(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, 0), false); // no fd, no NOFD flag
        s.ExpectAck(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, 0x100, fds: [s.Platform.OtherFd()]), false); // NOFD with an fd
        s.ExpectAck(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, 1, fds: [s.Platform.NotifierFd(), s.Platform.NotifierFd()]), false);
        var region = new byte[40];
        VhostUserMessage.WriteHost64(region, 16, 4096);
        s.ExpectAck(new VhostUserMessage(VhostUserRequest.AddMemReg, 0, region, [s.Platform.OtherFd()]), false); // not memory
        s.ExpectAck(new VhostUserMessage(VhostUserRequest.AddMemReg, 0, region), false); // no fd
        s.ExpectAck(new VhostUserMessage(VhostUserRequest.RemMemReg, 0, region, [s.Platform.OtherFd()]), false); // no such region; the compat fd is closed
        s.ExpectAck(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, 0x100), true); // polling: fine
        s.ExpectAck(VhostUserMessage.WithU64(VhostUserRequest.SetVringErr, 0, fds: [s.Platform.NotifierFd()]), true);
        Assert.Equal(1, s.Platform.Outstanding); // only the err notifier is kept
    }
}

/// <summary>Random requests against a session with a fake OS: no exception, every descriptor closed exactly once.</summary>
public sealed unsafe class VhostUserSessionFuzzTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    [Trait("Category", "Stress")]
    public void RandomRequests_NeverThrow_CloseEveryDescriptorOnce()
    {
        var model = new RawPl061Model();
        Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(model, out Driver? pl061, out _));
        Assert.Equal(RrStatus.Ok, VirtioGpioDevice.Create(pl061!, null, true, out VirtioGpioDevice? device, out _));
        var rng = new Random(1729);
        byte* block = (byte*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(1 << 16);
        long messages = 0, sessions = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            while (sessions < 200 || StressConfig.Continue(clock, StressConfig.Extended, sessions >= 200))
            {
                sessions++;
                var platform = new FakeVhostPlatform();
                using (var session = new VhostUserSession(new VhostUserGpioBackend(device!), platform))
                {
                    if (sessions % 2 == 0)
                    {
                        // Half the sessions start both rings for real first: the device then serves
                        // (random) ring memory while the requests below change memory and rings.
                        StartRings(session, platform, block);
                    }

                    for (int i = 0; i < 50; i++, messages++)
                    {
                        if (rng.Next(4) == 0)
                        {
                            rng.NextBytes(new Span<byte>(block + rng.Next(0, 1 << 15), 64)); // a hostile driver scribbles on the rings
                        }

                        var req = (VhostUserRequest)rng.Next(0, 45);
                        if (req is VhostUserRequest.GetVringBase or VhostUserRequest.GetInflightFd or VhostUserRequest.PostcopyAdvise or VhostUserRequest.CreateCryptoSession
                            && rng.Next(8) != 0)
                        {
                            req = VhostUserRequest.SetVringEnable; // requests that end the session when malformed: keep them rare
                        }

                        byte[] payload = new byte[rng.Next(5) switch { 0 => 0, 1 => 8, 2 => 40, 3 => 8 + 32, _ => rng.Next(0, 300) }];
                        rng.NextBytes(payload);
                        if (payload.Length >= 8 && rng.Next(2) == 0)
                        {
                            VhostUserMessage.WriteHost32(payload, 0, (uint)rng.Next(0, 3));
                            VhostUserMessage.WriteHost32(payload, 4, (uint)(1 << rng.Next(0, 10)));
                        }

                        if (payload.Length == 40 && rng.Next(2) == 0)
                        {
                            // A plausible region or ring address inside the fake memory.
                            VhostUserMessage.WriteHost64(payload, 8, (ulong)rng.Next(0, 1 << 16));
                            VhostUserMessage.WriteHost64(payload, 16, (ulong)rng.Next(1, 1 << 16));
                        }

                        var fds = new System.Collections.Generic.List<int>();
                        for (int k = rng.Next(0, 3); k > 0; k--)
                        {
                            fds.Add(rng.Next(3) switch { 0 => platform.MemoryFd(block, 1 << 16), 1 => platform.NotifierFd(), _ => platform.OtherFd() });
                        }

                        uint flags = rng.Next(2) == 0 ? VhostUser.NeedReplyFlag : 0;
                        session.Handle(new VhostUserMessage(req, flags, payload, fds), out bool disconnect);
                        if (disconnect)
                        {
                            break;
                        }

                        if (rng.Next(8) == 0)
                        {
                            session.OnKick(rng.Next(0, 2));
                        }
                    }
                }

                Assert.Empty(platform.Problems);
                Assert.Equal(0, platform.Outstanding);
                Assert.Equal(platform.Mapped, platform.Unmapped);
            }
        }
        finally
        {
            System.Runtime.InteropServices.NativeMemory.Free(block);
            device!.Dispose();
            pl061!.Destroy();
        }

        output.WriteLine($"{sessions} sessions, {messages} random requests");
    }

    private static void StartRings(VhostUserSession s, FakeVhostPlatform platform, byte* block)
    {
        const ulong user = 0x5000_0000;
        s.Handle(VhostUserMessage.WithU64(VhostUserRequest.SetFeatures, (1UL << 32) | (1UL << 29) | 1 | VhostUser.F_PROTOCOL_FEATURES), out _);
        var table = new byte[8 + 32];
        VhostUserMessage.WriteHost32(table, 0, 1);
        VhostUserMessage.WriteHost64(table, 16, 1 << 16);
        VhostUserMessage.WriteHost64(table, 24, user);
        s.Handle(new VhostUserMessage(VhostUserRequest.SetMemTable, 0, table, [platform.MemoryFd(block, 1 << 16)]), out _);
        for (uint q = 0; q < 2; q++)
        {
            ulong ring = user + (q * 0x4000);
            s.Handle(VhostUserMessage.WithState(VhostUserRequest.SetVringNum, q, 64), out _);
            var a = new byte[40];
            VhostUserMessage.WriteHost32(a, 0, q);
            VhostUserMessage.WriteHost64(a, 8, ring);
            VhostUserMessage.WriteHost64(a, 16, ring + 0x2000);
            VhostUserMessage.WriteHost64(a, 24, ring + 0x1000);
            s.Handle(new VhostUserMessage(VhostUserRequest.SetVringAddr, 0, a), out _);
            s.Handle(VhostUserMessage.WithU64(VhostUserRequest.SetVringKick, q, fds: [platform.NotifierFd()]), out _);
            s.Handle(VhostUserMessage.WithU64(VhostUserRequest.SetVringCall, q, fds: [platform.NotifierFd()]), out _);
            s.Handle(VhostUserMessage.WithState(VhostUserRequest.SetVringEnable, q, 1), out _);
        }

        Assert.True(s.IsRingActive(0) && s.IsRingActive(1));
    }
}
