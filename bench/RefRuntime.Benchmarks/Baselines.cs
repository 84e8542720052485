using System.Threading;

namespace RefRuntime.Benchmarks;

/// <summary>A counter alone on its cache line (no false sharing with neighbours).</summary>
internal sealed class PaddedCounter
{
#pragma warning disable CS0169, IDE0051 // padding
    private long _p0, _p1, _p2, _p3, _p4, _p5, _p6;
#pragma warning restore CS0169, IDE0051
    public int Value = 1;
#pragma warning disable CS0169, IDE0051
    private long _q0, _q1, _q2, _q3, _q4, _q5, _q6;
#pragma warning restore CS0169, IDE0051
}

/// <summary>The designs a user would write without RefRuntime: the baselines of the suites.</summary>
internal static class Baselines
{
    /// <summary><paramref name="pairs"/> raw Interlocked increment + decrement pairs (no saturation checks).</summary>
    public static int InterlockedPairs(ref int counter, int pairs)
    {
        int hits = 0;
        for (int i = 0; i < pairs; i++)
        {
            Interlocked.Increment(ref counter);
            if (Interlocked.Decrement(ref counter) == 0)
            {
                hits++;
            }
        }

        return hits;
    }
}
