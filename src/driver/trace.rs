//! Tracing to the kernel debugger through `DbgPrintEx`.
//!
//! Messages go out under component `DPFLTR_IHVNETWORK_ID`; the level macros map to
//! `DPFLTR_ERROR_LEVEL` … `DPFLTR_INFO_LEVEL`. Errors are shown by default; enable the others in
//! the registry (`Debug Print Filter\IHVNETWORK`) or with the debugger's `ed nt!Kd_IHVNETWORK_Mask`.
//! Each message is formatted into a fixed 256-byte stack buffer (longer text is cut, formatting
//! never allocates) and passed as the argument of a constant `"%s"` format, so message text can
//! never be taken as a format. `DbgPrintEx` may be called at IRQL <= DIRQL.
use core::fmt::{self, Write};

/// Capacity of one trace line, including the terminating NUL.
pub const LINE_CAPACITY: usize = 256;

/// A NUL-terminated line buffer that truncates instead of failing.
pub struct LineBuf {
    buf: [u8; LINE_CAPACITY],
    len: usize,
}

impl LineBuf {
    /// An empty line.
    pub const fn new() -> Self {
        LineBuf {
            buf: [0; LINE_CAPACITY],
            len: 0,
        }
    }

    /// The text written so far (without the NUL).
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// The text as a C string: always NUL-terminated, the last byte is reserved for it.
    pub fn as_c_ptr(&mut self) -> *const core::ffi::c_char {
        let end = self.len.min(LINE_CAPACITY - 1);
        if let Some(b) = self.buf.get_mut(end) {
            *b = 0;
        }
        self.buf.as_ptr().cast()
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the NUL; drop what does not fit. Interior NULs would cut the
        // message short in the debugger, so they become '?'.
        let room = (LINE_CAPACITY - 1).saturating_sub(self.len);
        let take = s.len().min(room);
        for (dst, &src) in self
            .buf
            .iter_mut()
            .skip(self.len)
            .zip(s.as_bytes().iter().take(take))
        {
            *dst = if src == 0 { b'?' } else { src };
        }
        self.len += take;
        Ok(())
    }
}

/// Formats `args` as one `tdinal: …` line and sends it at `level`.
pub fn print(level: u32, args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    // LineBuf::write_str never fails; a Display impl that fails just ends the text early.
    let _ = line.write_str("tdinal: ");
    let _ = line.write_fmt(args);
    let _ = line.write_str("\n");
    emit(level, &mut line);
}

#[cfg(target_os = "windows")]
fn emit(level: u32, line: &mut LineBuf) {
    use crate::kernel::{DbgPrintEx, DPFLTR_IHVNETWORK_ID};
    // SAFETY: the format is a constant "%s" and its one argument is a NUL-terminated buffer
    // that lives across the call; DbgPrintEx is callable at IRQL <= DIRQL.
    unsafe {
        DbgPrintEx(DPFLTR_IHVNETWORK_ID, level, c"%s".as_ptr(), line.as_c_ptr());
    }
}

#[cfg(not(target_os = "windows"))]
fn emit(_level: u32, line: &mut LineBuf) {
    // Host builds of the driver code (checks, unit tests) have no kernel debugger.
    let _ = line.as_c_ptr();
}

/// `kerror!("…", args)`: a `DPFLTR_ERROR_LEVEL` trace line.
macro_rules! kerror {
    ($($arg:tt)*) => {
        $crate::driver::trace::print($crate::kernel::DPFLTR_ERROR_LEVEL, format_args!($($arg)*))
    };
}
/// `kwarn!`: `DPFLTR_WARNING_LEVEL`.
#[allow(unused_macros)]
macro_rules! kwarn {
    ($($arg:tt)*) => {
        $crate::driver::trace::print($crate::kernel::DPFLTR_WARNING_LEVEL, format_args!($($arg)*))
    };
}
/// `ktrace!`: `DPFLTR_TRACE_LEVEL`.
macro_rules! ktrace {
    ($($arg:tt)*) => {
        $crate::driver::trace::print($crate::kernel::DPFLTR_TRACE_LEVEL, format_args!($($arg)*))
    };
}
/// `kinfo!`: `DPFLTR_INFO_LEVEL`.
macro_rules! kinfo {
    ($($arg:tt)*) => {
        $crate::driver::trace::print($crate::kernel::DPFLTR_INFO_LEVEL, format_args!($($arg)*))
    };
}
#[allow(unused_imports)]
pub(crate) use {kerror, kinfo, ktrace, kwarn};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_and_terminates() {
        let mut l = LineBuf::new();
        for _ in 0..100 {
            let _ = l.write_str("0123456789");
        }
        assert_eq!(l.as_bytes().len(), LINE_CAPACITY - 1);
        let p = l.as_c_ptr();
        // SAFETY: p points into l.buf, which has LINE_CAPACITY bytes.
        let last = unsafe { *p.add(LINE_CAPACITY - 1) };
        assert_eq!(last, 0);
    }

    #[test]
    fn replaces_nul() {
        let mut l = LineBuf::new();
        let _ = l.write_str("a\0b");
        assert_eq!(l.as_bytes(), b"a?b");
    }
}
