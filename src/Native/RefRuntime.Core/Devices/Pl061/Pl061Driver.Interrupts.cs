// The PL061 driver's interrupt path: Linux gpio-pl061.c's chained handler (spec devices.md §A.6)
// under the flow handlers and lifetimes of the kernel's irq core (kernel/irq/chip.c, manage.c,
// spurious.c).
//
// Dispatch. The parent interrupt arrives on whatever thread raised it (OnInterrupt). One thread at
// a time dispatches a chip, so the chip's handlers never overlap, as under a chained parent
// interrupt: a raiser marks the chip pending, then either becomes its dispatcher or leaves the
// work to the dispatcher already running, which re-reads GPIOMIS until nothing is pending; a
// raiser never waits. An interrupt raised by the driver's own register write under its lock
// (unmasking a line whose level is active) is only marked: the operation dispatches once it has
// let go of the lock (WithDevice), so no handler ever runs under the driver's lock. Each round is
// one gate call: read GPIOMIS once, then for each pending line, ascending, run its flow: an edge
// line is acked (GPIOIC) before its handler runs (handle_edge_irq); a level line is masked and
// acked, its handler runs, then it is unmasked (handle_level_irq).
//
// Lifetimes (free_irq / synchronize_irq). Handlers run inside the round's gate call, and the gate
// is an RCU domain, so a grace period of it waits for every dispatch that may have read an old
// handler. Remove disconnects the gate: it returns after every running handler, and no round, so
// no handler, starts after it. SetIrqHandler swaps the handler under the lock, leaves its call,
// then waits a grace period when it cleared or replaced a handler. From inside a call of this chip
// - a handler - either wait would wait for itself: both are refused with WouldDeadlock before
// anything changes. Installing a handler on a line without one, or setting the same handler again
// (a re-arm), needs no wait and works from a handler too. Nesting is per chip (the gate's read
// section, the chip's dispatcher field): a handler of one chip may raise another chip's interrupt.
//
// Misbehaving lines (kernel/irq/spurious.c). The driver remembers each line's software trigger:
// with NONE the PL061 still latches falling edges (IS=IBE=IEV=0), but Linux routes the line to
// handle_bad_irq, so the interrupt is acked and counted as spurious and no handler is called; so
// is one that finds no handler installed. A level line whose handler returns with the level still
// asserted StuckBound times in a row is disabled - left masked - counted and reported once on
// stderr, like note_interrupt's "nobody cared", until SetIrqHandler or SetIrqType re-arms it. A
// masked line (disabled, or DisableIrqNoSync) that GPIOMIS still shows - it was pending when the
// round read GPIOMIS - is left alone, unacked, so it is seen again once re-armed. After StormBound
// rounds in a row that found GPIOMIS non-zero (acks that do not clear, a device that ignores
// GPIOIE, a handler that re-raises its own edge), the lines still pending are disabled the same
// way and the dispatcher returns: a raise never costs more than StormBound + 1 rounds.

using System;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Io;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Revoke;

namespace RefRuntime.Core.Devices.Pl061;

/// <content>The interrupt path (see the file comment).</content>
public sealed unsafe partial class Pl061Driver<TBackend>
{
    /// <summary>Handler calls in a row that return with a level line still asserted before the line is disabled as stuck.</summary>
    public const int StuckBound = 64;

    /// <summary>Dispatch rounds in a row that find GPIOMIS non-zero before the lines still pending are disabled as stuck.</summary>
    public const int StormBound = 100_000;

    private readonly Action<int>?[] _handlers = new Action<int>?[Pl061Regs.Lines];
    private readonly LineIrq[] _irq = new LineIrq[Pl061Regs.Lines]; // guarded by _lock
    private int _pending;    // the parent interrupt was raised and not dispatched yet
    private int _dispatcher; // managed id of the thread dispatching this chip; 0: none

    /// <summary>A line's interrupt state; every field is guarded by the driver's lock.</summary>
    private struct LineIrq
    {
        public RawGpioIrqType Trigger; // the software trigger: IS/IBE/IEV cannot tell NONE from falling
        public bool Stuck;          // disabled as stuck: left masked until re-armed
        public bool NoSyncMasked;   // masked by DisableIrqNoSync until re-armed
        public int Unhandled;       // level handler calls in a row that left the level asserted
        public ulong Handled;
        public ulong Spurious;
        public ulong StuckDisables;
    }

    /// <inheritdoc/>
    public RrStatus SetIrqHandler(int line, Action<int>? handler)
    {
        if ((uint)line >= Pl061Regs.Lines)
        {
            return RrStatus.InvalidArgument;
        }

        // Read before entering our own call, which makes it true.
        bool inCall = _gate.InCall;
        Action<int>? old = null;
        bool refused = false;
        RrStatus s = WithDevice(regs =>
        {
            lock (_lock)
            {
                old = _handlers[line];
                if (inCall && old is not null && !ReferenceEquals(old, handler))
                {
                    refused = true; // free_irq from a handler would wait for itself: change nothing
                    return;
                }

                Volatile.Write(ref _handlers[line], handler);
                ref LineIrq irq = ref _irq[line];
                irq.Stuck = false;
                irq.NoSyncMasked = false;
                irq.Unhandled = 0;
                byte bit = (byte)(1 << line);
                byte ie = regs.Read(Ie);
                regs.Write(Ie, handler is null ? (byte)(ie & ~bit) : (byte)(ie | bit));
            }
        });
        if (refused)
        {
            return RrStatus.WouldDeadlock;
        }

        if (s != RrStatus.Ok || old is null || ReferenceEquals(old, handler))
        {
            return s;
        }

        // synchronize_irq: a dispatch that read the old handler did so inside a gate call that
        // began before the swap, so before this grace period, which waits for it.
        return SynchronizeHandlers();
    }

    /// <inheritdoc/>
    public RrStatus DisableIrqNoSync(int line) => With(line, (regs, n) =>
    {
        lock (_lock)
        {
            // An edge stays latched in RIS and a level stays asserted: the interrupt is seen
            // (GPIOMIS) when the line is unmasked again, not lost.
            _irq[n].NoSyncMasked = true;
            regs.Write(Ie, (byte)(regs.Read(Ie) & ~(1 << n)));
        }
    });

    /// <inheritdoc/>
    public RrStatus GetIrqStats(int line, out RawGpioIrqStats stats)
    {
        stats = default;
        if ((uint)line >= Pl061Regs.Lines)
        {
            return RrStatus.InvalidArgument;
        }

        // Software state only (no MMIO): still readable after removal.
        lock (_lock)
        {
            ref LineIrq irq = ref _irq[line];
            stats.Handled = irq.Handled;
            stats.Spurious = irq.Spurious;
            stats.StuckDisables = irq.StuckDisables;
            stats.Disabled = irq.Stuck ? 1u : 0u;
        }

        return RrStatus.Ok;
    }

    /// <inheritdoc/>
    public void Interrupt(bool asserted) => OnInterrupt(asserted);

    /// <summary>Records a line's new trigger and re-arms the line if it was disabled (as stuck or by DisableIrqNoSync). Caller holds the lock, inside a call.</summary>
    private void SetTriggerLocked(RawMappedIo<Pl061Map, TBackend> regs, int n, RawGpioIrqType type)
    {
        ref LineIrq irq = ref _irq[n];
        irq.Trigger = type;
        irq.Unhandled = 0;
        if (irq.Stuck || irq.NoSyncMasked)
        {
            irq.Stuck = false;
            irq.NoSyncMasked = false;
            if (_handlers[n] is not null)
            {
                regs.Write(Ie, (byte)(regs.Read(Ie) | (1 << n)));
            }
        }
    }

    private RrStatus SynchronizeHandlers()
    {
        try
        {
            return _gate.Domain.Synchronize();
        }
        catch (ObjectDisposedException)
        {
            // Destroyed meanwhile: removal came first, and it waited for every handler.
            return RrStatus.Ok;
        }
    }

    // ---- dispatch ----------------------------------------------------------------------------

    /// <summary>The parent interrupt's entry point: called with the line level whenever it changes.</summary>
    private void OnInterrupt(bool asserted)
    {
        if (!asserted)
        {
            return;
        }

        // ORDERING: a full fence (Interlocked) between marking and Dispatch's look at
        // _dispatcher; pairs with the barrier in Dispatch between releasing _dispatcher and its
        // last look at _pending: either the dispatcher sees our mark or we see it gone.
        Interlocked.Exchange(ref _pending, 1);
        if (_lock.IsHeldByCurrentThread)
        {
            return; // raised by our own register write: dispatched once the lock is let go
        }

        Dispatch();
    }

    /// <summary>After an operation has left its call and the lock: dispatches an interrupt it only marked.</summary>
    private void DispatchIfPending()
    {
        if (Volatile.Read(ref _pending) != 0)
        {
            Dispatch();
        }
    }

    /// <summary>Becomes the chip's dispatcher and dispatches until nothing is pending, unless a thread already is (it then sees the mark).</summary>
    private void Dispatch()
    {
        int me = Environment.CurrentManagedThreadId;
        // Fails for the dispatcher itself too (a handler raising its own chip): its loop re-reads GPIOMIS.
        while (Volatile.Read(ref _pending) != 0 && Interlocked.CompareExchange(ref _dispatcher, me, 0) == 0)
        {
            try
            {
                DispatchRun();
            }
            finally
            {
                Volatile.Write(ref _dispatcher, 0);
            }

            // ORDERING: store-load fence between releasing _dispatcher and the loop's look at
            // _pending; pairs with OnInterrupt's Interlocked.Exchange (see there).
            Interlocked.MemoryBarrier();
        }
    }

    /// <summary>Dispatch rounds until GPIOMIS reads 0 with nothing marked, or the device is gone.</summary>
    private void DispatchRun()
    {
        int busy = 0; // rounds in a row that found GPIOMIS non-zero
        while (true)
        {
            // Cleared before GPIOMIS is read: an interrupt raised after the read marks it again.
            Interlocked.Exchange(ref _pending, 0);
            bool storm = busy >= StormBound;
            int found = DispatchRound(storm);
            if (found < 0 || storm)
            {
                return; // removed (no round, so no handler, starts any more), or gave up on a storm
            }

            if (found == 0)
            {
                if (Volatile.Read(ref _pending) == 0)
                {
                    return;
                }

                busy = 0;
                continue;
            }

            busy++;
        }
    }

    /// <summary>One round in one gate call: read GPIOMIS once, run each pending line's flow.</summary>
    /// <returns>1 if a line was pending, 0 if none, -1 if the device is gone.</returns>
    private int DispatchRound(bool storm)
    {
        Hardware? hw = EnterHardware(out RcuReader* call);
        if (hw is null)
        {
            return -1;
        }

        try
        {
            RawMappedIo<Pl061Map, TBackend> regs = hw.Regs;
            byte pending = regs.Read(Mis);
            if (pending == 0)
            {
                return 0;
            }

            for (int n = 0; n < Pl061Regs.Lines; n++)
            {
                if ((pending & (1 << n)) == 0)
                {
                    continue;
                }

                if (storm)
                {
                    DisableStorming(regs, n);
                }
                else
                {
                    HandleLine(regs, n);
                }
            }

            return 1;
        }
        finally
        {
            CallGate.Leave(call);
        }
    }

    /// <summary>A pending line's flow: handle_edge_irq, handle_level_irq, or handle_bad_irq for trigger NONE.</summary>
    private void HandleLine(RawMappedIo<Pl061Map, TBackend> regs, int n)
    {
        byte bit = (byte)(1 << n);
        Action<int>? handler;
        bool level;
        lock (_lock)
        {
            ref LineIrq irq = ref _irq[n];
            if (irq.Stuck || irq.NoSyncMasked)
            {
                return; // masked after this round read GPIOMIS: left latched for the re-arm
            }

            level = IsLevel(irq.Trigger);
            if (level)
            {
                regs.Write(Ie, (byte)(regs.Read(Ie) & ~bit)); // mask
            }

            // Ack: mask_ack_irq acks a level line too (harmless: its RIS follows the level).
            regs.Write(Ic, bit);
            handler = _handlers[n];
            if (handler is null || irq.Trigger == RawGpioIrqType.None)
            {
                irq.Spurious++; // handle_bad_irq: a level line without a handler stays masked
                return;
            }

            irq.Handled++;
        }

        handler(n);
        if (level)
        {
            EndLevel(regs, n);
        }
    }

    /// <summary>After a level line's handler: unmask it, or disable it when the handler keeps leaving the level asserted.</summary>
    private void EndLevel(RawMappedIo<Pl061Map, TBackend> regs, int n)
    {
        byte bit = (byte)(1 << n);
        bool disabled = false;
        lock (_lock)
        {
            ref LineIrq irq = ref _irq[n];
            if (_handlers[n] is null || irq.NoSyncMasked || irq.Stuck)
            {
                return; // cleared or disabled meanwhile: stays masked
            }

            if (!IsLevel(irq.Trigger) || (regs.Read(Ris) & bit) == 0)
            {
                irq.Unhandled = 0;
            }
            else if (++irq.Unhandled >= StuckBound)
            {
                // INVARIANT: a stuck line is masked until SetIrqHandler or SetIrqType re-arms it.
                irq.Stuck = true;
                irq.Unhandled = 0;
                irq.StuckDisables++;
                disabled = true;
            }

            if (!disabled)
            {
                regs.Write(Ie, (byte)(regs.Read(Ie) | bit)); // unmask (cond_unmask_irq)
            }
        }

        if (disabled)
        {
            ReportStuck(n, $"its handler returned with the level still asserted {StuckBound} times in a row");
        }
    }

    /// <summary>Disables a line that kept GPIOMIS set for StormBound rounds.</summary>
    private void DisableStorming(RawMappedIo<Pl061Map, TBackend> regs, int n)
    {
        byte bit = (byte)(1 << n);
        lock (_lock)
        {
            ref LineIrq irq = ref _irq[n];
            regs.Write(Ie, (byte)(regs.Read(Ie) & ~bit));
            regs.Write(Ic, bit);
            if (irq.Stuck)
            {
                return; // disabled already: a device that ignores GPIOIE; counted and reported once
            }

            // INVARIANT: as in EndLevel.
            irq.Stuck = true;
            irq.Unhandled = 0;
            irq.StuckDisables++;
        }

        ReportStuck(n, $"pending in {StormBound} dispatch rounds in a row");
    }

    /// <summary>One line on stderr per disable, like the kernel's __report_bad_irq.</summary>
    private static void ReportStuck(int line, string why) =>
        Console.Error.WriteLine($"refruntime: pl061: irq line {line}: nobody cared ({why}); line disabled until its handler or trigger is set again");

    private static bool IsLevel(RawGpioIrqType t) => t is RawGpioIrqType.LevelHigh or RawGpioIrqType.LevelLow;
}
