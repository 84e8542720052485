// One ring of a vhost-user session: its configuration (size, base, addresses), its descriptors
// (kick, call, err) and where it stands in the life cycle of QEMU docs/interop/vhost-user.rst
// "Ring states":
//
//   stopped ──SET_VRING_KICK──▶ started ──(addresses, memory)──▶ running ──SET_VRING_ENABLE 1──▶ handed to the device
//      ▲                                                                     ◀──SET_VRING_ENABLE 0──
//      └──────────────────────────── GET_VRING_BASE (from any state) ─────────────────┘
//
// "Running" means the VirtqDevice is started (its ring parts translated and pinned); "handed"
// means the device may use it. The call and err notifiers can be replaced at any time while a
// device thread signals them, so both sit behind a lock: a descriptor is closed only after the
// swap, and a signal never writes to a closed (or, worse, reused) descriptor number.

using System.Threading;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Vhost;

/// <summary>A ring of a session (see file comment).</summary>
internal sealed class VhostUserRing : IVhostUserRing
{
    private readonly Lock _notifyLock = new();
    private IVhostNotifier? _call;
    private IVhostNotifier? _err;
    private long _notifications;

    public VhostUserRing(int index, VirtqDevice queue)
    {
        Index = index;
        Queue = queue;
    }

    public int Index { get; }

    public VirtqDevice Queue { get; }

    /// <summary>The kick eventfd (owned), or -1.</summary>
    public int KickFd { get; set; } = -1;

    /// <summary>Started with "no descriptor": the device is kicked by polling.</summary>
    public bool KickPolling { get; set; }

    /// <summary>A kick descriptor (or polling) arrived since the last stop.</summary>
    public bool Started { get; set; }

    /// <summary>SET_VRING_ADDR was received.</summary>
    public bool AddressesSet { get; set; }

    /// <summary>The ring's enable state.</summary>
    public bool Enabled { get; set; }

    /// <summary>The queue is started (ring parts pinned).</summary>
    public bool Running { get; set; }

    /// <summary>The device has the ring.</summary>
    public bool Handed { get; set; }

    /// <summary>Call signals sent.</summary>
    public long Notifications => Interlocked.Read(ref _notifications);

    public void Notify()
    {
        lock (_notifyLock)
        {
            if (_call is not null)
            {
                _call.Signal();
                _notifications++;
            }
        }
    }

    public void SignalError()
    {
        lock (_notifyLock)
        {
            _err?.Signal();
        }
    }

    /// <summary>Installs a new call notifier (null: the front-end polls) and disposes the old one after the swap.</summary>
    public void ReplaceCall(IVhostNotifier? notifier)
    {
        IVhostNotifier? old;
        lock (_notifyLock)
        {
            old = _call;
            _call = notifier;
        }

        old?.Dispose();
    }

    /// <summary>As <see cref="ReplaceCall"/> for the err notifier.</summary>
    public void ReplaceErr(IVhostNotifier? notifier)
    {
        IVhostNotifier? old;
        lock (_notifyLock)
        {
            old = _err;
            _err = notifier;
        }

        old?.Dispose();
    }
}
