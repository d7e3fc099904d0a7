//! The LNet-era request (Lustre 1.6/1.8 "B18", unchanged in HEAD for the socklnd commands):
//! `libcfs_ioctl_data` (128 bytes) followed by up to two inline buffers.
//!
//! ## Layout and rules
//!
//! ```text
//! offset 0                         libcfs_ioctl_data (128 bytes)
//! offset 128                       inline buffer 1 (ioc_inllen1 bytes), padded to a multiple of 8
//! offset 128 + round8(inllen1)     inline buffer 2 (ioc_inllen2 bytes), padded to a multiple of 8
//! ioc_len = 128 + round8(inllen1) + round8(inllen2)
//! ```
//!
//! - `ioc_len` must equal the input buffer length **and** the packed length above (computed in
//!   64 bits, so `inllen1 = u32::MAX` is a clean error, not an overflow), and be at most
//!   [`MAX_REQUEST_LEN`].
//! - `ioc_version` must be [`LIBCFS_IOCTL_VERSION`]. [`LNET_IOCTL_VERSION2`] belongs to HEAD's
//!   DLC configuration structures, which have a different layout, and is refused.
//! - The pointer fields `ioc_inlbuf1/2` are **ignored**, as libcfs itself recomputes them from
//!   the inline data: a ported `lctl` may leave its user-space addresses there.
//! - `ioc_plen1`/`ioc_plen2` must be 0: an out-of-band buffer would be reachable only through the
//!   user pointers `ioc_pbuf1/2`, which a driver must never follow (nothing tdinal implements
//!   needs one; `IOC_LIBCFS_PING` did).
//! - Which other fields a command uses is decided per command (`command.rs`); unused ones must
//!   be 0, inline lengths included. Padding bytes are ignored.

use core::mem::{offset_of, size_of};

use static_assertions::const_assert_eq;

use super::bytes::{copy_prefix, get_u32, get_u64, put_u32, put_u64, zero_prefix};
use super::error::IoctlError;
use super::MAX_REQUEST_LEN;

/// `LIBCFS_IOCTL_VERSION` (HEAD: `LNET_IOCTL_VERSION`).
pub const LIBCFS_IOCTL_VERSION: u32 = 0x0001_000a;
/// HEAD's `LNET_IOCTL_VERSION2`, used by the DLC config structs; not a `libcfs_ioctl_data`.
pub const LNET_IOCTL_VERSION2: u32 = 0x0001_000b;
/// `sizeof(struct libcfs_ioctl_data)` on x86_64 (the inline bulk starts here).
pub const LIBCFS_IOCTL_DATA_LEN: usize = 128;
/// Inline buffers are padded to this alignment (`cfs_size_round`).
pub const INLINE_ALIGN: u64 = 8;

/// `struct libcfs_ioctl_data` with its x86_64 layout (pointers as `u64`); `#[repr(C)]` so the
/// asserts below check the spec's offsets against the C layout rules.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LibcfsIoctlData {
    pub ioc_len: u32,
    pub ioc_version: u32,
    pub ioc_nid: u64,
    pub ioc_u64: [u64; 1],
    pub ioc_flags: u32,
    pub ioc_count: u32,
    pub ioc_net: u32,
    pub ioc_u32: [u32; 7],
    pub ioc_inllen1: u32,
    pub ioc_inlbuf1: u64,
    pub ioc_inllen2: u32,
    pub ioc_inlbuf2: u64,
    pub ioc_plen1: u32,
    pub ioc_pbuf1: u64,
    pub ioc_plen2: u32,
    pub ioc_pbuf2: u64,
}

/// Field offsets of `libcfs_ioctl_data` (spec §7.2).
pub mod off {
    pub const LEN: usize = 0;
    pub const VERSION: usize = 4;
    pub const NID: usize = 8;
    pub const U64: usize = 16;
    pub const FLAGS: usize = 24;
    pub const COUNT: usize = 28;
    pub const NET: usize = 32;
    pub const U32: usize = 36;
    /// Offsets of `ioc_u32[0..7]`.
    pub const U32_N: [usize; 7] = [36, 40, 44, 48, 52, 56, 60];
    pub const INLLEN1: usize = 64;
    pub const INLBUF1: usize = 72;
    pub const INLLEN2: usize = 80;
    pub const INLBUF2: usize = 88;
    pub const PLEN1: usize = 96;
    pub const PBUF1: usize = 104;
    pub const PLEN2: usize = 112;
    pub const PBUF2: usize = 120;
    pub const BULK: usize = 128;
}

const_assert_eq!(size_of::<LibcfsIoctlData>(), LIBCFS_IOCTL_DATA_LEN);
const_assert_eq!(off::BULK, LIBCFS_IOCTL_DATA_LEN);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_len), off::LEN);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_version), off::VERSION);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_nid), off::NID);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_u64), off::U64);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_flags), off::FLAGS);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_count), off::COUNT);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_net), off::NET);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_u32), off::U32);
const_assert_eq!(off::U32_N[0], off::U32);
const_assert_eq!(off::U32_N[6].wrapping_add(4), off::INLLEN1);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_inllen1), off::INLLEN1);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_inlbuf1), off::INLBUF1);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_inllen2), off::INLLEN2);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_inlbuf2), off::INLBUF2);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_plen1), off::PLEN1);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_pbuf1), off::PBUF1);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_plen2), off::PLEN2);
const_assert_eq!(offset_of!(LibcfsIoctlData, ioc_pbuf2), off::PBUF2);

/// Field names of `ioc_u32[i]`, for error messages.
const U32_NAMES: [&str; 7] = [
    "ioc_u32[0]",
    "ioc_u32[1]",
    "ioc_u32[2]",
    "ioc_u32[3]",
    "ioc_u32[4]",
    "ioc_u32[5]",
    "ioc_u32[6]",
];

/// Bits naming the command-specific fields (see `LibcfsIoctlData::command_fields`).
pub(crate) mod field {
    pub const NID: u32 = 1 << 0;
    pub const U64_0: u32 = 1 << 1;
    pub const FLAGS: u32 = 1 << 2;
    pub const COUNT: u32 = 1 << 3;
    pub const NET: u32 = 1 << 4;
    pub const INLLEN1: u32 = 1 << 5;
    pub const INLLEN2: u32 = 1 << 6;
    /// `ioc_u32[i]` is bit `U32_0 << i`.
    pub const U32_0: u32 = 1 << 8;
    pub const U32_1: u32 = 1 << 9;
    pub const U32_2: u32 = 1 << 10;
    pub const U32_3: u32 = 1 << 11;
    pub const U32_4: u32 = 1 << 12;
    pub const U32_5: u32 = 1 << 13;
    pub const U32_6: u32 = 1 << 14;
    pub const U32_BITS: [u32; 7] = [U32_0, U32_1, U32_2, U32_3, U32_4, U32_5, U32_6];
}

impl LibcfsIoctlData {
    /// A zeroed request with the right version (Lustre's `LIBCFS_IOC_INIT`); `ioc_len` is set
    /// by [`pack`].
    pub fn new() -> LibcfsIoctlData {
        LibcfsIoctlData {
            ioc_version: LIBCFS_IOCTL_VERSION,
            ..LibcfsIoctlData::default()
        }
    }

    /// Reads the 128-byte structure from the start of `buf` (no validation).
    pub fn read(buf: &[u8]) -> Result<LibcfsIoctlData, IoctlError> {
        if buf.len() < LIBCFS_IOCTL_DATA_LEN {
            return Err(IoctlError::ShortInput {
                need: LIBCFS_IOCTL_DATA_LEN,
                have: buf.len(),
            });
        }
        let mut u32s = [0u32; 7];
        for (slot, o) in u32s.iter_mut().zip(off::U32_N) {
            *slot = get_u32(buf, o)?;
        }
        Ok(LibcfsIoctlData {
            ioc_len: get_u32(buf, off::LEN)?,
            ioc_version: get_u32(buf, off::VERSION)?,
            ioc_nid: get_u64(buf, off::NID)?,
            ioc_u64: [get_u64(buf, off::U64)?],
            ioc_flags: get_u32(buf, off::FLAGS)?,
            ioc_count: get_u32(buf, off::COUNT)?,
            ioc_net: get_u32(buf, off::NET)?,
            ioc_u32: u32s,
            ioc_inllen1: get_u32(buf, off::INLLEN1)?,
            ioc_inlbuf1: get_u64(buf, off::INLBUF1)?,
            ioc_inllen2: get_u32(buf, off::INLLEN2)?,
            ioc_inlbuf2: get_u64(buf, off::INLBUF2)?,
            ioc_plen1: get_u32(buf, off::PLEN1)?,
            ioc_pbuf1: get_u64(buf, off::PBUF1)?,
            ioc_plen2: get_u32(buf, off::PLEN2)?,
            ioc_pbuf2: get_u64(buf, off::PBUF2)?,
        })
    }

    /// Writes the 128 bytes to the start of `out` (padding zeroed), as they are: no field is
    /// recomputed (see [`pack`] for that).
    pub fn write(&self, out: &mut [u8]) -> Result<(), IoctlError> {
        zero_prefix(out, LIBCFS_IOCTL_DATA_LEN)?;
        put_u32(out, off::LEN, self.ioc_len)?;
        put_u32(out, off::VERSION, self.ioc_version)?;
        put_u64(out, off::NID, self.ioc_nid)?;
        let [u64_0] = self.ioc_u64;
        put_u64(out, off::U64, u64_0)?;
        put_u32(out, off::FLAGS, self.ioc_flags)?;
        put_u32(out, off::COUNT, self.ioc_count)?;
        put_u32(out, off::NET, self.ioc_net)?;
        for (v, o) in self.ioc_u32.iter().zip(off::U32_N) {
            put_u32(out, o, *v)?;
        }
        put_u32(out, off::INLLEN1, self.ioc_inllen1)?;
        put_u64(out, off::INLBUF1, self.ioc_inlbuf1)?;
        put_u32(out, off::INLLEN2, self.ioc_inllen2)?;
        put_u64(out, off::INLBUF2, self.ioc_inlbuf2)?;
        put_u32(out, off::PLEN1, self.ioc_plen1)?;
        put_u64(out, off::PBUF1, self.ioc_pbuf1)?;
        put_u32(out, off::PLEN2, self.ioc_plen2)?;
        put_u64(out, off::PBUF2, self.ioc_pbuf2)?;
        Ok(())
    }

    /// The command-specific fields as (name, value, bit), for the "unused must be 0" check.
    pub(crate) fn command_fields(&self) -> [(&'static str, u64, u32); 14] {
        let [u64_0] = self.ioc_u64;
        let [a, b, c, d, e, f, g] = self.ioc_u32;
        let [n0, n1, n2, n3, n4, n5, n6] = U32_NAMES;
        let [b0, b1, b2, b3, b4, b5, b6] = field::U32_BITS;
        [
            ("ioc_nid", self.ioc_nid, field::NID),
            ("ioc_u64[0]", u64_0, field::U64_0),
            ("ioc_flags", u64::from(self.ioc_flags), field::FLAGS),
            ("ioc_count", u64::from(self.ioc_count), field::COUNT),
            ("ioc_net", u64::from(self.ioc_net), field::NET),
            ("ioc_inllen1", u64::from(self.ioc_inllen1), field::INLLEN1),
            ("ioc_inllen2", u64::from(self.ioc_inllen2), field::INLLEN2),
            (n0, u64::from(a), b0),
            (n1, u64::from(b), b1),
            (n2, u64::from(c), b2),
            (n3, u64::from(d), b3),
            (n4, u64::from(e), b4),
            (n5, u64::from(f), b5),
            (n6, u64::from(g), b6),
        ]
    }
}

/// `x` rounded up to a multiple of 8, in 64 bits (cannot overflow for a `u32` input).
pub const fn round8(x: u32) -> u64 {
    (x as u64).saturating_add(INLINE_ALIGN - 1) & !(INLINE_ALIGN - 1)
}

/// `128 + round8(inllen1) + round8(inllen2)`, computed without overflow.
pub const fn packed_len(inllen1: u32, inllen2: u32) -> u64 {
    (LIBCFS_IOCTL_DATA_LEN as u64)
        .saturating_add(round8(inllen1))
        .saturating_add(round8(inllen2))
}

/// An LNet-era request whose envelope has been validated; the inline buffers borrow the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LibcfsRequest<'a> {
    pub data: LibcfsIoctlData,
    pub inlbuf1: &'a [u8],
    pub inlbuf2: &'a [u8],
}

/// Validates the envelope of an LNet-era request (the rules in the module docs).
pub fn parse_request(input: &[u8]) -> Result<LibcfsRequest<'_>, IoctlError> {
    let have = input.len();
    if have < LIBCFS_IOCTL_DATA_LEN {
        return Err(IoctlError::ShortInput {
            need: LIBCFS_IOCTL_DATA_LEN,
            have,
        });
    }
    let data = LibcfsIoctlData::read(input)?;
    if data.ioc_len as usize != have {
        return Err(IoctlError::LengthMismatch {
            ioc_len: data.ioc_len,
            buffer: have,
        });
    }
    if have > MAX_REQUEST_LEN {
        return Err(IoctlError::TooLong {
            len: have,
            max: MAX_REQUEST_LEN,
        });
    }
    if data.ioc_version != LIBCFS_IOCTL_VERSION {
        return Err(IoctlError::BadVersion {
            field: "ioc_version",
            got: data.ioc_version,
            expected: LIBCFS_IOCTL_VERSION,
        });
    }
    let packed = packed_len(data.ioc_inllen1, data.ioc_inllen2);
    if packed != u64::from(data.ioc_len) {
        return Err(IoctlError::PackedLengthMismatch {
            inllen1: data.ioc_inllen1,
            inllen2: data.ioc_inllen2,
            packed,
            ioc_len: data.ioc_len,
        });
    }
    for (name, v) in [("ioc_plen1", data.ioc_plen1), ("ioc_plen2", data.ioc_plen2)] {
        if v != 0 {
            return Err(IoctlError::InvalidField {
                field: name,
                value: u64::from(v),
                expected: "0: out-of-band buffers behind ioc_pbuf1/2 are never followed",
            });
        }
    }
    // `packed == ioc_len == have <= MAX_REQUEST_LEN`, so these conversions and ranges are in
    // bounds; `get` keeps it that way even if the arithmetic above were wrong.
    let start1 = LIBCFS_IOCTL_DATA_LEN;
    let start2 = usize::try_from(round8(data.ioc_inllen1))
        .ok()
        .and_then(|r| r.checked_add(start1));
    let inlbuf1 = start1
        .checked_add(data.ioc_inllen1 as usize)
        .and_then(|end| input.get(start1..end));
    let inlbuf2 = start2.and_then(|s| {
        s.checked_add(data.ioc_inllen2 as usize)
            .and_then(|end| input.get(s..end))
    });
    match (inlbuf1, inlbuf2) {
        (Some(inlbuf1), Some(inlbuf2)) => Ok(LibcfsRequest {
            data,
            inlbuf1,
            inlbuf2,
        }),
        _ => Err(IoctlError::PackedLengthMismatch {
            inllen1: data.ioc_inllen1,
            inllen2: data.ioc_inllen2,
            packed,
            ioc_len: data.ioc_len,
        }),
    }
}

/// Packs `data` and the inline buffers into `out` the way libcfs does: `ioc_len`,
/// `ioc_inllen1/2` computed, pointers 0, each inline buffer padded with zeros to 8 bytes.
/// Every other field (the version included) is written as given. Returns `ioc_len`.
pub fn pack(
    data: &LibcfsIoctlData,
    inlbuf1: &[u8],
    inlbuf2: &[u8],
    out: &mut [u8],
) -> Result<usize, IoctlError> {
    let too_long = |len: usize| IoctlError::TooLong {
        len,
        max: MAX_REQUEST_LEN,
    };
    let inllen1 = u32::try_from(inlbuf1.len()).map_err(|_| too_long(inlbuf1.len()))?;
    let inllen2 = u32::try_from(inlbuf2.len()).map_err(|_| too_long(inlbuf2.len()))?;
    let len64 = packed_len(inllen1, inllen2);
    let len = usize::try_from(len64)
        .ok()
        .filter(|l| *l <= MAX_REQUEST_LEN)
        .ok_or(too_long(usize::try_from(len64).unwrap_or(usize::MAX)))?;
    if out.len() < len {
        return Err(IoctlError::OutputTooSmall {
            need: len,
            have: out.len(),
        });
    }
    let mut d = *data;
    d.ioc_len = len as u32;
    d.ioc_inllen1 = inllen1;
    d.ioc_inllen2 = inllen2;
    d.ioc_inlbuf1 = 0;
    d.ioc_inlbuf2 = 0;
    d.ioc_pbuf1 = 0;
    d.ioc_pbuf2 = 0;
    zero_prefix(out, len)?;
    d.write(out)?;
    let start2 = usize::try_from(round8(inllen1))
        .ok()
        .and_then(|r| r.checked_add(LIBCFS_IOCTL_DATA_LEN))
        .ok_or(too_long(len))?;
    copy_prefix(
        out.get_mut(LIBCFS_IOCTL_DATA_LEN..).unwrap_or_default(),
        inlbuf1,
    )?;
    copy_prefix(out.get_mut(start2..).unwrap_or_default(), inlbuf2)?;
    Ok(len)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    #[test]
    fn round8_and_packed_len() {
        assert_eq!(round8(0), 0);
        assert_eq!(round8(1), 8);
        assert_eq!(round8(8), 8);
        assert_eq!(round8(9), 16);
        assert_eq!(round8(u32::MAX), 0x1_0000_0000);
        assert_eq!(packed_len(0, 0), 128);
        assert_eq!(packed_len(5, 3), 144);
        assert_eq!(packed_len(u32::MAX, u32::MAX), 128 + 2 * 0x1_0000_0000);
    }

    #[test]
    fn pack_then_parse_with_inline_buffers() {
        let mut out = [0xAAu8; 256];
        let len = pack(&LibcfsIoctlData::new(), b"hello", b"xyz", &mut out).unwrap();
        assert_eq!(len, 128 + 8 + 8);
        let req = parse_request(&out[..len]).unwrap();
        assert_eq!(req.inlbuf1, b"hello");
        assert_eq!(req.inlbuf2, b"xyz");
        assert_eq!(&out[133..136], &[0, 0, 0], "inline padding is zeroed");
        assert_eq!(&out[136..139], b"xyz");
    }

    #[test]
    fn pointers_are_ignored() {
        let mut out = [0u8; 128];
        pack(&LibcfsIoctlData::new(), b"", b"", &mut out).unwrap();
        for o in [off::INLBUF1, off::INLBUF2, off::PBUF1, off::PBUF2] {
            out[o..o + 8].copy_from_slice(&0xffff_8000_dead_beef_u64.to_le_bytes());
        }
        assert!(parse_request(&out).is_ok());
    }
}
