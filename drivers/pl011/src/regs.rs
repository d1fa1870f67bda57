//! The PL011's registers (Arm PrimeCell UART PL011 technical reference
//! manual, r1p5, section 3.2), reached by volatile 32-bit accesses: the
//! one place in this driver that touches device memory.
#![allow(unsafe_code)]

/// Data: a write sends a byte; a read takes one, bits 8..=11 its errors.
const DR: usize = 0x000;
/// Flags.
const FR: usize = 0x018;
/// Line control: word length, FIFOs.
const LCR_H: usize = 0x02c;
/// Control: enables.
const CR: usize = 0x030;
/// Interrupt FIFO level select.
const IFLS: usize = 0x034;
/// Interrupt mask set/clear (1: enabled).
const IMSC: usize = 0x038;
/// Masked interrupt status.
const MIS: usize = 0x040;
/// Interrupt clear.
const ICR: usize = 0x044;

/// FR: the UART is still sending (its shift register is busy).
pub const FR_BUSY: u32 = 1 << 3;
/// FR: the receive FIFO is empty.
pub const FR_RXFE: u32 = 1 << 4;
/// FR: the transmit FIFO is full.
pub const FR_TXFF: u32 = 1 << 5;
/// FR: the transmit FIFO is empty.
pub const FR_TXFE: u32 = 1 << 7;

/// Bytes the transmit FIFO holds (16 in the PL011's first revisions, 32
/// from r1p5; the smaller is safe on all).
pub const TX_FIFO_DEPTH: usize = 16;

/// LCR_H: FIFOs on.
pub const LCR_H_FEN: u32 = 1 << 4;
/// LCR_H: eight data bits.
pub const LCR_H_WLEN_8: u32 = 0b11 << 5;

/// CR: the UART is on.
pub const CR_UARTEN: u32 = 1 << 0;
/// CR: transmit on.
pub const CR_TXE: u32 = 1 << 8;
/// CR: receive on.
pub const CR_RXE: u32 = 1 << 9;

/// Interrupt bits (IMSC, MIS, ICR): receive FIFO at its level.
pub const INT_RX: u32 = 1 << 4;
/// Transmit FIFO at or below its level.
pub const INT_TX: u32 = 1 << 5;
/// Receive timeout: bytes wait in the FIFO below its level.
pub const INT_RT: u32 = 1 << 6;
/// Every interrupt source (bits 0..=10).
pub const INT_ALL: u32 = 0x7ff;
/// The receive interrupts.
pub const INT_RX_ANY: u32 = INT_RX | INT_RT;

/// IFLS: both FIFO levels at 1/8 (receive bits 3..=5, transmit 0..=2).
pub const IFLS_EIGHTH: u32 = 0;

/// Only the data bits of DR.
pub const DR_DATA: u32 = 0xff;

/// A PL011 whose registers are mapped at a fixed address.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// The UART at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be the address of a PL011's 4 KiB register page, mapped
    /// uncached (device memory) for as long as the value lives, and no
    /// other code of this program may access it.
    pub unsafe fn new(base: usize) -> Pl011 {
        Pl011 { base }
    }

    fn read(&self, reg: usize) -> u32 {
        // SAFETY: `reg` is one of the offsets above, inside the register
        // page that `new`'s caller promised is mapped as device memory and
        // ours alone; a 32-bit volatile read of a PL011 register has no
        // effect beyond the device's own (DR pops a byte, as intended).
        unsafe { core::ptr::read_volatile((self.base + reg) as *const u32) }
    }

    fn write(&self, reg: usize, value: u32) {
        // SAFETY: as in `read`; the values written are the ones the
        // manual defines for each register.
        unsafe { core::ptr::write_volatile((self.base + reg) as *mut u32, value) }
    }

    pub fn flags(&self) -> u32 {
        self.read(FR)
    }

    pub fn send(&self, byte: u8) {
        self.write(DR, u32::from(byte));
    }

    /// The next received byte (errors in bits 8..=11 dropped).
    pub fn receive(&self) -> u8 {
        (self.read(DR) & DR_DATA) as u8
    }

    pub fn line_control(&self) -> u32 {
        self.read(LCR_H)
    }

    pub fn set_line_control(&self, v: u32) {
        self.write(LCR_H, v)
    }

    pub fn control(&self) -> u32 {
        self.read(CR)
    }

    pub fn set_control(&self, v: u32) {
        self.write(CR, v)
    }

    pub fn set_fifo_levels(&self, v: u32) {
        self.write(IFLS, v)
    }

    pub fn mask(&self) -> u32 {
        self.read(IMSC)
    }

    pub fn set_mask(&self, v: u32) {
        self.write(IMSC, v)
    }

    /// Interrupts pending and enabled.
    pub fn pending(&self) -> u32 {
        self.read(MIS)
    }

    pub fn clear(&self, bits: u32) {
        self.write(ICR, bits)
    }
}
