// The memory behind a plain MMIO window (RefRuntime.Core.Io holds it; docs/mmio.md): native
// aligned memory or a pinned array, both owned, or a caller's mapping, borrowed.

using System;

namespace RefRuntime;

/// <summary>Memory for MMIO windows. Dispose releases what it owns.</summary>
/// <remarks>A window obtained from <see cref="Io"/> must not be used after the region is disposed;
/// to share a region with code that may outlive it, hand it out through a
/// <see cref="Revocable{T}"/>, which makes every later access fail cleanly.</remarks>
public sealed class IoRegion : IDisposable
{
    private readonly Core.Io.RawIoRegion _raw;

    private IoRegion(Core.Io.RawIoRegion raw) => _raw = raw;

    /// <summary>Allocates <paramref name="size"/> zeroed bytes of native memory, 64-byte aligned.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is 0.</exception>
    /// <exception cref="OutOfMemoryException">The allocation failed.</exception>
    public static IoRegion Allocate(nuint size) => new(Core.Io.RawIoRegion.Allocate(size));

    /// <summary>Pins <paramref name="array"/> for the region's lifetime and uses it as the window's memory.</summary>
    /// <exception cref="ArgumentException">The array is empty.</exception>
    public static IoRegion Pin(ulong[] array) => new(Core.Io.RawIoRegion.Pin(array));

    /// <summary>
    /// Borrows <paramref name="size"/> bytes at <paramref name="address"/> (a C host's mapping,
    /// shared memory). <b>Safety:</b> the caller keeps them mapped until the region is disposed;
    /// <see cref="Allocate"/> and <see cref="Pin"/> are the safe ways to get a region.
    /// </summary>
    /// <exception cref="ArgumentException">A null or not 8-byte aligned address, a zero size, or a range that wraps.</exception>
    public static unsafe IoRegion DangerousWrap(nint address, nuint size)
    {
        // SAFETY: the caller's contract (above) keeps the memory mapped for the region's lifetime.
        if (Core.Io.RawIoRegion.TryWrap((void*)address, size, out Core.Io.RawIoRegion? raw) != Core.RrStatus.Ok)
        {
            throw new ArgumentException($"IoRegion.DangerousWrap: 0x{address:x} (+{size}) is null, not 8-byte aligned, empty or wraps.", nameof(address));
        }

        return new(raw!);
    }

    /// <summary>The size in bytes.</summary>
    public nuint Size => _raw.Size;

    /// <summary>Whether the region has been disposed.</summary>
    public bool IsDisposed => _raw.IsDisposed;

    /// <summary>A plain-memory window over the region.</summary>
    /// <exception cref="ObjectDisposedException">The region was disposed.</exception>
    public Io<MemoryBackend> Io => new(new MemoryBackend(_raw.Io.Backend));

    /// <summary>
    /// Releases what the region owns (native memory, the pin). Safe to call more than once; not
    /// safe while another thread still uses a window of the region (use a revocable window for that).
    /// </summary>
    public void Dispose() => _raw.Dispose();
}
