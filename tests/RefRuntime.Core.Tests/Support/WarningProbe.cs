using System.Threading;
using RefRuntime.Core.Sync;
using Xunit;

namespace RefRuntime.Core.Tests.Support;

/// <summary>
/// Snapshots the process-wide refcount warning counters and counts handler calls, so a test can
/// assert exactly which warnings its own operations raised.
/// </summary>
internal sealed unsafe class WarningProbe : System.IDisposable
{
    private readonly ulong[] _before = new ulong[Refcount.WarningTypeCount];
    private readonly long[] _handlerCalls = new long[Refcount.WarningTypeCount];
    private readonly RefcountWarnHandler? _previous;

    public WarningProbe()
    {
        for (int t = 0; t < _before.Length; t++)
        {
            _before[t] = Refcount.WarningCount((RefcountWarning)t);
        }

        _previous = Refcount.SetWarnHandler(OnWarn);
    }

    public int LastValueSeenByHandler { get; private set; }

    private void OnWarn(int* counter, RefcountWarning type)
    {
        Interlocked.Increment(ref _handlerCalls[(int)type]);
        // SAFETY: the handler runs while the counter is alive (its contract).
        LastValueSeenByHandler = Volatile.Read(ref *counter);
    }

    /// <summary>Asserts exactly <paramref name="count"/> warnings of <paramref name="type"/> and no other.</summary>
    public void AssertWarned(RefcountWarning? type, int count = 1)
    {
        for (int t = 0; t < _before.Length; t++)
        {
            ulong want = type.HasValue && (int)type.Value == t ? (ulong)count : 0;
            Assert.Equal(want, Refcount.WarningCount((RefcountWarning)t) - _before[t]);
            Assert.Equal((long)want, Volatile.Read(ref _handlerCalls[t]));
        }
    }

    public void AssertNone() => AssertWarned(null, 0);

    public void Dispose() => Refcount.SetWarnHandler(_previous);
}
