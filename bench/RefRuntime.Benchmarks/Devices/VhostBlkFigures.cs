using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using RefRuntime.Core;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;

namespace RefRuntime.Benchmarks.Devices;

/// <summary>
/// vhost-user-blk back-ends compared from the host, with RefRuntime's own front end
/// (VhostUserBlkFrontend) as the driver: random reads and random writes at queue depth 1 and 32,
/// 4 KiB and 64 KiB, against each back-end in turn (ours, ref, ours, ref ... for several rounds, so
/// drift on a shared machine hits both alike). Per point: requests/s, and the back-end process's
/// CPU time per request (utime + stime from /proc/PID/stat, before and after the point; clock-tick
/// resolution, so points should last a second or more). Writes a CSV of every point and a markdown
/// summary of the medians over rounds with the ratios asked for (--compare A/B: A's rate and CPU
/// per request over B's; by default ours/ref when both are named). The back-ends are started by
/// the caller (bench/vhost-blk.sh), each on its own image, and named here by socket and PID.
/// <code>
/// --vhost-blk-figures [--ours SOCKET:PID] [--ref SOCKET:PID] [--backend NAME SOCKET:PID]...
///                     [--compare A/B]... [--point "randread QD1 4K"]... [--rounds N] [--seconds S | --requests N] [--out DIR] [--spin]
/// </code>
/// </summary>
public static class VhostBlkFigures
{
    private sealed record Backend(string Name, string Socket, int Pid);

    private sealed record Point(string Op, int Depth, int Bytes)
    {
        public string Label => $"{Op} QD{Depth} {Bytes / 1024}K";
    }

    private sealed record Sample(int Round, string Backend, Point Point, long Requests, double Seconds, double BackendCpuUs, double FrontendCpuUs)
    {
        public double RequestsPerSecond => Requests / Seconds;

        public double BackendCpuPerRequestUs => BackendCpuUs / Requests;

        public double FrontendCpuPerRequestUs => FrontendCpuUs / Requests;
    }

    /// <summary>Runs the figures (see the class comment); 0 on success.</summary>
    public static int Run(string[] args)
    {
        var backends = new List<Backend>();
        var compare = new List<(string A, string B)>();
        var only = new List<string>(); // --point LABEL: only these points ("randread QD1 4K")
        int rounds = 5;
        double seconds = 2;
        long requests = 0;
        string outDir = ".";
        bool spin = false;
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--vhost-blk-figures":
                    break;
                case "--ours":
                case "--ref":
                    string name = args[i] == "--ours" ? "ours" : "ref";
                    string[] sp = Next().Split(':');
                    backends.Add(new Backend(name, sp[0], int.Parse(sp[1], CultureInfo.InvariantCulture)));
                    break;
                case "--backend":
                    string named = Next();
                    string[] at = Next().Split(':');
                    backends.Add(new Backend(named, at[0], int.Parse(at[1], CultureInfo.InvariantCulture)));
                    break;
                case "--compare":
                    string[] ab = Next().Split('/');
                    compare.Add((ab[0], ab[1]));
                    break;
                case "--point":
                    only.Add(Next());
                    break;
                case "--rounds":
                    rounds = int.Parse(Next(), CultureInfo.InvariantCulture);
                    break;
                case "--seconds":
                    seconds = double.Parse(Next(), CultureInfo.InvariantCulture);
                    break;
                case "--requests":
                    requests = long.Parse(Next(), CultureInfo.InvariantCulture);
                    break;
                case "--out":
                    outDir = Next();
                    break;
                case "--spin":
                    spin = true;
                    break;
                default:
                    Console.Error.WriteLine($"vhost-blk-figures: unknown argument {args[i]}");
                    return 2;
            }
        }

        if (backends.Count == 0)
        {
            Console.Error.WriteLine("vhost-blk-figures: name at least one back-end (--ours SOCKET:PID, --ref SOCKET:PID)");
            return 2;
        }

        Point[] points = [.. from op in new[] { "randread", "randwrite" } from qd in new[] { 1, 32 } from kib in new[] { 4, 64 } select new Point(op, qd, kib * 1024)];
        if (only.Count > 0)
        {
            points = [.. points.Where(p => only.Contains(p.Label))];
        }

        var fronts = new Dictionary<string, VhostUserBlkFrontend>();
        var samples = new List<Sample>();
        try
        {
            foreach (Backend b in backends)
            {
                RrStatus s = VhostUserBlkFrontend.Connect(b.Socket, new VhostUserBlkOptions { MaxRequestBytes = 64 * 1024 }, out VhostUserBlkFrontend? fe, out string? error);
                if (s != RrStatus.Ok)
                {
                    Console.Error.WriteLine($"vhost-blk-figures: {b.Name} at {b.Socket}: {s}: {error}");
                    return 1;
                }

                fe!.Queues[0].Polling = spin;
                fronts[b.Name] = fe;
                Console.WriteLine($"{b.Name}: pid {b.Pid}, capacity {fe.CapacityBytes >> 20} MiB, features 0x{fe.Features:x}");
                foreach (Point p in points)
                {
                    Measure(fe.Queues[0], fe.CapacityBytes, p, b.Pid, Math.Min(200, requests > 0 ? requests : 200), 0, new Random(1)); // warm-up
                }
            }

            for (int round = 1; round <= rounds; round++)
            {
                foreach (Point p in points)
                {
                    foreach (Backend b in backends)
                    {
                        Sample x = Measure(fronts[b.Name].Queues[0], fronts[b.Name].CapacityBytes, p, b.Pid, requests, seconds, new Random(round)) with { Round = round, Backend = b.Name };
                        samples.Add(x);
                        Console.WriteLine($"round {round} {b.Name,-4} {p.Label,-18} {x.RequestsPerSecond,10:F0} req/s  back-end {x.BackendCpuPerRequestUs,7:F2} us/req  front-end {x.FrontendCpuPerRequestUs,7:F2} us/req");
                    }
                }
            }
        }
        finally
        {
            foreach (VhostUserBlkFrontend fe in fronts.Values)
            {
                fe.Dispose();
            }
        }

        Directory.CreateDirectory(outDir);
        WriteCsv(Path.Combine(outDir, "vhost-blk.csv"), samples);
        string[] names = backends.Select(b => b.Name).ToArray();
        if (compare.Count == 0 && names.Contains("ours") && names.Contains("ref"))
        {
            compare.Add(("ours", "ref"));
        }

        compare.RemoveAll(c => !names.Contains(c.A) || !names.Contains(c.B));
        string summary = Summary(samples, points, names, compare, rounds, seconds, requests, spin);
        File.WriteAllText(Path.Combine(outDir, "vhost-blk-summary.md"), summary);
        Console.WriteLine();
        Console.WriteLine(summary);
        return 0;
    }

    private static Sample Measure(VhostUserBlkQueue q, ulong capacityBytes, Point p, int pid, long requests, double seconds, Random rnd)
    {
        uint type = p.Op == "randread" ? VirtioBlkConst.VIRTIO_BLK_T_IN : VirtioBlkConst.VIRTIO_BLK_T_OUT;
        ulong blocks = capacityBytes / (ulong)p.Bytes;
        Span<BlkCompletion> done = stackalloc BlkCompletion[64];
        long submitted = 0, completed = 0;
        long limitTicks = requests > 0 ? long.MaxValue : (long)(seconds * Stopwatch.Frequency);
        TimeSpan be0 = ProcessCpu(pid);
        TimeSpan fe0 = CpuTime.Process();
        long t0 = Stopwatch.GetTimestamp();
        bool stop = false;
        while (true)
        {
            if (!stop && (requests > 0 ? submitted >= requests : Stopwatch.GetTimestamp() - t0 >= limitTicks))
            {
                stop = true;
            }

            while (!stop && q.InFlight < p.Depth && (requests <= 0 || submitted < requests) && q.TryReserve(out int slot))
            {
                ulong sector = (ulong)rnd.NextInt64((long)blocks) * (ulong)(p.Bytes / VirtioBlkConst.SectorSize);
                Check(q.Submit(slot, type, sector, p.Bytes, 0, default, kick: false), "submit");
                submitted++;
            }

            if (q.InFlight == 0)
            {
                break;
            }

            q.Kick();
            Check(q.WaitForCompletions(60_000), "wait");
            int n = q.Reap(done);
            for (int i = 0; i < n; i++)
            {
                if (!done[i].IsOk)
                {
                    throw new InvalidOperationException($"{p.Label}: a request failed: {done[i]}");
                }

                q.Release(done[i].Slot);
            }

            completed += n;
        }

        double secs = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        double beUs = (ProcessCpu(pid) - be0).TotalMicroseconds;
        double feUs = (CpuTime.Process() - fe0).TotalMicroseconds;
        return new Sample(0, string.Empty, p, completed, secs, beUs, feUs);
    }

    /// <summary>utime + stime of every thread of <paramref name="pid"/>, live or exited (/proc/PID/stat fields 14 and 15).</summary>
    private static TimeSpan ProcessCpu(int pid)
    {
        string stat = File.ReadAllText($"/proc/{pid}/stat");
        string[] f = stat[(stat.LastIndexOf(')') + 2)..].Split(' '); // f[0] is field 3 (state)
        long ticks = long.Parse(f[11], CultureInfo.InvariantCulture) + long.Parse(f[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / (double)ClockTicksPerSecond);
    }

    // sysconf(_SC_CLK_TCK) is 100 on every Linux architecture .NET runs on (USER_HZ).
    private const int ClockTicksPerSecond = 100;

    private static void Check(RrStatus s, string what)
    {
        if (s != RrStatus.Ok)
        {
            throw new InvalidOperationException($"{what}: {s}");
        }
    }

    private static void WriteCsv(string path, List<Sample> samples)
    {
        var sb = new StringBuilder("round,backend,op,qd,bytes,requests,seconds,req_per_s,mib_per_s,backend_cpu_us_per_req,frontend_cpu_us_per_req\n");
        foreach (Sample s in samples)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"{s.Round},{s.Backend},{s.Point.Op},{s.Point.Depth},{s.Point.Bytes},{s.Requests},{s.Seconds:F4},{s.RequestsPerSecond:F1},{s.RequestsPerSecond * s.Point.Bytes / (1 << 20):F2},{s.BackendCpuPerRequestUs:F3},{s.FrontendCpuPerRequestUs:F3}");
        }

        File.WriteAllText(path, sb.ToString());
    }

    private static string Summary(List<Sample> samples, Point[] points, string[] names, List<(string A, string B)> compare, int rounds, double seconds, long requests, bool spin)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"# vhost-user-blk back-ends from the host: medians over {rounds} interleaved rounds, {(requests > 0 ? $"{requests} requests" : $"{seconds} s")} per point, one queue, front end {(spin ? "spinning" : "sleeping on the call eventfd")}");
        sb.AppendLine();
        sb.Append("| point |");
        foreach (string n in names)
        {
            sb.Append(CultureInfo.InvariantCulture, $" {n} req/s | {n} back-end CPU µs/req |");
        }

        foreach ((string a, string b) in compare)
        {
            sb.Append(CultureInfo.InvariantCulture, $" req/s {a}/{b} | CPU/req {a}/{b} |");
        }

        sb.AppendLine();
        sb.Append("|---|");
        sb.Append(string.Concat(Enumerable.Repeat("---|---|", names.Length + compare.Count)));
        sb.AppendLine();
        foreach (Point p in points)
        {
            sb.Append(CultureInfo.InvariantCulture, $"| {p.Label} |");
            var rate = new Dictionary<string, double>();
            var cpu = new Dictionary<string, double>();
            foreach (string n in names)
            {
                Sample[] xs = samples.Where(s => s.Backend == n && s.Point == p).ToArray();
                rate[n] = Median(xs.Select(s => s.RequestsPerSecond));
                cpu[n] = Median(xs.Select(s => s.BackendCpuPerRequestUs));
                sb.Append(CultureInfo.InvariantCulture, $" {rate[n]:F0} | {cpu[n]:F2} |");
            }

            foreach ((string a, string b) in compare)
            {
                sb.Append(CultureInfo.InvariantCulture, $" {rate[a] / rate[b]:F2} | {cpu[a] / cpu[b]:F2} |");
            }

            sb.AppendLine();
        }

        sb.AppendLine();
        sb.AppendLine("Back-end CPU: utime + stime of the back-end process (/proc/PID/stat, all threads) over the point, divided by its requests; resolution 10 ms per point.");
        return sb.ToString();
    }

    private static double Median(IEnumerable<double> values)
    {
        double[] v = values.OrderBy(x => x).ToArray();
        return v.Length == 0 ? double.NaN : v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
    }
}
