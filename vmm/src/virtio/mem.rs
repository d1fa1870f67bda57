//! Guest RAM as the VMM sees it: a window of its own address space that
//! holds the guest-physical span `[base, base + len)`. Every access names
//! a guest-physical address and a length, and is refused unless it lies
//! wholly inside the span: what a hostile guest writes in a descriptor can
//! never make the VMM touch anything else.

use core::sync::atomic::{fence, Ordering};

use septa_queue::Shared;

/// Guest-physical bytes that are not (wholly) in the guest RAM the VMM
/// holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddr {
    pub gpa: u64,
    pub len: u64,
}

impl core::fmt::Display for BadAddr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} bytes at guest-physical {:#x} are not guest RAM",
            self.len, self.gpa
        )
    }
}

/// Guest RAM: guest-physical `base` is byte 0 of `mem`.
#[derive(Clone, Copy, Debug)]
pub struct GuestMem {
    base: u64,
    mem: Shared,
}

impl GuestMem {
    pub fn new(base: u64, mem: Shared) -> Self {
        GuestMem { base, mem }
    }

    /// The guest-physical span held.
    pub fn span(&self) -> (u64, u64) {
        (self.base, self.mem.len() as u64)
    }

    /// The offset of `[gpa, gpa + len)` in the window, if it lies inside.
    pub fn offset(&self, gpa: u64, len: u64) -> Result<usize, BadAddr> {
        let bad = BadAddr { gpa, len };
        let off = gpa.checked_sub(self.base).ok_or(bad)?;
        match off.checked_add(len) {
            Some(end) if end <= self.mem.len() as u64 => Ok(off as usize),
            _ => Err(bad),
        }
    }

    /// `[gpa, gpa + len)` as a window of its own.
    pub fn window(&self, gpa: u64, len: u64) -> Result<Shared, BadAddr> {
        let off = self.offset(gpa, len)?;
        self.mem
            .window(off, len as usize)
            .ok_or(BadAddr { gpa, len })
    }

    pub fn read(&self, gpa: u64, dst: &mut [u8]) -> Result<(), BadAddr> {
        let off = self.offset(gpa, dst.len() as u64)?;
        self.mem.read(off, dst).map_err(|_| BadAddr {
            gpa,
            len: dst.len() as u64,
        })
    }

    pub fn write(&self, gpa: u64, src: &[u8]) -> Result<(), BadAddr> {
        let off = self.offset(gpa, src.len() as u64)?;
        self.mem.write(off, src).map_err(|_| BadAddr {
            gpa,
            len: src.len() as u64,
        })
    }

    pub fn read_u16(&self, gpa: u64) -> Result<u16, BadAddr> {
        let mut b = [0; 2];
        self.read(gpa, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    pub fn read_u32(&self, gpa: u64) -> Result<u32, BadAddr> {
        let mut b = [0; 4];
        self.read(gpa, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    pub fn read_u64(&self, gpa: u64) -> Result<u64, BadAddr> {
        let mut b = [0; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    pub fn write_u16(&self, gpa: u64, v: u16) -> Result<(), BadAddr> {
        self.write(gpa, &v.to_le_bytes())
    }

    pub fn write_u32(&self, gpa: u64, v: u32) -> Result<(), BadAddr> {
        self.write(gpa, &v.to_le_bytes())
    }
}

/// What the guest wrote before an index it published is seen before the
/// entries that index covers are read (virtio 1.2, 2.7.13: the driver
/// writes entries, then a barrier, then the index).
pub fn acquire() {
    fence(Ordering::Acquire);
}

/// What the device wrote reaches the guest before the index that covers it.
pub fn release() {
    fence(Ordering::Release);
}
