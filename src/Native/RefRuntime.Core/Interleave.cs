// Scheduling points for the systematic interleaving tests (tests/RefRuntime.Interleave.Tests).
// The library marks the places between shared-memory accesses on its trickiest paths (RCU read
// side and grace periods, the call gate, revocation, Arc upgrade and drop) with Point(label).
// The calls exist only when RR_INTERLEAVE is defined, which only the interleaving test project
// does (it compiles these sources itself); in every shipped build the compiler removes them,
// label and all, so they cost nothing.

using System;
using System.Diagnostics;

namespace RefRuntime.Core;

/// <summary>Scheduling points for the interleaving explorer (see file comment).</summary>
internal static class Interleave
{
#if RR_INTERLEAVE
    /// <summary>The explorer's scheduler, called at every point while an exploration runs.</summary>
    public static Action<string>? Hook;
#endif

    /// <summary>A point where the explorer may switch threads. Labels starting with "spin" mark a wait for another thread.</summary>
    /// <param name="label">What the thread is about to do.</param>
    [Conditional("RR_INTERLEAVE")]
    public static void Point(string label)
    {
#if RR_INTERLEAVE
        Hook?.Invoke(label);
#endif
    }
}
