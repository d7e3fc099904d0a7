//! The OS side of `ptlctl`: open `\\.\tdinal` and send `DeviceIoControl` requests.
//!
//! On Windows the device is opened with `std::fs::OpenOptions` (`CreateFileW`, read + write
//! access: state-changing codes need `FILE_WRITE_ACCESS`, lists `FILE_READ_ACCESS`) and the only
//! foreign call is `DeviceIoControl` from kernel32 (through mingw-w64's import library; no
//! `raw-dylib` outside the kernel seam). A failed call's `GetLastError` becomes a [`DevError`]
//! with the system's message; `ERROR_NO_MORE_ITEMS` (the driver's `STATUS_NO_MORE_ENTRIES`) ends a
//! list. Elsewhere [`open`] fails: the tool drives a Windows driver.
use crate::cli::{DevError, Device};

/// For `help`: a device that is never asked anything.
pub struct NoDevice;

impl Device for NoDevice {
    fn ioctl(&mut self, _: u32, _: &[u8], _: &mut [u8]) -> Result<usize, DevError> {
        Err(DevError::Os {
            code: 0,
            message: "no device".into(),
        })
    }
}

#[cfg(windows)]
mod imp {
    use super::{DevError, Device};
    use crate::cli::DEVICE_PATH;
    use std::ffi::c_void;
    use std::fs::File;
    use std::os::windows::io::AsRawHandle;

    /// `ERROR_NO_MORE_ITEMS`.
    const ERROR_NO_MORE_ITEMS: i32 = 259;

    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn DeviceIoControl(
            hDevice: *mut c_void,
            dwIoControlCode: u32,
            lpInBuffer: *const c_void,
            nInBufferSize: u32,
            lpOutBuffer: *mut c_void,
            nOutBufferSize: u32,
            lpBytesReturned: *mut u32,
            lpOverlapped: *mut c_void,
        ) -> i32;
    }

    /// The open control device.
    pub struct WinDevice {
        file: File,
    }

    pub fn open() -> Result<WinDevice, std::io::Error> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(DEVICE_PATH)?;
        Ok(WinDevice { file })
    }

    impl Device for WinDevice {
        fn ioctl(&mut self, code: u32, input: &[u8], output: &mut [u8]) -> Result<usize, DevError> {
            let len = |n: usize| {
                u32::try_from(n).map_err(|_| DevError::Os {
                    code: 0,
                    message: "buffer too large".into(),
                })
            };
            let (in_len, out_len) = (len(input.len())?, len(output.len())?);
            let mut returned = 0u32;
            // SAFETY: the handle is open for the file's lifetime; the buffers are valid for the
            // lengths given (an empty output is passed as null with length 0); the call is
            // synchronous (no OVERLAPPED, the file was not opened for overlapped I/O).
            let ok = unsafe {
                DeviceIoControl(
                    self.file.as_raw_handle().cast(),
                    code,
                    input.as_ptr().cast(),
                    in_len,
                    if output.is_empty() {
                        std::ptr::null_mut()
                    } else {
                        output.as_mut_ptr().cast()
                    },
                    out_len,
                    &mut returned,
                    std::ptr::null_mut(),
                )
            };
            if ok != 0 {
                return Ok((returned as usize).min(output.len()));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(ERROR_NO_MORE_ITEMS) => Err(DevError::NoMoreItems),
                code => Err(DevError::Os {
                    code: code.unwrap_or(0),
                    message: e.to_string(),
                }),
            }
        }
    }
}

#[cfg(not(windows))]
mod imp {
    use super::{DevError, Device};

    /// Never constructed: there is no tdinal control device outside Windows.
    pub enum WinDevice {}

    pub fn open() -> Result<WinDevice, std::io::Error> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "ptlctl drives the Windows driver; on Linux use `tdinal` (the user-space runtime)",
        ))
    }

    impl Device for WinDevice {
        fn ioctl(&mut self, _: u32, _: &[u8], _: &mut [u8]) -> Result<usize, DevError> {
            match *self {}
        }
    }
}

pub use imp::open;
