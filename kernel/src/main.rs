//! The kernel binary: everything lives in the library; on the target the
//! library's `arch` module provides `_start` and the panic handler.
#![cfg_attr(all(target_arch = "aarch64", target_os = "none"), no_std, no_main)]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
use septa_kernel as _;

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn main() {
    eprintln!("septa-kernel runs only on aarch64 at EL2; the septa tool builds it for you");
}
