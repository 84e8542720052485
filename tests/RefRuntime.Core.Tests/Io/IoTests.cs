using System;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Io;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Revoke;
using Xunit;

namespace RefRuntime.Core.Tests.Io;

/// <summary>MMIO windows (docs/mmio.md): byte order per width, offset checks, register maps, device dispatch.</summary>
public sealed unsafe class IoTests
{
    public sealed class TestMap : IRawRegisterMap
    {
        public static nuint Size => 0x100;
    }

    private static readonly RawReg32<TestMap> Ctrl = new(0x00);
    private static readonly RawReg32<TestMap> Status = new(0x04);
    private static readonly RawReg64<TestMap> Counter = new(0x08);
    private static readonly RawReg8<TestMap> Byte = new(0xFF);

    // Every width, both byte orders: the bytes in memory are what the name says.
    [Fact]
    public void Accessors_EachWidthAndByteOrder_LayBytesAsNamed()
    {
        using var region = RawIoRegion.Allocate(64);
        RawIo<RawMemoryBackend> io = region.Io;
        byte* mem = io.Backend.Base;
        Assert.True(io.TryWriteLe32(0x11223344, 0));
        Assert.Equal(new byte[] { 0x44, 0x33, 0x22, 0x11 }, new ReadOnlySpan<byte>(mem, 4).ToArray());
        Assert.True(io.TryReadBe32(0, out uint be));
        Assert.Equal(0x44332211u, be);
        Assert.True(io.TryWriteBe32(0x11223344, 4));
        Assert.Equal(new byte[] { 0x11, 0x22, 0x33, 0x44 }, new ReadOnlySpan<byte>(mem + 4, 4).ToArray());
        Assert.True(io.TryWriteLe16(0xA1B2, 8));
        Assert.Equal(new byte[] { 0xB2, 0xA1 }, new ReadOnlySpan<byte>(mem + 8, 2).ToArray());
        Assert.True(io.TryReadBe16(8, out ushort h));
        Assert.Equal(0xB2A1, h);
        Assert.True(io.TryWriteBe64(0x0102030405060708, 16));
        Assert.Equal(new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 }, new ReadOnlySpan<byte>(mem + 16, 8).ToArray());
        Assert.True(io.TryReadLe64(16, out ulong q));
        Assert.Equal(0x0807060504030201UL, q);
        Assert.True(io.TryWrite8(0xEE, 63));
        Assert.True(io.TryRead8(63, out byte b));
        Assert.Equal(0xEE, b);
        // Relaxed forms at every width and byte order access the same bytes as the ordered ones.
        Assert.True(io.TryWrite8Relaxed(0x5A, 40));
        Assert.True(io.TryRead8Relaxed(40, out byte rb) && rb == 0x5A);
        Assert.True(io.TryWriteBe16Relaxed(0x1234, 42));
        Assert.True(io.TryReadLe16Relaxed(42, out ushort rh) && rh == 0x3412);
        Assert.True(io.TryWriteLe64Relaxed(0x1122334455667788, 48));
        Assert.True(io.TryReadBe64Relaxed(48, out ulong rq) && rq == 0x8877665544332211);
        Assert.True(io.TryWriteBe32Relaxed(0xA0B0C0D0, 56));
        Assert.True(io.TryReadBe32Relaxed(56, out uint rw) && rw == 0xA0B0C0D0);
        Assert.True(io.TryReadLe16(42, out ushort oh) && oh == rh);
        // Relaxed and ordered see the same values.
        Assert.True(io.TryReadLe32Relaxed(0, out uint r));
        Assert.Equal(io.ReadLe32(0), r);
        Assert.True(io.TryWriteLe32Relaxed(7, 0));
        Assert.Equal(7u, io.ReadLe32(0));
    }

    // Offsets: out of bounds, straddling the end, misaligned and overflowing are refused, with no access.
    [Theory]
    [InlineData(64, 4)]     // past the end
    [InlineData(62, 4)]     // straddles the end
    [InlineData(2, 4)]      // misaligned
    [InlineData(4, 8)]      // misaligned for 64-bit
    [InlineData(ulong.MaxValue - 1, 4)] // offset + width overflows
    [InlineData(ulong.MaxValue, 1)]
    public void Accessors_BadOffset_RefusedWithoutAccess(ulong offset, int width)
    {
        using var region = RawIoRegion.Allocate(64);
        RawIo<RawMemoryBackend> io = region.Io;
        nuint o = (nuint)offset;
        bool ok = width switch
        {
            1 => io.TryWrite8(0xFF, o),
            4 => io.TryWriteLe32(0xFFFFFFFF, o),
            _ => io.TryWriteLe64(ulong.MaxValue, o),
        };
        Assert.False(ok);
        for (nuint i = 0; i < 64; i += 8)
        {
            Assert.True(io.TryReadLe64(i, out ulong v));
            Assert.Equal(0UL, v); // nothing was written anywhere
        }

        Assert.False(io.TryReadLe32(o, out uint r) && width == 4);
        Assert.Equal(0u, r);
        Assert.Throws<ArgumentOutOfRangeException>(() => io.ReadLe32(66));
        Assert.Throws<ArgumentOutOfRangeException>(() => io.WriteLe32(1, 63));
    }

    // Register maps: checked where declared and once when bound; the bound accessors need no check.
    [Fact]
    public void RegisterMap_CheckedAtDeclarationAndBind()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new RawReg32<TestMap>(0x100));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RawReg32<TestMap>(0x02));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RawReg64<TestMap>(0xFC));
        using var small = RawIoRegion.Allocate(0x80);
        Assert.Throws<ArgumentException>(() => small.Io.Bind<TestMap>());
        using var region = RawIoRegion.Allocate(0x100);
        RawMappedIo<TestMap, RawMemoryBackend> regs = region.Io.Bind<TestMap>();
        regs.WriteLe32(Ctrl, 0xCAFEF00D);
        regs.WriteBe32(Status, 0x01020304);
        regs.WriteLe64(Counter, 42);
        regs.Write(Byte, 7);
        Assert.Equal(0xCAFEF00D, regs.ReadLe32(Ctrl));
        Assert.Equal(0x04030201u, regs.ReadLe32(Status));
        Assert.Equal(0x01020304u, regs.ReadBe32(Status));
        Assert.Equal(42UL, regs.ReadLe64(Counter));
        Assert.Equal(7, regs.Read(Byte));
        Assert.Equal(regs.ReadLe32(Ctrl), regs.ReadLe32Relaxed(Ctrl));
        regs.WriteBe64(Counter, 0x0102030405060708);
        Assert.Equal(0x0807060504030201UL, regs.ReadLe64Relaxed(Counter));
        Assert.Equal(0x0102030405060708UL, regs.ReadBe64(Counter));
        regs.WriteRelaxed(Byte, 9);
        Assert.Equal(9, regs.ReadRelaxed(Byte));
        regs.WriteBe32Relaxed(Status, 0xAABBCCDD);
        Assert.Equal(0xAABBCCDDu, regs.ReadBe32Relaxed(Status));
    }

    /// <summary>A device with side effects: read-to-clear, write-1-to-clear, an address-masked data register.</summary>
    private sealed class SideEffectDevice : IRawDeviceModel
    {
        public readonly List<string> Trace = new();
        public uint Events = 0b1011;   // 0x00: read-to-clear
        public uint Status = 0b1111;   // 0x04: write-1-to-clear
        public uint Data;              // 0x100..0x1FC: bits [9:2] of the offset mask the access

        public ulong Read(nuint offset, int width)
        {
            Trace.Add($"R{width * 8} 0x{offset:x}");
            switch (offset)
            {
                case 0x00:
                    uint e = Events;
                    Events = 0;
                    return e;
                case 0x04:
                    return Status;
                case >= 0x100 and < 0x200:
                    return Data & (uint)((offset - 0x100) >> 2);
                default:
                    return 0;
            }
        }

        public void Write(nuint offset, int width, ulong value)
        {
            Trace.Add($"W{width * 8} 0x{offset:x}=0x{value:x}");
            switch (offset)
            {
                case 0x04:
                    Status &= ~(uint)value;
                    break;
                case >= 0x100 and < 0x200:
                    uint mask = (uint)((offset - 0x100) >> 2);
                    Data = (Data & ~mask) | ((uint)value & mask);
                    break;
            }
        }
    }

    public sealed class DevMap : IRawRegisterMap
    {
        public static nuint Size => 0x200;
    }

    private static readonly RawReg32<DevMap> Events = new(0x00);
    private static readonly RawReg32<DevMap> W1c = new(0x04);

    // The same driver code, written once against RawMappedIo<DevMap, T>, runs over a device model.
    private static (uint First, uint Second, uint StatusAfter) Driver<T>(RawMappedIo<DevMap, T> regs)
        where T : struct, IRawIoBackend
    {
        uint first = regs.ReadLe32(Events);
        uint second = regs.ReadLe32(Events);
        regs.WriteLe32(W1c, 0b0101);
        return (first, second, regs.ReadLe32(W1c));
    }

    [Fact]
    public void DeviceWindow_SideEffects_DispatchedPerAccessWithExactTrace()
    {
        var dev = new SideEffectDevice();
        var io = new RawIo<RawDeviceBackend>(new RawDeviceBackend(dev, 0x200));
        (uint first, uint second, uint status) = Driver(io.Bind<DevMap>());
        Assert.Equal(0b1011u, first);
        Assert.Equal(0u, second); // read-to-clear
        Assert.Equal(0b1010u, status); // write-1-to-clear
        // Address-masked data: bits [9:2] of the offset select the bits written and read.
        Assert.True(io.TryWriteLe32(0xFF, 0x100 + (0x0F << 2)));
        Assert.Equal(0x0Fu, dev.Data);
        Assert.True(io.TryReadLe32(0x100 + (0x03 << 2), out uint masked));
        Assert.Equal(0x03u, masked);
        Assert.Equal(
            new[] { "R32 0x0", "R32 0x0", "W32 0x4=0x5", "R32 0x4", "W32 0x13c=0xff", "R32 0x10c" },
            dev.Trace);
        // Checked accessors still refuse bad offsets before the model sees them.
        Assert.False(io.TryReadLe32(0x1FE, out _));
        Assert.Equal(6, dev.Trace.Count);
        // The same driver over plain memory.
        using var region = RawIoRegion.Allocate(0x200);
        region.Io.TryWriteLe32(9, 0);
        Assert.Equal((9u, 9u, 5u), Driver(region.Io.Bind<DevMap>())); // plain memory: no side effects
    }

    // Concurrent readers and a writer of a 64-bit register never see a torn value.
    [Fact]
    [Trait("Category", "Stress")]
    public void ConcurrentAccess_NeverTorn()
    {
        using var region = RawIoRegion.Allocate(64);
        RawIo<RawMemoryBackend> io = region.Io;
        int stop = 0;
        long torn = 0, reads = 0;
        var readers = new Thread[2];
        for (int t = 0; t < readers.Length; t++)
        {
            readers[t] = new Thread(() =>
            {
                long n = 0;
                do
                {
                    io.TryReadLe64(8, out ulong v);
                    if (v != 0 && v != ulong.MaxValue && v != 0x5555_5555_5555_5555)
                    {
                        Interlocked.Increment(ref torn);
                    }

                    n++;
                }
                while (Volatile.Read(ref stop) == 0); // at least one read, however late the thread starts

                Interlocked.Add(ref reads, n);
            });
            readers[t].Start();
        }

        for (int i = 0; i < 2_000_000; i++)
        {
            io.TryWriteLe64((i & 1) == 0 ? ulong.MaxValue : 0x5555_5555_5555_5555, 8);
        }

        Volatile.Write(ref stop, 1);
        foreach (Thread t in readers)
        {
            t.Join();
        }

        Assert.Equal(0, torn);
        Assert.True(reads > 0);
    }

    // Regions: pinned arrays and wrapped memory; misaligned or empty memory refused; disposed regions refuse.
    [Fact]
    public void IoRegion_PinWrapDispose()
    {
        var words = new ulong[4];
        using (var pinned = RawIoRegion.Pin(words))
        {
            pinned.Io.TryWriteLe32(0xAABBCCDD, 8);
            Assert.Equal(0xAABBCCDDUL, words[1]);
        }

        ulong backing = 0;
        Assert.Equal(RrStatus.Ok, RawIoRegion.TryWrap(&backing, 8, out RawIoRegion? wrapped));
        wrapped!.Io.TryWriteLe64(77, 0);
        Assert.Equal(77UL, backing);
        wrapped.Dispose();
        Assert.Equal(RrStatus.InvalidArgument, RawIoRegion.TryWrap((byte*)&backing + 1, 4, out _));
        Assert.Equal(RrStatus.InvalidArgument, RawIoRegion.TryWrap(null, 4, out _));
        Assert.Equal(RrStatus.InvalidArgument, RawIoRegion.TryWrap(&backing, 0, out _));
        Assert.Throws<ArgumentException>(() => RawIoRegion.Pin(Array.Empty<ulong>()));
        var r = RawIoRegion.Allocate(16);
        r.Dispose();
        r.Dispose();
        Assert.True(r.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => r.Io);
    }

    // A revocable window: after revocation every access fails cleanly and the region is released once.
    [Fact]
    public void RevocableWindow_AfterRevoke_AccessFailsAndRegionReleased()
    {
        using var domain = new RawRcuDomain();
        var region = RawIoRegion.Allocate(64);
        var window = new RawRevocable<RawIoRegion>(domain, region);
        RawIoRegion? inside = window.TryAccess(out RcuReader* rec);
        Assert.NotNull(inside);
        Assert.True(inside!.Io.TryWriteLe32(5, 0));
        RawRcuDomain.ReadUnlock(rec);
        Assert.Equal(RrStatus.Ok, window.Revoke(out bool did));
        Assert.True(did);
        Assert.True(region.IsDisposed); // released by the revocation (IDisposable)
        Assert.Null(window.TryAccess(out _));
    }
}
