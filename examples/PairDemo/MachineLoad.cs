// Whether the machine was disturbed while the table was measured. Two threads polling a ring on a
// 2-vCPU VM depend on having both CPUs: when other processes take one, or the hypervisor pauses
// it, a round trip waits for a time slice. Two readings say so (docs/measuring.md):
//   * the CPU time other processes (and the hypervisor: "steal") used during the table, from the
//     kernel's counters (proc(5): /proc/stat's cpu line and utime/stime of /proc/self/stat);
//   * the one-way cross-CPU latency of a ping-pong between two threads, before and after
//     (about 40-190 ns on a quiet VM of this kind).

using System;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;

internal readonly record struct CpuSnapshot(long Busy, long Steal, long Total, long Self)
{
    /// <summary>The kernel's counters now, or null where /proc cannot be read (not Linux).</summary>
    public static CpuSnapshot? Take()
    {
        try
        {
            // cpu  user nice system idle iowait irq softirq steal guest guest_nice  (clock ticks)
            long[] f = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Skip(1).Select(long.Parse).ToArray();
            long steal = f.Length > 7 ? f[7] : 0;
            long busy = f[0] + f[1] + f[2] + f[5] + f[6];
            // /proc/self/stat: fields after the ")" that ends the command name start at field 3;
            // utime and stime are fields 14 and 15, in the same clock ticks.
            string self = File.ReadAllText("/proc/self/stat");
            string[] g = self[(self.LastIndexOf(')') + 2)..].Split(' ');
            long mine = long.Parse(g[11]) + long.Parse(g[12]);
            return new CpuSnapshot(busy, steal, busy + steal + f[3] + f[4], mine);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Of all CPU time between the two snapshots: the share other processes used, and
    /// the share the hypervisor took (steal).</summary>
    public static (double Others, double Steal) Between(CpuSnapshot a, CpuSnapshot b)
    {
        double total = Math.Max(1, b.Total - a.Total);
        double others = Math.Max(0, (b.Busy - a.Busy) - (b.Self - a.Self)) / total;
        return (others, (b.Steal - a.Steal) / total);
    }
}

internal static class PingPong
{
    /// <summary>
    /// One-way cross-CPU latency in ns: the median of 5 runs of two threads bouncing a flag,
    /// each run cut off after 100 ms so a busy machine cannot hold the demo up.
    /// </summary>
    public static double OneWayNs()
    {
        var runs = new double[5];
        for (int r = 0; r < runs.Length; r++)
        {
            int flag = 0;
            bool stop = false;
            var pong = new Thread(() =>
            {
                while (!Volatile.Read(ref stop))
                {
                    if (Volatile.Read(ref flag) == 1)
                    {
                        Volatile.Write(ref flag, 0);
                    }
                }
            }) { IsBackground = true };
            pong.Start();
            long start = Stopwatch.GetTimestamp();
            long cutoff = start + Stopwatch.Frequency / 10;
            long bounces = 0;
            bool late = false;
            while (!late && bounces < 100_000)
            {
                Volatile.Write(ref flag, 1);
                for (int spins = 1; Volatile.Read(ref flag) != 0; spins++)
                {
                    if ((spins & 1023) == 0 && Stopwatch.GetTimestamp() > cutoff)
                    {
                        late = true; // the partner is not running: this run ends here
                        break;
                    }
                }

                bounces++;
                late |= (bounces & 255) == 0 && Stopwatch.GetTimestamp() > cutoff;
            }

            double ns = (Stopwatch.GetTimestamp() - start) * 1e9 / Stopwatch.Frequency;
            Volatile.Write(ref stop, true);
            pong.Join();
            runs[r] = ns / (2.0 * bounces);
        }

        Array.Sort(runs);
        return runs[runs.Length / 2];
    }
}
