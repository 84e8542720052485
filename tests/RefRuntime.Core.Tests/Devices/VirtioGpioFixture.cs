using System;
using System.Diagnostics;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Io;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Virtio;
using Xunit;
using static RefRuntime.Core.Devices.VirtioGpio.VirtioGpioConst;
using Driver = RefRuntime.Core.Devices.Pl061.Pl061Driver<RefRuntime.Core.Io.RawDeviceBackend>;

namespace RefRuntime.Core.Tests.Devices;

/// <summary>
/// The device half of the pair — PL061 model, its driver, the virtio-gpio device — and a raw
/// driver side (two VirtqDrivers) that sends exact bytes and hand-made chains, as a hostile or
/// merely unusual front end would.
/// </summary>
internal sealed unsafe class VirtioGpioFixture : IDisposable
{
    public static readonly string?[] SpecNames = ["led-red", null, "button", null, null, null, null, null];

    public readonly RawPl061Model Model = new();
    public readonly Driver Pl061;
    public readonly VirtioGpioDevice Device;
    public readonly GuestMemory Memory;
    public readonly VirtqDriver Requestq;
    public readonly VirtqDriver? Eventq;
    public readonly Doorbell Call = new(100);
    public VirtioGpioDevice Target;
    private readonly ulong _scratch;
    private ulong _next;

    public VirtioGpioFixture(bool irq = true, string?[]? names = null, bool start = true)
    {
        Assert.Equal(RrStatus.Ok, Pl061Probe.OnModel(Model, out Driver? d, out _));
        Pl061 = d!;
        Assert.Equal(RrStatus.Ok, VirtioGpioDevice.Create(Pl061, names ?? SpecNames, irq, out VirtioGpioDevice? dev, out string? err));
        Assert.Null(err);
        Device = dev!;
        Target = Device;
        Assert.Equal(RrStatus.Ok, GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? mem));
        Memory = mem!;
        Assert.Equal(RrStatus.Ok, VirtqDriver.Create(Memory, 64, VirtqFeatures.EventIdx, 0, out VirtqDriver? rq, out _));
        Requestq = rq!;
        if (irq)
        {
            Assert.Equal(RrStatus.Ok, VirtqDriver.Create(Memory, 64, VirtqFeatures.EventIdx, 0, out Eventq, out _));
        }

        Assert.Equal(RrStatus.Ok, Memory.TryCarve(256 * 1024, 64, out _scratch));
        if (start)
        {
            Start(irq);
        }
    }

    public void Start(bool irq)
    {
        ulong features = VIRTIO_F_VERSION_1 | (ulong)VirtqFeatures.EventIdx | (irq ? VIRTIO_GPIO_F_IRQ : 0);
        Assert.Equal(RrStatus.Ok, Device.Start(features, Memory, Requestq!.Rings, Eventq?.Rings, Call, out string? error));
        Assert.Null(error);
    }

    /// <summary>Fresh zeroed bytes in guest memory (bump allocation inside the scratch area).</summary>
    public ulong Alloc(int bytes, int fill = 0xEE)
    {
        ulong gpa = _scratch + _next;
        _next += (ulong)((bytes + 15) & ~15);
        Bytes(gpa, bytes).Fill((byte)fill);
        return gpa;
    }

    public Span<byte> Bytes(ulong gpa, int length)
    {
        Assert.True(Memory.TryTranslate(gpa, (ulong)length, out byte* p));
        return new Span<byte>(p, length);
    }

    public static byte[] Req(ushort type, ushort gpio, uint value)
    {
        var b = new byte[8];
        new VirtioGpioRequest(type, gpio, value).Write(b);
        return b;
    }

    /// <summary>Sends one request in a 2-descriptor chain and waits for its used entry.</summary>
    public (uint Len, byte[] Response) Send(byte[] request, int responseSize = 2)
    {
        ulong rq = Alloc(request.Length);
        request.CopyTo(Bytes(rq, request.Length));
        ulong rs = Alloc(Math.Max(responseSize, 1));
        VirtqBuffer[] bufs = responseSize > 0 ? [new(rq, (uint)request.Length), new(rs, (uint)responseSize)] : [new(rq, (uint)request.Length)];
        return SendChain(bufs, 1, rs, responseSize);
    }

    /// <summary>Sends any chain and waits for its used entry; returns the used length and the response bytes.</summary>
    public (uint Len, byte[] Response) SendChain(VirtqBuffer[] bufs, int readable, ulong responseGpa, int responseSize)
    {
        Assert.Equal(RrStatus.Ok, Requestq.TryAdd(bufs, readable, 0x5151));
        if (Requestq.KickPrepare())
        {
            Target.Kick.Ring();
        }

        uint len = WaitUsed(Requestq, 0x5151);
        return (len, responseSize > 0 ? Bytes(responseGpa, responseSize).ToArray() : []);
    }

    public static uint WaitUsed(VirtqDriver q, ulong expectToken)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < StressConfig.HangGuard)
        {
            RrStatus s = q.TryGetUsed(out ulong token, out uint len);
            if (s == RrStatus.Ok)
            {
                Assert.Equal(expectToken, token);
                return len;
            }

            Assert.Equal(RrStatus.NotFound, s);
            System.Threading.Thread.Yield();
        }

        throw new TimeoutException("the device did not answer within 10 s");
    }

    /// <summary>Status byte of a 2-byte answer, asserting the used length.</summary>
    public (byte Status, byte Value) Call2(ushort type, ushort gpio, uint value)
    {
        (uint len, byte[] r) = Send(Req(type, gpio, value));
        Assert.Equal(2u, len);
        return (r[0], r[1]);
    }

    public void Ok(ushort type, ushort gpio, uint value, byte expectValue = 0) =>
        Assert.Equal((VIRTIO_GPIO_STATUS_OK, expectValue), Call2(type, gpio, value));

    public void Err(ushort type, ushort gpio, uint value) =>
        Assert.Equal((VIRTIO_GPIO_STATUS_ERR, (byte)0), Call2(type, gpio, value));

    /// <summary>Queues an eventq buffer for <paramref name="line"/>; returns the response address.</summary>
    public ulong QueueEvent(ushort line, ulong token)
    {
        ulong b = Alloc(3, 0xEE);
        Bytes(b, 2)[0] = (byte)line;
        Bytes(b, 2)[1] = (byte)(line >> 8);
        Assert.Equal(RrStatus.Ok, Eventq!.TryAdd([new VirtqBuffer(b, 2), new VirtqBuffer(b + 2, 1)], 1, token));
        if (Eventq.KickPrepare())
        {
            Target.Kick.Ring();
        }

        return b + 2;
    }

    /// <summary>
    /// Waits (bounded) for an eventq used entry; null if none came within <paramref name="ms"/>.
    /// The default is a hang guard for an event that must come (it returns as soon as it does);
    /// callers checking that nothing comes pass a short time.
    /// </summary>
    public (ulong Token, uint Len)? NextEvent(int ms = 60_000)
    {
        var sw = Stopwatch.StartNew();
        do
        {
            RrStatus s = Eventq!.TryGetUsed(out ulong token, out uint len);
            if (s == RrStatus.Ok)
            {
                return (token, len);
            }

            Assert.Equal(RrStatus.NotFound, s);
            System.Threading.Thread.Yield();
        }
        while (sw.ElapsedMilliseconds < ms);

        return null;
    }

    public void Dispose()
    {
        Device.Dispose();
        Requestq.Destroy();
        Eventq?.Destroy();
        Assert.Equal(RrStatus.Ok, Memory.Destroy());
        Pl061.Destroy();
        Call.Dispose();
    }
}
