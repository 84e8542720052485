// Turns Core status codes into the exceptions a .NET developer expects.

using System;
using RefRuntime.Core;

namespace RefRuntime;

internal static class Errors
{
    public static void ThrowIfFailed(RrStatus status, string paramName, string what)
    {
        switch (status)
        {
            case RrStatus.Ok:
                return;
            case RrStatus.InvalidArgument:
                throw new ArgumentException($"{what}: invalid argument.", paramName);
            case RrStatus.BadHandle:
                throw new ArgumentException($"{what}: not a live RefRuntime object of the expected kind (never created by RefRuntime, already freed, or the wrong kind of reference).", paramName);
            case RrStatus.OutOfMemory:
                throw new OutOfMemoryException($"{what}: native allocation failed.");
            default:
                throw new InvalidOperationException($"{what}: unexpected status {status}.");
        }
    }
}
