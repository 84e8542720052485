// The safe .NET face of revocation (RefRuntime.Core.Revoke holds the algorithms): a revocable
// resource with a ref-struct access guard, and a call-draining gate for a whole object's API.

using System;
using System.Runtime.CompilerServices;
using RefRuntime.Core;
using CoreGate = RefRuntime.Core.Revoke.CallGate;
using CoreReader = RefRuntime.Core.Rcu.RcuReader;

namespace RefRuntime;

/// <summary>Thrown when a device (or revoked resource) is gone: the .NET form of "no device".</summary>
public sealed class NoDeviceException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    public NoDeviceException()
        : base("The device is gone: it was removed or its resource revoked.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public NoDeviceException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="inner">The cause.</param>
    public NoDeviceException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// A resource that can be revoked while others may still try to use it (Rust-for-Linux's
/// <c>Revocable</c>): access is lock-free; <see cref="Revoke"/> makes new accesses fail at once,
/// waits for accesses in flight, then releases the resource exactly once.
/// </summary>
/// <typeparam name="T">The resource type.</typeparam>
public sealed class Revocable<T>
    where T : class
{
    private readonly Core.Revoke.RawRevocable<T> _core;

    /// <summary>Wraps <paramref name="resource"/>.</summary>
    /// <param name="domain">The RCU domain protecting accesses (default: <see cref="RcuDomain.Default"/>).</param>
    /// <param name="resource">The resource.</param>
    /// <param name="release">Runs once after revocation (default: Dispose, for an IDisposable).</param>
    public Revocable(T resource, RcuDomain? domain = null, Action<T>? release = null)
    {
        ArgumentNullException.ThrowIfNull(resource);
        _core = new Core.Revoke.RawRevocable<T>((domain ?? RcuDomain.Default).Core, resource, release);
    }

    /// <summary>Whether the resource has been revoked.</summary>
    public bool IsRevoked => _core.IsRevoked;

    /// <summary>
    /// Tries to access the resource: on success the guard holds it (and a read-side section)
    /// until disposed, on this thread; keep the access short and non-blocking.
    /// </summary>
    /// <param name="guard">The access; dispose it with <c>using</c>.</param>
    /// <returns><see langword="false"/> once the resource is revoked.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe bool TryAccess(out RevocableGuard<T> guard)
    {
        T? v = _core.TryAccess(out CoreReader* r);
        guard = v is null ? default : new RevocableGuard<T>(v, r);
        return v is not null;
    }

    /// <summary>Revokes: new accesses fail at once, accesses in flight finish, the resource is released once.</summary>
    /// <returns>Whether this call revoked it (concurrent revokes: exactly one returns true).</returns>
    /// <exception cref="InvalidOperationException">Called during an access on this thread (it would wait for itself).</exception>
    public bool Revoke()
    {
        if (_core.Revoke(out bool revoked) == RrStatus.WouldDeadlock)
        {
            throw new InvalidOperationException("Revocable.Revoke was called during an access on the same thread; end the access first.");
        }

        return revoked;
    }

    /// <summary>Revokes without waiting, for callers who can prove no access is in flight.</summary>
    /// <returns>Whether this call revoked it.</returns>
    public bool RevokeWithoutWaiting() => _core.RevokeNoSync();
}

/// <summary>An access to a revocable resource; a ref struct that stays on the accessing thread.</summary>
/// <typeparam name="T">The resource type.</typeparam>
public unsafe ref struct RevocableGuard<T>
    where T : class
{
    private CoreReader* _reader;

    internal RevocableGuard(T value, CoreReader* reader)
    {
        _value = value;
        _reader = reader;
    }

    private T? _value;

    /// <summary>The resource (null for a default guard, or after <see cref="Dispose"/>).</summary>
    public readonly T? Value => _value;

    /// <summary>Ends the access. Safe to call more than once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dispose()
    {
        CoreReader* r = _reader;
        if (r != null)
        {
            _reader = null;
            _value = null;
            // SAFETY: r is this thread's record (a ref struct never leaves its thread).
            Core.Rcu.RawRcuDomain.ReadUnlock(r);
        }
    }
}

/// <summary>
/// A call-draining gate in front of an object's API: each call enters and leaves; 
/// <see cref="Disconnect"/> refuses new calls at once and waits until every call in flight has
/// left; later calls fail with <see cref="NoDeviceException"/>. Entering and leaving scale with
/// the cores (no shared counter).
/// </summary>
public sealed class DeviceGate : IDisposable
{
    private readonly CoreGate _core = new();

    /// <summary>Whether the gate has been disconnected.</summary>
    public bool IsDisconnected => _core.IsDisconnected;

    /// <summary>Enters a call; dispose the guard to leave.</summary>
    /// <returns>The call guard.</returns>
    /// <exception cref="NoDeviceException">The gate is disconnected.</exception>
    public unsafe GateCall Enter()
    {
        CoreReader* r = _core.Enter();
        if (r == null)
        {
            throw new NoDeviceException();
        }

        return new GateCall(r);
    }

    /// <summary>Enters a call unless the gate is disconnected.</summary>
    /// <param name="call">The call guard on success.</param>
    /// <returns><see langword="false"/> when disconnected.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public unsafe bool TryEnter(out GateCall call)
    {
        CoreReader* r = _core.Enter();
        call = r == null ? default : new GateCall(r);
        return r != null;
    }

    /// <summary>Refuses new calls, then waits (blocking, not spinning) until every call in flight has left.</summary>
    /// <returns>Whether this call closed the gate (later calls return false at once after draining).</returns>
    /// <exception cref="InvalidOperationException">Called from inside a call through this gate (new calls are refused, but the calls in flight cannot be waited for).</exception>
    public bool Disconnect()
    {
        if (_core.Disconnect(out bool first) == RrStatus.WouldDeadlock)
        {
            throw new InvalidOperationException("DeviceGate.Disconnect was called from inside a call through the gate; new calls are refused, but the calls in flight (this one included) cannot be waited for here.");
        }

        return first;
    }

    /// <summary>Frees the gate.</summary>
    /// <exception cref="InvalidOperationException">A call is still in flight.</exception>
    public void Dispose() => _core.Dispose();
}

/// <summary>A call through a <see cref="DeviceGate"/>; a ref struct that stays on the calling thread.</summary>
public unsafe ref struct GateCall
{
    private CoreReader* _reader;

    internal GateCall(CoreReader* reader) => _reader = reader;

    /// <summary>Leaves the call. Safe to call more than once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Dispose()
    {
        CoreReader* r = _reader;
        if (r != null)
        {
            _reader = null;
            // SAFETY: r is this thread's record in the gate's domain.
            CoreGate.Leave(r);
        }
    }
}
