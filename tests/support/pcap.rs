//! Classic libpcap files (not pcapng): reading records, writing Ethernet captures.

/// Link-layer types we understand (values from the pcap LINKTYPE registry).
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_RAW: u32 = 101;
pub const LINKTYPE_LINUX_SLL: u32 = 113;
pub const LINKTYPE_IPV4: u32 = 228;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

const MAGIC_USEC: u32 = 0xa1b2_c3d4;
const MAGIC_NSEC: u32 = 0xa1b2_3c4d;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// One captured frame.
#[derive(Clone, Debug)]
pub struct Record {
    /// 0-based index in the file (tshark's frame number minus one).
    pub index: usize,
    pub ts_sec: u32,
    /// Microseconds, or nanoseconds for a nanosecond-resolution file.
    pub ts_frac: u32,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// A whole capture file.
#[derive(Clone, Debug)]
pub struct Capture {
    pub linktype: u32,
    pub nanosecond: bool,
    pub records: Vec<Record>,
}

fn u32_at(b: &[u8], off: usize, big: bool) -> Option<u32> {
    let w: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(if big {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    })
}

/// Parses a classic pcap file written in either byte order, micro- or nanosecond stamps.
pub fn parse(bytes: &[u8]) -> Result<Capture, String> {
    let magic_le = u32_at(bytes, 0, false).ok_or("file shorter than 4 bytes")?;
    let (big, nanosecond) = match magic_le {
        MAGIC_USEC => (false, false),
        MAGIC_NSEC => (false, true),
        m if m.swap_bytes() == MAGIC_USEC => (true, false),
        m if m.swap_bytes() == MAGIC_NSEC => (true, true),
        m => return Err(format!("not a classic pcap file (magic {m:#010x})")),
    };
    if bytes.len() < GLOBAL_HEADER_LEN {
        return Err("truncated pcap global header".into());
    }
    let linktype = u32_at(bytes, 20, big).ok_or("no linktype")? & 0x0fff_ffff;
    let mut records = Vec::new();
    let mut off = GLOBAL_HEADER_LEN;
    while off < bytes.len() {
        let hdr = bytes
            .get(off..off + RECORD_HEADER_LEN)
            .ok_or_else(|| format!("truncated record header at byte {off}"))?;
        let ts_sec = u32_at(hdr, 0, big).unwrap_or(0);
        let ts_frac = u32_at(hdr, 4, big).unwrap_or(0);
        let incl = u32_at(hdr, 8, big).unwrap_or(0) as usize;
        let orig_len = u32_at(hdr, 12, big).unwrap_or(0);
        let start = off + RECORD_HEADER_LEN;
        let data = bytes
            .get(start..start + incl)
            .ok_or_else(|| format!("truncated record data at byte {start}"))?;
        records.push(Record {
            index: records.len(),
            ts_sec,
            ts_frac,
            orig_len,
            data: data.to_vec(),
        });
        off = start + incl;
    }
    Ok(Capture {
        linktype,
        nanosecond,
        records,
    })
}

/// Reads and parses a pcap file.
pub fn read_file(path: &std::path::Path) -> Result<Capture, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Builds a little-endian, microsecond pcap file in memory.
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub fn new(linktype: u32) -> Writer {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC_USEC.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        bytes.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        bytes.extend_from_slice(&262_144u32.to_le_bytes()); // snaplen
        bytes.extend_from_slice(&linktype.to_le_bytes());
        Writer { bytes }
    }

    pub fn push(&mut self, ts_sec: u32, ts_usec: u32, frame: &[u8]) {
        let len = frame.len() as u32;
        self.bytes.extend_from_slice(&ts_sec.to_le_bytes());
        self.bytes.extend_from_slice(&ts_usec.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(frame);
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}
