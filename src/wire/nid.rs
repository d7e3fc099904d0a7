//! NIDs (64-bit "NID4"), networks, LND type numbers, process ids and wire handles (spec §1.1–1.4).

use core::fmt;
use core::str::FromStr;

use super::WireError;

/// LND type numbers (spec §1.3): the byte at bits 55..48 of a NID.
pub mod lnd {
    pub const QSWLND: u8 = 1;
    pub const SOCKLND: u8 = 2;
    pub const GMLND: u8 = 3;
    pub const PTLLND: u8 = 4;
    pub const O2IBLND: u8 = 5;
    pub const CIBLND: u8 = 6;
    pub const OPENIBLND: u8 = 7;
    pub const IIBLND: u8 = 8;
    pub const LOLND: u8 = 9;
    pub const RALND: u8 = 10;
    pub const VIBLND: u8 = 11;
    pub const MXLND: u8 = 12;
    pub const GNILND: u8 = 13;
    pub const GNIIPLND: u8 = 14;
    pub const PTL4LND: u8 = 15;
    pub const KFILND: u8 = 16;
    pub const TOFULND: u8 = 17;
    pub const EFALND: u8 = 18;
    pub const BXI3LND: u8 = 19;
}

/// The PID every kernel LNet instance uses.
pub const LNET_PID_LUSTRE: u32 = 12345;
/// Wildcard PID.
pub const LNET_PID_ANY: u32 = 0xFFFF_FFFF;
/// Set in the PIDs of userspace peers.
pub const LNET_PID_USERFLAG: u32 = 0x8000_0000;
/// The portal LNet itself uses (ping, discovery push).
pub const LNET_RESERVED_PORTAL: u32 = 0;
/// Largest PUT/REPLY payload.
pub const LNET_MTU: u32 = 1 << 20;
/// Most fragments in one message.
pub const LNET_MAX_IOV: usize = 256;

/// A network: `(lnd_type << 16) | number`, the high 32 bits of a NID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Net(pub u32);

impl Net {
    pub const fn new(lnd: u8, num: u16) -> Net {
        Net(((lnd as u32) << 16) | num as u32)
    }
    /// `tcp` (= `tcp0`).
    pub const TCP0: Net = Net::new(lnd::SOCKLND, 0);
    /// `lo`.
    pub const LO: Net = Net::new(lnd::LOLND, 0);
    pub const fn lnd(self) -> u8 {
        (self.0 >> 16) as u8
    }
    pub const fn num(self) -> u16 {
        self.0 as u16
    }
}

/// A classic 64-bit NID: net in bits 63..32, address in bits 31..0 (IPv4 as a host-order integer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nid(pub u64);

impl Nid {
    /// `LNET_NID_ANY`.
    pub const ANY: Nid = Nid(u64::MAX);
    /// `0@lo`.
    pub const LO_0: Nid = Nid(0x0009_0000_0000_0000);

    pub const fn new(net: Net, addr: u32) -> Nid {
        Nid(((net.0 as u64) << 32) | addr as u64)
    }
    pub const fn net(self) -> Net {
        Net((self.0 >> 32) as u32)
    }
    pub const fn addr(self) -> u32 {
        self.0 as u32
    }
    pub const fn lnd(self) -> u8 {
        self.net().lnd()
    }
}

/// A process id: NID and PID (`lnet_process_id`). Formats as `12345-192.168.0.1@tcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId {
    pub nid: Nid,
    pub pid: u32,
}

impl ProcessId {
    pub const fn new(nid: Nid, pid: u32) -> ProcessId {
        ProcessId { nid, pid }
    }
    /// A kernel LNet instance at `nid` (PID 12345).
    pub const fn lustre(nid: Nid) -> ProcessId {
        ProcessId {
            nid,
            pid: LNET_PID_LUSTRE,
        }
    }
    pub const fn is_userspace(self) -> bool {
        self.pid != LNET_PID_ANY && self.pid & LNET_PID_USERFLAG != 0
    }
}

/// A 16-byte wire handle (`lnet_handle_wire`): interface cookie then object cookie, LE.
/// Only the node that made it interprets it; we echo it back verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct WireHandle {
    pub interface_cookie: u64,
    pub object_cookie: u64,
}

impl WireHandle {
    /// `LNET_WIRE_HANDLE_COOKIE_NONE` in both cookies: e.g. a PUT that wants no ACK.
    pub const NONE: WireHandle = WireHandle {
        interface_cookie: u64::MAX,
        object_cookie: u64::MAX,
    };
    pub const fn is_none(&self) -> bool {
        self.interface_cookie == u64::MAX && self.object_cookie == u64::MAX
    }
}

/// The suffix Lustre writes for an LND type (`tcp`, `o2ib`, `lo`, …), if it has one.
pub fn lnd_name(lnd_type: u8) -> Option<&'static str> {
    todo!("wire helper: table of spec §1.3 names; {lnd_type}")
}

impl fmt::Display for Net {
    /// `tcp`, `tcp1`, `o2ib3`; unknown LND types as `<type:num>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("wire helper {f:p}")
    }
}

impl fmt::Display for Nid {
    /// As Lustre writes it: `192.168.0.1@tcp`, `10.0.0.5@tcp1`, `0@lo`, `<addr-hex>@<type:num>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("wire helper {f:p}")
    }
}

impl FromStr for Nid {
    type Err = WireError;
    /// Parses `a.b.c.d@tcp[N]`, `0@lo`, a bare `a.b.c.d` (= tcp0), and the other IP LNDs.
    fn from_str(s: &str) -> Result<Nid, WireError> {
        todo!("wire helper {s}")
    }
}

impl fmt::Display for ProcessId {
    /// `12345-192.168.0.1@tcp`; `U` prefix when the user flag is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        todo!("wire helper {f:p}")
    }
}

impl FromStr for ProcessId {
    type Err = WireError;
    /// `<pid>-<nid>` or a bare NID (PID 12345).
    fn from_str(s: &str) -> Result<ProcessId, WireError> {
        todo!("wire helper {s}")
    }
}
