// The vhost-user session's operating-system services on Linux, through the Os wrappers: regions
// mapped MAP_SHARED from the descriptors a front-end sends (SharedMapping refuses files too small
// for the region), eventfds adopted for signalling (switched to non-blocking), descriptors closed.

using System;
using RefRuntime.Core.Os;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Vhost;

/// <summary>The Linux <see cref="IVhostPlatform"/> (see file comment).</summary>
public sealed class LinuxVhostPlatform : IVhostPlatform
{
    private readonly Action<string>? _log;
    private readonly bool _requireSealed;

    /// <summary>Creates the platform.</summary>
    /// <param name="log">Where warnings go (a region whose file is not sealed against shrinking).</param>
    /// <param name="requireSealed">Refuse regions whose file could shrink under the mapping (F_SEAL_SHRINK missing).</param>
    public LinuxVhostPlatform(Action<string>? log = null, bool requireSealed = false)
    {
        _log = log;
        _requireSealed = requireSealed;
    }

    /// <inheritdoc/>
    public unsafe RrStatus MapRegion(int fd, ulong offset, ulong size, out IRegionBacking? backing, out string? error)
    {
        backing = null;
        if (!SharedMapping.IsShrinkSealed(fd))
        {
            if (_requireSealed)
            {
                error = $"descriptor {fd} is not sealed against shrinking (F_SEAL_SHRINK), so it could fault under the mapping";
                return RrStatus.InvalidArgument;
            }

            _log?.Invoke($"warning: memory descriptor {fd} is not sealed against shrinking; a front-end that truncates it could crash the back-end");
        }

        RrStatus s = SharedMapping.Map(fd, offset, size, out SharedMapping? mapping, out error);
        if (s == RrStatus.Ok)
        {
            backing = new MappingBacking(mapping!);
        }

        return s;
    }

    /// <inheritdoc/>
    public IVhostNotifier AdoptNotifier(int fd) => new EventFdNotifier(EventFd.Adopt(fd));

    /// <inheritdoc/>
    public void Close(int fd) => FileDescriptor.Close(fd);

    private sealed unsafe class MappingBacking(SharedMapping mapping) : IRegionBacking
    {
        public byte* Host => mapping.Address;

        public ulong Length => mapping.Length;

        public void Release() => mapping.Dispose();
    }

    private sealed class EventFdNotifier(EventFd fd) : IVhostNotifier
    {
        public bool Signal() => fd.Signal();

        public void Dispose() => fd.Dispose();
    }
}
