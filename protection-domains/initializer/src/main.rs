//! # septa-initializer: the root task
//!
//! Started by the kernel with BootInfo in x0. It will realise the system's
//! spec (create every object from untyped memory, build each PD's CSpace and
//! VSpace, start the PDs) and then stay on as the monitor that receives every
//! PD's faults. Today it greets the console: the boot path's first proof.
#![cfg_attr(all(target_arch = "aarch64", target_os = "none"), no_std, no_main)]

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod rt {
    use core::fmt::{self, Write};

    core::arch::global_asm!(
        r#"
        .section .text.entry, "ax"
        .global _start
    _start:
        ldr     x9, =__stack_top
        mov     sp, x9
        bl      initializer_main
    1:  b       1b
    "#
    );

    fn put_char(c: u8) {
        // SAFETY: DebugPutChar takes the byte in x0 and returns nothing; the
        // kernel preserves every other register across the call.
        unsafe {
            core::arch::asm!("svc #0", in("x0") c as u64, in("x7") septa_abi::syscall::DEBUG_PUT_CHAR, options(nostack));
        }
    }

    struct Debug;
    impl Write for Debug {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            s.bytes().for_each(put_char);
            Ok(())
        }
    }

    #[no_mangle]
    extern "C" fn initializer_main(bootinfo: *const septa_abi::bootinfo::BootInfo) -> ! {
        // SAFETY: the kernel maps BootInfo at the address it passes in x0.
        let bi = unsafe { &*bootinfo };
        let _ = writeln!(
            Debug,
            "initializer: hello; BootInfo at {:p}, IPC buffer at {:#x}, root CNode 2^{} slots",
            bootinfo, bi.ipc_buffer, bi.init_thread_cnode_size_bits
        );
        let _ = writeln!(Debug, "[septa-test] ok boot");
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
