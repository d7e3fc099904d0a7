//! `ptlctl`'s verbs on Linux: parsed, encoded, dispatched by `tdinal::ioctl::dispatch` to a mock
//! NAL (what the driver does with the same bytes), replies decoded and printed.
use crate::cli::{self, DevError, Device, Verb};
use tdinal::ioctl::error::ntstatus;
use tdinal::ioctl::{dispatch, AcceptPolicy, Command, ConnInfo, CtlError, NalControl, PeerInfo};
use tdinal::wire::{ConnType, Net, Nid};

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn nid(s: &str) -> Nid {
    s.parse().unwrap()
}

fn show(n: Option<Nid>) -> String {
    n.map_or_else(|| "*".to_string(), |n| n.to_string())
}

#[derive(Default)]
struct Nal {
    calls: Vec<String>,
    peers: Vec<PeerInfo>,
    conns: Vec<ConnInfo>,
    fail: Option<CtlError>,
}

impl Nal {
    fn done(&mut self, what: String) -> Result<(), CtlError> {
        self.calls.push(what);
        self.fail.map_or(Ok(()), Err)
    }
}

impl NalControl for Nal {
    fn serves_net(&self, _: Net) -> bool {
        true
    }
    fn start_daemon(
        &mut self,
        port: u16,
        accept: AcceptPolicy,
        backlog: u32,
    ) -> Result<(), CtlError> {
        self.done(format!("start_daemon {port} {accept:?} {backlog}"))
    }
    fn connect_peer(
        &mut self,
        n: Nid,
        ip: u32,
        port: u16,
        t: Option<ConnType>,
    ) -> Result<(), CtlError> {
        self.done(format!("connect {n} {ip:#x} {port} {t:?}"))
    }
    fn add_peer(&mut self, n: Nid, ip: u32, port: u16) -> Result<(), CtlError> {
        self.done(format!("add_peer {n} {ip:#x} {port}"))
    }
    fn del_peer(&mut self, n: Option<Nid>, ip: Option<u32>, s: bool) -> Result<(), CtlError> {
        self.done(format!("del_peer {} {ip:?} {s}", show(n)))
    }
    fn get_peer(&self, i: u32) -> Result<PeerInfo, CtlError> {
        self.peers
            .get(i as usize)
            .copied()
            .ok_or(CtlError::NoMoreEntries)
    }
    fn get_conn(&self, i: u32) -> Result<ConnInfo, CtlError> {
        self.conns
            .get(i as usize)
            .copied()
            .ok_or(CtlError::NoMoreEntries)
    }
    fn close_connection(&mut self, n: Option<Nid>, ip: Option<u32>) -> Result<(), CtlError> {
        self.done(format!("disconnect {} {ip:?}", show(n)))
    }
    fn register_my_nid(&mut self, n: Nid) -> Result<(), CtlError> {
        self.done(format!("mynid {n}"))
    }
    fn push_connection(&mut self, n: Option<Nid>) -> Result<(), CtlError> {
        self.done(format!("push {}", show(n)))
    }
    fn get_ni(&self, _: u32) -> Result<Nid, CtlError> {
        Err(CtlError::NoMoreEntries)
    }
}

/// The driver's side of `DeviceIoControl`, and the Win32 view of its status.
impl Device for Nal {
    fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, DevError> {
        dispatch(self, code, input, output).map_err(|e| match e.to_ntstatus() {
            ntstatus::STATUS_NO_MORE_ENTRIES => DevError::NoMoreItems,
            ntstatus::STATUS_INVALID_DEVICE_STATE => DevError::Os {
                code: 22,
                message: "The device does not recognize the command. (os error 22)".into(),
            },
            s => DevError::Os {
                code: 31,
                message: format!("NTSTATUS {:#010x}", s as u32),
            },
        })
    }
}

fn peer(ip: u32, conns: u32) -> PeerInfo {
    PeerInfo {
        nid: Nid::new(Net::TCP0, ip),
        pid: 12345,
        my_ip: 0xC0A8_0001,
        ip,
        port: 988,
        conn_count: conns,
        share_count: 1,
    }
}

fn run(nal: &mut Nal, line: &str) -> Result<String, String> {
    let verb = cli::parse(&args(line))?;
    let mut out = String::new();
    cli::run(&verb, nal, &mut out)?;
    Ok(out)
}

#[test]
fn verbs_reach_the_nal_with_their_arguments() {
    let mut nal = Nal::default();
    for line in [
        "start_daemon --port 988",
        "start_daemon --port=7988 --accept all --backlog 16",
        "start_daemon --accept none --port 988",
        "connect 192.168.0.2@tcp 192.168.0.2",
        "connect 192.168.0.2@tcp 192.168.0.2 7988",
        "add_peer 10.0.0.1@tcp 10.0.0.1 988",
        "del_peer",
        "del_peer 10.0.0.1@tcp",
        "del_peer * 10.0.0.1",
        "disconnect",
        "disconnect 10.0.0.1@tcp 10.0.0.1",
        "push",
        "push 10.0.0.1@tcp",
        "mynid 192.168.0.1@tcp",
    ] {
        assert_eq!(run(&mut nal, line), Ok(String::new()), "{line}");
    }
    assert_eq!(
        nal.calls,
        [
            "start_daemon 988 Secure 127",
            "start_daemon 7988 All 16",
            "start_daemon 988 None 127",
            "connect 192.168.0.2@tcp 0xc0a80002 988 None",
            "connect 192.168.0.2@tcp 0xc0a80002 7988 None",
            "add_peer 10.0.0.1@tcp 0xa000001 988",
            "del_peer * None false",
            "del_peer 10.0.0.1@tcp None false",
            "del_peer * Some(167772161) false",
            "disconnect * None",
            "disconnect 10.0.0.1@tcp Some(167772161)",
            "push *",
            "push 10.0.0.1@tcp",
            "mynid 192.168.0.1@tcp",
        ]
        .map(String::from)
    );
}

#[test]
fn lists_print_as_lctl_does_until_no_more_entries() {
    let mut nal = Nal::default();
    assert_eq!(run(&mut nal, "peer_list"), Ok(String::new()));
    nal.peers = vec![peer(0xC0A8_0002, 3), peer(0x0A00_0001, 0)];
    nal.conns = vec![ConnInfo {
        nid: nid("192.168.0.2@tcp"),
        pid: 12345,
        my_ip: 0xC0A8_0001,
        ip: 0xC0A8_0002,
        port: 988,
        conn_type: ConnType::BulkIn,
        scheduler: 1,
        tx_buf: 87040,
        rx_buf: 131072,
        nagle: false,
    }];
    assert_eq!(
        run(&mut nal, "peer_list").unwrap(),
        "12345-192.168.0.2@tcp [1]192.168.0.1->192.168.0.2:988 #3\n\
         12345-10.0.0.1@tcp   [1]192.168.0.1->10.0.0.1:988 #0\n"
    );
    assert_eq!(
        run(&mut nal, "conn_list").unwrap(),
        "12345-192.168.0.2@tcp I[1]192.168.0.1->192.168.0.2:988 87040/131072 nonagle\n"
    );
    assert_eq!(
        run(&mut nal, "print_peers").unwrap().lines().count(),
        2,
        "the P14 name works too"
    );
}

#[test]
fn driver_errors_are_reported_with_a_hint() {
    let mut nal = Nal {
        fail: Some(CtlError::InvalidState),
        ..Nal::default()
    };
    let e = run(&mut nal, "add_peer 10.0.0.1@tcp 10.0.0.1 988").unwrap_err();
    assert_eq!(
        e,
        "add_peer: The device does not recognize the command. (os error 22) \
         (is the NAL started? the driver answers this until it is)"
    );
    nal.fail = Some(CtlError::NotFound);
    let e = run(&mut nal, "del_peer 10.0.0.9@tcp").unwrap_err();
    assert!(e.starts_with("del_peer: NTSTATUS 0xc0000225"), "{e}");
}

#[test]
fn usage_errors() {
    for (line, want) in [
        ("", "no verb given"),
        ("frobnicate", "unknown verb 'frobnicate'"),
        ("start_daemon", "start_daemon needs --port P"),
        ("start_daemon --port 0", "bad port '0'"),
        (
            "start_daemon --port 988 --accept maybe",
            "bad --accept 'maybe'",
        ),
        ("start_daemon --port 988 --backlog 0", "bad --backlog '0'"),
        (
            "start_daemon --port 988 --nagle 1",
            "start_daemon takes no option --nagle",
        ),
        ("start_daemon --port", "option --port needs a value"),
        ("start_daemon 988", "usage: ptlctl start_daemon"),
        (
            "connect 192.168.0.2@tcp",
            "usage: ptlctl connect NID IP [PORT]",
        ),
        ("connect bogus 192.168.0.2", "bad NID 'bogus'"),
        ("connect 1.2.3.4@tcp 1.2.3.4 70000", "bad port '70000'"),
        (
            "add_peer 1.2.3.4@tcp 1.2.3.4",
            "usage: ptlctl add_peer NID IP PORT",
        ),
        ("peer_list extra", "usage: ptlctl peer_list"),
        ("mynid", "usage: ptlctl mynid NID"),
        ("push a b", "usage: ptlctl push"),
        ("peer_list --port 1", "peer_list takes no option --port"),
    ] {
        let e = cli::parse(&args(line)).unwrap_err();
        assert!(e.starts_with(want), "{line:?}: {e}");
    }
    assert_eq!(cli::parse(&args("help")), Ok(Verb::Help));
}

#[test]
fn requests_the_driver_would_refuse_are_caught_by_the_encoder() {
    // ADD_PEER to LNET_NID_ANY: refused before anything is sent.
    let mut nal = Nal::default();
    let e = run(&mut nal, "add_peer * 10.0.0.1 988").unwrap_err();
    assert!(e.starts_with("cannot build the request"), "{e}");
    assert!(nal.calls.is_empty());
    assert_eq!(
        cli::parse(&args("del_peer *")),
        Ok(Verb::Do {
            verb: "del_peer",
            cmd: Command::DelPeer {
                nid: None,
                ip: None,
                single_share: false
            }
        })
    );
}

#[test]
fn without_windows_the_device_cannot_be_opened() {
    #[cfg(not(windows))]
    {
        let e = crate::win::open()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("Windows driver"), "{e}");
    }
}
