//! # septa-root-task: what makes a program a root task
//!
//! A root task is the one thread the kernel starts itself, with BootInfo's
//! address in x0 (Septa's are the initializer and the kernel conformance
//! suite). Two things make a program one, and both are here so that they
//! are written once:
//!
//! - its layout: the build script writes the linker script (template
//!   `root-task.ld.in`, linked at `septa_abi::ROOT_TASK_BASE`) as `image.ld`
//!   on the linker's search path, and the workspace's `.cargo/config.toml`
//!   links every aarch64-unknown-none program with `-Timage.ld`, so a root
//!   task crate has no build script;
//! - its entry: [`entry!`] expands, in the program, to `_start`, which sets
//!   SP to the top of the stack the linker script reserves and calls the
//!   program's main function with BootInfo's address in x0.
//!
//! ```ignore
//! septa_root_task::entry!(main, stack = 64 * 1024);
//!
//! extern "C" fn main(bootinfo: *const septa_root_task::BootInfo) -> ! { ... }
//! ```
//!
//! The linker script defines `__image_start`, `__image_end`,
//! `__stack_bottom` and `__stack_top` for the program to use.
//!
//! Owns: the root task's link layout and first instructions. Must not:
//! hold anything a root task does once it runs (that is `septa-sel4` and
//! the program itself).
#![no_std]
#![forbid(unsafe_code)]

pub use septa_abi::bootinfo::BootInfo;

/// Defines `_start`, the root task's entry, and the size of its stack.
///
/// `entry!(main, stack = BYTES)`: `_start` (in section `.text.entry`, which
/// the linker script puts first) sets SP to `__stack_top` and branches and
/// links to `main`, an `extern "C" fn(*const BootInfo) -> !`, with the x0
/// the kernel passed. `BYTES` (a multiple of 16) becomes the absolute
/// symbol `__root_task_stack_size`, by which the linker script sizes the
/// stack.
#[macro_export]
macro_rules! entry {
    ($main:path, stack = $stack:expr) => {
        const _: () = ::core::assert!($stack > 0 && $stack % 16 == 0);
        const _: extern "C" fn(*const $crate::BootInfo) -> ! = $main;

        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        ::core::arch::global_asm!(
            ".global __root_task_stack_size",
            ".set __root_task_stack_size, {stack}",
            ".section .text.entry, \"ax\"",
            ".global _start",
            "_start:",
            "    ldr     x9, =__stack_top",
            "    mov     sp, x9",
            "    bl      {main}",
            "1:  b       1b",
            stack = const $stack,
            main = sym $main,
        );
    };
}
