// One region of a GuestMemoryMap: a block of host memory (an fd mapped MAP_SHARED, or memory a
// host lends) that guest-physical addresses [Gpa, Gpa + Size) and the front-end's user addresses
// [UserAddr, UserAddr + Size) both name (QEMU docs/interop/vhost-user.rst, "Memory regions
// description" and "Memory access").
//
// Lifetime. The region counts its users with a saturating refcount (Sync/Refcount, refcount_t
// semantics): one reference for the table that lists it, one per pin - a ring part a started
// queue points into, a descriptor chain the device holds. The table's reference is dropped only
// after the region has been unpublished and an RCU grace period has passed (GuestMemoryMap), so
// a translator inside a read-side section always finds the count above zero and may pin. The
// last unpin releases the backing (munmap, or the lender's release callback), on whatever thread
// drops it; nothing of ours points into it afterwards.

using System.Diagnostics;
using System.Threading;
using RefRuntime.Core.Sync;

namespace RefRuntime.Core.Virtio;

/// <summary>The host memory behind a region: where it is, and how to give it back.</summary>
public interface IRegionBacking
{
    /// <summary>The first byte (the region's first guest address maps here).</summary>
    unsafe byte* Host { get; }

    /// <summary>Bytes available at <see cref="Host"/>.</summary>
    ulong Length { get; }

    /// <summary>Gives the memory back (munmap, free); called once, when the last user is gone.</summary>
    void Release();
}

/// <summary>A region of guest memory (see file comment). Thread-safe.</summary>
/// <remarks><b>Invariants:</b> <c>_refs</c> ≥ 1 while the region is listed in a published table or
/// pinned; <see cref="Host"/>..+<see cref="Size"/> is mapped until the count reaches 0.</remarks>
public sealed unsafe class GuestRegion
{
    private readonly IRegionBacking _backing;
    private int _refs;
    private int _released;

    internal GuestRegion(ulong gpa, ulong size, ulong userAddr, ulong mmapOffset, IRegionBacking backing)
    {
        Debug.Assert(backing.Length >= size, "the backing covers the region");
        Gpa = gpa;
        Size = size;
        UserAddr = userAddr;
        MmapOffset = mmapOffset;
        Host = backing.Host;
        _backing = backing;
        // INVARIANT: the table that is about to list it holds the first reference.
        Refcount.Set(ref _refs, 1);
    }

    /// <summary>First guest-physical address.</summary>
    public ulong Gpa { get; }

    /// <summary>Bytes.</summary>
    public ulong Size { get; }

    /// <summary>The front-end's user (virtual) address of the first byte.</summary>
    public ulong UserAddr { get; }

    /// <summary>Offset of the first byte in the file the front-end sent (for REM_MEM_REG matching and diagnostics).</summary>
    public ulong MmapOffset { get; }

    /// <summary>Host address of the first byte.</summary>
    public byte* Host { get; }

    /// <summary>Current references (the table's and the pins).</summary>
    public int References => Refcount.Read(ref _refs);

    /// <summary>Whether the backing has been released (unmapped).</summary>
    public bool IsReleased => Volatile.Read(ref _released) != 0;

    /// <summary>Whether [gpa, gpa + length) lies inside the region (overflow-free).</summary>
    public bool ContainsGpa(ulong gpa, ulong length)
    {
        ulong off = gpa - Gpa;
        return gpa >= Gpa && off < Size && length <= Size - off;
    }

    /// <summary>Whether [uaddr, uaddr + length) lies inside the region's user range (overflow-free).</summary>
    public bool ContainsUser(ulong uaddr, ulong length)
    {
        ulong off = uaddr - UserAddr;
        return uaddr >= UserAddr && off < Size && length <= Size - off;
    }

    /// <summary>Takes a reference. <b>Safety:</b> the caller holds one already, or is inside a read-side
    /// section of the map's domain and found the region in a published table.</summary>
    internal void Pin() => Refcount.Inc(ref _refs);

    /// <summary>Drops a reference; the last one releases the backing.</summary>
    internal void Unpin()
    {
        if (Refcount.DecAndTest(ref _refs))
        {
            // ORDERING: DecAndTest is a full barrier: every access through a pin happens before it.
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _backing.Release();
            }
        }
    }
}
