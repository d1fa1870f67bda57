//! The GICv2 distributor the guest sees (Arm IHI 0048B, chapter 4.3),
//! emulated: every access to its 4 KiB frame traps to the VMM.
//!
//! The guest's CPU interface is the hardware's virtual CPU interface
//! (GICV), mapped straight into the guest: acknowledging and ending an
//! interrupt never traps. What reaches the guest is what the VMM puts in
//! the vCPU's list registers ([`crate::vgic`]); this module decides what
//! should: which interrupts are enabled, pending, their priority, group,
//! targets and trigger, as the guest programmed them.
//!
//! | offset | register | here |
//! |---|---|---|
//! | 0x000 | CTLR | enable bits 0 (group 0) and 1 (group 1) |
//! | 0x004 | TYPER | [`NUM_IRQS`] lines, the VM's vCPUs, no security extensions |
//! | 0x008 | IIDR | Arm, GIC-400 |
//! | 0x080 | IGROUPR | one bit per interrupt, banked for 0..31 |
//! | 0x100 / 0x180 | ISENABLER / ICENABLER | set / clear enable |
//! | 0x200 / 0x280 | ISPENDR / ICPENDR | set / clear the pending latch (a level line stays pending while high) |
//! | 0x300 / 0x380 | ISACTIVER / ICACTIVER | reads: in a list register; writes ignored (only the guest's EOI ends an interrupt) |
//! | 0x400 | IPRIORITYR | a byte each, 5 bits kept (the list registers' precision) |
//! | 0x800 | ITARGETSR | a byte each; read-only for 0..31 (the reader's own bit) |
//! | 0xc00 | ICFGR | two bits each, bit 1 = edge; SGIs read-only edge |
//! | 0xf00 | SGIR | software interrupts by target list, others, or self |
//! | 0xf10, 0xf20 | CPENDSGIR / SPENDSGIR | read as zero, writes ignored |
//! | 0xfd0..0xffc | PIDR4..7, PIDR0..3, CIDR0..3 | GIC-400's |
//!
//! Accesses of 1, 2 or 4 bytes, aligned, work on every register, a byte
//! lane at a time (as QEMU's model does); other sizes and misaligned
//! accesses are refused ([`AccessError`]) and the VMM answers them with an
//! abort. Reserved offsets read as zero and ignore writes, as the
//! architecture asks; writes to read-only registers are ignored. Both come
//! back as [`Outcome::Ignored`] so the VMM can say so.

use septa_vm_layout::map::GIC_NUM_IRQS;

/// Interrupts the distributor implements (its TYPER says so).
pub const NUM_IRQS: usize = GIC_NUM_IRQS as usize;
/// vCPUs a GICv2 can target.
pub const MAX_CPUS: usize = 8;
/// SGIs 0..16 and PPIs 16..32 are banked per CPU.
const PRIVATE: usize = 32;
const SGIS: usize = 16;
/// The priority bits the list registers keep (5 of 8).
const PRIORITY_MASK: u8 = 0xf8;

/// Register offsets.
pub mod reg {
    pub const CTLR: u64 = 0x000;
    pub const TYPER: u64 = 0x004;
    pub const IIDR: u64 = 0x008;
    pub const IGROUPR: u64 = 0x080;
    pub const ISENABLER: u64 = 0x100;
    pub const ICENABLER: u64 = 0x180;
    pub const ISPENDR: u64 = 0x200;
    pub const ICPENDR: u64 = 0x280;
    pub const ISACTIVER: u64 = 0x300;
    pub const ICACTIVER: u64 = 0x380;
    pub const IPRIORITYR: u64 = 0x400;
    pub const ITARGETSR: u64 = 0x800;
    pub const ICFGR: u64 = 0xc00;
    pub const SGIR: u64 = 0xf00;
    pub const CPENDSGIR: u64 = 0xf10;
    pub const SPENDSGIR: u64 = 0xf20;
    pub const ID_BASE: u64 = 0xfd0;
    pub const FRAME: u64 = 0x1000;
}

/// GIC-400's IIDR: Arm (0x43b), product 0x02, variant and revision 0.
const IIDR: u32 = 0x0200_143b;
/// PIDR4..7, PIDR0..3, CIDR0..3 of a GIC-400 (its TRM, table 3-3).
const ID_REGS: [u32; 12] = [
    0x04, 0x00, 0x00, 0x00, 0x90, 0xb4, 0x2b, 0x00, 0x0d, 0xf0, 0x05, 0xb1,
];

/// An access the distributor does not answer: the VMM injects an abort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// Not 1, 2 or 4 bytes.
    Size(u8),
    /// Not aligned to its size.
    Misaligned,
    /// Past the 4 KiB frame.
    Outside,
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Architecturally ignored (read-only or reserved register, or a
    /// malformed SGIR): the reason, for the log.
    Ignored(&'static str),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Irq {
    enabled: bool,
    /// The pending latch: set by an edge, a write to ISPENDR or SGIR.
    latch: bool,
    /// The device's line (level-triggered interrupts are pending while it
    /// is high).
    line: bool,
    /// Handed to a list register and not yet ended by the guest.
    in_lr: bool,
    priority: u8,
    group1: bool,
    edge: bool,
    /// CPU targets (shared interrupts only).
    targets: u8,
}

impl Irq {
    fn pending(&self) -> bool {
        self.latch || (!self.edge && self.line)
    }
}

/// The distributor's whole state.
#[derive(Clone, Debug)]
pub struct Distributor {
    ctlr: u32,
    cpus: usize,
    /// Which CPUs are running (an SPI goes to the first running target).
    online: u8,
    private: [[Irq; PRIVATE]; MAX_CPUS],
    shared: [Irq; NUM_IRQS - PRIVATE],
}

/// An interrupt ready for a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready {
    pub irq: u16,
    /// The list register's 5-bit priority.
    pub priority: u8,
    pub group: u8,
}

impl Distributor {
    /// A distributor in its reset state for `cpus` CPUs (1..=8), CPU 0
    /// running.
    pub fn new(cpus: usize) -> Self {
        let cpus = cpus.clamp(1, MAX_CPUS);
        let mut d = Distributor {
            ctlr: 0,
            cpus,
            online: 1,
            private: [[Irq::default(); PRIVATE]; MAX_CPUS],
            shared: [Irq::default(); NUM_IRQS - PRIVATE],
        };
        d.reset();
        d
    }

    /// Back to reset: everything disabled, not pending, priority 0, level
    /// (SGIs edge), group 0, SPIs targeting no CPU. List register
    /// bookkeeping survives: what is in a list register stays there until
    /// the guest ends it.
    pub fn reset(&mut self) {
        self.ctlr = 0;
        self.online = 1;
        for cpu in &mut self.private {
            for (n, i) in cpu.iter_mut().enumerate() {
                *i = Irq {
                    in_lr: i.in_lr,
                    edge: n < SGIS,
                    ..Irq::default()
                };
            }
        }
        for i in &mut self.shared {
            *i = Irq {
                in_lr: i.in_lr,
                line: i.line,
                ..Irq::default()
            };
        }
    }

    pub fn cpus(&self) -> usize {
        self.cpus
    }

    pub fn set_online(&mut self, cpu: usize, on: bool) {
        if cpu < self.cpus {
            if on {
                self.online |= 1 << cpu;
            } else {
                self.online &= !(1 << cpu);
            }
        }
    }

    fn irq(&self, cpu: usize, n: usize) -> Option<&Irq> {
        if n < PRIVATE {
            self.private.get(cpu).map(|p| &p[n])
        } else {
            self.shared.get(n - PRIVATE)
        }
    }

    fn irq_mut(&mut self, cpu: usize, n: usize) -> Option<&mut Irq> {
        if n < PRIVATE {
            self.private.get_mut(cpu).map(|p| &mut p[n])
        } else {
            self.shared.get_mut(n - PRIVATE)
        }
    }

    /// A device's interrupt line (shared interrupts).
    pub fn set_line(&mut self, n: usize, high: bool) {
        if n >= PRIVATE {
            if let Some(i) = self.irq_mut(0, n) {
                if high && !i.line && i.edge {
                    i.latch = true;
                }
                i.line = high;
            }
        }
    }

    /// Marks private interrupt `n` of `cpu` pending (an SGI, or a PPI
    /// such as the virtual timer's).
    pub fn set_pending(&mut self, cpu: usize, n: usize) {
        if let Some(i) = self.irq_mut(cpu, n) {
            i.latch = true;
        }
    }

    /// The CPU a shared interrupt goes to: its first running target.
    fn spi_cpu(&self, i: &Irq) -> Option<usize> {
        let t = i.targets & self.online;
        (t != 0).then(|| t.trailing_zeros() as usize)
    }

    fn group_enabled(&self, group1: bool) -> bool {
        self.ctlr & if group1 { 2 } else { 1 } != 0
    }

    /// The most urgent interrupt `cpu` should get that is in no list
    /// register yet (lowest priority value, then lowest number).
    pub fn next(&self, cpu: usize) -> Option<Ready> {
        if cpu >= self.cpus {
            return None;
        }
        let mut best: Option<(u8, usize)> = None;
        let mut consider = |n: usize, i: &Irq| {
            if i.enabled && i.pending() && !i.in_lr && self.group_enabled(i.group1) {
                let key = (i.priority, n);
                if best.is_none_or(|b| key < b) {
                    best = Some(key);
                }
            }
        };
        for (n, i) in self.private[cpu].iter().enumerate() {
            consider(n, i);
        }
        for (k, i) in self.shared.iter().enumerate() {
            if self.spi_cpu(i) == Some(cpu) {
                consider(PRIVATE + k, i);
            }
        }
        best.map(|(_, n)| {
            let i = self.irq(cpu, n).expect("in range");
            Ready {
                irq: n as u16,
                priority: i.priority >> 3,
                group: u8::from(i.group1),
            }
        })
    }

    /// Interrupt `n` went into a list register of `cpu`: the list
    /// register now holds its pending state.
    pub fn delivered(&mut self, cpu: usize, n: usize) {
        if let Some(i) = self.irq_mut(cpu, n) {
            i.in_lr = true;
            i.latch = false;
        }
    }

    /// The guest ended interrupt `n` on `cpu` (or the VMM lost track of
    /// its list register). A level line still high makes it pending again.
    pub fn ended(&mut self, cpu: usize, n: usize) {
        if let Some(i) = self.irq_mut(cpu, n) {
            i.in_lr = false;
        }
    }

    /// Reads `size` bytes at `offset` for `cpu`.
    pub fn read(&self, cpu: usize, offset: u64, size: u8) -> Result<u32, AccessError> {
        let (word, shift, mask) = lanes(offset, size)?;
        Ok((self.read32(cpu, word) >> shift) & mask)
    }

    /// Writes `size` bytes of `value` at `offset` for `cpu`.
    pub fn write(
        &mut self,
        cpu: usize,
        offset: u64,
        size: u8,
        value: u32,
    ) -> Result<Outcome, AccessError> {
        let (word, shift, mask) = lanes(offset, size)?;
        Ok(self.write32(cpu, word, (value & mask) << shift, mask << shift))
    }

    /// A bit-per-interrupt register: the interrupt numbers of `word`.
    fn bit_irqs(word: u64, base: u64) -> usize {
        ((word - base) * 8) as usize
    }

    fn read32(&self, cpu: usize, word: u64) -> u32 {
        let bits = |base: u64, f: &dyn Fn(&Irq) -> bool| {
            let first = Self::bit_irqs(word, base);
            (0..32).fold(0u32, |v, b| match self.irq(cpu, first + b) {
                Some(i) if f(i) => v | 1 << b,
                _ => v,
            })
        };
        let bytes = |base: u64, f: &dyn Fn(usize, &Irq) -> u8| {
            let first = (word - base) as usize;
            (0..4).fold(0u32, |v, b| match self.irq(cpu, first + b) {
                Some(i) => v | u32::from(f(first + b, i)) << (8 * b),
                None => v,
            })
        };
        match word {
            reg::CTLR => self.ctlr,
            reg::TYPER => ((self.cpus as u32 - 1) << 5) | (NUM_IRQS as u32 / 32 - 1),
            reg::IIDR => IIDR,
            w if in_block(w, reg::IGROUPR, 0x80) => bits(reg::IGROUPR, &|i| i.group1),
            w if in_block(w, reg::ISENABLER, 0x80) => bits(reg::ISENABLER, &|i| i.enabled),
            w if in_block(w, reg::ICENABLER, 0x80) => bits(reg::ICENABLER, &|i| i.enabled),
            w if in_block(w, reg::ISPENDR, 0x80) => bits(reg::ISPENDR, &|i| i.pending()),
            w if in_block(w, reg::ICPENDR, 0x80) => bits(reg::ICPENDR, &|i| i.pending()),
            w if in_block(w, reg::ISACTIVER, 0x80) => bits(reg::ISACTIVER, &|i| i.in_lr),
            w if in_block(w, reg::ICACTIVER, 0x80) => bits(reg::ICACTIVER, &|i| i.in_lr),
            w if in_block(w, reg::IPRIORITYR, 0x400) => bytes(reg::IPRIORITYR, &|_, i| i.priority),
            w if in_block(w, reg::ITARGETSR, 0x400) => bytes(reg::ITARGETSR, &|n, i| {
                if n < PRIVATE {
                    1 << cpu
                } else {
                    i.targets
                }
            }),
            w if in_block(w, reg::ICFGR, 0x100) => {
                let first = ((w - reg::ICFGR) * 4) as usize;
                (0..16).fold(0u32, |v, k| match self.irq(cpu, first + k) {
                    Some(i) if i.edge => v | 2 << (2 * k),
                    _ => v,
                })
            }
            w if in_block(w, reg::ID_BASE, 0x30) => ID_REGS[((w - reg::ID_BASE) / 4) as usize],
            _ => 0,
        }
    }

    fn write32(&mut self, cpu: usize, word: u64, value: u32, mask: u32) -> Outcome {
        let mut each_bit = |base: u64, f: &dyn Fn(&mut Irq, bool)| {
            let first = Self::bit_irqs(word, base);
            for b in 0..32 {
                if mask & (1 << b) != 0 {
                    if let Some(i) = self.irq_mut(cpu, first + b) {
                        f(i, value & (1 << b) != 0);
                    }
                }
            }
            Outcome::Done
        };
        match word {
            reg::CTLR => {
                self.ctlr = (self.ctlr & !mask) | (value & mask & 3);
                Outcome::Done
            }
            reg::TYPER | reg::IIDR => Outcome::Ignored("read-only register"),
            w if in_block(w, reg::IGROUPR, 0x80) => each_bit(reg::IGROUPR, &|i, v| i.group1 = v),
            w if in_block(w, reg::ISENABLER, 0x80) => each_bit(reg::ISENABLER, &|i, v| {
                if v {
                    i.enabled = true;
                }
            }),
            w if in_block(w, reg::ICENABLER, 0x80) => each_bit(reg::ICENABLER, &|i, v| {
                if v {
                    i.enabled = false;
                }
            }),
            w if in_block(w, reg::ISPENDR, 0x80) => each_bit(reg::ISPENDR, &|i, v| {
                if v {
                    i.latch = true;
                }
            }),
            w if in_block(w, reg::ICPENDR, 0x80) => each_bit(reg::ICPENDR, &|i, v| {
                if v {
                    i.latch = false;
                }
            }),
            // Deactivating what no list register holds changes nothing,
            // and what one holds only the guest's EOI ends (Linux clears
            // every active bit at start-up: no noise for that).
            w if in_block(w, reg::ICACTIVER, 0x80) => Outcome::Done,
            w if in_block(w, reg::ISACTIVER, 0x80) => {
                Outcome::Ignored("only a list register makes an interrupt active")
            }
            w if in_block(w, reg::IPRIORITYR, 0x400) => {
                let first = (w - reg::IPRIORITYR) as usize;
                for b in 0..4 {
                    if mask & (0xff << (8 * b)) != 0 {
                        if let Some(i) = self.irq_mut(cpu, first + b) {
                            i.priority = (value >> (8 * b)) as u8 & PRIORITY_MASK;
                        }
                    }
                }
                Outcome::Done
            }
            w if in_block(w, reg::ITARGETSR, 0x400) => {
                let first = (w - reg::ITARGETSR) as usize;
                if first < PRIVATE {
                    return Outcome::Ignored("targets of SGIs and PPIs are read-only");
                }
                let valid = ((1u32 << self.cpus) - 1) as u8;
                for b in 0..4 {
                    if mask & (0xff << (8 * b)) != 0 {
                        if let Some(i) = self.irq_mut(cpu, first + b) {
                            i.targets = (value >> (8 * b)) as u8 & valid;
                        }
                    }
                }
                Outcome::Done
            }
            w if in_block(w, reg::ICFGR, 0x100) => {
                let first = ((w - reg::ICFGR) * 4) as usize;
                if first < SGIS {
                    return Outcome::Ignored("SGIs are always edge-triggered");
                }
                for k in 0..16 {
                    if mask & (2 << (2 * k)) != 0 {
                        if let Some(i) = self.irq_mut(cpu, first + k) {
                            i.edge = value & (2 << (2 * k)) != 0;
                        }
                    }
                }
                Outcome::Done
            }
            reg::SGIR => {
                if mask != u32::MAX {
                    return Outcome::Ignored("SGIR takes whole words");
                }
                self.sgi(cpu, value)
            }
            w if in_block(w, reg::CPENDSGIR, 0x20) => {
                Outcome::Ignored("SGI pending registers are not implemented")
            }
            w if in_block(w, reg::ID_BASE, 0x30) => Outcome::Ignored("read-only register"),
            _ => Outcome::Ignored("reserved offset"),
        }
    }

    /// GICD_SGIR: bits 25:24 target filter, 23:16 CPU list, 3:0 SGI.
    fn sgi(&mut self, from: usize, value: u32) -> Outcome {
        let sgi = (value & 0xf) as usize;
        let all = ((1u32 << self.cpus) - 1) as u8;
        let targets = match (value >> 24) & 3 {
            0 => ((value >> 16) as u8) & all,
            1 => all & !(1 << from),
            2 => 1 << from,
            _ => return Outcome::Ignored("reserved SGIR target filter"),
        };
        for cpu in 0..self.cpus {
            if targets & (1 << cpu) != 0 {
                self.set_pending(cpu, sgi);
            }
        }
        Outcome::Done
    }
}

fn in_block(word: u64, base: u64, len: u64) -> bool {
    (base..base + len).contains(&word)
}

/// The word of an access, the shift of its first byte and its value mask.
fn lanes(offset: u64, size: u8) -> Result<(u64, u32, u32), AccessError> {
    let mask = match size {
        1 => 0xff,
        2 => 0xffff,
        4 => u32::MAX,
        _ => return Err(AccessError::Size(size)),
    };
    if !offset.is_multiple_of(u64::from(size)) {
        return Err(AccessError::Misaligned);
    }
    if offset >= reg::FRAME {
        return Err(AccessError::Outside);
    }
    Ok((offset & !3, ((offset & 3) * 8) as u32, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(d: &mut Distributor, off: u64, v: u32) -> Outcome {
        d.write(0, off, 4, v).unwrap()
    }

    fn r(d: &Distributor, off: u64) -> u32 {
        d.read(0, off, 4).unwrap()
    }

    /// The guest has turned the distributor on and enabled `n` at
    /// priority 0xa0 for CPU 0.
    fn with_enabled(n: usize) -> Distributor {
        let mut d = Distributor::new(1);
        w(&mut d, reg::CTLR, 1);
        w(&mut d, reg::ISENABLER + (n as u64 / 32) * 4, 1 << (n % 32));
        d.write(0, reg::IPRIORITYR + n as u64, 1, 0xa0).unwrap();
        if n >= 32 {
            d.write(0, reg::ITARGETSR + n as u64, 1, 1).unwrap();
        }
        d
    }

    #[test]
    fn identification_registers_describe_the_machine() {
        let d = Distributor::new(2);
        assert_eq!(r(&d, reg::TYPER), 1 << 5 | 3);
        assert_eq!(r(&d, reg::IIDR), IIDR);
        assert_eq!(r(&d, 0xfe8), 0x2b);
        assert_eq!(
            [0xff0, 0xff4, 0xff8, 0xffc].map(|o| r(&d, o)),
            [0x0d, 0xf0, 0x05, 0xb1]
        );
    }

    #[test]
    fn a_level_interrupt_is_pending_while_its_line_is_high() {
        let mut d = with_enabled(33);
        assert_eq!(d.next(0), None);
        d.set_line(33, true);
        let ready = d.next(0).unwrap();
        assert_eq!(
            ready,
            Ready {
                irq: 33,
                priority: 0xa0 >> 3,
                group: 0
            }
        );
        assert_eq!(r(&d, reg::ISPENDR + 4), 1 << 1);
        d.delivered(0, 33);
        assert_eq!(d.next(0), None, "in a list register already");
        assert_eq!(r(&d, reg::ISACTIVER + 4), 1 << 1);
        d.ended(0, 33);
        assert_eq!(d.next(0).map(|r| r.irq), Some(33), "still high");
        d.set_line(33, false);
        assert_eq!(d.next(0), None);
    }

    #[test]
    fn an_edge_latches_until_delivered() {
        let mut d = with_enabled(48);
        w(&mut d, reg::ICFGR + 12, 2); // INTID 48: edge
        d.set_line(48, true);
        d.set_line(48, false);
        assert_eq!(d.next(0).map(|r| r.irq), Some(48));
        d.delivered(0, 48);
        d.ended(0, 48);
        assert_eq!(d.next(0), None);
    }

    #[test]
    fn disabled_distributor_groups_and_interrupts_hold_delivery() {
        let mut d = with_enabled(27);
        d.set_pending(0, 27);
        w(&mut d, reg::CTLR, 0);
        assert_eq!(d.next(0), None);
        w(&mut d, reg::CTLR, 1);
        assert_eq!(d.next(0).map(|r| r.irq), Some(27));
        w(&mut d, reg::ICENABLER, 1 << 27);
        assert_eq!(d.next(0), None);
        w(&mut d, reg::ISENABLER, 1 << 27);
        // Group 1 needs CTLR bit 1.
        w(&mut d, reg::IGROUPR, 1 << 27);
        assert_eq!(d.next(0), None);
        w(&mut d, reg::CTLR, 3);
        assert_eq!(d.next(0).map(|r| (r.irq, r.group)), Some((27, 1)));
        // Software clears the latch.
        w(&mut d, reg::ICPENDR, 1 << 27);
        assert_eq!(d.next(0), None);
    }

    #[test]
    fn the_most_urgent_goes_first() {
        let mut d = with_enabled(40);
        w(&mut d, reg::ISENABLER + 4, 1 << 9 | 1 << 10);
        d.write(0, reg::ITARGETSR + 41, 1, 1).unwrap();
        d.write(0, reg::ITARGETSR + 42, 1, 1).unwrap();
        d.write(0, reg::IPRIORITYR + 41, 1, 0x80).unwrap();
        d.write(0, reg::IPRIORITYR + 42, 1, 0x80).unwrap();
        for n in [40, 41, 42] {
            d.set_line(n, true);
        }
        assert_eq!(d.next(0).map(|r| r.irq), Some(41));
        d.delivered(0, 41);
        assert_eq!(d.next(0).map(|r| r.irq), Some(42));
        d.delivered(0, 42);
        assert_eq!(d.next(0).map(|r| r.irq), Some(40));
    }

    #[test]
    fn spis_go_to_their_first_running_target() {
        let mut d = Distributor::new(2);
        w(&mut d, reg::CTLR, 1);
        w(&mut d, reg::ISENABLER + 4, 1 << 2);
        d.write(0, reg::ITARGETSR + 34, 1, 0xff).unwrap();
        assert_eq!(d.read(0, reg::ITARGETSR + 34, 1), Ok(0b11), "two CPUs");
        d.set_line(34, true);
        assert_eq!(d.next(1), None);
        assert_eq!(d.next(0).map(|r| r.irq), Some(34));
        d.set_online(0, false);
        d.set_online(1, true);
        assert_eq!(d.next(1).map(|r| r.irq), Some(34));
    }

    #[test]
    fn sgis_reach_the_cpus_the_filter_names() {
        let mut d = Distributor::new(3);
        w(&mut d, reg::CTLR, 1);
        for cpu in 0..3 {
            d.write(cpu, reg::ISENABLER, 4, 0xffff).unwrap();
        }
        // To CPUs 1 and 2 by list, SGI 5.
        w(&mut d, reg::SGIR, 0b110 << 16 | 5);
        assert_eq!(d.next(0), None);
        assert_eq!(d.next(1).map(|r| r.irq), Some(5));
        assert_eq!(d.next(2).map(|r| r.irq), Some(5));
        // To self only, SGI 1.
        d.write(2, reg::SGIR, 4, 2 << 24 | 1).unwrap();
        assert_eq!(d.next(2).map(|r| r.irq), Some(1));
        // All but self (CPU 0), SGI 3.
        w(&mut d, reg::SGIR, 1 << 24 | 3);
        assert_eq!(d.next(0), None);
        assert_eq!(
            w(&mut d, reg::SGIR, 3 << 24),
            Outcome::Ignored("reserved SGIR target filter")
        );
        assert_eq!(
            d.write(0, reg::SGIR, 2, 1),
            Ok(Outcome::Ignored("SGIR takes whole words"))
        );
    }

    #[test]
    fn banked_registers_belong_to_the_reader() {
        let mut d = Distributor::new(2);
        d.write(1, reg::ISENABLER, 4, 1 << 27).unwrap();
        assert_eq!(d.read(0, reg::ISENABLER, 4), Ok(0));
        assert_eq!(d.read(1, reg::ISENABLER, 4), Ok(1 << 27));
        assert_eq!(d.read(1, reg::ITARGETSR + 27, 1), Ok(0b10));
        assert_eq!(
            d.write(1, reg::ITARGETSR, 4, 0xffff_ffff),
            Ok(Outcome::Ignored("targets of SGIs and PPIs are read-only"))
        );
    }

    #[test]
    fn byte_lanes_and_what_is_refused() {
        let mut d = Distributor::new(1);
        d.write(0, reg::IPRIORITYR + 33, 1, 0xff).unwrap();
        assert_eq!(r(&d, reg::IPRIORITYR + 32), 0xf800, "5 bits kept");
        d.write(0, reg::IPRIORITYR + 34, 2, 0x8040).unwrap();
        assert_eq!(r(&d, reg::IPRIORITYR + 32), 0x8040_f800);
        assert_eq!(d.read(0, reg::ISENABLER + 1, 1), Ok(0));
        assert_eq!(d.read(0, reg::CTLR, 8), Err(AccessError::Size(8)));
        assert_eq!(d.read(0, 0x102, 4), Err(AccessError::Misaligned));
        assert_eq!(d.read(0, 0x1000, 4), Err(AccessError::Outside));
        // Read-only, reserved and beyond-the-lines registers.
        assert_eq!(
            w(&mut d, reg::TYPER, 0),
            Outcome::Ignored("read-only register")
        );
        assert_eq!(w(&mut d, 0x00c, 1), Outcome::Ignored("reserved offset"));
        assert_eq!(r(&d, 0x00c), 0);
        assert_eq!(r(&d, reg::ISENABLER + 0x7c), 0, "INTIDs past 128");
        assert_eq!(w(&mut d, reg::ISENABLER + 0x7c, u32::MAX), Outcome::Done);
        assert_eq!(r(&d, reg::ISENABLER + 0x7c), 0);
        // SGIs stay edge.
        assert_eq!(
            w(&mut d, reg::ICFGR, 0),
            Outcome::Ignored("SGIs are always edge-triggered")
        );
        assert_eq!(r(&d, reg::ICFGR), 0xaaaa_aaaa);
    }

    #[test]
    fn reset_forgets_the_guests_settings_but_not_the_list_registers() {
        let mut d = with_enabled(33);
        d.set_line(33, true);
        d.delivered(0, 33);
        d.reset();
        assert_eq!(r(&d, reg::CTLR), 0);
        assert_eq!(r(&d, reg::ISENABLER + 4), 0);
        assert_eq!(r(&d, reg::ISACTIVER + 4), 1 << 1);
    }
}
