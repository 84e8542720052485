// MMIO windows for C callers: native state (rr_io_t in the header, so the RR_INLINE path can
// access plain windows directly) and one generic checked access dispatched on the window kind.

using System;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Memory;

namespace RefRuntime.Core.Io;

/// <summary>The native state of a C window (<c>rr_io_t</c>, 64 bytes).</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
public unsafe struct IoState
{
    /// <summary><see cref="RawIo.MagicLive"/> while the window exists (offset 0).</summary>
    public uint Magic;

    /// <summary>0 = plain memory, 1 = device callbacks (offset 4).</summary>
    public uint Kind;

    /// <summary>Base address of a plain window (offset 8).</summary>
    public byte* Base;

    /// <summary>Window size in bytes (offset 16).</summary>
    public ulong Size;

    /// <summary>Device read callback (offset 24).</summary>
    public delegate* unmanaged<void*, ulong, int, ulong> Read;

    /// <summary>Device write callback (offset 32).</summary>
    public delegate* unmanaged<void*, ulong, int, ulong, void> Write;

    /// <summary>Callback context (offset 40).</summary>
    public void* Context;

    /// <summary>1 when the library allocated <see cref="Base"/> (offset 48).</summary>
    public ulong Owned;
}

/// <summary>Access flags of the generic C accessors: width in bytes | <see cref="BigEndian"/> | <see cref="Relaxed"/>.</summary>
public static class IoFlags
{
    /// <summary>The width bits (1, 2, 4 or 8).</summary>
    public const uint WidthMask = 0xff;

    /// <summary>Big-endian value.</summary>
    public const uint BigEndian = 0x100;

    /// <summary>Relaxed ordering.</summary>
    public const uint Relaxed = 0x200;

    /// <summary>Every defined bit; any other bit makes an access invalid (so that a future flag is never silently ignored).</summary>
    public const uint Known = WidthMask | BigEndian | Relaxed;
}

/// <summary>Operations on <see cref="IoState"/>.</summary>
public static unsafe class RawIo
{
    /// <summary>"RRI1".</summary>
    public const uint MagicLive = 0x3149_5252;

    /// <summary>Plain window kind.</summary>
    public const uint KindPlain = 0;

    /// <summary>Device window kind.</summary>
    public const uint KindDevice = 1;

    private static RrStatus New(out IoState* state)
    {
        state = (IoState*)NativeHeap.AllocZeroed((nuint)sizeof(IoState), 64);
        return state == null ? RrStatus.OutOfMemory : RrStatus.Ok;
    }

    /// <summary>A window over <paramref name="size"/> bytes of zeroed native memory (64-aligned).</summary>
    public static RrStatus Allocate(ulong size, out IoState* state)
    {
        state = null;
        if (size == 0 || size > int.MaxValue)
        {
            return RrStatus.InvalidArgument;
        }

        byte* mem = (byte*)NativeHeap.AllocZeroed((nuint)size, 64);
        if (mem == null || New(out state) != RrStatus.Ok)
        {
            if (mem != null)
            {
                NativeHeap.Free(mem, (nuint)size);
            }

            return RrStatus.OutOfMemory;
        }

        // SAFETY: fresh state block; published by the magic store.
        state->Base = mem;
        state->Size = size;
        state->Owned = 1;
        Volatile.Write(ref state->Magic, MagicLive);
        return RrStatus.Ok;
    }

    /// <summary>A window over the caller's memory (kept mapped by the caller until destroyed; 8-aligned).</summary>
    public static RrStatus Wrap(void* address, ulong size, out IoState* state)
    {
        state = null;
        if (address == null || ((nuint)address & 7) != 0 || size == 0 || (ulong)(nuint)address + size < (ulong)(nuint)address)
        {
            return RrStatus.InvalidArgument;
        }

        RrStatus s = New(out state);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        // SAFETY: fresh state block.
        state->Base = (byte*)address;
        state->Size = size;
        Volatile.Write(ref state->Magic, MagicLive);
        return RrStatus.Ok;
    }

    /// <summary>A device window served by the caller's callbacks.</summary>
    public static RrStatus CreateDevice(ulong size, delegate* unmanaged<void*, ulong, int, ulong> read, delegate* unmanaged<void*, ulong, int, ulong, void> write, void* context, out IoState* state)
    {
        state = null;
        if (size == 0 || read == null || write == null)
        {
            return RrStatus.InvalidArgument;
        }

        RrStatus s = New(out state);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        // SAFETY: fresh state block.
        state->Kind = KindDevice;
        state->Size = size;
        state->Read = read;
        state->Write = write;
        state->Context = context;
        Volatile.Write(ref state->Magic, MagicLive);
        return RrStatus.Ok;
    }

    /// <summary>Validates a handle.</summary>
    public static RrStatus Validate(IoState* s)
    {
        if (s == null)
        {
            return RrStatus.InvalidArgument;
        }

        // SAFETY: best-effort magic check of an aligned pointer (as for Arc handles).
        return ((nuint)s & 63) != 0 || Volatile.Read(ref s->Magic) != MagicLive ? RrStatus.BadHandle : RrStatus.Ok;
    }

    /// <summary>Frees a window (and its memory when the library allocated it).</summary>
    public static void Destroy(IoState* s)
    {
        if (Interlocked.Exchange(ref s->Magic, 0) != MagicLive)
        {
            return;
        }

        if (s->Owned != 0)
        {
            NativeHeap.Free(s->Base, (nuint)s->Size);
        }

        NativeHeap.Free(s, (nuint)sizeof(IoState));
    }

    /// <summary>The plain window of a validated state (kind plain).</summary>
    /// <remarks><b>Safety:</b> <paramref name="s"/> is live and of kind plain.</remarks>
    public static RawIo<RawMemoryBackend> PlainIo(IoState* s) => new(new RawMemoryBackend(s->Base, (nuint)s->Size));

    /// <summary>The device window of a validated state (kind device).</summary>
    /// <remarks><b>Safety:</b> <paramref name="s"/> is live and of kind device.</remarks>
    public static RawIo<CallbackBackend> DeviceIo(IoState* s) => new(new CallbackBackend(s->Read, s->Write, s->Context, (nuint)s->Size));

    /// <summary>One checked read: <see cref="RrStatus.InvalidArgument"/> for a bad width or an unknown flag, or an offset out of bounds, overflowing or misaligned.</summary>
    public static RrStatus Read(IoState* s, ulong offset, uint flags, out ulong value)
    {
        value = 0;
        if (offset > nuint.MaxValue || (flags & ~IoFlags.Known) != 0)
        {
            return RrStatus.InvalidArgument;
        }

        bool ok;
        if (s->Kind == KindPlain)
        {
            var io = new RawIo<RawMemoryBackend>(new RawMemoryBackend(s->Base, (nuint)s->Size));
            ok = Read(io, (nuint)offset, flags, out value);
        }
        else
        {
            var io = new RawIo<CallbackBackend>(new CallbackBackend(s->Read, s->Write, s->Context, (nuint)s->Size));
            ok = Read(io, (nuint)offset, flags, out value);
        }

        return ok ? RrStatus.Ok : RrStatus.InvalidArgument;
    }

    /// <summary>One checked write (see <see cref="Read(IoState*, ulong, uint, out ulong)"/>).</summary>
    public static RrStatus Write(IoState* s, ulong offset, uint flags, ulong value)
    {
        if (offset > nuint.MaxValue || (flags & ~IoFlags.Known) != 0)
        {
            return RrStatus.InvalidArgument;
        }

        bool ok = s->Kind == KindPlain
            ? Write(new RawIo<RawMemoryBackend>(new RawMemoryBackend(s->Base, (nuint)s->Size)), (nuint)offset, flags, value)
            : Write(new RawIo<CallbackBackend>(new CallbackBackend(s->Read, s->Write, s->Context, (nuint)s->Size)), (nuint)offset, flags, value);
        return ok ? RrStatus.Ok : RrStatus.InvalidArgument;
    }

    private static bool Read<T>(RawIo<T> io, nuint offset, uint flags, out ulong value)
        where T : struct, IRawIoBackend
    {
        bool be = (flags & IoFlags.BigEndian) != 0;
        bool ok;
        switch (flags & IoFlags.WidthMask)
        {
            case 1:
                ok = io.TryRead8(offset, out byte b);
                value = b;
                return ok;
            case 2:
                ok = io.TryReadLe16(offset, out ushort h);
                value = be ? BinaryPrimitives.ReverseEndianness(h) : h;
                return ok;
            case 4:
                ok = io.TryReadLe32(offset, out uint w);
                value = be ? BinaryPrimitives.ReverseEndianness(w) : w;
                return ok;
            case 8:
                ok = io.TryReadLe64(offset, out ulong q);
                value = be ? BinaryPrimitives.ReverseEndianness(q) : q;
                return ok;
            default:
                value = 0;
                return false;
        }
    }

    private static bool Write<T>(RawIo<T> io, nuint offset, uint flags, ulong value)
        where T : struct, IRawIoBackend
    {
        bool be = (flags & IoFlags.BigEndian) != 0;
        return (flags & IoFlags.WidthMask) switch
        {
            1 => value <= byte.MaxValue && io.TryWrite8((byte)value, offset),
            2 => value <= ushort.MaxValue && io.TryWriteLe16(be ? BinaryPrimitives.ReverseEndianness((ushort)value) : (ushort)value, offset),
            4 => value <= uint.MaxValue && io.TryWriteLe32(be ? BinaryPrimitives.ReverseEndianness((uint)value) : (uint)value, offset),
            8 => io.TryWriteLe64(be ? BinaryPrimitives.ReverseEndianness(value) : value, offset),
            _ => false,
        };
    }
}
