using System;
using Xunit;

namespace RefRuntime.Tests;

/// <summary>The safe GPIO chip over the PL061 driver and model: .NET exceptions, interrupts, hot-unplug.</summary>
public sealed class GpioChipTests
{
    [Fact]
    public void LinesAndInterrupts_Work_ErrorsAreDotNetExceptions()
    {
        var model = new Pl061Model();
        using GpioChip chip = GpioChip.ProbePl061(model);
        Assert.Equal(8, chip.LineCount);
        chip.DirectionOutput(0, true);
        Assert.Equal(1, model.Outputs);
        Assert.Equal(GpioDirection.Output, chip.GetDirection(0));
        model.SetInput(3, true);
        Assert.True(chip.Get(3));
        int fired = 0;
        chip.SetIrqType(4, GpioIrqType.EdgeFalling);
        chip.SetIrqHandler(4, _ => fired++);
        model.SetInput(4, true);
        model.SetInput(4, false);
        Assert.Equal(1, fired);
        Assert.Throws<ArgumentOutOfRangeException>(() => chip.Set(8, true));
        Assert.Throws<ArgumentException>(() => chip.SetIrqType(4, GpioIrqType.LevelLow | GpioIrqType.EdgeRising));
        chip.Remove();
        Assert.Throws<NoDeviceException>(() => chip.Get(3));
        Assert.Throws<NoDeviceException>(() => chip.Set(0, false));
        model.SetInput(4, true);
        model.SetInput(4, false);
        Assert.Equal(1, fired); // nothing reaches a removed chip
    }

    // A null model is an argument error (probing a window that is not a PL061 is covered in
    // Pl061DriverTests.Probe_NotAPl061_Refused).
    [Fact]
    public void ProbePl061_NullModel_ThrowsArgumentNull()
    {
        var e = Assert.Throws<ArgumentNullException>(() => GpioChip.ProbePl061(null!));
        Assert.Equal("model", e.ParamName);
    }

    // The same consumer code over the driver pair: every call crosses the virtqueue; names come
    // from the device; a refusal by the device is an InvalidOperationException; unplugging the
    // PL061 behind the device gives NoDeviceException; Dispose tears the pair down.
    [Fact]
    public void VirtioPair_SameApi_ThroughTheRing()
    {
        var model = new Pl061Model();
        using GpioChip chip = GpioChip.ProbeVirtioPair(model, ["led", null, "button", null, null, null, null, null]);
        Assert.Equal(8, chip.LineCount);
        Assert.Equal("led", chip.LineName(0));
        Assert.Null(chip.LineName(1));
        chip.DirectionOutput(0, true);
        Assert.Equal(1, model.Outputs);
        Assert.Equal(GpioDirection.Output, chip.GetDirection(0));
        chip.DirectionInput(3);
        model.SetInput(3, true);
        Assert.True(chip.Get(3));
        using var fired = new System.Threading.SemaphoreSlim(0);
        chip.DirectionInput(4);
        chip.SetIrqType(4, GpioIrqType.EdgeFalling);
        chip.SetIrqHandler(4, _ => fired.Release());
        model.SetInput(4, true);
        model.SetInput(4, false);
        Assert.True(fired.Wait(60_000));
        Assert.Throws<ArgumentOutOfRangeException>(() => chip.Set(8, true));
        var refused = Assert.Throws<InvalidOperationException>(() => chip.Get(6)); // line 6 never configured
        Assert.Contains("refused", refused.Message);
        Assert.Throws<NotSupportedException>(chip.Suspend);
        chip.Remove();
        Assert.Throws<NoDeviceException>(() => chip.Get(3));
        Assert.Throws<NoDeviceException>(() => chip.Set(0, false));
    }

    [Fact]
    public void VirtioPair_BadNames_ArgumentException()
    {
        var e = Assert.Throws<ArgumentException>(() => GpioChip.ProbeVirtioPair(new Pl061Model(), ["a", "a", null, null, null, null, null, null]));
        Assert.Contains("not unique", e.Message);
    }

    // ---- interrupt handler lifetimes ----------------------------------------------------------

    /// <summary>The two chips the safe layer offers, over a fresh model each.</summary>
    public static TheoryData<bool> BothPaths => new() { false, true };

    private static GpioChip Open(Pl061Model model, bool viaRing) =>
        viaRing ? GpioChip.ProbeVirtioPair(model) : GpioChip.ProbePl061(model);

    // Remove from inside a handler cannot wait for itself: InvalidOperationException, and the chip
    // keeps working (the handler stays installed); Remove from outside then works.
    [Theory]
    [MemberData(nameof(BothPaths))]
    public void Remove_FromInsideHandler_InvalidOperation_ChipStillWorks(bool viaRing)
    {
        var model = new Pl061Model();
        using GpioChip chip = Open(model, viaRing);
        var seen = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var fired = new System.Threading.SemaphoreSlim(0);
        chip.DirectionInput(4);
        chip.SetIrqType(4, GpioIrqType.EdgeRising);
        chip.SetIrqHandler(4, _ =>
        {
            try
            {
                chip.Remove();
                seen.Enqueue("removed");
            }
            catch (InvalidOperationException)
            {
                seen.Enqueue("refused");
            }

            fired.Release();
        });
        model.SetInput(4, true);
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)));
        Assert.Equal(new[] { "refused" }, seen);
        chip.DirectionOutput(0, true); // still there
        Assert.Equal(1, model.Outputs & 1);
        model.SetInput(4, false);
        model.SetInput(4, true);
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)), "the handler was lost");
        chip.Remove();
        Assert.Throws<NoDeviceException>(() => chip.Get(4));
    }

    // Clearing or replacing the running handler from inside it: InvalidOperationException, nothing changed.
    [Theory]
    [MemberData(nameof(BothPaths))]
    public void SetIrqHandler_ClearFromInsideHandler_InvalidOperation(bool viaRing)
    {
        var model = new Pl061Model();
        using GpioChip chip = Open(model, viaRing);
        var seen = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var fired = new System.Threading.SemaphoreSlim(0);
        chip.DirectionInput(4);
        chip.SetIrqType(4, GpioIrqType.EdgeRising);
        chip.SetIrqHandler(4, _ =>
        {
            try
            {
                chip.SetIrqHandler(4, null);
                seen.Enqueue("cleared");
            }
            catch (InvalidOperationException)
            {
                seen.Enqueue("refused");
            }

            fired.Release();
        });
        model.SetInput(4, true);
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)));
        model.SetInput(4, false);
        model.SetInput(4, true);
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)), "the handler was cleared");
        Assert.Equal(new[] { "refused", "refused" }, seen);
    }

    // Dispose from inside a handler cannot wait for itself either: InvalidOperationException.
    [Theory]
    [MemberData(nameof(BothPaths))]
    public void Dispose_FromInsideHandler_InvalidOperation(bool viaRing)
    {
        var model = new Pl061Model();
        GpioChip chip = Open(model, viaRing);
        var seen = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var fired = new System.Threading.SemaphoreSlim(0);
        chip.DirectionInput(4);
        chip.SetIrqType(4, GpioIrqType.EdgeRising);
        chip.SetIrqHandler(4, _ =>
        {
            try
            {
                chip.Dispose();
                seen.Enqueue("disposed");
            }
            catch (InvalidOperationException)
            {
                seen.Enqueue("refused");
            }

            fired.Release();
        });
        model.SetInput(4, true);
        Assert.True(fired.Wait(TimeSpan.FromSeconds(30)), "the handler did not finish");
        Assert.Equal(new[] { "refused" }, seen);
        chip.DirectionOutput(0, true); // still there
        chip.Dispose();
    }

    // A handler that sleeps while another thread removes the chip: Remove returns after it.
    [Theory]
    [MemberData(nameof(BothPaths))]
    public void Remove_WhileHandlerSleeps_ReturnsAfterIt(bool viaRing)
    {
        var model = new Pl061Model();
        using GpioChip chip = Open(model, viaRing);
        using var entered = new System.Threading.ManualResetEventSlim();
        int exited = 0;
        chip.DirectionInput(4);
        chip.SetIrqType(4, GpioIrqType.EdgeRising);
        chip.SetIrqHandler(4, _ =>
        {
            entered.Set();
            System.Threading.Thread.Sleep(50);
            System.Threading.Volatile.Write(ref exited, 1);
        });
        var raiser = new System.Threading.Thread(() => model.SetInput(4, true)) { IsBackground = true };
        raiser.Start();
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the handler never ran");
        chip.Remove();
        Assert.Equal(1, System.Threading.Volatile.Read(ref exited));
        Assert.True(raiser.Join(TimeSpan.FromSeconds(30)));
    }

    // Clearing a handler waits for a running one.
    [Theory]
    [MemberData(nameof(BothPaths))]
    public void SetIrqHandlerNull_WhileHandlerSleeps_ReturnsAfterIt(bool viaRing)
    {
        var model = new Pl061Model();
        using GpioChip chip = Open(model, viaRing);
        using var entered = new System.Threading.ManualResetEventSlim();
        int exited = 0;
        chip.DirectionInput(4);
        chip.SetIrqType(4, GpioIrqType.EdgeRising);
        chip.SetIrqHandler(4, _ =>
        {
            entered.Set();
            System.Threading.Thread.Sleep(50);
            System.Threading.Volatile.Write(ref exited, 1);
        });
        var raiser = new System.Threading.Thread(() => model.SetInput(4, true)) { IsBackground = true };
        raiser.Start();
        Assert.True(entered.Wait(TimeSpan.FromSeconds(30)), "the handler never ran");
        chip.SetIrqHandler(4, null);
        Assert.Equal(1, System.Threading.Volatile.Read(ref exited));
        Assert.True(raiser.Join(TimeSpan.FromSeconds(30)));
    }

    // The counters through the safe layer: an interrupt on a line without a trigger calls no
    // handler and counts as spurious; bad lines throw; readable after removal.
    [Fact]
    public void GetIrqStats_TriggerNoneCountsSpurious()
    {
        var model = new Pl061Model();
        using GpioChip chip = GpioChip.ProbePl061(model);
        int fired = 0;
        model.SetInput(2, true);
        chip.SetIrqHandler(2, _ => fired++); // no trigger: NONE
        model.SetInput(2, false);
        Assert.Equal(0, fired);
        GpioIrqStats st = chip.GetIrqStats(2);
        Assert.Equal((0UL, 1UL, 0UL, false), (st.Handled, st.Spurious, st.StuckDisables, st.IsDisabled));
        Assert.Throws<ArgumentOutOfRangeException>(() => chip.GetIrqStats(8));
        chip.Remove();
        Assert.Equal(1UL, chip.GetIrqStats(2).Spurious);
    }

    // disable_irq_nosync from the line's own handler over the safe chip: masked without waiting,
    // the handler stays; the level still asserted is delivered once the line is re-armed.
    [Fact]
    public void DisableIrqNoSync_FromOwnHandler_MaskedUntilReArmed()
    {
        var model = new Pl061Model();
        using GpioChip chip = GpioChip.ProbePl061(model);
        int calls = 0;
        Action<int> handler = n =>
        {
            calls++;
            chip.DisableIrqNoSync(n);
        };
        chip.SetIrqType(6, GpioIrqType.LevelHigh);
        chip.SetIrqHandler(6, handler);
        model.SetInput(6, true);
        Assert.Equal(1, calls); // once: masked, not stuck
        Assert.False(model.Interrupt);
        Assert.False(chip.GetIrqStats(6).IsDisabled);
        chip.SetIrqHandler(6, handler); // re-arm: the level is still there
        Assert.Equal(2, calls);
        Assert.Throws<ArgumentOutOfRangeException>(() => chip.DisableIrqNoSync(8));
    }
}
