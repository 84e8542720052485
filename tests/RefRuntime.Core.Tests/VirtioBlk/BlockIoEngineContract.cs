using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Threading;
using Microsoft.Win32.SafeHandles;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace RefRuntime.Core.Tests.VirtioBlk;

/// <summary>
/// A test of the <see cref="BlockIoEngineContract"/>: run for each concrete engine class, skipped
/// with the class's public static <c>SkipReason</c> when that is not null (xunit 2 decides skips
/// at discovery, so an engine the machine cannot run is reported as skipped, with the reason).
/// </summary>
[XunitTestCaseDiscoverer("RefRuntime.Core.Tests.VirtioBlk.EngineFactDiscoverer", "RefRuntime.Core.Tests")]
[AttributeUsage(AttributeTargets.Method)]
public sealed class EngineFactAttribute : FactAttribute
{
}

/// <summary>Discovers <see cref="EngineFactAttribute"/> tests: a plain fact, or a skipped one with the test class's SkipReason.</summary>
public sealed class EngineFactDiscoverer(IMessageSink diagnosticMessageSink) : IXunitTestCaseDiscoverer
{
    private readonly FactDiscoverer _fact = new(diagnosticMessageSink);

    public IEnumerable<IXunitTestCase> Discover(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
    {
        Type? type = testMethod.TestClass.Class.ToRuntimeType();
        PropertyInfo? property = type?.GetProperty("SkipReason", BindingFlags.Public | BindingFlags.Static | BindingFlags.FlattenHierarchy);
        if (property?.GetValue(null) is string reason)
        {
            return
            [
                new XunitSkippedDataRowTestCase(
                    diagnosticMessageSink,
                    discoveryOptions.MethodDisplayOrDefault(),
                    discoveryOptions.MethodDisplayOptionsOrDefault(),
                    testMethod,
                    reason),
            ];
        }

        return _fact.Discover(discoveryOptions, testMethod, factAttribute);
    }
}

/// <summary>
/// The behaviour every <see cref="IBlockIoEngine"/> owes the device, run against temporary files
/// on the temp directory and on /dev/shm (tmpfs: hole punching but no ZERO_RANGE). A concrete
/// class supplies the engine through <see cref="CreateEngine"/> and may declare a public static
/// string <c>SkipReason</c> (see <see cref="EngineFactAttribute"/>).
/// </summary>
public abstract unsafe class BlockIoEngineContract : IDisposable
{
    /// <summary>Hang guard for waiting on completions; never a speed requirement.</summary>
    protected const int HangGuardMs = 120_000;

    private readonly List<(SafeFileHandle Handle, string Path)> _files = [];
    private readonly List<nint> _buffers = [];

    protected BlockIoEngineContract(ITestOutputHelper output) => Output = output;

    protected ITestOutputHelper Output { get; }

    /// <summary>An engine over <paramref name="fd"/> with room for at least <paramref name="capacity"/> requests.</summary>
    protected abstract IBlockIoEngine CreateEngine(int fd, int capacity);

    /// <summary>Directories the file tests run in: the temp directory, and /dev/shm where it exists.</summary>
    protected static IEnumerable<string> Directories()
    {
        yield return Path.GetTempPath();
        if (Directory.Exists("/dev/shm"))
        {
            yield return "/dev/shm";
        }
    }

    public void Dispose()
    {
        foreach ((SafeFileHandle handle, string path) in _files)
        {
            handle.Dispose();
            try
            {
                File.Delete(path);
            }
            catch (IOException)
            {
            }
        }

        foreach (nint p in _buffers)
        {
            // SAFETY: allocated by Buffer with AlignedAlloc; every engine using it was disposed by its test.
            NativeMemory.AlignedFree((void*)p);
        }

        GC.SuppressFinalize(this);
    }

    // ---- helpers ----

    /// <summary>A new file of <paramref name="size"/> bytes filled from <paramref name="seed"/> (0: left sparse).</summary>
    protected (SafeFileHandle Handle, int Fd, string Path) NewFile(string directory, long size, int seed)
    {
        string path = Path.Combine(directory, $"rr-blkio-{Guid.NewGuid():N}.img");
        SafeFileHandle h = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
        _files.Add((h, path));
        RandomAccess.SetLength(h, size);
        if (seed != 0)
        {
            RandomAccess.Write(h, Pattern(seed, (int)size), 0);
        }

        return (h, (int)h.DangerousGetHandle(), path);
    }

    /// <summary>Another descriptor of <paramref name="path"/> opened read-only.</summary>
    protected (SafeFileHandle Handle, int Fd) OpenReadOnly(string path)
    {
        SafeFileHandle h = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        _files.Add((h, path));
        return (h, (int)h.DangerousGetHandle());
    }

    /// <summary>Native memory standing in for guest memory (page-aligned, filled with <paramref name="fill"/>), freed after the test.</summary>
    protected byte* Buffer(int length, byte fill)
    {
        // SAFETY: a fresh allocation; freed in Dispose.
        byte* p = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), 4096);
        _buffers.Add((nint)p);
        new Span<byte>(p, length).Fill(fill);
        return p;
    }

    protected static byte[] Pattern(int seed, int length)
    {
        byte[] b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    protected static byte[] ReadFile(SafeFileHandle h, long offset, int length)
    {
        byte[] b = new byte[length];
        int n = RandomAccess.Read(h, b, offset);
        Assert.Equal(length, n);
        return b;
    }

    /// <summary>Reaps until <paramref name="expected"/> completions arrived (waiting on CompletionFd, under the hang guard); checks no token repeats and nothing more arrives.</summary>
    protected static List<BlockIoCompletion> Complete(IBlockIoEngine engine, int expected, int reapBatch = 16)
    {
        List<BlockIoCompletion> got = [];
        BlockIoCompletion[] batch = new BlockIoCompletion[reapBatch];
        long deadline = Environment.TickCount64 + HangGuardMs;
        while (got.Count < expected)
        {
            int n = engine.Reap(batch);
            got.AddRange(batch.AsSpan(0, n).ToArray());
            if (n > 0)
            {
                continue;
            }

            Assert.True(Environment.TickCount64 < deadline, $"hang guard: {got.Count} of {expected} completions after {HangGuardMs} ms");
            int r = Poller.WaitReadable(engine.CompletionFd, 1000);
            Assert.True(r >= 0, "poll on CompletionFd failed");
            if (r > 0)
            {
                EventFd.Drain(engine.CompletionFd);
            }
        }

        Assert.Equal(expected, got.Count);
        Assert.Equal(expected, got.Select(c => c.Token).Distinct().Count());
        Assert.Equal(0, engine.Reap(batch));
        Assert.Equal(0, engine.InFlight);
        return got;
    }

    protected static long Single(IBlockIoEngine engine, ulong token)
    {
        List<BlockIoCompletion> c = Complete(engine, 1);
        Assert.Equal(token, c[0].Token);
        return c[0].Result;
    }

    // ---- the contract ----

    // 64 buffers of odd sizes written at an odd offset, read back through a different split of 100 buffers with guard bytes between them.
    [EngineFact]
    public void ReadWrite_ManyIovecs_RoundTripByteForByte()
    {
        foreach (string dir in Directories())
        {
            (SafeFileHandle h, int fd, _) = NewFile(dir, 4 << 20, seed: 0);
            using IBlockIoEngine engine = CreateEngine(fd, 8);
            const long Offset = 12345;

            int[] sizes = Enumerable.Range(0, 64).Select(i => 1 + (i * 7919 % 9000)).ToArray();
            int total = sizes.Sum();
            byte[] data = Pattern(1, total);
            byte* src = Buffer(total, 0);
            data.CopyTo(new Span<byte>(src, total));
            BlockIoVec[] wiov = new BlockIoVec[sizes.Length];
            int at = 0;
            for (int i = 0; i < sizes.Length; i++)
            {
                wiov[i] = new BlockIoVec(src + at, (nuint)sizes[i]);
                at += sizes[i];
            }

            Assert.Equal(RrStatus.Ok, engine.SubmitWrite(Offset, wiov, 7));
            engine.Commit();
            Assert.Equal(total, Single(engine, 7));
            Assert.Equal(data, ReadFile(h, Offset, total));

            // Read back: 100 pieces, each followed by 16 guard bytes that must survive.
            const int Pieces = 100, Guard = 16;
            byte* dst = Buffer(total + (Pieces * Guard), 0x5A);
            BlockIoVec[] riov = new BlockIoVec[Pieces];
            int[] lens = new int[Pieces];
            int pos = 0;
            for (int i = 0; i < Pieces; i++)
            {
                lens[i] = (total / Pieces) + (i < total % Pieces ? 1 : 0);
                riov[i] = new BlockIoVec(dst + pos, (nuint)lens[i]);
                new Span<byte>(dst + pos, lens[i]).Fill(0xCC);
                pos += lens[i] + Guard;
            }

            Assert.Equal(RrStatus.Ok, engine.SubmitRead(Offset, riov, 8));
            engine.Commit();
            Assert.Equal(total, Single(engine, 8));
            pos = 0;
            int d = 0;
            for (int i = 0; i < Pieces; i++)
            {
                Assert.True(new ReadOnlySpan<byte>(dst + pos, lens[i]).SequenceEqual(data.AsSpan(d, lens[i])), $"{dir}: piece {i} differs");
                Assert.True(new ReadOnlySpan<byte>(dst + pos + lens[i], Guard).IndexOfAnyExcept((byte)0x5A) < 0, $"{dir}: guard after piece {i} overwritten");
                pos += lens[i] + Guard;
                d += lens[i];
            }
        }
    }

    // 48 writes then 48 reads, each batch committed at once: every token completes exactly once, with the right result and data.
    [EngineFact]
    public void InFlight_FortyEightRequests_EachCompletesOnceInAnyOrder()
    {
        const int N = 48, Len = 64 * 1024;
        foreach (string dir in Directories())
        {
            (SafeFileHandle h, int fd, _) = NewFile(dir, (long)N * Len * 2, seed: 0);
            using IBlockIoEngine engine = CreateEngine(fd, 64);
            Assert.True(engine.Capacity >= N, $"capacity {engine.Capacity} < {N}");

            byte* src = Buffer(N * Len, 0);
            for (int i = 0; i < N; i++)
            {
                Pattern(100 + i, Len).CopyTo(new Span<byte>(src + (i * Len), Len));
                // Every other region, so neighbouring writes are not contiguous in the file.
                Assert.Equal(RrStatus.Ok, engine.SubmitWrite((ulong)i * 2 * Len, [new BlockIoVec(src + (i * Len), Len)], 1000 + (ulong)i));
            }

            Assert.Equal(N, engine.InFlight);
            engine.Commit();
            List<BlockIoCompletion> writes = Complete(engine, N);
            Assert.Equal(Enumerable.Range(1000, N).Select(i => (ulong)i).ToHashSet(), writes.Select(c => c.Token).ToHashSet());
            Assert.All(writes, c => Assert.Equal(Len, c.Result));

            byte* dst = Buffer(N * Len, 0xCC);
            for (int i = N - 1; i >= 0; i--)
            {
                Assert.Equal(RrStatus.Ok, engine.SubmitRead((ulong)i * 2 * Len, [new BlockIoVec(dst + (i * Len), Len)], 2000 + (ulong)i));
            }

            engine.Commit();
            List<BlockIoCompletion> reads = Complete(engine, N, reapBatch: 5);
            Assert.All(reads, c => Assert.Equal(Len, c.Result));
            Output.WriteLine($"{dir}: read completion order {string.Join(",", reads.Select(c => c.Token - 2000))}");
            for (int i = 0; i < N; i++)
            {
                Assert.True(new ReadOnlySpan<byte>(dst + (i * Len), Len).SequenceEqual(Pattern(100 + i, Len)), $"{dir}: region {i} differs");
                Assert.Equal(Pattern(100 + i, Len), ReadFile(h, (long)i * 2 * Len, Len));
            }
        }
    }

    // O_DIRECT (no page cache: completions come from the block layer, not inside the submitting call): aligned writes and reads round-trip.
    [EngineFact]
    public void ReadWrite_DirectIo_RoundTrip()
    {
        const int N = 32, Len = 4096;
        (_, int fd, string path) = NewFile(Path.GetTempPath(), (long)N * Len * 2, seed: 0);
        int oDirect = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x10000 : 0x4000;
        int flags = Libc.fcntl(fd, Libc.F_GETFL, 0);
        if (flags < 0 || Libc.fcntl(fd, Libc.F_SETFL, flags | oDirect) < 0)
        {
            Output.WriteLine($"{Path.GetTempPath()}: O_DIRECT refused ({OsError.Describe(Libc.Errno)}); direct I/O not exercised here");
            return;
        }

        using IBlockIoEngine engine = CreateEngine(fd, 64);
        byte* src = Buffer(N * Len, 0);
        Pattern(40, N * Len).CopyTo(new Span<byte>(src, N * Len));
        for (int i = 0; i < N; i++)
        {
            Assert.Equal(RrStatus.Ok, engine.SubmitWrite((ulong)i * 2 * Len, [new BlockIoVec(src + (i * Len), Len)], (ulong)i));
        }

        engine.Commit();
        Assert.All(Complete(engine, N), c => Assert.Equal(Len, c.Result));
        byte* dst = Buffer(N * Len, 0xCC);
        for (int i = 0; i < N; i++)
        {
            Assert.Equal(RrStatus.Ok, engine.SubmitRead((ulong)i * 2 * Len, [new BlockIoVec(dst + (i * Len), Len / 2), new BlockIoVec(dst + (i * Len) + (Len / 2), Len / 2)], 100 + (ulong)i));
        }

        engine.Commit();
        List<BlockIoCompletion> reads = Complete(engine, N);
        Assert.All(reads, c => Assert.Equal(Len, c.Result));
        Output.WriteLine($"O_DIRECT read completion order {string.Join(",", reads.Select(c => c.Token - 100))}");
        Assert.True(new ReadOnlySpan<byte>(src, N * Len).SequenceEqual(new ReadOnlySpan<byte>(dst, N * Len)));
        Assert.Equal(new ReadOnlySpan<byte>(src, Len).ToArray(), ReadFile(OpenReadOnly(path).Handle, 0, Len));
    }

    // A flush submitted ahead of cached reads: every request completes once, whatever order the kernel finishes them in.
    [EngineFact]
    public void Flush_AheadOfReads_AllCompleteOnce()
    {
        (_, int fd, _) = NewFile(Path.GetTempPath(), 65536, seed: 41);
        using IBlockIoEngine engine = CreateEngine(fd, 16);
        byte* b = Buffer(65536, 0);
        Assert.Equal(RrStatus.Ok, engine.SubmitFlush(99));
        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(RrStatus.Ok, engine.SubmitRead((ulong)i * 8192, [new BlockIoVec(b + (i * 8192), 8192)], (ulong)i));
        }

        engine.Commit();
        List<BlockIoCompletion> all = Complete(engine, 9);
        Output.WriteLine($"completion order {string.Join(",", all.Select(c => c.Token))}");
        Assert.All(all, c => Assert.Equal(c.Token == 99 ? 0 : 8192, c.Result));
        Assert.True(new ReadOnlySpan<byte>(b, 65536).SequenceEqual(Pattern(41, 65536)));
    }

    // A flush after writes completes with 0, and the data is in the file.
    [EngineFact]
    public void Flush_AfterWrites_CompletesWithZero()
    {
        foreach (string dir in Directories())
        {
            (SafeFileHandle h, int fd, _) = NewFile(dir, 1 << 20, seed: 0);
            using IBlockIoEngine engine = CreateEngine(fd, 4);
            byte* src = Buffer(8192, 0x42);
            Assert.Equal(RrStatus.Ok, engine.SubmitWrite(4096, [new BlockIoVec(src, 8192)], 1));
            engine.Commit();
            Assert.Equal(8192, Single(engine, 1));
            Assert.Equal(RrStatus.Ok, engine.SubmitFlush(2));
            engine.Commit();
            Assert.Equal(0, Single(engine, 2));
            Assert.True(ReadFile(h, 4096, 8192).All(b => b == 0x42));
        }
    }

    // Discard of a range inside written data: reads of it return zeroes, the rest and the size are unchanged.
    [EngineFact]
    public void Discard_WrittenRange_ReadsBackZeroes()
    {
        const int Size = 1 << 20, Off = 256 * 1024, Len = 256 * 1024;
        foreach (string dir in Directories())
        {
            (SafeFileHandle h, int fd, _) = NewFile(dir, Size, seed: 3);
            using IBlockIoEngine engine = CreateEngine(fd, 4);
            Assert.Equal(RrStatus.Ok, engine.SubmitDiscard(Off, Len, 5));
            engine.Commit();
            long r = Single(engine, 5);
            if (r == -95)
            {
                Output.WriteLine($"{dir}: the file system cannot punch holes (EOPNOTSUPP); discard's read-back assertion skipped there");
                continue;
            }

            Assert.Equal(0, r);
            Assert.Equal(Size, RandomAccess.GetLength(h));
            byte[] all = ReadFile(h, 0, Size);
            byte[] expect = Pattern(3, Size);
            Array.Clear(expect, Off, Len);
            Assert.Equal(expect, all);
        }
    }

    // Write-zeroes of an unaligned range (with and without unmapping): zeroes there, the rest and the size unchanged.
    [EngineFact]
    public void WriteZeroes_UnalignedRange_ReadsBackZeroes()
    {
        const int Size = 1 << 20, Off = 1000, Len = 200_000;
        foreach (string dir in Directories())
        {
            foreach (bool mayUnmap in new[] { false, true })
            {
                (SafeFileHandle h, int fd, _) = NewFile(dir, Size, seed: 4);
                using IBlockIoEngine engine = CreateEngine(fd, 4);
                Assert.Equal(RrStatus.Ok, engine.SubmitWriteZeroes(Off, Len, mayUnmap, 6));
                engine.Commit();
                Assert.Equal(0, Single(engine, 6));
                Assert.Equal(Size, RandomAccess.GetLength(h));
                byte[] expect = Pattern(4, Size);
                Array.Clear(expect, Off, Len);
                Assert.True(expect.AsSpan().SequenceEqual(ReadFile(h, 0, Size)), $"{dir} mayUnmap={mayUnmap}: contents differ");
            }
        }
    }

    // A write-zeroes of several MiB (many zero-buffer writes where the file system has no ZERO_RANGE) beside other requests.
    [EngineFact]
    public void WriteZeroes_LargeRangeBesideOtherIo_AllComplete()
    {
        const int Size = 8 << 20, Off = 4096 + 17, Len = (5 << 20) + 333;
        foreach (string dir in Directories())
        {
            (SafeFileHandle h, int fd, _) = NewFile(dir, Size, seed: 5);
            using IBlockIoEngine engine = CreateEngine(fd, 8);
            byte* dst = Buffer(4096, 0xCC);
            Assert.Equal(RrStatus.Ok, engine.SubmitWriteZeroes(Off, Len, false, 1));
            Assert.Equal(RrStatus.Ok, engine.SubmitRead(Size - 4096, [new BlockIoVec(dst, 4096)], 2));
            Assert.Equal(RrStatus.Ok, engine.SubmitFlush(3));
            engine.Commit();
            Dictionary<ulong, long> r = Complete(engine, 3).ToDictionary(c => c.Token, c => c.Result);
            Assert.Equal(0, r[1]);
            Assert.Equal(4096, r[2]);
            Assert.Equal(0, r[3]);
            byte[] expect = Pattern(5, Size);
            Assert.True(new ReadOnlySpan<byte>(dst, 4096).SequenceEqual(expect.AsSpan(Size - 4096)));
            Array.Clear(expect, Off, Len);
            Assert.True(expect.AsSpan().SequenceEqual(ReadFile(h, 0, Size)), $"{dir}: contents differ");
        }
    }

    // Capacity requests are accepted; one more answers Busy; after reaping there is room again.
    [EngineFact]
    public void Submit_AtCapacity_AnswersBusy()
    {
        (_, int fd, _) = NewFile(Path.GetTempPath(), 4096, seed: 0);
        using IBlockIoEngine engine = CreateEngine(fd, 4);
        int cap = engine.Capacity;
        Assert.True(cap >= 4);
        for (int i = 0; i < cap; i++)
        {
            Assert.Equal(RrStatus.Ok, engine.SubmitFlush((ulong)i));
        }

        byte* b = Buffer(512, 0);
        Assert.Equal(RrStatus.Busy, engine.SubmitFlush(999));
        Assert.Equal(RrStatus.Busy, engine.SubmitRead(0, [new BlockIoVec(b, 512)], 999));
        Assert.Equal(RrStatus.Busy, engine.SubmitDiscard(0, 512, 999));
        Assert.Equal(cap, engine.InFlight);
        engine.Commit();
        Assert.All(Complete(engine, cap), c => Assert.Equal(0, c.Result));
        Assert.Equal(RrStatus.Ok, engine.SubmitRead(0, [new BlockIoVec(b, 512)], 1000));
        engine.Commit();
        Assert.Equal(512, Single(engine, 1000));
    }

    // CompletionFd is quiet before any I/O and becomes readable once a committed request is done.
    [EngineFact]
    public void CompletionFd_AfterCommit_BecomesReadable()
    {
        (_, int fd, _) = NewFile(Path.GetTempPath(), 8192, seed: 9);
        using IBlockIoEngine engine = CreateEngine(fd, 4);
        Assert.Equal(0, Poller.WaitReadable(engine.CompletionFd, 0));
        byte* b = Buffer(8192, 0);
        Assert.Equal(RrStatus.Ok, engine.SubmitRead(0, [new BlockIoVec(b, 8192)], 77));
        engine.Commit();
        Assert.Equal(1, Poller.WaitReadable(engine.CompletionFd, HangGuardMs));
        Assert.NotEqual(0UL, EventFd.Drain(engine.CompletionFd));
        Span<BlockIoCompletion> c = stackalloc BlockIoCompletion[4];
        Assert.Equal(1, engine.Reap(c));
        Assert.Equal(new BlockIoCompletion(77, 8192), c[0]);
        Assert.True(new ReadOnlySpan<byte>(b, 8192).SequenceEqual(Pattern(9, 8192)));
    }

    // Disposing with reads in flight returns only when none can still write into the buffers.
    [EngineFact]
    public void Dispose_WithReadsInFlight_NoWriteAfterReturn()
    {
        const int N = 32, Len = 256 * 1024;
        (_, int fd, _) = NewFile(Path.GetTempPath(), (long)N * Len, seed: 11);
        byte[] file = Pattern(11, N * Len);
        byte* dst = Buffer(N * Len, 0xEE);
        IBlockIoEngine engine = CreateEngine(fd, 64);
        for (int i = 0; i < N; i++)
        {
            Assert.Equal(RrStatus.Ok, engine.SubmitRead((ulong)i * Len, [new BlockIoVec(dst + (i * Len), Len)], (ulong)i));
        }

        engine.Commit();
        engine.Dispose();
        engine.Dispose(); // twice is harmless

        for (int i = 0; i < N; i++)
        {
            // Each read either ran to the end or never started.
            ReadOnlySpan<byte> got = new(dst + (i * Len), Len);
            bool landed = got.SequenceEqual(file.AsSpan(i * Len, Len));
            Assert.True(landed || got.IndexOfAnyExcept((byte)0xEE) < 0, $"read {i} was cut short by Dispose");
        }

        new Span<byte>(dst, N * Len).Fill(0xAB);
        Thread.Sleep(100);
        Assert.True(new ReadOnlySpan<byte>(dst, N * Len).IndexOfAnyExcept((byte)0xAB) < 0, "a read wrote into the buffers after Dispose returned");
    }

    // A read across the end of the file reports the short count and leaves the rest of the buffers alone; a read past the end reports 0.
    [EngineFact]
    public void Read_AcrossEndOfFile_ReportsShortCount()
    {
        foreach (string dir in Directories())
        {
            (_, int fd, _) = NewFile(dir, 10_000, seed: 12);
            using IBlockIoEngine engine = CreateEngine(fd, 4);
            byte* b = Buffer(16384, 0xCC);
            BlockIoVec[] iov = [new(b, 4096), new(b + 4096, 8192), new(b + 12288, 4096)];
            Assert.Equal(RrStatus.Ok, engine.SubmitRead(4096, iov, 1));
            engine.Commit();
            Assert.Equal(10_000 - 4096, Single(engine, 1));
            Assert.True(new ReadOnlySpan<byte>(b, 10_000 - 4096).SequenceEqual(Pattern(12, 10_000).AsSpan(4096)));
            Assert.True(new ReadOnlySpan<byte>(b + (10_000 - 4096), 16384 - (10_000 - 4096)).IndexOfAnyExcept((byte)0xCC) < 0);

            Assert.Equal(RrStatus.Ok, engine.SubmitRead(20_000, iov, 2));
            engine.Commit();
            Assert.Equal(0, Single(engine, 2));
        }
    }

    // The kernel's error comes back as -errno: a write through a read-only descriptor is -EBADF.
    [EngineFact]
    public void Write_ReadOnlyDescriptor_CompletesWithEbadf()
    {
        (SafeFileHandle h, _, string path) = NewFile(Path.GetTempPath(), 4096, seed: 13);
        (_, int ro) = OpenReadOnly(path);
        using IBlockIoEngine engine = CreateEngine(ro, 4);
        byte* b = Buffer(512, 1);
        Assert.Equal(RrStatus.Ok, engine.SubmitWrite(0, [new BlockIoVec(b, 512)], 1));
        engine.Commit();
        Assert.Equal(-9, Single(engine, 1));
        Assert.Equal(Pattern(13, 4096), ReadFile(h, 0, 4096));
    }

    // Reaping one completion at a time loses none.
    [EngineFact]
    public void Reap_OneEntrySpan_DeliversEveryCompletion()
    {
        (_, int fd, _) = NewFile(Path.GetTempPath(), 4096, seed: 0);
        using IBlockIoEngine engine = CreateEngine(fd, 16);
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(RrStatus.Ok, engine.SubmitFlush((ulong)i));
        }

        engine.Commit();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (ulong)i).ToHashSet(), Complete(engine, 10, reapBatch: 1).Select(c => c.Token).ToHashSet());
    }

    // Malformed submissions are refused without using a slot.
    [EngineFact]
    public void Submit_BadArguments_InvalidArgument()
    {
        (_, int fd, _) = NewFile(Path.GetTempPath(), 4096, seed: 0);
        using IBlockIoEngine engine = CreateEngine(fd, 4);
        byte* b = Buffer(512, 0);
        Assert.Equal(RrStatus.InvalidArgument, engine.SubmitRead(0, [], 1));
        Assert.Equal(RrStatus.InvalidArgument, engine.SubmitWrite((ulong)long.MaxValue + 1, [new BlockIoVec(b, 512)], 1));
        Assert.Equal(RrStatus.InvalidArgument, engine.SubmitRead((ulong)long.MaxValue - 100, [new BlockIoVec(b, 512)], 1));
        Assert.Equal(RrStatus.InvalidArgument, engine.SubmitDiscard((ulong)long.MaxValue, 2, 1));
        Assert.Equal(RrStatus.InvalidArgument, engine.SubmitWriteZeroes(ulong.MaxValue, 1, false, 1));
        Assert.Equal(0, engine.InFlight);
    }
}
