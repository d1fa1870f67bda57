//! The virtio devices the VMM offers its guest: the virtio-mmio transport
//! (modern, version 2), split virtqueues in guest RAM, and the devices
//! behind them.
//!
//! | module | what |
//! |---|---|
//! | [`mem`] | guest RAM as the VMM sees it: every access bounds-checked |
//! | [`queue`] | one split virtqueue: the guest's descriptor chains, the used ring |
//! | [`mmio`] | the virtio-mmio register block of one device |
//! | [`net`] | the network device, on the net virtualisers' queues |
//! | [`blk`] | the disk, on the block virtualiser's queues |
//! | [`console`] | the console (`hvc0`), on the serial subsystem |
//!
//! What is emulated is what Linux's `virtio_mmio` and `virtio_net` need
//! and no more (the list is in `docs/vmm.md`): no legacy interface, no
//! packed rings, no indirect descriptors, no event index, no offloads.
//! Everything the guest writes in its rings is checked before use; a
//! descriptor outside guest RAM, a chain that loops or is too long, an
//! index that jumps past the ring are errors the device reports (the
//! chain comes back used with nothing written, or the device asks for a
//! reset), never an access outside the guest's RAM.

pub mod blk;
pub mod console;
pub mod mem;
pub mod mmio;
pub mod net;
pub mod queue;
#[cfg(test)]
pub mod testing;

pub use mem::GuestMem;
