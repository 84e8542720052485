// Status codes and the per-thread last error of the C ABI (include/refruntime.h, "Status codes").

using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace RefRuntime.Native.Exports;

/// <summary>The C ABI's <c>rr_status</c>. Values are part of the ABI: add, never renumber.</summary>
internal enum Status
{
    /// <summary><c>RR_OK</c>.</summary>
    Ok = 0,

    /// <summary><c>RR_EINVAL</c>: an argument was NULL, misaligned or out of range.</summary>
    InvalidArgument = 1,

    /// <summary><c>RR_ENOMEM</c>: an allocation failed.</summary>
    OutOfMemory = 2,

    /// <summary><c>RR_EINTERNAL</c>: an unexpected internal error was caught at the boundary.</summary>
    Internal = 3,
}

/// <summary>Helpers every export uses: argument checks, error recording, the catch-all mapping.</summary>
internal static unsafe class Abi
{
    [ThreadStatic]
    private static Status t_lastError;

    private static int s_internalReported;

    /// <summary>Records <paramref name="status"/> as the calling thread's last error.</summary>
    internal static void SetError(Status status) => t_lastError = status;

    /// <summary>Maps an exception caught at the boundary to a status and records it.</summary>
    internal static Status Fail(Exception e)
    {
        Status status = e switch
        {
            ArgumentException => Status.InvalidArgument,
            OutOfMemoryException => Status.OutOfMemory,
            _ => Status.Internal,
        };
        if (status == Status.Internal && System.Threading.Interlocked.Exchange(ref s_internalReported, 1) == 0)
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

        t_lastError = Status.InvalidArgument;
        return false;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_take_last_error")]
    private static int TakeLastError()
    {
        Status s = t_lastError;
        t_lastError = Status.Ok;
        return (int)s;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_status_str")]
    private static byte* StatusString(int status)
    {
        ReadOnlySpan<byte> text = (Status)status switch
        {
            Status.Ok => "success"u8,
            Status.InvalidArgument => "invalid argument"u8,
            Status.OutOfMemory => "out of memory"u8,
            Status.Internal => "internal error"u8,
            _ => "unknown status"u8,
        };
        // SAFETY: UTF-8 literals are NUL-terminated and live in the image's read-only data for the
        // life of the process; they never move.
        return (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(text));
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_version")]
    private static uint Version() => (0u << 16) | (1u << 8) | 0u;
}
