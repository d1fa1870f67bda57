//! Links the suite with `link.ld`, on the target only (on the host the
//! crate builds as an ordinary program that lists its cases).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    }
    println!("cargo:rerun-if-changed=link.ld");
    // Compiles in the self-test cases (see src/cases/selftest.rs).
    println!("cargo:rerun-if-env-changed=SEPTA_CONFORMANCE_SELFTEST");
}
