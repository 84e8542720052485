// C ABI of the split virtqueue: rr_guestmem_*, rr_vq_driver_*, rr_vq_device_*, rr_doorbell_* in
// include/refruntime.h. Handles are ObjectHandle blocks (validated by magic); every body:
// validate, one call into RefRuntime.Core.Virtio, map the result, all inside a catch-all.

using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using RefRuntime.Core;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Native.Exports;

internal static unsafe class VirtioExports
{

    /// <summary><c>rr_vq_buf</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Buf
    {
        public ulong Gpa;
        public uint Len;
        public uint Reserved;
    }

    /// <summary><c>rr_vq_rings</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct Rings
    {
        public uint Size;
        public uint Reserved;
        public ulong Desc;
        public ulong Avail;
        public ulong Used;
    }

    /// <summary><c>rr_vq_chain</c>.</summary>
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

    private const int MaxStackBuffers = 64;

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmem_create")]
    private static int MemCreate(ulong size, ulong gpaBase, void** outMem)
    {
        try
        {
            if (outMem == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outMem = null;
            RrStatus s = GuestMemory.Create(size, gpaBase, out GuestMemory? mem);
            if (s == RrStatus.Ok)
            {
                *outMem = ObjectHandle.Alloc(mem!, HandleKind.GuestMem);
                if (*outMem == null)
                {
                    mem!.Destroy();
                    return (int)RrStatus.OutOfMemory;
                }
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmem_destroy")]
    private static int MemDestroy(void* mem)
    {
        try
        {
            // RR_EBUSY while queues are attached: the region stays.
            return (int)ObjectHandle.Destroy<GuestMemory>(mem, HandleKind.GuestMem, static m => m.Destroy());
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmem_translate")]
    private static int MemTranslate(void* mem, ulong gpa, ulong len, void** outHost)
    {
        try
        {
            if (outHost == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outHost = null;
            RrStatus s = ObjectHandle.Resolve(mem, HandleKind.GuestMem, out GuestMemory? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            if (!m!.TryTranslate(gpa, len, out byte* host))
            {
                return (int)RrStatus.InvalidArgument;
            }

            *outHost = host;
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_guestmem_alloc")]
    private static int MemAlloc(void* mem, ulong size, ulong align, ulong* outGpa)
    {
        try
        {
            if (outGpa == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outGpa = 0;
            RrStatus s = ObjectHandle.Resolve(mem, HandleKind.GuestMem, out GuestMemory? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            s = m!.TryCarve(size, align, out ulong gpa);
            *outGpa = gpa;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    // ---- driver side ----

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_create")]
    private static int DriverCreate(void* mem, uint size, ulong features, uint indirectMax, void** outDriver)
    {
        try
        {
            if (outDriver == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outDriver = null;
            RrStatus s = ObjectHandle.Resolve(mem, HandleKind.GuestMem, out GuestMemory? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            if (size > VirtqLayout.MaxSize || indirectMax > VirtqLayout.MaxSize)
            {
                return (int)RrStatus.InvalidArgument;
            }

            s = VirtqDriver.Create(m!, (int)size, (VirtqFeatures)features, (int)indirectMax, out VirtqDriver? d, out _);
            if (s == RrStatus.Ok)
            {
                *outDriver = ObjectHandle.Alloc(d!, HandleKind.VqDriver);
                if (*outDriver == null)
                {
                    d!.Destroy();
                    return (int)RrStatus.OutOfMemory;
                }
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_destroy")]
    private static int DriverDestroy(void* driver)
    {
        try
        {
            return (int)ObjectHandle.Destroy<VirtqDriver>(driver, HandleKind.VqDriver, static d => d.Destroy());
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_rings")]
    private static int DriverRings(void* driver, Rings* outRings)
    {
        try
        {
            if (outRings == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            if (s != RrStatus.Ok)
            {
                *outRings = default;
                return (int)s;
            }

            VirtqRings r = d!.Rings;
            // SAFETY: non-NULL out pointer (checked).
            *outRings = new Rings { Size = (uint)r.Size, Desc = r.DescGpa, Avail = r.AvailGpa, Used = r.UsedGpa };
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    // SkipLocalsInit: the stackalloc'd chain is written in full by CopyChain before anything
    // reads it (and not used at all when CopyChain refuses it); zeroing it cost a 1 KiB memset
    // per batch call.
    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_add")]
    [SkipLocalsInit]
    private static int DriverAdd(void* driver, Buf* bufs, uint nReadable, uint nWritable, ulong token)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            ulong count = (ulong)nReadable + nWritable;
            if (bufs == null || count == 0 || count > (ulong)d!.Size)
            {
                return (int)RrStatus.InvalidArgument;
            }

            Span<VirtqBuffer> span = count <= MaxStackBuffers ? stackalloc VirtqBuffer[(int)count] : new VirtqBuffer[count];
            // SAFETY: the caller's contract: bufs holds n_readable + n_writable entries.
            if (!CopyChain(bufs, span))
            {
                return (int)RrStatus.InvalidArgument;
            }

            return (int)d.TryAdd(span, (int)nReadable, token);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_add_chains")]
    [SkipLocalsInit] // as DriverAdd
    private static int DriverAddChains(void* driver, Buf* bufs, uint* nReadable, uint* nWritable, ulong* tokens, uint chains, uint* outAdded)
    {
        try
        {
            if (outAdded == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outAdded = 0;
            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            if (chains == 0)
            {
                return (int)RrStatus.Ok;
            }

            if (bufs == null || nReadable == null || nWritable == null || tokens == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            Span<VirtqBuffer> span = stackalloc VirtqBuffer[MaxStackBuffers];
            ulong offset = 0;
            ulong size = (ulong)d!.Size;
            uint c = 0;
            s = RrStatus.Ok;
            for (; c < chains; c++)
            {
                // SAFETY: the caller's contract: the three arrays hold `chains` entries, and bufs
                // holds the sum of n_readable[i] + n_writable[i] entries, chain after chain.
                ulong count = (ulong)nReadable[c] + nWritable[c];
                if (count == 0 || count > size)
                {
                    s = RrStatus.InvalidArgument;
                    break;
                }

                Span<VirtqBuffer> chain = count <= MaxStackBuffers ? span[..(int)count] : new VirtqBuffer[count];
                if (!CopyChain(bufs + offset, chain))
                {
                    s = RrStatus.InvalidArgument;
                    break;
                }

                s = d.TryAdd(chain, (int)nReadable[c], tokens[c]);
                if (s != RrStatus.Ok)
                {
                    break;
                }

                offset += count;
            }

            // SAFETY: non-NULL out pointer (checked). The chains before c were added.
            *outAdded = c;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_get_used_batch")]
    private static int DriverGetUsedBatch(void* driver, ulong* tokens, uint* lens, uint capacity, uint* outCount)
    {
        try
        {
            if (outCount == null || (capacity != 0 && (tokens == null || lens == null)))
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outCount = 0;
            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            uint n = 0;
            while (n < capacity)
            {
                s = d!.TryGetUsed(out ulong token, out uint len);
                if (s != RrStatus.Ok)
                {
                    break;
                }

                // SAFETY: the caller's contract: tokens and lens hold `capacity` entries; n < capacity.
                tokens[n] = token;
                lens[n] = len;
                n++;
            }

            *outCount = n;
            return (int)(s == RrStatus.Broken ? RrStatus.Broken : n == 0 && capacity != 0 ? RrStatus.NotFound : RrStatus.Ok);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_publish")]
    private static int DriverPublish(void* driver, int* outNotify)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            if (d!.IsBroken)
            {
                return (int)RrStatus.Broken;
            }

            if (outNotify == null)
            {
                d.Publish();
            }
            else
            {
                // SAFETY: non-NULL out pointer (checked).
                *outNotify = d.KickPrepare() ? 1 : 0;
            }

            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_get_used")]
    private static int DriverGetUsed(void* driver, ulong* outToken, uint* outLen)
    {
        try
        {
            if (outToken == null || outLen == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            ulong token = 0;
            uint len = 0;
            if (s == RrStatus.Ok)
            {
                s = d!.TryGetUsed(out token, out len);
            }

            // SAFETY: non-NULL out pointers (checked).
            *outToken = token;
            *outLen = len;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_enable_cb")]
    private static int DriverEnableCb(void* driver, int* outPending)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            bool pending = d!.EnableCallbacks();
            if (outPending != null)
            {
                // SAFETY: non-NULL out pointer (checked).
                *outPending = pending ? 1 : 0;
            }

            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_disable_cb")]
    private static int DriverDisableCb(void* driver)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            if (s == RrStatus.Ok)
            {
                d!.DisableCallbacks();
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_detach_unused")]
    private static int DriverDetachUnused(void* driver, ulong* outToken)
    {
        try
        {
            if (outToken == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            ulong token = 0;
            if (s == RrStatus.Ok)
            {
                s = d!.TryDetachUnused(out token);
            }

            // SAFETY: non-NULL out pointer (checked).
            *outToken = token;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_reset")]
    private static int DriverReset(void* driver)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            return (int)(s == RrStatus.Ok ? d!.Reset() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_driver_error")]
    private static int DriverError(void* driver, byte* buf, uint capacity)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(driver, HandleKind.VqDriver, out VirtqDriver? d);
            return (int)(s == RrStatus.Ok ? CopyReason(d!.BrokenReason, buf, capacity) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    // ---- device side ----

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_create")]
    private static int DeviceCreate(void* mem, Rings* rings, ulong features, uint policy, void** outDevice)
    {
        try
        {
            if (outDevice == null || rings == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outDevice = null;
            RrStatus s = ObjectHandle.Resolve(mem, HandleKind.GuestMem, out GuestMemory? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // SAFETY: non-NULL (checked); one read of the caller's struct.
            Rings r = *rings;
            if (r.Size > VirtqLayout.MaxSize || r.Reserved != 0 || policy > (uint)MalformedChainPolicy.ReturnEmpty)
            {
                return (int)RrStatus.InvalidArgument;
            }

            s = VirtqDevice.Create(m!, new VirtqRings((int)r.Size, r.Desc, r.Avail, r.Used), (VirtqFeatures)features, (MalformedChainPolicy)policy, out VirtqDevice? v, out _);
            if (s == RrStatus.Ok)
            {
                *outDevice = ObjectHandle.Alloc(v!, HandleKind.VqDevice);
                if (*outDevice == null)
                {
                    v!.Destroy();
                    return (int)RrStatus.OutOfMemory;
                }
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_destroy")]
    private static int DeviceDestroy(void* device)
    {
        try
        {
            return (int)ObjectHandle.Destroy<VirtqDevice>(device, HandleKind.VqDevice, static v => v.Destroy());
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_pop")]
    private static int DevicePop(void* device, Chain* outChain)
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

            s = v!.TryPop(out VirtqChain c);
            *outChain = new Chain
            {
                Head = c.Head,
                NReadable = (uint)c.Readable,
                NWritable = (uint)c.Writable,
                ReadableBytes = c.ReadableBytes,
                WritableBytes = c.WritableBytes,
            };
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_pop_batch")]
    private static int DevicePopBatch(void* device, Chain* outChains, uint capacity, uint* outN)
    {
        try
        {
            if (outN == null || (capacity != 0 && outChains == null))
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outN = 0;
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok || capacity == 0)
            {
                return (int)s;
            }

            // One transition for up to `capacity` chains: each is taken and validated exactly as
            // rr_vq_device_pop does. The batch ends at the first chain that is not plainly Ok: a
            // malformed one (policy RETURN_EMPTY) is the last entry, counted, with RR_EBADMSG.
            uint n = 0;
            for (; n < capacity; n++)
            {
                s = v!.TryPop(out VirtqChain c);
                if (s != RrStatus.Ok && s != RrStatus.Malformed)
                {
                    break;
                }

                // SAFETY: the caller's contract: outChains holds `capacity` entries; n < capacity.
                outChains[n] = new Chain
                {
                    Head = c.Head,
                    NReadable = (uint)c.Readable,
                    NWritable = (uint)c.Writable,
                    ReadableBytes = c.ReadableBytes,
                    WritableBytes = c.WritableBytes,
                };
                if (s == RrStatus.Malformed)
                {
                    n++;
                    break;
                }
            }

            *outN = n;
            return (int)(s == RrStatus.NotFound && n > 0 ? RrStatus.Ok : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_read")]
    private static int DeviceRead(void* device, byte* dst, uint capacity, uint* outLen)
    {
        try
        {
            if (outLen == null || (dst == null && capacity != 0))
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            int copied = 0;
            if (s == RrStatus.Ok)
            {
                // SAFETY: the caller's contract: dst holds capacity bytes.
                s = v!.TryGather(new Span<byte>(dst, (int)Math.Min(capacity, int.MaxValue)), out copied);
            }

            // SAFETY: non-NULL out pointer (checked).
            *outLen = (uint)copied;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_write")]
    private static int DeviceWrite(void* device, byte* src, uint length, uint* outWritten)
    {
        try
        {
            if (outWritten == null || (src == null && length != 0))
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            int written = 0;
            if (s == RrStatus.Ok)
            {
                // SAFETY: the caller's contract: src holds length bytes.
                s = v!.TryScatter(new ReadOnlySpan<byte>(src, (int)Math.Min(length, int.MaxValue)), out written);
            }

            // SAFETY: non-NULL out pointer (checked).
            *outWritten = (uint)written;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_add_used")]
    private static int DeviceAddUsed(void* device, uint head, uint length)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            return (int)(s == RrStatus.Ok ? v!.AddUsed(head > int.MaxValue ? -1 : (int)head, length) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_add_used_batch")]
    private static int DeviceAddUsedBatch(void* device, uint* heads, uint* lens, uint count, uint* outAdded)
    {
        try
        {
            if (outAdded == null || (count != 0 && (heads == null || lens == null)))
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outAdded = 0;
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            uint i = 0;
            for (; i < count; i++)
            {
                // SAFETY: the caller's contract: heads and lens hold `count` entries.
                s = v!.AddUsed(heads[i] > int.MaxValue ? -1 : (int)heads[i], lens[i]);
                if (s != RrStatus.Ok)
                {
                    break;
                }
            }

            // SAFETY: non-NULL out pointer (checked). The entries before i were added.
            *outAdded = i;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_publish")]
    private static int DevicePublish(void* device, int* outNotify)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            if (v!.IsBroken)
            {
                return (int)RrStatus.Broken;
            }

            if (outNotify == null)
            {
                v.PublishUsed();
            }
            else
            {
                // SAFETY: non-NULL out pointer (checked).
                *outNotify = v.NotifyPrepare() ? 1 : 0;
            }

            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_enable_notify")]
    private static int DeviceEnableNotify(void* device, int* outPending)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            bool pending = v!.EnableNotifications();
            if (outPending != null)
            {
                // SAFETY: non-NULL out pointer (checked).
                *outPending = pending ? 1 : 0;
            }

            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_disable_notify")]
    private static int DeviceDisableNotify(void* device)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            if (s == RrStatus.Ok)
            {
                v!.DisableNotifications();
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_reset")]
    private static int DeviceReset(void* device)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            return (int)(s == RrStatus.Ok ? v!.Reset() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_vq_device_error")]
    private static int DeviceError(void* device, byte* buf, uint capacity)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(device, HandleKind.VqDevice, out VirtqDevice? v);
            return (int)(s == RrStatus.Ok ? CopyReason(v!.BrokenReason ?? v.LastMalformedReason, buf, capacity) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    // ---- doorbell ----

    [UnmanagedCallersOnly(EntryPoint = "rr_doorbell_create")]
    private static int BellCreate(uint spinIterations, void** outBell)
    {
        try
        {
            if (outBell == null || spinIterations > int.MaxValue)
            {
                return (int)RrStatus.InvalidArgument;
            }

            void* h = ObjectHandle.Alloc(new Doorbell((int)spinIterations), HandleKind.Doorbell);
            // SAFETY: non-NULL out pointer (checked).
            *outBell = h;
            return (int)(h == null ? RrStatus.OutOfMemory : RrStatus.Ok);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_doorbell_destroy")]
    private static int BellDestroy(void* bell)
    {
        try
        {
            return (int)ObjectHandle.Destroy<Doorbell>(bell, HandleKind.Doorbell, static b =>
            {
                b.Dispose();
                return RrStatus.Ok;
            });
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_doorbell_ring")]
    private static int BellRing(void* bell)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(bell, HandleKind.Doorbell, out Doorbell? b);
            if (s == RrStatus.Ok)
            {
                b!.Ring();
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_doorbell_wait")]
    private static int BellWait(void* bell, int timeoutMs)
    {
        try
        {
            if (timeoutMs < -1)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(bell, HandleKind.Doorbell, out Doorbell? b);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            return (int)(b!.Wait(timeoutMs) ? RrStatus.Ok : RrStatus.NotFound);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    /// <summary>Copies <c>dst.Length</c> C buffers (rr_vq_buf_t) into Core's form.</summary>
    /// <remarks><b>Safety:</b> <paramref name="src"/> holds at least <c>dst.Length</c> entries.</remarks>
    /// <returns>False when a buffer's reserved field is not 0 (kept for later use, so refused now).</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)] // once per chain in the batch calls
    private static bool CopyChain(Buf* src, Span<VirtqBuffer> dst)
    {
        for (int k = 0; k < dst.Length; k++)
        {
            // SAFETY: the caller's contract; one read of each entry.
            Buf b = src[k];
            if (b.Reserved != 0)
            {
                return false;
            }

            dst[k] = new VirtqBuffer(b.Gpa, b.Len);
        }

        return true;
    }

    private static RrStatus CopyReason(string? reason, byte* buf, uint capacity)
    {
        if (buf == null || capacity == 0)
        {
            return RrStatus.InvalidArgument;
        }

        if (reason is null)
        {
            // SAFETY: capacity ≥ 1 (checked).
            buf[0] = 0;
            return RrStatus.NotFound;
        }

        // Reasons are ASCII; truncate to capacity − 1 bytes and terminate.
        var dst = new Span<byte>(buf, (int)Math.Min(capacity, 4096));
        int n = Encoding.ASCII.GetBytes(reason.AsSpan(0, Math.Min(reason.Length, dst.Length - 1)), dst);
        dst[n] = 0;
        return RrStatus.Ok;
    }
}
