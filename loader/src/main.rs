//! # septa-loader: from QEMU's reset to the kernel's entry
//!
//! QEMU puts the image (this loader's flat binary followed by a payload, see
//! `septa-image`) at the loader's link address and starts the CPU there at
//! EL2 with the MMU off. The loader
//!
//! 1. finds the payload and the device tree (x0 from firmware, else where
//!    the board leaves it),
//! 2. turns on the EL2 MMU with an identity map and the kernel's window
//!    (`virtual = physical + 0x80_0000_0000`, as the seL4 hyp kernel expects),
//!    with the MAIR_EL2 and TCR_EL2 values a real seL4 kernel requires,
//! 3. places the kernel ELF at its physical addresses, the DTB right after
//!    it, then the root task's ELF and the extra blob (seL4 insists on this
//!    order: kernel, DTB, user image at rising addresses),
//! 4. enters the kernel with the seL4 boot contract in x0..x5.
//!
//! It knows nothing of Septa's kernel: any kernel that follows the seL4 boot
//! contract (including a real seL4 16.0.0) boots the same way. The placement
//! arithmetic lives in `plan`, which is tested on the host; everything that
//! touches hardware is in `boot`, compiled for the target only.
#![cfg_attr(all(target_arch = "aarch64", target_os = "none"), no_std, no_main)]

mod plan;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod boot;

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn main() {
    eprintln!("septa-loader runs only on aarch64 bare metal; the septa tool builds it for you");
}
