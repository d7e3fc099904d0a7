//! Shared by `tests/driver_pe.rs` and `tests/driver_speakeasy.rs`: builds the cross-compiled
//! driver exactly as documented (docs/building.md) into a target directory of its own, so the
//! nested cargo never waits for the lock of the `cargo test` that runs us.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const TARGET: &str = "x86_64-pc-windows-msvc";
pub const INSTALL_HINT: &str = "the Windows target is not installed: run `rustup target add x86_64-pc-windows-msvc` (or `bash .ci/test-all`, which installs it)";

/// What the cross build produced.
pub struct Driver {
    /// The driver image (`tdinal.dll`, i.e. `tdinal.sys`).
    pub image: PathBuf,
    /// The linker map (`/MAP`), for symbol addresses.
    pub map: PathBuf,
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The target directory of the nested build: inside this build's scratch space for tests.
fn cross_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("cross")
}

/// Whether the active toolchain has the Windows target's standard library.
fn target_installed() -> Result<bool, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(manifest_dir())
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let lib = Path::new(&sysroot)
        .join("lib")
        .join("rustlib")
        .join(TARGET)
        .join("lib");
    let has_core = std::fs::read_dir(&lib)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
        })
        .unwrap_or(false);
    Ok(has_core)
}

/// Builds the driver (once per test binary) and returns its paths; panics with an actionable
/// message when the target is missing or the build fails.
pub fn build_driver() -> &'static Driver {
    static DRIVER: OnceLock<Result<Driver, String>> = OnceLock::new();
    match DRIVER.get_or_init(build) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

fn build() -> Result<Driver, String> {
    if !target_installed()? {
        return Err(INSTALL_HINT.to_string());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = cross_target_dir();
    let mut cmd = Command::new(cargo);
    // The current directory matters: .cargo/config.toml (the link options) is found from it.
    cmd.current_dir(manifest_dir())
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--no-default-features",
            "--features",
            "driver",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags from the environment would replace the config's target rustflags (the link
        // options): the driver must be built with exactly what is documented.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_RUSTFLAGS")
        .env_remove("CARGO_TARGET_X86_64_PC_WINDOWS_MSVC_LINKER")
        .env_remove("CARGO_BUILD_TARGET");
    let out = cmd.output().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let hint = if stderr.contains("target may not be installed")
            || stderr.contains("can't find crate for `core`")
        {
            format!("\n{INSTALL_HINT}")
        } else {
            String::new()
        };
        return Err(format!(
            "cross build of the driver failed ({}):\n{stderr}{hint}",
            out.status
        ));
    }
    let release = target_dir.join(TARGET).join("release");
    let image = release.join("tdinal.dll");
    let map = release.join("deps").join("tdinal.map");
    for p in [&image, &map] {
        if !p.is_file() {
            return Err(format!("the cross build did not produce {}", p.display()));
        }
    }
    Ok(Driver { image, map })
}

/// `DriverEntry`'s RVA from the linker map: its "Rva+Base" minus the preferred load address.
pub fn map_symbol_rva(map_text: &str, symbol: &str) -> Option<u64> {
    let base = map_text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Preferred load address is ")
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    })?;
    map_text.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        // "0001:00000000  DriverEntry  0000000180001000  object"
        if cols.len() >= 3 && cols[1] == symbol && cols[0].contains(':') {
            u64::from_str_radix(cols[2], 16)
                .ok()
                .and_then(|va| va.checked_sub(base))
        } else {
            None
        }
    })
}
