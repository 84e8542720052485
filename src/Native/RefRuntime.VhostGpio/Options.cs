// The command line of refruntime-vhost-gpio (QEMU docs/interop/vhost-user.rst "Backend program
// conventions" for --socket-path, --fd, --print-capabilities; the rest is this device's).

using System;
using System.Collections.Generic;
using System.Globalization;

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

    public string? SocketPath { get; private set; }

    public int Fd { get; private set; } = -1;

    public int Lines { get; private set; } = Pl061Lines;

    public List<string?>? Names { get; private set; }

    public List<(int Out, int In)> Loopbacks { get; } = [];

    public bool PrintCapabilities { get; private set; }

    public bool Help { get; private set; }

    public bool RequireSealed { get; private set; }

    public bool Verbose { get; private set; }

    public int UnplugAfterMs { get; private set; } = -1;

    /// <summary>Parses <paramref name="args"/>; null with <paramref name="error"/> when they are wrong.</summary>
    public static Options? Parse(string[] args, out string? error)
    {
        var o = new Options();
        error = null;
        string? names = null;
        string? loopback = null;
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            string? inline = null;
            int eq = a.IndexOf('=', StringComparison.Ordinal);
            if (a.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                inline = a[(eq + 1)..];
                a = a[..eq];
            }

            string? Value()
            {
                if (inline is not null)
                {
                    return inline;
                }

                return i + 1 < args.Length ? args[++i] : null;
            }

            switch (a)
            {
                case "--print-capabilities":
                    o.PrintCapabilities = true;
                    break;
                case "--help" or "-h":
                    o.Help = true;
                    break;
                case "--require-sealed":
                    o.RequireSealed = true;
                    break;
                case "--verbose" or "-v":
                    o.Verbose = true;
                    break;
                case "--socket-path":
                    o.SocketPath = Value();
                    if (string.IsNullOrEmpty(o.SocketPath))
                    {
                        error = "--socket-path needs a path";
                        return null;
                    }

                    break;
                case "--fd":
                    if (!TryInt(Value(), 0, int.MaxValue, out int fd))
                    {
                        error = "--fd needs a descriptor number";
                        return null;
                    }

                    o.Fd = fd;
                    break;
                case "--lines":
                    if (!TryInt(Value(), int.MinValue, int.MaxValue, out int lines))
                    {
                        error = "--lines needs a number";
                        return null;
                    }

                    if (lines < 1 || lines > Pl061Lines)
                    {
                        error = $"--lines {lines}: the PL061 behind this device has {Pl061Lines} lines, so 1 to {Pl061Lines} can be offered";
                        return null;
                    }

                    o.Lines = lines;
                    break;
                case "--names":
                    names = Value();
                    if (names is null)
                    {
                        error = "--names needs a list";
                        return null;
                    }

                    break;
                case "--loopback":
                    loopback = Value();
                    if (loopback is null)
                    {
                        error = "--loopback needs OUT:IN pairs";
                        return null;
                    }

                    break;
                case "--unplug-after-ms":
                    if (!TryInt(Value(), 0, int.MaxValue, out int ms))
                    {
                        error = "--unplug-after-ms needs a number of milliseconds";
                        return null;
                    }

                    o.UnplugAfterMs = ms;
                    break;
                default:
                    error = $"unknown option {args[i]}";
                    return null;
            }
        }

        if (o.PrintCapabilities || o.Help)
        {
            return o;
        }

        if ((o.SocketPath is null) == (o.Fd < 0))
        {
            error = "give exactly one of --socket-path and --fd";
            return null;
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

    private static bool TryInt(string? s, int min, int max, out int v) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v) && v >= min && v <= max;
}
