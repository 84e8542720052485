// Unique ownership of an Arc object that is not (or no longer) shared: the payload may be
// initialised or mutated without synchronisation; Share() turns it into the first strong
// reference. Spec: docs/arc.md (UniqueArc, into_unique_or_drop). While unique, the object's strong count
// is 0, so weak references cannot upgrade (see RawArc.IntoUniqueOrDrop).

using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Threading;
using RefRuntime.Core.Sync;

namespace RefRuntime;

/// <summary>Unique ownership of an <see cref="Arc{T}"/> object before (or after) it is shared.</summary>
/// <typeparam name="T">The payload type.</typeparam>
public sealed unsafe class UniqueArc<T> : IDisposable
    where T : unmanaged
{
    private nint _header;
    private readonly StackTrace? _creation;

    internal UniqueArc(ArcHeader* header)
    {
        _header = (nint)header;
        _creation = LeakDiagnostics.CaptureIfEnabled();
    }

    /// <summary>Finalizer: the handle was not disposed. Reports the leak and destroys the object.</summary>
    ~UniqueArc()
    {
        ArcHeader* h = (ArcHeader*)_header;
        if (h != null)
        {
            LeakDiagnostics.Report(GetType(), _creation);
            // SAFETY: this handle still owned the object uniquely.
            RawArc.DropUnique(h);
        }
    }

    /// <summary>Creates an object owned uniquely, holding <paramref name="value"/>.</summary>
    /// <param name="value">The initial payload.</param>
    /// <param name="onDestroy">As in <see cref="Arc{T}.Create"/>.</param>
    /// <returns>The unique owner.</returns>
    public static UniqueArc<T> Create(T value, Action<T>? onDestroy = null) =>
        new(RawArc.DangerousHeader(Arc<T>.CreateRaw(value, onDestroy, unique: true)));

    /// <summary>The payload, mutable without synchronisation: nobody else can reach it.</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed or shared.</exception>
    public ref T Value => ref Unsafe.AsRef<T>(RawArc.Payload(Header));

    /// <summary>Publishes the object: returns its first strong reference and consumes this handle.</summary>
    /// <returns>The strong handle.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed or already shared.</exception>
    public Arc<T> Share()
    {
        ArcHeader* h = (ArcHeader*)Interlocked.Exchange(ref _header, 0);
        if (h == null)
        {
            ThrowDisposed();
        }

        GC.SuppressFinalize(this);
        // SAFETY: the exchange gave this call unique ownership.
        RawArc.ShareUnique(h);
        return Arc<T>.Adopt(h);
    }

    /// <summary>Destroys the object (runs its destructor). Safe to call more than once.</summary>
    public void Dispose()
    {
        ArcHeader* h = (ArcHeader*)Interlocked.Exchange(ref _header, 0);
        if (h != null)
        {
            GC.SuppressFinalize(this);
            // SAFETY: the exchange gave this call unique ownership, exactly once.
            RawArc.DropUnique(h);
        }
    }

    private ArcHeader* Header
    {
        get
        {
            ArcHeader* h = (ArcHeader*)Volatile.Read(ref _header);
            if (h == null)
            {
                ThrowDisposed();
            }

            return h;
        }
    }

    [DoesNotReturn]
    private static void ThrowDisposed() => throw new ObjectDisposedException($"UniqueArc<{typeof(T).Name}>", "The UniqueArc was disposed or already shared.");
}
