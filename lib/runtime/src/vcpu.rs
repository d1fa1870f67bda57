//! Virtual CPUs of the PD's virtual machine (libmicrokit's `microkit_vcpu_*`).
//!
//! A PD that runs a VM (`[pd.NAME.vm.VM]`) holds, for each vCPU id, the
//! vCPU object in slot `BASE_VCPU + id` and the thread that runs it in
//! slot `BASE_VM_TCB + id`. The thread's faults (the guest's traps: MMIO,
//! `hvc`, `smc`, WFI, VGIC maintenance, virtual timer events) arrive at
//! the PD's [`crate::Handler::fault`] with the vCPU's id as the child id,
//! exactly as a child PD's would; [`Vcpu::from_child`] names the vCPU.
//! The tool makes vCPU ids and child ids of one PD distinct.

use septa_abi::microkit::{slot, SLOT_RANGE_SIZE};
use septa_sel4::{cap_type, Cap, Error, UserContext};

use crate::child::slot_id;
use crate::Child;

slot_id!(
    /// A vCPU of this PD's VM, by the id the system description gives it.
    Vcpu,
    "vCPU"
);

impl Vcpu {
    /// The vCPU whose thread sent a fault the event loop delivered as
    /// coming from `child`, if the id has a slot.
    pub fn from_child(child: Child) -> Option<Self> {
        (u64::from(child.id()) < SLOT_RANGE_SIZE).then_some(Vcpu(child.id()))
    }

    /// The vCPU object.
    pub fn cap(self) -> Cap<cap_type::Vcpu> {
        Cap::from_bits(slot::BASE_VCPU + u64::from(self.0))
    }

    /// The thread that runs the vCPU.
    pub fn tcb(self) -> Cap<cap_type::Tcb> {
        Cap::from_bits(slot::BASE_VM_TCB + u64::from(self.0))
    }

    /// Starts the vCPU's thread at `entry` (`microkit_vcpu_restart`):
    /// writes only the PC, then resumes.
    pub fn restart(self, entry: u64) -> Result<(), Error> {
        let regs = UserContext {
            pc: entry,
            ..Default::default()
        };
        self.tcb().write_registers(true, 0, 1, &regs)
    }

    /// Stops the vCPU's thread (`microkit_vcpu_stop`). A fault it was
    /// waiting to have answered is dropped.
    pub fn stop(self) -> Result<(), Error> {
        self.tcb().suspend()
    }

    /// Lets the vCPU's thread run.
    pub fn resume(self) -> Result<(), Error> {
        self.tcb().resume()
    }

    /// The first `count` registers of the vCPU's thread (TCB order: pc, sp,
    /// spsr, x0..x8, x16, x17, x18, x29, x30, x9..x15, x19..x28, ...).
    pub fn read_registers(self, count: u64) -> Result<UserContext, Error> {
        self.tcb().read_registers(false, 0, count)
    }

    /// Writes the first `count` registers of `regs` (TCB order).
    pub fn write_registers(
        self,
        resume: bool,
        count: u64,
        regs: &UserContext,
    ) -> Result<(), Error> {
        self.tcb().write_registers(resume, 0, count, regs)
    }

    /// Puts virtual interrupt `irq` in list register `index`, pending
    /// (`microkit_vcpu_arm_inject_irq`). The kernel refuses an index past
    /// the hardware's list registers (RangeError) and a list register whose
    /// interrupt the guest has acknowledged but not yet ended
    /// (DeleteFirst); it overwrites one that is still only pending.
    pub fn inject_irq(self, irq: u16, priority: u8, group: u8, index: u8) -> Result<(), Error> {
        self.cap().inject_irq(irq, priority, group, index)
    }

    /// Unmasks the virtual PPI `irq` that the kernel masked when it sent a
    /// VPPI event (`microkit_vcpu_arm_ack_vppi`).
    pub fn ack_vppi(self, irq: u64) -> Result<(), Error> {
        self.cap().ack_vppi(irq)
    }

    /// A VCPU register (`septa_abi::vcpu_reg`).
    pub fn read_reg(self, reg: u64) -> Result<u64, Error> {
        self.cap().read_reg(reg)
    }

    pub fn write_reg(self, reg: u64, value: u64) -> Result<(), Error> {
        self.cap().write_reg(reg, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_kernel::record;
    use septa_abi::{vcpu_reg, Label, MessageInfo};
    use std::vec::Vec;

    #[test]
    fn invocations_reach_the_vcpu_and_its_thread() {
        let seen = record();
        let v = Vcpu::new(3);
        v.inject_irq(27, 0x14, 0, 2).unwrap();
        v.ack_vppi(27).unwrap();
        v.write_reg(vcpu_reg::VMPIDR_EL2, 0x8000_0000).unwrap();
        v.restart(0x4000_0000).unwrap();
        v.stop().unwrap();
        let s = seen.borrow();
        let got: Vec<(u64, u64)> = s
            .iter()
            .map(|r| (r.x[0], MessageInfo(r.x[1]).label()))
            .collect();
        assert_eq!(
            got,
            [
                (330 + 3, Label::ArmVcpuInjectIrq.number()),
                (330 + 3, Label::ArmVcpuAckVppi.number()),
                (330 + 3, Label::ArmVcpuWriteReg.number()),
                (266 + 3, Label::TcbWriteRegisters.number()),
                (266 + 3, Label::TcbSuspend.number()),
            ]
        );
        // InjectIRQ packs virq, priority, group and index into MR0.
        assert_eq!(s[0].x[2], 27 | 0x14 << 16 | 2 << 32);
        // Restart: resume flag, one register, the PC.
        assert_eq!(&s[3].x[2..5], &[1, 1, 0x4000_0000]);
    }

    #[test]
    fn a_fault_badge_names_the_vcpu() {
        assert_eq!(Vcpu::from_child(Child::new(5)), Some(Vcpu::new(5)));
        assert_eq!(Vcpu::from_child(Child::from_badge(200)), None);
    }

    #[test]
    #[should_panic(expected = "vCPU ids")]
    fn ids_past_the_slot_range_are_refused() {
        let _ = Vcpu::new(64);
    }
}
