//! Control requests: the first 4 bytes are the control code (LE), the rest is the input buffer.
//! Every entry point must refuse or accept without panicking; what decodes re-encodes to a
//! request that decodes the same; the dispatcher never calls the NAL for a refused request, and
//! the in-place (METHOD_BUFFERED) dispatcher agrees with the two-buffer one.
//!
//! To help the fuzzer past the code check, the same bytes are also tried with the table code
//! `CODES[data[0] % CODES.len()]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdinal::ioctl::{
    decode, decode_reply, decode_request, dispatch, dispatch_in_place, encode_reply,
    encode_request_on, AcceptPolicy, ConnInfo, CtlError, InterfaceInfo, IoctlError, NalControl,
    PeerInfo, Reply, CODES,
};
use tdinal::wire::{ConnType, Net, Nid};

const NID: Nid = Nid(0x0002_0000_C0A8_0001);

/// A NAL with two of everything that counts the calls it gets.
#[derive(Default)]
struct Nal {
    calls: usize,
}

impl Nal {
    fn ok(&mut self) -> Result<(), CtlError> {
        self.calls += 1;
        Ok(())
    }
}

fn nth<T>(index: u32, v: T) -> Result<T, CtlError> {
    if index < 2 {
        Ok(v)
    } else {
        Err(CtlError::NoMoreEntries)
    }
}

const PEER: PeerInfo = PeerInfo {
    nid: NID,
    pid: 12345,
    my_ip: 0x0A00_0001,
    ip: 0xC0A8_0001,
    port: 988,
    conn_count: 3,
    share_count: 1,
};

const CONN: ConnInfo = ConnInfo {
    nid: NID,
    pid: 12345,
    my_ip: 0x0A00_0001,
    ip: 0xC0A8_0001,
    port: 1023,
    conn_type: ConnType::Control,
    scheduler: 1,
    tx_buf: 0,
    rx_buf: 0,
    nagle: false,
};

const IFACE: InterfaceInfo = InterfaceInfo {
    ip: 0x0A00_0001,
    netmask: 0xFFFF_FF00,
    npeers: 1,
    nroutes: 0,
};

impl NalControl for Nal {
    fn serves_net(&self, net: Net) -> bool {
        net == Net(0x0002_0000)
    }
    fn start_daemon(&mut self, _: u16, _: AcceptPolicy, _: u32) -> Result<(), CtlError> {
        self.ok()
    }
    fn connect_peer(
        &mut self,
        _: Nid,
        _: u32,
        _: u16,
        _: Option<ConnType>,
    ) -> Result<(), CtlError> {
        self.ok()
    }
    fn add_peer(&mut self, _: Nid, _: u32, _: u16) -> Result<(), CtlError> {
        self.ok()
    }
    fn del_peer(&mut self, _: Option<Nid>, _: Option<u32>, _: bool) -> Result<(), CtlError> {
        self.ok()
    }
    fn get_peer(&self, index: u32) -> Result<PeerInfo, CtlError> {
        nth(index, PEER)
    }
    fn get_conn(&self, index: u32) -> Result<ConnInfo, CtlError> {
        nth(index, CONN)
    }
    fn close_connection(&mut self, _: Option<Nid>, _: Option<u32>) -> Result<(), CtlError> {
        self.ok()
    }
    fn register_my_nid(&mut self, _: Nid) -> Result<(), CtlError> {
        self.ok()
    }
    fn push_connection(&mut self, _: Option<Nid>) -> Result<(), CtlError> {
        self.ok()
    }
    fn get_ni(&self, index: u32) -> Result<Nid, CtlError> {
        nth(index, NID)
    }
    fn add_interface(&mut self, _: u32, _: u32) -> Result<(), CtlError> {
        self.ok()
    }
    fn del_interface(&mut self, _: Option<u32>) -> Result<(), CtlError> {
        self.ok()
    }
    fn get_interface(&self, index: u32) -> Result<InterfaceInfo, CtlError> {
        nth(index, IFACE)
    }
}

fn check(code: u32, input: &[u8]) {
    let decoded = decode_request(code, input);
    assert_eq!(decode(code, input), decoded.map(|r| r.command));
    let _ = decode_reply(code, input);

    // Canonical: what decodes re-encodes (to the same code) and decodes the same.
    if let Ok(req) = decoded {
        let mut buf = [0u8; 512];
        let net = req.net.unwrap_or(Net(0x0002_0000));
        let (code2, n) = encode_request_on(&req.command, req.era, net, &mut buf)
            .expect("a decoded command re-encodes");
        assert_eq!(code2, code);
        assert_eq!(decode(code2, &buf[..n]), Ok(req.command));
    }

    for reply in [
        Reply::None,
        Reply::Peer(PEER),
        Reply::Conn(CONN),
        Reply::Interface(IFACE),
        Reply::Ni(NID),
    ] {
        let mut out = [0u8; 320];
        if let Ok(n) = encode_reply(code, input, &reply, &mut out) {
            if n > 0 {
                assert_eq!(decode_reply(code, &out[..n]), Ok(reply));
            }
        }
    }

    for out_len in [0usize, 128, 224, input.len()] {
        let mut out = vec![0u8; out_len];
        let mut nal = Nal::default();
        let r = dispatch(&mut nal, code, input, &mut out);
        if let Err(e) = decoded {
            assert_eq!(r, Err(e));
            assert_eq!(nal.calls, 0);
        }
        // Every error maps to a failure NTSTATUS (or the NO_MORE_ENTRIES warning).
        if let Err(e) = r {
            assert!(e.to_ntstatus() < 0);
            assert!(e.to_errno() > 0);
            if e == IoctlError::NoMoreEntries {
                assert_eq!(e.to_ntstatus() as u32, 0x8000_001A);
            }
        }

        let mut sys = vec![0u8; input.len().max(out_len)];
        sys[..input.len()].copy_from_slice(input);
        let mut nal2 = Nal::default();
        let r2 = dispatch_in_place(&mut nal2, code, &mut sys, input.len(), out_len);
        assert_eq!(r, r2);
        assert_eq!(nal.calls, nal2.calls);
        if let Ok(n) = r {
            assert_eq!(out[..n], sys[..n]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, input)) = data.split_first_chunk::<4>() else {
        return;
    };
    check(u32::from_le_bytes(*head), input);
    let table = CODES[usize::from(head[0]) % CODES.len()].code;
    check(table, input);
});
