//! loom model checks of the two concurrency pieces of the TDI layer, compiled from the very
//! production files (`src/tdi/sendref.rs`, `src/tdi/tsdu.rs`) against a `sync` module backed by
//! loom instead of `core::sync` and the kernel spin lock:
//!
//! - the two-reference `TDI_SEND` completion context: whichever of the submitter (after
//!   `IoCallDriver` returned) and the completion routine drops the last reference finishes the
//!   send — exactly one of them, and it sees the status the completion routine recorded; a
//!   send finished by the completion routine re-activates the parked connection;
//! - the TSDU queue's hand-off from a producer (receive handlers at DISPATCH_LEVEL) to the
//!   consumer (the connection's scheduler) through the "scheduled" flag: no data and no end of
//!   stream is ever left in the queue without the connection being queued for a pass.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test tdi_loom`
//! (without `--cfg loom` this file compiles to nothing).
#![allow(unexpected_cfgs)]
#![cfg(loom)]

extern crate alloc;

/// The loom-backed stand-in for `src/tdi/sync.rs`.
mod sync {
    pub use loom::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

    /// The kernel spin lock modelled as a loom mutex (same API as `tdi::sync::SpinLock`).
    pub struct SpinLock<T>(loom::sync::Mutex<T>);

    impl<T> SpinLock<T> {
        pub fn new(data: T) -> Self {
            SpinLock(loom::sync::Mutex::new(data))
        }
        pub fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }
    }
}

#[path = "../src/tdi/sendref.rs"]
#[allow(dead_code)]
mod sendref;

#[path = "../src/tdi/tsdu.rs"]
#[allow(dead_code)]
mod tsdu;

use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use sendref::{Finisher, SendRefs, Wake};
use tsdu::{TsduEntry, TsduQueue};

const STATUS_SUCCESS: i32 = 0;
const STATUS_CONNECTION_RESET: i32 = 0xC000_020Du32 as i32;

/// What the connection keeps for a send finished by its completion routine.
struct Conn {
    wake: Wake,
    send_result: AtomicU64,
    send_done: loom::sync::atomic::AtomicBool,
    runq: AtomicUsize,
}

fn send_model(status: i32, bytes: u32) {
    loom::model(move || {
        let conn = Arc::new(Conn {
            wake: Wake::new(false),
            send_result: AtomicU64::new(0),
            send_done: loom::sync::atomic::AtomicBool::new(false),
            runq: AtomicUsize::new(0),
        });
        let refs = Arc::new(SendRefs::new());
        let finished = Arc::new(AtomicUsize::new(0));

        // The completion routine (another CPU, at DISPATCH_LEVEL).
        let (r2, c2, f2) = (refs.clone(), conn.clone(), finished.clone());
        let completion = thread::spawn(move || {
            if let Some(Finisher::Completion) = r2.complete(status, bytes) {
                f2.fetch_add(1, Ordering::SeqCst);
                // Record the result, then re-activate the parked connection.
                let (st, n) = r2.result();
                assert_eq!((st, n), (status, bytes));
                c2.send_result.store(
                    (u64::from(st as u32) << 32) | u64::from(n),
                    Ordering::Release,
                );
                c2.send_done.store(true, Ordering::Release);
                if c2.wake.request() {
                    c2.runq.fetch_add(1, Ordering::SeqCst);
                }
            }
        });

        // The submitter, after IoCallDriver returned.
        let mut committed_inline = false;
        if let Some(Finisher::Submitter) = refs.submitted() {
            finished.fetch_add(1, Ordering::SeqCst);
            assert_eq!(
                refs.result(),
                (status, bytes),
                "submitter sees the recorded status"
            );
            committed_inline = true;
        }
        completion.join().unwrap();

        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "exactly one side finishes"
        );
        assert_eq!(refs.refs(), 0);
        if !committed_inline {
            // Parked: the completion routine must have queued the connection with the result.
            assert!(conn.send_done.load(Ordering::Acquire));
            assert_eq!(
                conn.runq.load(Ordering::SeqCst),
                1,
                "parked connection re-activated"
            );
            conn.wake.begin_pass();
            let v = conn.send_result.load(Ordering::Acquire);
            assert_eq!(((v >> 32) as u32 as i32, v as u32), (status, bytes));
        }
    });
}

#[test]
fn send_two_references_success() {
    send_model(STATUS_SUCCESS, 4096);
}

#[test]
fn send_two_references_error() {
    send_model(STATUS_CONNECTION_RESET, 0);
}

/// A queued TSDU for the model: bytes and a read offset.
struct Chunk {
    data: Vec<u8>,
    off: usize,
}

impl TsduEntry for Chunk {
    fn data(&self) -> &[u8] {
        &self.data[self.off..]
    }
    fn consume(&mut self, n: usize) {
        self.off += n;
    }
    fn remaining(&self) -> usize {
        self.data.len() - self.off
    }
}

struct RxConn {
    wake: Wake,
    rx: TsduQueue<Chunk>,
    runq: AtomicUsize,
}

impl RxConn {
    /// Producer side: publish, then wake (as `Conn::wake`).
    fn wake(&self) {
        if self.wake.request() {
            self.runq.fetch_add(1, Ordering::SeqCst);
        }
    }
    /// Consumer side: take the connection from the run queue if it is there.
    fn dequeue(&self) -> bool {
        self.runq
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
    /// One scheduler pass: drains the queue into `out` (the "engine"), taking at most
    /// `budget` bytes per pass (a stalled engine puts the rest back with `unpop`).
    fn pass(&self, out: &mut Vec<u8>, eof: &mut bool, budget: usize) {
        self.wake.begin_pass();
        let mut left = budget;
        while let Some(mut e) = self.rx.pop() {
            let take = e.data().len().min(left);
            out.extend_from_slice(&e.data()[..take]);
            e.consume(take);
            left -= take;
            if e.remaining() > 0 {
                assert!(self.rx.unpop(e).is_ok());
                // The engine will ask for more (Action::Receive): another pass.
                self.wake_again();
                return;
            }
        }
        if self.rx.state().entries == 0 && self.rx.state().end.eof {
            *eof = true;
        }
    }
    fn wake_again(&self) {
        if self.wake.request() {
            self.runq.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[test]
fn tsdu_producer_consumer_handoff() {
    loom::model(|| {
        let c = Arc::new(RxConn {
            wake: Wake::new(false),
            rx: TsduQueue::new(1 << 20, 1 << 18),
            runq: AtomicUsize::new(0),
        });
        let p = c.clone();
        // The receive handler (DISPATCH_LEVEL): two indications, then the peer's FIN.
        let producer = thread::spawn(move || {
            for chunk in [vec![1u8, 2], vec![3u8]] {
                assert!(p
                    .rx
                    .push(Chunk {
                        data: chunk,
                        off: 0
                    })
                    .is_ok());
                p.wake();
            }
            p.rx.set_eof();
            p.wake();
        });
        // The scheduler: passes whenever the connection is queued.
        let mut out = Vec::new();
        let mut eof = false;
        for _ in 0..2 {
            if c.dequeue() {
                c.pass(&mut out, &mut eof, 2);
            } else {
                thread::yield_now();
            }
        }
        producer.join().unwrap();
        // Whatever is left must have left the connection queued: finish the passes.
        let mut passes = 0;
        while c.dequeue() {
            c.pass(&mut out, &mut eof, 2);
            passes += 1;
            assert!(passes < 10);
        }
        assert_eq!(
            out,
            vec![1, 2, 3],
            "every byte delivered, in order (no lost wake-up); queue {:?}",
            c.rx.state()
        );
        assert!(eof, "end of stream delivered after the data");
        assert_eq!(c.rx.state().bytes, 0);
    });
}

#[test]
fn tsdu_flow_control_pull() {
    loom::model(|| {
        // Limit 2 bytes, low water 1: the second indication is refused and pulled later.
        let c = Arc::new(RxConn {
            wake: Wake::new(false),
            rx: TsduQueue::new(2, 1),
            runq: AtomicUsize::new(0),
        });
        let p = c.clone();
        let producer = thread::spawn(move || {
            if !p.rx.refuse_indication() {
                assert!(p
                    .rx
                    .push(Chunk {
                        data: vec![1, 2],
                        off: 0
                    })
                    .is_ok());
                p.wake();
            }
            // The transport indicates again; over the limit (unless drained) it is refused.
            if p.rx.refuse_indication() {
                p.wake();
                false
            } else {
                assert!(p
                    .rx
                    .push(Chunk {
                        data: vec![3],
                        off: 0
                    })
                    .is_ok());
                p.wake();
                true
            }
        });
        let mut out = Vec::new();
        let mut eof = false;
        if c.dequeue() {
            c.pass(&mut out, &mut eof, 8);
        }
        let accepted = producer.join().unwrap();
        while c.dequeue() {
            c.pass(&mut out, &mut eof, 8);
        }
        if !accepted {
            // Withheld at the transport: the drained queue asks for a pull, whose completion
            // appends the data.
            assert!(c.rx.take_withheld(), "withheld data is pulled once drained");
            assert!(c
                .rx
                .receive_done(Some(Chunk {
                    data: vec![3],
                    off: 0
                }))
                .is_ok());
            c.wake();
            while c.dequeue() {
                c.pass(&mut out, &mut eof, 8);
            }
        }
        assert_eq!(out, vec![1, 2, 3]);
        assert!(!c.rx.take_withheld());
    });
}
