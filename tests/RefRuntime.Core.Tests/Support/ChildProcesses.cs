using System.Diagnostics;
using Xunit;

namespace RefRuntime.Core.Tests.Support;

/// <summary>Signals and stops a child process under the hang guard (the back-end programs the cross-process tests start).</summary>
internal static class ChildProcesses
{
    /// <summary>Sends <paramref name="signal"/> to <paramref name="p"/>; the send must succeed.</summary>
    public static void Signal(Process p, int signal) => Assert.Equal(0, Kill(p.Id, signal));

    /// <summary>SIGTERM, then waits (hang guard) for the exit; returns the exit code.</summary>
    public static int Terminate(Process p)
    {
        Signal(p, 15);
        Assert.True(p.WaitForExit((int)StressConfig.HangGuard.TotalMilliseconds), "the back-end did not exit on SIGTERM");
        p.WaitForExit(); // and its output readers
        return p.ExitCode;
    }

    /// <summary>SIGKILL and wait.</summary>
    public static void KillNow(Process p)
    {
        Signal(p, 9);
        p.WaitForExit();
    }

    /// <summary>Kills <paramref name="p"/> if it still runs, then disposes it.</summary>
    public static void Dispose(Process? p)
    {
        if (p is { HasExited: false })
        {
            p.Kill();
            p.WaitForExit();
        }

        p?.Dispose();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
