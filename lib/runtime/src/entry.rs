//! The entry point and start-up of a protection domain.
//!
//! What the system tool sets up before the first instruction (Microkit
//! 2.3.0 does the same, and Septa's tool follows it):
//! - the image is loaded at its link addresses (base 0x200000), every
//!   segment with its whole memory size, zero-filled past the file bytes,
//!   patched symbols already written; so `.bss` is zero and must NOT be
//!   cleared again here (patched symbols of libmicrokit programs live in
//!   `.bss`);
//! - the IPC buffer frame is mapped at the top user page,
//!   `septa_abi::microkit::IPC_BUFFER_VADDR` (0xff_ffff_f000 here), and the
//!   TCB's IPC buffer points there;
//! - below it one unmapped guard page, then the stack (`stack_size`
//!   bytes, 8 KiB by default) ending at `STACK_TOP` (0xff_ffff_e000);
//! - the TCB's PC is `_start` (the ELF entry) and SP is `STACK_TOP`; the
//!   other registers are zero.
//!
//! `_start` therefore only makes sure SP is set (if a loader left it zero it
//! takes `STACK_TOP`, which the tool maps anyway), clears the frame pointer
//! and link register so backtraces end here, and branches to
//! `__septa_pd_entry`, which [`crate::protection_domain!`] defines in the PD
//! crate and which calls [`run_main`].

use septa_abi::microkit::{slot, IPC_BUFFER_VADDR};
use septa_abi::MessageInfo;
use septa_sel4::CPtr;

use crate::channel::{defer, Deferred};
use crate::{event_loop, logger, serial, symbols, Handler};

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
core::arch::global_asm!(
    ".section .text.start, \"ax\", %progbits",
    ".global _start",
    ".type _start, %function",
    "_start:",
    "    mov x9, sp",
    "    cbnz x9, 1f",
    "    ldr x9, ={stack_top}",
    "    mov sp, x9",
    "1:",
    "    mov x29, xzr",
    "    mov x30, xzr",
    "    b __septa_pd_entry",
    ".size _start, . - _start",
    stack_top = const septa_abi::microkit::STACK_TOP,
);

/// Start-up after `_start`: IPC buffer, the serial client (if the PD is
/// one), logger, the PD's `init`, the
/// passive PD's signal to the monitor, then the event loop.
pub fn run_main<H: Handler>(init: impl FnOnce() -> H) -> ! {
    set_up_ipc_buffer();
    core::hint::black_box(symbols::touch_all());
    serial::init();
    logger::init();
    crate::ipc_counts::init();
    let handler = init();
    if symbols::is_passive() {
        // A passive PD tells the monitor it has finished init, with an
        // empty message on its monitor endpoint, sent together with the
        // first receive; the monitor then takes its scheduling context
        // away, and the PD runs only on its callers' time from then on.
        defer(Deferred::new(
            CPtr::from_bits(slot::MONITOR_EP),
            MessageInfo::new(0, 0, 0, 0),
        ));
    }
    event_loop::run(handler)
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn set_up_ipc_buffer() {
    // SAFETY: the PD ABI (Microkit's, kept by Septa's tool) maps this
    // thread's IPC buffer frame read-write at IPC_BUFFER_VADDR for the whole
    // life of the PD and registers that address with the kernel; the
    // runtime never creates references to it.
    unsafe {
        septa_sel4::ipc_buffer::set_ipc_buffer(
            IPC_BUFFER_VADDR as *mut septa_sel4::ipc_buffer::IpcBuffer,
        )
    };
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn set_up_ipc_buffer() {
    // The host has no top page: a host test that runs a whole PD gets a
    // buffer of its own.
    let _ = IPC_BUFFER_VADDR;
    septa_sel4::host::install_ipc_buffer();
}

/// The PD's IPC buffer, for the system calls that go through a
/// [`Registered`](septa_sel4::ipc_buffer::Registered) handle: on the target
/// a constant (no load and null check before each use).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[inline(always)]
pub(crate) fn ipc_buffer() -> septa_sel4::ipc_buffer::Registered {
    // SAFETY: the PD ABI maps the IPC buffer frame read-write at
    // IPC_BUFFER_VADDR (non-null) before the PD's first instruction, for
    // its whole life, and `run_main` registers that address before any
    // other code of the PD runs, so before any system call made through
    // this handle; the runtime makes no references to it.
    unsafe {
        septa_sel4::ipc_buffer::Registered::from_raw(
            IPC_BUFFER_VADDR as *mut septa_sel4::ipc_buffer::IpcBuffer,
        )
    }
}

/// The host's stand-in: the buffer a test installed (the host has no top
/// page).
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub(crate) fn ipc_buffer() -> septa_sel4::ipc_buffer::Registered {
    septa_sel4::ipc_buffer::Registered::current().expect("an IPC buffer is installed")
}

/// Only checks that `init` makes a [`Handler`] (host builds of a PD).
pub fn check_init<H: Handler>(_init: impl FnOnce() -> H) {}

/// What a PD binary does when built for the host (so `cargo test
/// --workspace` can build it): say so and stop.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub fn host_main(name: &str) -> ! {
    std::eprintln!("{name} is a Septa protection domain: build it for aarch64-unknown-none");
    std::process::exit(2)
}

/// Declares the PD's entry: `init` is a function (or closure) that sets up
/// the PD and returns its [`Handler`].
///
/// ```no_run
/// struct MyHandler;
/// impl septa_runtime::Handler for MyHandler {}
///
/// fn init() -> MyHandler {
///     MyHandler
/// }
/// septa_runtime::protection_domain!(init);
/// ```
///
/// On `aarch64-unknown-none` this defines `__septa_pd_entry`, the function
/// `_start` jumps to; elsewhere it defines a `main` that explains the PD
/// only runs on the target.
#[macro_export]
macro_rules! protection_domain {
    ($init:expr) => {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        #[no_mangle]
        extern "C" fn __septa_pd_entry() -> ! {
            $crate::_private::run_main($init)
        }

        #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
        fn main() {
            // Type-check `init` on the host too.
            $crate::_private::check_init($init);
            $crate::_private::host_main(env!("CARGO_PKG_NAME"))
        }
    };
}
