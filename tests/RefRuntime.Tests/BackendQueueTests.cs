using System;
using System.Buffers.Binary;
using System.Diagnostics;
using System.IO;
using System.Threading;
using RefRuntime.Core;
using RefRuntime.Core.Os;
using RefRuntime.Core.Virtio;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>
/// The safe back-end API: BackendMemory mapped from a memfd, a device queue configured after
/// creation, chains held and completed out of order through in-place segments; and the GPIO chip
/// as a vhost-user front end to the refruntime-vhost-gpio process.
/// </summary>
public sealed class BackendQueueTests
{
    private const ulong Gpa = 0x10000;
    private const ulong User = 0x7000_0000;
    private const int N = 8;
    private const ulong Desc = Gpa, Avail = Gpa + 128, Used = Gpa + 256, Buffers = Gpa + 0x2000;

    /// <summary>Plays the driver by writing the split ring's bytes directly.</summary>
    private static void AddChain(BackendMemory m, ushort slot, ushort head, ulong buf)
    {
        Span<byte> d = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(d, buf);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], 8);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], 1); // NEXT
        BinaryPrimitives.WriteUInt16LittleEndian(d[14..], (ushort)(head + 1));
        m.Write(Desc + (ulong)(16 * head), d);
        BinaryPrimitives.WriteUInt64LittleEndian(d, buf + 32);
        BinaryPrimitives.WriteUInt16LittleEndian(d[12..], 2); // WRITE
        m.Write(Desc + (ulong)(16 * (head + 1)), d);
        Span<byte> e = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(e, head);
        m.Write(Avail + 4 + (ulong)(2 * slot), e);
        BinaryPrimitives.WriteUInt16LittleEndian(e, (ushort)(slot + 1));
        m.Write(Avail + 2, e); // avail.idx
    }

    // Chains held at once, completed in reverse order, written in place through their segments.
    [Fact]
    public void DeviceQueue_OnBackendMemory_HoldsChains_CompletesOutOfOrder()
    {
        Assert.Equal(RrStatus.Ok, SharedMapping.CreateMemfd("managed-test", 1 << 16, out int fd, out _));
        using var memory = new BackendMemory();
        memory.AddFromDescriptor(Gpa, 1 << 16, User, 0, fd);
        FileDescriptor.Close(fd); // the mapping stays
        Assert.Throws<ArgumentException>(() => memory.AddFromDescriptor(Gpa + (1 << 16), 4096, User + (1 << 16), 0, 999_999)); // not a descriptor

        using (var q = new VirtqueueDevice(memory, 64))
        {
            Assert.False(q.IsStarted);
            q.Configure(new VirtqueueRings(N, User + (Desc - Gpa), User + (Avail - Gpa), User + (Used - Gpa)), VirtqueueAddressSpace.FrontEndUser, VirtqueueFeatures.None);
            q.Start();
            Assert.Throws<InvalidOperationException>(() => q.SetIndices(1, 1)); // started
            for (ushort i = 0; i < 3; i++)
            {
                memory.Write(Buffers + (ulong)(64 * i), [(byte)('a' + i), 0, 0, 0, 0, 0, 0, 0]);
                AddChain(memory, i, (ushort)(2 * i), Buffers + (ulong)(64 * i));
            }

            var held = new VirtqueueChain[3];
            for (int i = 0; i < 3; i++)
            {
                Assert.True(q.TryPop(out held[i]));
            }

            Assert.False(q.TryPop(out _));
            Assert.Equal(3, q.HeldCount);
            for (int i = 2; i >= 0; i--)
            {
                Assert.Equal((byte)('a' + i), q.ReadableSegment(held[i], 0)[0]); // in place, zero copy
                Span<byte> w = q.WritableSegment(held[i], 0);
                w[0] = (byte)('A' + i);
                Assert.Equal(3, q.Write(held[i], 1, "xyz"u8));
                q.Complete(held[i], 4);
                Assert.Throws<ArgumentException>(() => q.ReadableSegment(held[i], 0)); // completed: not held any more
            }

            Assert.Throws<ArgumentOutOfRangeException>(() => q.Read(held[0], -1, new byte[1]));
            q.Publish();
            Span<byte> used = stackalloc byte[4 + (8 * 3)];
            memory.Read(Used, used);
            Assert.Equal(3, BinaryPrimitives.ReadUInt16LittleEndian(used[2..]));
            Assert.Equal(4u, BinaryPrimitives.ReadUInt32LittleEndian(used[4..])); // head 4 (the third chain) first
            Span<byte> reply = stackalloc byte[4];
            memory.Read(Buffers + 32, reply);
            Assert.Equal("Axyz"u8.ToArray(), reply.ToArray());
            Assert.Equal(3, q.NextAvail);
            q.Stop();
            Assert.Throws<InvalidOperationException>(() => memory.Dispose()); // the queue still lives in it
        }
    }

    // The GPIO chip as a vhost-user front end: calls across processes; a dead back-end throws, a restarted one reconnects.
    [Fact]
    public void GpioChip_ConnectVhostUser_WorksAcrossProcesses_AndReconnects()
    {
        string path = $"/tmp/rr-vh-m-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}.sock";
        Process backend = StartBackend(path);
        try
        {
            Assert.Throws<NoDeviceException>(() => GpioChip.ConnectVhostUser(path + ".nobody"));
            using GpioChip chip = GpioChip.ConnectVhostUser(path);
            Assert.Equal(8, chip.LineCount);
            Assert.Equal("red", chip.LineName(0));
            chip.DirectionOutput(0, true);
            Assert.True(chip.Get(0));
            Assert.Throws<NotSupportedException>(chip.Remove);

            backend.Kill();
            backend.WaitForExit();
            var sw = Stopwatch.StartNew();
            Assert.Throws<NoDeviceException>(() =>
            {
                while (sw.Elapsed < TimeSpan.FromMinutes(5))
                {
                    chip.Set(0, false); // until the hang-up is noticed
                }
            });

            backend.Dispose();
            backend = StartBackend(path);
            chip.Reconnect();
            chip.DirectionOutput(1, true);
            Assert.True(chip.Get(1));
        }
        finally
        {
            if (!backend.HasExited)
            {
                backend.Kill();
            }

            backend.Dispose();
            File.Delete(path);
        }
    }

    private static Process StartBackend(string path)
    {
        string? bin = Environment.GetEnvironmentVariable("RR_VHOST_GPIO");
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); bin is null && dir is not null; dir = dir.Parent)
        {
            string c = Path.Combine(dir.FullName, "dist", "bin", "refruntime-vhost-gpio");
            bin = File.Exists(c) ? c : null;
        }

        Assert.True(bin is not null, "refruntime-vhost-gpio not found: run ./build.sh first");
        File.Delete(path);
        var p = Process.Start(new ProcessStartInfo(bin!, ["--socket-path", path, "--names", "red"]) { RedirectStandardError = true })!;
        int serving = 0;
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data?.Contains("serving", StringComparison.Ordinal) == true)
            {
                Volatile.Write(ref serving, 1);
            }
        };
        p.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (Volatile.Read(ref serving) == 0)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromMinutes(5) && !p.HasExited, "the back-end did not start listening");
            Thread.Sleep(5);
        }

        return p;
    }
}
