using System;
using System.Threading;

namespace RefRuntime.Benchmarks;

/// <summary>
/// A second thread for two-thread benchmarks: it runs one batch of work each time the measured
/// thread calls <see cref="Go"/>, and <see cref="Wait"/> returns when that batch is done, so both
/// threads do the same work in every invocation. Signalling is by spinning on padded words (a
/// blocking wake-up would dominate short batches). Also serves as the "pong" side of a one-way
/// latency measurement.
/// </summary>
internal sealed class PartnerThread
{
    private readonly Word _request = new();
    private readonly Word _done = new();
    private readonly Word _ball = new();
    private Thread? _thread;
    private volatile bool _stop;

    private sealed class Word
    {
#pragma warning disable CS0169, IDE0051 // padding: each word on its own cache line
        private long _p0, _p1, _p2, _p3, _p4, _p5, _p6;
#pragma warning restore CS0169, IDE0051
        public int Value;
#pragma warning disable CS0169, IDE0051
        private long _q0, _q1, _q2, _q3, _q4, _q5, _q6;
#pragma warning restore CS0169, IDE0051
    }

    /// <summary>Starts the partner; each <see cref="Go"/> runs <paramref name="batch"/> once.</summary>
    public void Start(Func<int> batch) => Launch(() =>
    {
        int seen = 0;
        while (!_stop)
        {
            int req = Volatile.Read(ref _request.Value);
            if (req == seen)
            {
                Thread.SpinWait(1);
                continue;
            }

            batch();
            seen = req;
            Volatile.Write(ref _done.Value, req);
        }
    });

    /// <summary>Starts the partner as the pong side of <see cref="PingPong"/>.</summary>
    public void StartPong()
    {
        _ball.Value = 0;
        Launch(() =>
        {
            while (!_stop)
            {
                int v = Volatile.Read(ref _ball.Value);
                if ((v & 1) == 1)
                {
                    Volatile.Write(ref _ball.Value, v + 1);
                }
            }
        });
    }

    /// <summary>Asks the partner to run one batch now.</summary>
    public void Go() => Volatile.Write(ref _request.Value, _request.Value + 1);

    /// <summary>Waits until the partner finished the batch asked for by the last <see cref="Go"/>.</summary>
    public void Wait()
    {
        int want = _request.Value;
        while (Volatile.Read(ref _done.Value) != want)
        {
            Thread.SpinWait(1);
        }
    }

    /// <summary>Runs one batch on the partner and <paramref name="body"/> on the calling thread at the same time; returns when both are done.</summary>
    public long RunBoth(Func<long> body)
    {
        Go();
        long r = body();
        Wait();
        return r;
    }

    /// <summary><paramref name="roundTrips"/> ping-pongs of one cache line; returns the last value.</summary>
    public int PingPong(int roundTrips)
    {
        int v = Volatile.Read(ref _ball.Value);
        for (int i = 0; i < roundTrips; i++)
        {
            Volatile.Write(ref _ball.Value, v + 1);
            v += 2;
            while (Volatile.Read(ref _ball.Value) != v)
            {
            }
        }

        return v;
    }

    public void Stop()
    {
        _stop = true;
        _thread?.Join();
        _thread = null;
        _stop = false;
        _request.Value = 0;
        _done.Value = 0;
    }

    private void Launch(ThreadStart body)
    {
        _stop = false;
        _thread = new Thread(body) { IsBackground = true, Name = "benchmark partner" };
        _thread.Start();
    }
}
