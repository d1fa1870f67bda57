//! Writes the root-task linker script (template `root-task.ld.in`, with the
//! base from septa-abi) to OUT_DIR as `image.ld` and puts OUT_DIR on the
//! linker's search path of every crate that depends on this one; the
//! workspace's `.cargo/config.toml` links every aarch64-unknown-none program
//! with `-Timage.ld` (see lib/runtime/build.rs for the PD's counterpart).

use std::{env, fs, path::PathBuf};

fn main() {
    let template = "root-task.ld.in";
    println!("cargo::rerun-if-changed={template}");
    let text = fs::read_to_string(template).expect("read root-task.ld.in");
    let base = format!("{:#x}", septa_abi::ROOT_TASK_BASE);
    let script = text.replace("@ROOT_TASK_BASE@", &base);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::write(out.join("image.ld"), script).expect("write image.ld");
    println!("cargo::rustc-link-search=native={}", out.display());
}
