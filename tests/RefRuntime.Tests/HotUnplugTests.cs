using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core.Tests.Support;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>
/// Hot-unplug end to end with the safe API: a device shared by consumers on several threads,
/// with a call gate, revocable hardware state and managed resources, removed while they call.
/// </summary>
public sealed unsafe class HotUnplugTests
{
    private const ulong Live = 0xC0FF_EE00_C0FF_EE00;

    /// <summary>"Hardware": registers in native memory, poisoned (not freed) when destroyed, so a late read would see poison.</summary>
    private sealed class Hardware : IDisposable
    {
        public readonly ulong* Regs = (ulong*)NativeMemory.AllocZeroed(64);
        public int Destroyed;

        public Hardware() => Regs[0] = Live;

        public ulong Read() => Volatile.Read(ref Regs[0]);

        public void Dispose()
        {
            Interlocked.Increment(ref Destroyed);
            NativeMemory.Fill(Regs, 64, 0xDB); // poison; freed at the end of the test
        }
    }

    private sealed class Device : IDisposable
    {
        public readonly DeviceGate Gate = new();
        public readonly Revocable<Hardware> Hw;
        public readonly DeviceResources Resources = new();
        public readonly Hardware Raw;
        public static int Freed;

        public Device()
        {
            Raw = new Hardware();
            Hw = new Revocable<Hardware>(Raw);
        }

        public ulong ReadRegister()
        {
            using GateCall call = Gate.Enter(); // NoDeviceException once removed
            if (!Hw.TryAccess(out RevocableGuard<Hardware> g))
            {
                throw new NoDeviceException();
            }

            using (g)
            {
                return g.Value!.Read();
            }
        }

        public void Remove()
        {
            Gate.Disconnect(); // no new calls; calls in flight finish
            Hw.Revoke();       // no hardware access after this returns
            Resources.ReleaseAll();
        }

        public void Dispose()
        {
            Interlocked.Increment(ref Freed);
            Gate.Dispose();
        }
    }

    // Remove the device while consumers call it: no access to hardware after revocation, every
    // later call gets "no device", the device is freed exactly once when the last consumer lets go.
    [Fact]
    [Trait("Category", "Stress")]
    public void RemoveWhileConsumersCall_NoAccessAfterRevoke_NoDeviceAfter_FreedOnce()
    {
        for (int round = 0; round < 20; round++)
        {
            Device.Freed = 0;
            var device = new Device();
            int released = 0;
            device.Resources.Add(() => Interlocked.Increment(ref released));
            var owner = Shared<Device>.Create(device);
            int poisoned = 0, okAfterNoDevice = 0, calls = 0, noDevice = 0;
            var consumers = new Thread[4];
            for (int t = 0; t < consumers.Length; t++)
            {
                Shared<Device> mine = owner.Clone();
                consumers[t] = new Thread(() =>
                {
                    bool sawNoDevice = false;
                    for (int i = 0; i < 3000; i++)
                    {
                        try
                        {
                            ulong v = mine.Value.ReadRegister();
                            Interlocked.Increment(ref calls);
                            if (v != Live)
                            {
                                Interlocked.Increment(ref poisoned);
                            }

                            if (sawNoDevice)
                            {
                                Interlocked.Increment(ref okAfterNoDevice);
                            }
                        }
                        catch (NoDeviceException)
                        {
                            sawNoDevice = true;
                            Interlocked.Increment(ref noDevice);
                        }
                    }

                    mine.Dispose();
                });
                consumers[t].Start();
            }

            Thread.Sleep(round % 3);
            device.Remove();
            // After Remove returns the hardware is destroyed (poisoned): a read now would see poison.
            Assert.Equal(1, device.Raw.Destroyed);
            Assert.Equal(0xDBDBDBDBDBDBDBDBUL, device.Raw.Read());
            owner.Dispose();
            foreach (Thread t in consumers)
            {
                t.Join();
            }

            Assert.Equal(0, poisoned);
            Assert.Equal(0, okAfterNoDevice);
            Assert.Equal(1, released);
            Assert.Equal(1, Device.Freed);
            Assert.True(noDevice > 0 || calls == 4 * 3000);
            NativeMemory.Free(device.Raw.Regs);
        }
    }

    // A probe that acquires five resources and fails at step k releases exactly the k-1 before it, newest first.
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)] // no failure: all five stay with the device until removal
    public void Probe_FailureAtEveryStep_ReleasesExactlyWhatWasAcquired(int failAt)
    {
        var resources = new DeviceResources();
        var log = new List<string>();
        resources.Add(() => log.Add("pre-existing"));
        bool probed = false;
        try
        {
            using DevresScope probe = resources.BeginScope();
            for (int step = 1; step <= 5; step++)
            {
                if (step == failAt)
                {
                    throw new InvalidOperationException($"acquisition {step} failed");
                }

                int k = step;
                resources.Add(() => log.Add($"release {k}"));
            }

            probe.Commit();
            probed = true;
        }
        catch (InvalidOperationException)
        {
        }

        if (failAt <= 5)
        {
            Assert.False(probed);
            var expected = new List<string>();
            for (int k = failAt - 1; k >= 1; k--)
            {
                expected.Add($"release {k}");
            }

            Assert.Equal(expected, log);
        }
        else
        {
            Assert.True(probed);
            Assert.Empty(log);
        }

        resources.Dispose(); // removal: the rest goes, newest first
        Assert.Equal("pre-existing", log[^1]);
        Assert.Equal(failAt <= 5 ? failAt : 6, log.Count);
    }

    // Misuse is reported the .NET way.
    [Fact]
    public void Misuse_ThrowsExpectedExceptions()
    {
        var gate = new DeviceGate();
        GateCall c = gate.Enter();
        Assert.Throws<InvalidOperationException>(() => gate.Disconnect());
        c.Dispose();
        Assert.False(gate.Disconnect()); // already closed by the refused call above
        Assert.Throws<NoDeviceException>(() => gate.Enter());
        Assert.False(gate.TryEnter(out _));
        gate.Dispose();

        var rv = new Revocable<object>(new object());
        Assert.True(rv.TryAccess(out RevocableGuard<object> g));
        bool threw = false;
        try
        {
            rv.Revoke();
        }
        catch (InvalidOperationException)
        {
            threw = true;
        }

        g.Dispose();
        Assert.True(threw);
        Assert.True(rv.Revoke());
        Assert.False(rv.Revoke());
        Assert.False(rv.TryAccess(out _));

        var res = new DeviceResources();
        DevresScope s = res.BeginScope();
        s.Commit();
        Assert.Throws<InvalidOperationException>(() => s.Commit());
    }

    // A GPIO chip unplugged while interrupts are raised from several threads and its handlers
    // sleep: when Remove returns no handler is running and none starts afterwards, so what the
    // handlers use can be released right then; the chip's handlers never overlap. Both chips the
    // safe layer offers: the PL061 driver (handlers on the raising threads) and the driver pair
    // (handlers on the front end's interrupt thread).
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    [Trait("Category", "Stress")]
    public void GpioRemove_WhileInterruptsRaisedFromThreads_NoHandlerRunningOrStartingAfter(bool viaRing)
    {
        TimeSpan budget = StressConfig.Extended;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int rounds = 0;
        for (; rounds < 4 || clock.Elapsed < budget; rounds++)
        {
            var model = new Pl061Model();
            GpioChip chip = viaRing ? GpioChip.ProbeVirtioPair(model) : GpioChip.ProbePl061(model);
            const int lines = 3;
            int inHandler = 0, overlap = 0, afterRemove = 0, removed = 0, stop = 0;
            long calls = 0;
            for (int l = 0; l < lines; l++)
            {
                chip.DirectionInput(l);
                chip.SetIrqType(l, GpioIrqType.EdgeBoth);
                chip.SetIrqHandler(l, _ =>
                {
                    if (Interlocked.Increment(ref inHandler) > 1)
                    {
                        Interlocked.Increment(ref overlap);
                    }

                    if (Volatile.Read(ref removed) != 0)
                    {
                        Interlocked.Increment(ref afterRemove);
                    }

                    if ((Interlocked.Increment(ref calls) & 7) == 0)
                    {
                        Thread.Sleep(2); // a handler that sleeps
                    }

                    Interlocked.Decrement(ref inHandler);
                });
            }

            var raisers = new Thread[lines];
            for (int l = 0; l < lines; l++)
            {
                int line = l;
                raisers[l] = new Thread(() =>
                {
                    bool level = false;
                    while (Volatile.Read(ref stop) == 0)
                    {
                        level = !level;
                        model.SetInput(line, level);
                        Thread.Yield();
                    }
                });
                raisers[l].Start();
            }

            Thread.Sleep(10 + rounds % 5);
            chip.Remove();
            Assert.Equal(0, Volatile.Read(ref inHandler));
            Volatile.Write(ref removed, 1);
            Thread.Sleep(5);
            Volatile.Write(ref stop, 1);
            foreach (Thread t in raisers)
            {
                Assert.True(t.Join(TimeSpan.FromSeconds(30)), "a raiser hung");
            }

            Assert.Equal(0, afterRemove);
            Assert.Equal(0, overlap);
            Assert.Throws<NoDeviceException>(() => chip.Get(0));
            chip.Dispose();
        }
    }
}
