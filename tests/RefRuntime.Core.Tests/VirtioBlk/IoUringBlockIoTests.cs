using System;
using System.IO;
using System.IO.Pipes;
using System.Linq;
using Microsoft.Win32.SafeHandles;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;
using Xunit;
using Xunit.Abstractions;

namespace RefRuntime.Core.Tests.VirtioBlk;

/// <summary>The <see cref="BlockIoEngineContract"/> and io_uring specifics for <see cref="IoUringBlockIo"/>.</summary>
public unsafe class IoUringBlockIoTests(ITestOutputHelper output) : BlockIoEngineContract(output)
{
    private static readonly Lazy<string?> s_skipReason = new(Probe);

    /// <summary>Null where io_uring works here; otherwise why every test of this class is skipped.</summary>
    public static string? SkipReason => s_skipReason.Value;

    protected virtual bool SeparateMappings => false;

    // A pipe (read end, write end): the kernel answers reads and writes on it short, which files rarely do.
    // The offsets of the continued requests are ignored by pipes (sockets refuse them with ESPIPE).
    private static (int Read, int Write) Pipe(out AnonymousPipeServerStream writer, out AnonymousPipeClientStream reader)
    {
        writer = new AnonymousPipeServerStream(PipeDirection.Out);
        reader = new AnonymousPipeClientStream(PipeDirection.In, writer.ClientSafePipeHandle);
        return ((int)reader.SafePipeHandle.DangerousGetHandle(), (int)writer.SafePipeHandle.DangerousGetHandle());
    }

    protected override IBlockIoEngine CreateEngine(int fd, int capacity)
    {
        Assert.True(IoUringBlockIo.TryCreate(fd, capacity, SeparateMappings, out IoUringBlockIo? engine, out string? error), error);
        return engine!;
    }

    private static string? Probe()
    {
        using SafeFileHandle h = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.Read);
        if (!IoUringBlockIo.TryCreate((int)h.DangerousGetHandle(), 1, out IoUringBlockIo? engine, out string? error))
        {
            return $"io_uring unavailable on this machine: {error}";
        }

        engine!.Dispose();
        return null;
    }

    // Bad descriptor or ring size: false with a reason, nothing created.
    [EngineFact]
    public void TryCreate_BadArguments_FalseWithReason()
    {
        Assert.False(IoUringBlockIo.TryCreate(-1, 8, out IoUringBlockIo? e, out string? error));
        Assert.Null(e);
        Assert.Contains("descriptor", error);
        Assert.False(IoUringBlockIo.TryCreate(0, 0, out e, out error));
        Assert.Contains("entries", error);
        Assert.False(IoUringBlockIo.TryCreate(0, IoUringBlockIo.MaxEntries + 1, out e, out error));
        Assert.Contains("entries", error);
    }

    // The kernel rounds the ring up to a power of two; capacity is what it gave.
    [EngineFact]
    public void TryCreate_TwentyEntries_CapacityThirtyTwo()
    {
        (_, int fd, _) = NewFile(Path.GetTempPath(), 4096, seed: 0);
        using IBlockIoEngine engine = CreateEngine(fd, 20);
        Assert.Equal("io_uring", engine.Name);
        Assert.Equal(32, engine.Capacity);
        Assert.Equal(0, engine.InFlight);
        Assert.True(engine.CompletionFd >= 0);
    }

    // Dispose submits requests that were never committed and waits for them: every read lands.
    [EngineFact]
    public void Dispose_UncommittedAndCommittedReads_AllLand()
    {
        const int N = 16, Len = 64 * 1024;
        (_, int fd, _) = NewFile(Path.GetTempPath(), (long)N * Len, seed: 21);
        byte* dst = Buffer(N * Len, 0xEE);
        IBlockIoEngine engine = CreateEngine(fd, 32);
        for (int i = 0; i < N; i++)
        {
            Assert.Equal(RrStatus.Ok, engine.SubmitRead((ulong)i * Len, [new BlockIoVec(dst + (i * Len), Len)], (ulong)i));
            if (i == N / 2)
            {
                engine.Commit();
            }
        }

        engine.Dispose();
        Assert.True(new ReadOnlySpan<byte>(dst, N * Len).SequenceEqual(Pattern(21, N * Len)));
        Assert.Equal(RrStatus.InvalidArgument, engine.SubmitFlush(1));
        Assert.Equal(0, engine.Reap(new BlockIoCompletion[1]));
    }

    // Zero-length discard and write-zeroes are no-ops that complete with 0 (fallocate itself would say EINVAL).
    [EngineFact]
    public void DiscardAndWriteZeroes_ZeroLength_CompleteWithZero()
    {
        (_, int fd, _) = NewFile(Path.GetTempPath(), 4096, seed: 0);
        using IBlockIoEngine engine = CreateEngine(fd, 4);
        Assert.Equal(RrStatus.Ok, engine.SubmitDiscard(0, 0, 1));
        Assert.Equal(RrStatus.Ok, engine.SubmitWriteZeroes(512, 0, true, 2));
        engine.Commit();
        Assert.All(Complete(engine, 2), c => Assert.Equal(0, c.Result));
    }

    // More iovecs than the kernel accepts (UIO_MAXIOV) is refused at submit.
    [EngineFact]
    public void Submit_TooManyIovecs_InvalidArgument()
    {
        (_, int fd, _) = NewFile(Path.GetTempPath(), 4096, seed: 0);
        using IBlockIoEngine engine = CreateEngine(fd, 4);
        byte* b = Buffer(1, 0);
        BlockIoVec[] iov = Enumerable.Repeat(new BlockIoVec(b, 1), IoUringBlockIo.MaxIovecs + 1).ToArray();
        Assert.Equal(RrStatus.InvalidArgument, engine.SubmitRead(0, iov, 1));
        Assert.Equal(RrStatus.Ok, engine.SubmitRead(0, iov.AsSpan(0, IoUringBlockIo.MaxIovecs), 2));
        engine.Commit();
        Assert.Equal(IoUringBlockIo.MaxIovecs, Single(engine, 2));
    }

    // Records whether a read of cached pages completes inside io_uring_enter (CompletionFd readable at once); asserts only the data.
    [EngineFact]
    public void Commit_CachedRead_ReportsInlineCompletion()
    {
        (SafeFileHandle h, int fd, _) = NewFile(Path.GetTempPath(), 65536, seed: 22);
        ReadFile(h, 0, 65536); // pages now cached
        using IBlockIoEngine engine = CreateEngine(fd, 4);
        byte* b = Buffer(65536, 0);
        Assert.Equal(RrStatus.Ok, engine.SubmitRead(0, [new BlockIoVec(b, 65536)], 1));
        engine.Commit();
        bool inline = Poller.WaitReadable(engine.CompletionFd, 0) == 1;
        Output.WriteLine($"cached buffered READV completed inside io_uring_enter: {inline}");
        Assert.Equal(65536, Single(engine, 1));
        Assert.True(new ReadOnlySpan<byte>(b, 65536).SequenceEqual(Pattern(22, 65536)));
    }

    // A read the kernel answers short mid-request (a pipe with 100 of 300 bytes in it) continues with the rest instead of completing.
    [EngineFact]
    public void Read_ShortTransfer_ContinuesWithRemainder()
    {
        (int readEnd, int writeEnd) = Pipe(out AnonymousPipeServerStream server, out AnonymousPipeClientStream client);
        int[] fds = [readEnd, writeEnd];
        IBlockIoEngine? engine = null;
        try
        {
            engine = CreateEngine(fds[0], 4);
            byte[] data = Pattern(30, 300);
            byte* b = Buffer(300, 0xCC);
            fixed (byte* d = data)
            {
                // SAFETY: d holds 300 bytes.
                Assert.Equal(100, (int)Libc.write(fds[1], d, 100));
                Assert.Equal(RrStatus.Ok, engine.SubmitRead(0, [new(b, 100), new(b + 100, 100), new(b + 200, 100)], 1));
                engine.Commit();
                Assert.Equal(1, Poller.WaitReadable(engine.CompletionFd, HangGuardMs));
                EventFd.Drain(engine.CompletionFd);
                Assert.Equal(0, engine.Reap(new BlockIoCompletion[4])); // the 100-byte CQE became a read of the other 200
                Assert.Equal(1, engine.InFlight);
                // SAFETY: as above.
                Assert.Equal(200, (int)Libc.write(fds[1], d + 100, 200));
            }

            Assert.Equal(300, Single(engine, 1));
            Assert.True(new ReadOnlySpan<byte>(b, 300).SequenceEqual(data));
        }
        finally
        {
            server.Dispose(); // a still pending read sees end of file, so Dispose cannot wait forever
            engine?.Dispose();
            client.Dispose();
        }
    }

    // A write larger than a pipe's buffer, drained by a reader thread: whatever short counts the kernel gives, the engine reports all of it, in order.
    [EngineFact]
    public void Write_LargerThanPipeBuffer_AllDelivered()
    {
        const int Len = 4 << 20;
        (int readEnd, int writeEnd) = Pipe(out AnonymousPipeServerStream server, out AnonymousPipeClientStream client);
        int[] fds = [readEnd, writeEnd];
        int reader = fds[0];
        IBlockIoEngine? engine = null;
        byte[] received = new byte[Len];
        System.Threading.Thread t = new(() =>
        {
            int got = 0;
            fixed (byte* r = received)
            {
                while (got < Len)
                {
                    // SAFETY: r + got has Len - got bytes left.
                    nint n = Libc.read(reader, r + got, (nuint)Math.Min(Len - got, 8192));
                    if (n <= 0)
                    {
                        break;
                    }

                    got += (int)n;
                    System.Threading.Thread.Sleep(0);
                }
            }
        });
        try
        {
            engine = CreateEngine(fds[1], 4);
            byte[] data = Pattern(31, Len);
            byte* b = Buffer(Len, 0);
            data.CopyTo(new Span<byte>(b, Len));
            Assert.Equal(RrStatus.Ok, engine.SubmitWrite(0, [new(b, Len / 2), new(b + (Len / 2), Len / 2)], 1));
            engine.Commit();
            t.Start();
            Assert.Equal(Len, Single(engine, 1));
            Assert.True(t.Join(HangGuardMs));
            Assert.Equal(data, received);
        }
        finally
        {
            client.Dispose(); // a still pending write fails with EPIPE, so Dispose cannot wait forever
            engine?.Dispose();
            server.Dispose();
        }
    }
}

/// <summary>The same tests with the SQ and CQ rings mapped apart (the pre-IORING_FEAT_SINGLE_MMAP path).</summary>
public sealed class IoUringSeparateMappingsBlockIoTests(ITestOutputHelper output) : IoUringBlockIoTests(output)
{
    protected override bool SeparateMappings => true;
}
