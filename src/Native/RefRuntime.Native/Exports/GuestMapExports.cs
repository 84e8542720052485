// C ABI of guest memory of several regions (rr_guestmap_* in include/refruntime.h, section
// "Virtqueue back-ends"): regions mapped from descriptors or lent by the host, removed with
// deferred unmapping, copied across. Every body: validate, one call into RefRuntime.Core, map
// the result, all inside a catch-all.

using System;
using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Native.Exports;

internal static unsafe class GuestMapExports
{
    /// <summary><c>rr_guestmap_region_t</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Region
    {
        public ulong Gpa;
        public ulong Size;
        public ulong UserAddr;
        public ulong MmapOffset;
    }

    /// <summary>Memory a C host lends to a map; its release callback runs once.</summary>
    private sealed class HostBacking(byte* host, ulong length, delegate* unmanaged<void*, void> release, void* context) : IRegionBacking
    {
        public byte* Host => host;

        public ulong Length => length;

        public void Release()
        {
            if (release != null)
            {
                // SAFETY: the host's contract (rr_guestmap_add_host): the callback may be called once with its context.
                release(context);
            }
        }
    }

    // ---- rr_guestmap_t ----

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmap_create")]
    private static int MapCreate(uint maxRegions, void** outMap)
    {
        try
        {
            if (outMap == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outMap = null;
            if (maxRegions is 0 or > 4096)
            {
                return (int)RrStatus.InvalidArgument;
            }

            var map = new GuestMemoryMap((int)maxRegions);
            void* h = ObjectHandle.Alloc(map, HandleKind.GuestMap);
            if (h == null)
            {
                map.Dispose();
                return (int)RrStatus.OutOfMemory;
            }

            // SAFETY: as above.
            *outMap = h;
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmap_destroy")]
    private static int MapDestroy(void* map)
    {
        try
        {
            return (int)ObjectHandle.Destroy<GuestMemoryMap>(map, HandleKind.GuestMap, static m =>
            {
                if (m.AttachedQueues != 0)
                {
                    return RrStatus.Busy;
                }

                m.Dispose();
                return RrStatus.Ok;
            });
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmap_add_fd")]
    private static int MapAddFd(void* map, Region* region, int fd)
    {
        try
        {
            if (region == null || fd < 0)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(map, HandleKind.GuestMap, out GuestMemoryMap? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: non-NULL (checked); one read of the caller's struct.
            Region r = *region;
            if (r.Size == 0 || r.MmapOffset > ulong.MaxValue - r.Size)
            {
                return (int)RrStatus.InvalidArgument;
            }

            s = new LinuxVhostPlatform().MapRegion(fd, r.MmapOffset, r.Size, out IRegionBacking? backing, out _);
            return (int)(s == RrStatus.Ok ? m!.Add(new GuestRegionSpec(r.Gpa, r.Size, r.UserAddr, r.MmapOffset), backing!, out _) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmap_add_host")]
    private static int MapAddHost(void* map, Region* region, void* host, delegate* unmanaged<void*, void> release, void* context)
    {
        try
        {
            if (region == null || host == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(map, HandleKind.GuestMap, out GuestMemoryMap? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: non-NULL (checked); one read of the caller's struct.
            Region r = *region;
            if ((ulong)host > ulong.MaxValue - r.Size)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // On failure the map releases the backing at once: the host gets its memory back.
            return (int)m!.Add(new GuestRegionSpec(r.Gpa, r.Size, r.UserAddr, r.MmapOffset), new HostBacking((byte*)host, r.Size, release, context), out _);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmap_remove")]
    private static int MapRemove(void* map, ulong gpa, ulong size, ulong userAddr)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(map, HandleKind.GuestMap, out GuestMemoryMap? m);
            return (int)(s == RrStatus.Ok ? m!.Remove(gpa, size, userAddr, out _) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmap_read")]
    private static int MapRead(void* map, ulong gpa, void* dst, ulong length)
    {
        try
        {
            if ((dst == null && length != 0) || length > int.MaxValue)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(map, HandleKind.GuestMap, out GuestMemoryMap? m);
            // SAFETY: the caller's contract: dst holds length bytes.
            return (int)(s != RrStatus.Ok ? s : m!.TryRead(gpa, new Span<byte>(dst, (int)length)) ? RrStatus.Ok : RrStatus.InvalidArgument);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmap_write")]
    private static int MapWrite(void* map, ulong gpa, void* src, ulong length)
    {
        try
        {
            if ((src == null && length != 0) || length > int.MaxValue)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(map, HandleKind.GuestMap, out GuestMemoryMap? m);
            // SAFETY: the caller's contract: src holds length bytes.
            return (int)(s != RrStatus.Ok ? s : m!.TryWrite(gpa, new ReadOnlySpan<byte>(src, (int)length)) ? RrStatus.Ok : RrStatus.InvalidArgument);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmap_count")]
    private static int MapCount(void* map, uint* outRegions, uint* outPending)
    {
        try
        {
            if (outRegions == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(map, HandleKind.GuestMap, out GuestMemoryMap? m);
            // SAFETY: non-NULL out pointers (checked; outPending optional).
            *outRegions = s == RrStatus.Ok ? (uint)m!.Count : 0;
            if (outPending != null)
            {
                *outPending = s == RrStatus.Ok ? (uint)m!.PendingRelease : 0;
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }
}
