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
using Driver = RefRuntime.Core.Devices.Pl061.Pl061Driver<RefRuntime.Core.Io.DeviceBackend>;

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
        public readonly Pl061Model Model = new();
        public readonly Driver Pl061;
        public readonly VirtioGpioDevice Device;
        public readonly GuestMemory Memory;
        public readonly VirtioGpioChip Chip;

        public Pair(bool irq = true)
        {
            Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(Model, out Driver? d, out _));
            Pl061 = d!;
            Assert.Equal(RrStatus.Ok, VirtioGpioDevice.Create(Pl061, VirtioGpioFixture.SpecNames, irq, out VirtioGpioDevice? dev, out _));
            Device = dev!;
            Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem));
            Memory = mem!;
            Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(Device, Memory, out VirtioGpioChip? chip, out string? error));
            Assert.Null(error);
            Chip = chip!;
        }

        public void Dispose()
        {
            Chip.Dispose();
            Device.Dispose();
            Assert.Equal(RrStatus.Ok, Memory.Destroy()); // no queue left attached
            Pl061.Destroy();
        }
    }

    private static Driver DirectPl061(Pl061Model model)
    {
        Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(model, out Driver? d, out _));
        return d!;
    }

    /// <summary>Consumer code written against IGpioChip only; returns what it observed.</summary>
    private static List<string> Consumer(IGpioChip chip, Pl061Model model)
    {
        var seen = new List<string>();
        seen.Add($"lines {chip.LineCount}");
        seen.Add($"out0 {chip.DirectionOutput(0, true)} pins {model.Outputs & 1}");
        seen.Add($"set0 {chip.Set(0, false)} pins {model.Outputs & 1}");
        seen.Add($"dir0 {chip.GetDirection(0, out GpioDirection d0)} {d0}");
        seen.Add($"get0 {chip.Get(0, out bool v0)} {v0}");
        seen.Add($"in1 {chip.DirectionInput(1)}");
        model.SetInput(1, true);
        seen.Add($"get1 {chip.Get(1, out bool v1)} {v1}");
        seen.Add($"dir1 {chip.GetDirection(1, out GpioDirection d1)} {d1}");
        using var fired = new SemaphoreSlim(0);
        int firedLine = -1;
        seen.Add($"in2 {chip.DirectionInput(2)}");
        seen.Add($"type2 {chip.SetIrqType(2, GpioIrqType.EdgeRising)}");
        seen.Add($"handler2 {chip.SetIrqHandler(2, n => { firedLine = n; fired.Release(); })}");
        model.SetInput(2, true);
        seen.Add($"irq {fired.Wait(5000)} line {firedLine}");
        model.SetInput(2, false);
        seen.Add($"falling ignored {!fired.Wait(100)}");
        seen.Add($"unsubscribe {chip.SetIrqHandler(2, null)}");
        model.SetInput(2, true);
        seen.Add($"after unsubscribe {!fired.Wait(100)}");
        seen.Add($"bad line {chip.Get(9, out _)} {chip.Set(-1, true)}");
        seen.Add($"bad type {chip.SetIrqType(3, GpioIrqType.LevelHigh | GpioIrqType.LevelLow)}");
        return seen;
    }

    // The same consumer, unchanged, over both paths: identical observations.
    [Fact]
    public void Consumer_SameResultsDirectAndThroughTheRing()
    {
        var directModel = new Pl061Model();
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
    [InlineData(GpioIrqType.EdgeRising, false, true)]
    [InlineData(GpioIrqType.EdgeFalling, true, false)]
    [InlineData(GpioIrqType.EdgeBoth, true, false)]
    [InlineData(GpioIrqType.LevelHigh, false, true)]
    [InlineData(GpioIrqType.LevelLow, true, false)]
    public void Interrupt_EveryType_AcrossTheRing(GpioIrqType type, bool idle, bool active)
    {
        using var pair = new Pair();
        pair.Model.SetInput(4, idle);
        using var fired = new SemaphoreSlim(0);
        bool level = type is GpioIrqType.LevelHigh or GpioIrqType.LevelLow;
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
            Assert.True(fired.Wait(5000), $"round {round}: no interrupt");
            pair.Model.SetInput(4, idle);
            if (type == GpioIrqType.EdgeBoth)
            {
                Assert.True(fired.Wait(5000), $"round {round}: no interrupt for the other edge");
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
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, GpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(5, _ => fired.Release()));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, GpioIrqType.EdgeFalling)); // NONE, then falling
        pair.Model.SetInput(5, true);
        Assert.False(fired.Wait(150));
        pair.Model.SetInput(5, false);
        Assert.True(fired.Wait(5000));
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
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(6, GpioIrqType.EdgeRising));
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
        for (int t = 0; t < threads.Length; t++)
        {
            int line = t;
            threads[t] = new Thread(() =>
            {
                var sw = Stopwatch.StartNew();
                bool seenGone = false;
                for (int i = 0; sw.Elapsed < TimeSpan.FromSeconds(20); i++)
                {
                    RrStatus s = (i & 1) == 0 ? pair.Chip.Set(line, (i & 2) != 0) : pair.Chip.Get(line, out _);
                    if (s == RrStatus.Ok)
                    {
                        Interlocked.Increment(ref ok);
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

        Thread.Sleep(200);
        Assert.Equal(RrStatus.Ok, pair.Pl061.Remove());
        removed.Set();
        foreach (Thread t in threads)
        {
            Assert.True(t.Join(TimeSpan.FromSeconds(30)), "a consumer hung after the removal");
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
        Assert.True(waiter.Join(5000));
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
            while ((s = t.Requestq!.TryPop(out c)) == RrStatus.NotFound && sw.ElapsedMilliseconds < 5000)
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
        Assert.True(w.Join(5000));
        Assert.Equal(RrStatus.InvalidArgument, result);

        w = new Thread(() => result = chip!.Get(2, out value));
        w.Start();
        Answer(2, 0x7F, 1); // a status that is neither OK nor ERR
        Assert.True(w.Join(5000));
        Assert.Equal(RrStatus.InvalidArgument, result);

        w = new Thread(() => result = chip!.Get(2, out value));
        w.Start();
        Answer(2, VIRTIO_GPIO_STATUS_OK, 1);
        Assert.True(w.Join(5000));
        Assert.Equal((RrStatus.Ok, true), (result, value));

        chip!.Dispose();
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
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
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(7, GpioIrqType.EdgeBoth));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(7, _ => Interlocked.Increment(ref irqs)));
        var threads = new List<Thread>();
        for (int l = 0; l < 2; l++)
        {
            int line = l;
            threads.Add(new Thread(() =>
            {
                var sw = Stopwatch.StartNew();
                bool v = false;
                while (sw.Elapsed < duration)
                {
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
            while (sw.Elapsed < duration)
            {
                level = !level;
                pair.Model.SetInput(7, level);
                Thread.Sleep(1);
            }
        }));
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Thread.Sleep(100);
        output.WriteLine($"operations {ops}, interrupts {irqs}, errors {errors}");
        Assert.Equal(0, errors);
        Assert.True(ops > 20, $"only {ops} operations");
        Assert.True(irqs > 0, "no interrupt delivered");
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
        GpioIrqStats st;
        try
        {
            Assert.Equal(RrStatus.Ok, pair.Chip.DirectionInput(3));
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(3, GpioIrqType.LevelHigh));
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
        Assert.Equal(RrStatus.Ok, pair.Pl061.GetIrqStats(3, out GpioIrqStats pl061));
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
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, GpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(5, handler));
        Assert.Equal(RrStatus.Ok, pair.Chip.DisableIrqNoSync(5)); // the buffer is with the device
        pair.Model.SetInput(5, true);
        Assert.False(fired.Wait(200)); // masked: held, not run
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqHandler(5, handler)); // the same handler: re-arm
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)), "the held edge was lost");
        Assert.Equal(RrStatus.Ok, pair.Chip.GetIrqStats(5, out GpioIrqStats st));
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
        Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(6, GpioIrqType.EdgeRising));
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
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(4, GpioIrqType.LevelHigh));
            Assert.Equal(RrStatus.Ok, pair.Chip.SetIrqType(5, GpioIrqType.EdgeBoth));
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
