// Every interleaving (up to a preemption bound) of the state machines issue #11 names: revoke vs
// access, gate disconnect vs enter, Arc upgrade vs last drop, and is_unique vs downgrade; then
// deliberately broken variants of two of them, which the explorer must catch (so a passing run
// means something). Bound 2 in the normal suite (CHESS found most known bugs within 2), 3 in
// stress mode (RR_STRESS_SECONDS set, e.g. ./test.sh --stress N or --minutes N).

using System;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core;
using RefRuntime.Core.Memory;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Revoke;
using RefRuntime.Core.Sync;
using Xunit;
using Xunit.Abstractions;

[assembly: CollectionBehavior(DisableTestParallelization = true)] // one scheduler hook per process

namespace RefRuntime.Interleave.Tests;

public sealed unsafe class StateMachineTests
{
    private static readonly int Bound = Environment.GetEnvironmentVariable("RR_STRESS_SECONDS") is null ? 2 : 3;

    private readonly ITestOutputHelper _out;

    public StateMachineTests(ITestOutputHelper output) => _out = output;

    private static void Point(string label) => Core.Interleave.Point(label);

    private Exploration Run(string name, Func<Scenario> make, int? bound = null)
    {
        Exploration e = Explorer.Explore(make, bound ?? Bound);
        _out.WriteLine($"{name}: {e}");
        Console.WriteLine($"interleave {name}: {e}");
        return e;
    }

    private static void AssertClean(Exploration e)
    {
        Assert.True(e.Violation is null, e.Violation);
        Assert.True(e.Complete, "the exploration hit its execution limit");
        Assert.True(e.Executions > 1, "nothing was explored: are the scheduling points compiled in?");
    }

    private sealed class Resource
    {
        public int Released;
    }

    // ---- revoke vs access --------------------------------------------------------------------

    private static Scenario RevokeVsAccess(int readers, int revokers)
    {
        var domain = new RawRcuDomain();
        var resource = new Resource();
        var rev = new RawRevocable<Resource>(domain, resource, r => Interlocked.Increment(ref r.Released));
        string? seen = null;
        int revokedCount = 0;
        var threads = new Action[readers + revokers];
        for (int i = 0; i < readers; i++)
        {
            threads[i] = () =>
            {
                for (int round = 0; round < 2; round++)
                {
                    Resource? v = rev.TryAccess(out RcuReader* r);
                    if (v is not null)
                    {
                        Point("reader.use");
                        if (Volatile.Read(ref v.Released) != 0)
                        {
                            seen ??= "a reader used the resource after it was released";
                        }

                        RawRcuDomain.ReadUnlock(r);
                    }
                }
            };
        }

        for (int i = readers; i < threads.Length; i++)
        {
            threads[i] = () =>
            {
                Assert.Equal(RrStatus.Ok, rev.Revoke(out bool revoked));
                if (revoked)
                {
                    Interlocked.Increment(ref revokedCount);
                }

                // Once Revoke returned, the resource is gone for every later access.
                if (rev.TryAccess(out _) is not null)
                {
                    seen ??= "an access after Revoke returned succeeded";
                }
            };
        }

        return new Scenario
        {
            Threads = threads,
            Check = () => seen
                ?? (resource.Released != 1 ? $"released {resource.Released} times" : null)
                ?? (revokedCount != 1 ? $"{revokedCount} revokes reported doing it" : null),
            Cleanup = () => domain.Destroy(),
        };
    }

    [Fact]
    [Trait("Category", "Stress")]
    public void Revoke_vs_two_readers_every_interleaving() => AssertClean(Run("revoke vs 2 readers", () => RevokeVsAccess(2, 1)));

    [Fact]
    [Trait("Category", "Stress")]
    public void Two_revokes_vs_a_reader_every_interleaving() => AssertClean(Run("2 revokes vs a reader", () => RevokeVsAccess(1, 2)));

    // Two grace periods back to back while a reader's section straddles the first: the reader
    // loaded the phase before the first flip and stored it after, so by the second grace period
    // its phase is current again. Only the wait for readers of the old phase before the flip
    // (liburcu's two-phase grace period) covers it; without that wait this scenario fails.
    [Fact]
    [Trait("Category", "Stress")]
    public void Reader_straddling_a_grace_period_vs_the_next_one_every_interleaving()
    {
        AssertClean(Run("reader straddling 2 grace periods", () =>
        {
            var domain = new RawRcuDomain();
            var first = new RawRevocable<Resource>(domain, new Resource(), r => Volatile.Write(ref r.Released, 1));
            var second = new RawRevocable<Resource>(domain, new Resource(), r => Volatile.Write(ref r.Released, 1));
            int loaded = 0;
            string? seen = null;
            return new Scenario
            {
                Threads =
                [
                    () =>
                    {
                        Resource? v = second.TryAccess(out RcuReader* r);
                        Volatile.Write(ref loaded, 1);
                        if (v is not null)
                        {
                            Point("reader.use");
                            if (Volatile.Read(ref v.Released) != 0)
                            {
                                seen = "a reader used the resource after its grace period";
                            }

                            RawRcuDomain.ReadUnlock(r);
                        }
                    },
                    () =>
                    {
                        first.Revoke(out _);
                        while (Volatile.Read(ref loaded) == 0)
                        {
                            Point("spin.writer.wait-for-reader");
                        }

                        second.Revoke(out _);
                    },
                ],
                Check = () => seen,
                Cleanup = () => domain.Destroy(),
            };
        }));
    }

    // A revoke that forgets the grace period (revoke_nosync while readers exist): must be caught.
    [Fact]
    public void Explorer_catches_a_revoke_without_grace_period()
    {
        Exploration e = Run("broken: revoke without a grace period", () =>
        {
            var domain = new RawRcuDomain();
            var resource = new Resource();
            var rev = new RawRevocable<Resource>(domain, resource, r => Volatile.Write(ref r.Released, 1));
            string? seen = null;
            return new Scenario
            {
                Threads =
                [
                    () =>
                    {
                        Resource? v = rev.TryAccess(out RcuReader* r);
                        if (v is not null)
                        {
                            Point("reader.use");
                            if (Volatile.Read(ref v.Released) != 0)
                            {
                                seen = "use after release";
                            }

                            RawRcuDomain.ReadUnlock(r);
                        }
                    },
                    () => rev.RevokeNoSync(),
                ],
                Check = () => seen,
                Cleanup = () => domain.Destroy(),
            };
        });
        Assert.NotNull(e.Violation);
        Assert.Contains("use after release", e.Violation);
    }

    // ---- gate disconnect vs enter ------------------------------------------------------------

    private static Scenario GateScenario(int callers, bool broken)
    {
        var gate = new CallGate();
        var domain = gate.Domain;
        int disconnected = 0; // the broken gate's own flag
        var device = new Resource();
        string? seen = null;
        var threads = new Action[callers + 1];
        for (int i = 0; i < callers; i++)
        {
            threads[i] = () =>
            {
                for (int round = 0; round < 2; round++)
                {
                    RcuReader* r;
                    if (broken)
                    {
                        // The bug the real gate avoids: check the flag, then enter the section.
                        if (Volatile.Read(ref disconnected) != 0)
                        {
                            continue;
                        }

                        Point("broken.enter.lock");
                        r = domain.ReadLockRecord();
                    }
                    else
                    {
                        r = gate.Enter();
                        if (r == null)
                        {
                            continue;
                        }
                    }

                    Point("caller.use-device");
                    if (Volatile.Read(ref device.Released) != 0)
                    {
                        seen ??= "a call used the device after disconnect returned and it was freed";
                    }

                    CallGate.Leave(r);
                }
            };
        }

        threads[callers] = () =>
        {
            if (broken)
            {
                Volatile.Write(ref disconnected, 1);
                domain.Synchronize();
            }
            else
            {
                Assert.Equal(RrStatus.Ok, gate.Disconnect(out bool first));
                Assert.True(first);
            }

            Point("disconnect.free-device");
            Volatile.Write(ref device.Released, 1);
        };
        return new Scenario
        {
            Threads = threads,
            Check = () => seen ?? (!broken && gate.Enter() != null ? "entered after disconnect" : null),
            Cleanup = () => gate.Destroy(),
        };
    }

    [Fact]
    [Trait("Category", "Stress")]
    public void Gate_disconnect_vs_two_callers_every_interleaving() => AssertClean(Run("gate disconnect vs 2 callers", () => GateScenario(2, broken: false)));

    [Fact]
    public void Explorer_catches_a_gate_that_checks_before_entering()
    {
        Exploration e = Run("broken: gate checks the flag before entering", () => GateScenario(1, broken: true));
        Assert.NotNull(e.Violation);
        Assert.Contains("after disconnect", e.Violation);
    }

    // ---- type-stable gate: a late enter vs destroy and the domain's reuse ----------------------

    // The C ABI's gates keep their domain after destroy and hand it to the next gate, so a caller
    // that found the gate before the destroy may enter the domain after it has a new owner. The
    // gate word's token makes that caller back out; checking only the closed bits would not.
    private static Scenario RecycledGateScenario(bool broken)
    {
        var g1 = new CallGate(typeStable: true);
        RawRcuDomain domain = g1.Domain;
        var device = new Resource();
        CallGate? g2 = null;
        RrStatus destroyed = RrStatus.Busy;
        string? seen = null;
        var threads = new Action[2];
        threads[0] = () =>
        {
            RcuReader* r;
            if (broken)
            {
                r = domain.ReadLockRecord();
                Point("broken.enter.check-bits");
                if ((Volatile.Read(ref domain.State->GateWord) & (CallGate.Disconnected | CallGate.Destroying)) != 0)
                {
                    RawRcuDomain.ReadUnlock(r);
                    r = null;
                }
            }
            else
            {
                r = g1.Enter();
            }

            if (r != null)
            {
                Point("caller.use-device");
                if (Volatile.Read(ref device.Released) != 0)
                {
                    seen ??= "a call used the device after its gate was destroyed and the domain reused";
                }

                CallGate.Leave(r);
            }
        };
        threads[1] = () =>
        {
            destroyed = g1.Destroy();
            if (destroyed == RrStatus.Ok)
            {
                Point("destroy.free-device");
                Volatile.Write(ref device.Released, 1);
                g2 = new CallGate(typeStable: true); // takes the freed domain unless another test did
            }
        };
        return new Scenario
        {
            Threads = threads,
            Check = () =>
            {
                if (seen != null)
                {
                    return seen;
                }

                if (destroyed != RrStatus.Ok)
                {
                    // Busy: the gate was left as it was.
                    RcuReader* again = g1.Enter();
                    if (again == null)
                    {
                        return "a destroy that answered Busy closed the gate";
                    }

                    CallGate.Leave(again);
                    return g1.Destroy() == RrStatus.Ok ? null : "the gate could not be destroyed after the call left";
                }

                if (g1.Enter() != null)
                {
                    return "entered a destroyed gate";
                }

                return domain.HasActiveReader() ? "a reader was left inside the reused domain" : null;
            },
            Cleanup = () =>
            {
                g2?.Destroy();
                g1.Destroy();
            },
        };
    }

    [Fact]
    [Trait("Category", "Stress")]
    public void TypeStableGate_enter_vs_destroy_and_reuse_every_interleaving() => AssertClean(Run("type-stable gate: enter vs destroy + reuse", () => RecycledGateScenario(broken: false)));

    [Fact]
    public void Explorer_catches_a_recycled_gate_checked_by_its_closed_bits_only()
    {
        Exploration e = Run("broken: recycled gate checked by closed bits only", () => RecycledGateScenario(broken: true));
        Assert.NotNull(e.Violation);
        Assert.Contains("domain reused", e.Violation);
    }

    // ---- Arc: upgrade vs last drop, is_unique vs downgrade -------------------------------------

    [UnmanagedCallersOnly]
    private static void CountingDtor(void* payload, void* context) => Interlocked.Increment(ref *(int*)context);

    [Fact]
    [Trait("Category", "Stress")]
    public void Arc_upgrade_vs_last_drop_every_interleaving()
    {
        long live0 = NativeHeap.LiveCount;
        AssertClean(Run("arc upgrade vs last drop", bound: Math.Max(Bound, 3), make: () =>
        {
            int* dtorRuns = (int*)NativeHeap.AllocZeroed(4, 4);
            Assert.Equal(RrStatus.Ok, RawArc.Create(16, 8, &CountingDtor, dtorRuns, out void* payload));
            ArcHeader* h = RawArc.DangerousHeader(payload);
            RawArc.Clone(h);        // a second strong owner
            RawArc.Downgrade(h);    // the upgrader's weak reference
            string? seen = null;
            int upgrades = 0;
            Action owner = () => RawArc.Drop(h);
            Action upgrader = () =>
            {
                for (int round = 0; round < 2; round++)
                {
                    if (RawArc.Upgrade(h))
                    {
                        Interlocked.Increment(ref upgrades);
                        Point("upgrader.use");
                        if (Volatile.Read(ref *dtorRuns) != 0)
                        {
                            seen ??= "an upgraded reference saw a destroyed payload";
                        }

                        RawArc.Drop(h);
                    }
                }

                RawArc.DropWeak(h);
            };
            return new Scenario
            {
                Threads = [owner, owner, upgrader],
                Check = () => seen ?? (*dtorRuns != 1 ? $"destructor ran {*dtorRuns} times" : null)
                    ?? (NativeHeap.LiveCount != live0 + 1 ? $"{NativeHeap.LiveCount - live0 - 1} allocations left or freed twice" : null),
                Cleanup = () => NativeHeap.Free(dtorRuns, 4),
            };
        }));
        Assert.Equal(live0, NativeHeap.LiveCount);
    }

    [Fact]
    [Trait("Category", "Stress")]
    public void Arc_is_unique_vs_downgrade_every_interleaving()
    {
        // Bound 3: breaking this lock takes three preemptions to show (A between its two loads,
        // C between its drop and its upgrade, A inside its mutation); the scenario is small.
        AssertClean(Run("arc is_unique vs downgrade", bound: Math.Max(Bound, 3), make: () =>
        {
            Assert.Equal(RrStatus.Ok, RawArc.Create(16, 8, null, null, out void* payload));
            ArcHeader* h = RawArc.DangerousHeader(payload);
            int* value = (int*)payload;
            RawArc.Clone(h); // A and C each own a strong reference
            string? seen = null;
            Action a = () =>
            {
                if (RawArc.IsUnique(h))
                {
                    // get_mut: nobody else can reach the payload, so it is written without atomics.
                    *value = 1;
                    Point("unique.mutate");
                    *value = 0;
                }
            };
            Action c = () =>
            {
                _ = RawArc.Downgrade(h);
                RawArc.Drop(h); // A's is now the only strong reference, but C's weak can upgrade
                if (RawArc.Upgrade(h))
                {
                    Point("other.read");
                    if (*value != 0)
                    {
                        seen = "a payload was read while a thread that believed it unique mutated it";
                    }

                    RawArc.Drop(h);
                }

                RawArc.DropWeak(h);
            };
            return new Scenario
            {
                Threads = [a, c],
                Check = () => seen,
                Cleanup = () => RawArc.Drop(h),
            };
        }));
    }
}
