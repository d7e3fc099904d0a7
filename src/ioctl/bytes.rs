//! Checked little-endian field access for the request layouts (x86_64 little-endian ABI).
//!
//! Readers report a short input as [`IoctlError::ShortInput`], writers a short output as
//! [`IoctlError::OutputTooSmall`]; neither can panic.

use super::error::IoctlError;

fn short(buf_len: usize, off: usize, width: usize) -> IoctlError {
    IoctlError::ShortInput {
        need: off.saturating_add(width),
        have: buf_len,
    }
}

fn too_small(buf_len: usize, off: usize, width: usize) -> IoctlError {
    IoctlError::OutputTooSmall {
        need: off.saturating_add(width),
        have: buf_len,
    }
}

pub(crate) fn get_u32(buf: &[u8], off: usize) -> Result<u32, IoctlError> {
    buf.get(off..)
        .and_then(|s| s.first_chunk::<4>())
        .map(|b| u32::from_le_bytes(*b))
        .ok_or_else(|| short(buf.len(), off, 4))
}

pub(crate) fn get_u64(buf: &[u8], off: usize) -> Result<u64, IoctlError> {
    buf.get(off..)
        .and_then(|s| s.first_chunk::<8>())
        .map(|b| u64::from_le_bytes(*b))
        .ok_or_else(|| short(buf.len(), off, 8))
}

pub(crate) fn put_u32(buf: &mut [u8], off: usize, v: u32) -> Result<(), IoctlError> {
    let len = buf.len();
    let slot = buf
        .get_mut(off..)
        .and_then(|s| s.first_chunk_mut::<4>())
        .ok_or_else(|| too_small(len, off, 4))?;
    *slot = v.to_le_bytes();
    Ok(())
}

pub(crate) fn put_u64(buf: &mut [u8], off: usize, v: u64) -> Result<(), IoctlError> {
    let len = buf.len();
    let slot = buf
        .get_mut(off..)
        .and_then(|s| s.first_chunk_mut::<8>())
        .ok_or_else(|| too_small(len, off, 8))?;
    *slot = v.to_le_bytes();
    Ok(())
}

/// Copies `src` to the start of `dst`; `OutputTooSmall` if it does not fit.
pub(crate) fn copy_prefix(dst: &mut [u8], src: &[u8]) -> Result<(), IoctlError> {
    let have = dst.len();
    let slot = dst.get_mut(..src.len()).ok_or(IoctlError::OutputTooSmall {
        need: src.len(),
        have,
    })?;
    slot.copy_from_slice(src);
    Ok(())
}

/// Zeroes the first `len` bytes of `dst`; `OutputTooSmall` if it is shorter.
pub(crate) fn zero_prefix(dst: &mut [u8], len: usize) -> Result<(), IoctlError> {
    let have = dst.len();
    dst.get_mut(..len)
        .ok_or(IoctlError::OutputTooSmall { need: len, have })?
        .fill(0);
    Ok(())
}
