// The safe .NET face of GPIO chips (RefRuntime.Core.Devices): the same IGpioChip the PL061
// driver implements, with .NET exceptions instead of status codes.

using System;
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Io;

namespace RefRuntime;

/// <summary>
/// A GPIO chip. Line numbers out of range and invalid triggers throw
/// <see cref="ArgumentOutOfRangeException"/>/<see cref="ArgumentException"/>; calls after the device
/// was removed throw <see cref="NoDeviceException"/>. Dispose removes the device (if still there)
/// and frees the chip.
/// </summary>
public sealed class GpioChip : IDisposable
{
    private readonly IGpioDevice _device;
    private IDisposable? _irq;

    private GpioChip(IGpioDevice device) => _device = device;

    /// <summary>Probes the PL061 driver on a model, its interrupt connected.</summary>
    /// <param name="model">The PL061 model.</param>
    /// <returns>The chip.</returns>
    /// <exception cref="NoDeviceException">The window does not hold a PL061.</exception>
    public static GpioChip ProbePl061(Pl061Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var io = new Io<DeviceBackend>(new DeviceBackend(model, Pl061Regs.WindowSize));
        IDisposable? registration = null;
        RrStatus s = Pl061Driver<DeviceBackend>.Probe(io, null, handler =>
        {
            model.InterruptChanged += handler;
            registration = new ActionDisposable(() => model.InterruptChanged -= handler);
            return registration;
        }, out var driver, out string? error);
        if (s != RrStatus.Ok)
        {
            throw new NoDeviceException($"PL061 probe failed: {error}");
        }

        return new GpioChip(driver!) { _irq = registration };
    }

    /// <summary>Number of lines.</summary>
    public int LineCount => _device.LineCount;

    /// <summary>A line's direction.</summary>
    public GpioDirection GetDirection(int line)
    {
        Check(_device.GetDirection(line, out GpioDirection d), line);
        return d;
    }

    /// <summary>Makes a line an input.</summary>
    public void DirectionInput(int line) => Check(_device.DirectionInput(line), line);

    /// <summary>Makes a line an output driving <paramref name="value"/>.</summary>
    public void DirectionOutput(int line, bool value) => Check(_device.DirectionOutput(line, value), line);

    /// <summary>A line's level.</summary>
    public bool Get(int line)
    {
        Check(_device.Get(line, out bool v), line);
        return v;
    }

    /// <summary>Drives an output line.</summary>
    public void Set(int line, bool value) => Check(_device.Set(line, value), line);

    /// <summary>Sets a line's interrupt trigger.</summary>
    /// <exception cref="ArgumentException">Level and edge together, or both levels.</exception>
    public void SetIrqType(int line, GpioIrqType type)
    {
        RrStatus s = _device.SetIrqType(line, type);
        if (s == RrStatus.InvalidArgument && (uint)line < (uint)_device.LineCount)
        {
            throw new ArgumentException($"Invalid trigger {type}: choose one edge type or one level.", nameof(type));
        }

        Check(s, line);
    }

    /// <summary>Routes a line's interrupt to <paramref name="handler"/> (null masks it).</summary>
    public void SetIrqHandler(int line, Action<int>? handler) => Check(_device.SetIrqHandler(line, handler), line);

    /// <summary>Saves the registers.</summary>
    public void Suspend() => Check(_device.Suspend(), 0);

    /// <summary>Restores the registers.</summary>
    public void Resume() => Check(_device.Resume(), 0);

    /// <summary>Hot-unplug: later calls throw <see cref="NoDeviceException"/>.</summary>
    public void Remove() => Check(_device.Remove(), 0);

    /// <summary>Removes the device if needed and frees the chip.</summary>
    public void Dispose()
    {
        _device.Destroy();
        _irq?.Dispose();
    }

    private static void Check(RrStatus s, int line)
    {
        switch (s)
        {
            case RrStatus.Ok:
                return;
            case RrStatus.InvalidArgument:
                throw new ArgumentOutOfRangeException(nameof(line), line, "No such GPIO line.");
            case RrStatus.NoDevice:
                throw new NoDeviceException("The GPIO chip's device was removed.");
            case RrStatus.WouldDeadlock:
                throw new InvalidOperationException("Removing the chip from inside one of its own calls would wait for itself.");
            default:
                throw new InvalidOperationException($"GPIO operation failed: {s}.");
        }
    }

}
