//! # septa-sel4: user-level bindings to the seL4 16.0.0 ABI
//!
//! One configuration: aarch64, MCS, hypervisor kernel, one core. Everything
//! here is written against the seL4 ABI alone (register convention of
//! `libsel4`, the interface XML files, the IPC buffer layout), so a program
//! built on this crate runs on Septa's kernel and on a real seL4 16.0.0
//! kernel alike.
//!
//! What this crate owns:
//! - the system call stubs ([`syscall`]), the only inline assembly of user
//!   level apart from the runtime's entry point;
//! - the IPC buffer of the current thread ([`ipc_buffer`]);
//! - typed capabilities [`Cap<T>`](Cap): outside this crate a slot number is
//!   never a bare integer;
//! - one method for every invocation label of [`septa_abi::Label`], built in
//!   two steps: a pure message builder ([`invocation::build`]) that host tests
//!   check word by word, then the call ([`invocation::perform`]);
//! - decoding of invocation errors ([`Error`]) and fault messages ([`fault`]);
//! - read access to BootInfo ([`bootinfo`]) and a debug console over
//!   `DebugPutChar` ([`debug`]).
//!
//! What it must not do: hold policy (that is the runtime's and the PDs'),
//! define ABI numbers (they live in `septa-abi`), or allocate.
//!
//! On the host (anything but `aarch64-unknown-none`) there is no `svc`: each
//! system call goes to a [`host::HostKernel`] that a test installs on its
//! thread, which sees exactly the registers the real stub would load. Without
//! one installed, a system call panics.
#![no_std]

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
extern crate std;

mod arch;
pub mod bootinfo;
pub mod cap;
pub mod debug;
pub mod error;
pub mod fault;
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub mod host;
pub mod invocation;
pub mod ipc_buffer;
mod object;
pub mod syscall;
pub mod user_context;

pub use cap::{cap_type, CPtr, Cap, CapType, FrameType};
pub use error::{Error, LookupFailure};
pub use object::{Breakpoint, SchedContextBindable, VmAttributes};
pub use septa_abi as abi;
pub use septa_abi::{CNodeCapData, CapRights, Label, MessageInfo, ObjectType};
pub use user_context::{SmcContext, UserContext};

/// A machine word.
pub type Word = u64;
/// The badge delivered with a message or a notification.
pub type Badge = u64;
