//! Shared fixtures for the `ioctl_*` tests: sample commands and a recording mock NAL.
//! Included by the other test files with `#[path = "ioctl_common.rs"] mod common;`.
#![allow(dead_code)]

use std::cell::RefCell;

use tdinal::ioctl::{
    AcceptPolicy, Command, ConnInfo, CtlError, Era, InterfaceInfo, NalControl, PeerInfo,
};
use tdinal::wire::{ConnType, Net, Nid};

/// 192.168.0.1@tcp
pub const NID_A: Nid = Nid(0x0002_0000_C0A8_0001);
/// 192.168.0.2@tcp
pub const NID_B: Nid = Nid(0x0002_0000_C0A8_0002);
/// 10.0.0.5@tcp1
pub const NID_TCP1: Nid = Nid(0x0002_0001_0A00_0005);
/// 192.168.0.1 as a Portals-era NID (net 0).
pub const NID_PORTALS: Nid = Nid(0x0000_0000_C0A8_0001);
pub const IP_A: u32 = 0xC0A8_0001;
pub const IP_B: u32 = 0xC0A8_0002;
pub const IP_LOOP: u32 = 0x7F00_0001;
pub const TCP1: Net = Net(0x0002_0001);

pub const ERAS: [Era; 2] = [Era::Portals, Era::Lnet];

/// Valid commands covering every variant and the interesting option values.
pub fn sample_commands() -> Vec<Command> {
    use Command::*;
    vec![
        StartDaemon {
            port: 988,
            accept: AcceptPolicy::Secure,
            backlog: None,
        },
        StartDaemon {
            port: 1,
            accept: AcceptPolicy::All,
            backlog: Some(1),
        },
        StartDaemon {
            port: 65535,
            accept: AcceptPolicy::None,
            backlog: Some(4096),
        },
        ConnectPeer {
            nid: NID_A,
            ip: IP_A,
            port: 988,
            ctype: None,
        },
        ConnectPeer {
            nid: NID_B,
            ip: IP_LOOP,
            port: 65535,
            ctype: Some(ConnType::Any),
        },
        ConnectPeer {
            nid: NID_A,
            ip: IP_A,
            port: 988,
            ctype: Some(ConnType::Control),
        },
        ConnectPeer {
            nid: NID_A,
            ip: IP_A,
            port: 988,
            ctype: Some(ConnType::BulkIn),
        },
        ConnectPeer {
            nid: NID_PORTALS,
            ip: IP_A,
            port: 988,
            ctype: Some(ConnType::BulkOut),
        },
        AddPeer {
            nid: NID_A,
            ip: IP_A,
            port: 988,
        },
        AddPeer {
            nid: NID_B,
            ip: 0x0A00_0005,
            port: 1,
        },
        DelPeer {
            nid: None,
            ip: None,
            single_share: false,
        },
        DelPeer {
            nid: Some(NID_A),
            ip: Some(IP_A),
            single_share: false,
        },
        DelPeer {
            nid: None,
            ip: Some(IP_B),
            single_share: false,
        },
        DelPeer {
            nid: Some(NID_B),
            ip: None,
            single_share: true,
        },
        GetPeer { index: 0 },
        GetPeer { index: u32::MAX },
        GetConn { index: 7 },
        GetInterface { index: 3 },
        GetNi { index: 0 },
        GetNi { index: 2 },
        CloseConnection {
            nid: None,
            ip: None,
        },
        CloseConnection {
            nid: Some(NID_A),
            ip: Some(IP_A),
        },
        CloseConnection {
            nid: None,
            ip: Some(IP_B),
        },
        RegisterMyNid { nid: NID_A },
        PushConnection { nid: None },
        PushConnection { nid: Some(NID_B) },
        AddInterface {
            ip: IP_A,
            netmask: 0xFFFF_FF00,
        },
        AddInterface {
            ip: IP_LOOP,
            netmask: 0xFF00_0000,
        },
        DelInterface { ip: None },
        DelInterface { ip: Some(IP_A) },
    ]
}

/// Whether `cmd` can be encoded in `era` (exists there and uses nothing the era lacks).
pub fn encodable(cmd: &Command, era: Era) -> bool {
    let lnet_incompatible = matches!(
        cmd,
        Command::DelPeer {
            single_share: true,
            ..
        }
    ) || matches!(cmd, Command::ConnectPeer { nid, .. } if *nid == NID_PORTALS);
    cmd.exists_in(era) && !(era == Era::Lnet && lnet_incompatible)
}

/// Every (command, era) pair that encodes.
pub fn sample_requests() -> Vec<(Command, Era)> {
    let mut v = Vec::new();
    for cmd in sample_commands() {
        for era in ERAS {
            if encodable(&cmd, era) {
                v.push((cmd, era));
            }
        }
    }
    v
}

pub fn encode(cmd: &Command, era: Era) -> (u32, Vec<u8>) {
    let mut buf = vec![0u8; 512];
    let (code, len) = tdinal::ioctl::encode_request(cmd, era, &mut buf)
        .unwrap_or_else(|e| panic!("encode {cmd:?} in {era:?}: {e}"));
    buf.truncate(len);
    (code, buf)
}

pub fn peer(i: u32) -> PeerInfo {
    PeerInfo {
        nid: Nid(0x0002_0000_0A00_0000 | u64::from(i + 1)),
        pid: 12345,
        my_ip: IP_A,
        ip: 0x0A00_0000 | (i + 1),
        port: 988,
        conn_count: 3,
        share_count: 1 + i,
    }
}

pub fn conn(i: u32) -> ConnInfo {
    ConnInfo {
        nid: NID_B,
        pid: 12345,
        my_ip: IP_A,
        ip: IP_B,
        port: 1023 - i as u16,
        conn_type: [ConnType::Control, ConnType::BulkIn, ConnType::BulkOut][i as usize % 3],
        scheduler: i,
        tx_buf: 65536,
        rx_buf: 131072,
        nagle: i % 2 == 1,
    }
}

pub fn iface(i: u32) -> InterfaceInfo {
    InterfaceInfo {
        ip: IP_A + i,
        netmask: 0xFFFF_FF00,
        npeers: 4,
        nroutes: 0,
    }
}

/// One call the mock received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    StartDaemon(u16, AcceptPolicy, u32),
    ConnectPeer(Nid, u32, u16, Option<ConnType>),
    AddPeer(Nid, u32, u16),
    DelPeer(Option<Nid>, Option<u32>, bool),
    GetPeer(u32),
    GetConn(u32),
    CloseConnection(Option<Nid>, Option<u32>),
    RegisterMyNid(Nid),
    PushConnection(Option<Nid>),
    GetNi(u32),
    AddInterface(u32, u32),
    DelInterface(Option<u32>),
    GetInterface(u32),
}

/// A NAL that records every call, serves `tcp0`, has `npeers` peers, `nconns` connections,
/// `nifaces` interfaces and one NI, and fails mutating calls with `fail` if set.
pub struct MockNal {
    pub calls: RefCell<Vec<Call>>,
    pub npeers: u32,
    pub nconns: u32,
    pub nifaces: u32,
    pub fail: Option<CtlError>,
}

impl Default for MockNal {
    fn default() -> Self {
        MockNal {
            calls: RefCell::new(Vec::new()),
            npeers: 3,
            nconns: 5,
            nifaces: 2,
            fail: None,
        }
    }
}

impl MockNal {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }
    fn record(&self, c: Call) -> Result<(), CtlError> {
        self.calls.borrow_mut().push(c);
        self.fail.map_or(Ok(()), Err)
    }
    fn list<T>(&self, c: Call, index: u32, n: u32, f: fn(u32) -> T) -> Result<T, CtlError> {
        self.calls.borrow_mut().push(c);
        if let Some(e) = self.fail {
            return Err(e);
        }
        if index < n {
            Ok(f(index))
        } else {
            Err(CtlError::NoMoreEntries)
        }
    }
}

impl NalControl for MockNal {
    fn serves_net(&self, net: Net) -> bool {
        net == Net(0x0002_0000)
    }
    fn start_daemon(
        &mut self,
        port: u16,
        accept: AcceptPolicy,
        backlog: u32,
    ) -> Result<(), CtlError> {
        self.record(Call::StartDaemon(port, accept, backlog))
    }
    fn connect_peer(
        &mut self,
        nid: Nid,
        ip: u32,
        port: u16,
        ctype: Option<ConnType>,
    ) -> Result<(), CtlError> {
        self.record(Call::ConnectPeer(nid, ip, port, ctype))
    }
    fn add_peer(&mut self, nid: Nid, ip: u32, port: u16) -> Result<(), CtlError> {
        self.record(Call::AddPeer(nid, ip, port))
    }
    fn del_peer(
        &mut self,
        nid: Option<Nid>,
        ip: Option<u32>,
        single_share: bool,
    ) -> Result<(), CtlError> {
        self.record(Call::DelPeer(nid, ip, single_share))
    }
    fn get_peer(&self, index: u32) -> Result<PeerInfo, CtlError> {
        self.list(Call::GetPeer(index), index, self.npeers, peer)
    }
    fn get_conn(&self, index: u32) -> Result<ConnInfo, CtlError> {
        self.list(Call::GetConn(index), index, self.nconns, conn)
    }
    fn close_connection(&mut self, nid: Option<Nid>, ip: Option<u32>) -> Result<(), CtlError> {
        self.record(Call::CloseConnection(nid, ip))
    }
    fn register_my_nid(&mut self, nid: Nid) -> Result<(), CtlError> {
        self.record(Call::RegisterMyNid(nid))
    }
    fn push_connection(&mut self, nid: Option<Nid>) -> Result<(), CtlError> {
        self.record(Call::PushConnection(nid))
    }
    fn get_ni(&self, index: u32) -> Result<Nid, CtlError> {
        self.list(Call::GetNi(index), index, 1, |_| NID_A)
    }
    fn add_interface(&mut self, ip: u32, netmask: u32) -> Result<(), CtlError> {
        self.record(Call::AddInterface(ip, netmask))
    }
    fn del_interface(&mut self, ip: Option<u32>) -> Result<(), CtlError> {
        self.record(Call::DelInterface(ip))
    }
    fn get_interface(&self, index: u32) -> Result<InterfaceInfo, CtlError> {
        self.list(Call::GetInterface(index), index, self.nifaces, iface)
    }
}

/// The call `cmd` should produce on the mock.
pub fn expected_call(cmd: &Command) -> Call {
    match *cmd {
        Command::StartDaemon {
            port,
            accept,
            backlog,
        } => Call::StartDaemon(port, accept, backlog.unwrap_or(127)),
        Command::ConnectPeer {
            nid,
            ip,
            port,
            ctype,
        } => Call::ConnectPeer(nid, ip, port, ctype),
        Command::AddPeer { nid, ip, port } => Call::AddPeer(nid, ip, port),
        Command::DelPeer {
            nid,
            ip,
            single_share,
        } => Call::DelPeer(nid, ip, single_share),
        Command::GetPeer { index } => Call::GetPeer(index),
        Command::GetConn { index } => Call::GetConn(index),
        Command::CloseConnection { nid, ip } => Call::CloseConnection(nid, ip),
        Command::RegisterMyNid { nid } => Call::RegisterMyNid(nid),
        Command::PushConnection { nid } => Call::PushConnection(nid),
        Command::AddInterface { ip, netmask } => Call::AddInterface(ip, netmask),
        Command::DelInterface { ip } => Call::DelInterface(ip),
        Command::GetInterface { index } => Call::GetInterface(index),
        Command::GetNi { index } => Call::GetNi(index),
    }
}

/// Little-endian field access on test buffers.
pub fn rd32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
pub fn rd64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}
pub fn wr32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn wr64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A tiny xorshift64* PRNG (deterministic, no dependency).
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}
