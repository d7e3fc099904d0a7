//! Reading the handshake off a stream: the acceptor request (passive side) and the hello (both
//! sides), in any chunking. It only frames and decodes; the decisions are the engine's.

use crate::wire::acceptor::CONNREQ_SIZE;
use crate::wire::hello::{HELLO_V1_SIZE, MAX_INTERFACES};
use crate::wire::{classify_first_word, ConnReq, Endian, FirstWord, Hello, WireError};

/// Largest handshake unit: a V1 hello with a full IP list.
pub const HS_BUF: usize = HELLO_V1_SIZE + 4 * MAX_INTERFACES;

/// What is being read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HsStage {
    /// Passive: the first 4 bytes (acceptor magic?).
    FirstWord,
    /// Passive: the rest of the 16-byte acceptor request.
    ConnReq,
    /// Both: a hello (8 bytes, then its fixed part, then its IP list).
    Hello,
}

/// What the reader completed.
#[derive(Debug)]
pub enum HsItem {
    FirstWord(FirstWord),
    ConnReq(Result<(ConnReq, Endian), WireError>),
    Hello(Result<(Hello, Endian), WireError>),
}

/// Accumulates handshake bytes.
pub struct HsReader {
    pub stage: HsStage,
    buf: [u8; HS_BUF],
    have: usize,
    want: usize,
}

impl HsReader {
    pub fn passive() -> HsReader {
        HsReader {
            stage: HsStage::FirstWord,
            buf: [0; HS_BUF],
            have: 0,
            want: 4,
        }
    }
    pub fn active() -> HsReader {
        HsReader {
            stage: HsStage::Hello,
            buf: [0; HS_BUF],
            have: 0,
            want: 8,
        }
    }

    /// Moves on to reading the hello after the acceptor request.
    pub fn expect_hello(&mut self) {
        self.stage = HsStage::Hello;
        self.have = 0;
        self.want = 8;
    }

    /// Where the next bytes go; never more than the current unit needs, so nothing beyond the
    /// handshake is swallowed.
    pub fn buffer(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.have..self.want).unwrap_or(&mut [])
    }

    pub fn received_any(&self) -> bool {
        self.have > 0 || self.stage != HsStage::FirstWord
    }

    /// Records `n` bytes written into [`HsReader::buffer`].
    pub fn commit(&mut self, n: usize) -> Option<HsItem> {
        self.have = self.have.saturating_add(n).min(self.want);
        if self.have < self.want {
            return None;
        }
        let got = self.buf.get(..self.have).unwrap_or(&[]);
        match self.stage {
            HsStage::FirstWord => {
                let mut w = [0u8; 4];
                w.copy_from_slice(got.get(..4).unwrap_or(&[0; 4]));
                let fw = classify_first_word(w);
                if let FirstWord::AcceptorRequest(_) = fw {
                    self.stage = HsStage::ConnReq;
                    self.want = CONNREQ_SIZE;
                }
                Some(HsItem::FirstWord(fw))
            }
            HsStage::ConnReq => Some(HsItem::ConnReq(ConnReq::decode(got))),
            HsStage::Hello => match Hello::decode(got) {
                Err(WireError::Short { need, .. }) if need > self.have && need <= HS_BUF => {
                    self.want = need;
                    None
                }
                Err(WireError::Short { .. }) => {
                    Some(HsItem::Hello(Err(WireError::TooManyIps(u32::MAX))))
                }
                Ok((h, e, _)) => Some(HsItem::Hello(Ok((h, e)))),
                Err(e) => Some(HsItem::Hello(Err(e))),
            },
        }
    }
}
