// C ABI of revocation: rr_revocable_*, rr_gate_*, rr_devres_* in include/refruntime.h.
// Spec: docs/revocation.md. Every body: validate, one call into Core, map, catch-all.

using System;
using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Revoke;

namespace RefRuntime.Native.Exports;

internal static unsafe class RevokeExports
{
    // ---- revocable ----------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "rr_revocable_create")]
    private static int RevocableCreate(RcuDomainState* d, void* resource, delegate* unmanaged<void*, void*, void> destroy, void* ctx, RevocableState** outR)
    {
        try
        {
            if (outR == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outR = null;
            RawRcuDomain? domain = RawRcuDomain.Default;
            RrStatus s = d == null ? RrStatus.Ok : RawRcuDomain.TryFromState(d, out domain);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            s = RawRevocable.Create(domain!, resource, destroy, ctx, out RevocableState* r);
            *outR = r;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_revocable_try_access")]
    private static void* RevocableTryAccess(RevocableState* r)
    {
        try
        {
            RrStatus s = RawRevocable.Validate(r, out RawRcuDomain? domain);
            if (s != RrStatus.Ok)
            {
                Abi.SetError(s);
                return null;
            }

            return RawRevocable.TryAccess(r, domain!);
        }
        catch (Exception e)
        {
            Abi.Fail(e);
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_revocable_release")]
    private static int RevocableRelease(RevocableState* r)
    {
        try
        {
            RrStatus s = RawRevocable.Validate(r, out RawRcuDomain? domain);
            if (s == RrStatus.Ok && !domain!.ReadUnlock())
            {
                return (int)RrStatus.InvalidArgument; // no access in progress on this thread
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    private static int Revoke(RevocableState* r, byte* revoked, bool wait)
    {
        try
        {
            RrStatus s = RawRevocable.Validate(r, out RawRcuDomain? domain);
            bool did = false;
            if (s == RrStatus.Ok)
            {
                s = RawRevocable.Revoke(r, domain!, wait, out did);
            }

            if (revoked != null)
            {
                // SAFETY: optional out pointer.
                *revoked = did ? (byte)1 : (byte)0;
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_revocable_revoke")]
    private static int RevocableRevoke(RevocableState* r, byte* revoked) => Revoke(r, revoked, wait: true);

    [UnmanagedCallersOnly(EntryPoint = "rr_revocable_revoke_nosync")]
    private static int RevocableRevokeNoSync(RevocableState* r, byte* revoked) => Revoke(r, revoked, wait: false);

    [UnmanagedCallersOnly(EntryPoint = "rr_revocable_destroy")]
    private static int RevocableDestroy(RevocableState* r)
    {
        try
        {
            RrStatus s = RawRevocable.Validate(r, out RawRcuDomain? domain);
            return (int)(s == RrStatus.Ok ? RawRevocable.Free(r, domain!) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    // ---- gate -----------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "rr_gate_create")]
    private static int GateCreate(void** outGate)
    {
        try
        {
            if (outGate == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // Type-stable: the RR_INLINE enter may read the gate's domain through the handle
            // table after the gate is destroyed, so the domain is never freed (CallGate.cs).
            var gate = new CallGate(typeStable: true);
            void* h = ObjectHandle.Alloc(gate, HandleKind.Gate, gate.Domain.State);
            if (h == null)
            {
                gate.Destroy();
            }

            // SAFETY: non-NULL out pointer (checked).
            *outGate = h;
            return (int)(h == null ? RrStatus.OutOfMemory : RrStatus.Ok);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_handle_table")]
    private static void* HandleTable()
    {
        try
        {
            return ObjectHandle.Table;
        }
        catch (Exception e)
        {
            Abi.Fail(e);
            return null;
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gate_enter")]
    private static int GateEnter(void* g)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(g, HandleKind.Gate, out CallGate? gate);
            return (int)(s != RrStatus.Ok ? s : gate!.Enter() == null ? RrStatus.NoDevice : RrStatus.Ok);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gate_leave")]
    private static int GateLeave(void* g)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(g, HandleKind.Gate, out CallGate? gate);
            if (s == RrStatus.Ok && !gate!.Domain.ReadUnlock())
            {
                return (int)RrStatus.InvalidArgument; // not inside a call
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gate_disconnect")]
    private static int GateDisconnect(void* g)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(g, HandleKind.Gate, out CallGate? gate);
            return (int)(s == RrStatus.Ok ? gate!.Disconnect(out _) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gate_destroy")]
    private static int GateDestroy(void* g)
    {
        try
        {
            // RR_EBUSY with a call in flight: the gate stays.
            return (int)ObjectHandle.Destroy<CallGate>(g, HandleKind.Gate, static gate => gate.Destroy());
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    // ---- devres ---------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_create")]
    private static int DevresCreate(void** outList)
    {
        try
        {
            if (outList == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            void* h = ObjectHandle.Alloc(new DevresList(), HandleKind.Devres);
            // SAFETY: non-NULL out pointer (checked).
            *outList = h;
            return (int)(h == null ? RrStatus.OutOfMemory : RrStatus.Ok);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    private static RrStatus List(void* d, out DevresList? list) => ObjectHandle.Resolve(d, HandleKind.Devres, out list);

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_destroy")]
    private static int DevresDestroy(void* d, uint* released)
    {
        try
        {
            int n = 0;
            RrStatus s = ObjectHandle.Destroy<DevresList>(d, HandleKind.Devres, list =>
            {
                n = list.ReleaseAll();
                return RrStatus.Ok;
            });
            if (s == RrStatus.Ok && released != null)
            {
                // SAFETY: optional out pointer.
                *released = (uint)n;
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_add_action")]
    private static int DevresAdd(void* d, delegate* unmanaged<void*, void> action, void* data)
    {
        try
        {
            RrStatus s = List(d, out DevresList? list);
            return (int)(s == RrStatus.Ok ? list!.AddAction(action, data) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_add_action_or_reset")]
    private static int DevresAddOrReset(void* d, delegate* unmanaged<void*, void> action, void* data)
    {
        try
        {
            RrStatus s = List(d, out DevresList? list);
            if (s != RrStatus.Ok)
            {
                // The action cannot be registered: run it now, as add_action_or_reset promises.
                if (action != null)
                {
                    action(data);
                }

                return (int)s;
            }

            return (int)list!.AddActionOrReset(action, data);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_remove_action")]
    private static int DevresRemove(void* d, delegate* unmanaged<void*, void> action, void* data)
    {
        try
        {
            RrStatus s = List(d, out DevresList? list);
            return (int)(s != RrStatus.Ok ? s : list!.RemoveAction(action, data) ? RrStatus.Ok : RrStatus.NotFound);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_release_action")]
    private static int DevresRelease(void* d, delegate* unmanaged<void*, void> action, void* data)
    {
        try
        {
            RrStatus s = List(d, out DevresList? list);
            return (int)(s != RrStatus.Ok ? s : list!.ReleaseAction(action, data) ? RrStatus.Ok : RrStatus.NotFound);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_open_group")]
    private static int DevresOpenGroup(void* d, ulong* id)
    {
        try
        {
            if (id == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = List(d, out DevresList? list);
            if (s == RrStatus.Ok)
            {
                // SAFETY: non-NULL out pointer (checked).
                *id = list!.OpenGroup();
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_close_group")]
    private static int DevresCloseGroup(void* d, ulong id)
    {
        try
        {
            RrStatus s = List(d, out DevresList? list);
            return (int)(s != RrStatus.Ok ? s : list!.CloseGroup(id) ? RrStatus.Ok : RrStatus.NotFound);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_remove_group")]
    private static int DevresRemoveGroup(void* d, ulong id)
    {
        try
        {
            RrStatus s = List(d, out DevresList? list);
            return (int)(s != RrStatus.Ok ? s : list!.RemoveGroup(id) ? RrStatus.Ok : RrStatus.NotFound);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_release_group")]
    private static int DevresReleaseGroup(void* d, ulong id, uint* released)
    {
        try
        {
            RrStatus s = List(d, out DevresList? list);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            int n = list!.ReleaseGroup(id);
            if (released != null)
            {
                // SAFETY: optional out pointer.
                *released = n < 0 ? 0u : (uint)n;
            }

            return (int)(n < 0 ? RrStatus.NotFound : RrStatus.Ok);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_devres_release_all")]
    private static int DevresReleaseAll(void* d, uint* released)
    {
        try
        {
            RrStatus s = List(d, out DevresList? list);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            int n = list!.ReleaseAll();
            if (released != null)
            {
                // SAFETY: optional out pointer.
                *released = (uint)n;
            }

            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }
}
