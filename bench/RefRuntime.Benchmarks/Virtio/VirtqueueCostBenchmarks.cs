using System;
using System.Collections.Generic;
using BenchmarkDotNet.Attributes;
using RefRuntime.Core;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Benchmarks.Virtio;

/// <summary>
/// The CPU cost of one buffer's round trip with no second CPU involved: one thread plays both the
/// driver and the device, 32 buffers per batch, so no cache line ever moves between CPUs. This is
/// the compute floor under <see cref="VirtqueueThroughputBenchmarks"/>'s batch-32 figures (there
/// the two sides run in parallel, each paying its own part of this plus the line transfers).
/// The ring: TryAdd × 32, Publish, then TryPop + AddUsed × 32, PublishUsed, then TryGetUsed × 32.
/// The baseline does what the lock queue of the two-thread class does per batch: one lock
/// acquisition per side per queue, 32 enqueues and 32 dequeues on each of its two queues.
/// </summary>
public class VirtqueueCostBenchmarks
{
    private const int Batch = 32;
    private const int Batches = 64;
    private const int QueueSize = 256;

    private GuestMemory? _mem;
    private VirtqDriver? _driver;
    private VirtqDevice? _device;
    private ulong _bufferGpa;

    private readonly Queue<Item> _toDevice = new(QueueSize);
    private readonly Queue<Item> _toDriver = new(QueueSize);
    private readonly Item[] _local = new Item[Batch];

    private readonly record struct Item(ulong Addr, uint Len, uint Id);

    [GlobalSetup]
    public void Setup()
    {
        Check(GuestMemory.Create(1 << 20, 0x4000_0000, out _mem));
        Check(VirtqDriver.Create(_mem!, QueueSize, VirtqFeatures.EventIdx, 0, out _driver, out _));
        Check(VirtqDevice.Create(_mem!, _driver!.Rings, VirtqFeatures.EventIdx, MalformedChainPolicy.BreakQueue, out _device, out _));
        Check(_mem!.TryCarve(16 * QueueSize, 64, out _bufferGpa));
        _driver.DisableCallbacks();
        _device!.DisableNotifications();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _driver?.Destroy();
        _device?.Destroy();
        _mem?.Destroy();
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch * Batches)]
    public long LockQueue_OneThread()
    {
        long n = 0;
        for (int b = 0; b < Batches; b++)
        {
            lock (_toDevice)
            {
                for (int k = 0; k < Batch; k++)
                {
                    _toDevice.Enqueue(new Item(_bufferGpa, 16, (uint)k));
                }
            }

            int got = 0;
            lock (_toDevice)
            {
                while (got < Batch && _toDevice.TryDequeue(out Item it))
                {
                    _local[got++] = it;
                }
            }

            lock (_toDriver)
            {
                for (int k = 0; k < got; k++)
                {
                    _toDriver.Enqueue(_local[k]);
                }
            }

            lock (_toDriver)
            {
                while (_toDriver.TryDequeue(out Item it))
                {
                    n += it.Id;
                }
            }
        }

        return n;
    }

    [Benchmark(OperationsPerInvoke = Batch * Batches)]
    public long Virtq_OneThread()
    {
        VirtqDriver d = _driver!;
        VirtqDevice v = _device!;
        Span<VirtqBuffer> one = stackalloc VirtqBuffer[1];
        long n = 0;
        for (int b = 0; b < Batches; b++)
        {
            for (int k = 0; k < Batch; k++)
            {
                one[0] = new VirtqBuffer(_bufferGpa + (ulong)(16 * k), 16);
                d.TryAdd(one, 1, (ulong)k);
            }

            d.Publish();
            while (v.TryPop(out VirtqChain c) == RrStatus.Ok)
            {
                v.AddUsed(c.Head, 0);
            }

            v.PublishUsed();
            while (d.TryGetUsed(out ulong token, out _) == RrStatus.Ok)
            {
                n += (long)token;
            }
        }

        return n;
    }

    private static void Check(RrStatus s)
    {
        if (s != RrStatus.Ok)
        {
            throw new InvalidOperationException($"setup failed: {s}");
        }
    }
}
