//! Links the initializer with `link.ld`, on the target only, and rebuilds
//! it when the report switch `SEPTA_BOOTINFO_DUMP` changes.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    }
    println!("cargo:rerun-if-changed=link.ld");
    // `SEPTA_BOOTINFO_DUMP=1` turns on the full BootInfo report (src/report.rs).
    println!("cargo:rerun-if-env-changed=SEPTA_BOOTINFO_DUMP");
}
