using System;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Virtio;
using Xunit;
using Xunit.Abstractions;
using static RefRuntime.Core.Devices.VirtioGpio.VirtioGpioConst;

namespace RefRuntime.Core.Tests.Devices;

/// <summary>
/// The virtio-gpio device backend byte by byte (virtio 1.2 §5.18 and the project
/// rules D1–D19 of docs/virtio-gpio.md), driven by a raw driver side over the PL061 driver and model.
/// </summary>
public sealed class VirtioGpioDeviceTests(ITestOutputHelper output)
{
    // D18: config bytes at every width and offset; the names fixture of docs/virtio-gpio.md gives 21 bytes.
    [Fact]
    public void Config_AnyWidthAnyOffset_SpecFixture()
    {
        using var f = new VirtioGpioFixture();
        Assert.Equal(8u, f.Device.ReadConfig(0, 2));
        Assert.Equal(8u, f.Device.ReadConfig(0, 1));
        Assert.Equal(0u, f.Device.ReadConfig(1, 1));
        Assert.Equal(8u, f.Device.ReadConfig(0, 4)); // ngpio + zero padding
        Assert.Equal(21u, f.Device.ReadConfig(4, 4));
        Assert.Equal(21u, f.Device.ReadConfig(4, 1));
        Assert.Equal(0u, f.Device.ReadConfig(6, 2));
        Assert.Equal(0u, f.Device.ReadConfig(7, 4) >> 8); // past the end reads as 0
        Assert.Equal(0u, f.Device.ReadConfig(8, 1));
        Assert.Equal(0u, f.Device.ReadConfig(0, 3));
        byte[] expected = [0x6c, 0x65, 0x64, 0x2d, 0x72, 0x65, 0x64, 0, 0, 0x62, 0x75, 0x74, 0x74, 0x6f, 0x6e, 0, 0, 0, 0, 0, 0];
        Assert.Equal(expected, f.Device.NamesBlob.ToArray());
        Assert.NotEqual(0ul, f.Device.DeviceFeatures & VIRTIO_GPIO_F_IRQ);
        Assert.NotEqual(0ul, f.Device.DeviceFeatures & VIRTIO_F_VERSION_1);
    }

    // D16: names must be 7-bit ASCII without NUL and unique; a wrong count is refused.
    [Fact]
    public void Create_BadNames_Refused()
    {
        var model = new RawPl061Model();
        var io = new RefRuntime.Core.Io.RawIo<RefRuntime.Core.Io.RawDeviceBackend>(new RefRuntime.Core.Io.RawDeviceBackend(model, Pl061Regs.WindowSize));
        Assert.Equal(RrStatus.Ok, Pl061Driver<RefRuntime.Core.Io.RawDeviceBackend>.Probe(io, null, null, out var pl, out _));
        string?[] dup = ["a", "b", "a", null, null, null, null, null];
        Assert.Equal(RrStatus.InvalidArgument, VirtioGpioDevice.Create(pl!, dup, true, out _, out string? e1));
        Assert.Contains("not unique", e1);
        string?[] nonAscii = ["é", null, null, null, null, null, null, null];
        Assert.Equal(RrStatus.InvalidArgument, VirtioGpioDevice.Create(pl!, nonAscii, true, out _, out string? e2));
        Assert.Contains("ASCII", e2);
        string?[] nul = ["a\0b", null, null, null, null, null, null, null];
        Assert.Equal(RrStatus.InvalidArgument, VirtioGpioDevice.Create(pl!, nul, true, out _, out _));
        Assert.Equal(RrStatus.InvalidArgument, VirtioGpioDevice.Create(pl!, ["x"], true, out _, out string? e3));
        Assert.Contains("1 names for 8 lines", e3);
        string?[] twoUnnamed = ["", "", null, null, null, null, null, null];
        Assert.Equal(RrStatus.Ok, VirtioGpioDevice.Create(pl!, twoUnnamed, true, out _, out _)); // unnamed lines may repeat
        pl!.Destroy();
    }

    [Fact]
    public void GetNames_ReturnsBlob_AndErrWithoutNames()
    {
        using (var f = new VirtioGpioFixture())
        {
            (uint len, byte[] r) = f.Send(VirtioGpioFixture.Req(VIRTIO_GPIO_MSG_GET_NAMES, 5, 77), 22); // D5: gpio/value ignored
            Assert.Equal(22u, len);
            Assert.Equal(VIRTIO_GPIO_STATUS_OK, r[0]);
            Assert.Equal(f.Device.NamesBlob.ToArray(), r[1..]);
            // D3: a 2-byte response for GET_NAMES is the wrong size: ERR.
            Assert.Equal((VIRTIO_GPIO_STATUS_ERR, (byte)0), f.Call2(VIRTIO_GPIO_MSG_GET_NAMES, 0, 0));
        }

        // A device without names: gpio_names_size 0, GET_NAMES answered ERR (a 1-byte response
        // is the expected size then, so the ERR is the rule, not the size check).
        using var g = new VirtioGpioFixture(start: false);
        Assert.Equal(RrStatus.Ok, VirtioGpioDevice.Create(g.Pl061, null, true, out VirtioGpioDevice? bare, out _));
        Assert.Equal(0u, bare!.ReadConfig(4, 4));
        Assert.Equal(RrStatus.Ok, bare.Start(VIRTIO_F_VERSION_1 | VIRTIO_GPIO_F_IRQ, g.Memory, g.Requestq.Rings, g.Eventq!.Rings, g.Call, out _));
        g.Target = bare;
        (uint bareLen, byte[] bareResp) = g.Send(VirtioGpioFixture.Req(VIRTIO_GPIO_MSG_GET_NAMES, 0, 0), 1);
        Assert.Equal((1u, VIRTIO_GPIO_STATUS_ERR), (bareLen, bareResp[0]));
        bare.Dispose();
    }

    // The controller sequence of vhost-device-gpio's tests, with RefRuntime's stricter rules.
    [Fact]
    public void Sequence_DirectionValueRules()
    {
        using var f = new VirtioGpioFixture();
        f.Ok(VIRTIO_GPIO_MSG_GET_DIRECTION, 3, 0, VIRTIO_GPIO_DIRECTION_NONE);
        f.Err(VIRTIO_GPIO_MSG_GET_VALUE, 3, 0);                                  // D10: NONE line
        f.Err(VIRTIO_GPIO_MSG_SET_DIRECTION, 3, VIRTIO_GPIO_DIRECTION_OUT);       // D9: no value yet
        f.Ok(VIRTIO_GPIO_MSG_SET_VALUE, 3, 1);                                   // D8: cached on a NONE line
        Assert.Equal(0, f.Model.Outputs & (1 << 3));
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 3, VIRTIO_GPIO_DIRECTION_OUT);
        Assert.Equal(1 << 3, f.Model.Outputs & (1 << 3));                         // the cached level is driven
        f.Ok(VIRTIO_GPIO_MSG_GET_VALUE, 3, 0, 1);
        f.Ok(VIRTIO_GPIO_MSG_GET_DIRECTION, 3, 0, VIRTIO_GPIO_DIRECTION_OUT);
        f.Ok(VIRTIO_GPIO_MSG_SET_VALUE, 3, 0);
        Assert.Equal(0, f.Model.Outputs & (1 << 3));
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 3, VIRTIO_GPIO_DIRECTION_IN);
        f.Model.SetInput(3, true);
        f.Ok(VIRTIO_GPIO_MSG_GET_VALUE, 3, 0, 1);                                // sensed level
        f.Model.SetInput(3, false);
        f.Ok(VIRTIO_GPIO_MSG_GET_VALUE, 3, 5, 0);                                // D5: value ignored
        // D7: full-width values.
        f.Err(VIRTIO_GPIO_MSG_SET_VALUE, 3, 2);
        f.Err(VIRTIO_GPIO_MSG_SET_VALUE, 3, 0x100);
        f.Err(VIRTIO_GPIO_MSG_SET_DIRECTION, 3, 3);
        f.Err(VIRTIO_GPIO_MSG_SET_DIRECTION, 3, 0x0102);
        // D6: line out of range; unknown types.
        f.Err(VIRTIO_GPIO_MSG_GET_DIRECTION, 8, 0);
        f.Err(VIRTIO_GPIO_MSG_SET_VALUE, 0xFFFF, 1);
        f.Err(100, 0, 0);
        f.Err(0, 0, 0);
        // D11: NONE forgets the cached value: OUT needs a new SET_VALUE.
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 3, VIRTIO_GPIO_DIRECTION_NONE);
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 3, VIRTIO_GPIO_DIRECTION_NONE);       // NONE -> NONE is OK
        f.Err(VIRTIO_GPIO_MSG_SET_DIRECTION, 3, VIRTIO_GPIO_DIRECTION_OUT);
        Assert.True(f.Device.Errors >= 11);
    }

    // D3/D4: the response size is checked before the operation; ERR is 1 then 0, used len min(W, 2).
    [Theory]
    [InlineData(4, 2u)]
    [InlineData(1, 1u)]
    [InlineData(0, 0u)]
    public void WrongResponseSize_ErrAndNothingChanged(int responseSize, uint expectedLen)
    {
        using var f = new VirtioGpioFixture();
        f.Ok(VIRTIO_GPIO_MSG_SET_VALUE, 1, 1);
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 1, VIRTIO_GPIO_DIRECTION_OUT);
        (uint len, byte[] r) = f.Send(VirtioGpioFixture.Req(VIRTIO_GPIO_MSG_SET_VALUE, 1, 0), responseSize);
        Assert.Equal(expectedLen, len);
        if (responseSize >= 1)
        {
            Assert.Equal(VIRTIO_GPIO_STATUS_ERR, r[0]);
        }

        if (responseSize >= 2)
        {
            Assert.Equal(0, r[1]);
        }

        if (responseSize > 2)
        {
            Assert.Equal(0xEE, r[2]); // nothing past what is reported
        }

        Assert.Equal(1 << 1, f.Model.Outputs & (1 << 1)); // D19: the pin did not change
    }

    // D1/D2: bytes are gathered across descriptors; malformed framing goes back with length 0
    // and nothing written; the next request is served.
    [Fact]
    public void Framing_GatheredAcrossDescriptors_MalformedReturnedEmpty()
    {
        using var f = new VirtioGpioFixture();
        f.Ok(VIRTIO_GPIO_MSG_SET_VALUE, 2, 1);
        // 3 + 3 + 2 readable bytes, then the response split 1 + 1.
        byte[] req = VirtioGpioFixture.Req(VIRTIO_GPIO_MSG_GET_DIRECTION, 2, 0);
        ulong a = f.Alloc(8), rsp = f.Alloc(2);
        req.CopyTo(f.Bytes(a, 8));
        (uint len, byte[] r) = f.SendChain([new(a, 3), new(a + 3, 3), new(a + 6, 2), new(rsp, 1), new(rsp + 1, 1)], 3, rsp, 2);
        Assert.Equal((2u, VIRTIO_GPIO_STATUS_OK, VIRTIO_GPIO_DIRECTION_NONE), (len, r[0], r[1]));

        long malformedBefore = f.Device.Malformed;
        // 7 and 9 readable bytes.
        Assert.Equal(0u, f.Send(req[..7]).Len);
        Assert.Equal(0u, f.Send([.. req, 0]).Len);
        // Write-only request (no readable bytes).
        ulong w = f.Alloc(10);
        Assert.Equal(0u, f.SendChain([new(w, 8), new(w + 8, 2)], 0, w + 8, 2).Len);
        Assert.Equal(0xEE, f.Bytes(w + 8, 1)[0]); // nothing written
        // More than 16 descriptors.
        var many = new VirtqBuffer[18];
        ulong m = f.Alloc(32);
        for (int i = 0; i < 16; i++)
        {
            many[i] = new VirtqBuffer(m + (ulong)(i / 2), (uint)(i % 2)); // 8 bytes in all, 16 pieces
        }

        many[16] = new VirtqBuffer(m + 16, 1);
        many[17] = new VirtqBuffer(m + 17, 1);
        Assert.Equal(0u, f.SendChain(many, 16, m + 16, 2).Len);
        // A readable descriptor after a writable one (written into the shared table by hand).
        Assert.Equal(RrStatus.Ok, f.Requestq.TryAdd([new(a, 4), new(a + 4, 4), new(rsp, 2)], 3, 0x5151));
        MarkFirstWritable(f);
        f.Requestq.KickPrepare();
        f.Device.Kick.Ring();
        Assert.Equal(0u, VirtioGpioFixture.WaitUsed(f.Requestq, 0x5151));
        Assert.Equal(malformedBefore + 5, f.Device.Malformed);
        // And the device still serves.
        f.Ok(VIRTIO_GPIO_MSG_GET_DIRECTION, 2, 0, VIRTIO_GPIO_DIRECTION_NONE);
    }

    private static unsafe void MarkFirstWritable(VirtioGpioFixture f)
    {
        // The chain just added starts at the driver's most recent head; find a readable head
        // whose NEXT is set and make it device-writable, so its successor (readable) comes after it.
        f.Memory.TryTranslate(f.Requestq.Rings.AvailGpa, 4 + (2 * 64), out byte* avail);
        ushort idx = *(ushort*)(avail + 2);
        ushort head = *(ushort*)(avail + 4 + (2 * ((idx - 1) & 63)));
        f.Memory.TryTranslate(f.Requestq.Rings.DescGpa + (ulong)(16 * head), 16, out byte* d);
        *(ushort*)(d + 12) |= VirtqLayout.VRING_DESC_F_WRITE;
    }

    // A request buffer outside guest memory: the queue refuses the chain, the device answers len 0.
    [Fact]
    public unsafe void RequestOutsideRegion_ReturnedEmpty()
    {
        using var f = new VirtioGpioFixture();
        ulong rsp = f.Alloc(2);
        ulong a = f.Alloc(8);
        Assert.Equal(RrStatus.Ok, f.Requestq.TryAdd([new(a, 8), new(rsp, 2)], 1, 0x5151));
        f.Memory.TryTranslate(f.Requestq.Rings.AvailGpa, 4 + (2 * 64), out byte* avail);
        ushort head = *(ushort*)(avail + 4);
        f.Memory.TryTranslate(f.Requestq.Rings.DescGpa + (ulong)(16 * head), 16, out byte* d);
        *(ulong*)d = 0x10; // far below the region
        f.Requestq.KickPrepare();
        f.Device.Kick.Ring();
        Assert.Equal(0u, VirtioGpioFixture.WaitUsed(f.Requestq, 0x5151));
        f.Ok(VIRTIO_GPIO_MSG_GET_DIRECTION, 0, 0, VIRTIO_GPIO_DIRECTION_NONE);
    }

    // D12: the SET_IRQ_TYPE rules.
    [Fact]
    public void SetIrqType_Rules()
    {
        using var f = new VirtioGpioFixture();
        f.Err(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING);     // NONE line
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 4, VIRTIO_GPIO_DIRECTION_IN);
        f.Err(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_NONE);           // NONE -> NONE
        f.Err(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, 5);                                   // not a type
        f.Err(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, 0x10);
        f.Err(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, 0x1_0001);                            // D7: full width
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING);
        f.Err(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING);     // same type
        f.Err(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING);    // NONE first
        f.Ok(VIRTIO_GPIO_MSG_SET_VALUE, 4, 1);
        f.Err(VIRTIO_GPIO_MSG_SET_DIRECTION, 4, VIRTIO_GPIO_DIRECTION_OUT);       // D9: irq in use
        Assert.Equal(0, f.Model.Outputs & (1 << 4));                              // D19
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_NONE);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING);
    }

    [Fact]
    public void SetIrqType_WithoutFeature_Err()
    {
        using var f = new VirtioGpioFixture(irq: false);
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 4, VIRTIO_GPIO_DIRECTION_IN);
        f.Err(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING);
        Assert.Equal(0ul, f.Device.DeviceFeatures & VIRTIO_GPIO_F_IRQ); // not offered
        Assert.Null(f.Eventq);
    }

    // The eventq model for every trigger type: enable, unmask (queue the buffer), make the condition, get VALID.
    [Theory]
    [InlineData(VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING, false, true)]
    [InlineData(VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING, true, false)]
    [InlineData(VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH, false, true)]
    [InlineData(VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH, true, false)]
    [InlineData(VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH, false, true)]
    [InlineData(VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW, true, false)]
    public void Interrupt_EveryTriggerType_DeliveredValid(uint type, bool from, bool to)
    {
        using var f = new VirtioGpioFixture();
        f.Model.SetInput(6, from);
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 6, VIRTIO_GPIO_DIRECTION_IN);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 6, type);
        ulong resp = f.QueueEvent(6, 60);
        Assert.Null(f.NextEvent(100)); // held: nothing happened yet
        f.Model.SetInput(6, to);
        (ulong token, uint len) = f.NextEvent() ?? throw new Xunit.Sdk.XunitException("no interrupt delivered");
        Assert.Equal((60ul, 1u), (token, len));
        Assert.Equal(VIRTIO_GPIO_IRQ_STATUS_VALID, f.Bytes(resp, 1)[0]);
        Assert.Equal(1, f.Device.Events);
    }

    // Edges seen while masked are latched (several collapse into one) and reported at once on requeue.
    [Fact]
    public void Edge_WhileMasked_LatchedOnce()
    {
        using var f = new VirtioGpioFixture();
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 1, VIRTIO_GPIO_DIRECTION_IN);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 1, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING);
        for (int i = 0; i < 3; i++)
        {
            f.Model.SetInput(1, true);
            f.Model.SetInput(1, false);
        }

        f.Ok(VIRTIO_GPIO_MSG_GET_VALUE, 1, 0, 0); // a round trip: the device has seen the edges
        f.QueueEvent(1, 11);
        Assert.Equal((11ul, 1u), f.NextEvent());
        f.QueueEvent(1, 12);
        Assert.Null(f.NextEvent(150)); // one latch for three edges
        f.Model.SetInput(1, true);
        Assert.Equal((12ul, 1u), f.NextEvent());
    }

    // Level is not latched: a level that came and went while masked is not reported; one that is
    // present when the buffer arrives is reported at once.
    [Fact]
    public void Level_NotLatched_ReportedIfPresentAtUnmask()
    {
        using var f = new VirtioGpioFixture();
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, VIRTIO_GPIO_DIRECTION_IN);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH);
        f.Model.SetInput(2, true);
        f.Model.SetInput(2, false);
        f.QueueEvent(2, 21);
        Assert.Null(f.NextEvent(150));
        f.Model.SetInput(2, true);
        Assert.Equal((21ul, 1u), f.NextEvent());
        f.QueueEvent(2, 22); // still high: reported immediately
        Assert.Equal((22ul, 1u), f.NextEvent());
    }

    // Disabling returns the held buffer INVALID, published before the request's own answer (D13);
    // a buffer for a line not enabled, out of range, or a duplicate (D14) comes back INVALID at once.
    [Fact]
    public void Eventq_InvalidCases_AndOrdering()
    {
        using var f = new VirtioGpioFixture();
        ulong r0 = f.QueueEvent(5, 50);                       // not enabled
        Assert.Equal((50ul, 1u), f.NextEvent());
        Assert.Equal(VIRTIO_GPIO_IRQ_STATUS_INVALID, f.Bytes(r0, 1)[0]);
        ulong r1 = f.QueueEvent(9, 90);                       // D6: out of range
        Assert.Equal((90ul, 1u), f.NextEvent());
        Assert.Equal(VIRTIO_GPIO_IRQ_STATUS_INVALID, f.Bytes(r1, 1)[0]);

        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 5, VIRTIO_GPIO_DIRECTION_IN);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 5, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING);
        ulong held = f.QueueEvent(5, 51);
        ulong dup = f.QueueEvent(5, 52);                      // D14
        Assert.Equal((52ul, 1u), f.NextEvent());
        Assert.Equal(VIRTIO_GPIO_IRQ_STATUS_INVALID, f.Bytes(dup, 1)[0]);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 5, VIRTIO_GPIO_IRQ_TYPE_NONE);
        // D13: by the time the requestq answer was collected, the eventq entry is already there.
        Assert.True(f.Eventq!.HasUsed);
        Assert.Equal((51ul, 1u), f.NextEvent(0) ?? f.NextEvent());
        Assert.Equal(VIRTIO_GPIO_IRQ_STATUS_INVALID, f.Bytes(held, 1)[0]);
        // After NONE an edge is not reported and not latched.
        f.Model.SetInput(5, true);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 5, VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING);
        f.QueueEvent(5, 53);
        Assert.Null(f.NextEvent(150));
    }

    // D11: releasing the line (NONE) also disables its interrupt and returns the held buffer.
    [Fact]
    public void SetDirectionNone_DisablesIrqAndReturnsHeldBuffer()
    {
        using var f = new VirtioGpioFixture();
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 7, VIRTIO_GPIO_DIRECTION_IN);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 7, VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW);
        f.Model.SetInput(7, true);
        ulong held = f.QueueEvent(7, 70);
        Assert.Null(f.NextEvent(100));
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 7, VIRTIO_GPIO_DIRECTION_NONE);
        Assert.Equal((70ul, 1u), f.NextEvent());
        Assert.Equal(VIRTIO_GPIO_IRQ_STATUS_INVALID, f.Bytes(held, 1)[0]);
        f.Ok(VIRTIO_GPIO_MSG_GET_DIRECTION, 7, 0, VIRTIO_GPIO_DIRECTION_NONE);
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 7, VIRTIO_GPIO_DIRECTION_IN);
        f.Ok(VIRTIO_GPIO_MSG_IRQ_TYPE, 7, VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW);     // type was reset to NONE
    }

    // Malformed eventq chains (wrong sizes) go back with length 0.
    [Fact]
    public void Eventq_Malformed_ReturnedEmpty()
    {
        using var f = new VirtioGpioFixture();
        ulong b = f.Alloc(8);
        Assert.Equal(RrStatus.Ok, f.Eventq!.TryAdd([new(b, 3), new(b + 4, 1)], 1, 1));
        Assert.Equal(RrStatus.Ok, f.Eventq.TryAdd([new(b, 2), new(b + 4, 2)], 1, 2));
        Assert.Equal(RrStatus.Ok, f.Eventq.TryAdd([new(b, 2)], 1, 3));
        f.Eventq.KickPrepare();
        f.Device.Kick.Ring();
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(0u, (f.NextEvent() ?? throw new Xunit.Sdk.XunitException("missing")).Len);
        }

        Assert.Equal(3, f.Device.Malformed);
    }

    // D17: reset forgets everything and reprograms the chip.
    [Fact]
    public void Reset_ForgetsAllState()
    {
        using var f = new VirtioGpioFixture();
        f.Ok(VIRTIO_GPIO_MSG_SET_VALUE, 0, 1);
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 0, VIRTIO_GPIO_DIRECTION_OUT);
        Assert.Equal(1, f.Model.Outputs & 1);
        f.Device.Reset();
        Assert.Equal(0, f.Model.Outputs & 1);
        Assert.Equal(RrStatus.Ok, f.Requestq.Reset());
        Assert.Equal(RrStatus.Ok, f.Eventq!.Reset());
        f.Start(irq: true);
        f.Ok(VIRTIO_GPIO_MSG_GET_DIRECTION, 0, 0, VIRTIO_GPIO_DIRECTION_NONE);
        f.Err(VIRTIO_GPIO_MSG_SET_DIRECTION, 0, VIRTIO_GPIO_DIRECTION_OUT); // cached value forgotten
    }

    // Hot-unplug at the device: the PL061 is removed; requests are answered ERR, never hang,
    // and the device reports that it needs a reset.
    [Fact]
    public void Pl061Removed_ErrAndNeedsReset()
    {
        using var f = new VirtioGpioFixture();
        f.Ok(VIRTIO_GPIO_MSG_SET_DIRECTION, 0, VIRTIO_GPIO_DIRECTION_IN);
        Assert.False(f.Device.NeedsReset);
        Assert.Equal(RrStatus.Ok, f.Pl061.Remove());
        f.Err(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0);
        Assert.True(f.Device.NeedsReset);
        f.Ok(VIRTIO_GPIO_MSG_GET_DIRECTION, 0, 0, VIRTIO_GPIO_DIRECTION_IN); // state-only answers still work
    }

    // Start's checks: features must be offered and include VERSION_1; the eventq iff F_IRQ.
    [Fact]
    public void Start_BadNegotiation_Refused()
    {
        using var f = new VirtioGpioFixture(start: false);
        Assert.Equal(RrStatus.InvalidArgument, f.Device.Start(VIRTIO_GPIO_F_IRQ, f.Memory, f.Requestq.Rings, f.Eventq!.Rings, f.Call, out string? e1));
        Assert.Contains("VERSION_1", e1);
        Assert.Equal(RrStatus.InvalidArgument, f.Device.Start(VIRTIO_F_VERSION_1 | VIRTIO_GPIO_F_IRQ, f.Memory, f.Requestq.Rings, null, f.Call, out string? e2));
        Assert.Contains("eventq", e2);
        Assert.Equal(RrStatus.InvalidArgument, f.Device.Start(VIRTIO_F_VERSION_1 | (1UL << 40), f.Memory, f.Requestq.Rings, null, f.Call, out _));
        f.Start(irq: true);
        Assert.Equal(RrStatus.Busy, f.Device.Start(VIRTIO_F_VERSION_1 | VIRTIO_GPIO_F_IRQ, f.Memory, f.Requestq.Rings, f.Eventq.Rings, f.Call, out _));
    }

    // Random messages in random layouts from an untrusted driver: every chain is answered (OK, ERR
    // or length 0), never beyond its writable bytes, the device never breaks or stops, the PL061
    // sees no invalid register access, and afterwards a normal request still works.
    [Fact]
    [Trait("Category", "Stress")]
    public void Fuzz_RandomMessages_AlwaysAnsweredNeverBroken()
    {
        using var f = new VirtioGpioFixture();
        var rng = new Random(20261127);
        ushort[] types = [0, 1, 2, 3, 4, 5, 6, 7, 100, 0xFFFF];
        uint[] values = [0, 1, 2, 3, 4, 5, 8, 0x102, 0xFFFF_FFFF];
        TimeSpan budget = RefRuntime.Core.Tests.Support.StressConfig.Extended;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int answered = 0;
        ulong rq = f.Alloc(16), rs = f.Alloc(32);
        for (int i = 0; i < 1500 || clock.Elapsed < budget; i++)
        {
            // eventq buffers in the first 1500 messages only: each takes fresh scratch memory (a
            // held buffer must stay put), and a stress run's millions of requests must not run out.
            if (i < 1500 && rng.Next(8) == 0)
            {
                // An eventq buffer for a random line (when there is room: enabled lines hold
                // theirs); collect whatever comes back.
                if (f.Eventq!.FreeCount >= 2)
                {
                    f.QueueEvent((ushort)rng.Next(10), 1000 + (ulong)i);
                }

                while (f.NextEvent(0) is { } e)
                {
                    Assert.True(e.Len <= 1);
                }

                continue;
            }

            byte[] req = VirtioGpioFixture.Req(types[rng.Next(types.Length)], (ushort)(rng.Next(4) == 0 ? rng.Next(65536) : rng.Next(10)), values[rng.Next(values.Length)]);
            int reqLen = rng.Next(6) == 0 ? rng.Next(13) : 8;
            byte[] request = new byte[Math.Max(reqLen, 1)];
            Array.Copy(req, request, Math.Min(8, request.Length));
            int respLen = rng.Next(5) switch { 0 => rng.Next(30), 1 => 22, _ => 2 };
            // One request and one response area reused by every message (the fixture's scratch
            // space is a bump allocator, and a stress run sends millions).
            request.CopyTo(f.Bytes(rq, request.Length));
            f.Bytes(rs, 32).Fill(0xEE);
            var bufs = new System.Collections.Generic.List<VirtqBuffer>();
            int cut = reqLen > 1 ? rng.Next(1, reqLen) : reqLen;
            bufs.Add(new VirtqBuffer(rq, (uint)cut));
            if (reqLen > cut)
            {
                bufs.Add(new VirtqBuffer(rq + (ulong)cut, (uint)(reqLen - cut)));
            }

            int readable = bufs.Count;
            if (respLen > 0)
            {
                int wcut = respLen > 1 && rng.Next(2) == 0 ? rng.Next(1, respLen) : respLen;
                bufs.Add(new VirtqBuffer(rs, (uint)wcut));
                if (respLen > wcut)
                {
                    bufs.Add(new VirtqBuffer(rs + (ulong)wcut, (uint)(respLen - wcut)));
                }
            }

            (uint len, byte[] r) = f.SendChain([.. bufs], readable, rs, respLen);
            Assert.True(len <= respLen, $"used length {len} beyond the {respLen} writable bytes");
            Assert.True(len is 0 or 1 or 2 or 22, $"used length {len}");
            if (len >= 1)
            {
                Assert.True(r[0] is VIRTIO_GPIO_STATUS_OK or VIRTIO_GPIO_STATUS_ERR);
            }

            Assert.False(f.Device.NeedsReset);
            answered++;
        }

        output.WriteLine($"random messages {answered}, all answered, device errors {f.Device.Errors}, malformed {f.Device.Malformed}, broken 0");
        Assert.True(answered > 1000);
        Assert.Equal(0, f.Model.BadAccesses);
        Assert.Equal(VIRTIO_GPIO_STATUS_OK, f.Call2(VIRTIO_GPIO_MSG_GET_DIRECTION, 0, 0).Status);
    }
}
