//! Hello (V1/V2/V3): decode arbitrary bytes; what decodes re-encodes to bytes that decode to the
//! same hello, identical to the input for V2/V3 (V1 has unused bytes that come back as zero).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdinal::wire::hello::probe;
use tdinal::wire::{Hello, ProtoVersion, WireError};

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    match Hello::decode(data) {
        Ok((hello, endian, n)) => {
            assert_eq!(n, hello.wire_len());
            let mut out = vec![0u8; n];
            assert_eq!(hello.encode(endian, &mut out), Ok(n));
            assert_eq!(Hello::decode(&out), Ok((hello, endian, n)));
            if hello.version != ProtoVersion::V1 {
                assert_eq!(out[..], data[..n]);
            }
        }
        Err(WireError::Short { need, have }) => {
            assert_eq!(have, data.len());
            assert!(need > have);
        }
        Err(_) => {}
    }
});
