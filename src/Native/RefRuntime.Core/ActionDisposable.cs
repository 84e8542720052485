// A registration that runs an action when disposed (an interrupt hookup, a subscription).

using System;
using System.Threading;

namespace RefRuntime.Core;

/// <summary>Runs an action once, on the first <see cref="Dispose"/>.</summary>
/// <param name="action">What undoes the registration.</param>
public sealed class ActionDisposable(Action action) : IDisposable
{
    private Action? _action = action ?? throw new ArgumentNullException(nameof(action));

    /// <summary>Runs the action; later calls do nothing.</summary>
    public void Dispose() => Interlocked.Exchange(ref _action, null)?.Invoke();
}
