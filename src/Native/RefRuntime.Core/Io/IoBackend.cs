// What an MMIO window is made of: a backend that performs one access of a given width at an
// offset, with the value in bus order (little endian, as PCI and AMBA registers are). Two
// kinds: plain memory (volatile loads and stores on pinned or native memory) and a device model
// that reacts to each access (read-to-clear, write-1-to-clear, address masking...).
//
// Backends are structs and the window is generic over them, so a driver written once against
// RawIo<TBackend> is compiled separately for each: on plain memory every access is a single mov,
// with no interface call (the C# counterpart of Rust's monomorphised Io). Spec: docs/mmio.md.

using System;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Threading;

namespace RefRuntime.Core.Io;

/// <summary>One access at a time, value in little-endian bus order. Offsets are already checked.</summary>
public interface IRawIoBackend
{
    /// <summary>The window size in bytes.</summary>
    nuint Size { get; }

    /// <summary>8-bit load.</summary>
    byte Load8(nuint offset);

    /// <summary>16-bit load, little-endian value.</summary>
    ushort Load16(nuint offset);

    /// <summary>32-bit load, little-endian value.</summary>
    uint Load32(nuint offset);

    /// <summary>64-bit load, little-endian value.</summary>
    ulong Load64(nuint offset);

    /// <summary>8-bit store.</summary>
    void Store8(nuint offset, byte value);

    /// <summary>16-bit store of a little-endian value.</summary>
    void Store16(nuint offset, ushort value);

    /// <summary>32-bit store of a little-endian value.</summary>
    void Store32(nuint offset, uint value);

    /// <summary>64-bit store of a little-endian value.</summary>
    void Store64(nuint offset, ulong value);
}

/// <summary>
/// Plain memory: every access is one volatile, naturally aligned load or store (never torn,
/// never merged, repeated or elided). On a big-endian host the value is swapped to bus order.
/// </summary>
/// <remarks><b>Invariants:</b> <c>_base</c> is 8-byte aligned and <c>_size</c> bytes from it
/// stay mapped while the backend is used (the owning <see cref="RawIoRegion"/> or the caller who
/// wrapped the memory guarantees it).</remarks>
public readonly unsafe struct RawMemoryBackend : IRawIoBackend
{
    private readonly byte* _base;
    private readonly nuint _size;

    internal RawMemoryBackend(byte* @base, nuint size)
    {
        _base = @base;
        _size = size;
    }

    /// <inheritdoc/>
    public nuint Size => _size;

    /// <summary>The base address.</summary>
    public byte* Base => _base;

    // SAFETY (all members): the window checked offset + width <= size and natural alignment
    // before calling (or its register map did, once); the base is 8-aligned (invariant).

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Load8(nuint offset) => Volatile.Read(ref *(_base + offset));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort Load16(nuint offset) => Le(Volatile.Read(ref *(ushort*)(_base + offset)));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Load32(nuint offset) => Le(Volatile.Read(ref *(uint*)(_base + offset)));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Load64(nuint offset) => Le(Volatile.Read(ref *(ulong*)(_base + offset)));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store8(nuint offset, byte value) => Volatile.Write(ref *(_base + offset), value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store16(nuint offset, ushort value) => Volatile.Write(ref *(ushort*)(_base + offset), Le(value));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store32(nuint offset, uint value) => Volatile.Write(ref *(uint*)(_base + offset), Le(value));

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store64(nuint offset, ulong value) => Volatile.Write(ref *(ulong*)(_base + offset), Le(value));

    // Bus order is little endian: a no-op the JIT removes on little-endian hosts.
    private static ushort Le(ushort v) => BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    private static uint Le(uint v) => BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);

    private static ulong Le(ulong v) => BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
}

/// <summary>A device model: registers with side effects, given each access's offset, width and value.</summary>
public interface IRawDeviceModel
{
    /// <summary>A read of <paramref name="width"/> bytes (1, 2, 4 or 8) at <paramref name="offset"/>; the value in bus order.</summary>
    ulong Read(nuint offset, int width);

    /// <summary>A write of <paramref name="width"/> bytes at <paramref name="offset"/>.</summary>
    void Write(nuint offset, int width, ulong value);
}

/// <summary>A window served by a device model: every access is a call to the model.</summary>
public readonly struct RawDeviceBackend : IRawIoBackend
{
    private readonly IRawDeviceModel _model;
    private readonly nuint _size;

    /// <summary>Serves <paramref name="size"/> bytes of register space with <paramref name="model"/>.</summary>
    public RawDeviceBackend(IRawDeviceModel model, nuint size)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _size = size;
    }

    /// <inheritdoc/>
    public nuint Size => _size;

    /// <summary>The model.</summary>
    public IRawDeviceModel Model => _model;

    /// <inheritdoc/>
    public byte Load8(nuint offset) => (byte)_model.Read(offset, 1);

    /// <inheritdoc/>
    public ushort Load16(nuint offset) => (ushort)_model.Read(offset, 2);

    /// <inheritdoc/>
    public uint Load32(nuint offset) => (uint)_model.Read(offset, 4);

    /// <inheritdoc/>
    public ulong Load64(nuint offset) => _model.Read(offset, 8);

    /// <inheritdoc/>
    public void Store8(nuint offset, byte value) => _model.Write(offset, 1, value);

    /// <inheritdoc/>
    public void Store16(nuint offset, ushort value) => _model.Write(offset, 2, value);

    /// <inheritdoc/>
    public void Store32(nuint offset, uint value) => _model.Write(offset, 4, value);

    /// <inheritdoc/>
    public void Store64(nuint offset, ulong value) => _model.Write(offset, 8, value);
}
