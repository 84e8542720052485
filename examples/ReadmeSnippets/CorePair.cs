// README.md's driver-pair snippet: RefRuntime.Core's virtio-gpio device and front end, wired by
// hand (GpioChip.ProbeVirtioPair does the same for safe-layer users).

using System;
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Virtio;

static class CorePair
{
    public static void Run()
    {
        var model = new RawPl061Model();
        if (Pl061Probe.OnModel(model, out var probed, out string? error) != RrStatus.Ok)
        {
            throw new InvalidOperationException(error);
        }

        var pl061Driver = probed!;
        string?[] names = ["led", null, "button", null, null, null, null, null];
        if (GuestMemory.Create(1 << 20, 0x4000_0000, out GuestMemory? memory) != RrStatus.Ok)
        {
            throw new OutOfMemoryException();
        }

        GuestMemory guestMemory = memory!;
        RawGpioIrqType rising = RawGpioIrqType.EdgeRising;

        VirtioGpioDevice.Create(pl061Driver, names, offerIrq: true, out var device, out _);  // device side
        VirtioGpioChip.Probe(device!, guestMemory, out var chip, out _);                      // front end
        chip!.DirectionOutput(0, true);                                  // SET_VALUE, SET_DIRECTION over the ring
        chip.SetIrqType(2, rising);                                      // SET_IRQ_TYPE
        chip.SetIrqHandler(2, line => Console.WriteLine($"line {line}")); // + an eventq buffer for line 2
        pl061Driver.Remove();                                            // hot-unplug: chip calls return NoDevice
        chip.Remove();                                                   // unbind: stops the interrupt thread (not from a handler)

        Console.WriteLine($"pair: the model drove 0x{model.Outputs:x2}; after unplug Get = {chip.Get(0, out _)}");
        // EXPECT: pair: the model drove 0x01; after unplug Get = NoDevice
        chip.Dispose();
        device!.Dispose();
        guestMemory.Destroy();
        pl061Driver.Destroy();
    }
}
