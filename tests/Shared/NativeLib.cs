using System;
using System.IO;
using System.Runtime.InteropServices;

namespace RefRuntime.Tests.Shared;

/// <summary>
/// The real librefruntime.so (NativeAOT), loaded into the test process so tests can drive the
/// C ABI exactly as a C host would. Found through RR_NATIVE_LIB or dist/lib above the test
/// binaries (./build.sh puts it there; ./test.sh runs the build first).
/// </summary>
internal static class NativeLib
{
    private static readonly Lazy<nint> s_handle = new(Load);

    public static nint Handle => s_handle.Value;

    public static unsafe void* Export(string name) => (void*)NativeLibrary.GetExport(Handle, name);

    private static nint Load()
    {
        string? path = Environment.GetEnvironmentVariable("RR_NATIVE_LIB");
        if (string.IsNullOrEmpty(path))
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "dist", "lib", "librefruntime.so");
                if (File.Exists(candidate))
                {
                    path = candidate;
                    break;
                }
            }
        }

        if (path is null || !File.Exists(path))
        {
            throw new FileNotFoundException(
                "librefruntime.so not found: run ./build.sh (or set RR_NATIVE_LIB) before these tests.");
        }

        return NativeLibrary.Load(path);
    }
}
