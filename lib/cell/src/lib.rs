//! # septa-cell: what a cell's program is written against
//!
//! A cell (`[cell.NAME]` in `system.toml`) is a workload with exactly the
//! CPU, memory and services it was declared. Its program is safe Rust on
//! this crate, `#![forbid(unsafe_code)]`: it prints (if given the console),
//! reads the time and asks for timeouts (if given the timer), notifies and
//! calls the PDs it was given channels to, by their names, opens sockets
//! on the ports it was given ([`net`]), keeps keys and values in its
//! namespace of the key-value store ([`kv`]), and allocates from a heap
//! of the size declared. It never sees a capability, a slot
//! or a system call: those are the runtime's, underneath.
//!
//! ```no_run
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! #![forbid(unsafe_code)]
//! use septa_cell::{cell, println, Cell, Events};
//!
//! struct Hello;
//! impl Cell for Hello {
//!     fn notified(&mut self, events: Events) {
//!         if events.timer() {
//!             println!("tick");
//!         }
//!     }
//! }
//! cell!(|| {
//!     septa_cell::timer::every(1_000_000_000).ok();
//!     Hello
//! });
//! ```
//!
//! The isolation does not rest on this crate: the kernel holds a cell to
//! what the tool gave it whatever its program does (`tests/systems/
//! cell-fuzz` is a cell that makes raw system calls on purpose).
//!
//! Owns: the cell's view of its peers (the table the tool patches), its
//! heap allocator ([`heap`]), the `cell!` entry. Must not: expose the
//! runtime's channels, capabilities or system calls.
//!
//! Dependencies: `septa-runtime` (entry, event loop, printing, the timer
//! client), `septa-cells` (the peer table and heap symbols), `septa-pmu`
//! (the counter), `septa-net-client` (sockets through the network stack),
//! `septa-kv-protocol` (the key-value store's calls).
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod heap;

use septa_cells::peers;
use septa_runtime::{mr_get, mr_set, msginfo_new, Channel, ChannelSet, Handler, MessageInfo};

pub use alloc::{boxed::Box, string::String, vec::Vec};
pub use septa_runtime::{print, println};

septa_runtime::patched! {
    /// The cell's channels by peer name, written by the tool.
    static PEERS: [u8; peers::SIZE] = "septa_cell_peers", [0; peers::SIZE];
}

septa_runtime::setvar! {
    static HEAP_VADDR = "septa_cell_heap";
    static HEAP_SIZE = "septa_cell_heap_size";
}

/// The cell's name (its PD's).
pub use septa_runtime::pd_name as name;

/// Why a request to a peer or service failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellError {
    /// The cell was not declared this right (no `pp = true`, `notify =
    /// false`, or no such service).
    NotDeclared,
    /// The peer faulted while serving the call.
    PeerFaulted,
    /// Too many words for one message.
    TooLong,
    /// The timer refused (a period too short).
    Refused,
}

impl core::fmt::Display for CellError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CellError::NotDeclared => "the cell was not declared that right",
            CellError::PeerFaulted => "the peer faulted while serving the call",
            CellError::TooLong => "too many words for one message",
            CellError::Refused => "the timer refused the request",
        })
    }
}

/// A PD the cell has a channel to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    channel: u8,
    flags: u8,
}

/// The peer named `name`, if the cell was given a channel to it.
pub fn peer(name: &str) -> Option<Peer> {
    let table = PEERS.get();
    peers::find(&table, name).map(|p| Peer {
        channel: p.id,
        flags: p.flags,
    })
}

/// Most words a call carries each way.
pub const MAX_WORDS: usize = 64;

impl Peer {
    fn channel(self) -> Channel {
        Channel::new(self.channel)
    }

    /// Signals the peer.
    pub fn notify(self) -> Result<(), CellError> {
        if self.flags & peers::NOTIFY == 0 {
            return Err(CellError::NotDeclared);
        }
        self.channel().notify().map_err(|_| CellError::NotDeclared)
    }

    /// Calls the peer with `label` and `args`; its reply's words go to
    /// `out` (as many as fit). Returns the reply's label and length.
    pub fn call(
        self,
        label: u64,
        args: &[u64],
        out: &mut [u64],
    ) -> Result<(u64, usize), CellError> {
        if self.flags & peers::PP == 0 {
            return Err(CellError::NotDeclared);
        }
        if args.len() > MAX_WORDS {
            return Err(CellError::TooLong);
        }
        for (i, a) in args.iter().enumerate() {
            mr_set(i, *a);
        }
        let reply = self
            .channel()
            .pp_call(msginfo_new(label, args.len() as u64))
            .map_err(|e| match e {
                septa_runtime::ChannelError::ServerFaulted => CellError::PeerFaulted,
                _ => CellError::NotDeclared,
            })?;
        let n = (reply.length() as usize).min(MAX_WORDS);
        for (i, o) in out.iter_mut().take(n).enumerate() {
            *o = mr_get(i);
        }
        Ok((reply.label(), n))
    }
}

/// What woke the cell.
#[derive(Clone, Copy, Debug)]
pub struct Events(ChannelSet);

impl Events {
    /// Its timeout came (a cell with the `timer` service).
    pub fn timer(self) -> bool {
        septa_runtime::timer::channel().is_some_and(|c| self.0.contains(c))
    }

    /// `peer` notified it.
    pub fn from(self, peer: Peer) -> bool {
        self.0.contains(peer.channel())
    }

    /// The network stack notified it: something changed in its sockets
    /// (data, a connection, a state); retry what could not be done.
    pub fn net(self) -> bool {
        septa_net_client::Net::get().is_some_and(|n| self.0.contains(n.channel()))
    }
}

/// Sockets, for a cell given the `net` service: on the ports its `listen`
/// and `connect` rules name, which the network stack enforces (anything
/// else is [`NetError::Denied`](net::NetError::Denied)). Every call is
/// non-blocking; [`Events::net`] says when to retry.
pub mod net {
    pub use septa_net_client::{Info, Listener, NetError, Read, SocketState, Stream, UdpSocket};

    /// The cell's connection to the network stack.
    #[derive(Clone, Copy, Debug)]
    pub struct Net(septa_net_client::Net);

    /// The stack, if the cell was given the `net` service.
    pub fn get() -> Option<Net> {
        septa_net_client::Net::get().map(Net)
    }

    impl Net {
        /// Listens on TCP `port`.
        pub fn listen(&self, port: u16) -> Result<Listener, NetError> {
            self.0.listen(port)
        }

        /// Connects to `ip`:`port` over TCP.
        pub fn connect(&self, ip: [u8; 4], port: u16) -> Result<Stream, NetError> {
            self.0.connect(ip, port)
        }

        /// Binds UDP `port`.
        pub fn udp_bind(&self, port: u16) -> Result<UdpSocket, NetError> {
            self.0.udp_bind(port)
        }

        /// The stack's address and state.
        pub fn info(&self) -> Result<Info, NetError> {
            self.0.info()
        }
    }
}

/// The key-value store, for a cell given the `kv` service: keys of 1 to
/// [`kv::max_key`] bytes in the cell's own namespace (it never sees
/// another's), values up to [`kv::MAX_VALUE`], at most its quota of bytes
/// of keys and values together (beyond it a put is
/// [`Status::Quota`](kv::Status::Quota) and nothing is written).
pub mod kv {
    use septa_kv_protocol::KvClient;
    pub use septa_kv_protocol::{KvError, Status, MAX_VALUE};

    /// The cell's handle on its namespace.
    pub struct Kv(KvClient);

    /// The store, if the cell was given the `kv` service.
    pub fn get() -> Option<Kv> {
        KvClient::from_setvars().map(Kv)
    }

    /// The longest key a cell with a namespace of `namespace_len` bytes
    /// may use.
    pub const fn max_key(namespace_len: usize) -> usize {
        septa_kv_protocol::MAX_KEY - namespace_len - 1
    }

    /// What [`Kv::status`] says of the namespace.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Usage {
        pub keys: u64,
        /// Bytes of keys and values, charged against the quota.
        pub bytes: u64,
        pub quota: u64,
    }

    impl Kv {
        /// Stores `value` under `key`; returns once it is durable.
        pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
            self.0.put(key, value)
        }

        /// Copies `key`'s value into `out`; returns its length.
        pub fn get(&self, key: &[u8], out: &mut [u8]) -> Result<usize, KvError> {
            self.0.get(key, out)
        }

        /// Removes `key`; returns once durable.
        pub fn delete(&self, key: &[u8]) -> Result<(), KvError> {
            self.0.delete(key)
        }

        /// Hands each of the cell's keys after `after` (all if empty) to
        /// `f`, in order.
        pub fn list(&self, after: &[u8], f: impl FnMut(&[u8])) -> Result<(), KvError> {
            self.0.list(after, f)
        }

        /// The namespace's keys, bytes and quota.
        pub fn status(&self) -> Result<Usage, KvError> {
            let [keys, bytes, quota, ..] = self.0.status()?;
            Ok(Usage { keys, bytes, quota })
        }
    }
}

/// A cell's program: what it does when woken.
pub trait Cell {
    /// A timeout or a peer's notification (several at once, perhaps).
    fn notified(&mut self, events: Events) {
        let _ = events;
    }
}

/// The time and timeouts, from the timer service.
pub mod timer {
    use super::CellError;
    use septa_runtime::timer as t;

    fn map(e: t::TimerError) -> CellError {
        match e {
            t::TimerError::Refused => CellError::Refused,
            _ => CellError::NotDeclared,
        }
    }

    /// Nanoseconds since the timer started.
    pub fn now() -> Result<u64, CellError> {
        t::now().map_err(map)
    }

    /// One timeout, `ns` from now (replacing any other).
    pub fn after(ns: u64) -> Result<(), CellError> {
        t::set_timeout(ns).map_err(map)
    }

    /// A timeout every `ns` (replacing any other).
    pub fn every(ns: u64) -> Result<(), CellError> {
        t::set_periodic(ns).map_err(map)
    }

    /// No more timeouts.
    pub fn cancel() -> Result<(), CellError> {
        t::cancel().map_err(map)
    }
}

/// The system counter, which every cell may read without a service (it
/// says how much time passed, nothing about anyone else).
pub mod clock {
    /// Counter ticks since boot.
    pub fn ticks() -> u64 {
        septa_pmu::system_counter()
    }

    /// Ticks a second.
    pub fn frequency() -> u64 {
        septa_pmu::counter_frequency()
    }

    /// `ticks` in nanoseconds.
    pub fn ticks_to_ns(ticks: u64) -> u64 {
        let hz = frequency().max(1);
        (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
    }
}

/// Bytes of the heap in use and in all.
pub fn heap_usage() -> (usize, usize) {
    heap_state::usage()
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod heap_state {
    use core::alloc::{GlobalAlloc, Layout};

    use septa_runtime::PdRefCell;

    use crate::heap::FreeList;

    static LIST: PdRefCell<Option<FreeList>> = PdRefCell::new(None);

    fn with<R>(f: impl FnOnce(&mut FreeList) -> R) -> Option<R> {
        LIST.with(|l| {
            let list = l.get_or_insert_with(|| {
                let (base, size) = (super::HEAP_VADDR.get(), super::HEAP_SIZE.get());
                if base == 0 {
                    return FreeList::EMPTY;
                }
                // SAFETY: the tool mapped the cell's heap region, read-write
                // and nothing else's, at `base` for `size` bytes (the symbols
                // it patched say so), and only this list uses it.
                unsafe { FreeList::new(base as usize, size as usize) }
            });
            f(list)
        })
    }

    pub fn usage() -> (usize, usize) {
        with(|l| l.usage()).unwrap_or((0, 0))
    }

    struct Heap;

    // SAFETY: blocks come from the free list, which hands out disjoint,
    // aligned blocks of the heap region or null; `dealloc` gives back what
    // `alloc` returned with the same layout (GlobalAlloc's contract).
    unsafe impl GlobalAlloc for Heap {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            with(|l| l.alloc(layout.size(), layout.align())).unwrap_or(core::ptr::null_mut())
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller passes a block `alloc` returned with this
            // layout (GlobalAlloc's contract).
            with(|l| unsafe { l.free(ptr, layout.size()) });
        }
    }

    #[global_allocator]
    static HEAP: Heap = Heap;
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod heap_state {
    pub fn usage() -> (usize, usize) {
        (0, 0)
    }
}

/// For the macro only.
#[doc(hidden)]
pub mod _private {
    pub use septa_runtime::protection_domain;

    use super::*;

    /// The runtime's handler around a cell.
    pub struct Adapter<C: Cell>(pub C);

    impl<C: Cell> Handler for Adapter<C> {
        fn notified(&mut self, channels: ChannelSet) {
            self.0.notified(Events(channels));
        }

        fn protected(&mut self, _: Channel, _: MessageInfo) -> MessageInfo {
            // Nobody is given a channel on which to call a cell.
            msginfo_new(u64::MAX, 0)
        }
    }
}

/// The cell's entry: `init` runs once and returns its [`Cell`].
#[macro_export]
macro_rules! cell {
    ($init:expr) => {
        $crate::_private::protection_domain!(|| $crate::_private::Adapter(($init)()));
    };
}
