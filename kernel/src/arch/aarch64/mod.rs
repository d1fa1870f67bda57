//! aarch64 at EL2: entry and exception vectors, the kernel's own page
//! tables, stage-2 address spaces for threads, the console, and boot.
//!
//! Only this module (and `memory`) holds `unsafe` hardware access; the
//! portable core calls the small safe functions it exports.
pub mod boot;
pub mod cache;
pub mod console;
pub mod entry;
pub mod fpu;
pub mod gic;
pub mod mmu;
pub mod smc;
pub mod stage2;
pub mod sysreg;
pub mod timer;
pub mod trap;
