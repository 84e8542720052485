// How the demo's table is measured: each path is timed operation by operation (or in small batches
// when one operation is shorter than the clock's overhead), in interleaved rounds, and summarised by
// its median and 99th percentile. Medians, not throughput over the whole run: on a shared VM one
// descheduled thread can stall a round trip for milliseconds, and a mean or an ops/s figure then
// measures the stall, not the path.

using System;
using System.Collections.Generic;
using System.Diagnostics;

/// <summary>The latencies of one path, per operation, in nanoseconds, from every round.</summary>
internal sealed class Samples(string name)
{
    private readonly List<double> _all = [];
    private readonly List<double> _roundMedians = [];

    public string Name { get; } = name;

    public double Median => Percentile(_all, 0.50);

    public double P99 => Percentile(_all, 0.99);

    /// <summary>The median of each round, in order.</summary>
    public IReadOnlyList<double> RoundMedians => _roundMedians;

    /// <summary>
    /// Times <paramref name="count"/> samples of <paramref name="batch"/> calls each and records
    /// the time per operation (<paramref name="opsPerCall"/> operations per call) as one round.
    /// </summary>
    public void Round(int count, int batch, int opsPerCall, Action<int> op)
    {
        var round = new double[count];
        double nsPerTick = 1e9 / Stopwatch.Frequency;
        int i = 0;
        for (int s = 0; s < count; s++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int k = 0; k < batch; k++)
            {
                op(i++);
            }

            round[s] = (Stopwatch.GetTimestamp() - t0) * nsPerTick / (batch * opsPerCall);
        }

        _all.AddRange(round);
        _roundMedians.Add(Percentile(round, 0.50));
    }

    /// <summary>Runs <paramref name="op"/> for half a second: the tiered JIT promotes hot methods
    /// in the background, and measuring before it has finished measures the JIT, not the path.</summary>
    public static void WarmUp(Action<int> op)
    {
        var warm = Stopwatch.StartNew();
        for (int i = 0; warm.ElapsedMilliseconds < 500 || i < 2000; i++)
        {
            op(i);
        }
    }

    private static double Percentile(IEnumerable<double> values, double q)
    {
        var sorted = new List<double>(values);
        if (sorted.Count == 0)
        {
            return double.NaN;
        }

        sorted.Sort();
        return sorted[Math.Min(sorted.Count - 1, (int)(sorted.Count * q))];
    }

    /// <summary>A duration in the unit that shows it: "152 ns", "1.80 us", "33.5 us", "2.56 ms".</summary>
    public static string Format(double ns) => ns switch
    {
        double.NaN => "-",
        < 1_000 => $"{ns:F0} ns",
        < 10_000 => $"{ns / 1e3:F2} us",
        < 1_000_000 => $"{ns / 1e3:F1} us",
        < 10_000_000 => $"{ns / 1e6:F2} ms",
        _ => $"{ns / 1e6:F1} ms",
    };
}
