using System;
using System.Collections.Generic;
using RefRuntime.Core.Vhost;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Tests.Vhost;

/// <summary>
/// The session's operating system, in memory: "descriptors" are numbers this class hands out;
/// a memory descriptor names a native block, a notifier descriptor an action. It records every
/// descriptor given to the session and every close, so a test can check that the session closed
/// each descriptor it received exactly once and never one it did not own.
/// </summary>
internal sealed unsafe class FakeVhostPlatform : IVhostPlatform
{
    private readonly Dictionary<int, (nint Host, ulong Size)> _files = [];
    private readonly Dictionary<int, Action> _notifiers = [];
    private readonly HashSet<int> _given = [];
    private int _next = 1000;

    public List<string> Problems { get; } = [];

    public int Mapped { get; private set; }

    public int Unmapped { get; private set; }

    public int Signals { get; private set; }

    /// <summary>Descriptors given to the session and not closed yet.</summary>
    public int Outstanding => _given.Count;

    /// <summary>A memory "file" of <paramref name="size"/> bytes at <paramref name="host"/>; the returned descriptor is the session's once sent.</summary>
    public int MemoryFd(byte* host, ulong size)
    {
        int fd = _next++;
        _files[fd] = ((nint)host, size);
        _given.Add(fd);
        return fd;
    }

    /// <summary>An eventfd-like descriptor whose signal runs <paramref name="onSignal"/>.</summary>
    public int NotifierFd(Action? onSignal = null)
    {
        int fd = _next++;
        _notifiers[fd] = onSignal ?? (() => { });
        _given.Add(fd);
        return fd;
    }

    /// <summary>A descriptor that is neither memory nor a notifier.</summary>
    public int OtherFd()
    {
        int fd = _next++;
        _given.Add(fd);
        return fd;
    }

    public RrStatus MapRegion(int fd, ulong offset, ulong size, out IRegionBacking? backing, out string? error)
    {
        backing = null;
        error = null;
        if (!_files.TryGetValue(fd, out var f))
        {
            error = $"fake descriptor {fd} is not memory";
            return RrStatus.InvalidArgument;
        }

        if (offset > f.Size || size > f.Size - offset)
        {
            error = $"fake file of {f.Size} bytes is too small";
            return RrStatus.InvalidArgument;
        }

        Mapped++;
        backing = new Backing(this, (byte*)f.Host + offset, size);
        return RrStatus.Ok;
    }

    public IVhostNotifier AdoptNotifier(int fd)
    {
        if (!_given.Contains(fd))
        {
            Problems.Add($"adopted descriptor {fd} it does not own");
        }

        return new Notifier(this, fd, _notifiers.TryGetValue(fd, out Action? a) ? a : () => { });
    }

    public void Close(int fd)
    {
        if (!_given.Remove(fd))
        {
            Problems.Add($"closed descriptor {fd} it does not own (or twice)");
        }
    }

    private sealed class Backing(FakeVhostPlatform owner, byte* host, ulong length) : IRegionBacking
    {
        private bool _released;

        public byte* Host => host;

        public ulong Length => length;

        public void Release()
        {
            if (_released)
            {
                owner.Problems.Add("a region was released twice");
            }

            _released = true;
            owner.Unmapped++;
        }
    }

    private sealed class Notifier(FakeVhostPlatform owner, int fd, Action action) : IVhostNotifier
    {
        public bool Signal()
        {
            owner.Signals++;
            action();
            return true;
        }

        public void Dispose() => owner.Close(fd);
    }
}
