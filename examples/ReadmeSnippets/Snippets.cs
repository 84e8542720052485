// README.md's C# snippets for the safe layer, one method each, with what they assume declared
// before them and a check of what they did after them. Only `using RefRuntime;` (and the BCL).

using System;
using System.Data;
using System.Data.Common;
using System.Diagnostics.CodeAnalysis;
using System.Threading;
using System.Threading.Tasks;
using RefRuntime;

static class Log
{
    public static void Error(string message) => Console.WriteLine(message);
}

[SuppressMessage("Performance", "CA1812", Justification = "Instantiated by the snippets.")]
static partial class Snippets
{
    public static void RefCounting()
    {
        var session = new Session();
        session.Get().Put();
        session.Put();
        Console.WriteLine($"session refs {session.Refs.Value}"); // EXPECT: session refs 0

        RefCount.Warned += w => Log.Error($"refcount bug: {w}");   // every saturation event

        new RefCount(1).Dec(); // an extra put through Dec: EXPECT: refcount bug: DecLeak
    }

    // ---- Arc, Weak, Shared ----------------------------------------------------------------

    private readonly record struct Point(int X, int Y);

    private sealed class FakeConnection : DbConnection
    {
        public static readonly ManualResetEventSlim Gone = new();

        [AllowNull]
        public override string ConnectionString { get; set; } = "";

        public override string Database => "readme";

        public override string DataSource => "readme";

        public override string ServerVersion => "1";

        public override ConnectionState State => ConnectionState.Open;

        public override void ChangeDatabase(string databaseName) => throw new NotSupportedException();

        public override void Close()
        {
        }

        public override void Open()
        {
        }

        protected override DbTransaction BeginDbTransaction(IsolationLevel isolationLevel) => throw new NotSupportedException();

        protected override DbCommand CreateDbCommand() => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            Console.WriteLine("connection disposed");
            Gone.Set();
            base.Dispose(disposing);
        }
    }

    private static DbConnection OpenConnection() => new FakeConnection();

    private static void Query(DbConnection connection) => Console.WriteLine($"query on {connection.Database}");

    public static void ArcAndShared()
    {
        ArcAndSharedSnippet();
        // The worker or the creator, whichever is last, disposed the connection exactly once.
        if (!FakeConnection.Gone.Wait(TimeSpan.FromMinutes(5)))
        {
            throw new TimeoutException("the shared connection was never disposed");
        }
    }

    private static void ArcAndSharedSnippet()
    {
        using var a = Arc<Point>.Create(new Point(1, 2), onDestroy: p => Console.WriteLine($"gone: {p}"));
        using Weak<Point> w = a.Downgrade();
        using (Arc<Point>? b = w.TryUpgrade()) { /* b is null once the last strong reference is gone */ }

        using var db = Shared<DbConnection>.Create(OpenConnection());   // disposed once, by the last owner
        Shared<DbConnection> mine = db.Clone();                         // the worker's reference, taken here
        Task.Run(() => { using (mine) Query(mine.Value); });
    }
    // EXPECT: gone: Point { X = 1, Y = 2 }
    // EXPECT: query on readme
    // EXPECT: connection disposed

    // ---- MMIO -----------------------------------------------------------------------------

    sealed class Pl061Map : IRegisterMap { public static nuint Size => 0x1000; }
    static readonly Reg32<Pl061Map> GPIODIR = new(0x400);       // checked here, once

    public static void MmioWindows()
    {
        var model = new Pl061Model();

        using var region = IoRegion.Allocate(0x1000);               // or Pin(array), DangerousWrap(ptr, len)
        var regs = region.Io.Bind<Pl061Map>();                      // window checked once
        regs.WriteLe32(GPIODIR, 0xff);                              // writel: no check, one mov
        uint be = regs.ReadBe32(GPIODIR);                           // ioread32be
        var device = new Io<DeviceBackend>(new DeviceBackend(model, 0x1000));   // same driver, a model behind it

        device.Bind<Pl061Map>().WriteLe32(GPIODIR, 0x0f);
        Console.WriteLine($"ioread32be 0x{be:x8}; the model's GPIODIR 0x{device.ReadLe32(0x400):x2}");
        // EXPECT: ioread32be 0xff000000; the model's GPIODIR 0x0f
    }

    // ---- GPIO chips ---------------------------------------------------------------------

    public static void GpioChips()
    {
        var board = new Pl061Model();                       // register-accurate PL061, pins driven by the board
        using GpioChip chip = GpioChip.ProbePl061(board);   // the PL061 driver, probed on the model
        chip.DirectionOutput(0, true);
        chip.SetIrqType(4, GpioIrqType.EdgeRising);
        chip.SetIrqHandler(4, line => Console.WriteLine($"line {line} rose"));
        board.SetInput(4, true);                            // -> "line 4 rose"
        GpioIrqStats st = chip.GetIrqStats(4);              // handled 1, spurious 0, stuck disables 0
        chip.Remove();                                      // hot-unplug: later calls throw NoDeviceException

        string?[] names = ["led", "button", null, null, null, null, null, null];   // one per line, or none
        using GpioChip viaRing = GpioChip.ProbeVirtioPair(new Pl061Model(), names);  // the same API over the driver pair:
        viaRing.DirectionOutput(0, true);                   // front end -> split virtqueue -> device thread -> PL061

        // EXPECT: line 4 rose
        Console.WriteLine($"handled {st.Handled}, spurious {st.Spurious}, stuck disables {st.StuckDisables}");
        // EXPECT: handled 1, spurious 0, stuck disables 0
        try
        {
            chip.Get(0);
        }
        catch (NoDeviceException)
        {
            Console.WriteLine("removed chip: NoDeviceException"); // EXPECT: removed chip: NoDeviceException
        }

        Console.WriteLine($"over the ring: line 1 is \"{viaRing.LineName(1)}\", line 0 reads {viaRing.Get(0)}");
        // EXPECT: over the ring: line 1 is "button", line 0 reads True
    }

    // ---- the split virtqueue --------------------------------------------------------------

    private sealed record Request(string Name);

    private sealed class Doorbell
    {
        public void Ring() => Console.WriteLine("doorbell rung");
    }

    public static void Virtqueue()
    {
        var request = new Request("read");
        var doorbell = new Doorbell();
        byte[] buf = new byte[8];
        byte[] answer = "ok"u8.ToArray();
        static void Complete(Request r, int length) => Console.WriteLine($"{r.Name} completed, {length} bytes");

        using var mem = new GuestMemoryRegion(1 << 20);
        using var driver = new VirtqueueDriver<Request>(mem, size: 256);
        using var device = new VirtqueueDevice(mem, driver.Rings);      // usually on another thread
        ulong reqGpa = mem.Allocate(8), respGpa = mem.Allocate(2);      // buffers carved from the region
        driver.TryAdd([new VirtqueueBuffer(reqGpa, 8)], [new VirtqueueBuffer(respGpa, 2)], request);
        if (driver.KickPrepare()) doorbell.Ring();
        if (device.TryPop(out VirtqueueChain chain)) { device.Read(buf); device.Write(answer); device.Complete(chain, 2); device.Publish(); }
        if (driver.TryGetUsed(out Request? done, out int len)) Complete(done!, len);

        Console.WriteLine($"response \"{System.Text.Encoding.ASCII.GetString(mem.GetSpan(respGpa, 2))}\"");
        // EXPECT: read completed, 2 bytes
        // EXPECT: response "ok"
    }

    // ---- RCU, revocation, managed resources ---------------------------------------------

    private sealed class Config(int version) : IDisposable
    {
        public int Version => version;

        public void Dispose() => Console.WriteLine($"config {version} reclaimed");
    }

    private sealed class Mmio
    {
        public uint Id => 0x61;
    }

    private sealed class Irq : IDisposable
    {
        public void Dispose() => Console.WriteLine("irq released");
    }

    private sealed class Device
    {
        public DeviceResources Resources { get; } = new();

        public DeviceGate Gate { get; } = new();

        public Revocable<Mmio> Registers { get; } = new(new Mmio());
    }

    private static void Apply(Config c) => Console.WriteLine($"applied config {c.Version}");

    private static Irq RequestIrq() => new();

    private static void Read(Mmio m) => Console.WriteLine($"read id 0x{m.Id:x}");

    public static void RcuRevocationDevres()
    {
        var initial = new Config(1);
        var newConfig = new Config(2);
        var device = new Device();

        var current = new RcuPointer<Config>(RcuDomain.Default, initial);
        using (RcuReadGuard g = RcuDomain.Default.ReadLock())       // a ref struct: cannot cross threads
            Apply(current.Read(g)!);
        current.ReplaceDeferred(newConfig, old => old.Dispose());   // after every reader is done

        using var probe = device.Resources.BeginScope();            // devres: unwinds on failure...
        var irq = device.Resources.Add(RequestIrq());
        probe.Commit();                                             // ...unless committed

        using (GateCall call = device.Gate.Enter())                 // NoDeviceException once removed
            if (device.Registers.TryAccess(out RevocableGuard<Mmio> regs))
                using (regs) Read(regs.Value!);

        RcuDomain.Default.Barrier();                                // EXPECT: config 1 reclaimed
        device.Gate.Disconnect();                                   // unplug: no call in flight after this
        device.Registers.Revoke();
        device.Resources.ReleaseAll();                              // EXPECT: irq released
        Console.WriteLine($"after unplug: access {device.Registers.TryAccess(out _)}, gate open {!device.Gate.IsDisconnected}");
        // EXPECT: applied config 1
        // EXPECT: read id 0x61
        // EXPECT: after unplug: access False, gate open False
        device.Gate.Dispose();
    }
}
