//! What the devices' host tests share: a guest's side of a split queue
//! (descriptors written, chains made available, the used ring read) and
//! garbage rings for the random tests.

use std::vec::Vec;

use super::mem::GuestMem;

/// Where the tests put guest RAM, buffers and two queues' rings
/// (guest-physical).
pub const BASE: u64 = 0x4000_0000;
pub const RAM: usize = 1 << 20;
pub const BUFS: u64 = BASE + 0x1_0000;
pub const SIZE: u16 = 16;
pub const QUEUES: [GuestQueue; 2] = [
    GuestQueue::new(BASE + 0x1000, BASE + 0x5000, BASE + 0x7000, SIZE),
    GuestQueue::new(BASE + 0x3000, BASE + 0x6000, BASE + 0x9000, SIZE),
];

/// The guest's view of one queue: where its rings are and its next
/// available index.
#[derive(Clone, Copy, Debug)]
pub struct GuestQueue {
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
    pub next_avail: u16,
}

impl GuestQueue {
    pub const fn new(desc: u64, avail: u64, used: u64, size: u16) -> Self {
        GuestQueue {
            desc,
            avail,
            used,
            size,
            next_avail: 0,
        }
    }

    /// Writes descriptor `i`.
    pub fn desc(&self, mem: &GuestMem, i: u16, addr: u64, len: u32, fl: u16, next: u16) {
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&fl.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
        mem.write(self.desc + 16 * u64::from(i), &d).unwrap();
    }

    /// Makes chain `head` available (the device is not notified).
    pub fn post(&mut self, mem: &GuestMem, head: u16) {
        let slot = u64::from(self.next_avail % self.size);
        mem.write_u16(self.avail + 4 + 2 * slot, head).unwrap();
        self.next_avail = self.next_avail.wrapping_add(1);
        mem.write_u16(self.avail + 2, self.next_avail).unwrap();
    }

    /// Moves the available index by `n` without writing entries.
    pub fn jump(&mut self, mem: &GuestMem, n: u16) {
        self.next_avail = self.next_avail.wrapping_add(n);
        mem.write_u16(self.avail + 2, self.next_avail).unwrap();
    }

    /// The used ring's entries so far: (head, length).
    pub fn used(&self, mem: &GuestMem) -> Vec<(u32, u32)> {
        let n = mem.read_u16(self.used + 2).unwrap();
        (0..n)
            .map(|i| {
                let e = self.used + 4 + 8 * u64::from(i % self.size);
                (mem.read_u32(e).unwrap(), mem.read_u32(e + 4).unwrap())
            })
            .collect()
    }

    /// Back to the start, as after a device reset: flags and index 0.
    pub fn restart(&mut self, mem: &GuestMem) {
        self.next_avail = 0;
        mem.write(self.avail, &[0; 4]).unwrap();
    }

    /// Garbage over the whole descriptor table and available ring:
    /// addresses half near `near`, half anywhere; lengths below
    /// `max_len`; any flags; `next` and heads a little past the ring.
    pub fn garble(&self, mem: &GuestMem, rng: &mut XorShift, near: u64, max_len: u32) {
        for i in 0..self.size {
            let addr = if rng.draw().is_multiple_of(2) {
                near + rng.draw() % 0x1000
            } else {
                rng.draw()
            };
            let len = rng.draw() as u32 % max_len;
            let fl = rng.draw() as u16 & 7;
            let next = rng.draw() as u16 % (self.size + 4);
            self.desc(mem, i, addr, len, fl, next);
            let head = rng.draw() as u16 % (self.size + 8);
            mem.write_u16(self.avail + 4 + 2 * u64::from(i), head)
                .unwrap();
        }
    }
}

/// What a driver writes to set up `queues` and make them ready, through
/// `write(register, value)` (virtio 1.2, 4.2.3.2).
pub fn make_ready(queues: &[GuestQueue], mut write: impl FnMut(u64, u32)) {
    use super::mmio::reg;
    for (i, q) in queues.iter().enumerate() {
        write(reg::QUEUE_SEL, i as u32);
        write(reg::QUEUE_NUM, u32::from(q.size));
        write(reg::QUEUE_DESC_LOW, q.desc as u32);
        write(reg::QUEUE_DESC_HIGH, (q.desc >> 32) as u32);
        write(reg::QUEUE_DRIVER_LOW, q.avail as u32);
        write(reg::QUEUE_DEVICE_LOW, q.used as u32);
        write(reg::QUEUE_READY, 1);
    }
}

/// A xorshift64 generator: the same garbage on every run.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn draw(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}
