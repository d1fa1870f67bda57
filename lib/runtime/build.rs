//! Writes the PD linker script (template `pd.ld.in`, with the image base
//! from septa-abi) to OUT_DIR as `image.ld` and puts OUT_DIR on the linker's
//! search path of every crate that depends on this one. The workspace's
//! `.cargo/config.toml` links every aarch64-unknown-none program with
//! `-Timage.ld`, so each PD (and this crate's examples) links with it and
//! needs no build script of its own.

use std::{env, fs, path::PathBuf};

fn main() {
    let template = "pd.ld.in";
    println!("cargo::rerun-if-changed={template}");
    let text = fs::read_to_string(template).expect("read pd.ld.in");
    let base = format!("{:#x}", septa_abi::microkit::IMAGE_BASE);
    let script = text.replace("@IMAGE_BASE@", &base);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::write(out.join("image.ld"), script).expect("write image.ld");
    println!("cargo::rustc-link-search=native={}", out.display());
}
