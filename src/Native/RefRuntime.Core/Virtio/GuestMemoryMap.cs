// The device's view of guest memory when it lives in another process: a table of regions, each
// host memory mapped from a descriptor the front-end sent (QEMU docs/interop/vhost-user.rst,
// VHOST_USER_SET_MEM_TABLE, _ADD_MEM_REG, _REM_MEM_REG; the role of rust-vmm vm-memory's
// GuestMemoryMmap and of Linux vringh's iotlb ranges).
//
// Design. The table is an immutable array of GuestRegion sorted by guest address, published
// through one reference (RCU-style: readers load it inside a read-side section of the map's own
// RawRcuDomain; writers build a new array under a lock and swap it in). Translating a descriptor
// happens inside a section: find the region (binary search), check the whole range, and pin the
// region for as long as the chain is held (GuestRegion's refcount). A writer that removes or
// replaces regions unpublishes them, waits one grace period (RawRcuDomain.Synchronize: every
// translator that could still see the old table has left its section, having pinned what it
// uses), then drops the table's reference. A region is unmapped when its count reaches zero: at
// once if nothing was pinned, otherwise when the last chain or ring that uses it lets go.
//
// Why it is correct. A pin is taken only inside a section on a region found in a published table;
// the table's reference outlives every such section (it is dropped after the grace period), so a
// pin never starts from zero and never races with the release. Host pointers handed out are
// bounded by the region (ContainsGpa / ContainsUser, overflow-free) and stay valid while pinned.
//
// Validation (the front-end is untrusted): a region must be non-empty, may not wrap the 64-bit
// guest or user space, and may not overlap another region in either space; at most MaxRegions.

using System;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Rcu;

namespace RefRuntime.Core.Virtio;

/// <summary>Which address space a ring or buffer address is in.</summary>
public enum GuestAddressSpace
{
    /// <summary>Guest-physical addresses (descriptors, virtio-mmio/pci ring registers).</summary>
    GuestPhysical = 0,

    /// <summary>The front-end's user (virtual) addresses (vhost-user SET_VRING_ADDR).</summary>
    FrontEndUser = 1,
}

/// <summary>One region as a front-end describes it, before it is mapped.</summary>
/// <param name="Gpa">First guest-physical address.</param>
/// <param name="Size">Bytes.</param>
/// <param name="UserAddr">The front-end's user address of the first byte.</param>
/// <param name="MmapOffset">Offset of the first byte in the descriptor's file.</param>
public readonly record struct GuestRegionSpec(ulong Gpa, ulong Size, ulong UserAddr, ulong MmapOffset);

/// <summary>Guest memory of several regions (see file comment). Thread-safe.</summary>
public sealed unsafe class GuestMemoryMap : IDisposable
{
    /// <summary>The default limit on regions (GET_MAX_MEM_SLOTS answers it).</summary>
    public const int DefaultMaxRegions = 64;

    private readonly RawRcuDomain _rcu = new();
    private readonly Lock _writer = new();
    private readonly int _maxRegions;
    private GuestRegion[] _table = [];
    private int _attached;
    private readonly List<GuestRegion> _retired = []; // removed from the table, maybe still pinned
    private bool _disposed;

    /// <summary>Creates an empty map allowing <paramref name="maxRegions"/> regions.</summary>
    public GuestMemoryMap(int maxRegions = DefaultMaxRegions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxRegions, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxRegions, 4096);
        _maxRegions = maxRegions;
    }

    /// <summary>The most regions the map holds.</summary>
    public int MaxRegions => _maxRegions;

    /// <summary>The read-side domain translations run in.</summary>
    internal RawRcuDomain Rcu => _rcu;

    /// <summary>Regions in the current table.</summary>
    public int Count => Volatile.Read(ref _table).Length;

    /// <summary>Queue sides attached to the map.</summary>
    public int AttachedQueues => Volatile.Read(ref _attached);

    /// <summary>The current regions (a snapshot; the regions stay valid objects, but only pins keep their memory mapped).</summary>
    public IReadOnlyList<GuestRegion> Regions => Volatile.Read(ref _table);

    /// <summary>
    /// The current table. <b>Safety:</b> call inside a read-side section of <see cref="Rcu"/>; the
    /// regions' memory is guaranteed mapped only until the section ends (pin what you keep).
    /// </summary>
    internal GuestRegion[] DangerousTable => Volatile.Read(ref _table);

    /// <summary>Adds one region (ADD_MEM_REG). On failure the backing is released at once.</summary>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> (empty, wraps, overlaps, backing too small); <see cref="RrStatus.NoSpace"/> (MaxRegions reached); <see cref="RrStatus.BadHandle"/> (disposed).</returns>
    public RrStatus Add(GuestRegionSpec spec, IRegionBacking backing, out string? error)
    {
        ArgumentNullException.ThrowIfNull(backing);
        lock (_writer)
        {
            GuestRegion[] old = _table;
            RrStatus s = Check(spec, backing, old, out error);
            if (_disposed)
            {
                error = "the map was disposed";
                s = RrStatus.BadHandle;
            }
            else if (s == RrStatus.Ok && old.Length >= _maxRegions)
            {
                error = $"the map already holds {old.Length} regions (at most {_maxRegions})";
                s = RrStatus.NoSpace;
            }

            if (s != RrStatus.Ok)
            {
                backing.Release();
                return s;
            }

            var table = new GuestRegion[old.Length + 1];
            old.CopyTo(table, 0);
            table[^1] = new GuestRegion(spec.Gpa, spec.Size, spec.UserAddr, spec.MmapOffset, backing);
            Array.Sort(table, static (a, b) => a.Gpa.CompareTo(b.Gpa));
            Publish(table);
            return RrStatus.Ok;
        }
    }

    /// <summary>
    /// Replaces the whole table (SET_MEM_TABLE): every region is checked (against each other) before
    /// anything changes. The old regions are unmapped once nothing pins them. On failure every
    /// given backing is released and the old table stays.
    /// </summary>
    public RrStatus Replace(ReadOnlySpan<GuestRegionSpec> specs, ReadOnlySpan<IRegionBacking> backings, out string? error)
    {
        if (specs.Length != backings.Length)
        {
            throw new ArgumentException("one backing per region", nameof(backings));
        }

        lock (_writer)
        {
            RrStatus s = RrStatus.Ok;
            error = null;
            if (_disposed)
            {
                error = "the map was disposed";
                s = RrStatus.BadHandle;
            }
            else if (specs.Length > _maxRegions)
            {
                error = $"{specs.Length} regions (at most {_maxRegions})";
                s = RrStatus.NoSpace;
            }

            var table = new List<GuestRegion>(specs.Length);
            for (int i = 0; i < specs.Length && s == RrStatus.Ok; i++)
            {
                s = Check(specs[i], backings[i], table, out error);
                if (s == RrStatus.Ok)
                {
                    table.Add(new GuestRegion(specs[i].Gpa, specs[i].Size, specs[i].UserAddr, specs[i].MmapOffset, backings[i]));
                }
                else
                {
                    error = $"region {i}: {error}";
                }
            }

            if (s != RrStatus.Ok)
            {
                // The regions made so far own their backings; the rest are released directly.
                foreach (GuestRegion r in table)
                {
                    r.Unpin();
                }

                for (int i = table.Count; i < backings.Length; i++)
                {
                    backings[i].Release();
                }

                return s;
            }

            GuestRegion[] sorted = table.ToArray();
            Array.Sort(sorted, static (a, b) => a.Gpa.CompareTo(b.Gpa));
            GuestRegion[] old = _table;
            Publish(sorted);
            Retire(old);
            return RrStatus.Ok;
        }
    }

    /// <summary>
    /// Removes the region with this guest address, size and (unless 0) user address (REM_MEM_REG;
    /// the mmap offset is ignored, as the protocol says). Its memory is unmapped once nothing pins it.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/> or <see cref="RrStatus.NotFound"/>.</returns>
    public RrStatus Remove(ulong gpa, ulong size, ulong userAddr, out string? error)
    {
        lock (_writer)
        {
            GuestRegion[] old = _table;
            int at = Array.FindIndex(old, r => r.Gpa == gpa && r.Size == size && (userAddr == 0 || r.UserAddr == userAddr));
            if (at < 0)
            {
                error = $"no region at guest 0x{gpa:x} of 0x{size:x} bytes (user 0x{userAddr:x})";
                return RrStatus.NotFound;
            }

            var table = new GuestRegion[old.Length - 1];
            Array.Copy(old, 0, table, 0, at);
            Array.Copy(old, at + 1, table, at, old.Length - at - 1);
            Publish(table);
            Retire([old[at]]);
            error = null;
            return RrStatus.Ok;
        }
    }

    /// <summary>Removes every region (a session ends, RESET_DEVICE).</summary>
    public void Clear()
    {
        lock (_writer)
        {
            GuestRegion[] old = _table;
            Publish([]);
            Retire(old);
        }
    }

    /// <summary>Regions removed from the table whose memory is still mapped because something pins them.</summary>
    public int PendingRelease
    {
        get
        {
            lock (_writer)
            {
                _retired.RemoveAll(static r => r.IsReleased);
                return _retired.Count;
            }
        }
    }

    /// <summary>
    /// Copies guest memory at [<paramref name="gpa"/>, +destination.Length) (which may span adjacent
    /// regions) into <paramref name="destination"/>; false when any byte is not in a region.
    /// </summary>
    public bool TryRead(ulong gpa, Span<byte> destination) => Copy(gpa, destination, default, write: false);

    /// <summary>Copies <paramref name="source"/> into guest memory at <paramref name="gpa"/>; false when any byte is not in a region.</summary>
    public bool TryWrite(ulong gpa, ReadOnlySpan<byte> source) => Copy(gpa, default, source, write: true);

    private bool Copy(ulong gpa, Span<byte> dst, ReadOnlySpan<byte> src, bool write)
    {
        int total = write ? src.Length : dst.Length;
        RcuReader* reader = _rcu.ReadLockRecord();
        try
        {
            GuestRegion[] table = DangerousTable;
            int done = 0;
            while (done < total)
            {
                ulong at = gpa + (ulong)done;
                if (at < gpa)
                {
                    return false; // wrapped
                }

                GuestRegion? r = FindGpa(table, at);
                if (r is null)
                {
                    return false;
                }

                ulong off = at - r.Gpa;
                int take = (int)Math.Min((ulong)(total - done), r.Size - off);
                // SAFETY: [off, off + take) lies inside the region (take ≤ Size - off), which is
                // mapped for the whole section: the table's reference is dropped only after a grace period.
                var host = new Span<byte>(r.Host + off, take);
                if (write)
                {
                    src.Slice(done, take).CopyTo(host);
                }
                else
                {
                    host.CopyTo(dst.Slice(done, take));
                }

                done += take;
            }

            return true;
        }
        finally
        {
            RawRcuDomain.ReadUnlock(reader);
        }
    }

    /// <summary>
    /// Pins the region holding all of [<paramref name="address"/>, +<paramref name="length"/>) in
    /// <paramref name="space"/> and returns the host address; the caller unpins it with
    /// <see cref="Unpin"/>. Used for ring parts, which must lie in one region.
    /// </summary>
    /// <returns><see cref="RrStatus.Ok"/> or <see cref="RrStatus.InvalidArgument"/> (not entirely inside one region).</returns>
    internal RrStatus Pin(ulong address, ulong length, GuestAddressSpace space, out byte* host, out GuestRegion? region)
    {
        host = null;
        region = null;
        RcuReader* reader = _rcu.ReadLockRecord();
        try
        {
            GuestRegion[] table = DangerousTable;
            GuestRegion? r = space == GuestAddressSpace.GuestPhysical ? FindGpa(table, address) : FindUser(table, address);
            if (r is null || !(space == GuestAddressSpace.GuestPhysical ? r.ContainsGpa(address, length) : r.ContainsUser(address, length)))
            {
                return RrStatus.InvalidArgument;
            }

            r.Pin();
            region = r;
            // SAFETY: the offset is inside the region (checked just above).
            host = r.Host + (space == GuestAddressSpace.GuestPhysical ? address - r.Gpa : address - r.UserAddr);
            return RrStatus.Ok;
        }
        finally
        {
            RawRcuDomain.ReadUnlock(reader);
        }
    }

    /// <summary>Drops a pin taken by <see cref="Pin"/>.</summary>
    internal static void Unpin(GuestRegion region) => region.Unpin();

    /// <summary>The region containing guest address <paramref name="gpa"/> in <paramref name="table"/> (sorted), or null.</summary>
    internal static GuestRegion? FindGpa(GuestRegion[] table, ulong gpa)
    {
        int lo = 0, hi = table.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            GuestRegion r = table[mid];
            if (gpa < r.Gpa)
            {
                hi = mid - 1;
            }
            else if (gpa - r.Gpa >= r.Size)
            {
                lo = mid + 1;
            }
            else
            {
                return r;
            }
        }

        return null;
    }

    private static GuestRegion? FindUser(GuestRegion[] table, ulong uaddr)
    {
        foreach (GuestRegion r in table)
        {
            if (uaddr >= r.UserAddr && uaddr - r.UserAddr < r.Size)
            {
                return r;
            }
        }

        return null;
    }

    internal void Attach()
    {
        lock (_writer)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _attached++;
        }
    }

    internal void Detach()
    {
        lock (_writer)
        {
            _attached--;
        }
    }

    /// <summary>Removes every region and frees the domain.</summary>
    /// <exception cref="InvalidOperationException">A queue side is still attached.</exception>
    public void Dispose()
    {
        lock (_writer)
        {
            if (_disposed)
            {
                return;
            }

            if (_attached != 0)
            {
                throw new InvalidOperationException($"{_attached} queue side(s) still use this memory map; destroy them first.");
            }

            GuestRegion[] old = _table;
            Publish([]);
            Retire(old);
            _disposed = true;
        }

        _rcu.Dispose();
    }

    private void Publish(GuestRegion[] table)
    {
        // ORDERING: release: the regions' fields are visible before a reader can load the table
        // (pairs with the Volatile.Read in DangerousTable).
        Volatile.Write(ref _table, table);
    }

    /// <summary>Drops the table's reference on regions just unpublished, after a grace period. Caller holds the writer lock.</summary>
    private void Retire(GuestRegion[] regions)
    {
        if (regions.Length == 0)
        {
            return;
        }

        // Every translator that might still hold the old table leaves its section, pinning what it keeps.
        _rcu.Synchronize();
        _retired.RemoveAll(static r => r.IsReleased);
        foreach (GuestRegion r in regions)
        {
            r.Unpin();
            if (!r.IsReleased)
            {
                _retired.Add(r);
            }
        }
    }

    private static RrStatus Check(GuestRegionSpec spec, IRegionBacking backing, IReadOnlyList<GuestRegion> others, out string? error)
    {
        error = null;
        if (spec.Size == 0)
        {
            error = "a region of size 0";
            return RrStatus.InvalidArgument;
        }

        if (spec.Gpa > ulong.MaxValue - spec.Size || spec.UserAddr > ulong.MaxValue - spec.Size)
        {
            error = $"region [guest 0x{spec.Gpa:x}, user 0x{spec.UserAddr:x}, +0x{spec.Size:x}) wraps the address space";
            return RrStatus.InvalidArgument;
        }

        if (backing.Length < spec.Size || backing.Host == null)
        {
            error = "the mapped memory is smaller than the region";
            return RrStatus.InvalidArgument;
        }

        foreach (GuestRegion o in others)
        {
            bool gpaOverlap = spec.Gpa < o.Gpa + o.Size && o.Gpa < spec.Gpa + spec.Size;
            bool userOverlap = spec.UserAddr < o.UserAddr + o.Size && o.UserAddr < spec.UserAddr + spec.Size;
            if (gpaOverlap || userOverlap)
            {
                error = $"region [guest 0x{spec.Gpa:x}, +0x{spec.Size:x}) overlaps [guest 0x{o.Gpa:x}, +0x{o.Size:x}) in {(gpaOverlap ? "guest" : "user")} addresses";
                return RrStatus.InvalidArgument;
            }
        }

        return RrStatus.Ok;
    }
}
