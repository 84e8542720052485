// What a vhost-user session needs from the device it serves, and from the operating system.
// The device side (IVhostUserBackend) sees rings, not messages: a ring is handed over once it is
// started and enabled, taken back when it is disabled or stopped, and kicked in between. The
// platform side (IVhostPlatform) is the only door to mmap, close and eventfd writes, so the
// session itself can run against in-memory fakes in tests.

using System;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Vhost;

/// <summary>A ring a session hands to its device: the queue, and the notifications back to the front-end.</summary>
public interface IVhostUserRing
{
    /// <summary>The ring's index (0 = the device's first virtqueue).</summary>
    int Index { get; }

    /// <summary>The device side of the virtqueue (started; owned by the session).</summary>
    VirtqDevice Queue { get; }

    /// <summary>
    /// The front-end's kick eventfd (owned by the session, open while the ring is handed over), or
    /// -1 when the ring is kicked by polling (SET_VRING_KICK with the no-descriptor flag). Only a
    /// device that polls its own kicks (<see cref="IVhostUserBackend.HandlesKicks"/>) reads it.
    /// </summary>
    int KickFd { get; }

    /// <summary>Signals the front-end that used buffers are ready (the call eventfd). Any thread.</summary>
    void Notify();

    /// <summary>Signals the front-end that the ring failed (the err eventfd). Any thread.</summary>
    void SignalError();
}

/// <summary>
/// A virtio device served over vhost-user. The session calls these on its own thread, one at a
/// time; the device may use a handed-over ring from any one thread of its own until the session
/// takes it back (<see cref="QueueDisabled"/>, which must not return while the device still uses it).
/// </summary>
public interface IVhostUserBackend
{
    /// <summary>Virtio feature bits the device offers (the session adds VHOST_USER_F_PROTOCOL_FEATURES).</summary>
    ulong DeviceFeatures { get; }

    /// <summary>Protocol features the device needs beyond the session's own (e.g. CONFIG when it has a config space).</summary>
    VhostUserProtocolFeatures ProtocolFeatures { get; }

    /// <summary>Number of virtqueues.</summary>
    int QueueCount { get; }

    /// <summary>The largest ring size accepted (a power of two).</summary>
    int MaxQueueSize { get; }

    /// <summary>
    /// Whether the device waits on each handed-over ring's <see cref="IVhostUserRing.KickFd"/>
    /// itself (a thread per queue polling its kick beside its own descriptors). Then the server
    /// neither polls those descriptors nor polls the rings, the session takes a ring back before
    /// it replaces its kick descriptor, and <see cref="Kick"/> only comes from the session (a ring
    /// handed over, a new kick descriptor). False (the default): the server forwards every kick.
    /// </summary>
    bool HandlesKicks => false;

    /// <summary>Reads <paramref name="destination"/>.Length bytes of the configuration space at <paramref name="offset"/>; false when out of range.</summary>
    bool TryReadConfig(uint offset, Span<byte> destination);

    /// <summary>Writes the configuration space; false when refused (read-only fields, out of range).</summary>
    bool TryWriteConfig(uint offset, ReadOnlySpan<byte> source);

    /// <summary>The features the driver accepted (without the vhost-user bit).</summary>
    void SetFeatures(ulong features);

    /// <summary>A ring is started and enabled: the device may use it (and should look for chains already there).</summary>
    void QueueEnabled(IVhostUserRing ring);

    /// <summary>A ring is disabled: stop using it before returning; chains it holds stay held.</summary>
    void QueueDisabled(int index);

    /// <summary>A ring stopped (GET_VRING_BASE, reset): the chains it held are gone; forget them.</summary>
    void QueueStopped(int index);

    /// <summary>The front-end kicked ring <paramref name="index"/> (new buffers), or the ring should be looked at. Only while the ring is handed over.</summary>
    void Kick(int index);

    /// <summary>Device reset (the session ended, RESET_OWNER, RESET_DEVICE): back to the initial state.</summary>
    void Reset();
}

/// <summary>An eventfd-like descriptor the session signals (call, err).</summary>
public interface IVhostNotifier : IDisposable
{
    /// <summary>Signals it; false when the write failed.</summary>
    bool Signal();
}

/// <summary>The operating-system services a session uses (see file comment).</summary>
public interface IVhostPlatform
{
    /// <summary>
    /// Maps [<paramref name="offset"/>, +<paramref name="size"/>) of <paramref name="fd"/> shared
    /// read/write. The descriptor is not consumed.
    /// </summary>
    RrStatus MapRegion(int fd, ulong offset, ulong size, out IRegionBacking? backing, out string? error);

    /// <summary>Takes ownership of an eventfd a front-end sent, for signalling.</summary>
    IVhostNotifier AdoptNotifier(int fd);

    /// <summary>Closes a descriptor the session owns.</summary>
    void Close(int fd);
}
