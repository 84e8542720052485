// Engines by name: the one place that turns "--aio NAME" into an IBlockIoEngine for a device
// queue, so a new engine is one case here and nothing else changes.

using System;

namespace RefRuntime.Core.Devices.VirtioBlk;

/// <summary>Creates <see cref="IBlockIoEngine"/>s by name (see file comment).</summary>
public static class BlockIoEngines
{
    /// <summary>The thread-pool engine (<see cref="ThreadPoolBlockIo"/>), the default.</summary>
    public const string Threads = "threads";

    /// <summary>The io_uring engine.</summary>
    public const string IoUring = "io_uring";

    /// <summary>The names a command line may give.</summary>
    public static readonly string[] Names = [Threads, IoUring];

    /// <summary>Whether <paramref name="name"/> is one of <see cref="Names"/>.</summary>
    public static bool IsKnown(string name) => Array.IndexOf(Names, name) >= 0;

    /// <summary>Creates engine <paramref name="name"/> over <paramref name="fd"/> for queue <paramref name="queueIndex"/>.</summary>
    /// <param name="name">One of <see cref="Names"/>.</param>
    /// <param name="fd">The image (owned by the caller; outlives the engine).</param>
    /// <param name="capacity">The most I/Os in flight.</param>
    /// <param name="threads">Worker threads, for engines that have them.</param>
    /// <param name="queueIndex">The device queue (names threads).</param>
    /// <param name="engine">The engine.</param>
    /// <param name="error">Why not.</param>
    /// <returns><see cref="RrStatus.Ok"/>; <see cref="RrStatus.InvalidArgument"/> (unknown name); <see cref="RrStatus.NoDevice"/> (the engine cannot run here).</returns>
    public static RrStatus Create(string name, int fd, int capacity, int threads, int queueIndex, out IBlockIoEngine? engine, out string? error)
    {
        ArgumentNullException.ThrowIfNull(name);
        engine = null;
        error = null;
        switch (name)
        {
            case Threads:
                engine = new ThreadPoolBlockIo(fd, capacity, threads, $"blk-q{queueIndex}-io");
                return RrStatus.Ok;
            case IoUring:
                if (!IoUringBlockIo.TryCreate(fd, capacity, out IoUringBlockIo? ring, out error))
                {
                    error = $"io_uring unavailable ({error}); use --aio threads";
                    return RrStatus.NoDevice;
                }

                engine = ring;
                return RrStatus.Ok;
            default:
                error = $"unknown I/O engine \"{name}\" (known: {string.Join(", ", Names)})";
                return RrStatus.InvalidArgument;
        }
    }
}
