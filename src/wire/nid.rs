//! NIDs (64-bit "NID4"), networks, LND type numbers, process ids and wire handles (spec §1.1–1.4).

use core::fmt;
use core::str::FromStr;

use static_assertions::const_assert_eq;

use super::WireError;

/// Size of a NID on the wire (`lnet_nid_t`).
pub const NID_SIZE: usize = 8;
/// Size of a PID on the wire (`lnet_pid_t`).
pub const PID_SIZE: usize = 4;
/// Offsets inside a packed process id (`lnet_process_id_packed`): NID then PID.
pub const OFF_PROCESS_ID_NID: usize = 0;
pub const OFF_PROCESS_ID_PID: usize = OFF_PROCESS_ID_NID + NID_SIZE;
/// Size of a packed process id.
pub const PROCESS_ID_PACKED_SIZE: usize = OFF_PROCESS_ID_PID + PID_SIZE;
/// Offsets inside a wire handle (`lnet_handle_wire`): interface cookie then object cookie.
pub const OFF_WH_INTERFACE_COOKIE: usize = 0;
pub const OFF_WH_OBJECT_COOKIE: usize = OFF_WH_INTERFACE_COOKIE + 8;
/// Size of a wire handle.
pub const WIRE_HANDLE_SIZE: usize = OFF_WH_OBJECT_COOKIE + 8;
/// `LNET_PID_RESERVED`: PID bits no process may use.
pub const LNET_PID_RESERVED: u32 = 0xf000_0000;

// Spec §1.1 / §1.8 (wirecheck): sizes and offsets of the scalar wire types.
const_assert_eq!(NID_SIZE, 8);
const_assert_eq!(PID_SIZE, 4);
const_assert_eq!(OFF_PROCESS_ID_NID, 0);
const_assert_eq!(OFF_PROCESS_ID_PID, 8);
const_assert_eq!(PROCESS_ID_PACKED_SIZE, 12);
const_assert_eq!(OFF_WH_INTERFACE_COOKIE, 0);
const_assert_eq!(OFF_WH_OBJECT_COOKIE, 8);
const_assert_eq!(WIRE_HANDLE_SIZE, 16);
const_assert_eq!(core::mem::size_of::<u64>(), NID_SIZE);

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

    /// Reads the 16 bytes at `off` (both cookies little-endian, like the rest of the LNet header).
    pub fn read(buf: &[u8], off: usize) -> Option<WireHandle> {
        let le = super::Endian::Little;
        Some(WireHandle {
            interface_cookie: le.get_u64(buf, off.checked_add(OFF_WH_INTERFACE_COOKIE)?)?,
            object_cookie: le.get_u64(buf, off.checked_add(OFF_WH_OBJECT_COOKIE)?)?,
        })
    }

    /// Writes the 16 bytes at `off`.
    pub fn write(&self, buf: &mut [u8], off: usize) -> Option<()> {
        let le = super::Endian::Little;
        le.put_u64(
            buf,
            off.checked_add(OFF_WH_INTERFACE_COOKIE)?,
            self.interface_cookie,
        )?;
        le.put_u64(
            buf,
            off.checked_add(OFF_WH_OBJECT_COOKIE)?,
            self.object_cookie,
        )
    }
}

/// How an LND writes the address part of its NIDs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AddrStyle {
    /// Dotted quad of the host-order IPv4 address (`192.168.0.1`).
    Ipv4,
    /// Unsigned decimal (`lo`, `elan`, `ptl`, `gni`, …).
    Decimal,
    /// `0x`-prefixed hexadecimal (`gm`).
    Hex,
}

/// The known LNDs: type number, name, address style (spec §1.3, §1.4). TOFULND (17) has no name
/// and therefore prints as `<17:num>`. The address styles of `kfi`, `efa` and `bxi3f` are not in
/// the spec: kfi and bxi3f use fabric-assigned numbers (decimal), efa uses the IPv4 address.
const LNDS: &[(u8, &str, AddrStyle)] = &[
    (lnd::QSWLND, "elan", AddrStyle::Decimal),
    (lnd::SOCKLND, "tcp", AddrStyle::Ipv4),
    (lnd::GMLND, "gm", AddrStyle::Hex),
    (lnd::PTLLND, "ptl", AddrStyle::Decimal),
    (lnd::O2IBLND, "o2ib", AddrStyle::Ipv4),
    (lnd::CIBLND, "cib", AddrStyle::Ipv4),
    (lnd::OPENIBLND, "openib", AddrStyle::Ipv4),
    (lnd::IIBLND, "iib", AddrStyle::Ipv4),
    (lnd::LOLND, "lo", AddrStyle::Decimal),
    (lnd::RALND, "ra", AddrStyle::Ipv4),
    (lnd::VIBLND, "vib", AddrStyle::Ipv4),
    (lnd::MXLND, "mx", AddrStyle::Ipv4),
    (lnd::GNILND, "gni", AddrStyle::Decimal),
    (lnd::GNIIPLND, "gip", AddrStyle::Ipv4),
    (lnd::PTL4LND, "ptlf", AddrStyle::Decimal),
    (lnd::KFILND, "kfi", AddrStyle::Decimal),
    (lnd::EFALND, "efa", AddrStyle::Ipv4),
    (lnd::BXI3LND, "bxi3f", AddrStyle::Decimal),
];

fn lnd_entry(lnd_type: u8) -> Option<(&'static str, AddrStyle)> {
    LNDS.iter()
        .find(|(t, _, _)| *t == lnd_type)
        .map(|&(_, name, style)| (name, style))
}

/// The suffix Lustre writes for an LND type (`tcp`, `o2ib`, `lo`, …), if it has one.
pub fn lnd_name(lnd_type: u8) -> Option<&'static str> {
    lnd_entry(lnd_type).map(|(name, _)| name)
}

/// The LND type whose suffix is exactly `name`.
pub fn lnd_from_name(name: &str) -> Option<u8> {
    LNDS.iter().find(|(_, n, _)| *n == name).map(|&(t, _, _)| t)
}

/// Writes a host-order IPv4 address as a dotted quad.
struct DottedQuad(u32);

impl fmt::Display for DottedQuad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0.to_be_bytes();
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

impl fmt::Display for Net {
    /// `tcp`, `tcp1`, `o2ib3`; unknown LND types as `<type:num>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (lnd_name(self.lnd()), self.num()) {
            (Some(name), 0) => f.write_str(name),
            (Some(name), num) => write!(f, "{name}{num}"),
            (None, num) => write!(f, "<{}:{num}>", self.lnd()),
        }
    }
}

impl fmt::Display for Nid {
    /// As Lustre writes it: `192.168.0.1@tcp`, `10.0.0.5@tcp1`, `0@lo`, `<addr-hex>@<type:num>`.
    /// `LNET_NID_ANY` prints as `<?>`, as Lustre's own formatter does.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Nid::ANY {
            return f.write_str("<?>");
        }
        let addr = self.addr();
        match lnd_entry(self.lnd()) {
            None => write!(f, "{addr:x}@{}", self.net()),
            Some((_, AddrStyle::Ipv4)) => write!(f, "{}@{}", DottedQuad(addr), self.net()),
            Some((_, AddrStyle::Decimal)) => write!(f, "{addr}@{}", self.net()),
            Some((_, AddrStyle::Hex)) => write!(f, "0x{addr:x}@{}", self.net()),
        }
    }
}

/// Parses a non-empty run of ASCII decimal digits into a u32 (no sign, no spaces: `str::parse`
/// alone would accept a leading `+`).
fn parse_dec_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

/// `a.b.c.d`, each part decimal 0..=255, into a host-order integer.
fn parse_ipv4(s: &str) -> Option<u32> {
    let mut parts = s.split('.');
    let mut octets = [0u8; 4];
    for octet in octets.iter_mut() {
        let part = parts.next()?;
        *octet = u8::try_from(parse_dec_u32(part)?).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(u32::from_be_bytes(octets))
}

/// A numeric address as Lustre's numeric LNDs accept it: `0x`/`0X` hex or decimal.
fn parse_num_addr(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => parse_hex_u32(hex),
        None => parse_dec_u32(s),
    }
}

impl FromStr for Net {
    type Err = WireError;
    /// `tcp`, `tcp1`, `o2ib3`, and `<type:num>` for LND types without a name (the form
    /// [`Net`]'s `Display` gives them). `lo` takes no number.
    fn from_str(s: &str) -> Result<Net, WireError> {
        if let Some(inner) = s.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
            let (t, n) = inner.split_once(':').ok_or(WireError::BadNidString)?;
            let lnd_type = parse_dec_u32(t)
                .and_then(|v| u8::try_from(v).ok())
                .ok_or(WireError::BadNidString)?;
            let num = parse_dec_u32(n)
                .and_then(|v| u16::try_from(v).ok())
                .ok_or(WireError::BadNidString)?;
            // Only the form Display writes: a known LND is written by name, and accepting
            // `<9:5>` would yield a `lo5` that then fails to parse back.
            if lnd_name(lnd_type).is_some() {
                return Err(WireError::BadNidString);
            }
            return Ok(Net::new(lnd_type, num));
        }
        // Names never end in a digit, so "name" + "digits" splits unambiguously ("ptlf" vs
        // "ptl" included: "ptlf" leaves "f", which is not a number).
        for &(lnd_type, name, _) in LNDS {
            let Some(rest) = s.strip_prefix(name) else {
                continue;
            };
            if rest.is_empty() {
                return Ok(Net::new(lnd_type, 0));
            }
            if lnd_type == lnd::LOLND {
                return Err(WireError::BadNidString);
            }
            if let Some(num) = parse_dec_u32(rest).and_then(|v| u16::try_from(v).ok()) {
                return Ok(Net::new(lnd_type, num));
            }
        }
        Err(WireError::BadNidString)
    }
}

impl FromStr for Nid {
    type Err = WireError;
    /// Parses `a.b.c.d@tcp[N]`, `0@lo`, a bare `a.b.c.d` (= tcp0), and the other IP LNDs.
    /// Also accepts what [`Nid`]'s `Display` writes for other cases: numeric LNDs
    /// (`5@gni`, `0x1f@gm`), unknown LNDs (`c0a80001@<17:0>`) and `LNET_NID_ANY` (`<?>`, or `*`
    /// as the tools write it).
    fn from_str(s: &str) -> Result<Nid, WireError> {
        if s == "<?>" || s == "*" {
            return Ok(Nid::ANY);
        }
        let Some((addr_str, net_str)) = s.split_once('@') else {
            let addr = parse_ipv4(s).ok_or(WireError::BadNidString)?;
            return Ok(Nid::new(Net::TCP0, addr));
        };
        let net: Net = net_str.parse()?;
        let addr = match lnd_entry(net.lnd()) {
            None => parse_hex_u32(addr_str),
            Some((_, AddrStyle::Ipv4)) => parse_ipv4(addr_str),
            // Loopback has exactly one address (spec §1.4: `0@lo`).
            Some((_, AddrStyle::Decimal)) if net.lnd() == lnd::LOLND => {
                (addr_str == "0").then_some(0)
            }
            Some((_, AddrStyle::Decimal | AddrStyle::Hex)) => parse_num_addr(addr_str),
        }
        .ok_or(WireError::BadNidString)?;
        Ok(Nid::new(net, addr))
    }
}

impl fmt::Display for ProcessId {
    /// `12345-192.168.0.1@tcp`; `U` prefix when the user flag is set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pid == LNET_PID_ANY {
            return write!(f, "LNET_PID_ANY-{}", self.nid);
        }
        if self.pid & LNET_PID_USERFLAG != 0 {
            write!(f, "U{}-{}", self.pid & !LNET_PID_USERFLAG, self.nid)
        } else {
            write!(f, "{}-{}", self.pid, self.nid)
        }
    }
}

impl FromStr for ProcessId {
    type Err = WireError;
    /// `<pid>-<nid>` or a bare NID (PID 12345); also `U<pid>-<nid>` (user flag) and
    /// `LNET_PID_ANY-<nid>`, as [`ProcessId`]'s `Display` writes them.
    fn from_str(s: &str) -> Result<ProcessId, WireError> {
        // NIDs never contain '-', so the first '-' separates the PID.
        let Some((pid_str, nid_str)) = s.split_once('-') else {
            return Ok(ProcessId::lustre(s.parse()?));
        };
        let nid: Nid = nid_str.parse()?;
        let pid = if pid_str == "LNET_PID_ANY" {
            LNET_PID_ANY
        } else if let Some(user) = pid_str.strip_prefix('U') {
            let raw = parse_dec_u32(user).ok_or(WireError::BadNidString)?;
            if raw & LNET_PID_USERFLAG != 0 {
                return Err(WireError::BadNidString);
            }
            raw | LNET_PID_USERFLAG
        } else {
            parse_dec_u32(pid_str).ok_or(WireError::BadNidString)?
        };
        Ok(ProcessId { nid, pid })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn spec_examples_format_and_parse() {
        // Spec §1.2 table: string, u64 value, wire bytes.
        let cases: [(&str, u64, [u8; 8]); 3] = [
            (
                "192.168.0.1@tcp",
                0x0002_0000_C0A8_0001,
                [1, 0, 0xa8, 0xc0, 0, 0, 2, 0],
            ),
            (
                "10.0.0.5@tcp1",
                0x0002_0001_0A00_0005,
                [5, 0, 0, 0x0a, 1, 0, 2, 0],
            ),
            ("0@lo", 0x0009_0000_0000_0000, [0, 0, 0, 0, 0, 0, 9, 0]),
        ];
        for (text, value, bytes) in cases {
            let nid: Nid = text.parse().unwrap();
            assert_eq!(nid, Nid(value), "{text}");
            assert_eq!(nid.to_string(), text);
            assert_eq!(nid.0.to_le_bytes(), bytes, "{text}");
        }
        assert_eq!(Nid::LO_0.to_string(), "0@lo");
    }

    #[test]
    fn nid_parts() {
        let nid = Nid(0x0002_0001_0A00_0005);
        assert_eq!(nid.net(), Net::new(lnd::SOCKLND, 1));
        assert_eq!(nid.addr(), 0x0A00_0005);
        assert_eq!(nid.lnd(), lnd::SOCKLND);
        assert_eq!(nid.net().num(), 1);
        assert_eq!(Nid::new(Net::TCP0, 0xC0A8_0001), Nid(0x0002_0000_C0A8_0001));
    }

    #[test]
    fn bare_address_is_tcp0() {
        assert_eq!(
            "192.168.0.1".parse::<Nid>().unwrap(),
            Nid(0x0002_0000_C0A8_0001)
        );
    }

    #[test]
    fn other_lnds_and_unknown() {
        assert_eq!(
            Nid::new(Net::new(lnd::O2IBLND, 3), 0x0A00_0001).to_string(),
            "10.0.0.1@o2ib3"
        );
        assert_eq!(Nid::new(Net::new(lnd::GNILND, 0), 42).to_string(), "42@gni");
        assert_eq!(
            Nid::new(Net::new(lnd::GMLND, 0), 0x1f).to_string(),
            "0x1f@gm"
        );
        // TOFULND (17) has no name; type 99 none either.
        assert_eq!(
            Nid::new(Net::new(17, 2), 0xC0A8_0001).to_string(),
            "c0a80001@<17:2>"
        );
        assert_eq!(Net::new(99, 0).to_string(), "<99:0>");
        assert_eq!("<99:0>".parse::<Net>(), Ok(Net::new(99, 0)));
        // Known LNDs only by name (found by the wire_nid_str fuzz target: `<9:4444>` parsed
        // to a `lo4444` that cannot be parsed back).
        assert_eq!("<9:4444>".parse::<Net>(), Err(WireError::BadNidString));
        assert_eq!("<2:0>".parse::<Net>(), Err(WireError::BadNidString));
        assert_eq!(Net::new(lnd::SOCKLND, 7).to_string(), "tcp7");
        for s in [
            "10.0.0.1@o2ib3",
            "42@gni",
            "0x1f@gm",
            "c0a80001@<17:2>",
            "7@ptlf",
            "1.2.3.4@efa",
        ] {
            assert_eq!(s.parse::<Nid>().unwrap().to_string(), s);
        }
        // Numeric LNDs also take hex input, as Lustre's parser does.
        assert_eq!(
            "0x2a@gni".parse::<Nid>().unwrap(),
            Nid::new(Net::new(lnd::GNILND, 0), 42)
        );
        assert_eq!(Nid::ANY.to_string(), "<?>");
        assert_eq!("<?>".parse::<Nid>().unwrap(), Nid::ANY);
        assert_eq!("*".parse::<Nid>().unwrap(), Nid::ANY);
        assert_eq!(lnd_name(lnd::SOCKLND), Some("tcp"));
        assert_eq!(lnd_name(lnd::TOFULND), None);
        assert_eq!(lnd_from_name("o2ib"), Some(lnd::O2IBLND));
    }

    #[test]
    fn bad_nid_strings() {
        for s in [
            "",
            "@tcp",
            "1.2.3@tcp",
            "1.2.3.4.5@tcp",
            "256.1.1.1@tcp",
            "1.2.3.+4@tcp",
            "1.2.3.4@",
            "1.2.3.4@tcpx",
            "1.2.3.4@tcp65536",
            "1.2.3.4@foo",
            "1@lo",
            "0@lo1",
            "x@gni",
            "4294967296@gni",
            "zz@<17:0>",
            "1@<256:0>",
            "1@<17>",
            "1.2.3.4@<2:0>",
            "0@<9:5>",
            "1.2.3.4@tcp@tcp",
            " 1.2.3.4@tcp",
        ] {
            assert_eq!(s.parse::<Nid>(), Err(WireError::BadNidString), "{s:?}");
        }
    }

    #[test]
    fn process_ids() {
        let nid: Nid = "192.168.0.1@tcp".parse().unwrap();
        let id = ProcessId::lustre(nid);
        assert_eq!(id.to_string(), "12345-192.168.0.1@tcp");
        assert_eq!("12345-192.168.0.1@tcp".parse::<ProcessId>().unwrap(), id);
        assert_eq!("192.168.0.1@tcp".parse::<ProcessId>().unwrap(), id);
        let user = ProcessId::new(nid, LNET_PID_USERFLAG | 1022);
        assert!(user.is_userspace());
        assert!(!id.is_userspace());
        assert_eq!(user.to_string(), "U1022-192.168.0.1@tcp");
        assert_eq!("U1022-192.168.0.1@tcp".parse::<ProcessId>().unwrap(), user);
        let any = ProcessId::new(nid, LNET_PID_ANY);
        assert!(!any.is_userspace());
        assert_eq!(any.to_string(), "LNET_PID_ANY-192.168.0.1@tcp");
        assert_eq!(
            "LNET_PID_ANY-192.168.0.1@tcp".parse::<ProcessId>().unwrap(),
            any
        );
        for s in [
            "-1.2.3.4@tcp",
            "x-1.2.3.4@tcp",
            "U-1.2.3.4@tcp",
            "U2147483648-1.2.3.4@tcp",
            "12345-",
            "12345-bad",
        ] {
            assert_eq!(
                s.parse::<ProcessId>(),
                Err(WireError::BadNidString),
                "{s:?}"
            );
        }
    }

    #[test]
    fn wire_handle_bytes() {
        let wh = WireHandle {
            interface_cookie: 0x1122_3344_5566_7788,
            object_cookie: 0x99aa_bbcc_ddee_ff00,
        };
        let mut buf = [0u8; 20];
        wh.write(&mut buf, 2).unwrap();
        assert_eq!(
            &buf[2..10],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert_eq!(WireHandle::read(&buf, 2), Some(wh));
        assert!(WireHandle::read(&buf, 4).is_some());
        assert_eq!(WireHandle::read(&buf, 5), None);
        assert_eq!(wh.write(&mut buf, 5), None);
        assert_eq!(WireHandle::read(&buf, usize::MAX), None);
        assert!(WireHandle::NONE.is_none());
        assert!(!wh.is_none());
    }
}
