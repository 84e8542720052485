// An MMIO window in the safe namespace: 8/16/32/64-bit accessors with the byte order in the
// name, ordered and relaxed forms, offset checking (docs/mmio.md; Rust kernel::io::Io, C
// readl/writel/ioread32be). The window itself is RefRuntime.Core's, over CoreBackend (IoBackend.cs):
// every member here forwards to it, so the checks and their ordering live in one place.

using System;
using System.Runtime.CompilerServices;

namespace RefRuntime;

/// <summary>
/// An MMIO window over a backend. A small struct: copy it freely. Offsets computed at run time
/// go through the checked <c>Try*</c> accessors (in bounds, no overflow, naturally aligned);
/// offsets fixed in a register map are checked once by <see cref="Bind{TMap}"/>.
/// </summary>
/// <typeparam name="TBackend">Plain memory (<see cref="MemoryBackend"/>) or a device model (<see cref="DeviceBackend"/>).</typeparam>
/// <remarks>The ordered accessors give readX/writeX's guarantees (acquire loads, release stores); the
/// relaxed ones promise what readX_relaxed does (same-window order, never merged, repeated or torn).</remarks>
public readonly struct Io<TBackend>
    where TBackend : struct, IIoBackend
{
    private readonly Core.Io.RawIo<CoreBackend<TBackend>> _raw;

    /// <summary>Wraps a backend.</summary>
    public Io(TBackend backend) => _raw = new(new CoreBackend<TBackend>(backend));

    internal Io(Core.Io.RawIo<CoreBackend<TBackend>> raw) => _raw = raw;

    /// <summary>The window size in bytes.</summary>
    public nuint Size => _raw.Size;

    /// <summary>The backend.</summary>
    public TBackend Backend => _raw.Backend.Inner;

    /// <summary>Whether an access of <paramref name="width"/> bytes at <paramref name="offset"/> is in bounds and naturally aligned (Rust's <c>offset_valid</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool OffsetValid(nuint offset, int width) => _raw.OffsetValid(offset, width);

    /// <summary>Binds a register map: checks once that every register of <typeparamref name="TMap"/> fits this window.</summary>
    /// <typeparam name="TMap">The register map.</typeparam>
    /// <returns>The bound window, whose register accessors carry no check.</returns>
    /// <exception cref="ArgumentException">The window is smaller than the map needs.</exception>
    public MappedIo<TMap, TBackend> Bind<TMap>()
        where TMap : IRegisterMap => new(_raw.Bind<RegisterMapOf<TMap>>());

    /// <summary><c>readb</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryRead8(nuint offset, out byte value) => _raw.TryRead8(offset, out value);

    /// <summary><c>readw</c>: 16-bit little-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadLe16(nuint offset, out ushort value) => _raw.TryReadLe16(offset, out value);

    /// <summary><c>readl</c>: 32-bit little-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadLe32(nuint offset, out uint value) => _raw.TryReadLe32(offset, out value);

    /// <summary><c>readq</c>: 64-bit little-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadLe64(nuint offset, out ulong value) => _raw.TryReadLe64(offset, out value);

    /// <summary><c>ioread16be</c>: 16-bit big-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadBe16(nuint offset, out ushort value) => _raw.TryReadBe16(offset, out value);

    /// <summary><c>ioread32be</c>: 32-bit big-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadBe32(nuint offset, out uint value) => _raw.TryReadBe32(offset, out value);

    /// <summary><c>ioread64be</c>: 64-bit big-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadBe64(nuint offset, out ulong value) => _raw.TryReadBe64(offset, out value);

    /// <summary><c>writeb</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWrite8(byte value, nuint offset) => _raw.TryWrite8(value, offset);

    /// <summary><c>writew</c>: 16-bit little-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteLe16(ushort value, nuint offset) => _raw.TryWriteLe16(value, offset);

    /// <summary><c>writel</c>: 32-bit little-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteLe32(uint value, nuint offset) => _raw.TryWriteLe32(value, offset);

    /// <summary><c>writeq</c>: 64-bit little-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteLe64(ulong value, nuint offset) => _raw.TryWriteLe64(value, offset);

    /// <summary><c>iowrite16be</c>: 16-bit big-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteBe16(ushort value, nuint offset) => _raw.TryWriteBe16(value, offset);

    /// <summary><c>iowrite32be</c>: 32-bit big-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteBe32(uint value, nuint offset) => _raw.TryWriteBe32(value, offset);

    /// <summary><c>iowrite64be</c>: 64-bit big-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteBe64(ulong value, nuint offset) => _raw.TryWriteBe64(value, offset);

    // Relaxed forms (readX_relaxed / writeX_relaxed): same access, weaker contract.

    /// <summary><c>readb_relaxed</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryRead8Relaxed(nuint offset, out byte value) => _raw.TryRead8Relaxed(offset, out value);

    /// <summary><c>readw_relaxed</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadLe16Relaxed(nuint offset, out ushort value) => _raw.TryReadLe16Relaxed(offset, out value);

    /// <summary><c>readl_relaxed</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadLe32Relaxed(nuint offset, out uint value) => _raw.TryReadLe32Relaxed(offset, out value);

    /// <summary><c>readq_relaxed</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadLe64Relaxed(nuint offset, out ulong value) => _raw.TryReadLe64Relaxed(offset, out value);

    /// <summary>Relaxed 16-bit big-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadBe16Relaxed(nuint offset, out ushort value) => _raw.TryReadBe16Relaxed(offset, out value);

    /// <summary>Relaxed 32-bit big-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadBe32Relaxed(nuint offset, out uint value) => _raw.TryReadBe32Relaxed(offset, out value);

    /// <summary>Relaxed 64-bit big-endian read with a checked offset.</summary>
    /// <returns><see langword="false"/> (and 0) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadBe64Relaxed(nuint offset, out ulong value) => _raw.TryReadBe64Relaxed(offset, out value);

    /// <summary><c>writeb_relaxed</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWrite8Relaxed(byte value, nuint offset) => _raw.TryWrite8Relaxed(value, offset);

    /// <summary><c>writew_relaxed</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteLe16Relaxed(ushort value, nuint offset) => _raw.TryWriteLe16Relaxed(value, offset);

    /// <summary><c>writel_relaxed</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteLe32Relaxed(uint value, nuint offset) => _raw.TryWriteLe32Relaxed(value, offset);

    /// <summary><c>writeq_relaxed</c> with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteLe64Relaxed(ulong value, nuint offset) => _raw.TryWriteLe64Relaxed(value, offset);

    /// <summary>Relaxed 16-bit big-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteBe16Relaxed(ushort value, nuint offset) => _raw.TryWriteBe16Relaxed(value, offset);

    /// <summary>Relaxed 32-bit big-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteBe32Relaxed(uint value, nuint offset) => _raw.TryWriteBe32Relaxed(value, offset);

    /// <summary>Relaxed 64-bit big-endian write with a checked offset.</summary>
    /// <returns><see langword="false"/> (nothing written) when the access is out of bounds or misaligned.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryWriteBe64Relaxed(ulong value, nuint offset) => _raw.TryWriteBe64Relaxed(value, offset);

    /// <summary>32-bit little-endian read that throws on a bad offset.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of bounds, overflowing, or misaligned.</exception>
    public uint ReadLe32(nuint offset) => _raw.ReadLe32(offset);

    /// <summary>32-bit little-endian write that throws on a bad offset.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of bounds, overflowing, or misaligned.</exception>
    public void WriteLe32(uint value, nuint offset) => _raw.WriteLe32(value, offset);
}
