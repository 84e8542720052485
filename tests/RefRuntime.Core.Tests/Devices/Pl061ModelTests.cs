using System.Collections.Generic;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Io;
using Xunit;
using static RefRuntime.Core.Devices.Pl061.Pl061Regs;

namespace RefRuntime.Core.Tests.Devices;

/// <summary>The PL061 model against docs/pl061.md, accessed through an MMIO device window.</summary>
public sealed class Pl061ModelTests
{
    private readonly RawPl061Model _dev = new();
    private readonly RawIo<RawDeviceBackend> _io;
    private readonly List<bool> _irqs = new();

    public Pl061ModelTests()
    {
        _io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(_dev, WindowSize));
        _dev.InterruptChanged += _irqs.Add;
    }

    private byte R(uint off)
    {
        Assert.True(_io.TryRead8(off, out byte v));
        return v;
    }

    private void W(uint off, byte v) => Assert.True(_io.TryWrite8(v, off));

    // Reset values are zero; the identification packs to PeriphID 0x00041061 and AMBA_CID (docs/pl061.md).
    [Fact]
    public void Reset_AndIdentification_MatchDatasheet()
    {
        foreach (uint r in new[] { GPIODIR, GPIOIS, GPIOIBE, GPIOIEV, GPIOIE, GPIORIS, GPIOMIS, GPIOAFSEL, 0x3FCu })
        {
            Assert.Equal(0, R(r));
        }

        uint periph = 0, cell = 0;
        for (int i = 0; i < 4; i++)
        {
            Assert.True(_io.TryReadLe32(GPIOPeriphID0 + (uint)(4 * i), out uint p));
            Assert.True(_io.TryReadLe32(GPIOPCellID0 + (uint)(4 * i), out uint c));
            Assert.Equal(0u, p & 0xFFFFFF00); // 8-bit registers: [31:8] read 0
            periph |= (p & 0xFF) << (8 * i);
            cell |= (c & 0xFF) << (8 * i);
        }

        Assert.Equal(PeriphId, periph);
        Assert.Equal(CellId, cell);
        for (uint a = 0xFD0; a < 0xFE0; a += 4)
        {
            Assert.Equal(0, R(a));
        }
    }

    // GPIODATA at every one of the 256 masks: reads return DATA & mask, writes change only masked output bits (docs/pl061.md).
    [Fact]
    public void Data_EveryMask_ReadsAndWritesOnlyMaskedBits()
    {
        W(GPIODIR, 0xFF);
        foreach (byte v in new byte[] { 0x00, 0xFF, 0xA5, 0x3C })
        {
            for (uint m = 0; m < 256; m++)
            {
                W(0x3FC, 0x5A);
                W(m << 2, v);
                byte expected = (byte)((0x5A & ~m) | (v & m));
                Assert.Equal(expected, R(0x3FC));
                Assert.Equal((byte)(expected & m), R(m << 2));
            }
        }

        Assert.Equal(0, R(0x000)); // mask 0: reads 0 ...
        W(0x3FC, 0x0F);
        W(0x000, 0xFF);            // ... and writes nothing
        Assert.Equal(0x0F, R(0x3FC));
    }

    // Writes to input lines are dropped; inputs read the pin (docs/pl061.md) - why direction_output writes twice.
    [Fact]
    public void Data_WritesToInputsDropped_InputsReadPins()
    {
        W(GPIODIR, 0x0F);
        W(0x3FC, 0xFF);
        Assert.Equal(0x0F, R(0x3FC));
        Assert.Equal(0x0F, _dev.Outputs);
        _dev.SetInput(7, true);
        Assert.Equal(0x8F, R(0x3FC));
        _dev.SetInput(0, false); // an output line ignores the pin
        Assert.Equal(0x8F, R(0x3FC));
        W(GPIODIR, 0x00);        // line 0..3 now inputs: their pins are low
        Assert.Equal(0x80, R(0x3FC));
        W(4 << 3, 0xFF);         // value written while an input: lost ...
        W(GPIODIR, 0x08);
        Assert.Equal(0x80, R(0x3FC)); // ... so line 3 stays low after becoming an output
    }

    public static TheoryData<string, byte, byte, byte, bool, bool> EdgeCases => new()
    {
        // name, IS, IBE, IEV, latches on rising, latches on falling
        { "rising", 0, 0, 1, true, false },
        { "falling", 0, 0, 0, false, true },
        { "both", 0, 1, 0, true, true },
        { "both (IEV ignored)", 0, 1, 1, true, true },
    };

    // Edge triggers latch RIS until GPIOIC; MIS = RIS & IE drives the line (docs/pl061.md).
    [Theory]
    [MemberData(nameof(EdgeCases))]
    public void Edge_LatchesOnConfiguredEdge_ClearedByIC(string name, byte isense, byte ibe, byte iev, bool onRise, bool onFall)
    {
        const byte bit = 1 << 2;
        W(GPIOIS, (byte)(isense * bit));
        W(GPIOIBE, (byte)(ibe * bit));
        W(GPIOIEV, (byte)(iev * bit));
        W(GPIOIE, bit);
        _dev.SetInput(2, true);
        Assert.Equal(onRise ? bit : 0, R(GPIORIS));
        Assert.Equal(onRise, _dev.Interrupt);
        W(GPIOIC, bit);
        Assert.Equal(0, R(GPIORIS));
        Assert.False(_dev.Interrupt);
        _dev.SetInput(2, false);
        Assert.Equal(onFall ? bit : 0, R(GPIORIS));
        Assert.Equal(onFall ? bit : 0, R(GPIOMIS));
        _dev.SetInput(2, false); // no edge, no change
        W(GPIOIE, 0);            // masked: RIS stays, MIS and the line drop
        Assert.Equal(onFall ? bit : 0, R(GPIORIS));
        Assert.Equal(0, R(GPIOMIS));
        Assert.False(_dev.Interrupt);
        Assert.NotNull(name);
    }

    // Level triggers follow the level (the hardware policy chosen in the model): GPIOIC has no lasting effect.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Level_RisFollowsLevel_NotLatched(bool high)
    {
        const byte bit = 1 << 5;
        _dev.SetInput(5, !high);
        W(GPIOIS, bit);
        W(GPIOIEV, high ? bit : (byte)0);
        W(GPIOIE, bit);
        Assert.Equal(0, R(GPIORIS));
        _dev.SetInput(5, high);
        Assert.Equal(bit, R(GPIORIS));
        Assert.True(_dev.Interrupt);
        W(GPIOIC, bit); // the level is still there: the status stays
        Assert.Equal(bit, R(GPIORIS));
        _dev.SetInput(5, !high); // the level goes away: so does the interrupt
        Assert.Equal(0, R(GPIORIS));
        Assert.False(_dev.Interrupt);
        Assert.Equal(new[] { true, false }, _irqs);
    }

    // AFSEL keeps 8 bits; registers ignore bits [31:8]; byte lanes 1-3 read 0 and write nothing (docs/pl061.md).
    [Fact]
    public void Widths_AndAfsel()
    {
        Assert.True(_io.TryWriteLe32(0x1FF, GPIOAFSEL));
        Assert.Equal(0xFF, R(GPIOAFSEL));
        Assert.True(_io.TryWriteLe32(0xAB12, GPIODIR));
        Assert.True(_io.TryReadLe32(GPIODIR, out uint dir));
        Assert.Equal(0x12u, dir);
        W(GPIODIR + 1, 0xFF);
        Assert.True(_io.TryRead8(GPIODIR + 1, out byte lane1));
        Assert.Equal(0, lane1);
        Assert.Equal(0x12, R(GPIODIR));
        Assert.False(_io.TryWriteLe64(0x0000_0033_0000_0044, GPIOIS)); // 0x404 is not 8-byte aligned: refused
        Assert.True(_io.TryWriteLe64(0x0000_0033_0000_0044, GPIODIR)); // DIR = 0x44, IS = 0x33
        Assert.Equal(0x44, R(GPIODIR));
        Assert.Equal(0x33, R(GPIOIS));
    }

    // Bad offsets read 0, writes change nothing, both are counted.
    [Fact]
    public void BadOffsets_ReadZero_WritesIgnored()
    {
        long bad = _dev.BadAccesses;
        Assert.Equal(0, R(0x424));
        Assert.Equal(0, R(GPIOIC));       // write-only
        Assert.Equal(0, R(0x520));        // Stellaris lock register: not on the plain PL061
        _dev.SetInput(1, true);
        W(GPIOIBE, 2);
        W(GPIOIE, 2);
        _dev.SetInput(1, false);
        W(GPIORIS, 0);                    // read-only: no effect
        W(0xFE0, 0x99);                   // ID: no effect
        Assert.Equal(2, R(GPIORIS));
        Assert.Equal(0x61, R(0xFE0));
        Assert.Equal(bad + 5, _dev.BadAccesses);
    }

    // Outputs are observable; Reset returns everything to zero and drops the interrupt.
    [Fact]
    public void Outputs_ObservableAndReset()
    {
        var outputs = new List<byte>();
        _dev.OutputsChanged += outputs.Add;
        W(GPIODIR, 0x03);
        W(0x3FC, 0x01);
        W(0x3FC, 0x03);
        Assert.Equal(new byte[] { 0x01, 0x03 }, outputs);
        _dev.SetInput(4, true);
        W(GPIOIS, 0x10);
        W(GPIOIEV, 0x10);
        W(GPIOIE, 0x10);
        Assert.True(_dev.Interrupt);
        _dev.Reset();
        Assert.False(_dev.Interrupt);
        Assert.Equal(0, R(GPIODIR));
        Assert.Equal(0x10, R(0x3FC)); // the pin is still driven high from outside
    }
}
