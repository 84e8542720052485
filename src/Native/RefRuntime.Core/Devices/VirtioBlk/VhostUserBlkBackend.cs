// The virtio-blk device served over vhost-user (QEMU hw/block/vhost-user-blk.c is the front-end
// it answers; docs/virtio-blk.md).
//
// Each ring is a request queue with its own thread and I/O engine (VirtioBlkQueue); the rings are
// independent, so a ring is served from the moment it is handed over until it is taken back,
// whatever the others do. The queue threads poll their rings' kick descriptors themselves
// (HandlesKicks), so a kick wakes the thread that serves the ring directly. Taking a ring back -
// disabled, stopped (GET_VRING_BASE), reset, the session ending - stops its thread only after
// every I/O in flight on it finished and was completed into the ring: the buffers of those I/Os
// are guest memory, and the session may stop the queue or unmap the memory right after.
// Protocol features: CONFIG (QEMU 7.2 requires it to read the 57 or 60 config bytes) and MQ
// (QEMU asks GET_QUEUE_NUM and refuses num-queues above the answer).

using System;
using RefRuntime.Core.Vhost;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>A <see cref="VirtioBlkDevice"/> as a vhost-user back-end (see file comment).</summary>
public sealed class VhostUserBlkBackend : IVhostUserBackend, IDisposable
{
    private readonly VirtioBlkDevice _device;
    private readonly VirtioBlkQueue[] _queues;
    private readonly Action<string>? _log;
    private ulong _features;
    private bool _disposed;

    /// <summary>Serves <paramref name="device"/>; <paramref name="engineFactory"/> makes each queue's engine (queue index in, engine out; owned by the back-end).</summary>
    public VhostUserBlkBackend(VirtioBlkDevice device, Func<int, IBlockIoEngine> engineFactory, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(engineFactory);
        _device = device;
        _log = log;
        _queues = new VirtioBlkQueue[device.NumQueues];
        try
        {
            for (int i = 0; i < _queues.Length; i++)
            {
                _queues[i] = new VirtioBlkQueue(device, i, engineFactory(i), log);
            }
        }
        catch
        {
            DisposeQueues();
            throw;
        }
    }

    /// <summary>The device served.</summary>
    public VirtioBlkDevice Device => _device;

    /// <summary>Queue <paramref name="index"/> (counters, engine).</summary>
    public VirtioBlkQueue Queue(int index) => _queues[index];

    /// <inheritdoc/>
    public ulong DeviceFeatures => _device.DeviceFeatures;

    /// <inheritdoc/>
    public VhostUserProtocolFeatures ProtocolFeatures => VhostUserProtocolFeatures.Config | VhostUserProtocolFeatures.Mq;

    /// <inheritdoc/>
    public int QueueCount => _device.NumQueues;

    /// <inheritdoc/>
    public int MaxQueueSize => _device.QueueSize;

    /// <inheritdoc/>
    public bool HandlesKicks => true;

    /// <inheritdoc/>
    public bool TryReadConfig(uint offset, Span<byte> destination) => _device.TryReadConfig(offset, destination);

    /// <inheritdoc/>
    public bool TryWriteConfig(uint offset, ReadOnlySpan<byte> source) => false; // no CONFIG_WCE: every field is read-only

    /// <inheritdoc/>
    public void SetFeatures(ulong features) => _features = features;

    /// <inheritdoc/>
    public void QueueEnabled(IVhostUserRing ring)
    {
        ArgumentNullException.ThrowIfNull(ring);
        if ((uint)ring.Index >= (uint)_queues.Length || _disposed)
        {
            return;
        }

        VirtioBlkQueue q = _queues[ring.Index];
        q.Stop();
        q.Start(ring.Queue, _features, ring.KickFd, ring.Notify, ring.SignalError);
    }

    /// <inheritdoc/>
    public void QueueDisabled(int index)
    {
        if ((uint)index < (uint)_queues.Length)
        {
            _queues[index].Stop();
        }
    }

    /// <inheritdoc/>
    public void QueueStopped(int index) => QueueDisabled(index);

    /// <inheritdoc/>
    public void Kick(int index)
    {
        if ((uint)index < (uint)_queues.Length)
        {
            _queues[index].Wake();
        }
    }

    /// <inheritdoc/>
    public void Reset()
    {
        foreach (VirtioBlkQueue q in _queues)
        {
            q.Stop();
        }

        _features = 0;
    }

    /// <summary>Stops every queue (finishing their I/O) and disposes their engines.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        DisposeQueues();
    }

    private void DisposeQueues()
    {
        foreach (VirtioBlkQueue? q in _queues)
        {
            q?.Dispose();
        }
    }
}
