// The command line of refruntime-vhost-blk (QEMU docs/interop/vhost-user.rst "Backend program
// conventions" for --socket-path, --fd, --print-capabilities; the rest is this device's).

using System;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Vhost;

namespace RefRuntime.VhostBlk;

/// <summary>Parsed options.</summary>
internal sealed class Options
{
    public const string Usage = """
        usage: refruntime-vhost-blk (--socket-path PATH | --fd N) --file IMAGE [options]
               refruntime-vhost-blk --print-capabilities

        A vhost-user virtio-blk back-end serving IMAGE (a raw disk image file, or a block device)
        to one front-end at a time (QEMU's vhost-user-blk-pci, or RefRuntime's own front end);
        after a disconnect it serves the next. Exits on SIGTERM/SIGINT once every I/O in flight
        has finished.

          --socket-path PATH     listen on the Unix socket PATH (a stale socket file is replaced)
          --fd N                 use inherited socket N: listening (accept on it) or connected
                                 (serve it, exit when it closes)
          --file IMAGE           the disk image; its size must be a multiple of the block size.
                                 Locked while served: one writer, or any number of readers
          --read-only            open IMAGE read-only and offer VIRTIO_BLK_F_RO
          --num-queues N         request queues, 1..64 (default 1)
          --queue-size N         the largest ring accepted, a power of two 4..1024 (default 256);
                                 seg_max is min(N, 128) - 2
          --blk-size N           logical block size announced, 512 or 4096 (default 512)
          --serial ID            the GET_ID string, at most 20 ASCII characters (default: the
                                 last 20 characters of IMAGE's file name)
          --aio ENGINE           auto (default: io_uring where the kernel allows it, else
                                 threads), io_uring, or threads
          --poll-us N            before sleeping, a queue thread looks at its ring and I/O for up
                                 to N microseconds with kicks off (0..1000, default 0)
          --threads N            worker threads per queue for --aio threads, 1..64 (default 4)
          --verbose              log every vhost-user request and reply
          --print-capabilities   print {"type": "block"} and exit
          --help                 this text
        """;

    public string? File { get; private set; }

    public bool ReadOnly { get; private set; }

    public int NumQueues { get; private set; } = 1;

    public int QueueSize { get; private set; } = VirtioBlkOptions.DefaultQueueSize;

    public int BlockSize { get; private set; } = 512;

    public string? Serial { get; private set; }

    public string Aio { get; private set; } = AutoAio;

    /// <summary>--poll-us: the queue threads' polling window.</summary>
    public int PollMicroseconds { get; private set; } = VirtioBlkOptions.DefaultPollMicroseconds;

    /// <summary>--aio auto: io_uring where it works here, else threads.</summary>
    public const string AutoAio = "auto";

    public int Threads { get; private set; } = ThreadPoolBlockIo.DefaultThreads;

    /// <summary>The options every back-end program has (--socket-path, --fd, --verbose, ...).</summary>
    public BackendCommandLine Common { get; private set; } = null!;

    public string? SocketPath => Common.SocketPath;

    public int Fd => Common.Fd;

    public bool Verbose => Common.Verbose;

    /// <summary>Parses <paramref name="args"/>; null with <paramref name="error"/> when they are wrong.</summary>
    public static Options? Parse(string[] args, out string? error)
    {
        var o = new Options();
        BackendCommandLine? common = BackendCommandLine.Parse(args, o.Take, out error);
        if (common is null)
        {
            return null;
        }

        o.Common = common;
        if (!common.PrintCapabilities && !common.Help && o.File is null)
        {
            error = "--file IMAGE is required";
            return null;
        }

        return o;
    }

    private static bool TryInt(string? s, int min, int max, out int v) => BackendCommandLine.TryInt(s, min, max, out v);

    private string? Take(string name, Func<string?> value)
    {
        switch (name)
        {
            case "--read-only":
                ReadOnly = true;
                return null;
            case "--file":
                File = value();
                return string.IsNullOrEmpty(File) ? "--file needs a path" : null;
            case "--num-queues":
                if (!TryInt(value(), 1, 64, out int nq))
                {
                    return "--num-queues needs a number from 1 to 64";
                }

                NumQueues = nq;
                return null;
            case "--queue-size":
                if (!TryInt(value(), 4, 1024, out int qs) || (qs & (qs - 1)) != 0)
                {
                    return "--queue-size needs a power of two from 4 to 1024";
                }

                QueueSize = qs;
                return null;
            case "--blk-size":
                if (!TryInt(value(), 512, 4096, out int bs) || bs is not (512 or 4096))
                {
                    return "--blk-size is 512 or 4096";
                }

                BlockSize = bs;
                return null;
            case "--serial":
                Serial = value();
                return Serial is null ? "--serial needs a string" : null;
            case "--aio":
                string? aio = value();
                if (aio is null || (aio != AutoAio && !BlockIoEngines.IsKnown(aio)))
                {
                    return $"--aio is one of {AutoAio}, {string.Join(", ", BlockIoEngines.Names)}";
                }

                Aio = aio;
                return null;
            case "--poll-us":
                if (!TryInt(value(), 0, 1000, out int us))
                {
                    return "--poll-us needs a number of microseconds from 0 to 1000";
                }

                PollMicroseconds = us;
                return null;
            case "--threads":
                if (!TryInt(value(), 1, 64, out int th))
                {
                    return "--threads needs a number from 1 to 64";
                }

                Threads = th;
                return null;
            default:
                return BackendCommandLine.Unknown;
        }
    }
}
