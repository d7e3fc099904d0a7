//! Typed commands, decoded from either request form, and the user-side request encoder.
//!
//! Per-command field use (in → out) is documented on each [`Command`] variant and in
//! `docs/ioctl.md` §4. Every field a command does not use must be 0.

use crate::wire::{ConnType, Net, Nid};

use super::codes::{self, classify, libcfs_code, nal_cmd, CodeInfo, Era, IOCTL_PORTAL_NAL_CMD};
use super::error::IoctlError;
use super::libcfs::{self, field as lf, LibcfsIoctlData};
use super::portals::{self, pcfg_field as pf, PortalsCfg};

/// The LND type of socklnd (and the Portals NAL number of socknal): 2.
pub const SOCKLND: u32 = 2;
/// `accept_port` default: the port the acceptor listens on and socklnd connects to.
pub const DEFAULT_ACCEPT_PORT: u16 = 988;
/// `accept_backlog` default, used when START_DAEMON leaves the backlog 0.
pub const DEFAULT_ACCEPT_BACKLOG: u32 = 127;
/// Largest backlog START_DAEMON accepts (each pending child is a pre-created TDI connection
/// object, so the kernel bounds it).
pub const MAX_ACCEPT_BACKLOG: u32 = 4096;
/// The wire value of "no connection type" (`SOCKLND_CONN_NONE`, −1).
pub const CONN_TYPE_NONE: u32 = 0xffff_ffff;

/// The acceptor's policy, as Linux's `lnet accept=` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AcceptPolicy {
    /// Only accept connections from source ports ≤ 1023 (the Linux default).
    Secure,
    /// Accept connections from any source port.
    All,
    /// Accept nothing: START_DAEMON with `None` stops the acceptor (the port is still recorded:
    /// it is also the port tdinal connects to).
    None,
}

impl AcceptPolicy {
    /// Wire value in `pcfg_flags`: secure 0 (so a zeroed field is Lustre's default), all 1,
    /// none 2.
    pub const fn to_wire(self) -> u32 {
        match self {
            AcceptPolicy::Secure => 0,
            AcceptPolicy::All => 1,
            AcceptPolicy::None => 2,
        }
    }

    pub const fn from_wire(v: u32) -> Option<AcceptPolicy> {
        match v {
            0 => Some(AcceptPolicy::Secure),
            1 => Some(AcceptPolicy::All),
            2 => Some(AcceptPolicy::None),
            _ => None,
        }
    }

    /// The name Linux uses for the `accept` parameter value.
    pub const fn name(self) -> &'static str {
        match self {
            AcceptPolicy::Secure => "secure",
            AcceptPolicy::All => "all",
            AcceptPolicy::None => "none",
        }
    }
}

/// socklnd connection type number (spec §3.4): NONE −1, ANY 0, CONTROL 1, BULK_IN 2, BULK_OUT 3.
pub const fn conn_type_to_wire(t: ConnType) -> u32 {
    match t {
        ConnType::None => CONN_TYPE_NONE,
        ConnType::Any => 0,
        ConnType::Control => 1,
        ConnType::BulkIn => 2,
        ConnType::BulkOut => 3,
    }
}

/// The connection type for a socklnd number; `None` for anything else.
pub const fn conn_type_from_wire(v: u32) -> Option<ConnType> {
    match v {
        CONN_TYPE_NONE => Some(ConnType::None),
        0 => Some(ConnType::Any),
        1 => Some(ConnType::Control),
        2 => Some(ConnType::BulkIn),
        3 => Some(ConnType::BulkOut),
        _ => None,
    }
}

/// The letter `lctl conn_list` / `ptlctl connect` use: A(ny), C(ontrol), I(n), O(ut); `?` for NONE.
pub const fn conn_type_letter(t: ConnType) -> char {
    match t {
        ConnType::Any => 'A',
        ConnType::Control => 'C',
        ConnType::BulkIn => 'I',
        ConnType::BulkOut => 'O',
        ConnType::None => '?',
    }
}

/// A control command, independent of the request form that carried it.
///
/// IPs are IPv4 addresses as host-order integers (192.168.0.1 = `0xC0A80001`), like the NID's
/// address part. `Option` fields are "all"/"any" when `None` (on the wire: `LNET_NID_ANY` for a
/// NID, 0 for an IP, `SOCKLND_CONN_NONE` for a connection type, 0 for the backlog); the encoder
/// also writes `Some(sentinel)` as the sentinel, which then decodes as `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// tdinal `NAL_CMD_START_DAEMON` (Portals era only): start the in-kernel acceptor on `port`
    /// (or stop it, with [`AcceptPolicy::None`]). In: misc = port, flags = accept policy,
    /// count = backlog (0 = [`DEFAULT_ACCEPT_BACKLOG`]).
    StartDaemon {
        port: u16,
        accept: AcceptPolicy,
        backlog: Option<u32>,
    },
    /// tdinal `NAL_CMD_CONNECT_PEER` (Portals era only): connect to `nid` at `ip:port` from the
    /// kernel. In: nid, id = IP, misc = port, flags = connection type (NONE = the NAL's choice,
    /// i.e. its usual typed set).
    ConnectPeer {
        nid: Nid,
        ip: u32,
        port: u16,
        ctype: Option<ConnType>,
    },
    /// ADD_PEER (106 / 75): add a route to `nid` at `ip:port` (PID 12345 implied).
    /// In: Portals nid, id = IP, misc = port; LNet nid, u32[0] = IP, u32[1] = port.
    AddPeer { nid: Nid, ip: u32, port: u16 },
    /// DEL_PEER (105 / 74): delete matching peers. In: Portals nid, id = IP, flags = single
    /// share (0/1); LNet nid, u32[0] = IP (the LNet era has no single-share flag).
    DelPeer {
        nid: Option<Nid>,
        ip: Option<u32>,
        single_share: bool,
    },
    /// GET_PEER (107 / 76): the `index`th peer → [`PeerInfo`](super::PeerInfo).
    GetPeer { index: u32 },
    /// GET_CONN (104 / 73): the `index`th connection → [`ConnInfo`](super::ConnInfo).
    GetConn { index: u32 },
    /// CLOSE_CONNECTION (101 / 71): close matching connections. In: Portals nid, id = IP;
    /// LNet nid, u32[0] = IP.
    CloseConnection { nid: Option<Nid>, ip: Option<u32> },
    /// REGISTER_MYNID (102 / 70): in the LNet era only the NI's own NID is accepted.
    RegisterMyNid { nid: Nid },
    /// PUSH_CONNECTION (103 / 72): flush queued sends of matching connections.
    PushConnection { nid: Option<Nid> },
    /// ADD_INTERFACE (113 / 78). In: Portals id = IP, misc = netmask; LNet u32[0], u32[1].
    AddInterface { ip: u32, netmask: u32 },
    /// DEL_INTERFACE (114 / 79): `None` = all. In: Portals id; LNet u32[0].
    DelInterface { ip: Option<u32> },
    /// GET_INTERFACE (115 / 80): the `index`th interface → [`InterfaceInfo`](super::InterfaceInfo).
    GetInterface { index: u32 },
    /// `IOC_LIBCFS_GET_NI` (50, LNet era only): the `index`th local NID → `Reply::Ni`.
    GetNi { index: u32 },
}

impl Command {
    /// The name shared by both eras (`ADD_PEER`, …).
    pub const fn name(&self) -> &'static str {
        match self {
            Command::StartDaemon { .. } => "START_DAEMON",
            Command::ConnectPeer { .. } => "CONNECT_PEER",
            Command::AddPeer { .. } => "ADD_PEER",
            Command::DelPeer { .. } => "DEL_PEER",
            Command::GetPeer { .. } => "GET_PEER",
            Command::GetConn { .. } => "GET_CONN",
            Command::CloseConnection { .. } => "CLOSE_CONNECTION",
            Command::RegisterMyNid { .. } => "REGISTER_MYNID",
            Command::PushConnection { .. } => "PUSH_CONNECTION",
            Command::AddInterface { .. } => "ADD_INTERFACE",
            Command::DelInterface { .. } => "DEL_INTERFACE",
            Command::GetInterface { .. } => "GET_INTERFACE",
            Command::GetNi { .. } => "GET_NI",
        }
    }

    /// The Portals-era `pcfg_command`, if the command exists in that era.
    pub const fn nal_cmd(&self) -> Option<u32> {
        Some(match self {
            Command::StartDaemon { .. } => nal_cmd::START_DAEMON,
            Command::ConnectPeer { .. } => nal_cmd::CONNECT_PEER,
            Command::AddPeer { .. } => nal_cmd::ADD_PEER,
            Command::DelPeer { .. } => nal_cmd::DEL_PEER,
            Command::GetPeer { .. } => nal_cmd::GET_PEER,
            Command::GetConn { .. } => nal_cmd::GET_CONN,
            Command::CloseConnection { .. } => nal_cmd::CLOSE_CONNECTION,
            Command::RegisterMyNid { .. } => nal_cmd::REGISTER_MYNID,
            Command::PushConnection { .. } => nal_cmd::PUSH_CONNECTION,
            Command::AddInterface { .. } => nal_cmd::ADD_INTERFACE,
            Command::DelInterface { .. } => nal_cmd::DEL_INTERFACE,
            Command::GetInterface { .. } => nal_cmd::GET_INTERFACE,
            Command::GetNi { .. } => return None,
        })
    }

    /// The LNet-era `IOC_LIBCFS_*` number, if the command exists in that era.
    pub const fn libcfs_nr(&self) -> Option<u32> {
        Some(match self {
            Command::StartDaemon { .. } | Command::ConnectPeer { .. } => return None,
            Command::AddPeer { .. } => codes::IOC_LIBCFS_ADD_PEER,
            Command::DelPeer { .. } => codes::IOC_LIBCFS_DEL_PEER,
            Command::GetPeer { .. } => codes::IOC_LIBCFS_GET_PEER,
            Command::GetConn { .. } => codes::IOC_LIBCFS_GET_CONN,
            Command::CloseConnection { .. } => codes::IOC_LIBCFS_CLOSE_CONNECTION,
            Command::RegisterMyNid { .. } => codes::IOC_LIBCFS_REGISTER_MYNID,
            Command::PushConnection { .. } => codes::IOC_LIBCFS_PUSH_CONNECTION,
            Command::AddInterface { .. } => codes::IOC_LIBCFS_ADD_INTERFACE,
            Command::DelInterface { .. } => codes::IOC_LIBCFS_DEL_INTERFACE,
            Command::GetInterface { .. } => codes::IOC_LIBCFS_GET_INTERFACE,
            Command::GetNi { .. } => codes::IOC_LIBCFS_GET_NI,
        })
    }

    /// Whether the command exists in `era`.
    pub const fn exists_in(&self, era: Era) -> bool {
        match era {
            Era::Portals => self.nal_cmd().is_some(),
            Era::Lnet => self.libcfs_nr().is_some(),
        }
    }

    /// Whether the command changes NAL state (and so needs `FILE_WRITE_ACCESS`).
    pub const fn is_mutating(&self) -> bool {
        !matches!(
            self,
            Command::GetPeer { .. }
                | Command::GetConn { .. }
                | Command::GetInterface { .. }
                | Command::GetNi { .. }
        )
    }
}

/// A decoded request: the command, the form it came in, and (LNet era, socklnd commands) the
/// network `ioc_net` routes it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub era: Era,
    pub net: Option<Net>,
    pub command: Command,
}

/// Decodes and validates a request. See [`decode_request`].
pub fn decode(ioctl_code: u32, input: &[u8]) -> Result<Command, IoctlError> {
    decode_request(ioctl_code, input).map(|r| r.command)
}

/// Decodes and validates a request: the control code, the envelope of its era
/// ([`portals::parse_request`] / [`libcfs::parse_request`]), then the command's own fields.
/// Never panics, never allocates; the input is only read.
pub fn decode_request(ioctl_code: u32, input: &[u8]) -> Result<Request, IoctlError> {
    let info = classify(ioctl_code)?;
    match info.era {
        Era::Portals => decode_portals(input).map(|command| Request {
            era: Era::Portals,
            net: None,
            command,
        }),
        Era::Lnet => decode_lnet(info, input).map(|(command, net)| Request {
            era: Era::Lnet,
            net,
            command,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Field validation

/// Where a NID comes from: Portals NIDs may be net-0 ("portals-style"); LNet NIDs must be on the
/// request's network.
#[derive(Clone, Copy)]
enum NidCtx {
    Portals,
    Lnet(Net),
}

const LNET_NID_ANY: u64 = Nid::ANY.0;

/// A unicast IPv4 address: not 0.0.0.0/8, not multicast (224/4), not reserved (240/4, which
/// holds the broadcast address).
pub const fn is_unicast_ip(ip: u32) -> bool {
    let first = ip >> 24;
    first != 0 && first < 224
}

/// A contiguous, non-zero netmask (`/1` … `/32`).
pub const fn is_netmask(mask: u32) -> bool {
    mask != 0 && ((!mask).wrapping_add(1) & !mask) == 0
}

const UNICAST: &str = "a unicast IPv4 address (not 0.0.0.0/8, multicast or 240.0.0.0/4)";

fn unicast_ip(field: &'static str, ip: u32) -> Result<u32, IoctlError> {
    if is_unicast_ip(ip) {
        Ok(ip)
    } else {
        Err(IoctlError::BadIp {
            field,
            value: ip,
            expected: UNICAST,
        })
    }
}

fn optional_ip(field: &'static str, ip: u32) -> Result<Option<u32>, IoctlError> {
    if ip == 0 {
        Ok(None)
    } else {
        unicast_ip(field, ip).map(Some)
    }
}

fn netmask(field: &'static str, mask: u32) -> Result<u32, IoctlError> {
    if is_netmask(mask) {
        Ok(mask)
    } else {
        Err(IoctlError::BadIp {
            field,
            value: mask,
            expected: "a non-zero contiguous netmask (e.g. 255.255.255.0)",
        })
    }
}

fn port(field: &'static str, v: u32) -> Result<u16, IoctlError> {
    match u16::try_from(v) {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(IoctlError::BadPort { field, value: v }),
    }
}

fn check_nid(field: &'static str, raw: u64, ctx: NidCtx) -> Result<Nid, IoctlError> {
    let bad = |expected| IoctlError::BadNid {
        field,
        nid: raw,
        expected,
    };
    let net = (raw >> 32) as u32;
    let addr = raw as u32;
    if net >> 24 != 0 {
        return Err(bad("bits 63..56 zero (they always are in a NID)"));
    }
    match ctx {
        NidCtx::Portals => {
            if net != 0 && (net >> 16) != SOCKLND {
                return Err(bad("a tcp NID (LND 2) or a Portals-style NID (net 0)"));
            }
        }
        NidCtx::Lnet(want) => {
            if net != want.0 {
                return Err(bad("a NID on the network named by ioc_net"));
            }
        }
    }
    if !is_unicast_ip(addr) {
        return Err(bad(
            "an address part that is a unicast IPv4 address (not 0.0.0.0/8, multicast or \
             240.0.0.0/4)",
        ));
    }
    Ok(Nid(raw))
}

fn specific_nid(
    field: &'static str,
    raw: u64,
    ctx: NidCtx,
    command: &'static str,
) -> Result<Nid, IoctlError> {
    if raw == LNET_NID_ANY {
        return Err(IoctlError::NidAnyNotAllowed { field, command });
    }
    check_nid(field, raw, ctx)
}

fn optional_nid(field: &'static str, raw: u64, ctx: NidCtx) -> Result<Option<Nid>, IoctlError> {
    if raw == LNET_NID_ANY {
        Ok(None)
    } else {
        check_nid(field, raw, ctx).map(Some)
    }
}

/// Every field in `fields` whose bit is not in `used` must be 0.
fn check_unused<const N: usize>(
    fields: [(&'static str, u64, u32); N],
    used: u32,
    command: &'static str,
) -> Result<(), IoctlError> {
    for (field, value, bit) in fields {
        if used & bit == 0 && value != 0 {
            return Err(IoctlError::ReservedNotZero {
                field,
                value,
                command,
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Portals era

/// The Lustre name of a `pcfg_command`, if it is one.
pub const fn nal_cmd_name(cmd: u32) -> Option<&'static str> {
    Some(match cmd {
        nal_cmd::REGISTER_PEER_FD => "NAL_CMD_REGISTER_PEER_FD",
        nal_cmd::CLOSE_CONNECTION => "NAL_CMD_CLOSE_CONNECTION",
        nal_cmd::REGISTER_MYNID => "NAL_CMD_REGISTER_MYNID",
        nal_cmd::PUSH_CONNECTION => "NAL_CMD_PUSH_CONNECTION",
        nal_cmd::GET_CONN => "NAL_CMD_GET_CONN",
        nal_cmd::DEL_PEER => "NAL_CMD_DEL_PEER",
        nal_cmd::ADD_PEER => "NAL_CMD_ADD_PEER",
        nal_cmd::GET_PEER => "NAL_CMD_GET_PEER",
        nal_cmd::GET_TXDESC => "NAL_CMD_GET_TXDESC",
        nal_cmd::ADD_ROUTE => "NAL_CMD_ADD_ROUTE",
        nal_cmd::DEL_ROUTE => "NAL_CMD_DEL_ROUTE",
        nal_cmd::GET_ROUTE => "NAL_CMD_GET_ROUTE",
        nal_cmd::NOTIFY_ROUTER => "NAL_CMD_NOTIFY_ROUTER",
        nal_cmd::ADD_INTERFACE => "NAL_CMD_ADD_INTERFACE",
        nal_cmd::DEL_INTERFACE => "NAL_CMD_DEL_INTERFACE",
        nal_cmd::GET_INTERFACE => "NAL_CMD_GET_INTERFACE",
        nal_cmd::START_DAEMON => "NAL_CMD_START_DAEMON",
        nal_cmd::CONNECT_PEER => "NAL_CMD_CONNECT_PEER",
        _ => return None,
    })
}

const NOT_A_ROUTER: &str = "tdinal is not an LNet router";

fn decode_portals(input: &[u8]) -> Result<Command, IoctlError> {
    let req = portals::parse_request(input)?;
    let c = &req.cfg;
    let nr = c.pcfg_command;
    let name = nal_cmd_name(nr).ok_or(IoctlError::UnknownCommand {
        era: Era::Portals,
        nr,
    })?;
    let used = match nr {
        nal_cmd::REGISTER_PEER_FD => {
            return Err(IoctlError::NotSupported {
                command: name,
                why: "a user-mode socket cannot be handed to a Windows kernel TDI client; use \
                      NAL_CMD_CONNECT_PEER and NAL_CMD_START_DAEMON",
            })
        }
        nal_cmd::GET_TXDESC => {
            return Err(IoctlError::NotSupported {
                command: name,
                why: "active tx listing is not implemented",
            })
        }
        nal_cmd::ADD_ROUTE | nal_cmd::DEL_ROUTE | nal_cmd::GET_ROUTE | nal_cmd::NOTIFY_ROUTER => {
            return Err(IoctlError::NotSupported {
                command: name,
                why: NOT_A_ROUTER,
            })
        }
        nal_cmd::CLOSE_CONNECTION => pf::NID | pf::ID,
        nal_cmd::REGISTER_MYNID | nal_cmd::PUSH_CONNECTION => pf::NID,
        nal_cmd::GET_CONN | nal_cmd::GET_PEER | nal_cmd::GET_INTERFACE => pf::COUNT,
        nal_cmd::DEL_PEER => pf::NID | pf::ID | pf::FLAGS,
        nal_cmd::ADD_PEER => pf::NID | pf::ID | pf::MISC,
        nal_cmd::ADD_INTERFACE => pf::ID | pf::MISC,
        nal_cmd::DEL_INTERFACE => pf::ID,
        nal_cmd::START_DAEMON => pf::MISC | pf::FLAGS | pf::COUNT,
        // CONNECT_PEER (and nothing else: nal_cmd_name() knows exactly these numbers).
        _ => pf::NID | pf::ID | pf::MISC | pf::FLAGS,
    };
    check_unused(c.command_fields(), used, name)?;

    let ctx = NidCtx::Portals;
    Ok(match nr {
        nal_cmd::CLOSE_CONNECTION => Command::CloseConnection {
            nid: optional_nid("pcfg_nid", c.pcfg_nid, ctx)?,
            ip: optional_ip("pcfg_id", c.pcfg_id)?,
        },
        nal_cmd::REGISTER_MYNID => Command::RegisterMyNid {
            nid: specific_nid("pcfg_nid", c.pcfg_nid, ctx, name)?,
        },
        nal_cmd::PUSH_CONNECTION => Command::PushConnection {
            nid: optional_nid("pcfg_nid", c.pcfg_nid, ctx)?,
        },
        nal_cmd::GET_CONN => Command::GetConn {
            index: c.pcfg_count,
        },
        nal_cmd::GET_PEER => Command::GetPeer {
            index: c.pcfg_count,
        },
        nal_cmd::GET_INTERFACE => Command::GetInterface {
            index: c.pcfg_count,
        },
        nal_cmd::DEL_PEER => Command::DelPeer {
            nid: optional_nid("pcfg_nid", c.pcfg_nid, ctx)?,
            ip: optional_ip("pcfg_id", c.pcfg_id)?,
            single_share: match c.pcfg_flags {
                0 => false,
                1 => true,
                v => {
                    return Err(IoctlError::InvalidField {
                        field: "pcfg_flags",
                        value: u64::from(v),
                        expected: "0, or 1 for \"single share\"",
                    })
                }
            },
        },
        nal_cmd::ADD_PEER => Command::AddPeer {
            nid: specific_nid("pcfg_nid", c.pcfg_nid, ctx, name)?,
            ip: unicast_ip("pcfg_id", c.pcfg_id)?,
            port: port("pcfg_misc", c.pcfg_misc)?,
        },
        nal_cmd::ADD_INTERFACE => Command::AddInterface {
            ip: unicast_ip("pcfg_id", c.pcfg_id)?,
            netmask: netmask("pcfg_misc", c.pcfg_misc)?,
        },
        nal_cmd::DEL_INTERFACE => Command::DelInterface {
            ip: optional_ip("pcfg_id", c.pcfg_id)?,
        },
        nal_cmd::START_DAEMON => Command::StartDaemon {
            port: port("pcfg_misc", c.pcfg_misc)?,
            accept: AcceptPolicy::from_wire(c.pcfg_flags).ok_or(IoctlError::InvalidField {
                field: "pcfg_flags",
                value: u64::from(c.pcfg_flags),
                expected: "an accept policy: 0 secure, 1 all, 2 none",
            })?,
            backlog: match c.pcfg_count {
                0 => None,
                n if n <= MAX_ACCEPT_BACKLOG => Some(n),
                n => {
                    return Err(IoctlError::InvalidField {
                        field: "pcfg_count",
                        value: u64::from(n),
                        expected: "a backlog 1..=4096, or 0 for the default (127)",
                    })
                }
            },
        },
        _ => Command::ConnectPeer {
            nid: specific_nid("pcfg_nid", c.pcfg_nid, ctx, name)?,
            ip: unicast_ip("pcfg_id", c.pcfg_id)?,
            port: port("pcfg_misc", c.pcfg_misc)?,
            ctype: match conn_type_from_wire(c.pcfg_flags) {
                Some(ConnType::None) => None,
                Some(t) => Some(t),
                None => {
                    return Err(IoctlError::InvalidField {
                        field: "pcfg_flags",
                        value: u64::from(c.pcfg_flags),
                        expected: "a connection type: 0xffffffff (NAL's choice), 0 ANY, \
                                   1 CONTROL, 2 BULK_IN, 3 BULK_OUT",
                    })
                }
            },
        },
    })
}

// ---------------------------------------------------------------------------------------------
// LNet era

/// Why tdinal does not implement an LNet-era command.
fn lnet_unsupported_reason(nr: u32) -> &'static str {
    match nr {
        codes::IOC_LIBCFS_ADD_ROUTE
        | codes::IOC_LIBCFS_DEL_ROUTE
        | codes::IOC_LIBCFS_GET_ROUTE
        | codes::IOC_LIBCFS_NOTIFY_ROUTER => NOT_A_ROUTER,
        codes::IOC_LIBCFS_CONFIGURE | codes::IOC_LIBCFS_UNCONFIGURE => {
            "the network is configured from the driver's parameters"
        }
        codes::IOC_LIBCFS_PING => {
            "its reply goes to an out-of-band user buffer (ioc_pbuf1), which a driver never follows"
        }
        codes::IOC_LIBCFS_PORTALS_COMPATIBILITY => "only portals_compatibility=none exists",
        codes::IOC_LIBCFS_GET_GMID => "it belongs to the GM LND",
        _ => "not implemented",
    }
}

fn decode_lnet(info: &CodeInfo, input: &[u8]) -> Result<(Command, Option<Net>), IoctlError> {
    let name = info.name;
    if !info.supported {
        return Err(IoctlError::NotSupported {
            command: name,
            why: lnet_unsupported_reason(info.nr),
        });
    }
    let req = libcfs::parse_request(input)?;
    let d = &req.data;
    let [u0, u1, ..] = d.ioc_u32;

    // Every command but GET_NI is routed to the socklnd NI named by ioc_net.
    let net = if info.nr == codes::IOC_LIBCFS_GET_NI {
        None
    } else {
        if d.ioc_net >> 24 != 0 || d.ioc_net >> 16 != SOCKLND {
            return Err(IoctlError::WrongNet { net: d.ioc_net });
        }
        Some(Net(d.ioc_net))
    };
    let net_bit = if net.is_some() { lf::NET } else { 0 };
    let used = net_bit
        | match info.nr {
            codes::IOC_LIBCFS_REGISTER_MYNID | codes::IOC_LIBCFS_PUSH_CONNECTION => lf::NID,
            codes::IOC_LIBCFS_CLOSE_CONNECTION | codes::IOC_LIBCFS_DEL_PEER => lf::NID | lf::U32_0,
            codes::IOC_LIBCFS_ADD_PEER => lf::NID | lf::U32_0 | lf::U32_1,
            codes::IOC_LIBCFS_ADD_INTERFACE => lf::U32_0 | lf::U32_1,
            codes::IOC_LIBCFS_DEL_INTERFACE => lf::U32_0,
            // GET_NI, GET_CONN, GET_PEER, GET_INTERFACE.
            _ => lf::COUNT,
        };
    check_unused(d.command_fields(), used, name)?;

    let ctx = NidCtx::Lnet(Net(d.ioc_net));
    let command = match info.nr {
        codes::IOC_LIBCFS_REGISTER_MYNID => Command::RegisterMyNid {
            nid: specific_nid("ioc_nid", d.ioc_nid, ctx, name)?,
        },
        codes::IOC_LIBCFS_PUSH_CONNECTION => Command::PushConnection {
            nid: optional_nid("ioc_nid", d.ioc_nid, ctx)?,
        },
        codes::IOC_LIBCFS_CLOSE_CONNECTION => Command::CloseConnection {
            nid: optional_nid("ioc_nid", d.ioc_nid, ctx)?,
            ip: optional_ip("ioc_u32[0]", u0)?,
        },
        codes::IOC_LIBCFS_DEL_PEER => Command::DelPeer {
            nid: optional_nid("ioc_nid", d.ioc_nid, ctx)?,
            ip: optional_ip("ioc_u32[0]", u0)?,
            single_share: false,
        },
        codes::IOC_LIBCFS_ADD_PEER => Command::AddPeer {
            nid: specific_nid("ioc_nid", d.ioc_nid, ctx, name)?,
            ip: unicast_ip("ioc_u32[0]", u0)?,
            port: port("ioc_u32[1]", u1)?,
        },
        codes::IOC_LIBCFS_ADD_INTERFACE => Command::AddInterface {
            ip: unicast_ip("ioc_u32[0]", u0)?,
            netmask: netmask("ioc_u32[1]", u1)?,
        },
        codes::IOC_LIBCFS_DEL_INTERFACE => Command::DelInterface {
            ip: optional_ip("ioc_u32[0]", u0)?,
        },
        codes::IOC_LIBCFS_GET_CONN => Command::GetConn { index: d.ioc_count },
        codes::IOC_LIBCFS_GET_PEER => Command::GetPeer { index: d.ioc_count },
        codes::IOC_LIBCFS_GET_INTERFACE => Command::GetInterface { index: d.ioc_count },
        codes::IOC_LIBCFS_GET_NI => Command::GetNi { index: d.ioc_count },
        nr => {
            // A supported row without a decoder would be a table bug; report it, don't panic.
            return Err(IoctlError::UnknownCommand { era: Era::Lnet, nr });
        }
    };
    Ok((command, net))
}

// ---------------------------------------------------------------------------------------------
// User side: building requests

/// `tcp` (= `tcp0`), the network [`encode_request`] addresses LNet-era requests to.
pub const TCP0: Net = Net(SOCKLND << 16);

/// Builds the request for `cmd` in `era` into `out`; LNet-era requests go to `tcp0`
/// (see [`encode_request_on`]). Returns the control code and the request length.
pub fn encode_request(cmd: &Command, era: Era, out: &mut [u8]) -> Result<(u32, usize), IoctlError> {
    encode_request_on(cmd, era, TCP0, out)
}

/// Builds the request for `cmd` in `era` into `out`, addressing LNet-era socklnd commands to
/// `net` (`ioc_net`, what `lctl --net tcpN` selects). The result is checked with [`decode`]
/// before it is returned, so the encoder never produces a request the driver would refuse
/// (`AddPeer` with `Nid::ANY`, port 0, …): that error is returned instead. The contents of
/// `out` are unspecified on error.
pub fn encode_request_on(
    cmd: &Command,
    era: Era,
    net: Net,
    out: &mut [u8],
) -> Result<(u32, usize), IoctlError> {
    let (code, len) = match era {
        Era::Portals => {
            let cfg = to_pcfg(cmd)?;
            (IOCTL_PORTAL_NAL_CMD, portals::build_request(&cfg, out)?)
        }
        Era::Lnet => {
            let (nr, data) = to_libcfs(cmd, net)?;
            let code = libcfs_code(nr).ok_or(IoctlError::UnknownCommand { era, nr })?;
            (code, libcfs::pack(&data, &[], &[], out)?)
        }
    };
    let built = out.get(..len).ok_or(IoctlError::OutputTooSmall {
        need: len,
        have: len,
    })?;
    decode(code, built)?;
    Ok((code, len))
}

fn nid_or_any(nid: Option<Nid>) -> u64 {
    nid.map_or(LNET_NID_ANY, |n| n.0)
}

fn to_pcfg(cmd: &Command) -> Result<PortalsCfg, IoctlError> {
    let nr = cmd.nal_cmd().ok_or(IoctlError::NotInEra {
        command: cmd.name(),
        era: Era::Portals,
    })?;
    let mut c = PortalsCfg::new(nr);
    match *cmd {
        Command::StartDaemon {
            port,
            accept,
            backlog,
        } => {
            c.pcfg_misc = u32::from(port);
            c.pcfg_flags = accept.to_wire();
            c.pcfg_count = backlog.unwrap_or(0);
        }
        Command::ConnectPeer {
            nid,
            ip,
            port,
            ctype,
        } => {
            c.pcfg_nid = nid.0;
            c.pcfg_id = ip;
            c.pcfg_misc = u32::from(port);
            c.pcfg_flags = ctype.map_or(CONN_TYPE_NONE, conn_type_to_wire);
        }
        Command::AddPeer { nid, ip, port } => {
            c.pcfg_nid = nid.0;
            c.pcfg_id = ip;
            c.pcfg_misc = u32::from(port);
        }
        Command::DelPeer {
            nid,
            ip,
            single_share,
        } => {
            c.pcfg_nid = nid_or_any(nid);
            c.pcfg_id = ip.unwrap_or(0);
            c.pcfg_flags = u32::from(single_share);
        }
        Command::GetPeer { index }
        | Command::GetConn { index }
        | Command::GetInterface { index } => {
            c.pcfg_count = index;
        }
        Command::CloseConnection { nid, ip } => {
            c.pcfg_nid = nid_or_any(nid);
            c.pcfg_id = ip.unwrap_or(0);
        }
        Command::RegisterMyNid { nid } => c.pcfg_nid = nid.0,
        Command::PushConnection { nid } => c.pcfg_nid = nid_or_any(nid),
        Command::AddInterface { ip, netmask } => {
            c.pcfg_id = ip;
            c.pcfg_misc = netmask;
        }
        Command::DelInterface { ip } => c.pcfg_id = ip.unwrap_or(0),
        Command::GetNi { .. } => {
            return Err(IoctlError::NotInEra {
                command: cmd.name(),
                era: Era::Portals,
            })
        }
    }
    Ok(c)
}

fn to_libcfs(cmd: &Command, net: Net) -> Result<(u32, LibcfsIoctlData), IoctlError> {
    let nr = cmd.libcfs_nr().ok_or(IoctlError::NotInEra {
        command: cmd.name(),
        era: Era::Lnet,
    })?;
    let mut d = LibcfsIoctlData::new();
    d.ioc_net = net.0;
    match *cmd {
        Command::AddPeer { nid, ip, port } => {
            d.ioc_nid = nid.0;
            d.ioc_u32 = [ip, u32::from(port), 0, 0, 0, 0, 0];
        }
        Command::DelPeer {
            nid,
            ip,
            single_share,
        } => {
            if single_share {
                return Err(IoctlError::InvalidField {
                    field: "single_share",
                    value: 1,
                    expected: "false: IOC_LIBCFS_DEL_PEER has no single-share flag",
                });
            }
            d.ioc_nid = nid_or_any(nid);
            d.ioc_u32 = [ip.unwrap_or(0), 0, 0, 0, 0, 0, 0];
        }
        Command::GetPeer { index }
        | Command::GetConn { index }
        | Command::GetInterface { index } => {
            d.ioc_count = index;
        }
        Command::GetNi { index } => {
            d.ioc_count = index;
            d.ioc_net = 0;
        }
        Command::CloseConnection { nid, ip } => {
            d.ioc_nid = nid_or_any(nid);
            d.ioc_u32 = [ip.unwrap_or(0), 0, 0, 0, 0, 0, 0];
        }
        Command::RegisterMyNid { nid } => d.ioc_nid = nid.0,
        Command::PushConnection { nid } => d.ioc_nid = nid_or_any(nid),
        Command::AddInterface { ip, netmask } => d.ioc_u32 = [ip, netmask, 0, 0, 0, 0, 0],
        Command::DelInterface { ip } => d.ioc_u32 = [ip.unwrap_or(0), 0, 0, 0, 0, 0, 0],
        Command::StartDaemon { .. } | Command::ConnectPeer { .. } => {
            return Err(IoctlError::NotInEra {
                command: cmd.name(),
                era: Era::Lnet,
            })
        }
    }
    Ok((nr, d))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn unicast_and_netmask() {
        assert!(is_unicast_ip(0x7f00_0001));
        assert!(is_unicast_ip(0xC0A8_0001));
        assert!(is_unicast_ip(0xDFFF_FFFF));
        assert!(!is_unicast_ip(0));
        assert!(!is_unicast_ip(0x00FF_FFFF));
        assert!(!is_unicast_ip(0xE000_0001));
        assert!(!is_unicast_ip(0xFFFF_FFFF));
        for bits in 1..=32u32 {
            assert!(is_netmask(u32::MAX << (32 - bits)), "/{bits}");
        }
        assert!(!is_netmask(0));
        assert!(!is_netmask(0xFF00_FF00));
        assert!(!is_netmask(0x0000_00FF));
    }

    #[test]
    fn conn_type_numbers() {
        for v in [0, 1, 2, 3, CONN_TYPE_NONE] {
            assert_eq!(conn_type_to_wire(conn_type_from_wire(v).unwrap()), v);
        }
        assert_eq!(conn_type_from_wire(4), None);
        assert_eq!(conn_type_letter(ConnType::BulkIn), 'I');
    }

    #[test]
    fn nal_cmd_names_cover_100_to_117() {
        for nr in 100..=117 {
            assert!(nal_cmd_name(nr).unwrap().starts_with("NAL_CMD_"));
        }
        assert_eq!(nal_cmd_name(99), None);
        assert_eq!(nal_cmd_name(118), None);
    }
}
