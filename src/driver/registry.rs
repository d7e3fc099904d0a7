//! Tunables from the registry: the values of the service's `Parameters` key
//! (`HKLM\SYSTEM\CurrentControlSet\Services\tdinal\Parameters`, i.e. `<RegistryPath>\Parameters`
//! from `DriverEntry`), each named after a Lustre tunable, applied through
//! [`Tunables::set`](crate::engine::tunables::Tunables::set) with Linux's names and meanings.
//!
//! - Value names are matched case-insensitively (registry names are), e.g. `sock_timeout`,
//!   `keepalive`, `typed_conns`, `enable_csum`, `nonblk_zcack`, `zc_min_payload`, `accept`,
//!   `accept_port`, `protocol` — the full list is `Tunables::set`'s.
//! - `REG_DWORD` (and `REG_QWORD` below 2^32) values are applied as their decimal text; for
//!   `accept` a number is the ioctl numbering (0 secure, 1 all, 2 none). `REG_SZ` /
//!   `REG_EXPAND_SZ` values are applied as their text (up to the first NUL, surrounding blanks
//!   trimmed): `accept` = `secure`/`all`/`none`, flags `0`/`1`/`yes`/`no`/…, numbers in decimal.
//! - Every value read is traced; an unknown name, a bad value or another value type is a warning
//!   naming the value, and the driver loads with the other values applied (and defaults for the
//!   rest). A missing `Parameters` key means all defaults.
//!
//! The record parsing and the value-to-tunable logic ([`parse_full_information`],
//! [`apply_value`]) are portable and unit-tested on the host; [`read_parameters`] makes the
//! kernel calls (`ZwOpenKey`, `ZwEnumerateValueKey`, which also finds the names that are *not*
//! tunables so they can be reported).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use crate::engine::tunables::{TunableError, Tunables};
use crate::kernel::registry::{
    KEY_VALUE_FULL_INFORMATION, REG_DWORD, REG_EXPAND_SZ, REG_QWORD, REG_SZ,
};
use alloc::string::{String, ToString};
use core::fmt;
use core::mem::offset_of;

/// Longest value name, in UTF-16 units, that can be a tunable (the longest is 19 characters);
/// longer names are reported as unknown without being converted.
pub const MAX_NAME_UNITS: usize = 64;
/// Longest string value accepted, in UTF-16 units.
pub const MAX_TEXT_UNITS: usize = 64;

/// One value of a key as `ZwEnumerateValueKey(KeyValueFullInformation)` returns it: the name
/// (UTF-16LE bytes), the type and the data, all borrowed from the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub name: &'a [u8],
    pub value_type: u32,
    pub data: &'a [u8],
}

/// A registry value in the forms the driver accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegValue<'a> {
    /// `REG_DWORD`.
    Dword(u32),
    /// `REG_QWORD`.
    Qword(u64),
    /// `REG_SZ` / `REG_EXPAND_SZ`: UTF-16LE bytes, possibly NUL-terminated.
    Text(&'a [u8]),
    /// Any other type (its `REG_*` number).
    Other(u32),
}

/// Why a value was not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegError {
    /// The record from `ZwEnumerateValueKey` is inconsistent (offsets or lengths past its end).
    Malformed(&'static str),
    /// The name is not a tunable.
    UnknownName,
    /// The type cannot carry this tunable (`REG_BINARY`, `REG_MULTI_SZ`, …).
    UnsupportedType(u32),
    /// The data does not fit its type (a `REG_DWORD` that is not 4 bytes, odd UTF-16, …).
    BadData(&'static str),
    /// `Tunables::set` refused the value (shown as the text that was tried).
    BadValue(String),
}

impl fmt::Display for RegError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegError::Malformed(why) => write!(f, "malformed registry record: {why}"),
            RegError::UnknownName => f.write_str("not a tdinal tunable: ignored"),
            RegError::UnsupportedType(t) => write!(
                f,
                "value type {t} is not REG_DWORD, REG_QWORD or REG_SZ: ignored"
            ),
            RegError::BadData(why) => write!(f, "bad data ({why}): ignored"),
            RegError::BadValue(text) => write!(f, "bad value '{text}': ignored, default kept"),
        }
    }
}

fn u32_at(buf: &[u8], at: usize) -> Result<u32, RegError> {
    let end = at.checked_add(4).ok_or(RegError::Malformed("offset"))?;
    let b = buf
        .get(at..end)
        .ok_or(RegError::Malformed("record shorter than its header"))?;
    let mut w = [0u8; 4];
    w.copy_from_slice(b);
    Ok(u32::from_le_bytes(w))
}

fn slice_at<'a>(
    buf: &'a [u8],
    at: usize,
    len: u32,
    what: &'static str,
) -> Result<&'a [u8], RegError> {
    let len = usize::try_from(len).map_err(|_| RegError::Malformed(what))?;
    let end = at.checked_add(len).ok_or(RegError::Malformed(what))?;
    buf.get(at..end).ok_or(RegError::Malformed(what))
}

/// Parses a `KEY_VALUE_FULL_INFORMATION` record (`buf` = the bytes the kernel wrote, i.e. the
/// first `ResultLength` bytes of the buffer). Every length and offset is checked against `buf`.
pub fn parse_full_information(buf: &[u8]) -> Result<Record<'_>, RegError> {
    let value_type = u32_at(buf, offset_of!(KEY_VALUE_FULL_INFORMATION, Type))?;
    let data_offset = u32_at(buf, offset_of!(KEY_VALUE_FULL_INFORMATION, DataOffset))?;
    let data_length = u32_at(buf, offset_of!(KEY_VALUE_FULL_INFORMATION, DataLength))?;
    let name_length = u32_at(buf, offset_of!(KEY_VALUE_FULL_INFORMATION, NameLength))?;
    let name = slice_at(
        buf,
        offset_of!(KEY_VALUE_FULL_INFORMATION, Name),
        name_length,
        "name past the end of the record",
    )?;
    let data_at = usize::try_from(data_offset).map_err(|_| RegError::Malformed("data offset"))?;
    let data = if data_length == 0 {
        &[][..]
    } else {
        slice_at(buf, data_at, data_length, "data past the end of the record")?
    };
    Ok(Record {
        name,
        value_type,
        data,
    })
}

impl<'a> Record<'a> {
    /// The value in the forms the driver knows.
    pub fn value(&self) -> Result<RegValue<'a>, RegError> {
        match self.value_type {
            REG_DWORD => {
                let b: [u8; 4] = self
                    .data
                    .try_into()
                    .map_err(|_| RegError::BadData("REG_DWORD data is not 4 bytes"))?;
                Ok(RegValue::Dword(u32::from_le_bytes(b)))
            }
            REG_QWORD => {
                let b: [u8; 8] = self
                    .data
                    .try_into()
                    .map_err(|_| RegError::BadData("REG_QWORD data is not 8 bytes"))?;
                Ok(RegValue::Qword(u64::from_le_bytes(b)))
            }
            REG_SZ | REG_EXPAND_SZ => Ok(RegValue::Text(self.data)),
            other => Ok(RegValue::Other(other)),
        }
    }

    /// The value's name in lower case, or `None` if it is not short ASCII (so no tunable).
    pub fn name(&self) -> Result<Option<String>, RegError> {
        Ok(utf16le_to_string(self.name, MAX_NAME_UNITS)?
            .filter(|s| s.is_ascii())
            .map(|s| s.to_ascii_lowercase()))
    }
}

/// UTF-16LE bytes to a string, up to the first NUL. `Ok(None)` when longer than `max_units`
/// units or not valid UTF-16; `Err` for an odd byte count.
pub fn utf16le_to_string(bytes: &[u8], max_units: usize) -> Result<Option<String>, RegError> {
    if bytes.len() % 2 != 0 {
        return Err(RegError::BadData("UTF-16 text of odd length"));
    }
    let units = bytes
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .take_while(|&u| u != 0);
    let mut out = String::new();
    for (n, c) in char::decode_utf16(units).enumerate() {
        if n >= max_units {
            return Ok(None);
        }
        match c {
            Ok(c) => out.push(c),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// Applies one registry value to `tunables`. `name` is already lower case. Returns the text
/// that was applied (for the trace).
pub fn apply_value(
    tunables: &mut Tunables,
    name: &str,
    value: RegValue<'_>,
) -> Result<String, RegError> {
    let text = match value {
        RegValue::Dword(v) => number_text(name, u64::from(v)),
        RegValue::Qword(v) => number_text(name, v),
        RegValue::Text(bytes) => match utf16le_to_string(bytes, MAX_TEXT_UNITS)? {
            Some(s) => s.trim().to_string(),
            None => return Err(RegError::BadData("text too long or not UTF-16")),
        },
        RegValue::Other(t) => {
            // Say "unknown name" rather than "wrong type" for names that are not tunables.
            return match tunables.clone().set(name, "0") {
                Err(TunableError::UnknownName) => Err(RegError::UnknownName),
                _ => Err(RegError::UnsupportedType(t)),
            };
        }
    };
    match tunables.set(name, &text) {
        Ok(()) => Ok(text),
        Err(TunableError::UnknownName) => Err(RegError::UnknownName),
        Err(TunableError::BadValue) => Err(RegError::BadValue(text)),
    }
}

/// A number as `Tunables::set` text; `accept` takes the ioctl numbering (0 secure, 1 all,
/// 2 none), anything else its decimal form (a value over `u32::MAX` then fails as a bad value).
fn number_text(name: &str, v: u64) -> String {
    if name == "accept" {
        match v {
            0 => return "secure".to_string(),
            1 => return "all".to_string(),
            2 => return "none".to_string(),
            _ => {}
        }
    }
    v.to_string()
}

/// What reading the key did, for the summary trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub key_found: bool,
    pub applied: u32,
    pub ignored: u32,
}

/// Reads `<registry_path>\Parameters` and applies its values to `tunables`. Never fails: a
/// missing key, an unreadable value or a bad value are traced and skipped.
///
/// # Safety
/// `registry_path` must be null or the valid `UNICODE_STRING` DriverEntry received; call at
/// PASSIVE_LEVEL.
#[cfg(feature = "driver")]
pub unsafe fn read_parameters(
    registry_path: *const crate::kernel::UNICODE_STRING,
    tunables: &mut Tunables,
) -> ReadSummary {
    use super::trace::{kinfo, ktrace, kwarn};
    use crate::kernel::registry::{
        ZwEnumerateValueKey, ZwOpenKey, KEY_READ, KEY_VALUE_FULL_INFORMATION_CLASS,
        STATUS_NO_MORE_ENTRIES, STATUS_OBJECT_NAME_NOT_FOUND,
    };
    use crate::kernel::{
        nt_success, InitializeObjectAttributes, ZwClose, HANDLE, OBJ_CASE_INSENSITIVE,
        OBJ_KERNEL_HANDLE, STATUS_BUFFER_OVERFLOW, STATUS_BUFFER_TOO_SMALL, UNICODE_STRING,
    };
    use alloc::vec::Vec;

    const SUFFIX: &str = "\\Parameters";
    /// Enumeration buffer: a record with a 64-unit name and a 64-unit string fits with room
    /// to spare; larger values are reported and skipped.
    const RECORD_WORDS: usize = 128;
    /// Values looked at, at most (a key is not expected to hold more than a few dozen).
    const MAX_VALUES: u32 = 256;

    let mut summary = ReadSummary::default();
    // SAFETY: per the contract the pointer is null or a valid counted string whose buffer
    // holds Length bytes.
    let base: &[u16] = unsafe {
        match registry_path.as_ref() {
            Some(p) if !p.Buffer.is_null() => {
                core::slice::from_raw_parts(p.Buffer, usize::from(p.Length / 2))
            }
            _ => {
                kwarn!("registry: no registry path: all tunables at their defaults");
                return summary;
            }
        }
    };
    let mut path: Vec<u16> = Vec::new();
    if path
        .try_reserve_exact(base.len().saturating_add(SUFFIX.len()))
        .is_err()
    {
        kwarn!("registry: no memory for the key name: all tunables at their defaults");
        return summary;
    }
    path.extend_from_slice(base);
    path.extend(SUFFIX.encode_utf16());
    let Some(bytes) = path
        .len()
        .checked_mul(2)
        .and_then(|b| u16::try_from(b).ok())
    else {
        kwarn!("registry: registry path too long: all tunables at their defaults");
        return summary;
    };
    let mut name = UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: path.as_mut_ptr(),
    };
    let mut oa = InitializeObjectAttributes(
        &mut name,
        OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE,
        core::ptr::null_mut(),
        core::ptr::null_mut(),
    );
    let mut key: HANDLE = core::ptr::null_mut();
    // SAFETY: `oa` names a valid counted string that outlives the call; `key` is ours.
    let status = unsafe { ZwOpenKey(&mut key, KEY_READ, &mut oa) };
    if status == STATUS_OBJECT_NAME_NOT_FOUND {
        kinfo!("registry: no Parameters key: all tunables at their defaults");
        return summary;
    }
    if !nt_success(status) {
        kwarn!(
            "registry: cannot open the Parameters key ({:#010x}): all tunables at their defaults",
            status as u32
        );
        return summary;
    }
    summary.key_found = true;

    let mut record = [0u32; RECORD_WORDS];
    for index in 0..MAX_VALUES {
        let mut written = 0u32;
        // SAFETY: `key` is the open key; the buffer is ours, 4-aligned, and its length in
        // bytes is what we pass.
        let status = unsafe {
            ZwEnumerateValueKey(
                key,
                index,
                KEY_VALUE_FULL_INFORMATION_CLASS,
                record.as_mut_ptr().cast(),
                core::mem::size_of_val(&record) as u32,
                &mut written,
            )
        };
        if status == STATUS_NO_MORE_ENTRIES {
            break;
        }
        if status == STATUS_BUFFER_OVERFLOW || status == STATUS_BUFFER_TOO_SMALL {
            kwarn!(
                "registry: value #{} needs {} bytes, more than a tunable takes: ignored",
                index,
                written
            );
            summary.ignored = summary.ignored.saturating_add(1);
            continue;
        }
        if !nt_success(status) {
            kwarn!(
                "registry: reading value #{} failed ({:#010x}): stopping",
                index,
                status as u32
            );
            break;
        }
        // View the words as the bytes the kernel wrote (at most the buffer).
        let all: &[u8] = {
            let words: &[u32] = &record;
            // SAFETY: any u32 array is a valid byte array of 4x its length, same lifetime.
            unsafe {
                core::slice::from_raw_parts(
                    words.as_ptr().cast::<u8>(),
                    core::mem::size_of_val(words),
                )
            }
        };
        let len = usize::try_from(written)
            .unwrap_or(usize::MAX)
            .min(all.len());
        let outcome = parse_full_information(all.get(..len).unwrap_or_default()).and_then(|r| {
            let name = r.name()?;
            Ok((r, name))
        });
        match outcome {
            Ok((r, Some(name))) => match r.value().and_then(|v| apply_value(tunables, &name, v)) {
                Ok(text) => {
                    ktrace!("registry: {} = {}", name, text);
                    summary.applied = summary.applied.saturating_add(1);
                }
                Err(e) => {
                    kwarn!("registry: value '{}': {}", name, e);
                    summary.ignored = summary.ignored.saturating_add(1);
                }
            },
            Ok((_, None)) => {
                kwarn!("registry: value #{}: {}", index, RegError::UnknownName);
                summary.ignored = summary.ignored.saturating_add(1);
            }
            Err(e) => {
                kwarn!("registry: value #{}: {}", index, e);
                summary.ignored = summary.ignored.saturating_add(1);
            }
        }
    }
    // SAFETY: the key handle is ours and closed once.
    unsafe { ZwClose(key) };
    kinfo!(
        "registry: Parameters: {} tunable(s) applied, {} value(s) ignored",
        summary.applied,
        summary.ignored
    );
    summary
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use crate::engine::tunables::AcceptPolicy;
    use crate::wire::ProtoVersion;
    use alloc::vec::Vec;

    fn utf16(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    /// A KEY_VALUE_FULL_INFORMATION record as the kernel lays it out: header, name, padding to
    /// 4, data.
    fn record(name: &str, value_type: u32, data: &[u8]) -> Vec<u8> {
        let name = utf16(name);
        let mut data_offset = 20 + name.len();
        data_offset = (data_offset + 3) & !3;
        let mut r = Vec::new();
        r.extend_from_slice(&0u32.to_le_bytes());
        r.extend_from_slice(&value_type.to_le_bytes());
        r.extend_from_slice(&(data_offset as u32).to_le_bytes());
        r.extend_from_slice(&(data.len() as u32).to_le_bytes());
        r.extend_from_slice(&(name.len() as u32).to_le_bytes());
        r.extend_from_slice(&name);
        r.resize(data_offset, 0);
        r.extend_from_slice(data);
        r
    }

    fn apply_record(t: &mut Tunables, rec: &[u8]) -> Result<String, RegError> {
        let r = parse_full_information(rec)?;
        let name = r.name()?.ok_or(RegError::UnknownName)?;
        apply_value(t, &name, r.value()?)
    }

    #[test]
    fn dwords_apply() {
        let mut t = Tunables::default();
        for (name, v) in [
            ("sock_timeout", 120u32),
            ("keepalive", 0),
            ("typed_conns", 0),
            ("enable_csum", 1),
            ("nonblk_zcack", 0),
            ("zc_min_payload", 65536),
            ("accept_port", 7988),
            ("protocol", 2),
        ] {
            let rec = record(name, REG_DWORD, &v.to_le_bytes());
            assert_eq!(apply_record(&mut t, &rec), Ok(v.to_string()), "{name}");
        }
        assert_eq!(t.sock_timeout, 120);
        assert_eq!(t.keepalive, 0);
        assert!(!t.typed_conns);
        assert!(t.enable_csum);
        assert!(!t.nonblk_zcack);
        assert_eq!(t.zc_min_payload, 65536);
        assert_eq!(t.accept_port, 7988);
        assert_eq!(t.protocol, ProtoVersion::V2);
    }

    #[test]
    fn strings_apply_and_names_are_case_insensitive() {
        let mut t = Tunables::default();
        let rec = record("Accept", REG_SZ, &utf16("all\0"));
        assert_eq!(apply_record(&mut t, &rec), Ok("all".into()));
        assert_eq!(t.accept, AcceptPolicy::All);
        let rec = record("SOCK_TIMEOUT", REG_EXPAND_SZ, &utf16(" 77 \0"));
        assert_eq!(apply_record(&mut t, &rec), Ok("77".into()));
        assert_eq!(t.sock_timeout, 77);
        // Without terminator, and stopping at the first NUL.
        let rec = record("typed_conns", REG_SZ, &utf16("no\0yes\0"));
        assert_eq!(apply_record(&mut t, &rec), Ok("no".into()));
        assert!(!t.typed_conns);
    }

    #[test]
    fn accept_as_a_number_uses_the_ioctl_numbering() {
        let mut t = Tunables::default();
        for (v, want) in [
            (1u32, AcceptPolicy::All),
            (2, AcceptPolicy::None),
            (0, AcceptPolicy::Secure),
        ] {
            apply_record(&mut t, &record("accept", REG_DWORD, &v.to_le_bytes())).unwrap();
            assert_eq!(t.accept, want);
        }
        assert_eq!(
            apply_record(&mut t, &record("accept", REG_DWORD, &3u32.to_le_bytes())),
            Err(RegError::BadValue("3".into()))
        );
    }

    #[test]
    fn unknown_names_bad_values_and_types_are_errors_that_change_nothing() {
        let mut t = Tunables::default();
        let before = t.clone();
        let cases: Vec<(Vec<u8>, RegError)> = vec![
            (
                record("sock_timout", REG_DWORD, &5u32.to_le_bytes()),
                RegError::UnknownName,
            ),
            (
                record("accept_port", REG_DWORD, &0u32.to_le_bytes()),
                RegError::BadValue("0".into()),
            ),
            (
                record("accept_port", REG_DWORD, &70000u32.to_le_bytes()),
                RegError::BadValue("70000".into()),
            ),
            (
                record("protocol", REG_SZ, &utf16("4")),
                RegError::BadValue("4".into()),
            ),
            (
                record("typed_conns", REG_DWORD, &2u32.to_le_bytes()),
                RegError::BadValue("2".into()),
            ),
            (
                record("sock_timeout", REG_QWORD, &(1u64 << 40).to_le_bytes()),
                RegError::BadValue((1u64 << 40).to_string()),
            ),
            (
                record("sock_timeout", REG_DWORD, &[1, 2]),
                RegError::BadData("REG_DWORD data is not 4 bytes"),
            ),
            (
                record("sock_timeout", 3, &[1, 2, 3, 4]),
                RegError::UnsupportedType(3),
            ),
            (
                record("nonsense", 7, &utf16("a\0\0")),
                RegError::UnknownName,
            ),
            (
                record("accept", REG_SZ, &utf16(&"x".repeat(65))),
                RegError::BadData("text too long or not UTF-16"),
            ),
        ];
        for (rec, want) in cases {
            assert_eq!(apply_record(&mut t, &rec), Err(want));
        }
        assert_eq!(t, before);
    }

    #[test]
    fn qwords_that_fit_apply() {
        let mut t = Tunables::default();
        let rec = record("keepalive", REG_QWORD, &9u64.to_le_bytes());
        assert_eq!(apply_record(&mut t, &rec), Ok("9".into()));
        assert_eq!(t.keepalive, 9);
    }

    #[test]
    fn long_or_non_ascii_names_are_not_tunables() {
        let rec = record(&"a".repeat(65), REG_DWORD, &1u32.to_le_bytes());
        assert_eq!(parse_full_information(&rec).unwrap().name(), Ok(None));
        let rec = record("sóck_timeout", REG_DWORD, &1u32.to_le_bytes());
        assert_eq!(parse_full_information(&rec).unwrap().name(), Ok(None));
        // An unpaired surrogate.
        let mut rec = record("ab", REG_DWORD, &1u32.to_le_bytes());
        rec[20] = 0x00;
        rec[21] = 0xd8;
        assert_eq!(parse_full_information(&rec).unwrap().name(), Ok(None));
    }

    #[test]
    fn every_truncation_of_a_record_is_an_error_not_a_panic() {
        let rec = record("sock_timeout", REG_DWORD, &5u32.to_le_bytes());
        for n in 0..rec.len() {
            assert!(parse_full_information(&rec[..n]).is_err(), "length {n}");
        }
        assert!(parse_full_information(&rec).is_ok());
    }

    #[test]
    fn hostile_offsets_are_errors() {
        let mut rec = record("keepalive", REG_DWORD, &5u32.to_le_bytes());
        let base = rec.clone();
        for (at, v) in [
            (8usize, u32::MAX),
            (8, 1000),
            (12, u32::MAX),
            (12, 1000),
            (16, u32::MAX),
            (16, 1001),
        ] {
            rec.copy_from_slice(&base);
            rec[at..at + 4].copy_from_slice(&v.to_le_bytes());
            assert!(parse_full_information(&rec).is_err(), "field {at} = {v}");
        }
        // An odd name length is a data error.
        rec.copy_from_slice(&base);
        rec[16..20].copy_from_slice(&3u32.to_le_bytes());
        let r = parse_full_information(&rec).unwrap();
        assert_eq!(
            r.name(),
            Err(RegError::BadData("UTF-16 text of odd length"))
        );
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            RegError::UnknownName.to_string(),
            "not a tdinal tunable: ignored"
        );
        assert_eq!(
            RegError::BadValue("70000".into()).to_string(),
            "bad value '70000': ignored, default kept"
        );
    }
}
