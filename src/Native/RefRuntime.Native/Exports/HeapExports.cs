// C ABI of the library's native heap diagnostics: rr_heap_live_count, rr_debug_set_poison.

using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Memory;

namespace RefRuntime.Native.Exports;

internal static class HeapExports
{
    [UnmanagedCallersOnly(EntryPoint = "rr_heap_live_count")]
    private static long HeapLiveCount() => NativeHeap.LiveCount;

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
