//! PingInfo: decode arbitrary bytes; the entries present re-encode to a ping info that decodes
//! to the same values, identical to the input when nothing was truncated.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdinal::wire::ping::{encode_ping_info, PingInfo};

fuzz_target!(|data: &[u8]| {
    let Ok(info) = PingInfo::decode(data) else {
        return;
    };
    let entries: Vec<_> = info.entries().collect();
    assert_eq!(entries.len(), info.entries_present());
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(info.entry(i), Some(*e));
    }
    let mut out = vec![0u8; info.wire_len()];
    let n = encode_ping_info(info.endian, info.features, info.pid, &entries, &mut out)
        .expect("buffer sized by wire_len");
    assert_eq!(n, out.len());
    let again = PingInfo::decode(&out).expect("our own encoding decodes");
    assert_eq!((again.endian, again.features, again.pid), (info.endian, info.features, info.pid));
    assert!(again.entries().eq(entries.iter().copied()));
    if !info.is_truncated() {
        assert_eq!(out[..], data[..n]);
    }
});
