using System;

namespace RefRuntime.Core.Tests.Support;

/// <summary>
/// How long stress tests run: a short slice in the normal suite, as long as asked in stress mode
/// (RR_STRESS_SECONDS=N, e.g. from ./test.sh --stress).
/// </summary>
internal static class StressConfig
{
    public static TimeSpan Duration(double normalSeconds)
    {
        string? s = Environment.GetEnvironmentVariable("RR_STRESS_SECONDS");
        return double.TryParse(s, System.Globalization.CultureInfo.InvariantCulture, out double v) && v > 0
            ? TimeSpan.FromSeconds(v)
            : TimeSpan.FromSeconds(normalSeconds);
    }

    /// <summary>
    /// How long a test that runs a fixed number of rounds should keep going beyond them: zero in
    /// the normal suite, the requested duration in stress mode (fuzzers, torture loops).
    /// </summary>
    public static TimeSpan Extended =>
        Environment.GetEnvironmentVariable("RR_STRESS_SECONDS") is null ? TimeSpan.Zero : Duration(0);

    public static int Threads => Math.Max(4, Environment.ProcessorCount * 2);

    /// <summary>How long a loop may go without showing what it is about before it counts as hung.</summary>
    public static readonly TimeSpan HangGuard = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Whether a timed stress loop runs another round: until <paramref name="duration"/> has passed
    /// <em>and</em> the loop has shown what it is about (<paramref name="progressed"/>: a minimum
    /// of round trips, generations, upgrades...). Never a speed check: on a slow or busy machine
    /// the loop only runs longer. A loop that has not progressed <see cref="HangGuard"/> after its
    /// duration fails as hung.
    /// </summary>
    public static bool Continue(System.Diagnostics.Stopwatch clock, TimeSpan duration, bool progressed)
    {
        TimeSpan t = clock.Elapsed;
        if (t < duration)
        {
            return true;
        }

        if (progressed)
        {
            return false;
        }

        if (t > duration + HangGuard)
        {
            throw new Xunit.Sdk.XunitException($"no progress {HangGuard.TotalMinutes} minutes past the test's duration: hung");
        }

        return true;
    }
}
