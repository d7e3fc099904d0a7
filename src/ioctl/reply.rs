//! Replies of the list commands, written back in the request's own layout (what Lustre's tools
//! read), and decoded again on the user side.
//!
//! The reply is the request, copied to the output buffer, with the output fields filled in
//! (spec §7.1/§7.2); its length is the request length (224 bytes Portals-era, `ioc_len`
//! LNet-era). Commands that return nothing write nothing (0 bytes).
//!
//! | Reply | Portals `portals_cfg` | LNet `libcfs_ioctl_data` |
//! |---|---|---|
//! | peer | nid; size = my IP; id = IP; misc = port; count = #conns; wait = share count | nid; count = share count; u32[0] IP, [1] port, [2] my IP, [3] #conns, [4] pid |
//! | conn | nid; id = IP; misc = port; fd = my IP; flags = type; gw_nal = scheduler; count = tx buf; size = rx buf; wait = nagle | nid; count = tx buf; flags = nagle; u32[0] IP, [1] port, [2] my IP, [3] type, [4] scheduler, [5] rx buf, [6] pid |
//! | interface | id = IP; misc = netmask; fd = #peers; count = #routes | u32[0] IP, [1] netmask, [2] #peers, [3] #routes |
//! | NI | — | nid |
//!
//! Portals-era replies carry no PID; [`decode_reply`] reports 12345 (`LNET_PID_LUSTRE`).

use crate::wire::nid::LNET_PID_LUSTRE;
use crate::wire::{ConnType, Nid};

use super::bytes::{copy_prefix, get_u32, get_u64, put_u32, put_u64};
use super::codes::{self, classify, nal_cmd, Era};
use super::command::{
    conn_type_from_wire, conn_type_to_wire, decode_request, nal_cmd_name, Command,
};
use super::error::IoctlError;
use super::libcfs::{self, off as lo};
use super::portals::{self, pcfg_off as po, PCFG_OFFSET};

/// A peer, as GET_PEER reports it (`lctl peer_list`: `pid-nid [share]myIP->IP:port #conns`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    pub nid: Nid,
    pub pid: u32,
    pub my_ip: u32,
    pub ip: u32,
    pub port: u16,
    pub conn_count: u32,
    pub share_count: u32,
}

/// A connection, as GET_CONN reports it (`lctl conn_list`:
/// `pid-nid T[sched]myIP->IP:port txbuf/rxbuf nagle|nonagle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub nid: Nid,
    pub pid: u32,
    pub my_ip: u32,
    pub ip: u32,
    pub port: u16,
    /// ANY/CONTROL/BULK_IN/BULK_OUT (`A`/`C`/`I`/`O`); never NONE.
    pub conn_type: ConnType,
    pub scheduler: u32,
    pub tx_buf: u32,
    pub rx_buf: u32,
    pub nagle: bool,
}

/// A local interface, as GET_INTERFACE reports it (`IP: (IP/netmask) npeer N nroute M`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceInfo {
    pub ip: u32,
    pub netmask: u32,
    pub npeers: u32,
    pub nroutes: u32,
}

/// What a command returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing (state-changing commands): no bytes are written.
    None,
    Peer(PeerInfo),
    Conn(ConnInfo),
    Interface(InterfaceInfo),
    Ni(Nid),
}

/// The kind of [`Reply`] a command produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    None,
    Peer,
    Conn,
    Interface,
    Ni,
}

impl Reply {
    pub const fn kind(&self) -> ReplyKind {
        match self {
            Reply::None => ReplyKind::None,
            Reply::Peer(_) => ReplyKind::Peer,
            Reply::Conn(_) => ReplyKind::Conn,
            Reply::Interface(_) => ReplyKind::Interface,
            Reply::Ni(_) => ReplyKind::Ni,
        }
    }
}

impl Command {
    /// The kind of reply this command produces.
    pub const fn reply_kind(&self) -> ReplyKind {
        match self {
            Command::GetPeer { .. } => ReplyKind::Peer,
            Command::GetConn { .. } => ReplyKind::Conn,
            Command::GetInterface { .. } => ReplyKind::Interface,
            Command::GetNi { .. } => ReplyKind::Ni,
            _ => ReplyKind::None,
        }
    }
}

/// Writes `reply` for the request `input` (carried by `ioctl_code`) into `output`: the request
/// is validated again, copied, and its output fields filled in. Returns the number of bytes
/// written: 0 for [`Reply::None`], else the request length.
///
/// Errors: anything [`decode_request`] reports; `ReplyMismatch` if the reply kind is not the
/// command's; `OutputTooSmall` if `output` is shorter than the request.
pub fn encode_reply(
    ioctl_code: u32,
    input: &[u8],
    reply: &Reply,
    output: &mut [u8],
) -> Result<usize, IoctlError> {
    let req = decode_request(ioctl_code, input)?;
    if req.command.reply_kind() != reply.kind() {
        return Err(IoctlError::ReplyMismatch {
            command: req.command.name(),
        });
    }
    if reply.kind() == ReplyKind::None {
        return Ok(0);
    }
    copy_prefix(output, input)?;
    let copy = output.get_mut(..input.len()).unwrap_or_default();
    patch_reply(req.era, copy, reply)?;
    Ok(input.len())
}

/// Fills the output fields of `reply` into `buf`, which holds a copy of the (validated) request
/// in the layout of `era`.
pub(crate) fn patch_reply(era: Era, buf: &mut [u8], reply: &Reply) -> Result<(), IoctlError> {
    match era {
        Era::Portals => {
            let cfg = buf.get_mut(PCFG_OFFSET..).unwrap_or_default();
            patch_portals(cfg, reply)
        }
        Era::Lnet => patch_libcfs(buf, reply),
    }
}

fn established(field: &'static str, t: ConnType) -> Result<u32, IoctlError> {
    if t == ConnType::None {
        return Err(IoctlError::InvalidField {
            field,
            value: u64::from(conn_type_to_wire(t)),
            expected: "the type of an established connection (ANY, CONTROL, BULK_IN, BULK_OUT)",
        });
    }
    Ok(conn_type_to_wire(t))
}

fn patch_portals(cfg: &mut [u8], reply: &Reply) -> Result<(), IoctlError> {
    match *reply {
        Reply::None => {}
        Reply::Peer(p) => {
            put_u64(cfg, po::NID, p.nid.0)?;
            put_u32(cfg, po::SIZE, p.my_ip)?;
            put_u32(cfg, po::ID, p.ip)?;
            put_u32(cfg, po::MISC, u32::from(p.port))?;
            put_u32(cfg, po::COUNT, p.conn_count)?;
            put_u32(cfg, po::WAIT, p.share_count)?;
        }
        Reply::Conn(c) => {
            let t = established("conn_type", c.conn_type)?;
            put_u64(cfg, po::NID, c.nid.0)?;
            put_u32(cfg, po::ID, c.ip)?;
            put_u32(cfg, po::MISC, u32::from(c.port))?;
            put_u32(cfg, po::FD, c.my_ip)?;
            put_u32(cfg, po::FLAGS, t)?;
            put_u32(cfg, po::GW_NAL, c.scheduler)?;
            put_u32(cfg, po::COUNT, c.tx_buf)?;
            put_u32(cfg, po::SIZE, c.rx_buf)?;
            put_u32(cfg, po::WAIT, u32::from(c.nagle))?;
        }
        Reply::Interface(i) => {
            put_u32(cfg, po::ID, i.ip)?;
            put_u32(cfg, po::MISC, i.netmask)?;
            put_u32(cfg, po::FD, i.npeers)?;
            put_u32(cfg, po::COUNT, i.nroutes)?;
        }
        Reply::Ni(nid) => put_u64(cfg, po::NID, nid.0)?,
    }
    Ok(())
}

fn patch_libcfs(buf: &mut [u8], reply: &Reply) -> Result<(), IoctlError> {
    let u = |i: usize| lo::U32_N.get(i).copied().unwrap_or(lo::U32);
    match *reply {
        Reply::None => {}
        Reply::Peer(p) => {
            put_u64(buf, lo::NID, p.nid.0)?;
            put_u32(buf, lo::COUNT, p.share_count)?;
            put_u32(buf, u(0), p.ip)?;
            put_u32(buf, u(1), u32::from(p.port))?;
            put_u32(buf, u(2), p.my_ip)?;
            put_u32(buf, u(3), p.conn_count)?;
            put_u32(buf, u(4), p.pid)?;
        }
        Reply::Conn(c) => {
            let t = established("conn_type", c.conn_type)?;
            put_u64(buf, lo::NID, c.nid.0)?;
            put_u32(buf, lo::COUNT, c.tx_buf)?;
            put_u32(buf, lo::FLAGS, u32::from(c.nagle))?;
            put_u32(buf, u(0), c.ip)?;
            put_u32(buf, u(1), u32::from(c.port))?;
            put_u32(buf, u(2), c.my_ip)?;
            put_u32(buf, u(3), t)?;
            put_u32(buf, u(4), c.scheduler)?;
            put_u32(buf, u(5), c.rx_buf)?;
            put_u32(buf, u(6), c.pid)?;
        }
        Reply::Interface(i) => {
            put_u32(buf, u(0), i.ip)?;
            put_u32(buf, u(1), i.netmask)?;
            put_u32(buf, u(2), i.npeers)?;
            put_u32(buf, u(3), i.nroutes)?;
        }
        Reply::Ni(nid) => put_u64(buf, lo::NID, nid.0)?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// User side

fn reply_port(field: &'static str, v: u32) -> Result<u16, IoctlError> {
    u16::try_from(v).map_err(|_| IoctlError::BadPort { field, value: v })
}

fn reply_nagle(field: &'static str, v: u32) -> Result<bool, IoctlError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(IoctlError::InvalidField {
            field,
            value: u64::from(v),
            expected: "0 or 1 (nagle off/on)",
        }),
    }
}

fn reply_conn_type(field: &'static str, v: u32) -> Result<ConnType, IoctlError> {
    match conn_type_from_wire(v) {
        Some(ConnType::None) | None => Err(IoctlError::InvalidField {
            field,
            value: u64::from(v),
            expected: "a connection type 0..=3 (ANY, CONTROL, BULK_IN, BULK_OUT)",
        }),
        Some(t) => Ok(t),
    }
}

/// Decodes the reply the driver wrote into `output` for a request carried by `ioctl_code`
/// (the output buffer of `DeviceIoControl`, trimmed to the bytes returned). The envelope is
/// validated as for a request; the command is read from the reply itself (Portals era) or from
/// the code (LNet era). Commands without output give [`Reply::None`].
pub fn decode_reply(ioctl_code: u32, output: &[u8]) -> Result<Reply, IoctlError> {
    let info = classify(ioctl_code)?;
    match info.era {
        Era::Portals => {
            let req = portals::parse_request(output)?;
            let cfg = output.get(PCFG_OFFSET..).unwrap_or_default();
            let nr = req.cfg.pcfg_command;
            Ok(match nr {
                nal_cmd::GET_PEER => Reply::Peer(PeerInfo {
                    nid: Nid(get_u64(cfg, po::NID)?),
                    pid: LNET_PID_LUSTRE,
                    my_ip: get_u32(cfg, po::SIZE)?,
                    ip: get_u32(cfg, po::ID)?,
                    port: reply_port("pcfg_misc", get_u32(cfg, po::MISC)?)?,
                    conn_count: get_u32(cfg, po::COUNT)?,
                    share_count: get_u32(cfg, po::WAIT)?,
                }),
                nal_cmd::GET_CONN => Reply::Conn(ConnInfo {
                    nid: Nid(get_u64(cfg, po::NID)?),
                    pid: LNET_PID_LUSTRE,
                    my_ip: get_u32(cfg, po::FD)?,
                    ip: get_u32(cfg, po::ID)?,
                    port: reply_port("pcfg_misc", get_u32(cfg, po::MISC)?)?,
                    conn_type: reply_conn_type("pcfg_flags", get_u32(cfg, po::FLAGS)?)?,
                    scheduler: get_u32(cfg, po::GW_NAL)?,
                    tx_buf: get_u32(cfg, po::COUNT)?,
                    rx_buf: get_u32(cfg, po::SIZE)?,
                    nagle: reply_nagle("pcfg_wait", get_u32(cfg, po::WAIT)?)?,
                }),
                nal_cmd::GET_INTERFACE => Reply::Interface(InterfaceInfo {
                    ip: get_u32(cfg, po::ID)?,
                    netmask: get_u32(cfg, po::MISC)?,
                    npeers: get_u32(cfg, po::FD)?,
                    nroutes: get_u32(cfg, po::COUNT)?,
                }),
                nr if nal_cmd_name(nr).is_some() => Reply::None,
                nr => {
                    return Err(IoctlError::UnknownCommand {
                        era: Era::Portals,
                        nr,
                    })
                }
            })
        }
        Era::Lnet => {
            let req = libcfs::parse_request(output)?;
            let d = req.data;
            let [u0, u1, u2, u3, u4, u5, u6] = d.ioc_u32;
            Ok(match info.nr {
                codes::IOC_LIBCFS_GET_PEER => Reply::Peer(PeerInfo {
                    nid: Nid(d.ioc_nid),
                    pid: u4,
                    my_ip: u2,
                    ip: u0,
                    port: reply_port("ioc_u32[1]", u1)?,
                    conn_count: u3,
                    share_count: d.ioc_count,
                }),
                codes::IOC_LIBCFS_GET_CONN => Reply::Conn(ConnInfo {
                    nid: Nid(d.ioc_nid),
                    pid: u6,
                    my_ip: u2,
                    ip: u0,
                    port: reply_port("ioc_u32[1]", u1)?,
                    conn_type: reply_conn_type("ioc_u32[3]", u3)?,
                    scheduler: u4,
                    tx_buf: d.ioc_count,
                    rx_buf: u5,
                    nagle: reply_nagle("ioc_flags", d.ioc_flags)?,
                }),
                codes::IOC_LIBCFS_GET_INTERFACE => Reply::Interface(InterfaceInfo {
                    ip: u0,
                    netmask: u1,
                    npeers: u2,
                    nroutes: u3,
                }),
                codes::IOC_LIBCFS_GET_NI => Reply::Ni(Nid(d.ioc_nid)),
                _ => Reply::None,
            })
        }
    }
}
