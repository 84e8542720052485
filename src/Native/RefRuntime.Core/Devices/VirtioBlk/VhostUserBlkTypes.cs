// The small value types of RefRuntime's vhost-user-blk front end (VhostUserBlkFrontend): what a
// connection asks for, how a request's descriptor chain is laid out, and what a completion says.

using System;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>What <see cref="VhostUserBlkFrontend.Connect"/> negotiates and sets up.</summary>
public sealed record VhostUserBlkOptions
{
    /// <summary>Request queues to start (1 unless the device offers MQ with at least this many).</summary>
    public int NumQueues { get; init; } = 1;

    /// <summary>Entries per queue (a power of two; QEMU's vhost-user-blk uses 128).</summary>
    public int QueueSize { get; init; } = 128;

    /// <summary>Data bytes of the largest request (each queue has one buffer of this size per ring entry).</summary>
    public int MaxRequestBytes { get; init; } = 128 * 1024;

    /// <summary>Negotiate VIRTIO_RING_F_EVENT_IDX when offered.</summary>
    public bool EventIdx { get; init; } = true;

    /// <summary>Negotiate VIRTIO_RING_F_INDIRECT_DESC when offered, and put multi-descriptor chains in indirect tables.</summary>
    public bool Indirect { get; init; }

    /// <summary>Share memory with ADD_MEM_REG when the back-end offers CONFIGURE_MEM_SLOTS (else SET_MEM_TABLE).</summary>
    public bool UseMemSlots { get; init; }

    /// <summary>How long a vhost-user reply may take before the connection counts as failed.</summary>
    public int ReplyTimeoutMs { get; init; } = 10_000;
}

/// <summary>How a request's chain is built from its slot (header, data, status).</summary>
/// <param name="SegmentBytes">0: the data in one descriptor; otherwise split into descriptors of at most this many bytes.</param>
/// <param name="StatusWithData">For a request with device-writable data, one descriptor covers the data and the status byte (the device must find the status in the last writable byte whatever the framing, virtio 1.2 §2.6.4).</param>
public readonly record struct BlkChainLayout(int SegmentBytes = 0, bool StatusWithData = false);

/// <summary>One descriptor of a raw chain: a range of the request's slot (see <see cref="VhostUserBlkQueue.SlotBytes"/>).</summary>
/// <param name="Offset">Byte offset in the slot.</param>
/// <param name="Length">Bytes.</param>
/// <param name="Writable">Device-writable (writable descriptors must come after the readable ones).</param>
public readonly record struct BlkRawSegment(int Offset, int Length, bool Writable);

/// <summary>How a request ended, seen from the front end.</summary>
public enum BlkOutcome
{
    /// <summary>The device returned the chain; read <see cref="BlkCompletion.Status"/>.</summary>
    Completed = 0,

    /// <summary>The back-end hung up (or the front end was closed) before answering.</summary>
    NoDevice = 1,

    /// <summary>The device broke the ring protocol (a bad used entry); every request on the queue fails.</summary>
    Broken = 2,

    /// <summary>A synchronous call gave up waiting; the request stays in flight and its slot is released when it completes.</summary>
    TimedOut = 3,
}

/// <summary>A finished request.</summary>
/// <param name="Slot">The request's slot (still reserved: read its data, then <see cref="VhostUserBlkQueue.Release"/> it).</param>
/// <param name="Tag">The caller's tag given at submit.</param>
/// <param name="Outcome">Whether the device answered.</param>
/// <param name="Status">The status byte the device wrote (VIRTIO_BLK_S_*), or 0xff when it wrote none or did not answer.</param>
/// <param name="UsedLength">Bytes the device says it wrote into the chain (used.len).</param>
public readonly record struct BlkCompletion(int Slot, ulong Tag, BlkOutcome Outcome, byte Status, uint UsedLength)
{
    /// <summary>Completed with VIRTIO_BLK_S_OK.</summary>
    public bool IsOk => Outcome == BlkOutcome.Completed && Status == VirtioBlkConst.VIRTIO_BLK_S_OK;
}

/// <summary>The result of a synchronous request.</summary>
/// <param name="Outcome">Whether the device answered.</param>
/// <param name="Status">The status byte (VIRTIO_BLK_S_*), 0xff when none.</param>
/// <param name="UsedLength">used.len.</param>
public readonly record struct BlkResult(BlkOutcome Outcome, byte Status, uint UsedLength)
{
    /// <summary>Completed with VIRTIO_BLK_S_OK.</summary>
    public bool IsOk => Outcome == BlkOutcome.Completed && Status == VirtioBlkConst.VIRTIO_BLK_S_OK;

    /// <inheritdoc/>
    public override string ToString() => Outcome == BlkOutcome.Completed ? $"status {Status} (used {UsedLength})" : Outcome.ToString();
}
