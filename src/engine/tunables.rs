//! Every ksocklnd/LNet tunable the engine honours, with Linux's names, defaults and meanings
//! (spec §2.2 and §6), in one place. Runtimes fill this from flags, a config file or the registry.

use crate::wire::ProtoVersion;

/// LNet's `accept` parameter: which incoming connections the acceptor takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptPolicy {
    /// Only connections from privileged source ports (≤ 1023). Linux's default.
    Secure,
    /// Any source port; unprivileged connectors are treated as userspace processes (spec §2.7).
    All,
    /// No acceptor.
    None,
}

impl AcceptPolicy {
    pub fn from_name(s: &str) -> Option<AcceptPolicy> {
        match s {
            "secure" => Some(AcceptPolicy::Secure),
            "all" => Some(AcceptPolicy::All),
            "none" => Some(AcceptPolicy::None),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            AcceptPolicy::Secure => "secure",
            AcceptPolicy::All => "all",
            AcceptPolicy::None => "none",
        }
    }
}

/// Tunables. Times are in the unit their Linux name says (seconds or milliseconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunables {
    /// `accept`.
    pub accept: AcceptPolicy,
    /// `accept_port`: where we listen and where we connect to.
    pub accept_port: u16,
    /// `accept_backlog`.
    pub accept_backlog: u32,
    /// `accept_timeout` (s): reading the connreq and hello of an accepted connection.
    pub accept_timeout: u32,
    /// `sock_timeout` (s): dead-socket timeout; also the active side's hello read timeout and
    /// the ZC-ACK deadline.
    pub sock_timeout: u32,
    /// `min_reconnectms`, `max_reconnectms`: reconnect backoff bounds.
    pub min_reconnectms: u32,
    pub max_reconnectms: u32,
    /// `typed_conns`: CONTROL/BULK_IN/BULK_OUT connections instead of one ANY connection.
    /// V3 requires it (its matcher never picks ANY connections).
    pub typed_conns: bool,
    /// `min_bulk`: smallest "large" message in bytes, headers included.
    pub min_bulk: u32,
    /// `conns_per_peer`: bulk connections per type per peer (0 = auto, which is 1 here: we have
    /// no portable link-speed query).
    pub conns_per_peer: u32,
    /// `round_robin`: break ties between equally loaded connections by least recent use.
    pub round_robin: bool,
    /// `keepalive` (s): silence before a keepalive NOOP (V3); 0 disables.
    pub keepalive: u32,
    /// `enable_csum`: generate checksums on V2 connections.
    pub enable_csum: bool,
    /// `inject_csum_error`: corrupt the next generated checksum once (test aid).
    pub inject_csum_error: bool,
    /// `nonblk_zcack`: send ZC-ACKs non-blocking (V3: on the BULK_IN connection).
    pub nonblk_zcack: bool,
    /// `zc_min_payload`: smallest payload sent zero-copy with a ZC-ACK request (≥ 2048).
    pub zc_min_payload: u32,
    /// `protocol`: the newest version this node speaks. It is offered first to a peer whose
    /// version is unknown, and an incoming hello of a newer version is answered as an unknown
    /// version (our hello, ctype NONE), as an older Lustre would. Linux builds expose it only
    /// with SOCKNAL_VERSION_DEBUG; we expose it to force V1/V2 (tests, old peers).
    pub protocol: ProtoVersion,
    /// `nagle`, `tx_buffer_size`, `rx_buffer_size`, `keepalive_idle/count/intvl`: socket options
    /// the runtime applies after the handshake.
    pub nagle: bool,
    pub tx_buffer_size: u32,
    pub rx_buffer_size: u32,
    pub keepalive_idle: u32,
    pub keepalive_count: u32,
    pub keepalive_intvl: u32,
    /// Pending (not yet handshaken) accepted connections allowed at once: bounds a flood of
    /// half-open connections. Not a Linux name (Linux bounds it with `accept_backlog` and connds).
    pub max_pending_accepts: u32,
}

impl Default for Tunables {
    fn default() -> Tunables {
        Tunables {
            accept: AcceptPolicy::Secure,
            accept_port: 988,
            accept_backlog: 127,
            accept_timeout: 5,
            sock_timeout: 50,
            min_reconnectms: 1000,
            max_reconnectms: 60000,
            typed_conns: true,
            min_bulk: 1024,
            conns_per_peer: 1,
            round_robin: true,
            keepalive: 30,
            enable_csum: false,
            inject_csum_error: false,
            nonblk_zcack: true,
            zc_min_payload: 16384,
            protocol: ProtoVersion::V3,
            nagle: false,
            tx_buffer_size: 0,
            rx_buffer_size: 0,
            keepalive_idle: 30,
            keepalive_count: 5,
            keepalive_intvl: 5,
            max_pending_accepts: 256,
        }
    }
}

impl Tunables {
    /// `zc_min_payload` as Linux applies it: never below 2 KiB.
    pub fn effective_zc_min_payload(&self) -> u32 {
        self.zc_min_payload.max(2048)
    }
    /// `conns_per_peer` as applied: 0 means automatic, which is 1 here.
    pub fn effective_conns_per_peer(&self) -> u32 {
        self.conns_per_peer.max(1)
    }

    /// Sets a tunable by its Lustre name from its textual value (config files, registry, flags).
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), TunableError> {
        let num = || value.parse::<u32>().map_err(|_| TunableError::BadValue);
        let flag = || match value {
            "0" | "false" | "no" | "off" => Ok(false),
            "1" | "true" | "yes" | "on" => Ok(true),
            _ => Err(TunableError::BadValue),
        };
        match name {
            "accept" => {
                self.accept = AcceptPolicy::from_name(value).ok_or(TunableError::BadValue)?
            }
            "accept_port" => {
                self.accept_port = value
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(TunableError::BadValue)?
            }
            "accept_backlog" => self.accept_backlog = num()?,
            "accept_timeout" => self.accept_timeout = num()?,
            "sock_timeout" => self.sock_timeout = num()?,
            "min_reconnectms" => self.min_reconnectms = num()?,
            "max_reconnectms" => self.max_reconnectms = num()?,
            "typed_conns" => self.typed_conns = flag()?,
            "min_bulk" => self.min_bulk = num()?,
            "conns_per_peer" => self.conns_per_peer = num()?,
            "round_robin" => self.round_robin = flag()?,
            "keepalive" => self.keepalive = num()?,
            "enable_csum" => self.enable_csum = flag()?,
            "inject_csum_error" => self.inject_csum_error = flag()?,
            "nonblk_zcack" => self.nonblk_zcack = flag()?,
            "zc_min_payload" => self.zc_min_payload = num()?,
            "protocol" => {
                self.protocol = ProtoVersion::from_wire(num()?).ok_or(TunableError::BadValue)?
            }
            "nagle" => self.nagle = flag()?,
            "tx_buffer_size" => self.tx_buffer_size = num()?,
            "rx_buffer_size" => self.rx_buffer_size = num()?,
            "keepalive_idle" => self.keepalive_idle = num()?,
            "keepalive_count" => self.keepalive_count = num()?,
            "keepalive_intvl" => self.keepalive_intvl = num()?,
            "max_pending_accepts" => self.max_pending_accepts = num()?,
            _ => return Err(TunableError::UnknownName),
        }
        Ok(())
    }
}

/// Why [`Tunables::set`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunableError {
    UnknownName,
    BadValue,
}
