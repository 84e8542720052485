// The first N lines of a chip as a chip of N lines: how a device with fewer lines than its
// controller is offered (refruntime-vhost-gpio --lines N over the 8-line PL061). Lines N and up
// do not exist for the user: every operation on them answers InvalidArgument, as any line out
// of range does.

using System;

namespace RefRuntime.Core.Devices.Gpio;

/// <summary>Lines [0, <see cref="LineCount"/>) of another chip (see file comment).</summary>
public sealed class GpioChipSlice : IGpioChip
{
    private readonly IGpioChip _chip;

    /// <summary>Offers lines 0..<paramref name="lines"/>−1 of <paramref name="chip"/>.</summary>
    public GpioChipSlice(IGpioChip chip, int lines)
    {
        ArgumentNullException.ThrowIfNull(chip);
        ArgumentOutOfRangeException.ThrowIfLessThan(lines, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(lines, chip.LineCount);
        _chip = chip;
        LineCount = lines;
    }

    /// <inheritdoc/>
    public int LineCount { get; }

    /// <inheritdoc/>
    public RrStatus GetDirection(int line, out RawGpioDirection direction)
    {
        direction = RawGpioDirection.Input;
        return In(line) ? _chip.GetDirection(line, out direction) : RrStatus.InvalidArgument;
    }

    /// <inheritdoc/>
    public RrStatus DirectionInput(int line) => In(line) ? _chip.DirectionInput(line) : RrStatus.InvalidArgument;

    /// <inheritdoc/>
    public RrStatus DirectionOutput(int line, bool value) => In(line) ? _chip.DirectionOutput(line, value) : RrStatus.InvalidArgument;

    /// <inheritdoc/>
    public RrStatus Get(int line, out bool value)
    {
        value = false;
        return In(line) ? _chip.Get(line, out value) : RrStatus.InvalidArgument;
    }

    /// <inheritdoc/>
    public RrStatus Set(int line, bool value) => In(line) ? _chip.Set(line, value) : RrStatus.InvalidArgument;

    /// <inheritdoc/>
    public RrStatus SetIrqType(int line, RawGpioIrqType type) => In(line) ? _chip.SetIrqType(line, type) : RrStatus.InvalidArgument;

    /// <inheritdoc/>
    public RrStatus SetIrqHandler(int line, Action<int>? handler) => In(line) ? _chip.SetIrqHandler(line, handler) : RrStatus.InvalidArgument;

    /// <inheritdoc/>
    public RrStatus DisableIrqNoSync(int line) => In(line) ? _chip.DisableIrqNoSync(line) : RrStatus.InvalidArgument;

    /// <inheritdoc/>
    public RrStatus GetIrqStats(int line, out RawGpioIrqStats stats)
    {
        stats = default;
        return In(line) ? _chip.GetIrqStats(line, out stats) : RrStatus.InvalidArgument;
    }

    private bool In(int line) => (uint)line < (uint)LineCount;
}
