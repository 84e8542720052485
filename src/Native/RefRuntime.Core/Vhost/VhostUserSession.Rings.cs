// VhostUserSession, continued: the rings (QEMU docs/interop/vhost-user.rst "Ring states",
// VHOST_USER_SET_VRING_NUM/_ADDR/_BASE/_KICK/_CALL/_ERR/_ENABLE, VHOST_USER_GET_VRING_BASE,
// VHOST_USER_RESET_DEVICE). The life cycle is VhostUserRing's; a ring reaches the device only
// started, running (its parts pinned inside one region each) and enabled.

using RefRuntime.Core.Virtio;

namespace RefRuntime.Core.Vhost;

public sealed partial class VhostUserSession
{
    // ---- rings ----------------------------------------------------------------------------------

    private bool TryRing(uint index, out VhostUserRing ring, out string? error)
    {
        if (index >= (uint)_rings.Length)
        {
            ring = null!;
            error = $"ring {index} does not exist (the device has {_rings.Length})";
            return false;
        }

        ring = _rings[index];
        error = null;
        return true;
    }

    private Outcome SetVringNum(VhostUserMessage m)
    {
        if (!m.TryReadState(out uint index, out uint num))
        {
            return Outcome.Fail($"payload of {m.Payload.Length} bytes (vring state expected)");
        }

        if (!TryRing(index, out VhostUserRing r, out string? e))
        {
            return Outcome.Fail(e!);
        }

        if (r.Running)
        {
            return Outcome.Fail($"ring {index} is running (stop it with GET_VRING_BASE first)");
        }

        if (num > int.MaxValue || r.Queue.SetSize((int)num) != RrStatus.Ok)
        {
            return Outcome.Fail($"ring size {num} is not a power of two from 1 to {_backend.MaxQueueSize}");
        }

        return NoFds(m);
    }

    private Outcome SetVringBase(VhostUserMessage m)
    {
        if (!m.TryReadState(out uint index, out uint num))
        {
            return Outcome.Fail($"payload of {m.Payload.Length} bytes (vring state expected)");
        }

        if (!TryRing(index, out VhostUserRing r, out string? e))
        {
            return Outcome.Fail(e!);
        }

        if (r.Running)
        {
            return Outcome.Fail($"ring {index} is running (stop it with GET_VRING_BASE first)");
        }

        if (num > ushort.MaxValue)
        {
            return Outcome.Fail($"base {num} does not fit a split ring's 16-bit index");
        }

        r.Queue.SetIndices((ushort)num, (ushort)num);
        return NoFds(m);
    }

    private Outcome SetVringAddr(VhostUserMessage m)
    {
        byte[] p = m.Payload;
        if (p.Length != VhostUser.VringAddrSize)
        {
            return Outcome.Fail($"payload of {p.Length} bytes (vring address of {VhostUser.VringAddrSize} expected)");
        }

        uint index = VhostUserMessage.ReadHost32(p, 0);
        uint flags = VhostUserMessage.ReadHost32(p, 4);
        ulong desc = VhostUserMessage.ReadHost64(p, 8);
        ulong used = VhostUserMessage.ReadHost64(p, 16);
        ulong avail = VhostUserMessage.ReadHost64(p, 24);
        if (!TryRing(index, out VhostUserRing r, out string? e))
        {
            return Outcome.Fail(e!);
        }

        if ((flags & ~1u) != 0)
        {
            return Outcome.Fail($"unknown vring flags 0x{flags:x}");
        }

        if (r.Running)
        {
            // QEMU re-sends the addresses to toggle dirty logging (VHOST_VRING_F_LOG); the same
            // addresses are fine, new ones need a stop first.
            VirtqRings cur = r.Queue.ConfiguredRings;
            return cur.DescGpa == desc && cur.AvailGpa == avail && cur.UsedGpa == used
                ? NoFds(m)
                : Outcome.Fail($"ring {index} is running; new addresses need GET_VRING_BASE first");
        }

        r.Queue.SetRingAddresses(desc, avail, used, GuestAddressSpace.FrontEndUser);
        r.AddressesSet = true;
        if (_memory.Count > 0 && !RingInMemory(r.Queue, out string? where))
        {
            return Outcome.Fail(where!);
        }

        Outcome o = NoFds(m);
        TryRun(r);
        return o;
    }

    /// <summary>Whether every part of the configured ring lies inside one region (checked without keeping a pin).</summary>
    private unsafe bool RingInMemory(VirtqDevice q, out string? error)
    {
        VirtqRings a = q.ConfiguredRings;
        int n = a.Size;
        (ulong addr, int len, string name)[] parts =
        [
            (a.DescGpa, VirtqLayout.DescTableBytes(n), "descriptor table"),
            (a.AvailGpa, VirtqLayout.AvailRingBytes(n), "available ring"),
            (a.UsedGpa, VirtqLayout.UsedRingBytes(n), "used ring"),
        ];
        foreach ((ulong addr, int len, string name) in parts)
        {
            if (_memory.Pin(addr, (ulong)len, GuestAddressSpace.FrontEndUser, out _, out GuestRegion? g) != RrStatus.Ok)
            {
                error = $"the {name} at user address 0x{addr:x} (+{len}, N = {n}) is not inside one memory region";
                return false;
            }

            GuestMemoryMap.Unpin(g!);
        }

        error = null;
        return true;
    }

    private Outcome GetVringBase(VhostUserMessage m)
    {
        if (!m.TryReadState(out uint index, out _) || !TryRing(index, out VhostUserRing r, out _))
        {
            // The front-end waits for a vring state we cannot produce.
            return Outcome.Drop(m.Payload.Length != VhostUser.VringStateSize ? $"payload of {m.Payload.Length} bytes (vring state expected)" : $"ring {index} does not exist");
        }

        StopRing(r);
        var p = new byte[VhostUser.VringStateSize];
        VhostUserMessage.WriteHost32(p, 0, index);
        VhostUserMessage.WriteHost32(p, 4, r.Queue.NextAvail);
        Outcome o = NoFds(m);
        return new Outcome(VhostUserMessage.Reply(m, p), o.Error, false);
    }

    private Outcome SetVringFd(VhostUserMessage m)
    {
        if (!m.TryReadU64(out ulong v))
        {
            return Outcome.Fail($"payload of {m.Payload.Length} bytes (u64 expected)");
        }

        if ((v & ~(VhostUser.VringIndexMask | VhostUser.VringNoFdFlag)) != 0)
        {
            return Outcome.Fail($"unknown bits in 0x{v:x}");
        }

        if (!TryRing((uint)(v & VhostUser.VringIndexMask), out VhostUserRing r, out string? e))
        {
            return Outcome.Fail(e!);
        }

        bool noFd = (v & VhostUser.VringNoFdFlag) != 0;
        if (noFd ? m.FdCount != 0 : (m.FdCount != 1 || m.Fds.Count != 1))
        {
            return Outcome.Fail(noFd ? $"{m.FdCount} descriptors with the no-descriptor flag" : $"{m.FdCount} descriptors (exactly 1 expected)");
        }

        int fd = noFd ? -1 : m.TakeFd(0);
        switch (m.Request)
        {
            case VhostUserRequest.SetVringKick:
                bool rehand = false;
                if (r.Handed && _backend.HandlesKicks)
                {
                    // The device polls the descriptor about to be closed: take the ring back first.
                    _backend.QueueDisabled(r.Index);
                    r.Handed = false;
                    rehand = true;
                }

                if (r.KickFd >= 0)
                {
                    _platform.Close(r.KickFd);
                }

                r.KickFd = fd;
                r.KickPolling = noFd;
                r.Started = true; // vhost-user.rst "Ring states": the ring starts with its kick
                TryRun(r);
                if (rehand)
                {
                    Hand(r);
                }
                if (r.Handed)
                {
                    _backend.Kick(r.Index); // chains may have been made available before the descriptor came
                }

                break;
            case VhostUserRequest.SetVringCall:
                r.ReplaceCall(noFd ? null : _platform.AdoptNotifier(fd));
                break;
            default:
                r.ReplaceErr(noFd ? null : _platform.AdoptNotifier(fd));
                break;
        }

        return Outcome.Ok;
    }

    private Outcome SetVringEnable(VhostUserMessage m)
    {
        if (!m.TryReadState(out uint index, out uint num))
        {
            return Outcome.Fail($"payload of {m.Payload.Length} bytes (vring state expected)");
        }

        if (!TryRing(index, out VhostUserRing r, out string? e))
        {
            return Outcome.Fail(e!);
        }

        if (num > 1)
        {
            return Outcome.Fail($"enable value {num} (0 or 1)");
        }

        SetEnabled(r, num == 1);
        return NoFds(m);
    }

    private void SetEnabled(VhostUserRing r, bool enabled)
    {
        r.Enabled = enabled;
        if (!enabled)
        {
            if (r.Handed)
            {
                _backend.QueueDisabled(r.Index);
                r.Handed = false;
            }

            r.Queue.SetEnabled(false);
            return;
        }

        r.Queue.SetEnabled(true);
        Hand(r);
    }

    /// <summary>Starts the queue once the ring has its kick, its addresses and memory; hands it over if enabled.</summary>
    private void TryRun(VhostUserRing r)
    {
        if (r.Running || !r.Started || !r.AddressesSet || _memory.Count == 0)
        {
            return;
        }

        // Without VHOST_USER_F_PROTOCOL_FEATURES a ring starts enabled (vhost-user.rst "Ring states").
        if ((_ackedFeatures & VhostUser.F_PROTOCOL_FEATURES) == 0)
        {
            r.Enabled = true;
        }

        VirtqDevice q = r.Queue;
        q.SetFeatures(RingFeatures());
        q.SetEnabled(r.Enabled);
        if (q.Start(out string? error) != RrStatus.Ok)
        {
            _errors++;
            Log($"ring {r.Index} cannot start: {error}");
            r.SignalError();
            return;
        }

        q.SyncUsedIndexFromRing();
        r.Running = true;
        Hand(r);
    }

    private void Hand(VhostUserRing r)
    {
        if (r.Running && r.Enabled && !r.Handed)
        {
            if (!_featuresSet)
            {
                Log($"ring {r.Index} enabled before SET_FEATURES; the device sees no negotiated features");
            }

            r.Handed = true;
            _backend.QueueEnabled(r);
            _backend.Kick(r.Index);
        }
    }

    /// <summary>Takes the ring back from the device and stops its queue (held chains dropped); closes the kick.</summary>
    private void StopRing(VhostUserRing r)
    {
        if (r.Handed)
        {
            _backend.QueueDisabled(r.Index);
            r.Handed = false;
        }

        if (r.Running)
        {
            r.Queue.Stop();
            r.Running = false;
            _backend.QueueStopped(r.Index);
        }

        r.Started = false;
        r.KickPolling = false;
        if (r.KickFd >= 0)
        {
            _platform.Close(r.KickFd);
            r.KickFd = -1;
        }
    }

    private void StopAllRings()
    {
        foreach (VhostUserRing r in _rings)
        {
            StopRing(r);
        }
    }

    private void ResetDevice()
    {
        StopAllRings();
        _backend.Reset();
        foreach (VhostUserRing r in _rings)
        {
            r.ReplaceCall(null);
            r.ReplaceErr(null);
            r.Enabled = false;
            r.AddressesSet = false;
            r.Queue.SetSize(_backend.MaxQueueSize);
            r.Queue.SetIndices(0, 0);
            r.Queue.SetEnabled(true);
        }

        _ackedFeatures = 0;
        _featuresSet = false;
        _memory.Clear();
    }
}
