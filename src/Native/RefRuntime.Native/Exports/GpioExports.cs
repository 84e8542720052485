// C ABI of the PL061 model and of GPIO chips: rr_pl061_*, rr_gpio_* in include/refruntime.h.
// Handles are ObjectHandle blocks (validated by magic); every body: validate, one call, map.

using System;
using System.Runtime.InteropServices;
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Io;

namespace RefRuntime.Native.Exports;

internal static unsafe class GpioExports
{

    /// <summary>A chip handle's target: the driver and the number of users holding the handle.</summary>
    private sealed class Chip(IGpioDevice device)
    {
        public readonly IGpioDevice Device = device;
        public int Users = 1; // refcount semantics (RefRuntime.Core.Sync.Refcount)
        private readonly (nint Fn, nint Ctx, Action<int> Handler)[] _handlers = new (nint, nint, Action<int>)[device.LineCount];

        /// <summary>
        /// The delegate for a C handler: the line's current one when @fn and @ctx are the same, so
        /// that setting them again is a re-arm (no wait, allowed from a handler), not a replacement.
        /// </summary>
        public Action<int> HandlerFor(int line, nint fn, nint ctx)
        {
            if ((uint)line >= (uint)_handlers.Length)
            {
                return static _ => { }; // refused by the device (bad line) before it is stored
            }

            lock (_handlers)
            {
                (nint Fn, nint Ctx, Action<int> Handler) h = _handlers[line];
                if (h.Handler is not null && h.Fn == fn && h.Ctx == ctx)
                {
                    return h.Handler;
                }

                // SAFETY: the caller keeps fn callable and ctx valid until the handler is cleared
                // or replaced and that call has returned (it waits for a running handler).
                Action<int> handler = n => ((delegate* unmanaged<void*, int, void>)fn)((void*)ctx, n);
                _handlers[line] = (fn, ctx, handler);
                return handler;
            }
        }
    }


    [UnmanagedCallersOnly(EntryPoint = "rr_pl061_model_create")]
    private static int ModelCreate(void** outModel)
    {
        try
        {
            if (outModel == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            void* h = ObjectHandle.Alloc(new RawPl061Model(), HandleKind.Pl061Model);
            // SAFETY: non-NULL out pointer (checked).
            *outModel = h;
            return (int)(h == null ? RrStatus.OutOfMemory : RrStatus.Ok);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_pl061_model_destroy")]
    private static int ModelDestroy(void* model)
    {
        try
        {
            return (int)ObjectHandle.Destroy<RawPl061Model>(model, HandleKind.Pl061Model, static _ => RrStatus.Ok);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_pl061_model_set_input")]
    private static int ModelSetInput(void* model, int line, byte level)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(model, HandleKind.Pl061Model, out RawPl061Model? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            if ((uint)line >= Pl061Regs.Lines)
            {
                return (int)RrStatus.InvalidArgument;
            }

            m!.SetInput(line, level != 0);
            return (int)RrStatus.Ok;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_pl061_model_outputs")]
    private static int ModelOutputs(void* model, byte* outputs)
    {
        try
        {
            if (outputs == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ObjectHandle.Resolve(model, HandleKind.Pl061Model, out RawPl061Model? m);
            // SAFETY: non-NULL out pointer (checked).
            *outputs = s == RrStatus.Ok ? m!.Outputs : (byte)0;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_pl061_probe_model")]
    private static int ProbeModel(void* model, void** outChip)
    {
        try
        {
            if (outChip == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked).
            *outChip = null;
            RrStatus s = ObjectHandle.Resolve(model, HandleKind.Pl061Model, out RawPl061Model? m);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            s = Pl061Probe.OnModel(m!, out var d, out _);
            if (s == RrStatus.Ok)
            {
                *outChip = ObjectHandle.Alloc(new Chip(d!), HandleKind.GpioChip);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_pl061_probe_io")]
    private static int ProbeIo(IoState* io, void** outChip)
    {
        try
        {
            if (outChip == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            // SAFETY: non-NULL out pointer (checked); io validated below before use.
            *outChip = null;
            RrStatus s = RawIo.Validate(io);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            IGpioDevice? device;
            if (io->Kind == RawIo.KindPlain)
            {
                s = Pl061Driver<RawMemoryBackend>.Probe(RawIo.PlainIo(io), null, null, out var d, out _);
                device = d;
            }
            else
            {
                s = Pl061Driver<CallbackBackend>.Probe(RawIo.DeviceIo(io), null, null, out var d, out _);
                device = d;
            }

            if (s == RrStatus.Ok)
            {
                *outChip = ObjectHandle.Alloc(new Chip(device!), HandleKind.GpioChip);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    private static RrStatus ChipOf(void* handle, out IGpioDevice? device)
    {
        RrStatus s = ObjectHandle.Resolve(handle, HandleKind.GpioChip, out Chip? c);
        device = c?.Device;
        return s;
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_get_direction")]
    private static int GetDirection(void* chip, int line, int* direction)
    {
        try
        {
            if (direction == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            RawGpioDirection dir = RawGpioDirection.Input;
            if (s == RrStatus.Ok)
            {
                s = d!.GetDirection(line, out dir);
            }

            // SAFETY: non-NULL out pointer (checked).
            *direction = (int)dir;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_direction_input")]
    private static int DirectionInput(void* chip, int line)
    {
        try
        {
            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            return (int)(s == RrStatus.Ok ? d!.DirectionInput(line) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_direction_output")]
    private static int DirectionOutput(void* chip, int line, byte value)
    {
        try
        {
            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            return (int)(s == RrStatus.Ok ? d!.DirectionOutput(line, value != 0) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_get")]
    private static int Get(void* chip, int line, byte* value)
    {
        try
        {
            if (value == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            bool v = false;
            if (s == RrStatus.Ok)
            {
                s = d!.Get(line, out v);
            }

            // SAFETY: non-NULL out pointer (checked).
            *value = v ? (byte)1 : (byte)0;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_set")]
    private static int Set(void* chip, int line, byte value)
    {
        try
        {
            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            return (int)(s == RrStatus.Ok ? d!.Set(line, value != 0) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_set_irq_type")]
    private static int SetIrqType(void* chip, int line, int type)
    {
        try
        {
            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            return (int)(s == RrStatus.Ok ? d!.SetIrqType(line, (RawGpioIrqType)type) : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_set_irq_handler")]
    private static int SetIrqHandler(void* chip, int line, delegate* unmanaged<void*, int, void> fn, void* ctx)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(chip, HandleKind.GpioChip, out Chip? c);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            Action<int>? handler = fn == null ? null : c!.HandlerFor(line, (nint)fn, (nint)ctx);
            return (int)c!.Device.SetIrqHandler(line, handler);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_irq_stats")]
    private static int IrqStats(void* chip, int line, RawGpioIrqStats* stats)
    {
        try
        {
            if (stats == null)
            {
                return (int)RrStatus.InvalidArgument;
            }

            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            RawGpioIrqStats value = default;
            if (s == RrStatus.Ok)
            {
                s = d!.GetIrqStats(line, out value);
            }

            // SAFETY: non-NULL out pointer (checked) to an rr_gpio_irq_stats_t, whose layout
            // RawGpioIrqStats matches (pinned by the header's static asserts and a test).
            *stats = value;
            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_interrupt")]
    private static int InterruptLine(void* chip, byte asserted)
    {
        try
        {
            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            if (s == RrStatus.Ok)
            {
                d!.Interrupt(asserted != 0);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_suspend")]
    private static int Suspend(void* chip)
    {
        try
        {
            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            return (int)(s == RrStatus.Ok ? d!.Suspend() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_resume")]
    private static int Resume(void* chip)
    {
        try
        {
            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            return (int)(s == RrStatus.Ok ? d!.Resume() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_remove")]
    private static int Remove(void* chip)
    {
        try
        {
            RrStatus s = ChipOf(chip, out IGpioDevice? d);
            return (int)(s == RrStatus.Ok ? d!.Remove() : s);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_chip_get")]
    private static int ChipGet(void* chip)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(chip, HandleKind.GpioChip, out Chip? c);
            if (s == RrStatus.Ok)
            {
                Core.Sync.Refcount.Inc(ref c!.Users);
            }

            return (int)s;
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "rr_gpio_destroy")]
    private static int Destroy(void* chip)
    {
        try
        {
            RrStatus s = ObjectHandle.Resolve(chip, HandleKind.GpioChip, out Chip? c);
            if (s != RrStatus.Ok)
            {
                return (int)s;
            }

            // From inside one of the chip's handlers the last reference would wait for itself;
            // refused for every reference (nothing changes), so the answer does not depend on
            // which user lets go last.
            if (c!.Device.InCall)
            {
                return (int)RrStatus.WouldDeadlock;
            }

            if (!Core.Sync.Refcount.DecAndTest(ref c.Users))
            {
                return (int)s; // other users remain: the chip lives on (possibly removed)
            }

            // The last user (only one thread gets here): remove the device if needed, free it,
            // then the handle. The handle goes even if the device refuses (no user is left to
            // retry with it); the device's status is what the caller gets.
            RrStatus device = RrStatus.Ok;
            s = ObjectHandle.Destroy<Chip>(chip, HandleKind.GpioChip, last =>
            {
                device = last.Device.Destroy();
                return RrStatus.Ok;
            });
            return (int)(s != RrStatus.Ok ? s : device);
        }
        catch (Exception e)
        {
            return (int)Abi.Fail(e);
        }
    }
}
