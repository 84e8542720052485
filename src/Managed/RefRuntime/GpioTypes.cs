// The values a GPIO chip speaks in (RefRuntime.Core.Devices.Gpio defines the same for the
// drivers): Linux's line directions and IRQ_TYPE_* triggers, and a line's interrupt counters.
// The enums have Core's values, so the chip converts with a cast (pinned by PublicSurfaceTests).

using System;

namespace RefRuntime;

/// <summary>A line's direction (Linux <c>GPIO_LINE_DIRECTION_OUT</c> = 0, <c>_IN</c> = 1).</summary>
public enum GpioDirection
{
    /// <summary>Output.</summary>
    Output = 0,

    /// <summary>Input.</summary>
    Input = 1,
}

/// <summary>Interrupt trigger (Linux <c>IRQ_TYPE_*</c> values). Choose one edge type or one level.</summary>
[Flags]
public enum GpioIrqType
{
    /// <summary>No trigger: the line's interrupt is disabled (an interrupt still raised counts as spurious).</summary>
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

/// <summary>A line's interrupt counters (kernel/irq/spurious.c); counters only grow.</summary>
/// <param name="Handled">Interrupts handed to the line's handler.</param>
/// <param name="Spurious">Interrupts no handler was called for: trigger <see cref="GpioIrqType.None"/>, or no handler installed.</param>
/// <param name="StuckDisables">Times the line was disabled as stuck ("nobody cared").</param>
/// <param name="IsDisabled">Whether the line is disabled as stuck now (masked until its handler or trigger is set again).</param>
public readonly record struct GpioIrqStats(ulong Handled, ulong Spurious, ulong StuckDisables, bool IsDisabled);
