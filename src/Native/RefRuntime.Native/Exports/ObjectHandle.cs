// C handles for objects whose state is managed (a gate, a devres list): a small native block
// {magic, GCHandle} so that a C pointer is validated by magic and kind before the object is
// reached, and a freed handle (magic cleared) is refused rather than followed.

using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core;
using RefRuntime.Core.Memory;

namespace RefRuntime.Native.Exports;

internal static unsafe class ObjectHandle
{
    /// <summary>"RRG1": a call gate.</summary>
    public const uint GateMagic = 0x3147_5252;

    /// <summary>"RRD1": a devres list.</summary>
    public const uint DevresMagic = 0x3144_5252;

    [StructLayout(LayoutKind.Sequential)]
    private struct Block
    {
        public uint Magic;
        public uint Reserved;
        public nint Handle;
    }

    public static void* Alloc(object target, uint magic)
    {
        Block* b = (Block*)NativeHeap.AllocZeroed((nuint)sizeof(Block), 16);
        if (b == null)
        {
            return null;
        }

        // SAFETY: fresh block; published by the magic store.
        b->Handle = GCHandle.ToIntPtr(GCHandle.Alloc(target));
        Volatile.Write(ref b->Magic, magic);
        return b;
    }

    public static RrStatus Resolve<T>(void* handle, uint magic, out T? target)
        where T : class
    {
        target = null;
        if (handle == null)
        {
            return RrStatus.InvalidArgument;
        }

        Block* b = (Block*)handle;
        // SAFETY: best-effort magic check of an aligned pointer (as for Arc handles).
        if (((nuint)b & 15) != 0 || Volatile.Read(ref b->Magic) != magic)
        {
            return RrStatus.BadHandle;
        }

        target = GCHandle.FromIntPtr(b->Handle).Target as T;
        return target is null ? RrStatus.BadHandle : RrStatus.Ok;
    }

    public static void Free(void* handle)
    {
        Block* b = (Block*)handle;
        // SAFETY: resolved (validated) by the caller just before.
        if (Interlocked.Exchange(ref b->Magic, 0) != 0)
        {
            GCHandle.FromIntPtr(b->Handle).Free();
            NativeHeap.Free(b, (nuint)sizeof(Block));
        }
    }
}
