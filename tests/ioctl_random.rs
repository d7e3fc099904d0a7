//! Never panics on arbitrary bytes: random and mutated inputs for every control code, through
//! every entry point. Deterministic (xorshift, fixed seeds); a failure names the seed and case.

#[path = "ioctl_common.rs"]
mod common;

use common::*;
use tdinal::ioctl::{
    decode, decode_reply, decode_request, dispatch, dispatch_in_place, encode_reply,
    encode_request_on, Reply, CODES,
};
use tdinal::wire::Net;

fn random_reply(rng: &mut XorShift) -> Reply {
    let i = rng.below(4) as u32;
    match rng.below(5) {
        0 => Reply::None,
        1 => Reply::Peer(peer(i)),
        2 => Reply::Conn(conn(i)),
        3 => Reply::Interface(iface(i)),
        _ => Reply::Ni(NID_A),
    }
}

/// Runs every entry point on (code, bytes); only checks consistency, never a particular result.
fn exercise(rng: &mut XorShift, code: u32, input: &[u8]) {
    let decoded = decode_request(code, input);
    assert_eq!(decode(code, input), decoded.map(|r| r.command));
    let _ = decode_reply(code, input);

    let out_len = rng.below(300) as usize;
    let mut out = vec![0u8; out_len];
    let _ = encode_reply(code, input, &random_reply(rng), &mut out);

    let mut nal = MockNal::default();
    let r = dispatch(&mut nal, code, input, &mut out);
    if let Err(e) = decoded {
        assert_eq!(r, Err(e));
        assert!(nal.calls().is_empty(), "a refused request reached the NAL");
    }
    if let Ok(n) = r {
        assert!(n <= out.len());
    }

    let mut sys = vec![0u8; input.len().max(out_len)];
    sys[..input.len()].copy_from_slice(input);
    let mut nal2 = MockNal::default();
    let r2 = dispatch_in_place(&mut nal2, code, &mut sys, input.len(), out_len);
    assert_eq!(r, r2);

    // Whatever decodes is canonical: re-encoding gives a request that decodes the same.
    if let Ok(req) = decoded {
        let mut buf = [0u8; 512];
        let net = req.net.unwrap_or(Net(0x0002_0000));
        let (code2, n) = encode_request_on(&req.command, req.era, net, &mut buf)
            .unwrap_or_else(|e| panic!("{req:?} decoded but does not re-encode: {e}"));
        assert_eq!(code2, code);
        assert_eq!(decode(code2, &buf[..n]), Ok(req.command));
    }
}

#[test]
fn random_bytes_for_every_code() {
    let mut codes: Vec<u32> = CODES.iter().map(|c| c.code).collect();
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..16 {
        codes.push(rng.next_u64() as u32);
    }
    for &code in &codes {
        for case in 0..2000 {
            let len = match rng.below(4) {
                0 => rng.below(16) as usize,
                1 => 224,
                2 => 128,
                _ => rng.below(400) as usize,
            };
            let mut input = vec![0u8; len];
            rng.fill(&mut input);
            // Make the length field agree now and then so we get past the first checks.
            if len >= 8 && rng.below(2) == 0 {
                input[..4].copy_from_slice(&(len as u32).to_le_bytes());
                let v: u32 = if rng.below(2) == 0 {
                    0x0001_0008
                } else {
                    0x0001_000a
                };
                input[4..8].copy_from_slice(&v.to_le_bytes());
            }
            let mut r2 = XorShift(rng.next_u64() | 1);
            let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                exercise(&mut r2, code, &input)
            }));
            assert!(
                res.is_ok(),
                "code {code:#x} case {case}: input {input:02x?}"
            );
        }
    }
}

#[test]
fn mutated_valid_requests() {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let requests: Vec<(u32, Vec<u8>)> = sample_requests()
        .iter()
        .map(|(cmd, era)| encode(cmd, *era))
        .collect();
    let mut accepted = 0usize;
    for case in 0..100_000 {
        let (code, base) = &requests[rng.below(requests.len() as u64) as usize];
        let mut input = base.clone();
        for _ in 0..=rng.below(4) {
            let i = rng.below(input.len() as u64) as usize;
            match rng.below(3) {
                0 => input[i] ^= 1 << rng.below(8),
                1 => input[i] = rng.next_u64() as u8,
                _ => input[i] = 0,
            }
        }
        if rng.below(20) == 0 {
            input.truncate(rng.below(input.len() as u64) as usize);
        }
        let code = if rng.below(50) == 0 {
            code ^ (1 << rng.below(32))
        } else {
            *code
        };
        let mut r2 = XorShift(rng.next_u64() | 1);
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            exercise(&mut r2, code, &input)
        }));
        assert!(
            res.is_ok(),
            "case {case}: code {code:#x} input {input:02x?}"
        );
        if decode(code, &input).is_ok() {
            accepted += 1;
        }
    }
    // The mutations must leave some requests valid, or this test explores nothing deep.
    assert!(accepted > 1000, "only {accepted} mutated requests decoded");
}
