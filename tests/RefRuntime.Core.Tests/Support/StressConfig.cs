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
}
