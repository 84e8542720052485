// The GPIO chip interface that consumer code is written against: served by the PL061 driver
// directly and, later, by the virtio-gpio front end through the ring, so the same consumer and
// benchmark run over either path. Values follow Linux's gpio_chip / irq types.

namespace RefRuntime.Core.Devices.Gpio;

/// <summary>A line's direction (Linux <c>GPIO_LINE_DIRECTION_OUT</c> = 0, <c>_IN</c> = 1).</summary>
public enum GpioDirection
{
    /// <summary>Output.</summary>
    Output = 0,

    /// <summary>Input.</summary>
    Input = 1,
}

/// <summary>Interrupt trigger (Linux <c>IRQ_TYPE_*</c> values).</summary>
[System.Flags]
public enum GpioIrqType
{
    /// <summary>No trigger: the line's interrupt is disabled.</summary>
    None = 0,

    /// <summary>Rising edge.</summary>
    EdgeRising = 1,

    /// <summary>Falling edge.</summary>
    EdgeFalling = 2,

    /// <summary>Both edges.</summary>
    EdgeBoth = EdgeRising | EdgeFalling,

    /// <summary>High level.</summary>
    LevelHigh = 4,

    /// <summary>Low level.</summary>
    LevelLow = 8,
}

/// <summary>
/// A GPIO chip. Every operation returns <see cref="RrStatus.Ok"/>, <see cref="RrStatus.InvalidArgument"/>
/// (line out of range, invalid trigger) or <see cref="RrStatus.NoDevice"/> (the device is gone).
/// </summary>
public interface IGpioChip
{
    /// <summary>Number of lines.</summary>
    int LineCount { get; }

    /// <summary>A line's direction.</summary>
    RrStatus GetDirection(int line, out GpioDirection direction);

    /// <summary>Makes a line an input.</summary>
    RrStatus DirectionInput(int line);

    /// <summary>Makes a line an output driving <paramref name="value"/>.</summary>
    RrStatus DirectionOutput(int line, bool value);

    /// <summary>A line's level.</summary>
    RrStatus Get(int line, out bool value);

    /// <summary>Drives an output line.</summary>
    RrStatus Set(int line, bool value);

    /// <summary>Sets a line's interrupt trigger.</summary>
    RrStatus SetIrqType(int line, GpioIrqType type);

    /// <summary>Routes a line's interrupt to <paramref name="handler"/> (called with the line) and unmasks it; null unsubscribes and masks.</summary>
    RrStatus SetIrqHandler(int line, System.Action<int>? handler);
}

/// <summary>A GPIO chip backed by a device that can be suspended, resumed and removed.</summary>
public interface IGpioDevice : IGpioChip
{
    /// <summary>Saves the registers (Linux suspend).</summary>
    RrStatus Suspend();

    /// <summary>Restores the registers (Linux resume).</summary>
    RrStatus Resume();

    /// <summary>Removes the device: later calls answer <see cref="RrStatus.NoDevice"/>.</summary>
    RrStatus Remove();

    /// <summary>The parent interrupt line changed (a host without a model feeds its interrupt in here).</summary>
    void Interrupt(bool asserted);

    /// <summary>Removes the device if needed and frees what it owns; the last user calls it.</summary>
    RrStatus Destroy();
}
