//! Builds `ptlctl.exe` for Windows (`x86_64-pc-windows-gnu`, linked by mingw-w64's gcc) and runs
//! it under Wine, which has no tdinal driver: `ptlctl peer_list` must fail cleanly — exit status
//! 1, `cannot open \\.\tdinal: …` on stderr, no panic, no unhandled exception. `help` must
//! succeed and a usage error exit with 2. The verbs themselves are tested on Linux against the
//! ioctl dispatcher (`cargo test --bin ptlctl`).
//!
//! Needs (installed by `.ci/test-all`, step `ptlctl`): `rustup target add x86_64-pc-windows-gnu`,
//! Debian `gcc-mingw-w64-x86-64` and `wine64`. Fails (never skips) when one is missing, naming
//! it. `TDINAL_WINE64` may name the wine64 loader.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const TARGET: &str = "x86_64-pc-windows-gnu";
const INSTALL: &str = "rustup target add x86_64-pc-windows-gnu; apt-get install gcc-mingw-w64-x86-64 wine64 (or run `bash .ci/test-all`)";

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ptlctl")
}

/// Builds the exe once (its own target directory, so the nested cargo never waits for ours).
fn exe() -> &'static Path {
    static EXE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = EXE.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let target_dir = tmp().join("target");
        let out = Command::new(cargo)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            // Release, as shipped: the debug build of std also imports bcryptprimitives.dll
            // (ProcessPrng), which Windows 10+ has and Wine 8 (Debian 12) does not.
            .args(["build", "--release", "--target", TARGET, "--bin", "ptlctl"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building ptlctl.exe failed ({}):\n{}\ninstall what is missing: {INSTALL}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let exe = target_dir.join(TARGET).join("release").join("ptlctl.exe");
        if exe.is_file() {
            Ok(exe)
        } else {
            Err(format!("the build did not produce {}", exe.display()))
        }
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn wine64() -> PathBuf {
    if let Some(p) = std::env::var_os("TDINAL_WINE64") {
        return PathBuf::from(p);
    }
    // Debian's wine64 package installs the loader here (the `wine` package adds a wrapper).
    for p in ["/usr/lib/wine/wine64", "/usr/bin/wine64"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("wine64 not found — install it: {INSTALL}");
}

/// Runs `ptlctl.exe args` under Wine in a prefix of our own (created on first use).
fn run(args: &[&str]) -> Output {
    let exe = exe();
    let prefix = tmp().join("wineprefix");
    std::fs::create_dir_all(tmp()).expect("create the scratch directory");
    Command::new(wine64())
        .arg(exe)
        .args(args)
        .env("WINEPREFIX", &prefix)
        .env("WINEDEBUG", "-all")
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=")
        .output()
        .unwrap_or_else(|e| panic!("cannot run wine64: {e} — install it: {INSTALL}"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The DLLs the exe imports: only Windows system DLLs that every supported Windows has.
#[test]
fn ptlctl_exe_imports_only_system_dlls() {
    let data = std::fs::read(exe()).expect("read ptlctl.exe");
    let file = object::read::pe::PeFile64::parse(&*data).expect("ptlctl.exe is PE32+");
    let imports = object::Object::imports(&file).expect("import table");
    let mut dlls: Vec<String> = imports
        .iter()
        .map(|i| String::from_utf8_lossy(i.library()).to_ascii_lowercase())
        .collect();
    dlls.sort();
    dlls.dedup();
    for dll in &dlls {
        assert!(
            [
                "kernel32.dll",
                "msvcrt.dll",
                "ntdll.dll",
                "ws2_32.dll",
                "userenv.dll"
            ]
            .contains(&dll.as_str())
                || dll.starts_with("api-ms-win-core-"),
            "ptlctl.exe imports {dll} ({dlls:?})"
        );
    }
    assert!(dlls.iter().any(|d| d == "kernel32.dll"), "{dlls:?}");
}

// One test under Wine, so the prefix is created by one process at a time.
#[test]
fn ptlctl_exe_under_wine_fails_cleanly_without_the_driver() {
    let out = run(&["peer_list"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit status (stdout {stdout:?}, stderr {stderr:?})"
    );
    assert!(
        stderr.contains("ptlctl: cannot open \\\\.\\tdinal: "),
        "stderr: {stderr:?}"
    );
    for bad in ["panicked", "Unhandled exception", "backtrace"] {
        assert!(!stderr.contains(bad), "{bad} in stderr: {stderr:?}");
    }
    assert!(stdout.is_empty(), "stdout: {stdout:?}");

    let out = run(&["help"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "help: {stderr:?}");
    assert!(stdout.contains("start_daemon --port P"), "help: {stdout:?}");

    let out = run(&["add_peer", "1.2.3.4@tcp"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "usage error: {stderr:?}");
    assert!(
        stderr.contains("usage: ptlctl add_peer NID IP PORT"),
        "{stderr:?}"
    );
}
