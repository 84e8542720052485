// The virtio-gpio device backend (docs/virtio-gpio.md, virtio 1.2 §5.18; the shape of
// rust-vmm's vhost-device-gpio): it serves requestq messages and eventq interrupt buffers by
// driving any IGpioChip — in the driver pair, the PL061 driver over MMIO over the device model.
//
// Threads. One serve thread owns all line state and both device-side queues: it sleeps on the
// kick doorbell, then takes every available chain. Interrupts arrive on whatever thread the
// chip raises them (the top half, OnLineIrq): it only marks the line pending — and, for a level
// line, masks it at the chip (disable_irq_nosync: it runs inside the chip's handler, so it must
// not wait) so a level that stays active cannot storm — and rings the same doorbell; the serve
// thread completes or latches the event (the bottom half) and re-arms a level line by setting
// the same handler again, which never waits. So no lock guards line state, and a chip call never
// runs under a lock of ours. Clearing the handler (release, IRQ_TYPE NONE, reset) happens on the
// serve thread or the resetting thread, never in the top half: the chip then waits for a running
// top half (free_irq), which takes no lock of ours and never waits, so teardown cannot deadlock.
//
// Rules. Every message is checked before anything runs (rule D1 framing, D3 response size, D6
// line range, D7 full-width values), a malformed chain goes back with length 0 (D2), and an ERR
// answer changes nothing (D19): the chip is called first, the line state updated only after it
// succeeded. Interrupts follow the eventq model of docs/virtio-gpio.md: per line an enabled type, a held eventq
// buffer (unmasked) and a software edge latch; level interrupts are never latched. A chip that
// answers NoDevice (the PL061 was removed) makes the device answer ERR and report NeedsReset,
// which the front end turns into "no device".
//
// Queues. In the in-process pair the device creates its queues from the rings the driver placed
// (Start) and owns them. Served over vhost-user, the session owns them - it starts and stops
// them with the front-end's messages - and hands them over with Attach; Detach stops serving but
// keeps the line state and the eventq buffers held, so Attach with the same queues continues.
// Each queue has its own notification (a vhost-user front-end has one call eventfd per ring).
//
// Waiting. The idle serve thread sleeps on the kick doorbell with no timeout: every reason to
// look again rings it (a kick, an interrupt's top half, StopServing), and a ring that lands
// between the last look and the sleep leaves the doorbell Signalled, so the wait returns at once.
// In-process (Start) the kick comes from a driver thread that answers within microseconds, so
// the doorbell spins before it sleeps; served over vhost-user (Attach) it comes from the
// session's thread, itself woken from poll by a kick eventfd once per guest round trip, so the
// serve thread sleeps at once rather than spinning and yielding for a ring that is far off.

using System;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Virtio;
using static RefRuntime.Core.Devices.VirtioGpio.VirtioGpioConst;

namespace RefRuntime.Core.Devices.VirtioGpio;

/// <summary>The virtio-gpio device backend over an <see cref="IGpioChip"/> (see file comment).</summary>
public sealed unsafe class VirtioGpioDevice : IVirtioGpioTransport, IDisposable
{
    private struct Line
    {
        public byte Direction;  // VIRTIO_GPIO_DIRECTION_*
        public sbyte Cached;    // -1: no value set yet; else 0/1
        public uint IrqType;    // VIRTIO_GPIO_IRQ_TYPE_*
        public int HeldHead;    // eventq head held for this line (unmasked), or -1
        public nint HeldResponse; // host address of the held buffer's 1-byte response
        public bool Latch;      // an edge seen while masked
        public bool Armed;      // the chip's interrupt for this line is enabled (IE set)
    }

    private readonly IGpioChip _chip;
    private readonly int _ngpio;
    private readonly byte[] _config = new byte[ConfigSize];
    private readonly byte[] _names;
    private readonly bool _offerIrq;
    private readonly Line[] _lines;
    private readonly int[] _pending;
    private readonly Action<int> _irqHandler;
    private const int InProcessKickSpins = 2000; // Doorbell's default
    private readonly Doorbell _kick = new(InProcessKickSpins);
    private readonly Lock _lifecycle = new();

    private GuestMemory? _memory;
    private VirtqDevice? _requestq;
    private VirtqDevice? _eventq;
    private Action? _notifyRequest; // notifies the driver of used requestq buffers
    private Action? _notifyEvent;   // ... and of used eventq buffers
    private bool _ownsQueues;
    private bool _irqNegotiated;
    private Thread? _thread;
    private volatile bool _stop;
    private volatile bool _needsReset;
    private int _anyPending;
    private long _requests;
    private long _errors;
    private long _malformed;
    private long _events;

    private VirtioGpioDevice(IGpioChip chip, byte[] names, bool offerIrq)
    {
        _chip = chip;
        _ngpio = chip.LineCount;
        _names = names;
        _offerIrq = offerIrq;
        _lines = new Line[_ngpio];
        _pending = new int[_ngpio];
        _irqHandler = OnLineIrq;
        _config[0] = (byte)_ngpio;
        _config[1] = (byte)(_ngpio >> 8);
        _config[4] = (byte)names.Length;
        _config[5] = (byte)(names.Length >> 8);
        _config[6] = (byte)(names.Length >> 16);
        _config[7] = (byte)(names.Length >> 24);
        ResetLines();
    }

    /// <inheritdoc/>
    public ulong DeviceFeatures => VIRTIO_F_VERSION_1 | (ulong)VirtqFeatures.EventIdx | (ulong)VirtqFeatures.IndirectDesc | (_offerIrq ? VIRTIO_GPIO_F_IRQ : 0);

    /// <inheritdoc/>
    public bool NeedsReset => _needsReset;

    /// <inheritdoc/>
    public Doorbell Kick => _kick;

    /// <summary>Requests answered (OK or ERR).</summary>
    public long Requests => Volatile.Read(ref _requests);

    /// <summary>Requests answered ERR.</summary>
    public long Errors => Volatile.Read(ref _errors);

    /// <summary>Malformed chains returned with length 0 (both queues).</summary>
    public long Malformed => Volatile.Read(ref _malformed);

    /// <summary>eventq buffers returned VALID (interrupts delivered).</summary>
    public long Events => Volatile.Read(ref _events);

    /// <summary>The names blob GET_NAMES returns (empty when the device has no names).</summary>
    public ReadOnlySpan<byte> NamesBlob => _names;

    /// <summary>
    /// Creates a device over <paramref name="chip"/> with optional line names (rule D16: 7-bit
    /// ASCII without NUL, non-empty names unique; null or empty entries are unnamed lines; no list
    /// = no names, gpio_names_size 0).
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.InvalidArgument"/> with <paramref name="error"/>.</returns>
    public static RrStatus Create(IGpioChip chip, IReadOnlyList<string?>? names, bool offerIrq, out VirtioGpioDevice? device, out string? error)
    {
        ArgumentNullException.ThrowIfNull(chip);
        device = null;
        error = null;
        int n = chip.LineCount;
        if (n <= 0 || n > ushort.MaxValue)
        {
            error = $"a virtio-gpio device has 1 to 65535 lines; the chip has {n}";
            return RrStatus.InvalidArgument;
        }

        byte[] blob = [];
        if (names is not null)
        {
            if (names.Count != n)
            {
                error = $"{names.Count} names for {n} lines";
                return RrStatus.InvalidArgument;
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            var bytes = new List<byte>();
            for (int i = 0; i < n; i++)
            {
                string name = names[i] ?? string.Empty;
                foreach (char c in name)
                {
                    if (c is < (char)1 or > (char)0x7F)
                    {
                        error = $"line {i}'s name has a character outside 7-bit ASCII 0x01-0x7F (0x{(int)c:x2})";
                        return RrStatus.InvalidArgument;
                    }

                    bytes.Add((byte)c);
                }

                if (name.Length > 0 && !seen.Add(name))
                {
                    error = $"line {i}'s name \"{name}\" is not unique";
                    return RrStatus.InvalidArgument;
                }

                bytes.Add(0);
            }

            blob = bytes.ToArray();
        }

        device = new VirtioGpioDevice(chip, blob, offerIrq);
        return RrStatus.Ok;
    }

    /// <inheritdoc/>
    public uint ReadConfig(int offset, int width)
    {
        // Rule D18: any width at any offset inside the 8 bytes; bytes past the end read as 0.
        if (width is not (1 or 2 or 4) || offset < 0 || offset >= ConfigSize)
        {
            return 0;
        }

        uint v = 0;
        for (int i = 0; i < width && offset + i < ConfigSize; i++)
        {
            v |= (uint)_config[offset + i] << (8 * i);
        }

        return v;
    }

    /// <inheritdoc/>
    public RrStatus Start(ulong features, GuestMemory memory, VirtqRings requestq, VirtqRings? eventq, Doorbell call, out string? error)
    {
        ArgumentNullException.ThrowIfNull(memory);
        ArgumentNullException.ThrowIfNull(call);
        lock (_lifecycle)
        {
            error = null;
            if (_thread is not null)
            {
                error = "the device is already started; reset it first";
                return RrStatus.Busy;
            }

            if ((features & ~DeviceFeatures) != 0 || (features & VIRTIO_F_VERSION_1) == 0)
            {
                error = $"features 0x{features:x} are not a subset of the offered 0x{DeviceFeatures:x} with VERSION_1";
                return RrStatus.InvalidArgument;
            }

            bool irq = (features & VIRTIO_GPIO_F_IRQ) != 0;
            if (irq != eventq.HasValue)
            {
                error = irq ? "VIRTIO_GPIO_F_IRQ needs the eventq" : "an eventq without VIRTIO_GPIO_F_IRQ";
                return RrStatus.InvalidArgument;
            }

            var ringFeatures = (VirtqFeatures)(features & (ulong)(VirtqFeatures.EventIdx | VirtqFeatures.IndirectDesc));
            RrStatus s = VirtqDevice.Create(memory, requestq, ringFeatures, MalformedChainPolicy.ReturnEmpty, out VirtqDevice? rq, out error);
            if (s != RrStatus.Ok)
            {
                return s;
            }

            VirtqDevice? eq = null;
            if (eventq is VirtqRings er)
            {
                s = VirtqDevice.Create(memory, er, ringFeatures, MalformedChainPolicy.ReturnEmpty, out eq, out error);
                if (s != RrStatus.Ok)
                {
                    rq!.Destroy();
                    return s;
                }
            }

            _memory = memory;
            _ownsQueues = true;
            StartServing(irq, rq!, eq, call.Ring, call.Ring, InProcessKickSpins);
            return RrStatus.Ok;
        }
    }

    /// <summary>
    /// Starts serving queues someone else owns and has started (a vhost-user session): the device
    /// never destroys them. <paramref name="notifyRequest"/> and <paramref name="notifyEvent"/>
    /// tell the driver about used buffers on each queue.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.Busy"/> (serving already); <see cref="RrStatus.InvalidArgument"/> with <paramref name="error"/>.</returns>
    public RrStatus Attach(ulong features, VirtqDevice requestq, VirtqDevice? eventq, Action notifyRequest, Action? notifyEvent, out string? error)
    {
        ArgumentNullException.ThrowIfNull(requestq);
        ArgumentNullException.ThrowIfNull(notifyRequest);
        lock (_lifecycle)
        {
            error = null;
            if (_thread is not null)
            {
                error = "the device is already serving; detach it first";
                return RrStatus.Busy;
            }

            if ((features & ~DeviceFeatures) != 0)
            {
                error = $"features 0x{features:x} are not a subset of the offered 0x{DeviceFeatures:x}";
                return RrStatus.InvalidArgument;
            }

            bool irq = (features & VIRTIO_GPIO_F_IRQ) != 0;
            if (irq && (eventq is null || notifyEvent is null))
            {
                error = "VIRTIO_GPIO_F_IRQ needs the eventq";
                return RrStatus.InvalidArgument;
            }

            _memory = null;
            _ownsQueues = false;
            StartServing(irq, requestq, irq ? eventq : null, notifyRequest, notifyEvent ?? notifyRequest, kickSpins: 0);
            return RrStatus.Ok;
        }
    }

    /// <summary>Stops serving attached queues; line state and held eventq buffers stay (see file comment).</summary>
    public void Detach()
    {
        lock (_lifecycle)
        {
            StopServing();
        }
    }

    /// <summary>Whether the serve thread is running.</summary>
    public bool IsServing
    {
        get
        {
            lock (_lifecycle)
            {
                return _thread is not null;
            }
        }
    }

    private void StartServing(bool irq, VirtqDevice rq, VirtqDevice? eq, Action notifyRequest, Action notifyEvent, int kickSpins)
    {
        _kick.SpinIterations = kickSpins; // nobody waits: the serve thread is not running (see file comment)
        _requestq = rq;
        _eventq = eq;
        _notifyRequest = notifyRequest;
        _notifyEvent = notifyEvent;
        _irqNegotiated = irq;
        _stop = false;
        _thread = new Thread(Serve) { IsBackground = true, Name = "virtio-gpio device" };
        _thread.Start();
    }

    /// <inheritdoc/>
    public void Reset()
    {
        lock (_lifecycle)
        {
            StopServing();
            // Rule D17: the chip back to its reset state: every interrupt off, every line an input.
            for (int i = 0; i < _ngpio; i++)
            {
                _chip.SetIrqHandler(i, null);
                _chip.SetIrqType(i, RawGpioIrqType.None);
                _chip.DirectionInput(i);
            }

            ResetLines();
            _needsReset = false;
        }
    }

    /// <summary>Stops serving and detaches from the queues (the chip is left as it is).</summary>
    public void Dispose()
    {
        lock (_lifecycle)
        {
            StopServing();
            _needsReset = true;
        }
    }

    private void StopServing()
    {
        if (_thread is not null)
        {
            _stop = true;
            _kick.Ring();
            _thread.Join();
            _thread = null;
        }

        if (_ownsQueues)
        {
            _requestq?.Destroy();
            _eventq?.Destroy();
        }

        _requestq = null;
        _eventq = null;
        _memory = null;
    }

    private void ResetLines()
    {
        for (int i = 0; i < _ngpio; i++)
        {
            _lines[i] = new Line { Direction = VIRTIO_GPIO_DIRECTION_NONE, Cached = -1, HeldHead = -1 };
            Volatile.Write(ref _pending[i], 0);
        }

        Volatile.Write(ref _anyPending, 0);
    }

    // ---- the serve thread ------------------------------------------------------------------

    private void Serve()
    {
        VirtqDevice rq = _requestq!;
        VirtqDevice? eq = _eventq;
        while (!_stop)
        {
            bool work = ProcessIrqs();
            if (eq is not null)
            {
                work |= ProcessEventq(eq);
            }

            work |= ProcessRequestq(rq);
            if (work)
            {
                continue;
            }

            // Idle: ask for kicks, then look once more before sleeping (the driver may have added
            // a chain before it saw the request; EnableNotifications' fence pairs with its kick check).
            bool pending = rq.EnableNotifications() | (eq?.EnableNotifications() ?? false) | Volatile.Read(ref _anyPending) != 0;
            if (!pending && !_stop)
            {
                _kick.Wait(); // no timeout: every reason to look again rings (see file comment)
            }

            rq.DisableNotifications();
            eq?.DisableNotifications();
        }
    }

    private bool ProcessRequestq(VirtqDevice q)
    {
        Span<byte> request = stackalloc byte[RequestSize];
        int answered = 0;
        while (TryTake(q, out VirtqChain chain, out bool malformed))
        {
            answered++;
            if (malformed || chain.Readable + chain.Writable > MaxDescriptorsPerMessage || chain.ReadableBytes != RequestSize)
            {
                ReturnEmpty(q, chain.Head); // rule D2
                continue;
            }

            q.Gather(request);
            VirtioGpioRequest req = VirtioGpioRequest.Read(request);
            uint written = Answer(q, req, chain.WritableBytes);
            q.AddUsed(chain.Head, written);
            Count(ref _requests);
        }

        if (answered > 0 && q.NotifyPrepare())
        {
            _notifyRequest!();
        }

        return answered > 0;
    }

    /// <summary>
    /// Takes the next chain (well formed or not); false when the queue is empty, or broken by a
    /// queue-level violation — then nothing more is served until the device is reset.
    /// </summary>
    private bool TryTake(VirtqDevice q, out VirtqChain chain, out bool malformed)
    {
        RrStatus s = q.TryPop(out chain);
        malformed = s == RrStatus.Malformed;
        if (s == RrStatus.Broken)
        {
            _needsReset = true;
            _stop = true;
        }

        return s is RrStatus.Ok or RrStatus.Malformed;
    }

    /// <summary>Rule D2: a malformed chain goes back with length 0, nothing written, nothing changed.</summary>
    private void ReturnEmpty(VirtqDevice q, ushort head)
    {
        q.AddUsed(head, 0);
        Count(ref _malformed);
    }

    /// <summary>Runs one request and writes its response; returns the used length.</summary>
    private uint Answer(VirtqDevice q, VirtioGpioRequest req, uint writable)
    {
        // Rule D3: the response size is checked before anything runs.
        uint expected = req.Type == VIRTIO_GPIO_MSG_GET_NAMES ? 1 + (uint)_names.Length : ResponseSize;
        byte value = 0;
        bool ok = writable == expected && Execute(req, out value);
        if (ok && req.Type == VIRTIO_GPIO_MSG_GET_NAMES)
        {
            byte[] response = new byte[expected];
            _names.CopyTo(response, 1);
            q.Scatter(response);
            return expected;
        }

        if (ok)
        {
            q.Scatter([VIRTIO_GPIO_STATUS_OK, value]);
            return ResponseSize;
        }

        // Rule D4: ERR, then 0 if there is room for it.
        Count(ref _errors);
        ReadOnlySpan<byte> err = [VIRTIO_GPIO_STATUS_ERR, 0];
        int len = (int)Math.Min(writable, ResponseSize);
        q.Scatter(err[..len]);
        return (uint)len;
    }

    /// <summary>The message's effect; false (nothing changed, rule D19) for ERR.</summary>
    private bool Execute(VirtioGpioRequest req, out byte value)
    {
        value = 0;
        if (req.Type == VIRTIO_GPIO_MSG_GET_NAMES)
        {
            return _names.Length > 0; // rule D5: gpio and value ignored
        }

        if (req.Type is < VIRTIO_GPIO_MSG_GET_DIRECTION or > VIRTIO_GPIO_MSG_IRQ_TYPE || req.Gpio >= _ngpio)
        {
            return false; // unknown type; rule D6: line out of range, no hardware access
        }

        int n = req.Gpio;
        ref Line line = ref _lines[n];
        switch (req.Type)
        {
            case VIRTIO_GPIO_MSG_GET_DIRECTION:
                value = line.Direction;
                return true;

            case VIRTIO_GPIO_MSG_SET_DIRECTION:
                return SetDirection(n, ref line, req.Value);

            case VIRTIO_GPIO_MSG_GET_VALUE:
            {
                if (line.Direction == VIRTIO_GPIO_DIRECTION_NONE)
                {
                    return false; // rule D10
                }

                if (!Chip(_chip.Get(n, out bool level)))
                {
                    return false;
                }

                value = level ? (byte)1 : (byte)0;
                return true;
            }

            case VIRTIO_GPIO_MSG_SET_VALUE:
                if (req.Value > 1)
                {
                    return false; // rule D7
                }

                // Rule D8: accepted in every direction; drives the pin only on an output.
                if (line.Direction == VIRTIO_GPIO_DIRECTION_OUT && !Chip(_chip.Set(n, req.Value != 0)))
                {
                    return false;
                }

                line.Cached = (sbyte)req.Value;
                return true;

            default:
                return SetIrqType(n, ref line, req.Value);
        }
    }

    private bool SetDirection(int n, ref Line line, uint dir)
    {
        switch (dir)
        {
            case VIRTIO_GPIO_DIRECTION_NONE:
                // Rule D11: release the line: interrupt off, input, state forgotten (always OK
                // while the chip answers).
                if (!Chip(_chip.SetIrqHandler(n, null)) || !Chip(_chip.SetIrqType(n, RawGpioIrqType.None)) || !Chip(_chip.DirectionInput(n)))
                {
                    return false;
                }

                DropIrq(n, ref line);
                line.Direction = VIRTIO_GPIO_DIRECTION_NONE;
                line.Cached = -1;
                return true;

            case VIRTIO_GPIO_DIRECTION_IN:
                if (!Chip(_chip.DirectionInput(n)))
                {
                    return false;
                }

                line.Direction = VIRTIO_GPIO_DIRECTION_IN;
                return true;

            case VIRTIO_GPIO_DIRECTION_OUT:
                // Rule D9: needs a value set before, and no interrupt in use on the line.
                if (line.Cached < 0 || line.IrqType != VIRTIO_GPIO_IRQ_TYPE_NONE || !Chip(_chip.DirectionOutput(n, line.Cached != 0)))
                {
                    return false;
                }

                line.Direction = VIRTIO_GPIO_DIRECTION_OUT;
                return true;

            default:
                return false; // rule D7: the whole le32 is compared
        }
    }

    private bool SetIrqType(int n, ref Line line, uint type)
    {
        // Rule D12.
        if (!_irqNegotiated || !IsValidIrqType(type) || type == line.IrqType)
        {
            return false;
        }

        if (type == VIRTIO_GPIO_IRQ_TYPE_NONE)
        {
            if (!Chip(_chip.SetIrqHandler(n, null)) || !Chip(_chip.SetIrqType(n, RawGpioIrqType.None)))
            {
                return false;
            }

            DropIrq(n, ref line);
            return true;
        }

        if (line.IrqType != VIRTIO_GPIO_IRQ_TYPE_NONE || line.Direction != VIRTIO_GPIO_DIRECTION_IN)
        {
            return false;
        }

        if (!Chip(_chip.SetIrqType(n, (RawGpioIrqType)type)))
        {
            return false;
        }

        line.IrqType = type;
        line.Latch = false;
        if (IsEdge(type))
        {
            // Edges are latched in software from now on, so the chip's interrupt stays enabled.
            // An edge recorded before this point belongs to the disabled period: discard it.
            if (!Chip(_chip.SetIrqHandler(n, _irqHandler)))
            {
                _chip.SetIrqType(n, RawGpioIrqType.None);
                line.IrqType = VIRTIO_GPIO_IRQ_TYPE_NONE;
                return false;
            }

            line.Armed = true;
            Volatile.Write(ref _pending[n], 0);
        }

        // Level types are armed at the chip only while a buffer is held (rule 8: never latched).
        return true;
    }

    /// <summary>Disables a line's interrupt in our state: latch dropped, held buffer back INVALID (rule D13: published now).</summary>
    private void DropIrq(int n, ref Line line)
    {
        line.IrqType = VIRTIO_GPIO_IRQ_TYPE_NONE;
        line.Latch = false;
        line.Armed = false;
        Volatile.Write(ref _pending[n], 0);
        if (line.HeldHead >= 0)
        {
            CompleteHeld(ref line, VIRTIO_GPIO_IRQ_STATUS_INVALID);
            if (_eventq!.NotifyPrepare())
            {
                _notifyEvent!();
            }
        }
    }

    private bool ProcessEventq(VirtqDevice q)
    {
        Span<byte> request = stackalloc byte[IrqRequestSize];
        int taken = 0;
        while (TryTake(q, out VirtqChain chain, out bool malformed))
        {
            taken++;
            if (malformed || chain.Readable + chain.Writable > MaxDescriptorsPerMessage
                || chain.ReadableBytes != IrqRequestSize || chain.WritableBytes != IrqResponseSize)
            {
                ReturnEmpty(q, chain.Head);
                continue;
            }

            q.Gather(request);
            int n = request[0] | (request[1] << 8);
            if (n >= _ngpio || _lines[n].IrqType == VIRTIO_GPIO_IRQ_TYPE_NONE || _lines[n].HeldHead >= 0)
            {
                // Rule D6, eventq model: a line out of range, not enabled, or already holding a buffer (D14).
                q.Scatter([VIRTIO_GPIO_IRQ_STATUS_INVALID]);
                q.AddUsed(chain.Head, IrqResponseSize);
                continue;
            }

            ref Line line = ref _lines[n];
            byte* response = WritableByte(q);
            if (IsEdge(line.IrqType) && line.Latch)
            {
                line.Latch = false;
                *response = VIRTIO_GPIO_IRQ_STATUS_VALID;
                q.AddUsed(chain.Head, IrqResponseSize);
                Count(ref _events);
                continue;
            }

            if (!IsEdge(line.IrqType) && LevelActive(n, line.IrqType))
            {
                *response = VIRTIO_GPIO_IRQ_STATUS_VALID;
                q.AddUsed(chain.Head, IrqResponseSize);
                Count(ref _events);
                continue;
            }

            // Hold it: the line is unmasked. A level line is armed at the chip now; if the level
            // came up meanwhile, the chip interrupts at once and the bottom half completes it.
            line.HeldHead = chain.Head;
            line.HeldResponse = (nint)response;
            if (!IsEdge(line.IrqType) && !line.Armed && Chip(_chip.SetIrqHandler(n, _irqHandler)))
            {
                line.Armed = true;
            }
        }

        if (taken > 0 && q.NotifyPrepare())
        {
            _notifyEvent!();
        }

        return taken > 0;
    }

    // ---- interrupts --------------------------------------------------------------------------

    /// <summary>The top half: the chip's handler, run on the thread dispatching the chip's interrupts.</summary>
    private void OnLineIrq(int n)
    {
        if ((uint)n >= (uint)_ngpio)
        {
            return;
        }

        // A level line is masked until the serve thread holds a buffer for it again and re-arms
        // it (SetIrqHandler with the same handler). Clearing the handler here would be refused:
        // from inside the chip's handler it would wait for itself.
        if (!IsEdge(Volatile.Read(ref _lines[n].IrqType)))
        {
            _chip.DisableIrqNoSync(n);
        }

        Volatile.Write(ref _pending[n], 1);
        Volatile.Write(ref _anyPending, 1);
        _kick.Ring();
    }

    /// <summary>The bottom half: deliver or latch every pending line's event.</summary>
    private bool ProcessIrqs()
    {
        if (Interlocked.Exchange(ref _anyPending, 0) == 0)
        {
            return false;
        }

        bool delivered = false;
        for (int n = 0; n < _ngpio; n++)
        {
            if (Interlocked.Exchange(ref _pending[n], 0) == 0)
            {
                continue;
            }

            ref Line line = ref _lines[n];
            if (line.IrqType == VIRTIO_GPIO_IRQ_TYPE_NONE)
            {
                continue; // disabled since: dropped
            }

            if (IsEdge(line.IrqType))
            {
                if (line.HeldHead >= 0)
                {
                    CompleteHeld(ref line, VIRTIO_GPIO_IRQ_STATUS_VALID);
                    delivered = true;
                }
                else
                {
                    line.Latch = true; // several edges collapse into one
                }

                continue;
            }

            // Level: the top half masked it. Deliver if a buffer is held and the level is still
            // there; re-arm if it went away before we looked (a glitch is not an event).
            line.Armed = false;
            if (line.HeldHead >= 0)
            {
                if (LevelActive(n, line.IrqType))
                {
                    CompleteHeld(ref line, VIRTIO_GPIO_IRQ_STATUS_VALID);
                    delivered = true;
                }
                else if (Chip(_chip.SetIrqHandler(n, _irqHandler)))
                {
                    line.Armed = true;
                }
            }
        }

        if (delivered && _eventq!.NotifyPrepare())
        {
            _notifyEvent!();
        }

        return true;
    }

    private void CompleteHeld(ref Line line, byte status)
    {
        // SAFETY: HeldResponse is the held chain's 1-byte writable buffer, translated inside the
        // region when the chain was popped; the region outlives the attached queue.
        *(byte*)line.HeldResponse = status;
        _eventq!.AddUsed(line.HeldHead, IrqResponseSize);
        if (status == VIRTIO_GPIO_IRQ_STATUS_VALID)
        {
            Count(ref _events);
        }

        line.HeldHead = -1;
        line.HeldResponse = 0;
    }

    private static byte* WritableByte(VirtqDevice q)
    {
        foreach (VirtqSegment s in q.Segments)
        {
            if (s.Writable && s.Length > 0)
            {
                return s.Host;
            }
        }

        throw new InvalidOperationException("unreachable: the chain has one writable byte");
    }

    private bool LevelActive(int n, uint type) =>
        Chip(_chip.Get(n, out bool level)) && level == (type == VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH);

    private static bool IsEdge(uint type) => (type & VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH) != 0;

    /// <summary>Bumps a statistics counter. Only the serve thread writes them, so no atomic RMW on the hot path.</summary>
    private static void Count(ref long counter) => Volatile.Write(ref counter, counter + 1);

    /// <summary>True for Ok; records a vanished chip (NoDevice) as NeedsReset.</summary>
    private bool Chip(RrStatus s)
    {
        if (s == RrStatus.NoDevice)
        {
            _needsReset = true;
        }

        return s == RrStatus.Ok;
    }
}
