// Thread scaling of the read side and of reference counting: total operations per second at
// 1..N threads, each thread pinned to its own CPU where the OS allows, every workload beside the
// lock-based design it replaces. Writes a CSV (workload, threads, ops/s, speedup, efficiency).
//
//   refruntime-scaling [--threads 1,2,4,8,16] [--seconds 2] [--csv out.csv]
//
// Workloads (one "op" each):
//   rcu_read            RCU read section: lock, dereference a published node, read, unlock
//   rwls_read           ReaderWriterLockSlim read lock around the same read
//   lock_read           System.Threading.Lock around the same read
//   shared_counter      Interlocked increment+decrement of ONE counter (naive shared refcount)
//   refcount_private    refcount inc+dec_and_test, each thread on its own object
//   arc_private         Arc clone+drop, each thread on its own object
//   arc_shared          Arc clone+drop, all threads on one object

using System;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core;
using RefRuntime.Core.Rcu;
using RefRuntime.Core.Sync;

namespace RefRuntime.Scaling;

internal static unsafe partial class Program
{
    private sealed class Node(long v)
    {
        public readonly long Value = v;
    }

    private static readonly string[] Workloads = ["rcu_read", "rwls_read", "lock_read", "shared_counter", "refcount_private", "arc_private", "arc_shared"];

    private static Node s_node = new(42);
    private static readonly RawRcuDomain s_domain = new();
    private static readonly ReaderWriterLockSlim s_rwls = new();
    private static readonly Lock s_lock = new();
    private static int s_shared = 1;
    private static ArcHeader* s_sharedArc;

    private static int Main(string[] args)
    {
        int[] threads = [1, 2, 4, 8, 16];
        double seconds = 2;
        string? csvPath = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--threads":
                    threads = args[++i].Split(',').Select(int.Parse).ToArray();
                    break;
                case "--seconds":
                    seconds = double.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--csv":
                    csvPath = args[++i];
                    break;
                default:
                    Console.Error.WriteLine($"unknown argument {args[i]}");
                    return 2;
            }
        }

        if (RawArc.Create(8, 8, null, null, out void* p) != RrStatus.Ok)
        {
            return 1;
        }

        s_sharedArc = RawArc.DangerousHeader(p);
        using var csv = csvPath is null ? null : new StreamWriter(csvPath);
        csv?.WriteLine("workload,threads,ops_per_sec,per_thread_ops_per_sec,speedup_vs_1,efficiency");
        Console.WriteLine($"# {Environment.ProcessorCount} CPUs, {seconds}s per point, .NET {Environment.Version} ({(RuntimeFeature() ? "NativeAOT" : "JIT")})");
        Console.WriteLine($"{"workload",-18} {"threads",7} {"Mops/s",10} {"speedup",8} {"efficiency",10}");
        foreach (string w in Workloads)
        {
            double single = 0;
            foreach (int n in threads)
            {
                double ops = Run(w, n, seconds);
                if (n == threads[0])
                {
                    single = ops / n;
                }

                double speedup = ops / single;
                double efficiency = speedup / n;
                Console.WriteLine($"{w,-18} {n,7} {ops / 1e6,10:F1} {speedup,8:F2} {efficiency,10:P0}");
                csv?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{w},{n},{ops:F0},{ops / n:F0},{speedup:F3},{efficiency:F3}"));
            }
        }

        return 0;
    }

    private static bool RuntimeFeature() => !System.Runtime.CompilerServices.RuntimeFeature.IsDynamicCodeSupported;

    private static double Run(string workload, int threads, double seconds)
    {
        int kind = Array.IndexOf(Workloads, workload);
        var counts = new long[threads * 16]; // one per thread, padded
        int stop = 0;
        using var start = new Barrier(threads + 1);
        var ts = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int me = t;
            ts[t] = new Thread(() =>
            {
                Pin(me);
                void* own = null;
                if (kind == 5)
                {
                    RawArc.Create(8, 64, null, null, out own);
                }

                int* privateCounter = (int*)NativeMemory.AlignedAlloc(64, 64);
                *privateCounter = 1;
                start.SignalAndWait();
                long n = 0;
                while (Volatile.Read(ref stop) == 0)
                {
                    for (int i = 0; i < 256; i++)
                    {
                        Step(kind, privateCounter, own);
                    }

                    n += 256;
                }

                counts[me * 16] = n;
                NativeMemory.AlignedFree(privateCounter);
                if (own != null)
                {
                    RawArc.Drop(RawArc.DangerousHeader(own));
                }
            }) { IsBackground = true };
            ts[t].Start();
        }

        start.SignalAndWait();
        var clock = Stopwatch.StartNew();
        Thread.Sleep(TimeSpan.FromSeconds(seconds));
        Volatile.Write(ref stop, 1);
        double elapsed = clock.Elapsed.TotalSeconds;
        foreach (Thread t in ts)
        {
            t.Join();
        }

        long total = 0;
        for (int t = 0; t < threads; t++)
        {
            total += counts[t * 16];
        }

        return total / elapsed;
    }

    // SAFETY (Step): privateCounter and own are this thread's live allocations (Run sets them up
    // before the loop and frees them after it); s_sharedArc lives for the whole process.
    private static long Step(int kind, int* privateCounter, void* own)
    {
        switch (kind)
        {
            case 0:
            {
                RcuReader* r = s_domain.ReadLockRecord();
                long v = Volatile.Read(ref s_node).Value;
                RawRcuDomain.ReadUnlock(r);
                return v;
            }

            case 1:
            {
                s_rwls.EnterReadLock();
                long v = Volatile.Read(ref s_node).Value;
                s_rwls.ExitReadLock();
                return v;
            }

            case 2:
                lock (s_lock)
                {
                    return s_node.Value;
                }

            case 3:
                Interlocked.Increment(ref s_shared);
                return Interlocked.Decrement(ref s_shared);
            case 4:
                Refcount.Inc(ref *privateCounter);
                return Refcount.DecAndTest(ref *privateCounter) ? 1 : 0;
            case 5:
            {
                ArcHeader* h = RawArc.DangerousHeader(own);
                RawArc.Clone(h);
                RawArc.Drop(h);
                return 0;
            }

            default:
                RawArc.Clone(s_sharedArc);
                RawArc.Drop(s_sharedArc);
                return 0;
        }
    }

    // Pin the calling thread to one CPU (Linux sched_setaffinity on this thread); best effort.
    private static void Pin(int cpu)
    {
        if (!OperatingSystem.IsLinux() || cpu >= Environment.ProcessorCount)
        {
            return;
        }

        ulong* mask = stackalloc ulong[16];
        mask[cpu / 64] = 1UL << (cpu % 64);
        _ = sched_setaffinity(0, 128, mask);
    }

    [LibraryImport("libc", SetLastError = false)]
    private static partial int sched_setaffinity(int pid, nuint size, ulong* mask);
}
