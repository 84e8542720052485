// Queue state of the device side (the device side of a split virtqueue, continued): what a
// back-end that does not own the rings must be able to set and read (QEMU
// docs/interop/vhost-user.rst "Ring states", SET_VRING_NUM/ADDR/BASE, GET_VRING_BASE,
// SET_VRING_ENABLE; virtio 1.2 §4.1.4.3 queue_size/queue_enable; rust-vmm virtio-queue's Queue).
//
// A queue is created stopped - with a maximum size, its memory and its policy - and configured
// while stopped: size (a power of two up to the maximum), the three ring addresses (guest-physical,
// or the front-end's user addresses over a GuestMemoryMap), features, and the next available and
// next used indices (so a ring can restart where it stopped, at a non-zero index, after a
// reconnect). Start checks the addresses (aligned, each part inside one region) and pins the
// regions they lie in; only then does anything read the rings. Stop drops the chains still held
// (they are not returned: the driver side is being reset or handed to another back-end), unpins
// the rings and keeps the indices, so GET_VRING_BASE can report the next available index.
//
// Enabled is separate from started: a started but disabled queue pops nothing (vhost-user's
// "started but disabled: no side effects"), but chains already held may still be completed.
// The queue created by the single-region Create overload starts started and enabled.

using System;
using static RefRuntime.Core.Virtio.VirtqLayout;

namespace RefRuntime.Core.Virtio;

public sealed unsafe partial class VirtqDevice
{
    private readonly GuestMemoryMap? _map;
    private readonly GuestMemory? _memory;
    private int _maxSize;
    private VirtqRings _configuredRings;
    private GuestAddressSpace _ringSpace;
    private bool _ready;   // started: the ring pointers are valid
    private bool _enabled = true;
    private bool _live;    // _ready && _enabled: TryPop may take chains
    private GuestRegion? _ringPinDesc;
    private GuestRegion? _ringPinAvail;
    private GuestRegion? _ringPinUsed;

    private VirtqDevice(GuestMemoryMap map, int maxSize, VirtqFeatures features, MalformedChainPolicy policy)
        : base(null)
    {
        _map = map;
        _maxSize = maxSize;
        _features = features;
        _policy = policy;
        _segments = [];
        _heads = [];
    }

    /// <summary>
    /// Creates a stopped device side over a multi-region <paramref name="map"/>: set its size and
    /// ring addresses, then <see cref="Start"/> it.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.InvalidArgument"/> with <paramref name="error"/>.</returns>
    public static RrStatus Create(GuestMemoryMap map, int maxSize, VirtqFeatures features, MalformedChainPolicy policy, out VirtqDevice? device, out string? error)
    {
        ArgumentNullException.ThrowIfNull(map);
        device = null;
        if (!IsValidSize(maxSize))
        {
            error = $"maximum queue size {maxSize} is not a power of two from 1 to {MaxSize}";
            return RrStatus.InvalidArgument;
        }

        if (policy is not (MalformedChainPolicy.BreakQueue or MalformedChainPolicy.ReturnEmpty))
        {
            error = $"unknown malformed-chain policy {(int)policy}";
            return RrStatus.InvalidArgument;
        }

        map.Attach();
        error = null;
        device = new VirtqDevice(map, maxSize, features, policy) { _configuredRings = new VirtqRings(maxSize, 0, 0, 0) };
        return RrStatus.Ok;
    }

    /// <summary>The multi-region memory the queue lives in, or null for a single-region queue.</summary>
    public GuestMemoryMap? Map => _map;

    /// <summary>The largest size <see cref="SetSize"/> accepts.</summary>
    public int MaxQueueSize => _maxSize;

    /// <summary>Whether the queue is started (its rings are being used).</summary>
    public bool IsReady => _ready;

    /// <summary>Whether the queue is enabled (a started, enabled queue takes new chains).</summary>
    public bool IsEnabled => _enabled;

    /// <summary>The next available-ring index the device will consume (GET_VRING_BASE reports it).</summary>
    public ushort NextAvail => _hot.LastAvail;

    /// <summary>The next used-ring index the device will write.</summary>
    public ushort NextUsed => _hot.NextUsed;

    /// <summary>The size and ring addresses configured (in <see cref="RingAddressSpace"/>).</summary>
    public VirtqRings ConfiguredRings => _configuredRings;

    /// <summary>The address space <see cref="ConfiguredRings"/> is in.</summary>
    public GuestAddressSpace RingAddressSpace => _ringSpace;

    /// <summary>Sets the queue size (stopped only): a power of two up to <see cref="MaxQueueSize"/>.</summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/>; <see cref="RrStatus.Busy"/> (started); <see cref="RrStatus.BadHandle"/> (destroyed).</returns>
    public RrStatus SetSize(int size)
    {
        RrStatus s = CheckStopped();
        if (s != RrStatus.Ok)
        {
            return s;
        }

        if (!IsValidSize(size) || size > _maxSize)
        {
            return RrStatus.InvalidArgument;
        }

        _configuredRings = _configuredRings with { Size = size };
        return RrStatus.Ok;
    }

    /// <summary>Sets where the three ring parts are (stopped only); checked by <see cref="Start"/>.</summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> (user addresses on a single-region queue); <see cref="RrStatus.Busy"/>; <see cref="RrStatus.BadHandle"/>.</returns>
    public RrStatus SetRingAddresses(ulong desc, ulong avail, ulong used, GuestAddressSpace space)
    {
        RrStatus s = CheckStopped();
        if (s != RrStatus.Ok)
        {
            return s;
        }

        if (space is not (GuestAddressSpace.GuestPhysical or GuestAddressSpace.FrontEndUser) || (space == GuestAddressSpace.FrontEndUser && _map is null))
        {
            return RrStatus.InvalidArgument;
        }

        _configuredRings = _configuredRings with { DescGpa = desc, AvailGpa = avail, UsedGpa = used };
        _ringSpace = space;
        return RrStatus.Ok;
    }

    /// <summary>Sets the ring features (EVENT_IDX, INDIRECT_DESC) the queue uses (stopped only).</summary>
    public RrStatus SetFeatures(VirtqFeatures features)
    {
        RrStatus s = CheckStopped();
        if (s == RrStatus.Ok)
        {
            _features = features;
        }

        return s;
    }

    /// <summary>
    /// Sets the next available index to consume and the next used index to write (stopped only;
    /// SET_VRING_BASE, a restart where a ring stopped, a reconnect).
    /// </summary>
    public RrStatus SetIndices(ushort nextAvail, ushort nextUsed)
    {
        RrStatus s = CheckStopped();
        if (s == RrStatus.Ok)
        {
            _hot.LastAvail = nextAvail;
            _hot.AvailIdxSeen = nextAvail;
            _hot.NextUsed = nextUsed;
            _hot.SignalledUsed = nextUsed;
        }

        return s;
    }

    /// <summary>Enables or disables taking new chains (vhost-user SET_VRING_ENABLE). Held chains may still be completed.</summary>
    public void SetEnabled(bool enabled)
    {
        _enabled = enabled;
        _live = _ready && enabled && !IsDestroyed;
    }

    /// <summary>
    /// Starts the queue on the configured size and addresses: each part aligned (descriptor table
    /// 16, available ring 2, used ring 4) and entirely inside one region; the regions are pinned
    /// until <see cref="Stop"/>. Clears the broken state; indices stay as set.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> with <paramref name="error"/>; <see cref="RrStatus.Busy"/> (already started); <see cref="RrStatus.BadHandle"/>.</returns>
    public RrStatus Start(out string? error)
    {
        error = null;
        if (IsDestroyed)
        {
            error = "the queue was destroyed";
            return RrStatus.BadHandle;
        }

        if (_ready)
        {
            error = "the queue is already started";
            return RrStatus.Busy;
        }

        VirtqRings r = _configuredRings;
        int n = r.Size;
        if (!IsValidSize(n) || n > _maxSize)
        {
            error = $"queue size {n} is not a power of two from 1 to {_maxSize}";
            return RrStatus.InvalidArgument;
        }

        if ((r.DescGpa % DescAlign) != 0 || (r.AvailGpa % AvailAlign) != 0 || (r.UsedGpa % UsedAlign) != 0)
        {
            error = "a ring part is misaligned (descriptor table 16, available ring 2, used ring 4)";
            return RrStatus.InvalidArgument;
        }

        // Each pin is kept in its field as soon as it is taken, so a failure part-way unpins exactly those.
        byte* avail = null, used = null;
        if (!TryPinRing(r.DescGpa, (ulong)DescTableBytes(n), out byte* desc, out _ringPinDesc)
            || !TryPinRing(r.AvailGpa, (ulong)AvailRingBytes(n), out avail, out _ringPinAvail)
            || !TryPinRing(r.UsedGpa, (ulong)UsedRingBytes(n), out used, out _ringPinUsed))
        {
            UnpinRings();
            string space = _ringSpace == GuestAddressSpace.FrontEndUser ? "user" : "guest";
            error = $"a ring part (desc 0x{r.DescGpa:x}, avail 0x{r.AvailGpa:x}, used 0x{r.UsedGpa:x}, {space} addresses, N = {n}) is not entirely inside one memory region";
            return RrStatus.InvalidArgument;
        }
        if (_heads.Length < n)
        {
            _heads = new HeadState[n];
            _segments = new VirtqSegment[SegmentCapacity(n)];
        }

        _n = n;
        _mask = n - 1;
        _eventIdx = (_features & VirtqFeatures.EventIdx) != 0;
        _indirect = (_features & VirtqFeatures.IndirectDesc) != 0;
        _desc = desc;
        _avail = avail;
        _used = used;
        _usedEvent = avail + UsedEventOffset(n);
        _availEvent = used + AvailEventOffset(n);
        _hot.AvailIdxSeen = _hot.LastAvail;
        _hot.SignalledUsed = _hot.NextUsed;
        _hot.SegmentCount = 0;
        _hot.CurrentReadable = 0;
        _brokenReason = null;
        _ready = true;
        _live = _enabled;
        return RrStatus.Ok;
    }

    /// <summary>
    /// The used index the ring itself holds (used.idx), or 0 when stopped. After a back-end
    /// restart this is the ground truth of what was completed: restart with next available = next
    /// used = this value and the chains that were in flight are delivered again.
    /// </summary>
    public ushort RingUsedIndex => _ready ? Le.ReadAcquire16(_used + RingIdx) : (ushort)0;

    /// <summary>
    /// Continues writing used entries where the ring's used.idx says (started, before any chain
    /// is popped): a back-end that takes over a ring - vhost-user SET_VRING_BASE gives only the
    /// available index - must not leave a gap the driver would read as completions.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.Busy"/> (stopped, or chains held).</returns>
    public RrStatus SyncUsedIndexFromRing()
    {
        if (!_ready || HeldCount != 0)
        {
            return RrStatus.Busy;
        }

        _hot.NextUsed = RingUsedIndex;
        _hot.SignalledUsed = _hot.NextUsed;
        return RrStatus.Ok;
    }

    /// <summary>
    /// Stops the queue: chains still held are dropped (not returned), the rings unpinned; the
    /// indices are kept (<see cref="NextAvail"/> for GET_VRING_BASE). Stopping a stopped queue does nothing.
    /// </summary>
    public void Stop()
    {
        if (!_ready)
        {
            return;
        }

        _ready = false;
        _live = false;
        ReleaseAll();
        Array.Clear(_heads);
        UnpinRings();
        _desc = _avail = _used = _usedEvent = _availEvent = null;
        _hot.SegmentCount = 0;
        _hot.CurrentReadable = 0;
        // The cache may name a region that is about to be unmapped; it is re-validated anyway.
        _cacheTable = null;
        _cacheRegion = null;
    }

    private protected override void OnDestroyed()
    {
        _ready = false;
        _live = false;
        ReleaseAll();
        UnpinRings();
        _desc = _avail = _used = _usedEvent = _availEvent = null;
        _cacheTable = null;
        _cacheRegion = null;
        _map?.Detach();
    }

    private static ulong GpaOf(GuestMemory memory, byte* host) => memory.TryGpaOf(host, out ulong gpa) ? gpa : 0;

    private RrStatus CheckStopped()
    {
        if (IsDestroyed)
        {
            return RrStatus.BadHandle;
        }

        return _ready ? RrStatus.Busy : RrStatus.Ok;
    }

    private bool TryPinRing(ulong address, ulong length, out byte* host, out GuestRegion? region)
    {
        region = null;
        if (_map is not null)
        {
            return _map.Pin(address, length, _ringSpace, out host, out region) == RrStatus.Ok;
        }

        return _memory!.TryTranslate(address, length, out host);
    }

    private void UnpinRings()
    {
        _ringPinDesc?.Unpin();
        _ringPinAvail?.Unpin();
        _ringPinUsed?.Unpin();
        _ringPinDesc = _ringPinAvail = _ringPinUsed = null;
    }
}
