using System;
using RefRuntime.Core.Virtio;
using Xunit;
using static RefRuntime.Core.Virtio.VirtqLayout;

namespace RefRuntime.Core.Tests.Virtio;

/// <summary>Layout, round trips, event-index arithmetic and notification suppression of the split ring.</summary>
public sealed class VirtqueueTests
{
    // virtio 1.2 §2.7: modern part sizes, legacy offsets (Linux vring_size), for several N.
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(256)]
    [InlineData(1024)]
    [InlineData(32768)]
    public void Layout_SizesMatchSpecFormulas(int n)
    {
        Assert.Equal(16 * n, DescTableBytes(n));
        Assert.Equal(6 + (2 * n), AvailRingBytes(n));
        Assert.Equal(6 + (8 * n), UsedRingBytes(n));
        Assert.Equal(4 + (2 * n), UsedEventOffset(n));
        Assert.Equal(4 + (8 * n), AvailEventOffset(n));
        Assert.Equal(0, UsedOffset(n) % 64);
        Assert.True(UsedOffset(n) >= AvailOffset(n) + AvailRingBytes(n));
        int legacyUsed = ((16 * n) + (2 * (3 + n)) + 4095) & ~4095;
        Assert.Equal(legacyUsed, LegacyUsedOffset(n, 4096));
        Assert.Equal(legacyUsed + 6 + (8 * n), LegacyTotalBytes(n, 4096));
    }

    // The spec's worked examples for N = 256.
    [Fact]
    public void Layout_N256_MatchesSpecExamples()
    {
        Assert.Equal(4096, DescTableBytes(256));
        Assert.Equal(518, AvailRingBytes(256));
        Assert.Equal(2054, UsedRingBytes(256));
        Assert.Equal(8192, LegacyUsedOffset(256, 4096));
        Assert.Equal(10246, LegacyTotalBytes(256, 4096));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(65536)]
    [InlineData(-4)]
    public void Create_BadSize_InvalidArgument(int n)
    {
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x1000, out GuestMemory? mem));
        Assert.Equal(RrStatus.InvalidArgument, VirtqDriver.Create(mem!, n, VirtqFeatures.None, 0, out _, out string? err));
        Assert.Contains("power of two", err);
        Assert.Equal(RrStatus.InvalidArgument, VirtqDevice.Create(mem!, new VirtqRings(n, 0x1000, 0x2000, 0x3000), VirtqFeatures.None, MalformedChainPolicy.BreakQueue, out _, out _));
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    // rust-vmm's alignment checks and "inside guest memory" for the device's view of the rings.
    [Fact]
    public void DeviceCreate_MisalignedOrOutsideRings_InvalidArgument()
    {
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 16, 0x1000, out GuestMemory? mem));
        Assert.Equal(RrStatus.InvalidArgument, VirtqDevice.Create(mem!, new VirtqRings(8, 0x1008, 0x2000, 0x3000), VirtqFeatures.None, MalformedChainPolicy.BreakQueue, out _, out string? e1));
        Assert.Contains("misaligned", e1);
        Assert.Equal(RrStatus.InvalidArgument, VirtqDevice.Create(mem!, new VirtqRings(8, 0x1000, 0x2001, 0x3000), VirtqFeatures.None, MalformedChainPolicy.BreakQueue, out _, out _));
        Assert.Equal(RrStatus.InvalidArgument, VirtqDevice.Create(mem!, new VirtqRings(8, 0x1000, 0x2000, 0x3002), VirtqFeatures.None, MalformedChainPolicy.BreakQueue, out _, out _));
        Assert.Equal(RrStatus.InvalidArgument, VirtqDevice.Create(mem!, new VirtqRings(8, 0x1000, 0x2000, 0x11000 - 8), VirtqFeatures.None, MalformedChainPolicy.BreakQueue, out _, out string? e2));
        Assert.Contains("outside", e2);
        Assert.Equal(RrStatus.Ok, mem!.Destroy());
    }

    [Fact]
    public unsafe void GuestMemory_Translate_ChecksBoundsWithoutOverflow()
    {
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(4096, 0x10000, out GuestMemory? mem));
        Assert.True(mem!.TryTranslate(0x10000, 4096, out _));
        Assert.True(mem.TryTranslate(0x10FFF, 1, out _));
        Assert.True(mem.TryTranslate(0x11000, 0, out _));
        Assert.False(mem.TryTranslate(0x10FFF, 2, out _));
        Assert.False(mem.TryTranslate(0xFFFF, 1, out _));
        Assert.False(mem.TryTranslate(0x10001, ulong.MaxValue, out _));
        Assert.False(mem.TryTranslate(ulong.MaxValue, 2, out byte* p));
        Assert.True(p == null);
        Assert.Equal(RrStatus.InvalidArgument, GuestMemory.Create(4096, 0x10001, out _));
        Assert.Equal(RrStatus.InvalidArgument, GuestMemory.Create(8192, ulong.MaxValue - 4095, out _));
        Assert.Equal(RrStatus.Ok, mem.Destroy());
        Assert.Equal(RrStatus.BadHandle, mem.Destroy());
    }

    [Fact]
    public void GuestMemory_DestroyWhileQueueAttached_Busy()
    {
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 16, 0x1000, out GuestMemory? mem));
        Assert.Equal(RrStatus.Ok, VirtqDriver.Create(mem!, 8, VirtqFeatures.None, 0, out VirtqDriver? drv, out _));
        Assert.Equal(RrStatus.Busy, mem!.Destroy());
        Assert.Equal(RrStatus.Ok, drv!.Destroy());
        Assert.Equal(RrStatus.BadHandle, drv.Destroy());
        Assert.Equal(RrStatus.Ok, mem.Destroy());
        Assert.Equal(RrStatus.BadHandle, VirtqDriver.Create(mem, 8, VirtqFeatures.None, 0, out _, out _));
    }

    // need_event: true iff event lies in [old, new), including across the 16-bit wrap.
    [Theory]
    [InlineData(0, 1, 0, true)]
    [InlineData(0, 2, 1, false)]
    [InlineData(5, 10, 0, true)]
    [InlineData(10, 10, 0, false)]
    [InlineData(9, 10, 0, true)]
    [InlineData(65535, 1, 65534, true)]
    [InlineData(0, 1, 65535, true)]
    [InlineData(65534, 1, 65535, false)]
    [InlineData(2, 1, 65535, false)]
    [InlineData(7, 7, 7, false)]
    public void NeedEvent_WindowAcrossWrap(int ev, int newIdx, int oldIdx, bool expected) =>
        Assert.Equal(expected, NeedEvent((ushort)ev, (ushort)newIdx, (ushort)oldIdx));

    // Exhaustive against the definition for a window of every size around the wrap.
    [Fact]
    public void NeedEvent_MatchesDefinitionExhaustivelyNearWrap()
    {
        for (int old = 65500; old < 65600; old += 7)
        {
            for (int count = 0; count < 80; count++)
            {
                ushort o = (ushort)old, nw = (ushort)(old + count);
                for (int e = 65450; e < 65700; e++)
                {
                    ushort ev = (ushort)e;
                    bool inWindow = (ushort)(ev - o) < count;
                    Assert.Equal(inWindow, NeedEvent(ev, nw, o));
                }
            }
        }
    }

    // A chain of 2 readable + 2 writable segments, direct and indirect: bytes in, bytes out, token back.
    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    public void RoundTrip_MultiSegmentChain_BytesAndTokenComeBack(int indirectMax)
    {
        using var f = new VirtqFixture(16, indirectMax: indirectMax);
        ulong r0 = f.Buffer(3), r1 = f.Buffer(5), w0 = f.Buffer(4), w1 = f.Buffer(6);
        "abc"u8.CopyTo(f.Bytes(r0, 3));
        "defgh"u8.CopyTo(f.Bytes(r1, 5));
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(r0, 3), new(r1, 5), new(w0, 4), new(w1, 6)], 2, 0xABCD));
        Assert.Equal(indirectMax > 0 ? 15 : 12, f.Driver.FreeCount);
        Assert.Equal(RrStatus.NotFound, f.Device.TryPop(out _)); // staged, not published
        f.Driver.Publish();

        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal((2, 2, 8u, 10u), (c.Readable, c.Writable, c.ReadableBytes, c.WritableBytes));
        Span<byte> got = stackalloc byte[16];
        Assert.Equal(8, f.Device.Gather(got));
        Assert.Equal("abcdefgh"u8.ToArray(), got[..8].ToArray());
        Assert.Equal(7, f.Device.Scatter("0123456"u8));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 7));
        Assert.Equal(RrStatus.NotFound, f.Driver.TryGetUsed(out _, out _)); // not published yet
        f.Device.PublishUsed();

        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong token, out uint len));
        Assert.Equal((0xABCDul, 7u), (token, len));
        Assert.Equal("0123"u8.ToArray(), f.Bytes(w0, 4).ToArray());
        Assert.Equal("456"u8.ToArray(), f.Bytes(w1, 3).ToArray());
        Assert.Equal(16, f.Driver.FreeCount);
        Assert.Equal(0, f.Driver.InFlight);
    }

    // A chain returned with AddUsed belongs to the driver again, which may already reuse its
    // buffers: the device can no longer read, write or see its segments.
    [Fact]
    public void GatherScatter_AfterAddUsed_TouchNothing()
    {
        using var f = new VirtqFixture(8);
        ulong r = f.Buffer(8), w = f.Buffer(4);
        "request!"u8.CopyTo(f.Bytes(r, 8));
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(r, 8), new(w, 4)], 1, 1));
        f.Driver.Publish();
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal(4, f.Device.Scatter("done"u8));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 4));
        f.Device.PublishUsed();
        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out _, out _));

        // The driver reuses the buffers at once.
        "secret!!"u8.CopyTo(f.Bytes(r, 8));
        "mine"u8.CopyTo(f.Bytes(w, 4));
        Span<byte> got = stackalloc byte[8];
        got.Clear();
        Assert.Equal(0, f.Device.Gather(got));
        Assert.Equal(new byte[8], got.ToArray());
        Assert.Equal(0, f.Device.Scatter("late"u8));
        Assert.Equal("mine"u8.ToArray(), f.Bytes(w, 4).ToArray());
        Assert.True(f.Device.Segments.IsEmpty);

        // The next chain is served normally.
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(r, 8), new(w, 4)], 1, 2));
        f.Driver.Publish();
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out c));
        Assert.Equal(8, f.Device.Gather(got));
        Assert.Equal("secret!!"u8.ToArray(), got.ToArray());
        Assert.Equal(2, f.Device.Segments.Length);
    }

    [Fact]
    public void TryAdd_FullRing_NoSpaceThenRecovers()
    {
        using var f = new VirtqFixture(4);
        ulong b = f.Buffer(64);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8), new(b + 8, 8)], 1, (ulong)i));
        }

        Assert.Equal(RrStatus.NoSpace, f.Driver.TryAdd([new(b, 8)], 1, 9));
        f.Driver.Publish();
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
        f.Device.PublishUsed();
        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong t, out _));
        Assert.Equal(0ul, t);
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8)], 1, 9));
    }

    // Returned descriptors go to the back of the free list: with completions in order, heads are
    // reused in ring order (0, 1, 2, 3, 0, ...), multi-descriptor chains included.
    [Fact]
    public void FreeList_ReusesHeadsInRingOrder()
    {
        using var f = new VirtqFixture(4, VirtqFeatures.EventIdx);
        ulong b = f.Buffer(64);
        var heads = new System.Collections.Generic.List<int>();
        for (int round = 0; round < 6; round++)
        {
            bool pair = round % 3 == 2; // now and then a two-descriptor chain
            Assert.Equal(RrStatus.Ok, pair ? f.Driver.TryAdd([new(b, 8), new(b + 8, 8)], 1, (ulong)round) : f.Driver.TryAdd([new(b, 8)], 1, (ulong)round));
            f.Driver.Publish();
            Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
            heads.Add(c.Head);
            Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
            f.Device.PublishUsed();
            Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong t, out _));
            Assert.Equal((ulong)round, t);
        }

        // 0; 1; 2 (+3 as its second descriptor); 0; 1; 2 (+3)
        Assert.Equal([0, 1, 2, 0, 1, 2], heads);
        Assert.Equal(4, f.Driver.FreeCount);
    }

    // The driver skips writing a descriptor that already holds the same bytes (its line stays with
    // the device's CPU) and rewrites it when anything differs: a new address, length or flags, or
    // bytes a misbehaving peer scribbled over the table while the descriptor was free.
    [Fact]
    public void Descriptor_RewrittenWheneverItsBytesDiffer()
    {
        using var f = new VirtqFixture(2, VirtqFeatures.EventIdx);
        ulong a = f.Buffer(64), b2 = f.Buffer(64);
        f.Bytes(a, 16).Fill((byte)'a');
        f.Bytes(b2, 16).Fill((byte)'b');
        void RoundTrip(VirtqBuffer buf, int readable, ulong expectGpa, bool expectWritable)
        {
            Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([buf], readable, 1));
            f.Driver.Publish();
            Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
            Assert.Equal(expectWritable ? 0 : 1, c.Readable);
            Assert.Equal(buf.Length, expectWritable ? c.WritableBytes : c.ReadableBytes);
            Span<byte> got = stackalloc byte[32];
            if (expectWritable)
            {
                Assert.Equal((int)buf.Length, f.Device.Scatter(new byte[buf.Length]));
                Assert.Equal(new byte[buf.Length], f.Bytes(expectGpa, (int)buf.Length).ToArray());
                f.Bytes(expectGpa, (int)buf.Length).Fill(expectGpa == a ? (byte)'a' : (byte)'b');
            }
            else
            {
                Assert.Equal((int)buf.Length, f.Device.Gather(got));
                Assert.Equal(f.Bytes(expectGpa, (int)buf.Length).ToArray(), got[..(int)buf.Length].ToArray());
            }

            Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, expectWritable ? buf.Length : 0));
            f.Device.PublishUsed();
            Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out _, out _));
        }

        RoundTrip(new(a, 8), 1, a, false);   // head 0
        RoundTrip(new(a, 8), 1, a, false);   // head 1
        RoundTrip(new(a, 8), 1, a, false);   // head 0 again, same bytes: not written
        RoundTrip(new(b2, 8), 1, b2, false); // head 1, new address
        RoundTrip(new(b2, 16), 1, b2, false); // head 0, new length
        RoundTrip(new(b2, 16), 0, b2, true); // head 1, now device-writable
        f.WriteDesc(0, 0xdead_0000, 3, 0, 0); // a peer scribbles over free descriptor 0
        RoundTrip(new(b2, 16), 1, b2, false); // head 0: the driver's bytes again
    }

    [Fact]
    public void TryAdd_BadArguments_InvalidArgumentAndNothingChanges()
    {
        using var f = new VirtqFixture(4);
        ulong b = f.Buffer(64);
        Assert.Equal(RrStatus.InvalidArgument, f.Driver.TryAdd([], 0, 1));
        Assert.Equal(RrStatus.InvalidArgument, f.Driver.TryAdd([new(b, 8)], 2, 1));
        Assert.Equal(RrStatus.InvalidArgument, f.Driver.TryAdd([new(b, 8)], -1, 1));
        Assert.Equal(RrStatus.InvalidArgument, f.Driver.TryAdd([new(b, 8), new(b, 8), new(b, 8), new(b, 8), new(b, 8)], 5, 1));
        Assert.Equal(RrStatus.InvalidArgument, f.Driver.TryAdd([new(VirtqFixture.GpaBase - 8, 8)], 1, 1));
        Assert.Equal(RrStatus.InvalidArgument, f.Driver.TryAdd([new(VirtqFixture.GpaBase + (1 << 20) - 4, 8)], 1, 1));
        Assert.Equal(4, f.Driver.FreeCount);
        Assert.Equal(0, f.AvailIdx);
    }

    // Device writes a zero-length answer; readable-only chains have no writable bytes.
    [Fact]
    public void AddUsed_DeviceSideMisuse_InvalidArgument()
    {
        using var f = new VirtqFixture(4);
        f.AddSimple(1, 8, 8);
        Assert.Equal(RrStatus.InvalidArgument, f.Device.AddUsed(0, 0)); // not popped yet
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal(RrStatus.InvalidArgument, f.Device.AddUsed(c.Head, 9));
        Assert.Equal(RrStatus.InvalidArgument, f.Device.AddUsed(99, 0));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 8));
        Assert.Equal(RrStatus.InvalidArgument, f.Device.AddUsed(c.Head, 0)); // twice
    }

    // Without EVENT_IDX: the flags; with it: the event indices, and each side counts what it did.
    [Fact]
    public void Notifications_FlagsWithoutEventIdx()
    {
        using var f = new VirtqFixture(8, VirtqFeatures.None);
        ulong b = f.Buffer(16);
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8)], 1, 1));
        Assert.True(f.Driver.KickPrepare());           // used.flags = 0: kick
        f.Device.DisableNotifications();
        Assert.Equal(VRING_USED_F_NO_NOTIFY, f.UsedFlags);
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8)], 1, 2));
        Assert.False(f.Driver.KickPrepare());          // NO_NOTIFY: no kick
        Assert.True(f.Device.EnableNotifications());   // work already waiting
        Assert.Equal(0, f.UsedFlags);

        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
        Assert.True(f.Device.NotifyPrepare());         // avail.flags = 0
        f.Driver.DisableCallbacks();
        Assert.Equal(VRING_AVAIL_F_NO_INTERRUPT, f.AvailFlags);
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out c));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
        Assert.False(f.Device.NotifyPrepare());
        Assert.False(f.Device.NotifyPrepare());        // nothing new: no decision to make
    }

    [Fact]
    public void Notifications_EventIdxSuppressesUntilTheEventIndexIsPassed()
    {
        using var f = new VirtqFixture(8, VirtqFeatures.EventIdx);
        ulong b = f.Buffer(16);
        // avail_event = 0 initially: the first head (slot 0) needs a kick, the next ones not.
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8)], 1, 1));
        Assert.True(f.Driver.KickPrepare());
        Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8)], 1, 2));
        Assert.False(f.Driver.KickPrepare());
        // The device consumes both and asks to be kicked at index 2.
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c1));
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c2));
        Assert.False(f.Device.EnableNotifications());
        Assert.Equal(2, f.AvailEvent);
        // A batch of three (slots 2..4) crosses 2: one kick for the batch.
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8)], 1, (ulong)(10 + i)));
        }

        Assert.True(f.Driver.KickPrepare());
        Assert.Equal(1, f.Driver.KicksSuppressed);

        // used_event = 0 initially: the first used entry notifies, the second not; after the
        // driver collects one with callbacks on, used_event moves to 1 and the next one notifies.
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c1.Head, 0));
        Assert.True(f.Device.NotifyPrepare());
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c2.Head, 0));
        Assert.False(f.Device.NotifyPrepare());
        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out _, out _));
        Assert.Equal(1, f.UsedEvent);
        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out _, out _));
        Assert.Equal(2, f.UsedEvent);
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c3));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c3.Head, 0));
        Assert.True(f.Device.NotifyPrepare());
        Assert.Equal(2, f.Device.Notifications);
        Assert.Equal(1, f.Device.NotificationsSuppressed);
    }

    // Polling across many wraps of the 16-bit indices with a tiny ring.
    [Fact]
    public void Indices_WrapPast65536_KeepWorking()
    {
        using var f = new VirtqFixture(2, VirtqFeatures.EventIdx);
        ulong b = f.Buffer(8);
        f.Driver.DisableCallbacks();
        for (int i = 0; i < 70_000; i++)
        {
            Assert.Equal(RrStatus.Ok, f.Driver.TryAdd([new(b, 8)], 0, (ulong)i));
            f.Driver.Publish();
            Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
            Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 8));
            f.Device.PublishUsed();
            Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong t, out uint len));
            Assert.Equal(((ulong)i, 8u), (t, len));
        }

        Assert.Equal(unchecked((ushort)70_000), f.AvailIdx);
        Assert.Equal(unchecked((ushort)70_000), f.UsedIdx);
    }

    // Teardown: chains the device never returned come back through DetachUnused, then Reset.
    [Fact]
    public void DetachUnusedAndReset_ReturnEveryTokenAndRestart()
    {
        using var f = new VirtqFixture(8);
        for (ulong t = 1; t <= 3; t++)
        {
            f.AddSimple(t);
        }

        ulong sum = 0;
        while (f.Driver.TryDetachUnused(out ulong t) == RrStatus.Ok)
        {
            sum += t;
        }

        Assert.Equal(6ul, sum);
        Assert.Equal(8, f.Driver.FreeCount);
        Assert.Equal(RrStatus.Ok, f.Driver.Reset());
        Assert.Equal(RrStatus.Ok, f.Device.Reset());
        f.AddSimple(42);
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 1));
        f.Device.PublishUsed();
        Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong token, out _));
        Assert.Equal(42ul, token);
    }
}
