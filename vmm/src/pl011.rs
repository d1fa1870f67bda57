//! The guest's console: an Arm PL011 UART (Arm DDI 0183G), emulated.
//!
//! Its behaviour follows QEMU's model of the same device (hw/char/pl011.c),
//! which Linux's `amba-pl011` driver is known to work with on the `virt`
//! board: transmitting never waits (the transmit FIFO is always empty and
//! the transmit interrupt is raised after every byte), the receive FIFO
//! holds 16 bytes (1 with FIFOs off) and raises the receive interrupt
//! from the first byte. The interrupt line is the OR of the raw
//! interrupts the guest unmasked; it goes to the distributor as SPI 1,
//! level-triggered.
//!
//! Baud rate, line control and the modem lines are stored and ignored:
//! the console is bytes, not a wire.

use crate::gicd::AccessError;

/// Register offsets.
pub mod reg {
    pub const DR: u64 = 0x000;
    pub const RSR: u64 = 0x004;
    pub const FR: u64 = 0x018;
    pub const ILPR: u64 = 0x020;
    pub const IBRD: u64 = 0x024;
    pub const FBRD: u64 = 0x028;
    pub const LCR_H: u64 = 0x02c;
    pub const CR: u64 = 0x030;
    pub const IFLS: u64 = 0x034;
    pub const IMSC: u64 = 0x038;
    pub const RIS: u64 = 0x03c;
    pub const MIS: u64 = 0x040;
    pub const ICR: u64 = 0x044;
    pub const DMACR: u64 = 0x048;
    pub const ID_BASE: u64 = 0xfe0;
    pub const FRAME: u64 = 0x1000;
}

/// Flag register bits.
const FR_RXFE: u32 = 1 << 4;
const FR_RXFF: u32 = 1 << 6;
const FR_TXFE: u32 = 1 << 7;
/// Interrupt bits (RIS, IMSC, MIS, ICR).
pub const INT_RX: u32 = 1 << 4;
pub const INT_TX: u32 = 1 << 5;
/// The receive timeout interrupt: on the real device it fires when the
/// FIFO holds data and nothing more has arrived for a while, and fires
/// again after a clear while data remains. Emulated as a level, "the FIFO
/// is not empty", so a guest that clears its receive interrupts with data
/// still waiting (Linux does when the port starts) hears of it, instead of
/// waiting for an interrupt that a full FIFO could never raise.
pub const INT_RT: u32 = 1 << 6;
const INT_ALL: u32 = 0x7ff;
/// LCR_H: FIFOs enabled.
const LCR_FEN: u32 = 1 << 4;
/// PeriphID0..3 and PCellID0..3 of a PL011 r1p5, as QEMU reports them.
const ID_REGS: [u32; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
const FIFO_DEPTH: usize = 16;

/// What a write to the UART does besides changing its registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The guest transmitted this byte.
    Transmit(u8),
    Ignored(&'static str),
}

#[derive(Clone, Debug)]
pub struct Pl011 {
    rx: [u8; FIFO_DEPTH],
    rx_head: usize,
    rx_len: usize,
    /// Raw interrupt status.
    ris: u32,
    imsc: u32,
    lcr_h: u32,
    cr: u32,
    ibrd: u32,
    fbrd: u32,
    ifls: u32,
    ilpr: u32,
    dmacr: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// The UART at reset (Arm's reset values: CR = 0x300, IFLS = 0x12).
    pub const fn new() -> Self {
        Pl011 {
            rx: [0; FIFO_DEPTH],
            rx_head: 0,
            rx_len: 0,
            ris: 0,
            imsc: 0,
            lcr_h: 0,
            cr: 0x300,
            ibrd: 0,
            fbrd: 0,
            ifls: 0x12,
            ilpr: 0,
            dmacr: 0,
        }
    }

    pub fn reset(&mut self) {
        *self = Self::new();
    }

    fn depth(&self) -> usize {
        if self.lcr_h & LCR_FEN != 0 {
            FIFO_DEPTH
        } else {
            1
        }
    }

    /// Room in the receive FIFO.
    pub fn rx_space(&self) -> usize {
        self.depth().saturating_sub(self.rx_len)
    }

    /// A byte from the console for the guest; false if the FIFO is full
    /// (the caller keeps it for later).
    pub fn receive(&mut self, byte: u8) -> bool {
        if self.rx_space() == 0 {
            return false;
        }
        self.rx[(self.rx_head + self.rx_len) % FIFO_DEPTH] = byte;
        self.rx_len += 1;
        self.ris |= INT_RX;
        true
    }

    /// The interrupt line.
    pub fn irq(&self) -> bool {
        self.raw() & self.imsc != 0
    }

    /// RIS: the latched interrupts and the receive timeout's level.
    fn raw(&self) -> u32 {
        if self.rx_len > 0 {
            self.ris | INT_RT
        } else {
            self.ris
        }
    }

    fn flags(&self) -> u32 {
        let mut f = FR_TXFE;
        if self.rx_len == 0 {
            f |= FR_RXFE;
        }
        if self.rx_space() == 0 {
            f |= FR_RXFF;
        }
        f
    }

    fn pop(&mut self) -> u32 {
        if self.rx_len == 0 {
            return 0;
        }
        let b = self.rx[self.rx_head];
        self.rx_head = (self.rx_head + 1) % FIFO_DEPTH;
        self.rx_len -= 1;
        if self.rx_len == 0 {
            self.ris &= !INT_RX;
        }
        u32::from(b)
    }

    /// Reads a register (1, 2 or 4 bytes at its start). Reading DR takes a
    /// byte from the receive FIFO.
    pub fn read(&mut self, offset: u64, size: u8) -> Result<u32, AccessError> {
        check(offset, size)?;
        let mask = size_mask(size);
        let v = match offset & !3 {
            reg::DR => self.pop(),
            reg::RSR => 0,
            reg::FR => self.flags(),
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.raw(),
            reg::MIS => self.raw() & self.imsc,
            reg::DMACR => self.dmacr,
            o if (reg::ID_BASE..reg::FRAME).contains(&o) => {
                ID_REGS[((o - reg::ID_BASE) / 4) as usize]
            }
            _ => 0,
        };
        Ok(v & mask)
    }

    /// Writes a register.
    pub fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<Effect, AccessError> {
        check(offset, size)?;
        let v = value & size_mask(size);
        Ok(match offset & !3 {
            reg::DR => {
                self.ris |= INT_TX;
                Effect::Transmit(v as u8)
            }
            reg::RSR => Effect::None,
            reg::ILPR => {
                self.ilpr = v & 0xff;
                Effect::None
            }
            reg::IBRD => {
                self.ibrd = v & 0xffff;
                Effect::None
            }
            reg::FBRD => {
                self.fbrd = v & 0x3f;
                Effect::None
            }
            reg::LCR_H => {
                if (self.lcr_h ^ v) & LCR_FEN != 0 {
                    // Switching the FIFOs on or off empties them.
                    self.rx_len = 0;
                    self.ris &= !INT_RX;
                }
                self.lcr_h = v & 0xff;
                Effect::None
            }
            reg::CR => {
                self.cr = v & 0xffff;
                Effect::None
            }
            reg::IFLS => {
                self.ifls = v & 0x3f;
                Effect::None
            }
            reg::IMSC => {
                self.imsc = v & INT_ALL;
                Effect::None
            }
            reg::ICR => {
                self.ris &= !v;
                Effect::None
            }
            reg::DMACR => {
                self.dmacr = v & 0x7;
                Effect::None
            }
            reg::FR | reg::RIS | reg::MIS => Effect::Ignored("read-only register"),
            o if (reg::ID_BASE..reg::FRAME).contains(&o) => Effect::Ignored("read-only register"),
            _ => Effect::Ignored("reserved offset"),
        })
    }
}

fn size_mask(size: u8) -> u32 {
    match size {
        1 => 0xff,
        2 => 0xffff,
        _ => u32::MAX,
    }
}

/// Registers are read and written from their first byte, 1, 2 or 4 bytes
/// wide (Linux's driver uses 16-bit accesses, earlycon 32-bit ones).
fn check(offset: u64, size: u8) -> Result<(), AccessError> {
    if !matches!(size, 1 | 2 | 4) {
        return Err(AccessError::Size(size));
    }
    if !offset.is_multiple_of(4) {
        return Err(AccessError::Misaligned);
    }
    if offset >= reg::FRAME {
        return Err(AccessError::Outside);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmitting_raises_the_tx_interrupt_once_unmasked() {
        let mut u = Pl011::new();
        assert_eq!(
            u.write(reg::DR, 2, u32::from(b'h')),
            Ok(Effect::Transmit(b'h'))
        );
        assert!(!u.irq(), "masked");
        u.write(reg::IMSC, 2, INT_TX).unwrap();
        assert!(u.irq());
        assert_eq!(u.read(reg::MIS, 2), Ok(INT_TX));
        u.write(reg::ICR, 2, INT_TX).unwrap();
        assert!(!u.irq());
        assert_eq!(u.read(reg::FR, 2), Ok(FR_TXFE | FR_RXFE));
    }

    #[test]
    fn data_left_in_the_fifo_after_a_clear_still_interrupts() {
        let mut u = Pl011::new();
        u.write(reg::LCR_H, 4, LCR_FEN | 0x60).unwrap();
        for b in 0..16 {
            assert!(u.receive(b));
        }
        // Linux at port start-up: clear the receive interrupts, then
        // unmask them, with the FIFO full.
        u.write(reg::ICR, 4, INT_RX | INT_RT).unwrap();
        u.write(reg::IMSC, 4, INT_RX | INT_RT).unwrap();
        assert!(u.irq(), "a full FIFO must not go unheard");
        assert_eq!(u.read(reg::MIS, 4), Ok(INT_RT));
        for _ in 0..16 {
            u.read(reg::DR, 4).unwrap();
        }
        assert!(!u.irq(), "drained, quiet");
        assert_eq!(u.read(reg::RIS, 4), Ok(0));
    }

    #[test]
    fn the_receive_fifo_fills_and_drains() {
        let mut u = Pl011::new();
        u.write(reg::IMSC, 4, INT_RX).unwrap();
        // FIFOs off: one byte deep.
        assert!(u.receive(b'a'));
        assert!(!u.receive(b'b'));
        assert!(u.irq());
        assert_eq!(u.read(reg::FR, 4).unwrap() & FR_RXFF, FR_RXFF);
        assert_eq!(u.read(reg::DR, 4), Ok(u32::from(b'a')));
        assert!(!u.irq());
        // FIFOs on: sixteen.
        u.write(reg::LCR_H, 4, LCR_FEN | 0x60).unwrap();
        for b in 0..16 {
            assert!(u.receive(b));
        }
        assert!(!u.receive(99));
        assert_eq!(u.rx_space(), 0);
        let got: Vec<u8> = (0..16).map(|_| u.read(reg::DR, 2).unwrap() as u8).collect();
        assert_eq!(got, (0..16).collect::<Vec<u8>>());
        assert_eq!(u.read(reg::FR, 2).unwrap() & FR_RXFE, FR_RXFE);
        assert_eq!(u.read(reg::DR, 2), Ok(0), "an empty FIFO reads 0");
    }

    #[test]
    fn identification_and_refusals() {
        let mut u = Pl011::new();
        let ids: Vec<u32> = (0..8).map(|k| u.read(0xfe0 + 4 * k, 4).unwrap()).collect();
        assert_eq!(ids, ID_REGS);
        assert_eq!(u.read(reg::CR, 2), Ok(0x300));
        assert_eq!(u.read(0x002, 2), Err(AccessError::Misaligned));
        assert_eq!(u.read(reg::DR, 8), Err(AccessError::Size(8)));
        assert_eq!(
            u.write(reg::FR, 4, 0),
            Ok(Effect::Ignored("read-only register"))
        );
        assert_eq!(u.write(0x100, 4, 0), Ok(Effect::Ignored("reserved offset")));
    }
}
