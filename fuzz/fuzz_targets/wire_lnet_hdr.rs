//! LnetHdr: decode arbitrary bytes; what decodes must re-encode to the same fields (the
//! type's unused union bytes come back as zero) and decode again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdinal::wire::lnet::{END_ACK, END_GET, END_HELLO, END_PUT, END_REPLY, LNET_HDR_SIZE};
use tdinal::wire::{LnetHdr, LnetMsg, WireError};

fuzz_target!(|data: &[u8]| {
    match LnetHdr::decode(data) {
        Ok(h) => {
            let _ = h.validate();
            let bytes = h.to_bytes();
            assert_eq!(LnetHdr::decode(&bytes), Ok(h));
            let used = match h.msg {
                LnetMsg::Ack { .. } => END_ACK,
                LnetMsg::Put { .. } => END_PUT,
                LnetMsg::Get { .. } => END_GET,
                LnetMsg::Reply { .. } => END_REPLY,
                LnetMsg::Hello { .. } => END_HELLO,
            };
            assert_eq!(bytes[..used], data[..used]);
            assert!(bytes[used..].iter().all(|&b| b == 0));
        }
        Err(WireError::Short { need, have }) => {
            assert_eq!((need, have), (LNET_HDR_SIZE, data.len()));
            assert!(data.len() < LNET_HDR_SIZE);
        }
        Err(_) => {}
    }
});
