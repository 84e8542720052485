using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Win32.SafeHandles;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;
using RefRuntime.Core.Tests.Support;
using Xunit;

namespace RefRuntime.Core.Tests.VirtioBlk;

public sealed unsafe class ThreadPoolBlockIoTests : IDisposable
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), $"rr-tpio-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
    private readonly BlockFile _file;
    private readonly List<nint> _buffers = [];

    public ThreadPoolBlockIoTests()
    {
        File.WriteAllBytes(_path, BlkQueueFixture.Pattern(64 * 1024));
        Assert.Equal(RrStatus.Ok, BlockFile.Open(_path, false, out BlockFile? f, out _));
        _file = f!;
    }

    public void Dispose()
    {
        _file.Dispose();
        foreach (nint b in _buffers)
        {
            NativeMemory.Free((void*)b);
        }

        File.Delete(_path);
    }

    private Span<byte> Buffer(int length, out BlockIoVec vec)
    {
        byte* p = (byte*)NativeMemory.AllocZeroed((nuint)length);
        _buffers.Add((nint)p);
        vec = new BlockIoVec(p, (nuint)length);
        return new Span<byte>(p, length);
    }

    private byte[] FileBytes()
    {
        using var h = new SafeFileHandle(_file.Fd, ownsHandle: false);
        var b = new byte[RandomAccess.GetLength(h)];
        RandomAccess.Read(h, b, 0);
        return b;
    }

    private static List<BlockIoCompletion> WaitFor(IBlockIoEngine e, int count)
    {
        var got = new List<BlockIoCompletion>();
        var buf = new BlockIoCompletion[8];
        var sw = Stopwatch.StartNew();
        while (got.Count < count)
        {
            Assert.True(sw.Elapsed < StressConfig.HangGuard, "completions did not come");
            if (Poller.WaitReadable(e.CompletionFd, 1000) > 0)
            {
                EventFd.Drain(e.CompletionFd);
            }

            int n = e.Reap(buf);
            got.AddRange(buf.AsSpan(0, n).ToArray());
        }

        return got;
    }

    // A write of three buffers and a read into two others move the same bytes; results are byte counts.
    [Fact]
    public void WriteThenRead_ScatterGather_RoundTrips()
    {
        using var e = new ThreadPoolBlockIo(_file.Fd, 8, 2);
        Span<byte> a = Buffer(100, out BlockIoVec va);
        Span<byte> b = Buffer(1, out BlockIoVec vb);
        Span<byte> c = Buffer(411, out BlockIoVec vc);
        a.Fill(1);
        b.Fill(2);
        c.Fill(3);
        Assert.Equal(RrStatus.Ok, e.SubmitWrite(4096, [va, vb, vc], 11));
        Assert.Equal(1, e.InFlight);
        e.Commit();
        Assert.Equal(new BlockIoCompletion(11, 512), Assert.Single(WaitFor(e, 1)));
        Assert.Equal(0, e.InFlight);

        Span<byte> r1 = Buffer(300, out BlockIoVec v1);
        Span<byte> r2 = Buffer(212, out BlockIoVec v2);
        Assert.Equal(RrStatus.Ok, e.SubmitRead(4096, [v1, v2], 12));
        e.Commit();
        Assert.Equal(new BlockIoCompletion(12, 512), Assert.Single(WaitFor(e, 1)));
        var expected = new byte[512];
        expected.AsSpan(0, 100).Fill(1);
        expected[100] = 2;
        expected.AsSpan(101).Fill(3);
        byte[] got = [.. r1.ToArray(), .. r2.ToArray()];
        Assert.Equal(expected, got);
        Assert.Equal(expected, FileBytes().AsSpan(4096, 512).ToArray());
    }

    // A read that meets the end of the file reports the bytes it got (the device turns that into IOERR).
    [Fact]
    public void Read_PastEndOfFile_ReportsShortCount()
    {
        using var e = new ThreadPoolBlockIo(_file.Fd, 4, 1);
        Buffer(1024, out BlockIoVec v);
        Assert.Equal(RrStatus.Ok, e.SubmitRead((64 * 1024) - 512, [v], 1));
        e.Commit();
        Assert.Equal(512, Assert.Single(WaitFor(e, 1)).Result);
    }

    // At capacity a submit answers Busy and changes nothing; reaping makes room.
    [Fact]
    public void Submit_AtCapacity_IsBusy()
    {
        using var e = new ThreadPoolBlockIo(_file.Fd, 2, 1);
        Assert.Equal(RrStatus.Ok, e.SubmitFlush(1));
        Assert.Equal(RrStatus.Ok, e.SubmitFlush(2));
        Assert.Equal(RrStatus.Busy, e.SubmitFlush(3));
        Assert.Equal(2, e.InFlight);
        e.Commit();
        Assert.Equal(2, WaitFor(e, 2).Count);
        Assert.Equal(RrStatus.Ok, e.SubmitFlush(3));
    }

    // Bad arguments are refused before anything is queued.
    [Fact]
    public void Submit_BadArguments_Refused()
    {
        using var e = new ThreadPoolBlockIo(_file.Fd, 2, 1);
        Buffer(8, out BlockIoVec v);
        Assert.Equal(RrStatus.InvalidArgument, e.SubmitRead(0, [], 1));
        Assert.Equal(RrStatus.InvalidArgument, e.SubmitRead(ulong.MaxValue, [v], 1));
        Assert.Equal(RrStatus.InvalidArgument, e.SubmitDiscard(long.MaxValue, 10, 1));
        Assert.Equal(0, e.InFlight);
    }

    // Flush, discard and write-zeroes answer 0 and the ranges read back as zeroes; the bytes around them are kept.
    [Fact]
    public void FlushDiscardWriteZeroes_ZeroTheirRanges()
    {
        using var e = new ThreadPoolBlockIo(_file.Fd, 8, 3);
        byte[] before = FileBytes();
        Assert.Equal(RrStatus.Ok, e.SubmitDiscard(1024, 4096, 1));
        Assert.Equal(RrStatus.Ok, e.SubmitWriteZeroes(16384, 1000, false, 2));
        Assert.Equal(RrStatus.Ok, e.SubmitWriteZeroes(32768, 8192, true, 3));
        Assert.Equal(RrStatus.Ok, e.SubmitFlush(4));
        e.Commit();
        Assert.All(WaitFor(e, 4), c => Assert.Equal(0, c.Result));
        Array.Clear(before, 1024, 4096);
        Array.Clear(before, 16384, 1000);
        Array.Clear(before, 32768, 8192);
        Assert.Equal(before, FileBytes());
    }

    // An error from the kernel comes back as -errno: a write to a descriptor opened read-only is EBADF.
    [Fact]
    public void Write_ReadOnlyDescriptor_ReportsErrno()
    {
        _file.Dispose();
        Assert.Equal(RrStatus.Ok, BlockFile.Open(_path, true, out BlockFile? ro, out _));
        using (ro)
        {
            using var e = new ThreadPoolBlockIo(ro!.Fd, 2, 1);
            Buffer(512, out BlockIoVec v);
            Assert.Equal(RrStatus.Ok, e.SubmitWrite(0, [v], 5));
            e.Commit();
            Assert.Equal(new BlockIoCompletion(5, -9), Assert.Single(WaitFor(e, 1)));
        }
    }

    // Dispose lets every committed I/O finish: all 64 writes are in the file afterwards.
    [Fact]
    public void Dispose_FinishesCommittedIo()
    {
        var e = new ThreadPoolBlockIo(_file.Fd, 64, 4);
        byte[] expected = FileBytes();
        for (int i = 0; i < 64; i++)
        {
            Span<byte> b = Buffer(512, out BlockIoVec v);
            b.Fill((byte)(i + 1));
            b.CopyTo(expected.AsSpan(i * 1024));
            Assert.Equal(RrStatus.Ok, e.SubmitWrite((ulong)i * 1024, [v], (ulong)i));
        }

        e.Commit();
        e.Dispose();
        Assert.Equal(expected, FileBytes());
    }

    // Many completions from several workers all arrive, each once, in whatever order.
    [Fact]
    public void ManyReads_EachCompletesOnce()
    {
        using var e = new ThreadPoolBlockIo(_file.Fd, 128, 4);
        byte[] file = FileBytes();
        var bufs = new List<nint>();
        for (int i = 0; i < 128; i++)
        {
            Buffer(512, out BlockIoVec v);
            bufs.Add((nint)v.Base);
            Assert.Equal(RrStatus.Ok, e.SubmitRead((ulong)(i % 128) * 512, [v], (ulong)i));
            if (i % 16 == 15)
            {
                e.Commit();
            }
        }

        List<BlockIoCompletion> done = WaitFor(e, 128);
        var seen = new HashSet<ulong>();
        foreach (BlockIoCompletion c in done)
        {
            Assert.True(seen.Add(c.Token));
            Assert.Equal(512, c.Result);
            Assert.Equal(file.AsSpan((int)c.Token * 512, 512).ToArray(), new Span<byte>((void*)bufs[(int)c.Token], 512).ToArray());
        }

        Assert.Equal(0, e.InFlight);
    }
}

/// <summary>The engine contract every I/O engine meets (BlockIoEngineContract), run on the thread-pool engine.</summary>
public sealed class ThreadPoolBlockIoContractTests(Xunit.Abstractions.ITestOutputHelper output) : BlockIoEngineContract(output)
{
    /// <summary>Never skipped: the thread-pool engine needs only preadv/pwritev/fdatasync/fallocate.</summary>
    public static string? SkipReason => null;

    /// <inheritdoc/>
    protected override IBlockIoEngine CreateEngine(int fd, int capacity) => new ThreadPoolBlockIo(fd, capacity, 4, "contract-io");
}
