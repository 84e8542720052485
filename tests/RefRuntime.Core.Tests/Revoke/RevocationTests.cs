using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Revoke;
using RefRuntime.Core.Tests.Support;
using Xunit;

namespace RefRuntime.Core.Tests.Revoke;

/// <summary>Revocable, CallGate and DevresList semantics (docs/revocation.md).</summary>
public sealed unsafe class RevocationTests : IDisposable
{
    private readonly RawRcuDomain _d = new();

    public void Dispose() => _d.Dispose();

    private sealed class Resource
    {
        public int Released;
    }

    // Revoke waits for an access in flight, then releases once; later accesses fail.
    [Fact]
    public void Revocable_RevokeWaitsForAccessInFlight_ReleasesOnce()
    {
        var res = new Resource();
        var r = new RawRevocable<Resource>(_d, res, x => Interlocked.Increment(ref x.Released));
        var inside = new ManualResetEventSlim();
        var leave = new ManualResetEventSlim();
        var t = new Thread(() =>
        {
            Resource? v = r.TryAccess(out RcuReader* rec);
            Assert.NotNull(v);
            inside.Set();
            leave.Wait();
            Assert.Equal(0, Volatile.Read(ref v!.Released)); // still valid during the access
            RawRcuDomain.ReadUnlock(rec);
        });
        t.Start();
        inside.Wait();
        bool revoked = false;
        var revoke = Background<RrStatus>.Run(() => r.Revoke(out revoked));
        Assert.False(revoke.Wait(150));
        Assert.True(r.IsRevoked); // new accesses fail at once
        Assert.Null(r.TryAccess(out _));
        leave.Set();
        Assert.True(revoke.Wait(60_000));
        Assert.Equal(RrStatus.Ok, revoke.Result);
        Assert.True(revoked);
        Assert.Equal(1, res.Released);
        t.Join();
    }

    // Concurrent revokes: exactly one does it, the resource is released once.
    [Fact]
    public void Revocable_ConcurrentRevokes_ExactlyOneWins()
    {
        for (int round = 0; round < 50; round++)
        {
            var res = new Resource();
            var r = new RawRevocable<Resource>(_d, res, x => Interlocked.Increment(ref x.Released));
            int winners = 0;
            var threads = new Thread[4];
            for (int i = 0; i < threads.Length; i++)
            {
                threads[i] = new Thread(() =>
                {
                    r.Revoke(out bool did);
                    if (did)
                    {
                        Interlocked.Increment(ref winners);
                    }
                });
                threads[i].Start();
            }

            foreach (Thread th in threads)
            {
                th.Join();
            }

            Assert.Equal(1, winners);
            Assert.Equal(1, res.Released);
        }
    }

    // Revoke from inside an access would wait for itself: refused, nothing revoked.
    [Fact]
    public void Revocable_RevokeDuringAccess_WouldDeadlockNothingRevoked()
    {
        var r = new RawRevocable<Resource>(_d, new Resource());
        Resource? v = r.TryAccess(out RcuReader* rec);
        Assert.NotNull(v);
        Assert.Equal(RrStatus.WouldDeadlock, r.Revoke(out bool did));
        Assert.False(did);
        Assert.False(r.IsRevoked);
        RawRcuDomain.ReadUnlock(rec);
        Assert.True(r.RevokeNoSync());
        Assert.False(r.RevokeNoSync());
    }

    // The native form: destroy runs once with the resource and context.
    [Fact]
    public void RawRevocable_RevokeDestroysOnce_AccessFailsAfter()
    {
        s_destroyed = 0;
        long resource = 7;
        Assert.Equal(RrStatus.Ok, RawRevocable.Create(_d, &resource, &Destroy, (void*)42, out RevocableState* s));
        void* p = RawRevocable.TryAccess(s, _d);
        Assert.True(p == &resource);
        _d.ReadUnlock();
        Assert.Equal(RrStatus.Ok, RawRevocable.Revoke(s, _d, wait: true, out bool did));
        Assert.True(did);
        Assert.Equal(1, s_destroyed);
        Assert.True(RawRevocable.TryAccess(s, _d) == null);
        Assert.False(_d.InReadSection); // a failed access leaves no section open
        Assert.Equal(RrStatus.Ok, RawRevocable.Revoke(s, _d, wait: true, out did));
        Assert.False(did);
        Assert.Equal(RrStatus.Ok, RawRevocable.Free(s, _d));
        Assert.Equal(RrStatus.InvalidArgument, RawRevocable.Create(_d, null, null, null, out _));
    }

    private static int s_destroyed;

    [UnmanagedCallersOnly]
    private static void Destroy(void* resource, void* ctx)
    {
        Assert.Equal(7, *(long*)resource);
        Assert.Equal(42, (nint)ctx);
        Interlocked.Increment(ref s_destroyed);
    }

    // The gate: disconnect waits for calls in flight, refuses new ones at once and after.
    [Fact]
    public void CallGate_DisconnectDrainsInFlight_RefusesAfter()
    {
        using var gate = new CallGate();
        var inside = new ManualResetEventSlim();
        var leave = new ManualResetEventSlim();
        var t = new Thread(() =>
        {
            RcuReader* r = gate.Enter();
            Assert.True(r != null);
            RcuReader* nested = gate.Enter(); // nestable
            Assert.True(nested != null);
            CallGate.Leave(nested);
            inside.Set();
            leave.Wait();
            CallGate.Leave(r);
        });
        t.Start();
        inside.Wait();
        bool first = false;
        var disconnect = Background<RrStatus>.Run(() => gate.Disconnect(out first));
        Assert.False(disconnect.Wait(150)); // a call is in flight
        Assert.True(gate.IsDisconnected);
        Assert.True(gate.Enter() == null); // refused at once
        leave.Set();
        Assert.True(disconnect.Wait(60_000));
        Assert.Equal(RrStatus.Ok, disconnect.Result);
        Assert.True(first);
        Assert.True(gate.Enter() == null);
        Assert.Equal(RrStatus.Ok, gate.Disconnect(out bool again));
        Assert.False(again);
        t.Join();
    }

    // Disconnect from inside a call cannot wait for itself.
    [Fact]
    public void CallGate_DisconnectInsideCall_WouldDeadlock()
    {
        using var gate = new CallGate();
        RcuReader* r = gate.Enter();
        Assert.Equal(RrStatus.WouldDeadlock, gate.Disconnect(out _));
        Assert.True(gate.Enter() == null); // still closed to new calls
        CallGate.Leave(r);
        Assert.Equal(RrStatus.Ok, gate.Disconnect(out _));
    }

    // A refused destroy leaves the gate exactly as it was (open, or disconnected).
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void CallGate_DestroyWithCallInFlight_Busy_GateUnchanged(bool typeStable)
    {
        var gate = new CallGate(typeStable);
        RcuReader* r = gate.Enter();
        Assert.True(r != null);
        Assert.Equal(RrStatus.Busy, gate.Destroy());
        Assert.False(gate.IsDisconnected);
        RcuReader* again = gate.Enter(); // still open
        Assert.True(again != null);
        CallGate.Leave(again);
        CallGate.Leave(r);
        Assert.Equal(RrStatus.Ok, gate.Disconnect(out _));
        Assert.Equal(CallGate.Disconnected, gate.Domain.State->GateWord & 3);
        Assert.Equal(RrStatus.Ok, gate.Destroy());
        Assert.Equal(RrStatus.Ok, gate.Destroy()); // twice: nothing more to do
    }

    // A type-stable gate's domain outlives it and goes to the next such gate, whose token differs:
    // the destroyed gate's object can neither enter nor close its successor.
    [Fact]
    public void CallGate_TypeStable_DomainReused_StaleGateCannotEnterOrCloseIt()
    {
        var g1 = new CallGate(typeStable: true);
        RawRcuDomain d = g1.Domain;
        RcuDomainState* state = d.State;
        ulong open1 = g1.OpenWord;
        Assert.Equal(open1, state->GateWord);
        Assert.Equal(RrStatus.Ok, g1.Destroy());
        Assert.False(d.IsDisposed); // never freed
        Assert.Equal(0UL, state->GateWord);
        Assert.True(g1.Enter() == null);
        Assert.Throws<ObjectDisposedException>(() => g1.Disconnect(out _));

        var g2 = new CallGate(typeStable: true);
        try
        {
            Assert.NotEqual(open1, g2.OpenWord);
            if (ReferenceEquals(g2.Domain, d))
            {
                Assert.Equal(g2.OpenWord, state->GateWord);
            }

            Assert.True(g1.Enter() == null); // the old gate, even on its old domain
            Assert.False(g1.InCall);
            RcuReader* r = g2.Enter();
            Assert.True(r != null);
            Assert.True(g2.InCall);
            CallGate.Leave(r);
        }
        finally
        {
            Assert.Equal(RrStatus.Ok, g2.Destroy());
        }
    }

    // The pool's domains stay out of the native leak count.
    [Fact]
    public void CallGate_TypeStable_NotCountedAsNativeLeak()
    {
        new CallGate(typeStable: true).Destroy(); // warm the pool
        long live0 = RefRuntime.Core.Memory.NativeHeap.LiveCount;
        for (int i = 0; i < 5; i++)
        {
            var g = new CallGate(typeStable: true);
            RcuReader* r = g.Enter();
            CallGate.Leave(r);
            Assert.Equal(RrStatus.Ok, g.Destroy());
        }

        Assert.Equal(live0, RefRuntime.Core.Memory.NativeHeap.LiveCount);
    }

    // devres: LIFO release, newest match, groups and nesting.
    [Fact]
    public void Devres_ReleaseAll_IsLifo()
    {
        var list = new DevresList();
        var order = new List<int>();
        for (int i = 1; i <= 5; i++)
        {
            int k = i;
            list.Add(() => order.Add(k));
        }

        Assert.Equal(5, list.ReleaseAll());
        Assert.Equal(new[] { 5, 4, 3, 2, 1 }, order);
        Assert.Equal(0, list.Count);
    }

    [Fact]
    public void Devres_RemoveAndRelease_MatchNewestOnly()
    {
        var list = new DevresList();
        int ran = 0;
        Action a = () => ran++;
        list.Add(a);
        list.Add(a);
        Assert.True(list.Remove(a)); // newest, not run
        Assert.Equal(0, ran);
        Assert.True(list.Release(a)); // the other, run
        Assert.Equal(1, ran);
        Assert.False(list.Release(a));
        Assert.Equal(0, list.ReleaseAll());
    }

    // A probe with five acquisitions fails at the fourth: exactly the three before it are released, newest first.
    [Fact]
    public void Devres_ReleaseGroup_RollsBackOnlyTheGroupInReverse()
    {
        var list = new DevresList();
        var order = new List<string>();
        list.Add(() => order.Add("before"));
        ulong g = list.OpenGroup();
        list.Add(() => order.Add("a1"));
        list.Add(() => order.Add("a2"));
        ulong nested = list.OpenGroup();
        list.Add(() => order.Add("a3"));
        Assert.True(list.CloseGroup(nested));
        // acquisition 4 fails here
        Assert.Equal(3, list.ReleaseGroup(g));
        Assert.Equal(new[] { "a3", "a2", "a1" }, order);
        Assert.Equal(-1, list.ReleaseGroup(g));
        Assert.Equal(1, list.ReleaseAll());
        Assert.Equal("before", order[^1]);
    }

    // Issue 16.3, case 1: G2 opened inside G1, closed after it. Releasing G1 leaves G2 a group.
    [Fact]
    public void Devres_ReleaseGroup_OverlappingGroupOpenedInside_KeepsItsMarkers()
    {
        var list = new DevresList();
        var order = new List<int>();
        ulong g1 = list.OpenGroup();
        list.Add(() => order.Add(1));
        ulong g2 = list.OpenGroup();
        list.Add(() => order.Add(2));
        Assert.True(list.CloseGroup(g1));
        list.Add(() => order.Add(3));
        Assert.True(list.CloseGroup(g2));
        list.Add(() => order.Add(4));
        Assert.Equal(2, list.ReleaseGroup(g1));
        Assert.Equal(new[] { 2, 1 }, order);
        Assert.Equal(1, list.ReleaseGroup(g2)); // still a group, and only its own range
        Assert.Equal(new[] { 2, 1, 3 }, order);
        Assert.Equal(1, list.ReleaseAll());
        Assert.Equal(4, order[^1]);
    }

    // Issue 16.3, case 2: G2 opened before G1, closed inside it. G2 never becomes open-ended,
    // so its release never frees an action added after it was closed.
    [Fact]
    public void Devres_ReleaseGroup_OverlappingGroupClosedInside_NeverGrows()
    {
        var list = new DevresList();
        var order = new List<int>();
        ulong g2 = list.OpenGroup();
        list.Add(() => order.Add(1));
        ulong g1 = list.OpenGroup();
        list.Add(() => order.Add(2));
        Assert.True(list.CloseGroup(g2));
        list.Add(() => order.Add(3));
        Assert.True(list.CloseGroup(g1));
        list.Add(() => order.Add(4));
        Assert.Equal(2, list.ReleaseGroup(g1));
        Assert.Equal(new[] { 3, 2 }, order);
        Assert.Equal(1, list.ReleaseGroup(g2));
        Assert.Equal(new[] { 3, 2, 1 }, order);
        Assert.False(list.CloseGroup(g2)); // closed still, not open-ended
        Assert.Equal(1, list.ReleaseAll());
        Assert.Equal(4, order[^1]);
    }

    // Id 0 is the newest open group in release and remove too (the kernel's NULL id).
    [Fact]
    public void Devres_ReleaseAndRemoveGroup_IdZero_NewestOpenGroup()
    {
        var list = new DevresList();
        var order = new List<int>();
        Assert.Equal(-1, list.ReleaseGroup(0));
        Assert.False(list.RemoveGroup(0));
        ulong g1 = list.OpenGroup();
        list.Add(() => order.Add(1));
        list.OpenGroup();
        list.Add(() => order.Add(2));
        Assert.Equal(1, list.ReleaseGroup(0));
        Assert.Equal(new[] { 2 }, order);
        Assert.True(list.RemoveGroup(0)); // g1: markers only
        Assert.Equal(-1, list.ReleaseGroup(g1));
        Assert.Equal(1, list.ReleaseAll());
        Assert.Equal(new[] { 2, 1 }, order);
    }

    // RemoveGroup keeps the resources: they go with the device later.
    [Fact]
    public void Devres_RemoveGroup_KeepsResources()
    {
        var list = new DevresList();
        int ran = 0;
        ulong g = list.OpenGroup();
        list.Add(() => ran++);
        Assert.True(list.CloseGroup(0)); // 0 = newest open group
        Assert.False(list.CloseGroup(g)); // already closed
        Assert.True(list.RemoveGroup(g));
        Assert.False(list.RemoveGroup(g));
        Assert.Equal(-1, list.ReleaseGroup(g));
        Assert.Equal(0, ran);
        Assert.Equal(1, list.ReleaseAll());
        Assert.Equal(1, ran);
    }

    // Every action runs even when one throws; the failures are reported together.
    [Fact]
    public void Devres_ThrowingAction_OthersStillRun()
    {
        var list = new DevresList();
        int ran = 0;
        list.Add(() => ran++);
        list.Add(() => throw new InvalidOperationException("boom"));
        list.Add(() => ran++);
        var e = Assert.Throws<AggregateException>(() => list.ReleaseAll());
        Assert.Single(e.InnerExceptions);
        Assert.Equal(2, ran);
    }

    // Concurrent Remove on one list unlinks exactly the matching entry: each thread removes its
    // own actions while others add and remove theirs; at the end only the kept actions run.
    [Fact]
    [Trait("Category", "Stress")]
    public void Devres_ConcurrentRemove_UnlinksOnlyTheMatchingEntry()
    {
        var list = new DevresList();
        const int threads = 4, each = 2000;
        var ran = new int[threads * each];
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int me = t;
            workers[t] = new Thread(() =>
            {
                for (int i = 0; i < each; i++)
                {
                    int id = me * each + i;
                    Action a = () => Interlocked.Increment(ref ran[id]);
                    list.Add(a);
                    if (i % 2 == 0)
                    {
                        Assert.True(list.Remove(a)); // drop the even ones again
                    }
                }
            });
            workers[t].Start();
        }

        foreach (Thread w in workers)
        {
            w.Join();
        }

        Assert.Equal(threads * each / 2, list.ReleaseAll());
        for (int id = 0; id < ran.Length; id++)
        {
            Assert.Equal(id % each % 2 == 0 ? 0 : 1, ran[id]);
        }
    }

    // C actions: add, match on (function, context), or-reset.
    [Fact]
    public void Devres_NativeActions_MatchOnFunctionAndContext()
    {
        var list = new DevresList();
        s_nativeRuns.Clear();
        Assert.Equal(RrStatus.Ok, list.AddAction(&NativeAction, (void*)1));
        Assert.Equal(RrStatus.Ok, list.AddAction(&NativeAction, (void*)2));
        Assert.Equal(RrStatus.Ok, list.AddActionOrReset(&NativeAction, (void*)3));
        Assert.Equal(RrStatus.InvalidArgument, list.AddAction(null, null));
        Assert.True(list.IsActionAdded(&NativeAction, (void*)2));
        Assert.True(list.ReleaseAction(&NativeAction, (void*)2));
        Assert.False(list.IsActionAdded(&NativeAction, (void*)2));
        Assert.True(list.RemoveAction(&NativeAction, (void*)1));
        Assert.False(list.RemoveAction(&NativeAction, (void*)9));
        Assert.Equal(1, list.ReleaseAll());
        Assert.Equal(new nint[] { 2, 3 }, s_nativeRuns);
    }

    private static readonly List<nint> s_nativeRuns = new();

    [UnmanagedCallersOnly]
    private static void NativeAction(void* ctx) => s_nativeRuns.Add((nint)ctx);
}
