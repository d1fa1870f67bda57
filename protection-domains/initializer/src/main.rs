//! # septa-initializer: the root task
//!
//! Started by the kernel with BootInfo in x0. It will realise the system's
//! spec (create every object from untyped memory, build each PD's CSpace and
//! VSpace, start the PDs) and then stay on as the monitor that receives every
//! PD's faults. Today it greets the console: the boot path's first proof.
//!
//! The greeting carries a one-line BootInfo summary, the same on Septa's
//! kernel and on a real seL4 16.0.0 (`cargo septa run --kernel PATH`).
//! Built with `SEPTA_BOOTINFO_DUMP=1` in the environment, it also prints
//! everything the kernel handed over (see `report`): every BootInfo field,
//! the untyped list, the extra BootInfo headers and the type of the cap in
//! each of the first initial slots. docs/real-sel4.md records what a real
//! seL4 prints there, which is what Septa's kernel must match.
#![cfg_attr(all(target_arch = "aarch64", target_os = "none"), no_std, no_main)]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod report;
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod sys;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod rt {
    use core::fmt::Write;

    use crate::sys::Debug;

    // The kernel starts us with BootInfo in x0 and every other register,
    // SP included, zero. x1 and x2 carry to `initializer_main` what we
    // found in SP and in the OR of x1..x30, so the report can check that
    // (x9 collects the OR and is counted first, before it is overwritten).
    core::arch::global_asm!(
        r#"
        .section .text.entry, "ax"
        .global _start
    _start:
        orr     x9, x9, x1
        orr     x9, x9, x2
        orr     x9, x9, x3
        orr     x9, x9, x4
        orr     x9, x9, x5
        orr     x9, x9, x6
        orr     x9, x9, x7
        orr     x9, x9, x8
        orr     x9, x9, x10
        orr     x9, x9, x11
        orr     x9, x9, x12
        orr     x9, x9, x13
        orr     x9, x9, x14
        orr     x9, x9, x15
        orr     x9, x9, x16
        orr     x9, x9, x17
        orr     x9, x9, x18
        orr     x9, x9, x19
        orr     x9, x9, x20
        orr     x9, x9, x21
        orr     x9, x9, x22
        orr     x9, x9, x23
        orr     x9, x9, x24
        orr     x9, x9, x25
        orr     x9, x9, x26
        orr     x9, x9, x27
        orr     x9, x9, x28
        orr     x9, x9, x29
        orr     x2, x9, x30
        mov     x1, sp
        ldr     x9, =__stack_top
        mov     sp, x9
        bl      initializer_main
    1:  b       1b
    "#
    );

    #[no_mangle]
    extern "C" fn initializer_main(
        bootinfo: *const septa_abi::bootinfo::BootInfo,
        entry_sp: u64,
        entry_regs_or: u64,
    ) -> ! {
        // SAFETY: the kernel maps BootInfo at the address it passes in x0.
        let bi = unsafe { &*bootinfo };
        let _ = writeln!(
            Debug,
            "initializer: hello; BootInfo at {:p}, IPC buffer at {:#x}, root CNode 2^{} slots",
            bootinfo, bi.ipc_buffer, bi.init_thread_cnode_size_bits
        );
        crate::report::summary(bi);
        let _ = writeln!(Debug, "[septa-test] ok boot");
        // The full report makes debug calls (DebugCapIdentify) and a
        // SchedContext invocation; a kernel that lacks one stops us there,
        // after the boot is already reported, and `done` never comes.
        if option_env!("SEPTA_BOOTINFO_DUMP").is_some_and(|v| !v.is_empty() && v != "0") {
            crate::report::full(bi, bootinfo as u64, entry_sp, entry_regs_or);
        }
        let _ = writeln!(Debug, "[septa-test] done");
        loop {
            core::hint::spin_loop();
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let _ = writeln!(Debug, "initializer panicked: {info}");
        loop {}
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn main() {
    eprintln!("septa-initializer is a root task for aarch64; the septa tool builds it");
}
