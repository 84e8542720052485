// The vhost-user wire protocol (QEMU docs/interop/vhost-user.rst, "Message Specification",
// "Protocol features", "Front-end message types"): request codes, header flags, feature bits and
// the payload layouts, all in the host's byte order. Names keep the document's spelling.

using System;

namespace RefRuntime.Core.Vhost;

/// <summary>Front-end request codes (vhost-user.rst "Front-end message types").</summary>
public enum VhostUserRequest : uint
{
    /// <summary>Not a request.</summary>
    None = 0,

    /// <summary>VHOST_USER_GET_FEATURES: reply u64.</summary>
    GetFeatures = 1,

    /// <summary>VHOST_USER_SET_FEATURES: u64.</summary>
    SetFeatures = 2,

    /// <summary>VHOST_USER_SET_OWNER: session start.</summary>
    SetOwner = 3,

    /// <summary>VHOST_USER_RESET_OWNER (deprecated): disable the rings.</summary>
    ResetOwner = 4,

    /// <summary>VHOST_USER_SET_MEM_TABLE: memory regions + one fd each.</summary>
    SetMemTable = 5,

    /// <summary>VHOST_USER_SET_LOG_BASE (LOG_SHMFD).</summary>
    SetLogBase = 6,

    /// <summary>VHOST_USER_SET_LOG_FD.</summary>
    SetLogFd = 7,

    /// <summary>VHOST_USER_SET_VRING_NUM: vring state.</summary>
    SetVringNum = 8,

    /// <summary>VHOST_USER_SET_VRING_ADDR: vring address.</summary>
    SetVringAddr = 9,

    /// <summary>VHOST_USER_SET_VRING_BASE: vring state.</summary>
    SetVringBase = 10,

    /// <summary>VHOST_USER_GET_VRING_BASE: stops the ring; reply vring state.</summary>
    GetVringBase = 11,

    /// <summary>VHOST_USER_SET_VRING_KICK: u64 index | NOFD, fd.</summary>
    SetVringKick = 12,

    /// <summary>VHOST_USER_SET_VRING_CALL: u64 index | NOFD, fd.</summary>
    SetVringCall = 13,

    /// <summary>VHOST_USER_SET_VRING_ERR: u64 index | NOFD, fd.</summary>
    SetVringErr = 14,

    /// <summary>VHOST_USER_GET_PROTOCOL_FEATURES: reply u64.</summary>
    GetProtocolFeatures = 15,

    /// <summary>VHOST_USER_SET_PROTOCOL_FEATURES: u64.</summary>
    SetProtocolFeatures = 16,

    /// <summary>VHOST_USER_GET_QUEUE_NUM (MQ): reply u64.</summary>
    GetQueueNum = 17,

    /// <summary>VHOST_USER_SET_VRING_ENABLE: vring state.</summary>
    SetVringEnable = 18,

    /// <summary>VHOST_USER_SEND_RARP.</summary>
    SendRarp = 19,

    /// <summary>VHOST_USER_NET_SET_MTU.</summary>
    NetSetMtu = 20,

    /// <summary>VHOST_USER_SET_BACKEND_REQ_FD (SET_SLAVE_REQ_FD in QEMU 7.2).</summary>
    SetBackendReqFd = 21,

    /// <summary>VHOST_USER_IOTLB_MSG: reply u64.</summary>
    IotlbMsg = 22,

    /// <summary>VHOST_USER_SET_VRING_ENDIAN.</summary>
    SetVringEndian = 23,

    /// <summary>VHOST_USER_GET_CONFIG: reply config.</summary>
    GetConfig = 24,

    /// <summary>VHOST_USER_SET_CONFIG.</summary>
    SetConfig = 25,

    /// <summary>VHOST_USER_CREATE_CRYPTO_SESSION.</summary>
    CreateCryptoSession = 26,

    /// <summary>VHOST_USER_CLOSE_CRYPTO_SESSION.</summary>
    CloseCryptoSession = 27,

    /// <summary>VHOST_USER_POSTCOPY_ADVISE.</summary>
    PostcopyAdvise = 28,

    /// <summary>VHOST_USER_POSTCOPY_LISTEN.</summary>
    PostcopyListen = 29,

    /// <summary>VHOST_USER_POSTCOPY_END.</summary>
    PostcopyEnd = 30,

    /// <summary>VHOST_USER_GET_INFLIGHT_FD.</summary>
    GetInflightFd = 31,

    /// <summary>VHOST_USER_SET_INFLIGHT_FD.</summary>
    SetInflightFd = 32,

    /// <summary>VHOST_USER_GPU_SET_SOCKET.</summary>
    GpuSetSocket = 33,

    /// <summary>VHOST_USER_RESET_DEVICE.</summary>
    ResetDevice = 34,

    /// <summary>VHOST_USER_VRING_KICK (in-band).</summary>
    VringKick = 35,

    /// <summary>VHOST_USER_GET_MAX_MEM_SLOTS: reply u64.</summary>
    GetMaxMemSlots = 36,

    /// <summary>VHOST_USER_ADD_MEM_REG: single region + one fd.</summary>
    AddMemReg = 37,

    /// <summary>VHOST_USER_REM_MEM_REG: single region.</summary>
    RemMemReg = 38,

    /// <summary>VHOST_USER_SET_STATUS.</summary>
    SetStatus = 39,

    /// <summary>VHOST_USER_GET_STATUS.</summary>
    GetStatus = 40,
}

/// <summary>Protocol feature bits (vhost-user.rst "Protocol features").</summary>
[Flags]
public enum VhostUserProtocolFeatures : ulong
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary>VHOST_USER_PROTOCOL_F_MQ.</summary>
    Mq = 1UL << 0,

    /// <summary>VHOST_USER_PROTOCOL_F_LOG_SHMFD.</summary>
    LogShmfd = 1UL << 1,

    /// <summary>VHOST_USER_PROTOCOL_F_RARP.</summary>
    Rarp = 1UL << 2,

    /// <summary>VHOST_USER_PROTOCOL_F_REPLY_ACK.</summary>
    ReplyAck = 1UL << 3,

    /// <summary>VHOST_USER_PROTOCOL_F_MTU.</summary>
    Mtu = 1UL << 4,

    /// <summary>VHOST_USER_PROTOCOL_F_BACKEND_REQ (SLAVE_REQ).</summary>
    BackendReq = 1UL << 5,

    /// <summary>VHOST_USER_PROTOCOL_F_CROSS_ENDIAN.</summary>
    CrossEndian = 1UL << 6,

    /// <summary>VHOST_USER_PROTOCOL_F_CRYPTO_SESSION.</summary>
    CryptoSession = 1UL << 7,

    /// <summary>VHOST_USER_PROTOCOL_F_PAGEFAULT.</summary>
    PageFault = 1UL << 8,

    /// <summary>VHOST_USER_PROTOCOL_F_CONFIG: GET_CONFIG / SET_CONFIG (QEMU's vhost-user-gpio and -blk require it).</summary>
    Config = 1UL << 9,

    /// <summary>VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD.</summary>
    BackendSendFd = 1UL << 10,

    /// <summary>VHOST_USER_PROTOCOL_F_HOST_NOTIFIER.</summary>
    HostNotifier = 1UL << 11,

    /// <summary>VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD.</summary>
    InflightShmfd = 1UL << 12,

    /// <summary>VHOST_USER_PROTOCOL_F_RESET_DEVICE.</summary>
    ResetDevice = 1UL << 13,

    /// <summary>VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS.</summary>
    InbandNotifications = 1UL << 14,

    /// <summary>VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS.</summary>
    ConfigureMemSlots = 1UL << 15,

    /// <summary>VHOST_USER_PROTOCOL_F_STATUS.</summary>
    Status = 1UL << 16,
}

/// <summary>Header flags, feature bits and payload sizes (vhost-user.rst "Header", "Payload").</summary>
public static class VhostUser
{
    /// <summary>Bytes of the header: u32 request, u32 flags, u32 size.</summary>
    public const int HeaderSize = 12;

    /// <summary>Flags bits 0-1: the protocol version, 1.</summary>
    public const uint VersionMask = 0x3;

    /// <summary>The only version.</summary>
    public const uint Version = 0x1;

    /// <summary>Flags bit 2: this is a reply.</summary>
    public const uint ReplyFlag = 1u << 2;

    /// <summary>Flags bit 3: the front-end wants an acknowledgement (REPLY_ACK).</summary>
    public const uint NeedReplyFlag = 1u << 3;

    /// <summary>Feature bit 30: VHOST_USER_F_PROTOCOL_FEATURES.</summary>
    public const ulong F_PROTOCOL_FEATURES = 1UL << 30;

    /// <summary>Feature bit 26: VHOST_F_LOG_ALL (dirty logging; not offered).</summary>
    public const ulong F_LOG_ALL = 1UL << 26;

    /// <summary>Bits 0-7 of a kick/call/err u64: the ring index.</summary>
    public const ulong VringIndexMask = 0xFF;

    /// <summary>Bit 8 of a kick/call/err u64: no descriptor (poll instead).</summary>
    public const ulong VringNoFdFlag = 1UL << 8;

    /// <summary>VHOST_MEMORY_BASELINE_NREGIONS: the most regions in SET_MEM_TABLE.</summary>
    public const int MaxMemTableRegions = 8;

    /// <summary>Bytes of one region description (guest address, size, user address, mmap offset).</summary>
    public const int RegionSize = 32;

    /// <summary>Bytes of the SET_MEM_TABLE header (u32 nregions, u32 padding).</summary>
    public const int MemTableHeaderSize = 8;

    /// <summary>Bytes of the single-region payload of ADD_MEM_REG / REM_MEM_REG (u64 padding + region).</summary>
    public const int SingleRegionSize = 8 + RegionSize;

    /// <summary>Bytes of a vring state (u32 index, u32 num).</summary>
    public const int VringStateSize = 8;

    /// <summary>Bytes of a vring address (u32 index, u32 flags, u64 desc, used, avail, log).</summary>
    public const int VringAddrSize = 40;

    /// <summary>Bytes of the config payload header (u32 offset, u32 size, u32 flags).</summary>
    public const int ConfigHeaderSize = 12;

    /// <summary>VHOST_USER_MAX_CONFIG_SIZE.</summary>
    public const int MaxConfigSize = 256;

    /// <summary>The largest payload RefRuntime accepts; a header announcing more is a protocol violation.</summary>
    public const int MaxPayloadSize = 4096;

    /// <summary>The most descriptors one message may carry.</summary>
    public const int MaxFds = 8;
}
