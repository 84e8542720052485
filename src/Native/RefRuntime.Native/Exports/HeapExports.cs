// C ABI of the library's leak and use-after-free diagnostics: rr_heap_live_count,
// rr_debug_live_handles, rr_debug_report_leaks, rr_debug_set_poison.

using System;
using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Memory;

namespace RefRuntime.Native.Exports;

internal static class HeapExports
{
    [UnmanagedCallersOnly(EntryPoint = "rr_heap_live_count")]
    private static long HeapLiveCount() => NativeHeap.LiveCount;

    [UnmanagedCallersOnly(EntryPoint = "rr_debug_live_handles")]
    private static long LiveHandles() => ObjectHandle.LiveCount();

    [UnmanagedCallersOnly(EntryPoint = "rr_debug_report_leaks")]
    private static long ReportLeaks()
    {
        try
        {
            long handles = ObjectHandle.LiveCount();
            if (handles != 0)
            {
                Console.Error.WriteLine($"refruntime: {handles} handle(s) never destroyed: {ObjectHandle.Describe()}; {NativeHeap.LiveCount} native block(s) live");
            }

            return handles;
        }
        catch (Exception e)
        {
            return -(long)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_debug_set_poison")]
    private static int DebugSetPoison(byte poison, byte quarantine)
    {
        NativeHeap.PoisonOnFree = poison != 0;
        NativeHeap.Quarantine = quarantine != 0;
        return (int)RrStatus.Ok;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_debug_release_quarantine")]
    private static long DebugReleaseQuarantine() => NativeHeap.ReleaseQuarantine();
}
