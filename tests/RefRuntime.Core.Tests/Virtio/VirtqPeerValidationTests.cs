using System;
using RefRuntime.Core.Virtio;
using Xunit;
using Xunit.Abstractions;
using static RefRuntime.Core.Virtio.VirtqLayout;

namespace RefRuntime.Core.Tests.Virtio;

/// <summary>
/// Each side against a malicious peer (docs/virtqueue.md): every violation is a clear
/// error that breaks the queue (or, by policy, returns the chain empty), never a wild access,
/// and Reset brings the queue back.
/// </summary>
public sealed class VirtqPeerValidationTests(ITestOutputHelper output)
{
    // The fuzz tests run 300 rounds, or as long as a stress run asks (./test.sh --stress N).
    private static readonly TimeSpan FuzzTime = RefRuntime.Core.Tests.Support.StressConfig.Extended;

    // ---- the driver against a misbehaving device ----

    private static void AssertDriverBroken(VirtqFixture f, string reasonPart)
    {
        Assert.Equal(RrStatus.Broken, f.Driver.TryGetUsed(out _, out _));
        Assert.True(f.Driver.IsBroken);
        Assert.Contains(reasonPart, f.Driver.BrokenReason);
        // Sticky: every later call answers Broken.
        Assert.Equal(RrStatus.Broken, f.Driver.TryGetUsed(out _, out _));
        Assert.Equal(RrStatus.Broken, f.Driver.TryAdd([new(f.Buffer(8), 8)], 1, 1));
        // The reset path: both sides reset, the queue works again.
        Assert.Equal(RrStatus.Ok, f.Driver.Reset());
        Assert.Equal(RrStatus.Ok, f.Device.Reset());
        f.AddSimple(77);
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 2));
        f.Device.PublishUsed();
        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong token, out uint len));
        Assert.Equal((77ul, 2u), (token, len));
    }

    [Fact]
    public void Driver_UsedIdOutOfRange_Broken()
    {
        using var f = new VirtqFixture(8);
        f.AddSimple(1);
        f.SetUsedEntry(0, 8, 0);
        f.UsedIdx = 1;
        AssertDriverBroken(f, "out of range");
    }

    [Fact]
    public void Driver_UsedIdNotAHead_Broken()
    {
        using var f = new VirtqFixture(8);
        f.AddSimple(1); // descriptors 0 (head) and 1 (mid-chain)
        f.SetUsedEntry(0, 1, 0);
        f.UsedIdx = 1;
        AssertDriverBroken(f, "not a head in flight");
    }

    [Fact]
    public void Driver_DoubleCompletion_Broken()
    {
        using var f = new VirtqFixture(8);
        f.AddSimple(1);
        f.AddSimple(2);
        f.SetUsedEntry(0, 0, 0);
        f.SetUsedEntry(1, 0, 0);
        f.UsedIdx = 2;
        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong t, out _));
        Assert.Equal(1ul, t);
        AssertDriverBroken(f, "not a head in flight");
    }

    [Fact]
    public void Driver_UsedLengthBeyondWritable_Broken()
    {
        using var f = new VirtqFixture(8);
        f.AddSimple(1, 8, 8);
        f.SetUsedEntry(0, 0, 9);
        f.UsedIdx = 1;
        AssertDriverBroken(f, "larger than");
    }

    [Fact]
    public void Driver_UsedIndexJumpsPastInFlight_Broken()
    {
        using var f = new VirtqFixture(8);
        f.AddSimple(1);
        f.SetUsedEntry(0, 0, 0);
        f.UsedIdx = 2; // only one chain in flight
        AssertDriverBroken(f, "in flight");
    }

    [Fact]
    public void Driver_UsedIndexMovesBackwards_Broken()
    {
        using var f = new VirtqFixture(8);
        f.AddSimple(1);
        f.UsedIdx = 0xFFFF; // "−1"
        AssertDriverBroken(f, "used index moved");
    }

    // The device rewrites the shared descriptor table after completion: reclaiming follows private
    // links only, so the free list stays intact.
    [Fact]
    public void Driver_DeviceScribblesOnTable_FreeListUnharmed()
    {
        using var f = new VirtqFixture(4);
        ulong b = f.Buffer(32);
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8), new(b + 8, 8), new(b + 16, 8)], 1, 5));
        f.Driver.Publish();
        for (int i = 0; i < 4; i++)
        {
            f.WriteDesc(i, 0xDEAD, 0xFFFF_FFFF, VRING_DESC_F_NEXT, 0);
        }

        f.SetUsedEntry(0, 0, 0);
        f.UsedIdx = 1;
        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong t, out _));
        Assert.Equal(5ul, t);
        Assert.Equal(4, f.Driver.FreeCount);
        // All four descriptors are usable again.
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 1), new(b, 1), new(b, 1), new(b, 1)], 4, 6));
    }

    // ---- the device against a misbehaving driver ----

    /// <summary>Publishes head 0 of a hand-written table.</summary>
    private static void PublishHead(VirtqFixture f, ushort head = 0)
    {
        f.SetAvailEntry(f.AvailIdx & (f.N - 1), head);
        f.AvailIdx++;
    }

    private static void AssertDeviceRefuses(Action<VirtqFixture> build, string reasonPart, VirtqFeatures features = VirtqFeatures.EventIdx | VirtqFeatures.IndirectDesc)
    {
        // Policy BreakQueue: Broken, sticky, and the queue comes back after Reset.
        using (var f = new VirtqFixture(8, features))
        {
            build(f);
            Assert.Equal(RrStatus.Broken, f.Device.TryPop(out _));
            Assert.True(f.Device.IsBroken);
            Assert.Contains(reasonPart, f.Device.BrokenReason);
            Assert.Equal(RrStatus.Broken, f.Device.TryPop(out _));
            Assert.True(f.Device.Segments.IsEmpty);
            Assert.Equal(RrStatus.Ok, f.Driver.Reset());
            Assert.Equal(RrStatus.Ok, f.Device.Reset());
            f.AddSimple(3);
            Assert.Equal(RrStatus.Ok, f.Device.TryPop(out _));
        }

        // Policy ReturnEmpty: chain-level errors come back Malformed with the head, which is
        // returned with length 0, and the next chain is served. Queue-level errors still break.
        using (var f = new VirtqFixture(8, features, policy: MalformedChainPolicy.ReturnEmpty))
        {
            build(f);
            RrStatus s = f.Device.TryPop(out VirtqChain c);
            if (s == RrStatus.Broken)
            {
                Assert.Contains(reasonPart, f.Device.BrokenReason);
                return;
            }

            Assert.Equal(RrStatus.Malformed, s);
            Assert.Contains(reasonPart, f.Device.LastMalformedReason);
            Assert.Equal(RrStatus.InvalidArgument, f.Device.AddUsed(c.Head, 1));
            Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
            f.Device.PublishUsed();
            Assert.False(f.Device.IsBroken);
        }
    }

    [Fact]
    public void Device_NextIndexOutOfRange_Refused() => AssertDeviceRefuses(
        f =>
        {
            ulong b = f.Buffer(8);
            f.WriteDesc(0, b, 8, VRING_DESC_F_NEXT, 8);
            PublishHead(f);
        },
        "next index 8 out of range");

    [Fact]
    public void Device_LoopInChain_Refused() => AssertDeviceRefuses(
        f =>
        {
            ulong b = f.Buffer(8);
            f.WriteDesc(0, b, 8, VRING_DESC_F_NEXT, 1);
            f.WriteDesc(1, b, 8, VRING_DESC_F_NEXT, 0);
            PublishHead(f);
        },
        "descriptors (a loop");

    [Fact]
    public void Device_SelfLoop_Refused() => AssertDeviceRefuses(
        f =>
        {
            f.WriteDesc(3, f.Buffer(8), 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
            PublishHead(f, 3);
        },
        "descriptors (a loop");

    [Fact]
    public void Device_AddressOutsideRegion_Refused() => AssertDeviceRefuses(
        f =>
        {
            f.WriteDesc(0, VirtqFixture.GpaBase + (1 << 20) - 4, 8, 0, 0);
            PublishHead(f);
        },
        "outside the region");

    [Fact]
    public void Device_AddressWrapsAround_Refused() => AssertDeviceRefuses(
        f =>
        {
            f.WriteDesc(0, ulong.MaxValue - 3, 8, 0, 0);
            PublishHead(f);
        },
        "outside the region");

    [Fact]
    public void Device_ReadableAfterWritable_Refused() => AssertDeviceRefuses(
        f =>
        {
            ulong b = f.Buffer(16);
            f.WriteDesc(0, b, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
            f.WriteDesc(1, b + 8, 8, 0, 0);
            PublishHead(f);
        },
        "readable descriptor after a writable");

    [Fact]
    public void Device_HeadOutOfRange_BreaksEvenUnderReturnEmpty() => AssertDeviceRefuses(
        f => PublishHead(f, 8),
        "head 8 out of range");

    [Fact]
    public void Device_AvailIndexJumps_BreaksEvenUnderReturnEmpty() => AssertDeviceRefuses(
        f => f.AvailIdx = 9,
        "more than N");

    [Fact]
    public void Device_IndirectNotNegotiated_Refused() => AssertDeviceRefuses(
        f =>
        {
            f.WriteDesc(0, f.Buffer(32, 16), 32, VRING_DESC_F_INDIRECT, 0);
            PublishHead(f);
        },
        "without VIRTIO_F_INDIRECT_DESC",
        VirtqFeatures.EventIdx);

    [Theory]
    [InlineData(0u)]
    [InlineData(24u)]
    [InlineData(17u)]
    public void Device_IndirectTableBadLength_Refused(uint len) => AssertDeviceRefuses(
        f =>
        {
            f.WriteDesc(0, f.Buffer(64, 16), len, VRING_DESC_F_INDIRECT, 0);
            PublishHead(f);
        },
        "indirect table of");

    [Fact]
    public void Device_IndirectWithNext_Refused() => AssertDeviceRefuses(
        f =>
        {
            f.WriteDesc(0, f.Buffer(32, 16), 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
            PublishHead(f);
        },
        "INDIRECT and NEXT");

    [Fact]
    public void Device_NestedIndirect_Refused() => AssertDeviceRefuses(
        f =>
        {
            ulong t = f.Buffer(32, 16);
            VirtqFixture.WriteDescAt(f.Bytes(t, 32), 0, t, 32, VRING_DESC_F_INDIRECT, 0);
            f.WriteDesc(0, t, 32, VRING_DESC_F_INDIRECT, 0);
            PublishHead(f);
        },
        "inside an indirect table");

    [Fact]
    public void Device_IndirectTableOutsideRegion_Refused() => AssertDeviceRefuses(
        f =>
        {
            f.WriteDesc(0, VirtqFixture.GpaBase + (1 << 20) - 16, 32, VRING_DESC_F_INDIRECT, 0);
            PublishHead(f);
        },
        "outside the region");

    [Fact]
    public void Device_LoopInsideIndirectTable_Refused() => AssertDeviceRefuses(
        f =>
        {
            ulong t = f.Buffer(32, 16);
            ulong b = f.Buffer(8);
            VirtqFixture.WriteDescAt(f.Bytes(t, 32), 0, b, 8, VRING_DESC_F_NEXT, 1);
            VirtqFixture.WriteDescAt(f.Bytes(t, 32), 1, b, 8, VRING_DESC_F_NEXT, 0);
            f.WriteDesc(0, t, 32, VRING_DESC_F_INDIRECT, 0);
            PublishHead(f);
        },
        "descriptors (a loop");

    [Fact]
    public void Device_IndirectNextOutOfTable_Refused() => AssertDeviceRefuses(
        f =>
        {
            ulong t = f.Buffer(32, 16);
            VirtqFixture.WriteDescAt(f.Bytes(t, 32), 0, f.Buffer(8), 8, VRING_DESC_F_NEXT, 2);
            f.WriteDesc(0, t, 32, VRING_DESC_F_INDIRECT, 0);
            PublishHead(f);
        },
        "next index 2 out of range (2 descriptors)");

    // A chain longer than N through an indirect table is accepted (Linux's virtio_blk sizes its
    // requests by seg_max alone; QEMU's device code accepts them too), up to MaxIndirectChain.
    [Fact]
    public void Device_IndirectChainLongerThanQueue_Accepted()
    {
        using var f = new VirtqFixture(8);
        const int entries = 12; // N = 8
        ulong t = f.Buffer(entries * 16, 16);
        ulong b = f.Buffer(8 * entries);
        for (int i = 0; i < entries; i++)
        {
            VirtqFixture.WriteDescAt(f.Bytes(t, entries * 16), i, b + (ulong)(8 * i), 8, i + 1 < entries ? VRING_DESC_F_NEXT : (ushort)0, (ushort)(i + 1));
        }

        f.WriteDesc(0, t, entries * 16, VRING_DESC_F_INDIRECT, 0);
        PublishHead(f);
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal((entries, 0, 8u * entries), (c.Readable, c.Writable, c.ReadableBytes));
        Assert.Equal(entries, f.Device.Segments.Length);
    }

    // One descriptor more than MaxIndirectChain is refused.
    [Fact]
    public void Device_IndirectChainLongerThanTheLimit_Refused() => AssertDeviceRefuses(
        f =>
        {
            const int entries = MaxIndirectChain + 1;
            ulong t = f.Buffer(entries * 16, 16);
            ulong b = f.Buffer(8);
            for (int i = 0; i < entries; i++)
            {
                VirtqFixture.WriteDescAt(f.Bytes(t, entries * 16), i, b, 8, i + 1 < entries ? VRING_DESC_F_NEXT : (ushort)0, (ushort)(i + 1));
            }

            f.WriteDesc(0, t, entries * 16, VRING_DESC_F_INDIRECT, 0);
            PublishHead(f);
        },
        $"more than {MaxIndirectChain} descriptors");

    // Without INDIRECT_DESC the limit stays N: a loop of direct descriptors says so.
    [Fact]
    public void Device_LoopWithoutIndirect_LimitIsN() => AssertDeviceRefuses(
        f =>
        {
            ulong b = f.Buffer(8);
            f.WriteDesc(0, b, 8, VRING_DESC_F_NEXT, 1);
            f.WriteDesc(1, b, 8, VRING_DESC_F_NEXT, 0);
            PublishHead(f);
        },
        "more than N = 8 descriptors",
        VirtqFeatures.EventIdx);

    // Direct descriptors followed by one INDIRECT (spec: the device must accept it); WRITE on the
    // pointing descriptor is ignored.
    [Fact]
    public void Device_DirectThenIndirect_Accepted()
    {
        using var f = new VirtqFixture(8);
        ulong t = f.Buffer(32, 16);
        ulong b = f.Buffer(24);
        VirtqFixture.WriteDescAt(f.Bytes(t, 32), 0, b + 8, 8, VRING_DESC_F_NEXT, 1);
        VirtqFixture.WriteDescAt(f.Bytes(t, 32), 1, b + 16, 8, VRING_DESC_F_WRITE, 0);
        f.WriteDesc(0, b, 8, VRING_DESC_F_NEXT, 5);
        f.WriteDesc(5, t, 32, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
        PublishHead(f);
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal((2, 1, 16u, 8u), (c.Readable, c.Writable, c.ReadableBytes, c.WritableBytes));
    }

    // A head the device already holds cannot be made available again.
    [Fact]
    public void Device_HeadAlreadyHeld_Broken()
    {
        using var f = new VirtqFixture(8);
        f.AddSimple(1);
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out _));
        PublishHead(f, 0);
        Assert.Equal(RrStatus.Broken, f.Device.TryPop(out _));
        Assert.Contains("already held", f.Device.BrokenReason);
    }

    // Random bytes in every descriptor, ring entry and index: the device never faults, never
    // returns a segment outside the region, and keeps serving or reports Broken/Malformed.
    [Fact]
    [Trait("Category", "Stress")]
    public unsafe void Device_RandomGarbageRing_NeverEscapesTheRegion()
    {
        var rng = new Random(20261127);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int rounds = 0;
        for (int round = 0; round < 300 || clock.Elapsed < FuzzTime; round++, rounds++)
        {
            using var f = new VirtqFixture(16, policy: round % 2 == 0 ? MalformedChainPolicy.ReturnEmpty : MalformedChainPolicy.BreakQueue, regionBytes: 1 << 16);
            ulong table = f.Buffer(256, 16);
            for (int i = 0; i < 16; i++)
            {
                ulong addr = rng.Next(4) switch
                {
                    0 => VirtqFixture.GpaBase + (ulong)rng.Next(1 << 16),
                    1 => table,
                    2 => (ulong)rng.NextInt64(),
                    _ => VirtqFixture.GpaBase + (ulong)rng.Next(1 << 17),
                };
                f.WriteDesc(i, addr, (uint)(rng.Next(3) == 0 ? rng.Next(64) * 16 : rng.Next()), (ushort)rng.Next(8), (ushort)rng.Next(20));
                VirtqFixture.WriteDescAt(f.Bytes(table, 256), i, addr, (uint)rng.Next(1 << 12), (ushort)rng.Next(8), (ushort)rng.Next(20));
                f.SetAvailEntry(i, (ushort)rng.Next(18));
            }

            f.AvailIdx = (ushort)rng.Next(20);
            for (int k = 0; k < 40; k++)
            {
                RrStatus s = f.Device.TryPop(out VirtqChain c);
                Assert.True(s is RrStatus.Ok or RrStatus.NotFound or RrStatus.Broken or RrStatus.Malformed, s.ToString());
                foreach (VirtqSegment seg in f.Device.Segments)
                {
                    Assert.True(f.Memory.TryGpaOf(seg.Host, out _) && (ulong)(seg.Host - f.Memory.HostBase) + seg.Length <= f.Memory.Size);
                }

                if (s is RrStatus.Ok or RrStatus.Malformed)
                {
                    Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
                }
                else
                {
                    break;
                }
            }
        }

        output.WriteLine($"random rings {rounds}, device never escaped the region, errors 0");
    }

    // Random used entries and indices from a device: the driver hands back only tokens in flight,
    // never more length than a chain can take, and its free list stays exact, or it breaks.
    [Fact]
    [Trait("Category", "Stress")]
    public void Driver_RandomGarbageUsedRing_NeverCorrupts()
    {
        var rng = new Random(1127);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int rounds = 0;
        for (int round = 0; round < 300 || clock.Elapsed < FuzzTime; round++, rounds++)
        {
            using var f = new VirtqFixture(8, VirtqFeatures.EventIdx, regionBytes: 1 << 16);
            ulong b = f.Buffer(256);
            var writable = new System.Collections.Generic.Dictionary<ulong, (uint Bytes, int Descs)>();
            for (ulong t = 1; t <= 6; t++)
            {
                int segs = 1 + rng.Next(3);
                var bufs = new VirtqBuffer[segs];
                uint w = 0;
                for (int k = 0; k < segs; k++)
                {
                    bufs[k] = new VirtqBuffer(b + (ulong)(16 * k), (uint)rng.Next(1, 16));
                    w += k >= 1 ? bufs[k].Length : 0;
                }

                if (f.Driver.TryAdd(bufs, 1, t) == RrStatus.Ok)
                {
                    writable[t] = (w, segs);
                }
            }

            f.Driver.Publish();
            ushort idx = 0;
            for (int step = 0; step < 30; step++)
            {
                f.SetUsedEntry(rng.Next(8), (uint)rng.Next(10), (uint)rng.Next(40));
                idx = (ushort)(rng.Next(4) == 0 ? rng.Next(65536) : idx + rng.Next(3));
                f.UsedIdx = idx;
                RrStatus s = f.Driver.TryGetUsed(out ulong token, out uint len);
                if (s == RrStatus.Ok)
                {
                    Assert.True(writable.Remove(token, out var chain), $"token {token} was not in flight");
                    Assert.True(len <= chain.Bytes);
                }
                else if (s == RrStatus.Broken)
                {
                    Assert.NotNull(f.Driver.BrokenReason);
                    break;
                }
                else
                {
                    Assert.Equal(RrStatus.NotFound, s);
                }

                int inUse = 0;
                foreach (var c in writable.Values)
                {
                    inUse += c.Descs;
                }

                Assert.Equal(writable.Count, f.Driver.InFlight);
                Assert.Equal(8 - inUse, f.Driver.FreeCount);
            }
        }

        output.WriteLine($"random used rings {rounds}, driver state exact throughout, errors 0");
    }
}
