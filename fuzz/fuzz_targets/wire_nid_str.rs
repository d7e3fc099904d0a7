//! NID / net / process-id strings: parse arbitrary text; whatever parses prints as a string that
//! parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdinal::wire::{Net, Nid, ProcessId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(nid) = text.parse::<Nid>() {
        assert_eq!(nid.to_string().parse::<Nid>(), Ok(nid), "{text:?}");
    }
    if let Ok(net) = text.parse::<Net>() {
        assert_eq!(net.to_string().parse::<Net>(), Ok(net), "{text:?}");
    }
    if let Ok(id) = text.parse::<ProcessId>() {
        assert_eq!(id.to_string().parse::<ProcessId>(), Ok(id), "{text:?}");
    }
});
