//! # test-minimal: a PD crate of two files
//!
//! This file and its `Cargo.toml` are the whole crate: no build script, no
//! linker flags. It links as a PD all the same (septa-runtime puts its
//! linker script where the workspace's cargo configuration tells every
//! aarch64-unknown-none program to look), which `septa build` checks before
//! it packs the image. The PD checks it once more from the inside: its
//! entry point `_start` lies at the PD image base, where the runtime's
//! linker script puts it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::septa_sel4::abi::microkit::IMAGE_BASE;
use septa_runtime::{println, protection_domain, NullHandler};
use septa_test_report as report;

/// Where this image's `_start` is.
#[cfg(target_os = "none")]
fn entry() -> u64 {
    extern "C" {
        fn _start();
    }
    let start: unsafe extern "C" fn() = _start;
    start as usize as u64
}

/// On the host there is no image: the check holds trivially.
#[cfg(not(target_os = "none"))]
fn entry() -> u64 {
    IMAGE_BASE
}

fn init() -> NullHandler {
    let entry = entry();
    if entry == IMAGE_BASE {
        println!("{}", report::ok("minimal"));
    } else {
        let why = format_args!("_start is at {entry:#x}, not at the PD image base {IMAGE_BASE:#x}");
        println!("{}", report::fail("minimal", &why));
    }
    println!("{}", report::DONE);
    NullHandler
}

protection_domain!(init);
