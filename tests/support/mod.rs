//! Test-only helpers shared by integration tests: classic pcap reading and writing, IPv4/TCP
//! frame parsing and building, and TCP stream reassembly. Nothing here is protocol-specific.
//!
//! Use from a test crate with `#[allow(dead_code)] mod support;` (each test crate uses a
//! different subset).

pub mod pcap;
pub mod tcp;
