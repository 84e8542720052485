// The safe .NET face of the split virtqueue (RefRuntime.Core.Virtio): a guest-memory region with
// span access, a driver side whose tokens are any .NET object, and a device side that returns
// malformed chains empty by itself. Status codes become the exceptions a .NET developer expects:
// ArgumentException for bad buffers, VirtqueueBrokenException (with the reason) once the peer has
// broken the protocol, ObjectDisposedException after Dispose. "Full" and "empty" are not errors:
// TryAdd / TryGetUsed / TryPop return false.

using System;
using System.Collections.Generic;
using RefRuntime.Core;
using RefRuntime.Core.Virtio;

namespace RefRuntime;

/// <summary>The other side of a virtqueue broke the protocol; the queue answers nothing until <c>Reset</c>.</summary>
public sealed class VirtqueueBrokenException(string reason)
    : InvalidOperationException($"The virtqueue is broken: {reason}. Reset both sides to use it again.")
{
    /// <summary>What the peer did wrong.</summary>
    public string Reason { get; } = reason;
}

/// <summary>A guest-memory region shared by the two sides of one or more virtqueues.</summary>
public sealed unsafe class GuestMemoryRegion : IDisposable
{
    private readonly GuestMemory _mem;
    private bool _disposed;

    /// <summary>Allocates a zeroed region of <paramref name="size"/> bytes at guest address <paramref name="gpaBase"/> (4 KiB aligned).</summary>
    /// <exception cref="ArgumentException">Size 0 or over 2^40, base not 4 KiB aligned, or the region would wrap.</exception>
    public GuestMemoryRegion(long size, ulong gpaBase = 0x4000_0000)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        RrStatus s = GuestMemory.Create((ulong)size, gpaBase, out GuestMemory? mem);
        Errors.ThrowIfFailed(s, nameof(gpaBase), $"guest memory of {size} bytes at 0x{gpaBase:x}");
        _mem = mem!;
    }

    internal GuestMemory Core
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _mem;
        }
    }

    /// <summary>The region's first guest-physical address.</summary>
    public ulong GpaBase => _mem.GpaBase;

    /// <summary>The region's size in bytes.</summary>
    public long Size => (long)_mem.Size;

    /// <summary>Carves <paramref name="size"/> zeroed bytes aligned to <paramref name="align"/>; they live as long as the region.</summary>
    /// <returns>Their guest-physical address.</returns>
    /// <exception cref="InvalidOperationException">The region is full.</exception>
    public ulong Allocate(int size, int align = 8)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(align);
        RrStatus s = Core.TryCarve((ulong)size, (ulong)align, out ulong gpa);
        if (s == RrStatus.NoSpace)
        {
            throw new InvalidOperationException($"The guest-memory region has no room for {size} more bytes ({_mem.Carved} of {_mem.Size} carved).");
        }

        Errors.ThrowIfFailed(s, nameof(align), "carving guest memory");
        return gpa;
    }

    /// <summary>The bytes at [<paramref name="gpa"/>, +<paramref name="length"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Any byte lies outside the region.</exception>
    public Span<byte> GetSpan(ulong gpa, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (!Core.TryTranslate(gpa, (ulong)length, out byte* p))
        {
            throw new ArgumentOutOfRangeException(nameof(gpa), $"[0x{gpa:x}, +{length}) is outside the region [0x{_mem.GpaBase:x}, +{_mem.Size}).");
        }

        // SAFETY: translated inside the live region; the region outlives the span's use by contract
        // (it cannot be disposed while a queue is attached, and spans are not stored).
        return new Span<byte>(p, length);
    }

    /// <summary>Frees the region.</summary>
    /// <exception cref="InvalidOperationException">A virtqueue side is still attached (dispose it first).</exception>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        if (_mem.Destroy() == RrStatus.Busy)
        {
            throw new InvalidOperationException($"{_mem.AttachedQueues} virtqueue side(s) still use this region; dispose them first.");
        }

        _disposed = true;
    }
}

/// <summary>The driver side of a virtqueue; tokens are any object, handed back when the device returns the chain.</summary>
/// <typeparam name="TToken">The token type.</typeparam>
public sealed class VirtqueueDriver<TToken> : IDisposable
    where TToken : class
{
    private readonly VirtqDriver _vq;
    private readonly TToken?[] _tokens;
    private readonly Stack<int> _freeSlots;
    private bool _disposed;

    /// <summary>Creates a driver-side queue of <paramref name="size"/> entries in <paramref name="memory"/>.</summary>
    /// <exception cref="ArgumentException">Size not a power of two up to 32768, or indirect tables without <see cref="VirtqueueFeatures.IndirectDesc"/>.</exception>
    /// <exception cref="InvalidOperationException">The region has no room for the ring.</exception>
    public VirtqueueDriver(GuestMemoryRegion memory, int size, VirtqueueFeatures features = VirtqueueFeatures.EventIdx, int indirectMax = 0)
    {
        ArgumentNullException.ThrowIfNull(memory);
        RrStatus s = VirtqDriver.Create(memory.Core, size, (VirtqFeatures)features, indirectMax, out VirtqDriver? vq, out string? error);
        if (s == RrStatus.NoSpace)
        {
            throw new InvalidOperationException(error);
        }

        if (s == RrStatus.InvalidArgument)
        {
            throw new ArgumentException(error, nameof(size));
        }

        Errors.ThrowIfFailed(s, nameof(memory), "creating a virtqueue");
        _vq = vq!;
        _tokens = new TToken?[size];
        _freeSlots = new Stack<int>(size);
        for (int i = size - 1; i >= 0; i--)
        {
            _freeSlots.Push(i);
        }
    }

    /// <summary>Where the three ring parts are (give these to the device).</summary>
    public VirtqueueRings Rings
    {
        get
        {
            VirtqRings r = Vq.Rings;
            return new VirtqueueRings(r.Size, r.DescGpa, r.AvailGpa, r.UsedGpa);
        }
    }

    /// <summary>Free descriptors.</summary>
    public int FreeCount => Vq.FreeCount;

    /// <summary>Chains the device holds.</summary>
    public int InFlight => Vq.InFlight;

    private VirtqDriver Vq
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _vq;
        }
    }

    /// <summary>Stages a chain of readable then writable buffers; visible after <see cref="Publish"/> or <see cref="KickPrepare"/>.</summary>
    /// <returns>False when there are too few free descriptors (collect used chains first).</returns>
    /// <exception cref="ArgumentException">No buffers, more than the queue size, a buffer outside the region, or over 4 GiB.</exception>
    /// <exception cref="VirtqueueBrokenException">The device broke the protocol.</exception>
    public bool TryAdd(ReadOnlySpan<VirtqueueBuffer> readable, ReadOnlySpan<VirtqueueBuffer> writable, TToken token)
    {
        ArgumentNullException.ThrowIfNull(token);
        int count = readable.Length + writable.Length;
        VirtqDriver vq = Vq;
        if (count == 0 || count > vq.Size)
        {
            throw new ArgumentException($"A chain has 1 to {vq.Size} buffers; got {count}.", nameof(readable));
        }

        Span<VirtqBuffer> all = count <= 64 ? stackalloc VirtqBuffer[count] : new VirtqBuffer[count];
        for (int i = 0; i < readable.Length; i++)
        {
            all[i] = new VirtqBuffer(readable[i].Gpa, readable[i].Length);
        }

        for (int i = 0; i < writable.Length; i++)
        {
            all[readable.Length + i] = new VirtqBuffer(writable[i].Gpa, writable[i].Length);
        }

        // With every slot taken, N chains are in flight and every descriptor is in use, so Core
        // validates the buffers and then answers NoSpace; slot 0 is never stored in that case.
        int slot = _freeSlots.Count > 0 ? _freeSlots.Peek() : 0;
        switch (vq.TryAdd(all, readable.Length, (ulong)slot))
        {
            case RrStatus.Ok:
                _freeSlots.Pop();
                _tokens[slot] = token;
                return true;
            case RrStatus.NoSpace:
                return false;
            case RrStatus.Broken:
                throw new VirtqueueBrokenException(vq.BrokenReason ?? "unknown");
            default:
                throw new ArgumentException("A buffer lies outside the guest-memory region, or the chain is over 4 GiB.", nameof(readable));
        }
    }

    /// <summary>Makes staged chains visible to a polling device.</summary>
    public void Publish() => Vq.Publish();

    /// <summary>Makes staged chains visible and says whether the device must be notified.</summary>
    public bool KickPrepare() => Vq.KickPrepare();

    /// <summary>Collects the next chain the device returned.</summary>
    /// <returns>False when nothing is waiting.</returns>
    /// <exception cref="VirtqueueBrokenException">The device returned an entry that breaks the protocol.</exception>
    public bool TryGetUsed(out TToken? token, out int length)
    {
        token = null;
        length = 0;
        VirtqDriver vq = Vq;
        switch (vq.TryGetUsed(out ulong slot, out uint len))
        {
            case RrStatus.Ok:
                token = _tokens[slot];
                _tokens[slot] = null;
                _freeSlots.Push((int)slot);
                length = (int)Math.Min(len, int.MaxValue);
                return true;
            case RrStatus.NotFound:
                return false;
            default:
                throw new VirtqueueBrokenException(vq.BrokenReason ?? "unknown");
        }
    }

    /// <summary>Asks for notifications; true when used chains are already waiting.</summary>
    public bool EnableCallbacks() => Vq.EnableCallbacks();

    /// <summary>Asks the device not to notify (polling).</summary>
    public void DisableCallbacks() => Vq.DisableCallbacks();

    /// <summary>Resets the ring (reset the device side too).</summary>
    /// <returns>The tokens of chains the device never returned.</returns>
    public IReadOnlyList<TToken> Reset()
    {
        VirtqDriver vq = Vq;
        var abandoned = new List<TToken>();
        while (vq.TryDetachUnused(out ulong slot) == RrStatus.Ok)
        {
            abandoned.Add(_tokens[slot]!);
            _tokens[slot] = null;
            _freeSlots.Push((int)slot);
        }

        vq.Reset();
        return abandoned;
    }

    /// <summary>Detaches from the region.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _vq.Destroy();
        }
    }
}

/// <summary>The device side of a virtqueue. Malformed chains are returned empty (length 0) by <see cref="TryPop"/> itself and counted.</summary>
public sealed partial class VirtqueueDevice : IDisposable
{
    private readonly VirtqDevice _vq;
    private bool _disposed;

    /// <summary>Creates the device side over the rings at <paramref name="rings"/>.</summary>
    /// <exception cref="ArgumentException">Bad size, misaligned parts, or parts outside the region.</exception>
    public VirtqueueDevice(GuestMemoryRegion memory, VirtqueueRings rings, VirtqueueFeatures features = VirtqueueFeatures.EventIdx)
    {
        ArgumentNullException.ThrowIfNull(memory);
        var raw = new VirtqRings(rings.Size, rings.DescGpa, rings.AvailGpa, rings.UsedGpa);
        RrStatus s = VirtqDevice.Create(memory.Core, raw, (VirtqFeatures)features, MalformedChainPolicy.ReturnEmpty, out VirtqDevice? vq, out string? error);
        if (s == RrStatus.InvalidArgument)
        {
            throw new ArgumentException(error, nameof(rings));
        }

        Errors.ThrowIfFailed(s, nameof(memory), "creating a virtqueue device side");
        _vq = vq!;
    }

    /// <summary>Malformed chains returned empty so far.</summary>
    public long MalformedCount => Vq.MalformedCount;

    /// <summary>Why the last malformed chain was refused, or null.</summary>
    public string? LastMalformedReason => Vq.LastMalformedReason;

    private VirtqDevice Vq
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _vq;
        }
    }

    /// <summary>Takes the next well-formed available chain (malformed ones are returned empty on the way).</summary>
    /// <returns>False when nothing is available.</returns>
    /// <exception cref="VirtqueueBrokenException">The driver broke the protocol at the queue level (an index that jumps, a head out of range).</exception>
    public bool TryPop(out VirtqueueChain chain)
    {
        VirtqDevice vq = Vq;
        while (true)
        {
            switch (vq.TryPop(out VirtqChain c))
            {
                case RrStatus.Ok:
                    chain = new VirtqueueChain(c.Head, c.Readable, c.Writable, c.ReadableBytes, c.WritableBytes);
                    return true;
                case RrStatus.NotFound:
                    chain = default;
                    return false;
                case RrStatus.Malformed:
                    vq.AddUsed(c.Head, 0);
                    continue;
                default:
                    throw new VirtqueueBrokenException(vq.BrokenReason ?? "unknown");
            }
        }
    }

    /// <summary>Copies the current chain's readable bytes (the chain the last <see cref="TryPop"/> took) into <paramref name="destination"/>.</summary>
    /// <returns>Bytes copied (0 when no chain was popped).</returns>
    /// <exception cref="InvalidOperationException">The chain was already completed: its buffers belong to the driver again.</exception>
    public int Read(Span<byte> destination)
    {
        RrStatus s = Vq.TryGather(destination, out int copied);
        ThrowIfCompleted(s);
        return copied;
    }

    /// <summary>Copies <paramref name="source"/> into the current chain's writable buffers.</summary>
    /// <returns>Bytes written (0 when no chain was popped).</returns>
    /// <exception cref="InvalidOperationException">The chain was already completed: its buffers belong to the driver again.</exception>
    public int Write(ReadOnlySpan<byte> source)
    {
        RrStatus s = Vq.TryScatter(source, out int written);
        ThrowIfCompleted(s);
        return written;
    }

    /// <summary>
    /// Returns <paramref name="chain"/> with <paramref name="length"/> bytes written. Its buffers
    /// belong to the driver again: <see cref="Read(Span{byte})"/> and <see cref="Write(ReadOnlySpan{byte})"/> throw until the next <see cref="TryPop"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Not a chain this device holds, or more bytes than it can take.</exception>
    public void Complete(in VirtqueueChain chain, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        RrStatus s = Vq.AddUsed(chain.Head, (uint)length);
        if (s == RrStatus.Broken)
        {
            throw new VirtqueueBrokenException(_vq.BrokenReason ?? "unknown");
        }

        if (s != RrStatus.Ok)
        {
            throw new ArgumentException($"Chain {chain.Head} is not held by this device, or {length} exceeds its {chain.WritableBytes} writable bytes.", nameof(length));
        }
    }

    private static void ThrowIfCompleted(RrStatus s)
    {
        if (s == RrStatus.NotFound)
        {
            throw new InvalidOperationException("The chain was already completed: its buffers belong to the driver again, which may be reusing them. Pop the next chain first.");
        }
    }

    /// <summary>Makes completed chains visible to a polling driver.</summary>
    public void Publish() => Vq.PublishUsed();

    /// <summary>Makes completed chains visible and says whether the driver must be notified.</summary>
    public bool NotifyPrepare() => Vq.NotifyPrepare();

    /// <summary>Asks the driver to kick; true when chains are already available.</summary>
    public bool EnableNotifications() => Vq.EnableNotifications();

    /// <summary>Asks the driver not to kick (polling).</summary>
    public void DisableNotifications() => Vq.DisableNotifications();

    /// <summary>Forgets indices and held chains (reset the driver side too).</summary>
    public void Reset() => Vq.Reset();

    /// <summary>Detaches from the region.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _vq.Destroy();
        }
    }
}
