// Register maps: offsets known when a driver is written, checked once instead of on every access
// (the C# counterpart of Rust's build_assert!(offset_valid::<U>(offset, SIZE))).
//
//   sealed class Pl061Map : IRawRegisterMap { public static nuint Size => 0x1000; }
//   static readonly RawReg32<Pl061Map> GPIODIR = new(0x400);   // checked when the type initialises
//   RawMappedIo<Pl061Map, TBackend> regs = io.Bind<Pl061Map>();   // window checked once
//   regs.Write(GPIODIR, 0xff);                               // no check on the hot path
//
// A register belongs to its map's type, so it cannot be used on a window bound to another map.

using System;
using System.Runtime.CompilerServices;

namespace RefRuntime.Core.Io;

/// <summary>A register map: the window size its registers need.</summary>
public interface IRawRegisterMap
{
    /// <summary>Bytes of register space the map's registers lie within.</summary>
    static abstract nuint Size { get; }

    /// <summary>The map's name in error messages; null (the default) means the type's own name.
    /// An adapter (the safe layer's) names the map it stands for.</summary>
    static virtual string? DisplayName => null;
}

/// <summary>An 8-bit register of <typeparamref name="TMap"/>.</summary>
public readonly struct RawReg8<TMap>
    where TMap : IRawRegisterMap
{
    /// <summary>Checks the offset against the map (once, where the register is declared).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The register does not fit the map.</exception>
    public RawReg8(nuint offset)
    {
        RegisterCheck.Fits(offset, 1, TMap.Size, RegisterCheck.NameOf<TMap>());
        Offset = offset;
    }

    /// <summary>The offset.</summary>
    public nuint Offset { get; }
}

/// <summary>A 32-bit register of <typeparamref name="TMap"/>.</summary>
public readonly struct RawReg32<TMap>
    where TMap : IRawRegisterMap
{
    /// <summary>Checks the offset against the map (once, where the register is declared).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The register does not fit the map or is misaligned.</exception>
    public RawReg32(nuint offset)
    {
        RegisterCheck.Fits(offset, 4, TMap.Size, RegisterCheck.NameOf<TMap>());
        Offset = offset;
    }

    /// <summary>The offset.</summary>
    public nuint Offset { get; }
}

/// <summary>A 64-bit register of <typeparamref name="TMap"/>.</summary>
public readonly struct RawReg64<TMap>
    where TMap : IRawRegisterMap
{
    /// <summary>Checks the offset against the map.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The register does not fit the map or is misaligned.</exception>
    public RawReg64(nuint offset)
    {
        RegisterCheck.Fits(offset, 8, TMap.Size, RegisterCheck.NameOf<TMap>());
        Offset = offset;
    }

    /// <summary>The offset.</summary>
    public nuint Offset { get; }
}

internal static class RegisterCheck
{
    public static string NameOf<TMap>()
        where TMap : IRawRegisterMap => TMap.DisplayName ?? typeof(TMap).Name;

    public static void Fits(nuint offset, int width, nuint size, string map)
    {
        if ((offset & (nuint)(width - 1)) != 0 || offset > size || size - offset < (nuint)width)
        {
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"A {width * 8}-bit register at 0x{offset:x} does not fit register map {map} ({size} bytes) or is not {width}-byte aligned.");
        }
    }
}

/// <summary>A window bound to a register map: register accesses carry no check.</summary>
/// <typeparam name="TMap">The map.</typeparam>
/// <typeparam name="TBackend">The backend.</typeparam>
public readonly struct RawMappedIo<TMap, TBackend>
    where TMap : IRawRegisterMap
    where TBackend : struct, IRawIoBackend
{
    private readonly RawIo<TBackend> _io;

    internal RawMappedIo(RawIo<TBackend> io) => _io = io;

    /// <summary>The window (for checked accesses at run-time offsets).</summary>
    public RawIo<TBackend> Io => _io;

    // INVARIANT (all accessors): the register's offset fits TMap.Size (checked when it was
    // constructed) and the window is at least TMap.Size bytes (checked by Bind).

    /// <summary><c>readb</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Read(RawReg8<TMap> r) => _io.UncheckedRead8(r.Offset);

    /// <summary><c>writeb</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(RawReg8<TMap> r, byte value) => _io.UncheckedWrite8(value, r.Offset);

    /// <summary><c>readl</c>: 32-bit little-endian, ordered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadLe32(RawReg32<TMap> r) => _io.UncheckedReadLe32(r.Offset);

    /// <summary><c>readl_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadLe32Relaxed(RawReg32<TMap> r) => _io.UncheckedReadLe32(r.Offset);

    /// <summary><c>ioread32be</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadBe32(RawReg32<TMap> r) => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(_io.UncheckedReadLe32(r.Offset));

    /// <summary><c>writel</c>: 32-bit little-endian, ordered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLe32(RawReg32<TMap> r, uint value) => _io.UncheckedWriteLe32(value, r.Offset);

    /// <summary><c>writel_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLe32Relaxed(RawReg32<TMap> r, uint value) => _io.UncheckedWriteLe32(value, r.Offset);

    /// <summary><c>iowrite32be</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteBe32(RawReg32<TMap> r, uint value) => _io.UncheckedWriteLe32(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value), r.Offset);

    /// <summary><c>readb_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte ReadRelaxed(RawReg8<TMap> r) => _io.UncheckedRead8(r.Offset);

    /// <summary><c>writeb_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteRelaxed(RawReg8<TMap> r, byte value) => _io.UncheckedWrite8(value, r.Offset);

    /// <summary>Relaxed big-endian 32-bit read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadBe32Relaxed(RawReg32<TMap> r) => ReadBe32(r);

    /// <summary>Relaxed big-endian 32-bit write.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteBe32Relaxed(RawReg32<TMap> r, uint value) => WriteBe32(r, value);

    /// <summary><c>readq_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadLe64Relaxed(RawReg64<TMap> r) => _io.UncheckedReadLe64(r.Offset);

    /// <summary><c>writeq_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLe64Relaxed(RawReg64<TMap> r, ulong value) => _io.UncheckedWriteLe64(value, r.Offset);

    /// <summary><c>ioread64be</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadBe64(RawReg64<TMap> r) => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(_io.UncheckedReadLe64(r.Offset));

    /// <summary><c>iowrite64be</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteBe64(RawReg64<TMap> r, ulong value) => _io.UncheckedWriteLe64(System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(value), r.Offset);

    /// <summary><c>readq</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadLe64(RawReg64<TMap> r) => _io.UncheckedReadLe64(r.Offset);

    /// <summary><c>writeq</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLe64(RawReg64<TMap> r, ulong value) => _io.UncheckedWriteLe64(value, r.Offset);
}
