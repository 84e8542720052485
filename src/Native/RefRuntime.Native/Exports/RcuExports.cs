// C ABI of RCU: rr_rcu_* in include/refruntime.h. Spec: docs/rcu.md. A domain handle is the domain's
// native state (rr_rcu_domain_t *), validated by magic; every body: validate, one call into
// Core, map, catch-all.

using System;
using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Rcu;

namespace RefRuntime.Native.Exports;

internal static unsafe class RcuExports
{
    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_default_domain")]
    private static RcuDomainState* DefaultDomain() => RawRcuDomain.Default.State;

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_domain_create")]
    private static int Create(RcuDomainState** outDomain)
    {
        try
        {
            if (outDomain == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked). A C-owned domain is pinned until destroyed.
            *outDomain = new RawRcuDomain(pinned: true).State;
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_domain_destroy")]
    private static int Destroy(RcuDomainState* d)
    {
        try
        {
            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            return (int)(s == RrStatus.Ok ? domain!.Destroy() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_read_lock")]
    private static int ReadLock(RcuDomainState* d)
    {
        try
        {
            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            if (s == RrStatus.Ok)
            {
                domain!.ReadLock();
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_read_unlock")]
    private static int ReadUnlock(RcuDomainState* d)
    {
        try
        {
            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            if (s == RrStatus.Ok && !domain!.ReadUnlock())
            {
                return (int)RrStatus.InvalidArgument; // not inside a section
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_reader")]
    private static int Reader(RcuDomainState* d, RcuReader** outReader)
    {
        try
        {
            if (outReader == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outReader = null;
            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            if (s == RrStatus.Ok)
            {
                *outReader = domain!.CurrentReader();
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_synchronize")]
    private static int Synchronize(RcuDomainState* d)
    {
        try
        {
            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            return (int)(s == RrStatus.Ok ? domain!.Synchronize() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_call")]
    private static int Call(RcuDomainState* d, RcuHead* head, delegate* unmanaged<RcuHead*, void> func)
    {
        try
        {
            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            return (int)(s == RrStatus.Ok ? domain!.Call(head, func) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_barrier")]
    private static int Barrier(RcuDomainState* d)
    {
        try
        {
            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            return (int)(s == RrStatus.Ok ? domain!.Barrier() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_start_poll")]
    private static int StartPoll(RcuDomainState* d, ulong* cookie)
    {
        try
        {
            if (cookie == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            if (s == RrStatus.Ok)
            {
                // SAFETY: non-NULL out pointer (checked).
                *cookie = domain!.StartPoll();
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_poll")]
    private static int Poll(RcuDomainState* d, ulong cookie, byte* done)
    {
        try
        {
            if (done == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            // SAFETY: non-NULL out pointer (checked).
            *done = s == RrStatus.Ok && domain!.Poll(cookie) ? (byte)1 : (byte)0;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_set_stall_handler")]
    private static int SetStallHandler(RcuDomainState* d, ulong thresholdNs, delegate* unmanaged<void*, int, ulong, void> fn, void* ctx)
    {
        try
        {
            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            Action<RawRcuStall>? handler = null;
            if (fn != null)
            {
                nint f = (nint)fn, c = (nint)ctx;
                // SAFETY: the caller keeps fn callable and ctx valid until the handler is replaced.
                handler = stall => ((delegate* unmanaged<void*, int, ulong, void>)f)((void*)c, stall.ThreadId, (ulong)(stall.Waited.Ticks * 100));
            }

            domain!.SetStallHandler(TimeSpan.FromTicks((long)(thresholdNs / 100)), handler);
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_set_max_pending")]
    private static int SetMaxPending(RcuDomainState* d, ulong max)
    {
        try
        {
            if (max == 0 || max > long.MaxValue)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            if (s == RrStatus.Ok)
            {
                domain!.MaxPendingCallbacks = (long)max;
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_rcu_stats")]
    private static int Stats(RcuDomainState* d, ulong* stats)
    {
        try
        {
            if (stats == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = RawRcuDomain.TryFromState(d, out RawRcuDomain? domain);
            if (s == RrStatus.Ok)
            {
                // SAFETY: rr_rcu_stats_t is four uint64_t (header); non-NULL (checked).
                stats[0] = (ulong)domain!.CompletedGracePeriods;
                stats[1] = (ulong)domain.PendingCallbacks;
                stats[2] = (ulong)domain.OverflowedCalls;
                stats[3] = (ulong)domain.ReaderRecordCount;
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }
}
