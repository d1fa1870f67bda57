//! aarch64 at EL2: entry and exception vectors, the kernel's own page
//! tables, stage-2 address spaces for threads, the console, and boot.
//!
//! Only this module (and `memory`) holds `unsafe` hardware access; the
//! portable core calls the small safe functions it exports (through
//! `crate::machine`, apart from the window and the console).
mod boot;
pub(crate) mod cache;
pub(crate) mod console;
pub(crate) mod debug;
pub(crate) mod entry;
pub(crate) mod fpu;
pub(crate) mod gic;
pub(crate) mod mmu;
pub(crate) mod pmu;
pub(crate) mod smc;
pub(crate) mod stack;
pub(crate) mod stage2;
mod sysreg;
pub(crate) mod timer;
pub(crate) mod trap;
pub(crate) mod vcpu;
