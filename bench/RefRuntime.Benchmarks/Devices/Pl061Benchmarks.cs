using System.Threading;
using BenchmarkDotNet.Attributes;

namespace RefRuntime.Benchmarks.Devices;

// Inside the namespace: this file means Core's types, found here before the safe layer's (namespace RefRuntime).
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Io;
using static RefRuntime.Core.Devices.Pl061.Pl061Regs;

/// <summary>
/// A lock around every operation: the C driver's spinlock design, in C#, with a "removed" flag
/// checked under the lock. The lock-based baseline the revocable/gate driver replaces.
/// </summary>
internal sealed class LockedPl061(RawMappedIo<Pl061Map, RawDeviceBackend> regs)
{
    private static readonly RawReg8<Pl061Map>[] Alias = [new(4), new(8), new(16), new(32), new(64), new(128), new(256), new(512)];
    private readonly Lock _lock = new();
    private bool _removed;

    public RrStatus Set(int line, bool value)
    {
        lock (_lock)
        {
            if (_removed)
            {
                return RrStatus.NoDevice;
            }

            regs.Write(Alias[line], (byte)((value ? 1 : 0) << line));
            return RrStatus.Ok;
        }
    }

    public RrStatus Get(int line, out bool value)
    {
        lock (_lock)
        {
            value = !_removed && regs.Read(Alias[line]) != 0;
            return _removed ? RrStatus.NoDevice : RrStatus.Ok;
        }
    }

    public void Remove()
    {
        lock (_lock)
        {
            _removed = true;
        }
    }
}

/// <summary>
/// Line set/get/toggle through the PL061 driver (gate + revocable hardware + MMIO device window)
/// against the raw window accesses it is built on (baseline) and a lock-around-every-operation
/// driver, 100 operations per invocation. Goal (issue #7): driver ≤ 1.3× the raw window.
/// </summary>
public class Pl061Benchmarks
{
    private const int Ops = 100;
    private static readonly RawReg8<Pl061Map> Line3 = new(4 << 3);

    private readonly RawPl061Model _model = new();
    private RawMappedIo<Pl061Map, RawDeviceBackend> _regs;
    private Pl061Driver<RawDeviceBackend> _driver = null!;
    private LockedPl061 _locked = null!;

    [GlobalSetup]
    public void Setup()
    {
        var io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(_model, WindowSize));
        _regs = io.Bind<Pl061Map>();
        if (Pl061Driver<RawDeviceBackend>.Probe(io, null, null, out var d, out string? error) != RrStatus.Ok)
        {
            throw new System.InvalidOperationException(error);
        }

        _driver = d!;
        _driver.DirectionOutput(3, false);
        _locked = new LockedPl061(_regs);
    }

    [GlobalCleanup]
    public void Cleanup() => _driver.Remove();

    [Benchmark(Baseline = true, OperationsPerInvoke = Ops)]
    public void RawWindow_Set()
    {
        for (int i = 0; i < Ops; i++)
        {
            _regs.Write(Line3, (byte)((i & 1) << 3));
        }
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public void Driver_Set()
    {
        for (int i = 0; i < Ops; i++)
        {
            _driver.Set(3, (i & 1) != 0);
        }
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public void LockedDriver_Set()
    {
        for (int i = 0; i < Ops; i++)
        {
            _locked.Set(3, (i & 1) != 0);
        }
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public int RawWindow_Get()
    {
        int n = 0;
        for (int i = 0; i < Ops; i++)
        {
            n += _regs.Read(Line3);
        }

        return n;
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public int Driver_Get()
    {
        int n = 0;
        for (int i = 0; i < Ops; i++)
        {
            _driver.Get(3, out bool v);
            n += v ? 1 : 0;
        }

        return n;
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public int LockedDriver_Get()
    {
        int n = 0;
        for (int i = 0; i < Ops; i++)
        {
            _locked.Get(3, out bool v);
            n += v ? 1 : 0;
        }

        return n;
    }

    /// <summary>Toggle: read the line, write the opposite.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void Driver_Toggle()
    {
        for (int i = 0; i < Ops; i++)
        {
            _driver.Get(3, out bool v);
            _driver.Set(3, !v);
        }
    }

    [Benchmark(OperationsPerInvoke = Ops)]
    public void RawWindow_Toggle()
    {
        for (int i = 0; i < Ops; i++)
        {
            byte v = _regs.Read(Line3);
            _regs.Write(Line3, (byte)(v ^ (1 << 3)));
        }
    }
}

/// <summary>Two threads toggling their own lines through the same chip, both in each invocation.</summary>
public class Pl061ContendedBenchmarks
{
    private const int Ops = 1000;
    private static readonly RawReg8<Pl061Map>[] Alias = [new(4), new(8), new(16), new(32), new(64), new(128), new(256), new(512)];

    private readonly PartnerThread _partner = new();
    private readonly RawPl061Model _model = new();
    private RawMappedIo<Pl061Map, RawDeviceBackend> _regs;
    private Pl061Driver<RawDeviceBackend> _driver = null!;
    private LockedPl061 _locked = null!;

    private void Setup()
    {
        var io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(_model, WindowSize));
        _regs = io.Bind<Pl061Map>();
        Pl061Driver<RawDeviceBackend>.Probe(io, null, null, out var d, out _);
        _driver = d!;
        _driver.DirectionOutput(0, false);
        _driver.DirectionOutput(1, false);
        _locked = new LockedPl061(_regs);
    }

    [GlobalSetup(Target = nameof(RawWindow_Toggle_2Threads))]
    public void SetupRaw()
    {
        Setup();
        _partner.Start(() => RawToggle(1));
    }

    [GlobalSetup(Target = nameof(Driver_Toggle_2Threads))]
    public void SetupDriver()
    {
        Setup();
        _partner.Start(() => DriverToggle(1));
    }

    [GlobalSetup(Target = nameof(LockedDriver_Toggle_2Threads))]
    public void SetupLocked()
    {
        Setup();
        _partner.Start(() => LockedToggle(1));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _partner.Stop();
        _driver.Remove();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Ops)]
    public long RawWindow_Toggle_2Threads() => _partner.RunBoth(() => RawToggle(0));

    [Benchmark(OperationsPerInvoke = Ops)]
    public long Driver_Toggle_2Threads() => _partner.RunBoth(() => DriverToggle(0));

    [Benchmark(OperationsPerInvoke = Ops)]
    public long LockedDriver_Toggle_2Threads() => _partner.RunBoth(() => LockedToggle(0));

    private int RawToggle(int line)
    {
        for (int i = 0; i < Ops; i++)
        {
            byte v = _regs.Read(Alias[line]);
            _regs.Write(Alias[line], (byte)(v ^ (1 << line)));
        }

        return Ops;
    }

    private int DriverToggle(int line)
    {
        for (int i = 0; i < Ops; i++)
        {
            _driver.Get(line, out bool v);
            _driver.Set(line, !v);
        }

        return Ops;
    }

    private int LockedToggle(int line)
    {
        for (int i = 0; i < Ops; i++)
        {
            _locked.Get(line, out bool v);
            _locked.Set(line, !v);
        }

        return Ops;
    }
}

/// <summary>
/// Interrupt delivery: a rising edge on an input pin until the line's handler has run (the model
/// raises the parent interrupt synchronously; the driver reads GPIOMIS, acks, dispatches), per
/// edge. Baseline: the model's own interrupt event with no driver (the pin change alone).
/// </summary>
public class Pl061InterruptBenchmarks
{
    private const int Edges = 100;

    private readonly RawPl061Model _bare = new();
    private readonly RawPl061Model _model = new();
    private Pl061Driver<RawDeviceBackend> _driver = null!;
    private int _handled;

    [GlobalSetup]
    public void Setup()
    {
        var io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(_model, WindowSize));
        Pl061Driver<RawDeviceBackend>.Probe(io, null, h =>
        {
            _model.InterruptChanged += h;
            return new ActionDisposable(() => _model.InterruptChanged -= h);
        }, out var d, out _);
        _driver = d!;
        _driver.SetIrqType(2, RawGpioIrqType.EdgeRising);
        _driver.SetIrqHandler(2, _ => _handled++);
        var bareIo = new RawIo<RawDeviceBackend>(new RawDeviceBackend(_bare, WindowSize));
        bareIo.TryWrite8(0x04, GPIOIE);
        bareIo.TryWrite8(0x04, GPIOIEV);
        _bare.InterruptChanged += up =>
        {
            if (up)
            {
                _handled++;
                bareIo.TryWrite8(0x04, GPIOIC);
            }
        };
    }

    [GlobalCleanup]
    public void Cleanup() => _driver.Remove();


    [Benchmark(Baseline = true, OperationsPerInvoke = Edges)]
    public int Model_EdgeToEvent()
    {
        for (int i = 0; i < Edges; i++)
        {
            _bare.SetInput(2, true);
            _bare.SetInput(2, false);
        }

        return _handled;
    }

    [Benchmark(OperationsPerInvoke = Edges)]
    public int Driver_EdgeToHandler()
    {
        for (int i = 0; i < Edges; i++)
        {
            _model.SetInput(2, true);
            _model.SetInput(2, false);
        }

        return _handled;
    }
}
