//! # septa-runtime: the library every protection domain links
//!
//! A Rust counterpart of Microkit 2.3.0's libmicrokit, with its ABI: the
//! same entry conditions, CSpace slots, badges and patched symbols, so a PD
//! built on it runs under Septa's tool or Microkit's, on Septa's kernel or
//! seL4 16.0.0.
//!
//! What it owns: the entry point `_start` and start-up ([`entry`]), the
//! event loop ([`Handler`]), channels and their permission checks
//! ([`Channel`]), child PDs ([`Child`]), the vCPUs of a VM ([`Vcpu`]), single-threaded global state
//! ([`PdCell`]), the patched symbols and `setvar`
//! variables ([`symbols`], [`setvar!`]), `print!`/`println!` with a
//! swappable sink ([`print`]), the serial subsystem's client side
//! ([`serial`]: printing through the serial virtualiser when the system
//! makes the PD a client, and raw bytes both ways), the timer client
//! ([`timer`]: the time and timeouts from the timer driver), the `log`
//! backend, a bump heap for PDs that allocate only at start-up ([`heap`]),
//! and the panic handler
//! (which faults the PD: [`panic`]). What it must not do: make policy
//! decisions for the PD (restarts, routing) or touch any capability slot the
//! PD ABI does not give it.
//!
//! ## Writing a PD
//!
//! ```no_run
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! use septa_runtime::{println, protection_domain, Channel, ChannelSet, Handler};
//!
//! struct Hello;
//! impl Handler for Hello {
//!     fn notified(&mut self, channels: ChannelSet) {
//!         println!("{}: notified on {channels}", septa_runtime::pd_name());
//!     }
//! }
//! protection_domain!(|| { println!("hello from {}", septa_runtime::pd_name()); Hello });
//! ```
//!
//! ## Linking
//!
//! PDs link at 0x200000 (`septa_abi::microkit::IMAGE_BASE`) with the linker
//! script this crate's build script writes (template `pd.ld.in`) as
//! `image.ld` on the linker's search path of every crate that depends on
//! it; the workspace's `.cargo/config.toml` links every program built for
//! `aarch64-unknown-none` with `-Timage.ld`. So a PD crate is a
//! `Cargo.toml` that depends on this crate and a `src/main.rs`, nothing
//! more, built with `cargo build --target aarch64-unknown-none` (or by
//! `cargo septa build`, which also refuses an image not linked that way).
//! On the host the same crate builds as an ordinary program whose `main`
//! says it is a PD.
#![no_std]

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
extern crate std;

mod channel;
mod child;
pub mod entry;
mod event_loop;
mod handler;
pub mod heap;
mod ipc_counts;
pub mod logger;
mod message;
mod notification;
pub mod panic;
mod pd_cell;
pub mod print;
pub mod serial;
pub mod symbols;
#[cfg(test)]
mod test_kernel;
pub mod timer;
mod vcpu;

pub use channel::{Channel, ChannelError, ChannelSet, ChannelSetIter};
pub use child::Child;
pub use handler::{Handler, NullHandler};
pub use message::{mr_get, mr_set, msginfo_new};
pub use notification::OwnNotification;
pub use pd_cell::{PdCell, PdRefCell};
pub use septa_abi::MessageInfo;
pub use septa_sel4;
pub use symbols::{is_passive, pd_name, PdName, Setvar, SetvarArray, SetvarTexts, Text};
pub use vcpu::Vcpu;

/// For the macros only.
#[doc(hidden)]
pub mod _private {
    pub use crate::entry::run_main;
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    pub use crate::entry::{check_init, host_main};
}

/// Cycles this PD's thread has been scheduled for (the kernel's
/// utilisation tracking, in the benchmark configuration; under QEMU's
/// `-icount` a cycle is an instruction); `None` in other configurations.
/// Reads the PD's own TCB (Microkit's slot for it).
pub fn own_cycles() -> Option<u64> {
    let me = septa_sel4::Cap::from_bits(septa_abi::microkit::slot::TCB);
    septa_sel4::syscall::benchmark_get_thread_utilisation(me)
        .map(|u| u[septa_abi::benchmark_utilisation::TCB_UTILISATION])
}
