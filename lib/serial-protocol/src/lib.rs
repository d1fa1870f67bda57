//! # septa-serial-protocol: what serial clients, drivers and virtualisers say
//!
//! A client depends on this crate, not on a driver: whichever driver the
//! system description wires to it speaks one of the two protocols here.
//! Protocols of the other device classes get crates of their own beside
//! this one (`lib/net-protocol`, `lib/block-protocol`) when their drivers
//! come.
//!
//! - **The serial subsystem** (sDDF 0.7's, with its queue layouts): a
//!   driver PD owns the UART (`drivers/pl011`); a transmit virtualiser
//!   (`protection-domains/serial-virt-tx`) multiplexes every client's
//!   output onto it, and a receive virtualiser
//!   (`protection-domains/serial-virt-rx`) hands input to one client at a
//!   time. Each pair of neighbours shares a serial queue (`septa-queue`'s
//!   [`serial`](septa_queue::serial) ring, sDDF's `serial_queue_t`) in a
//!   region laid out as [`region`] says, and wakes the other with
//!   notifications: the producer always notifies after publishing bytes,
//!   the consumer only when the producer asked for space (sDDF's rule).
//!   [`wiring`] names every symbol the system tool patches and every
//!   channel, [`config`] is the virtualisers' optional labels (names,
//!   prefixes, colours, who has the keyboard first), [`keys`] the key
//!   sequence that moves the keyboard from one client to another. A system
//!   gets all of it from `[serial]` in its description (the tool expands
//!   it) or wired by hand to these conventions. `septa-runtime` is the
//!   client's side: `println!` goes through it when a PD is a client.
//! - **Calls** ([`calls`]): a client makes protected procedure calls to a
//!   driver that serves it alone (`drivers/virtio-console` today).
//!
//! Owns: the labels, layouts, names and encodings above, tested on the
//! host. Must not: make system calls or touch registers or shared memory
//! (the caller passes register accessors and windows), so that it stays
//! free of the runtime and of `unsafe`. Dependencies: `septa-abi` (the
//! number of message registers a call carries).
#![no_std]
#![forbid(unsafe_code)]

pub mod calls;
pub mod config;
pub mod keys;
pub mod region;
pub mod wiring;

pub use config::Colour;
