// An MMIO window: 8/16/32/64-bit accessors with the byte order in the name, ordered and relaxed
// forms, and offset checking. Spec: docs/mmio.md (Rust kernel::io::Io, C readl/writel/ioread32be).
//
// Ordering. The ordered accessors give readX/writeX's guarantees with the .NET memory model: a
// read is a volatile (acquire) load, so later memory accesses - a DMA buffer - cannot move
// before it; a write is a volatile (release) store, so earlier memory writes are visible first.
// The relaxed accessors promise only what readX_relaxed does: accesses to the same window keep
// their order and are never merged, repeated or torn. In .NET that still needs volatile
// accesses (ordinary loads may be coalesced), so on x64 both forms compile to the same mov; the
// difference is the contract, which C callers get literally (their RR_INLINE relaxed path has
// no barriers).
//
// Checking. Offsets that the driver computes at run time go through Try*/checked accessors:
// offset + width must not overflow, must fit the window, and must be naturally aligned
// (Rust's offset_valid). Offsets fixed when the driver is written live in a register map
// (RegisterMap.cs): each register is checked when the map type is initialised, the window once
// when the map is bound, and the bound accessors carry no check at all.

using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Threading;

namespace RefRuntime.Core.Io;

/// <summary>An MMIO window over a backend (see file comment). A small struct: copy it freely.</summary>
/// <typeparam name="TBackend">Plain memory or a device model.</typeparam>
public readonly struct RawIo<TBackend>
    where TBackend : struct, IRawIoBackend
{
    private readonly TBackend _backend;

    /// <summary>Wraps a backend.</summary>
    public RawIo(TBackend backend) => _backend = backend;

    /// <summary>The window size in bytes.</summary>
    public nuint Size => _backend.Size;

    /// <summary>The backend.</summary>
    public TBackend Backend => _backend;

    /// <summary>Whether an access of <paramref name="width"/> bytes at <paramref name="offset"/> is in bounds and naturally aligned (Rust's <c>offset_valid</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool OffsetValid(nuint offset, int width) =>
        (offset & (nuint)(width - 1)) == 0 && offset <= _backend.Size && _backend.Size - offset >= (nuint)width;

    /// <summary>Binds a register map: checks once that every register of <typeparamref name="TMap"/> fits this window.</summary>
    /// <typeparam name="TMap">The register map.</typeparam>
    /// <returns>The bound window, whose register accessors carry no check.</returns>
    /// <exception cref="ArgumentException">The window is smaller than the map needs.</exception>
    public RawMappedIo<TMap, TBackend> Bind<TMap>()
        where TMap : IRawRegisterMap
    {
        if (_backend.Size < TMap.Size)
        {
            throw new ArgumentException($"The window has {_backend.Size} bytes; register map {RegisterCheck.NameOf<TMap>()} needs {TMap.Size}.");
        }

        return new RawMappedIo<TMap, TBackend>(this);
    }

    // ---- unchecked accessors: the caller (a bound map) proved the offset ----------------

    internal byte UncheckedRead8(nuint o) => _backend.Load8(o);

    internal ushort UncheckedReadLe16(nuint o) => _backend.Load16(o);

    internal uint UncheckedReadLe32(nuint o) => _backend.Load32(o);

    internal ulong UncheckedReadLe64(nuint o) => _backend.Load64(o);

    internal void UncheckedWrite8(byte v, nuint o) => _backend.Store8(o, v);

    internal void UncheckedWriteLe16(ushort v, nuint o) => _backend.Store16(o, v);

    internal void UncheckedWriteLe32(uint v, nuint o) => _backend.Store32(o, v);

    internal void UncheckedWriteLe64(ulong v, nuint o) => _backend.Store64(o, v);

    // ---- checked accessors (run-time offsets) -----------------------------------------------

    /// <summary><c>readb</c> with a checked offset.</summary>
    public bool TryRead8(nuint offset, out byte value)
    {
        value = OffsetValid(offset, 1) ? _backend.Load8(offset) : (byte)0;
        return OffsetValid(offset, 1);
    }

    /// <summary><c>readw</c>: 16-bit little-endian read with a checked offset.</summary>
    public bool TryReadLe16(nuint offset, out ushort value)
    {
        bool ok = OffsetValid(offset, 2);
        value = ok ? _backend.Load16(offset) : (ushort)0;
        return ok;
    }

    /// <summary><c>readl</c>: 32-bit little-endian read with a checked offset.</summary>
    public bool TryReadLe32(nuint offset, out uint value)
    {
        bool ok = OffsetValid(offset, 4);
        value = ok ? _backend.Load32(offset) : 0;
        return ok;
    }

    /// <summary><c>readq</c>: 64-bit little-endian read with a checked offset.</summary>
    public bool TryReadLe64(nuint offset, out ulong value)
    {
        bool ok = OffsetValid(offset, 8);
        value = ok ? _backend.Load64(offset) : 0;
        return ok;
    }

    /// <summary><c>ioread16be</c>: 16-bit big-endian read with a checked offset.</summary>
    public bool TryReadBe16(nuint offset, out ushort value)
    {
        bool ok = TryReadLe16(offset, out ushort v);
        value = BinaryPrimitives.ReverseEndianness(v);
        return ok;
    }

    /// <summary><c>ioread32be</c>: 32-bit big-endian read with a checked offset.</summary>
    public bool TryReadBe32(nuint offset, out uint value)
    {
        bool ok = TryReadLe32(offset, out uint v);
        value = BinaryPrimitives.ReverseEndianness(v);
        return ok;
    }

    /// <summary><c>ioread64be</c>: 64-bit big-endian read with a checked offset.</summary>
    public bool TryReadBe64(nuint offset, out ulong value)
    {
        bool ok = TryReadLe64(offset, out ulong v);
        value = BinaryPrimitives.ReverseEndianness(v);
        return ok;
    }

    /// <summary><c>writeb</c> with a checked offset.</summary>
    public bool TryWrite8(byte value, nuint offset)
    {
        if (!OffsetValid(offset, 1))
        {
            return false;
        }

        _backend.Store8(offset, value);
        return true;
    }

    /// <summary><c>writew</c>: 16-bit little-endian write with a checked offset.</summary>
    public bool TryWriteLe16(ushort value, nuint offset)
    {
        if (!OffsetValid(offset, 2))
        {
            return false;
        }

        _backend.Store16(offset, value);
        return true;
    }

    /// <summary><c>writel</c>: 32-bit little-endian write with a checked offset.</summary>
    public bool TryWriteLe32(uint value, nuint offset)
    {
        if (!OffsetValid(offset, 4))
        {
            return false;
        }

        _backend.Store32(offset, value);
        return true;
    }

    /// <summary><c>writeq</c>: 64-bit little-endian write with a checked offset.</summary>
    public bool TryWriteLe64(ulong value, nuint offset)
    {
        if (!OffsetValid(offset, 8))
        {
            return false;
        }

        _backend.Store64(offset, value);
        return true;
    }

    /// <summary><c>iowrite16be</c> with a checked offset.</summary>
    public bool TryWriteBe16(ushort value, nuint offset) => TryWriteLe16(BinaryPrimitives.ReverseEndianness(value), offset);

    /// <summary><c>iowrite32be</c> with a checked offset.</summary>
    public bool TryWriteBe32(uint value, nuint offset) => TryWriteLe32(BinaryPrimitives.ReverseEndianness(value), offset);

    /// <summary><c>iowrite64be</c> with a checked offset.</summary>
    public bool TryWriteBe64(ulong value, nuint offset) => TryWriteLe64(BinaryPrimitives.ReverseEndianness(value), offset);

    // Relaxed forms (readX_relaxed / writeX_relaxed): same access, weaker contract; in .NET they
    // compile to the same volatile access as the ordered forms (file comment).

    /// <summary><c>readb_relaxed</c> with a checked offset.</summary>
    public bool TryRead8Relaxed(nuint offset, out byte value) => TryRead8(offset, out value);

    /// <summary><c>readw_relaxed</c> with a checked offset.</summary>
    public bool TryReadLe16Relaxed(nuint offset, out ushort value) => TryReadLe16(offset, out value);

    /// <summary><c>readl_relaxed</c> with a checked offset.</summary>
    public bool TryReadLe32Relaxed(nuint offset, out uint value) => TryReadLe32(offset, out value);

    /// <summary><c>readq_relaxed</c> with a checked offset.</summary>
    public bool TryReadLe64Relaxed(nuint offset, out ulong value) => TryReadLe64(offset, out value);

    /// <summary>Relaxed big-endian 16-bit read with a checked offset.</summary>
    public bool TryReadBe16Relaxed(nuint offset, out ushort value) => TryReadBe16(offset, out value);

    /// <summary>Relaxed big-endian 32-bit read with a checked offset.</summary>
    public bool TryReadBe32Relaxed(nuint offset, out uint value) => TryReadBe32(offset, out value);

    /// <summary>Relaxed big-endian 64-bit read with a checked offset.</summary>
    public bool TryReadBe64Relaxed(nuint offset, out ulong value) => TryReadBe64(offset, out value);

    /// <summary><c>writeb_relaxed</c> with a checked offset.</summary>
    public bool TryWrite8Relaxed(byte value, nuint offset) => TryWrite8(value, offset);

    /// <summary><c>writew_relaxed</c> with a checked offset.</summary>
    public bool TryWriteLe16Relaxed(ushort value, nuint offset) => TryWriteLe16(value, offset);

    /// <summary><c>writel_relaxed</c> with a checked offset.</summary>
    public bool TryWriteLe32Relaxed(uint value, nuint offset) => TryWriteLe32(value, offset);

    /// <summary><c>writeq_relaxed</c> with a checked offset.</summary>
    public bool TryWriteLe64Relaxed(ulong value, nuint offset) => TryWriteLe64(value, offset);

    /// <summary>Relaxed big-endian 16-bit write with a checked offset.</summary>
    public bool TryWriteBe16Relaxed(ushort value, nuint offset) => TryWriteBe16(value, offset);

    /// <summary>Relaxed big-endian 32-bit write with a checked offset.</summary>
    public bool TryWriteBe32Relaxed(uint value, nuint offset) => TryWriteBe32(value, offset);

    /// <summary>Relaxed big-endian 64-bit write with a checked offset.</summary>
    public bool TryWriteBe64Relaxed(ulong value, nuint offset) => TryWriteBe64(value, offset);

    /// <summary>32-bit little-endian read that throws on a bad offset.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of bounds, overflowing, or misaligned.</exception>
    public uint ReadLe32(nuint offset) => TryReadLe32(offset, out uint v) ? v : throw BadOffset(offset, 4);

    /// <summary>32-bit little-endian write that throws on a bad offset.</summary>
    /// <exception cref="ArgumentOutOfRangeException">Out of bounds, overflowing, or misaligned.</exception>
    public void WriteLe32(uint value, nuint offset)
    {
        if (!TryWriteLe32(value, offset))
        {
            throw BadOffset(offset, 4);
        }
    }

    private ArgumentOutOfRangeException BadOffset(nuint offset, int width) =>
        new(nameof(offset), offset, $"A {width * 8}-bit access at 0x{offset:x} is not inside the {_backend.Size}-byte window or not {width}-byte aligned.");
}
