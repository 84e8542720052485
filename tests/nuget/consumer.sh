#!/usr/bin/env bash
# The NuGet package as a .NET user meets it: pack src/Managed/RefRuntime into a local feed,
# create a fresh console project outside the repository, `dotnet add package RefRuntime` from
# that feed (a private package cache, so a stale copy of the same version is never used), build
# it and run a program that uses only `using RefRuntime;` (Arc, RefCount, RCU, a PL061 GPIO chip).
# Prints PASS/FAIL lines.
# Usage: tests/nuget/consumer.sh WORKDIR
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$1
rm -rf "$work" && mkdir -p "$work"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export NUGET_PACKAGES="$work/packages"
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$root/Directory.Build.props")
fail() { echo "FAIL nuget_consumer: $*"; exit 1; }

dotnet pack "$root/src/Managed/RefRuntime/RefRuntime.csproj" -c Release -nologo -v q -o "$work/feed" >"$work/pack.log" 2>&1 \
  || fail "dotnet pack failed (see $work/pack.log)"
[[ -f $work/feed/RefRuntime.$version.nupkg && -f $work/feed/RefRuntime.$version.snupkg ]] || fail "no package or symbol package"
# Exactly one package: the library a user references (no Core package, no librefruntime package).
(($(find "$work/feed" -name '*.nupkg' | wc -l) == 1)) || fail "the feed has more than one package"

app="$work/app"
mkdir -p "$app" && cd "$app"
cat > app.csproj <<CSPROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <OutputType>Exe</OutputType>
    <TargetFramework>net10.0</TargetFramework>
    <Nullable>enable</Nullable>
    <ImplicitUsings>disable</ImplicitUsings>
    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
  </PropertyGroup>
</Project>
CSPROJ
# Only `using RefRuntime;` (and the BCL): the safe layer must not need its Core namespaces
# (tests/RefRuntime.Tests/PublicSurfaceTests.cs checks that no Core type is in its API).
cat > Program.cs <<'CS'
using System;
using RefRuntime;

int destroyed = 0;
using (var a = Arc<long>.Create(41, _ => destroyed++))
{
    using Weak<long> w = a.Downgrade();
    using (Arc<long>? b = w.TryUpgrade())
    {
        Console.WriteLine($"arc value {b!.Value + 1}, strong {a.StrongCount}, weak {a.WeakCount}");
    }
}

var refs = new RefCount();
refs.Inc();
bool last = refs.DecAndTest() || refs.DecAndTest();
var domain = RcuDomain.Default;
using (RcuReadGuard g = domain.ReadLock())
{
    Console.WriteLine($"in read section {domain.InReadSection}");
}

Console.WriteLine($"destroyed {destroyed}, last {last}");

// A PL061 GPIO chip over its device model: drive a line, read it back, take an interrupt.
var board = new Pl061Model();
using (GpioChip chip = GpioChip.ProbePl061(board))
{
    chip.DirectionOutput(0, false);
    chip.Set(0, true);
    bool level = chip.Get(0);
    int rose = -1;
    chip.SetIrqType(4, GpioIrqType.EdgeRising);
    chip.SetIrqHandler(4, line => rose = line);
    board.SetInput(4, true);
    GpioIrqStats st = chip.GetIrqStats(4);
    Console.WriteLine($"gpio line 0 {level}, outputs {board.Outputs}, irq from line {rose}, handled {st.Handled}");
}
CS
dotnet add package RefRuntime --version "$version" --source "$work/feed" >"$work/add.log" 2>&1 \
  || fail "dotnet add package failed (see $work/add.log)"
dotnet run -c Release >"$work/run.log" 2>&1 || fail "the console project did not build or run (see $work/run.log)"
grep -q "arc value 42, strong 2, weak 1" "$work/run.log" && grep -q "destroyed 1, last True" "$work/run.log" \
  && grep -q "in read section True" "$work/run.log" \
  && grep -q "gpio line 0 True, outputs 1, irq from line 4, handled 1" "$work/run.log" || fail "unexpected output: $(cat "$work/run.log")"
echo "PASS nuget_consumer: packed RefRuntime $version (+ symbols), added to a fresh console project from a local feed, built and ran"
