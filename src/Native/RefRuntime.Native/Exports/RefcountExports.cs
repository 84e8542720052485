// C ABI of the saturating refcount: rr_refcount_* in include/refruntime.h.
// Spec: docs/refcount.md. Every body: validate, one call into Core, map, catch-all.
//
// A NULL or misaligned rr_refcount_t* is never dereferenced: the call records RR_EINVAL as the
// thread's last error and returns the documented safe answer (never "you may free the object").

using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Sync;

namespace RefRuntime.Native.Exports;

internal static unsafe partial class RefcountExports
{
    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_set")]
    private static void Set(int* r, int n)
    {
        if (Abi.CheckCounter(r))
        {
            // SAFETY: r is non-NULL and aligned (checked above); the caller owns the memory.
            Refcount.Set(ref *r, n);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_read")]
    private static int Read(int* r)
    {
        // SAFETY: dereferenced only after the check.
        return Abi.CheckCounter(r) ? Refcount.Read(ref *r) : 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_add")]
    private static void Add(int i, int* r)
    {
        try
        {
            if (Abi.CheckCounter(r))
            {
                // SAFETY: r is non-NULL and aligned (checked above).
                Refcount.Add(i, ref *r);
            }
        }
        catch (Exception e)
        {
            Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_inc")]
    private static void Inc(int* r)
    {
        try
        {
            if (Abi.CheckCounter(r))
            {
                // SAFETY: r is non-NULL and aligned (checked above).
                Refcount.Inc(ref *r);
            }
        }
        catch (Exception e)
        {
            Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_add_not_zero")]
    private static byte AddNotZero(int i, int* r)
    {
        try
        {
            // SAFETY: r is non-NULL and aligned (checked first).
            return Abi.CheckCounter(r) && Refcount.AddNotZero(i, ref *r) ? (byte)1 : (byte)0;
        }
        catch (Exception e)
        {
            Abi.Fail(e);
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_inc_not_zero")]
    private static byte IncNotZero(int* r)
    {
        try
        {
            // SAFETY: r is non-NULL and aligned (checked first).
            return Abi.CheckCounter(r) && Refcount.IncNotZero(ref *r) ? (byte)1 : (byte)0;
        }
        catch (Exception e)
        {
            Abi.Fail(e);
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_sub_and_test")]
    private static byte SubAndTest(int i, int* r)
    {
        try
        {
            // SAFETY: r is non-NULL and aligned (checked first).
            return Abi.CheckCounter(r) && Refcount.SubAndTest(i, ref *r) ? (byte)1 : (byte)0;
        }
        catch (Exception e)
        {
            Abi.Fail(e);
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_dec_and_test")]
    private static byte DecAndTest(int* r)
    {
        try
        {
            // SAFETY: r is non-NULL and aligned (checked first).
            return Abi.CheckCounter(r) && Refcount.DecAndTest(ref *r) ? (byte)1 : (byte)0;
        }
        catch (Exception e)
        {
            Abi.Fail(e);
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_dec")]
    private static void Dec(int* r)
    {
        try
        {
            if (Abi.CheckCounter(r))
            {
                // SAFETY: r is non-NULL and aligned (checked above).
                Refcount.Dec(ref *r);
            }
        }
        catch (Exception e)
        {
            Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_dec_if_one")]
    private static byte DecIfOne(int* r)
    {
        // SAFETY: r is non-NULL and aligned (checked first).
        return Abi.CheckCounter(r) && Refcount.DecIfOne(ref *r) ? (byte)1 : (byte)0;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_dec_not_one")]
    private static byte DecNotOne(int* r)
    {
        try
        {
            // A bad pointer answers true ("decremented, nothing more to do"): the caller then
            // neither takes a lock nor frees anything.
            // SAFETY: r is non-NULL and aligned (checked first).
            return !Abi.CheckCounter(r) || Refcount.DecNotOne(ref *r) ? (byte)1 : (byte)0;
        }
        catch (Exception e)
        {
            Abi.Fail(e);
            return 1;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_dec_and_lock")]
    private static byte DecAndLock(int* r, void* mutex)
    {
        try
        {
            if (!Abi.CheckCounter(r) || mutex == null)
            {
                Abi.SetError(RrStatus.InvalidArgument);
                return 0;
            }

            var lk = new PthreadMutex(mutex);
            // SAFETY: r is non-NULL and aligned (checked above); mutex is the caller's initialised
            // pthread_mutex_t (contract in the header).
            return Refcount.DecAndLock(ref *r, ref lk) ? (byte)1 : (byte)0;
        }
        catch (Exception e)
        {
            Abi.Fail(e);
            return 0;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_warn_saturate")]
    private static void WarnSaturate(int* r, int type)
    {
        try
        {
            if (!Abi.CheckCounter(r) || (uint)type >= Refcount.WarningTypeCount)
            {
                Abi.SetError(RrStatus.InvalidArgument);
                return;
            }

            // SAFETY: r is non-NULL and aligned (checked above).
            Refcount.WarnSaturate(ref *r, (RefcountWarning)type);
        }
        catch (Exception e)
        {
            Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_warn_count")]
    private static ulong WarnCount(int type)
    {
        if ((uint)type >= Refcount.WarningTypeCount)
        {
            Abi.SetError(RrStatus.InvalidArgument);
            return ulong.MaxValue;
        }

        return Refcount.WarningCount((RefcountWarning)type);
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_refcount_set_warn_handler")]
    private static int SetWarnHandler(delegate* unmanaged<int*, int, void*, void> fn, void* ctx)
    {
        try
        {
            RefcountWarnHandler? handler = null;
            if (fn != null)
            {
                nint f = (nint)fn;
                nint c = (nint)ctx;
                // SAFETY: the caller guarantees fn stays callable and ctx valid until the handler
                // is replaced (header contract).
                handler = (counter, type) => ((delegate* unmanaged<int*, int, void*, void>)f)(counter, (int)type, (void*)c);
            }

            Refcount.SetWarnHandler(handler);
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    /// <summary>A caller's pthread_mutex_t as an <see cref="IRefcountLock"/>.</summary>
    private readonly struct PthreadMutex(void* mutex) : IRefcountLock
    {
        public void Enter()
        {
            int rc = pthread_mutex_lock(mutex);
            if (rc != 0)
            {
                throw new ArgumentException($"pthread_mutex_lock failed with error {rc}.", nameof(mutex));
            }
        }

        public void Exit() => pthread_mutex_unlock(mutex);
    }

    [LibraryImport("libc")]
    private static partial int pthread_mutex_lock(void* mutex);

    [LibraryImport("libc")]
    private static partial int pthread_mutex_unlock(void* mutex);
}
