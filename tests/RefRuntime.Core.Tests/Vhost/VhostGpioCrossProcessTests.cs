using System;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace RefRuntime.Core.Tests.Vhost;

/// <summary>
/// The driver pair in two processes: VirtioGpioChip (this process) over the vhost-user transport
/// to dist/bin/refruntime-vhost-gpio (a child process): every virtio-gpio message, interrupts
/// across processes through a loopback wire, a back-end killed mid-request, restarted and
/// reconnected, SIGTERM, the unplug test hook.
/// </summary>
public sealed class VhostGpioCrossProcessTests(ITestOutputHelper output)
{
    private sealed class Front : IDisposable
    {
        public readonly VhostUserGpioTransport Transport;
        public readonly VirtioGpioChip Chip;

        public Front(string socketPath, bool useMemSlots = false)
        {
            Assert.Equal(RrStatus.Ok, VhostUserGpioTransport.Connect(socketPath, out VhostUserGpioTransport? t, out string? error, useMemSlots: useMemSlots));
            Assert.Null(error);
            Transport = t!;
            Assert.Equal(RrStatus.Ok, VirtioGpioChip.Probe(Transport, Transport.Memory, out VirtioGpioChip? chip, out error));
            Assert.Null(error);
            Chip = chip!;
        }

        public void Dispose()
        {
            Chip.Dispose();
            Transport.Dispose();
        }
    }

    private void Dump(BackendProcess b)
    {
        foreach (string line in b.Stderr)
        {
            output.WriteLine(line);
        }
    }

    // Every message type across the socket: names, directions, values, release, errors.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void EveryMessage_AcrossProcesses_AnswersLikeTheInProcessPair(bool useMemSlots)
    {
        using var b = new BackendProcess(null, "--names", "led-red,,button", "--loopback", "0:3");
        try
        {
            using (var f = new Front(b.SocketPath, useMemSlots))
            {
                IGpioChip chip = f.Chip;
                Assert.Equal(8, chip.LineCount);
                Assert.True(f.Chip.HasInterrupts);
                Assert.Equal("led-red", f.Chip.LineName(0));
                Assert.Null(f.Chip.LineName(1));
                Assert.Equal("button", f.Chip.LineName(2));

                Assert.Equal(RrStatus.Ok, chip.DirectionOutput(1, true));
                Assert.Equal(RrStatus.Ok, chip.GetDirection(1, out GpioDirection d));
                Assert.Equal(GpioDirection.Output, d);
                Assert.Equal(RrStatus.Ok, chip.Get(1, out bool v));
                Assert.True(v);
                Assert.Equal(RrStatus.Ok, chip.Set(1, false));
                Assert.Equal(RrStatus.Ok, chip.Get(1, out v));
                Assert.False(v);

                // The loopback wire: line 0's output drives line 3's input.
                Assert.Equal(RrStatus.Ok, chip.DirectionInput(3));
                Assert.Equal(RrStatus.Ok, chip.GetDirection(3, out d));
                Assert.Equal(GpioDirection.Input, d);
                Assert.Equal(RrStatus.Ok, chip.DirectionOutput(0, true));
                Assert.Equal(RrStatus.Ok, chip.Get(3, out v));
                Assert.True(v);
                Assert.Equal(RrStatus.Ok, chip.Set(0, false));
                Assert.Equal(RrStatus.Ok, chip.Get(3, out v));
                Assert.False(v);

                // Release: the device forgets the line (GET_DIRECTION answers NONE, which the chip refuses).
                Assert.Equal(RrStatus.Ok, f.Chip.Free(1));
                Assert.Equal(RrStatus.InvalidArgument, chip.GetDirection(1, out _));
                Assert.Equal(RrStatus.InvalidArgument, chip.Get(1, out _)); // GET_VALUE on a released line: ERR

                // Several requests in flight together.
                Assert.Equal(RrStatus.Ok, chip.DirectionOutput(4, true));
                Assert.Equal(RrStatus.Ok, chip.DirectionOutput(5, false));
                Span<bool> values = stackalloc bool[2];
                Assert.Equal(RrStatus.Ok, f.Chip.GetMultiple([4, 5], values));
                Assert.True(values[0]);
                Assert.False(values[1]);
                Assert.Equal(RrStatus.Ok, f.Chip.SetMultiple([4, 5], [false, true]));
                Assert.Equal(RrStatus.Ok, f.Chip.GetMultiple([4, 5], values));
                Assert.False(values[0]);
                Assert.True(values[1]);

                Assert.Equal(RrStatus.InvalidArgument, chip.Get(8, out _)); // no such line
                Assert.True(f.Transport.Calls > 0);
            }

            BackendProcess.WaitFor(() => b.HasLine("connection 1: ended"), "the back-end to see the disconnect");
            Assert.True(b.HasLine("connection 1: front-end connected"));
            Assert.Equal(0, b.Terminate());
            Assert.True(b.HasLine("stopping"));
        }
        finally
        {
            Dump(b);
        }
    }

    // An interrupt raised in the back-end's model (through the loopback wire the guest drives) reaches a handler here.
    [Fact]
    public void Interrupts_ThroughLoopbackWire_ReachTheHandlerInThisProcess()
    {
        using var b = new BackendProcess(null, "--loopback", "0:3,1:2");
        try
        {
            using var f = new Front(b.SocketPath);
            IGpioChip chip = f.Chip;
            using var fired = new SemaphoreSlim(0);
            int lastLine = -1;
            Assert.Equal(RrStatus.Ok, chip.DirectionOutput(0, false));
            Assert.Equal(RrStatus.Ok, chip.DirectionInput(3));
            Assert.Equal(RrStatus.Ok, chip.SetIrqType(3, GpioIrqType.EdgeRising));
            Assert.Equal(RrStatus.Ok, chip.SetIrqHandler(3, n => { lastLine = n; fired.Release(); }));
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal(RrStatus.Ok, chip.Set(0, true));
                Assert.True(fired.Wait(StressConfig.HangGuard), "no interrupt for a rising edge");
                Assert.Equal(3, lastLine);
                Assert.Equal(RrStatus.Ok, chip.Set(0, false)); // falling edge: not an event for EdgeRising
            }

            // Level-high on line 2 driven by line 1.
            Assert.Equal(RrStatus.Ok, chip.DirectionOutput(1, false));
            Assert.Equal(RrStatus.Ok, chip.DirectionInput(2));
            Assert.Equal(RrStatus.Ok, chip.SetIrqType(2, GpioIrqType.LevelHigh));
            using var level = new SemaphoreSlim(0);
            Assert.Equal(RrStatus.Ok, chip.SetIrqHandler(2, n =>
            {
                level.Release();
                chip.Set(1, false); // quiet the source, as a level handler must
            }));
            Assert.Equal(RrStatus.Ok, chip.Set(1, true));
            Assert.True(level.Wait(StressConfig.HangGuard), "no interrupt for a high level");

            Assert.Equal(RrStatus.Ok, chip.SetIrqHandler(3, null));
            Assert.Equal(RrStatus.Ok, chip.SetIrqHandler(2, null));
            Assert.True(f.Chip.Interrupts >= 6);
        }
        finally
        {
            Dump(b);
        }
    }

    // --lines N offers the first N PL061 lines; more than 8 is refused at start with a non-zero exit.
    [Fact]
    public void Lines_Option_LimitsTheChipAndRefusesMoreThanThePl061Has()
    {
        using (var b = new BackendProcess(null, "--lines", "4"))
        {
            using var f = new Front(b.SocketPath);
            Assert.Equal(4, f.Chip.LineCount);
            Assert.Equal(RrStatus.Ok, f.Chip.DirectionOutput(3, true));
            Assert.Equal(RrStatus.InvalidArgument, f.Chip.Get(4, out _));
        }

        var psi = new System.Diagnostics.ProcessStartInfo(BackendProcess.Binary, ["--socket-path", BackendProcess.NewSocketPath(), "--lines", "9"]) { RedirectStandardError = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.NotEqual(0, p.ExitCode);
        Assert.Contains("8 lines", err, StringComparison.Ordinal);
    }
}
