//! The vCPUs' list registers: which interrupt each holds, as far as the
//! VMM knows.
//!
//! seL4 puts an interrupt in list register `i` of a vCPU (VCPU InjectIRQ),
//! pending, with "end of interrupt" notification on; when the guest ends
//! it (writes GICC_EOIR of its virtual CPU interface), the kernel sends the
//! VMM a VGIC maintenance fault naming the list register, now empty. So
//! the VMM only ever injects into a register it knows to be empty, and a
//! register becomes empty only through a maintenance fault. The kernel
//! refuses a register whose interrupt the guest is handling
//! (DeleteFirst): that happens only when the VMM lost its records (it was
//! restarted); the register is then left alone until its maintenance
//! fault.

use septa_sel4::Error;

use crate::gicd::{Distributor, Ready, MAX_CPUS};

/// List registers a GICv2 may have (GICH_VTR.ListRegs is 6 bits).
pub const MAX_LRS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Free,
    Holds(u16),
    /// The kernel said the guest is handling whatever is there.
    Busy,
}

#[derive(Clone, Debug)]
pub struct ListRegisters {
    /// How many the hardware has: learnt from the kernel's RangeError the
    /// first time an index is past the end.
    count: usize,
    slots: [[Slot; MAX_LRS]; MAX_CPUS],
}

impl Default for ListRegisters {
    fn default() -> Self {
        Self::new()
    }
}

impl ListRegisters {
    pub const fn new() -> Self {
        ListRegisters {
            count: MAX_LRS,
            slots: [[Slot::Free; MAX_LRS]; MAX_CPUS],
        }
    }

    /// List registers known to exist (the maximum until the kernel says
    /// otherwise).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Puts what `cpu` should get into its free list registers, most
    /// urgent first, through `inject(list register, interrupt)`. Stops when
    /// the registers are full or nothing is ready. An injection error other
    /// than the two expected ones is returned.
    pub fn flush(
        &mut self,
        cpu: usize,
        gicd: &mut Distributor,
        mut inject: impl FnMut(u8, Ready) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let Some(slots) = self.slots.get_mut(cpu) else {
            return Ok(());
        };
        let mut lr = 0;
        while lr < self.count {
            if slots[lr] != Slot::Free {
                lr += 1;
                continue;
            }
            let Some(ready) = gicd.next(cpu) else {
                return Ok(());
            };
            match inject(lr as u8, ready) {
                Ok(()) => {
                    slots[lr] = Slot::Holds(ready.irq);
                    gicd.delivered(cpu, usize::from(ready.irq));
                    lr += 1;
                }
                Err(Error::RangeError { max, .. }) => {
                    // The hardware has `max + 1` registers.
                    self.count = (max as usize + 1).min(MAX_LRS);
                }
                Err(Error::DeleteFirst) => {
                    slots[lr] = Slot::Busy;
                    lr += 1;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A maintenance fault from `cpu`: list register `idx` is empty (the
    /// kernel sends no index when it could not tell which). Returns the
    /// interrupt the guest ended, if the VMM had put it there.
    pub fn ended(&mut self, cpu: usize, idx: Option<u64>, gicd: &mut Distributor) -> Option<u16> {
        let slot = self
            .slots
            .get_mut(cpu)?
            .get_mut(usize::try_from(idx?).ok()?)?;
        let was = core::mem::replace(slot, Slot::Free);
        match was {
            Slot::Holds(irq) => {
                gicd.ended(cpu, usize::from(irq));
                Some(irq)
            }
            Slot::Free | Slot::Busy => None,
        }
    }

    /// Whether any of `cpu`'s list registers holds an interrupt the guest
    /// has not ended (or one the VMM did not put there).
    pub fn in_use(&self, cpu: usize) -> bool {
        self.slots
            .get(cpu)
            .is_some_and(|s| s[..self.count].iter().any(|s| *s != Slot::Free))
    }

    /// Interrupts in `cpu`'s list registers (for the log and tests).
    pub fn held(&self, cpu: usize) -> impl Iterator<Item = (usize, u16)> + '_ {
        self.slots[cpu]
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Slot::Holds(irq) => Some((i, *irq)),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gicd::reg;
    use std::vec::Vec;

    fn distributor_with(irqs: &[usize]) -> Distributor {
        let mut d = Distributor::new(1);
        d.write(0, reg::CTLR, 4, 1).unwrap();
        for &n in irqs {
            d.write(0, reg::ISENABLER + (n as u64 / 32) * 4, 4, 1 << (n % 32))
                .unwrap();
            if n >= 32 {
                d.write(0, reg::ITARGETSR + n as u64, 1, 1).unwrap();
                d.set_line(n, true);
            } else {
                d.set_pending(0, n);
            }
        }
        d
    }

    /// A kernel with `n` list registers, some of which the guest is busy
    /// with; records what went where.
    fn kernel<'a>(
        n: u64,
        busy: &'static [u8],
        log: &'a mut Vec<(u8, u16)>,
    ) -> impl FnMut(u8, Ready) -> Result<(), Error> + 'a {
        move |lr, r| {
            if u64::from(lr) >= n {
                return Err(Error::RangeError { min: 0, max: n - 1 });
            }
            if busy.contains(&lr) {
                return Err(Error::DeleteFirst);
            }
            log.push((lr, r.irq));
            Ok(())
        }
    }

    #[test]
    fn the_register_count_is_learnt_and_the_rest_waits() {
        let mut d = distributor_with(&[27, 33, 40, 41, 42, 43]);
        let mut lrs = ListRegisters::new();
        let mut log = Vec::new();
        lrs.flush(0, &mut d, kernel(4, &[], &mut log)).unwrap();
        assert_eq!(lrs.count(), 4);
        assert_eq!(log, [(0, 27), (1, 33), (2, 40), (3, 41)]);
        // The guest ends the interrupt in register 1. 33's line is still
        // high, and of the waiting interrupts of equal priority it has the
        // lowest number: it goes again.
        assert_eq!(lrs.ended(0, Some(1), &mut d), Some(33));
        log.clear();
        lrs.flush(0, &mut d, kernel(4, &[], &mut log)).unwrap();
        assert_eq!(log, [(1, 33)]);
        assert_eq!(
            lrs.held(0).collect::<Vec<_>>(),
            [(0, 27), (1, 33), (2, 40), (3, 41)]
        );
    }

    #[test]
    fn registers_the_guest_is_busy_with_are_skipped_until_they_end() {
        let mut d = distributor_with(&[27, 33]);
        let mut lrs = ListRegisters::new();
        let mut log = Vec::new();
        lrs.flush(0, &mut d, kernel(4, &[0], &mut log)).unwrap();
        assert_eq!(log, [(1, 27), (2, 33)]);
        // Its maintenance fault frees it, naming nothing the VMM gave.
        assert_eq!(lrs.ended(0, Some(0), &mut d), None);
        assert_eq!(lrs.ended(0, None, &mut d), None);
        assert_eq!(lrs.ended(0, Some(99), &mut d), None);
    }

    #[test]
    fn other_kernel_errors_are_reported() {
        let mut d = distributor_with(&[27]);
        let mut lrs = ListRegisters::new();
        let r = lrs.flush(0, &mut d, |_, _| Err(Error::IllegalOperation));
        assert_eq!(r, Err(Error::IllegalOperation));
        assert_eq!(lrs.held(0).count(), 0);
    }
}
