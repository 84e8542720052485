// Native layouts shared with C's RR_INLINE read side (rr_rcu_domain_t, rr_rcu_reader_t in
// include/refruntime.h, pinned by _Static_assert there and by a test here).
//
//   RcuDomainState (128 bytes, 64-aligned)        RcuReader (64 bytes, 64-aligned, one per thread per domain)
//   0   magic, id                                  0   ctr    nesting (bits 0..31) | phase (bit 32)
//   8   managed handle (GCHandle of RawRcuDomain)     8   next   the domain's registry list
//   16  gate word (a CallGate's state, CallGate.cs)   16  in_use 1 while a thread owns the record
//   64  gp_ctr  phase (bit 32) | 1 -- its own line
//                                                  20  thread id of the owner (diagnostics)
//
// The reader word follows liburcu's memb flavour: the outermost read lock copies gp_ctr (which
// always carries a nesting count of one) into ctr; nested locks add one; unlock subtracts one. A
// reader is "active in the old phase" when its nesting is non-zero and its phase bit differs
// from gp_ctr's.

using System.Runtime.InteropServices;

namespace RefRuntime.Core.Rcu;

/// <summary>The native part of a domain: what an inline C reader touches (see file comment).</summary>
[StructLayout(LayoutKind.Sequential, Size = 128)]
public struct RcuDomainState
{
    /// <summary><see cref="RawRcuDomain.MagicLive"/> while the domain exists.</summary>
    public uint Magic;

    /// <summary>The domain's process-unique id.</summary>
    public uint Id;

    /// <summary>A GCHandle to the managed <see cref="RawRcuDomain"/>.</summary>
    public nint Managed;

    /// <summary>
    /// When the domain is a <see cref="Revoke.CallGate"/>'s: its owner token (bits 63..2) and its
    /// closed bits (bit 0 disconnected, bit 1 a destroy in progress); 0 otherwise (offset 16).
    /// </summary>
    public ulong GateWord;

    private readonly ulong _pad1, _pad2, _pad3, _pad4, _pad5;

    /// <summary>The grace-period counter: phase bit and a nesting count of one (offset 64, its own cache line).</summary>
    public ulong GpCtr;
}

/// <summary>A reader record: one per thread per domain, found without any registration call.</summary>
[StructLayout(LayoutKind.Sequential, Size = 64)]
public unsafe struct RcuReader
{
    /// <summary>Nesting count and phase (offset 0).</summary>
    public ulong Ctr;

    /// <summary>Next record of the domain's registry (offset 8).</summary>
    public RcuReader* Next;

    /// <summary>1 while a live thread owns the record (offset 16).</summary>
    public int InUse;

    /// <summary>The owning thread's managed id (offset 20).</summary>
    public int ThreadId;
}
