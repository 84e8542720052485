using System;
using RefRuntime.Core.Devices.Gpio;
using RefRuntime.Core.Devices.Pl061;
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
}
