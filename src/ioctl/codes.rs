//! Windows control codes of the tdinal control device, and the Lustre command numbers they carry.
//!
//! ## Scheme
//!
//! `CTL_CODE(DeviceType, Function, Method, Access)` = `DeviceType << 16 | Access << 14 |
//! Function << 2 | Method` (winioctl.h). tdinal uses:
//!
//! - **DeviceType** [`FILE_DEVICE_TDINAL`] = `0x8065`: in the vendor range (≥ 0x8000); the low
//!   byte `0x65` is `'e'`, the ioctl "type" letter Lustre uses for `/dev/portals` and `/dev/lnet`.
//! - **Function** = `0x800 + nr`, where `nr` is the Lustre ioctl number (functions below 0x800 are
//!   reserved for Microsoft). So `IOC_PORTAL_NAL_CMD` (35) is function `0x823` and
//!   `IOC_LIBCFS_ADD_PEER` (75 = 0x4b) is function `0x84b`: the Lustre number is the low byte of
//!   the function.
//! - **Method** = `METHOD_BUFFERED`: the I/O manager copies the input into a system buffer and
//!   copies the output back; the driver never touches user addresses.
//! - **Access**: commands that change NAL state need `FILE_WRITE_ACCESS`; list/query commands need
//!   `FILE_READ_ACCESS`. `IOC_PORTAL_NAL_CMD` multiplexes both kinds (its sub-command is inside the
//!   `portals_cfg`), so it needs `FILE_READ_ACCESS | FILE_WRITE_ACCESS`; a handle opened read-only
//!   can still list peers and connections through the LNet-era codes.
//!
//! The access bits are part of the code: a code with other access bits than the table below is
//! not a tdinal code ([`classify`] rejects it), so a caller cannot downgrade the required access.

use super::error::IoctlError;

/// Which request form a control code carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Era {
    /// Lustre 1.4 Portals: `portal_ioctl_data` + inline `portals_cfg`, `NAL_CMD_*` sub-commands.
    Portals,
    /// Lustre 1.6+ LNet: `libcfs_ioctl_data`, one ioctl number per command.
    Lnet,
}

// ---- winioctl.h constants ----

pub const METHOD_BUFFERED: u32 = 0;
pub const METHOD_IN_DIRECT: u32 = 1;
pub const METHOD_OUT_DIRECT: u32 = 2;
pub const METHOD_NEITHER: u32 = 3;
pub const FILE_ANY_ACCESS: u32 = 0;
pub const FILE_READ_ACCESS: u32 = 1;
pub const FILE_WRITE_ACCESS: u32 = 2;

/// tdinal's device type: vendor range, low byte `'e'` like Lustre's ioctl type letter.
pub const FILE_DEVICE_TDINAL: u32 = 0x8065;
/// Function numbers are `FUNCTION_BASE + nr` (Lustre's ioctl number).
pub const FUNCTION_BASE: u32 = 0x800;

/// `CTL_CODE` from winioctl.h. Each argument is masked to its field width.
pub const fn ctl_code(device_type: u32, function: u32, method: u32, access: u32) -> u32 {
    ((device_type & 0xffff) << 16)
        | ((access & 0x3) << 14)
        | ((function & 0xfff) << 2)
        | (method & 0x3)
}

/// The fields of a control code, as `CTL_CODE` packed them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtlFields {
    pub device_type: u32,
    pub access: u32,
    pub function: u32,
    pub method: u32,
}

/// Splits a control code into its `CTL_CODE` fields.
pub const fn ctl_fields(code: u32) -> CtlFields {
    CtlFields {
        device_type: code >> 16,
        access: (code >> 14) & 0x3,
        function: (code >> 2) & 0xfff,
        method: code & 0x3,
    }
}

/// A tdinal control code carrying Lustre ioctl number `nr` with the given access bits.
pub const fn tdinal_code(nr: u32, access: u32) -> u32 {
    ctl_code(
        FILE_DEVICE_TDINAL,
        FUNCTION_BASE | (nr & 0xff),
        METHOD_BUFFERED,
        access,
    )
}

/// The Linux request number Lustre uses for ioctl `nr`: `_IOWR('e', nr, long)` on a 64-bit
/// kernel, i.e. `0xC00865nn` (for reference and for a Linux `/dev/lnet` front end).
pub const fn linux_request(nr: u8) -> u32 {
    0xC008_6500 | nr as u32
}

const RW: u32 = FILE_READ_ACCESS | FILE_WRITE_ACCESS;
const R: u32 = FILE_READ_ACCESS;
const W: u32 = FILE_WRITE_ACCESS;

// ---- Portals era (P14) ----

/// Lustre's `IOC_PORTAL_NAL_CMD` ioctl number.
pub const IOC_PORTAL_NAL_CMD: u32 = 35;
/// The control code carrying `portal_ioctl_data` + inline `portals_cfg` (function 0x823).
pub const IOCTL_PORTAL_NAL_CMD: u32 = tdinal_code(IOC_PORTAL_NAL_CMD, RW);

/// `pcfg_command` values (Lustre P14 numbers, plus tdinal's two new commands).
pub mod nal_cmd {
    pub const REGISTER_PEER_FD: u32 = 100;
    pub const CLOSE_CONNECTION: u32 = 101;
    pub const REGISTER_MYNID: u32 = 102;
    pub const PUSH_CONNECTION: u32 = 103;
    pub const GET_CONN: u32 = 104;
    pub const DEL_PEER: u32 = 105;
    pub const ADD_PEER: u32 = 106;
    pub const GET_PEER: u32 = 107;
    pub const GET_TXDESC: u32 = 108;
    pub const ADD_ROUTE: u32 = 109;
    pub const DEL_ROUTE: u32 = 110;
    pub const GET_ROUTE: u32 = 111;
    pub const NOTIFY_ROUTER: u32 = 112;
    pub const ADD_INTERFACE: u32 = 113;
    pub const DEL_INTERFACE: u32 = 114;
    pub const GET_INTERFACE: u32 = 115;
    /// tdinal: start (or, with accept policy "none", stop) the in-kernel acceptor.
    ///
    /// New number: 100–115 are P14's; 116 is the first unused one. The Portals era ended with
    /// P14 (LNet replaced `NAL_CMD_*` with `IOC_LIBCFS_*`), so no later Lustre can collide.
    pub const START_DAEMON: u32 = 116;
    /// tdinal: open a connection to a peer from the kernel (replaces user-space connect +
    /// `REGISTER_PEER_FD`, which Windows cannot do: a user socket cannot be handed to a TDI
    /// client). Number chosen like [`START_DAEMON`].
    pub const CONNECT_PEER: u32 = 117;
}

pub use nal_cmd::{CONNECT_PEER as NAL_CMD_CONNECT_PEER, START_DAEMON as NAL_CMD_START_DAEMON};

// ---- LNet era (B18 numbers; unchanged in HEAD for the socklnd commands) ----

pub const IOC_LIBCFS_GET_NI: u32 = 50;
pub const IOC_LIBCFS_FAIL_NID: u32 = 51;
pub const IOC_LIBCFS_ADD_ROUTE: u32 = 52;
pub const IOC_LIBCFS_DEL_ROUTE: u32 = 53;
pub const IOC_LIBCFS_GET_ROUTE: u32 = 54;
pub const IOC_LIBCFS_NOTIFY_ROUTER: u32 = 55;
pub const IOC_LIBCFS_UNCONFIGURE: u32 = 56;
pub const IOC_LIBCFS_PORTALS_COMPATIBILITY: u32 = 57;
pub const IOC_LIBCFS_LNET_DIST: u32 = 58;
pub const IOC_LIBCFS_CONFIGURE: u32 = 59;
pub const IOC_LIBCFS_TESTPROTOCOMPAT: u32 = 60;
pub const IOC_LIBCFS_PING: u32 = 61;
pub const IOC_LIBCFS_REGISTER_MYNID: u32 = 70;
pub const IOC_LIBCFS_CLOSE_CONNECTION: u32 = 71;
pub const IOC_LIBCFS_PUSH_CONNECTION: u32 = 72;
pub const IOC_LIBCFS_GET_CONN: u32 = 73;
pub const IOC_LIBCFS_DEL_PEER: u32 = 74;
pub const IOC_LIBCFS_ADD_PEER: u32 = 75;
pub const IOC_LIBCFS_GET_PEER: u32 = 76;
pub const IOC_LIBCFS_GET_TXDESC: u32 = 77;
pub const IOC_LIBCFS_ADD_INTERFACE: u32 = 78;
pub const IOC_LIBCFS_DEL_INTERFACE: u32 = 79;
pub const IOC_LIBCFS_GET_INTERFACE: u32 = 80;
pub const IOC_LIBCFS_GET_GMID: u32 = 81;

pub const IOCTL_LIBCFS_GET_NI: u32 = tdinal_code(IOC_LIBCFS_GET_NI, R);
pub const IOCTL_LIBCFS_FAIL_NID: u32 = tdinal_code(IOC_LIBCFS_FAIL_NID, W);
pub const IOCTL_LIBCFS_ADD_ROUTE: u32 = tdinal_code(IOC_LIBCFS_ADD_ROUTE, W);
pub const IOCTL_LIBCFS_DEL_ROUTE: u32 = tdinal_code(IOC_LIBCFS_DEL_ROUTE, W);
pub const IOCTL_LIBCFS_GET_ROUTE: u32 = tdinal_code(IOC_LIBCFS_GET_ROUTE, R);
pub const IOCTL_LIBCFS_NOTIFY_ROUTER: u32 = tdinal_code(IOC_LIBCFS_NOTIFY_ROUTER, W);
pub const IOCTL_LIBCFS_UNCONFIGURE: u32 = tdinal_code(IOC_LIBCFS_UNCONFIGURE, W);
pub const IOCTL_LIBCFS_PORTALS_COMPATIBILITY: u32 =
    tdinal_code(IOC_LIBCFS_PORTALS_COMPATIBILITY, R);
pub const IOCTL_LIBCFS_LNET_DIST: u32 = tdinal_code(IOC_LIBCFS_LNET_DIST, R);
pub const IOCTL_LIBCFS_CONFIGURE: u32 = tdinal_code(IOC_LIBCFS_CONFIGURE, W);
pub const IOCTL_LIBCFS_TESTPROTOCOMPAT: u32 = tdinal_code(IOC_LIBCFS_TESTPROTOCOMPAT, W);
pub const IOCTL_LIBCFS_PING: u32 = tdinal_code(IOC_LIBCFS_PING, R);
pub const IOCTL_LIBCFS_REGISTER_MYNID: u32 = tdinal_code(IOC_LIBCFS_REGISTER_MYNID, W);
pub const IOCTL_LIBCFS_CLOSE_CONNECTION: u32 = tdinal_code(IOC_LIBCFS_CLOSE_CONNECTION, W);
pub const IOCTL_LIBCFS_PUSH_CONNECTION: u32 = tdinal_code(IOC_LIBCFS_PUSH_CONNECTION, W);
pub const IOCTL_LIBCFS_GET_CONN: u32 = tdinal_code(IOC_LIBCFS_GET_CONN, R);
pub const IOCTL_LIBCFS_DEL_PEER: u32 = tdinal_code(IOC_LIBCFS_DEL_PEER, W);
pub const IOCTL_LIBCFS_ADD_PEER: u32 = tdinal_code(IOC_LIBCFS_ADD_PEER, W);
pub const IOCTL_LIBCFS_GET_PEER: u32 = tdinal_code(IOC_LIBCFS_GET_PEER, R);
pub const IOCTL_LIBCFS_GET_TXDESC: u32 = tdinal_code(IOC_LIBCFS_GET_TXDESC, R);
pub const IOCTL_LIBCFS_ADD_INTERFACE: u32 = tdinal_code(IOC_LIBCFS_ADD_INTERFACE, W);
pub const IOCTL_LIBCFS_DEL_INTERFACE: u32 = tdinal_code(IOC_LIBCFS_DEL_INTERFACE, W);
pub const IOCTL_LIBCFS_GET_INTERFACE: u32 = tdinal_code(IOC_LIBCFS_GET_INTERFACE, R);
pub const IOCTL_LIBCFS_GET_GMID: u32 = tdinal_code(IOC_LIBCFS_GET_GMID, R);

/// One row of the code table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    /// The Windows control code.
    pub code: u32,
    pub era: Era,
    /// The Lustre ioctl number (`IOC_PORTAL_*` / `IOC_LIBCFS_*`).
    pub nr: u32,
    /// The Lustre name.
    pub name: &'static str,
    /// `FILE_READ_ACCESS` and/or `FILE_WRITE_ACCESS`.
    pub access: u32,
    /// Whether tdinal implements it; unimplemented codes decode to
    /// [`IoctlError::NotSupported`] rather than [`IoctlError::UnknownCode`].
    pub supported: bool,
}

const fn row(code: u32, era: Era, nr: u32, name: &'static str, supported: bool) -> CodeInfo {
    CodeInfo {
        code,
        era,
        nr,
        name,
        access: ctl_fields(code).access,
        supported,
    }
}

/// Every tdinal control code.
pub const CODES: &[CodeInfo] = &[
    row(
        IOCTL_PORTAL_NAL_CMD,
        Era::Portals,
        IOC_PORTAL_NAL_CMD,
        "IOC_PORTAL_NAL_CMD",
        true,
    ),
    row(
        IOCTL_LIBCFS_GET_NI,
        Era::Lnet,
        IOC_LIBCFS_GET_NI,
        "IOC_LIBCFS_GET_NI",
        true,
    ),
    row(
        IOCTL_LIBCFS_FAIL_NID,
        Era::Lnet,
        IOC_LIBCFS_FAIL_NID,
        "IOC_LIBCFS_FAIL_NID",
        false,
    ),
    row(
        IOCTL_LIBCFS_ADD_ROUTE,
        Era::Lnet,
        IOC_LIBCFS_ADD_ROUTE,
        "IOC_LIBCFS_ADD_ROUTE",
        false,
    ),
    row(
        IOCTL_LIBCFS_DEL_ROUTE,
        Era::Lnet,
        IOC_LIBCFS_DEL_ROUTE,
        "IOC_LIBCFS_DEL_ROUTE",
        false,
    ),
    row(
        IOCTL_LIBCFS_GET_ROUTE,
        Era::Lnet,
        IOC_LIBCFS_GET_ROUTE,
        "IOC_LIBCFS_GET_ROUTE",
        false,
    ),
    row(
        IOCTL_LIBCFS_NOTIFY_ROUTER,
        Era::Lnet,
        IOC_LIBCFS_NOTIFY_ROUTER,
        "IOC_LIBCFS_NOTIFY_ROUTER",
        false,
    ),
    row(
        IOCTL_LIBCFS_UNCONFIGURE,
        Era::Lnet,
        IOC_LIBCFS_UNCONFIGURE,
        "IOC_LIBCFS_UNCONFIGURE",
        false,
    ),
    row(
        IOCTL_LIBCFS_PORTALS_COMPATIBILITY,
        Era::Lnet,
        IOC_LIBCFS_PORTALS_COMPATIBILITY,
        "IOC_LIBCFS_PORTALS_COMPATIBILITY",
        false,
    ),
    row(
        IOCTL_LIBCFS_LNET_DIST,
        Era::Lnet,
        IOC_LIBCFS_LNET_DIST,
        "IOC_LIBCFS_LNET_DIST",
        false,
    ),
    row(
        IOCTL_LIBCFS_CONFIGURE,
        Era::Lnet,
        IOC_LIBCFS_CONFIGURE,
        "IOC_LIBCFS_CONFIGURE",
        false,
    ),
    row(
        IOCTL_LIBCFS_TESTPROTOCOMPAT,
        Era::Lnet,
        IOC_LIBCFS_TESTPROTOCOMPAT,
        "IOC_LIBCFS_TESTPROTOCOMPAT",
        false,
    ),
    row(
        IOCTL_LIBCFS_PING,
        Era::Lnet,
        IOC_LIBCFS_PING,
        "IOC_LIBCFS_PING",
        false,
    ),
    row(
        IOCTL_LIBCFS_REGISTER_MYNID,
        Era::Lnet,
        IOC_LIBCFS_REGISTER_MYNID,
        "IOC_LIBCFS_REGISTER_MYNID",
        true,
    ),
    row(
        IOCTL_LIBCFS_CLOSE_CONNECTION,
        Era::Lnet,
        IOC_LIBCFS_CLOSE_CONNECTION,
        "IOC_LIBCFS_CLOSE_CONNECTION",
        true,
    ),
    row(
        IOCTL_LIBCFS_PUSH_CONNECTION,
        Era::Lnet,
        IOC_LIBCFS_PUSH_CONNECTION,
        "IOC_LIBCFS_PUSH_CONNECTION",
        true,
    ),
    row(
        IOCTL_LIBCFS_GET_CONN,
        Era::Lnet,
        IOC_LIBCFS_GET_CONN,
        "IOC_LIBCFS_GET_CONN",
        true,
    ),
    row(
        IOCTL_LIBCFS_DEL_PEER,
        Era::Lnet,
        IOC_LIBCFS_DEL_PEER,
        "IOC_LIBCFS_DEL_PEER",
        true,
    ),
    row(
        IOCTL_LIBCFS_ADD_PEER,
        Era::Lnet,
        IOC_LIBCFS_ADD_PEER,
        "IOC_LIBCFS_ADD_PEER",
        true,
    ),
    row(
        IOCTL_LIBCFS_GET_PEER,
        Era::Lnet,
        IOC_LIBCFS_GET_PEER,
        "IOC_LIBCFS_GET_PEER",
        true,
    ),
    row(
        IOCTL_LIBCFS_GET_TXDESC,
        Era::Lnet,
        IOC_LIBCFS_GET_TXDESC,
        "IOC_LIBCFS_GET_TXDESC",
        false,
    ),
    row(
        IOCTL_LIBCFS_ADD_INTERFACE,
        Era::Lnet,
        IOC_LIBCFS_ADD_INTERFACE,
        "IOC_LIBCFS_ADD_INTERFACE",
        true,
    ),
    row(
        IOCTL_LIBCFS_DEL_INTERFACE,
        Era::Lnet,
        IOC_LIBCFS_DEL_INTERFACE,
        "IOC_LIBCFS_DEL_INTERFACE",
        true,
    ),
    row(
        IOCTL_LIBCFS_GET_INTERFACE,
        Era::Lnet,
        IOC_LIBCFS_GET_INTERFACE,
        "IOC_LIBCFS_GET_INTERFACE",
        true,
    ),
    row(
        IOCTL_LIBCFS_GET_GMID,
        Era::Lnet,
        IOC_LIBCFS_GET_GMID,
        "IOC_LIBCFS_GET_GMID",
        false,
    ),
];

/// Looks a control code up in [`CODES`]. Anything else (another device type, a method other
/// than `METHOD_BUFFERED`, different access bits, an unassigned function) is
/// [`IoctlError::UnknownCode`].
pub fn classify(code: u32) -> Result<&'static CodeInfo, IoctlError> {
    CODES
        .iter()
        .find(|c| c.code == code)
        .ok_or(IoctlError::UnknownCode { code })
}

/// The control code that carries LNet-era command `nr`, if tdinal defines one.
pub fn libcfs_code(nr: u32) -> Option<u32> {
    CODES
        .iter()
        .find(|c| c.era == Era::Lnet && c.nr == nr)
        .map(|c| c.code)
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
    fn ctl_code_matches_winioctl_examples() {
        // IOCTL_DISK_GET_DRIVE_GEOMETRY = CTL_CODE(7, 0, METHOD_BUFFERED, FILE_ANY_ACCESS).
        assert_eq!(
            ctl_code(7, 0, METHOD_BUFFERED, FILE_ANY_ACCESS),
            0x0007_0000
        );
        // FSCTL_GET_RETRIEVAL_POINTERS = CTL_CODE(9, 28, METHOD_NEITHER, FILE_ANY_ACCESS).
        assert_eq!(
            ctl_code(9, 28, METHOD_NEITHER, FILE_ANY_ACCESS),
            0x0009_0073
        );
        // IOCTL_STORAGE_EJECT_MEDIA = CTL_CODE(0x2d, 0x202, METHOD_BUFFERED, FILE_READ_ACCESS).
        assert_eq!(
            ctl_code(0x2d, 0x202, METHOD_BUFFERED, FILE_READ_ACCESS),
            0x002d_4808
        );
    }

    #[test]
    fn tdinal_codes_have_expected_values() {
        assert_eq!(IOCTL_PORTAL_NAL_CMD, 0x8065_E08C);
        assert_eq!(IOCTL_LIBCFS_ADD_PEER, 0x8065_A12C);
        assert_eq!(IOCTL_LIBCFS_GET_PEER, 0x8065_6130);
        let f = ctl_fields(IOCTL_LIBCFS_GET_CONN);
        assert_eq!(f.device_type, FILE_DEVICE_TDINAL);
        assert_eq!(f.function, 0x800 + 73);
        assert_eq!(f.function & 0xff, IOC_LIBCFS_GET_CONN);
        assert_eq!(f.method, METHOD_BUFFERED);
        assert_eq!(f.access, FILE_READ_ACCESS);
        assert_eq!(linux_request(35), 0xC008_6523);
    }

    #[test]
    fn table_is_consistent() {
        for (i, c) in CODES.iter().enumerate() {
            let f = ctl_fields(c.code);
            assert!(f.device_type >= 0x8000, "{}", c.name);
            assert_eq!(f.method, METHOD_BUFFERED, "{}", c.name);
            assert_eq!(f.function, FUNCTION_BASE + c.nr, "{}", c.name);
            assert_ne!(f.access, FILE_ANY_ACCESS, "{}", c.name);
            assert_eq!(classify(c.code).unwrap().name, c.name);
            for d in &CODES[i + 1..] {
                assert_ne!(c.code, d.code, "{} vs {}", c.name, d.name);
                assert_ne!(f.function, ctl_fields(d.code).function);
            }
            let is_list = c.name.contains("GET_")
                || c.name.contains("DIST")
                || c.name.contains("PING")
                || c.name.contains("COMPATIBILITY");
            if c.era == Era::Lnet {
                let want = if is_list {
                    FILE_READ_ACCESS
                } else {
                    FILE_WRITE_ACCESS
                };
                assert_eq!(f.access, want, "{}", c.name);
            }
        }
        assert_eq!(
            ctl_fields(IOCTL_PORTAL_NAL_CMD).access,
            FILE_READ_ACCESS | FILE_WRITE_ACCESS
        );
    }

    #[test]
    fn other_access_bits_or_methods_are_unknown() {
        let c = IOCTL_LIBCFS_ADD_PEER;
        // Downgrading the access to read-only or "any" must not find the code.
        let read_only = (c & !(0x3 << 14)) | (FILE_READ_ACCESS << 14);
        let any = c & !(0x3 << 14);
        let direct = (c & !0x3) | METHOD_IN_DIRECT;
        for bad in [read_only, any, direct, c ^ 0x0001_0000, 0] {
            assert_eq!(classify(bad), Err(IoctlError::UnknownCode { code: bad }));
        }
    }
}
