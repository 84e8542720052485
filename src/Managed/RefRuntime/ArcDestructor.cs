// Managed destructors for native Arc payloads. The Arc header stores a plain unmanaged function
// pointer and a context word, because the last owner may be C code or another runtime in the
// same process. A managed destructor therefore travels as a GCHandle in the context, called
// through one [UnmanagedCallersOnly] trampoline that any native caller can invoke.

using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace RefRuntime;

internal abstract unsafe class ArcDestructor
{
    /// <summary>The trampoline: <c>dtor(payload, ctx)</c> with ctx a GCHandle to an <see cref="ArcDestructor"/>.</summary>
    public static delegate* unmanaged<void*, void*, void> Pointer => &Run;

    /// <summary>A context for <see cref="Pointer"/> that runs <paramref name="action"/> on the payload; free with <see cref="FreeContext"/> if never used.</summary>
    public static void* NewContext<T>(Action<T> action)
        where T : unmanaged =>
        (void*)GCHandle.ToIntPtr(GCHandle.Alloc(new Typed<T>(action)));

    /// <summary>Frees a context that was never handed to a created object.</summary>
    public static void FreeContext(void* context) => GCHandle.FromIntPtr((nint)context).Free();

    protected abstract void Invoke(void* payload);

    [UnmanagedCallersOnly]
    private static void Run(void* payload, void* context)
    {
        GCHandle handle = GCHandle.FromIntPtr((nint)context);
        try
        {
            ((ArcDestructor)handle.Target!).Invoke(payload);
        }
        catch (Exception e)
        {
            // An exception must not unwind into native code (possibly a C caller's frame).
            Environment.FailFast("RefRuntime: an Arc destructor threw.", e);
        }
        finally
        {
            handle.Free();
        }
    }

    private sealed class Typed<T>(Action<T> action) : ArcDestructor
        where T : unmanaged
    {
        // SAFETY: payload is the payload of an Arc<T> created with this destructor.
        protected override void Invoke(void* payload) => action(Unsafe.Read<T>(payload));
    }
}
