// The memory behind a plain MMIO window: a native aligned allocation (owned), a managed array
// pinned for the region's lifetime (owned), or a caller's pointer and length (a C host's mmap,
// shared memory: borrowed). Spec: docs/mmio.md; the 2021 IoMem's base-alignment rule (8 bytes, so that
// naturally aligned offsets give aligned accesses) applies to every kind.

using System;
using System.Runtime.InteropServices;
using RefRuntime.Core.Memory;

namespace RefRuntime.Core.Io;

/// <summary>Memory for MMIO windows (see file comment). Dispose releases what it owns.</summary>
/// <remarks><b>Safety:</b> a window obtained from <see cref="Io"/> must not be used after the
/// region is disposed; to share a region with code that may outlive it, hand it out through a
/// <c>Revocable</c> (a revocable window), which makes every later access fail cleanly.</remarks>
public sealed unsafe class RawIoRegion : IDisposable
{
    private byte* _base;
    private readonly nuint _size;
    private readonly bool _owned;
    private GCHandle _pin;

    private RawIoRegion(byte* @base, nuint size, bool owned, GCHandle pin = default)
    {
        _base = @base;
        _size = size;
        _owned = owned;
        _pin = pin;
    }

    /// <summary>Allocates <paramref name="size"/> zeroed bytes of native memory, 64-byte aligned.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0.</exception>
    /// <exception cref="OutOfMemoryException">The allocation failed.</exception>
    public static RawIoRegion Allocate(nuint size)
    {
        ArgumentOutOfRangeException.ThrowIfZero(size);
        byte* p = (byte*)NativeHeap.AllocZeroed(size, 64);
        return p == null ? throw new OutOfMemoryException("RawIoRegion: native allocation failed.") : new RawIoRegion(p, size, owned: true);
    }

    /// <summary>Pins <paramref name="array"/> for the region's lifetime and uses it as the window's memory.</summary>
    /// <exception cref="ArgumentException">The array is empty or its data is not 8-byte aligned.</exception>
    public static RawIoRegion Pin(ulong[] array)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (array.Length == 0)
        {
            throw new ArgumentException("RawIoRegion.Pin: the array is empty.", nameof(array));
        }

        GCHandle h = GCHandle.Alloc(array, GCHandleType.Pinned);
        // SAFETY: pinned until Dispose frees the handle.
        return new RawIoRegion((byte*)h.AddrOfPinnedObject(), (nuint)array.Length * 8, owned: false, h);
    }

    /// <summary>Borrows <paramref name="size"/> bytes at <paramref name="address"/>: the caller keeps them mapped until the region is disposed.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or <see cref="RrStatus.InvalidArgument"/> for a null or misaligned address or a zero size.</returns>
    /// <remarks><b>Safety:</b> the memory stays valid for the region's lifetime (the caller's contract).</remarks>
    public static RrStatus TryWrap(void* address, nuint size, out RawIoRegion? region)
    {
        region = null;
        if (address == null || ((nuint)address & 7) != 0 || size == 0 || (nuint)address + size < (nuint)address)
        {
            return RrStatus.InvalidArgument;
        }

        region = new RawIoRegion((byte*)address, size, owned: false);
        return RrStatus.Ok;
    }

    /// <summary>The size in bytes.</summary>
    public nuint Size => _size;

    /// <summary>Whether the region has been disposed.</summary>
    public bool IsDisposed => _base == null;

    /// <summary>A plain-memory window over the region.</summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public RawIo<RawMemoryBackend> Io
    {
        get
        {
            byte* b = _base;
            ObjectDisposedException.ThrowIf(b == null, this);
            return new RawIo<RawMemoryBackend>(new RawMemoryBackend(b, _size));
        }
    }

    /// <summary>
    /// Releases what the region owns (native memory, the pin). Safe to call more than once; not
    /// safe to call while another thread still uses a window of the region (use a revocable
    /// window for that).
    /// </summary>
    public void Dispose()
    {
        byte* b = _base;
        if (b == null)
        {
            return;
        }

        _base = null;
        if (_owned)
        {
            NativeHeap.Free(b, _size);
        }

        if (_pin.IsAllocated)
        {
            _pin.Free();
        }
    }
}
