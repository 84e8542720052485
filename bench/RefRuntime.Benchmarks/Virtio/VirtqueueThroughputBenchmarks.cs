using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Channels;
using BenchmarkDotNet.Attributes;
using RefRuntime.Core;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Benchmarks.Virtio;

/// <summary>
/// Cross-thread buffer throughput, polling mode: the measured thread is the driver (adds a
/// one-buffer chain per item, collects it back), the partner thread is the device (takes each
/// chain, returns it used). Every design moves <see cref="Items"/> items per invocation through a
/// request path and back through a completion path, at most <see cref="QueueSize"/> in flight, so
/// the figure is nanoseconds per buffer round trip with both threads busy. Batch 1 publishes
/// after every item; batch 32 publishes the index once per 32 (the device likewise publishes used
/// entries once per drained batch of up to 32). Baselines, same shape: <c>lock</c> + two
/// <see cref="Queue{T}"/> (one lock per queue, batch items moved under one acquisition), and two
/// single-reader/single-writer unbounded channels. The EventIdx variant also runs the
/// notification protocol (KickPrepare / NotifyPrepare per batch, re-enabling notifications when
/// a side runs dry) and prints kicks and interrupts per buffer at cleanup.
/// In every design both sides relax when a pass makes no progress (exponential backoff, 1 to 32
/// spin units), as ringtest's --relax does: a poll loop that never pauses keeps pulling away the
/// cache line the other side is filling (the driver polling used.idx steals the line the device
/// writes used entries into, and the device polling avail.idx the line of the ring entries).
/// PingPong_OneWayLatency gives the cross-CPU latency of the same run: read every figure beside it.
/// </summary>
public class VirtqueueThroughputBenchmarks
{
    private const int Items = 8192;
    private const int QueueSize = 256;

    private readonly PartnerThread _partner = new();
    private GuestMemory? _mem;
    private VirtqDriver? _driver;
    private VirtqDevice? _device;
    private ulong _bufferGpa;
    private bool _notify;

    private readonly Queue<Item> _toDevice = new(QueueSize);
    private readonly Queue<Item> _toDriver = new(QueueSize);
    private Channel<Item>? _chToDevice;
    private Channel<Item>? _chToDriver;

    /// <summary>The item a lock-based design would pass: what a descriptor carries.</summary>
    private readonly record struct Item(ulong Addr, uint Len, uint Id);

    [GlobalSetup(Targets = [nameof(LockQueue_Batch1), nameof(LockQueue_Batch32)])]
    public void SetupLock() => _partner.Start(() => ServeLock(_batch));

    [GlobalSetup(Targets = [nameof(Channel_Batch1), nameof(Channel_Batch32)])]
    public void SetupChannel()
    {
        var opts = new UnboundedChannelOptions { SingleReader = true, SingleWriter = true };
        _chToDevice = Channel.CreateUnbounded<Item>(opts);
        _chToDriver = Channel.CreateUnbounded<Item>(opts);
        _partner.Start(ServeChannel);
    }

    [GlobalSetup(Targets = [nameof(Virtq_Batch1), nameof(Virtq_Batch32)])]
    public void SetupVirtq() => SetupRing(notify: false);

    [GlobalSetup(Target = nameof(Virtq_Batch32_NewBuffers))]
    public void SetupVirtqNewBuffers()
    {
        _newBuffers = true;
        SetupRing(notify: false);
    }

    [GlobalSetup(Target = nameof(Virtq_Batch32_EventIdx))]
    public void SetupVirtqNotify() => SetupRing(notify: true);

    [GlobalSetup(Target = nameof(PingPong_OneWayLatency))]
    public void SetupPingPong() => _partner.StartPong();

    [GlobalCleanup]
    public void Cleanup()
    {
        _partner.Stop();
        if (_driver is not null)
        {
            if (_notify)
            {
                long moved = _device!.Notifications + _device.NotificationsSuppressed;
                Console.WriteLine($"// virtqueue EventIdx notifications: {_driver.Kicks} kicks / {_driver.Kicks + _driver.KicksSuppressed} publishes, "
                    + $"{_device.Notifications} interrupts / {moved} used publishes; per buffer: kicks {(double)_driver.Kicks / _totalMoved:F4}, interrupts {(double)_device.Notifications / _totalMoved:F4} over {_totalMoved} buffers");
            }

            _driver.Destroy();
            _device!.Destroy();
            _mem!.Destroy();
            _driver = null;
        }
    }

    private int _batch = 1;
    private bool _newBuffers;
    private long _totalMoved;

    [Benchmark(Baseline = true, OperationsPerInvoke = Items)]
    public long LockQueue_Batch1()
    {
        _batch = 1;
        return _partner.RunBoth(() => DriveLock(1));
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public long LockQueue_Batch32()
    {
        _batch = 32;
        return _partner.RunBoth(() => DriveLock(32));
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public long Channel_Batch1() => _partner.RunBoth(() => DriveChannel(1));

    [Benchmark(OperationsPerInvoke = Items)]
    public long Channel_Batch32() => _partner.RunBoth(() => DriveChannel(32));

    [Benchmark(OperationsPerInvoke = Items)]
    public long Virtq_Batch1()
    {
        _batch = 1;
        return _partner.RunBoth(() => DriveRing(1));
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public long Virtq_Batch32()
    {
        _batch = 32;
        return _partner.RunBoth(() => DriveRing(32));
    }

    /// <summary>
    /// Batch 32 where a head never gets the buffer it had the previous time round (the slot moves
    /// by one every lap of the ring), so every descriptor is rewritten: what a driver whose buffers
    /// change per request pays. In the other variants a head's descriptor repeats, and the driver
    /// skips the unchanged write (VirtqDriver.WriteDescIfChanged).
    /// </summary>
    [Benchmark(OperationsPerInvoke = Items)]
    public long Virtq_Batch32_NewBuffers()
    {
        _batch = 32;
        return _partner.RunBoth(() => DriveRing(32));
    }

    [Benchmark(OperationsPerInvoke = Items)]
    public long Virtq_Batch32_EventIdx()
    {
        _batch = 32;
        return _partner.RunBoth(() => DriveRing(32));
    }

    /// <summary>One-way cache-line transfer latency (round trips, each counted as two operations).</summary>
    [Benchmark(OperationsPerInvoke = 2 * Items)]
    public int PingPong_OneWayLatency() => _partner.PingPong(Items);

    // ---- the virtqueue ----

    private void SetupRing(bool notify)
    {
        _notify = notify;
        Check(GuestMemory.Create(1 << 20, 0x4000_0000, out _mem));
        Check(VirtqDriver.Create(_mem!, QueueSize, VirtqFeatures.EventIdx, 0, out _driver, out _));
        Check(VirtqDevice.Create(_mem!, _driver!.Rings, VirtqFeatures.EventIdx, MalformedChainPolicy.BreakQueue, out _device, out _));
        Check(_mem!.TryCarve(16 * QueueSize, 64, out _bufferGpa));
        if (!notify)
        {
            _driver.DisableCallbacks();
            _device!.DisableNotifications();
        }

        _partner.Start(() => ServeRing(_batch));
    }

    private long DriveRing(int batch)
    {
        VirtqDriver d = _driver!;
        Span<VirtqBuffer> one = stackalloc VirtqBuffer[1];
        int sent = 0, done = 0, idle = 0;
        while (done < Items)
        {
            int added = 0;
            while (added < batch && sent < Items)
            {
                int slot = (_newBuffers ? sent + (sent / QueueSize) : sent) & (QueueSize - 1);
                one[0] = new VirtqBuffer(_bufferGpa + (ulong)(16 * slot), 16);
                RrStatus s = d.TryAdd(one, 1, (ulong)sent);
                if (s == RrStatus.NoSpace)
                {
                    break;
                }

                Check(s);

                sent++;
                added++;
            }

            if (added > 0)
            {
                if (_notify)
                {
                    d.KickPrepare();
                }
                else
                {
                    d.Publish();
                }
            }

            bool any = false;
            while (d.TryGetUsed(out _, out _) == RrStatus.Ok)
            {
                done++;
                any = true;
            }

            if (!any && added == 0)
            {
                if (_notify)
                {
                    d.EnableCallbacks();
                }

                Relax(ref idle);
            }
            else
            {
                idle = 0;
            }
        }

        Interlocked.Add(ref _totalMoved, Items);
        return done;
    }

    private int ServeRing(int batch)
    {
        VirtqDevice v = _device!;
        int served = 0, idle = 0;
        while (served < Items)
        {
            int n = 0;
            while (n < batch && v.TryPop(out VirtqChain c) == RrStatus.Ok)
            {
                v.AddUsed(c.Head, 0);
                n++;
            }

            if (n > 0)
            {
                served += n;
                if (_notify)
                {
                    v.NotifyPrepare();
                }
                else
                {
                    v.PublishUsed();
                }
            }
            else
            {
                if (_notify)
                {
                    v.EnableNotifications();
                }

                Relax(ref idle);
                continue;
            }

            idle = 0;
        }

        return served;
    }

    // ---- lock + Queue<T> ----

    private long DriveLock(int batch)
    {
        int sent = 0, done = 0, inFlight = 0, idle = 0;
        while (done < Items)
        {
            int sentBefore = sent;
            if (sent < Items && inFlight < QueueSize)
            {
                lock (_toDevice)
                {
                    for (int k = 0; k < batch && sent < Items && inFlight < QueueSize; k++)
                    {
                        _toDevice.Enqueue(new Item(_bufferGpa, 16, (uint)sent));
                        sent++;
                        inFlight++;
                    }
                }
            }

            int got = 0;
            lock (_toDriver)
            {
                while (_toDriver.TryDequeue(out _))
                {
                    got++;
                }
            }

            done += got;
            inFlight -= got;
            Pass(progress: got != 0 || sent != sentBefore, ref idle);
        }

        return done;
    }

    private int ServeLock(int batch)
    {
        Span<Item> local = stackalloc Item[32];
        int served = 0, idle = 0;
        while (served < Items)
        {
            int n = 0;
            lock (_toDevice)
            {
                while (n < batch && _toDevice.TryDequeue(out Item it))
                {
                    local[n++] = it;
                }
            }

            if (n > 0)
            {
                lock (_toDriver)
                {
                    for (int k = 0; k < n; k++)
                    {
                        _toDriver.Enqueue(local[k]);
                    }
                }

                served += n;
                idle = 0;
            }
            else
            {
                Relax(ref idle);
            }
        }

        return served;
    }

    // ---- channels ----

    private long DriveChannel(int batch)
    {
        ChannelWriter<Item> w = _chToDevice!.Writer;
        ChannelReader<Item> r = _chToDriver!.Reader;
        int sent = 0, done = 0, inFlight = 0, idle = 0;
        while (done < Items)
        {
            int sentBefore = sent;
            for (int k = 0; k < batch && sent < Items && inFlight < QueueSize; k++)
            {
                w.TryWrite(new Item(_bufferGpa, 16, (uint)sent));
                sent++;
                inFlight++;
            }

            int got = 0;
            while (r.TryRead(out _))
            {
                got++;
            }

            done += got;
            inFlight -= got;
            Pass(progress: got != 0 || sent != sentBefore, ref idle);
        }

        return done;
    }

    private int ServeChannel()
    {
        ChannelReader<Item> r = _chToDevice!.Reader;
        ChannelWriter<Item> w = _chToDriver!.Writer;
        int served = 0, idle = 0;
        while (served < Items)
        {
            if (r.TryRead(out Item it))
            {
                w.TryWrite(it);
                served++;
                idle = 0;
            }
            else
            {
                Relax(ref idle);
            }
        }

        return served;
    }

    /// <summary>Ends a pass of a polling loop: relax if it made no progress, else reset the backoff.</summary>
    private static void Pass(bool progress, ref int idle)
    {
        if (progress)
        {
            idle = 0;
        }
        else
        {
            Relax(ref idle);
        }
    }

    /// <summary>Exponential backoff for an empty poll (1, 2, 4 .. 32 spin units).</summary>
    private static void Relax(ref int idle)
    {
        Thread.SpinWait(1 << Math.Min(idle, 5));
        idle++;
    }

    private static void Check(RrStatus s)
    {
        if (s != RrStatus.Ok)
        {
            throw new InvalidOperationException($"benchmark setup failed: {s}");
        }
    }
}
