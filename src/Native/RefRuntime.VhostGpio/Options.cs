// The command line of refruntime-vhost-gpio (QEMU docs/interop/vhost-user.rst "Backend program
// conventions" for --socket-path, --fd, --print-capabilities; the rest is this device's).

using System;
using System.Collections.Generic;
using RefRuntime.Core.Vhost;

namespace RefRuntime.VhostGpio;

/// <summary>Parsed options.</summary>
internal sealed class Options
{
    public const int Pl061Lines = 8;

    public const string Usage = """
        usage: refruntime-vhost-gpio (--socket-path PATH | --fd N) [options]
               refruntime-vhost-gpio --print-capabilities

        A vhost-user virtio-gpio back-end: the virtio-gpio device over the PL061 driver over a
        PL061 model. Serves one front-end (QEMU's vhost-user-gpio-pci, or RefRuntime's own front
        end) at a time; after a disconnect it serves the next. Exits on SIGTERM/SIGINT.

          --socket-path PATH     listen on the Unix socket PATH (a stale socket file is replaced)
          --fd N                 use inherited socket N: listening (accept on it) or connected
                                 (serve it, exit when it closes)
          --lines N              lines offered, 1..8 (default 8); the PL061 has 8, so N < 8
                                 offers lines 0..N-1 and N > 8 is refused
          --names a,b,...        line names in line order (at most N; missing or empty = unnamed;
                                 7-bit ASCII, unique)
          --loopback OUT:IN,...  jumper wires inside the model: line OUT's output level drives line
                                 IN's input (IN must be an input), so a guest can raise its own
                                 interrupts
          --require-sealed       refuse guest memory whose file is not sealed against shrinking
          --verbose              log every request and reply (debugging a front-end)
          --print-capabilities   print {"type": "gpio"} and exit
          --help                 this text

        test options (for the QEMU and cross-process tests):
          --unplug-after-ms N    unplug (hot-remove) the PL061 N ms after start
          SIGUSR1                unplug the PL061 now
            After an unplug every guest request answers ERR (the guest sees errors such as
            EIO/EINVAL) while the guest and this back-end keep running.
        """;

    public int Lines { get; private set; } = Pl061Lines;

    public List<string?>? Names { get; private set; }

    public List<(int Out, int In)> Loopbacks { get; } = [];

    public bool RequireSealed { get; private set; }

    public int UnplugAfterMs { get; private set; } = -1;

    /// <summary>The options every back-end program has (--socket-path, --fd, --verbose, ...).</summary>
    public BackendCommandLine Common { get; private set; } = null!;

    public string? SocketPath => Common.SocketPath;

    public int Fd => Common.Fd;

    public bool Verbose => Common.Verbose;

    /// <summary>Parses <paramref name="args"/>; null with <paramref name="error"/> when they are wrong.</summary>
    public static Options? Parse(string[] args, out string? error)
    {
        var o = new Options();
        string? names = null;
        string? loopback = null;
        string? Take(string name, Func<string?> value)
        {
            switch (name)
            {
                case "--require-sealed":
                    o.RequireSealed = true;
                    return null;
                case "--lines":
                    if (!TryInt(value(), int.MinValue, int.MaxValue, out int lines))
                    {
                        return "--lines needs a number";
                    }

                    if (lines < 1 || lines > Pl061Lines)
                    {
                        return $"--lines {lines}: the PL061 behind this device has {Pl061Lines} lines, so 1 to {Pl061Lines} can be offered";
                    }

                    o.Lines = lines;
                    return null;
                case "--names":
                    names = value();
                    return names is null ? "--names needs a list" : null;
                case "--loopback":
                    loopback = value();
                    return loopback is null ? "--loopback needs OUT:IN pairs" : null;
                case "--unplug-after-ms":
                    if (!TryInt(value(), 0, int.MaxValue, out int ms))
                    {
                        return "--unplug-after-ms needs a number of milliseconds";
                    }

                    o.UnplugAfterMs = ms;
                    return null;
                default:
                    return BackendCommandLine.Unknown;
            }
        }

        BackendCommandLine? common = BackendCommandLine.Parse(args, Take, out error);
        if (common is null)
        {
            return null;
        }

        o.Common = common;
        if (common.PrintCapabilities || common.Help)
        {
            return o;
        }

        if (names is not null)
        {
            string[] parts = names.Split(',');
            if (parts.Length > o.Lines)
            {
                error = $"--names has {parts.Length} names for {o.Lines} lines";
                return null;
            }

            o.Names = [];
            for (int i = 0; i < o.Lines; i++)
            {
                o.Names.Add(i < parts.Length && parts[i].Length > 0 ? parts[i] : null);
            }
        }

        if (loopback is not null)
        {
            var driven = new HashSet<int>();
            foreach (string pair in loopback.Split(','))
            {
                string[] ends = pair.Split(':');
                if (ends.Length != 2 || !TryInt(ends[0], 0, o.Lines - 1, out int outLine) || !TryInt(ends[1], 0, o.Lines - 1, out int inLine))
                {
                    error = $"--loopback \"{pair}\": expected OUT:IN with lines 0..{o.Lines - 1}";
                    return null;
                }

                if (outLine == inLine || !driven.Add(inLine))
                {
                    error = $"--loopback \"{pair}\": a line cannot drive itself, and each IN line takes one wire";
                    return null;
                }

                o.Loopbacks.Add((outLine, inLine));
            }
        }

        return o;
    }

    private static bool TryInt(string? s, int min, int max, out int v) => BackendCommandLine.TryInt(s, min, max, out v);
}
