using System;

namespace RefRuntime.Benchmarks.Devices;

// Inside the namespace: this file means Core's types, found here before the safe layer's (namespace RefRuntime).
using RefRuntime.Core;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Io;
using RefRuntime.Core.Virtio;

/// <summary>
/// The three ways to reach the same PL061 that the pair benchmarks and the demo compare: the
/// driver directly; virtio-gpio front end → split ring → device → driver (two threads); and the
/// lock-based request queue in front of the driver (two threads).
/// </summary>
public sealed class GpioPairStack : IDisposable
{
    /// <summary>The device model (the "board": drives inputs, shows outputs).</summary>
    public RawPl061Model Model { get; } = new();

    /// <summary>The PL061 driver.</summary>
    public Pl061Driver<RawDeviceBackend> Direct { get; }

    /// <summary>The virtio-gpio device backend over the driver.</summary>
    public VirtioGpioDevice Device { get; }

    /// <summary>The virtio-gpio front end.</summary>
    public VirtioGpioChip Ring { get; }

    /// <summary>The lock-based request queue over the driver.</summary>
    public LockedGpioQueue Locked { get; }

    private readonly GuestMemory _memory;

    /// <summary>Builds the stack; line names as in the spec's fixture.</summary>
    public GpioPairStack()
    {
        Check(Pl061Probe.OnModel(Model, out var d, out string? error), error);
        Direct = d!;
        Check(VirtioGpioDevice.Create(Direct, ["led-red", null, "button", null, null, null, null, null], true, out var dev, out error), error);
        Device = dev!;
        Check(GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem), "guest memory");
        _memory = mem!;
        Check(VirtioGpioChip.Probe(Device, _memory, out var chip, out error), error);
        Ring = chip!;
        Locked = new LockedGpioQueue(Direct);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Locked.Dispose();
        Ring.Dispose();
        Device.Dispose();
        _memory.Destroy();
        Direct.Destroy();
    }

    private static void Check(RrStatus s, string? what)
    {
        if (s != RrStatus.Ok)
        {
            throw new InvalidOperationException($"setting up the GPIO pair failed: {s} ({what})");
        }
    }
}
