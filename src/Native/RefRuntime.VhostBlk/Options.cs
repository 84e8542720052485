// The command line of refruntime-vhost-blk (QEMU docs/interop/vhost-user.rst "Backend program
// conventions" for --socket-path, --fd, --print-capabilities; the rest is this device's).

using System;
using System.Globalization;
using RefRuntime.Core.Devices.VirtioBlk;

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

    public string? SocketPath { get; private set; }

    public int Fd { get; private set; } = -1;

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

    public bool PrintCapabilities { get; private set; }

    public bool Help { get; private set; }

    public bool Verbose { get; private set; }

    /// <summary>Parses <paramref name="args"/>; null with <paramref name="error"/> when they are wrong.</summary>
    public static Options? Parse(string[] args, out string? error)
    {
        var o = new Options();
        error = null;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string? inline = null;
            int eq = a.IndexOf('=', StringComparison.Ordinal);
            if (a.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inline = a[(eq + 1)..];
                a = a[..eq];
            }

            string? Value()
            {
                if (inline is not null)
                {
                    return inline;
                }

                return i + 1 < args.Length ? args[++i] : null;
            }

            switch (a)
            {
                case "--print-capabilities":
                    o.PrintCapabilities = true;
                    break;
                case "--help" or "-h":
                    o.Help = true;
                    break;
                case "--verbose" or "-v":
                    o.Verbose = true;
                    break;
                case "--read-only":
                    o.ReadOnly = true;
                    break;
                case "--socket-path":
                    o.SocketPath = Value();
                    if (string.IsNullOrEmpty(o.SocketPath))
                    {
                        error = "--socket-path needs a path";
                        return null;
                    }

                    break;
                case "--fd":
                    if (!TryInt(Value(), 0, int.MaxValue, out int fd))
                    {
                        error = "--fd needs a descriptor number";
                        return null;
                    }

                    o.Fd = fd;
                    break;
                case "--file":
                    o.File = Value();
                    if (string.IsNullOrEmpty(o.File))
                    {
                        error = "--file needs a path";
                        return null;
                    }

                    break;
                case "--num-queues":
                    if (!TryInt(Value(), 1, 64, out int nq))
                    {
                        error = "--num-queues needs a number from 1 to 64";
                        return null;
                    }

                    o.NumQueues = nq;
                    break;
                case "--queue-size":
                    if (!TryInt(Value(), 4, 1024, out int qs) || (qs & (qs - 1)) != 0)
                    {
                        error = "--queue-size needs a power of two from 4 to 1024";
                        return null;
                    }

                    o.QueueSize = qs;
                    break;
                case "--blk-size":
                    if (!TryInt(Value(), 512, 4096, out int bs) || bs is not (512 or 4096))
                    {
                        error = "--blk-size is 512 or 4096";
                        return null;
                    }

                    o.BlockSize = bs;
                    break;
                case "--serial":
                    o.Serial = Value();
                    if (o.Serial is null)
                    {
                        error = "--serial needs a string";
                        return null;
                    }

                    break;
                case "--aio":
                    string? aio = Value();
                    if (aio is null || (aio != AutoAio && !BlockIoEngines.IsKnown(aio)))
                    {
                        error = $"--aio is one of {AutoAio}, {string.Join(", ", BlockIoEngines.Names)}";
                        return null;
                    }

                    o.Aio = aio;
                    break;
                case "--poll-us":
                    if (!TryInt(Value(), 0, 1000, out int us))
                    {
                        error = "--poll-us needs a number of microseconds from 0 to 1000";
                        return null;
                    }

                    o.PollMicroseconds = us;
                    break;
                case "--threads":
                    if (!TryInt(Value(), 1, 64, out int th))
                    {
                        error = "--threads needs a number from 1 to 64";
                        return null;
                    }

                    o.Threads = th;
                    break;
                default:
                    error = $"unknown option {args[i]}";
                    return null;
            }
        }

        if (o.PrintCapabilities || o.Help)
        {
            return o;
        }

        if ((o.SocketPath is null) == (o.Fd < 0))
        {
            error = "give exactly one of --socket-path and --fd";
            return null;
        }

        if (o.File is null)
        {
            error = "--file IMAGE is required";
            return null;
        }

        return o;
    }

    private static bool TryInt(string? s, int min, int max, out int v) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v) && v >= min && v <= max;
}
