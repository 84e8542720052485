// The per-thread last error of the C ABI and the helpers every export uses. The status codes are
// RefRuntime.Core.RrStatus (rr_status in include/refruntime.h).

using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using RefRuntime.Core;

namespace RefRuntime.Native.Exports;

/// <summary>Helpers every export uses: argument checks, error recording, the catch-all mapping.</summary>
internal static unsafe class Abi
{
    [ThreadStatic]
    private static RrStatus t_lastError;

    private static int s_internalReported;

    /// <summary>Records <paramref name="status"/> as the calling thread's last error.</summary>
    internal static void SetError(RrStatus status) => t_lastError = status;

    /// <summary>Maps an exception caught at the boundary to a status and records it.</summary>
    internal static RrStatus Fail(Exception e)
    {
        RrStatus status = e switch
        {
            // A handle destroyed by another thread while this call was on its way in.
            ObjectDisposedException => RrStatus.BadHandle,
            ArgumentException => RrStatus.InvalidArgument,
            OutOfMemoryException => RrStatus.OutOfMemory,
            _ => RrStatus.Internal,
        };
        if (status == RrStatus.Internal && System.Threading.Interlocked.Exchange(ref s_internalReported, 1) == 0)
        {
            Console.Error.WriteLine($"refruntime: internal error caught at the C boundary: {e}");
        }

        t_lastError = status;
        return status;
    }

    /// <summary>True when <paramref name="p"/> is non-NULL and 4-byte aligned; otherwise records EINVAL.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool CheckCounter(void* p)
    {
        if (p != null && ((nuint)p & 3) == 0)
        {
            return true;
        }

        t_lastError = RrStatus.InvalidArgument;
        return false;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_take_last_error")]
    private static int TakeLastError()
    {
        RrStatus s = t_lastError;
        t_lastError = RrStatus.Ok;
        return (int)s;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_status_str")]
    private static byte* StatusString(int status)
    {
        ReadOnlySpan<byte> text = (RrStatus)status switch
        {
            RrStatus.Ok => "success"u8,
            RrStatus.InvalidArgument => "invalid argument"u8,
            RrStatus.OutOfMemory => "out of memory"u8,
            RrStatus.Internal => "internal error"u8,
            RrStatus.BadHandle => "not a live object of the expected kind"u8,
            RrStatus.WouldDeadlock => "would deadlock"u8,
            RrStatus.Busy => "busy"u8,
            RrStatus.NoDevice => "no device"u8,
            RrStatus.NotFound => "not found"u8,
            RrStatus.Broken => "queue broken by its peer; reset it"u8,
            RrStatus.NoSpace => "no space"u8,
            RrStatus.Malformed => "malformed descriptor chain"u8,
            _ => "unknown status"u8,
        };
        // SAFETY: UTF-8 literals are NUL-terminated and live in the image's read-only data for the
        // life of the process; they never move.
        return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(text));
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_version")]
    private static uint Version() => (BuildVersion.Major << 16) | (BuildVersion.Minor << 8) | BuildVersion.Patch;
}
