// The PL061 driver: what Linux gpio-pl061.c does (docs/pl061.md), over the MMIO layer,
// with the lifetimes of Wedson Almeida Filho's Rust port (gpio_pl061_rust.rs):
//   * calls go through a CallGate (removal stops new calls and waits for calls in flight) and
//     reach the registers only through a Revocable (no MMIO after revocation); a call that finds
//     either closed gets RrStatus.NoDevice;
//   * probe acquires its resources in a devres group, so a failure at any step releases exactly
//     what was acquired, last first; removal releases the rest;
//   * the driver object stays valid (answering NoDevice) until its last user lets go.
//
// Register protocol (byte accessors, as gpio-pl061.c): get/set use the masked data alias base + (4 << n), so
// they need no lock; direction changes and irq_set_type are read-modify-write sequences under
// the driver's lock; direction_output writes the value, sets DIR, and writes the value again
// (the controller drops data writes to input lines). The interrupt path - dispatch, handler
// lifetimes, spurious and stuck lines - is in Pl061Driver.Interrupts.cs.

using System;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Io;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Revoke;
using static RefRuntime.Core.Devices.Pl061.Pl061Regs;

namespace RefRuntime.Core.Devices.Pl061;

/// <summary>The PL061's register map: a 4 KiB window.</summary>
public sealed class Pl061Map : IRawRegisterMap
{
    /// <inheritdoc/>
    public static nuint Size => WindowSize;
}

/// <summary>The PL061 driver (see file comment), generic over the window's backend.</summary>
/// <typeparam name="TBackend">Plain memory or a device model.</typeparam>
public sealed unsafe partial class Pl061Driver<TBackend> : IGpioDevice
    where TBackend : struct, IRawIoBackend
{
    private static readonly RawReg8<Pl061Map> Dir = new(GPIODIR);
    private static readonly RawReg8<Pl061Map> Is = new(GPIOIS);
    private static readonly RawReg8<Pl061Map> Ibe = new(GPIOIBE);
    private static readonly RawReg8<Pl061Map> Iev = new(GPIOIEV);
    private static readonly RawReg8<Pl061Map> Ie = new(GPIOIE);
    private static readonly RawReg8<Pl061Map> Ris = new(GPIORIS);
    private static readonly RawReg8<Pl061Map> Mis = new(GPIOMIS);
    private static readonly RawReg8<Pl061Map> Ic = new(GPIOIC);
    private static readonly RawReg8<Pl061Map>[] DataAlias = CreateAliases();

    private readonly CallGate _gate = new();
    private readonly RawRevocable<Hardware> _hw;
    private readonly DevresList _resources = new();
    private readonly Lock _lock = new();
    private SavedContext _saved;

    private sealed class Hardware(RawMappedIo<Pl061Map, TBackend> regs)
    {
        public readonly RawMappedIo<Pl061Map, TBackend> Regs = regs;
    }

    private struct SavedContext
    {
        public byte Data;
        public byte Dir;
        public byte Is;
        public byte Ibe;
        public byte Iev;
        public byte Ie;
    }

    // The hardware is revocable on the gate's own domain: a gate call is already a read-side
    // section of it, so an operation needs one section, not two (removal disconnects, then
    // revokes, each waiting for that domain's readers).
    private Pl061Driver(RawMappedIo<Pl061Map, TBackend> regs) =>
        _hw = new RawRevocable<Hardware>(_gate.Domain, new Hardware(regs));

    /// <summary>Probe steps, in order; a fault can be injected at each (tests).</summary>
    public enum ProbeStep
    {
        /// <summary>Mapping the 4 KiB window.</summary>
        MapWindow,

        /// <summary>Reading and checking the identification registers.</summary>
        CheckIdentification,

        /// <summary>Registering the revocable hardware resource (released last: no MMIO after it).</summary>
        RegisterHardware,

        /// <summary>Masking every line's interrupt (GPIOIE = 0; masked again on release).</summary>
        MaskInterrupts,

        /// <summary>Connecting the parent interrupt.</summary>
        RequestIrq,
    }

    /// <summary>The driver's managed resources (released last-in-first-out on removal).</summary>
    public DevresList Resources => _resources;

    /// <inheritdoc/>
    public int LineCount => Lines;

    /// <summary>Whether the device has been removed.</summary>
    public bool IsRemoved => _gate.IsDisconnected;

    /// <inheritdoc/>
    public bool InCall => _gate.InCall;

    /// <summary>
    /// Probes a PL061 behind <paramref name="io"/>: maps it, refuses anything that is not a PL061,
    /// masks all interrupts, and connects the parent interrupt through <paramref name="requestIrq"/>
    /// (which receives the driver's interrupt entry and returns the registration, released on removal).
    /// </summary>
    /// <param name="io">The window.</param>
    /// <param name="domain">Unused (kept for source compatibility): the driver protects hardware access with its gate's own domain.</param>
    /// <param name="requestIrq">Connects the interrupt line, or null for a chip without interrupt support.</param>
    /// <param name="driver">The driver on success.</param>
    /// <param name="error">Why probing failed.</param>
    /// <param name="injectFault">Fails the probe at the given step (tests).</param>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.InvalidArgument"/> (window too small), <see cref="RrStatus.NoDevice"/> (not a PL061), or the failed step's status.</returns>
    public static RrStatus Probe(RawIo<TBackend> io, RawRcuDomain? domain, Func<Action<bool>, IDisposable>? requestIrq, out Pl061Driver<TBackend>? driver, out string? error, ProbeStep? injectFault = null)
    {
        driver = null;
        error = null;
        if (injectFault == ProbeStep.MapWindow || io.Size < WindowSize)
        {
            error = $"the window has {io.Size} bytes; a PL061 decodes {WindowSize}";
            return RrStatus.InvalidArgument;
        }

        RawMappedIo<Pl061Map, TBackend> regs = io.Bind<Pl061Map>();
        uint periph = 0, cell = 0;
        for (uint i = 0; i < 4; i++)
        {
            periph |= (uint)regs.Read(new RawReg8<Pl061Map>(GPIOPeriphID0 + (4 * i))) << (int)(8 * i);
            cell |= (uint)regs.Read(new RawReg8<Pl061Map>(GPIOPCellID0 + (4 * i))) << (int)(8 * i);
        }

        // The AMBA bus binds only PrimeCells; the PL061 driver matches 0x00041061 under mask 0x000FFFFF.
        if (injectFault == ProbeStep.CheckIdentification || cell != CellId || (periph & 0x000F_FFFF) != PeriphId)
        {
            error = $"not a PL061: PeriphID 0x{periph:x8}, CellID 0x{cell:x8}";
            return RrStatus.NoDevice;
        }

        var d = new Pl061Driver<TBackend>(regs);
        ulong group = d._resources.OpenGroup();
        try
        {
            // Acquisitions are released newest first, so the hardware is registered first: its
            // revocation is the last release, and no release action can reach revoked hardware.
            if (injectFault == ProbeStep.RegisterHardware)
            {
                throw new ProbeFault(ProbeStep.RegisterHardware);
            }

            d._resources.Add(() => d._hw.Revoke(out _));

            if (injectFault == ProbeStep.MaskInterrupts)
            {
                throw new ProbeFault(ProbeStep.MaskInterrupts);
            }

            regs.Write(Ie, 0);
            d._resources.Add(d.MaskAllThroughRevocable); // on removal: masked before revocation

            if (requestIrq is not null)
            {
                if (injectFault == ProbeStep.RequestIrq)
                {
                    throw new ProbeFault(ProbeStep.RequestIrq);
                }

                IDisposable irq = requestIrq(d.OnInterrupt);
                d._resources.Add(irq.Dispose);
            }

            d._resources.CloseGroup(group);
            d._resources.RemoveGroup(group);
            driver = d;
            return RrStatus.Ok;
        }
        catch (ProbeFault f)
        {
            d._resources.ReleaseGroup(group);
            d._gate.Dispose();
            error = $"probe failed at {f.Step}";
            return RrStatus.OutOfMemory;
        }
    }

    private sealed class ProbeFault(ProbeStep step) : Exception($"injected fault at {step}")
    {
        public ProbeStep Step { get; } = step;
    }

    /// <summary>
    /// Removes the device: refuses new calls and waits for calls in flight - interrupt handlers
    /// included, so none is running when it returns and none starts after (free_irq) - revokes
    /// the hardware (no MMIO afterwards), releases every managed resource last-in-first-out.
    /// Idempotent.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.WouldDeadlock"/> from inside a call (a handler): nothing changed.</returns>
    public RrStatus Remove()
    {
        // Checked before the gate closes: disconnecting from inside a call would close it and
        // then fail to drain, leaving the chip half removed.
        if (_gate.InCall)
        {
            return RrStatus.WouldDeadlock;
        }

        RrStatus s = _gate.Disconnect(out bool first);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        if (first)
        {
            _resources.ReleaseAll();
            _hw.Revoke(out _); // normally done by the devres action already
        }

        return RrStatus.Ok;
    }

    /// <summary>Removes the device if needed, then frees the gate's RCU domain. For the last user.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or the status of <see cref="Remove"/> / of destroying the domain.</returns>
    public RrStatus Destroy()
    {
        RrStatus s = Remove();
        return s != RrStatus.Ok ? s : _gate.Destroy();
    }

    // ---- the gpio_chip operations --------------------------------------------------------

    /// <inheritdoc/>
    public RrStatus GetDirection(int line, out RawGpioDirection direction)
    {
        byte dir = 0;
        RrStatus s = With(line, (regs, n) => dir = regs.Read(Dir));
        direction = (dir & (1 << line)) != 0 ? RawGpioDirection.Output : RawGpioDirection.Input;
        return s;
    }

    /// <inheritdoc/>
    public RrStatus DirectionInput(int line) => With(line, (regs, n) =>
    {
        lock (_lock)
        {
            regs.Write(Dir, (byte)(regs.Read(Dir) & ~(1 << n)));
        }
    });

    /// <inheritdoc/>
    public RrStatus DirectionOutput(int line, bool value) => With(line, (regs, n) =>
    {
        byte v = (byte)((value ? 1 : 0) << n);
        lock (_lock)
        {
            regs.Write(DataAlias[n], v);                      // may be dropped: still an input
            regs.Write(Dir, (byte)(regs.Read(Dir) | (1 << n)));
            regs.Write(DataAlias[n], v);                      // now latched
        }
    });

    /// <inheritdoc/>
    public RrStatus Get(int line, out bool value)
    {
        value = false;
        if ((uint)line >= Lines)
        {
            return RrStatus.InvalidArgument;
        }

        Hardware? hw = EnterHardware(out RcuReader* call);
        if (hw is null)
        {
            return RrStatus.NoDevice;
        }

        try
        {
            value = hw.Regs.Read(DataAlias[line]) != 0;
            return RrStatus.Ok;
        }
        finally
        {
            CallGate.Leave(call);
        }
    }

    /// <inheritdoc/>
    public RrStatus Set(int line, bool value)
    {
        if ((uint)line >= Lines)
        {
            return RrStatus.InvalidArgument;
        }

        Hardware? hw = EnterHardware(out RcuReader* call);
        if (hw is null)
        {
            return RrStatus.NoDevice;
        }

        try
        {
            hw.Regs.Write(DataAlias[line], (byte)((value ? 1 : 0) << line));
            return RrStatus.Ok;
        }
        finally
        {
            CallGate.Leave(call);
        }
    }

    /// <inheritdoc/>
    public RrStatus SetIrqType(int line, RawGpioIrqType type)
    {
        bool level = (type & (RawGpioIrqType.LevelHigh | RawGpioIrqType.LevelLow)) != 0;
        bool edge = (type & RawGpioIrqType.EdgeBoth) != 0;
        if ((level && edge) || type == (RawGpioIrqType.LevelHigh | RawGpioIrqType.LevelLow) || ((int)type & ~0xF) != 0)
        {
            return RrStatus.InvalidArgument; // "choose one": level and edge together, or both levels
        }

        return With(line, (regs, n) =>
        {
            byte bit = (byte)(1 << n);
            lock (_lock)
            {
                // Linux reads IEV, IS, IBE, computes, then writes IS, IBE, IEV.
                byte iev = regs.Read(Iev), isv = regs.Read(Is), ibe = regs.Read(Ibe);
                if (level)
                {
                    ibe &= (byte)~bit;
                    isv |= bit;
                    iev = type == RawGpioIrqType.LevelHigh ? (byte)(iev | bit) : (byte)(iev & ~bit);
                }
                else if (type == RawGpioIrqType.EdgeBoth)
                {
                    isv &= (byte)~bit;
                    ibe |= bit;
                }
                else if (edge)
                {
                    isv &= (byte)~bit;
                    ibe &= (byte)~bit;
                    iev = type == RawGpioIrqType.EdgeRising ? (byte)(iev | bit) : (byte)(iev & ~bit);
                }
                else
                {
                    isv &= (byte)~bit;
                    ibe &= (byte)~bit;
                    iev &= (byte)~bit;
                }

                regs.Write(Is, isv);
                regs.Write(Ibe, ibe);
                regs.Write(Iev, iev);
                SetTriggerLocked(regs, n, type);
            }
        });
    }

    /// <summary>Saves DIR, IS, IBE, IEV, IE and the output lines' values (Linux suspend).</summary>
    public RrStatus Suspend() => WithDevice(regs =>
    {
        lock (_lock)
        {
            var c = new SavedContext { Dir = regs.Read(Dir), Is = regs.Read(Is), Ibe = regs.Read(Ibe), Iev = regs.Read(Iev), Ie = regs.Read(Ie) };
            for (int n = 0; n < Lines; n++)
            {
                if ((c.Dir & (1 << n)) != 0 && regs.Read(DataAlias[n]) != 0)
                {
                    c.Data |= (byte)(1 << n);
                }
            }

            _saved = c;
        }
    });

    /// <summary>Restores what <see cref="Suspend"/> saved: directions and outputs first, interrupt configuration last (IE last of all).</summary>
    public RrStatus Resume()
    {
        SavedContext c;
        lock (_lock)
        {
            c = _saved;
        }

        for (int n = 0; n < Lines; n++)
        {
            RrStatus s = (c.Dir & (1 << n)) != 0 ? DirectionOutput(n, (c.Data & (1 << n)) != 0) : DirectionInput(n);
            if (s != RrStatus.Ok)
            {
                return s;
            }
        }

        return WithDevice(regs =>
        {
            lock (_lock)
            {
                regs.Write(Is, c.Is);
                regs.Write(Ibe, c.Ibe);
                regs.Write(Iev, c.Iev);
                regs.Write(Ie, c.Ie);
            }
        });
    }

    // ---- the lifetime plumbing -----------------------------------------------------------

    /// <summary>GPIOIE = 0 through the revocable (not the gate, which removal has closed already).</summary>
    private void MaskAllThroughRevocable()
    {
        Hardware? hw = _hw.TryAccess(out RcuReader* access);
        if (hw is not null)
        {
            hw.Regs.Write(Ie, 0);
            RawRcuDomain.ReadUnlock(access);
        }
    }

    private RrStatus With(int line, Action<RawMappedIo<Pl061Map, TBackend>, int> op)
    {
        if ((uint)line >= Lines)
        {
            return RrStatus.InvalidArgument;
        }

        return WithDevice(regs => op(regs, line));
    }

    /// <summary>
    /// Enters a gate call and reaches the hardware: the hardware with the call held (the caller
    /// leaves it with <see cref="CallGate.Leave"/>), or null with nothing held when the device
    /// is gone. The hardware is revocable on the gate's own domain, so the call is the only section.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private Hardware? EnterHardware(out RcuReader* call)
    {
        call = _gate.Enter();
        if (call == null)
        {
            return null;
        }

        Hardware? hw = _hw.TryGetInSection();
        if (hw is null)
        {
            CallGate.Leave(call);
            call = null;
        }

        return hw;
    }

    /// <summary>
    /// Runs <paramref name="op"/> inside a gate call and a hardware access, or answers NoDevice.
    /// Afterwards - out of the call and the lock - dispatches an interrupt that a register write
    /// of <paramref name="op"/> raised under the lock (OnInterrupt only marked it).
    /// </summary>
    private RrStatus WithDevice(Action<RawMappedIo<Pl061Map, TBackend>> op)
    {
        Hardware? hw = EnterHardware(out RcuReader* call);
        if (hw is null)
        {
            return RrStatus.NoDevice;
        }

        try
        {
            op(hw.Regs);
        }
        finally
        {
            CallGate.Leave(call);
        }

        DispatchIfPending();
        return RrStatus.Ok;
    }

    private static RawReg8<Pl061Map>[] CreateAliases()
    {
        var a = new RawReg8<Pl061Map>[Lines];
        for (int n = 0; n < Lines; n++)
        {
            a[n] = new RawReg8<Pl061Map>((nuint)(4 << n)); // base + BIT(n + 2)
        }

        return a;
    }
}

/// <summary>Probing the PL061 driver on a device model, its interrupt line wired to the model's.</summary>
public static class Pl061Probe
{
    /// <summary>
    /// Probes <see cref="Pl061Driver{TBackend}"/> on <paramref name="model"/> through a device
    /// window; the model's interrupt output feeds the driver until the driver is removed.
    /// </summary>
    /// <returns>As <see cref="Pl061Driver{TBackend}.Probe"/>.</returns>
    public static RrStatus OnModel(RawPl061Model model, out Pl061Driver<RawDeviceBackend>? driver, out string? error)
    {
        ArgumentNullException.ThrowIfNull(model);
        var io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(model, WindowSize));
        return Pl061Driver<RawDeviceBackend>.Probe(io, null, handler =>
        {
            model.InterruptChanged += handler;
            return new ActionDisposable(() => model.InterruptChanged -= handler);
        }, out driver, out error);
    }
}
