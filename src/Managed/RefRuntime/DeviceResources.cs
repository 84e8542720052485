// Managed resources of a device (Linux devres) for .NET code, with the error-path idiom made
// natural: a scope unwinds everything acquired since it opened, in reverse order, unless it was
// committed - so a probe that acquires five things and fails at the fourth releases exactly the
// three before it.
//
//   using var probe = resources.BeginScope();
//   var irq = resources.Add(RequestIrq());          // IDisposable: disposed on unwind
//   resources.Add(() => clock.Disable());           // or any release action
//   ... a throw here unwinds irq and clock, newest first ...
//   probe.Commit();                                 // success: they stay with the device

using System;
using CoreDevres = RefRuntime.Core.Revoke.DevresList;

namespace RefRuntime;

/// <summary>A device's release actions, run last-in-first-out on removal (see file comment). Thread-safe.</summary>
public sealed class DeviceResources : IDisposable
{
    private readonly CoreDevres _core = new();

    /// <summary>Registers <paramref name="release"/> to run when the device's resources are released.</summary>
    /// <param name="release">The release action.</param>
    public void Add(Action release) => _core.Add(release);

    /// <summary>Registers a disposable resource and returns it.</summary>
    /// <typeparam name="T">The resource type.</typeparam>
    /// <param name="resource">The resource; disposed on release.</param>
    /// <returns><paramref name="resource"/>.</returns>
    public T Add<T>(T resource)
        where T : IDisposable
    {
        ArgumentNullException.ThrowIfNull(resource);
        _core.Add(resource.Dispose);
        return resource;
    }

    /// <summary>Removes the newest registration of <paramref name="release"/> without running it.</summary>
    /// <param name="release">The action.</param>
    /// <returns>Whether it was registered.</returns>
    public bool Remove(Action release) => _core.Remove(release);

    /// <summary>Removes the newest registration of <paramref name="release"/> and runs it now.</summary>
    /// <param name="release">The action.</param>
    /// <returns>Whether it was registered.</returns>
    public bool Release(Action release) => _core.Release(release);

    /// <summary>Opens a scope: everything added until it is committed is unwound if the scope is disposed first.</summary>
    /// <returns>The scope.</returns>
    public DevresScope BeginScope() => new(_core, _core.OpenGroup());

    /// <summary>Releases everything, newest first; every action runs even if some throw.</summary>
    /// <returns>How many actions ran.</returns>
    /// <exception cref="AggregateException">One or more actions threw (all were still run).</exception>
    public int ReleaseAll() => _core.ReleaseAll();

    /// <summary>Releases everything (<see cref="ReleaseAll"/>).</summary>
    public void Dispose() => _core.ReleaseAll();
}

/// <summary>A group of acquisitions that is unwound on dispose unless committed.</summary>
public sealed class DevresScope : IDisposable
{
    private readonly CoreDevres _list;
    private readonly ulong _group;
    private bool _done;

    internal DevresScope(CoreDevres list, ulong group)
    {
        _list = list;
        _group = group;
    }

    /// <summary>Keeps everything acquired in the scope with the device (released when the device is).</summary>
    /// <exception cref="InvalidOperationException">The scope was already committed or unwound.</exception>
    public void Commit()
    {
        if (_done)
        {
            throw new InvalidOperationException("DevresScope: already committed or unwound.");
        }

        _done = true;
        _list.CloseGroup(_group);
        _list.RemoveGroup(_group);
    }

    /// <summary>Unwinds everything acquired in the scope, newest first, unless it was committed.</summary>
    public void Dispose()
    {
        if (!_done)
        {
            _done = true;
            _list.ReleaseGroup(_group);
        }
    }
}
