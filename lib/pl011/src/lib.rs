//! # septa-pl011: writing bytes to a PL011 UART by polling
//!
//! Microkit's release and benchmark configurations of seL4 have no kernel
//! printing: `DebugPutChar` does not exist there. Code that must still say
//! something (the conformance suite, the benchmark PDs) maps the board's
//! PL011 and writes to it with this crate: wait while the transmit FIFO is
//! full, then write the byte. No interrupts, no receive side, no
//! configuration (QEMU's PL011 transmits as it comes out of reset).
//!
//! Owns: two register accesses. Must not: be a serial driver (that is a
//! driver PD's work, with its interrupt and its clients), or touch anything
//! but the registers it is given. No dependencies.
#![no_std]

/// Data register.
const DR: usize = 0x00;
/// Flag register, and its "transmit FIFO full" bit.
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// A PL011 whose registers are mapped at a virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// The PL011 whose register page is mapped, uncached and writable, at
    /// `base` for as long as the value is used.
    ///
    /// # Safety
    ///
    /// `base` must be the start of a mapping of a PL011's registers (at
    /// least 0x1c bytes), device memory, readable and writable, that stays
    /// mapped while this value or a copy of it is used.
    pub const unsafe fn new(base: usize) -> Pl011 {
        Pl011 { base }
    }

    /// Sends one byte, waiting while the transmit FIFO is full.
    pub fn put(self, b: u8) {
        // SAFETY: `new`'s contract: FR and DR are registers of a mapped
        // PL011, accessed as aligned 32-bit words.
        unsafe {
            while core::ptr::read_volatile((self.base + FR) as *const u32) & FR_TXFF != 0 {}
            core::ptr::write_volatile((self.base + DR) as *mut u32, u32::from(b));
        }
    }

    /// Sends `bytes`, each `\n` preceded by `\r` as a serial console wants.
    pub fn write(self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn bytes_reach_the_data_register_with_crlf() {
        // A fake register page in memory: FR reads 0 (FIFO never full).
        let mut regs = [0u32; 8];
        // SAFETY: the array stands in for the registers for this test.
        let uart = unsafe { Pl011::new(regs.as_mut_ptr() as usize) };
        uart.write(b"a\n");
        // Only the last byte stays in DR; it was the newline.
        assert_eq!(regs[DR / 4], u32::from(b'\n'));
        assert_eq!(regs[FR / 4], 0);
    }
}
