//! # septa-link-script: linker scripts made from templates, for build scripts
//!
//! Every address a linker script needs is named once, in `lib/abi` (or in
//! the board profile), and the scripts are made from templates with those
//! values filled in. This crate is how: a build script (the runtime's, the
//! root task's, the kernel's) hands it a template and the values, and gets
//! the script written to its `OUT_DIR`.
//!
//! For programs built for `aarch64-unknown-none` (PDs and root tasks), the
//! script is [`IMAGE_SCRIPT`] on the linker's search path
//! ([`publish_image_script`]): the workspace's `.cargo/config.toml` links
//! every such program with `-Timage.ld`, so the program's crate needs no
//! build script; which kind of program it is follows from whether it
//! depends on `septa-runtime` or `septa-root-task`.
//!
//! Owns: the file name `image.ld` and the `@NAME@` template syntax. Must
//! not: know any address itself. Runs on the host only, in build scripts.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::{env, fs};

/// The script `.cargo/config.toml` links every aarch64-unknown-none program
/// with (`-Timage.ld`), looked up on the linker's search path.
pub const IMAGE_SCRIPT: &str = "image.ld";

/// `template` (a file of the crate being built) with every `@NAME@` of
/// `values` replaced by the value in hex; panics, failing the build, if a
/// placeholder is left.
pub fn fill(template: &str, values: &[(&str, u64)]) -> String {
    println!("cargo::rerun-if-changed={template}");
    let mut text =
        fs::read_to_string(template).unwrap_or_else(|e| panic!("reading {template}: {e}"));
    for (name, value) in values {
        text = text.replace(&format!("@{name}@"), &format!("{value:#x}"));
    }
    if let Some(at) = text.find('@').filter(|&at| text[at + 1..].contains('@')) {
        let rest: String = text[at..].chars().take(40).collect();
        panic!("{template}: a placeholder is not filled in: {rest}");
    }
    text
}

/// Writes `script` to `OUT_DIR/name` and returns its path.
pub fn write(name: &str, script: &str) -> PathBuf {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join(name);
    fs::write(&out, script).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    out
}

/// Fills `template` in, writes it as [`IMAGE_SCRIPT`] to `OUT_DIR`, and
/// puts `OUT_DIR` on the linker's search path of every crate that depends
/// on the one being built.
pub fn publish_image_script(template: &str, values: &[(&str, u64)]) {
    let path = write(IMAGE_SCRIPT, &fill(template, values));
    let dir = path.parent().expect("OUT_DIR");
    println!("cargo::rustc-link-search=native={}", dir.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_in_hex_and_none_may_be_left() {
        let dir = env::temp_dir().join(format!("link-script-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let t = dir.join("t.ld.in");
        fs::write(&t, ". = @BASE@; /* @BASE@ */").unwrap();
        let t = t.to_str().unwrap();
        assert_eq!(
            fill(t, &[("BASE", 0x20_0000)]),
            ". = 0x200000; /* 0x200000 */"
        );
        let left = std::panic::catch_unwind(|| fill(t, &[("OTHER", 1)]));
        assert!(left.is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
