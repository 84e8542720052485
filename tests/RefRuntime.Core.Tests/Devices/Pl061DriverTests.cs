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
using Driver = RefRuntime.Core.Devices.Pl061.Pl061Driver<RefRuntime.Core.Io.RawDeviceBackend>;

namespace RefRuntime.Core.Tests.Devices;

/// <summary>The PL061 driver over the model: exact MMIO traces, interrupts, suspend/resume, removal, probe failures.</summary>
public sealed class Pl061DriverTests : IDisposable
{
    private readonly ITestOutputHelper _output;

    /// <summary>Wraps the model and records every access; flags any access once removal has completed.</summary>
    private sealed class Tracer(RawPl061Model model) : IRawDeviceModel
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

    private readonly RawRcuDomain _domain = new();
    private readonly RawPl061Model _model = new();
    private readonly Tracer _tracer;
    private readonly RawIo<RawDeviceBackend> _io;
    private int _irqRegistrations;
    private int _irqReleases;

    public Pl061DriverTests(ITestOutputHelper output)
    {
        _output = output;
        _tracer = new Tracer(_model);
        _io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(_tracer, WindowSize));
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
        using var plain = RawIoRegion.Allocate(WindowSize);
        var io = new RawIo<RawMemoryBackend>(plain.Io.Backend);
        Assert.Equal(RrStatus.NoDevice, Pl061Driver<RawMemoryBackend>.Probe(io, _domain, null, out var d, out string? error));
        Assert.Null(d);
        Assert.Contains("not a PL061", error, StringComparison.Ordinal);
        using var small = RawIoRegion.Allocate(0x800);
        Assert.Equal(RrStatus.InvalidArgument, Pl061Driver<RawMemoryBackend>.Probe(small.Io, _domain, null, out _, out error));
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
        Assert.Equal(RrStatus.Ok, d.GetDirection(3, out RawGpioDirection dir));
        Assert.Equal(RawGpioDirection.Input, dir);
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
    [InlineData(RawGpioIrqType.EdgeRising, 0x00, 0x00, 0x02)]
    [InlineData(RawGpioIrqType.EdgeFalling, 0x00, 0x00, 0x00)]
    [InlineData(RawGpioIrqType.EdgeBoth, 0x00, 0x02, 0x00)]
    [InlineData(RawGpioIrqType.LevelHigh, 0x02, 0x00, 0x02)]
    [InlineData(RawGpioIrqType.LevelLow, 0x02, 0x00, 0x00)]
    [InlineData(RawGpioIrqType.None, 0x00, 0x00, 0x00)]
    public void SetIrqType_ExactSequence(RawGpioIrqType type, int isv, int ibe, int iev)
    {
        Driver d = Probe();
        Assert.Equal(RrStatus.Ok, d.SetIrqType(1, type));
        Assert.Equal(
            new[] { "R8 0x40c", "R8 0x404", "R8 0x408", $"W8 0x404=0x{isv:x2}", $"W8 0x408=0x{ibe:x2}", $"W8 0x40c=0x{iev:x2}" },
            _tracer.Take());
        Assert.Equal(RrStatus.InvalidArgument, d.SetIrqType(1, RawGpioIrqType.LevelHigh | RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.InvalidArgument, d.SetIrqType(1, RawGpioIrqType.LevelHigh | RawGpioIrqType.LevelLow));
        Assert.Equal(RrStatus.InvalidArgument, d.SetIrqType(9, RawGpioIrqType.EdgeRising));
        Assert.Empty(_tracer.Take());
    }

    // Interrupt delivery for every trigger type, through the parent interrupt and the per-line handler.
    [Theory]
    [InlineData(RawGpioIrqType.EdgeRising, 1)]
    [InlineData(RawGpioIrqType.EdgeFalling, 1)]
    [InlineData(RawGpioIrqType.EdgeBoth, 2)]
    [InlineData(RawGpioIrqType.LevelHigh, 1)]
    [InlineData(RawGpioIrqType.LevelLow, 1)]
    public void Interrupts_EachTrigger_DeliveredToHandler(RawGpioIrqType type, int expected)
    {
        Driver d = Probe();
        bool low = type == RawGpioIrqType.LevelLow;
        _model.SetInput(4, low ? true : false); // idle level: inactive for the trigger
        int calls = 0;
        Assert.Equal(RrStatus.Ok, d.SetIrqType(4, type));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(4, line =>
        {
            Assert.Equal(4, line);
            calls++;
            if (type is RawGpioIrqType.LevelHigh or RawGpioIrqType.LevelLow)
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
        d.SetIrqType(5, RawGpioIrqType.EdgeBoth);
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
        Assert.Equal(RrStatus.NoDevice, d.SetIrqType(0, RawGpioIrqType.EdgeRising));
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
            var model = new RawPl061Model();
            var tracer = new Tracer(model);
            var io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(tracer, WindowSize));
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

    // ---- interrupt handler lifetimes (free_irq / synchronize_irq semantics) ------------------

    /// <summary>Raises an edge on <paramref name="line"/> of <paramref name="model"/> on a thread of its own (the handler runs there).</summary>
    private static Thread RaiseOnThread(RawPl061Model model, int line)
    {
        var t = new Thread(() =>
        {
            model.SetInput(line, false);
            model.SetInput(line, true);
        }) { IsBackground = true };
        t.Start();
        return t;
    }

    // A handler that sleeps while another thread removes the chip: remove returns only after the
    // handler has returned, and no handler runs after it.
    [Fact]
    public void Remove_WhileHandlerSleeps_ReturnsAfterItAndNoneStartsAfter()
    {
        Driver d = Probe();
        using var entered = new ManualResetEventSlim();
        int exited = 0, calls = 0, afterRemove = 0, removed = 0;
        Assert.Equal(RrStatus.Ok, d.SetIrqType(2, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(2, _ =>
        {
            Interlocked.Increment(ref calls);
            if (Volatile.Read(ref removed) != 0)
            {
                Interlocked.Increment(ref afterRemove);
            }

            entered.Set();
            Thread.Sleep(50);
            Volatile.Write(ref exited, 1);
        }));
        Thread raiser = RaiseOnThread(_model, 2);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the handler never ran");
        Assert.Equal(RrStatus.Ok, d.Remove());
        Volatile.Write(ref removed, 1);
        Assert.Equal(1, Volatile.Read(ref exited)); // the handler had returned when remove did
        Assert.True(raiser.Join(TimeSpan.FromSeconds(30)));
        _model.SetInput(2, false);
        _model.SetInput(2, true); // a late interrupt reaches nobody
        Assert.Equal(1, calls);
        Assert.Equal(0, afterRemove);
    }

    // Remove from inside a handler would wait for itself: WouldDeadlock, nothing changed, the chip still works.
    [Fact]
    public void Remove_FromInsideHandler_WouldDeadlock_ChipStillWorks()
    {
        Driver d = Probe();
        var inside = new List<RrStatus>();
        Assert.Equal(RrStatus.Ok, d.SetIrqType(1, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(1, _ => inside.Add(d.Remove())));
        _model.SetInput(1, true);
        Assert.Equal(new[] { RrStatus.WouldDeadlock }, inside);
        Assert.False(d.IsRemoved);
        Assert.Equal(RrStatus.Ok, d.DirectionOutput(0, true));
        _model.SetInput(1, false);
        _model.SetInput(1, true); // the handler is still installed
        Assert.Equal(2, inside.Count);
        Assert.Equal(RrStatus.Ok, d.Remove()); // from outside: fine
    }

    // Clearing a handler waits for a running one (synchronize_irq): after set_irq_handler(null)
    // returns, the old handler has returned and never runs again.
    [Fact]
    public void SetIrqHandlerNull_WhileHandlerSleeps_ReturnsAfterIt()
    {
        Driver d = Probe();
        using var entered = new ManualResetEventSlim();
        int exited = 0, calls = 0;
        Assert.Equal(RrStatus.Ok, d.SetIrqType(3, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(3, _ =>
        {
            Interlocked.Increment(ref calls);
            entered.Set();
            Thread.Sleep(50);
            Volatile.Write(ref exited, 1);
        }));
        Thread raiser = RaiseOnThread(_model, 3);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the handler never ran");
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(3, null));
        Assert.Equal(1, Volatile.Read(ref exited));
        Assert.True(raiser.Join(TimeSpan.FromSeconds(30)));
        _model.SetInput(3, false);
        _model.SetInput(3, true);
        Assert.Equal(1, calls);
    }

    // Replacing a handler waits for the old one the same way.
    [Fact]
    public void SetIrqHandlerReplace_WhileHandlerSleeps_ReturnsAfterIt()
    {
        Driver d = Probe();
        using var entered = new ManualResetEventSlim();
        int exited = 0, newCalls = 0;
        Assert.Equal(RrStatus.Ok, d.SetIrqType(3, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(3, _ =>
        {
            entered.Set();
            Thread.Sleep(50);
            Volatile.Write(ref exited, 1);
        }));
        Thread raiser = RaiseOnThread(_model, 3);
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the handler never ran");
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(3, _ => newCalls++));
        Assert.Equal(1, Volatile.Read(ref exited));
        Assert.True(raiser.Join(TimeSpan.FromSeconds(30)));
        _model.SetInput(3, false);
        _model.SetInput(3, true);
        Assert.Equal(1, newCalls);
    }

    // From inside a handler, clearing or replacing a handler would wait for itself: WouldDeadlock,
    // nothing changed; installing on a free line or re-arming the same handler is fine.
    [Fact]
    public void SetIrqHandler_FromInsideHandler_ClearOrReplace_WouldDeadlock()
    {
        Driver d = Probe();
        var inside = new List<RrStatus>();
        int otherCalls = 0;
        Action<int>? self = null;
        self = _ =>
        {
            inside.Add(d.SetIrqHandler(5, null));
            inside.Add(d.SetIrqHandler(5, _ => { }));
            inside.Add(d.SetIrqHandler(6, null));            // 6 has no handler: nothing to wait for
            inside.Add(d.SetIrqHandler(5, self));            // the same handler: a re-arm
            inside.Add(d.SetIrqHandler(6, _ => otherCalls++)); // a free line
        };
        Assert.Equal(RrStatus.Ok, d.SetIrqType(5, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, d.SetIrqType(6, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(5, self));
        _model.SetInput(5, true);
        Assert.Equal(new[] { RrStatus.WouldDeadlock, RrStatus.WouldDeadlock, RrStatus.Ok, RrStatus.Ok, RrStatus.Ok }, inside);
        _model.SetInput(5, false);
        _model.SetInput(5, true); // still self
        Assert.Equal(10, inside.Count);
        _model.SetInput(6, true);
        Assert.Equal(1, otherCalls);
    }

    // Nesting is detected per chip: a handler of one chip that raises another chip's interrupt
    // gets that chip's handler called (a thread-wide flag dropped it).
    [Fact]
    public void Handler_RaisesAnotherChipsInterrupt_Delivered()
    {
        Driver a = Probe();
        var modelB = new RawPl061Model();
        Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(modelB, out Driver? b, out _));
        int bCalls = 0;
        Assert.Equal(RrStatus.Ok, b!.SetIrqType(0, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, b.SetIrqHandler(0, _ => bCalls++));
        Assert.Equal(RrStatus.Ok, a.SetIrqType(0, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, a.SetIrqHandler(0, _ => modelB.SetInput(0, true)));
        _model.SetInput(0, true);
        Assert.Equal(1, bCalls);
        Assert.Equal(RrStatus.Ok, b.Destroy());
    }

    // ---- interrupt corner cases -----------------------------------------------------------------

    // Trigger NONE routes to handle_bad_irq: the hardware still latches falling edges (IS=IBE=IEV=0),
    // but the handler is not called; the interrupt is acked and counted as spurious.
    [Fact]
    public void TriggerNone_HandlerNotCalled_CountedSpurious()
    {
        Driver d = Probe();
        int calls = 0;
        _model.SetInput(4, true);
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(4, _ => calls++)); // no trigger type set: NONE
        _model.SetInput(4, false); // a falling edge latches in hardware
        Assert.Equal(0, calls);
        Assert.False(_model.Interrupt); // acknowledged all the same
        Assert.Equal(RrStatus.Ok, d.GetIrqStats(4, out RawGpioIrqStats st));
        Assert.Equal((0UL, 1UL, 0UL, false), (st.Handled, st.Spurious, st.StuckDisables, st.IsDisabled));
        Assert.Equal(RrStatus.Ok, d.SetIrqType(4, RawGpioIrqType.EdgeFalling));
        _model.SetInput(4, true);
        _model.SetInput(4, false);
        Assert.Equal(1, calls);
        Assert.Equal(RrStatus.Ok, d.GetIrqStats(4, out st));
        Assert.Equal((1UL, 1UL), (st.Handled, st.Spurious));
        Assert.Equal(RrStatus.InvalidArgument, d.GetIrqStats(8, out _));
    }

    // A level line whose handler never clears the condition is disabled (left masked) and reported
    // once, as the kernel's "nobody cared"; it stays disabled until re-armed.
    [Fact]
    public void StuckLevel_DisabledAndReportedOnce_UntilReArmed()
    {
        Driver d = Probe();
        int calls = 0;
        var stderr = new System.IO.StringWriter();
        System.IO.TextWriter previous = Console.Error;
        Console.SetError(stderr);
        try
        {
            Assert.Equal(RrStatus.Ok, d.SetIrqType(3, RawGpioIrqType.LevelHigh));
            Assert.Equal(RrStatus.Ok, d.SetIrqHandler(3, _ => calls++)); // never clears the level
            _model.SetInput(3, true);
            int burst = calls;
            Assert.Equal(Driver.StuckBound, burst);
            Assert.False(_model.Interrupt); // left masked
            _model.SetInput(3, false);
            _model.SetInput(3, true);
            Assert.Equal(burst, calls); // disabled: no more calls
        }
        finally
        {
            Console.SetError(previous);
        }

        string report = stderr.ToString();
        Assert.Single(report.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("nobody cared", report, StringComparison.Ordinal);
        Assert.Equal(RrStatus.Ok, d.GetIrqStats(3, out RawGpioIrqStats st));
        Assert.Equal(((ulong)Driver.StuckBound, 0UL, 1UL, true), (st.Handled, st.Spurious, st.StuckDisables, st.IsDisabled));
        // Re-armed by setting the handler again (this one clears the level): delivered once.
        int fixedCalls = 0;
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(3, _ =>
        {
            fixedCalls++;
            _model.SetInput(3, false);
        }));
        Assert.Equal(1, fixedCalls);
        _model.SetInput(3, true);
        Assert.Equal(2, fixedCalls);
        Assert.Equal(RrStatus.Ok, d.GetIrqStats(3, out st));
        Assert.Equal((1UL, false), (st.StuckDisables, st.IsDisabled));
    }

    // SetIrqType re-arms a stuck line too; the counters stay readable after removal.
    [Fact]
    public void StuckLevel_ReArmedBySetIrqType_StatsAfterRemoval()
    {
        Driver d = Probe();
        int calls = 0;
        System.IO.TextWriter previous = Console.Error;
        Console.SetError(System.IO.TextWriter.Null);
        try
        {
            Assert.Equal(RrStatus.Ok, d.SetIrqType(2, RawGpioIrqType.LevelLow));
            Assert.Equal(RrStatus.Ok, d.SetIrqHandler(2, _ => calls++)); // the pin idles low: asserted at once
            Assert.Equal(Driver.StuckBound, calls);
            _model.SetInput(2, true); // the source goes quiet
            Assert.Equal(RrStatus.Ok, d.SetIrqType(2, RawGpioIrqType.LevelLow));
            Assert.Equal(RrStatus.Ok, d.GetIrqStats(2, out RawGpioIrqStats st));
            Assert.False(st.IsDisabled);
            _model.SetInput(2, false); // armed again: delivered (and, never cleared, stuck again)
            Assert.Equal(2 * Driver.StuckBound, calls);
        }
        finally
        {
            Console.SetError(previous);
        }

        Assert.Equal(RrStatus.Ok, d.Remove());
        Assert.Equal(RrStatus.Ok, d.GetIrqStats(2, out RawGpioIrqStats after));
        Assert.Equal((2UL, true), (after.StuckDisables, after.IsDisabled));
    }

    // disable_irq_nosync from the line's own handler: masked without waiting, the handler stays,
    // nothing is lost: the level (or a latched edge) is delivered once the line is re-armed.
    [Theory]
    [InlineData(RawGpioIrqType.LevelHigh)]
    [InlineData(RawGpioIrqType.EdgeRising)]
    public void DisableIrqNoSync_FromOwnHandler_MaskedUntilReArmed_NothingLost(RawGpioIrqType type)
    {
        Driver d = Probe();
        var seen = new List<RrStatus>();
        Action<int> handler = n => seen.Add(d.DisableIrqNoSync(n));
        Assert.Equal(RrStatus.Ok, d.SetIrqType(6, type));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(6, handler));
        _model.SetInput(6, true);
        Assert.Equal(new[] { RrStatus.Ok }, seen); // once: masked, not stuck
        Assert.False(_model.Interrupt);
        if (type == RawGpioIrqType.EdgeRising)
        {
            _model.SetInput(6, false);
            _model.SetInput(6, true); // latched while masked
            Assert.Single(seen);
        }

        Assert.Equal(RrStatus.Ok, d.GetIrqStats(6, out RawGpioIrqStats st));
        Assert.False(st.IsDisabled);
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(6, handler)); // re-arm: delivered now
        Assert.Equal(2, seen.Count);
    }

    /// <summary>A broken PL061: GPIOMIS always shows line 0, whatever is acked or masked.</summary>
    private sealed class StuckMis(RawPl061Model model) : IRawDeviceModel
    {
        public ulong Read(nuint offset, int width) => offset == GPIOMIS ? 0x01 : model.Read(offset, width);

        public void Write(nuint offset, int width, ulong value) => model.Write(offset, width, value);
    }

    // A device whose interrupt status never clears: after StormBound rounds the line is disabled
    // and reported once, and every raise returns (bounded work) instead of dispatching forever.
    [Fact]
    public void Storm_StatusNeverClears_LineDisabled_DispatchReturns()
    {
        var io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(new StuckMis(new RawPl061Model()), WindowSize));
        Assert.Equal(RrStatus.Ok, Driver.Probe(io, _domain, null, out Driver? d, out _));
        int calls = 0;
        Assert.Equal(RrStatus.Ok, d!.SetIrqType(0, RawGpioIrqType.EdgeRising));
        Assert.Equal(RrStatus.Ok, d.SetIrqHandler(0, _ => calls++));
        var stderr = new System.IO.StringWriter();
        System.IO.TextWriter previous = Console.Error;
        Console.SetError(stderr);
        try
        {
            d.Interrupt(true); // the host's parent line
            Assert.Equal(Driver.StormBound, calls);
            d.Interrupt(true); // still "pending": the disabled line is left alone, the raise returns
            Assert.Equal(Driver.StormBound, calls);
        }
        finally
        {
            Console.SetError(previous);
        }

        Assert.Equal(RrStatus.Ok, d.GetIrqStats(0, out RawGpioIrqStats st));
        Assert.Equal((1UL, true), (st.StuckDisables, st.IsDisabled));
        Assert.Single(stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(RrStatus.Ok, d.Destroy());
    }

    // rr_gpio_irq_stats_t and RawGpioIrqStats agree (the header pins the same with _Static_assert).
    [Fact]
    public void GpioIrqStats_LayoutMatchesHeader()
    {
        Assert.Equal(32, System.Runtime.InteropServices.Marshal.SizeOf<RawGpioIrqStats>());
        Assert.Equal(32, System.Runtime.CompilerServices.Unsafe.SizeOf<RawGpioIrqStats>());
        Assert.Equal(0, (int)System.Runtime.InteropServices.Marshal.OffsetOf<RawGpioIrqStats>(nameof(RawGpioIrqStats.Handled)));
        Assert.Equal(8, (int)System.Runtime.InteropServices.Marshal.OffsetOf<RawGpioIrqStats>(nameof(RawGpioIrqStats.Spurious)));
        Assert.Equal(16, (int)System.Runtime.InteropServices.Marshal.OffsetOf<RawGpioIrqStats>(nameof(RawGpioIrqStats.StuckDisables)));
        Assert.Equal(24, (int)System.Runtime.InteropServices.Marshal.OffsetOf<RawGpioIrqStats>(nameof(RawGpioIrqStats.Disabled)));
        Assert.Equal(28, (int)System.Runtime.InteropServices.Marshal.OffsetOf<RawGpioIrqStats>(nameof(RawGpioIrqStats.Reserved)));
    }

    // Removal and handler changes racing interrupts raised from several threads, with handlers
    // that sleep: when Remove returns no handler runs and none starts; when a clear returns the
    // cleared handler is not running; a chip's handlers never overlap.
    [Fact]
    [Trait("Category", "Stress")]
    public void Stress_RemoveAndClearRacingInterrupts_NoHandlerAfter()
    {
        TimeSpan budget = StressConfig.Extended;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long handled = 0, clears = 0;
        int round = 0;
        for (; round < 6 || clock.Elapsed < budget; round++)
        {
            var model = new RawPl061Model();
            Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(model, out Driver? d, out _));
            const int lines = 4;
            var running = new int[lines];
            int inHandler = 0, maxInHandler = 0, afterRemove = 0, removed = 0, stop = 0, errors = 0;
            Action<int> Handler() => n =>
            {
                int now = Interlocked.Increment(ref inHandler);
                int max;
                while (now > (max = Volatile.Read(ref maxInHandler)) && Interlocked.CompareExchange(ref maxInHandler, now, max) != max)
                {
                }

                Interlocked.Increment(ref running[n]);
                if (Volatile.Read(ref removed) != 0)
                {
                    Interlocked.Increment(ref afterRemove);
                }

                if ((Interlocked.Increment(ref handled) & 15) == 0)
                {
                    Thread.Sleep(1); // some handlers sleep
                }

                Interlocked.Decrement(ref running[n]);
                Interlocked.Decrement(ref inHandler);
            };
            for (int l = 0; l < lines; l++)
            {
                Assert.Equal(RrStatus.Ok, d!.SetIrqType(l, RawGpioIrqType.EdgeBoth));
                Assert.Equal(RrStatus.Ok, d.SetIrqHandler(l, Handler()));
            }

            var threads = new List<Thread>();
            for (int l = 0; l < lines; l++)
            {
                int line = l;
                threads.Add(new Thread(() =>
                {
                    bool level = false;
                    while (Volatile.Read(ref stop) == 0)
                    {
                        level = !level;
                        model.SetInput(line, level);
                        if (!level)
                        {
                            Thread.Yield();
                        }
                    }
                }));
            }

            // Line 3's handler is cleared and set again and again while interrupts flow.
            threads.Add(new Thread(() =>
            {
                while (Volatile.Read(ref removed) == 0)
                {
                    RrStatus s = d!.SetIrqHandler(3, null);
                    if (s == RrStatus.NoDevice)
                    {
                        break;
                    }

                    Interlocked.Increment(ref clears);
                    if (s != RrStatus.Ok || Volatile.Read(ref running[3]) != 0)
                    {
                        Interlocked.Increment(ref errors); // still running after the clear returned
                    }

                    if (d.SetIrqHandler(3, Handler()) is not (RrStatus.Ok or RrStatus.NoDevice))
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
            }));
            threads.ForEach(t => t.Start());
            Thread.Sleep(5 + (round % 3));
            Assert.Equal(RrStatus.Ok, d!.Remove());
            Assert.Equal(0, Volatile.Read(ref inHandler)); // none running when Remove returned
            Volatile.Write(ref removed, 1);
            Thread.Sleep(2);
            Volatile.Write(ref stop, 1);
            threads.ForEach(t => Assert.True(t.Join(TimeSpan.FromSeconds(30)), "a thread hung"));
            Assert.Equal(0, afterRemove); // and none started after
            Assert.True(maxInHandler <= 1, $"{maxInHandler} handlers of one chip ran at once");
            Assert.Equal(0, errors);
            Assert.Equal(RrStatus.Ok, d.Destroy());
        }

        _output.WriteLine($"rounds {round}, handler calls {handled}, clears {clears}, handlers after removal 0, overlapping handlers 0");
    }
}
