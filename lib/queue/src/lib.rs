//! # septa-queue: shared-memory queues between protection domains
//!
//! Every device path in Septa (console, network, block, the VMM's virtio
//! devices) moves data the way the seL4 Device Driver Framework (sDDF)
//! does: two PDs share a region holding a single-producer/single-consumer
//! ring, the producer fills slots at the `tail`, the consumer empties them
//! at the `head`, and each wakes the other with a notification, but only
//! when the other asked for one. This crate is those rings.
//!
//! **Owns**: the ring layouts (sDDF 0.7's, byte for byte), their index
//! arithmetic, memory ordering and validation, and the signalling protocol.
//! **Must not**: make system calls (the caller notifies its channel when
//! this crate says a signal is owed), allocate, or trust anything it reads
//! from shared memory. **Dependencies**: none; `proptest` for tests only.
//! `unsafe` lives in one module ([`Shared`]), nowhere else.
//!
//! ## The queues
//!
//! | module | sDDF 0.7 type | entries | index width | signal flag |
//! |---|---|---|---|---|
//! | [`net`] | `net_queue_t` (free and active pairs) | [`net::BuffDesc`] (16 B) | 16 bits | `consumer_signalled` (consumer waits for entries) |
//! | [`serial`] | `serial_queue_t` + a data region | bytes | 32 bits | `producer_signalled` (producer waits for space) |
//! | [`blk`] | `blk_req_queue_t`, `blk_resp_queue_t` | [`blk::Request`] (32 B), [`blk::Response`] (12 B) | 32 bits | none (always notify) |
//!
//! Each module's docs draw its layout; its tests assert every offset and
//! size, and that bytes written by this crate land where a C program using
//! sDDF's headers reads them. The capacity is fixed when the system is
//! built (the tool sizes the regions and patches the capacity into both
//! PDs); a handle takes it from its own configuration, never from shared
//! memory, exactly as sDDF keeps it in the private queue handle.
//!
//! ## The signalling protocol
//!
//! A PD is event-driven: it runs when notified, processes its queues, and
//! returns to its event loop, where it blocks. The side that may wait (a
//! net consumer for entries, a serial producer for space) ends each round
//! like this:
//!
//! 1. process until it cannot go on (queue empty, or full);
//! 2. ask for a signal (store 0 in the flag), then **look again**;
//! 3. if the look finds work, withdraw the request (store 1) and go back to
//!    1; otherwise block.
//!
//! The other side, after publishing work, signals only if the flag asks,
//! and clears it when it does:
//!
//! ```
//! use septa_queue::{net::{BuffDesc, NetRing}, Consumer, Idle, Producer};
//! # let active = septa_queue::host::leak(4096);
//! # let mut rx = Consumer::<NetRing>::attach(active, 128).unwrap();
//! # let mut tx = Producer::<NetRing>::attach(active, 128).unwrap();
//! # let notify = || {};
//! // Producer: publish, then the notification phase.
//! tx.enqueue(BuffDesc { io_or_offset: 0, len: 60, oid: 0 }).unwrap();
//! if tx.take_signal_request() {
//!     notify(); // e.g. `Channel::notify` in septa-runtime
//! }
//! // Consumer, in `notified`: drain, then idle the safe way.
//! loop {
//!     while let Some(buf) = rx.dequeue().unwrap() {
//!         // ... use buf ...
//! #       let _ = buf;
//!     }
//!     match rx.try_idle().unwrap() {
//!         Idle::Block => break,        // back to the event loop
//!         Idle::Reprocess => continue, // work arrived meanwhile
//!     }
//! }
//! ```
//!
//! The look again in step 2 is what makes the protocol correct: without it,
//! a producer that publishes after the consumer's last look but before its
//! request sees no request and does not signal, and the consumer blocks
//! with work waiting, for ever if the producer is then waiting for it. The
//! protocol is model-checked with Spin (`model/signal.pml`, run by this
//! crate's tests): no lost wake-up, no deadlock, at most one signal per
//! request; and the checker finds the lost wake-up in each broken variant
//! (the re-check removed, or either side's store and load out of order).
//!
//! Signals are owed only for requests: a producer that finds no request
//! sends nothing, however much it publishes; a request is answered by at
//! most one signal (the notifier clears it). A signal can still arrive
//! after the waiter withdrew its request on its re-check (the notifier
//! read the request just before); the waiter then wakes, finds nothing new
//! or less than it expected, and idles again. That is the price of never
//! losing one, and the model bounds it.
//!
//! ## Memory ordering
//!
//! Indices are published with `Release` stores and read with `Acquire`
//! loads, so entries are complete before the peer can see them and read
//! only after. The handshake on the flag is a store then a load on each
//! side (request then re-check; publish then read the request), which needs
//! a `SeqCst` fence on both sides between the store and the load: with both
//! fences, at least one side sees the other's store, and the protocol's
//! argument holds on a weakly ordered multiprocessor, not only on one core.
//! See `ring.rs` for the per-operation argument.
//!
//! ## A peer is never trusted
//!
//! A PD that reads an index or a descriptor written by another PD treats it
//! as input. A peer that writes garbage into the queue (indices, flag,
//! descriptors) can make its own traffic fail, but never make the reader:
//!
//! - **touch memory outside the region**: each handle keeps its own index
//!   privately (it never reads it back), slots come from that index masked
//!   by the capacity, and the window was checked at attach to hold every
//!   slot; descriptor offsets and lengths are validated against the data
//!   region before use ([`net::Buffers::check`], [`blk::Request::check`]),
//!   and data is copied in and out only through bounds-checked
//!   [`Shared::read`] and [`Shared::write`];
//! - **loop for ever**: every call does work bounded by the capacity
//!   (batch helpers stop after one capacity's worth). The event-loop
//!   pattern (drain, `try_idle`, again on `Reprocess`) goes round again
//!   only if the peer published more meanwhile, which on one core a peer
//!   of lower priority than the reader cannot do while the reader runs;
//! - **fault**: no panic, no out-of-range arithmetic; an index that puts
//!   the length outside `0..=capacity` (or inside this side's unpublished
//!   work) is a [`PeerFault`], returned and counted by the handle
//!   (`faults()`, a [`PeerFaults`]); `report()` records faults found above
//!   the ring (a bad descriptor, a buffer handed back that was never lent:
//!   [`net::Loans`]) so a virtualiser can report the peer by name. Attaching
//!   never fails because of what the peer wrote (only for a bad
//!   configuration), and a queue works again as soon as the peer's index
//!   is consistent again.
//!
//! A peer can still hurt itself: drop its own entries, receive garbage it
//! wrote, or stop signalling and starve its own queue.
//!
//! ## Where Septa differs from sDDF 0.7, and why
//!
//! - **Validation** (above): sDDF trusts indices and documents the gap
//!   ("we currently have no protection against invalid writes").
//! - **Own indices are private**: sDDF reads its own index back from shared
//!   memory; Septa keeps it locally and only writes it. Same bytes in
//!   memory, immune to a peer rewriting them.
//! - **Fences**: sDDF 0.7's net queue follows the flag store with a
//!   release fence where SMP is configured and with nothing otherwise (its
//!   barriers were being reworked, its docs say), and a release fence does
//!   not keep the request store before the re-check's load. Septa puts a
//!   `SeqCst` fence on both sides of every flag handshake, as sDDF's
//!   serial queue does: one `dmb ish` each, which also keeps the compiler
//!   from swapping the store and the load on one core.
//! - **Index arithmetic**: sDDF computes a 16-bit net queue's `tail - head`
//!   in C's promoted `int`, so its "full" test misses after the indices
//!   wrap; Septa reduces it modulo 2^16. Identical while the queue holds
//!   fewer entries than the wrap distance, which sDDF's net queues always
//!   do (they are sized to hold every buffer and never test for full).
//! - **Capacity**: sDDF needs a power of two (`index % capacity` across the
//!   wrap) without checking; Septa refuses any other capacity at attach.
//! - **Flag values**: sDDF writes 0 and 1; Septa writes the same and reads
//!   any non-zero value as "no signal wanted".
//! - **Serial batching**: [`serial::Producer::write_all`] writes a line
//!   whole or not at all, so a full queue never tears it; sDDF's batch
//!   enqueue writes what fits.
//!
//! ## API at a glance
//!
//! - Memory: [`Shared`] (an unsafe constructor over a mapped region, then
//!   safe bounds-checked [`Shared::read`]/[`Shared::write`]/[`Shared::window`]).
//! - Descriptor rings: [`Producer<R>`] (`attach`, `enqueue`, `stage` then
//!   `commit`, `enqueue_batch`, `space`, `is_full`) and [`Consumer<R>`]
//!   (`attach`, `dequeue`, `take` then `commit`, `drain`, `len`, `is_empty`),
//!   for `R` = [`net::NetRing`], [`blk::RequestRing`], [`blk::ResponseRing`].
//! - Signals on net rings: consumer `request_signal`, `cancel_signal`,
//!   `try_idle`; producer `require_signal`, `cancel_signal`,
//!   `take_signal_request`.
//! - Pairs: [`net::Source`]/[`net::Sink`] (free + active),
//!   [`blk::Client`]/[`blk::Server`] (requests + responses).
//! - Net buffers: [`net::Buffers`] (descriptor per buffer, `check`, `fill`),
//!   [`net::Loans`] (who holds which buffer).
//! - Serial: [`serial::Producer`] (`enqueue`, `write`, `write_all`,
//!   `stage` then `commit`, `try_idle(want)`), [`serial::Consumer`]
//!   (`dequeue`, `read`, `peek` ahead then `skip`, `transfer` to another queue,
//!   `take_signal_request`).
//! - Block: [`blk::Request`], [`blk::Response`], [`blk::Plug`],
//!   [`blk::StorageRegion`].
//! - Errors: [`PeerFault`] (the peer broke the protocol), [`QueueError`]
//!   (full, or a peer fault), [`AttachError`]; every handle's `faults()`
//!   ([`PeerFaults`]: count and last) and `report(fault)`.
//!
//! ## Tests
//!
//! Host `cargo test -p septa-queue` (part of `cargo septa test`):
//!
//! - layouts: every offset and size, and a C compiler's view of sDDF's
//!   structures declared in C, which must agree (`tests/c_layout.rs`);
//! - every operation, wrap-around at the index width, faults and recovery;
//! - `tests/stress.rs`: two threads, the real handles, 2,000,000 net buffers
//!   round a free/active pair and 8,000,000 serial bytes, bursts of random
//!   size with jitter at the protocol's race windows, a simulated seL4
//!   notification that fails the test as soon as both sides sleep with
//!   nothing pending (a lost wake-up); nothing lost, reordered or
//!   duplicated, no more signals than requests;
//! - `tests/hostile.rs`: property tests that scribble random values over
//!   live queues inside guard bands (the reader never panics, stays inside
//!   its windows, returns), and a virtualiser serving an honest client
//!   beside one whose thread scribbles over its queues all along;
//! - `tests/spin.rs`: the Spin model, and its broken variants that must
//!   fail.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod blk;
#[cfg(not(target_os = "none"))]
pub mod host;
pub mod net;
mod ring;
pub mod serial;
mod shared;

pub use ring::{
    AttachError, Consumer, ConsumerSignals, Entry, Idle, PeerFault, PeerFaults, Producer,
    QueueError, Ring, Slot, Width, U16, U32,
};
pub use shared::{OutOfBounds, Shared};
