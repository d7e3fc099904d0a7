//! The socklnd checksum: Linux `crc32_le` — reflected CRC-32 (polynomial 0xEDB88320), seed
//! 0xFFFFFFFF, **no final inversion** (= bitwise NOT of zlib's crc32) (spec §4.7).

/// The seed every checksum starts from.
pub const CRC32_SEED: u32 = 0xFFFF_FFFF;

/// Continues a CRC over `data`. `crc32_le(CRC32_SEED, b"123456789") == 0x340BC6D9`.
pub fn crc32_le(crc: u32, data: &[u8]) -> u32 {
    todo!("wire helper {crc} {}", data.len())
}
