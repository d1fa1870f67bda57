//! A host kernel for tests that records every system call and lets every
//! invocation succeed.

use septa_sel4::host::{self, HostKernel, Regs};
use std::boxed::Box;
use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;

/// The system calls made, registers as loaded.
pub type Seen = Rc<RefCell<Vec<Regs>>>;

struct Recorder(Seen);

impl HostKernel for Recorder {
    fn syscall(&mut self, regs: &mut Regs) {
        self.0.borrow_mut().push(*regs);
        regs.x[1] = 0; // every invocation succeeds
    }
}

/// Installs an IPC buffer and a recording kernel on this thread.
pub fn record() -> Seen {
    let seen = Rc::new(RefCell::new(Vec::new()));
    host::install_ipc_buffer();
    host::set_kernel(Box::new(Recorder(seen.clone())));
    seen
}
