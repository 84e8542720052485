// C ABI of the device side as a back-end uses it: the rr_vq_device_* calls for a queue configured
// after creation and for chains held by head (include/refruntime.h, section "Virtqueue
// back-ends"; the memory map is GuestMapExports.cs). Every body: validate, one call into
// RefRuntime.Core, map the result, all inside a catch-all.

using System;
using System.Runtime.InteropServices;
using System.Text;
using RefRuntime.Core;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Native.Exports;

internal static unsafe class VqDeviceBackendExports
{
    /// <summary><c>rr_vq_rings_t</c> (as in VirtioExports).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Rings
    {
        public uint Size;
        public uint Reserved;
        public ulong Desc;
        public ulong Avail;
        public ulong Used;
    }

    /// <summary><c>rr_vq_chain_t</c> (as in VirtioExports).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Chain
    {
        public ushort Head;
        public ushort Reserved;
        public uint NReadable;
        public uint NWritable;
        public uint ReadableBytes;
        public uint WritableBytes;
    }

    /// <summary><c>rr_vq_segment_t</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Segment
    {
        public void* Host;
        public uint Len;
        public uint Flags;
    }

    /// <summary><c>rr_vq_state_t</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct State
    {
        public uint Size;
        public uint MaxSize;
        public ushort NextAvail;
        public ushort NextUsed;
        public ushort RingUsedIdx;
        public ushort Reserved;
        public uint Held;
        public uint Flags;
    }

    private const uint StateReady = 1;
    private const uint StateEnabled = 2;
    private const uint StateBroken = 4;
    private const uint SegmentWritable = 1;

    // ---- device side: a queue configured after creation ----

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_create_on_map")]
    private static int DeviceCreateOnMap(void* map, uint maxSize, ulong features, uint policy, void** outDevice)
    {
        try
        {
            if (outDevice == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outDevice = null;
            RrStatus s = ObjectHandle.Resolve(map, HandleKind.GuestMap, out GuestMemoryMap? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            if (maxSize > VirtqLayout.MaxSize || policy > (uint)MalformedChainPolicy.ReturnEmpty)
            {
                return (int)RrStatus.InvalidArgument;
            }

            s = VirtqDevice.Create(m!, (int)maxSize, (VirtqFeatures)features, (MalformedChainPolicy)policy, out VirtqDevice? v, out _);
            if (s == RrStatus.Ok)
            {
                void* h = ObjectHandle.Alloc(v!, HandleKind.VqDevice);
                if (h == null)
                {
                    v!.Destroy();
                    return (int)RrStatus.OutOfMemory;
                }

                // SAFETY: as above.
                *outDevice = h;
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_set_size")]
    private static int DeviceSetSize(void* device, uint size)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            return (int)(s != RrStatus.Ok ? s : size > VirtqLayout.MaxSize ? RrStatus.InvalidArgument : v!.SetSize((int)size));
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_set_rings")]
    private static int DeviceSetRings(void* device, Rings* rings, uint space)
    {
        try
        {
            if (rings == null || space > (uint)GuestAddressSpace.FrontEndUser)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: non-NULL (checked); one read of the caller's struct.
            Rings r = *rings;
            if (r.Reserved != 0 || r.Size > VirtqLayout.MaxSize)
            {
                return (int)RrStatus.InvalidArgument;
            }

            s = v!.SetSize((int)r.Size);
            return (int)(s != RrStatus.Ok ? s : v.SetRingAddresses(r.Desc, r.Avail, r.Used, (GuestAddressSpace)space));
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_set_features")]
    private static int DeviceSetFeatures(void* device, ulong features)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            return (int)(s == RrStatus.Ok ? v!.SetFeatures((VirtqFeatures)features) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_set_indices")]
    private static int DeviceSetIndices(void* device, ushort nextAvail, ushort nextUsed)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            return (int)(s == RrStatus.Ok ? v!.SetIndices(nextAvail, nextUsed) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_start")]
    private static int DeviceStart(void* device, byte* error, uint capacity)
    {
        try
        {
            if (error == null && capacity != 0)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            s = v!.Start(out string? reason);
            CopyText(s == RrStatus.Ok ? null : reason, error, capacity);
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_stop")]
    private static int DeviceStop(void* device)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s == RrStatus.Ok)
            {
                v!.Stop();
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_set_enabled")]
    private static int DeviceSetEnabled(void* device, int enabled)
    {
        try
        {
            if (enabled is not (0 or 1))
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s == RrStatus.Ok)
            {
                v!.SetEnabled(enabled == 1);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_sync_used")]
    private static int DeviceSyncUsed(void* device)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            return (int)(s == RrStatus.Ok ? v!.SyncUsedIndexFromRing() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_state")]
    private static int DeviceState(void* device, State* outState)
    {
        try
        {
            if (outState == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outState = default;
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: as above.
            *outState = new State
            {
                Size = (uint)v!.ConfiguredRings.Size,
                MaxSize = (uint)v.MaxQueueSize,
                NextAvail = v.NextAvail,
                NextUsed = v.NextUsed,
                RingUsedIdx = v.RingUsedIndex,
                Held = (uint)v.HeldCount,
                Flags = (v.IsReady ? StateReady : 0) | (v.IsEnabled ? StateEnabled : 0) | (v.IsBroken ? StateBroken : 0),
            };
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    // ---- device side: chains held by head ----

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_chain")]
    private static int DeviceChain(void* device, uint head, Chain* outChain)
    {
        try
        {
            if (outChain == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outChain = default;
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            s = v!.GetChain(head > int.MaxValue ? -1 : (int)head, out VirtqChain c);
            // SAFETY: as above.
            *outChain = new Chain { Head = c.Head, NReadable = (uint)c.Readable, NWritable = (uint)c.Writable, ReadableBytes = c.ReadableBytes, WritableBytes = c.WritableBytes };
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_chain_segment")]
    private static int DeviceChainSegment(void* device, uint head, uint index, Segment* outSegment)
    {
        try
        {
            if (outSegment == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outSegment = default;
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            if (!v!.IsHeld(head > int.MaxValue ? -1 : (int)head))
            {
                return (int)RrStatus.InvalidArgument;
            }

            ReadOnlySpan<VirtqSegment> segs = v.GetSegments((int)head);
            if (index >= (uint)segs.Length)
            {
                return (int)RrStatus.NotFound;
            }

            VirtqSegment seg = segs[(int)index];
            // SAFETY: as above.
            *outSegment = new Segment { Host = seg.Host, Len = seg.Length, Flags = seg.Writable ? SegmentWritable : 0 };
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_chain_read")]
    private static int DeviceChainRead(void* device, uint head, uint offset, byte* dst, uint capacity, uint* outLen)
    {
        try
        {
            if (outLen == null || (dst == null && capacity != 0))
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outLen = 0;
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: the caller's contract: dst holds capacity bytes.
            s = v!.ReadChain(head > int.MaxValue ? -1 : (int)head, offset, new Span<byte>(dst, (int)Math.Min(capacity, int.MaxValue)), out int n);
            *outLen = (uint)n;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_chain_write")]
    private static int DeviceChainWrite(void* device, uint head, uint offset, byte* src, uint length, uint* outWritten)
    {
        try
        {
            if (outWritten == null || (src == null && length != 0))
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outWritten = 0;
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: the caller's contract: src holds length bytes.
            s = v!.WriteChain(head > int.MaxValue ? -1 : (int)head, offset, new ReadOnlySpan<byte>(src, (int)Math.Min(length, int.MaxValue)), out int n);
            *outWritten = (uint)n;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    /// <summary>Copies ASCII text (or an empty string for null) into a caller buffer, truncated and NUL-terminated.</summary>
    private static void CopyText(string? text, byte* buf, uint capacity)
    {
        if (buf == null || capacity == 0)
        {
            return;
        }

        // SAFETY: the caller's contract: buf holds capacity bytes (non-NULL, capacity ≥ 1: checked above).
        var dst = new Span<byte>(buf, (int)Math.Min(capacity, 4096));
        string t = text ?? string.Empty;
        int n = Encoding.ASCII.GetBytes(t.AsSpan(0, Math.Min(t.Length, dst.Length - 1)), dst);
        dst[n] = 0;
    }
}
