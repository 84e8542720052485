using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Threading;
using BenchmarkDotNet.Attributes;
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.VirtioGpio;
using RefRuntime.Core.Os;

namespace RefRuntime.Benchmarks.Devices;

/// <summary>
/// The virtio-gpio driver pair across processes (issue #17): the front end in this process, the
/// device in dist/bin/refruntime-vhost-gpio, reached over vhost-user (shared memfd rings, one
/// eventfd kick per request, one eventfd call per answer) - beside the same pair in one process
/// (Ring_*: two threads, doorbells) and the lock-based request queue (Locked_*, the baseline).
/// SetGet = one Set then one Get on one line, each a full round trip; figures per operation.
/// The kicks, calls and back-end CPU time per request come from <see cref="VhostFigures"/>
/// (dotnet run -c Release -- --vhost-figures [requests]).
/// </summary>
public class VhostGpioBenchmarks
{
    private const int Ops = 64;

    private GpioPairStack? _stack;
    private VhostBackend? _remote;

    [GlobalSetup]
    public void Setup()
    {
        _stack = new GpioPairStack();
        _remote = VhostBackend.Start();
        Check(_stack.Ring.DirectionOutput(0, false));
        Check(_stack.Direct.DirectionOutput(0, false));
        Check(_remote.Chip.DirectionOutput(0, false));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _remote?.Dispose();
        _stack?.Dispose();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = 2 * Ops)]
    public int Locked_SetGet() => SetGet(_stack!.Locked);

    [Benchmark(OperationsPerInvoke = 2 * Ops)]
    public int Ring_SetGet() => SetGet(_stack!.Ring);

    [Benchmark(OperationsPerInvoke = 2 * Ops)]
    public int VhostUser_SetGet() => SetGet(_remote!.Chip);

    private static int SetGet(IGpioChip chip)
    {
        int n = 0;
        for (int i = 0; i < Ops; i++)
        {
            chip.Set(0, (i & 1) != 0);
            chip.Get(0, out bool v);
            n += v ? 1 : 0;
        }

        return n;
    }

    internal static void Check(RrStatus s)
    {
        if (s != RrStatus.Ok)
        {
            throw new InvalidOperationException($"benchmark setup failed: {s}");
        }
    }
}

/// <summary>The back-end program as a child process, with the chip connected to it.</summary>
internal sealed class VhostBackend : IDisposable
{
    private readonly List<string> _log = [];

    private VhostBackend(Process process, string path)
    {
        Process = process;
        Path = path;
    }

    public Process Process { get; }

    public string Path { get; }

    public VhostUserGpioTransport Transport { get; private set; } = null!;

    public VirtioGpioChip Chip { get; private set; } = null!;

    public IReadOnlyList<string> Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToArray();
            }
        }
    }

    public static VhostBackend Start()
    {
        string bin = Find();
        string path = $"/tmp/rr-vh-bench-{Environment.ProcessId}.sock";
        var p = Process.Start(new ProcessStartInfo(bin, ["--socket-path", path]) { RedirectStandardError = true })!;
        var b = new VhostBackend(p, path);
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (b._log)
                {
                    b._log.Add(e.Data);
                }
            }
        };
        p.BeginErrorReadLine();
        b.WaitFor("serving");
        b.Connect();
        return b;
    }

    public void Connect()
    {
        VhostGpioBenchmarks.Check(VhostUserGpioTransport.Connect(Path, out VhostUserGpioTransport? t, out _));
        Transport = t!;
        VhostGpioBenchmarks.Check(VirtioGpioChip.Probe(Transport, Transport.Memory, out VirtioGpioChip? chip, out _));
        Chip = chip!;
    }

    public void Disconnect()
    {
        Chip.Dispose();
        Transport.Dispose();
    }

    public string WaitFor(string fragment, int nth = 1)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromMinutes(1))
        {
            string[] hits = Log.Where(l => l.Contains(fragment, StringComparison.Ordinal)).ToArray();
            if (hits.Length >= nth)
            {
                return hits[nth - 1];
            }

            Thread.Sleep(5);
        }

        throw new TimeoutException($"the back-end never logged \"{fragment}\"");
    }

    public void Dispose()
    {
        Disconnect();
        Process.Kill();
        Process.WaitForExit();
        Process.Dispose();
        File.Delete(Path);
    }

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string c = System.IO.Path.Combine(dir.FullName, "dist", "bin", "refruntime-vhost-gpio");
            if (File.Exists(c))
            {
                return c;
            }
        }

        return Environment.GetEnvironmentVariable("RR_VHOST_GPIO") ?? throw new FileNotFoundException("dist/bin/refruntime-vhost-gpio: run ./build.sh first");
    }
}

/// <summary>
/// Per-request figures of the pair across processes that BenchmarkDotNet does not give: round
/// trip percentiles, kicks sent and calls received per request, and CPU time per request in the
/// back-end (its getrusage over the connection, logged when the connection ends) and in this
/// process - beside the in-process pair's doorbell rings and CPU time per request.
/// </summary>
public static class VhostFigures
{
    /// <summary>Runs <paramref name="requests"/> requests each way and prints a markdown table.</summary>
    public static int Run(int requests)
    {
        Console.WriteLine($"# virtio-gpio across processes (vhost-user) vs in one process: {requests} requests each (Set/Get alternating on one line)");
        Console.WriteLine();
        Console.WriteLine("| path | p50 µs | p99 µs | kicks/request | calls/request | back-end CPU µs/request | front-end CPU µs/request |");
        Console.WriteLine("|---|---|---|---|---|---|---|");

        using (var stack = new GpioPairStack())
        {
            VhostGpioBenchmarks.Check(stack.Ring.DirectionOutput(0, false));
            Measure(stack.Ring, requests / 10); // warm up
            long kicks0 = stack.Device.Kick.Rings;
            TimeSpan cpu0 = CpuTime.Process();
            double[] lat = Measure(stack.Ring, requests);
            double cpu = (CpuTime.Process() - cpu0).TotalMicroseconds / requests;
            double kicks = (double)(stack.Device.Kick.Rings - kicks0) / requests;
            Console.WriteLine($"| in one process (2 threads, doorbells) | {P(lat, 50):F1} | {P(lat, 99):F1} | {kicks:F2} | n/a | (same process) | {cpu:F1} (both sides) |");
        }

        using (var b = VhostBackend.Start())
        {
            VhostGpioBenchmarks.Check(b.Chip.DirectionOutput(0, false));
            Measure(b.Chip, requests / 10);
            b.Disconnect(); // the warm-up connection's CPU is logged with it and not counted
            b.WaitFor("ended (", 1);
            b.Connect();
            VhostGpioBenchmarks.Check(b.Chip.DirectionOutput(0, false));
            long kicks0 = b.Transport.Kicks;
            long calls0 = b.Transport.Calls;
            TimeSpan cpu0 = CpuTime.Process();
            double[] lat = Measure(b.Chip, requests);
            double feCpu = (CpuTime.Process() - cpu0).TotalMicroseconds / requests;
            double kicks = (double)(b.Transport.Kicks - kicks0) / requests;
            double calls = (double)(b.Transport.Calls - calls0) / requests;
            b.Disconnect();
            string ended = b.WaitFor("ended (", 2);
            double beCpu = ParseCpuMs(ended) * 1000 / requests;
            Console.WriteLine($"| across processes (vhost-user, eventfds) | {P(lat, 50):F1} | {P(lat, 99):F1} | {kicks:F2} | {calls:F2} | {beCpu:F1} | {feCpu:F1} |");
        }

        Console.WriteLine();
        Console.WriteLine("Back-end CPU: the back-end process's getrusage (user + system) over the measured connection, divided by its requests (its connection also carries the handshake and a few set-up requests).");
        return 0;
    }

    private static double[] Measure(IGpioChip chip, int requests)
    {
        var lat = new double[requests];
        for (int i = 0; i < requests; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            RrStatus s = (i & 1) == 0 ? chip.Set(0, (i & 2) != 0) : chip.Get(0, out _);
            lat[i] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
            VhostGpioBenchmarks.Check(s);
        }

        Array.Sort(lat);
        return lat;
    }

    private static double P(double[] sorted, int pct) => sorted[Math.Min(sorted.Length - 1, sorted.Length * pct / 100)];

    private static double ParseCpuMs(string line)
    {
        int at = line.IndexOf("cpu ", StringComparison.Ordinal);
        if (at < 0)
        {
            return double.NaN;
        }

        string rest = line[(at + 4)..];
        return double.Parse(rest[..rest.IndexOf(' ', StringComparison.Ordinal)], CultureInfo.InvariantCulture);
    }
}
