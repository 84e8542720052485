// The safe .NET face of GPIO chips (RefRuntime.Core.Devices): the same IGpioChip the PL061
// driver implements, with .NET exceptions instead of status codes. Core's GPIO value types
// are written qualified here (Core.Devices.Gpio.*): this namespace has its own of the same name.

using System;
using System.Collections.Generic;
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Virtio;

namespace RefRuntime;

/// <summary>
/// A GPIO chip. Line numbers out of range and invalid triggers throw
/// <see cref="ArgumentOutOfRangeException"/>/<see cref="ArgumentException"/>; calls after the device
/// was removed throw <see cref="NoDeviceException"/>. Dispose removes the device (if still there)
/// and frees the chip.
/// </summary>
/// <remarks>
/// Interrupt handlers run one at a time per chip (on the thread that raised the interrupt, or
/// the chip's interrupt thread over the driver pair). When <see cref="Remove"/>, <see cref="Dispose"/>,
/// or a <see cref="SetIrqHandler"/> that clears or replaces a handler returns, the old handler
/// is not running and will not start again, so whatever it uses may be released. Those calls
/// would wait for themselves from inside one of the chip's handlers: there they throw
/// <see cref="InvalidOperationException"/> and change nothing. A level line whose handler keeps
/// returning with the level asserted is disabled (reported once on stderr) until its handler or
/// trigger is set again; see <see cref="GetIrqStats"/>.
/// </remarks>
public sealed class GpioChip : IDisposable
{
    private readonly IGpioDevice _device;

    private GpioChip(IGpioDevice device) => _device = device;

    /// <summary>Probes the PL061 driver on a model, its interrupt connected.</summary>
    /// <param name="model">The PL061 model.</param>
    /// <returns>The chip.</returns>
    /// <exception cref="NoDeviceException">The window does not hold a PL061.</exception>
    public static GpioChip ProbePl061(Pl061Model model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (Pl061Probe.OnModel(model.Raw, out var driver, out string? error) != RrStatus.Ok)
        {
            throw new NoDeviceException($"PL061 probe failed: {error}");
        }

        // The interrupt registration is one of the driver's managed resources: released on removal.
        return new GpioChip(driver!);
    }

    /// <summary>
    /// The driver pair on a model: the PL061 driver on <paramref name="model"/>, a virtio-gpio
    /// device over it (its own thread), and the virtio-gpio front end whose chip this is: every
    /// call crosses the split virtqueue. <see cref="Remove"/> unplugs the PL061 behind the device
    /// (later calls throw <see cref="NoDeviceException"/>); Dispose tears the whole pair down.
    /// </summary>
    /// <param name="model">The PL061 model.</param>
    /// <param name="names">One name per line (<see cref="Pl061Model.Lines"/> entries; null or empty
    /// for an unnamed line; 7-bit ASCII, unique when non-empty), or null for no names at all.</param>
    /// <returns>The chip.</returns>
    /// <exception cref="ArgumentException">Bad names (the wrong count, non-ASCII, duplicates).</exception>
    /// <exception cref="NoDeviceException">A part of the pair failed to start.</exception>
    public static GpioChip ProbeVirtioPair(Pl061Model model, IReadOnlyList<string?>? names = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return new GpioChip(VirtioPair.Create(model.Raw, names));
    }

    /// <summary>
    /// The virtio-gpio front end in this process driving a vhost-user back-end in another one
    /// (refruntime-vhost-gpio, or any vhost-user GPIO device) listening at <paramref name="socketPath"/>:
    /// guest memory is a sealed memfd shared with it, every call crosses the socket's eventfds and the
    /// shared rings. If the back-end dies, calls throw <see cref="NoDeviceException"/> instead of
    /// waiting; <see cref="Reconnect"/> resumes after it is restarted.
    /// </summary>
    /// <exception cref="NoDeviceException">Nobody listens there, or the handshake or probe failed.</exception>
    public static GpioChip ConnectVhostUser(string socketPath)
    {
        ArgumentNullException.ThrowIfNull(socketPath);
        return new GpioChip(VhostUserPair.Create(socketPath));
    }

    /// <summary>
    /// For a chip from <see cref="ConnectVhostUser"/>: a new session with the back-end (after it was
    /// restarted), the rings resumed where they stand.
    /// </summary>
    /// <exception cref="NotSupportedException">The chip is not a vhost-user front end.</exception>
    /// <exception cref="NoDeviceException">The back-end cannot be reached.</exception>
    public void Reconnect()
    {
        if (_device is not VhostUserPair p)
        {
            throw new NotSupportedException("Only a chip from ConnectVhostUser reconnects.");
        }

        if (p.Transport.Reconnect(out string? error) != RrStatus.Ok)
        {
            throw new NoDeviceException($"reconnecting to the vhost-user back-end failed: {error}");
        }
    }

    /// <summary>A line's name, when the chip's device reports names (the driver pair, vhost-user); null otherwise.</summary>
    public string? LineName(int line) => _device switch
    {
        VirtioPair p => p.Chip.LineName(line),
        VhostUserPair v => v.Chip.LineName(line),
        _ => null,
    };

    /// <summary>Number of lines.</summary>
    public int LineCount => _device.LineCount;

    /// <summary>A line's direction.</summary>
    public GpioDirection GetDirection(int line)
    {
        Check(_device.GetDirection(line, out Core.Devices.Gpio.RawGpioDirection d), line);
        return (GpioDirection)d;
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
        RrStatus s = _device.SetIrqType(line, (Core.Devices.Gpio.RawGpioIrqType)type);
        if (s == RrStatus.InvalidArgument && (uint)line < (uint)_device.LineCount)
        {
            throw new ArgumentException($"Invalid trigger {type}: choose one edge type or one level.", nameof(type));
        }

        Check(s, line);
    }

    /// <summary>
    /// Routes a line's interrupt to <paramref name="handler"/> (null masks it); also re-arms a
    /// line disabled as stuck. Clearing or replacing a handler waits for a running call of the
    /// old one.
    /// </summary>
    /// <exception cref="InvalidOperationException">Clearing or replacing a handler from inside one of the chip's handlers (nothing changed).</exception>
    public void SetIrqHandler(int line, Action<int>? handler) => Check(_device.SetIrqHandler(line, handler), line);

    /// <summary>
    /// Masks a line's interrupt without waiting for a running handler (Linux
    /// <c>disable_irq_nosync</c>): usable from the line's own handler, which stays installed; an
    /// interrupt that arrives meanwhile is not lost. <see cref="SetIrqHandler"/> or
    /// <see cref="SetIrqType"/> re-arms the line.
    /// </summary>
    public void DisableIrqNoSync(int line) => Check(_device.DisableIrqNoSync(line), line);

    /// <summary>A line's interrupt counters: handled, spurious (no handler called: trigger NONE), disabled as stuck. Readable after removal too.</summary>
    public GpioIrqStats GetIrqStats(int line)
    {
        Check(_device.GetIrqStats(line, out Core.Devices.Gpio.RawGpioIrqStats s), line);
        return new GpioIrqStats(s.Handled, s.Spurious, s.StuckDisables, s.IsDisabled);
    }

    /// <summary>Saves the registers.</summary>
    public void Suspend() => Check(_device.Suspend(), 0);

    /// <summary>Restores the registers.</summary>
    public void Resume() => Check(_device.Resume(), 0);

    /// <summary>Hot-unplug: later calls throw <see cref="NoDeviceException"/>; no handler is running when it returns, and none starts after.</summary>
    /// <exception cref="InvalidOperationException">Called from inside one of the chip's handlers (nothing changed).</exception>
    public void Remove() => Check(_device.Remove(), 0);

    /// <summary>Removes the device if needed and frees the chip.</summary>
    /// <exception cref="InvalidOperationException">Called from inside one of the chip's handlers (nothing changed).</exception>
    public void Dispose()
    {
        if (_device.Destroy() == RrStatus.WouldDeadlock)
        {
            throw new InvalidOperationException("GpioChip.Dispose: called from inside one of the chip's interrupt handlers, which it must wait for.");
        }
    }

    private void Check(RrStatus s, int line) => Check(s, line, _device.LineCount);

    private static void Check(RrStatus s, int line, int lineCount)
    {
        switch (s)
        {
            case RrStatus.Ok:
                return;
            case RrStatus.InvalidArgument when (uint)line >= (uint)lineCount:
                throw new ArgumentOutOfRangeException(nameof(line), line, "No such GPIO line.");
            case RrStatus.InvalidArgument:
                throw new InvalidOperationException($"The device refused the operation on line {line} (not configured for it: e.g. a read of a released line, or an interrupt without a trigger type).");
            case RrStatus.NoDevice:
                throw new NoDeviceException("The GPIO chip's device was removed.");
            case RrStatus.WouldDeadlock:
                throw new InvalidOperationException("Called from inside one of the chip's interrupt handlers: removing the chip, or clearing or replacing a handler, would wait for that handler itself.");
            default:
                throw new InvalidOperationException($"GPIO operation failed: {s}.");
        }
    }

    /// <summary>
    /// A virtio-gpio front end as an IGpioDevice the wrapper can own: the chip operations go to the
    /// front end; removal, teardown and who runs handlers depend on where the device lives.
    /// </summary>
    private abstract class FrontEndDevice(VirtioGpioChip chip) : IGpioDevice
    {
        public VirtioGpioChip Chip => chip;

        public int LineCount => chip.LineCount;

        // The consumer's handlers run on the front end's interrupt thread.
        public virtual bool InCall => chip.InCall;

        public RrStatus GetDirection(int line, out Core.Devices.Gpio.RawGpioDirection direction) => chip.GetDirection(line, out direction);

        public RrStatus DirectionInput(int line) => chip.DirectionInput(line);

        public RrStatus DirectionOutput(int line, bool value) => chip.DirectionOutput(line, value);

        public RrStatus Get(int line, out bool value) => chip.Get(line, out value);

        public RrStatus Set(int line, bool value) => chip.Set(line, value);

        public RrStatus SetIrqType(int line, Core.Devices.Gpio.RawGpioIrqType type) => chip.SetIrqType(line, type);

        public RrStatus SetIrqHandler(int line, Action<int>? handler) => chip.SetIrqHandler(line, handler);

        public RrStatus DisableIrqNoSync(int line) => chip.DisableIrqNoSync(line);

        public RrStatus GetIrqStats(int line, out Core.Devices.Gpio.RawGpioIrqStats stats) => chip.GetIrqStats(line, out stats);

        public RrStatus Suspend() => throw new NotSupportedException("virtio-gpio has no suspend message; suspend the device side.");

        public RrStatus Resume() => throw new NotSupportedException("virtio-gpio has no resume message; resume the device side.");

        public void Interrupt(bool asserted)
        {
            // Interrupts reach the front end through its eventq.
        }

        public abstract RrStatus Remove();

        public abstract RrStatus Destroy();
    }

    /// <summary>The front end behind <see cref="ConnectVhostUser"/>, as an IGpioDevice the wrapper can own.</summary>
    private sealed class VhostUserPair(VhostUserGpioTransport transport, VirtioGpioChip chip) : FrontEndDevice(chip)
    {
        private int _destroyed;

        public VhostUserGpioTransport Transport => transport;

        public static VhostUserPair Create(string socketPath)
        {
            if (VhostUserGpioTransport.Connect(socketPath, out var transport, out string? error) != RrStatus.Ok)
            {
                throw new NoDeviceException($"no vhost-user GPIO back-end at {socketPath}: {error}");
            }

            if (VirtioGpioChip.Probe(transport!, transport!.Memory, out var chip, out error) != RrStatus.Ok)
            {
                transport.Dispose();
                throw new NoDeviceException($"virtio-gpio probe over vhost-user failed: {error}");
            }

            return new VhostUserPair(transport, chip!);
        }

        public override RrStatus Remove() => throw new NotSupportedException("The device lives in the back-end process; unplug it there (refruntime-vhost-gpio: SIGUSR1).");

        public override RrStatus Destroy()
        {
            if (InCall)
            {
                return RrStatus.WouldDeadlock; // the front end would wait for the handler we are in
            }

            if (System.Threading.Interlocked.Exchange(ref _destroyed, 1) == 0)
            {
                Chip.Dispose();
                transport.Dispose();
            }

            return RrStatus.Ok;
        }
    }

    /// <summary>The pair behind <see cref="ProbeVirtioPair"/>, as an IGpioDevice the wrapper can own.</summary>
    private sealed class VirtioPair : FrontEndDevice
    {
        private readonly Pl061Driver<Core.Io.RawDeviceBackend> _pl061;
        private readonly VirtioGpioDevice _backend;
        private readonly GuestMemory _memory;
        private int _destroyed;

        private VirtioPair(Pl061Driver<Core.Io.RawDeviceBackend> pl061, VirtioGpioDevice backend, GuestMemory memory, VirtioGpioChip chip)
            : base(chip)
        {
            _pl061 = pl061;
            _backend = backend;
            _memory = memory;
        }

        public static VirtioPair Create(Core.Devices.Pl061.RawPl061Model model, IReadOnlyList<string?>? names)
        {
            if (Pl061Probe.OnModel(model, out var pl061, out string? error) != RrStatus.Ok)
            {
                throw new NoDeviceException($"PL061 probe failed: {error}");
            }

            if (VirtioGpioDevice.Create(pl061!, names, offerIrq: true, out var backend, out error) != RrStatus.Ok)
            {
                pl061!.Destroy();
                throw new ArgumentException(error, nameof(names));
            }

            if (GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? memory) != RrStatus.Ok)
            {
                pl061!.Destroy();
                throw new OutOfMemoryException("guest memory for the virtqueues");
            }

            if (VirtioGpioChip.Probe(backend!, memory!, out var chip, out error) != RrStatus.Ok)
            {
                backend!.Dispose();
                memory!.Destroy();
                pl061!.Destroy();
                throw new NoDeviceException($"virtio-gpio probe failed: {error}");
            }

            return new VirtioPair(pl061!, backend!, memory!, chip!);
        }

        // The consumer's handlers run on the front end's interrupt thread; the device's on the PL061's dispatcher.
        public override bool InCall => Chip.InCall || _pl061.InCall;

        public override RrStatus Remove()
        {
            if (InCall)
            {
                return RrStatus.WouldDeadlock;
            }

            // Hot-unplug behind the device (the device then answers ERR and needs a reset), then
            // unbind the front end: it stops its interrupt thread, so no consumer handler runs
            // after this returns - not even for an event already in the used ring.
            RrStatus s = _pl061.Remove();
            return s != RrStatus.Ok ? s : Chip.Remove();
        }

        public override RrStatus Destroy()
        {
            if (InCall)
            {
                return RrStatus.WouldDeadlock; // checked before anything changes
            }

            if (System.Threading.Interlocked.Exchange(ref _destroyed, 1) != 0)
            {
                return RrStatus.Ok;
            }

            Chip.Dispose();
            _backend.Dispose();
            _memory.Destroy();
            return _pl061.Destroy();
        }
    }
}
