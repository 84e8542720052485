using System;
using System.Collections.Generic;
using System.Threading;

namespace RefRuntime.Benchmarks.Devices;

// Inside the namespace: this file means Core's types, found here before the safe layer's (namespace RefRuntime).
using RefRuntime.Core;
using RefRuntime.Core.Devices.Gpio;

/// <summary>
/// The lock-based design a user would write instead of the virtqueue: a GPIO chip whose every
/// operation is a request object put on a <see cref="Queue{T}"/> under a lock, served by a server
/// thread that calls the real chip (the PL061 driver) and signals completion with
/// <see cref="Monitor.Wait(object)"/> / <see cref="Monitor.PulseAll"/> — the same two threads
/// and the same chip as the ring path. Interrupt handlers are forwarded to the chip unchanged.
/// </summary>
public sealed class LockedGpioQueue : IGpioChip, IDisposable
{
    private enum Op
    {
        GetDirection,
        DirectionInput,
        DirectionOutput,
        Get,
        Set,
        SetIrqType,
    }

    private sealed class Request
    {
        public Op Op;
        public int Line;
        public int Value;
        public RrStatus Status;
        public int Result;
        public bool Done;
    }

    private readonly IGpioChip _chip;
    private readonly object _lock = new();
    private readonly Queue<Request> _queue = new();
    private readonly Thread _server;
    private readonly Request[] _perLine;
    private bool _stop;

    /// <summary>Starts the server thread in front of <paramref name="chip"/>.</summary>
    public LockedGpioQueue(IGpioChip chip)
    {
        _chip = chip;
        _perLine = new Request[chip.LineCount];
        for (int i = 0; i < _perLine.Length; i++)
        {
            _perLine[i] = new Request();
        }

        _server = new Thread(Serve) { IsBackground = true, Name = "locked gpio server" };
        _server.Start();
    }

    /// <inheritdoc/>
    public int LineCount => _chip.LineCount;

    /// <inheritdoc/>
    public RrStatus GetDirection(int line, out RawGpioDirection direction)
    {
        RrStatus s = Call(Op.GetDirection, line, 0, out int r);
        direction = (RawGpioDirection)r;
        return s;
    }

    /// <inheritdoc/>
    public RrStatus DirectionInput(int line) => Call(Op.DirectionInput, line, 0, out _);

    /// <inheritdoc/>
    public RrStatus DirectionOutput(int line, bool value) => Call(Op.DirectionOutput, line, value ? 1 : 0, out _);

    /// <inheritdoc/>
    public RrStatus Get(int line, out bool value)
    {
        RrStatus s = Call(Op.Get, line, 0, out int r);
        value = r != 0;
        return s;
    }

    /// <inheritdoc/>
    public RrStatus Set(int line, bool value) => Call(Op.Set, line, value ? 1 : 0, out _);

    /// <inheritdoc/>
    public RrStatus SetIrqType(int line, RawGpioIrqType type) => Call(Op.SetIrqType, line, (int)type, out _);

    /// <inheritdoc/>
    public RrStatus SetIrqHandler(int line, Action<int>? handler) => _chip.SetIrqHandler(line, handler);

    /// <inheritdoc/>
    public RrStatus DisableIrqNoSync(int line) => _chip.DisableIrqNoSync(line);

    /// <inheritdoc/>
    public RrStatus GetIrqStats(int line, out RawGpioIrqStats stats) => _chip.GetIrqStats(line, out stats);

    /// <summary>Reads several lines with all requests queued before waiting (pipelined).</summary>
    public RrStatus GetMultiple(ReadOnlySpan<int> lines, Span<bool> values)
    {
        lock (_lock)
        {
            foreach (int line in lines)
            {
                Request r = _perLine[line];
                r.Op = Op.Get;
                r.Line = line;
                r.Done = false;
                _queue.Enqueue(r);
            }

            Monitor.PulseAll(_lock);
            RrStatus first = RrStatus.Ok;
            for (int i = 0; i < lines.Length; i++)
            {
                Request r = _perLine[lines[i]];
                while (!r.Done)
                {
                    Monitor.Wait(_lock);
                }

                values[i] = r.Result != 0;
                if (first == RrStatus.Ok)
                {
                    first = r.Status;
                }
            }

            return first;
        }
    }

    /// <summary>Stops the server thread.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _stop = true;
            Monitor.PulseAll(_lock);
        }

        _server.Join();
    }

    private RrStatus Call(Op op, int line, int value, out int result)
    {
        result = 0;
        if ((uint)line >= (uint)_perLine.Length)
        {
            return RrStatus.InvalidArgument;
        }

        Request r = _perLine[line]; // one outstanding request per line, as the ring path
        lock (_lock)
        {
            r.Op = op;
            r.Line = line;
            r.Value = value;
            r.Done = false;
            _queue.Enqueue(r);
            Monitor.PulseAll(_lock);
            while (!r.Done)
            {
                Monitor.Wait(_lock);
            }

            result = r.Result;
            return r.Status;
        }
    }

    private void Serve()
    {
        while (true)
        {
            Request r;
            lock (_lock)
            {
                while (_queue.Count == 0 && !_stop)
                {
                    Monitor.Wait(_lock);
                }

                if (_stop)
                {
                    return;
                }

                r = _queue.Dequeue();
            }

            int result = 0;
            RrStatus s;
            switch (r.Op)
            {
                case Op.GetDirection:
                    s = _chip.GetDirection(r.Line, out RawGpioDirection d);
                    result = (int)d;
                    break;
                case Op.DirectionInput:
                    s = _chip.DirectionInput(r.Line);
                    break;
                case Op.DirectionOutput:
                    s = _chip.DirectionOutput(r.Line, r.Value != 0);
                    break;
                case Op.Get:
                    s = _chip.Get(r.Line, out bool v);
                    result = v ? 1 : 0;
                    break;
                case Op.Set:
                    s = _chip.Set(r.Line, r.Value != 0);
                    break;
                default:
                    s = _chip.SetIrqType(r.Line, (RawGpioIrqType)r.Value);
                    break;
            }

            lock (_lock)
            {
                r.Status = s;
                r.Result = result;
                r.Done = true;
                Monitor.PulseAll(_lock);
            }
        }
    }
}
