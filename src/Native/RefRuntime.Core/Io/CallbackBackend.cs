// A device window whose model is C code: each access calls the host's read or write function.

using System;

namespace RefRuntime.Core.Io;

/// <summary>A device backend that calls C functions: <c>read(ctx, offset, width)</c> and <c>write(ctx, offset, width, value)</c>.</summary>
public readonly unsafe struct CallbackBackend : IRawIoBackend
{
    private readonly delegate* unmanaged<void*, ulong, int, ulong> _read;
    private readonly delegate* unmanaged<void*, ulong, int, ulong, void> _write;
    private readonly void* _context;
    private readonly nuint _size;

    /// <summary>Wraps the host's functions.</summary>
    /// <remarks><b>Safety:</b> the functions and context stay valid while the window is used.</remarks>
    public CallbackBackend(delegate* unmanaged<void*, ulong, int, ulong> read, delegate* unmanaged<void*, ulong, int, ulong, void> write, void* context, nuint size)
    {
        if (read == null || write == null)
        {
            throw new ArgumentNullException(read == null ? nameof(read) : nameof(write));
        }

        _read = read;
        _write = write;
        _context = context;
        _size = size;
    }

    /// <inheritdoc/>
    public nuint Size => _size;

    /// <inheritdoc/>
    public byte Load8(nuint offset) => (byte)_read(_context, offset, 1);

    /// <inheritdoc/>
    public ushort Load16(nuint offset) => (ushort)_read(_context, offset, 2);

    /// <inheritdoc/>
    public uint Load32(nuint offset) => (uint)_read(_context, offset, 4);

    /// <inheritdoc/>
    public ulong Load64(nuint offset) => _read(_context, offset, 8);

    /// <inheritdoc/>
    public void Store8(nuint offset, byte value) => _write(_context, offset, 1, value);

    /// <inheritdoc/>
    public void Store16(nuint offset, ushort value) => _write(_context, offset, 2, value);

    /// <inheritdoc/>
    public void Store32(nuint offset, uint value) => _write(_context, offset, 4, value);

    /// <inheritdoc/>
    public void Store64(nuint offset, ulong value) => _write(_context, offset, 8, value);
}
