// The virtio-gpio front-end driver (docs/virtio-gpio.md; the shape of Linux
// drivers/gpio/gpio-virtio.c): the IGpioChip interface served through the virtqueues, so consumer
// code written against IGpioChip runs unchanged over the PL061 driver or over the ring.
//
// Requests. Each line owns one preallocated request/response pair in guest memory and a slot
// lock: one outstanding request per line, as in Linux. A request is added and the device kicked
// under the queue lock (the driver side of a virtqueue is single-threaded); the caller then waits
// for its slot's completion. Completions are collected by whoever holds the queue lock — the
// waiting caller itself polls the used ring first (no extra thread hop on the fast path), and an
// interrupt thread that sleeps on the call doorbell collects the rest and every eventq buffer.
// A response counts only with status OK and exactly the expected used length (2, or 1 + names
// size); ERR becomes InvalidArgument, or NoDevice when the device reports it needs a reset (its
// hardware is gone). No timeout on a live device (Linux removed it: the device owns the buffers
// until it answers), but a device that stops, breaks its queue or needs a reset wakes every
// waiter with NoDevice, and that line's buffers are not reused until the device returns them
// (a vhost-user back-end restarted behind a reconnecting transport replays the chain; the next
// request on that line waits for the replayed chain to come back first).
//
// Interrupts follow Linux's flag model (gpio-virtio.c): SetIrqType stores the type; SetIrqHandler enables
// (SET_IRQ_TYPE, then queue the line's eventq buffer = unmask) or disables (SET_IRQ_TYPE NONE; the
// device returns the buffer INVALID, which is dropped). A VALID buffer runs the handler on the
// interrupt thread and is then queued again; an INVALID one while enabled is requeued; one with a
// used length other than 1 is dropped. Changing the type of an enabled line is NONE, then the new
// type (virtio 1.2 "GPIO Device", Set IRQ Type: disable before changing). From the NONE request
// until the new type is acknowledged the line is "updating" and nobody queues its buffer: the
// device has the line disabled and would hand the buffer straight back INVALID, again and again
// (the eventq driver rule "enable before unmask"; Linux irq_bus_sync_unlock likewise queues the
// buffer only after SET_IRQ_TYPE returned). Handler lifetimes, masking and stuck lines are in
// VirtioGpioChip.Interrupts.cs.

using System;
using System.Buffers.Binary;
using System.Text;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Virtio;
using static RefRuntime.Core.Devices.VirtioGpio.VirtioGpioConst;

namespace RefRuntime.Core.Devices.VirtioGpio;

/// <summary>The virtio-gpio front end (see file comment).</summary>
public sealed unsafe partial class VirtioGpioChip : IGpioChip, IDisposable
{
    private const int RequestqSize = 64;
    private const int EventqSize = 64;
    private const ulong SlotStride = 64; // one cache line per request/response pair
    private const ulong EventToken = 1UL << 32;

    private sealed class Slot
    {
        public readonly Lock Lock = new();
        public readonly ManualResetEventSlim Done = new(false, 0);
        public ulong RequestGpa;
        public ulong ResponseGpa;
        public byte* Request;
        public byte* Response;
        public uint ResponseCapacity;
        public volatile bool Completed;
        public uint UsedLength;
        public volatile bool Dead; // abandoned to a device that stopped answering: not reused until it returns them
    }

    private sealed class IrqLine
    {
        public RawGpioIrqType Type;
        public Action<int>? Handler;   // written under the irq lock and _lineSync
        public volatile bool Enabled;
        public bool Queued;
        public bool Updating; // a type change is in flight: the buffer stays with us (under the queue lock)
        public ulong RequestGpa;
        public ulong ResponseGpa;
        public byte* Response;

        // Guarded by _lineSync (VirtioGpioChip.Interrupts.cs).
        public bool Masked;            // DisableIrqNoSync: the buffer is not queued again
        public bool Stuck;             // disabled as stuck: the buffer is not queued again
        public bool Held;              // a VALID event arrived while masked or stuck: delivered when re-armed
        public bool Replay;            // re-armed with an edge held: the interrupt thread delivers it
        public int Unhandled;          // level handler calls in a row that left the level active
        public ulong Handled;
        public ulong Spurious;
        public ulong StuckDisables;
    }

    private readonly IVirtioGpioTransport _device;
    private readonly GuestMemory _memory;
    private readonly VirtqDriver _requestq;
    private readonly VirtqDriver? _eventq;
    private readonly Doorbell _call = new();
    private readonly Lock _queueLock = new();
    private readonly Slot[] _slots;        // one per line, plus [ngpio] for GET_NAMES
    private readonly IrqLine[] _irq;
    private readonly Lock _irqLock = new(); // Linux irq_lock: serialises irq configuration
    private readonly int _ngpio;
    private readonly uint _namesSize;
    private readonly string?[] _names;
    private readonly Thread _irqThread;
    private volatile bool _stop;
    private int _removing;
    private volatile string? _failure;
    private long _droppedEvents;
    private int _blockedWaiters;
    private long _interrupts;

    private VirtioGpioChip(IVirtioGpioTransport device, GuestMemory memory, VirtqDriver requestq, VirtqDriver? eventq, int ngpio, uint namesSize)
    {
        _device = device;
        _memory = memory;
        _requestq = requestq;
        _eventq = eventq;
        _ngpio = ngpio;
        _namesSize = namesSize;
        _names = new string?[ngpio];
        _slots = new Slot[ngpio + 1];
        _irq = new IrqLine[ngpio];
        _irqThread = new Thread(InterruptThread) { IsBackground = true, Name = "virtio-gpio interrupts" };
    }

    /// <inheritdoc/>
    public int LineCount => _ngpio;

    /// <summary>Whether the device negotiated interrupts (VIRTIO_GPIO_F_IRQ).</summary>
    public bool HasInterrupts => _eventq is not null;

    /// <summary>Why the device counts as gone (it needs a reset, stopped, or broke a queue), or null.</summary>
    public string? Failure => _failure ?? (_device.NeedsReset ? "the device needs a reset (its hardware is gone)" : null);

    /// <summary>eventq buffers dropped (wrong used length, or status neither VALID nor INVALID).</summary>
    public long DroppedEvents => Interlocked.Read(ref _droppedEvents);

    /// <summary>Interrupts delivered to handlers.</summary>
    public long Interrupts => Interlocked.Read(ref _interrupts);

    /// <summary>A line's name from the device (null when unnamed or the device has no names).</summary>
    public string? LineName(int line) => (uint)line < (uint)_ngpio ? _names[line] : null;

    /// <summary>
    /// Probes a virtio-gpio device: reads its configuration (refuses ngpio = 0), negotiates
    /// VERSION_1, EVENT_IDX, INDIRECT_DESC and (if offered) F_IRQ, sets up the queues in
    /// <paramref name="memory"/>, starts the device and fetches the line names (softly: a bad
    /// names blob leaves the lines unnamed).
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NoDevice"/> (no lines, or the device refused to start); <see cref="RrStatus.NoSpace"/> (region too small).</returns>
    public static RrStatus Probe(IVirtioGpioTransport device, GuestMemory memory, out VirtioGpioChip? chip, out string? error)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(memory);
        chip = null;
        int ngpio = (int)device.ReadConfig(0, 2);
        uint namesSize = device.ReadConfig(4, 4);
        if (ngpio == 0)
        {
            error = "the device reports 0 lines";
            return RrStatus.NoDevice;
        }

        ulong offered = device.DeviceFeatures;
        if ((offered & VIRTIO_F_VERSION_1) == 0)
        {
            error = "the device does not offer VIRTIO_F_VERSION_1";
            return RrStatus.NoDevice;
        }

        ulong features = offered & (VIRTIO_F_VERSION_1 | VIRTIO_GPIO_F_IRQ | (ulong)VirtqFeatures.EventIdx | (ulong)VirtqFeatures.IndirectDesc);
        var ringFeatures = (VirtqFeatures)(features & (ulong)(VirtqFeatures.EventIdx | VirtqFeatures.IndirectDesc));
        bool irq = (features & VIRTIO_GPIO_F_IRQ) != 0;

        RrStatus s = VirtqDriver.Create(memory, RequestqSize, ringFeatures, 0, out VirtqDriver? rq, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        VirtqDriver? eq = null;
        if (irq)
        {
            s = VirtqDriver.Create(memory, EventqSize, ringFeatures, 0, out eq, out error);
            if (s != RrStatus.Ok)
            {
                rq!.Destroy();
                return s;
            }
        }

        var c = new VirtioGpioChip(device, memory, rq!, eq, ngpio, namesSize);
        s = c.CarveBuffers(out error);
        if (s == RrStatus.Ok)
        {
            s = device.Start(features, memory, rq!.Rings, eq?.Rings, c._call, out error);
            if (s != RrStatus.Ok)
            {
                s = RrStatus.NoDevice;
            }
        }

        if (s != RrStatus.Ok)
        {
            rq!.Destroy();
            eq?.Destroy();
            return s;
        }

        c._irqThread.Start();
        c.FetchNames();
        chip = c;
        return RrStatus.Ok;
    }

    private RrStatus CarveBuffers(out string? error)
    {
        error = null;
        for (int i = 0; i <= _ngpio; i++)
        {
            bool names = i == _ngpio;
            uint cap = names ? 1 + _namesSize : ResponseSize;
            if (names && _namesSize == 0)
            {
                cap = ResponseSize;
            }

            RrStatus s = _memory.TryCarve(SlotStride, 64, out ulong req);
            ulong resp = req + RequestSize;
            if (s == RrStatus.Ok && names)
            {
                s = _memory.TryCarve(cap, 8, out resp);
            }

            if (s != RrStatus.Ok)
            {
                error = "the guest-memory region has no room for the request buffers";
                return s;
            }

            _memory.TryTranslate(req, RequestSize, out byte* reqHost);
            _memory.TryTranslate(resp, cap, out byte* respHost);
            _slots[i] = new Slot { RequestGpa = req, ResponseGpa = resp, Request = reqHost, Response = respHost, ResponseCapacity = cap };
        }

        for (int i = 0; i < _ngpio; i++)
        {
            var l = new IrqLine();
            if (_eventq is not null)
            {
                if (_memory.TryCarve(8, 8, out ulong b) != RrStatus.Ok)
                {
                    error = "the guest-memory region has no room for the eventq buffers";
                    return RrStatus.NoSpace;
                }

                l.RequestGpa = b;
                l.ResponseGpa = b + IrqRequestSize;
                _memory.TryTranslate(b, 8, out byte* host);
                BinaryPrimitives.WriteUInt16LittleEndian(new Span<byte>(host, 2), (ushort)i);
                l.Response = host + IrqRequestSize;
            }

            _irq[i] = l;
        }

        return RrStatus.Ok;
    }

    // ---- the gpio_chip operations ----------------------------------------------------------

    /// <inheritdoc/>
    public RrStatus GetDirection(int line, out RawGpioDirection direction)
    {
        direction = RawGpioDirection.Input;
        RrStatus s = Request(line, VIRTIO_GPIO_MSG_GET_DIRECTION, 0, out byte v);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        switch (v)
        {
            case VIRTIO_GPIO_DIRECTION_IN:
                return RrStatus.Ok;
            case VIRTIO_GPIO_DIRECTION_OUT:
                direction = RawGpioDirection.Output;
                return RrStatus.Ok;
            default:
                return RrStatus.InvalidArgument; // NONE (not requested) or garbage, as Linux: -EINVAL
        }
    }

    /// <inheritdoc/>
    public RrStatus DirectionInput(int line) => Request(line, VIRTIO_GPIO_MSG_SET_DIRECTION, VIRTIO_GPIO_DIRECTION_IN, out _);

    /// <inheritdoc/>
    public RrStatus DirectionOutput(int line, bool value)
    {
        // The value first, then the direction (no glitch; Linux does the same).
        RrStatus s = Request(line, VIRTIO_GPIO_MSG_SET_VALUE, value ? 1u : 0u, out _);
        return s != RrStatus.Ok ? s : Request(line, VIRTIO_GPIO_MSG_SET_DIRECTION, VIRTIO_GPIO_DIRECTION_OUT, out _);
    }

    /// <inheritdoc/>
    public RrStatus Get(int line, out bool value)
    {
        RrStatus s = Request(line, VIRTIO_GPIO_MSG_GET_VALUE, 0, out byte v);
        value = v != 0;
        return s;
    }

    /// <inheritdoc/>
    public RrStatus Set(int line, bool value) => Request(line, VIRTIO_GPIO_MSG_SET_VALUE, value ? 1u : 0u, out _);

    /// <summary>Releases a line (SET_DIRECTION NONE: the device forgets its state; Linux <c>free</c>).</summary>
    public RrStatus Free(int line) => Request(line, VIRTIO_GPIO_MSG_SET_DIRECTION, VIRTIO_GPIO_DIRECTION_NONE, out _);

    /// <inheritdoc/>
    public RrStatus SetIrqType(int line, RawGpioIrqType type)
    {
        if ((uint)line >= (uint)_ngpio || !IsValidIrqType((uint)type))
        {
            return RrStatus.InvalidArgument;
        }

        if (_eventq is null)
        {
            return RrStatus.InvalidArgument; // no VIRTIO_GPIO_F_IRQ
        }

        lock (_irqLock)
        {
            IrqLine l = _irq[line];
            if (l.Type == type)
            {
                return RrStatus.Ok;
            }

            if (l.Enabled)
            {
                return ChangeEnabledIrqType(line, l, type);
            }

            l.Type = type;
            ReArm(line, replayHeldEdge: false);
            return RrStatus.Ok;
        }
    }

    /// <summary>
    /// Rule 9: NONE first, then the new type. The device returns the held buffer INVALID at the
    /// NONE step; the buffer goes back to it only once the new type is acknowledged (enable before
    /// unmask), so it does not bounce off a disabled line meanwhile. Caller holds the irq lock.
    /// </summary>
    private RrStatus ChangeEnabledIrqType(int line, IrqLine l, RawGpioIrqType type)
    {
        lock (_queueLock)
        {
            l.Updating = true;
        }

        RrStatus s = Request(line, VIRTIO_GPIO_MSG_IRQ_TYPE, VIRTIO_GPIO_IRQ_TYPE_NONE, out _);
        if (s == RrStatus.Ok)
        {
            // The device has the line disabled now.
            if (type == RawGpioIrqType.None)
            {
                l.Enabled = false;
            }
            else
            {
                s = Request(line, VIRTIO_GPIO_MSG_IRQ_TYPE, (uint)type, out _);
                if (s != RrStatus.Ok)
                {
                    // The new type was refused: the line stays disabled (its buffer is not
                    // queued); setting a handler again re-enables it with the old type.
                    l.Enabled = false;
                }
            }

            if (s == RrStatus.Ok)
            {
                l.Type = type;
                ReArm(line, replayHeldEdge: false); // a new type re-arms a line disabled as stuck
            }
        }

        // On a refused NONE (ERR changes nothing, rule D19) the old type is still enabled.
        lock (_queueLock)
        {
            l.Updating = false;
        }

        QueueEventBuffer(line);
        return s;
    }

    /// <inheritdoc/>
    public RrStatus SetIrqHandler(int line, Action<int>? handler)
    {
        if ((uint)line >= (uint)_ngpio)
        {
            return RrStatus.InvalidArgument;
        }

        if (_eventq is null)
        {
            return handler is null ? RrStatus.Ok : RrStatus.InvalidArgument;
        }

        long running;
        RrStatus s;
        lock (_irqLock)
        {
            IrqLine l = _irq[line];
            Action<int>? old = l.Handler;
            bool replacing = old is not null && !ReferenceEquals(old, handler);
            if (replacing && OnInterruptThread)
            {
                return RrStatus.WouldDeadlock; // free_irq from a handler would wait for itself: change nothing
            }

            s = SetIrqHandlerLocked(line, l, handler, out running);
            if (!replacing)
            {
                running = 0;
            }
        }

        // synchronize_irq, outside the irq lock (a running handler may be waiting for it).
        WaitForHandler(running);
        return s;
    }

    /// <summary>
    /// SetIrqHandler's configuration steps; <paramref name="running"/> receives the handler
    /// sequence at the swap, for <see cref="WaitForHandler"/>. Caller holds the irq lock.
    /// </summary>
    private RrStatus SetIrqHandlerLocked(int line, IrqLine l, Action<int>? handler, out long running)
    {
        if (handler is null)
        {
            running = SwapHandler(l, null);
            if (!l.Enabled)
            {
                return RrStatus.Ok;
            }

            // Disable: the device returns the held buffer INVALID (dropped: we are disabled).
            l.Enabled = false;
            return Request(line, VIRTIO_GPIO_MSG_IRQ_TYPE, VIRTIO_GPIO_IRQ_TYPE_NONE, out _);
        }

        if (!l.Enabled && l.Type == RawGpioIrqType.None)
        {
            running = 0;
            return RrStatus.InvalidArgument; // set a trigger type first
        }

        running = SwapHandler(l, handler);
        if (l.Enabled)
        {
            ReArm(line, replayHeldEdge: true);
            QueueEventBuffer(line);
            return RrStatus.Ok;
        }

        // Enable before unmasking (rule 2): SET_IRQ_TYPE, then the eventq buffer.
        RrStatus s = Request(line, VIRTIO_GPIO_MSG_IRQ_TYPE, (uint)l.Type, out _);
        if (s != RrStatus.Ok)
        {
            SwapHandler(l, null);
            return s;
        }

        ReArm(line, replayHeldEdge: false);
        l.Enabled = true;
        QueueEventBuffer(line);
        return RrStatus.Ok;
    }

    /// <summary>Reads several lines with their requests in flight together (one kick).</summary>
    /// <returns>The first failure, or <see cref="RrStatus.Ok"/>.</returns>
    public RrStatus GetMultiple(ReadOnlySpan<int> lines, Span<bool> values)
    {
        if (values.Length < lines.Length)
        {
            return RrStatus.InvalidArgument;
        }

        Span<byte> raw = stackalloc byte[lines.Length];
        RrStatus s = RequestMany(lines, VIRTIO_GPIO_MSG_GET_VALUE, default, raw);
        for (int i = 0; i < lines.Length; i++)
        {
            values[i] = raw[i] != 0;
        }

        return s;
    }

    /// <summary>Drives several output lines with their requests in flight together (one kick).</summary>
    /// <returns>The first failure, or <see cref="RrStatus.Ok"/>.</returns>
    public RrStatus SetMultiple(ReadOnlySpan<int> lines, ReadOnlySpan<bool> values)
    {
        if (values.Length < lines.Length)
        {
            return RrStatus.InvalidArgument;
        }

        Span<byte> raw = stackalloc byte[lines.Length];
        return RequestMany(lines, VIRTIO_GPIO_MSG_SET_VALUE, values, raw);
    }

    /// <summary>
    /// Unbinds the driver: stops the interrupt thread - waiting for a running handler; none
    /// starts afterwards - resets the device and detaches the queues. Later calls answer
    /// <see cref="RrStatus.NoDevice"/>. Idempotent.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.WouldDeadlock"/> (nothing changed) from one of the chip's handlers, which run on the interrupt thread this waits for.</returns>
    public RrStatus Remove()
    {
        if (OnInterruptThread)
        {
            return RrStatus.WouldDeadlock;
        }

        bool first = Interlocked.Exchange(ref _removing, 1) == 0;
        if (first)
        {
            _stop = true;
            _failure ??= "the driver was unbound";
            _call.Ring();
        }

        _irqThread.Join(); // every caller returns after the handlers are done, not only the first
        if (!first)
        {
            return RrStatus.Ok;
        }

        _device.Reset();
        lock (_queueLock)
        {
            _requestq.Destroy();
            _eventq?.Destroy();
        }

        foreach (Slot s in _slots)
        {
            s.Done.Set();
        }

        return RrStatus.Ok;
    }

    /// <summary>Unbinds the driver (see <see cref="Remove"/>).</summary>
    /// <exception cref="InvalidOperationException">Called from one of the chip's handlers.</exception>
    public void Dispose()
    {
        if (Remove() == RrStatus.WouldDeadlock)
        {
            throw new InvalidOperationException("VirtioGpioChip.Dispose: called from one of the chip's interrupt handlers, which run on the interrupt thread it must wait for.");
        }
    }

    // ---- requests --------------------------------------------------------------------------

    private RrStatus Request(int line, ushort type, uint value, out byte result)
    {
        result = 0;
        if ((uint)line >= (uint)_ngpio)
        {
            return RrStatus.InvalidArgument;
        }

        Slot slot = _slots[line];
        lock (slot.Lock)
        {
            RrStatus s = Submit(slot, line, new VirtioGpioRequest(type, (ushort)line, value), ResponseSize, publish: true);
            return s == RrStatus.Ok ? Finish(slot, ResponseSize, out result) : s;
        }
    }

    private RrStatus RequestMany(ReadOnlySpan<int> lines, ushort type, ReadOnlySpan<bool> values, Span<byte> results)
    {
        foreach (int line in lines)
        {
            if ((uint)line >= (uint)_ngpio)
            {
                return RrStatus.InvalidArgument;
            }
        }

        // Slot locks in ascending line order (the caller's order could deadlock against another batch).
        int[] order = lines.ToArray();
        Array.Sort(order);
        int taken = 0;
        RrStatus first = RrStatus.Ok;
        try
        {
            for (; taken < order.Length; taken++)
            {
                if (taken > 0 && order[taken] == order[taken - 1])
                {
                    return RrStatus.InvalidArgument; // a line twice: one outstanding request per line
                }

                _slots[order[taken]].Lock.Enter();
            }

            int submitted = 0;
            for (int i = 0; i < lines.Length && first == RrStatus.Ok; i++)
            {
                uint v = type == VIRTIO_GPIO_MSG_SET_VALUE && values[i] ? 1u : 0u;
                first = Submit(_slots[lines[i]], lines[i], new VirtioGpioRequest(type, (ushort)lines[i], v), ResponseSize, publish: false);
                if (first == RrStatus.Ok)
                {
                    submitted++;
                }
            }

            RrStatus k = Kick();
            for (int i = 0; i < submitted; i++)
            {
                RrStatus s = k == RrStatus.Ok ? Finish(_slots[lines[i]], ResponseSize, out results[i]) : k;
                if (first == RrStatus.Ok)
                {
                    first = s;
                }
            }

            return first;
        }
        finally
        {
            for (int i = 0; i < taken; i++)
            {
                _slots[order[i]].Lock.Exit();
            }
        }
    }

    /// <summary>
    /// Fills the slot's request and adds its chain; with <paramref name="publish"/>, also publishes
    /// it and kicks the device if it asked, under the same hold of the queue lock (a batch
    /// publishes once, with <see cref="Kick"/>).
    /// </summary>
    private RrStatus Submit(Slot slot, int token, VirtioGpioRequest req, uint expected, bool publish)
    {
        // A chain abandoned to a device that stopped answering still belongs to the device. Once
        // the transport is healthy again (a reconnect replays it to the new back-end), wait for it
        // to come back, as for any request on a live device, instead of failing a line that works.
        if (slot.Dead && Failure is null)
        {
            WaitFor(slot);
        }

        if (slot.Dead || Failure is not null)
        {
            return RrStatus.NoDevice;
        }

        req.Write(new Span<byte>(slot.Request, RequestSize));
        slot.Completed = false;
        slot.Done.Reset();
        ReadOnlySpan<VirtqBuffer> bufs = [new VirtqBuffer(slot.RequestGpa, RequestSize), new VirtqBuffer(slot.ResponseGpa, expected)];
        RrStatus s;
        bool kick = false;
        lock (_queueLock)
        {
            s = _requestq.TryAdd(bufs, 1, (ulong)token);
            if (s == RrStatus.Broken)
            {
                _failure ??= $"requestq broken: {_requestq.BrokenReason}";
                return RrStatus.NoDevice;
            }

            // NoSpace cannot happen: the queue has room for every line's pair plus GET_NAMES.
            if (s == RrStatus.Ok && publish)
            {
                kick = _requestq.KickPrepare();
            }
        }

        if (kick)
        {
            _device.Kick.Ring();
        }

        return s;
    }

    private RrStatus Kick()
    {
        bool kick;
        lock (_queueLock)
        {
            if (_requestq.IsBroken)
            {
                return RrStatus.NoDevice;
            }

            kick = _requestq.KickPrepare();
        }

        if (kick)
        {
            _device.Kick.Ring();
        }

        return RrStatus.Ok;
    }

    /// <summary>Waits for the slot's completion and checks status and used length.</summary>
    private RrStatus Finish(Slot slot, uint expected, out byte value)
    {
        value = 0;
        if (!WaitFor(slot))
        {
            slot.Dead = true; // the device may still own the buffers: not reused until it returns them
            return RrStatus.NoDevice;
        }

        byte status = slot.Response[0];
        if (slot.UsedLength != expected || status != VIRTIO_GPIO_STATUS_OK)
        {
            return _device.NeedsReset ? RrStatus.NoDevice : RrStatus.InvalidArgument;
        }

        value = slot.Response[1];
        return RrStatus.Ok;
    }

    private bool WaitFor(Slot slot)
    {
        // Poll the used ring ourselves first: the answer usually comes within microseconds, and
        // collecting it here saves a hop through the interrupt thread.
        for (int i = 0; i < 2048 && !slot.Completed; i++)
        {
            if ((i & 7) == 0)
            {
                TryCollect();
            }
            else
            {
                Thread.SpinWait(1);
            }
        }

        if (slot.Completed)
        {
            return true;
        }

        // Then block: with a waiter blocked, the interrupt thread keeps requestq notifications on
        // and collects for us. Keep polling between short waits too: the interrupt thread may be
        // busy running a handler that is itself waiting here.
        Interlocked.Increment(ref _blockedWaiters);
        try
        {
            bool pending;
            lock (_queueLock)
            {
                pending = _requestq.EnableCallbacks();
            }

            _call.Ring(); // the interrupt thread re-reads _blockedWaiters before it sleeps again
            for (int i = 0; !slot.Completed; i++)
            {
                if (pending || (i & 3) == 0)
                {
                    TryCollect();
                    pending = false;
                    continue;
                }

                if (Failure is not null)
                {
                    return slot.Completed;
                }

                slot.Done.Wait(i < 64 ? 1 : 20);
            }

            return true;
        }
        finally
        {
            Interlocked.Decrement(ref _blockedWaiters);
        }
    }

    private void TryCollect()
    {
        if (_queueLock.TryEnter())
        {
            try
            {
                CollectRequests();
            }
            finally
            {
                _queueLock.Exit();
            }
        }
    }

    /// <summary>Collects used requestq chains, completing their slots. Caller holds the queue lock.</summary>
    private bool CollectRequests()
    {
        bool any = false;
        while (true)
        {
            RrStatus s = _requestq.TryGetUsed(out ulong token, out uint len);
            if (s == RrStatus.NotFound)
            {
                return any;
            }

            if (s != RrStatus.Ok)
            {
                _failure ??= $"requestq broken: {_requestq.BrokenReason}";
                WakeAll();
                return any;
            }

            Slot slot = _slots[(int)token];
            slot.UsedLength = len;
            slot.Dead = false; // the device gave the buffers back (late, after a reconnect): usable again
            slot.Completed = true;
            slot.Done.Set();
            any = true;
        }
    }

    private void WakeAll()
    {
        foreach (Slot s in _slots)
        {
            s.Done.Set();
        }
    }

    // ---- names -------------------------------------------------------------------------------

    private void FetchNames()
    {
        if (_namesSize == 0)
        {
            return;
        }

        Slot slot = _slots[_ngpio];
        lock (slot.Lock)
        {
            uint expected = 1 + _namesSize;
            RrStatus s = Submit(slot, _ngpio, new VirtioGpioRequest(VIRTIO_GPIO_MSG_GET_NAMES, 0, 0), expected, publish: true);
            if (s != RrStatus.Ok || !WaitFor(slot) || slot.UsedLength != expected || slot.Response[0] != VIRTIO_GPIO_STATUS_OK)
            {
                return; // names are optional: the chip works without them
            }

            // SAFETY: the slot's response buffer was carved with 1 + _namesSize bytes.
            ParseNames(new Span<byte>(slot.Response + 1, (int)_namesSize), _names);
        }
    }

    /// <summary>
    /// Splits a names blob as Linux's <c>virtio_gpio_get_names</c> (drivers/gpio/gpio-virtio.c)
    /// does: the blob's last byte is taken as NUL whatever the device put there (no check, so
    /// the walk always ends inside the blob), then one NUL-terminated string per line, in line
    /// order; an empty string is an unnamed line. If the blob runs out before every line has its
    /// string, the blob is "too short" and no line gets a name; bytes after the last line's
    /// string are ignored. The chip works without names either way.
    /// </summary>
    /// <param name="blob">The names bytes of the GET_NAMES response (its last byte is overwritten).</param>
    /// <param name="names">One entry per line; left all null when the blob is too short.</param>
    private static void ParseNames(Span<byte> blob, string?[] names)
    {
        if (blob.IsEmpty)
        {
            return;
        }

        blob[^1] = 0;
        var parsed = new string?[names.Length];
        int at = 0;
        for (int line = 0; line < names.Length; line++)
        {
            if (at >= blob.Length)
            {
                return; // too short: the walk ran out before this line
            }

            // A NUL is always found: the last byte is one.
            int end = at + blob[at..].IndexOf((byte)0);
            parsed[line] = end == at ? null : Encoding.ASCII.GetString(blob[at..end]);
            at = end + 1;
        }

        parsed.CopyTo(names, 0);
    }

    // ---- interrupts ----------------------------------------------------------------------------

    /// <summary>
    /// Queues the line's eventq buffer (unmask) unless it is already queued, the line is disabled,
    /// or a type change is in flight (<see cref="ChangeEnabledIrqType"/> queues it afterwards).
    /// Caller holds the irq lock or runs on the interrupt thread.
    /// </summary>
    private void QueueEventBuffer(int line)
    {
        IrqLine l = _irq[line];
        bool kick = false;
        lock (_queueLock)
        {
            if (l.Queued || l.Updating || !l.Enabled || _eventq is null || _eventq.IsBroken)
            {
                return;
            }

            ReadOnlySpan<VirtqBuffer> bufs = [new VirtqBuffer(l.RequestGpa, IrqRequestSize), new VirtqBuffer(l.ResponseGpa, IrqResponseSize)];
            if (_eventq.TryAdd(bufs, 1, EventToken | (uint)line) == RrStatus.Ok)
            {
                l.Queued = true;
                kick = _eventq.KickPrepare();
            }
        }

        if (kick)
        {
            _device.EventqKick.Ring();
        }
    }

    private void InterruptThread()
    {
        Span<int> fired = stackalloc int[_ngpio];
        Span<int> requeue = stackalloc int[_ngpio];
        while (!_stop)
        {
            int nFired = 0, nRequeue = 0;
            bool work;
            lock (_queueLock)
            {
                work = CollectRequests();
                while (_eventq is not null)
                {
                    RrStatus s = _eventq.TryGetUsed(out ulong token, out uint len);
                    if (s == RrStatus.NotFound)
                    {
                        break;
                    }

                    if (s != RrStatus.Ok)
                    {
                        _failure ??= $"eventq broken: {_eventq.BrokenReason}";
                        WakeAll();
                        break;
                    }

                    work = true;
                    int line = (int)(uint)token; // from the token, never from bytes the device handed back
                    IrqLine l = _irq[line];
                    if (len != IrqResponseSize)
                    {
                        // Linux logs "irq with incorrect length" and drops it; the line stays queued
                        // there, here it is simply requeued if still enabled.
                        Interlocked.Increment(ref _droppedEvents);
                        l.Queued = false;
                        requeue[nRequeue++] = line;
                        continue;
                    }

                    l.Queued = false;
                    byte status = *l.Response;
                    if (!l.Enabled)
                    {
                        if (status == VIRTIO_GPIO_IRQ_STATUS_VALID)
                        {
                            CountSpurious(l); // fired just before it was disabled: no handler (handle_bad_irq)
                        }

                        continue; // disabled meanwhile: drop
                    }

                    if (status == VIRTIO_GPIO_IRQ_STATUS_VALID)
                    {
                        fired[nFired++] = line;
                    }
                    else if (status == VIRTIO_GPIO_IRQ_STATUS_INVALID)
                    {
                        requeue[nRequeue++] = line; // disabled and re-enabled meanwhile
                    }
                    else
                    {
                        Interlocked.Increment(ref _droppedEvents);
                        requeue[nRequeue++] = line;
                    }
                }

                if (_device.NeedsReset)
                {
                    WakeAll();
                }
            }

            // Handlers run without our locks (they may call back into the chip), then the line is
            // unmasked again by requeueing its buffer (handle_level_irq: mask, handle, unmask),
            // unless it was masked or found stuck.
            for (int i = 0; i < nFired; i++)
            {
                int line = fired[i];
                if (RunHandler(line))
                {
                    QueueEventBuffer(line);
                }
            }

            work |= RunReplays();

            for (int i = 0; i < nRequeue; i++)
            {
                QueueEventBuffer(requeue[i]);
            }

            if (work)
            {
                continue;
            }

            // requestq notifications only while a caller is blocked (callers poll for themselves);
            // eventq notifications always.
            bool pending;
            lock (_queueLock)
            {
                if (Volatile.Read(ref _blockedWaiters) > 0)
                {
                    pending = _requestq.EnableCallbacks();
                }
                else
                {
                    _requestq.DisableCallbacks();
                    pending = false;
                }

                pending |= _eventq?.EnableCallbacks() ?? false;
            }

            if (!pending && !_stop)
            {
                _call.Wait(50);
            }
        }
    }
}
