using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;
using RefRuntime.Core.Tests.VirtioBlk;
using Xunit;

namespace RefRuntime.Core.Tests.Os;

/// <summary>The io_uring ring itself (Os/IoUring.cs): layouts, submission bookkeeping, CQ overflow.</summary>
public sealed unsafe class IoUringTests
{
    /// <summary>Null where io_uring works here (see <see cref="IoUringBlockIoTests.SkipReason"/>).</summary>
    public static string? SkipReason => IoUringBlockIoTests.SkipReason;

    // The layouts of include/uapi/linux/io_uring.h (and struct iovec for BlockIoVec), pinned.
    [Fact]
    public void Layouts_MatchUapiHeader()
    {
        Assert.Equal(120, Unsafe.SizeOf<IoUringParams>());
        Assert.Equal(20, (int)Marshal.OffsetOf<IoUringParams>(nameof(IoUringParams.Features)));
        Assert.Equal(24, (int)Marshal.OffsetOf<IoUringParams>(nameof(IoUringParams.WqFd)));
        Assert.Equal(40, (int)Marshal.OffsetOf<IoUringParams>(nameof(IoUringParams.SqOff)));
        Assert.Equal(80, (int)Marshal.OffsetOf<IoUringParams>(nameof(IoUringParams.CqOff)));

        Assert.Equal(40, Unsafe.SizeOf<IoSqringOffsets>());
        Assert.Equal(16, (int)Marshal.OffsetOf<IoSqringOffsets>(nameof(IoSqringOffsets.Flags)));
        Assert.Equal(24, (int)Marshal.OffsetOf<IoSqringOffsets>(nameof(IoSqringOffsets.Array)));
        Assert.Equal(32, (int)Marshal.OffsetOf<IoSqringOffsets>(nameof(IoSqringOffsets.UserAddr)));

        Assert.Equal(40, Unsafe.SizeOf<IoCqringOffsets>());
        Assert.Equal(16, (int)Marshal.OffsetOf<IoCqringOffsets>(nameof(IoCqringOffsets.Overflow)));
        Assert.Equal(20, (int)Marshal.OffsetOf<IoCqringOffsets>(nameof(IoCqringOffsets.Cqes)));
        Assert.Equal(24, (int)Marshal.OffsetOf<IoCqringOffsets>(nameof(IoCqringOffsets.Flags)));

        Assert.Equal(64, Unsafe.SizeOf<IoUringSqe>());
        Assert.Equal(4, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.Fd)));
        Assert.Equal(8, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.Off)));
        Assert.Equal(16, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.Addr)));
        Assert.Equal(24, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.Len)));
        Assert.Equal(28, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.OpFlags)));
        Assert.Equal(32, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.UserData)));
        Assert.Equal(40, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.BufIndex)));
        Assert.Equal(44, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.SpliceFdIn)));
        Assert.Equal(48, (int)Marshal.OffsetOf<IoUringSqe>(nameof(IoUringSqe.Addr3)));

        Assert.Equal(16, Unsafe.SizeOf<IoUringCqe>());
        Assert.Equal(8, (int)Marshal.OffsetOf<IoUringCqe>(nameof(IoUringCqe.Res)));
        Assert.Equal(12, (int)Marshal.OffsetOf<IoUringCqe>(nameof(IoUringCqe.Flags)));

        Assert.Equal(16, sizeof(BlockIoVec));
        BlockIoVec v = new((byte*)0x1234, 0x5678);
        Assert.Equal(0x1234UL, *(ulong*)&v);
        Assert.Equal(0x5678UL, *((ulong*)&v + 1));
    }

    // Where this machine has the kernel headers, the constants agree with them (opcode enum order, syscall numbers).
    [Fact]
    public void Constants_AgreeWithInstalledHeaders()
    {
        const string Uring = "/usr/include/linux/io_uring.h";
        if (File.Exists(Uring))
        {
            string text = File.ReadAllText(Uring);
            Match m = Regex.Match(text, @"enum io_uring_op \{(?<body>[^}]*)\}");
            Assert.True(m.Success);
            List<string> ops = [];
            foreach (Match op in Regex.Matches(m.Groups["body"].Value, @"IORING_OP_\w+"))
            {
                ops.Add(op.Value);
            }

            Assert.Equal(IoUringSys.IORING_OP_NOP, ops.IndexOf("IORING_OP_NOP"));
            Assert.Equal(IoUringSys.IORING_OP_READV, ops.IndexOf("IORING_OP_READV"));
            Assert.Equal(IoUringSys.IORING_OP_WRITEV, ops.IndexOf("IORING_OP_WRITEV"));
            Assert.Equal(IoUringSys.IORING_OP_FSYNC, ops.IndexOf("IORING_OP_FSYNC"));
            Assert.Equal(IoUringSys.IORING_OP_FALLOCATE, ops.IndexOf("IORING_OP_FALLOCATE"));
            Assert.Matches(@"IORING_REGISTER_EVENTFD\s*=\s*4,", text);
            Assert.Matches(@"IORING_REGISTER_PROBE\s*=\s*8,", text);
            Assert.Matches(@"#define IORING_FSYNC_DATASYNC\s*\(1U << 0\)", text);
            Assert.Matches(@"#define IORING_SQ_CQ_OVERFLOW\s*\(1U << 1\)", text);
            Assert.Matches(@"#define IORING_OFF_CQ_RING\s*0x8000000ULL", text);
            Assert.Matches(@"#define IORING_OFF_SQES\s*0x10000000ULL", text);
        }

        foreach (string unistd in new[] { "/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm-generic/unistd.h" })
        {
            if (File.Exists(unistd))
            {
                string text = File.ReadAllText(unistd);
                Assert.Matches(@"#define __NR_io_uring_setup\s+425\b", text);
                Assert.Matches(@"#define __NR_io_uring_enter\s+426\b", text);
                Assert.Matches(@"#define __NR_io_uring_register\s+427\b", text);
            }
        }
    }

    // The reasons a log shows when io_uring is unavailable name the fix.
    [Fact]
    public void DescribeSetupError_DisabledOrMissing_NamesTheCause()
    {
        Assert.Contains("kernel.io_uring_disabled", IoUringSys.DescribeSetupError(IoUringSys.EPERM));
        Assert.Contains("seccomp", IoUringSys.DescribeSetupError(IoUringSys.ENOSYS));
        Assert.Contains("RLIMIT_MEMLOCK", IoUringSys.DescribeSetupError(IoUringSys.ENOMEM));
    }

    // 12 NOPs into a ring of 4 SQ / 8 CQ entries without reaping: 8 fit, 4 overflow and are flushed by GETEVENTS.
    [EngineFact]
    public void CqOverflow_MoreCompletionsThanCqEntries_AllDelivered()
    {
        Assert.True(IoUring.TryCreate(4, false, out IoUring? ring, out string? error), error);
        using (ring)
        {
            Assert.Equal(4u, ring!.SqEntries);
            Assert.Equal(8u, ring.CqEntries);
            for (uint round = 0; round < 3; round++)
            {
                for (uint i = 0; i < 4; i++)
                {
                    QueueNop(ring, i, (round * 4) + i);
                }

                Assert.Equal(4, ring.Submit());
            }

            Assert.True(ring.CqOverflowPending);
            HashSet<ulong> seen = [];
            Drain(ring, seen);
            Assert.Equal(8, seen.Count);
            Assert.True(ring.GetEvents(0) >= 0);
            Drain(ring, seen);
            Assert.Equal(12, seen.Count);
            Assert.False(ring.CqOverflowPending);
        }
    }

    // Queued entries can be taken back before submission: they never run.
    [EngineFact]
    public void DropUnsubmitted_QueuedNops_NeverRun()
    {
        Assert.True(IoUring.TryCreate(4, true, out IoUring? ring, out string? error), error);
        using (ring)
        {
            Assert.False(ring!.SingleMmap);
            QueueNop(ring, 2, 20);
            QueueNop(ring, 0, 21);
            Assert.Equal(2u, ring.Unsubmitted);
            uint[] dropped = new uint[4];
            Assert.Equal(2, ring.DropUnsubmitted(dropped));
            Assert.Equal(new uint[] { 2, 0 }, dropped[..2]);
            Assert.Equal(0u, ring.Unsubmitted);
            Assert.Equal(0, ring.Submit());
            Assert.Equal(0u, ring.CqReady);

            QueueNop(ring, 1, 22);
            Assert.Equal(1, ring.Submit());
            HashSet<ulong> seen = [];
            Drain(ring, seen);
            Assert.Equal([22UL], seen);
        }
    }

    private static void QueueNop(IoUring ring, uint index, ulong userData)
    {
        // SAFETY: index < SqEntries and the entry is not queued.
        IoUringSqe* sqe = ring.DangerousSqe(index);
        *sqe = default;
        sqe->Opcode = IoUringSys.IORING_OP_NOP;
        sqe->UserData = userData;
        ring.Queue(index);
    }

    private static void Drain(IoUring ring, HashSet<ulong> seen)
    {
        uint ready = ring.CqReady;
        for (uint i = 0; i < ready; i++)
        {
            IoUringCqe c = ring.PeekCqe(i);
            Assert.Equal(0, c.Res);
            Assert.True(seen.Add(c.UserData));
        }

        ring.AdvanceCq(ready);
    }
}
