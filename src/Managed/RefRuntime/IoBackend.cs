// What an MMIO window is made of, in the safe namespace: a backend performs one access of a
// given width at an offset, value in little-endian bus order (docs/mmio.md). Plain memory
// (MemoryBackend, from an IoRegion) or a device model (DeviceBackend over an IDeviceModel).
//
// The window and its checks are RefRuntime.Core's: CoreBackend adapts a backend of this namespace
// to Core's backend interface. Both are structs and every window is generic over them, so a
// bound register access still compiles to one load or store, with no interface call.

using System;
using System.Runtime.CompilerServices;

namespace RefRuntime;

/// <summary>One access at a time, value in little-endian bus order. Offsets are already checked by the window.</summary>
public interface IIoBackend
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
/// Plain memory (an <see cref="IoRegion"/>'s): every access is one volatile, naturally aligned
/// load or store, never torn, merged, repeated or elided.
/// </summary>
public readonly struct MemoryBackend : IIoBackend
{
    private readonly Core.Io.RawMemoryBackend _core;

    internal MemoryBackend(Core.Io.RawMemoryBackend core) => _core = core;

    /// <inheritdoc/>
    public nuint Size => _core.Size;

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Load8(nuint offset) => _core.Load8(offset);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort Load16(nuint offset) => _core.Load16(offset);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Load32(nuint offset) => _core.Load32(offset);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Load64(nuint offset) => _core.Load64(offset);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store8(nuint offset, byte value) => _core.Store8(offset, value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store16(nuint offset, ushort value) => _core.Store16(offset, value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store32(nuint offset, uint value) => _core.Store32(offset, value);

    /// <inheritdoc/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store64(nuint offset, ulong value) => _core.Store64(offset, value);
}

/// <summary>A device model: registers with side effects, given each access's offset, width and value.</summary>
public interface IDeviceModel
{
    /// <summary>A read of <paramref name="width"/> bytes (1, 2, 4 or 8) at <paramref name="offset"/>; the value in bus order.</summary>
    ulong Read(nuint offset, int width);

    /// <summary>A write of <paramref name="width"/> bytes at <paramref name="offset"/>.</summary>
    void Write(nuint offset, int width, ulong value);
}

/// <summary>A window served by a device model (a <see cref="Pl061Model"/>, or your own): every access is a call to the model.</summary>
public readonly struct DeviceBackend : IIoBackend
{
    private readonly IDeviceModel _model;
    private readonly nuint _size;

    /// <summary>Serves <paramref name="size"/> bytes of register space with <paramref name="model"/>.</summary>
    /// <exception cref="ArgumentNullException"><paramref name="model"/> is null.</exception>
    public DeviceBackend(IDeviceModel model, nuint size)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _size = size;
    }

    /// <inheritdoc/>
    public nuint Size => _size;

    /// <summary>The model.</summary>
    public IDeviceModel Model => _model;

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

/// <summary>A backend of this namespace seen through Core's backend interface, so Core's window checks and serves it.</summary>
internal readonly struct CoreBackend<TBackend>(TBackend inner) : Core.Io.IRawIoBackend
    where TBackend : struct, IIoBackend
{
    public readonly TBackend Inner = inner;

    public nuint Size => Inner.Size;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Load8(nuint offset) => Inner.Load8(offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort Load16(nuint offset) => Inner.Load16(offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint Load32(nuint offset) => Inner.Load32(offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Load64(nuint offset) => Inner.Load64(offset);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store8(nuint offset, byte value) => Inner.Store8(offset, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store16(nuint offset, ushort value) => Inner.Store16(offset, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store32(nuint offset, uint value) => Inner.Store32(offset, value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Store64(nuint offset, ulong value) => Inner.Store64(offset, value);
}
