using System;
using System.Collections.Generic;
using RefRuntime.Core.Virtio;
using Xunit;

namespace RefRuntime.Core.Tests.Virtio;

/// <summary>
/// The device side as a real back-end uses it: guest memory of several regions (GuestMemoryMap),
/// many chains held and completed in any order, segments read and written at offsets, queue state
/// set after creation (size, addresses, indices, enable), and regions removed while chains still
/// use them.
/// </summary>
public sealed unsafe class VirtqDeviceMapTests
{
    private const ulong Gpa = 0x10_0000;
    private const ulong Half = 32 * 1024;
    private const ulong UserBase = 0x7e00_0000_0000;

    /// <summary>Memory lent to a map, counting releases.</summary>
    private sealed class Lent(byte* host, ulong length) : IRegionBacking
    {
        public int Releases;

        public byte* Host => host;

        public ulong Length => length;

        public void Release() => Releases++;
    }

    /// <summary>
    /// One native block seen two ways: a GuestMemory the driver side uses, and a map of two
    /// adjacent regions A = [Gpa, +32K) and B = [Gpa + 32K, +32K) over the same bytes.
    /// </summary>
    private sealed class Fixture : IDisposable
    {
        public readonly GuestMemory Memory;
        public readonly GuestMemoryMap Map = new(8);
        public Lent A;
        public Lent B;
        public readonly VirtqDriver Driver;
        public readonly VirtqDevice Device;

        public Fixture(int n = 32, MalformedChainPolicy policy = MalformedChainPolicy.ReturnEmpty, bool userAddresses = true)
        {
            Assert.Equal(RrStatus.Ok, GuestMemory.Create(2 * Half, Gpa, out GuestMemory? mem));
            Memory = mem!;
            A = new Lent(Memory.HostBase, Half);
            B = new Lent(Memory.HostBase + Half, Half);
            Assert.Equal(RrStatus.Ok, Map.Add(new GuestRegionSpec(Gpa, Half, UserBase, 0), A, out _));
            Assert.Equal(RrStatus.Ok, Map.Add(new GuestRegionSpec(Gpa + Half, Half, UserBase + Half, 0), B, out _));
            Assert.Equal(RrStatus.Ok, VirtqDriver.Create(Memory, n, VirtqFeatures.EventIdx, 0, out VirtqDriver? d, out _)); // rings in A
            Driver = d!;
            Assert.Equal(RrStatus.Ok, VirtqDevice.Create(Map, 256, VirtqFeatures.None, policy, out VirtqDevice? q, out _));
            Device = q!;
            Assert.False(Device.IsReady);
            Assert.Equal(RrStatus.Ok, Device.SetSize(n));
            Assert.Equal(RrStatus.Ok, Device.SetFeatures(VirtqFeatures.EventIdx));
            VirtqRings r = Driver.Rings;
            Assert.Equal(RrStatus.Ok, userAddresses
                ? Device.SetRingAddresses(User(r.DescGpa), User(r.AvailGpa), User(r.UsedGpa), GuestAddressSpace.FrontEndUser)
                : Device.SetRingAddresses(r.DescGpa, r.AvailGpa, r.UsedGpa, GuestAddressSpace.GuestPhysical));
            Assert.Equal(RrStatus.Ok, Device.Start(out string? error));
            Assert.Null(error);
        }

        public static ulong User(ulong gpa) => UserBase + (gpa - Gpa);

        public Span<byte> Bytes(ulong gpa, int length)
        {
            Assert.True(Memory.TryTranslate(gpa, (ulong)length, out byte* p));
            return new Span<byte>(p, length);
        }

        public void Add(ulong token, params VirtqBuffer[] readableThenWritable) => Add(token, 1, readableThenWritable);

        public void Add(ulong token, int readable, params VirtqBuffer[] bufs)
        {
            Assert.Equal(RrStatus.Ok, Driver.TryAdd(bufs, readable, token));
            Driver.Publish();
        }

        public void Dispose()
        {
            Device.Destroy();
            Driver.Destroy();
            Map.Dispose();
            Assert.Equal(1, A.Releases);
            Assert.Equal(1, B.Releases);
            Assert.Equal(RrStatus.Ok, Memory.Destroy());
        }
    }

    // Queue depth 32: every chain held at once, completed in reverse order, each with its own data.
    [Fact]
    public void ManyChains_HeldAtOnce_CompletedInAnyOrder_KeepTheirOwnSegments()
    {
        using var f = new Fixture(n: 128); // a 128-entry ring at queue depth 32, 3 descriptors per chain (as virtio-blk)
        const int depth = 32;
        for (int i = 0; i < depth; i++)
        {
            ulong req = Gpa + Half + ((ulong)i * 256); // buffers in region B
            f.Bytes(req, 16).Fill((byte)i);
            f.Add((ulong)i, new VirtqBuffer(req, 16), new VirtqBuffer(req + 64, 8), new VirtqBuffer(req + 128, 8));
        }

        var heads = new List<ushort>();
        while (f.Device.TryPop(out VirtqChain c) == RrStatus.Ok)
        {
            heads.Add(c.Head);
            Assert.Equal(1, c.Readable);
            Assert.Equal(2, c.Writable);
        }

        Assert.Equal(depth, heads.Count);
        Assert.Equal(depth, f.Device.HeldCount);
        Span<byte> read = stackalloc byte[16];
        for (int k = depth - 1; k >= 0; k--)
        {
            ushort head = heads[k];
            Assert.Equal(RrStatus.Ok, f.Device.ReadChain(head, 4, read, out int copied));
            Assert.Equal(12, copied); // from offset 4 to the end of the readable part
            byte tag = read[0];
            Assert.Equal((byte)k, tag);
            // Write across the two writable segments: 6 bytes at offset 5 = 3 in each.
            Assert.Equal(RrStatus.Ok, f.Device.WriteChain(head, 5, [tag, tag, tag, tag, tag, tag], out int written));
            Assert.Equal(6, written);
            Assert.Equal(RrStatus.Ok, f.Device.AddUsed(head, 11));
            Assert.False(f.Device.IsHeld(head));
            Assert.Equal(RrStatus.InvalidArgument, f.Device.ReadChain(head, 0, read, out _)); // returned: refused
        }

        f.Device.PublishUsed();
        var seen = new HashSet<ulong>();
        while (f.Driver.TryGetUsed(out ulong token, out uint len) == RrStatus.Ok)
        {
            Assert.Equal(11u, len);
            ulong req = Gpa + Half + (token * 256);
            Assert.Equal((byte)token, f.Bytes(req + 64 + 5, 1)[0]);
            Assert.Equal((byte)token, f.Bytes(req + 128 + 2, 1)[0]);
            seen.Add(token);
        }

        Assert.Equal(depth, seen.Count);
    }

    // A buffer that crosses from region A into the adjacent region B becomes two segments.
    [Fact]
    public void BufferAcrossAdjacentRegions_IsSplitIntoSegments_AndCopiesCrossTheSeam()
    {
        using var f = new Fixture();
        ulong start = Gpa + Half - 10; // 10 bytes in A, 22 in B
        for (int i = 0; i < 32; i++)
        {
            f.Bytes(start + (ulong)i, 1)[0] = (byte)(i + 1);
        }

        f.Add(7, 0, new VirtqBuffer(start, 32));
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        ReadOnlySpan<VirtqSegment> segs = f.Device.GetSegments(c.Head);
        Assert.Equal(2, segs.Length);
        Assert.Equal(10u, segs[0].Length);
        Assert.Equal(22u, segs[1].Length);
        Assert.True(segs[0].Writable && segs[1].Writable);
        Assert.Equal(RrStatus.Ok, f.Device.WriteChain(c.Head, 8, [0xA1, 0xA2, 0xA3, 0xA4], out int written));
        Assert.Equal(4, written);
        Assert.Equal(new byte[] { 8, 0xA1, 0xA2, 0xA3, 0xA4, 13 }, f.Bytes(start + 7, 6).ToArray());
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 12));
    }

    // A buffer in a gap between regions is malformed: returned empty, never read.
    [Fact]
    public void BufferInAGapOrPastTheEnd_IsMalformed()
    {
        using var f = new Fixture();
        Assert.Equal(RrStatus.Ok, f.Map.Remove(Gpa + Half, Half, UserBase + Half, out _)); // B goes: a gap after A
        Assert.Equal(1, f.B.Releases); // nothing pinned it
        f.Add(1, 0, new VirtqBuffer(Gpa + Half - 4, 8)); // half in A, half in the gap
        Assert.Equal(RrStatus.Malformed, f.Device.TryPop(out VirtqChain c));
        Assert.Contains("outside", f.Device.LastMalformedReason, StringComparison.Ordinal);
        Assert.Empty(f.Device.GetSegments(c.Head).ToArray());
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
        Assert.Equal(RrStatus.Ok, f.Map.Add(new GuestRegionSpec(Gpa + Half, Half, UserBase + Half, 0), f.B = new Lent(f.Memory.HostBase + Half, Half), out _));
    }

    // A region removed while a held chain points into it stays mapped until the chain is returned.
    [Fact]
    public void RegionRemovedWhileChainHeld_IsUnmappedOnlyAfterTheChainReturns()
    {
        using var f = new Fixture();
        ulong buf = Gpa + Half + 512;
        f.Bytes(buf, 4).Fill(0x5A);
        f.Add(3, new VirtqBuffer(buf, 4), new VirtqBuffer(buf + 8, 4));
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Lent b = f.B;
        Assert.Equal(RrStatus.Ok, f.Map.Remove(Gpa + Half, Half, 0, out _));
        Assert.Equal(0, b.Releases); // still pinned by the chain
        Assert.Equal(1, f.Map.PendingRelease);
        Span<byte> got = stackalloc byte[4];
        Assert.Equal(RrStatus.Ok, f.Device.ReadChain(c.Head, 0, got, out int n)); // still readable: zero copy stays valid
        Assert.Equal(4, n);
        Assert.Equal(0x5A, got[3]);
        f.Add(4, 0, new VirtqBuffer(buf + 16, 4)); // a new chain into the removed region: refused
        Assert.Equal(RrStatus.Malformed, f.Device.TryPop(out VirtqChain bad));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(bad.Head, 0));
        Assert.Equal(0, b.Releases);
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 4));
        Assert.Equal(1, b.Releases); // the last user let go
        Assert.Equal(0, f.Map.PendingRelease);
        Assert.Equal(RrStatus.Ok, f.Map.Add(new GuestRegionSpec(Gpa + Half, Half, UserBase + Half, 0), f.B = new Lent(f.Memory.HostBase + Half, Half), out _));
    }

    // A ring whose region is removed keeps it mapped until the queue stops.
    [Fact]
    public void RingRegionRemoved_StaysMappedUntilStop()
    {
        using var f = new Fixture();
        Lent a = f.A;
        Assert.Equal(RrStatus.Ok, f.Map.Remove(Gpa, Half, UserBase, out _));
        Assert.Equal(0, a.Releases);
        f.Device.Stop();
        Assert.Equal(1, a.Releases);
        Assert.Equal(RrStatus.Ok, f.Map.Add(new GuestRegionSpec(Gpa, Half, UserBase, 0), f.A = new Lent(f.Memory.HostBase, Half), out _));
        Assert.Equal(RrStatus.Ok, f.Device.Start(out _));
    }

    // Stop keeps the indices (GET_VRING_BASE), drops held chains; a restart at that non-zero index continues.
    [Fact]
    public void StopAndRestart_AtNonZeroIndex_Continues_HeldChainsDropped()
    {
        using var f = new Fixture(n: 8);
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 5; i++)
            {
                f.Add((ulong)i, 0, new VirtqBuffer(Gpa + Half + ((ulong)i * 64), 8));
                Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
                Assert.Equal(RrStatus.Ok, f.Device.WriteChain(c.Head, 0, [(byte)round], out _));
                Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 1));
                f.Device.PublishUsed();
                Assert.Equal(RrStatus.Ok, f.Driver.TryGetUsed(out ulong token, out _));
                Assert.Equal((ulong)i, token);
            }

            // One more in flight when the ring stops: the device drops it; the driver knows it is lost.
            f.Add(99, 0, new VirtqBuffer(Gpa + Half + 4096, 8));
            Assert.Equal(RrStatus.Ok, f.Device.TryPop(out _));
            ushort next = f.Device.NextAvail;
            Assert.Equal((ushort)(6 * (round + 1)), next);
            f.Device.Stop();
            Assert.Equal(0, f.Device.HeldCount);
            Assert.Equal(RrStatus.Busy, f.Device.SyncUsedIndexFromRing()); // stopped
            Assert.Equal(RrStatus.Ok, f.Device.SetIndices(next, 0));
            Assert.Equal(RrStatus.Ok, f.Device.Start(out _));
            Assert.Equal(RrStatus.Ok, f.Device.SyncUsedIndexFromRing()); // continue after the driver's used index
            Assert.Equal(f.Device.RingUsedIndex, f.Device.NextUsed);
            Assert.Equal(RrStatus.Ok, f.Driver.TryDetachUnused(out ulong lost));
            Assert.Equal(99UL, lost);
        }
    }

    // A disabled queue takes no new chains but completes the ones it holds.
    [Fact]
    public void Disabled_TakesNothingNew_CompletesHeld()
    {
        using var f = new Fixture();
        f.Add(1, 0, new VirtqBuffer(Gpa + Half, 8));
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        f.Add(2, 0, new VirtqBuffer(Gpa + Half + 64, 8));
        f.Device.SetEnabled(false);
        Assert.False(f.Device.HasAvailable);
        Assert.Equal(RrStatus.NotFound, f.Device.TryPop(out _));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
        f.Device.SetEnabled(true);
        Assert.True(f.Device.HasAvailable);
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c2));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c2.Head, 0));
    }

    // Configuration is checked at Start and only allowed while stopped.
    [Fact]
    public void Configuration_CheckedAtStart_OnlyWhileStopped()
    {
        using var f = new Fixture();
        Assert.Equal(RrStatus.Busy, f.Device.SetSize(16));
        Assert.Equal(RrStatus.Busy, f.Device.SetIndices(1, 1));
        Assert.Equal(RrStatus.Busy, f.Device.Start(out _));
        f.Device.Stop();
        Assert.Equal(RrStatus.InvalidArgument, f.Device.SetSize(3));
        Assert.Equal(RrStatus.InvalidArgument, f.Device.SetSize(512)); // above the maximum of 256
        VirtqRings r = f.Device.ConfiguredRings;
        Assert.Equal(RrStatus.Ok, f.Device.SetRingAddresses(r.DescGpa + 8, r.AvailGpa, r.UsedGpa, GuestAddressSpace.FrontEndUser)); // misaligned
        Assert.Equal(RrStatus.InvalidArgument, f.Device.Start(out string? e));
        Assert.Contains("misaligned", e, StringComparison.Ordinal);
        Assert.Equal(RrStatus.Ok, f.Device.SetRingAddresses(UserBase + (2 * Half) - 16, r.AvailGpa, r.UsedGpa, GuestAddressSpace.FrontEndUser)); // past the end
        Assert.Equal(RrStatus.Ok, f.Device.SetRingAddresses(r.DescGpa, r.AvailGpa, UserBase + (2 * Half) - 16, GuestAddressSpace.FrontEndUser)); // the used ring past the end
        Assert.Equal(RrStatus.InvalidArgument, f.Device.Start(out e));
        Assert.Contains("not entirely inside one memory region", e, StringComparison.Ordinal);
        Assert.Equal(1, f.Map.Regions[0].References); // the parts pinned before the failure were unpinned (regression)
        Assert.Equal(RrStatus.Ok, f.Device.SetRingAddresses(UserBase + (2 * Half) - 16, r.AvailGpa, r.UsedGpa, GuestAddressSpace.FrontEndUser));
        Assert.Equal(RrStatus.InvalidArgument, f.Device.Start(out e));
        Assert.Equal(RrStatus.Ok, f.Device.SetRingAddresses(r.DescGpa, r.AvailGpa, r.UsedGpa, GuestAddressSpace.FrontEndUser));
        Assert.Equal(RrStatus.Ok, f.Device.Start(out _));
        Assert.False(f.Device.TryPop(out _) == RrStatus.Ok);
    }

    // The same queue with ring addresses given as guest-physical addresses.
    [Fact]
    public void GuestPhysicalRingAddresses_Work()
    {
        using var f = new Fixture(userAddresses: false);
        f.Add(5, 0, new VirtqBuffer(Gpa + 100, 4));
        Assert.Equal(RrStatus.Ok, f.Device.TryPop(out VirtqChain c));
        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(c.Head, 0));
    }

    // The map refuses empty, wrapping and overlapping regions, and more than its limit.
    [Fact]
    public void Map_RefusesBadRegions()
    {
        using var m = new GuestMemoryMap(2);
        byte* block = stackalloc byte[64];
        var lent = new Lent(block, 64);
        Assert.Equal(RrStatus.InvalidArgument, m.Add(new GuestRegionSpec(0, 0, 0, 0), lent, out _));
        Assert.Equal(RrStatus.InvalidArgument, m.Add(new GuestRegionSpec(ulong.MaxValue - 10, 64, 0, 0), lent, out _));
        Assert.Equal(RrStatus.InvalidArgument, m.Add(new GuestRegionSpec(0, 128, 0, 0), lent, out string? e)); // bigger than its memory
        Assert.Contains("smaller", e, StringComparison.Ordinal);
        Assert.Equal(RrStatus.Ok, m.Add(new GuestRegionSpec(0x1000, 64, 0x9000, 0), new Lent(block, 64), out _));
        Assert.Equal(RrStatus.InvalidArgument, m.Add(new GuestRegionSpec(0x1020, 64, 0x20000, 0), new Lent(block, 64), out e));
        Assert.Contains("guest", e, StringComparison.Ordinal);
        Assert.Equal(RrStatus.InvalidArgument, m.Add(new GuestRegionSpec(0x8000, 64, 0x9010, 0), new Lent(block, 64), out e));
        Assert.Contains("user", e, StringComparison.Ordinal);
        Assert.Equal(RrStatus.Ok, m.Add(new GuestRegionSpec(0x2000, 64, 0xa000, 0), new Lent(block, 64), out _));
        Assert.Equal(RrStatus.NoSpace, m.Add(new GuestRegionSpec(0x3000, 64, 0xb000, 0), new Lent(block, 64), out _));
        Assert.True(m.TryWrite(0x1000 + 60, [1, 2, 3, 4, 5, 6, 7, 8]) == false); // runs past the region into a gap
        Assert.True(m.TryWrite(0x1000, [9]));
        Span<byte> one = stackalloc byte[1];
        Assert.True(m.TryRead(0x1000, one));
        Assert.Equal(9, one[0]);
        Assert.Equal(RrStatus.NotFound, m.Remove(0x1000, 32, 0, out _));
        GuestRegionSpec[] specs = [new(0, 64, 0, 0), new(32, 64, 0x100, 0)];
        var l1 = new Lent(block, 64);
        var l2 = new Lent(block, 64);
        Assert.Equal(RrStatus.InvalidArgument, m.Replace(specs, [l1, l2], out _)); // overlap: nothing changes
        Assert.Equal(1, l1.Releases);
        Assert.Equal(1, l2.Releases);
        Assert.Equal(2, m.Count);
    }
}
