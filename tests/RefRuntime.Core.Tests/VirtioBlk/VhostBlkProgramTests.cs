using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Tests.Vhost;
using RefRuntime.Core.Vhost;
using Xunit;

namespace RefRuntime.Core.Tests.VirtioBlk;

/// <summary>
/// dist/bin/refruntime-vhost-blk as a child process: the command-line conventions (exit codes,
/// --print-capabilities) and that it listens and answers a handshake. Found through RR_VHOST_BLK
/// or dist/bin above the test binaries (./build.sh puts it there). The workloads across
/// processes are in the front end's tests.
/// </summary>
public sealed class VhostBlkProgramTests : IDisposable
{
    private static readonly Lazy<string> s_binary = new(Find);
    private readonly string _image = Path.Combine(Path.GetTempPath(), $"rr-xblk-{Environment.ProcessId}-{Guid.NewGuid():N}.img");

    public VhostBlkProgramTests() => File.WriteAllBytes(_image, new byte[1 << 20]);

    public void Dispose() => File.Delete(_image);

    private static (int Code, string Stdout, string Stderr) RunToExit(params string[] args)
    {
        var psi = new ProcessStartInfo(s_binary.Value) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using Process p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit((int)StressConfig.HangGuard.TotalMilliseconds), "the program did not exit");
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    // --print-capabilities prints the vhost-user capabilities JSON and exits 0.
    [Fact]
    public void PrintCapabilities_Block()
    {
        (int code, string stdout, _) = RunToExit("--print-capabilities");
        Assert.Equal(0, code);
        Assert.Equal("{\"type\": \"block\"}", stdout.Trim());
    }

    // A bad command line exits 2 with the reason and the usage on stderr.
    [Theory]
    [InlineData("--socket-path", "/tmp/x.sock")]
    [InlineData("--file", "x.img")]
    [InlineData("--socket-path", "/tmp/x.sock", "--fd", "3", "--file", "x.img")]
    [InlineData("--socket-path", "/tmp/x.sock", "--file", "x.img", "--num-queues", "0")]
    [InlineData("--socket-path", "/tmp/x.sock", "--file", "x.img", "--queue-size", "100")]
    [InlineData("--socket-path", "/tmp/x.sock", "--file", "x.img", "--aio", "posix")]
    [InlineData("--socket-path", "/tmp/x.sock", "--file", "x.img", "--bogus")]
    public void BadCommandLine_Exits2(params string[] args)
    {
        (int code, _, string stderr) = RunToExit(args);
        Assert.Equal(2, code);
        Assert.Contains("usage:", stderr, StringComparison.Ordinal);
    }

    // A missing image, or one whose size is not a whole number of sectors, fails the start: exit 1, nothing listening.
    [Fact]
    public void BadImage_Exits1()
    {
        string sock = BackendProcess.NewSocketPath();
        (int code, _, string stderr) = RunToExit("--socket-path", sock, "--file", _image + ".missing");
        Assert.Equal(1, code);
        Assert.Contains("cannot open", stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(sock));

        File.WriteAllBytes(_image, new byte[1000]);
        (code, _, stderr) = RunToExit("--socket-path", sock, "--file", _image);
        Assert.Equal(1, code);
        Assert.Contains("not a multiple", stderr, StringComparison.Ordinal);
    }

    // It listens, answers a front end's handshake (two queues, CONFIG), refuses a second writer on the same image, and exits 0 on SIGTERM.
    [Fact]
    public void Listens_Handshakes_ExitsOnSigterm()
    {
        string sock = BackendProcess.NewSocketPath();
        var psi = new ProcessStartInfo(s_binary.Value) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { "--socket-path", sock, "--file", _image, "--num-queues", "2", "--serial", "xproc" })
        {
            psi.ArgumentList.Add(a);
        }

        var lines = new List<string>();
        using Process p = Process.Start(psi)!;
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (lines)
                {
                    lines.Add(e.Data);
                }
            }
        };
        p.BeginErrorReadLine();
        try
        {
            BackendProcess.WaitFor(() => p.HasExited || Has(lines, "serving virtio-blk"), "the back-end to listen");
            Assert.False(p.HasExited, string.Join(" | ", lines));

            (int second, _, string why) = RunToExit("--socket-path", sock + "2", "--file", _image);
            Assert.Equal(1, second);
            Assert.Contains("in use", why, StringComparison.Ordinal);

            Assert.Equal(RrStatus.Ok, VhostUserFrontend.Connect(sock, out VhostUserFrontend? fe, out string? error));
            using (fe)
            {
                Assert.Equal(RrStatus.Ok, fe!.Handshake(VhostUserFrontend.Wanted, out error));
                Assert.Equal(2, fe.QueueCount);
                var cfg = new byte[60];
                Assert.Equal(RrStatus.Ok, fe.GetConfig(0, cfg, out _));
                Assert.Equal(2048UL, BitConverter.ToUInt64(cfg, 0));
            }

            BackendProcess.WaitFor(() => Has(lines, "connection 1: ended"), "the connection to end");
            Assert.Equal(0, Kill(p.Id, 15));
            Assert.True(p.WaitForExit((int)StressConfig.HangGuard.TotalMilliseconds), "no exit on SIGTERM");
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
            Assert.False(File.Exists(sock));
        }
        finally
        {
            if (!p.HasExited)
            {
                p.Kill();
                p.WaitForExit();
            }

            File.Delete(sock);
        }
    }

    private static bool Has(List<string> lines, string fragment)
    {
        lock (lines)
        {
            return lines.Exists(l => l.Contains(fragment, StringComparison.Ordinal));
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private static string Find()
    {
        string? path = Environment.GetEnvironmentVariable("RR_VHOST_BLK");
        if (string.IsNullOrEmpty(path))
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "dist", "bin", "refruntime-vhost-blk");
                if (File.Exists(candidate))
                {
                    path = candidate;
                    break;
                }
            }
        }

        if (path is null || !File.Exists(path))
        {
            throw new FileNotFoundException("refruntime-vhost-blk not found: run ./build.sh (or set RR_VHOST_BLK) before these tests.");
        }

        return path;
    }
}
