using System;
using System.Threading;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Os;
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
                Assert.Equal(RrStatus.Ok, chip.GetDirection(1, out RawGpioDirection d));
                Assert.Equal(RawGpioDirection.Output, d);
                Assert.Equal(RrStatus.Ok, chip.Get(1, out bool v));
                Assert.True(v);
                Assert.Equal(RrStatus.Ok, chip.Set(1, false));
                Assert.Equal(RrStatus.Ok, chip.Get(1, out v));
                Assert.False(v);

                // The loopback wire: line 0's output drives line 3's input.
                Assert.Equal(RrStatus.Ok, chip.DirectionInput(3));
                Assert.Equal(RrStatus.Ok, chip.GetDirection(3, out d));
                Assert.Equal(RawGpioDirection.Input, d);
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
                // (How many calls the back-end made depends on whether the chip was already polling: not asserted.)
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
            Assert.Equal(RrStatus.Ok, chip.SetIrqType(3, RawGpioIrqType.EdgeRising));
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
            Assert.Equal(RrStatus.Ok, chip.SetIrqType(2, RawGpioIrqType.LevelHigh));
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

    // A back-end killed while a request is in flight: the caller gets NoDevice (no hang); after a
    // restart the transport reconnects, the unanswered request is replayed, and the chip works again.
    [Fact]
    public void BackendKilledMidRequest_CallerGetsNoDevice_ThenRestartAndReconnectServeAgain()
    {
        using var b = new BackendProcess();
        try
        {
            using var f = new Front(b.SocketPath);
            Assert.Equal(RrStatus.Ok, f.Chip.DirectionOutput(1, true));
            b.Signal(19); // SIGSTOP: the next request cannot be answered
            var pending = Background<RrStatus>.Run(() => f.Chip.Get(1, out _));
            Assert.False(pending.Wait(200), "a request to a stopped back-end finished");
            b.KillNow();
            Assert.True(pending.Wait(StressConfig.HangGuard), "the request still waits after the back-end died");
            Assert.Equal(RrStatus.NoDevice, pending.Result);
            Assert.True(f.Transport.NeedsReset);
            Assert.Equal(RrStatus.NoDevice, f.Chip.Set(2, true)); // later calls fail at once
            Assert.Equal(RrStatus.NoDevice, f.Chip.Get(1, out _));

            b.Start(); // a new back-end process on the same socket path
            RrStatus s = f.Transport.Reconnect(out string? error);
            Assert.True(s == RrStatus.Ok, $"{s}: {error}");
            Assert.False(f.Transport.NeedsReset);
            // The new process starts from reset: line 1 is released, so configure it again. Line 1's
            // abandoned GET is replayed to the new process; a call on that line waits for it to come
            // back instead of failing (freeze the new process so the call surely meets the replay).
            b.Signal(19);
            var again = Background<RrStatus>.Run(() => f.Chip.DirectionOutput(1, false));
            Assert.False(again.Wait(200), "a call on the replayed line finished while the back-end was stopped");
            b.Signal(18); // SIGCONT
            Assert.True(again.Wait(StressConfig.HangGuard), "the call still waits after the back-end resumed");
            Assert.Equal(RrStatus.Ok, again.Result);
            Assert.Equal(RrStatus.Ok, f.Chip.Get(1, out bool v));
            Assert.False(v);
            Assert.Equal(RrStatus.Ok, f.Chip.DirectionOutput(2, true));
            Assert.Equal(RrStatus.Ok, f.Chip.Get(2, out v));
            Assert.True(v);
        }
        finally
        {
            Dump(b);
        }
    }

    // One back-end serves connection after connection; a connection handed over cleanly resumes its
    // rings at the (non-zero) index GET_VRING_BASE reported, without resetting the driver side.
    [Fact]
    public void SameBackend_ServesTheNextConnection_AndResumesRingsAtNonZeroIndex()
    {
        using var b = new BackendProcess();
        try
        {
            for (int round = 0; round < 3; round++)
            {
                using var f = new Front(b.SocketPath);
                Assert.Equal(RrStatus.Ok, f.Chip.DirectionOutput(0, round % 2 == 0));
                Assert.Equal(RrStatus.Ok, f.Chip.Get(0, out bool v));
                Assert.Equal(round % 2 == 0, v);
            }

            using (var f = new Front(b.SocketPath))
            {
                for (int i = 0; i < 40; i++)
                {
                    Assert.Equal(RrStatus.Ok, f.Chip.DirectionOutput(5, (i & 1) != 0));
                }

                // The same back-end, a new connection: the device state survives only within a
                // session (GET_VRING_BASE stops the rings, which resets the device), the ring indices
                // continue where they were (80 requests + GET_NAMES made).
                Assert.Equal(RrStatus.Ok, f.Transport.Reconnect(out string? error));
                Assert.Null(error);
                Assert.Equal(RrStatus.Ok, f.Chip.DirectionOutput(5, true));
                Assert.Equal(RrStatus.Ok, f.Chip.Get(5, out bool v));
                Assert.True(v);
                Assert.Equal(1, f.Transport.Reconnects);
            }

            BackendProcess.WaitFor(() => b.CountLines("ended (") == 5, "five sessions to end");
            Assert.Equal(5, b.CountLines("front-end connected"));
        }
        finally
        {
            Dump(b);
        }
    }

    // The unplug hook: after SIGUSR1 (or --unplug-after-ms) requests fail with errors, and the
    // back-end keeps serving - this connection and the next.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Unplug_RequestsFailWithErrors_WhileBackendKeepsServing(bool timer)
    {
        using var b = timer ? new BackendProcess(null, "--unplug-after-ms", "300") : new BackendProcess();
        try
        {
            using (var f = new Front(b.SocketPath))
            {
                RrStatus first = f.Chip.DirectionOutput(0, true);
                if (!timer)
                {
                    Assert.Equal(RrStatus.Ok, first);
                    b.Signal(10); // SIGUSR1
                }
                else if (first != RrStatus.Ok)
                {
                    // A loaded machine took longer than the timer to connect: the request met the
                    // unplugged device, which is what the rest checks; the unplug must explain it.
                    BackendProcess.WaitFor(() => b.HasLine("PL061 unplugged"), "the unplug that failed the first request");
                }

                BackendProcess.WaitFor(() => b.HasLine("PL061 unplugged"), "the unplug");
                Assert.NotEqual(RrStatus.Ok, f.Chip.Set(0, false));
                Assert.NotEqual(RrStatus.Ok, f.Chip.Get(0, out _));
                Assert.NotEqual(RrStatus.Ok, f.Chip.DirectionInput(1));
                Assert.False(b.Process.HasExited);
            }

            using (var f = new Front(b.SocketPath))
            {
                Assert.Equal(8, f.Chip.LineCount);
                Assert.NotEqual(RrStatus.Ok, f.Chip.DirectionOutput(2, true));
            }

            Assert.Equal(0, b.Terminate());
        }
        finally
        {
            Dump(b);
        }
    }

    // --fd N with a connected socket (a socketpair end, as QEMU's vhost-user-backend object passes):
    // served once, exit 0 when it closes. With a listening socket: accepted on like --socket-path.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void FdOption_ConnectedOrListening_IsServed(bool listening)
    {
        UnixSocket ours;
        UnixSocket theirs;
        string? path = null;
        if (listening)
        {
            path = BackendProcess.NewSocketPath();
            Assert.Equal(RrStatus.Ok, UnixSocket.Listen(path, 4, out UnixSocket? l, out _));
            theirs = l!;
            ours = null!;
        }
        else
        {
            Assert.Equal(RrStatus.Ok, UnixSocket.Pair(out UnixSocket? a, out UnixSocket? b, out _));
            ours = a!;
            theirs = b!;
        }

        Assert.True(Libc.fcntl(theirs.Fd, 2 /* F_SETFD */, 0) == 0); // inherited by the child
        var psi = new System.Diagnostics.ProcessStartInfo(BackendProcess.Binary, ["--fd", theirs.Fd.ToString(System.Globalization.CultureInfo.InvariantCulture), "--lines", "3"]) { RedirectStandardError = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        p.ErrorDataReceived += (_, e) => output.WriteLine(e.Data ?? string.Empty);
        p.BeginErrorReadLine();
        theirs.Dispose(); // the child has its own copy
        try
        {
            if (listening)
            {
                using var f = new Front(path!);
                Assert.Equal(3, f.Chip.LineCount);
                Assert.Equal(RrStatus.Ok, f.Chip.DirectionOutput(2, true));
                Assert.False(p.HasExited);
                Assert.Equal(0, Kill(p.Id, 15));
            }
            else
            {
                using var fe = Core.Vhost.VhostUserFrontend.Over(ours);
                Assert.Equal(RrStatus.Ok, fe.Handshake(Core.Vhost.VhostUserFrontend.Wanted, out string? error));
                Span<byte> config = stackalloc byte[8];
                Assert.Equal(RrStatus.Ok, fe.GetConfig(0, config, out error));
                Assert.Equal(3, config[0]); // ngpio
            } // closing the connection ends the program

            Assert.True(p.WaitForExit((int)StressConfig.HangGuard.TotalMilliseconds), "the back-end did not exit");
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
        }
        finally
        {
            if (!p.HasExited)
            {
                p.Kill();
            }

            if (path is not null)
            {
                System.IO.File.Delete(path);
            }
        }
    }

    private static bool SigIntIgnoredHere()
    {
        foreach (string line in System.IO.File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("SigIgn:", StringComparison.Ordinal))
            {
                ulong mask = Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16);
                return (mask & (1UL << (2 - 1))) != 0; // bit n-1 is signal n
            }
        }

        return false;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    // The back-end program conventions: --print-capabilities prints the JSON and exits 0 without
    // serving; a bad command line exits non-zero; SIGINT, like SIGTERM, ends it cleanly.
    [Fact]
    public void ProgramConventions_Capabilities_BadOptions_Sigint()
    {
        var psi = new System.Diagnostics.ProcessStartInfo(BackendProcess.Binary, ["--print-capabilities"]) { RedirectStandardOutput = true };
        using (var p = System.Diagnostics.Process.Start(psi)!)
        {
            string json = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
            Assert.Equal("{\"type\": \"gpio\"}", json.Trim());
        }

        foreach (string[] bad in new[] { new[] { "--lines", "3" }, ["--socket-path", "/tmp/x", "--fd", "3"], ["--socket-path", "/tmp/x", "--loopback", "1:1"], ["--socket-path", "/tmp/x", "--bogus"] })
        {
            using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(BackendProcess.Binary, bad) { RedirectStandardError = true })!;
            p.StandardError.ReadToEnd();
            p.WaitForExit();
            Assert.NotEqual(0, p.ExitCode);
        }

        using var b = new BackendProcess();
        // SIGINT, unless this process inherited it ignored (a job started with & by a non-interactive
        // shell, nohup): the child inherits the ignore and, as every program should, keeps it. Then
        // SIGTERM, which nobody ignores, checks the same clean exit.
        b.Signal(SigIntIgnoredHere() ? 15 : 2);
        Assert.True(b.Process.WaitForExit((int)StressConfig.HangGuard.TotalMilliseconds));
        b.Process.WaitForExit();
        Assert.Equal(0, b.Process.ExitCode);
        Assert.False(System.IO.File.Exists(b.SocketPath)); // the socket file is removed on the way out
    }
}
