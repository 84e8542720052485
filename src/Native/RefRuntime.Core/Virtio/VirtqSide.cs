// What the two sides of a virtqueue share: attachment to the guest-memory region, the sticky
// broken state a protocol violation sets, and destruction (detach from the region, once).

using System.Threading;

namespace RefRuntime.Core.Virtio;

/// <summary>One side of a virtqueue (<see cref="VirtqDriver"/> or <see cref="VirtqDevice"/>).</summary>
/// <remarks><b>Invariants:</b> attached to its region (counted in <see cref="GuestMemory.AttachedQueues"/>)
/// from construction until the first <see cref="Destroy"/>; broken from the first violation until Reset.</remarks>
public abstract class VirtqSide
{
    private readonly GuestMemory? _memory; // null for a device side over a GuestMemoryMap
    private int _destroyed;

    /// <summary>Why the queue is broken, or null. Set by <see cref="Break"/>, cleared by Reset.</summary>
    private protected string? _brokenReason;

    private protected VirtqSide(GuestMemory? memory) => _memory = memory;

    /// <summary>Whether a protocol violation broke the queue.</summary>
    public bool IsBroken => _brokenReason is not null;

    /// <summary>What broke the queue, or null.</summary>
    public string? BrokenReason => _brokenReason;

    private protected bool IsDestroyed => Volatile.Read(ref _destroyed) != 0;

    /// <summary>Detaches this side from its region (the region may then be destroyed). Unusable afterwards.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.BadHandle"/> if already destroyed.</returns>
    public RrStatus Destroy()
    {
        if (Interlocked.Exchange(ref _destroyed, 1) != 0)
        {
            return RrStatus.BadHandle;
        }

        _brokenReason = "the queue was destroyed";
        _memory?.Detach();
        OnDestroyed();
        return RrStatus.Ok;
    }

    /// <summary>Runs once, in <see cref="Destroy"/>, after the side is marked destroyed (release what it holds).</summary>
    private protected virtual void OnDestroyed()
    {
    }

    /// <summary>Marks the queue broken with <paramref name="reason"/>.</summary>
    private protected virtual RrStatus Break(string reason)
    {
        _brokenReason = reason;
        return RrStatus.Broken;
    }
}
