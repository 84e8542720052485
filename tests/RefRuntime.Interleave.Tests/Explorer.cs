// A small systematic concurrency tester in the style of CHESS (Musuvathi & Qadeer): the
// scenario's threads are real threads, but only one runs at a time, and control changes hands
// only at the scheduling points the library's code marks with Interleave.Point (compiled in only
// when RR_INTERLEAVE is defined, as in this project). A depth-first search over the choices at
// those points runs every interleaving with at most `bound` preemptions (a switch away from a
// thread that could have continued), each on fresh state, and checks the scenario's invariant
// after each one. A point whose label starts with "spin" is a thread waiting for another: it
// always hands over (no preemption is charged), and an execution that never ends is reported.
//
// What it cannot see: reorderings by the hardware or the compiler (every explored execution is
// sequentially consistent at the points), and interleavings between points (each stretch of
// code between two points runs atomically). The points sit between every pair of shared-memory
// accesses on the paths under test, so the second limit costs nothing there; the first is what
// the ORDERING comments and the stress tests on real hardware are for.

using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using RefRuntime.Core;

namespace RefRuntime.Interleave.Tests;

/// <summary>One execution's threads and the invariant checked once they have all finished.</summary>
internal sealed class Scenario
{
    public required Action[] Threads { get; init; }

    /// <summary>Checked after every thread finished; returns null when the invariant holds, else why not.</summary>
    public Func<string?> Check { get; init; } = () => null;

    /// <summary>Frees the execution's state (after Check).</summary>
    public Action Cleanup { get; init; } = () => { };
}

/// <summary>The outcome of an exploration.</summary>
internal sealed record Exploration(int Executions, int MaxPoints, int Preemptions, bool Complete, string? Violation)
{
    public override string ToString() => Violation is not null
        ? $"VIOLATION found at execution {Executions} (<= {Preemptions} preemptions): {Violation}"
        : $"{Executions} executions (every interleaving with <= {Preemptions} preemptions{(Complete ? string.Empty : ", stopped at the execution limit")}), up to {MaxPoints} scheduling points each, no violation";
}

/// <summary>The depth-first explorer (see file comment).</summary>
internal static class Explorer
{
    private const int MaxPointsPerExecution = 20_000;
    // A hang guard, not a speed limit: an execution takes milliseconds; a busy machine may stall it for seconds.
    private static readonly TimeSpan StuckTimeout = TimeSpan.FromSeconds(120);

    /// <summary>Explores every schedule of <paramref name="make"/>'s scenario with at most <paramref name="bound"/> preemptions.</summary>
    public static Exploration Explore(Func<Scenario> make, int bound, int maxExecutions = 200_000)
    {
        var prefix = new List<int>();
        int executions = 0, maxPoints = 0;
        while (true)
        {
            var run = new Execution(make(), prefix, bound);
            string? violation = run.Go();
            executions++;
            maxPoints = Math.Max(maxPoints, run.Points);
            if (violation is not null)
            {
                return new Exploration(executions, maxPoints, bound, false, $"{violation}\n{run.Describe()}");
            }

            // Backtrack: the deepest decision with an untried option within the bound.
            List<Decision> d = run.Decisions;
            int k = d.Count - 1;
            int next = -1;
            for (; k >= 0; k--)
            {
                for (int o = d[k].Chosen + 1; o < d[k].Options.Length; o++)
                {
                    if (d[k].PreemptionsBefore + d[k].Cost(o) <= bound)
                    {
                        next = o;
                        break;
                    }
                }

                if (next >= 0)
                {
                    break;
                }
            }

            if (k < 0)
            {
                return new Exploration(executions, maxPoints, bound, true, null);
            }

            if (executions >= maxExecutions)
            {
                return new Exploration(executions, maxPoints, bound, false, null);
            }

            prefix = d.Take(k).Select(x => x.Options[x.Chosen]).ToList();
            prefix.Add(d[k].Options[next]);
        }
    }

    /// <summary>A point where more than one thread could run.</summary>
    internal sealed class Decision
    {
        public required int[] Options { get; init; }

        public int Chosen { get; set; }

        public int PreemptionsBefore { get; init; }

        /// <summary>The thread that was running, if it could have gone on (switching away from it is a preemption).</summary>
        public int Runnable { get; init; } = -1;

        public int Cost(int option) => Runnable >= 0 && Options[option] != Runnable ? 1 : 0;
    }

    private sealed class Worker
    {
        public required int Id { get; init; }

        public SemaphoreSlim Turn { get; } = new(0);

        public bool Done { get; set; }

        public Thread? Thread { get; set; }
    }

    private sealed class Execution
    {
        [ThreadStatic]
        private static Worker? t_me;

        private readonly Scenario _scenario;
        private readonly List<int> _prefix;
        private readonly int _bound;
        private readonly Worker[] _workers;
        private readonly SemaphoreSlim _finished = new(0);
        private readonly List<string> _trace = new();
        private int _preemptions;
        private string? _failure;

        public Execution(Scenario scenario, List<int> prefix, int bound)
        {
            _scenario = scenario;
            _prefix = prefix;
            _bound = bound;
            _workers = Enumerable.Range(0, scenario.Threads.Length).Select(i => new Worker { Id = i }).ToArray();
        }

        public List<Decision> Decisions { get; } = new();

        public int Points { get; private set; }

        public string? Go()
        {
            Core.Interleave.Hook = Point;
            try
            {
                foreach (Worker w in _workers)
                {
                    Action body = _scenario.Threads[w.Id];
                    w.Thread = new Thread(() => Body(w, body)) { IsBackground = true, Name = $"interleave-{w.Id}" };
                    w.Thread.Start();
                }

                // The first thread to run is a choice too (not a preemption).
                Choose(current: null, runnableCurrent: false).Turn.Release();
                if (!_finished.Wait(StuckTimeout))
                {
                    return "an execution did not finish: a thread blocked outside the scheduler (a lock held by a descheduled thread?)";
                }

                foreach (Worker w in _workers)
                {
                    w.Thread!.Join();
                }

                return _failure ?? _scenario.Check();
            }
            finally
            {
                Core.Interleave.Hook = null;
                _scenario.Cleanup();
            }
        }

        public string Describe()
        {
            var sb = new StringBuilder("schedule (thread:point, in order):");
            foreach (string t in _trace)
            {
                sb.Append(' ').Append(t);
            }

            return sb.ToString();
        }

        private void Body(Worker me, Action body)
        {
            t_me = me;
            me.Turn.Wait();
            try
            {
                body();
            }
            catch (HangException)
            {
                // _failure is set.
            }
            catch (Exception e)
            {
                _failure ??= $"thread {me.Id} threw {e.GetType().Name}: {e.Message}";
            }

            me.Done = true;
            _trace.Add($"{me.Id}:end");
            if (_workers.All(w => w.Done))
            {
                _finished.Release();
                return;
            }

            Choose(current: me, runnableCurrent: false).Turn.Release();
        }

        // Called by the library's code at each scheduling point, on whatever thread runs it.
        private void Point(string label)
        {
            Worker? me = t_me;
            if (me is null || !_workers.Contains(me))
            {
                return; // a thread outside the scenario (the RCU worker, a finalizer)
            }

            Points++;
            _trace.Add($"{me.Id}:{label}");
            if (Points > MaxPointsPerExecution || _failure is not null)
            {
                _failure ??= $"no progress after {MaxPointsPerExecution} scheduling points (livelock or a wait that never ends)";
                throw new HangException();
            }

            bool spinning = label.StartsWith("spin", StringComparison.Ordinal);
            Worker next = Choose(me, runnableCurrent: !spinning);
            if (next != me)
            {
                next.Turn.Release();
                me.Turn.Wait();
            }
        }

        private Worker Choose(Worker? current, bool runnableCurrent)
        {
            // Options: the current thread first when it can go on (the choice that costs nothing),
            // then the others in id order; a spinning thread is chosen only when nobody else can run.
            var options = new List<int>();
            if (current is not null && runnableCurrent)
            {
                options.Add(current.Id);
            }

            options.AddRange(_workers.Where(w => !w.Done && w != current).Select(w => w.Id));
            if (options.Count == 0 && current is not null && !current.Done)
            {
                options.Add(current.Id); // spinning alone: let it spin (the point limit ends a livelock)
            }

            int pick = 0;
            if (options.Count > 1)
            {
                var d = new Decision
                {
                    Options = options.ToArray(),
                    PreemptionsBefore = _preemptions,
                    Runnable = current is not null && runnableCurrent ? current.Id : -1,
                };
                int index = Decisions.Count;
                if (index < _prefix.Count)
                {
                    pick = Array.IndexOf(d.Options, _prefix[index]);
                    if (pick < 0)
                    {
                        _failure ??= "the scenario is not deterministic: a replayed schedule offered other threads";
                        pick = 0;
                    }
                }

                d.Chosen = pick;
                _preemptions += d.Cost(pick);
                Decisions.Add(d);
            }

            return _workers[options[pick]];
        }
    }

    private sealed class HangException : Exception
    {
    }
}
