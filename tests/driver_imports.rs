//! Cross-checks the kernel seam's imports against the export lists in mingw-w64's import
//! libraries (Debian `mingw-w64-x86-64-dev`: `libntoskrnl.a`, `libhal.a`, …), so that a misspelt
//! routine, or one bound to the wrong module (e.g. a HAL export declared against
//! `ntoskrnl.exe`), fails here rather than as an unresolved import when Windows loads the driver.
//!
//! Every `fn` declared in an import block of any file in `src/kernel/` is matched with the DLL of
//! its block (`dll "…";` in a `kernel_imports!` block, or `link(name = "…")` on an extern block);
//! extern blocks without a DLL (host-only declarations) are skipped. Also checked: no file
//! outside `src/kernel/` declares `raw-dylib` imports (the seam is the only way to the kernel).
//!
//! Fails (never skips) when the libraries are missing, naming the package to install.
use object::read::archive::ArchiveFile;
use object::{Object, ObjectSymbol};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const INSTALL: &str = "apt-get install mingw-w64-x86-64-dev (or run `bash .ci/test-all`), or set TDINAL_MINGW_LIB to a directory with libntoskrnl.a and libhal.a";

/// Import library of each module we may import from.
const LIBRARIES: &[(&str, &str)] = &[
    ("ntoskrnl.exe", "libntoskrnl.a"),
    ("hal.dll", "libhal.a"),
    ("netio.sys", "libnetio.a"),
];

/// Modules mingw-w64 has no import library for: their imports are listed, not cross-checked.
const NO_MINGW_LIBRARY: &[&str] = &["tdi.sys", "wdfldr.sys"];

/// Exports newer than mingw-w64 10's lists, checked by hand against Microsoft's documentation.
const NEWER_THAN_MINGW: &[(&str, &str)] = &[("ntoskrnl.exe", "ExAllocatePool2")];

fn mingw_lib_dir() -> PathBuf {
    std::env::var_os("TDINAL_MINGW_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/x86_64-w64-mingw32/lib"))
}

/// The names an import library provides (`__imp_<name>` symbols of its members).
fn exports_of(lib: &Path) -> BTreeSet<String> {
    let data = std::fs::read(lib).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}) — install it: {INSTALL}",
            lib.display()
        )
    });
    let archive = ArchiveFile::parse(&*data).expect("an ar archive");
    let mut names = BTreeSet::new();
    for member in archive.members() {
        let member = member.expect("archive member");
        let Ok(bytes) = member.data(&*data) else {
            continue;
        };
        // Members sit at 2-byte offsets in the archive; the COFF parser wants its headers
        // aligned, which a fresh allocation is.
        let bytes = bytes.to_vec();
        let Ok(obj) = object::File::parse(&*bytes) else {
            continue;
        };
        for sym in obj.symbols() {
            if let Some(name) = sym.name().ok().and_then(|n| n.strip_prefix("__imp_")) {
                names.insert(name.to_string());
            }
        }
    }
    assert!(!names.is_empty(), "no exports found in {}", lib.display());
    names
}

/// (module, routine) for every routine declared in an import block of `text`: a
/// `kernel_imports! { dll "…"; … }` invocation, or an `extern "…" {` block whose attributes name
/// `link(name = "…")` (directly or in a `cfg_attr`). Blocks without a DLL are host-only
/// declarations and are skipped.
fn imports_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // The DLL named by the attributes just above the current item.
    let mut pending: Option<String> = None;
    // Inside an import block: Some(dll or None for host-only).
    let mut block: Option<Option<String>> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(i) = t.find("link(name = \"") {
            pending = t[i + "link(name = \"".len()..]
                .split('"')
                .next()
                .map(str::to_ascii_lowercase);
            continue;
        }
        match &mut block {
            None => {
                if t.starts_with("kernel_imports! {") {
                    block = Some(None);
                    pending = None;
                } else if (t.starts_with("unsafe extern \"") || t.starts_with("extern \""))
                    && t.ends_with('{')
                {
                    block = Some(pending.take());
                } else if !(t.is_empty()
                    || t.starts_with("#[")
                    || t.starts_with(")]")
                    || t.starts_with("target_os")
                    || t.starts_with("//"))
                {
                    pending = None;
                }
            }
            Some(dll) => {
                if line.starts_with('}') {
                    block = None;
                    continue;
                }
                if let Some(rest) = t.strip_prefix("dll \"") {
                    *dll = rest.split('"').next().map(str::to_ascii_lowercase);
                    continue;
                }
                let decl = t.strip_prefix("pub fn ").or_else(|| t.strip_prefix("fn "));
                let Some(decl) = decl else { continue };
                let name: String = decl
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty() || !decl[name.len()..].starts_with('(') {
                    continue;
                }
                if let Some(module) = dll {
                    out.push((module.clone(), name));
                }
            }
        }
    }
    out
}

/// (module, routine) for every import declared in `src/kernel/*.rs`.
fn declared_imports() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/kernel");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read src/kernel")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read a seam file");
        out.extend(imports_in(&text));
    }
    out
}

#[test]
fn every_declared_import_is_exported_by_its_module() {
    let imports = declared_imports();
    // The scanner must see the seam (guards against a silent pass after a reformat).
    assert!(imports.len() >= 40, "only {} imports found", imports.len());
    for (module, name) in [
        ("ntoskrnl.exe", "IoCreateDevice"),
        ("ntoskrnl.exe", "ZwCreateFile"),
        ("ntoskrnl.exe", "DbgPrintEx"),
        ("ntoskrnl.exe", "memcpy"),
        ("hal.dll", "KeQueryPerformanceCounter"),
        // The control device's DACL and the registry tunables (src/kernel/security.rs,
        // src/kernel/registry.rs).
        ("ntoskrnl.exe", "ObOpenObjectByPointer"),
        ("ntoskrnl.exe", "ZwSetSecurityObject"),
        ("ntoskrnl.exe", "ZwOpenKey"),
        ("ntoskrnl.exe", "ZwEnumerateValueKey"),
    ] {
        assert!(
            imports.iter().any(|(m, n)| m == module && n == name),
            "the scanner did not find {name} from {module}"
        );
    }

    let dir = mingw_lib_dir();
    let mut exports: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut unchecked = Vec::new();
    let mut missing = Vec::new();
    for (module, name) in &imports {
        if NO_MINGW_LIBRARY.contains(&module.as_str()) {
            unchecked.push(format!("{module}!{name}"));
            continue;
        }
        if NEWER_THAN_MINGW.contains(&(module.as_str(), name.as_str())) {
            continue;
        }
        let Some(&(m, lib)) = LIBRARIES.iter().find(|(m, _)| m == module) else {
            panic!(
                "{name} is declared from {module}, which is not a module a driver may import from"
            );
        };
        let set = exports
            .entry(m)
            .or_insert_with(|| exports_of(&dir.join(lib)));
        if !set.contains(name) {
            let elsewhere: Vec<&str> = LIBRARIES
                .iter()
                .filter(|(_, l)| exports_of(&dir.join(l)).contains(name))
                .map(|(m, _)| *m)
                .collect();
            missing.push(format!("{module}!{name} (exported by: {elsewhere:?})"));
        }
    }
    assert!(
        missing.is_empty(),
        "imports their module does not export: {missing:#?}"
    );
    println!(
        "{} imports checked against mingw-w64's import libraries; not cross-checked: {unchecked:?}, newer than mingw: {NEWER_THAN_MINGW:?}",
        imports.len()
    );
}

#[test]
fn only_the_kernel_seam_declares_imports() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    let mut offenders = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                if path != src.join("kernel") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                if text.contains("\"raw-dylib\"") {
                    offenders.push(path.display().to_string());
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "kernel imports declared outside src/kernel: {offenders:?}"
    );
}
