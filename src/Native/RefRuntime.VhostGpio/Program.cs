// refruntime-vhost-gpio: see Options.Usage. Builds the stack - PL061 model, PL061 driver (probed
// on the model through an MMIO window), optional line slice and loopback wires, the virtio-gpio
// device, the vhost-user server - then serves until SIGTERM/SIGINT. One log line per connection
// and per error, on stderr. Exit status: 0 after a signal (or when an inherited connected socket
// closes), 1 when start-up fails, 2 for a bad command line.

using System;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Io;
using RefRuntime.Core.Vhost;

namespace RefRuntime.VhostGpio;

internal static class Program
{
    private const PosixSignal SIGUSR1 = (PosixSignal)10; // Linux x86-64 and arm64

    private static readonly Action<string> Log = BackendCommandLine.StderrLog("refruntime-vhost-gpio");

    private static int Main(string[] args)
    {
        Options? o = Options.Parse(args, out string? error);
        return BackendCommandLine.Start("refruntime-vhost-gpio", "gpio", Options.Usage, o?.Common, error, () => Serve(o!));
    }

    private static int Serve(Options o)
    {
        var model = new RawPl061Model();
        if (Pl061Probe.OnModel(model, out Pl061Driver<RawDeviceBackend>? driver, out string? error) != RrStatus.Ok)
        {
            Log($"the PL061 driver did not probe: {error}");
            return 1;
        }

        foreach ((int outLine, int inLine) in o.Loopbacks)
        {
            int from = outLine, to = inLine;
            model.OutputsChanged += outputs => model.SetInput(to, (outputs & (1 << from)) != 0);
            model.SetInput(to, (model.Outputs & (1 << from)) != 0);
        }

        IGpioChip chip = o.Lines == Options.Pl061Lines ? driver! : new GpioChipSlice(driver!, o.Lines);
        if (VirtioGpioDevice.Create(chip, o.Names, offerIrq: true, out VirtioGpioDevice? device, out error) != RrStatus.Ok)
        {
            Log($"bad line names: {error}");
            driver!.Destroy();
            return 1;
        }

        var backend = new VhostUserGpioBackend(device!, Log);
        var platform = new LinuxVhostPlatform(Log, o.RequireSealed);
        RrStatus s = o.SocketPath is not null
            ? VhostUserServer.Listen(o.SocketPath, backend, Log, out VhostUserServer? server, out error, platform)
            : VhostUserServer.FromFd(o.Fd, backend, Log, out server, out error, platform);
        if (s != RrStatus.Ok)
        {
            Log($"cannot start: {error}");
            device!.Dispose();
            driver!.Destroy();
            return 1;
        }

        if (o.Verbose)
        {
            server!.Trace = Log;
        }

        int unplugged = 0;
        void Unplug(string why)
        {
            if (Interlocked.Exchange(ref unplugged, 1) == 0)
            {
                RrStatus r = driver!.Remove();
                Log($"PL061 unplugged ({why}): {r}; guest requests now answer ERR");
            }
        }

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var usr1 = PosixSignalRegistration.Create(SIGUSR1, ctx =>
        {
            ctx.Cancel = true;
            ThreadPool.QueueUserWorkItem(_ => Unplug("SIGUSR1"));
        });
        using Timer? timer = o.UnplugAfterMs >= 0 ? new Timer(_ => Unplug($"--unplug-after-ms {o.UnplugAfterMs}"), null, o.UnplugAfterMs, Timeout.Infinite) : null;

        Log($"serving virtio-gpio ({o.Lines} lines{(o.Loopbacks.Count > 0 ? $", {o.Loopbacks.Count} loopback wire(s)" : string.Empty)}) on {(o.SocketPath ?? $"descriptor {o.Fd}")}");
        server!.Run();
        Log("stopping");
        server.Dispose();
        device!.Dispose();
        driver!.Destroy();
        return 0;

        void Stop(PosixSignalContext ctx)
        {
            ctx.Cancel = true;
            server!.Stop();
        }
    }
}
