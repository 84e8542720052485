// A registered guest-memory region: the one block of native memory that both sides of a
// virtqueue share, addressed by guest-physical addresses (GPAs) starting at GpaBase.
//
// Everything the device reads or writes on behalf of the driver is reached through TryTranslate,
// which checks [gpa, gpa + len) against the region without overflow; nothing outside the region
// is ever dereferenced, whatever the peer writes into a descriptor. The region is carved by a
// bump allocator (rings, indirect tables, request buffers: set-up time allocations that live as
// long as the region). Queues attach to it; it refuses to be destroyed while any is attached.
// The block is native heap memory, or memory the creator lends (CreateOver: a memfd mapping that
// a vhost-user front end shares with its back-end), given back through a release callback.

using System;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading;
using RefRuntime.Core.Memory;

namespace RefRuntime.Core.Virtio;

/// <summary>A guest-memory region (see file comment). Thread-safe.</summary>
/// <remarks><b>Invariants:</b> <c>_base</c> is a live native block of <c>_size</c> bytes until
/// <see cref="Destroy"/> succeeds, which it does only with no queue attached.</remarks>
public sealed unsafe class GuestMemory
{
    private readonly Lock _lock = new();
    private byte* _base;
    private readonly ulong _size;
    private readonly ulong _gpaBase;
    private readonly Action? _release; // lent memory: how to give it back (null: native heap)
    private ulong _carved;
    private int _attached;

    private GuestMemory(byte* block, ulong size, ulong gpaBase, Action? release = null)
    {
        _base = block;
        _size = size;
        _gpaBase = gpaBase;
        _release = release;
    }

    /// <summary>
    /// A region over memory the caller lends: <paramref name="size"/> bytes at <paramref name="block"/>
    /// (zeroed or not, as the caller made it), addressed from <paramref name="gpaBase"/>;
    /// <paramref name="release"/> runs once, at <see cref="Destroy"/>.
    /// </summary>
    /// <remarks><b>Safety:</b> the block stays valid and of that size until <paramref name="release"/> runs.</remarks>
    /// <returns><see cref="RrStatus.Ok"/> or <see cref="RrStatus.InvalidArgument"/>.</returns>
    public static RrStatus CreateOver(byte* block, ulong size, ulong gpaBase, Action release, out GuestMemory? memory)
    {
        ArgumentNullException.ThrowIfNull(release);
        memory = null;
        if (block == null || size == 0 || size > (1UL << 40) || (gpaBase & 0xFFF) != 0 || gpaBase > ulong.MaxValue - size)
        {
            return RrStatus.InvalidArgument;
        }

        memory = new GuestMemory(block, size, gpaBase, release);
        return RrStatus.Ok;
    }

    /// <summary>The region's first guest-physical address.</summary>
    public ulong GpaBase => _gpaBase;

    /// <summary>The region's size in bytes.</summary>
    public ulong Size => _size;

    /// <summary>Bytes handed out by <see cref="TryCarve"/> so far.</summary>
    public ulong Carved => Volatile.Read(ref _carved);

    /// <summary>Queues attached to the region.</summary>
    public int AttachedQueues => Volatile.Read(ref _attached);

    /// <summary>The host address of the region's first byte (for hosts that fill buffers directly).</summary>
    public byte* HostBase => _base;

    /// <summary>Allocates a zeroed region of <paramref name="size"/> bytes at guest address <paramref name="gpaBase"/>.</summary>
    /// <param name="size">Bytes: 1 to 2^40.</param>
    /// <param name="gpaBase">First guest-physical address; 4 KiB aligned, and the region must not wrap the 64-bit space.</param>
    /// <param name="memory">The region on success.</param>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.InvalidArgument"/> or <see cref="RrStatus.OutOfMemory"/>.</returns>
    public static RrStatus Create(ulong size, ulong gpaBase, out GuestMemory? memory)
    {
        memory = null;
        if (size == 0 || size > (1UL << 40) || (gpaBase & 0xFFF) != 0 || gpaBase > ulong.MaxValue - size)
        {
            return RrStatus.InvalidArgument;
        }

        byte* block = (byte*)NativeHeap.AllocZeroed((nuint)size, 4096);
        if (block == null)
        {
            return RrStatus.OutOfMemory;
        }

        memory = new GuestMemory(block, size, gpaBase);
        return RrStatus.Ok;
    }

    /// <summary>
    /// Translates [<paramref name="gpa"/>, <paramref name="gpa"/> + <paramref name="length"/>) to
    /// a host pointer; false (and null) when any byte of it lies outside the region.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTranslate(ulong gpa, ulong length, out byte* host)
    {
        // Unsigned arithmetic that cannot overflow: off is checked against _size before
        // length is compared with what remains.
        ulong off = gpa - _gpaBase;
        byte* b = _base;
        if (gpa >= _gpaBase && off <= _size && length <= _size - off && b != null)
        {
            host = b + off;
            return true;
        }

        host = null;
        return false;
    }

    /// <summary>The guest address of a host pointer inside the region, or false.</summary>
    public bool TryGpaOf(byte* host, out ulong gpa)
    {
        ulong off = (ulong)host - (ulong)_base;
        gpa = _gpaBase + off;
        return _base != null && host >= _base && off < _size;
    }

    /// <summary>Carves <paramref name="size"/> zeroed bytes aligned to <paramref name="align"/> (a power of two, ≤ 4096) from the region.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.InvalidArgument"/> (bad size or alignment), <see cref="RrStatus.NoSpace"/>, or <see cref="RrStatus.BadHandle"/> (destroyed).</returns>
    public RrStatus TryCarve(ulong size, ulong align, out ulong gpa)
    {
        gpa = 0;
        if (size == 0 || align == 0 || align > 4096 || (align & (align - 1)) != 0)
        {
            return RrStatus.InvalidArgument;
        }

        lock (_lock)
        {
            if (_base == null)
            {
                return RrStatus.BadHandle;
            }

            ulong start = (_carved + align - 1) & ~(align - 1);
            if (start > _size || size > _size - start)
            {
                return RrStatus.NoSpace;
            }

            Volatile.Write(ref _carved, start + size);
            gpa = _gpaBase + start;
            return RrStatus.Ok;
        }
    }

    /// <summary>A queue starts using the region.</summary>
    internal bool TryAttach()
    {
        lock (_lock)
        {
            if (_base == null)
            {
                return false;
            }

            _attached++;
            return true;
        }
    }

    /// <summary>A queue stops using the region.</summary>
    internal void Detach()
    {
        lock (_lock)
        {
            Debug.Assert(_attached > 0);
            _attached--;
        }
    }

    /// <summary>Frees the region (poisoned if <see cref="NativeHeap.PoisonOnFree"/>).</summary>
    /// <returns><see cref="RrStatus.Ok"/>, <see cref="RrStatus.Busy"/> while a queue is attached, or <see cref="RrStatus.BadHandle"/> if already destroyed.</returns>
    public RrStatus Destroy()
    {
        lock (_lock)
        {
            if (_base == null)
            {
                return RrStatus.BadHandle;
            }

            if (_attached != 0)
            {
                return RrStatus.Busy;
            }

            // SAFETY: the invariant: no queue is attached, so nothing of ours points into the block.
            if (_release is null)
            {
                NativeHeap.Free(_base, (nuint)_size);
            }
            else
            {
                _release();
            }

            _base = null;
            return RrStatus.Ok;
        }
    }
}

/// <summary>
/// A region's bounds, copied by a queue side when it attaches (the region cannot be freed while
/// any side is attached, so the copy stays valid): translation without touching the region object.
/// </summary>
internal readonly unsafe struct GuestRange(GuestMemory memory)
{
    private readonly byte* _base = memory.HostBase;
    private readonly ulong _gpa = memory.GpaBase;
    private readonly ulong _size = memory.Size;

    /// <summary>GuestMemory.TryTranslate over the copied bounds (the same overflow-free checks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTranslate(ulong gpa, ulong length, out byte* host)
    {
        ulong off = gpa - _gpa;
        if (gpa >= _gpa && off <= _size && length <= _size - off)
        {
            host = _base + off;
            return true;
        }

        host = null;
        return false;
    }
}
