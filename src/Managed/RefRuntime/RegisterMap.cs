// Register maps: offsets known when a driver is written, checked once instead of on every access
// (the C# counterpart of Rust's build_assert!(offset_valid::<U>(offset, SIZE)); docs/mmio.md).
//
//   sealed class Pl061Map : IRegisterMap { public static nuint Size => 0x1000; }
//   static readonly Reg32<Pl061Map> GPIODIR = new(0x400);    // checked when the field initialises
//   MappedIo<Pl061Map, MemoryBackend> regs = region.Io.Bind<Pl061Map>();   // window checked once
//   regs.WriteLe32(GPIODIR, 0xff);                           // no check on the hot path
//
// A register belongs to its map's type, so it cannot be used on a window bound to another map.
// Each register holds Core's register for the adapter RegisterMapOf<TMap>, built (and checked)
// once, so an access hands Core a proof it already has.

using System.Runtime.CompilerServices;

namespace RefRuntime;

/// <summary>A register map: the window size its registers need.</summary>
public interface IRegisterMap
{
    /// <summary>Bytes of register space the map's registers lie within.</summary>
    static abstract nuint Size { get; }
}

/// <summary>An 8-bit register of <typeparamref name="TMap"/>.</summary>
/// <typeparam name="TMap">The register map.</typeparam>
public readonly struct Reg8<TMap>
    where TMap : IRegisterMap
{
    internal readonly Core.Io.RawReg8<RegisterMapOf<TMap>> Raw;

    /// <summary>Checks the offset against the map (once, where the register is declared).</summary>
    /// <exception cref="System.ArgumentOutOfRangeException">The register does not fit the map.</exception>
    public Reg8(nuint offset) => Raw = new(offset);

    /// <summary>The offset.</summary>
    public nuint Offset => Raw.Offset;
}

/// <summary>A 32-bit register of <typeparamref name="TMap"/>.</summary>
/// <typeparam name="TMap">The register map.</typeparam>
public readonly struct Reg32<TMap>
    where TMap : IRegisterMap
{
    internal readonly Core.Io.RawReg32<RegisterMapOf<TMap>> Raw;

    /// <summary>Checks the offset against the map (once, where the register is declared).</summary>
    /// <exception cref="System.ArgumentOutOfRangeException">The register does not fit the map or is misaligned.</exception>
    public Reg32(nuint offset) => Raw = new(offset);

    /// <summary>The offset.</summary>
    public nuint Offset => Raw.Offset;
}

/// <summary>A 64-bit register of <typeparamref name="TMap"/>.</summary>
/// <typeparam name="TMap">The register map.</typeparam>
public readonly struct Reg64<TMap>
    where TMap : IRegisterMap
{
    internal readonly Core.Io.RawReg64<RegisterMapOf<TMap>> Raw;

    /// <summary>Checks the offset against the map (once, where the register is declared).</summary>
    /// <exception cref="System.ArgumentOutOfRangeException">The register does not fit the map or is misaligned.</exception>
    public Reg64(nuint offset) => Raw = new(offset);

    /// <summary>The offset.</summary>
    public nuint Offset => Raw.Offset;
}

/// <summary>A window bound to a register map: register accesses carry no check.</summary>
/// <typeparam name="TMap">The map.</typeparam>
/// <typeparam name="TBackend">The backend.</typeparam>
public readonly struct MappedIo<TMap, TBackend>
    where TMap : IRegisterMap
    where TBackend : struct, IIoBackend
{
    private readonly Core.Io.RawMappedIo<RegisterMapOf<TMap>, CoreBackend<TBackend>> _raw;

    internal MappedIo(Core.Io.RawMappedIo<RegisterMapOf<TMap>, CoreBackend<TBackend>> raw) => _raw = raw;

    /// <summary>The window (for checked accesses at run-time offsets).</summary>
    public Io<TBackend> Io => new(_raw.Io);

    /// <summary><c>readb</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte Read(Reg8<TMap> r) => _raw.Read(r.Raw);

    /// <summary><c>writeb</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(Reg8<TMap> r, byte value) => _raw.Write(r.Raw, value);

    /// <summary><c>readb_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte ReadRelaxed(Reg8<TMap> r) => _raw.ReadRelaxed(r.Raw);

    /// <summary><c>writeb_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteRelaxed(Reg8<TMap> r, byte value) => _raw.WriteRelaxed(r.Raw, value);

    /// <summary><c>readl</c>: 32-bit little-endian, ordered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadLe32(Reg32<TMap> r) => _raw.ReadLe32(r.Raw);

    /// <summary><c>readl_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadLe32Relaxed(Reg32<TMap> r) => _raw.ReadLe32Relaxed(r.Raw);

    /// <summary><c>ioread32be</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadBe32(Reg32<TMap> r) => _raw.ReadBe32(r.Raw);

    /// <summary>Relaxed big-endian 32-bit read.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint ReadBe32Relaxed(Reg32<TMap> r) => _raw.ReadBe32Relaxed(r.Raw);

    /// <summary><c>writel</c>: 32-bit little-endian, ordered.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLe32(Reg32<TMap> r, uint value) => _raw.WriteLe32(r.Raw, value);

    /// <summary><c>writel_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLe32Relaxed(Reg32<TMap> r, uint value) => _raw.WriteLe32Relaxed(r.Raw, value);

    /// <summary><c>iowrite32be</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteBe32(Reg32<TMap> r, uint value) => _raw.WriteBe32(r.Raw, value);

    /// <summary>Relaxed big-endian 32-bit write.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteBe32Relaxed(Reg32<TMap> r, uint value) => _raw.WriteBe32Relaxed(r.Raw, value);

    /// <summary><c>readq</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadLe64(Reg64<TMap> r) => _raw.ReadLe64(r.Raw);

    /// <summary><c>readq_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadLe64Relaxed(Reg64<TMap> r) => _raw.ReadLe64Relaxed(r.Raw);

    /// <summary><c>ioread64be</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong ReadBe64(Reg64<TMap> r) => _raw.ReadBe64(r.Raw);

    /// <summary><c>writeq</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLe64(Reg64<TMap> r, ulong value) => _raw.WriteLe64(r.Raw, value);

    /// <summary><c>writeq_relaxed</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteLe64Relaxed(Reg64<TMap> r, ulong value) => _raw.WriteLe64Relaxed(r.Raw, value);

    /// <summary><c>iowrite64be</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void WriteBe64(Reg64<TMap> r, ulong value) => _raw.WriteBe64(r.Raw, value);
}

/// <summary>A register map of this namespace seen through Core's map interface; messages name <typeparamref name="TMap"/>.</summary>
internal sealed class RegisterMapOf<TMap> : Core.Io.IRawRegisterMap
    where TMap : IRegisterMap
{
    public static nuint Size => TMap.Size;

    public static string? DisplayName => typeof(TMap).Name;
}
