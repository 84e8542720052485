// A weak reference to an Arc<T> object: keeps the allocation, not the payload. Upgrade gives a
// strong reference unless the last strong one is gone (never from zero). Spec: docs/arc.md.

using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using RefRuntime.Core.Sync;

namespace RefRuntime;

/// <summary>A weak reference to an <see cref="Arc{T}"/> object (Rust's <c>Weak</c>, saturating).</summary>
/// <typeparam name="T">The payload type.</typeparam>
/// <remarks>Each handle owns one weak reference: <see cref="Clone"/> takes another, <see cref="Dispose"/>
/// gives it up (idempotent); use after Dispose throws <see cref="ObjectDisposedException"/>; a
/// forgotten handle is reported by <see cref="LeakDiagnostics"/>.</remarks>
public sealed unsafe class Weak<T> : IDisposable
    where T : unmanaged
{
    // The weak handle (tagged header address); 0 once disposed. An empty weak is represented by
    // _empty with _handle 0.
    private nuint _handle;
    private readonly bool _empty;
    private int _disposed;
    private readonly StackTrace? _creation;

    /// <summary>Creates an empty weak reference: <see cref="TryUpgrade"/> returns <see langword="null"/>, counts are 0.</summary>
    public Weak()
    {
        _empty = true;
    }

    internal Weak(nuint handle)
    {
        _handle = handle;
        _creation = LeakDiagnostics.CaptureIfEnabled();
    }

    /// <summary>Finalizer: the handle was not disposed. Reports the leak and releases the reference.</summary>
    ~Weak()
    {
        if (!_empty && Volatile.Read(ref _disposed) == 0 && _handle != 0)
        {
            LeakDiagnostics.Report(GetType(), _creation);
            // SAFETY: the handle still owned its weak reference.
            RawArc.DropWeak((ArcHeader*)(_handle & ~RawArc.WeakTag));
        }
    }

    /// <summary>Whether this is the empty weak reference.</summary>
    public bool IsEmpty => _empty;

    /// <summary>Takes a strong reference unless the object's last strong reference is gone.</summary>
    /// <returns>A new strong handle, or <see langword="null"/>.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public Arc<T>? TryUpgrade()
    {
        ArcHeader* h = Header;
        // SAFETY: this handle owns a weak reference, which keeps the header allocated.
        // The header was validated when this handle was made, and its payload holds a T.
        return h != null && RawArc.Upgrade(h) ? Arc<T>.Adopt(h) : null;
    }

    /// <summary>The strong count (0 once the payload is gone, or for the empty weak).</summary>
    public int StrongCount
    {
        get
        {
            ArcHeader* h = Header;
            if (h == null)
            {
                return 0;
            }

            RawArc.Counts(h, out int strong, out _);
            return strong;
        }
    }

    /// <summary>The number of weak references (0 for the empty weak).</summary>
    public int WeakCount
    {
        get
        {
            ArcHeader* h = Header;
            if (h == null)
            {
                return 0;
            }

            RawArc.Counts(h, out _, out int weak);
            return weak;
        }
    }

    /// <summary>Takes another weak reference.</summary>
    /// <returns>A new handle owning it.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public Weak<T> Clone()
    {
        ArcHeader* h = Header;
        if (h == null)
        {
            return new Weak<T>();
        }

        // SAFETY: this handle owns a weak reference.
        RawArc.CloneWeak(h);
        return new Weak<T>(_handle);
    }

    /// <summary>Whether two weak handles name the same allocation (two empty weaks are equal).</summary>
    /// <param name="other">Another weak handle.</param>
    /// <returns><see langword="true"/> for the same allocation.</returns>
    public bool PtrEq(Weak<T> other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Header == other.Header;
    }

    /// <summary>Gives up this handle's weak reference. Safe to call more than once.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        GC.SuppressFinalize(this);
        if (!_empty)
        {
            // SAFETY: the exchange gave this call the handle's weak reference, exactly once.
            RawArc.DropWeak((ArcHeader*)(_handle & ~RawArc.WeakTag));
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        Volatile.Read(ref _disposed) != 0 ? $"Weak<{typeof(T).Name}>(disposed)" : _empty ? $"Weak<{typeof(T).Name}>(empty)" : $"Weak<{typeof(T).Name}>(strong {StrongCount}, weak {WeakCount})";

    /// <summary>The header, or null for the empty weak; throws once disposed.</summary>
    private ArcHeader* Header
    {
        get
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                ThrowDisposed();
            }

            return _empty ? null : (ArcHeader*)(_handle & ~RawArc.WeakTag);
        }
    }

    [DoesNotReturn]
    private static void ThrowDisposed() => throw new ObjectDisposedException($"Weak<{typeof(T).Name}>", "The Weak handle was disposed.");
}
