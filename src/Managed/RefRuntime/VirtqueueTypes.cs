// The values the safe virtqueue speaks in (RefRuntime.Core.Virtio has the same for its rings;
// virtio 1.2 §2.7, docs/virtqueue.md): a buffer, a popped chain, where the rings are, features.

using System;

namespace RefRuntime;

/// <summary>Feature bits that change a virtqueue's behaviour (virtio feature bit numbers).</summary>
[Flags]
public enum VirtqueueFeatures : ulong
{
    /// <summary>Neither.</summary>
    None = 0,

    /// <summary><c>VIRTIO_F_INDIRECT_DESC</c> (bit 28): a descriptor may point to a table of descriptors.</summary>
    IndirectDesc = 1UL << 28,

    /// <summary><c>VIRTIO_F_EVENT_IDX</c> (bit 29): notifications are suppressed with used_event / avail_event.</summary>
    EventIdx = 1UL << 29,
}

/// <summary>A buffer in guest memory, for <see cref="VirtqueueDriver{TToken}.TryAdd"/>.</summary>
/// <param name="Gpa">Its guest-physical address.</param>
/// <param name="Length">Its length in bytes.</param>
public readonly record struct VirtqueueBuffer(ulong Gpa, uint Length);

/// <summary>Where a queue's three parts are, as the driver tells the device.</summary>
/// <param name="Size">Entries (N).</param>
/// <param name="DescGpa">Descriptor table.</param>
/// <param name="AvailGpa">Available ring.</param>
/// <param name="UsedGpa">Used ring.</param>
public readonly record struct VirtqueueRings(int Size, ulong DescGpa, ulong AvailGpa, ulong UsedGpa);

/// <summary>A chain the device took from the available ring (<see cref="VirtqueueDevice.TryPop"/>).</summary>
/// <param name="Head">The head descriptor index (the id returned in the used ring).</param>
/// <param name="Readable">Readable buffers (they come first).</param>
/// <param name="Writable">Writable buffers.</param>
/// <param name="ReadableBytes">Readable bytes in all.</param>
/// <param name="WritableBytes">Writable bytes in all.</param>
public readonly record struct VirtqueueChain(ushort Head, int Readable, int Writable, uint ReadableBytes, uint WritableBytes);

/// <summary>Which addresses a back-end queue's ring addresses are (<see cref="VirtqueueDevice.Configure"/>).</summary>
public enum VirtqueueAddressSpace
{
    /// <summary>Guest-physical addresses (virtio-pci/mmio ring registers, descriptors).</summary>
    GuestPhysical = 0,

    /// <summary>The front-end's user (virtual) addresses, as vhost-user's SET_VRING_ADDR sends them.</summary>
    FrontEndUser = 1,
}
