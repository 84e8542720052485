using System;
using System.Threading;

namespace RefRuntime.Core.Tests.Support;

/// <summary>
/// Runs a blocking call on a dedicated thread so a test can check that it has not finished yet
/// (a grace period still waiting) and later that it has.
/// </summary>
internal sealed class Background<T>
{
    private readonly Thread _thread;
    private T? _result;
    private Exception? _error;

    private Background(Func<T> call)
    {
        _thread = new Thread(() =>
        {
            try
            {
                _result = call();
            }
            catch (Exception e)
            {
                _error = e;
            }
        }) { IsBackground = true };
        _thread.Start();
    }

    public static Background<T> Run(Func<T> call) => new(call);

    /// <summary>Whether the call finished within <paramref name="milliseconds"/>.</summary>
    public bool Wait(int milliseconds) => _thread.Join(milliseconds);

    /// <summary>Whether the call finished within <paramref name="timeout"/>.</summary>
    public bool Wait(TimeSpan timeout) => _thread.Join(timeout);

    /// <summary>The call's result (rethrows its exception).</summary>
    public T Result
    {
        get
        {
            _thread.Join();
            return _error is null ? _result! : throw new InvalidOperationException("the background call threw", _error);
        }
    }
}
