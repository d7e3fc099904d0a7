//! A connection's receive state machine (spec §5.1–5.4): ksock header (V2/V3), LNet header,
//! waiting for the upper layer, payload into the upper layer's sink, slop. It accepts the byte
//! stream in any chunking, one byte at a time included, and reports each step to the engine.

use super::payload::RxSink;
use super::proto::Protocol;
use super::types::Error;
use crate::wire::csum::{crc32_le, CRC32_SEED};
use crate::wire::ksock::{KSOCK_CSUM_OFFSET, KSOCK_HDR_SIZE};
use crate::wire::lnet::LNET_HDR_SIZE;
use crate::wire::{Endian, KsockHdr, KsockMsgType, LnetHdr, WireError};

/// Size of the scratch buffer slop is read into.
pub const SLOP_CHUNK: usize = 4096;

/// Both headers of a V2/V3 LNet message: what one read asks for at a message start.
const HDRS: usize = KSOCK_HDR_SIZE + LNET_HDR_SIZE;

/// Where the receive side is.
///
/// Both headers are read into one buffer: at a message start the runtime is offered room for
/// the ksock header and the LNet header together (one read instead of two for every message).
/// When the message turns out to be a 24-byte NOOP, the bytes read after it are the next
/// headers (never payload: 72 bytes after a NOOP cannot reach past the next message's 96 header
/// bytes); they move to the front and are parsed in turn.
pub enum RxState<S> {
    /// Reading the 24-byte ksock header (V2/V3 message start).
    KsmHeader,
    /// Reading the 72-byte LNet header (V1 message start; V2/V3 after an LNET ksock header).
    LnetHeader,
    /// The header went up; waiting for the upper layer to say where the payload goes.
    ParseWait,
    /// Reading the payload: the first `mlen` bytes into `sink`, the rest of `rlen` is slop.
    Payload {
        sink: Option<S>,
        mlen: u32,
        rlen: u32,
        got: u32,
    },
}

/// What one step of the receive side produced.
pub enum RxItem<S> {
    /// A NOOP header (ZC-ACKs or keepalive), checksum verified.
    Noop(KsockHdr),
    /// An LNet header, for the upper layer. The state is now `ParseWait`.
    Header(KsockHdr, LnetHdr),
    /// The payload is complete (`csum_ok` false: checksum mismatch, the message fails).
    Done {
        ksock: KsockHdr,
        sink: Option<S>,
        mlen: u32,
        csum: Result<(), (u32, u32)>,
    },
    /// The stream is broken: close the connection.
    Fail(Error),
}

/// The receive side of one connection.
pub struct Rx<S> {
    pub state: RxState<S>,
    /// The message's headers from its first byte: ksock header (V2/V3) then LNet header.
    hbuf: [u8; HDRS],
    /// Where the LNet header starts in `hbuf` (0 on V1, 24 on V2/V3); its end is where
    /// reading the headers stops.
    lnet_at: usize,
    have: usize,
    ksock: KsockHdr,
    crc: u32,
    /// Inside a message (EOF now would be a protocol error).
    pub mid_message: bool,
}

impl<S: RxSink> Rx<S> {
    pub fn new(proto: &Protocol) -> Rx<S> {
        Rx {
            state: if proto.ksock_header {
                RxState::KsmHeader
            } else {
                RxState::LnetHeader
            },
            hbuf: [0; HDRS],
            lnet_at: if proto.ksock_header {
                KSOCK_HDR_SIZE
            } else {
                0
            },
            have: 0,
            ksock: KsockHdr::lnet(),
            crc: CRC32_SEED,
            mid_message: false,
        }
    }

    fn next_message(&mut self, proto: &Protocol) {
        self.state = if proto.ksock_header {
            RxState::KsmHeader
        } else {
            RxState::LnetHeader
        };
        self.have = 0;
        self.crc = CRC32_SEED;
        self.ksock = KsockHdr::lnet();
        self.mid_message = false;
    }

    /// Where the next received bytes should go. Empty while waiting for the upper layer.
    pub fn buffer<'a>(&'a mut self, scratch: &'a mut [u8; SLOP_CHUNK]) -> &'a mut [u8] {
        match &mut self.state {
            RxState::KsmHeader | RxState::LnetHeader => {
                let end = self.lnet_at.saturating_add(LNET_HDR_SIZE);
                self.hbuf.get_mut(self.have..end).unwrap_or(&mut [])
            }
            RxState::ParseWait => &mut [],
            RxState::Payload {
                sink,
                mlen,
                rlen,
                got,
            } => {
                if *got < *mlen {
                    if let Some(s) = sink {
                        let want = mlen.saturating_sub(*got) as usize;
                        let r = s.region_mut(*got as usize);
                        let k = r.len().min(want);
                        return r.get_mut(..k).unwrap_or(&mut []);
                    }
                }
                let k = (rlen.saturating_sub(*got) as usize).min(SLOP_CHUNK);
                scratch.get_mut(..k).unwrap_or(&mut [])
            }
        }
    }

    /// Records `n` bytes received into the region [`Rx::buffer`] returned; reports what that
    /// completed. `endian` is the connection's order (from the hello).
    pub fn commit(
        &mut self,
        n: usize,
        proto: &Protocol,
        endian: Endian,
        scratch: &[u8; SLOP_CHUNK],
    ) -> Option<RxItem<S>> {
        if n == 0 {
            return None;
        }
        self.mid_message = true;
        match &mut self.state {
            RxState::KsmHeader | RxState::LnetHeader => {
                self.have = self.have.saturating_add(n);
                self.parse_headers(proto, endian)
            }
            RxState::ParseWait => None,
            RxState::Payload {
                sink,
                mlen,
                rlen,
                got,
            } => {
                let k = u32::try_from(n).unwrap_or(u32::MAX);
                if self.ksock.csum != 0 {
                    let bytes: &[u8] = if *got < *mlen {
                        match sink {
                            Some(s) => s.region(*got as usize).get(..n).unwrap_or(&[]),
                            None => &[],
                        }
                    } else {
                        scratch.get(..n).unwrap_or(&[])
                    };
                    self.crc = crc32_le(self.crc, bytes);
                }
                *got = got.saturating_add(k);
                if *got < *rlen {
                    return None;
                }
                let (sink, mlen, rlen) = (sink.take(), *mlen, *rlen);
                let ksock = self.ksock;
                // Discarded or truncated payloads are not checked (the bytes were not all kept).
                let csum = if ksock.csum != 0
                    && sink.is_some()
                    && mlen == rlen
                    && self.crc != ksock.csum
                {
                    Err((ksock.csum, self.crc))
                } else {
                    Ok(())
                };
                self.next_message(proto);
                Some(RxItem::Done {
                    ksock,
                    sink,
                    mlen,
                    csum,
                })
            }
        }
    }

    /// The next item complete in the header bytes already received: after [`Rx::commit`] gave
    /// a NOOP, the headers read together with it. `None` when more bytes are needed (or the
    /// connection waits for the upper layer or is reading a payload).
    pub fn parse_headers(&mut self, proto: &Protocol, endian: Endian) -> Option<RxItem<S>> {
        if let RxState::KsmHeader = self.state {
            let kbuf: [u8; KSOCK_HDR_SIZE] = match self.hbuf.get(..KSOCK_HDR_SIZE) {
                Some(k) if self.have >= KSOCK_HDR_SIZE => k.try_into().ok()?,
                _ => return None,
            };
            let hdr = match KsockHdr::decode(&kbuf, endian) {
                Ok(h) => h,
                Err(WireError::BadKsockType(_)) => {
                    return Some(RxItem::Fail(Error::Protocol("unknown ksock message type")))
                }
                Err(_) => return Some(RxItem::Fail(Error::Protocol("bad ksock header"))),
            };
            self.ksock = hdr;
            if hdr.csum != 0 && proto.csum_covers_headers {
                let mut zeroed = kbuf;
                if let Some(c) =
                    zeroed.get_mut(KSOCK_CSUM_OFFSET..KSOCK_CSUM_OFFSET.saturating_add(4))
                {
                    c.fill(0);
                }
                self.crc = crc32_le(CRC32_SEED, &zeroed);
            }
            match hdr.msg_type {
                KsockMsgType::Noop => {
                    if hdr.csum != 0 && self.crc != hdr.csum {
                        let computed = self.crc;
                        return Some(RxItem::Fail(Error::Checksum {
                            wire: hdr.csum,
                            computed,
                        }));
                    }
                    // What was read after the NOOP starts the next message.
                    let rest = self.have.saturating_sub(KSOCK_HDR_SIZE);
                    self.hbuf
                        .copy_within(KSOCK_HDR_SIZE..self.have.min(HDRS), 0);
                    self.next_message(proto);
                    self.have = rest;
                    self.mid_message = rest > 0;
                    return Some(RxItem::Noop(hdr));
                }
                KsockMsgType::Lnet => {
                    self.state = RxState::LnetHeader;
                }
            }
        }
        if let RxState::LnetHeader = self.state {
            let end = self.lnet_at.saturating_add(LNET_HDR_SIZE);
            if self.have < end {
                return None;
            }
            let lbuf = self.hbuf.get(self.lnet_at..end)?;
            let hdr = match LnetHdr::decode(lbuf) {
                Ok(h) => h,
                Err(_) => return Some(RxItem::Fail(Error::Protocol("bad LNet message type"))),
            };
            if hdr.validate().is_err() {
                return Some(RxItem::Fail(Error::Protocol(
                    "LNet header fails lnet_parse checks",
                )));
            }
            if self.ksock.csum != 0 && proto.csum_covers_headers {
                self.crc = crc32_le(self.crc, lbuf);
            }
            self.state = RxState::ParseWait;
            return Some(RxItem::Header(self.ksock, hdr));
        }
        None
    }

    /// The upper layer said where the payload goes (`sink`, up to `mlen` bytes of `rlen`).
    /// Returns an item at once when there is nothing to read (`rlen` = 0).
    pub fn start_payload(
        &mut self,
        sink: Option<S>,
        mlen: u32,
        rlen: u32,
        proto: &Protocol,
    ) -> Option<RxItem<S>> {
        let cap = sink
            .as_ref()
            .map(|s| u32::try_from(s.len()).unwrap_or(u32::MAX))
            .unwrap_or(0);
        let mlen = mlen.min(rlen).min(cap);
        if rlen == 0 {
            let ksock = self.ksock;
            let csum = if ksock.csum != 0 && sink.is_some() && self.crc != ksock.csum {
                Err((ksock.csum, self.crc))
            } else {
                Ok(())
            };
            self.next_message(proto);
            return Some(RxItem::Done {
                ksock,
                sink,
                mlen: 0,
                csum,
            });
        }
        self.state = RxState::Payload {
            sink,
            mlen,
            rlen,
            got: 0,
        };
        None
    }

    pub fn waiting_for_upper(&self) -> bool {
        matches!(self.state, RxState::ParseWait)
    }

    /// Takes what a half-received payload holds (connection closing): `Some(sink)` while a
    /// payload is being received, into a sink or discarded (`Some(None)`), `None` otherwise.
    /// The message was answered and still needs its one `RxDone` either way.
    pub fn take_payload(&mut self) -> Option<Option<S>> {
        match &mut self.state {
            RxState::Payload { sink, .. } => Some(sink.take()),
            _ => None,
        }
    }
}
