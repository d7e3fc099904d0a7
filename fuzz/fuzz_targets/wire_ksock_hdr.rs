//! KsockHdr: the first input byte picks the connection's byte order, the rest is decoded; what
//! decodes re-encodes to exactly the 24 input bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdinal::wire::ksock::KSOCK_HDR_SIZE;
use tdinal::wire::{Endian, KsockHdr, WireError};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let endian = if selector & 1 == 0 {
        Endian::Little
    } else {
        Endian::Big
    };
    match KsockHdr::decode(rest, endian) {
        Ok(h) => {
            assert_eq!(h.to_bytes(endian)[..], rest[..KSOCK_HDR_SIZE]);
            let _ = h.compute_csum_v2(endian, &[rest]);
        }
        Err(WireError::Short { need, have }) => {
            assert_eq!((need, have), (KSOCK_HDR_SIZE, rest.len()));
        }
        Err(_) => {}
    }
});
