// The GPIO chip interface that consumer code is written against: served by the PL061 driver
// directly and by the virtio-gpio front end through the ring, so the same consumer and
// benchmark run over either path. Values follow Linux's gpio_chip / irq types.
//
// Interrupt handler lifetimes follow the kernel's request_irq / free_irq / synchronize_irq
// (kernel/irq/manage.c): a chip runs its handlers one at a time; when SetIrqHandler clears or
// replaces a handler, or the device is removed, no old handler is still running and none will
// start. Such a wait from inside one of the chip's own handlers would wait for itself, so it is
// refused with WouldDeadlock and changes nothing. Lines that misbehave are handled as in
// kernel/irq/spurious.c: an interrupt no handler is called for (trigger NONE: handle_bad_irq) is
// counted as spurious; a level line whose handler returns with the level still asserted, time
// after time, is disabled ("nobody cared"), counted and reported once, until it is re-armed.

namespace RefRuntime.Core.Devices.Gpio;

/// <summary>A line's direction (Linux <c>GPIO_LINE_DIRECTION_OUT</c> = 0, <c>_IN</c> = 1).</summary>
public enum RawGpioDirection
{
    /// <summary>Output.</summary>
    Output = 0,

    /// <summary>Input.</summary>
    Input = 1,
}

/// <summary>Interrupt trigger (Linux <c>IRQ_TYPE_*</c> values).</summary>
[System.Flags]
public enum RawGpioIrqType
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

/// <summary>A line's interrupt counters (<c>rr_gpio_irq_stats_t</c> in the C header: same layout).</summary>
/// <remarks>Counters only grow; <see cref="Disabled"/> is the line's state now.</remarks>
[System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
public struct RawGpioIrqStats
{
    /// <summary>Interrupts handed to the line's handler.</summary>
    public ulong Handled;

    /// <summary>Interrupts no handler was called for: trigger NONE (Linux <c>handle_bad_irq</c>), or no handler installed.</summary>
    public ulong Spurious;

    /// <summary>Times the line was disabled as stuck (kernel/irq/spurious.c "nobody cared").</summary>
    public ulong StuckDisables;

    /// <summary>1 while the line is disabled as stuck (left masked until SetIrqHandler or SetIrqType re-arms it), else 0.</summary>
    public uint Disabled;

    /// <summary>Reserved, 0.</summary>
    public uint Reserved;

    /// <summary>Whether the line is disabled as stuck now.</summary>
    public readonly bool IsDisabled => Disabled != 0;
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
    RrStatus GetDirection(int line, out RawGpioDirection direction);

    /// <summary>Makes a line an input.</summary>
    RrStatus DirectionInput(int line);

    /// <summary>Makes a line an output driving <paramref name="value"/>.</summary>
    RrStatus DirectionOutput(int line, bool value);

    /// <summary>A line's level.</summary>
    RrStatus Get(int line, out bool value);

    /// <summary>Drives an output line.</summary>
    RrStatus Set(int line, bool value);

    /// <summary>Sets a line's interrupt trigger.</summary>
    RrStatus SetIrqType(int line, RawGpioIrqType type);

    /// <summary>
    /// Routes a line's interrupt to <paramref name="handler"/> (called with the line) and unmasks
    /// it; null unsubscribes and masks. Setting a handler also re-arms a line that was disabled
    /// (as stuck, or by <see cref="DisableIrqNoSync"/>). When a call that clears or replaces a
    /// handler returns, the old handler is not running and will not start again (free_irq).
    /// </summary>
    /// <returns>As the other operations, or <see cref="RrStatus.WouldDeadlock"/> (nothing changed) when called from inside one of the chip's handlers to clear or replace a handler: that would wait for itself. Installing a handler on a line without one, or setting the line's current handler again (a re-arm), never waits and works from a handler too.</returns>
    RrStatus SetIrqHandler(int line, System.Action<int>? handler);

    /// <summary>
    /// Masks a line's interrupt without waiting for a running handler (Linux
    /// <c>disable_irq_nosync</c>): usable from the line's own handler, which stays installed; an
    /// interrupt that arrives meanwhile is not lost. <see cref="SetIrqHandler"/> or
    /// <see cref="SetIrqType"/> re-arms the line.
    /// </summary>
    RrStatus DisableIrqNoSync(int line);

    /// <summary>A line's interrupt counters; still readable after the device was removed.</summary>
    RrStatus GetIrqStats(int line, out RawGpioIrqStats stats);
}

/// <summary>A GPIO chip backed by a device that can be suspended, resumed and removed.</summary>
public interface IGpioDevice : IGpioChip
{
    /// <summary>Saves the registers (Linux suspend).</summary>
    RrStatus Suspend();

    /// <summary>Restores the registers (Linux resume).</summary>
    RrStatus Resume();

    /// <summary>
    /// Removes the device: later calls answer <see cref="RrStatus.NoDevice"/>. When it returns, no
    /// handler is running and none will start (free_irq for every line).
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.WouldDeadlock"/> (nothing changed) from inside one of the device's handlers.</returns>
    RrStatus Remove();

    /// <summary>
    /// Whether the calling thread is inside one of the device's calls - in practice one of its
    /// interrupt handlers: removing the device or clearing a handler from here would wait for itself.
    /// </summary>
    bool InCall { get; }

    /// <summary>The parent interrupt line changed (a host without a model feeds its interrupt in here).</summary>
    void Interrupt(bool asserted);

    /// <summary>Removes the device if needed and frees what it owns; the last user calls it.</summary>
    /// <returns>As <see cref="Remove"/>.</returns>
    RrStatus Destroy();
}
