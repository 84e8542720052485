using System;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Io;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static RefRuntime.Core.Devices.Pl061.Pl061Regs;
using Driver = RefRuntime.Core.Devices.Pl061.Pl061Driver<RefRuntime.Core.Io.DeviceBackend>;

namespace RefRuntime.Core.Tests.Devices;

/// <summary>The PL061 driver over the model: exact MMIO traces, interrupts, suspend/resume, removal, probe failures.</summary>
public sealed class Pl061DriverTests : IDisposable
{
    private readonly ITestOutputHelper _output;

    /// <summary>Wraps the model and records every access; flags any access once removal has completed.</summary>
    private sealed class Tracer(Pl061Model model) : IDeviceModel
    {
        public readonly List<string> Trace = new();
        public volatile bool Gone;
        public int AfterGone;

        public ulong Read(nuint offset, int width)
        {
            Note($"R{width * 8} 0x{offset:x3}");
            return model.Read(offset, width);
        }

        public void Write(nuint offset, int width, ulong value)
        {
            Note($"W{width * 8} 0x{offset:x3}=0x{value:x2}");
            model.Write(offset, width, value);
        }

        private void Note(string s)
        {
            if (Gone)
            {
                Interlocked.Increment(ref AfterGone);
            }

            lock (Trace)
            {
                Trace.Add(s);
            }
        }

        public string[] Take()
        {
            lock (Trace)
            {
                string[] t = Trace.ToArray();
                Trace.Clear();
                return t;
            }
        }
    }

    private readonly RcuDomain _domain = new();
    private readonly Pl061Model _model = new();
    private readonly Tracer _tracer;
    private readonly Io<DeviceBackend> _io;
    private int _irqRegistrations;
    private int _irqReleases;

    public Pl061DriverTests(ITestOutputHelper output)
    {
        _output = output;
        _tracer = new Tracer(_model);
        _io = new Io<DeviceBackend>(new DeviceBackend(_tracer, WindowSize));
    }

    public void Dispose() => _domain.Dispose();


    private IDisposable RequestIrq(Action<bool> handler)
    {
        Interlocked.Increment(ref _irqRegistrations);
        _model.InterruptChanged += handler;
        return new ActionDisposable(() =>
        {
            _model.InterruptChanged -= handler;
            Interlocked.Increment(ref _irqReleases);
        });
    }

    private Driver Probe()
    {
        Assert.Equal(RrStatus.Ok, Driver.Probe(_io, _domain, RequestIrq, out Driver? d, out string? error));
        Assert.Null(error);
        _tracer.Take();
        return d!;
    }

    // Probe reads the identification and masks every interrupt before connecting it.
    [Fact]
    public void Probe_ChecksIdAndMasksInterrupts()
    {
        Assert.Equal(RrStatus.Ok, Driver.Probe(_io, _domain, RequestIrq, out Driver? d, out _));
        string[] t = _tracer.Take();
        Assert.Contains("R8 0xfe0", t);
        Assert.Contains("R8 0xffc", t);
        Assert.Equal("W8 0x410=0x00", t[^1]);
        Assert.Equal(1, _irqRegistrations);
        Assert.Equal(8, d!.LineCount);
    }

    // Anything that is not a PL061 is refused with a clear error.
    [Fact]
    public void Probe_NotAPl061_Refused()
    {
        using var plain = IoRegion.Allocate(WindowSize);
        var io = new Io<MemoryBackend>(plain.Io.Backend);
        Assert.Equal(RrStatus.NoDevice, Pl061Driver<MemoryBackend>.Probe(io, _domain, null, out var d, out string? error));
        Assert.Null(d);
        Assert.Contains("not a PL061", error, StringComparison.Ordinal);
        using var small = IoRegion.Allocate(0x800);
        Assert.Equal(RrStatus.InvalidArgument, Pl061Driver<MemoryBackend>.Probe(small.Io, _domain, null, out _, out error));
        Assert.Contains("decodes 4096", error, StringComparison.Ordinal);
    }

    // direction_output: value, DIR read-modify-write, value again (gpio-pl061.c).
    [Fact]
    public void DirectionOutput_ExactSequence()
    {
        Driver d = Probe();
        Assert.Equal(RrStatus.Ok, d.DirectionOutput(3, true));
        Assert.Equal(new[] { "W8 0x020=0x08", "R8 0x400", "W8 0x400=0x08", "W8 0x020=0x08" }, _tracer.Take());
        Assert.Equal(0x08, _model.Outputs);
        Assert.Equal(RrStatus.Ok, d.DirectionInput(3));
        Assert.Equal(new[] { "R8 0x400", "W8 0x400=0x00" }, _tracer.Take());
        Assert.Equal(RrStatus.Ok, d.GetDirection(3, out GpioDirection dir));
        Assert.Equal(GpioDirection.Input, dir);
    }

    // get/set use the masked data alias, one access each, no lock needed.
    [Fact]
    public void GetSet_UseMaskedAlias()
    {
        Driver d = Probe();
        d.DirectionOutput(2, false);
        _tracer.Take();
        Assert.Equal(RrStatus.Ok, d.Set(2, true));
        Assert.Equal(RrStatus.Ok, d.Get(2, out bool v));
        Assert.True(v);
        Assert.Equal(new[] { "W8 0x010=0x04", "R8 0x010" }, _tracer.Take());
        _model.SetInput(6, true);
        Assert.Equal(RrStatus.Ok, d.Get(6, out v));
        Assert.True(v);
        Assert.Equal(new[] { "R8 0x100" }, _tracer.Take());
        Assert.Equal(RrStatus.InvalidArgument, d.Set(8, true));
        Assert.Equal(RrStatus.InvalidArgument, d.Get(-1, out _));
        Assert.Empty(_tracer.Take()); // refused before any access
    }

    // irq_set_type: reads IEV, IS, IBE, then writes IS, IBE, IEV; invalid combinations are refused without MMIO.
    [Theory]
    [InlineData(GpioIrqType.EdgeRising, 0x00, 0x00, 0x02)]
    [InlineData(GpioIrqType.EdgeFalling, 0x00, 0x00, 0x00)]
    [InlineData(GpioIrqType.EdgeBoth, 0x00, 0x02, 0x00)]
    [InlineData(GpioIrqType.LevelHigh, 0x02, 0x00, 0x02)]
    [InlineData(GpioIrqType.LevelLow, 0x02, 0x00, 0x00)]
    [InlineData(GpioIrqType.None, 0x00, 0x00, 0x00)]
    public void SetIrqType_ExactSequence(GpioIrqType type, int isv, int ibe, int iev)
    {
        Driver d = Probe();
        Assert.Equal(RrStatus.Ok, d.SetIrqType(1, type));
        Assert.Equal(
            new[] { "R8 0x40c", "R8 0x404", "R8 0x408", $"W8 0x404=0x{isv:x2}", $"W8 0x408=0x{ibe:x2}", $"W8 0x40c=0x{iev:x2}" },
            _tracer.Take());
        Assert.Equal(RrStatus.InvalidArgument, d.SetIrqType(1, GpioIrqType.LevelHigh | GpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.InvalidArgument, d.SetIrqType(1, GpioIrqType.LevelHigh | GpioIrqType.LevelLow));
        Assert.Equal(RrStatus.InvalidArgument, d.SetIrqType(9, GpioIrqType.EdgeRising));
        Assert.Empty(_tracer.Take());
    }

    // Interrupt delivery for every trigger type, through the parent interrupt and the per-line handler.
    [Theory]
    [InlineData(GpioIrqType.EdgeRising, 1)]
    [InlineData(GpioIrqType.EdgeFalling, 1)]
    [InlineData(GpioIrqType.EdgeBoth, 2)]
    [InlineData(GpioIrqType.LevelHigh, 1)]
    [InlineData(GpioIrqType.LevelLow, 1)]
    public void Interrupts_EachTrigger_DeliveredToHandler(GpioIrqType type, int expected)
    {
        Driver d = Probe();
        bool low = type == GpioIrqType.LevelLow;
        _model.SetInput(4, low ? true : false); // idle level: inactive for the trigger
        int calls = 0;
        Assert.Equal(RrStatus.Ok, d.SetIrqType(4, type));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(4, line =>
        {
            Assert.Equal(4, line);
            calls++;
            if (type is GpioIrqType.LevelHigh or GpioIrqType.LevelLow)
            {
                _model.SetInput(4, low); // the handler clears the level source
            }
        }));
        _model.SetInput(4, !low); // active edge or level
        _model.SetInput(4, low);  // the other edge
        Assert.Equal(expected, calls);
        Assert.False(_model.Interrupt);
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(4, null)); // unsubscribe masks the line
        _model.SetInput(4, !low);
        _model.SetInput(4, low);
        Assert.Equal(expected, calls);
    }

    // Suspend saves, resume restores directions, outputs and interrupt configuration (IE last).
    [Fact]
    public void SuspendResume_RestoresRegisters()
    {
        Driver d = Probe();
        d.DirectionOutput(0, true);
        d.DirectionOutput(1, false);
        d.SetIrqType(5, GpioIrqType.EdgeBoth);
        d.SetIrqHandler(5, _ => { });
        Assert.Equal(RrStatus.Ok, d.Suspend());
        _model.Reset(); // power lost
        Assert.Equal(0, _model.Outputs);
        Assert.Equal(RrStatus.Ok, d.Resume());
        string[] t = _tracer.Take();
        Assert.Equal("W8 0x410=0x20", t[^1]); // IE restored last
        Assert.Equal(0x01, _model.Outputs);
        Assert.True(_io.TryRead8(GPIODIR, out byte dir) && dir == 0x03);
        Assert.True(_io.TryRead8(GPIOIBE, out byte ibe) && ibe == 0x20);
    }

    // Removal: no MMIO after it returns, every later call is NoDevice, resources released once.
    [Fact]
    public void Remove_NoMmioAfter_NoDeviceAfter()
    {
        Driver d = Probe();
        d.DirectionOutput(0, true);
        Assert.Equal(RrStatus.Ok, d.Remove());
        _tracer.Gone = true;
        Assert.Equal(1, _irqReleases);
        Assert.Equal(RrStatus.NoDevice, d.Set(0, false));
        Assert.Equal(RrStatus.NoDevice, d.Get(0, out _));
        Assert.Equal(RrStatus.NoDevice, d.SetIrqType(0, GpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.NoDevice, d.Suspend());
        _model.SetInput(3, true); // a late interrupt reaches nobody
        Assert.Equal(RrStatus.Ok, d.Remove());
        Assert.Equal(0, _tracer.AfterGone);
        Assert.True(d.IsRemoved);
    }

    // Hot-unplug with consumers on several threads: no MMIO after removal completes, and once a
    // consumer sees NoDevice it never sees success again.
    [Fact]
    [Trait("Category", "Stress")]
    public void HotUnplug_ConsumersOnThreads_NoAccessAfterRemoval()
    {
        // 10 rounds, or as long as a stress run asks (./test.sh --minutes N).
        TimeSpan budget = StressConfig.Extended;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long calls = 0, noDevice = 0;
        int round = 0;
        for (; round < 10 || clock.Elapsed < budget; round++)
        {
            var model = new Pl061Model();
            var tracer = new Tracer(model);
            var io = new Io<DeviceBackend>(new DeviceBackend(tracer, WindowSize));
            Assert.Equal(RrStatus.Ok, Driver.Probe(io, _domain, null, out Driver? d, out _));
            int okAfterNoDevice = 0, errors = 0;
            var threads = new Thread[3];
            for (int t = 0; t < threads.Length; t++)
            {
                int line = t;
                threads[t] = new Thread(() =>
                {
                    bool gone = false;
                    for (int i = 0; i < 2000; i++)
                    {
                        RrStatus s = i % 3 == 0 ? d!.DirectionOutput(line, true) : i % 3 == 1 ? d!.Set(line, (i & 4) != 0) : d!.Get(line, out _);
                        Interlocked.Increment(ref calls);
                        if (s == RrStatus.NoDevice)
                        {
                            Interlocked.Increment(ref noDevice);
                            gone = true;
                        }
                        else if (s != RrStatus.Ok)
                        {
                            Interlocked.Increment(ref errors);
                        }
                        else if (gone)
                        {
                            Interlocked.Increment(ref okAfterNoDevice);
                        }
                    }
                });
                threads[t].Start();
            }

            Thread.Sleep(round % 3);
            Assert.Equal(RrStatus.Ok, d!.Remove());
            tracer.Gone = true;
            foreach (Thread t in threads)
            {
                t.Join();
            }

            Assert.Equal(0, tracer.AfterGone);
            Assert.Equal(0, okAfterNoDevice);
            Assert.Equal(0, errors);
        }

        _output.WriteLine($"removals {round}, calls {calls}, no-device answers {noDevice}, MMIO after removal 0, success after no-device 0");
    }

    // A fault at every probe step releases exactly what was acquired before it, newest first.
    [Theory]
    [InlineData(Driver.ProbeStep.MapWindow, 0, false)]
    [InlineData(Driver.ProbeStep.CheckIdentification, 0, false)]
    [InlineData(Driver.ProbeStep.RegisterHardware, 0, false)]
    [InlineData(Driver.ProbeStep.MaskInterrupts, 0, false)]
    [InlineData(Driver.ProbeStep.RequestIrq, 0, true)]
    public void Probe_FaultAtEveryStep_ReleasesWhatWasAcquired(Driver.ProbeStep step, int irqRegistrations, bool maskedTwice)
    {
        Assert.NotEqual(RrStatus.Ok, Driver.Probe(_io, _domain, RequestIrq, out Driver? d, out string? error, injectFault: step));
        Assert.Null(d);
        Assert.NotNull(error);
        string[] t = _tracer.Take();
        int ieWrites = Array.FindAll(t, x => x == "W8 0x410=0x00").Length;
        Assert.Equal(maskedTwice ? 2 : 0, ieWrites); // masked at probe, masked again on release, before revocation
        Assert.Equal(irqRegistrations, _irqRegistrations);
        Assert.Equal(_irqRegistrations, _irqReleases);
        // And a full probe afterwards works on the same device.
        Assert.Equal(RrStatus.Ok, Driver.Probe(_io, _domain, RequestIrq, out d, out _));
        Assert.Equal(RrStatus.Ok, d!.Remove());
        Assert.Equal(_irqRegistrations, _irqReleases);
    }
}
