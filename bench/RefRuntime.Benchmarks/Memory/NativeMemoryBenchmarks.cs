using System;
using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Threading;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using DotNext.Buffers;
using DotNext.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Io;
using RefRuntime.Core.Memory;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Sync;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Benchmarks.Memory;

/// <summary>
/// Native memory as the library uses it, beside the BCL's <see cref="NativeMemory"/> and
/// DotNext.Unsafe 6.12 (issue #19: adopt DotNext where it is as fast and fits; docs/memory.md
/// records the decision). One thread, 64 operations per invocation; each category has its own
/// baseline, the path we use today (NativeHeap with poisoning and quarantine off, as in production):
/// <list type="bullet">
/// <item><c>ArcBlock</c>: allocate, touch, free blocks of 48, 64, 96 and 128 bytes, 16-aligned
/// (an Arc header of 48 bytes plus payloads of 0–80 bytes, <see cref="RawArc.Create"/>).</item>
/// <item><c>ReaderRecord</c>: the same for a 64-byte, 64-aligned <see cref="RcuReader"/> record.</item>
/// <item><c>Block4K</c>: a 4 KiB zeroed block, 64-aligned (<see cref="RawIoRegion.Allocate"/>), and
/// DotNext's <see cref="UnmanagedMemoryPool{T}"/> rent/return of the same size.</item>
/// <item><c>BoundsRead</c>: 64 bounds-checked 32-bit reads at run-time offsets in a 4 KiB block:
/// <see cref="GuestMemory.TryTranslate"/> + load (the virtqueue's path) against DotNext's checked
/// indexer and span, with the unchecked <see cref="Pointer{T}"/> and raw pointer as the floor.</item>
/// </list>
/// DotNext cannot take an alignment argument: its owners align to the element type, so the
/// 16- and 64-aligned variants allocate <see cref="Int128"/> and <see cref="Vector512{T}"/>
/// elements (alignment 16 and 64), and the byte variants get whatever malloc gives.
/// </summary>
[MemoryDiagnoser(false)]
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public unsafe class NativeMemoryBenchmarks
{
    private const int Ops = 64;
    private const int BlockSize = 4096;

    // The Arc allocations RawArc.Create makes for payloads of 0, 16, 48 and 80 bytes at align 16.
    private static readonly nuint[] s_arcSizes =
    [
        RawArc.HeaderSize, RawArc.HeaderSize + 16, RawArc.HeaderSize + 48, RawArc.HeaderSize + 80,
    ];

    // Counters laid out as NativeHeap's (two adjacent statics).
    private static long s_allocations;
    private static long s_frees;

    private readonly uint[] _offsets = new uint[Ops];
    private UnmanagedMemoryPool<byte> _pool = null!;
    private GuestMemory _guest = null!;
    private RawIoRegion _io = null!;
    private IUnmanagedMemory<uint> _dotnext = null!;
    private byte* _raw;

    [GlobalSetup]
    public void Setup()
    {
        // Production settings: no poisoning, no quarantine (RR_POISON unset).
        NativeHeap.PoisonOnFree = false;
        NativeHeap.Quarantine = false;
        _pool = new UnmanagedMemoryPool<byte>(BlockSize) { AllocateZeroedMemory = true };
        if (GuestMemory.Create(BlockSize, 0x1000, out GuestMemory? guest) != RrStatus.Ok)
        {
            throw new InvalidOperationException("GuestMemory.Create failed");
        }

        _guest = guest!;
        _io = RawIoRegion.Allocate(BlockSize);
        _dotnext = IUnmanagedMemory<uint>.AllocateZeroed(BlockSize / sizeof(uint));
        _raw = (byte*)NativeMemory.AlignedAlloc(BlockSize, 64);

        // The same words at the same run-time offsets in every block.
        var rng = new Random(19);
        Span<uint> words = _dotnext.Span;
        for (int i = 0; i < words.Length; i++)
        {
            uint w = (uint)rng.Next();
            words[i] = w;
            // SAFETY: i * 4 < BlockSize, inside each freshly allocated block.
            *(uint*)(_guest.HostBase + (i * 4)) = w;
            *(uint*)(_raw + (i * 4)) = w;
            _io.Io.WriteLe32(w, (nuint)(i * 4));
        }

        for (int i = 0; i < Ops; i++)
        {
            _offsets[i] = (uint)rng.Next(BlockSize / sizeof(uint)) * sizeof(uint);
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _pool.Dispose();
        _guest.Destroy();
        _io.Dispose();
        _dotnext.Dispose();
        NativeMemory.AlignedFree(_raw);
    }

    // ---- ArcBlock: 48-128 bytes, 16-aligned, zeroed -------------------------------------------

    [Benchmark(Baseline = true, OperationsPerInvoke = Ops), BenchmarkCategory("ArcBlock")]
    public void ArcBlock_NativeHeap()
    {
        nuint[] sizes = s_arcSizes;
        for (int i = 0; i < Ops; i++)
        {
            nuint size = sizes[i & 3];
            byte* p = (byte*)NativeHeap.AllocZeroed(size, 16);
            // SAFETY: p is a fresh block of at least 48 bytes.
            *p = 1;
            NativeHeap.Free(p, size);
        }
    }

    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("ArcBlock")]
    public void ArcBlock_BclAlignedAlloc()
    {
        nuint[] sizes = s_arcSizes;
        for (int i = 0; i < Ops; i++)
        {
            nuint size = sizes[i & 3];
            byte* p = (byte*)NativeMemory.AlignedAlloc(size, 16);
            // SAFETY: p is a fresh block of size bytes.
            NativeMemory.Clear(p, size);
            *p = 1;
            NativeMemory.AlignedFree(p);
        }
    }

    /// <summary>The BCL call plus the two Interlocked increments NativeHeap makes for its live count: what the counting costs.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("ArcBlock")]
    public void ArcBlock_BclAlignedAllocCounted()
    {
        nuint[] sizes = s_arcSizes;
        for (int i = 0; i < Ops; i++)
        {
            nuint size = sizes[i & 3];
            byte* p = (byte*)NativeMemory.AlignedAlloc(size, 16);
            // SAFETY: p is a fresh block of size bytes.
            NativeMemory.Clear(p, size);
            Interlocked.Increment(ref s_allocations);
            *p = 1;
            Interlocked.Increment(ref s_frees);
            NativeMemory.AlignedFree(p);
        }
    }

    /// <summary>calloc + free: 16-aligned on glibc x86-64, but only by the C library's promise, not the API's.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("ArcBlock")]
    public void ArcBlock_BclAllocZeroed()
    {
        nuint[] sizes = s_arcSizes;
        for (int i = 0; i < Ops; i++)
        {
            byte* p = (byte*)NativeMemory.AllocZeroed(sizes[i & 3]);
            // SAFETY: p is a fresh block of at least 48 bytes.
            *p = 1;
            NativeMemory.Free(p);
        }
    }

    /// <summary>DotNext's owner of <see cref="Int128"/> elements: 16-aligned, zeroed, one managed owner object per block.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("ArcBlock")]
    public void ArcBlock_DotNextOwner()
    {
        nuint[] sizes = s_arcSizes;
        for (int i = 0; i < Ops; i++)
        {
            IUnmanagedMemory<Int128> m = IUnmanagedMemory<Int128>.AllocateZeroed((int)sizes[i & 3] / 16);
            // SAFETY: at least three elements were allocated.
            *(byte*)m.Pointer.Address = 1;
            m.Dispose();
        }
    }

    // ---- ReaderRecord: 64 bytes, 64-aligned, zeroed -------------------------------------------

    [Benchmark(Baseline = true, OperationsPerInvoke = Ops), BenchmarkCategory("ReaderRecord")]
    public void ReaderRecord_NativeHeap()
    {
        for (int i = 0; i < Ops; i++)
        {
            RcuReader* r = (RcuReader*)NativeHeap.AllocZeroed((nuint)sizeof(RcuReader), 64);
            // SAFETY: r is a fresh record.
            r->InUse = 1;
            NativeHeap.Free(r, (nuint)sizeof(RcuReader));
        }
    }

    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("ReaderRecord")]
    public void ReaderRecord_BclAlignedAlloc()
    {
        for (int i = 0; i < Ops; i++)
        {
            RcuReader* r = (RcuReader*)NativeMemory.AlignedAlloc((nuint)sizeof(RcuReader), 64);
            // SAFETY: r is a fresh block of sizeof(RcuReader) bytes.
            NativeMemory.Clear(r, (nuint)sizeof(RcuReader));
            r->InUse = 1;
            NativeMemory.AlignedFree(r);
        }
    }

    /// <summary>DotNext's owner of one <see cref="Vector512{T}"/> (alignment 64): the only way to ask it for 64-byte alignment short of a page.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("ReaderRecord")]
    public void ReaderRecord_DotNextOwner()
    {
        for (int i = 0; i < Ops; i++)
        {
            IUnmanagedMemory<Vector512<byte>> m = IUnmanagedMemory<Vector512<byte>>.AllocateZeroed(1);
            // SAFETY: one 64-byte element, 64-aligned.
            ((RcuReader*)m.Pointer.Address)->InUse = 1;
            m.Dispose();
        }
    }

    /// <summary>DotNext's single-value owner (a struct): not zeroed, aligned to the type's 8 bytes only.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("ReaderRecord")]
    public void ReaderRecord_DotNextValue()
    {
        for (int i = 0; i < Ops; i++)
        {
            var m = new UnmanagedMemory<RcuReader>(default(RcuReader));
            m.Pointer.Value.InUse = 1;
            m.Dispose();
        }
    }

    // ---- Block4K: 4 KiB, 64-aligned, zeroed; DotNext's pool ----------------------------------

    [Benchmark(Baseline = true, OperationsPerInvoke = Ops), BenchmarkCategory("Block4K")]
    public void Block4K_NativeHeap()
    {
        for (int i = 0; i < Ops; i++)
        {
            byte* p = (byte*)NativeHeap.AllocZeroed(BlockSize, 64);
            // SAFETY: p is a fresh 4 KiB block.
            *p = 1;
            NativeHeap.Free(p, BlockSize);
        }
    }

    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("Block4K")]
    public void Block4K_BclAlignedAlloc()
    {
        for (int i = 0; i < Ops; i++)
        {
            byte* p = (byte*)NativeMemory.AlignedAlloc(BlockSize, 64);
            // SAFETY: p is a fresh 4 KiB block.
            NativeMemory.Clear(p, BlockSize);
            *p = 1;
            NativeMemory.AlignedFree(p);
        }
    }

    /// <summary>DotNext's owner of 64 <see cref="Vector512{T}"/> elements: 4 KiB, 64-aligned, zeroed.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("Block4K")]
    public void Block4K_DotNextOwner()
    {
        for (int i = 0; i < Ops; i++)
        {
            IUnmanagedMemory<Vector512<byte>> m = IUnmanagedMemory<Vector512<byte>>.AllocateZeroed(BlockSize / 64);
            // SAFETY: a fresh 4 KiB block.
            *(byte*)m.Pointer.Address = 1;
            m.Dispose();
        }
    }

    /// <summary>
    /// <see cref="UnmanagedMemoryPool{T}"/> with zeroed blocks: despite the name, each Rent
    /// allocates a fresh native block and a managed owner, and returning it frees both.
    /// Alignment is malloc's (16 on glibc x86-64).
    /// </summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("Block4K")]
    public void Block4K_DotNextPoolRent()
    {
        UnmanagedMemoryPool<byte> pool = _pool;
        for (int i = 0; i < Ops; i++)
        {
            IMemoryOwner<byte> owner = pool.Rent(BlockSize);
            // SAFETY: the pool's owners are unmanaged-memory owners of BlockSize bytes.
            *(byte*)((IUnmanagedMemory<byte>)owner).Pointer.Address = 1;
            owner.Dispose();
        }
    }

    /// <summary>DotNext's page-aligned block (not zeroed: cleared here to match).</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("Block4K")]
    public void Block4K_DotNextPageAligned()
    {
        for (int i = 0; i < Ops; i++)
        {
            IMemoryOwner<byte> owner = NativeMemory.AllocatePageAlignedMemory(BlockSize);
            Span<byte> s = owner.Memory.Span;
            s.Clear();
            s[0] = 1;
            owner.Dispose();
        }
    }

    // ---- BoundsRead: 64 checked 32-bit reads at run-time offsets in 4 KiB ----------------------

    [Benchmark(Baseline = true, OperationsPerInvoke = Ops), BenchmarkCategory("BoundsRead")]
    public uint BoundsRead_GuestMemory()
    {
        GuestMemory g = _guest;
        ulong gpa = g.GpaBase;
        uint[] offsets = _offsets;
        uint sum = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            if (g.TryTranslate(gpa + offsets[i], sizeof(uint), out byte* host))
            {
                // SAFETY: TryTranslate checked the 4 bytes lie inside the region.
                sum += *(uint*)host;
            }
        }

        return sum;
    }

    /// <summary>The MMIO window's checked read: bounds, natural alignment, a volatile load.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("BoundsRead")]
    public uint BoundsRead_IoTryRead()
    {
        RawIo<RawMemoryBackend> io = _io.Io;
        uint[] offsets = _offsets;
        uint sum = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            if (io.TryReadLe32(offsets[i], out uint v))
            {
                sum += v;
            }
        }

        return sum;
    }

    /// <summary>DotNext's checked indexer, through the owner interface, per read.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("BoundsRead")]
    public uint BoundsRead_DotNextIndexer()
    {
        IUnmanagedMemory<uint> m = _dotnext;
        uint[] offsets = _offsets;
        uint sum = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            sum += m[(int)(offsets[i] / sizeof(uint))];
        }

        return sum;
    }

    /// <summary>DotNext's span, taken once per invocation: a Span bounds check per read.</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("BoundsRead")]
    public uint BoundsRead_DotNextSpan()
    {
        Span<uint> s = _dotnext.Span;
        uint[] offsets = _offsets;
        uint sum = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            sum += s[(int)(offsets[i] / sizeof(uint))];
        }

        return sum;
    }

    /// <summary>DotNext's <see cref="Pointer{T}"/> indexer: no bounds at all (the floor, with the raw pointer).</summary>
    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("BoundsRead")]
    public uint BoundsRead_DotNextPointerUnchecked()
    {
        Pointer<uint> p = _dotnext.Pointer;
        uint[] offsets = _offsets;
        uint sum = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            sum += p[offsets[i] / sizeof(uint)];
        }

        return sum;
    }

    [Benchmark(OperationsPerInvoke = Ops), BenchmarkCategory("BoundsRead")]
    public uint BoundsRead_RawPointerUnchecked()
    {
        byte* b = _raw;
        uint[] offsets = _offsets;
        uint sum = 0;
        for (int i = 0; i < offsets.Length; i++)
        {
            // SAFETY: every offset is below BlockSize - 4 and 4-aligned (Setup).
            sum += *(uint*)(b + offsets[i]);
        }

        return sum;
    }
}
