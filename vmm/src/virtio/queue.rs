//! One split virtqueue (virtio 1.2, 2.7) in guest RAM, from the device's
//! side: the guest's available ring and descriptor table are read and
//! checked, the used ring is written. Nothing the guest wrote is trusted:
//! an index, a descriptor number, an address or a length that does not
//! make sense is a [`QueueError`], and no access leaves guest RAM
//! ([`GuestMem`]).

use septa_queue::Shared;

use super::mem::{acquire, release, BadAddr, GuestMem};

/// The largest queue the VMM offers (QueueNumMax).
pub const MAX_SIZE: u16 = 256;
/// The most descriptors one chain may have (a chain is at most the
/// queue's size; Linux's longest, a fragmented frame, has about 20).
pub const MAX_CHAIN: usize = 64;

/// `virtq_desc.flags`.
pub mod flags {
    pub const NEXT: u16 = 1;
    pub const WRITE: u16 = 2;
    pub const INDIRECT: u16 = 4;
}

/// `virtq_avail.flags`: the guest asks for no interrupt.
pub const AVAIL_NO_INTERRUPT: u16 = 1;

/// Something the guest wrote in a queue that the device refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is not ready")]
    NotReady,
    #[error("a ring lies outside guest RAM ({0})")]
    Ring(BadAddr),
    #[error("the available index moved by {moved}, more than the queue's {size} entries")]
    AvailIndex { moved: u16, size: u16 },
    #[error("descriptor {head} is past the queue's {size} entries")]
    Head { head: u16, size: u16 },
    #[error("a chain names descriptor {next}, past the queue's {size} entries")]
    Next { next: u16, size: u16 },
    #[error("a chain is longer than {MAX_CHAIN} descriptors (or loops)")]
    TooLong,
    #[error("an indirect descriptor (not negotiated)")]
    Indirect,
    #[error("a buffer lies outside guest RAM ({0})")]
    Buffer(BadAddr),
}

/// One buffer of a chain: guest-physical, checked to lie in guest RAM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub len: u32,
    /// The device writes it (else it reads it).
    pub write: bool,
}

/// A descriptor chain the guest made available.
#[derive(Clone, Copy, Debug)]
pub struct Chain {
    pub head: u16,
    pub segs: [Segment; MAX_CHAIN],
    pub count: usize,
}

impl Chain {
    pub fn segments(&self) -> &[Segment] {
        &self.segs[..self.count]
    }

    /// Bytes the device may read (`write` false) or write (`write` true).
    pub fn bytes(&self, write: bool) -> u64 {
        self.segments()
            .iter()
            .filter(|s| s.write == write)
            .map(|s| u64::from(s.len))
            .sum()
    }
}

/// A chain taken from the available ring: walked and checked, or the
/// head whose chain failed its checks and why.
pub type Popped = Result<Chain, (u16, QueueError)>;

/// The device's view of one queue: what the guest configured through the
/// transport, and how far the device has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Queue {
    pub size: u16,
    pub ready: bool,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    /// The next available entry the device will look at.
    pub last_avail: u16,
    /// The device's used index.
    pub used_idx: u16,
}

impl Queue {
    /// The queue as the guest finds it after a reset.
    pub fn reset(&mut self) {
        *self = Queue {
            size: MAX_SIZE,
            ..Queue::default()
        };
    }

    /// Checks the rings of a queue the guest is making ready: the size a
    /// power of two up to [`MAX_SIZE`], each ring inside guest RAM.
    pub fn check(&self, mem: &GuestMem) -> Result<(), QueueError> {
        if self.size == 0 || self.size > MAX_SIZE || !self.size.is_power_of_two() {
            return Err(QueueError::Head {
                head: self.size,
                size: MAX_SIZE,
            });
        }
        let n = u64::from(self.size);
        for (addr, len) in [
            (self.desc, 16 * n),
            (self.avail, 6 + 2 * n),
            (self.used, 6 + 8 * n),
        ] {
            mem.offset(addr, len).map_err(QueueError::Ring)?;
        }
        Ok(())
    }

    fn live(&self) -> Result<u64, QueueError> {
        if !self.ready || self.size == 0 {
            return Err(QueueError::NotReady);
        }
        Ok(u64::from(self.size))
    }

    /// Whether the guest has made a chain available that the device has
    /// not taken.
    pub fn has_avail(&self, mem: &GuestMem) -> Result<bool, QueueError> {
        self.live()?;
        let idx = mem.read_u16(self.avail + 2).map_err(QueueError::Ring)?;
        Ok(idx != self.last_avail)
    }

    /// Takes the next available chain, checked: `Ok(None)` when there is
    /// none. A chain that fails its checks is still taken (its head is in
    /// the error's place: [`Queue::pop`] returns it with the error so the
    /// device can give it back used); an available index the guest moved
    /// too far is an error that takes nothing.
    pub fn pop(&mut self, mem: &GuestMem) -> Result<Option<Popped>, QueueError> {
        let n = self.live()?;
        let idx = mem.read_u16(self.avail + 2).map_err(QueueError::Ring)?;
        let moved = idx.wrapping_sub(self.last_avail);
        if moved == 0 {
            return Ok(None);
        }
        if moved > self.size {
            return Err(QueueError::AvailIndex {
                moved,
                size: self.size,
            });
        }
        acquire();
        let slot = u64::from(self.last_avail) % n;
        let head = mem
            .read_u16(self.avail + 4 + 2 * slot)
            .map_err(QueueError::Ring)?;
        self.last_avail = self.last_avail.wrapping_add(1);
        Ok(Some(self.walk(mem, head).map_err(|e| (head, e))))
    }

    /// Takes the next available chain that passes its checks: `Ok(None)`
    /// when there is none. Each chain before it that fails them is given
    /// back used with nothing written, and `refused` hears why (the
    /// device counts and reports it).
    pub fn pop_valid(
        &mut self,
        mem: &GuestMem,
        mut refused: impl FnMut(QueueError),
    ) -> Result<Option<Chain>, QueueError> {
        loop {
            match self.pop(mem)? {
                None => return Ok(None),
                Some(Ok(chain)) => return Ok(Some(chain)),
                Some(Err((head, error))) => {
                    refused(error);
                    self.push_used(mem, head, 0)?;
                }
            }
        }
    }

    /// Walks the chain from `head`, checked as [`pop`](Self::pop) does
    /// (a device that keeps only a chain's head walks it again when it
    /// completes the request).
    pub fn walk(&self, mem: &GuestMem, head: u16) -> Result<Chain, QueueError> {
        let size = self.size;
        if head >= size {
            return Err(QueueError::Head { head, size });
        }
        let mut chain = Chain {
            head,
            segs: [Segment::default(); MAX_CHAIN],
            count: 0,
        };
        let mut at = head;
        loop {
            if chain.count == MAX_CHAIN || chain.count == usize::from(size) {
                return Err(QueueError::TooLong);
            }
            let d = self.desc + 16 * u64::from(at);
            let mut raw = [0u8; 16];
            mem.read(d, &mut raw).map_err(QueueError::Ring)?;
            let addr = u64::from_le_bytes(raw[0..8].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(raw[8..12].try_into().unwrap_or_default());
            let fl = u16::from_le_bytes([raw[12], raw[13]]);
            let next = u16::from_le_bytes([raw[14], raw[15]]);
            if fl & flags::INDIRECT != 0 {
                return Err(QueueError::Indirect);
            }
            mem.offset(addr, u64::from(len))
                .map_err(QueueError::Buffer)?;
            chain.segs[chain.count] = Segment {
                addr,
                len,
                write: fl & flags::WRITE != 0,
            };
            chain.count += 1;
            if fl & flags::NEXT == 0 {
                return Ok(chain);
            }
            if next >= size {
                return Err(QueueError::Next { next, size });
            }
            at = next;
        }
    }

    /// Gives chain `head` back to the guest with `len` bytes written.
    pub fn push_used(&mut self, mem: &GuestMem, head: u16, len: u32) -> Result<(), QueueError> {
        let n = self.live()?;
        let slot = u64::from(self.used_idx) % n;
        let entry = self.used + 4 + 8 * slot;
        mem.write_u32(entry, u32::from(head))
            .map_err(QueueError::Ring)?;
        mem.write_u32(entry + 4, len).map_err(QueueError::Ring)?;
        self.used_idx = self.used_idx.wrapping_add(1);
        release();
        mem.write_u16(self.used + 2, self.used_idx)
            .map_err(QueueError::Ring)
    }

    /// Whether the guest wants an interrupt when buffers are used.
    pub fn wants_interrupt(&self, mem: &GuestMem) -> bool {
        // A guest whose ring cannot be read gets its interrupt: it will
        // find out for itself.
        mem.read_u16(self.avail)
            .map_or(true, |f| f & AVAIL_NO_INTERRUPT == 0)
    }
}

/// Copies `len` bytes of the device-readable segments of `chain`, from
/// byte `skip` of them, into `out`; returns how many were copied.
pub fn gather(
    mem: &GuestMem,
    chain: &Chain,
    mut skip: u64,
    out: &mut [u8],
) -> Result<usize, QueueError> {
    let mut done = 0;
    for s in chain.segments().iter().filter(|s| !s.write) {
        let mut len = u64::from(s.len);
        let mut addr = s.addr;
        if skip >= len {
            skip -= len;
            continue;
        }
        addr += skip;
        len -= skip;
        skip = 0;
        let n = (len as usize).min(out.len() - done);
        mem.read(addr, &mut out[done..done + n])
            .map_err(QueueError::Buffer)?;
        done += n;
        if done == out.len() {
            break;
        }
    }
    Ok(done)
}

/// Writes `data` into the device-writable segments of `chain` from byte
/// `at` of them; returns how many bytes went in.
pub fn scatter(
    mem: &GuestMem,
    chain: &Chain,
    mut at: u64,
    data: &[u8],
) -> Result<usize, QueueError> {
    let mut done = 0;
    for s in chain.segments().iter().filter(|s| s.write) {
        let len = u64::from(s.len);
        if at >= len {
            at -= len;
            continue;
        }
        let n = ((len - at) as usize).min(data.len() - done);
        mem.write(s.addr + at, &data[done..done + n])
            .map_err(QueueError::Buffer)?;
        at = 0;
        done += n;
        if done == data.len() {
            break;
        }
    }
    Ok(done)
}

/// Copies `len` bytes of the device-readable segments of `chain`, from
/// byte `skip` of them, into `dst` at `at`, a segment at a time; returns
/// how many were copied (fewer if the chain or `dst` ends first).
pub fn gather_into(
    mem: &GuestMem,
    chain: &Chain,
    skip: u64,
    dst: &Shared,
    at: usize,
    len: usize,
) -> Result<usize, QueueError> {
    copy_segments(mem, chain, false, skip, len, |window, done| {
        window.copy_to(0, dst, at + done, window.len()).is_ok()
    })
}

/// Copies `len` bytes of `src` from `from` into the device-writable
/// segments of `chain` from byte `at` of them, a segment at a time;
/// returns how many bytes went in (fewer if the chain or `src` ends
/// first).
pub fn scatter_from(
    mem: &GuestMem,
    chain: &Chain,
    at: u64,
    src: &Shared,
    from: usize,
    len: usize,
) -> Result<usize, QueueError> {
    copy_segments(mem, chain, true, at, len, |window, done| {
        src.copy_to(from + done, &window, 0, window.len()).is_ok()
    })
}

/// Walks the segments of `chain` the device writes (`write`) or reads,
/// from byte `skip` of them, handing `copy` each piece's window in guest
/// RAM and how many bytes came before it, until `len` bytes or `copy`
/// says no.
fn copy_segments(
    mem: &GuestMem,
    chain: &Chain,
    write: bool,
    mut skip: u64,
    len: usize,
    mut copy: impl FnMut(Shared, usize) -> bool,
) -> Result<usize, QueueError> {
    let mut done = 0;
    for s in chain.segments().iter().filter(|s| s.write == write) {
        if done == len {
            break;
        }
        let seg = u64::from(s.len);
        if skip >= seg {
            skip -= seg;
            continue;
        }
        let n = (seg - skip).min((len - done) as u64);
        let window = mem.window(s.addr + skip, n).map_err(QueueError::Buffer)?;
        skip = 0;
        if !copy(window, done) {
            break;
        }
        done += n as usize;
    }
    Ok(done)
}
