// refruntime-vhost-blk: see Options.Usage. Opens (and locks) the image, builds the virtio-blk
// device, one I/O engine and queue thread per request queue, the vhost-user server, then serves
// until SIGTERM/SIGINT. On the way out the server ends the connection, which stops every queue
// after its I/O in flight finished, so every write that was acknowledged is in the image. One log
// line per connection and per error, on stderr. Exit status: 0 after a signal (or when an
// inherited connected socket closes), 1 when start-up fails, 2 for a bad command line.

using System;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core;
using RefRuntime.Core.Devices.VirtioBlk;
using RefRuntime.Core.Os;
using RefRuntime.Core.Vhost;

namespace RefRuntime.VhostBlk;

internal static class Program
{
    private static readonly Action<string> Log = BackendCommandLine.StderrLog("refruntime-vhost-blk");

    private static int Main(string[] args)
    {
        Options? o = Options.Parse(args, out string? error);
        return BackendCommandLine.Start("refruntime-vhost-blk", "block", Options.Usage, o?.Common, error, () => Serve(o!));
    }

    private static int Serve(Options o)
    {
        if (BlockFile.Open(o.File!, o.ReadOnly, out BlockFile? image, out string? error) != RrStatus.Ok)
        {
            Log($"cannot start: {error}");
            return 1;
        }

        using (image)
        {
            var options = new VirtioBlkOptions { ReadOnly = o.ReadOnly, NumQueues = o.NumQueues, QueueSize = o.QueueSize, BlockSize = o.BlockSize, Serial = o.Serial, PollMicroseconds = o.PollMicroseconds };
            if (VirtioBlkDevice.Create(image!.Size, image.Path, options, out VirtioBlkDevice? device, out error) != RrStatus.Ok)
            {
                Log($"cannot start: {error}");
                return 1;
            }

            // auto: io_uring where the kernel lets us (a seccomp filter or kernel.io_uring_disabled
            // may not), else the worker threads - measured in docs/virtio-blk.md "Engines".
            string aio = o.Aio;
            if (aio == Options.AutoAio)
            {
                if (BlockIoEngines.Create(BlockIoEngines.IoUring, image.Fd, 1, 1, 0, out IBlockIoEngine? ring, out string? why) == RrStatus.Ok)
                {
                    ring!.Dispose();
                    aio = BlockIoEngines.IoUring;
                }
                else
                {
                    Log($"{why}; using the worker threads");
                    aio = BlockIoEngines.Threads;
                }
            }

            // Fail now, not at the first ring: make one engine to see that the choice works here.
            if (BlockIoEngines.Create(aio, image.Fd, 1, 1, 0, out IBlockIoEngine? probe, out error) != RrStatus.Ok)
            {
                Log($"cannot start: {error}");
                return 1;
            }

            probe!.Dispose();
            IBlockIoEngine MakeEngine(int queue)
            {
                BlockIoEngines.Create(aio, image.Fd, device!.QueueSize, o.Threads, queue, out IBlockIoEngine? e, out string? why);
                return e ?? throw new InvalidOperationException(why);
            }

            using var backend = new VhostUserBlkBackend(device!, MakeEngine, Log);
            RrStatus s = o.SocketPath is not null
                ? VhostUserServer.Listen(o.SocketPath, backend, Log, out VhostUserServer? server, out error)
                : VhostUserServer.FromFd(o.Fd, backend, Log, out server, out error);
            if (s != RrStatus.Ok)
            {
                Log($"cannot start: {error}");
                return 1;
            }

            if (o.Verbose)
            {
                server!.Trace = Log;
            }

            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
            using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
            Log($"serving virtio-blk ({image.Path}: {device!.Capacity} sectors{(o.ReadOnly ? ", read-only" : string.Empty)}, {o.NumQueues} queue(s), aio {aio}, serial \"{device.Serial}\") on {(o.SocketPath ?? $"descriptor {o.Fd}")}");
            server!.Run();
            Log("stopping");
            server.Dispose(); // ends the connection: every queue finishes its I/O first
            backend.Dispose();
            if (!o.ReadOnly && BlockFile.DataSync(image.Fd) is long r and < 0)
            {
                Log($"final fdatasync failed: {OsError.Describe((int)-r)}");
            }

            return 0;

            void Stop(PosixSignalContext ctx)
            {
                ctx.Cancel = true;
                server!.Stop();
            }
        }
    }
}
