// C handles for objects whose state is managed (a gate, a devres list, a GPIO chip, a virtqueue
// side, ...): generation-checked indices into a handle table, never pointers.
//
// A handle is an opaque 64-bit value that C sees as a pointer but never dereferences:
//
//     bits 63..32  generation: a process-wide counter, bumped by every handle made
//     bits 31..8   slot index (up to 2^24 live handles)
//     bits  7..4   kind (HandleKind)
//     bits  3..0   0xB, so that no aligned pointer (and not NULL) ever looks like a handle
//
// Each slot holds the object and a stamp = generation << 32 | claimed << 8 | kind (kind 0 = free;
// claimed = a destroy is in progress, so that of two threads destroying one handle exactly one
// proceeds while calls with the handle keep working until the destroy succeeds). Resolving a
// handle reads only the table, never memory the handle points at, so that a NULL, stale (freed),
// double-freed, wrong-kind or made-up handle is refused deterministically with RR_EBADHANDLE, and
// a slot that was freed and reused for another object is refused too (it has a new generation).
// Generations are unique across slots, so a live handle with any one bit flipped is refused too
// (an index bit moves it to a slot whose generation differs). The table's segments are allocated
// once and never freed or moved. Aliasing needs 2^32 - 1 handles made in between.
//
// The stamps live in native memory (rr_handle_slot_t: the stamp and a native pointer, 16 bytes),
// reachable from C through rr_handle_table(): the RR_INLINE gate calls check a handle there and
// find the gate's type-stable domain without crossing into .NET (docs/revocation.md). The objects
// stay in managed arrays beside them. Both are allocated once per segment and never freed.

using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading;
using RefRuntime.Core;
using RefRuntime.Core.Memory;

namespace RefRuntime.Native.Exports;

/// <summary>The kinds of C handles (bits 7..4 of a handle); 0 marks a free slot.</summary>
internal enum HandleKind
{
    /// <summary>A free slot.</summary>
    None = 0,

    /// <summary>rr_gate_t.</summary>
    Gate = 1,

    /// <summary>rr_devres_t.</summary>
    Devres = 2,

    /// <summary>rr_pl061_model_t.</summary>
    Pl061Model = 3,

    /// <summary>rr_gpio_chip_t.</summary>
    GpioChip = 4,

    /// <summary>rr_guestmem_t.</summary>
    GuestMem = 5,

    /// <summary>rr_vq_driver_t.</summary>
    VqDriver = 6,

    /// <summary>rr_vq_device_t.</summary>
    VqDevice = 7,

    /// <summary>rr_doorbell_t.</summary>
    Doorbell = 8,

    /// <summary>rr_guestmap_t.</summary>
    GuestMap = 9,
}

/// <summary>The handle table behind every opaque C handle.</summary>
internal static unsafe class ObjectHandle
{
    private const ulong Tag = 0xB;
    private const int SegmentShift = 10;
    private const int SegmentSize = 1 << SegmentShift;
    private const int MaxSegments = 1 << (24 - SegmentShift);
    private const int KindCount = 10;
    private const long ClaimBit = 1L << 8;

    // Segments are published with a release store and never replaced: a resolver that sees one
    // may keep using it without a lock. s_targets[i] is published before s_table[i].
    private static readonly object?[]?[] s_targets = new object?[]?[MaxSegments];
    private static nint s_table; // HandleSlot**: MaxSegments segment pointers (native, never freed)
    private static readonly Queue<int> s_free = new();
    private static readonly long[] s_live = new long[KindCount];
    private static readonly object s_lock = new();
    private static int s_used; // slots ever handed out (the next fresh index)
    private static uint s_generation; // the last generation handed out (0 is never used)

    /// <summary>The native table of segment pointers (rr_handle_table()), allocated on first use; null when that allocation failed.</summary>
    public static HandleSlot** Table
    {
        get
        {
            HandleSlot** t = (HandleSlot**)Volatile.Read(ref s_table);
            if (t == null)
            {
                lock (s_lock)
                {
                    t = EnsureTableLocked();
                }
            }

            return t;
        }
    }

    private static HandleSlot** EnsureTableLocked()
    {
        if (s_table == 0)
        {
            // SAFETY: a zeroed block of MaxSegments pointers, never freed.
            Volatile.Write(ref s_table, (nint)NativeHeap.AllocPermanent((nuint)(MaxSegments * sizeof(nint)), 64));
        }

        return (HandleSlot**)s_table;
    }

    /// <summary>Stores <paramref name="target"/> in a free slot and returns its handle, or NULL when the table is full.</summary>
    /// <param name="target">The object.</param>
    /// <param name="kind">Its kind.</param>
    /// <param name="native">Native memory C may read through the slot (a gate's type-stable domain); it must stay mapped for the life of the process.</param>
    public static void* Alloc(object target, HandleKind kind, void* native = null)
    {
        lock (s_lock)
        {
            HandleSlot** table = EnsureTableLocked();
            if (table == null)
            {
                return null;
            }

            int index;
            if (s_free.Count > 0)
            {
                index = s_free.Dequeue();
            }
            else
            {
                if (s_used == MaxSegments * SegmentSize)
                {
                    return null;
                }

                index = s_used;
                if ((index & (SegmentSize - 1)) == 0)
                {
                    // SAFETY: a zeroed block of SegmentSize slots, never freed.
                    HandleSlot* fresh = (HandleSlot*)NativeHeap.AllocPermanent((nuint)(SegmentSize * sizeof(HandleSlot)), 64);
                    if (fresh == null)
                    {
                        return null;
                    }

                    Volatile.Write(ref s_targets[index >> SegmentShift], new object?[SegmentSize]);
                    Volatile.Write(ref *(nint*)&table[index >> SegmentShift], (nint)fresh);
                }

                s_used++;
            }

            // SAFETY: index is a freed slot's (< s_used) or the next fresh one, whose segment was
            // allocated above; segments are never freed.
            HandleSlot* slot = &table[index >> SegmentShift][index & (SegmentSize - 1)];
            if (++s_generation == 0)
            {
                s_generation = 1;
            }

            ulong generation = s_generation;
            TargetRef(index >> SegmentShift, index & (SegmentSize - 1)) = target;
            slot->Native = (nint)native;
            // The stamp goes last: a resolver that sees it also sees the object and the pointer.
            Volatile.Write(ref slot->Stamp, (long)((generation << 32) | (uint)kind));
            s_live[(int)kind]++;
            return (void*)((generation << 32) | ((ulong)(uint)index << 8) | ((ulong)kind << 4) | Tag);
        }
    }

    /// <summary>
    /// The object behind <paramref name="handle"/>: RR_EINVAL for NULL; RR_EBADHANDLE for anything
    /// that is not a live handle of <paramref name="kind"/>. Lock-free; reads only the table.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static RrStatus Resolve<T>(void* handle, HandleKind kind, out T? target)
        where T : class
    {
        target = null;
        if (handle == null)
        {
            return RrStatus.InvalidArgument;
        }

        if (!TryFind((ulong)handle, kind, out HandleSlot* slot, out int segment, out int offset, out long stamp))
        {
            return RrStatus.BadHandle;
        }

        object? o = Volatile.Read(ref TargetRef(segment, offset));
        // Re-read the stamp: unchanged means the object read in between belongs to this handle (a
        // free changes the stamp before it clears the object; a reuse needs a free first).
        if ((Volatile.Read(ref slot->Stamp) & ~ClaimBit) != stamp)
        {
            return RrStatus.BadHandle;
        }

        target = o as T;
        return target is null ? RrStatus.BadHandle : RrStatus.Ok;
    }

    /// <summary>
    /// Claims <paramref name="handle"/> for a destroy: of several threads destroying one handle,
    /// one gets <see cref="RrStatus.Ok"/> and the others <see cref="RrStatus.BadHandle"/>. Calls
    /// with the handle keep working while it is claimed; end with <see cref="Free"/> (destroyed)
    /// or <see cref="Unclaim"/> (the destroy failed). <see cref="Destroy"/> does all of it.
    /// </summary>
    public static RrStatus Claim<T>(void* handle, HandleKind kind, out T? target)
        where T : class
    {
        target = null;
        if (handle == null)
        {
            return RrStatus.InvalidArgument;
        }

        if (!TryFind((ulong)handle, kind, out HandleSlot* slot, out int segment, out int offset, out long stamp)
            || Interlocked.CompareExchange(ref slot->Stamp, stamp | ClaimBit, stamp) != stamp)
        {
            return RrStatus.BadHandle; // not live, or being destroyed by another thread
        }

        // Claimed: nobody can free the slot now, so the object read is this handle's.
        target = Volatile.Read(ref TargetRef(segment, offset)) as T;
        if (target is null)
        {
            Unclaim(handle, kind);
            return RrStatus.BadHandle;
        }

        return RrStatus.Ok;
    }

    /// <summary>
    /// The destroy of every opaque handle: claims it, runs <paramref name="destroy"/> on its
    /// object, then frees the handle if that returned <see cref="RrStatus.Ok"/> and gives the
    /// claim back otherwise (the object stays usable, e.g. a gate with a call in flight).
    /// </summary>
    public static RrStatus Destroy<T>(void* handle, HandleKind kind, Func<T, RrStatus> destroy)
        where T : class
    {
        RrStatus s = Claim(handle, kind, out T? target);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        try
        {
            s = destroy(target!);
        }
        catch
        {
            Unclaim(handle, kind);
            throw;
        }

        if (s == RrStatus.Ok)
        {
            Free(handle, kind);
        }
        else
        {
            Unclaim(handle, kind);
        }

        return s;
    }

    /// <summary>Gives up a claim taken by <see cref="Claim"/> (the object is still live).</summary>
    public static void Unclaim(void* handle, HandleKind kind)
    {
        if (TryFind((ulong)handle, kind, out HandleSlot* slot, out _, out _, out long stamp))
        {
            Interlocked.CompareExchange(ref slot->Stamp, stamp, stamp | ClaimBit);
        }
    }

    /// <summary>
    /// Frees the slot of a handle claimed by <see cref="Claim"/> (marking it free, so that the
    /// handle and every copy of it are refused from now on; a reuse gets a new generation).
    /// False when it was not a claimed live handle of <paramref name="kind"/>.
    /// </summary>
    public static bool Free(void* handle, HandleKind kind)
    {
        if (!TryFind((ulong)handle, kind, out HandleSlot* slot, out int segment, out int offset, out long stamp))
        {
            return false;
        }

        long dead = (long)((ulong)stamp & 0xFFFF_FFFF_0000_0000UL); // kind None: no handle matches
        if (Interlocked.CompareExchange(ref slot->Stamp, dead, stamp | ClaimBit) != (stamp | ClaimBit))
        {
            return false; // not claimed by the caller
        }

        lock (s_lock)
        {
            TargetRef(segment, offset) = null;
            s_free.Enqueue((int)(((ulong)handle >> 8) & 0xFF_FFFF));
            s_live[(int)kind]--;
        }

        return true;
    }

    /// <summary>Live handles of every kind (the leak diagnostics).</summary>
    public static long LiveCount()
    {
        lock (s_lock)
        {
            long n = 0;
            foreach (long c in s_live)
            {
                n += c;
            }

            return n;
        }
    }

    /// <summary>One line naming the live handles by kind, e.g. "2 rr_gate_t, 1 rr_vq_driver_t"; empty when none.</summary>
    public static string Describe()
    {
        var sb = new StringBuilder();
        lock (s_lock)
        {
            for (int k = 1; k < KindCount; k++)
            {
                if (s_live[k] != 0)
                {
                    sb.Append(sb.Length == 0 ? string.Empty : ", ").Append(s_live[k]).Append(' ').Append(CName((HandleKind)k));
                }
            }
        }

        return sb.ToString();
    }

    private static string CName(HandleKind kind) => kind switch
    {
        HandleKind.Gate => "rr_gate_t",
        HandleKind.Devres => "rr_devres_t",
        HandleKind.Pl061Model => "rr_pl061_model_t",
        HandleKind.GpioChip => "rr_gpio_chip_t",
        HandleKind.GuestMem => "rr_guestmem_t",
        HandleKind.VqDriver => "rr_vq_driver_t",
        HandleKind.VqDevice => "rr_vq_device_t",
        HandleKind.Doorbell => "rr_doorbell_t",
        HandleKind.GuestMap => "rr_guestmap_t",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    // The object cell of a slot TryFind found or Alloc handed out (its segment's array exists).
    // Without bounds checks: segment < MaxSegments and offset < SegmentSize by construction.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ref object? TargetRef(int segment, int offset)
    {
        object?[] targets = Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(s_targets), segment)!;
        return ref Unsafe.Add(ref MemoryMarshal.GetArrayDataReference(targets), offset);
    }

    // Decodes a handle and checks its tag, kind, index and current stamp.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool TryFind(ulong h, HandleKind kind, out HandleSlot* slot, out int segment, out int offset, out long stamp)
    {
        slot = null;
        segment = 0;
        offset = 0;
        stamp = (long)((h & 0xFFFF_FFFF_0000_0000UL) | (uint)kind);
        HandleSlot** table = (HandleSlot**)Volatile.Read(ref s_table);
        if ((h & 0xFF) != (((ulong)kind << 4) | Tag) || table == null)
        {
            return false;
        }

        uint index = (uint)(h >> 8) & 0xFF_FFFF;
        segment = (int)(index >> SegmentShift);
        // SAFETY: segment < MaxSegments (a 24-bit index); the table has MaxSegments entries.
        HandleSlot* seg = (HandleSlot*)Volatile.Read(ref *(nint*)&table[segment]);
        if (seg == null)
        {
            return false;
        }

        offset = (int)(index & (SegmentSize - 1));
        // SAFETY: offset < SegmentSize, the segment's length; segments are never freed.
        slot = &seg[offset];
        return (Volatile.Read(ref slot->Stamp) & ~ClaimBit) == stamp;
    }
}

/// <summary>One slot of the native handle table (rr_handle_slot_t in refruntime.h, 16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct HandleSlot
{
    /// <summary>generation &lt;&lt; 32 | claimed &lt;&lt; 8 | kind; kind 0 = free.</summary>
    public long Stamp;

    /// <summary>Native memory for the RR_INLINE paths (a gate's domain state), or 0.</summary>
    public nint Native;
}
