//! ConnReq: decode arbitrary bytes; what decodes re-encodes to exactly the 16 input bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdinal::wire::acceptor::CONNREQ_SIZE;
use tdinal::wire::{classify_first_word, ConnReq, WireError};

fuzz_target!(|data: &[u8]| {
    if let Some(first) = data.get(..4) {
        let _ = classify_first_word([first[0], first[1], first[2], first[3]]);
    }
    match ConnReq::decode(data) {
        Ok((req, endian)) => {
            assert_eq!(req.to_bytes(endian)[..], data[..CONNREQ_SIZE]);
            assert_eq!(ConnReq::decode(&req.to_bytes(endian)), Ok((req, endian)));
        }
        Err(WireError::Short { need, have }) => {
            assert_eq!(have, data.len());
            assert!(need > have && need <= CONNREQ_SIZE);
        }
        Err(_) => {}
    }
});
