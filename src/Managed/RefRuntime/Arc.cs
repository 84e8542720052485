// The safe .NET face of Arc: a strong reference to a native object (header + payload of an
// unmanaged T) that C code can hold too. Spec: docs/arc.md; the algorithm is
// RefRuntime.Core.Sync.RawArc.
//
// Ownership is explicit: each Arc<T> handle owns exactly one strong reference. Clone() takes
// another (a new handle); Dispose() gives it up (idempotent); any use after Dispose throws
// ObjectDisposedException. A handle the program forgot to dispose is counted and reported by
// LeakDiagnostics when it is finalized, and its reference is released then.

using System;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Threading;
using RefRuntime.Core;
using RefRuntime.Core.Sync;

namespace RefRuntime;

/// <summary>
/// A strong reference to a shared native object holding a <typeparamref name="T"/>: Rust's
/// <c>Arc</c>, saturating instead of aborting. The payload lives in native memory at a fixed
/// address, shareable with C (<see cref="DangerousGetPayload"/>, <see cref="FromRaw"/>).
/// </summary>
/// <typeparam name="T">The payload type (unmanaged: it lives in native memory).</typeparam>
/// <remarks>Thread-safe: handles may be cloned, dropped and read from any thread. Concurrent
/// writes to the payload are the caller's to synchronise (use <see cref="IsUnique"/> to prove
/// exclusive access).</remarks>
public sealed unsafe class Arc<T> : IDisposable
    where T : unmanaged
{
    // The owned reference's header address; 0 once disposed or consumed. An nint so that
    // Interlocked can take it by ref (a pointer into a movable object would be a GC hole).
    private nint _header;
    private readonly StackTrace? _creation;

    private Arc(ArcHeader* header)
    {
        _header = (nint)header;
        _creation = LeakDiagnostics.CaptureIfEnabled();
    }

    /// <summary>Finalizer: the handle was not disposed. Reports the leak and releases the reference.</summary>
    ~Arc()
    {
        ArcHeader* h = (ArcHeader*)_header;
        if (h != null)
        {
            LeakDiagnostics.Report(GetType(), _creation);
            // SAFETY: this handle still owned its strong reference (never disposed).
            RawArc.Drop(h);
        }
    }

    /// <summary>Creates a shared object holding <paramref name="value"/>.</summary>
    /// <param name="value">The initial payload.</param>
    /// <param name="onDestroy">Called once with the final payload when the last strong reference
    /// goes (on whichever thread, possibly a C caller's or the finalizer thread); must not throw.</param>
    /// <returns>The first strong reference.</returns>
    /// <exception cref="OutOfMemoryException">The native allocation failed.</exception>
    public static Arc<T> Create(T value, Action<T>? onDestroy = null)
    {
        void* payload = CreateRaw(value, onDestroy, unique: false);
        return new Arc<T>(RawArc.DangerousHeader(payload));
    }

    internal static void* CreateRaw(T value, Action<T>? onDestroy, bool unique)
    {
        void* context = onDestroy is null ? null : ArcDestructor.NewContext(onDestroy);
        delegate* unmanaged<void*, void*, void> dtor = onDestroy is null ? null : ArcDestructor.Pointer;
        RrStatus s = unique
            ? RawArc.CreateUnique((nuint)sizeof(T), (nuint)AlignOf(), dtor, context, out void* payload)
            : RawArc.Create((nuint)sizeof(T), (nuint)AlignOf(), dtor, context, out payload);
        if (s != RrStatus.Ok)
        {
            if (context != null)
            {
                ArcDestructor.FreeContext(context);
            }

            Errors.ThrowIfFailed(s, nameof(value), $"Arc<{typeof(T).Name}>.Create");
        }

        // SAFETY: payload is a fresh zeroed block of sizeof(T) bytes, aligned for T.
        Unsafe.Write(payload, value);
        return payload;
    }

    /// <summary>Takes ownership of a strong reference handed over as a raw payload pointer (by C code, or by <see cref="IntoRaw"/>).</summary>
    /// <param name="payload">The payload pointer; its reference now belongs to the returned handle.</param>
    /// <returns>A handle owning that reference.</returns>
    /// <exception cref="ArgumentException"><paramref name="payload"/> is null or not a live RefRuntime object.</exception>
    /// <remarks>The payload must hold a <typeparamref name="T"/>; a payload smaller than
    /// <c>sizeof(T)</c> is refused.</remarks>
    public static Arc<T> FromRaw(nint payload)
    {
        RrStatus s = RawArc.TryGetHeader((void*)payload, out ArcHeader* h);
        if (s != RrStatus.Ok)
        {
            // The message only on failure: typeof(T).Name and the string cost tens of ns a call.
            Errors.ThrowIfFailed(s, nameof(payload), $"Arc<{typeof(T).Name}>.FromRaw");
        }

        // SAFETY: h is live (validated).
        if (h->Size < (ulong)sizeof(T))
        {
            throw new ArgumentException($"Arc<{typeof(T).Name}>.FromRaw: the payload has {h->Size} bytes, less than sizeof({typeof(T).Name}) = {sizeof(T)}.", nameof(payload));
        }

        return new Arc<T>(h);
    }

    /// <summary>A handle owning a strong reference the caller already holds on a validated header (no check repeated).</summary>
    /// <param name="h">A live header whose strong reference passes to the handle.</param>
    /// <returns>The handle.</returns>
    internal static Arc<T> Adopt(ArcHeader* h) => new(h);

    /// <summary>Whether this handle has been disposed (or consumed by <see cref="IntoRaw"/> / <see cref="IntoUniqueOrDrop"/>).</summary>
    public bool IsDisposed => Volatile.Read(ref _header) == 0;

    /// <summary>A copy of the payload.</summary>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public T Value => Unsafe.Read<T>(RawArc.Payload(Header));

    /// <summary>
    /// A reference to the payload in native memory, valid only while this handle (or another
    /// strong reference) is alive: using it after the last owner is gone is a use-after-free.
    /// </summary>
    /// <returns>The payload.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public ref T DangerousGetRef() => ref Unsafe.AsRef<T>(RawArc.Payload(Header));

    /// <summary>The payload address, to pass to C without transferring ownership (C may clone it).</summary>
    /// <returns>The payload pointer.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public nint DangerousGetPayload() => (nint)RawArc.Payload(Header);

    /// <summary>The strong count (a snapshot; <see cref="RefCount.Saturated"/> when saturated).</summary>
    public int StrongCount
    {
        get
        {
            RawArc.Counts(Header, out int strong, out _);
            return strong;
        }
    }

    /// <summary>The number of weak references (a snapshot).</summary>
    public int WeakCount
    {
        get
        {
            RawArc.Counts(Header, out _, out int weak);
            return weak;
        }
    }

    /// <summary>Whether this is the only reference of any kind (strong = 1, no weak): the payload may then be mutated without synchronisation.</summary>
    public bool IsUnique => RawArc.IsUnique(Header);

    /// <summary>Takes another strong reference.</summary>
    /// <returns>A new handle owning it.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public Arc<T> Clone()
    {
        ArcHeader* h = Header;
        // SAFETY: this handle owns a strong reference (not disposed: checked by Header).
        RawArc.Clone(h);
        return new Arc<T>(h);
    }

    /// <summary>Creates a weak reference.</summary>
    /// <returns>A new weak handle.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public Weak<T> Downgrade() => new(RawArc.Downgrade(Header));

    /// <summary>Whether two handles name the same object.</summary>
    /// <param name="other">Another handle.</param>
    /// <returns><see langword="true"/> for the same object.</returns>
    public bool PtrEq(Arc<T> other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return Header == other.Header;
    }

    /// <summary>
    /// Gives up this handle's reference; if it was the last strong reference, returns unique
    /// ownership of the object instead of destroying it. Consumes this handle either way.
    /// </summary>
    /// <returns>The unique owner, or <see langword="null"/> when other strong references remain.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public UniqueArc<T>? IntoUniqueOrDrop()
    {
        ArcHeader* h = Take();
        GC.SuppressFinalize(this);
        // SAFETY: Take transferred this handle's strong reference to us.
        return RawArc.IntoUniqueOrDrop(h) ? new UniqueArc<T>(h) : null;
    }

    /// <summary>Hands this handle's strong reference out as a raw payload pointer (for C); consumes the handle.</summary>
    /// <returns>The payload pointer, owning one strong reference.</returns>
    /// <exception cref="ObjectDisposedException">The handle was disposed.</exception>
    public nint IntoRaw()
    {
        ArcHeader* h = Take();
        GC.SuppressFinalize(this);
        return (nint)RawArc.Payload(h);
    }

    /// <summary>Gives up this handle's strong reference. Safe to call more than once.</summary>
    public void Dispose()
    {
        ArcHeader* h = (ArcHeader*)Interlocked.Exchange(ref _header, 0);
        if (h != null)
        {
            GC.SuppressFinalize(this);
            // SAFETY: the exchange gave this call the handle's reference, exactly once.
            RawArc.Drop(h);
        }
    }

    /// <inheritdoc/>
    public override string ToString() =>
        _header == 0 ? $"Arc<{typeof(T).Name}>(disposed)" : $"Arc<{typeof(T).Name}>(strong {StrongCount}, weak {WeakCount})";

    private ArcHeader* Header
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
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

    private ArcHeader* Take()
    {
        ArcHeader* h = (ArcHeader*)Interlocked.Exchange(ref _header, 0);
        if (h == null)
        {
            ThrowDisposed();
        }

        return h;
    }

    internal static int AlignOf() => sizeof(AlignHelper) - sizeof(T);

    [StructLayout(LayoutKind.Sequential)]
    private struct AlignHelper
    {
        public byte Pad;
        public T Value;
    }

    [DoesNotReturn]
    private static void ThrowDisposed() => throw new ObjectDisposedException($"Arc<{typeof(T).Name}>", "The Arc handle was disposed; clone it before disposing if the object is still needed.");
}
