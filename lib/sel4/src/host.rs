//! Host stand-in for the kernel, so that code above the system calls can be
//! tested with `cargo test` on the development machine.
//!
//! A test installs a [`HostKernel`] on its own thread with [`set_kernel`]
//! (and, if the code under test touches the IPC buffer, a buffer with
//! [`install_ipc_buffer`]). Each system call then hands the kernel the
//! registers the real stub would load (x0..x8, syscall number in x7) and
//! takes back x0..x5, exactly as after `svc #0`.
//!
//! Only compiled off target; nothing here exists in a PD image.

use std::boxed::Box;
use std::cell::RefCell;

use crate::ipc_buffer::{self, IpcBuffer};

/// The general registers a system call uses: `x[0]` to `x[8]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub x: [u64; 9],
}

impl Regs {
    /// The syscall number (x7).
    pub fn syscall(&self) -> i64 {
        self.x[7] as i64
    }
}

/// Something that plays the kernel for the current thread.
pub trait HostKernel {
    /// Handle one system call: read the inputs from `regs` (and the IPC
    /// buffer, through [`crate::ipc_buffer`]), write results to x0..x5.
    fn syscall(&mut self, regs: &mut Regs);
}

std::thread_local! {
    static KERNEL: RefCell<Option<Box<dyn HostKernel>>> = const { RefCell::new(None) };
}

/// Installs `kernel` for this thread, returning the previous one.
pub fn set_kernel(kernel: Box<dyn HostKernel>) -> Option<Box<dyn HostKernel>> {
    KERNEL.with(|k| k.borrow_mut().replace(kernel))
}

/// Removes this thread's kernel and hands it back (to inspect what it saw).
pub fn take_kernel() -> Option<Box<dyn HostKernel>> {
    KERNEL.with(|k| k.borrow_mut().take())
}

/// Gives this thread a fresh, zeroed IPC buffer (leaked: tests are short).
pub fn install_ipc_buffer() {
    let buf: &'static mut IpcBuffer = Box::leak(Box::new(IpcBuffer::zeroed()));
    // SAFETY: the buffer is leaked, so it lives for the rest of the program,
    // and the host keeps the pointer per thread, so nothing else uses it.
    unsafe { ipc_buffer::set_ipc_buffer(buf) };
}

pub(crate) fn syscall(regs: &mut Regs) {
    // The kernel is taken out while it runs so that it may itself use the
    // IPC buffer helpers without a RefCell double borrow.
    let mut kernel = KERNEL
        .with(|k| k.borrow_mut().take())
        .expect("septa-sel4: system call on the host without a HostKernel installed (syscalls only run on aarch64-unknown-none)");
    kernel.syscall(regs);
    KERNEL.with(|k| {
        let mut slot = k.borrow_mut();
        if slot.is_none() {
            *slot = Some(kernel);
        }
    });
}
