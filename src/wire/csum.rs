//! The socklnd checksum: Linux `crc32_le` — reflected CRC-32 (polynomial 0xEDB88320), seed
//! 0xFFFFFFFF, **no final inversion** (= bitwise NOT of zlib's crc32) (spec §4.7).

/// The seed every checksum starts from.
pub const CRC32_SEED: u32 = 0xFFFF_FFFF;

/// The reflected CRC-32 polynomial (IEEE 802.3, bit-reversed).
pub const CRC32_POLY_REFLECTED: u32 = 0xEDB8_8320;

/// One table entry per byte value: the CRC register after shifting that byte through eight
/// rounds of the reflected polynomial. Built at compile time so the kernel build carries no
/// initialisation code and no mutable state.
const CRC32_TABLE: [u32; 256] = build_table();

const fn build_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut byte: usize = 0;
    while byte < 256 {
        let mut reg = byte as u32;
        let mut round: u32 = 0;
        while round < 8 {
            reg = if reg & 1 != 0 {
                (reg >> 1) ^ CRC32_POLY_REFLECTED
            } else {
                reg >> 1
            };
            round = round.wrapping_add(1);
        }
        // `get_mut` is not callable in a const fn on this toolchain. This function only runs
        // inside the `CRC32_TABLE` initialiser, i.e. in the compiler: an out-of-range index
        // would be a build error, never a runtime panic.
        #[allow(clippy::indexing_slicing)]
        {
            table[byte] = reg;
        }
        byte = byte.wrapping_add(1);
    }
    table
}

/// Continues a CRC over `data`. `crc32_le(CRC32_SEED, b"123456789") == 0x340BC6D9`.
///
/// Because there is no final inversion, the value returned is also the state to continue
/// from: `crc32_le(crc32_le(s, a), b) == crc32_le(s, a ++ b)`, which is how a receiver
/// accumulates the checksum of a message that arrives in pieces.
pub fn crc32_le(crc: u32, data: &[u8]) -> u32 {
    data.iter().fold(crc, |reg, &b| {
        let index = usize::from((reg as u8) ^ b);
        // The index is a u8, so the lookup cannot miss; `get` keeps the no-indexing rule.
        let entry = CRC32_TABLE.get(index).copied().unwrap_or(0);
        (reg >> 8) ^ entry
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
    use super::*;

    /// Bit-at-a-time reference, independent of the table.
    fn crc32_bitwise(mut crc: u32, data: &[u8]) -> u32 {
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ CRC32_POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn check_value() {
        assert_eq!(crc32_le(CRC32_SEED, b"123456789"), 0x340B_C6D9);
        // The bitwise NOT of zlib's check value 0xCBF43926.
        assert_eq!(!crc32_le(CRC32_SEED, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn empty_input_keeps_state() {
        assert_eq!(crc32_le(CRC32_SEED, &[]), CRC32_SEED);
        assert_eq!(crc32_le(0x1234_5678, &[]), 0x1234_5678);
    }

    #[test]
    fn appendix_a4_noop_csum() {
        let noop = [
            0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(crc32_le(CRC32_SEED, &noop), 0x7FBB_3464);
    }

    #[test]
    fn table_matches_bitwise_and_is_incremental() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 7 + 3) as u8);
        assert_eq!(
            crc32_le(CRC32_SEED, &data),
            crc32_bitwise(CRC32_SEED, &data)
        );
        for split in [0, 1, 17, 150, 299, 300] {
            let (a, b) = data.split_at(split);
            assert_eq!(
                crc32_le(crc32_le(CRC32_SEED, a), b),
                crc32_le(CRC32_SEED, &data)
            );
        }
        assert_eq!(CRC32_TABLE[1], 0x7707_3096);
        assert_eq!(CRC32_TABLE[128], CRC32_POLY_REFLECTED);
    }
}
