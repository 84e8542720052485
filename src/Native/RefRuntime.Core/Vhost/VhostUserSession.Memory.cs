// VhostUserSession, continued: the memory table (QEMU docs/interop/vhost-user.rst
// VHOST_USER_SET_MEM_TABLE, VHOST_USER_ADD_MEM_REG, VHOST_USER_REM_MEM_REG): every region is
// checked and mapped (IVhostPlatform.MapRegion refuses files too small for it) before the table
// changes; GuestMemoryMap keeps a removed region mapped while chains or rings still use it.

using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Vhost;

public sealed partial class VhostUserSession
{
    // ---- memory ---------------------------------------------------------------------------------

    private Outcome SetMemTable(VhostUserMessage m)
    {
        byte[] p = m.Payload;
        if (p.Length < VhostUser.MemTableHeaderSize)
        {
            return Outcome.Fail($"payload of {p.Length} bytes (at least {VhostUser.MemTableHeaderSize})");
        }

        uint n = VhostUserMessage.ReadHost32(p, 0);
        if (n > VhostUser.MaxMemTableRegions)
        {
            return Outcome.Fail($"{n} regions (at most {VhostUser.MaxMemTableRegions})");
        }

        int need = VhostUser.MemTableHeaderSize + ((int)n * VhostUser.RegionSize);
        if (p.Length < need || p.Length > VhostUser.MemTableHeaderSize + (VhostUser.MaxMemTableRegions * VhostUser.RegionSize))
        {
            return Outcome.Fail($"payload of {p.Length} bytes for {n} regions (needs {need})");
        }

        if (m.FdCount != n || m.Fds.Count != n)
        {
            return Outcome.Fail($"{m.FdCount} descriptors for {n} regions");
        }

        var specs = new GuestRegionSpec[n];
        var backings = new IRegionBacking[n];
        for (int i = 0; i < n; i++)
        {
            specs[i] = ReadRegion(p, VhostUser.MemTableHeaderSize + (i * VhostUser.RegionSize));
            RrStatus s = Map(specs[i], m.Fds[i], out IRegionBacking? b, out string? error);
            if (s != RrStatus.Ok)
            {
                for (int j = 0; j < i; j++)
                {
                    backings[j].Release();
                }

                return Outcome.Fail($"region {i}: {error}");
            }

            backings[i] = b!;
        }

        RrStatus r = _memory.Replace(specs, backings, out string? err);
        if (r != RrStatus.Ok)
        {
            return Outcome.Fail(err ?? r.ToString());
        }

        WarnRingsOutsideMemory();
        RunWaitingRings();
        return Outcome.Ok;
    }

    private Outcome AddMemReg(VhostUserMessage m)
    {
        if (m.Payload.Length != VhostUser.SingleRegionSize)
        {
            return Outcome.Fail($"payload of {m.Payload.Length} bytes ({VhostUser.SingleRegionSize} expected)");
        }

        if (m.Fds.Count != 1 || m.FdCount != 1)
        {
            return Outcome.Fail($"{m.FdCount} descriptors (exactly 1 expected)");
        }

        GuestRegionSpec spec = ReadRegion(m.Payload, 8);
        RrStatus s = Map(spec, m.Fds[0], out IRegionBacking? b, out string? error);
        if (s == RrStatus.Ok)
        {
            s = _memory.Add(spec, b!, out error);
        }

        if (s != RrStatus.Ok)
        {
            return Outcome.Fail(error ?? s.ToString());
        }

        RunWaitingRings();
        return Outcome.Ok;
    }

    private Outcome RemMemReg(VhostUserMessage m)
    {
        if (m.Payload.Length != VhostUser.SingleRegionSize)
        {
            return Outcome.Fail($"payload of {m.Payload.Length} bytes ({VhostUser.SingleRegionSize} expected)");
        }

        // vhost-user.rst: no descriptor should come, but one is accepted (and closed unused) for
        // compatibility with front-ends that send it.
        if (m.FdCount > 1)
        {
            return Outcome.Fail($"{m.FdCount} descriptors (at most 1)");
        }

        GuestRegionSpec spec = ReadRegion(m.Payload, 8);
        RrStatus s = _memory.Remove(spec.Gpa, spec.Size, spec.UserAddr, out string? error);
        return s == RrStatus.Ok ? Outcome.Ok : Outcome.Fail(error ?? s.ToString());
    }

    private RrStatus Map(GuestRegionSpec spec, int fd, out IRegionBacking? backing, out string? error)
    {
        backing = null;
        if (spec.Size == 0 || spec.MmapOffset > ulong.MaxValue - spec.Size)
        {
            error = $"region of 0x{spec.Size:x} bytes at file offset 0x{spec.MmapOffset:x}";
            return RrStatus.InvalidArgument;
        }

        return _platform.MapRegion(fd, spec.MmapOffset, spec.Size, out backing, out error);
    }

    private static GuestRegionSpec ReadRegion(byte[] p, int at) => new(
        VhostUserMessage.ReadHost64(p, at),
        VhostUserMessage.ReadHost64(p, at + 8),
        VhostUserMessage.ReadHost64(p, at + 16),
        VhostUserMessage.ReadHost64(p, at + 24));

    /// <summary>Rings that got their kick and addresses before the memory (an unusual order) start now.</summary>
    private void RunWaitingRings()
    {
        foreach (VhostUserRing r in _rings)
        {
            bool was = r.Running;
            TryRun(r);
            if (!was && r.Handed)
            {
                _backend.Kick(r.Index);
            }
        }
    }

    private void WarnRingsOutsideMemory()
    {
        foreach (VhostUserRing r in _rings)
        {
            if (r.Running)
            {
                VirtqRings a = r.Queue.ConfiguredRings;
                if (!InMemory(a.DescGpa) || !InMemory(a.AvailGpa) || !InMemory(a.UsedGpa))
                {
                    Log($"ring {r.Index} runs in a region the front-end removed; it keeps that mapping until it stops");
                }
            }
        }

        bool InMemory(ulong uaddr)
        {
            foreach (GuestRegion g in _memory.Regions)
            {
                if (g.ContainsUser(uaddr, 1))
                {
                    return true;
                }
            }

            return false;
        }
    }
}
