// Sharing a disposable managed resource among threads: every owner holds a Shared<T> handle;
// the resource is disposed exactly once, when the last handle is disposed. The count is a
// saturating RefCount, so an owner bug (a handle used after the resource went) is refused, and
// an overflow leaks rather than disposing early.

using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Threading;

namespace RefRuntime;

/// <summary>
/// One owner's share of a disposable managed resource. <see cref="Clone"/> adds an owner,
/// <see cref="Dispose"/> removes one; the last <see cref="Dispose"/> disposes the resource, exactly once.
/// </summary>
/// <typeparam name="T">The resource type.</typeparam>
public sealed class Shared<T> : IDisposable
    where T : class, IDisposable
{
    private sealed class Box(T resource)
    {
        public readonly T Resource = resource;
        public readonly RefCount Owners = new(1);
    }

    private Box? _box;
    private readonly StackTrace? _creation;

    private Shared(Box box)
    {
        _box = box;
        _creation = LeakDiagnostics.CaptureIfEnabled();
    }

    /// <summary>Finalizer: the handle was not disposed. Reports the leak and releases its share.</summary>
    ~Shared()
    {
        Box? box = _box;
        if (box is not null)
        {
            LeakDiagnostics.Report(GetType(), _creation);
            Release(box);
        }
    }

    /// <summary>Starts sharing <paramref name="resource"/>; the returned handle is its first owner.</summary>
    /// <param name="resource">The resource; disposed when the last owner lets go.</param>
    /// <returns>The first owner's handle.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="resource"/> is <see langword="null"/>.</exception>
    public static Shared<T> Create(T resource)
    {
        ArgumentNullException.ThrowIfNull(resource);
        return new Shared<T>(new Box(resource));
    }

    /// <summary>The resource, for as long as this handle is not disposed.</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public T Value => Current.Resource;

    /// <summary>The number of owners (a snapshot).</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public int Owners => Current.Owners.Value;

    /// <summary>Adds an owner.</summary>
    /// <returns>The new owner's handle.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public Shared<T> Clone()
    {
        Box box = Current;
        // This handle's share keeps the count above zero, so a plain increment is correct.
        box.Owners.Inc();
        return new Shared<T>(box);
    }

    /// <summary>Removes this owner; the last one disposes the resource. Safe to call more than once.</summary>
    public void Dispose()
    {
        Box? box = Interlocked.Exchange(ref _box, null);
        if (box is not null)
        {
            GC.SuppressFinalize(this);
            Release(box);
        }
    }

    private static void Release(Box box)
    {
        if (box.Owners.DecAndTest())
        {
            box.Resource.Dispose();
        }
    }

    private Box Current
    {
        get
        {
            Box? box = Volatile.Read(ref _box);
            if (box is null)
            {
                ThrowDisposed();
            }

            return box;
        }
    }

    [DoesNotReturn]
    private static void ThrowDisposed() => throw new ObjectDisposedException($"Shared<{typeof(T).Name}>", "This owner's handle was disposed.");
}
