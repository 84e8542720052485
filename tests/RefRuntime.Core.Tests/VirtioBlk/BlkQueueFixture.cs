using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;
using RefRuntime.Core.Tests.Support;
using RefRuntime.Core.Virtio;
using Xunit;
using static RefRuntime.Core.Devices.VirtioBlk.VirtioBlkConst;

namespace RefRuntime.Core.Tests.VirtioBlk;

/// <summary>
/// A virtio-blk request queue served in this process: a temporary image with a known pattern, a
/// VirtqDriver (the guest's side) and a VirtqDevice over one GuestMemory region, a real kick
/// eventfd, and a VirtioBlkQueue thread with a real engine. Buffers are carved with poison
/// guards on both sides, so a device that writes one byte outside a buffer is caught.
/// </summary>
internal sealed unsafe class BlkQueueFixture : IDisposable
{
    public const ulong GpaBase = 0x1_0000_0000;
    public const int Guard = 64;
    public const byte Poison = 0xA5;
    public const byte StatusPoison = 0xEE;

    public const ulong AllFeatures = VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES
        | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_MQ | VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC;

    public readonly string ImagePath;
    public readonly byte[] Expected;
    public readonly BlockFile Image;
    public readonly VirtioBlkDevice Device;
    public readonly GuestMemory Memory;
    public readonly VirtqDriver Driver;
    public readonly VirtqDevice Queue;
    public readonly EventFd Kick = EventFd.Create();
    public readonly VirtioBlkQueue BlkQueue;
    public readonly IBlockIoEngine Engine;
    public readonly List<string> Log = [];
    private readonly List<(ulong Gpa, int Length)> _guards = [];
    private long _notifications;
    private bool _disposed;

    /// <param name="indirect">The driver puts multi-buffer chains in indirect tables.</param>
    /// <param name="readOnly">A read-only device (and image).</param>
    /// <param name="features">The negotiated features.</param>
    /// <param name="engine">Wraps the real engine (or replaces it).</param>
    /// <param name="imageBytes">Image size.</param>
    /// <param name="queueSize">Ring size.</param>
    /// <param name="capacity">Engine capacity.</param>
    public BlkQueueFixture(bool indirect = false, bool readOnly = false, ulong features = AllFeatures, Func<IBlockIoEngine, IBlockIoEngine>? engine = null, int imageBytes = 1 << 20, int queueSize = 64, int capacity = 64, int pollMicroseconds = 0, bool ioUring = false)
    {
        ImagePath = Path.Combine(Path.GetTempPath(), $"rr-blk-{Environment.ProcessId}-{Guid.NewGuid():N}.img");
        Expected = Pattern(imageBytes);
        File.WriteAllBytes(ImagePath, Expected);
        Assert.Equal(RrStatus.Ok, BlockFile.Open(ImagePath, readOnly, out BlockFile? image, out string? error));
        Assert.Null(error);
        Image = image!;
        Assert.Equal(RrStatus.Ok, VirtioBlkDevice.Create(Image.Size, ImagePath, new VirtioBlkOptions { ReadOnly = readOnly, QueueSize = queueSize, Serial = "rr-test-serial", PollMicroseconds = pollMicroseconds }, out VirtioBlkDevice? dev, out error));
        Device = dev!;
        if (readOnly)
        {
            features = (features & ~(VIRTIO_BLK_F_DISCARD | VIRTIO_BLK_F_WRITE_ZEROES)) | VIRTIO_BLK_F_RO;
        }

        Assert.Equal(RrStatus.Ok, GuestMemory.Create(16 << 20, GpaBase, out GuestMemory? mem));
        Memory = mem!;
        var ring = (VirtqFeatures)(features & (VIRTIO_RING_F_EVENT_IDX | VIRTIO_RING_F_INDIRECT_DESC));
        Assert.Equal(RrStatus.Ok, VirtqDriver.Create(Memory, queueSize, ring, indirect ? queueSize : 0, out VirtqDriver? drv, out error));
        Driver = drv!;
        Assert.Equal(RrStatus.Ok, VirtqDevice.Create(Memory, Driver.Rings, ring, MalformedChainPolicy.ReturnEmpty, out VirtqDevice? q, out error));
        Queue = q!;
        IBlockIoEngine inner;
        if (ioUring)
        {
            Assert.True(IoUringBlockIo.TryCreate(Image.Fd, capacity, out IoUringBlockIo? uring, out error), error);
            inner = uring!;
        }
        else
        {
            inner = new ThreadPoolBlockIo(Image.Fd, capacity, 4, "test-io");
        }
        Engine = engine is null ? inner : engine(inner);
        BlkQueue = new VirtioBlkQueue(Device, 0, Engine, line =>
        {
            lock (Log)
            {
                Log.Add(line);
            }
        });
        BlkQueue.Start(Queue, features, Kick.Fd, () => Interlocked.Increment(ref _notifications));
    }

    public long Notifications => Interlocked.Read(ref _notifications);

    /// <summary>Image bytes: a pattern that differs in every sector.</summary>
    public static byte[] Pattern(int bytes)
    {
        var b = new byte[bytes];
        for (int i = 0; i < bytes; i++)
        {
            b[i] = (byte)((i * 7) + (i >> 9) + 1);
        }

        return b;
    }

    /// <summary>Carves <paramref name="length"/> bytes with poisoned guards on both sides; the buffer itself is filled with <paramref name="fill"/>.</summary>
    public ulong Alloc(int length, byte fill = Poison)
    {
        Assert.Equal(RrStatus.Ok, Memory.TryCarve((ulong)(length + (2 * Guard)), 64, out ulong gpa));
        Bytes(gpa, length + (2 * Guard)).Fill(Poison);
        _guards.Add((gpa, Guard));
        _guards.Add((gpa + (ulong)Guard + (ulong)length, Guard));
        ulong b = gpa + Guard;
        Bytes(b, length).Fill(fill);
        return b;
    }

    public Span<byte> Bytes(ulong gpa, int length)
    {
        Assert.True(Memory.TryTranslate(gpa, (ulong)length, out byte* p));
        return new Span<byte>(p, length);
    }

    /// <summary>A 16-byte header split into buffers of <paramref name="split"/> bytes (default one buffer).</summary>
    public VirtqBuffer[] Header(uint type, ulong sector, params int[] split)
    {
        if (split.Length == 0)
        {
            split = [HeaderSize];
        }

        var bytes = new byte[HeaderSize];
        new VirtioBlkRequestHeader(type, 0, sector).Write(bytes);
        var bufs = new VirtqBuffer[split.Length];
        int at = 0;
        for (int i = 0; i < split.Length; i++)
        {
            ulong g = Alloc(split[i]);
            bytes.AsSpan(at, split[i]).CopyTo(Bytes(g, split[i]));
            bufs[i] = new VirtqBuffer(g, (uint)split[i]);
            at += split[i];
        }

        Assert.Equal(HeaderSize, at);
        return bufs;
    }

    /// <summary>Buffers of <paramref name="sizes"/> bytes, each filled with <paramref name="fill"/>.</summary>
    public VirtqBuffer[] Data(byte fill, params int[] sizes)
    {
        var bufs = new VirtqBuffer[sizes.Length];
        for (int i = 0; i < sizes.Length; i++)
        {
            bufs[i] = new VirtqBuffer(Alloc(sizes[i], fill), (uint)sizes[i]);
        }

        return bufs;
    }

    /// <summary>Buffers covering <paramref name="source"/> cut at <paramref name="sizes"/> (which must sum to its length).</summary>
    public VirtqBuffer[] DataFrom(ReadOnlySpan<byte> source, params int[] sizes)
    {
        var bufs = new VirtqBuffer[sizes.Length];
        int at = 0;
        for (int i = 0; i < sizes.Length; i++)
        {
            ulong g = Alloc(sizes[i]);
            source.Slice(at, sizes[i]).CopyTo(Bytes(g, sizes[i]));
            bufs[i] = new VirtqBuffer(g, (uint)sizes[i]);
            at += sizes[i];
        }

        Assert.Equal(source.Length, at);
        return bufs;
    }

    public VirtqBuffer Status() => new(Alloc(1, StatusPoison), 1);

    public byte StatusOf(VirtqBuffer status) => Bytes(status.Gpa + status.Length - 1, 1)[0];

    /// <summary>Bytes of a list of buffers, concatenated.</summary>
    public byte[] Read(IEnumerable<VirtqBuffer> bufs)
    {
        var all = new List<byte>();
        foreach (VirtqBuffer b in bufs)
        {
            all.AddRange(Bytes(b.Gpa, (int)b.Length).ToArray());
        }

        return [.. all];
    }

    /// <summary>Makes a chain available and kicks when the ring asks for it.</summary>
    public void Add(ulong token, int readable, params VirtqBuffer[][] parts)
    {
        var all = new List<VirtqBuffer>();
        foreach (VirtqBuffer[] p in parts)
        {
            all.AddRange(p);
        }

        Assert.Equal(RrStatus.Ok, Driver.TryAdd(all.ToArray(), readable, token));
    }

    /// <summary>Publishes what was added and kicks if the device asked for it.</summary>
    public void Publish()
    {
        if (Driver.KickPrepare())
        {
            Kick.Signal();
        }
    }

    /// <summary>Waits (hang guard only) for the next used chain.</summary>
    public (ulong Token, uint Length) WaitUsed()
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            RrStatus s = Driver.TryGetUsed(out ulong token, out uint length);
            if (s == RrStatus.Ok)
            {
                return (token, length);
            }

            Assert.Equal(RrStatus.NotFound, s);
            Assert.True(sw.Elapsed < StressConfig.HangGuard, "no used chain came back");
            Thread.Sleep(1);
        }
    }

    /// <summary>Adds one request, publishes, and waits for it; returns the used length.</summary>
    public uint Run(int readable, params VirtqBuffer[][] parts)
    {
        Add(77, readable, parts);
        Publish();
        (ulong token, uint length) = WaitUsed();
        Assert.Equal(77UL, token);
        return length;
    }

    /// <summary>Every guard byte is still poison.</summary>
    public void AssertGuardsIntact()
    {
        foreach ((ulong gpa, int length) in _guards)
        {
            Span<byte> g = Bytes(gpa, length);
            Assert.True(g.IndexOfAnyExcept(Poison) < 0, $"a guard at 0x{gpa:x} was overwritten");
        }
    }

    /// <summary>The image as it is now, read through the device's own descriptor (opening the path from .NET would meet the device's lock).</summary>
    public byte[] ImageBytes()
    {
        using var h = new Microsoft.Win32.SafeHandles.SafeFileHandle(Image.Fd, ownsHandle: false);
        var b = new byte[RandomAccess.GetLength(h)];
        Assert.Equal(b.Length, RandomAccess.Read(h, b, 0));
        return b;
    }

    /// <summary>Truncates the image under the device (through its descriptor).</summary>
    public void Truncate(long bytes)
    {
        using var h = new Microsoft.Win32.SafeHandles.SafeFileHandle(Image.Fd, ownsHandle: false);
        RandomAccess.SetLength(h, bytes);
    }

    /// <summary>The image equals <see cref="Expected"/>.</summary>
    public void AssertImageExpected() => Assert.True(ImageBytes().AsSpan().SequenceEqual(Expected), "the image differs from what the requests should have left");

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        BlkQueue.Dispose();
        Kick.Dispose();
        Driver.Destroy();
        Queue.Destroy();
        Memory.Destroy();
        Image.Dispose();
        File.Delete(ImagePath);
    }
}

/// <summary>
/// An engine wrapper that can hold completions back and then hand them over in reverse order: for
/// out-of-order completion, a stop with I/O in flight, and a full engine. The held completions
/// still count as in flight.
/// </summary>
internal sealed class HoldingEngine(IBlockIoEngine inner, bool holding = true) : IBlockIoEngine
{
    private readonly Lock _lock = new();
    private readonly List<BlockIoCompletion> _held = [];
    private bool _holding = holding;

    /// <summary>Flushes submitted.</summary>
    public int Flushes;

    public string Name => "holding";

    public int Capacity => inner.Capacity;

    public int InFlight
    {
        get
        {
            lock (_lock)
            {
                return inner.InFlight + _held.Count;
            }
        }
    }

    public int CompletionFd => inner.CompletionFd;

    /// <summary>Completions the inner engine finished and this one holds.</summary>
    public int Held
    {
        get
        {
            // The queue thread moves finished I/Os here when the completion eventfd wakes it.
            lock (_lock)
            {
                return _held.Count;
            }
        }
    }

    /// <summary>I/Os submitted.</summary>
    public int Submitted;

    /// <summary>Hands every held completion over, highest token (head) first, and stops holding.</summary>
    public void Release()
    {
        lock (_lock)
        {
            _holding = false;
            _held.Sort((a, b) => b.Token.CompareTo(a.Token));
        }

        EventFd.Signal(inner.CompletionFd); // wake the queue thread
    }

    public RrStatus SubmitRead(ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token) => Count(InFlight >= Capacity ? RrStatus.Busy : inner.SubmitRead(offset, iov, token));

    public RrStatus SubmitWrite(ulong offset, ReadOnlySpan<BlockIoVec> iov, ulong token) => Count(InFlight >= Capacity ? RrStatus.Busy : inner.SubmitWrite(offset, iov, token));

    public RrStatus SubmitFlush(ulong token)
    {
        Interlocked.Increment(ref Flushes);
        return Count(InFlight >= Capacity ? RrStatus.Busy : inner.SubmitFlush(token));
    }

    public RrStatus SubmitDiscard(ulong offset, ulong length, ulong token) => Count(InFlight >= Capacity ? RrStatus.Busy : inner.SubmitDiscard(offset, length, token));

    public RrStatus SubmitWriteZeroes(ulong offset, ulong length, bool mayUnmap, ulong token) => Count(InFlight >= Capacity ? RrStatus.Busy : inner.SubmitWriteZeroes(offset, length, mayUnmap, token));

    public void Commit() => inner.Commit();

    public int Reap(Span<BlockIoCompletion> completions)
    {
        Span<BlockIoCompletion> tmp = stackalloc BlockIoCompletion[64];
        lock (_lock)
        {
            int n;
            while ((n = inner.Reap(tmp)) > 0)
            {
                _held.AddRange(tmp[..n]);
            }

            if (_holding)
            {
                return 0;
            }

            int k = Math.Min(completions.Length, _held.Count);
            for (int i = 0; i < k; i++)
            {
                completions[i] = _held[i];
            }

            _held.RemoveRange(0, k);
            return k;
        }
    }

    public void Dispose() => inner.Dispose();

    private RrStatus Count(RrStatus s)
    {
        if (s == RrStatus.Ok)
        {
            Interlocked.Increment(ref Submitted);
        }

        return s;
    }
}
