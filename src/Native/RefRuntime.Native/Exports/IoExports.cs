// C ABI of MMIO windows: rr_io_* in include/refruntime.h (the typed accessors are header inlines
// over rr_io_read / rr_io_write). Spec: docs/mmio.md.

using System;
using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Io;

namespace RefRuntime.Native.Exports;

internal static unsafe class IoExports
{
    [UnmanagedCallersOnly(EntryPoint = "rr_io_alloc")]
    private static int Alloc(ulong size, IoState** outIo)
    {
        try
        {
            if (outIo == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = RawIo.Allocate(size, out IoState* io);
            // SAFETY: non-NULL out pointer (checked).
            *outIo = io;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_io_wrap")]
    private static int Wrap(void* address, ulong size, IoState** outIo)
    {
        try
        {
            if (outIo == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = RawIo.Wrap(address, size, out IoState* io);
            // SAFETY: non-NULL out pointer (checked).
            *outIo = io;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_io_create_device")]
    private static int CreateDevice(ulong size, delegate* unmanaged<void*, ulong, int, ulong> read, delegate* unmanaged<void*, ulong, int, ulong, void> write, void* ctx, IoState** outIo)
    {
        try
        {
            if (outIo == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = RawIo.CreateDevice(size, read, write, ctx, out IoState* io);
            // SAFETY: non-NULL out pointer (checked).
            *outIo = io;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_io_destroy")]
    private static int Destroy(IoState* io)
    {
        try
        {
            RrStatus s = RawIo.Validate(io);
            if (s == RrStatus.Ok)
            {
                RawIo.Destroy(io);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_io_read")]
    private static int Read(IoState* io, ulong offset, uint flags, ulong* value)
    {
        try
        {
            if (value == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = RawIo.Validate(io);
            ulong v = 0;
            if (s == RrStatus.Ok)
            {
                s = RawIo.Read(io, offset, flags, out v);
            }

            // SAFETY: non-NULL out pointer (checked).
            *value = v;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_io_write")]
    private static int Write(IoState* io, ulong offset, uint flags, ulong value)
    {
        try
        {
            RrStatus s = RawIo.Validate(io);
            return (int)(s == RrStatus.Ok ? RawIo.Write(io, offset, flags, value) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }
}
