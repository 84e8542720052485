// refruntime-charts <run-dir>: draws the curves of one benchmark run as PNG files beside its CSVs.
//   scaling.csv (bench/scaling.sh)        -> scaling.png   speedup over 1 thread per workload, with
//                                                          the linear ideal and the 90 % line
//   c-vq.csv (bench/c/vq_bench, run.sh)   -> vq-batch.png  ring throughput by batch size (C host:
//                                                          plain C SPSC floor, exports, batch calls)
//   bdn/results/*VirtqueueThroughput*.csv -> vq-managed.png ns per buffer at batch 1 and 32 (.NET:
//                                                          lock + Queue, Channel, virtqueue)
//   the three above + c-ringtest.csv      -> vq-side-by-side.png ns per buffer at batch 1 and 32:
//                                                          .NET ring (JIT, NativeAOT), C host (exports,
//                                                          batch calls), plain C floor, Linux ringtest
//   vhost-blk.csv (bench/vhost-blk.sh)    -> vhost-blk.png requests/s per point, median over rounds,
//                                                          one bar per vhost-user-blk back-end
// Charts whose CSV is missing are skipped; the machine named in environment.txt goes in the title.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using ScottPlot;

namespace RefRuntime.Charts;

internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Length != 1 || !Directory.Exists(args[0]))
        {
            Console.Error.WriteLine("usage: refruntime-charts <perf-results run directory>");
            return 2;
        }

        string dir = args[0];
        string machine = Machine(dir);
        int drawn = 0;
        try
        {
            drawn += Scaling(dir, machine) ? 1 : 0;
            drawn += VqBatch(dir, machine) ? 1 : 0;
            drawn += VqManaged(dir, machine) ? 1 : 0;
            drawn += VqSideBySide(dir, machine) ? 1 : 0;
            drawn += VhostBlk(dir, machine) ? 1 : 0;
        }
        catch (FormatException e)
        {
            Console.Error.WriteLine($"refruntime-charts: {e.Message}");
            return 1;
        }

        Console.WriteLine($"refruntime-charts: {drawn} chart(s) in {dir}");
        return 0;
    }

    // "cpu" and "cores" from environment.txt, e.g. "Intel Xeon ... (2 cores)".
    private static string Machine(string dir)
    {
        string path = Path.Combine(dir, "environment.txt");
        if (!File.Exists(path))
        {
            return Path.GetFileName(Path.GetFullPath(dir));
        }

        var kv = File.ReadAllLines(path)
            .Select(l => l.Split(':', 2))
            .Where(p => p.Length == 2)
            .GroupBy(p => p[0].Trim())
            .ToDictionary(g => g.Key, g => g.First()[1].Trim());
        string cpu = kv.GetValueOrDefault("cpu", "unknown CPU");
        string cores = kv.GetValueOrDefault("cores", "?");
        return $"{cpu}, {cores} cores";
    }

    private static bool Scaling(string dir, string machine)
    {
        string path = Path.Combine(dir, "scaling.csv");
        if (!File.Exists(path))
        {
            return false;
        }

        Csv csv = Csv.Read(path);
        var rows = csv.Rows.Select(r => (Workload: r["workload"], Threads: csv.Double(r, "threads"), Speedup: csv.Double(r, "speedup_vs_1"))).ToList();
        double maxThreads = rows.Max(r => r.Threads);
        var plot = new Plot();
        var ideal = plot.Add.Line(1, 1, maxThreads, maxThreads);
        ideal.LinePattern = LinePattern.Dashed;
        ideal.LineColor = Colors.Gray;
        ideal.LegendText = "linear";
        var ninety = plot.Add.Line(1, 0.9, maxThreads, 0.9 * maxThreads);
        ninety.LinePattern = LinePattern.Dotted;
        ninety.LineColor = Colors.Gray;
        ninety.LegendText = "90 % of linear (the RCU read goal)";
        foreach (var g in rows.GroupBy(r => r.Workload))
        {
            var ordered = g.OrderBy(r => r.Threads).ToArray();
            var s = plot.Add.Scatter(ordered.Select(r => r.Threads).ToArray(), ordered.Select(r => r.Speedup).ToArray());
            s.LegendText = g.Key;
            s.MarkerSize = 6;
        }

        double[] counts = rows.Select(r => r.Threads).Distinct().OrderBy(t => t).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            counts, counts.Select(t => t.ToString(CultureInfo.InvariantCulture)).ToArray());
        plot.Axes.SetLimits(0.5, maxThreads + 0.5, 0, Math.Max(maxThreads, rows.Max(r => r.Speedup)) * 1.1);
        plot.Title($"Thread scaling: speedup over one thread\n{machine}");
        plot.XLabel("threads");
        plot.YLabel("throughput / one-thread throughput");
        plot.ShowLegend(Alignment.UpperLeft);
        Save(plot, Path.Combine(dir, "scaling.png"));
        return true;
    }

    private static bool VqBatch(string dir, string machine)
    {
        string path = Path.Combine(dir, "c-vq.csv");
        if (!File.Exists(path))
        {
            return false;
        }

        Csv csv = Csv.Read(path);
        var rows = csv.Rows
            .Where(r => r["benchmark"].StartsWith("vq_batch", StringComparison.Ordinal))
            .Select(r => (Batch: double.Parse(r["benchmark"]["vq_batch".Length..], CultureInfo.InvariantCulture), Variant: r["variant"], Ns: csv.Double(r, "ns_per_op"), Latency: csv.Double(r, "latency_ns")))
            .ToList();
        if (rows.Count == 0)
        {
            return false;
        }

        var names = new Dictionary<string, string>
        {
            ["spsc_floor"] = "two plain C SPSC rings (the floor)",
            ["rr_export"] = "RefRuntime virtqueue, one export per buffer",
            ["rr_export_batched"] = "RefRuntime virtqueue, batch calls",
        };
        var plot = new Plot();
        foreach (var g in rows.GroupBy(r => r.Variant))
        {
            var ordered = g.OrderBy(r => r.Batch).ToArray();
            // x on a log2 scale: 1, 2, 4, ... evenly spaced.
            var s = plot.Add.Scatter(ordered.Select(r => Math.Log2(r.Batch)).ToArray(), ordered.Select(r => 1000.0 / r.Ns).ToArray());
            s.LegendText = names.GetValueOrDefault(g.Key, g.Key);
            s.MarkerSize = 6;
        }

        double[] batches = rows.Select(r => r.Batch).Distinct().OrderBy(b => b).ToArray();
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            batches.Select(Math.Log2).ToArray(), batches.Select(b => b.ToString(CultureInfo.InvariantCulture)).ToArray());
        plot.Title($"Virtqueue round trips by batch size, C host, 2 threads polling\n{machine}; one-way cross-CPU latency {rows[0].Latency:F0} ns");
        plot.XLabel("batch size (buffers published at once)");
        plot.YLabel("million buffers / s");
        plot.ShowLegend(Alignment.UpperLeft);
        plot.Axes.SetLimitsY(0, rows.Max(r => 1000.0 / r.Ns) * 1.15);
        Save(plot, Path.Combine(dir, "vq-batch.png"));
        return true;
    }

    private static bool VqManaged(string dir, string machine)
    {
        string? path = Directory.Exists(Path.Combine(dir, "bdn", "results"))
            ? Directory.GetFiles(Path.Combine(dir, "bdn", "results"), "*VirtqueueThroughputBenchmarks-report.csv").FirstOrDefault()
            : null;
        if (path is null)
        {
            return false;
        }

        Csv csv = Csv.Read(path);
        // One group of bars per (job, batch size): the JIT job, and the NativeAOT job when it ran.
        var means = csv.Rows.ToDictionary(r => (Job: r.GetValueOrDefault("Job", "JIT"), Method: r["Method"]), r => csv.Nanoseconds(r, "Mean"));
        string[] jobs = means.Keys.Select(k => k.Job).Distinct().OrderBy(j => j == "JIT" ? 0 : 1).ToArray();
        string[] designs = ["LockQueue", "Channel", "Virtq"];
        string[] labels = ["lock + Queue<T>", "Channel<T> (SPSC)", "RefRuntime virtqueue"];
        int[] batchSizes = [1, 32];
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        var groups = new List<(double Center, string Label)>();
        foreach (string job in jobs)
        {
            foreach (int batch in batchSizes)
            {
                int group = groups.Count;
                for (int d = 0; d < designs.Length; d++)
                {
                    if (means.TryGetValue((job, $"{designs[d]}_Batch{batch}"), out double ns))
                    {
                        bars.Add(new Bar
                        {
                            Position = group * (designs.Length + 1) + d,
                            Value = ns,
                            FillColor = palette.GetColor(d),
                            Label = ns.ToString("F0", CultureInfo.InvariantCulture),
                        });
                    }
                }

                groups.Add((group * (designs.Length + 1) + 1.0, jobs.Length > 1 ? $"batch {batch}, {job}" : $"batch {batch}"));
            }
        }

        if (bars.Count == 0)
        {
            return false;
        }

        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 12;
        for (int d = 0; d < designs.Length; d++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = labels[d], FillColor = palette.GetColor(d) });
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            groups.Select(g => g.Center).ToArray(), groups.Select(g => g.Label).ToArray());
        plot.Axes.Margins(bottom: 0);
        plot.Title($".NET: ns per buffer, producer and consumer threads (lower is better)\n{machine}");
        plot.YLabel("ns per buffer");
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, Path.Combine(dir, "vq-managed.png"));
        return true;
    }

    /// <summary>
    /// Every split ring of one run at batch 1 and 32, ns per buffer: the .NET ring under the JIT
    /// and NativeAOT (BenchmarkDotNet), the same ring from C through the exports and the batch
    /// calls, two plain C SPSC rings (the floor) and the Linux kernel's ringtest (which in polling
    /// mode publishes every buffer, so its batch-32 bar is a batch-1 design). Drawn when the run
    /// has the .NET class and the C table.
    /// </summary>
    private static bool VqSideBySide(string dir, string machine)
    {
        string? bdn = Directory.Exists(Path.Combine(dir, "bdn", "results"))
            ? Directory.GetFiles(Path.Combine(dir, "bdn", "results"), "*VirtqueueThroughputBenchmarks-report.csv").FirstOrDefault()
            : null;
        string cvq = Path.Combine(dir, "c-vq.csv");
        if (bdn is null || !File.Exists(cvq))
        {
            return false;
        }

        Csv b = Csv.Read(bdn);
        var dotnet = b.Rows.ToDictionary(r => (Job: r.GetValueOrDefault("Job", "JIT"), Method: r["Method"]), r => b.Nanoseconds(r, "Mean"));
        Csv c = Csv.Read(cvq);
        var cHost = c.Rows.Where(r => r["benchmark"].StartsWith("vq_batch", StringComparison.Ordinal))
            .ToDictionary(r => (Variant: r["variant"], Batch: int.Parse(r["benchmark"]["vq_batch".Length..], CultureInfo.InvariantCulture)), r => c.Double(r, "ns_per_op"));
        var linux = new Dictionary<int, double>();
        string ringtest = Path.Combine(dir, "c-ringtest.csv");
        if (File.Exists(ringtest))
        {
            Csv l = Csv.Read(ringtest);
            foreach (var r in l.Rows)
            {
                linux[int.Parse(r["batch"], CultureInfo.InvariantCulture)] = l.Double(r, "ns_per_buffer_median");
            }
        }

        (string Label, Func<int, double?> Ns)[] series =
        [
            (".NET ring, JIT", n => dotnet.TryGetValue(("JIT", $"Virtq_Batch{n}"), out double v) ? v : null),
            (".NET ring, NativeAOT", n => dotnet.TryGetValue(("NativeAOT", $"Virtq_Batch{n}"), out double v) ? v : null),
            (".NET lock + Queue<T>, JIT", n => dotnet.TryGetValue(("JIT", $"LockQueue_Batch{n}"), out double v) ? v : null),
            ("C host: ring, one export per buffer", n => cHost.TryGetValue(("rr_export", n), out double v) ? v : null),
            ("C host: ring, batch calls", n => cHost.TryGetValue(("rr_export_batched", n), out double v) ? v : null),
            ("plain C SPSC rings (the floor)", n => cHost.TryGetValue(("spsc_floor", n), out double v) ? v : null),
            ("Linux ringtest virtio_ring_0_9", n => linux.TryGetValue(n, out double v) ? v : null),
        ];
        int[] batchSizes = [1, 32];
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        for (int g = 0; g < batchSizes.Length; g++)
        {
            for (int k = 0; k < series.Length; k++)
            {
                if (series[k].Ns(batchSizes[g]) is double ns)
                {
                    bars.Add(new Bar
                    {
                        Position = (g * (series.Length + 1)) + k,
                        Value = ns,
                        FillColor = palette.GetColor(k),
                        Label = ns.ToString("F0", CultureInfo.InvariantCulture),
                    });
                }
            }
        }

        if (bars.Count == 0)
        {
            return false;
        }

        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 11;
        for (int k = 0; k < series.Length; k++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = series[k].Label, FillColor = palette.GetColor(k) });
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            batchSizes.Select((n, g) => (g * (series.Length + 1)) + ((series.Length - 1) / 2.0)).ToArray(),
            batchSizes.Select(n => n == 32 ? "batch 32 (ringtest: publishes per buffer)" : $"batch {n}").ToArray());
        plot.Axes.Margins(bottom: 0);
        double latency = c.Rows.Count > 0 ? c.Double(c.Rows[0], "latency_ns") : double.NaN;
        plot.Title($"Split rings side by side: ns per buffer, 2 threads polling (lower is better)\n{machine}; one-way cross-CPU latency {latency:F0} ns (C table)");
        plot.YLabel("ns per buffer");
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, Path.Combine(dir, "vq-side-by-side.png"));
        return true;
    }

    private static bool VhostBlk(string dir, string machine) =>
        VhostBlkChart(dir, machine, "req_per_s", 1000, "thousand requests / s", "requests/s (median of rounds)", "vhost-blk.png")
        & VhostBlkChart(dir, machine, "backend_cpu_us_per_req", 1, "back-end CPU µs per request", "back-end CPU per request (median of rounds, lower is better)", "vhost-blk-cpu.png");

    private static bool VhostBlkChart(string dir, string machine, string column, double scale, string yLabel, string what, string file)
    {
        string path = Path.Combine(dir, "vhost-blk.csv");
        if (!File.Exists(path))
        {
            return false;
        }

        Csv csv = Csv.Read(path);
        var rows = csv.Rows.Select(r => (Backend: r["backend"], Point: $"{r["op"]}\nQD{r["qd"]} {csv.Double(r, "bytes") / 1024:F0}K", Rate: csv.Double(r, column))).ToList();
        if (rows.Count == 0)
        {
            return false;
        }

        string[] backends = rows.Select(r => r.Backend).Distinct().OrderBy(b => b.StartsWith("ours", StringComparison.Ordinal) ? 0 : 1).ToArray();
        string[] points = rows.Select(r => r.Point).Distinct().ToArray();
        var labels = new Dictionary<string, string>
        {
            ["ours"] = "refruntime-vhost-blk",
            ["ref"] = "qemu-storage-daemon",
            ["ours-threads"] = "refruntime-vhost-blk --aio threads",
            ["ours-io_uring"] = "refruntime-vhost-blk --aio io_uring",
            ["qsd-threads"] = "qemu-storage-daemon aio=threads",
            ["qsd-io_uring"] = "qemu-storage-daemon aio=io_uring",
        };
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        var bars = new List<Bar>();
        for (int p = 0; p < points.Length; p++)
        {
            for (int b = 0; b < backends.Length; b++)
            {
                double[] v = rows.Where(r => r.Point == points[p] && r.Backend == backends[b]).Select(r => r.Rate).OrderBy(x => x).ToArray();
                if (v.Length == 0)
                {
                    continue;
                }

                double median = v.Length % 2 == 1 ? v[v.Length / 2] : (v[(v.Length / 2) - 1] + v[v.Length / 2]) / 2;
                bars.Add(new Bar
                {
                    Position = (p * (backends.Length + 1)) + b,
                    Value = median / scale,
                    FillColor = palette.GetColor(b),
                    Label = (median / scale).ToString("F1", CultureInfo.InvariantCulture),
                });
            }
        }

        var barPlot = plot.Add.Bars(bars);
        barPlot.ValueLabelStyle.FontSize = 11;
        for (int b = 0; b < backends.Length; b++)
        {
            plot.Legend.ManualItems.Add(new LegendItem { LabelText = labels.GetValueOrDefault(backends[b], backends[b]), FillColor = palette.GetColor(b) });
        }

        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            points.Select((_, p) => (p * (backends.Length + 1)) + ((backends.Length - 1) / 2.0)).ToArray(), points);
        plot.Axes.Margins(bottom: 0);
        plot.Title($"vhost-user-blk back-ends, RefRuntime front end: {what}\n{machine}");
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperLeft);
        Save(plot, Path.Combine(dir, file));
        return true;
    }

    private static void Save(Plot plot, string path)
    {
        plot.SavePng(path, 900, 560);
        Console.WriteLine($"  wrote {path}");
    }
}

/// <summary>A small CSV reader (RFC 4180 quoting) with a header row.</summary>
internal sealed class Csv
{
    private Csv(string path, List<Dictionary<string, string>> rows)
    {
        Path = path;
        Rows = rows;
    }

    public string Path { get; }

    public List<Dictionary<string, string>> Rows { get; }

    public static Csv Read(string path)
    {
        string[] lines = File.ReadAllLines(path).Where(l => l.Length > 0).ToArray();
        if (lines.Length == 0)
        {
            throw new FormatException($"{path}: empty");
        }

        string[] header = Split(lines[0]);
        var rows = new List<Dictionary<string, string>>();
        foreach (string line in lines.Skip(1))
        {
            string[] cells = Split(line);
            if (cells.Length != header.Length)
            {
                throw new FormatException($"{path}: a row has {cells.Length} cells, the header {header.Length}");
            }

            rows.Add(header.Zip(cells).ToDictionary(p => p.First, p => p.Second));
        }

        return new Csv(path, rows);
    }

    public double Double(Dictionary<string, string> row, string column) =>
        double.TryParse(row[column], NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
            ? v
            : throw new FormatException($"{Path}: '{row[column]}' in column {column} is not a number");

    // BenchmarkDotNet's "280.96 ns", "1.234 μs", "1,234.5 ns".
    public double Nanoseconds(Dictionary<string, string> row, string column)
    {
        string[] parts = row[column].Split(' ', 2);
        if (parts.Length != 2 || !double.TryParse(parts[0].Replace(",", string.Empty, StringComparison.Ordinal), NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
        {
            throw new FormatException($"{Path}: '{row[column]}' in column {column} is not a time");
        }

        return parts[1] switch
        {
            "ns" => v,
            "μs" or "us" => v * 1e3,
            "ms" => v * 1e6,
            "s" => v * 1e9,
            _ => throw new FormatException($"{Path}: unknown time unit '{parts[1]}'"),
        };
    }

    private static string[] Split(string line)
    {
        var cells = new List<string>();
        var cell = new System.Text.StringBuilder();
        bool quoted = false;
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"')
                {
                    cell.Append('"');
                    i++;
                }
                else if (c == '"')
                {
                    quoted = false;
                }
                else
                {
                    cell.Append(c);
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                cells.Add(cell.ToString());
                cell.Clear();
            }
            else
            {
                cell.Append(c);
            }
        }

        cells.Add(cell.ToString());
        return cells.ToArray();
    }
}
