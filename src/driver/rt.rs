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

#[cfg(all(target_os = "windows", target_arch = "x86_64", not(feature = "wdk")))]
core::arch::global_asm!(
    // __chkstk: RAX = bytes the caller is about to allocate below its RSP.
    ".section .text,\"xr\"",
    ".globl __chkstk",
    ".p2align 4",
    "__chkstk:",
    // R10 = caller's RSP (above our return address) minus the request = lowest byte needed.
    "    lea r10, [rsp + 8]",
    "    sub r10, rax",
    "    jae .Ltdinal_chkstk_start",
    "    xor r10d, r10d", // a request larger than the address: probe down to 0 (will fault)
    ".Ltdinal_chkstk_start:",
    // R11 = start of the page RSP is in (already touched: our return address is there).
    "    mov r11, rsp",
    "    and r11, -4096",
    ".Ltdinal_chkstk_loop:",
    "    cmp r11, r10",
    "    jbe .Ltdinal_chkstk_done",
    "    sub r11, 4096",
    "    test byte ptr [r11], 0", // a read touches the page
    "    jmp .Ltdinal_chkstk_loop",
    ".Ltdinal_chkstk_done:",
    "    ret",
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
