//! Wire formats of LNet and socklnd V1/V2/V3 (see `shared/spec/socklnd-wire.md`).
//!
//! Every structure is a plain Rust value with `decode(&[u8])` and `encode(.., &mut [u8])`.
//! Decoders never allocate, never panic and never read past their input; a short input yields
//! [`WireError::Short`] with the number of bytes needed, so a streaming reader knows how much
//! to wait for. Encoders write into caller buffers and return the number of bytes written.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

pub mod acceptor;
pub mod csum;
pub mod endian;
pub mod error;
pub mod hello;
pub mod ksock;
pub mod lnet;
pub mod nid;
pub mod ping;

pub use acceptor::{classify_first_word, ConnReq, FirstWord};
pub use csum::{crc32_le, CRC32_SEED};
pub use endian::Endian;
pub use error::WireError;
pub use hello::{ConnType, Hello, HelloProbe, IpList, ProtoVersion};
pub use ksock::{KsockHdr, KsockMsgType};
pub use lnet::{LnetHdr, LnetMsg, MsgType};
pub use nid::{Net, Nid, ProcessId, WireHandle};
pub use ping::{encode_ping_info, NiStatus, PingInfo};
