//! A serial queue region: one queue and its bytes, shared by its producer
//! and its consumer.
//!
//! ```text
//! offset 0       sDDF's serial_queue_t (tail, head, producer_signalled), 12 bytes
//! offset 0x1000  the data: `capacity` bytes, byte i of the stream at i mod capacity
//! ```
//!
//! sDDF keeps the queue header and the data in two regions; here they are
//! two windows of one region, the data on its own pages, so an sDDF PD
//! wired by hand gets `queue.vaddr = V` and `data.vaddr = V + 0x1000`. The
//! capacity is the region's size less the header page, a power of two; both
//! ends take it from the region's size as the tool patched it (a setvar),
//! never from shared memory.

use septa_queue::serial::{self, layout};
use septa_queue::{AttachError, Shared};

/// Where the queue header (`serial_queue_t`) starts.
pub const HEADER: usize = 0;

/// Where the data starts: the page after the header's.
pub const DATA: usize = 0x1000;

/// The size of a region holding a queue of `capacity` bytes.
pub const fn size(capacity: u32) -> u64 {
    DATA as u64 + capacity as u64
}

/// The capacity of a queue in a region of `size` bytes, if that size is the
/// header page and a power of two of data bytes.
pub const fn capacity(size: u64) -> Option<u32> {
    if size <= DATA as u64 {
        return None;
    }
    let cap = size - DATA as u64;
    if cap > u32::MAX as u64 || !cap.is_power_of_two() {
        return None;
    }
    Some(cap as u32)
}

/// The capacity of every client's queues, each way, unless the description
/// says otherwise: a few lines of output and of input.
pub const CLIENT_CAPACITY: u32 = 4096;

/// The capacity of the queue from the transmit virtualiser to the driver:
/// room for a whole client queue with a prefix and colour on every line.
pub const fn driver_tx_capacity(client_capacity: u32) -> u32 {
    client_capacity * 4
}

/// The capacity of the queue from the driver to the receive virtualiser.
pub const DRIVER_RX_CAPACITY: u32 = 4096;

/// The queue header's and the data's windows in a region of
/// `region.len()` bytes, and the capacity; `None` if the length is not a
/// header page and a power of two of data bytes.
pub fn windows(region: &Shared) -> Option<(Shared, Shared, u32)> {
    let cap = capacity(region.len() as u64)?;
    let header = region.window(HEADER, layout::SIZE)?;
    let data = region.window(DATA, cap as usize)?;
    Some((header, data, cap))
}

/// The writing end of the queue in `region` (its length as patched).
pub fn producer(region: &Shared) -> Result<serial::Producer, AttachError> {
    let (q, d, cap) = windows(region).ok_or(AttachError::TooSmall {
        need: DATA + 1,
        have: region.len(),
    })?;
    serial::Producer::attach(q, d, cap)
}

/// The reading end of the queue in `region`.
pub fn consumer(region: &Shared) -> Result<serial::Consumer, AttachError> {
    let (q, d, cap) = windows(region).ok_or(AttachError::TooSmall {
        need: DATA + 1,
        have: region.len(),
    })?;
    serial::Consumer::attach(q, d, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_attach_to_one_region() {
        let r = septa_queue::host::leak(size(64) as usize);
        let mut p = producer(&r).unwrap();
        let mut c = consumer(&r).unwrap();
        p.write(b"hi").unwrap();
        let mut out = [0u8; 4];
        assert_eq!(c.read(&mut out).unwrap(), 2);
        let mut data = [0u8; 2];
        r.read(DATA, &mut data).unwrap();
        assert_eq!(&data, b"hi", "the bytes sit on the data page");
        let mut tail = [0u8; 4];
        r.read(HEADER, &mut tail).unwrap();
        assert_eq!(u32::from_le_bytes(tail), 2, "the tail heads the region");
        let odd = septa_queue::host::leak(0x1000 + 100);
        assert!(producer(&odd).is_err());
    }

    #[test]
    fn sizes_and_capacities_agree() {
        assert_eq!(size(4096), 0x2000);
        assert_eq!(capacity(0x2000), Some(4096));
        assert_eq!(capacity(0x1000 + 64), Some(64));
        assert_eq!(capacity(0x1000), None);
        assert_eq!(capacity(0x3000), Some(0x2000));
        assert_eq!(capacity(0x1000 + 0x3000), None, "not a power of two");
        assert_eq!(capacity(0), None);
    }
}
