using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Tests.VirtioBlk;

/// <summary>
/// RefRuntime's vhost-user-blk front end (this process) against a back-end program (a child
/// process): RefRuntime's refruntime-vhost-blk and, as the reference, QEMU's qemu-storage-daemon.
/// Every request type, random I/O checked byte for byte against a model of the image (and the
/// image file after a clean stop), four queues on four threads, 32 requests in flight, a
/// read-only export, malformed chains, and a back-end killed mid-workload then restarted.
/// </summary>
public sealed class VhostBlkCrossProcessTests(ITestOutputHelper output)
{
    private const int Sector = SectorSize;
    private static readonly int HangMs = (int)StressConfig.HangGuard.TotalMilliseconds;

    private static readonly BlkChainLayout[] Layouts =
    [
        default,                                    // header | data | status, like Linux
        new(SegmentBytes: 512),                     // many small data descriptors
        new(SegmentBytes: 4096),
        new(StatusWithData: true),                  // status joined to writable data, header to readable data
        new(SegmentBytes: 1536, StatusWithData: true),
    ];

    private void Dump(BlkBackendProcess b)
    {
        foreach (string line in b.Output)
        {
            output.WriteLine($"[{b.Kind}] {line}");
        }
    }

    private static byte[] RandomImage(int bytes, int seed)
    {
        var b = new byte[bytes];
        new Random(seed).NextBytes(b);
        return b;
    }

    // The handshake: VERSION_1 and FLUSH negotiated, the configuration space read and typed.
    [Theory]
    [BlkBackend(BlkBackendProcess.Ours)]
    [BlkBackend(BlkBackendProcess.OursIoUring)]
    [BlkBackend(BlkBackendProcess.Qsd)]
    public void Connect_NegotiatesVersion1_AndReadsTheConfigSpace(string backend)
    {
        BlkBackendProcess.Require(backend); // before the image is created: a missing program fails (or skips) first
        string image = BlkBackendProcess.CreateImage(8 << 20, _ => { });
        using var b = new BlkBackendProcess(backend, image);
        try
        {
            using VhostUserBlkFrontend fe = b.Connect();
            VirtioBlkConfig c = fe.Config;
            output.WriteLine($"device features 0x{fe.DeviceFeatures:x}, negotiated 0x{fe.Features:x}, protocol {fe.ProtocolFeatures}, queues {fe.BackendQueueCount}, config {c}");
            Assert.NotEqual(0UL, fe.Features & VIRTIO_F_VERSION_1);
            Assert.NotEqual(0UL, fe.Features & VIRTIO_BLK_F_FLUSH);
            Assert.Equal(fe.Features, fe.Features & fe.DeviceFeatures);
            Assert.Equal((ulong)(8 << 20) / Sector, c.Capacity);
            Assert.True(c.BytesRead >= VirtioBlkConfigLayout.WriteZeroesMayUnmap + 1);
            Assert.False(fe.IsReadOnly);
            if ((fe.Features & VIRTIO_BLK_F_BLK_SIZE) != 0)
            {
                Assert.True(c.BlkSize >= Sector && (c.BlkSize & (c.BlkSize - 1)) == 0, $"blk_size {c.BlkSize}");
            }

            if ((fe.Features & VIRTIO_BLK_F_SEG_MAX) != 0)
            {
                Assert.True(c.SegMax >= 1);
            }

            Assert.Single(fe.Queues);
            Assert.Equal(128, fe.Queues[0].Depth);
        }
        finally
        {
            Dump(b);
            File.Delete(image);
        }
    }

    // Every request type with every chain layout: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES (with
    // and without UNMAP) and an unknown type; with indirect tables or without.
    [Theory]
    [BlkBackend(BlkBackendProcess.Ours, false)]
    [BlkBackend(BlkBackendProcess.OursIoUring, false)]
    [BlkBackend(BlkBackendProcess.Ours, true)]
    [BlkBackend(BlkBackendProcess.OursIoUring, true)]
    [BlkBackend(BlkBackendProcess.Qsd, false)]
    [BlkBackend(BlkBackendProcess.Qsd, true)]
    public void EveryRequestType_EveryLayout_AnswersAsTheSpecSays(string backend, bool indirect)
    {
        BlkBackendProcess.Require(backend); // before the image is created: a missing program fails (or skips) first
        byte[] initial = RandomImage(4 << 20, 1);
        string image = BlkBackendProcess.CreateImage(initial.Length, d => initial.CopyTo(d, 0));
        using var b = new BlkBackendProcess(backend, image);
        try
        {
            using VhostUserBlkFrontend fe = b.Connect(new VhostUserBlkOptions { Indirect = indirect });
            Assert.Equal(indirect, (fe.Features & VIRTIO_RING_F_INDIRECT_DESC) != 0);
            VhostUserBlkQueue q = fe.Queues[0];
            var rnd = new Random(2);
            foreach (BlkChainLayout layout in Layouts)
            {
                var data = new byte[16 * 1024];
                rnd.NextBytes(data);
                BlkResult w = q.Write(64, data, layout, HangMs);
                Assert.True(w.IsOk, $"write with {layout}: {w}");
                var back = new byte[data.Length];
                BlkResult r = q.Read(64, back, layout, HangMs);
                Assert.True(r.IsOk, $"read with {layout}: {r}");
                Assert.Equal(data, back);
                Assert.Equal((uint)data.Length + 1, r.UsedLength); // data + status (virtio 1.2 §2.7.8.1: bytes written)
                output.WriteLine($"{layout}: write used {w.UsedLength}, read used {r.UsedLength}");
            }

            Assert.True(q.Flush(HangMs).IsOk);

            var id = new byte[VIRTIO_BLK_ID_BYTES];
            BlkResult g = q.GetId(id, HangMs);
            output.WriteLine($"GET_ID: {g}, \"{Encoding.ASCII.GetString(id).TrimEnd('\0')}\"");
            Assert.True(g.IsOk, $"GET_ID: {g}");

            // Discard and write-zeroes read back zeroes (the file back-ends punch holes / zero-fill).
            var zero = new byte[8 * Sector];
            var got = new byte[zero.Length];
            Assert.NotEqual(0UL, fe.Features & VIRTIO_BLK_F_DISCARD);
            Assert.NotEqual(0UL, fe.Features & VIRTIO_BLK_F_WRITE_ZEROES);
            (string What, Func<ulong, BlkResult> Do)[] zeroing =
            [
                ("DISCARD", s => q.Discard(s, 8, HangMs)),
                ("WRITE_ZEROES", s => q.WriteZeroes(s, 8, false, HangMs)),
                ("WRITE_ZEROES|UNMAP", s => q.WriteZeroes(s, 8, true, HangMs)),
            ];
            ulong at = 1024;
            foreach ((string what, Func<ulong, BlkResult> zeroIt) in zeroing)
            {
                Assert.Equal(RrStatus.Ok, q.Read(at, got, default, HangMs).IsOk ? RrStatus.Ok : RrStatus.Internal);
                Assert.False(got.AsSpan().SequenceEqual(zero), "the random image already holds zeroes there");
                BlkResult z = zeroIt(at);
                Assert.True(z.IsOk, $"{what}: {z}");
                Assert.True(q.Read(at, got, default, HangMs).IsOk);
                Assert.True(got.AsSpan().SequenceEqual(zero), $"{what} did not read back zeroes");
                Assert.True(q.Read(at + 8, got, default, HangMs).IsOk); // the sectors after it are untouched
                Assert.Equal(initial.AsSpan((int)(at + 8) * Sector, got.Length).ToArray(), got);
                at += 64;
            }

            // An unknown request type is unsupported.
            BlkResult u = q.Execute(0x77, 0, default, default, 0, default, HangMs);
            Assert.Equal(BlkOutcome.Completed, u.Outcome);
            Assert.Equal(VIRTIO_BLK_S_UNSUPP, u.Status);
        }
        finally
        {
            Dump(b);
            File.Delete(image);
        }
    }

    // Random reads and writes (random sectors, 512 B to 128 KiB, random chain layouts), each read
    // checked against the model; after a clean stop (SIGTERM) the image file equals the model.
    [Theory]
    [BlkBackend(BlkBackendProcess.Ours)]
    [BlkBackend(BlkBackendProcess.OursIoUring)]
    [BlkBackend(BlkBackendProcess.Qsd)]
    public void RandomReadsAndWrites_MatchTheModel_AndTheImageAfterSigterm(string backend)
    {
        BlkBackendProcess.Require(backend); // before the image is created: a missing program fails (or skips) first
        var model = new BlkModel(RandomImage(32 << 20, 3));
        string image = BlkBackendProcess.CreateImage(model.Data.Length, d => model.Data.CopyTo(d, 0));
        using var b = new BlkBackendProcess(backend, image);
        try
        {
            using (VhostUserBlkFrontend fe = b.Connect())
            {
                BlkWorkload.Result r = BlkWorkload.Run(fe.Queues[0], model, seed: 4, ops: 600, depth: 1, first: 0, span: model.Sectors, maxBytes: 128 * 1024, layouts: Layouts);
                output.WriteLine($"reads {r.Reads}, writes {r.Writes}");
                Assert.Null(r.Error);
                Assert.Equal(600, r.Reads + r.Writes);
                Assert.True(fe.Queues[0].Flush(HangMs).IsOk);
            }

            int code = b.Terminate();
            output.WriteLine($"exit code after SIGTERM: {code}");
            Assert.Equal(0, code);
            byte[] file = File.ReadAllBytes(image);
            Assert.Equal(model.Data.Length, file.Length);
            Assert.True(file.AsSpan().SequenceEqual(model.Data), $"the image differs from the model at byte {file.AsSpan().CommonPrefixLength(model.Data)}");
        }
        finally
        {
            Dump(b);
            File.Delete(image);
        }
    }

    // 32 requests in flight on one queue (with and without EVENT_IDX): completions may come out of
    // order; every one is accounted for and every read matches the model.
    [Theory]
    [BlkBackend(BlkBackendProcess.Ours, true)]
    [BlkBackend(BlkBackendProcess.OursIoUring, true)]
    [BlkBackend(BlkBackendProcess.Ours, false)]
    [BlkBackend(BlkBackendProcess.OursIoUring, false)]
    [BlkBackend(BlkBackendProcess.Qsd, true)]
    [BlkBackend(BlkBackendProcess.Qsd, false)]
    public void QueueDepth32_CompletionsInAnyOrder_MatchTheModel(string backend, bool eventIdx)
    {
        BlkBackendProcess.Require(backend); // before the image is created: a missing program fails (or skips) first
        var model = new BlkModel(RandomImage(16 << 20, 5));
        string image = BlkBackendProcess.CreateImage(model.Data.Length, d => model.Data.CopyTo(d, 0));
        using var b = new BlkBackendProcess(backend, image);
        try
        {
            using VhostUserBlkFrontend fe = b.Connect(new VhostUserBlkOptions { EventIdx = eventIdx });
            Assert.Equal(eventIdx, (fe.Features & VIRTIO_RING_F_EVENT_IDX) != 0);
            BlkWorkload.Result r = BlkWorkload.Run(fe.Queues[0], model, seed: 6, ops: 3000, depth: 32, first: 0, span: model.Sectors, maxBytes: 64 * 1024);
            output.WriteLine($"reads {r.Reads}, writes {r.Writes}, completions out of submission order {r.OutOfOrder}, kicks {fe.Queues[0].Kicks}");
            Assert.Null(r.Error);
            Assert.Equal(3000, r.Reads + r.Writes);
            Assert.Equal(0, fe.Queues[0].InFlight);
        }
        finally
        {
            Dump(b);
            File.Delete(image);
        }
    }

    // Four queues, one thread each: each has a region of its own, and all share a fourth region
    // where conflicting requests are ordered by completion (BlkModel's exclusion table).
    [Theory]
    [BlkBackend(BlkBackendProcess.Ours)]
    [BlkBackend(BlkBackendProcess.OursIoUring)]
    [BlkBackend(BlkBackendProcess.Qsd)]
    public void FourQueues_OneThreadEach_DisjointAndSharedRegions_MatchTheModel(string backend)
    {
        BlkBackendProcess.Require(backend); // before the image is created: a missing program fails (or skips) first
        var model = new BlkModel(RandomImage(16 << 20, 7));
        string image = BlkBackendProcess.CreateImage(model.Data.Length, d => model.Data.CopyTo(d, 0));
        using var b = new BlkBackendProcess(backend, image, numQueues: 4);
        try
        {
            using (VhostUserBlkFrontend fe = b.Connect(new VhostUserBlkOptions { NumQueues = 4 }))
            {
                Assert.Equal(4, fe.Queues.Count);
                int quarter = model.Sectors / 4;
                var results = new BlkWorkload.Result[8];
                var threads = new Thread[4];
                for (int t = 0; t < 4; t++)
                {
                    int me = t;
                    threads[t] = new Thread(() =>
                    {
                        // Own region first (the first three quarters, split four ways), then the shared last quarter.
                        int own = quarter * 3 / 4;
                        results[me] = BlkWorkload.Run(fe.Queues[me], model, 10 + me, 400, 8, me * own, own, 64 * 1024);
                        results[4 + me] = BlkWorkload.Run(fe.Queues[me], model, 20 + me, 400, 8, 3 * quarter, quarter, 32 * 1024);
                    }) { IsBackground = true, Name = $"blk queue {me}" };
                    threads[t].Start();
                }

                foreach (Thread t in threads)
                {
                    Assert.True(t.Join(StressConfig.HangGuard), "a queue thread hung");
                }

                foreach (BlkWorkload.Result r in results)
                {
                    Assert.NotNull(r);
                    Assert.Null(r.Error);
                    Assert.Equal(400, r.Reads + r.Writes);
                }

                Assert.True(fe.Queues[0].Flush(HangMs).IsOk);
            }

            Assert.Equal(0, b.Terminate());
            Assert.True(File.ReadAllBytes(image).AsSpan().SequenceEqual(model.Data), "the image differs from the model");
        }
        finally
        {
            Dump(b);
            File.Delete(image);
        }
    }

    // A read-only export: VIRTIO_BLK_F_RO, reads work, writes/discards/write-zeroes fail, the image is unchanged.
    [Theory]
    [BlkBackend(BlkBackendProcess.Ours)]
    [BlkBackend(BlkBackendProcess.OursIoUring)]
    [BlkBackend(BlkBackendProcess.Qsd)]
    public void ReadOnlyExport_RefusesWrites_ImageUnchanged(string backend)
    {
        BlkBackendProcess.Require(backend); // before the image is created: a missing program fails (or skips) first
        byte[] initial = RandomImage(4 << 20, 8);
        string image = BlkBackendProcess.CreateImage(initial.Length, d => initial.CopyTo(d, 0));
        using var b = new BlkBackendProcess(backend, image, readOnly: true);
        try
        {
            using (VhostUserBlkFrontend fe = b.Connect())
            {
                Assert.True(fe.IsReadOnly);
                VhostUserBlkQueue q = fe.Queues[0];
                var got = new byte[8192];
                Assert.True(q.Read(16, got, default, HangMs).IsOk);
                Assert.Equal(initial.AsSpan(16 * Sector, got.Length).ToArray(), got);
                BlkResult w = q.Write(16, new byte[8192], default, HangMs);
                Assert.Equal(BlkOutcome.Completed, w.Outcome);
                Assert.Equal(VIRTIO_BLK_S_IOERR, w.Status);
                foreach ((string what, BlkResult r) in new[]
                {
                    ("DISCARD", q.Discard(16, 8, HangMs)),
                    ("WRITE_ZEROES", q.WriteZeroes(16, 8, false, HangMs)),
                })
                {
                    output.WriteLine($"read-only {what}: {r}");
                    Assert.Equal(BlkOutcome.Completed, r.Outcome);
                    Assert.NotEqual(VIRTIO_BLK_S_OK, r.Status);
                }

                output.WriteLine($"read-only FLUSH: {q.Flush(HangMs)}");
                Assert.True(q.Read(16, got, default, HangMs).IsOk);
                Assert.Equal(initial.AsSpan(16 * Sector, got.Length).ToArray(), got);
            }

            Assert.Equal(0, b.Terminate());
            Assert.True(File.ReadAllBytes(image).AsSpan().SequenceEqual(initial), "a read-only export changed the image");
        }
        finally
        {
            Dump(b);
            File.Delete(image);
        }
    }

    // Malformed chains: each gets an error status (our back-end; qemu-storage-daemon's answers are
    // recorded, see docs/vhost-user-blk-frontend.md), the device writes nothing outside the writable descriptors
    // (the slot is poisoned around them), and the image is unchanged.
    [Theory]
    [BlkBackend(BlkBackendProcess.Ours)]
    [BlkBackend(BlkBackendProcess.OursIoUring)]
    [BlkBackend(BlkBackendProcess.Qsd)]
    public void MalformedRequests_GetAnErrorStatus_AndTouchNothingOutsideTheirBuffers(string backend)
    {
        BlkBackendProcess.Require(backend); // before the image is created: a missing program fails (or skips) first
        bool strict = backend != BlkBackendProcess.Qsd;
        byte[] initial = RandomImage(1 << 20, 9);
        string image = BlkBackendProcess.CreateImage(initial.Length, d => initial.CopyTo(d, 0));
        ulong capacity = (ulong)initial.Length / Sector;
        const int H = VhostUserBlkQueue.HeaderOffset;
        const int D = VhostUserBlkQueue.DataOffset;
        var cases = new (string Name, uint Type, ulong Sector, BlkRawSegment[] Chain)[]
        {
            ("short header (8 bytes)", VIRTIO_BLK_T_IN, 0, [new(H, 8, false), new(D, 513, true)]),
            ("header split 8+7 bytes", VIRTIO_BLK_T_IN, 0, [new(H, 8, false), new(H + 8, 7, false), new(D, 513, true)]),
            ("read past the end", VIRTIO_BLK_T_IN, capacity, [new(H, 16, false), new(D, 513, true)]),
            ("read straddling the end", VIRTIO_BLK_T_IN, capacity - 1, [new(H, 16, false), new(D, 4097, true)]),
            ("write past the end", VIRTIO_BLK_T_OUT, capacity, [new(H, 16, false), new(D, 512, false), new(D + 512, 1, true)]),
            ("write straddling the end", VIRTIO_BLK_T_OUT, capacity - 2, [new(H, 16, false), new(D, 4096, false), new(D + 4096, 1, true)]),
            ("huge sector", VIRTIO_BLK_T_IN, ulong.MaxValue - 1, [new(H, 16, false), new(D, 513, true)]),
            ("write of 100 bytes (not whole sectors)", VIRTIO_BLK_T_OUT, 0, [new(H, 16, false), new(D, 100, false), new(D + 100, 1, true)]),
            ("read of 100 bytes (not whole sectors)", VIRTIO_BLK_T_IN, 0, [new(H, 16, false), new(D, 101, true)]),
            ("unknown type 0x77", 0x77, 0, [new(H, 16, false), new(D, 1, true)]),
            ("GET_LIFETIME (not offered)", VIRTIO_BLK_T_GET_LIFETIME, 0, [new(H, 16, false), new(D, 17, true)]),
            ("SECURE_ERASE (not offered)", VIRTIO_BLK_T_SECURE_ERASE, 0, [new(H, 16, false), new(D, 16, false), new(D + 16, 1, true)]),
            ("IN with readable data", VIRTIO_BLK_T_IN, 0, [new(H, 16, false), new(D, 512, false), new(D + 512, 1, true)]),
            ("OUT with writable data", VIRTIO_BLK_T_OUT, 0, [new(H, 16, false), new(D, 513, true)]),
            ("header in a writable descriptor", VIRTIO_BLK_T_IN, 0, [new(H, 16, true), new(D, 513, true)]),
            ("DISCARD past the end", VIRTIO_BLK_T_DISCARD, 0, [new(H, 16, false), new(D, 16, false), new(D + 16, 1, true)]),
            ("DISCARD segment of 15 bytes", VIRTIO_BLK_T_DISCARD, 0, [new(H, 16, false), new(D, 15, false), new(D + 15, 1, true)]),
            ("WRITE_ZEROES unknown flag", VIRTIO_BLK_T_WRITE_ZEROES, 0, [new(H, 16, false), new(D, 16, false), new(D + 16, 1, true)]),
            ("no status byte (nothing writable)", VIRTIO_BLK_T_OUT, 0, [new(H, 16, false), new(D, 512, false)]),
        };
        using var b = new BlkBackendProcess(backend, image);
        VhostUserBlkFrontend? fe = null;
        var answers = new List<string>();
        try
        {
            foreach ((string name, uint type, ulong sector, BlkRawSegment[] chain) in cases)
            {
                if (fe is null || fe.Failure is not null)
                {
                    fe?.Dispose();
                    if (b.Process.HasExited)
                    {
                        answers.Add($"(the back-end exited with {b.Process.ExitCode}; restarted)");
                        b.Start();
                    }

                    fe = b.Connect();
                }

                VhostUserBlkQueue q = fe.Queues[0];
                Assert.True(q.TryReserve(out int slot));
                Span<byte> s = q.SlotBytes(slot);
                s.Fill(0xa5);
                new VirtioBlkRequestHeader(type, 0, sector).Write(s[H..]);
                if (type is VIRTIO_BLK_T_DISCARD)
                {
                    new VirtioBlkDiscardSegment(capacity - 4, 8, 0).Write(s[D..]);
                }
                else if (type is VIRTIO_BLK_T_WRITE_ZEROES)
                {
                    new VirtioBlkDiscardSegment(0, 8, 0x80).Write(s[D..]);
                }

                byte[] before = s.ToArray();
                Assert.Equal(RrStatus.Ok, q.SubmitRaw(slot, chain));
                // qemu-storage-daemon drops some malformed chains without an answer: give it a few seconds.
                RrStatus w = q.WaitForCompletions(strict ? HangMs : 3000);
                var done = new BlkCompletion[1];
                string answer;
                if (w == RrStatus.Ok && q.Reap(done) == 1)
                {
                    BlkCompletion c = done[0];
                    answer = c.Outcome == BlkOutcome.Completed ? $"status {c.Status}, used {c.UsedLength}" : c.Outcome.ToString();
                    byte[] after = q.SlotBytes(slot).ToArray();
                    for (int i = 0; i < after.Length; i++)
                    {
                        bool writable = chain.Any(g => g.Writable && i >= g.Offset && i < g.Offset + g.Length);
                        Assert.True(writable || after[i] == before[i], $"{name}: the device wrote byte {i} of the slot, outside the writable descriptors");
                    }

                    if (strict)
                    {
                        Assert.Equal(BlkOutcome.Completed, c.Outcome);
                        if (chain.Any(g => g.Writable))
                        {
                            Assert.True(c.Status is VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP, $"{name}: {answer}");
                        }
                        else
                        {
                            Assert.Equal(0u, c.UsedLength);
                        }
                    }

                    q.Release(slot);
                }
                else
                {
                    answer = fe.Failure is not null ? $"the back-end hung up ({fe.Failure})" : "no answer within 3 s";
                    Assert.False(strict, $"{name}: {answer}");
                }

                answers.Add($"{name}: {answer}");
            }

            fe?.Dispose();
            fe = null;
            foreach (string a in answers)
            {
                output.WriteLine(a);
            }

            if (!b.Process.HasExited)
            {
                Assert.Equal(0, b.Terminate());
            }

            byte[] file = File.ReadAllBytes(image);
            Assert.True(file.AsSpan().SequenceEqual(initial), $"malformed requests changed the image (length {file.Length}, first difference at {file.AsSpan().CommonPrefixLength(initial)})");
        }
        finally
        {
            fe?.Dispose();
            Dump(b);
            File.Delete(image);
        }
    }

    // The back-end killed mid-workload: requests in flight fail with NoDevice (no hang), later ones
    // too; restarted on the same image, every write acknowledged before the last completed FLUSH is
    // there, and every other sector holds either its old content or one of the writes aimed at it.
    [Theory]
    [BlkBackend(BlkBackendProcess.Ours)]
    [BlkBackend(BlkBackendProcess.OursIoUring)]
    [BlkBackend(BlkBackendProcess.Qsd)]
    public void BackendKilledMidWorkload_PendingFailWithNoDevice_FlushedWritesSurviveARestart(string backend)
    {
        BlkBackendProcess.Require(backend); // before the image is created: a missing program fails (or skips) first
        const int Sectors = 8192; // 4 MiB
        var stampOf = new ulong[Sectors];
        var candidates = new HashSet<ulong>[Sectors];
        string image = BlkBackendProcess.CreateImage(Sectors * Sector, d =>
        {
            for (int s = 0; s < Sectors; s++)
            {
                BlkWorkload.Stamp(d.AsSpan(s * Sector, Sector), 0, s);
                candidates[s] = [0];
            }
        });
        using var b = new BlkBackendProcess(backend, image);
        try
        {
            ulong[] durable;
            long noDevice = 0;
            using (VhostUserBlkFrontend fe = b.Connect())
            {
                VhostUserBlkQueue q = fe.Queues[0];
                var rnd = new Random(11);
                ulong stamp = 0;
                int inFlight = 0;
                int flushes = 0;
                durable = (ulong[])stampOf.Clone();
                var pending = new Dictionary<int, (int Sector, int Count, ulong Stamp, bool Flush, ulong[] Snapshot)>();
                var done = new BlkCompletion[64];
                var busy = new bool[Sectors];
                bool stopped = false;
                bool gone = false;
                while (!gone)
                {
                    // Writes of 1 to 64 sectors, one FLUSH every 16 requests; up to 16 in flight.
                    while (inFlight < 16 && q.TryReserve(out int slot))
                    {
                        bool flush = (stamp + 1) % 16 == 0;
                        int count = 1 + rnd.Next(64);
                        int sector = rnd.Next(Sectors - count);
                        if (!flush && Array.IndexOf(busy, true, sector, count) >= 0)
                        {
                            q.Release(slot); // overlaps a write in flight: writes to a sector are ordered by completion
                            break;
                        }

                        stamp++;
                        RrStatus s;
                        if (flush)
                        {
                            // Everything acknowledged before the FLUSH was submitted is durable once it completes.
                            pending[slot] = (0, 0, stamp, true, (ulong[])stampOf.Clone());
                            s = q.Submit(slot, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
                        }
                        else
                        {
                            for (int i = 0; i < count; i++)
                            {
                                BlkWorkload.Stamp(q.Data(slot).Slice(i * Sector, Sector), stamp, sector + i);
                                candidates[sector + i].Add(stamp);
                            }

                            pending[slot] = (sector, count, stamp, false, []);
                            Array.Fill(busy, true, sector, count);
                            s = q.Submit(slot, VIRTIO_BLK_T_OUT, (ulong)sector, count * Sector, 0);
                        }

                        if (s == RrStatus.NoDevice)
                        {
                            pending.Remove(slot);
                            q.Release(slot);
                            gone = true;
                            break;
                        }

                        Assert.Equal(RrStatus.Ok, s);
                        inFlight++;
                    }

                    RrStatus w = q.WaitForCompletions(HangMs);
                    Assert.NotEqual(RrStatus.NotFound, w);
                    int n = q.Reap(done);
                    for (int i = 0; i < n; i++)
                    {
                        BlkCompletion c = done[i];
                        var p = pending[c.Slot];
                        pending.Remove(c.Slot);
                        inFlight--;
                        if (c.Outcome == BlkOutcome.NoDevice)
                        {
                            noDevice++;
                            gone = true;
                        }
                        else
                        {
                            Assert.True(c.IsOk, $"request failed: {c}");
                            if (p.Flush)
                            {
                                durable = p.Snapshot;
                                flushes++;
                            }
                            else
                            {
                                for (int k = 0; k < p.Count; k++)
                                {
                                    stampOf[p.Sector + k] = p.Stamp;
                                }

                                Array.Fill(busy, false, p.Sector, p.Count);
                            }
                        }

                        q.Release(c.Slot);
                    }

                    if (!stopped && flushes >= 8)
                    {
                        // Freeze the back-end with requests in flight, let the queue fill, then kill it.
                        b.Signal(19);
                        stopped = true;
                        // A frozen back-end completes nothing, so a request submitted now is certainly
                        // pending when it dies (whatever finished before the freeze was already reaped
                        // or will be): a FLUSH, which overlaps no write in flight.
                        if (inFlight < 16 && q.TryReserve(out int last))
                        {
                            stamp++;
                            pending[last] = (0, 0, stamp, true, (ulong[])stampOf.Clone());
                            Assert.Equal(RrStatus.Ok, q.Submit(last, VIRTIO_BLK_T_FLUSH, 0, 0, 0));
                            inFlight++;
                        }

                        Assert.True(inFlight > 0);
                        b.KillNow();
                    }
                }

                Assert.True(noDevice > 0, "no request was pending when the back-end died");
                Assert.Empty(pending);
                // Later requests fail at once too.
                Assert.Equal(BlkOutcome.NoDevice, q.Read(0, new byte[Sector], default, HangMs).Outcome);
                Assert.Equal(BlkOutcome.NoDevice, q.Flush(HangMs).Outcome);
                Assert.NotNull(fe.Failure);
                output.WriteLine($"{stamp} requests, {flushes} flushes, {noDevice} failed with NoDevice; failure: {fe.Failure}");
            }

            // Restart on the same image and read everything back through the back-end.
            b.Start();
            using (VhostUserBlkFrontend fe = b.Connect())
            {
                VhostUserBlkQueue q = fe.Queues[0];
                var buf = new byte[64 * Sector];
                for (int s = 0; s < Sectors; s += 64)
                {
                    Assert.True(q.Read((ulong)s, buf, default, HangMs).IsOk);
                    for (int i = 0; i < 64; i++)
                    {
                        int sector = s + i;
                        ulong? got = BlkWorkload.ReadStamp(buf.AsSpan(i * Sector, Sector), sector);
                        Assert.True(got is not null, $"sector {sector} holds neither its old content nor a write aimed at it");
                        Assert.Contains(got!.Value, candidates[sector]);
                        // Flushed: the stamp is the durable one, or a later write to that sector.
                        Assert.True(got.Value >= durable[sector], $"sector {sector}: stamp {got} is older than the flushed {durable[sector]}");
                    }
                }
            }
        }
        finally
        {
            Dump(b);
            File.Delete(image);
        }
    }
}
