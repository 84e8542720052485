using System.Threading;
using BenchmarkDotNet.Attributes;

namespace RefRuntime.Benchmarks.Io;

// Inside the namespace: this file means Core's types, found here before the safe layer's (namespace RefRuntime).
using RefRuntime.Core.Io;

/// <summary>
/// 32-bit register reads and writes, 1000 per invocation. Baseline: a raw volatile pointer access.
/// Goals (issue #6): LE through a bound window ≤ 1.1× raw, BE ≤ 1.25× raw; the lock-protected
/// accessor and device-window dispatch are reported.
/// </summary>
public unsafe class IoBenchmarks
{
    private const int Accesses = 1000;

    public sealed class Map : IRawRegisterMap
    {
        public static nuint Size => 0x100;
    }

    private static readonly RawReg32<Map> Reg = new(0x40);

    private sealed class NullDevice : IRawDeviceModel
    {
        public ulong Value;

        public ulong Read(nuint offset, int width) => Value;

        public void Write(nuint offset, int width, ulong value) => Value = value;
    }

    private RawIoRegion _region = null!;
    private RawMappedIo<Map, RawMemoryBackend> _regs;
    private RawMappedIo<Map, RawDeviceBackend> _device;
    private uint* _raw;
    private readonly Lock _lock = new();

    [GlobalSetup]
    public void Setup()
    {
        _region = RawIoRegion.Allocate(0x100);
        _regs = _region.Io.Bind<Map>();
        _raw = (uint*)(_region.Io.Backend.Base + 0x40);
        _device = new RawIo<RawDeviceBackend>(new RawDeviceBackend(new NullDevice(), 0x100)).Bind<Map>();
    }

    [GlobalCleanup]
    public void Cleanup() => _region.Dispose();

    [Benchmark(Baseline = true, OperationsPerInvoke = Accesses)]
    public uint Raw_VolatileRead32()
    {
        uint sum = 0;
        uint* p = _raw;
        for (int i = 0; i < Accesses; i++)
        {
            sum += Volatile.Read(ref *p);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public uint Io_ReadLe32()
    {
        uint sum = 0;
        RawMappedIo<Map, RawMemoryBackend> r = _regs;
        for (int i = 0; i < Accesses; i++)
        {
            sum += r.ReadLe32(Reg);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public uint Io_ReadBe32()
    {
        uint sum = 0;
        RawMappedIo<Map, RawMemoryBackend> r = _regs;
        for (int i = 0; i < Accesses; i++)
        {
            sum += r.ReadBe32(Reg);
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public void Raw_VolatileWrite32()
    {
        uint* p = _raw;
        for (int i = 0; i < Accesses; i++)
        {
            Volatile.Write(ref *p, (uint)i);
        }
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public void Io_WriteLe32()
    {
        RawMappedIo<Map, RawMemoryBackend> r = _regs;
        for (int i = 0; i < Accesses; i++)
        {
            r.WriteLe32(Reg, (uint)i);
        }
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public void Io_WriteBe32()
    {
        RawMappedIo<Map, RawMemoryBackend> r = _regs;
        for (int i = 0; i < Accesses; i++)
        {
            r.WriteBe32(Reg, (uint)i);
        }
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public uint Io_CheckedTryReadLe32()
    {
        uint sum = 0;
        RawIo<RawMemoryBackend> io = _regs.Io;
        for (int i = 0; i < Accesses; i++)
        {
            io.TryReadLe32(0x40, out uint v);
            sum += v;
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public uint Locked_Read32()
    {
        uint sum = 0;
        uint* p = _raw;
        for (int i = 0; i < Accesses; i++)
        {
            lock (_lock)
            {
                sum += Volatile.Read(ref *p);
            }
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Accesses)]
    public uint DeviceWindow_ReadLe32()
    {
        uint sum = 0;
        RawMappedIo<Map, RawDeviceBackend> r = _device;
        for (int i = 0; i < Accesses; i++)
        {
            sum += r.ReadLe32(Reg);
        }

        return sum;
    }
}
