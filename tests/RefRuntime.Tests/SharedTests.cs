using System;
using System.Threading;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>Shared&lt;T&gt;: a disposable managed resource disposed exactly once by its last owner.</summary>
public sealed class SharedTests
{
    private sealed class Resource : IDisposable
    {
        public int Disposals;

        public void Dispose() => Interlocked.Increment(ref Disposals);
    }

    [Fact]
    public void LastOwnerDisposes_ExactlyOnce()
    {
        var r = new Resource();
        var a = Shared<Resource>.Create(r);
        Shared<Resource> b = a.Clone();
        Assert.Equal(2, a.Owners);
        Assert.Same(r, b.Value);
        a.Dispose();
        a.Dispose();
        Assert.Equal(0, r.Disposals);
        Assert.Throws<ObjectDisposedException>(() => a.Value);
        b.Dispose();
        Assert.Equal(1, r.Disposals);
        Assert.Throws<ArgumentNullException>(() => Shared<Resource>.Create(null!));
    }

    // Owners on many threads clone and dispose; the resource is disposed once, after all.
    [Fact]
    [Trait("Category", "Stress")]
    public void ManyThreads_DisposedOnceAfterAllOwners()
    {
        for (int round = 0; round < 50; round++)
        {
            var r = new Resource();
            var root = Shared<Resource>.Create(r);
            var threads = new Thread[4];
            int usedAfterDispose = 0;
            for (int t = 0; t < threads.Length; t++)
            {
                Shared<Resource> mine = root.Clone();
                threads[t] = new Thread(() =>
                {
                    for (int i = 0; i < 1000; i++)
                    {
                        using Shared<Resource> c = mine.Clone();
                        if (Volatile.Read(ref c.Value.Disposals) != 0)
                        {
                            Interlocked.Increment(ref usedAfterDispose);
                        }
                    }

                    mine.Dispose();
                });
                threads[t].Start();
            }

            root.Dispose();
            foreach (Thread t in threads)
            {
                t.Join();
            }

            Assert.Equal(0, usedAfterDispose);
            Assert.Equal(1, r.Disposals);
        }
    }
}
