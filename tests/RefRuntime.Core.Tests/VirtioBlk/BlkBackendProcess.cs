using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Reflection;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Tests.Support;
using Xunit;
using Xunit.Sdk;

namespace RefRuntime.Core.Tests.VirtioBlk;

/// <summary>
/// A vhost-user-blk back-end as a child process serving an image file on a fresh socket path:
/// RefRuntime's dist/bin/refruntime-vhost-blk ("refruntime"; RR_VHOST_BLK overrides the path) or
/// QEMU's qemu-storage-daemon ("qemu-storage-daemon"; RR_QSD overrides /usr/bin/qemu-storage-daemon).
/// Started, connected to (retrying until it listens), stopped with SIGTERM or killed.
/// </summary>
internal sealed class BlkBackendProcess : IDisposable
{
    public const string Ours = "refruntime"; // with --aio threads
    public const string OursIoUring = "refruntime-io_uring"; // the same program with --aio io_uring
    public const string Qsd = "qemu-storage-daemon";

    private readonly List<string> _output = [];
    private Process? _process;

    public BlkBackendProcess(string kind, string image, bool readOnly = false, int numQueues = 1)
    {
        Kind = kind;
        Image = image;
        ReadOnly = readOnly;
        NumQueues = numQueues;
        SocketPath = $"/tmp/rr-blk-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}.sock";
        Start();
    }

    public string Kind { get; }

    public string Image { get; }

    public bool ReadOnly { get; }

    public int NumQueues { get; }

    public string SocketPath { get; }

    public int Pid => _process!.Id;

    public Process Process => _process!;

    public IReadOnlyList<string> Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToArray();
            }
        }
    }

    /// <summary>The path of qemu-storage-daemon, or null when it is not installed.</summary>
    public static string? QsdBinary
    {
        get
        {
            string path = Environment.GetEnvironmentVariable("RR_QSD") is { Length: > 0 } p ? p : "/usr/bin/qemu-storage-daemon";
            return File.Exists(path) ? path : null;
        }
    }

    /// <summary>dist/bin/refruntime-vhost-blk (or RR_VHOST_BLK); throws a clear message when it is not built.</summary>
    public static string OursBinary
    {
        get
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

            return path is not null && File.Exists(path)
                ? path
                : throw new FileNotFoundException("refruntime-vhost-blk not found: the back-end program is not built (run ./build.sh, which puts it in dist/bin, or set RR_VHOST_BLK to its path)");
        }
    }

    /// <summary>Throws the clear message of <see cref="OursBinary"/> (or that qemu-storage-daemon is missing) before a test sets anything up.</summary>
    public static void Require(string kind) =>
        _ = kind == Qsd ? QsdBinary ?? throw new FileNotFoundException("qemu-storage-daemon is not installed") : OursBinary;

    /// <summary>Creates an image of <paramref name="bytes"/> bytes filled by <paramref name="fill"/> (a fresh file in /tmp).</summary>
    public static string CreateImage(int bytes, Action<byte[]> fill)
    {
        string path = $"/tmp/rr-blk-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}.img";
        var content = new byte[bytes];
        fill(content);
        File.WriteAllBytes(path, content);
        return path;
    }

    /// <summary>Starts (or restarts) the back-end on the same socket path and image.</summary>
    public void Start()
    {
        File.Delete(SocketPath);
        var psi = new ProcessStartInfo(Kind == Qsd ? QsdBinary ?? throw new FileNotFoundException("qemu-storage-daemon is not installed") : OursBinary)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        if (Kind == Qsd)
        {
            psi.ArgumentList.Add("--blockdev");
            psi.ArgumentList.Add($"driver=file,node-name=file0,filename={Image},cache.direct=off,aio=threads,discard=unmap{(ReadOnly ? ",read-only=on" : string.Empty)}");
            psi.ArgumentList.Add("--export");
            psi.ArgumentList.Add($"type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,addr.path={SocketPath},writable={(ReadOnly ? "off" : "on")},num-queues={NumQueues}");
        }
        else
        {
            psi.ArgumentList.Add("--socket-path");
            psi.ArgumentList.Add(SocketPath);
            psi.ArgumentList.Add("--file");
            psi.ArgumentList.Add(Image);
            psi.ArgumentList.Add("--num-queues");
            psi.ArgumentList.Add(NumQueues.ToString(System.Globalization.CultureInfo.InvariantCulture));
            if (ReadOnly)
            {
                psi.ArgumentList.Add("--read-only");
            }

            // Each engine explicitly: the program's default (auto) picks io_uring where it works.
            psi.ArgumentList.Add("--aio");
            psi.ArgumentList.Add(Kind == OursIoUring ? "io_uring" : "threads");
        }

        _process?.Dispose();
        _process = Process.Start(psi)!;
        DataReceivedEventHandler keep = (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_output)
                {
                    _output.Add(e.Data);
                }
            }
        };
        _process.ErrorDataReceived += keep;
        _process.OutputDataReceived += keep;
        _process.BeginErrorReadLine();
        _process.BeginOutputReadLine();
    }

    /// <summary>Connects a front end, retrying while the back-end is starting; fails the test when it exits or never listens.</summary>
    public VhostUserBlkFrontend Connect(VhostUserBlkOptions? options = null)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            RrStatus s = VhostUserBlkFrontend.Connect(SocketPath, options, out VhostUserBlkFrontend? fe, out string? error);
            if (s == RrStatus.Ok)
            {
                return fe!;
            }

            Assert.True(s == RrStatus.NoDevice, $"connect: {s}: {error}");
            Assert.False(_process!.HasExited, $"the back-end exited: {string.Join(" | ", Output)}");
            Assert.True(sw.Elapsed < StressConfig.HangGuard, $"the back-end never listened: {error}");
            System.Threading.Thread.Sleep(10);
        }
    }

    public void Signal(int signal) => ChildProcesses.Signal(_process!, signal);

    /// <summary>SIGTERM and wait for the exit; returns the exit code.</summary>
    public int Terminate() => ChildProcesses.Terminate(_process!);

    /// <summary>SIGKILL and wait.</summary>
    public void KillNow() => ChildProcesses.KillNow(_process!);

    public void Dispose()
    {
        ChildProcesses.Dispose(_process);
        File.Delete(SocketPath);
    }
}

/// <summary>
/// One back-end as a theory row. The qemu-storage-daemon row is skipped (with the reason) when the
/// program is not installed; the refruntime row always runs, and fails with a clear message while
/// dist/bin/refruntime-vhost-blk is not built.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
internal sealed class BlkBackendAttribute : DataAttribute
{
    private readonly object[] _row;

    public BlkBackendAttribute(string kind, params object[] extra)
    {
        _row = [kind, .. extra];
        if (kind == BlkBackendProcess.Qsd && BlkBackendProcess.QsdBinary is null)
        {
            Skip = "qemu-storage-daemon is not installed (Debian: apt-get install qemu-system-common; scripts/ensure-deps.sh test does it)";
        }
        else if (kind == BlkBackendProcess.OursIoUring && IoUringBlockIoTests.SkipReason is { } why)
        {
            Skip = why;
        }
    }

    public override IEnumerable<object[]> GetData(MethodInfo testMethod) => [_row];
}
