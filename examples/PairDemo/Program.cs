// RefRuntime's main demo: the driver pair end to end.
//
//   consumer code ──> IGpioChip ──> virtio-gpio front end ──> split virtqueue (shared memory)
//                                                                  │
//        PL061 device model <── MMIO window <── PL061 driver <── virtio-gpio device (own thread)
//
// It drives a line and receives an interrupt across the ring, shows hot-unplug, then measures the
// same operations over three paths to the same PL061: the driver directly, the ring, and a
// lock-based request queue between the same two threads.

using System;
using System.Diagnostics;
using System.Threading;
using RefRuntime.Benchmarks.Devices;
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.VirtioGpio;

Console.WriteLine("RefRuntime driver pair: virtio-gpio front end -> split virtqueue -> device thread -> PL061 driver -> MMIO -> PL061 model");
using (var stack = new GpioPairStack())
{
    VirtioGpioChip chip = stack.Ring;
    ulong f = stack.Device.DeviceFeatures;
    Console.WriteLine($"probe: {chip.LineCount} lines; names: line 0 \"{chip.LineName(0)}\", line 2 \"{chip.LineName(2)}\"; " +
        $"device features 0x{f:x} (VERSION_1, EVENT_IDX, INDIRECT_DESC, F_IRQ); interrupts: {chip.HasInterrupts}");

    Must(chip.DirectionOutput(0, true), "direction_output(0, high)");
    Console.WriteLine($"line 0 -> output high through the ring: model pins = 0b{Convert.ToString(stack.Model.Outputs, 2).PadLeft(8, '0')}");
    Must(chip.Set(0, false), "set(0, low)");
    Console.WriteLine($"line 0 -> low:                          model pins = 0b{Convert.ToString(stack.Model.Outputs, 2).PadLeft(8, '0')}");

    using var fired = new ManualResetEventSlim(false);
    long firedAt = 0;
    Must(chip.DirectionInput(2), "direction_input(2)");
    Must(chip.SetIrqType(2, GpioIrqType.EdgeRising), "irq type rising");
    Must(chip.SetIrqHandler(2, line =>
    {
        firedAt = Stopwatch.GetTimestamp();
        fired.Set();
    }), "irq handler");
    long edgeAt = Stopwatch.GetTimestamp();
    stack.Model.SetInput(2, true); // the "button" is pressed
    if (!fired.Wait(5000))
    {
        throw new InvalidOperationException("the interrupt did not arrive");
    }

    Console.WriteLine($"line 2 rising edge at the model -> handler ran on the front end {Stopwatch.GetElapsedTime(edgeAt, firedAt).TotalMicroseconds:F0} us later " +
        $"(PL061 interrupt -> device -> eventq -> front end); Get(2) = {(chip.Get(2, out bool v2) == RrStatus.Ok ? v2 : "error")}");
    Must(chip.SetIrqHandler(2, null), "irq off");
}

using (var stack = new GpioPairStack())
{
    Must(stack.Ring.DirectionOutput(1, true), "direction_output(1)");
    stack.Direct.Remove(); // hot-unplug: the PL061 goes away under the running pair
    RrStatus after = stack.Ring.Get(1, out _);
    Console.WriteLine($"hot-unplug: PL061 removed while the pair runs -> front end Get(1) = {after} ({stack.Ring.Failure}); no hang, no crash");
}

Console.WriteLine();
Console.WriteLine($"Same operations, same PL061, three paths ({Environment.ProcessorCount} CPUs here; per operation, each a full round trip):");
Console.WriteLine($"{"path",-34} {"ops/s",12} {"p50",9} {"p99",9} {"vs lock queue",14}");
using (var stack = new GpioPairStack())
{
    for (int l = 0; l < 7; l++)
    {
        Must(stack.Ring.DirectionOutput(l, false), "setup");
    }

    const int N = 20_000;
    var locked = Measure(N, i => Op(stack.Locked, i));
    var ring = Measure(N, i => Op(stack.Ring, i));
    var direct = Measure(N, i => Op(stack.Direct, i));
    Row("set/get, PL061 driver directly", direct, locked);
    Row("set/get, virtio-gpio ring", ring, locked);
    Row("set/get, lock + Queue + Monitor", locked, locked);

    int[] lines = [0, 1, 2, 3, 4, 5, 6, 7];
    bool[] values = new bool[8];
    var lockedMany = Measure(N / 8, _ => stack.Locked.GetMultiple(lines, values), perCall: 8);
    var ringMany = Measure(N / 8, _ => stack.Ring.GetMultiple(lines, values), perCall: 8);
    Row("get x8 pipelined, ring", ringMany, lockedMany);
    Row("get x8 pipelined, lock queue", lockedMany, lockedMany);

    int count = 0;
    Must(stack.Ring.DirectionInput(7), "irq line");
    Must(stack.Ring.SetIrqType(7, GpioIrqType.EdgeBoth), "irq type");
    Must(stack.Ring.SetIrqHandler(7, _ => Interlocked.Increment(ref count)), "irq handler");
    bool level = false;
    var irq = Measure(2000, _ =>
    {
        int before = Volatile.Read(ref count);
        level = !level;
        stack.Model.SetInput(7, level);
        var spin = new SpinWait();
        while (Volatile.Read(ref count) == before)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }
    });
    Console.WriteLine($"{"interrupt round trip, ring",-34} {irq.OpsPerSec,12:N0} {irq.P50,7:F1}us {irq.P99,7:F1}us");
    Console.WriteLine();
    Console.WriteLine($"ring vs lock queue: {ring.OpsPerSec / locked.OpsPerSec:F1}x the throughput (goal >= 3x); the ring keeps {100 * ring.OpsPerSec / direct.OpsPerSec:F1}% of the direct path's rate.");
    Console.WriteLine("Full comparative suite (BenchmarkDotNet + C host, into perf-results/): bench/run.sh");
}

static void Op(IGpioChip chip, int i)
{
    if ((i & 1) == 0)
    {
        chip.Set(0, (i & 2) != 0);
    }
    else
    {
        chip.Get(0, out _);
    }
}

static Result Measure(int n, Action<int> op, int perCall = 1)
{
    // Warm up for half a second: the tiered JIT promotes hot methods in the background, and
    // measuring before it has finished measures the JIT, not the path.
    var warm = Stopwatch.StartNew();
    for (int i = 0; warm.ElapsedMilliseconds < 500 || i < 2000; i++)
    {
        op(i);
    }

    var lat = new double[n];
    long start = Stopwatch.GetTimestamp();
    for (int i = 0; i < n; i++)
    {
        long t0 = Stopwatch.GetTimestamp();
        op(i);
        lat[i] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds / perCall;
    }

    double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
    Array.Sort(lat);
    return new Result(n * perCall / seconds, lat[n / 2], lat[Math.Min(n - 1, (int)(n * 0.99))]);
}

static void Row(string name, Result r, Result baseline) =>
    Console.WriteLine($"{name,-34} {r.OpsPerSec,12:N0} {r.P50,7:F2}us {r.P99,7:F2}us {r.OpsPerSec / baseline.OpsPerSec,13:F1}x");

static void Must(RrStatus s, string what)
{
    if (s != RrStatus.Ok)
    {
        throw new InvalidOperationException($"{what}: {s}");
    }
}

internal readonly record struct Result(double OpsPerSec, double P50, double P99);
