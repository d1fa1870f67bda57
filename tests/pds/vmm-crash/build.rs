//! Links the PD with septa-runtime's linker script on the target.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let script = std::env::var("DEP_SEPTA_RUNTIME_LINKER_SCRIPT").unwrap();
        println!("cargo::rustc-link-arg-bins=-T{script}");
    }
}
