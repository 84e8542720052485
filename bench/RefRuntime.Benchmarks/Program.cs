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
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        bool quick = args.Contains("--quick");
        bool aot = args.Contains("--aot");
        args = args.Where(a => a is not "--quick" and not "--aot").ToArray();

        Job jit = (quick ? Job.ShortRun : Job.Default).WithId("JIT");
        IConfig config = DefaultConfig.Instance.AddJob(jit.AsBaseline());
        if (aot)
        {
            // The NativeAot10_0 moniker points at a feed that is not reachable here; this builder
            // restores the ILCompiler package from the normal NuGet source (shared/docs/benchmarks.md).
            var toolchain = NativeAotToolchain.CreateBuilder().UseNuGet().TargetFrameworkMoniker("net10.0").ToToolchain();
            config = config.AddJob((quick ? Job.ShortRun : Job.Default).WithToolchain(toolchain).WithId("NativeAOT"));
        }

        var summaries = BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}
