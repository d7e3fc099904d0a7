//! The runtime pieces a `no_std` Rust image needs inside the Windows kernel:
//!
//! - `#[panic_handler]`: traces the panic and stops the system with
//!   [`super::TDINAL_BUGCHECK_PANIC`] (a kernel driver cannot unwind or exit);
//! - `__chkstk`: LLVM calls it in the prologue of any function whose frame exceeds 4 KiB, with
//!   the frame size in RAX. `ntoskrnl.exe` does not export it. Ours touches each page between
//!   the stack pointer and the new frame's bottom, top-down, so a guard page is hit in order.
//!   Per the x64 convention it may clobber only R10, R11 and the flags, and it leaves RSP alone
//!   (the caller subtracts RAX itself). It reads no `gs:` stack limits, which keeps it valid in
//!   any context (and in the emulator, whose `gs` base has no TEB/KPCR stack fields);
//! - `_fltused`: the MSVC ABI marker LLVM references from any object that uses floating point;
//! - `__CxxFrameHandler3`: the personality routine named by unwind info in the prebuilt `core`
//!   (built with panic=unwind). With panic=abort nothing unwinds through Rust frames; if a kernel
//!   exception (e.g. from `MmProbeAndLockPages`) is dispatched through such a frame, answering
//!   `ExceptionContinueSearch` (1) is correct: Rust frames have no handlers.
//!
//! All of this only exists in the Windows kernel image without `std`; the eWDK build
//! (`wdk` feature) gets `__chkstk` and `_fltused` from the WDK libraries instead.

#[cfg(all(target_os = "windows", not(feature = "std")))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let (file, line, column) = match info.location() {
        Some(l) => (l.file(), l.line(), l.column()),
        None => ("?", 0, 0),
    };
    super::trace::kerror!("panic at {}:{}:{}: {}", file, line, column, info.message());
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return; the file-name pointer
    // and length are only data for the crash dump.
    unsafe {
        crate::kernel::KeBugCheckEx(
            super::TDINAL_BUGCHECK_PANIC,
            line as usize,
            column as usize,
            file.as_ptr() as usize,
            file.len(),
        )
    }
}

/// The `__chkstk` routine as assembly text, under the symbol name given (so the host tests can
/// assemble the very same instructions under another name). RAX = bytes the caller is about to
/// allocate below its RSP.
#[allow(unused_macros)]
#[rustfmt::skip]
macro_rules! chkstk_asm {
    ($name:literal) => {
        concat!(
            ".globl ", $name, "\n",
            ".p2align 4\n",
            $name, ":\n",
            // R10 = caller's RSP (above our return address) minus the request = lowest byte
            // the new frame needs. A request larger than the address probes down to 0 (faults).
            "    lea r10, [rsp + 8]\n",
            "    sub r10, rax\n",
            "    jae .L", $name, "_start\n",
            "    xor r10d, r10d\n",
            ".L", $name, "_start:\n",
            // R11 = start of the page RSP is in (already touched: our return address is there).
            "    mov r11, rsp\n",
            "    and r11, -4096\n",
            ".L", $name, "_loop:\n",
            "    cmp r11, r10\n",
            "    jbe .L", $name, "_done\n",
            "    sub r11, 4096\n",
            // A read touches the page (guard pages are hit top-down, in order).
            "    test byte ptr [r11], 0\n",
            "    jmp .L", $name, "_loop\n",
            ".L", $name, "_done:\n",
            "    ret\n",
        )
    };
}

#[cfg(all(target_os = "windows", target_arch = "x86_64", not(feature = "wdk")))]
core::arch::global_asm!(
    ".section .text,\"xr\"",
    chkstk_asm!("__chkstk"),
    // __CxxFrameHandler3: EXCEPTION_DISPOSITION ExceptionContinueSearch.
    ".globl __CxxFrameHandler3",
    ".p2align 4",
    "__CxxFrameHandler3:",
    "    mov eax, 1",
    "    ret",
    // _fltused: a data symbol whose presence is all that matters.
    ".section .rdata,\"dr\"",
    ".globl _fltused",
    ".p2align 2",
    "_fltused:",
    "    .long 0",
    ".text",
);

/// The `__chkstk` instructions, assembled on the Linux host under another name and called the
/// way LLVM calls it: they must leave RSP, RAX and every register but R10/R11 as they were, and
/// return for frames of any size the stack has room for.
#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod chkstk_tests {
    core::arch::global_asm!(".text", chkstk_asm!("tdinal_test_chkstk"));

    unsafe extern "C" {
        fn tdinal_test_chkstk();
    }

    /// Calls the routine with RAX = `size` and marker values in the other argument registers;
    /// returns (RSP before, RSP after, RAX, RCX, RDX, RSI, RDI, R8, R9) as seen after the call.
    fn call(size: u64) -> [u64; 9] {
        let (before, after): (u64, u64);
        let (mut rax, mut rcx, mut rdx, mut rsi, mut rdi, mut r8, mut r9) =
            (size, 0x11u64, 0x22u64, 0x33u64, 0x44u64, 0x55u64, 0x66u64);
        // SAFETY: the routine only reads stack pages between RSP and RSP - size (the test
        // thread's stack has room: 2 MiB, sizes below are at most 256 KiB) and clobbers R10,
        // R11 and the flags, which are declared; it does not move RSP.
        unsafe {
            core::arch::asm!(
                "mov {before}, rsp",
                "call {f}",
                "mov {after}, rsp",
                f = sym tdinal_test_chkstk,
                before = out(reg) before,
                after = out(reg) after,
                inout("rax") rax,
                inout("rcx") rcx,
                inout("rdx") rdx,
                inout("rsi") rsi,
                inout("rdi") rdi,
                inout("r8") r8,
                inout("r9") r9,
                out("r10") _,
                out("r11") _,
            );
        }
        [before, after, rax, rcx, rdx, rsi, rdi, r8, r9]
    }

    #[test]
    fn chkstk_preserves_registers_and_rsp() {
        for size in [0u64, 8, 4095, 4096, 4097, 12_000, 65_536, 256 * 1024] {
            let r = call(size);
            assert_eq!(r[0], r[1], "RSP moved for size {size}");
            assert_eq!(r[2], size, "RAX changed for size {size}");
            assert_eq!(
                &r[3..],
                &[0x11, 0x22, 0x33, 0x44, 0x55, 0x66],
                "size {size}"
            );
        }
    }
}
