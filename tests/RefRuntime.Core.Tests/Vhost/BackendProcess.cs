using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using RefRuntime.Core.Os;
using RefRuntime.Core.Tests.Support;
using Xunit;

namespace RefRuntime.Core.Tests.Vhost;

/// <summary>
/// dist/bin/refruntime-vhost-gpio as a child process on a fresh socket path: started, watched
/// (its stderr lines are kept), stopped with SIGTERM or killed. Found through RR_VHOST_GPIO or
/// dist/bin above the test binaries (./build.sh puts it there; ./test.sh runs the build first).
/// </summary>
internal sealed class BackendProcess : IDisposable
{
    private static readonly Lazy<string> s_binary = new(Find);
    private readonly List<string> _stderr = [];
    private Process? _process;

    public BackendProcess(string? socketPath = null, params string[] extraArgs)
    {
        SocketPath = socketPath ?? NewSocketPath();
        ExtraArgs = extraArgs;
        Start();
    }

    public static string Binary => s_binary.Value;

    /// <summary>A fresh socket path short enough for sun_path.</summary>
    public static string NewSocketPath() => $"/tmp/rr-vh-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}.sock";

    public string SocketPath { get; }

    public string[] ExtraArgs { get; }

    public int Pid => _process!.Id;

    public Process Process => _process!;

    public IReadOnlyList<string> Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToArray();
            }
        }
    }

    /// <summary>Starts (or restarts) the program and waits until it listens.</summary>
    public void Start()
    {
        var psi = new ProcessStartInfo(Binary) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("--socket-path");
        psi.ArgumentList.Add(SocketPath);
        foreach (string a in ExtraArgs)
        {
            psi.ArgumentList.Add(a);
        }

        int served = CountLines("serving virtio-gpio");
        _process?.Dispose();
        _process = Process.Start(psi)!;
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (_stderr)
                {
                    _stderr.Add(e.Data);
                }
            }
        };
        _process.BeginErrorReadLine();
        WaitFor(() => CountLines("serving virtio-gpio") > served || _process.HasExited, "the back-end to listen");
        Assert.False(_process.HasExited, $"the back-end exited at start: {string.Join(" | ", Stderr)}");
    }

    public bool HasLine(string fragment)
    {
        lock (_stderr)
        {
            return _stderr.Exists(l => l.Contains(fragment, StringComparison.Ordinal));
        }
    }

    public int CountLines(string fragment)
    {
        lock (_stderr)
        {
            return _stderr.FindAll(l => l.Contains(fragment, StringComparison.Ordinal)).Count;
        }
    }

    /// <summary>Open descriptors of the back-end (from /proc).</summary>
    public int OpenFds => FileDescriptor.CountOpen(Pid);

    public void Signal(int signal) => ChildProcesses.Signal(_process!, signal);

    /// <summary>SIGTERM and wait for the exit; returns the exit code.</summary>
    public int Terminate() => ChildProcesses.Terminate(_process!);

    /// <summary>SIGKILL and wait.</summary>
    public void KillNow() => ChildProcesses.KillNow(_process!);

    public static void WaitFor(Func<bool> condition, string what)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < StressConfig.HangGuard, $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }

    public void Dispose()
    {
        ChildProcesses.Dispose(_process);
        File.Delete(SocketPath);
    }

    private static string Find()
    {
        string? path = Environment.GetEnvironmentVariable("RR_VHOST_GPIO");
        if (string.IsNullOrEmpty(path))
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "dist", "bin", "refruntime-vhost-gpio");
                if (File.Exists(candidate))
                {
                    path = candidate;
                    break;
                }
            }
        }

        if (path is null || !File.Exists(path))
        {
            throw new FileNotFoundException("refruntime-vhost-gpio not found: run ./build.sh (or set RR_VHOST_GPIO) before these tests.");
        }

        return path;
    }
}
