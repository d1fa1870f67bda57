//! Writes the PD linker script (with the image base from septa-abi) to
//! OUT_DIR and publishes its path to dependents as
//! `DEP_SEPTA_RUNTIME_LINKER_SCRIPT`; links this crate's own examples with
//! it when building for the bare-metal target.

use std::{env, fs, path::PathBuf};

fn main() {
    let template = "pd.ld.in";
    println!("cargo::rerun-if-changed={template}");
    let text = fs::read_to_string(template).expect("read pd.ld.in");
    let base = format!("{:#x}", septa_abi::microkit::IMAGE_BASE);
    let script = text.replace("@IMAGE_BASE@", &base);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("pd.ld");
    fs::write(&out, script).expect("write pd.ld");
    let path = out.display();
    println!("cargo::metadata=linker_script={path}");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo::rustc-link-arg-examples=-T{path}");
    }
}
