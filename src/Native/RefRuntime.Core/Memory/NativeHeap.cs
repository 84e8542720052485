// The native allocator behind every RefRuntime object: aligned, zeroed, counted, poisoned on free.
//
// Counting gives the library its own leak report (objects still live at shutdown) and lets the
// stress tests check "every allocation freed exactly once". Poisoning overwrites a freed block
// so that a use-after-free reads an unmistakable pattern instead of plausible stale data; the
// quarantine knob (tests, torture runs) keeps poisoned blocks mapped until asked to release them,
// so a stale access is observed as poison rather than as a crash or as someone else's data.

using System;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Threading;

namespace RefRuntime.Core.Memory;

/// <summary>Counted, aligned native allocations with poison-on-free (see file comment).</summary>
public static unsafe class NativeHeap
{
    /// <summary>The byte written over freed memory when <see cref="PoisonOnFree"/> is on.</summary>
    public const byte PoisonByte = 0xDB;

    private static long s_allocations;
    private static long s_frees;
    private static int s_poison = Environment.GetEnvironmentVariable("RR_POISON") == "1" ? 1 : 0;
    private static int s_quarantine;
    private static readonly ConcurrentQueue<nint> s_quarantined = new();

    /// <summary>Blocks allocated since start and not yet freed.</summary>
    public static long LiveCount => Interlocked.Read(ref s_allocations) - Interlocked.Read(ref s_frees);

    /// <summary>Blocks allocated since start.</summary>
    public static long AllocationCount => Interlocked.Read(ref s_allocations);

    /// <summary>Blocks freed since start.</summary>
    public static long FreeCount => Interlocked.Read(ref s_frees);

    /// <summary>
    /// Whether <see cref="Free"/> fills the whole block with <see cref="PoisonByte"/> (off by
    /// default: it costs a memset per free; RR_POISON=1 in the environment turns it on).
    /// </summary>
    public static bool PoisonOnFree
    {
        get => Volatile.Read(ref s_poison) != 0;
        set => Volatile.Write(ref s_poison, value ? 1 : 0);
    }

    /// <summary>
    /// Whether freed blocks are kept (poisoned) instead of released, until
    /// <see cref="ReleaseQuarantine"/>. For tests and torture runs: memory grows without bound.
    /// </summary>
    public static bool Quarantine
    {
        get => Volatile.Read(ref s_quarantine) != 0;
        set => Volatile.Write(ref s_quarantine, value ? 1 : 0);
    }

    /// <summary>Allocates <paramref name="size"/> zeroed bytes aligned to <paramref name="align"/> (a power of two).</summary>
    /// <param name="size">Bytes; at least 1.</param>
    /// <param name="align">Alignment, a power of two.</param>
    /// <returns>The block, or <see langword="null"/> when the allocation failed.</returns>
    public static void* AllocZeroed(nuint size, nuint align)
    {
        void* p = AllocPermanent(size, align);
        if (p != null)
        {
            Interlocked.Increment(ref s_allocations);
        }

        return p;
    }

    /// <summary>
    /// Allocates <paramref name="size"/> zeroed bytes that are never freed and not counted in
    /// <see cref="LiveCount"/>: process-lifetime structures that C code may read at any time (the
    /// C handle table, the domains of type-stable gates). Not a leak, so not in the leak count.
    /// </summary>
    /// <param name="size">Bytes; at least 1.</param>
    /// <param name="align">Alignment, a power of two.</param>
    /// <returns>The block, or <see langword="null"/> when the allocation failed.</returns>
    public static void* AllocPermanent(nuint size, nuint align)
    {
        void* p;
        try
        {
            p = NativeMemory.AlignedAlloc(size, align);
        }
        catch (OutOfMemoryException)
        {
            return null;
        }

        // SAFETY: p is a fresh block of size bytes.
        NativeMemory.Clear(p, size);
        return p;
    }

    /// <summary>Frees a block from <see cref="AllocZeroed"/>, poisoning it first if asked.</summary>
    /// <param name="block">The block.</param>
    /// <param name="size">Its size, as allocated.</param>
    /// <remarks><b>Safety:</b> <paramref name="block"/> came from <see cref="AllocZeroed"/> with
    /// <paramref name="size"/>, and is freed once.</remarks>
    public static void Free(void* block, nuint size)
    {
        bool quarantine = Quarantine;
        if (quarantine || PoisonOnFree)
        {
            // SAFETY: the caller's contract: block is a live allocation of size bytes.
            NativeMemory.Fill(block, size, PoisonByte);
        }

        Interlocked.Increment(ref s_frees);
        if (quarantine)
        {
            s_quarantined.Enqueue((nint)block);
        }
        else
        {
            NativeMemory.AlignedFree(block);
        }
    }

    /// <summary>Releases every quarantined block. Call only when no stale pointer will be read again.</summary>
    /// <returns>How many blocks were released.</returns>
    public static int ReleaseQuarantine()
    {
        int n = 0;
        while (s_quarantined.TryDequeue(out nint p))
        {
            NativeMemory.AlignedFree((void*)p);
            n++;
        }

        return n;
    }
}
