// Reports handles that were never disposed. Every owning handle (Arc<T>, Weak<T>, UniqueArc<T>,
// Shared<T>) has a finalizer: if it runs, the program forgot Dispose. The handle's reference is
// then released (as SafeHandle does, so memory does not leak) and the leak is counted; with
// CaptureCreationStacks on, the report says where the handle was created.

using System;
using System.Diagnostics;
using System.Threading;

namespace RefRuntime;

/// <summary>What a leaked-handle report carries.</summary>
/// <param name="HandleType">The handle's type, for example <c>Arc&lt;Int64&gt;</c>.</param>
/// <param name="CreationStack">Where the handle was created, when <see cref="LeakDiagnostics.CaptureCreationStacks"/> was on; otherwise <see langword="null"/>.</param>
public sealed record LeakReport(string HandleType, StackTrace? CreationStack);

/// <summary>Counts and reports owning handles that were finalized without being disposed.</summary>
public static class LeakDiagnostics
{
    private static long s_leaked;
    private static int s_capture;

    /// <summary>Handles finalized without Dispose since the process started.</summary>
    public static long LeakedHandles => Interlocked.Read(ref s_leaked);

    /// <summary>
    /// Whether new handles record their creation stack (costly: for diagnosing a leak, not for
    /// production). Off by default.
    /// </summary>
    public static bool CaptureCreationStacks
    {
        get => Volatile.Read(ref s_capture) != 0;
        set => Volatile.Write(ref s_capture, value ? 1 : 0);
    }

    /// <summary>Raised on the finalizer thread for each leaked handle. Handlers must not throw.</summary>
    public static event Action<LeakReport>? HandleLeaked;

    internal static StackTrace? CaptureIfEnabled() =>
        Volatile.Read(ref s_capture) != 0 ? new StackTrace(2, fNeedFileInfo: true) : null;

    internal static void Report(Type handleType, StackTrace? creation)
    {
        Interlocked.Increment(ref s_leaked);
        Action<LeakReport>? handlers = HandleLeaked;
        if (handlers is null)
        {
            return;
        }

        try
        {
            handlers(new LeakReport(Describe(handleType), creation));
        }
        catch (Exception e)
        {
            // A throwing handler on the finalizer thread would crash the process.
            Trace.TraceError($"RefRuntime: a HandleLeaked handler threw: {e}");
        }
    }

    private static string Describe(Type t) =>
        t.IsGenericType ? $"{t.Name[..t.Name.IndexOf('`', StringComparison.Ordinal)]}<{string.Join(", ", Array.ConvertAll(t.GetGenericArguments(), a => a.Name))}>" : t.Name;
}
