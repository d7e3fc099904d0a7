//! Byte order of "sender order" (SO) structures and checked little helpers to read/write integers.
//!
//! The LNet header is always little-endian; the acceptor request, V2/V3 hellos, ksock headers and
//! ping info are written in the sender's order and the receiver detects it from a magic number.

/// The byte order a sender-order structure was (or is to be) written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    /// The order every structure we send uses (Linux x86 nodes send little-endian too).
    pub const WIRE_DEFAULT: Endian = Endian::Little;

    /// Reads a u16 at `off`; `None` if it does not fit.
    pub fn get_u16(self, buf: &[u8], off: usize) -> Option<u16> {
        let b: [u8; 2] = buf.get(off..off.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        })
    }

    /// Reads a u32 at `off`; `None` if it does not fit.
    pub fn get_u32(self, buf: &[u8], off: usize) -> Option<u32> {
        let b: [u8; 4] = buf.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        })
    }

    /// Reads a u64 at `off`; `None` if it does not fit.
    pub fn get_u64(self, buf: &[u8], off: usize) -> Option<u64> {
        let b: [u8; 8] = buf.get(off..off.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        })
    }

    /// Writes a u16 at `off`; `None` if it does not fit.
    pub fn put_u16(self, buf: &mut [u8], off: usize, v: u16) -> Option<()> {
        let b = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        buf.get_mut(off..off.checked_add(2)?)?.copy_from_slice(&b);
        Some(())
    }

    /// Writes a u32 at `off`; `None` if it does not fit.
    pub fn put_u32(self, buf: &mut [u8], off: usize, v: u32) -> Option<()> {
        let b = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        buf.get_mut(off..off.checked_add(4)?)?.copy_from_slice(&b);
        Some(())
    }

    /// Writes a u64 at `off`; `None` if it does not fit.
    pub fn put_u64(self, buf: &mut [u8], off: usize, v: u64) -> Option<()> {
        let b = match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        buf.get_mut(off..off.checked_add(8)?)?.copy_from_slice(&b);
        Some(())
    }
}
