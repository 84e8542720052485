// The virtio-gpio device served over vhost-user (the role of rust-vmm vhost-device-gpio's
// VhostUserGpioBackend; QEMU hw/virtio/vhost-user-gpio.c is the front-end it answers).
//
// The session hands over rings one at a time; the device needs both of its queues at once (the
// eventq only when VIRTIO_GPIO_F_IRQ was negotiated), so it is attached when the last one it
// needs arrives and detached as soon as one is taken back. A disabled ring keeps its chains, so
// the device keeps its line state and held eventq buffers across disable/enable. A stopped ring
// (GET_VRING_BASE: the guest reset the device, or the VM is stopping) dropped its chains, so the
// device is reset too - every line back to an input, every interrupt off (rule D17) - which is
// what the guest driver expects of a device it is about to reinitialise. Kicks of either ring
// wake the one serve thread, which looks at both queues.

using System;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;
using static RefRuntime.Core.Devices.VirtioGpio.VirtioGpioConst;

namespace RefRuntime.Core.Devices.VirtioGpio;

/// <summary>A <see cref="VirtioGpioDevice"/> as a vhost-user back-end (see file comment).</summary>
public sealed class VhostUserGpioBackend : IVhostUserBackend
{
    /// <summary>The largest ring size accepted (QEMU 7.2's vhost-user-gpio uses 256).</summary>
    public const int MaxRingSize = 1024;

    private readonly VirtioGpioDevice _device;
    private readonly Action<string>? _log;
    private readonly IVhostUserRing?[] _rings = new IVhostUserRing?[2];
    private ulong _features;
    private bool _attached;

    /// <summary>Serves <paramref name="device"/>.</summary>
    public VhostUserGpioBackend(VirtioGpioDevice device, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        _device = device;
        _log = log;
    }

    /// <summary>The device served.</summary>
    public VirtioGpioDevice Device => _device;

    /// <inheritdoc/>
    public ulong DeviceFeatures => _device.DeviceFeatures;

    /// <inheritdoc/>
    public VhostUserProtocolFeatures ProtocolFeatures => VhostUserProtocolFeatures.Config;

    /// <inheritdoc/>
    public int QueueCount => 2;

    /// <inheritdoc/>
    public int MaxQueueSize => MaxRingSize;

    /// <inheritdoc/>
    public bool TryReadConfig(uint offset, Span<byte> destination)
    {
        if (offset > ConfigSize || (uint)destination.Length > ConfigSize - offset)
        {
            return false;
        }

        for (int i = 0; i < destination.Length; i++)
        {
            destination[i] = (byte)_device.ReadConfig((int)offset + i, 1);
        }

        return true;
    }

    /// <inheritdoc/>
    public bool TryWriteConfig(uint offset, ReadOnlySpan<byte> source) => false; // read-only (spec §1.4)

    /// <inheritdoc/>
    public void SetFeatures(ulong features) => _features = features;

    /// <inheritdoc/>
    public void QueueEnabled(IVhostUserRing ring)
    {
        ArgumentNullException.ThrowIfNull(ring);
        if ((uint)ring.Index < 2)
        {
            _rings[ring.Index] = ring;
            TryAttach();
        }
    }

    /// <inheritdoc/>
    public void QueueDisabled(int index)
    {
        if ((uint)index < 2)
        {
            _rings[index] = null;
            DetachDevice();
        }
    }

    /// <inheritdoc/>
    public void QueueStopped(int index)
    {
        if ((uint)index < 2)
        {
            _rings[index] = null;
            DetachDevice();
            _device.Reset();
        }
    }

    /// <inheritdoc/>
    public void Kick(int index) => _device.Kick.Ring();

    /// <inheritdoc/>
    public void Reset()
    {
        _rings[0] = _rings[1] = null;
        DetachDevice();
        _device.Reset();
    }

    private void TryAttach()
    {
        bool irq = (_features & VIRTIO_GPIO_F_IRQ) != 0;
        IVhostUserRing? rq = _rings[0];
        IVhostUserRing? eq = _rings[1];
        if (_attached || rq is null || (irq && eq is null))
        {
            return;
        }

        RrStatus s = _device.Attach(_features, rq.Queue, irq ? eq!.Queue : null, rq.Notify, irq ? eq!.Notify : null, out string? error);
        if (s != RrStatus.Ok)
        {
            _log?.Invoke($"virtio-gpio device cannot start: {error}");
            return;
        }

        _attached = true;
    }

    private void DetachDevice()
    {
        if (_attached)
        {
            _device.Detach();
            _attached = false;
        }
    }
}
