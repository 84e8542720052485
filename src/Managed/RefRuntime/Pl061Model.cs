// The PL061 device model for .NET callers: RefRuntime.Core.Devices.Pl061 holds the model
// (register-accurate, docs/pl061.md); this class owns one and is what GpioChip.ProbePl061 takes.

using System;

namespace RefRuntime;

/// <summary>
/// A register-accurate ARM PrimeCell PL061 GPIO controller (8 lines, a 4 KiB register window):
/// the board side drives its inputs (<see cref="SetInput"/>) and sees its outputs and interrupt
/// line; a driver reaches its registers through <see cref="GpioChip.ProbePl061"/> or, as an
/// <see cref="IDeviceModel"/>, through any MMIO window. Thread-safe.
/// </summary>
public sealed class Pl061Model : IDeviceModel
{
    /// <summary>Lines of a PL061.</summary>
    public const int Lines = 8;

    /// <summary>Bytes of register space (the window a driver needs).</summary>
    public const int WindowSize = 0x1000;

    internal Core.Devices.Pl061.RawPl061Model Raw { get; } = new();

    /// <summary>Called with the new level whenever the interrupt line (GPIOINTR) changes, outside the model's lock.</summary>
    public event Action<bool>? InterruptChanged
    {
        add => Raw.InterruptChanged += value;
        remove => Raw.InterruptChanged -= value;
    }

    /// <summary>Called with the new output levels (DATA &amp; DIR) whenever they change, outside the lock.</summary>
    public event Action<byte>? OutputsChanged
    {
        add => Raw.OutputsChanged += value;
        remove => Raw.OutputsChanged -= value;
    }

    /// <summary>The levels the model drives on its output lines (bit n: line n).</summary>
    public byte Outputs => Raw.Outputs;

    /// <summary>The interrupt line.</summary>
    public bool Interrupt => Raw.Interrupt;

    /// <summary>Accesses to bad offsets so far (reads of write-only or reserved registers, writes to read-only ones).</summary>
    public long BadAccesses => Raw.BadAccesses;

    /// <summary>Drives input line <paramref name="line"/> from outside (a board, a test). Ignored while the line is an output.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="line"/> is not 0..7.</exception>
    public void SetInput(int line, bool level) => Raw.SetInput(line, level);

    /// <summary>Returns every register to its reset value; the pins keep their external levels.</summary>
    public void Reset() => Raw.Reset();

    /// <inheritdoc/>
    public ulong Read(nuint offset, int width) => Raw.Read(offset, width);

    /// <inheritdoc/>
    public void Write(nuint offset, int width, ulong value) => Raw.Write(offset, width, value);
}
