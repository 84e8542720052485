// The command line and the start every vhost-user back-end program shares (QEMU
// docs/interop/vhost-user.rst "Backend program conventions"): --socket-path PATH or --fd N (exactly
// one), --print-capabilities (print {"type": "..."} and exit 0), --help, --verbose; a wrong command
// line exits 2 with the usage. "--name value" and "--name=value" are both accepted. Options of the
// device are handed to the program's own handler, one at a time.

using System;
using System.Globalization;

namespace RefRuntime.Core.Vhost;

/// <summary>The shared part of a back-end program's command line (see file comment).</summary>
public sealed class BackendCommandLine
{
    /// <summary>What a device option handler answers for an option that is not its own.</summary>
    public const string Unknown = "\0unknown";

    private BackendCommandLine()
    {
    }

    /// <summary>
    /// Handles one device option: <paramref name="name"/> (e.g. "--file"), whose value
    /// <paramref name="value"/> returns (null when missing; call it only for options that take one).
    /// </summary>
    /// <returns>Null when taken, an error message for a wrong value, <see cref="Unknown"/> when not a device option.</returns>
    public delegate string? DeviceOption(string name, Func<string?> value);

    /// <summary>--socket-path: listen there.</summary>
    public string? SocketPath { get; private set; }

    /// <summary>--fd: an inherited socket, or -1.</summary>
    public int Fd { get; private set; } = -1;

    /// <summary>--print-capabilities.</summary>
    public bool PrintCapabilities { get; private set; }

    /// <summary>--help / -h.</summary>
    public bool Help { get; private set; }

    /// <summary>--verbose / -v: log every request and reply.</summary>
    public bool Verbose { get; private set; }

    /// <summary>Parses <paramref name="args"/>, handing device options to <paramref name="device"/>.</summary>
    /// <returns>The shared options, or null with <paramref name="error"/>.</returns>
    public static BackendCommandLine? Parse(string[] args, DeviceOption device, out string? error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(device);
        var o = new BackendCommandLine();
        error = null;
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

            string? Value() => inline ?? (i + 1 < args.Length ? args[++i] : null);

            switch (a)
            {
                case "--print-capabilities":
                    o.PrintCapabilities = true;
                    break;
                case "--help" or "-h":
                    o.Help = true;
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
                default:
                    string? e = device(a, Value);
                    if (e == Unknown)
                    {
                        error = $"unknown option {args[i]}";
                        return null;
                    }

                    if (e is not null)
                    {
                        error = e;
                        return null;
                    }

                    break;
            }
        }

        if (!o.PrintCapabilities && !o.Help && (o.SocketPath is null) == (o.Fd < 0))
        {
            error = "give exactly one of --socket-path and --fd";
            return null;
        }

        return o;
    }

    /// <summary>The program's log: "program: line" on standard error, each line whole even when several threads log.</summary>
    /// <param name="program">The program's name, the prefix of every line.</param>
    /// <returns>The logger.</returns>
    public static Action<string> StderrLog(string program)
    {
        var gate = new System.Threading.Lock();
        return line =>
        {
            lock (gate)
            {
                Console.Error.WriteLine($"{program}: {line}");
            }
        };
    }

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>], invariant culture.</summary>
    public static bool TryInt(string? s, int min, int max, out int v) =>
        int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out v) && v >= min && v <= max;

    /// <summary>
    /// The program's start: a wrong command line (<paramref name="line"/> null) prints
    /// <paramref name="error"/> and the usage and returns 2; --help prints the usage (0);
    /// --print-capabilities prints <c>{"type": "<paramref name="deviceType"/>"}</c> (0);
    /// otherwise <paramref name="serve"/> runs and its status is returned.
    /// </summary>
    public static int Start(string program, string deviceType, string usage, BackendCommandLine? line, string? error, Func<int> serve)
    {
        ArgumentNullException.ThrowIfNull(serve);
        if (line is null)
        {
            Console.Error.WriteLine($"{program}: {error}");
            Console.Error.WriteLine(usage);
            return 2;
        }

        if (line.Help)
        {
            Console.Out.WriteLine(usage);
            return 0;
        }

        if (line.PrintCapabilities)
        {
            // vhost-user.json VHostUserBackendCapabilities: {"type": "<device type>"}.
            Console.Out.WriteLine($"{{\"type\": \"{deviceType}\"}}");
            return 0;
        }

        return serve();
    }
}
