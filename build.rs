//! The build script does one thing, and only on the Windows host build with the eWDK: it lets
//! wdk-build configure the KMDF link (WDK library paths, `FxDriverEntry`, …). The host build and the
//! cross-built `.sys` need nothing from it (the cross link options live in `.cargo/config.toml`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "wdk")]
    {
        if let Err(e) = wdk_build::configure_wdk_binary_build() {
            panic!("wdk-build could not configure the KMDF driver build: {e:?}");
        }
    }
}
