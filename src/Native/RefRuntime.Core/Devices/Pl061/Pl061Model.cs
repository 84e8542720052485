// A register-accurate model of the ARM PrimeCell PL061 GPIO controller, served through an MMIO
// device window (IRawDeviceModel). Spec: docs/pl061.md (ARM DDI 0190: register map, GPIODATA
// address masking, interrupt detection, AFSEL; QEMU hw/gpio/pl061.c for what the manual
// leaves open).
//
// Registers are 8 bits wide at a 32-bit stride in a 4 KiB window, little endian: a read returns
// the register in bits [7:0] of its word (the other bits 0), a write uses bits [7:0] of the word
// and ignores the rest. Wider or narrower accesses are split into the words they cover, so a
// byte access to bits [15:8] of a word reads 0 and writes nothing.
//
// Interrupts. Edge detection follows QEMU: on every change of an input line's level, IS=0 lines
// latch RIS on the configured edge (IBE: both edges; else rising when IEV=1, falling when IEV=0),
// and the latch stays until software writes 1 to GPIOIC. Level-sensitive lines (IS=1) follow the
// hardware, not QEMU: RIS tracks the level (set while the line is at IEV's level, clear
// otherwise), so a level interrupt goes away with the level and GPIOIC has no lasting effect on
// it. QEMU instead keeps level bits latched until GPIOIC (docs/pl061.md, "Differences"); the
// hardware policy is the one the Linux driver assumes (gpio-pl061.c). The interrupt line is
// (RIS & IE) != 0; every change is reported to the handler, outside the model's lock.
//
// Bad offsets (reserved space, the Stellaris-only registers, a read of write-only GPIOIC, a write
// to a read-only register) read 0 and change nothing, and are counted.

using System;
using System.Threading;
using RefRuntime.Core.Io;

namespace RefRuntime.Core.Devices.Pl061;

/// <summary>PL061 register offsets and identification (datasheet spelling). Spec: docs/pl061.md.</summary>
public static class Pl061Regs
{
    /// <summary>Data: 0x000-0x3FC, bits [9:2] of the offset mask the access.</summary>
    public const uint GPIODATA = 0x000;

    /// <summary>Direction: 1 = output.</summary>
    public const uint GPIODIR = 0x400;

    /// <summary>Interrupt sense: 1 = level, 0 = edge.</summary>
    public const uint GPIOIS = 0x404;

    /// <summary>Interrupt both edges.</summary>
    public const uint GPIOIBE = 0x408;

    /// <summary>Interrupt event: 1 = rising/high, 0 = falling/low.</summary>
    public const uint GPIOIEV = 0x40C;

    /// <summary>Interrupt mask (enable).</summary>
    public const uint GPIOIE = 0x410;

    /// <summary>Raw interrupt status (read-only).</summary>
    public const uint GPIORIS = 0x414;

    /// <summary>Masked interrupt status (read-only).</summary>
    public const uint GPIOMIS = 0x418;

    /// <summary>Interrupt clear (write-only, write 1 to clear an edge latch).</summary>
    public const uint GPIOIC = 0x41C;

    /// <summary>Alternate function (mode) select.</summary>
    public const uint GPIOAFSEL = 0x420;

    /// <summary>First identification register (GPIOPeriphID0 at 0xFE0; 0xFD0-0xFDC read 0).</summary>
    public const uint GPIOPeriphID0 = 0xFE0;

    /// <summary>First PrimeCell identification register.</summary>
    public const uint GPIOPCellID0 = 0xFF0;

    /// <summary>Size of the register window.</summary>
    public const uint WindowSize = 0x1000;

    /// <summary>Number of GPIO lines.</summary>
    public const int Lines = 8;

    /// <summary>PeriphID as the AMBA bus packs it (little end first): part 0x061, designer 0x41 (ARM), revision 0.</summary>
    public const uint PeriphId = 0x0004_1061;

    /// <summary>The AMBA PrimeCell identification (<c>AMBA_CID</c>).</summary>
    public const uint CellId = 0xB105_F00D;

    /// <summary>The identification bytes at 0xFD0..0xFFC, one per word (QEMU's <c>pl061_id</c>).</summary>
    internal static ReadOnlySpan<byte> IdBytes => [0, 0, 0, 0, 0x61, 0x10, 0x04, 0x00, 0x0D, 0xF0, 0x05, 0xB1];
}

/// <summary>The PL061 model (see file comment). Thread-safe: MMIO from drivers and pin changes from the board may race.</summary>
public sealed class RawPl061Model : IRawDeviceModel
{
    private readonly Lock _lock = new();
    private byte _data;      // outputs: last written; inputs: the pin level
    private byte _dir;
    private byte _is;
    private byte _ibe;
    private byte _iev;
    private byte _ie;
    private byte _ris;
    private byte _afsel;
    private byte _inputs;    // levels driven from outside on every pin
    private byte _oldIn;
    private bool _irq;
    private long _badAccesses;

    /// <summary>Called with the new level whenever the interrupt line (GPIOINTR) changes, outside the model's lock.</summary>
    public event Action<bool>? InterruptChanged;

    /// <summary>Called with the new output levels (DATA &amp; DIR) whenever they change, outside the lock.</summary>
    public event Action<byte>? OutputsChanged;

    /// <summary>The levels the model drives on its output lines (DATA &amp; DIR).</summary>
    public byte Outputs
    {
        get
        {
            lock (_lock)
            {
                return (byte)(_data & _dir);
            }
        }
    }

    /// <summary>The interrupt line.</summary>
    public bool Interrupt
    {
        get
        {
            lock (_lock)
            {
                return _irq;
            }
        }
    }

    /// <summary>Accesses to bad offsets so far (reads of write-only or reserved registers, writes to read-only ones).</summary>
    public long BadAccesses => Interlocked.Read(ref _badAccesses);

    /// <summary>Drives input line <paramref name="line"/> from outside (a board, a test). Ignored while the line is an output.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="line"/> is not 0..7.</exception>
    public void SetInput(int line, bool level)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(line);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(line, Pl061Regs.Lines);
        Snapshot before, after;
        lock (_lock)
        {
            before = SnapshotLocked();
            byte bit = (byte)(1 << line);
            _inputs = level ? (byte)(_inputs | bit) : (byte)(_inputs & ~bit);
            UpdateLocked();
            after = SnapshotLocked();
        }

        Deliver(before, after);
    }

    /// <summary>Returns every register to its reset value (all zero, as QEMU); the pins keep their external levels.</summary>
    public void Reset()
    {
        Snapshot before, after;
        lock (_lock)
        {
            before = SnapshotLocked();
            _data = _dir = _is = _ibe = _iev = _ie = _ris = _afsel = 0;
            _oldIn = 0;
            UpdateLocked();
            after = SnapshotLocked();
        }

        Deliver(before, after);
    }

    /// <inheritdoc/>
    public ulong Read(nuint offset, int width)
    {
        ulong value = 0;
        lock (_lock)
        {
            for (int i = 0; i < width; i++)
            {
                nuint a = offset + (nuint)i;
                if ((a & 3) == 0)
                {
                    // Byte lane 0 of a word holds the register; lanes 1-3 read as 0.
                    value |= (ulong)ReadRegisterLocked((uint)a) << (i * 8);
                }
            }
        }

        return value;
    }

    /// <inheritdoc/>
    public void Write(nuint offset, int width, ulong value)
    {
        Snapshot before, after;
        lock (_lock)
        {
            before = SnapshotLocked();
            for (int i = 0; i < width; i++)
            {
                nuint a = offset + (nuint)i;
                // Only bits [7:0] of each word reach the register; an accepted write runs the
                // update, a refused one does not (QEMU).
                if ((a & 3) == 0 && WriteRegisterLocked((uint)a, (byte)(value >> (i * 8))))
                {
                    UpdateLocked();
                }
            }

            after = SnapshotLocked();
        }

        Deliver(before, after);
    }

    private byte ReadRegisterLocked(uint a)
    {
        if (a <= 0x3FC)
        {
            return (byte)(CurrentDataLocked() & (byte)(a >> 2));
        }

        switch (a)
        {
            case Pl061Regs.GPIODIR: return _dir;
            case Pl061Regs.GPIOIS: return _is;
            case Pl061Regs.GPIOIBE: return _ibe;
            case Pl061Regs.GPIOIEV: return _iev;
            case Pl061Regs.GPIOIE: return _ie;
            case Pl061Regs.GPIORIS: return _ris;
            case Pl061Regs.GPIOMIS: return (byte)(_ris & _ie);
            case Pl061Regs.GPIOAFSEL: return _afsel;
        }

        if (a >= 0xFD0 && a <= 0xFFC)
        {
            return Pl061Regs.IdBytes[(int)((a - 0xFD0) >> 2)];
        }

        Interlocked.Increment(ref _badAccesses); // GPIOIC, reserved space
        return 0;
    }

    /// <returns>Whether the write was accepted (QEMU runs its update only then).</returns>
    private bool WriteRegisterLocked(uint a, byte v)
    {
        if (a <= 0x3FC)
        {
            // Only lines that are both selected by the address mask and outputs change (docs/pl061.md).
            byte mask = (byte)((a >> 2) & _dir);
            _data = (byte)((_data & ~mask) | (v & mask));
            return true;
        }

        switch (a)
        {
            case Pl061Regs.GPIODIR: _dir = v; return true;
            case Pl061Regs.GPIOIS: _is = v; return true;
            case Pl061Regs.GPIOIBE: _ibe = v; return true;
            case Pl061Regs.GPIOIEV: _iev = v; return true;
            case Pl061Regs.GPIOIE: _ie = v; return true;
            case Pl061Regs.GPIOIC: _ris &= (byte)~v; return true;
            case Pl061Regs.GPIOAFSEL: _afsel = v; return true; // commit register is 0xFF on the plain PL061
        }

        Interlocked.Increment(ref _badAccesses); // RIS, MIS, IDs, reserved space
        return false;
    }

    /// <summary>DATA as software sees it: outputs keep their written value, inputs show the pin.</summary>
    private byte CurrentDataLocked() => (byte)((_data & _dir) | (_inputs & ~_dir));

    private void UpdateLocked()
    {
        // Inputs follow their pins.
        _data = CurrentDataLocked();
        byte level = _data;
        // Edge detection on input lines (QEMU's policy): changed levels latch on the configured edge.
        byte changed = (byte)((_oldIn ^ level) & ~_dir);
        _oldIn = level;
        byte edge = (byte)(changed & ~_is);
        byte rising = (byte)(edge & level);
        byte falling = (byte)(edge & ~level);
        _ris |= (byte)(edge & _ibe);
        _ris |= (byte)(rising & ~_ibe & _iev);
        _ris |= (byte)(falling & ~_ibe & ~_iev);
        // Level detection (hardware policy): RIS follows the level on IS lines.
        byte active = (byte)(~(level ^ _iev) & _is);
        _ris = (byte)((_ris & ~_is) | active);
        _irq = (_ris & _ie) != 0;
    }

    private Snapshot SnapshotLocked() => new(_irq, (byte)(_data & _dir));

    private void Deliver(Snapshot before, Snapshot after)
    {
        if (before.Outputs != after.Outputs)
        {
            OutputsChanged?.Invoke(after.Outputs);
        }

        if (before.Irq != after.Irq)
        {
            InterruptChanged?.Invoke(after.Irq);
        }
    }

    private readonly record struct Snapshot(bool Irq, byte Outputs);
}
