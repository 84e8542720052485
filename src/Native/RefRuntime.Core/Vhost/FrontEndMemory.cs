// Guest memory a vhost-user front end owns and shares: a memfd sealed against shrinking and
// growing (so the back-end can trust its size; see SharedMapping), mapped here MAP_SHARED and
// seen by the virtqueue code as an ordinary GuestMemory region. The back-end receives the
// descriptor in SET_MEM_TABLE / ADD_MEM_REG with our mapping's address as the "user address",
// which is what the ring addresses in SET_VRING_ADDR are expressed in (QEMU
// docs/interop/vhost-user.rst "Memory access").

using System;
using RefRuntime.Core.Os;
using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Vhost;

/// <summary>Shareable guest memory (see file comment).</summary>
public sealed unsafe class FrontEndMemory : IDisposable
{
    private readonly SharedMapping _mapping;
    private int _fd;

    private FrontEndMemory(int fd, SharedMapping mapping, GuestMemory memory)
    {
        _fd = fd;
        _mapping = mapping;
        Memory = memory;
    }

    /// <summary>The region the virtqueue code carves rings and buffers from.</summary>
    public GuestMemory Memory { get; }

    /// <summary>The memfd (owned; send it, do not close it).</summary>
    public int Fd => _fd;

    /// <summary>The region as SET_MEM_TABLE describes it: guest base, size, our address, offset 0.</summary>
    public GuestRegionSpec Region => new(Memory.GpaBase, Memory.Size, (ulong)_mapping.Address, 0);

    /// <summary>Our (front-end user) address of guest address <paramref name="gpa"/>.</summary>
    public ulong UserAddressOf(ulong gpa) => (ulong)_mapping.Address + (gpa - Memory.GpaBase);

    /// <summary>Creates <paramref name="size"/> bytes of zeroed shareable memory at guest address <paramref name="gpaBase"/>.</summary>
    /// <returns><see cref="RrStatus.Ok"/>, or an error with <paramref name="error"/>.</returns>
    public static RrStatus Create(ulong size, ulong gpaBase, out FrontEndMemory? memory, out string? error)
    {
        memory = null;
        RrStatus s = SharedMapping.CreateMemfd("refruntime-guest", size, out int fd, out error);
        if (s != RrStatus.Ok)
        {
            return s;
        }

        s = SharedMapping.Map(fd, 0, size, out SharedMapping? mapping, out error);
        if (s != RrStatus.Ok)
        {
            FileDescriptor.Close(fd);
            return s;
        }

        s = GuestMemory.CreateOver(mapping!.Address, size, gpaBase, mapping.Dispose, out GuestMemory? mem);
        if (s != RrStatus.Ok)
        {
            error = $"guest memory of {size} bytes at 0x{gpaBase:x}: {s}";
            mapping.Dispose();
            FileDescriptor.Close(fd);
            return s;
        }

        memory = new FrontEndMemory(fd, mapping, mem!);
        return RrStatus.Ok;
    }

    /// <summary>Frees the memory (every queue on it must be destroyed first) and closes the memfd.</summary>
    /// <exception cref="InvalidOperationException">A queue is still attached.</exception>
    public void Dispose()
    {
        if (_fd < 0)
        {
            return;
        }

        RrStatus s = Memory.Destroy();
        if (s == RrStatus.Busy)
        {
            throw new InvalidOperationException("a virtqueue still uses this memory; destroy it first");
        }

        FileDescriptor.Close(_fd);
        _fd = -1;
    }
}
