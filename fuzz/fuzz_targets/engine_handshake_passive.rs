//! Engine: an accepted connection; the input is the peer's connreq, hello and what follows, plus
//! the ops of the runtime and upper layer.
//! The harness and the invariants it checks live in `tdinal::engine::fuzzing` (shared with
//! `tests/engine_fuzz_regress.rs`): no panic, exactly one TxDone per send and one RxDone per
//! answered Rx, gauges back to zero and the engine idle after shutdown, well-formed output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tdinal::engine::fuzzing::{run, Target};

fuzz_target!(|data: &[u8]| run(Target::HandshakePassive, data));
