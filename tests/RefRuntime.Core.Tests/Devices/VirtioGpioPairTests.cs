using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Io;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Virtio;
using Xunit;
using Xunit.Abstractions;
using static RefRuntime.Core.Devices.VirtioGpio.VirtioGpioConst;
using Driver = RefRuntime.Core.Devices.Pl061.Pl061Driver<RefRuntime.Core.Io.RawDeviceBackend>;

namespace RefRuntime.Core.Tests.Devices;

/// <summary>
/// The driver pair end to end: consumer code on the IGpioChip interface over the PL061 driver
/// directly and over virtio-gpio → ring → device → PL061 driver → MMIO → model; interrupts
/// across the ring; hot-unplug; a device that stops answering or answers wrongly.
/// </summary>
public sealed class VirtioGpioPairTests(ITestOutputHelper output)
{
    /// <summary>The whole stack: model, PL061 driver, virtio-gpio device, front end.</summary>
    private sealed class Pair : IDisposable
    {
        public readonly RawPl061Model Model = new();
        public readonly Driver Pl061;
        public readonly VirtioGpioDevice Device;
        public readonly GuestMemory Memory;
        public readonly VirtioGpioChip Chip;
        private readonly WatchedTransport _transport;

        public Pair(bool irq = true)
        {
            Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(Model, out Driver? d, out _));
            Pl061 = d!;
            Assert.Equal(RrStatus.Ok, VirtioGpioDevice.Create(Pl061, VirtioGpioFixture.SpecNames, irq, out VirtioGpioDevice? dev, out _));
            Device = dev!;
            Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem));
            Memory = mem!;
            _transport = new WatchedTransport(Device);
            Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(_transport, Memory, out VirtioGpioChip? chip, out string? error));
            Assert.Null(error);
            Chip = chip!;
        }

        /// <summary>The eventq's used index (every buffer the device has returned, VALID or INVALID).</summary>
        public unsafe ushort EventqUsedIdx
        {
            get
            {
                Assert.True(Memory.TryTranslate(_transport.EventqRings!.Value.UsedGpa + 2, 2, out byte* p));
                return Volatile.Read(ref *(ushort*)p);
            }
        }

        public void Dispose()
        {
            Chip.Dispose();
            Device.Dispose();
            Assert.Equal(RrStatus.Ok, Memory.Destroy()); // no queue left attached
            Pl061.Destroy();
        }
    }

    private static Driver DirectPl061(RawPl061Model model)
    {
        Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(model, out Driver? d, out _));
        return d!;
    }

    /// <summary>Consumer code written against IGpioChip only; returns what it observed.</summary>
    private static List<string> Consumer(IGpioChip chip, RawPl061Model model)
    {
        var seen = new List<string>();
        seen.Add($"lines {chip.LineCount}");
        seen.Add($"out0 {chip.DirectionOutput(0, true)} pins {model.Outputs & 1}");
        seen.Add($"set0 {chip.Set(0, false)} pins {model.Outputs & 1}");
        seen.Add($"dir0 {chip.GetDirection(0, out RawGpioDirection d0)} {d0}");
        seen.Add($"get0 {chip.Get(0, out bool v0)} {v0}");
        seen.Add($"in1 {chip.DirectionInput(1)}");
        model.SetInput(1, true);
        seen.Add($"get1 {chip.Get(1, out bool v1)} {v1}");
        seen.Add($"dir1 {chip.GetDirection(1, out RawGpioDirection d1)} {d1}");
        using var fired = new SemaphoreSlim(0);
        int firedLine = -1;
        seen.Add($"in2 {chip.DirectionInput(2)}");
        seen.Add($"type2 {chip.SetIrqType(2, RawGpioIrqType.EdgeRising)}");
        seen.Add($"handler2 {chip.SetIrqHandler(2, n => { firedLine = n; fired.Release(); })}");
        model.SetInput(2, true);
        seen.Add($"irq {fired.Wait(60_000)} line {firedLine}");
        model.SetInput(2, false);
        seen.Add($"falling ignored {!fired.Wait(100)}");
        seen.Add($"unsubscribe {chip.SetIrqHandler(2, null)}");
        model.SetInput(2, true);
        seen.Add($"after unsubscribe {!fired.Wait(100)}");
        seen.Add($"bad line {chip.Get(9, out _)} {chip.Set(-1, true)}");
        seen.Add($"bad type {chip.SetIrqType(3, RawGpioIrqType.LevelHigh | RawGpioIrqType.LevelLow)}");
        return seen;
    }

    // The same consumer, unchanged, over both paths: identical observations.
    [Fact]
    public void Consumer_SameResultsDirectAndThroughTheRing()
    {
        var directModel = new RawPl061Model();
        Driver direct = DirectPl061(directModel);
        List<string> viaDirect = Consumer(direct, directModel);
        direct.Destroy();

        using var pair = new Pair();
        List<string> viaRing = Consumer(pair.Chip, pair.Model);
        Assert.Equal(viaDirect, viaRing);
        Assert.Contains("irq True line 2", viaRing);
        Assert.Contains("pins 1", viaRing[1]);
        Assert.Equal(0, pair.Device.Malformed);
    }

    [Fact]
    public void Probe_ReadsNames()
    {
        using var pair = new Pair();
        Assert.Equal("led-red", pair.Chip.LineName(0));
        Assert.Null(pair.Chip.LineName(1));
        Assert.Equal("button", pair.Chip.LineName(2));
        Assert.Null(pair.Chip.LineName(8));
        Assert.True(pair.Chip.HasInterrupts);
    }

    // Every trigger type across the ring, and a second event after the handler ran (requeue).
    [Theory]
    [InlineData(RawGpioIrqType.EdgeRising, false, true)]
    [InlineData(RawGpioIrqType.EdgeFalling, true, false)]
    [InlineData(RawGpioIrqType.EdgeBoth, true, false)]
    [InlineData(RawGpioIrqType.LevelHigh, false, true)]
    [InlineData(RawGpioIrqType.LevelLow, true, false)]
    public void Interrupt_EveryType_AcrossTheRing(RawGpioIrqType type, bool idle, bool active)
    {
        using var pair = new Pair();
        pair.Model.SetInput(4, idle);
        using var fired = new SemaphoreSlim(0);
        bool level = type is RawGpioIrqType.LevelHigh or RawGpioIrqType.LevelLow;
        Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(4));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(4, type));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(4, n =>
        {
            if (level)
            {
                pair.Model.SetInput(n, idle); // a level source must be quietened by the handler
            }

            fired.Release();
        }));
        for (int round = 0; round < 3; round++)
        {
            Assert.False(fired.Wait(0));
            pair.Model.SetInput(4, active);
            Assert.True(fired.Wait(60_000), $"round {round}: no interrupt");
            pair.Model.SetInput(4, idle);
            if (type == RawGpioIrqType.EdgeBoth)
            {
                Assert.True(fired.Wait(60_000), $"round {round}: no interrupt for the other edge");
            }
        }

        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(4, null));
        Assert.False(fired.Wait(100));
    }

    [Fact]
    public void Interrupt_ChangeTypeWhileEnabled()
    {
        using var pair = new Pair();
        using var fired = new SemaphoreSlim(0);
        Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(5));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(5, _ => fired.Release()));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, RawGpioIrqType.EdgeFalling)); // NONE, then falling
        pair.Model.SetInput(5, true);
        Assert.False(fired.Wait(150));
        pair.Model.SetInput(5, false);
        Assert.True(fired.Wait(60_000));
    }

    [Fact]
    public void Multiple_PipelinedAcrossLines()
    {
        using var pair = new Pair();
        int[] lines = [0, 1, 2, 3];
        foreach (int l in lines)
        {
            Assert.Equal(RrStatus.Ok, pair.Chip.DirectionOutput(l, false));
        }

        Assert.Equal(RrStatus.Ok, pair.Chip.SetMultiple(lines, [true, false, true, true]));
        Assert.Equal(0b1101, pair.Model.Outputs & 0xF);
        Span<bool> values = stackalloc bool[4];
        Assert.Equal(RrStatus.Ok, pair.Chip.GetMultiple(lines, values));
        Assert.Equal([true, false, true, true], values.ToArray());
        Assert.Equal(RrStatus.InvalidArgument, pair.Chip.GetMultiple([1, 1], values));
        Assert.Equal(RrStatus.InvalidArgument, pair.Chip.GetMultiple([1, 8], values));
    }

    // ERR from the device (a rule, not a failure) is InvalidArgument at the chip interface.
    [Fact]
    public void DeviceErr_IsInvalidArgument()
    {
        using var pair = new Pair();
        Assert.Equal(RrStatus.InvalidArgument, pair.Chip.Get(6, out _));          // D10: line never requested
        Assert.Equal(RrStatus.InvalidArgument, pair.Chip.GetDirection(6, out _)); // NONE is not a direction
        Assert.Equal(RrStatus.InvalidArgument, pair.Chip.SetIrqHandler(6, _ => { })); // no trigger type set
        Assert.Equal(RrStatus.Ok, pair.Chip.DirectionOutput(6, true));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(6, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.InvalidArgument, pair.Chip.SetIrqHandler(6, _ => { })); // rule 7: not on an output
        Assert.Equal(RrStatus.Ok, pair.Chip.Free(6));
        Assert.Equal(RrStatus.InvalidArgument, pair.Chip.Get(6, out _));
    }

    // Hot-unplug through the pair: consumers racing the removal get Ok or NoDevice, never hang;
    // afterwards every call is NoDevice; teardown detaches every queue.
    [Fact]
    [Trait("Category", "Stress")]
    public void HotUnplug_ConsumersGetNoDevice_NoHang()
    {
        using var pair = new Pair();
        for (int l = 0; l < 4; l++)
        {
            Assert.Equal(RrStatus.Ok, pair.Chip.DirectionOutput(l, false));
        }

        int other = 0;
        long ok = 0, noDevice = 0;
        var threads = new Thread[3];
        using var removed = new ManualResetEventSlim(false);
        using var allServed = new CountdownEvent(3); // each consumer's first Ok: removal comes after it
        for (int t = 0; t < threads.Length; t++)
        {
            int line = t;
            threads[t] = new Thread(() =>
            {
                var sw = Stopwatch.StartNew();
                bool seenGone = false, served = false;
                for (int i = 0; sw.Elapsed < StressConfig.HangGuard; i++) // ends when it sees the removal
                {
                    RrStatus s = (i & 1) == 0 ? pair.Chip.Set(line, (i & 2) != 0) : pair.Chip.Get(line, out _);
                    if (s == RrStatus.Ok)
                    {
                        Interlocked.Increment(ref ok);
                        if (!served)
                        {
                            served = true;
                            allServed.Signal();
                        }

                        if (seenGone)
                        {
                            Interlocked.Increment(ref other); // Ok after NoDevice: wrong
                        }
                    }
                    else if (s == RrStatus.NoDevice)
                    {
                        Interlocked.Increment(ref noDevice);
                        seenGone = true;
                        if (removed.IsSet && i > 0)
                        {
                            return;
                        }
                    }
                    else
                    {
                        Interlocked.Increment(ref other);
                    }
                }
            });
            threads[t].Start();
        }

        Assert.True(allServed.Wait(StressConfig.HangGuard), "a consumer never got an answer before the removal");
        Thread.Sleep(50); // calls in flight while the device goes
        Assert.Equal(RrStatus.Ok, pair.Pl061.Remove());
        removed.Set();
        foreach (Thread t in threads)
        {
            Assert.True(t.Join(StressConfig.HangGuard), "a consumer hung after the removal");
        }

        Assert.Equal(0, other);
        Assert.True(ok > 0);
        Assert.True(noDevice >= threads.Length);
        Assert.Equal(RrStatus.NoDevice, pair.Chip.Get(0, out _));
        Assert.Equal(RrStatus.NoDevice, pair.Chip.DirectionInput(1));
        Assert.NotNull(pair.Chip.Failure);
    }

    // A transport whose device never serves: the test answers by hand, or not at all.
    private sealed class ScriptedTransport : IVirtioGpioTransport
    {
        public VirtqDevice? Requestq;
        public volatile bool Gone;

        public ulong DeviceFeatures => VIRTIO_F_VERSION_1 | (ulong)VirtqFeatures.EventIdx;

        public bool NeedsReset => Gone;

        public Doorbell Kick { get; } = new(10);

        public uint ReadConfig(int offset, int width) => offset == 0 ? 8u : 0u;

        public RrStatus Start(ulong features, GuestMemory memory, VirtqRings requestq, VirtqRings? eventq, Doorbell call, out string? error) =>
            VirtqDevice.Create(memory, requestq, VirtqFeatures.EventIdx, MalformedChainPolicy.BreakQueue, out Requestq, out error);

        public void Reset() => Requestq?.Destroy();
    }

    // No timeout on a live device, but one that reports it needs a reset wakes the waiter.
    [Fact]
    public void SilentDevice_ThenGone_WaiterGetsNoDevice()
    {
        var t = new ScriptedTransport();
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem));
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t, mem!, out VirtioGpioChip? chip, out _));
        Assert.False(chip!.HasInterrupts);
        RrStatus result = RrStatus.Ok;
        var waiter = new Thread(() => result = chip.Get(3, out _));
        waiter.Start();
        Assert.False(waiter.Join(300)); // waiting, as Linux does, for a device that is alive
        t.Gone = true;
        Assert.True(waiter.Join(60_000));
        Assert.Equal(RrStatus.NoDevice, result);
        Assert.Equal(RrStatus.NoDevice, chip.Get(3, out _)); // the slot is never reused
        chip.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // A device that answers with the wrong used length or a bad status: InvalidArgument, not
    // trusted; one that returns an id it was never given: the queue breaks, NoDevice.
    [Fact]
    public void WrongAnswers_NotTrusted()
    {
        var t = new ScriptedTransport();
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem));
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t, mem!, out VirtioGpioChip? chip, out _));
        RrStatus result = RrStatus.Ok;
        bool value = false;

        void Answer(uint len, byte status, byte val)
        {
            var sw = Stopwatch.StartNew();
            RrStatus s;
            VirtqChain c;
            while ((s = t.Requestq!.TryPop(out c)) == RrStatus.NotFound && sw.Elapsed < StressConfig.HangGuard)
            {
                Thread.Yield();
            }

            Assert.Equal(RrStatus.Ok, s);
            t.Requestq.Scatter([status, val]);
            Assert.Equal(RrStatus.Ok, t.Requestq.AddUsed(c.Head, len));
            t.Requestq.PublishUsed();
        }

        var w = new Thread(() => result = chip!.Get(2, out value));
        w.Start();
        Answer(1, VIRTIO_GPIO_STATUS_OK, 1); // used length 1 instead of 2
        Assert.True(w.Join(60_000));
        Assert.Equal(RrStatus.InvalidArgument, result);

        w = new Thread(() => result = chip!.Get(2, out value));
        w.Start();
        Answer(2, 0x7F, 1); // a status that is neither OK nor ERR
        Assert.True(w.Join(60_000));
        Assert.Equal(RrStatus.InvalidArgument, result);

        w = new Thread(() => result = chip!.Get(2, out value));
        w.Start();
        Answer(2, VIRTIO_GPIO_STATUS_OK, 1);
        Assert.True(w.Join(60_000));
        Assert.Equal((RrStatus.Ok, true), (result, value));

        chip!.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // The real device seen through a transport that remembers where the eventq is.
    private sealed class WatchedTransport(VirtioGpioDevice inner) : IVirtioGpioTransport
    {
        public VirtqRings? EventqRings;

        public ulong DeviceFeatures => inner.DeviceFeatures;

        public bool NeedsReset => inner.NeedsReset;

        public Doorbell Kick => inner.Kick;

        public uint ReadConfig(int offset, int width) => inner.ReadConfig(offset, width);

        public RrStatus Start(ulong features, GuestMemory memory, VirtqRings requestq, VirtqRings? eventq, Doorbell call, out string? error)
        {
            EventqRings = eventq;
            return inner.Start(features, memory, requestq, eventq, call, out error);
        }

        public void Reset() => inner.Reset();
    }

    // A device with both queues and any names blob, played step by step by the test.
    private sealed unsafe class ScriptedIrqTransport(int ngpio, byte[] names) : IVirtioGpioTransport
    {
        private volatile VirtqDevice? _requestq;
        private volatile VirtqDevice? _eventq;
        private GuestMemory? _memory;
        private VirtqRings _eventqRings;
        private Doorbell? _call;

        public ulong DeviceFeatures => VIRTIO_F_VERSION_1 | (ulong)VirtqFeatures.EventIdx | VIRTIO_GPIO_F_IRQ;

        public bool NeedsReset => false;

        public Doorbell Kick { get; } = new(10);

        public VirtqDevice Requestq => Until(() => _requestq);

        public VirtqDevice Eventq => Until(() => _eventq);

        public uint ReadConfig(int offset, int width) => (offset, width) switch
        {
            (0, 2) => (uint)ngpio,
            (4, 4) => (uint)names.Length,
            _ => 0,
        };

        public RrStatus Start(ulong features, GuestMemory memory, VirtqRings requestq, VirtqRings? eventq, Doorbell call, out string? error)
        {
            Assert.NotNull(eventq);
            _memory = memory;
            _eventqRings = eventq!.Value;
            _call = call;
            Assert.Equal(RrStatus.Ok, VirtqDevice.Create(memory, eventq.Value, VirtqFeatures.EventIdx, MalformedChainPolicy.BreakQueue, out VirtqDevice? eq, out error));
            _eventq = eq;
            RrStatus s = VirtqDevice.Create(memory, requestq, VirtqFeatures.EventIdx, MalformedChainPolicy.BreakQueue, out VirtqDevice? rq, out error);
            _requestq = rq;
            return s;
        }

        public void Reset()
        {
            _requestq?.Destroy();
            _eventq?.Destroy();
        }

        /// <summary>The driver's used_event on the eventq: how far it has collected when it last went idle.</summary>
        public ushort EventqUsedEvent
        {
            get
            {
                Assert.True(_memory!.TryTranslate(_eventqRings.AvailGpa + (ulong)VirtqLayout.UsedEventOffset(_eventqRings.Size), 2, out byte* p));
                return Volatile.Read(ref *(ushort*)p);
            }
        }

        /// <summary>Waits (hang guard 10 s) for the next request and decodes it.</summary>
        public (ushort Head, VirtioGpioRequest Request) TakeRequest()
        {
            VirtqChain c = Pop(Requestq);
            Span<byte> b = stackalloc byte[RequestSize];
            Assert.Equal(RequestSize, Requestq.Gather(b));
            return (c.Head, VirtioGpioRequest.Read(b));
        }

        /// <summary>Answers a request taken with <see cref="TakeRequest"/> (it must be the last one taken).</summary>
        public void Answer(ushort head, params byte[] response)
        {
            Assert.Equal(response.Length, Requestq.Scatter(response));
            Assert.Equal(RrStatus.Ok, Requestq.AddUsed(head, (uint)response.Length));
            Requestq.PublishUsed();
            _call!.Ring();
        }

        /// <summary>Waits (hang guard 10 s) for the next eventq buffer; returns its head and line.</summary>
        public (ushort Head, int Line) TakeEvent()
        {
            VirtqChain c = Pop(Eventq);
            Assert.Equal((1, 1, 2u, 1u), (c.Readable, c.Writable, c.ReadableBytes, c.WritableBytes));
            Span<byte> b = stackalloc byte[2];
            Assert.Equal(2, Eventq.Gather(b));
            return (c.Head, b[0] | (b[1] << 8));
        }

        /// <summary>Returns the eventq buffer taken last with <paramref name="status"/>.</summary>
        public void ReturnEvent(ushort head, byte status)
        {
            Assert.Equal(1, Eventq.Scatter([status]));
            Assert.Equal(RrStatus.Ok, Eventq.AddUsed(head, 1));
            Eventq.PublishUsed();
            _call!.Ring();
        }

        private static VirtqChain Pop(VirtqDevice q)
        {
            var sw = Stopwatch.StartNew();
            RrStatus s;
            VirtqChain c;
            while ((s = q.TryPop(out c)) == RrStatus.NotFound && sw.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Yield();
            }

            Assert.Equal(RrStatus.Ok, s);
            return c;
        }

        private static T Until<T>(Func<T?> get)
            where T : class
        {
            var sw = Stopwatch.StartNew();
            T? v;
            while ((v = get()) is null && sw.Elapsed < TimeSpan.FromSeconds(10))
            {
                Thread.Yield();
            }

            return v ?? throw new TimeoutException("the front end did not start the device within 10 s");
        }
    }

    // Line names parsed as Linux's virtio_gpio_get_names: the blob's last byte is taken as NUL
    // whatever it is, and a walk that runs out before ngpio names leaves every line unnamed.
    [Theory]
    [InlineData(3, new byte[] { 0x61, 0x00, 0x62 }, new[] { "", "", "" })]               // "a", "", then nothing left: too short
    [InlineData(1, new byte[] { 0x61, 0x62 }, new[] { "a" })]                            // last byte forced to NUL
    [InlineData(2, new byte[] { 0x61, 0x62, 0x63 }, new[] { "", "" })]                   // "ab", then nothing left
    [InlineData(3, new byte[] { 0x61, 0x00, 0x00, 0x62 }, new[] { "a", "", "" })]        // "a", "", "" (forced NUL)
    [InlineData(2, new byte[] { 0x61, 0x00, 0x62, 0x00, 0x63, 0x00 }, new[] { "a", "b" })] // extra names ignored
    [InlineData(2, new byte[] { 0x00, 0x62, 0x00 }, new[] { "", "b" })]
    public void Probe_NamesParsedAsLinux(int ngpio, byte[] blob, string[] expected)
    {
        var t = new ScriptedIrqTransport(ngpio, blob);
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem));
        VirtioGpioChip? chip = null;
        var probe = Background<RrStatus>.Run(() => VirtioGpioChip.Probe(t, mem!, out chip, out _));
        (ushort head, VirtioGpioRequest req) = t.TakeRequest();
        Assert.Equal(VIRTIO_GPIO_MSG_GET_NAMES, req.Type);
        t.Answer(head, [VIRTIO_GPIO_STATUS_OK, .. blob]);
        Assert.True(probe.Wait(TimeSpan.FromSeconds(10)), "probe hung");
        Assert.Equal(RrStatus.Ok, probe.Result);
        for (int line = 0; line < ngpio; line++)
        {
            Assert.Equal(expected[line] == "" ? null : expected[line], chip!.LineName(line));
        }

        chip!.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // Changing the trigger of an enabled interrupt is NONE, then the new type. The device returns
    // the line's buffer INVALID at the NONE step; the front end must not queue it again until the
    // new type is acknowledged (virtio-gpio: enable before unmask), or the device, which has the
    // line disabled, returns it INVALID at once, again and again.
    [Fact]
    public void Interrupt_ChangeTypeWhileEnabled_BufferQueuedOnlyAfterNewTypeAcked()
    {
        var t = new ScriptedIrqTransport(8, []);
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem));
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t, mem!, out VirtioGpioChip? chip, out _));
        Assert.Equal(RrStatus.Ok, chip!.SetIrqType(5, RawGpioIrqType.EdgeRising)); // stored: not enabled yet

        // Enable: SET_IRQ_TYPE rising, acknowledged, then the eventq buffer.
        var enable = Background<RrStatus>.Run(() => chip.SetIrqHandler(5, _ => { }));
        (ushort head, VirtioGpioRequest req) = t.TakeRequest();
        Assert.Equal(new VirtioGpioRequest(VIRTIO_GPIO_MSG_IRQ_TYPE, 5, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), req);
        t.Answer(head, VIRTIO_GPIO_STATUS_OK, 0);
        Assert.True(enable.Wait(TimeSpan.FromSeconds(10)));
        Assert.Equal(RrStatus.Ok, enable.Result);
        (ushort eventHead, int line) = t.TakeEvent();
        Assert.Equal(5, line);

        // Change to falling: NONE first; as the device, return the held buffer INVALID before
        // answering (rule D13).
        var change = Background<RrStatus>.Run(() => chip.SetIrqType(5, RawGpioIrqType.EdgeFalling));
        (head, req) = t.TakeRequest();
        Assert.Equal(new VirtioGpioRequest(VIRTIO_GPIO_MSG_IRQ_TYPE, 5, VIRTIO_GPIO_IRQ_TYPE_NONE), req);
        t.ReturnEvent(eventHead, VIRTIO_GPIO_IRQ_STATUS_INVALID);
        t.Answer(head, VIRTIO_GPIO_STATUS_OK, 0);
        (head, req) = t.TakeRequest();
        Assert.Equal(new VirtioGpioRequest(VIRTIO_GPIO_MSG_IRQ_TYPE, 5, VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING), req);

        // The new type is not acknowledged yet. Once the front end has collected the INVALID
        // buffer and gone idle (its used_event moves past it), the buffer must not be back.
        var sw = Stopwatch.StartNew();
        while (t.EventqUsedEvent != 1 && !t.Eventq.HasAvailable && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Yield();
        }

        Assert.Equal(1, t.EventqUsedEvent);
        Assert.False(t.Eventq.HasAvailable, "the eventq buffer was queued before the new type was acknowledged");

        // Acknowledged: now the buffer comes back, once.
        t.Answer(head, VIRTIO_GPIO_STATUS_OK, 0);
        Assert.True(change.Wait(TimeSpan.FromSeconds(10)));
        Assert.Equal(RrStatus.Ok, change.Result);
        (_, line) = t.TakeEvent();
        Assert.Equal(5, line);
        Assert.False(t.Eventq.HasAvailable);
        chip.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // A device that refuses the new type leaves the line disabled (it answered NONE): the buffer
    // stays with the front end instead of bouncing off the disabled line for ever, and setting the
    // handler again re-enables the line with its old type.
    [Fact]
    public void Interrupt_ChangeTypeRefused_LineStaysDisabledUntilReenabled()
    {
        var t = new ScriptedIrqTransport(8, []);
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem));
        Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(t, mem!, out VirtioGpioChip? chip, out _));
        Assert.Equal(RrStatus.Ok, chip!.SetIrqType(2, RawGpioIrqType.LevelHigh));
        var call = Background<RrStatus>.Run(() => chip.SetIrqHandler(2, _ => { }));
        (ushort head, _) = t.TakeRequest();
        t.Answer(head, VIRTIO_GPIO_STATUS_OK, 0);
        Assert.True(call.Wait(TimeSpan.FromSeconds(10)));
        (ushort eventHead, _) = t.TakeEvent();

        call = Background<RrStatus>.Run(() => chip.SetIrqType(2, RawGpioIrqType.EdgeBoth));
        (head, VirtioGpioRequest req) = t.TakeRequest();
        Assert.Equal(VIRTIO_GPIO_IRQ_TYPE_NONE, req.Value);
        t.ReturnEvent(eventHead, VIRTIO_GPIO_IRQ_STATUS_INVALID);
        t.Answer(head, VIRTIO_GPIO_STATUS_OK, 0);
        (head, req) = t.TakeRequest();
        Assert.Equal(VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH, req.Value);
        t.Answer(head, VIRTIO_GPIO_STATUS_ERR, 0);
        Assert.True(call.Wait(TimeSpan.FromSeconds(10)));
        Assert.Equal(RrStatus.InvalidArgument, call.Result);

        var sw = Stopwatch.StartNew();
        while (t.EventqUsedEvent != 1 && !t.Eventq.HasAvailable && sw.Elapsed < TimeSpan.FromSeconds(10))
        {
            Thread.Yield();
        }

        Assert.Equal(1, t.EventqUsedEvent);
        Assert.False(t.Eventq.HasAvailable, "the eventq buffer was queued for a line the device has disabled");

        call = Background<RrStatus>.Run(() => chip.SetIrqHandler(2, _ => { }));
        (head, req) = t.TakeRequest();
        Assert.Equal(new VirtioGpioRequest(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH), req);
        t.Answer(head, VIRTIO_GPIO_STATUS_OK, 0);
        Assert.True(call.Wait(TimeSpan.FromSeconds(10)));
        Assert.Equal(RrStatus.Ok, call.Result);
        Assert.Equal(2, t.TakeEvent().Line);
        chip.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // The same through the real device: one type change moves the eventq used index by exactly 1
    // (the INVALID return of the NONE step), and the first event of the new type by one more.
    [Fact]
    public void Interrupt_ChangeTypeWhileEnabled_UsedIndexMovesOnce()
    {
        using var pair = new Pair();
        using var fired = new SemaphoreSlim(0);
        Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(5));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(5, _ => fired.Release()));
        ushort before = pair.EventqUsedIdx;
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, RawGpioIrqType.EdgeFalling));
        Assert.Equal(1, (ushort)(pair.EventqUsedIdx - before));
        pair.Model.SetInput(5, true);
        pair.Model.SetInput(5, false);
        Assert.True(fired.Wait(10_000), "no interrupt for the falling edge");
        Assert.Equal(2, (ushort)(pair.EventqUsedIdx - before));
    }

    // Two consumers on their own lines and interrupts on a third, all at once, for a while.
    [Fact]
    [Trait("Category", "Stress")]
    public void Concurrent_ConsumersAndInterrupts()
    {
        using var pair = new Pair();
        TimeSpan duration = StressConfig.Duration(1.0);
        long irqs = 0, errors = 0, ops = 0;
        Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(7));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(7, RawGpioIrqType.EdgeBoth));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(7, _ => Interlocked.Increment(ref irqs)));
        var threads = new List<Thread>();
        for (int l = 0; l < 2; l++)
        {
            int line = l;
            threads.Add(new Thread(() =>
            {
                var sw = Stopwatch.StartNew();
                bool v = false;
                long mine = 0;
                while (StressConfig.Continue(sw, duration, mine >= 10))
                {
                    mine++;
                    v = !v;
                    if (pair.Chip.DirectionOutput(line, v) != RrStatus.Ok || pair.Chip.Get(line, out bool got) != RrStatus.Ok || got != v)
                    {
                        Interlocked.Increment(ref errors);
                    }

                    Interlocked.Increment(ref ops);
                }
            }));
        }

        threads.Add(new Thread(() =>
        {
            var sw = Stopwatch.StartNew();
            bool level = false;
            while (StressConfig.Continue(sw, duration, Volatile.Read(ref irqs) > 0))
            {
                level = !level;
                pair.Model.SetInput(7, level);
                Thread.Sleep(1);
            }
        }));
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        output.WriteLine($"operations {ops}, interrupts {irqs}, errors {errors}");
        Assert.Equal(0, errors);
        Assert.True(ops >= 20, $"only {ops} operations"); // each consumer runs until it has 10
        Assert.True(irqs > 0, "no interrupt delivered"); // the toggler runs until one arrives
        Assert.Equal(0, pair.Device.Malformed);
    }

    // A level handler that never quietens its source: the front end disables the line (no more
    // eventq buffer for it), counts it and reports it once, instead of storming through the ring
    // forever; setting a handler again re-arms it.
    [Fact]
    public void FrontEnd_StuckLevel_DisabledOnce_ReArmedBySetIrqHandler()
    {
        using var pair = new Pair();
        int calls = 0;
        var stderr = new System.IO.StringWriter();
        System.IO.TextWriter previous = Console.Error;
        Console.SetError(TextWriter.Synchronized(stderr));
        RawGpioIrqStats st;
        try
        {
            Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(3));
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(3, RawGpioIrqType.LevelHigh));
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(3, _ => Interlocked.Increment(ref calls)));
            pair.Model.SetInput(3, true);
            var sw = Stopwatch.StartNew();
            while ((pair.Chip.GetIrqStats(3, out st) != RrStatus.Ok || !st.IsDisabled) && sw.Elapsed < TimeSpan.FromSeconds(30))
            {
                Thread.Sleep(1); // hang guard only
            }
        }
        finally
        {
            Console.SetError(previous);
        }

        Assert.True(st.IsDisabled, "the stuck line was never disabled");
        Assert.Equal((1UL, (ulong)VirtioGpioChip.StuckBound), (st.StuckDisables, st.Handled));
        Assert.Equal(VirtioGpioChip.StuckBound, Volatile.Read(ref calls));
        string report = stderr.ToString();
        Assert.Single(report.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("nobody cared", report, StringComparison.Ordinal);
        // The PL061 under the device never saw a stuck line: the device masks level lines itself.
        Assert.Equal(RrStatus.Ok, pair.Pl061.GetIrqStats(3, out RawGpioIrqStats pl061));
        Assert.Equal(0UL, pl061.StuckDisables);

        // Re-armed with a handler that quietens the source: delivered again.
        using var fired = new SemaphoreSlim(0);
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(3, n =>
        {
            pair.Model.SetInput(n, false);
            fired.Release();
        }));
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)), "not delivered after the re-arm");
        Assert.Equal(RrStatus.Ok, pair.Chip.GetIrqStats(3, out st));
        Assert.False(st.IsDisabled);
        Assert.Equal(1UL, st.StuckDisables);
    }

    // disable_irq_nosync on the front end: an edge that arrives while the line is masked is held,
    // not run and not lost: the re-arm delivers it.
    [Fact]
    public void FrontEnd_DisableIrqNoSync_EdgeHeldWhileMasked_DeliveredOnReArm()
    {
        using var pair = new Pair();
        using var fired = new SemaphoreSlim(0);
        Action<int> handler = _ => fired.Release();
        Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(5));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(5, handler));
        Assert.Equal(RrStatus.Ok, pair.Chip.DisableIrqNoSync(5)); // the buffer is with the device
        pair.Model.SetInput(5, true);
        Assert.False(fired.Wait(200)); // masked: held, not run
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(5, handler)); // the same handler: re-arm
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)), "the held edge was lost");
        Assert.Equal(RrStatus.Ok, pair.Chip.GetIrqStats(5, out RawGpioIrqStats st));
        Assert.Equal((1UL, 0UL), (st.Handled, st.Spurious));
        // Later edges flow as before.
        pair.Model.SetInput(5, false);
        pair.Model.SetInput(5, true);
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)));
    }

    // From inside a front-end handler: clearing or replacing a handler and Remove would wait for
    // the interrupt thread itself: WouldDeadlock, nothing changed; Dispose throws.
    [Fact]
    public void FrontEnd_FromInsideHandler_WouldDeadlock_NothingChanged()
    {
        using var pair = new Pair();
        var seen = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var fired = new SemaphoreSlim(0);
        Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(6));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(6, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(6, n =>
        {
            seen.Enqueue($"clear {pair.Chip.SetIrqHandler(n, null)}");
            seen.Enqueue($"replace {pair.Chip.SetIrqHandler(n, _ => { })}");
            seen.Enqueue($"remove {pair.Chip.Remove()}");
            seen.Enqueue($"dispose {Record.Exception(pair.Chip.Dispose)?.GetType().Name}");
            seen.Enqueue($"in call {pair.Chip.InCall}");
            fired.Release();
        }));
        Assert.False(pair.Chip.InCall);
        pair.Model.SetInput(6, true);
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal(new[] { "clear WouldDeadlock", "replace WouldDeadlock", "remove WouldDeadlock", "dispose InvalidOperationException", "in call True" }, seen);
        Assert.Equal(RrStatus.Ok, pair.Chip.Get(6, out bool v)); // still bound
        Assert.True(v);
        pair.Model.SetInput(6, false);
        pair.Model.SetInput(6, true);
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)), "the handler was lost");
    }

    // Tearing the pair down while interrupts flow on edge and level lines and handlers call back
    // into the chip: the front end's unbind (device reset: every PL061 handler cleared, each clear
    // waiting for the device's top half) and the PL061's removal never deadlock.
    [Fact]
    [Trait("Category", "Stress")]
    public void Teardown_WhileInterruptsFlow_NoDeadlock()
    {
        TimeSpan budget = StressConfig.Extended;
        var clock = Stopwatch.StartNew();
        long irqs = 0;
        int round = 0;
        for (; round < 4 || clock.Elapsed < budget; round++)
        {
            var pair = new Pair();
            int stop = 0;
            Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(4));
            Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(5));
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(4, RawGpioIrqType.LevelHigh));
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, RawGpioIrqType.EdgeBoth));
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(4, n =>
            {
                Interlocked.Increment(ref irqs);
                pair.Model.SetInput(n, false); // quieten the level source
            }));
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(5, n =>
            {
                Interlocked.Increment(ref irqs);
                pair.Chip.Get(n, out _); // a request from the interrupt thread
            }));
            var toggler = new Thread(() =>
            {
                bool level = false;
                while (Volatile.Read(ref stop) == 0)
                {
                    level = !level;
                    pair.Model.SetInput(4, true);
                    pair.Model.SetInput(5, level);
                    Thread.Yield();
                }
            });
            toggler.Start();
            Thread.Sleep(10 + (round % 3) * 5);
            bool removeFirst = round % 2 == 0;
            var teardown = Background<bool>.Run(() =>
            {
                if (removeFirst)
                {
                    Assert.Equal(RrStatus.Ok, pair.Pl061.Remove()); // hot-unplug behind the device first
                }

                pair.Dispose();
                return true;
            });
            Assert.True(teardown.Wait(TimeSpan.FromSeconds(30)), $"round {round}: teardown hung");
            Assert.True(teardown.Result);
            Volatile.Write(ref stop, 1);
            Assert.True(toggler.Join(TimeSpan.FromSeconds(30)));
        }

        output.WriteLine($"rounds {round}, interrupts {irqs}");
    }
}
