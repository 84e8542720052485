// The virtio-gpio front end's interrupt handler lifetimes and misbehaving lines: what the kernel's
// irq core gives a gpio-virtio interrupt (kernel/irq/manage.c free_irq / synchronize_irq /
// disable_irq_nosync, kernel/irq/spurious.c), over the eventq of virtio-gpio.md §2.4.
//
// Lifetimes. Every handler runs on the interrupt thread, one at a time. The thread reads a line's
// handler and marks a handler running (an odd _handlerSeq) in one hold of _lineSync, and marks it
// done (even) after the call; SetIrqHandler swaps the handler in one hold of the same lock and
// reads the sequence there. So either the thread reads the new handler, or the swap sees the old
// one running and waits for that very call to end - the sequence moves on, whatever runs next.
// The wait happens after the irq lock is released, so a running handler that configures a line
// cannot deadlock against it. On the interrupt thread - inside a handler - clearing or replacing a
// handler, or Remove (which joins the thread), would wait for itself: refused with WouldDeadlock,
// nothing changed.
//
// Masking. The eventq buffer is the mask (§2.4): DisableIrqNoSync keeps a line's buffer from
// being queued again after its event. A VALID event that arrives while a line is masked or stuck
// is held: SetIrqHandler re-arms the line, queues the buffer (a level is sampled again by the
// device) and has an edge delivered by the interrupt thread, so it is not lost.
//
// Misbehaving lines. A VALID event for a line disabled meanwhile runs no handler and counts as
// spurious (handle_bad_irq). A level handler that returns with the level still active - the front
// end asks the device (GET_VALUE) - StuckBound times in a row gets the line disabled: its buffer
// is not queued again, it is counted and reported once on stderr ("nobody cared"), until
// SetIrqHandler or SetIrqType re-arms it. Without this, such a line storms through the ring
// forever: the device answers a requeued buffer at once while the level is active.

using System;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using static RefRuntime.Core.Devices.VirtioGpio.VirtioGpioConst;

namespace RefRuntime.Core.Devices.VirtioGpio;

/// <content>Handler lifetimes, masking and misbehaving lines (see the file comment).</content>
public sealed unsafe partial class VirtioGpioChip
{
    /// <summary>Handler calls in a row that return with a level line still active before the line is disabled as stuck.</summary>
    public const int StuckBound = 64;

    private readonly object _lineSync = new(); // guards IrqLine's state fields and _handlerSeq; its monitor wakes handler waiters
    private long _handlerSeq;                  // odd while a handler runs on the interrupt thread
    private int _replays;                      // a re-armed line holds an edge to deliver

    /// <summary>Whether the calling thread is the chip's interrupt thread (inside one of its handlers): removal or clearing a handler from here would wait for itself.</summary>
    public bool InCall => OnInterruptThread;

    private bool OnInterruptThread => Thread.CurrentThread == _irqThread;

    /// <inheritdoc/>
    public RrStatus DisableIrqNoSync(int line)
    {
        if ((uint)line >= (uint)_ngpio || _eventq is null)
        {
            return RrStatus.InvalidArgument;
        }

        lock (_lineSync)
        {
            _irq[line].Masked = true;
        }

        return Failure is null ? RrStatus.Ok : RrStatus.NoDevice;
    }

    /// <inheritdoc/>
    public RrStatus GetIrqStats(int line, out RawGpioIrqStats stats)
    {
        stats = default;
        if ((uint)line >= (uint)_ngpio)
        {
            return RrStatus.InvalidArgument;
        }

        lock (_lineSync)
        {
            IrqLine l = _irq[line];
            stats.Handled = l.Handled;
            stats.Spurious = l.Spurious;
            stats.StuckDisables = l.StuckDisables;
            stats.Disabled = l.Stuck ? 1u : 0u;
        }

        return RrStatus.Ok;
    }

    /// <summary>Sets a line's handler; returns the handler sequence at the swap (odd: a handler was running).</summary>
    private long SwapHandler(IrqLine l, Action<int>? handler)
    {
        lock (_lineSync)
        {
            l.Handler = handler;
            return _handlerSeq;
        }
    }

    /// <summary>Waits until the handler call running at <paramref name="seq"/> (if it was odd) has returned.</summary>
    private void WaitForHandler(long seq)
    {
        if ((seq & 1) == 0)
        {
            return;
        }

        lock (_lineSync)
        {
            while (_handlerSeq == seq)
            {
                Monitor.Wait(_lineSync);
            }
        }
    }

    /// <summary>Clears a line's masks and stuck state; with <paramref name="replayHeldEdge"/>, has an edge held meanwhile delivered. Caller holds the irq lock.</summary>
    private void ReArm(int line, bool replayHeldEdge)
    {
        IrqLine l = _irq[line];
        bool replay;
        lock (_lineSync)
        {
            l.Masked = false;
            l.Stuck = false;
            l.Unhandled = 0;
            replay = l.Held && replayHeldEdge && IsEdge(l.Type);
            l.Held = false;
            l.Replay |= replay;
        }

        if (replay)
        {
            // ORDERING: after l.Replay is set (the lock's release); RunReplays exchanges the flag
            // before it reads l.Replay under the lock, so it finds the line, now or next round.
            Interlocked.Exchange(ref _replays, 1);
            _call.Ring();
        }
    }

    private void CountSpurious(IrqLine l)
    {
        lock (_lineSync)
        {
            l.Spurious++;
        }
    }

    /// <summary>Runs a line's handler for a VALID event (on the interrupt thread).</summary>
    /// <returns>Whether the line's buffer goes back to the device (unmask).</returns>
    private bool RunHandler(int line)
    {
        IrqLine l = _irq[line];
        Action<int>? h;
        lock (_lineSync)
        {
            h = l.Handler;
            if (!l.Enabled || h is null)
            {
                l.Spurious++; // disabled or cleared meanwhile: handle_bad_irq
                return true;  // QueueEventBuffer queues only an enabled line's buffer
            }

            if (l.Masked || l.Stuck)
            {
                l.Held = true; // delivered when re-armed
                return false;
            }

            l.Handled++;
            _handlerSeq++; // odd: running (see the file comment)
        }

        Interlocked.Increment(ref _interrupts);
        try
        {
            h(line);
        }
        finally
        {
            lock (_lineSync)
            {
                _handlerSeq++;
                Monitor.PulseAll(_lineSync);
            }
        }

        RawGpioIrqType type = l.Type;
        bool level = type is RawGpioIrqType.LevelHigh or RawGpioIrqType.LevelLow;
        // Still active after its handler? (A failed request counts as no: never disable on doubt.)
        bool active = level && l.Enabled
            && Request(line, VIRTIO_GPIO_MSG_GET_VALUE, 0, out byte value) == RrStatus.Ok
            && (value != 0) == (type == RawGpioIrqType.LevelHigh);
        bool disabled = false;
        bool requeue;
        lock (_lineSync)
        {
            if (!active)
            {
                l.Unhandled = 0;
            }
            else if (++l.Unhandled >= StuckBound && !l.Stuck)
            {
                // INVARIANT: a stuck line's buffer stays with us until SetIrqHandler or SetIrqType re-arms it.
                l.Stuck = true;
                l.Unhandled = 0;
                l.StuckDisables++;
                disabled = true;
            }

            requeue = !l.Masked && !l.Stuck;
        }

        if (disabled)
        {
            // One line per disable, like the kernel's __report_bad_irq.
            Console.Error.WriteLine($"refruntime: virtio-gpio: irq line {line}: nobody cared (its handler returned with the level still active {StuckBound} times in a row); line disabled until its handler or trigger is set again");
        }

        return requeue;
    }

    /// <summary>Delivers the edges held while re-armed lines were masked (on the interrupt thread).</summary>
    /// <returns>Whether there was anything to look at.</returns>
    private bool RunReplays()
    {
        if (Interlocked.Exchange(ref _replays, 0) == 0)
        {
            return false;
        }

        for (int line = 0; line < _ngpio; line++)
        {
            IrqLine l = _irq[line];
            bool replay;
            lock (_lineSync)
            {
                replay = l.Replay;
                l.Replay = false;
            }

            if (replay && RunHandler(line))
            {
                QueueEventBuffer(line);
            }
        }

        return true;
    }

    private static bool IsEdge(RawGpioIrqType t) => (t & RawGpioIrqType.EdgeBoth) != 0;
}
