//! Builds the cross-compiled driver and checks that the file is a Windows kernel driver image
//! of the kind documented in docs/building.md: AMD64, native subsystem, entry at `DriverEntry`,
//! NX/ASLR/integrity-check flags, a valid checksum, W^X sections, no exports, and imports only
//! from kernel-mode modules.
//!
//! Fails (never skips) when the Windows target is missing, naming the install command.
mod driver_common;

use object::pe;
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::{LittleEndian as LE, Object};

/// The modules a tdinal driver may import from (case-insensitive).
const ALLOWED_IMPORT_MODULES: &[&str] = &[
    "ntoskrnl.exe",
    "hal.dll",
    "wdfldr.sys",
    "tdi.sys",
    "netio.sys",
];

fn read_image() -> (Vec<u8>, String) {
    let driver = driver_common::build_driver();
    let data = std::fs::read(&driver.image).expect("read the driver image");
    let map = std::fs::read_to_string(&driver.map).expect("read the linker map");
    (data, map)
}

/// The PE checksum as the image loader computes it: 16-bit one's-complement-style sum of the
/// file with the checksum field taken as zero, folded, plus the file length.
fn pe_checksum(data: &[u8], checksum_offset: usize) -> u32 {
    let mut sum: u64 = 0;
    let mut i = 0;
    while i < data.len() {
        let lo = data[i];
        let hi = data.get(i + 1).copied().unwrap_or(0);
        let word = if (checksum_offset..checksum_offset + 4).contains(&i) {
            0
        } else {
            u64::from(u16::from_le_bytes([lo, hi]))
        };
        sum += word;
        sum = (sum & 0xffff) + (sum >> 16);
        i += 2;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    (sum as u32).wrapping_add(data.len() as u32)
}

#[test]
fn driver_image_is_a_native_amd64_driver() {
    let (data, _) = read_image();
    let file = PeFile64::parse(&*data).expect("parse the driver as PE32+");
    let nt = file.nt_headers();
    let fh = nt.file_header();
    let oh = nt.optional_header();

    assert_eq!(
        fh.machine.get(LE),
        pe::IMAGE_FILE_MACHINE_AMD64,
        "machine must be AMD64"
    );
    let chars = fh.characteristics.get(LE);
    assert_ne!(
        chars & pe::IMAGE_FILE_EXECUTABLE_IMAGE,
        0,
        "not an executable image"
    );
    assert_eq!(
        chars & pe::IMAGE_FILE_RELOCS_STRIPPED,
        0,
        "relocations stripped: the image could not be rebased"
    );
    assert_eq!(
        oh.subsystem(),
        pe::IMAGE_SUBSYSTEM_NATIVE,
        "subsystem must be NATIVE (1)"
    );

    let dll = oh.dll_characteristics();
    for (flag, name) in [
        (pe::IMAGE_DLLCHARACTERISTICS_NX_COMPAT, "NX_COMPAT"),
        (pe::IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE, "DYNAMIC_BASE"),
        (
            pe::IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY,
            "FORCE_INTEGRITY",
        ),
    ] {
        assert_ne!(
            dll & flag,
            0,
            "DllCharacteristics lacks {name} ({dll:#06x})"
        );
    }

    // The kernel ignores the stack sizes (a kernel thread's stack is a fixed 24 KiB on x64); the
    // emulator sizes its stack from the commit, so emulation runs with the stack a driver has.
    assert_eq!(
        oh.size_of_stack_commit(),
        0x6000,
        "SizeOfStackCommit should be the x64 kernel stack size (/STACK:0x6000,0x6000)"
    );

    // The checksum is set (/RELEASE) and right: the kernel loader checks it for drivers.
    let pe_offset = u32::from_le_bytes(data[0x3c..0x40].try_into().unwrap()) as usize;
    let checksum_offset = pe_offset + 4 + 20 + 64;
    assert_ne!(oh.check_sum(), 0, "no PE checksum (link with /RELEASE)");
    assert_eq!(
        oh.check_sum(),
        pe_checksum(&data, checksum_offset),
        "PE checksum does not match the file"
    );
}

#[test]
fn entry_point_is_driver_entry_in_text() {
    let (data, map) = read_image();
    let file = PeFile64::parse(&*data).expect("parse the driver as PE32+");
    let entry = u64::from(file.nt_headers().optional_header().address_of_entry_point());
    assert_ne!(entry, 0, "no entry point");

    let text = file
        .section_table()
        .iter()
        .find(|s| s.name.starts_with(b".text\0"))
        .expect("a .text section");
    let start = u64::from(text.virtual_address.get(LE));
    let end = start + u64::from(text.virtual_size.get(LE));
    assert!(
        (start..end).contains(&entry),
        "entry {entry:#x} outside .text {start:#x}..{end:#x}"
    );
    let c = text.characteristics.get(LE);
    assert_ne!(c & pe::IMAGE_SCN_MEM_EXECUTE, 0, ".text is not executable");

    let driver_entry =
        driver_common::map_symbol_rva(&map, "DriverEntry").expect("DriverEntry in the linker map");
    assert_eq!(entry, driver_entry, "entry point is not DriverEntry");
}

#[test]
fn sections_are_never_writable_and_executable() {
    let (data, _) = read_image();
    let file = PeFile64::parse(&*data).expect("parse the driver as PE32+");
    for s in file.section_table().iter() {
        let c = s.characteristics.get(LE);
        let name = String::from_utf8_lossy(&s.name)
            .trim_end_matches('\0')
            .to_string();
        assert!(
            c & pe::IMAGE_SCN_MEM_WRITE == 0 || c & pe::IMAGE_SCN_MEM_EXECUTE == 0,
            "section {name} is writable and executable ({c:#010x})"
        );
    }
}

#[test]
fn imports_only_from_kernel_modules_and_nothing_exported() {
    let (data, _) = read_image();
    let file = PeFile64::parse(&*data).expect("parse the driver as PE32+");
    let imports = file.imports().expect("read the import table");
    assert!(!imports.is_empty(), "the driver imports nothing");

    let mut from_ntoskrnl = Vec::new();
    for imp in &imports {
        let module = String::from_utf8_lossy(imp.library()).to_ascii_lowercase();
        let name = String::from_utf8_lossy(imp.name()).to_string();
        assert!(
            ALLOWED_IMPORT_MODULES.contains(&module.as_str()),
            "{name} is imported from {module}, which is not a kernel module on the allow-list {ALLOWED_IMPORT_MODULES:?}"
        );
        if module == "ntoskrnl.exe" {
            from_ntoskrnl.push(name);
        }
    }
    assert!(!from_ntoskrnl.is_empty(), "no import from ntoskrnl.exe");
    for needed in ["IoCreateDevice", "IoCreateSymbolicLink", "IoDeleteDevice"] {
        assert!(
            from_ntoskrnl.iter().any(|n| n == needed),
            "{needed} is not imported from ntoskrnl.exe (imports: {from_ntoskrnl:?})"
        );
    }
    println!(
        "driver image: {} bytes, imports from ntoskrnl.exe: {}",
        data.len(),
        from_ntoskrnl.join(", ")
    );

    // An exported function is called with made-up arguments by tools that exercise exports
    // (the emulator does); DriverEntry is reached through the entry point only.
    let export_dir = file
        .data_directories()
        .get(pe::IMAGE_DIRECTORY_ENTRY_EXPORT)
        .map(|d| (d.virtual_address.get(LE), d.size.get(LE)))
        .unwrap_or((0, 0));
    if export_dir != (0, 0) {
        let names = match file.exports() {
            Ok(exports) => format!(
                "{:?}",
                exports
                    .iter()
                    .map(|e| String::from_utf8_lossy(e.name()).to_string())
                    .collect::<Vec<_>>()
            ),
            Err(e) => format!("(names unreadable: {e})"),
        };
        panic!(
            "the driver has an export directory at {:#x} ({} bytes): {names}; export nothing \
             (DriverEntry is reached through the entry point only)",
            export_dir.0, export_dir.1
        );
    }
}

/// A path's identifiers as the symbol manglers write them (both legacy `_ZN…` and v0 `_R…`
/// length-prefix each identifier in order): `["tdi", "conn", "on_receive"]` →
/// `3tdi4conn10on_receive`.
fn mangled_path(path: &[&str]) -> String {
    path.iter().map(|p| format!("{}{p}", p.len())).collect()
}

/// The TDI layer the tests run under the emulation is the one linked into the image: its
/// DISPATCH_LEVEL handlers, IRP completion routines, send/receive paths, object management and
/// scheduler threads are functions of the image (the linker map names them), the kernel routines
/// they call are imported, no part of the emulation is linked, and `src/tdi` has no code that is
/// compiled for one build and not the other (the only conditional is `mod emu` itself).
#[test]
fn tdi_layer_is_linked_unchanged_and_without_the_emulation() {
    let (data, map) = read_image();
    let functions: &[&[&str]] = &[
        &["tdi", "conn", "on_receive"],
        &["tdi", "conn", "on_chained_receive"],
        &["tdi", "conn", "on_receive_expedited"],
        &["tdi", "conn", "on_chained_receive_expedited"],
        &["tdi", "conn", "on_disconnect"],
        &["tdi", "conn", "on_error_conn"],
        &["tdi", "conn", "receive_complete"],
        &["tdi", "conn", "submit_send"],
        &["tdi", "conn", "send_complete"],
        &["tdi", "conn", "submit_connect"],
        &["tdi", "conn", "connect_complete"],
        &["tdi", "acceptor", "on_connect"],
        &["tdi", "acceptor", "accept_complete"],
        &["tdi", "acceptor", "acceptor_main"],
        &["tdi", "obj", "open"],
        &["tdi", "obj", "associate"],
        &["tdi", "obj", "set_event_handler"],
        &["tdi", "runtime", "scheduler_main"],
        &["tdi", "runtime", "finish_send"],
        &["tdi", "tsdu"],
    ];
    let missing: Vec<String> = functions
        .iter()
        .map(|p| mangled_path(p))
        .filter(|m| !map.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "TDI functions not in the image's linker map: {missing:?}"
    );
    assert!(
        !map.contains(&mangled_path(&["tdi", "emu"])),
        "the emulation is linked into the driver"
    );

    let file = PeFile64::parse(&*data).expect("parse the driver as PE32+");
    let imports: Vec<(String, String)> = file
        .imports()
        .expect("read the import table")
        .iter()
        .map(|i| {
            (
                String::from_utf8_lossy(i.library()).to_ascii_lowercase(),
                String::from_utf8_lossy(i.name()).to_string(),
            )
        })
        .collect();
    for (module, name) in [
        ("ntoskrnl.exe", "IofCallDriver"),
        ("ntoskrnl.exe", "IoAllocateIrp"),
        ("ntoskrnl.exe", "IoFreeIrp"),
        ("ntoskrnl.exe", "IoAllocateMdl"),
        ("ntoskrnl.exe", "IoFreeMdl"),
        ("ntoskrnl.exe", "MmBuildMdlForNonPagedPool"),
        ("ntoskrnl.exe", "IoGetRelatedDeviceObject"),
        ("ntoskrnl.exe", "ZwCreateFile"),
        ("ntoskrnl.exe", "ObReferenceObjectByHandle"),
        ("ntoskrnl.exe", "KeAcquireSpinLockRaiseToDpc"),
        ("ntoskrnl.exe", "PsCreateSystemThread"),
        ("tdi.sys", "TdiReturnChainedReceives"),
    ] {
        assert!(
            imports.iter().any(|(m, n)| m == module && n == name),
            "{name} is not imported from {module}: {imports:?}"
        );
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tdi");
    for entry in std::fs::read_dir(&dir).expect("src/tdi") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let l = line.trim_start();
            if !(l.starts_with("#[cfg") || l.starts_with("#![cfg") || l.contains("cfg!(")) {
                continue;
            }
            let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or("");
            let allowed = l == "#[cfg(test)]" || next == "pub mod emu;" || next == "mod emu;";
            assert!(
                allowed,
                "{}:{}: `{l}` compiles TDI code for one build only",
                path.display(),
                i + 1
            );
        }
    }
}
