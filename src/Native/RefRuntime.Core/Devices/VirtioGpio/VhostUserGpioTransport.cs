// The virtio-gpio front end's transport to a device in another process: vhost-user, with
// RefRuntime's own VirtioGpioChip as the driver (as DPDK's virtio-user drives a vhost-user
// back-end without a VM). The chip sees the same IVirtioGpioTransport as in the in-process pair;
// underneath, its guest memory is a sealed memfd the back-end maps (FrontEndMemory), a kick is an
// eventfd write per queue, and a watcher thread turns the back-end's call eventfds into rings of
// the chip's call doorbell.
//
// A back-end that dies is noticed at once: the watcher polls the socket for hang-up, marks the
// transport failed (NeedsReset), and rings the call doorbell, so every waiter in the chip wakes
// and answers NoDevice instead of waiting forever.
//
// Reconnect (after a back-end restart, or to hand the rings to another back-end) opens a new
// session and restarts the rings without resetting the driver side. If the old back-end still
// answers, it is stopped cleanly and each ring resumes at the index GET_VRING_BASE reports. If it
// died, the requestq resumes at the ring's own used index - the chains it never answered are
// delivered again and answered by the new back-end (the requestq is answered in order, which is
// what makes used.idx the right place to resume) - and the eventq resumes at the driver's
// available index: interrupt buffers the old back-end held are not replayed (they completed out
// of order; replaying from used.idx could hand back chains the driver already has), so lines
// whose interrupts were enabled before the crash stay silent until the chip is probed again.

using System;
using System.Threading;
using RefRuntime.Core.Os;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;
using static RefRuntime.Core.Virtio.VirtqLayout;

namespace RefRuntime.Core.Devices.VirtioGpio;

/// <summary>A virtio-gpio device in another process, reached over vhost-user (see file comment).</summary>
public sealed unsafe class VhostUserGpioTransport : IVirtioGpioTransport, IDisposable
{
    private const ulong GpaBase = 0x4000_0000;

    private readonly string _path;
    private readonly bool _useMemSlots;
    private readonly FrontEndMemory _memory;
    private readonly EventFd[] _kick = [EventFd.Create(), EventFd.Create()];
    private readonly EventFd[] _callFd = [EventFd.Create(), EventFd.Create()];
    private readonly EventFd _wake = EventFd.Create();
    private readonly Doorbell _kickRequestq;
    private readonly Doorbell _kickEventq;
    private readonly byte[] _config = new byte[VirtioGpioConst.ConfigSize];
    private readonly Lock _lifecycle = new();
    private VhostUserFrontend? _frontend;
    private ulong _deviceFeatures;
    private ulong _features;
    private VirtqRings _requestq;
    private VirtqRings? _eventq;
    private Doorbell? _call;
    private Thread? _watcher;
    private volatile bool _stopWatcher;
    private bool _started;
    private long _calls;
    private long _reconnects;

    private VhostUserGpioTransport(string path, bool useMemSlots, FrontEndMemory memory)
    {
        _path = path;
        _useMemSlots = useMemSlots;
        _memory = memory;
        _kickRequestq = new Doorbell(() => _kick[0].Signal());
        _kickEventq = new Doorbell(() => _kick[1].Signal());
    }

    /// <summary>
    /// Connects to the back-end at <paramref name="socketPath"/>, creates <paramref name="memorySize"/>
    /// bytes of shared guest memory and reads the device's configuration (QEMU's realize sequence).
    /// With <paramref name="useMemSlots"/>, memory is sent with ADD_MEM_REG when the back-end offers
    /// CONFIGURE_MEM_SLOTS (else SET_MEM_TABLE).
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NoDevice"/> (nobody listens, or the handshake failed); others with <paramref name="error"/>.</returns>
    public static RrStatus Connect(string socketPath, out VhostUserGpioTransport? transport, out string? error, ulong memorySize = 1 << 20, bool useMemSlots = false)
    {
        ArgumentNullException.ThrowIfNull(socketPath);
        transport = null;
        RrStatus s = FrontEndMemory.Create(memorySize, GpaBase, out FrontEndMemory? memory, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        var t = new VhostUserGpioTransport(socketPath, useMemSlots, memory!);
        s = t.OpenSession(out error);
        if (s != RrStatus.Ok)
        {
            t.Dispose();
            return s;
        }

        transport = t;
        return RrStatus.Ok;
    }

    /// <summary>The shared guest memory: probe the chip on it.</summary>
    public GuestMemory Memory => _memory.Memory;

    /// <summary>The current connection (tests, diagnostics).</summary>
    public VhostUserFrontend? Frontend => Volatile.Read(ref _frontend);

    /// <summary>Call signals received from the back-end.</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Kicks sent (both queues).</summary>
    public long Kicks => _kickRequestq.Rings + _kickEventq.Rings;

    /// <summary>Successful <see cref="Reconnect"/>s.</summary>
    public long Reconnects => Interlocked.Read(ref _reconnects);

    /// <inheritdoc/>
    public ulong DeviceFeatures => _deviceFeatures;

    /// <inheritdoc/>
    public bool NeedsReset => Volatile.Read(ref _frontend)?.Failure is not null;

    /// <summary>Why the connection failed, or null.</summary>
    public string? Failure => Volatile.Read(ref _frontend)?.Failure;

    /// <inheritdoc/>
    public Doorbell Kick => _kickRequestq;

    /// <inheritdoc/>
    public Doorbell EventqKick => _kickEventq;

    /// <inheritdoc/>
    public uint ReadConfig(int offset, int width)
    {
        if (width is not (1 or 2 or 4) || offset < 0 || offset >= _config.Length)
        {
            return 0;
        }

        uint v = 0;
        for (int i = 0; i < width && offset + i < _config.Length; i++)
        {
            v |= (uint)_config[offset + i] << (8 * i);
        }

        return v;
    }

    /// <inheritdoc/>
    public RrStatus Start(ulong features, GuestMemory memory, VirtqRings requestq, VirtqRings? eventq, Doorbell call, out string? error)
    {
        ArgumentNullException.ThrowIfNull(call);
        lock (_lifecycle)
        {
            if (!ReferenceEquals(memory, _memory.Memory))
            {
                error = "the queues must live in the transport's shared memory (VhostUserGpioTransport.Memory)";
                return RrStatus.InvalidArgument;
            }

            if (_started)
            {
                error = "already started; reset first";
                return RrStatus.Busy;
            }

            _features = features;
            _requestq = requestq;
            _eventq = eventq;
            _call = call;
            RrStatus s = StartRings(requestqBase: 0, eventqBase: 0, out error);
            if (s == RrStatus.Ok)
            {
                _started = true;
                StartWatcher();
            }

            return s;
        }
    }

    /// <inheritdoc/>
    public void Reset()
    {
        lock (_lifecycle)
        {
            StopWatcher();
            VhostUserFrontend? fe = _frontend;
            if (_started && fe is not null && fe.Failure is null)
            {
                fe.StopRing(0, out _, out _);
                if (_eventq is not null)
                {
                    fe.StopRing(1, out _, out _);
                }
            }

            _started = false;
        }
    }

    /// <summary>
    /// Opens a new session to the socket path and restarts the rings where they stand (see file
    /// comment). Call it after the back-end was restarted, or to move to a new connection.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.NoDevice"/> (nobody listens yet); others with <paramref name="error"/>.</returns>
    public RrStatus Reconnect(out string? error)
    {
        lock (_lifecycle)
        {
            StopWatcher();
            ushort rqBase = 0, eqBase = 0;
            VhostUserFrontend? old = _frontend;
            if (_started)
            {
                if (old is not null && old.Failure is null && old.StopRing(0, out rqBase, out _) == RrStatus.Ok
                    && (_eventq is null || old.StopRing(1, out eqBase, out _) == RrStatus.Ok))
                {
                    // Stopped cleanly: resume exactly where the back-end stopped.
                }
                else
                {
                    rqBase = ReadRingIndex(_requestq.UsedGpa);
                    eqBase = _eventq is VirtqRings e ? ReadRingIndex(e.AvailGpa) : (ushort)0;
                }
            }

            old?.Dispose();
            Volatile.Write(ref _frontend, null);
            RrStatus s = OpenSession(out error);
            if (s == RrStatus.Ok && _started)
            {
                s = StartRings(rqBase, eqBase, out error);
                if (s == RrStatus.Ok)
                {
                    StartWatcher();
                    _kick[0].Signal();
                    _kick[1].Signal();
                }
            }

            if (s == RrStatus.Ok)
            {
                Interlocked.Increment(ref _reconnects);
            }

            return s;
        }
    }

    /// <summary>Closes the connection and frees the shared memory (the chip must be disposed first).</summary>
    public void Dispose()
    {
        lock (_lifecycle)
        {
            StopWatcher();
            _frontend?.Dispose();
            foreach (EventFd e in _kick)
            {
                e.Dispose();
            }

            foreach (EventFd e in _callFd)
            {
                e.Dispose();
            }

            _wake.Dispose();
            _kickRequestq.Dispose();
            _kickEventq.Dispose();
            _memory.Dispose();
        }
    }

    private RrStatus OpenSession(out string? error)
    {
        RrStatus s = VhostUserFrontend.Connect(_path, out VhostUserFrontend? fe, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        s = fe!.Handshake(VhostUserFrontend.Wanted, out error);
        if (s == RrStatus.Ok && (fe.ProtocolFeatures & VhostUserProtocolFeatures.Config) == 0)
        {
            error = "the back-end does not offer VHOST_USER_PROTOCOL_F_CONFIG (its configuration space cannot be read)";
            s = RrStatus.NoDevice;
        }

        s = s != RrStatus.Ok ? s : fe.GetConfig(0, _config, out error);
        if (s != RrStatus.Ok)
        {
            fe.Dispose();
            return RrStatus.NoDevice;
        }

        _deviceFeatures = fe.BackendFeatures & ~VhostUser.F_PROTOCOL_FEATURES;
        Volatile.Write(ref _frontend, fe);
        return RrStatus.Ok;
    }

    private RrStatus StartRings(ushort requestqBase, ushort eventqBase, out string? error)
    {
        VhostUserFrontend fe = _frontend!;
        ulong vhostBit = fe.BackendFeatures & VhostUser.F_PROTOCOL_FEATURES;
        RrStatus s = fe.SetFeatures(_features | vhostBit, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        s = _useMemSlots && (fe.ProtocolFeatures & VhostUserProtocolFeatures.ConfigureMemSlots) != 0
            ? fe.AddMemReg(_memory.Region, _memory.Fd, out error)
            : fe.SetMemTable([_memory.Region], [_memory.Fd], out error);
        s = s != RrStatus.Ok ? s : StartRing(fe, 0, _requestq, requestqBase, out error);
        if (s == RrStatus.Ok && _eventq is VirtqRings e)
        {
            s = StartRing(fe, 1, e, eventqBase, out error);
        }

        return s;
    }

    private RrStatus StartRing(VhostUserFrontend fe, int index, VirtqRings r, ushort nextAvail, out string? error) =>
        fe.StartRing(index, r.Size, nextAvail, _memory.UserAddressOf(r.DescGpa), _memory.UserAddressOf(r.AvailGpa), _memory.UserAddressOf(r.UsedGpa), _kick[index].Fd, _callFd[index].Fd, out error);

    /// <summary>The ring index (le16 at offset 2) of the ring part at <paramref name="partGpa"/>, read from our own memory.</summary>
    private ushort ReadRingIndex(ulong partGpa)
    {
        if (!_memory.Memory.TryTranslate(partGpa + RingIdx, 2, out byte* p))
        {
            return 0;
        }

        // SAFETY: two bytes translated inside our own region; ring indices are 2-byte aligned.
        return Le.ReadAcquire16(p);
    }

    private void StartWatcher()
    {
        _stopWatcher = false;
        EventFd.Drain(_wake.Fd);
        _watcher = new Thread(Watch) { IsBackground = true, Name = "vhost-user gpio calls" };
        _watcher.Start();
    }

    private void StopWatcher()
    {
        if (_watcher is not null)
        {
            _stopWatcher = true;
            _wake.Signal();
            _watcher.Join();
            _watcher = null;
        }
    }

    /// <summary>Turns call eventfds into rings of the chip's call doorbell; notices a hang-up.</summary>
    private void Watch()
    {
        VhostUserFrontend fe = _frontend!;
        Doorbell call = _call!;
        Span<PollFd> fds =
        [
            new PollFd { Fd = _callFd[0].Fd, Events = Poller.In },
            new PollFd { Fd = _callFd[1].Fd, Events = Poller.In },
            new PollFd { Fd = _wake.Fd, Events = Poller.In },
            new PollFd { Fd = fe.SocketFd, Events = 0 }, // hang-up and errors are reported anyway
        ];
        while (!_stopWatcher)
        {
            for (int i = 0; i < fds.Length; i++)
            {
                fds[i].Revents = 0;
            }

            if (Poller.Wait(fds, -1) < 0)
            {
                continue;
            }

            if ((fds[2].Revents & Poller.In) != 0)
            {
                EventFd.Drain(_wake.Fd);
                continue;
            }

            bool ring = false;
            for (int i = 0; i < 2; i++)
            {
                if ((fds[i].Revents & Poller.In) != 0)
                {
                    EventFd.Drain(fds[i].Fd);
                    Interlocked.Increment(ref _calls);
                    ring = true;
                }
            }

            if (fds[3].Revents != 0)
            {
                fe.MarkFailed("the back-end hung up");
                call.Ring(); // waiters re-check NeedsReset and answer NoDevice
                return;
            }

            if (ring)
            {
                call.Ring();
            }
        }
    }
}
