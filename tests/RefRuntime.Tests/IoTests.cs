using System;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>MMIO through the safe layer: regions, checked and bound windows, device models.</summary>
public sealed class IoTests
{
    private sealed class SmallMap : IRegisterMap
    {
        public static nuint Size => 0x40;
    }

    private sealed class Pl061Map : IRegisterMap
    {
        public static nuint Size => Pl061Model.WindowSize;
    }

    private static readonly Reg8<SmallMap> Byte0 = new(0x00);
    private static readonly Reg32<SmallMap> Word = new(0x10);
    private static readonly Reg64<SmallMap> Quad = new(0x38);
    private static readonly Reg32<Pl061Map> GPIODIR = new(0x400);
    private static readonly Reg32<Pl061Map> GPIODATA_ALL = new(0x3fc); // address bits [9:2] mask every line

    // A bound window writes and reads in the byte order its name says; the checked accessors see the same bytes.
    [Fact]
    public void Bound_LeAndBe_BytesInBusOrder()
    {
        using var region = IoRegion.Allocate(0x40);
        MappedIo<SmallMap, MemoryBackend> regs = region.Io.Bind<SmallMap>();
        regs.WriteLe32(Word, 0x1122_3344);
        Assert.True(regs.Io.TryRead8(0x10, out byte lsb));
        Assert.Equal(0x44, lsb);
        Assert.Equal(0x4433_2211u, regs.ReadBe32(Word));
        regs.WriteBe64(Quad, 0x0102_0304_0506_0708);
        Assert.Equal(0x0807_0605_0403_0201ul, regs.ReadLe64(Quad));
        regs.Write(Byte0, 0xab);
        Assert.Equal(0xab, regs.ReadRelaxed(Byte0));
        Assert.Equal(0x40u, (uint)region.Io.Size);
    }

    // Run-time offsets are checked: out of bounds, overflowing or misaligned accesses are refused.
    [Fact]
    public void Checked_BadOffsets_Refused()
    {
        using var region = IoRegion.Pin(new ulong[8]);
        Io<MemoryBackend> io = region.Io;
        Assert.True(io.TryWriteLe32(7, 0x3c));
        Assert.False(io.TryWriteLe32(7, 0x3e));            // misaligned
        Assert.False(io.TryReadLe64(0x40, out ulong v));    // past the end
        Assert.Equal(0ul, v);
        Assert.False(io.TryReadLe16(nuint.MaxValue - 1, out _)); // would overflow
        Assert.Equal(7u, io.ReadLe32(0x3c));
        Assert.Throws<ArgumentOutOfRangeException>(() => io.WriteLe32(1, 0x40));
    }

    // A register that does not fit its map, and a window smaller than the map, are refused
    // where they are declared or bound, naming the user's map (not an adapter).
    [Fact]
    public void RegisterMap_Misfits_RefusedNamingTheMap()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Reg32<SmallMap>(0x3e));
        Assert.Contains(nameof(SmallMap), e.Message, StringComparison.Ordinal);
        using var tiny = IoRegion.Allocate(0x20);
        var b = Assert.Throws<ArgumentException>(() => tiny.Io.Bind<SmallMap>());
        Assert.Contains(nameof(SmallMap), b.Message, StringComparison.Ordinal);
    }

    // The same driver code over a device model: the PL061 model behind a window reacts to its registers.
    [Fact]
    public void DeviceBackend_Pl061Model_RegistersDriveThePins()
    {
        var model = new Pl061Model();
        var io = new Io<DeviceBackend>(new DeviceBackend(model, Pl061Model.WindowSize));
        MappedIo<Pl061Map, DeviceBackend> regs = io.Bind<Pl061Map>();
        regs.WriteLe32(GPIODIR, 0x0f);
        regs.WriteLe32(GPIODATA_ALL, 0x5a);
        Assert.Equal(0x0a, model.Outputs);
        model.SetInput(7, true);
        Assert.Equal(0x8au, regs.ReadLe32(GPIODATA_ALL));
        Assert.Same(model, io.Backend.Model);
    }

    // Borrowed memory: a null or misaligned address is refused; a disposed region gives no window.
    [Fact]
    public void Region_WrapAndDispose()
    {
        Assert.Throws<ArgumentException>(() => IoRegion.DangerousWrap(0, 8));
        Assert.Throws<ArgumentException>(() => IoRegion.DangerousWrap(4, 8));
        var region = IoRegion.Allocate(16);
        region.Dispose();
        region.Dispose();
        Assert.True(region.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => region.Io);
    }
}
