using System;
using System.Linq;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.NativeAot;

namespace RefRuntime.Benchmarks;

/// <summary>
/// Entry point: BenchmarkDotNet's switcher (use -filter). Extra flags, taken out before BDN sees
/// the rest: --quick (short runs), --aot (add a NativeAOT job beside the JIT job).
/// --vhost-figures [N]: instead of BenchmarkDotNet, per-request kicks, calls and CPU time of the
/// virtio-gpio pair across processes (VhostFigures).
/// --vhost-blk-figures ...: vhost-user-blk back-ends (ours, qemu-storage-daemon) measured with
/// RefRuntime's front end, interleaved rounds (VhostBlkFigures; bench/vhost-blk.sh runs it).
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Contains("--vhost-blk-figures"))
        {
            // Not a BenchmarkDotNet run: vhost-user-blk back-ends compared from the host (VhostBlkFigures).
            return Devices.VhostBlkFigures.Run(args);
        }

        int vf = Array.IndexOf(args, "--vhost-figures");
        if (vf >= 0)
        {
            // Not a BenchmarkDotNet run: per-request counts and CPU time of the pair across processes.
            int requests = vf + 1 < args.Length && int.TryParse(args[vf + 1], out int r) ? r : 20_000;
            return Devices.VhostFigures.Run(requests);
        }

        bool quick = args.Contains("--quick");
        bool aot = args.Contains("--aot");
        args = args.Where(a => a is not "--quick" and not "--aot").ToArray();

        // Iteration times: BenchmarkDotNet's MinIterationTime analyser warns about any measured
        // iteration under 100 ms, and the pilot stage sizes iterations to the target from code that
        // may not be fully tiered up yet, so a measured iteration is often a little shorter than
        // the target. Both jobs therefore aim well above that floor (1.5x and 2x) rather than at it.
        //
        // The standard job: 20 measured iterations of 200 ms after 6 warm-ups in one process.
        // Bounded so the whole suite runs in minutes on 2 cores; the median of 20 is stable enough
        // for ratios measured side by side (BenchmarkDotNet's default keeps iterating up to 100
        // times on a noisy VM).
        Job standard = Job.Default.WithWarmupCount(6).WithIterationCount(20).WithLaunchCount(1)
            .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(200));
        // The quick job: 5 measured iterations of 150 ms after 3 warm-ups, so that all 83
        // benchmarks (and the C host tables) finish in about 10 minutes on 2 cores. Noisier: read
        // its ratios as indications, the standard job's as the figures.
        Job quickJob = Job.Default.WithWarmupCount(3).WithIterationCount(5).WithLaunchCount(1)
            .WithIterationTime(Perfolizer.Horology.TimeInterval.FromMilliseconds(150));
        Job jit = (quick ? quickJob : standard).WithId("JIT");
        // DefaultConfig exports each summary as CSV (what bench/run.sh keeps: summarize.sh and the
        // charts read it), GitHub markdown and HTML; add no exporter here, and bench/run.sh passes
        // no --exporters: a second CSV exporter makes BenchmarkDotNet warn of a duplicate.
        IConfig config = DefaultConfig.Instance.AddJob(jit.AsBaseline());
        if (aot)
        {
            // The NativeAot10_0 moniker points at a feed that is not reachable here; this builder
            // restores the ILCompiler package from the normal NuGet source (docs/measuring.md).
            var toolchain = NativeAotToolchain.CreateBuilder().UseNuGet().TargetFrameworkMoniker("net10.0").ToToolchain();
            config = config.AddJob((quick ? quickJob : standard).WithToolchain(toolchain).WithId("NativeAOT"));
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
