using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Threading;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Tests.Support;
using Xunit;

namespace RefRuntime.Core.Tests.VirtioBlk;

/// <summary>
/// The expected content of an image, and the exclusion table that lets several queues work on
/// overlapping ranges: a write takes its sectors only when no request is in flight on any of
/// them, a read only when no write is, and both give them back at completion. So conflicting
/// requests are ordered by completion and the model (updated when a write completes) always
/// says exactly what a read must return.
/// </summary>
internal sealed class BlkModel
{
    private readonly int[] _readers;
    private readonly bool[] _writer;

    public BlkModel(byte[] initial)
    {
        Data = initial;
        _readers = new int[initial.Length / VirtioBlkConst.SectorSize];
        _writer = new bool[_readers.Length];
    }

    public byte[] Data { get; }

    public int Sectors => _readers.Length;

    public bool TryTake(int sector, int count, bool write)
    {
        lock (_readers)
        {
            for (int s = sector; s < sector + count; s++)
            {
                if (_writer[s] || (write && _readers[s] > 0))
                {
                    return false;
                }
            }

            for (int s = sector; s < sector + count; s++)
            {
                if (write)
                {
                    _writer[s] = true;
                }
                else
                {
                    _readers[s]++;
                }
            }

            return true;
        }
    }

    public void Give(int sector, int count, bool write)
    {
        lock (_readers)
        {
            for (int s = sector; s < sector + count; s++)
            {
                if (write)
                {
                    _writer[s] = false;
                }
                else
                {
                    _readers[s]--;
                }
            }
        }
    }

    /// <summary>The offset of the first byte where <paramref name="got"/> differs from the model at <paramref name="sector"/>, or -1.</summary>
    public int FirstMismatch(int sector, ReadOnlySpan<byte> got)
    {
        ReadOnlySpan<byte> want = Data.AsSpan(sector * VirtioBlkConst.SectorSize, got.Length);
        int common = want.CommonPrefixLength(got);
        return common == got.Length ? -1 : common;
    }
}

/// <summary>Random reads and writes on one queue with up to <c>depth</c> requests in flight, checked against a <see cref="BlkModel"/>.</summary>
internal static class BlkWorkload
{
    public sealed class Result
    {
        public long Reads;
        public long Writes;
        public long OutOfOrder;
        public long NoDevice;
        public string? Error;
    }

    private sealed record Pending(int Sector, int Count, bool Write, ulong Seq);

    /// <summary>
    /// Runs <paramref name="ops"/> requests (or until the back-end is gone) over sectors
    /// [<paramref name="first"/>, +<paramref name="span"/>). Sizes 512 B to <paramref name="maxBytes"/>.
    /// <paramref name="afterCompletion"/> runs after each completion (tests that stop the back-end mid-way).
    /// </summary>
    public static Result Run(VhostUserBlkQueue q, BlkModel model, int seed, int ops, int depth, int first, int span, int maxBytes, Action<Result>? afterCompletion = null, BlkChainLayout[]? layouts = null)
    {
        var rnd = new Random(seed);
        var r = new Result();
        var pending = new Dictionary<int, Pending>();
        var order = new LinkedList<ulong>();
        ulong seq = 0;
        int submitted = 0;
        Span<BlkCompletion> done = stackalloc BlkCompletion[64];
        int maxSectors = maxBytes / VirtioBlkConst.SectorSize;
        bool gone = false;
        while ((submitted < ops && !gone) || pending.Count > 0)
        {
            // Fill the queue.
            int attempts = 0;
            while (!gone && submitted < ops && pending.Count < depth && attempts < 8 && q.TryReserve(out int slot))
            {
                int count = 1 + rnd.Next(Math.Min(maxSectors, span));
                int sector = first + rnd.Next(span - count + 1);
                bool write = rnd.Next(2) == 0;
                if (!model.TryTake(sector, count, write))
                {
                    q.Release(slot);
                    attempts++;
                    continue;
                }

                int bytes = count * VirtioBlkConst.SectorSize;
                if (write)
                {
                    rnd.NextBytes(q.Data(slot)[..bytes]);
                }

                BlkChainLayout layout = layouts is null ? default : layouts[rnd.Next(layouts.Length)];
                uint type = write ? VirtioBlkConst.VIRTIO_BLK_T_OUT : VirtioBlkConst.VIRTIO_BLK_T_IN;
                RrStatus s = q.Submit(slot, type, (ulong)sector, bytes, seq, layout, kick: false);
                if (s == RrStatus.InvalidArgument && layout.SegmentBytes > 0)
                {
                    // More descriptors than seg_max or the ring allows: the same request in one data descriptor.
                    s = q.Submit(slot, type, (ulong)sector, bytes, seq, default, kick: false);
                }

                if (s != RrStatus.Ok)
                {
                    model.Give(sector, count, write);
                    q.Release(slot);
                    if (s == RrStatus.NoSpace)
                    {
                        break; // descriptors are short: reap first
                    }

                    Assert.True(s == RrStatus.NoDevice, $"submit: {s}");
                    gone = true;
                    break;
                }

                pending[slot] = new Pending(sector, count, write, seq);
                order.AddLast(seq);
                seq++;
                submitted++;
            }

            q.Kick();
            if (pending.Count == 0)
            {
                Thread.Yield(); // every range we drew is held by another queue's requests
                continue;
            }

            RrStatus w = q.WaitForCompletions((int)StressConfig.HangGuard.TotalMilliseconds);
            Assert.True(w != RrStatus.NotFound || pending.Count == 0, $"no completion within the hang guard ({pending.Count} in flight)");
            int n = q.Reap(done);
            for (int i = 0; i < n; i++)
            {
                BlkCompletion c = done[i];
                Pending p = pending[c.Slot];
                pending.Remove(c.Slot);
                if (order.First!.Value != p.Seq)
                {
                    r.OutOfOrder++;
                }

                order.Remove(p.Seq);
                int bytes = p.Count * VirtioBlkConst.SectorSize;
                if (c.Outcome == BlkOutcome.NoDevice)
                {
                    r.NoDevice++;
                    gone = true;
                }
                else if (!c.IsOk)
                {
                    r.Error ??= $"{(p.Write ? "write" : "read")} of {p.Count} sectors at {p.Sector}: {c.Outcome} status {c.Status}";
                }
                else if (p.Write)
                {
                    q.Data(c.Slot)[..bytes].CopyTo(model.Data.AsSpan(p.Sector * VirtioBlkConst.SectorSize));
                    r.Writes++;
                }
                else
                {
                    int at = model.FirstMismatch(p.Sector, q.Data(c.Slot)[..bytes]);
                    if (at >= 0)
                    {
                        r.Error ??= $"read of {p.Count} sectors at {p.Sector}: byte {at} differs from the model";
                    }

                    if (c.UsedLength < (uint)bytes)
                    {
                        r.Error ??= $"read of {bytes} bytes: used length {c.UsedLength}";
                    }

                    r.Reads++;
                }

                // A write that failed or whose fate is unknown keeps its sectors taken: the model no longer knows them.
                if (c.IsOk || !p.Write)
                {
                    model.Give(p.Sector, p.Count, p.Write);
                }

                q.Release(c.Slot);
                afterCompletion?.Invoke(r);
            }

            if (n == 0 && w == RrStatus.NoDevice)
            {
                gone = true;
                Assert.Empty(pending);
            }
        }

        return r;
    }

    /// <summary>A sector's content for write <paramref name="stamp"/> (stamp 0: the initial image): the stamp, the sector number, then bytes derived from both.</summary>
    public static void Stamp(Span<byte> sector512, ulong stamp, int sector)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(sector512, stamp);
        BinaryPrimitives.WriteInt32LittleEndian(sector512[8..], sector);
        uint x = (uint)(stamp * 2654435761UL) ^ (uint)sector ^ 0x9e3779b9u;
        for (int i = 12; i < VirtioBlkConst.SectorSize; i++)
        {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            sector512[i] = (byte)x;
        }
    }

    /// <summary>The stamp a sector holds, or null when its content is not a well-formed stamp for that sector.</summary>
    public static ulong? ReadStamp(ReadOnlySpan<byte> sector512, int sector)
    {
        ulong stamp = BinaryPrimitives.ReadUInt64LittleEndian(sector512);
        Span<byte> want = stackalloc byte[VirtioBlkConst.SectorSize];
        Stamp(want, stamp, sector);
        return want.SequenceEqual(sector512) ? stamp : null;
    }

    /// <summary>Waits until <paramref name="condition"/> holds (hang guard).</summary>
    public static void WaitFor(Func<bool> condition, string what)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < StressConfig.HangGuard, $"timed out waiting for {what}");
            Thread.Sleep(5);
        }
    }
}
