// The safe .NET face of the device side as a back-end uses it (RefRuntime.Core.Virtio): guest
// memory of several regions a front-end shares by descriptor (BackendMemory), a device queue
// configured after creation - size, ring addresses, indices, enable - and started and stopped,
// and every popped chain held by its head until Complete: read and write it at offsets, or use
// its segments directly as spans (valid while the chain is held). Status codes become exceptions.

using System;
using RefRuntime.Core;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;

namespace RefRuntime;

/// <summary>
/// Guest memory a back-end maps from a front-end: regions named by guest-physical and front-end
/// user addresses. A region removed while chains or rings use it stays mapped until they are done.
/// </summary>
public sealed class BackendMemory : IDisposable
{
    private readonly GuestMemoryMap _map;

    /// <summary>An empty map of at most <paramref name="maxRegions"/> regions.</summary>
    public BackendMemory(int maxRegions = GuestMemoryMap.DefaultMaxRegions) => _map = new GuestMemoryMap(maxRegions);

    internal GuestMemoryMap Core => _map;

    /// <summary>Regions in the table.</summary>
    public int Count => _map.Count;

    /// <summary>Removed regions still mapped because a chain or a ring uses them.</summary>
    public int PendingRelease => _map.PendingRelease;

    /// <summary>
    /// Maps [<paramref name="mmapOffset"/>, +<paramref name="size"/>) of descriptor <paramref name="fd"/>
    /// shared and adds it at guest address <paramref name="gpa"/> / front-end address <paramref name="userAddress"/>.
    /// The descriptor is not consumed.
    /// </summary>
    /// <exception cref="ArgumentException">Empty, wrapping or overlapping, or the descriptor cannot back it (too small, not a file).</exception>
    /// <exception cref="InvalidOperationException">The map is full.</exception>
    public void AddFromDescriptor(ulong gpa, ulong size, ulong userAddress, ulong mmapOffset, int fd)
    {
        if (size == 0 || mmapOffset > ulong.MaxValue - size)
        {
            throw new ArgumentException("A region needs a non-zero size that does not wrap the file offset.", nameof(size));
        }

        RrStatus s = new LinuxVhostPlatform().MapRegion(fd, mmapOffset, size, out IRegionBacking? backing, out string? error);
        if (s != RrStatus.Ok)
        {
            throw new ArgumentException(error, nameof(fd));
        }

        Add(new GuestRegionSpec(gpa, size, userAddress, mmapOffset), backing!);
    }

    /// <summary>Removes the region with this guest address and size (and user address, unless 0).</summary>
    /// <returns>False when there is no such region.</returns>
    public bool Remove(ulong gpa, ulong size, ulong userAddress = 0) => _map.Remove(gpa, size, userAddress, out _) == RrStatus.Ok;

    /// <summary>Copies guest memory at <paramref name="gpa"/> (may span adjacent regions).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A byte lies outside every region.</exception>
    public void Read(ulong gpa, Span<byte> destination)
    {
        if (!_map.TryRead(gpa, destination))
        {
            throw new ArgumentOutOfRangeException(nameof(gpa), $"[0x{gpa:x}, +{destination.Length}) is not inside the guest memory.");
        }
    }

    /// <summary>Copies into guest memory at <paramref name="gpa"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A byte lies outside every region.</exception>
    public void Write(ulong gpa, ReadOnlySpan<byte> source)
    {
        if (!_map.TryWrite(gpa, source))
        {
            throw new ArgumentOutOfRangeException(nameof(gpa), $"[0x{gpa:x}, +{source.Length}) is not inside the guest memory.");
        }
    }

    /// <summary>Removes every region and frees the map.</summary>
    /// <exception cref="InvalidOperationException">A queue still uses it.</exception>
    public void Dispose() => _map.Dispose();

    private void Add(GuestRegionSpec spec, IRegionBacking backing)
    {
        RrStatus s = _map.Add(spec, backing, out string? error);
        if (s == RrStatus.NoSpace)
        {
            throw new InvalidOperationException(error);
        }

        if (s != RrStatus.Ok)
        {
            throw new ArgumentException(error, nameof(spec));
        }
    }
}

/// <content>Queue state and chains held by head.</content>
public sealed partial class VirtqueueDevice
{
    /// <summary>
    /// A stopped device queue in <paramref name="memory"/> of at most <paramref name="maxSize"/>
    /// entries: set its size and ring addresses, then <see cref="Start"/>. Malformed chains are
    /// returned empty by <see cref="TryPop"/> itself.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="maxSize"/> is not a power of two up to 32768.</exception>
    public VirtqueueDevice(BackendMemory memory, int maxSize)
    {
        ArgumentNullException.ThrowIfNull(memory);
        RrStatus s = VirtqDevice.Create(memory.Core, maxSize, VirtqFeatures.None, MalformedChainPolicy.ReturnEmpty, out VirtqDevice? vq, out string? error);
        if (s != RrStatus.Ok)
        {
            throw new ArgumentException(error, nameof(maxSize));
        }

        _vq = vq!;
    }

    /// <summary>Whether the queue is started.</summary>
    public bool IsStarted => Vq.IsReady;

    /// <summary>Whether the queue takes new chains (a disabled queue still completes held ones).</summary>
    public bool Enabled
    {
        get => Vq.IsEnabled;
        set => Vq.SetEnabled(value);
    }

    /// <summary>The next available index the device will consume (what GET_VRING_BASE reports).</summary>
    public ushort NextAvail => Vq.NextAvail;

    /// <summary>The next used index the device will write.</summary>
    public ushort NextUsed => Vq.NextUsed;

    /// <summary>Chains popped and not yet completed.</summary>
    public int HeldCount => Vq.HeldCount;

    /// <summary>Configures size, ring addresses and ring features (stopped only); checked by <see cref="Start"/>.</summary>
    /// <exception cref="ArgumentException">A size that is not a power of two up to the maximum, or user addresses on a single-region queue.</exception>
    /// <exception cref="InvalidOperationException">The queue is started.</exception>
    public void Configure(VirtqueueRings rings, VirtqueueAddressSpace space, VirtqueueFeatures features)
    {
        VirtqDevice vq = Vq;
        ThrowConfig(vq.SetSize(rings.Size), nameof(rings));
        ThrowConfig(vq.SetRingAddresses(rings.DescGpa, rings.AvailGpa, rings.UsedGpa, (GuestAddressSpace)space), nameof(space));
        ThrowConfig(vq.SetFeatures((VirtqFeatures)features), nameof(features));
    }

    /// <summary>Where the next chain is taken and the next used entry written (stopped only: a restart where a ring stopped).</summary>
    /// <exception cref="InvalidOperationException">The queue is started.</exception>
    public void SetIndices(ushort nextAvail, ushort nextUsed) => ThrowConfig(Vq.SetIndices(nextAvail, nextUsed), nameof(nextAvail));

    /// <summary>Starts on the configured rings (each part aligned and inside one region).</summary>
    /// <exception cref="ArgumentException">The rings are misaligned or outside the memory (the message says which).</exception>
    /// <exception cref="InvalidOperationException">Already started.</exception>
    public void Start()
    {
        RrStatus s = Vq.Start(out string? error);
        if (s == RrStatus.Busy)
        {
            throw new InvalidOperationException("The queue is already started.");
        }

        if (s != RrStatus.Ok)
        {
            throw new ArgumentException(error, nameof(Start));
        }
    }

    /// <summary>Stops: held chains are dropped (not returned), the indices kept.</summary>
    public void Stop() => Vq.Stop();

    /// <summary>Copies readable bytes of held <paramref name="chain"/> from <paramref name="offset"/>.</summary>
    /// <returns>Bytes copied (short at the end of the readable part).</returns>
    /// <exception cref="ArgumentException">The chain is not held, or the offset is past its readable bytes.</exception>
    public int Read(in VirtqueueChain chain, int offset, Span<byte> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ThrowChain(Vq.ReadChain(chain.Head, (uint)offset, destination, out int n), chain);
        return n;
    }

    /// <summary>Copies into the writable bytes of held <paramref name="chain"/> from <paramref name="offset"/>.</summary>
    /// <returns>Bytes written (short at the end of the writable part).</returns>
    /// <exception cref="ArgumentException">The chain is not held, or the offset is past its writable bytes.</exception>
    public int Write(in VirtqueueChain chain, int offset, ReadOnlySpan<byte> source)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ThrowChain(Vq.WriteChain(chain.Head, (uint)offset, source, out int n), chain);
        return n;
    }

    /// <summary>Readable segment <paramref name="index"/> of held <paramref name="chain"/>, in place: valid until the chain is completed.</summary>
    /// <exception cref="ArgumentException">Not held, or no such readable segment.</exception>
    public unsafe ReadOnlySpan<byte> ReadableSegment(in VirtqueueChain chain, int index)
    {
        VirtqSegment s = Segment(chain, index, writable: false);
        // SAFETY: translated inside guest memory at pop; mapped (pinned) while the chain is held, which is this span's documented lifetime.
        return new ReadOnlySpan<byte>(s.Host, (int)s.Length);
    }

    /// <summary>Writable segment <paramref name="index"/> of held <paramref name="chain"/>, in place: valid until the chain is completed.</summary>
    /// <exception cref="ArgumentException">Not held, or no such writable segment.</exception>
    public unsafe Span<byte> WritableSegment(in VirtqueueChain chain, int index)
    {
        VirtqSegment s = Segment(chain, index, writable: true);
        // SAFETY: as ReadableSegment; the segment is device-writable (checked at pop).
        return new Span<byte>(s.Host, (int)s.Length);
    }

    private VirtqSegment Segment(in VirtqueueChain chain, int index, bool writable)
    {
        ReadOnlySpan<VirtqSegment> segs = Vq.GetSegments(chain.Head);
        if (segs.IsEmpty || Vq.GetChain(chain.Head, out VirtqChain held) != RrStatus.Ok)
        {
            throw new ArgumentException($"Chain {chain.Head} is not held by this device.", nameof(chain));
        }

        int at = writable ? held.Readable + index : index;
        int limit = writable ? held.Readable + held.Writable : held.Readable;
        if (index < 0 || at >= limit)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"Chain {chain.Head} has {(writable ? held.Writable : held.Readable)} {(writable ? "writable" : "readable")} segment(s).");
        }

        return segs[at];
    }

    private static void ThrowConfig(RrStatus s, string param)
    {
        if (s == RrStatus.Busy)
        {
            throw new InvalidOperationException("The queue is started; stop it first.");
        }

        if (s != RrStatus.Ok)
        {
            throw new ArgumentException("Invalid queue configuration.", param);
        }
    }

    private static void ThrowChain(RrStatus s, in VirtqueueChain chain)
    {
        if (s != RrStatus.Ok)
        {
            throw new ArgumentException($"Chain {chain.Head} is not held by this device, or the offset is past its bytes.", nameof(chain));
        }
    }
}
