using System;
using System.Threading;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>The safe RCU API: guards, RcuPointer, .NET exceptions for misuse.</summary>
public sealed class RcuTests : IDisposable
{
    private readonly RcuDomain _d = new();

    public void Dispose() => _d.Dispose();

    private sealed class Config(int version) : IDisposable
    {
        public int Version { get; } = version;

        public bool Disposed { get; private set; }

        public void Dispose() => Disposed = true;
    }

    // The guard opens and closes a section; disposing twice is harmless.
    [Fact]
    public void ReadLock_Guard_OpensAndClosesSection()
    {
        RcuReadGuard g = _d.ReadLock();
        Assert.True(_d.InReadSection);
        Assert.True(g.IsActive);
        Assert.True(g.IsSectionOf(_d));
        using (var other = new RcuDomain())
        {
            Assert.False(g.IsSectionOf(other));
        }

        g.Dispose();
        g.Dispose();
        Assert.False(_d.InReadSection);
        using (_d.ReadLock())
        {
            using RcuReadGuard inner = _d.ReadLock();
            Assert.True(_d.InReadSection);
        }

        Assert.False(_d.InReadSection);
    }

    // Synchronize inside its own section is an InvalidOperationException, not a hang.
    [Fact]
    public void Synchronize_InsideSection_Throws()
    {
        using (_d.ReadLock())
        {
            var e = Assert.Throws<InvalidOperationException>(_d.Synchronize);
            Assert.Contains("inside a read-side section", e.Message, StringComparison.Ordinal);
        }

        _d.Synchronize();
    }

    // RcuPointer: Read needs an open guard of the same domain; Replace reclaims after readers.
    [Fact]
    public void RcuPointer_ReadReplaceReclaim()
    {
        var p = new RcuPointer<Config>(_d, new Config(1));
        using (RcuReadGuard g = _d.ReadLock())
        {
            Assert.Equal(1, p.Read(g)!.Version);
        }

        Config? reclaimed = null;
        p.Replace(new Config(2), old =>
        {
            reclaimed = old;
            old.Dispose();
        });
        Assert.Equal(1, reclaimed!.Version);
        Assert.True(reclaimed.Disposed);

        // (A guard is a ref struct: the compiler refuses to capture it in a lambda, so these
        // checks cannot use Assert.Throws.)
        RcuReadGuard closed = _d.ReadLock();
        closed.Dispose();
        Assert.True(ThrowsArgument(p, closed));
        using var other = new RcuDomain();
        using (RcuReadGuard og = other.ReadLock())
        {
            Assert.True(ThrowsArgument(p, og));
        }

        using (RcuReadGuard g = _d.ReadLock())
        {
            Assert.Throws<InvalidOperationException>(() => p.Replace(new Config(3)));
            Assert.Equal(2, p.Read(g)!.Version); // nothing was published by the refused call
        }
    }

    private static bool ThrowsArgument(RcuPointer<Config> p, scoped in RcuReadGuard g)
    {
        try
        {
            p.Read(g);
            return false;
        }
        catch (ArgumentException)
        {
            return true;
        }
    }

    // ReplaceDeferred: the old value is disposed after a grace period, off the caller's thread.
    [Fact]
    public void RcuPointer_ReplaceDeferred_ReclaimsAfterGracePeriod()
    {
        var first = new Config(1);
        var p = new RcuPointer<Config>(_d, first);
        var ready = new ManualResetEventSlim();
        var release = new ManualResetEventSlim();
        var reader = new Thread(() =>
        {
            using RcuReadGuard g = _d.ReadLock();
            Config seen = p.Read(g)!;
            ready.Set();
            release.Wait();
            Assert.False(seen.Disposed); // still valid inside the section
        });
        reader.Start();
        ready.Wait();
        p.ReplaceDeferred(new Config(2), c => c.Dispose());
        Thread.Sleep(100);
        Assert.False(first.Disposed);
        release.Set();
        reader.Join();
        _d.Barrier();
        Assert.True(first.Disposed);
    }

    // Polled grace periods through the safe API.
    [Fact]
    public void StartPoll_Poll_EventuallyDone()
    {
        RcuCookie c = _d.StartPoll();
        SpinWait.SpinUntil(() => _d.Poll(c), TimeSpan.FromMinutes(5)); // a hang guard; returns as soon as it is done
        Assert.True(_d.Poll(c));
    }

    // Misuse of the domain's lifetime: the default domain cannot be disposed; barrier from a callback throws.
    [Fact]
    public void Misuse_ThrowsInvalidOperation()
    {
        Assert.Throws<InvalidOperationException>(() => RcuDomain.Default.Dispose());
        Exception? inner = null;
        _d.Call(() =>
        {
            try
            {
                _d.Barrier();
            }
            catch (InvalidOperationException e)
            {
                inner = e;
            }
        });
        _d.Barrier();
        Assert.NotNull(inner);
        Assert.Throws<ArgumentOutOfRangeException>(() => _d.MaxPendingCallbacks = 0);
    }

    // A reader that keeps a grace period waiting past the threshold is reported as an RcuStall
    // of this namespace, naming its thread. The reader holds on until the report arrives.
    [Fact]
    public void SetStallHandler_LongReader_ReportedWithThread()
    {
        using var reported = new ManualResetEventSlim();
        RcuStall? stall = null;
        _d.SetStallHandler(TimeSpan.FromMilliseconds(20), s =>
        {
            stall ??= s;
            reported.Set();
        });
        using var inSection = new ManualResetEventSlim();
        int readerThread = 0;
        var reader = new Thread(() =>
        {
            readerThread = Environment.CurrentManagedThreadId;
            using (_d.ReadLock())
            {
                inSection.Set();
                reported.Wait(TimeSpan.FromMinutes(5)); // a hang guard
            }
        });
        reader.Start();
        Assert.True(inSection.Wait(TimeSpan.FromMinutes(5)));
        _d.Synchronize(); // waits for the reader, which leaves once the stall is reported
        reader.Join();
        Assert.True(reported.IsSet);
        Assert.Equal(readerThread, stall!.Value.ThreadId);
        Assert.True(stall.Value.Waited >= TimeSpan.FromMilliseconds(20));
        _d.SetStallHandler(TimeSpan.FromMilliseconds(20), null); // off
    }
}
