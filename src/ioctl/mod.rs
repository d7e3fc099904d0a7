//! The control interface: `ptlctl`/`lctl`-style ioctls, decoded, validated and dispatched.
//!
//! Portable (`no_std`, no allocation): the same code runs in the Windows driver, on the
//! METHOD_BUFFERED system buffer of `IRP_MJ_DEVICE_CONTROL`, and in the Linux user-space
//! runtime and its tests. A malformed request gets an [`IoctlError`] naming the field, the value
//! and what was expected, which maps to an NTSTATUS ([`IoctlError::to_ntstatus`]) or a Linux
//! errno ([`IoctlError::to_errno`]); nothing here can panic.
//!
//! Two request forms are accepted (spec §7; full reference in `docs/ioctl.md`):
//! - **Portals era** ([`Era::Portals`]): one control code, [`IOCTL_PORTAL_NAL_CMD`], carrying
//!   `portal_ioctl_data` (136 bytes) with the `portals_cfg` (88 bytes) **inline** right after it,
//!   never behind a pointer ([`portals`]). Sub-commands are `NAL_CMD_*` 100–115 plus tdinal's
//!   [`NAL_CMD_START_DAEMON`] (116) and [`NAL_CMD_CONNECT_PEER`] (117).
//! - **LNet era** ([`Era::Lnet`]): one control code per `IOC_LIBCFS_*` number, carrying
//!   `libcfs_ioctl_data` (128 bytes + 8-aligned inline buffers) ([`libcfs`]).
//!
//! Control codes are `CTL_CODE(0x8065, 0x800 + nr, METHOD_BUFFERED, access)` ([`codes`]).
//! Pointer fields in either layout are never dereferenced.
//!
//! Kernel side: [`dispatch_in_place`] (or [`decode`] + [`encode_reply`]) with a
//! [`NalControl`]. User side: [`encode_request`] and [`decode_reply`].
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod bytes;
pub mod codes;
pub mod command;
pub mod dispatch;
pub mod error;
pub mod libcfs;
pub mod portals;
pub mod reply;

/// Longest request accepted (LNet era with inline buffers; a Portals request is always 224
/// bytes). No tdinal command uses inline data, so this only bounds what is validated.
pub const MAX_REQUEST_LEN: usize = 8192;

pub use codes::{
    classify, ctl_code, nal_cmd, CodeInfo, Era, CODES, FILE_DEVICE_TDINAL, IOCTL_PORTAL_NAL_CMD,
    NAL_CMD_CONNECT_PEER, NAL_CMD_START_DAEMON,
};
pub use command::{
    decode, decode_request, encode_request, encode_request_on, AcceptPolicy, Command, Request,
    DEFAULT_ACCEPT_BACKLOG, DEFAULT_ACCEPT_PORT, TCP0,
};
pub use dispatch::{dispatch, dispatch_in_place, execute, NalControl};
pub use error::{CtlError, IoctlError};
pub use libcfs::{LIBCFS_IOCTL_VERSION, LNET_IOCTL_VERSION2};
pub use portals::{PORTALS_CFG_VERSION, PORTAL_IOCTL_VERSION, SOCKNAL};
pub use reply::{decode_reply, encode_reply, ConnInfo, InterfaceInfo, PeerInfo, Reply, ReplyKind};
