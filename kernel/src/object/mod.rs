//! # Kernel objects other than CNodes and untyped memory
//!
//! One module per object type. Each owns its object's layout in memory and
//! the clean-up that runs when the last cap to an object is deleted (the
//! `finalise` functions, called from `delete::finalise_cap`). The
//! capability layer knows nothing about the insides of these objects.
//!
//! ## The zero rule
//!
//! **Every object's initial state is all-zero bytes.** Untyped memory is
//! cleared when an untyped is reset (and device memory is never used for
//! kernel objects), so a freshly retyped object is zero, and Retype does
//! not run per-type constructors. Whoever lays out a TCB, endpoint,
//! notification, reply, scheduling context or VCPU must therefore choose
//! encodings in which zero means "fresh": an idle endpoint, an inactive
//! thread with no bound objects, an empty refill list, and so on. Where
//! seL4 initialises something non-zero at creation (a TCB's domain and
//! default user SPSR, a VCPU's default system registers), the owning module
//! either encodes it relative to the default or runs its set-up from the
//! list of new objects that `untyped::decode_untyped_invocation` returns.
//!
//! The modules here were created by the capability layer with what could
//! be done without the thread, IPC, scheduling and VM code; each says what
//! those must add under `Not yet:`.

pub mod domain;
pub mod endpoint;
pub mod irq;
pub mod notification;
pub mod reply;
pub mod sched_context;
pub mod sched_control;
pub mod smc;
pub mod tcb;
pub mod vcpu;
pub mod vspace;
