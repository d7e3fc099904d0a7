//! `ptlctl` for Windows: the Linux `ptlctl`/`lctl` network verbs against the tdinal driver's
//! control device `\\.\tdinal`, one `DeviceIoControl` per request.
//!
//! Built for Windows with `x86_64-pc-windows-gnu` and Debian's mingw-w64 linker
//! (`.ci/test-all`, step `ptlctl`, writes `target/ptlctl.exe`); on Linux it builds too (its
//! parsing and formatting are unit-tested there) and says it needs Windows when run. The
//! portable part is [`cli`]; the only OS-specific code opens the device and calls
//! `DeviceIoControl` ([`win`]).
//!
//! Exit status: 0 success, 1 the device or the driver failed, 2 a usage error.

mod cli;
#[cfg(test)]
mod tests;
mod win;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verb = match cli::parse(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ptlctl: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = String::new();
    let result = if verb == cli::Verb::Help {
        cli::run(&verb, &mut win::NoDevice, &mut out)
    } else {
        match win::open() {
            Ok(mut dev) => cli::run(&verb, &mut dev, &mut out),
            Err(e) => Err(format!("cannot open {}: {e}", cli::DEVICE_PATH)),
        }
    };
    let _ = std::io::stdout().write_all(out.as_bytes());
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ptlctl: {e}");
            ExitCode::from(1)
        }
    }
}
