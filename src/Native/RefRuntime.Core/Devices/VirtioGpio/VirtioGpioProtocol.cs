// The virtio-gpio wire protocol (virtio 1.2 §5.18 "GPIO Device", device ID 41; see
// docs/virtio-gpio.md): message codes, status and direction codes, interrupt types, the 8-byte configuration
// space, the request/response layouts, and the transport surface the front end talks to.
// All multi-byte fields are little-endian.

using System;
using System.Buffers.Binary;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Devices.VirtioGpio;

/// <summary>Constants of the virtio-gpio device (virtio 1.2 §5.18; docs/virtio-gpio.md).</summary>
public static class VirtioGpioConst
{
    /// <summary>Virtio device ID of a GPIO device.</summary>
    public const int DeviceId = 41;

    /// <summary><c>VIRTIO_GPIO_F_IRQ</c> (feature bit 0): interrupts, the eventq and SET_IRQ_TYPE.</summary>
    public const ulong VIRTIO_GPIO_F_IRQ = 1UL << 0;

    /// <summary><c>VIRTIO_F_VERSION_1</c> (feature bit 32).</summary>
    public const ulong VIRTIO_F_VERSION_1 = 1UL << 32;

    /// <summary>GET_NAMES (spec GET_LINE_NAMES).</summary>
    public const ushort VIRTIO_GPIO_MSG_GET_NAMES = 0x0001;

    /// <summary>GET_DIRECTION.</summary>
    public const ushort VIRTIO_GPIO_MSG_GET_DIRECTION = 0x0002;

    /// <summary>SET_DIRECTION.</summary>
    public const ushort VIRTIO_GPIO_MSG_SET_DIRECTION = 0x0003;

    /// <summary>GET_VALUE.</summary>
    public const ushort VIRTIO_GPIO_MSG_GET_VALUE = 0x0004;

    /// <summary>SET_VALUE.</summary>
    public const ushort VIRTIO_GPIO_MSG_SET_VALUE = 0x0005;

    /// <summary>SET_IRQ_TYPE.</summary>
    public const ushort VIRTIO_GPIO_MSG_IRQ_TYPE = 0x0006;

    /// <summary>Response status OK.</summary>
    public const byte VIRTIO_GPIO_STATUS_OK = 0x00;

    /// <summary>Response status ERR.</summary>
    public const byte VIRTIO_GPIO_STATUS_ERR = 0x01;

    /// <summary>Direction: none (line released).</summary>
    public const byte VIRTIO_GPIO_DIRECTION_NONE = 0x00;

    /// <summary>Direction: output.</summary>
    public const byte VIRTIO_GPIO_DIRECTION_OUT = 0x01;

    /// <summary>Direction: input.</summary>
    public const byte VIRTIO_GPIO_DIRECTION_IN = 0x02;

    /// <summary>IRQ type: none (disabled).</summary>
    public const uint VIRTIO_GPIO_IRQ_TYPE_NONE = 0x00;

    /// <summary>IRQ type: rising edge.</summary>
    public const uint VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING = 0x01;

    /// <summary>IRQ type: falling edge.</summary>
    public const uint VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING = 0x02;

    /// <summary>IRQ type: both edges.</summary>
    public const uint VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH = 0x03;

    /// <summary>IRQ type: level high.</summary>
    public const uint VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH = 0x04;

    /// <summary>IRQ type: level low.</summary>
    public const uint VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW = 0x08;

    /// <summary>eventq status: the interrupt was disabled meanwhile (buffer returned unused).</summary>
    public const byte VIRTIO_GPIO_IRQ_STATUS_INVALID = 0x00;

    /// <summary>eventq status: an interrupt occurred.</summary>
    public const byte VIRTIO_GPIO_IRQ_STATUS_VALID = 0x01;

    /// <summary>Bytes of a requestq request (type le16, gpio le16, value le32).</summary>
    public const int RequestSize = 8;

    /// <summary>Bytes of a requestq response other than GET_NAMES (status u8, value u8).</summary>
    public const int ResponseSize = 2;

    /// <summary>Bytes of an eventq request (gpio le16).</summary>
    public const int IrqRequestSize = 2;

    /// <summary>Bytes of an eventq response (status u8).</summary>
    public const int IrqResponseSize = 1;

    /// <summary>Bytes of the configuration space (ngpio le16, padding[2], gpio_names_size le32).</summary>
    public const int ConfigSize = 8;

    /// <summary>The most descriptors the device accepts in one message (RefRuntime rule D1).</summary>
    public const int MaxDescriptorsPerMessage = 16;

    /// <summary>Whether <paramref name="type"/> is one of the six standard IRQ type codes.</summary>
    public static bool IsValidIrqType(uint type) => type is 0 or 1 or 2 or 3 or 4 or 8;

    /// <summary>The virtio IRQ type code of a Linux-style trigger (the values coincide).</summary>
    public static uint ToVirtio(Gpio.RawGpioIrqType type) => (uint)type;
}

/// <summary>A requestq request, decoded from its 8 little-endian bytes.</summary>
/// <param name="Type">Message type.</param>
/// <param name="Gpio">Line.</param>
/// <param name="Value">Message-specific value (full 32 bits).</param>
public readonly record struct VirtioGpioRequest(ushort Type, ushort Gpio, uint Value)
{
    /// <summary>Decodes the 8 request bytes.</summary>
    public static VirtioGpioRequest Read(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt16LittleEndian(b), BinaryPrimitives.ReadUInt16LittleEndian(b[2..]), BinaryPrimitives.ReadUInt32LittleEndian(b[4..]));

    /// <summary>Encodes the request into 8 bytes.</summary>
    public void Write(Span<byte> b)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(b, Type);
        BinaryPrimitives.WriteUInt16LittleEndian(b[2..], Gpio);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], Value);
    }
}

/// <summary>
/// What a virtio-gpio front end sees of its device: the configuration space, the feature bits,
/// the status the device reports, and the set-up of the queues (the role of the virtio-mmio or
/// PCI transport). Implemented by <see cref="VirtioGpioDevice"/>.
/// </summary>
public interface IVirtioGpioTransport
{
    /// <summary>Feature bits the device offers.</summary>
    ulong DeviceFeatures { get; }

    /// <summary>Reads <paramref name="width"/> (1, 2 or 4) bytes of the configuration space at <paramref name="offset"/>, little-endian; 0 outside it.</summary>
    uint ReadConfig(int offset, int width);

    /// <summary>True once the device needs a reset (virtio DEVICE_NEEDS_RESET): its hardware is gone or it failed.</summary>
    bool NeedsReset { get; }

    /// <summary>The doorbell the driver rings to notify the device (kick) of new requestq buffers.</summary>
    Doorbell Kick { get; }

    /// <summary>The doorbell for new eventq buffers (a vhost-user device has one kick per queue); by default <see cref="Kick"/>.</summary>
    Doorbell EventqKick => Kick;

    /// <summary>
    /// Driver OK: the driver accepted <paramref name="features"/> and placed its queues; the
    /// device attaches to them and starts serving. <paramref name="call"/> is rung to notify the driver.
    /// </summary>
    RrStatus Start(ulong features, GuestMemory memory, VirtqRings requestq, VirtqRings? eventq, Doorbell call, out string? error);

    /// <summary>Device reset (rule D17): stops serving, forgets all line state; queues must be set up again.</summary>
    void Reset();
}
