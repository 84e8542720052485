using System;
using RefRuntime.Core.Virtio;
using Xunit;
using static RefRuntime.Core.Virtio.VirtqLayout;

namespace RefRuntime.Core.Tests.Virtio;

/// <summary>
/// One queue pair over one region, plus raw access to the shared ring so a test can play a
/// malicious peer (write any descriptor, ring entry or used element directly).
/// </summary>
internal sealed unsafe class VirtqFixture : IDisposable
{
    public const ulong GpaBase = 0x4000_0000;

    public readonly GuestMemory Memory;
    public readonly VirtqDriver Driver;
    public readonly VirtqDevice Device;
    public readonly int N;
    private readonly byte* _desc;
    private readonly byte* _avail;
    private readonly byte* _used;

    public VirtqFixture(int n, VirtqFeatures features = VirtqFeatures.EventIdx | VirtqFeatures.IndirectDesc, int indirectMax = 0, MalformedChainPolicy policy = MalformedChainPolicy.BreakQueue, ulong regionBytes = 1 << 20)
    {
        N = n;
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(regionBytes, GpaBase, out GuestMemory? mem));
        Memory = mem!;
        Assert.Equal(RrStatus.Ok, VirtqDriver.Create(Memory, n, features, indirectMax, out VirtqDriver? drv, out string? err));
        Assert.Null(err);
        Driver = drv!;
        Assert.Equal(RrStatus.Ok, VirtqDevice.Create(Memory, Driver.Rings, features, policy, out VirtqDevice? dev, out err));
        Device = dev!;
        Assert.True(Memory.TryTranslate(Driver.Rings.DescGpa, 1, out _desc));
        Assert.True(Memory.TryTranslate(Driver.Rings.AvailGpa, 1, out _avail));
        Assert.True(Memory.TryTranslate(Driver.Rings.UsedGpa, 1, out _used));
    }

    /// <summary>Carves a buffer and returns its address.</summary>
    public ulong Buffer(uint bytes, ulong align = 8)
    {
        Assert.Equal(RrStatus.Ok, Memory.TryCarve(bytes, align, out ulong gpa));
        return gpa;
    }

    public Span<byte> Bytes(ulong gpa, int length)
    {
        Assert.True(Memory.TryTranslate(gpa, (ulong)length, out byte* p));
        return new Span<byte>(p, length);
    }

    // Raw shared-ring access (the peer's view).
    public void WriteDesc(int index, ulong addr, uint len, ushort flags, ushort next)
    {
        byte* d = _desc + (index * DescSize);
        *(ulong*)d = addr;
        *(uint*)(d + 8) = len;
        *(ushort*)(d + 12) = flags;
        *(ushort*)(d + 14) = next;
    }

    public static void WriteDescAt(Span<byte> table, int index, ulong addr, uint len, ushort flags, ushort next)
    {
        fixed (byte* t = table)
        {
            byte* d = t + (index * DescSize);
            *(ulong*)d = addr;
            *(uint*)(d + 8) = len;
            *(ushort*)(d + 12) = flags;
            *(ushort*)(d + 14) = next;
        }
    }

    public ushort AvailIdx
    {
        get => *(ushort*)(_avail + 2);
        set => *(ushort*)(_avail + 2) = value;
    }

    public ushort AvailFlags => *(ushort*)_avail;

    public void SetAvailEntry(int slot, ushort head) => *(ushort*)(_avail + 4 + (2 * slot)) = head;

    public ushort UsedEvent
    {
        get => *(ushort*)(_avail + UsedEventOffset(N));
        set => *(ushort*)(_avail + UsedEventOffset(N)) = value;
    }

    public ushort UsedIdx
    {
        get => *(ushort*)(_used + 2);
        set => *(ushort*)(_used + 2) = value;
    }

    public ushort UsedFlags => *(ushort*)_used;

    public ushort AvailEvent
    {
        get => *(ushort*)(_used + AvailEventOffset(N));
        set => *(ushort*)(_used + AvailEventOffset(N)) = value;
    }

    public void SetUsedEntry(int slot, uint id, uint len)
    {
        *(uint*)(_used + 4 + (8 * slot)) = id;
        *(uint*)(_used + 8 + (8 * slot)) = len;
    }

    /// <summary>The driver adds one readable + one writable buffer and publishes.</summary>
    public void AddSimple(ulong token, uint readBytes = 8, uint writeBytes = 8)
    {
        ulong r = Buffer(readBytes);
        ulong w = Buffer(writeBytes);
        Assert.Equal(RrStatus.Ok, Driver.TryAdd([new VirtqBuffer(r, readBytes), new VirtqBuffer(w, writeBytes)], 1, token));
        Driver.Publish();
    }

    public void Dispose()
    {
        Driver.Destroy();
        Device.Destroy();
        Assert.Equal(RrStatus.Ok, Memory.Destroy());
    }
}
