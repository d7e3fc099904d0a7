//! The kernel seam: the one module through which driver code reaches the Windows kernel.
//!
//! It holds nothing but facts about the kernel's ABI, written from Microsoft's public
//! documentation and the public-domain mingw-w64 headers:
//! - [`types`]: `#[repr(C)]` x64 layouts of the kernel structures the driver touches, each size and
//!   field offset pinned by a compile-time assertion (the host is x86_64 too, so the same checks
//!   run on host builds);
//! - [`status`]: `NTSTATUS` values and the other numeric constants (IRP major codes, flags, pool
//!   types, `DbgPrintEx` component and levels);
//! - [`imports`]: `extern "system"` declarations of the routines the driver imports from
//!   `ntoskrnl.exe`;
//! - [`inline`]: the routines the WDK headers define as macros or inline functions on x64 and which
//!   therefore have no export (`IoGetCurrentIrpStackLocation`, `KeGetCurrentIrql`, …).
//!
//! Where the imports come from depends on the build (docs/building.md):
//! - cross-built `.sys` (Linux, `--features driver`): `raw-dylib` imports of `ntoskrnl.exe`, so no
//!   import library is needed. `Zw*` routines are bound to `ntoskrnl.exe`, never `ntdll.dll`.
//! - Windows host with the eWDK (`--features wdk`): the same names forwarded to `wdk-sys`; that path
//!   cannot be compiled on Linux.
//! - host builds (`driver` or `tdi-emu` with `std`): plain `extern` declarations without a link
//!   attribute; nothing calls them unless an emulation defines symbols of those names.
//!
//! The seam stays thin: no policy, no ownership, no safe wrappers that hide a kernel contract.
//! Callers own every `unsafe` call and document it with a `// SAFETY:` comment.
#![allow(non_camel_case_types, non_snake_case, clippy::upper_case_acronyms)]

pub mod ext;
pub mod imports;
pub mod inline;
pub mod registry;
pub mod security;
pub mod status;
pub mod types;

pub use ext::*;
pub use imports::*;
pub use inline::*;
pub use status::*;
pub use types::*;
