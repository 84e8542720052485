using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using RefRuntime.Core.Memory;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Virtio;
using Xunit;
using Xunit.Abstractions;

namespace RefRuntime.Core.Tests.Virtio;

/// <summary>
/// Random operation sequences against a model of the queue, and a two-thread stress run that
/// checks every byte in both directions.
/// </summary>
public sealed class VirtqModelTests(ITestOutputHelper output)
{
    private sealed record ModelChain(ulong Token, int Descriptors, uint[] WriteLens);

    // The model: what the driver has in flight (by token), what the device holds, what it will
    // return; free descriptors computed from the chains. Random add / publish / pop / complete
    // (out of order) / collect, for several sizes, features and seeds.
    [Theory]
    [InlineData(1, 0, 1)]
    [InlineData(2, 0, 2)]
    [InlineData(8, 0, 3)]
    [InlineData(8, 4, 4)]
    [InlineData(64, 8, 5)]
    [InlineData(256, 0, 6)]
    public void RandomOperations_MatchModel(int n, int indirectMax, int seed)
    {
        VirtqFeatures features = VirtqFeatures.EventIdx | (indirectMax > 0 ? VirtqFeatures.IndirectDesc : 0);
        using var f = new VirtqFixture(n, features, indirectMax, regionBytes: 8 << 20);
        var rng = new Random(seed);
        ulong pool = f.Buffer(64 * 1024);
        var inFlight = new Dictionary<ulong, ModelChain>();
        var staged = new List<ulong>();
        var published = new Queue<ulong>();            // in the avail ring, not popped
        var deviceHeld = new List<(ushort Head, ulong Token)>();
        var returned = new Queue<(ulong Token, uint Len)>(); // in the used ring, in order
        var usedStaged = new List<(ulong Token, uint Len)>();
        ulong nextToken = 1;
        int steps = n <= 2 ? 40_000 : 20_000;

        for (int step = 0; step < steps; step++)
        {
            switch (rng.Next(7))
            {
                case 0:
                case 1:
                {
                    int segs = 1 + rng.Next(Math.Min(n, 6));
                    int readable = rng.Next(segs + 1);
                    var bufs = new VirtqBuffer[segs];
                    for (int k = 0; k < segs; k++)
                    {
                        uint len = (uint)rng.Next(0, 40);
                        bufs[k] = new VirtqBuffer(pool + (ulong)rng.Next(60_000), len);
                    }

                    bool useIndirect = indirectMax > 0 && segs > 1 && segs <= indirectMax;
                    int needed = useIndirect ? 1 : segs;
                    int free = n - inFlight.Values.Sum(c => c.Descriptors);
                    RrStatus s = f.Driver.TryAdd(bufs, readable, nextToken);
                    if (free < needed)
                    {
                        Assert.Equal(RrStatus.NoSpace, s);
                        break;
                    }

                    Assert.Equal(RrStatus.Ok, s);
                    inFlight[nextToken] = new ModelChain(nextToken, needed, bufs.Skip(readable).Select(b => b.Length).ToArray());
                    staged.Add(nextToken);
                    nextToken++;
                    Assert.Equal(n - inFlight.Values.Sum(c => c.Descriptors), f.Driver.FreeCount);
                    break;
                }

                case 2:
                    f.Driver.Publish();
                    staged.ForEach(published.Enqueue);
                    staged.Clear();
                    break;

                case 3:
                {
                    RrStatus s = f.Device.TryPop(out VirtqChain c);
                    if (published.Count == 0)
                    {
                        Assert.Equal(RrStatus.NotFound, s);
                        break;
                    }

                    Assert.Equal(RrStatus.Ok, s);
                    ulong token = published.Dequeue();
                    ModelChain mc = inFlight[token];
                    Assert.Equal((uint)mc.WriteLens.Sum(l => l), c.WritableBytes);
                    Assert.Equal(mc.WriteLens.Length, c.Writable);
                    deviceHeld.Add((c.Head, token));
                    break;
                }

                case 4:
                    if (deviceHeld.Count > 0)
                    {
                        int pick = rng.Next(deviceHeld.Count); // out of order
                        (ushort head, ulong token) = deviceHeld[pick];
                        deviceHeld.RemoveAt(pick);
                        uint max = (uint)inFlight[token].WriteLens.Sum(l => l);
                        uint len = (uint)rng.Next((int)max + 1);
                        Assert.Equal(RrStatus.Ok, f.Device.AddUsed(head, len));
                        usedStaged.Add((token, len));
                    }

                    break;

                case 5:
                    f.Device.PublishUsed();
                    usedStaged.ForEach(returned.Enqueue);
                    usedStaged.Clear();
                    break;

                default:
                {
                    RrStatus s = f.Driver.TryGetUsed(out ulong token, out uint len);
                    if (returned.Count == 0)
                    {
                        Assert.Equal(RrStatus.NotFound, s);
                        break;
                    }

                    Assert.Equal(RrStatus.Ok, s);
                    (ulong expToken, uint expLen) = returned.Dequeue();
                    Assert.Equal((expToken, expLen), (token, len));
                    Assert.True(inFlight.Remove(token));
                    break;
                }
            }

            Assert.False(f.Driver.IsBroken);
            Assert.False(f.Device.IsBroken);
            Assert.Equal(inFlight.Count, f.Driver.InFlight);
        }
    }

    // Driver thread and device thread over one queue, polling, for a few seconds: every request
    // byte is checked by the device, every response byte by the driver, every token comes back
    // exactly once. The region is poisoned when freed at the end.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    [Trait("Category", "Stress")]
    public void CrossThread_EveryByteChecked(bool indirect)
    {
        const int n = 64;
        const int slotBytes = 64;
        VirtqFeatures features = VirtqFeatures.EventIdx | (indirect ? VirtqFeatures.IndirectDesc : 0);
        bool poison = NativeHeap.PoisonOnFree;
        NativeHeap.PoisonOnFree = true;
        try
        {
            using var f = new VirtqFixture(n, features, indirect ? 4 : 0, regionBytes: 4 << 20);
            ulong slots = f.Buffer(n * slotBytes * 2, 64);
            TimeSpan duration = StressConfig.Duration(1.5);
            long completed = 0;
            string? deviceError = null;
            using var stop = new CancellationTokenSource();

            var device = new Thread(() =>
            {
                Span<byte> req = stackalloc byte[slotBytes];
                Span<byte> resp = stackalloc byte[slotBytes];
                try
                {
                    while (true)
                    {
                        RrStatus s = f.Device.TryPop(out VirtqChain c);
                        if (s == RrStatus.NotFound)
                        {
                            if (stop.IsCancellationRequested)
                            {
                                return;
                            }

                            Thread.SpinWait(4);
                            continue;
                        }

                        if (s != RrStatus.Ok)
                        {
                            deviceError = $"pop: {s} {f.Device.BrokenReason}";
                            return;
                        }

                        int got = f.Device.Gather(req);
                        if (got != (int)c.ReadableBytes || got < 8)
                        {
                            deviceError = $"request of {got} bytes";
                            return;
                        }

                        ulong seq = BitConverter.ToUInt64(req);
                        for (int i = 8; i < got; i++)
                        {
                            if (req[i] != (byte)(seq + (ulong)i))
                            {
                                deviceError = $"request {seq} byte {i} = {req[i]}";
                                return;
                            }
                        }

                        int answer = (int)c.WritableBytes;
                        for (int i = 0; i < answer; i++)
                        {
                            resp[i] = (byte)(~seq - (ulong)i);
                        }

                        f.Device.Scatter(resp[..answer]);
                        f.Device.AddUsed(c.Head, (uint)answer);
                        f.Device.PublishUsed();
                    }
                }
                catch (Exception e)
                {
                    deviceError = e.ToString();
                }
            });
            device.Start();

            var rng = new Random(7);
            var pending = new Dictionary<ulong, ulong>();
            var freeSlots = new Stack<int>(Enumerable.Range(0, n));
            var slotOf = new Dictionary<ulong, int>();
            ulong seq = 0;
            var sw = System.Diagnostics.Stopwatch.StartNew();
            f.Driver.DisableCallbacks();
            const int MinRoundTrips = 1000;
            while (deviceError is null && StressConfig.Continue(sw, duration, completed >= MinRoundTrips))
            {
                // Add a few, publish once (batching), then collect what came back.
                int batch = 1 + rng.Next(8);
                for (int k = 0; k < batch && freeSlots.Count > 0; k++)
                {
                    int slot = freeSlots.Peek();
                    ulong reqGpa = slots + (ulong)(slot * slotBytes * 2);
                    ulong respGpa = reqGpa + slotBytes;
                    int reqLen = 8 + rng.Next(slotBytes - 8);
                    Span<byte> r = f.Bytes(reqGpa, reqLen);
                    BitConverter.TryWriteBytes(r, seq);
                    for (int i = 8; i < reqLen; i++)
                    {
                        r[i] = (byte)(seq + (ulong)i);
                    }

                    f.Bytes(respGpa, slotBytes).Fill(0xEE);
                    // Split the request in two readable pieces, the response in two writable ones.
                    uint a = (uint)rng.Next(8, reqLen + 1), w1 = (uint)rng.Next(1, slotBytes);
                    VirtqBuffer[] bufs = a < reqLen
                        ? [new(reqGpa, a), new(reqGpa + a, (uint)reqLen - a), new(respGpa, w1), new(respGpa + w1, slotBytes - w1)]
                        : [new(reqGpa, (uint)reqLen), new(respGpa, w1), new(respGpa + w1, slotBytes - w1)];
                    RrStatus s = f.Driver.TryAdd(bufs, bufs.Length - 2, seq);
                    if (s == RrStatus.NoSpace)
                    {
                        break;
                    }

                    Assert.Equal(RrStatus.Ok, s);
                    freeSlots.Pop();
                    slotOf[seq] = slot;
                    pending[seq] = respGpa;
                    seq++;
                }

                f.Driver.Publish();
                while (true)
                {
                    RrStatus s = f.Driver.TryGetUsed(out ulong token, out uint len);
                    if (s == RrStatus.NotFound)
                    {
                        break;
                    }

                    Assert.Equal(RrStatus.Ok, s);
                    Assert.True(pending.Remove(token, out var p), $"token {token} twice or unknown");
                    Assert.Equal((uint)slotBytes, len);
                    Span<byte> resp = f.Bytes(p, slotBytes);
                    for (int i = 0; i < slotBytes; i++)
                    {
                        Assert.Equal((byte)(~token - (ulong)i), resp[i]);
                    }

                    freeSlots.Push(slotOf[token]);
                    slotOf.Remove(token);
                    completed++;
                }
            }

            // Drain.
            var drain = System.Diagnostics.Stopwatch.StartNew();
            while (pending.Count > 0 && drain.Elapsed < StressConfig.HangGuard && deviceError is null)
            {
                if (f.Driver.TryGetUsed(out ulong token, out _) == RrStatus.Ok)
                {
                    pending.Remove(token);
                }
            }

            stop.Cancel();
            device.Join();
            Assert.Null(deviceError);
            Assert.Empty(pending);
            output.WriteLine($"round trips {completed} in {sw.Elapsed.TotalSeconds:F1} s, every byte checked both ways, errors 0");
            Assert.True(completed >= MinRoundTrips, $"only {completed} round trips"); // the loop runs until it has them
            Assert.False(f.Driver.IsBroken);
        }
        finally
        {
            NativeHeap.PoisonOnFree = poison;
        }
    }

    // The doorbell: sleeping handoff between two threads, and a timeout that reports false.
    [Fact]
    public void Doorbell_PingPongAndTimeout()
    {
        using var ping = new Doorbell(spinIterations: 0);
        using var pong = new Doorbell(spinIterations: 50);
        Assert.False(ping.Wait(20));
        const int rounds = 2000;
        var t = new Thread(() =>
        {
            for (int i = 0; i < rounds; i++)
            {
                ping.Wait();
                pong.Ring();
            }
        });
        t.Start();
        for (int i = 0; i < rounds; i++)
        {
            ping.Ring();
            Assert.True(pong.Wait(60_000)); // a hang guard only
        }

        t.Join();
        Assert.Equal(rounds, ping.Rings);
        Assert.True(ping.Sleeps > 0);
        Assert.False(ping.Wait(0));
    }
}
