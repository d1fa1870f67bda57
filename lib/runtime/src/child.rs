//! Child protection domains: a parent holds the TCB of each child (slots
//! `BASE_TCB + id`) and receives its faults (badge bit 62, child id in the
//! low bits).

use septa_abi::microkit::{slot, SLOT_RANGE_SIZE};
use septa_sel4::{cap_type, Cap, Error, UserContext};

/// A small id naming one slot in each 64-slot range of the Microkit CNode
/// that belongs to its kind: the type, its `Debug` and `Display`, `new`
/// (which refuses 64 and up: there is no slot) and `id`.
macro_rules! slot_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u8);

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl $name {
            #[doc = concat!("The ", $what, " with id `id` (0..=63: one slot range of the CSpace).")]
            ///
            /// # Panics
            /// If `id` is 64 or more: there is no slot for it.
            pub const fn new(id: u8) -> Self {
                assert!(
                    (id as u64) < septa_abi::microkit::SLOT_RANGE_SIZE,
                    concat!($what, " ids run from 0 to 63")
                );
                $name(id)
            }

            pub const fn id(self) -> u8 {
                self.0
            }
        }
    };
}
pub(crate) use slot_id;

slot_id!(
    /// A child PD, by the id the system description gives it.
    Child,
    "child"
);

impl Child {
    /// The child a fault badge names (8 bits, as libmicrokit masks them),
    /// unchecked: an id past the slot range can only come from a broken
    /// system image, and [`tcb`](Self::tcb) refuses it loudly.
    pub(crate) const fn from_badge(id: u8) -> Self {
        Child(id)
    }

    /// The child's TCB capability.
    pub fn tcb(self) -> Cap<cap_type::Tcb> {
        assert!(
            u64::from(self.0) < SLOT_RANGE_SIZE,
            "child {} has no TCB slot (ids run from 0 to 63)",
            self.0
        );
        Cap::from_bits(slot::BASE_TCB + u64::from(self.0))
    }

    /// Lets the child run.
    pub fn tcb_resume(self) -> Result<(), Error> {
        self.tcb().resume()
    }

    /// Stops the child (libmicrokit's `microkit_pd_stop`).
    pub fn tcb_suspend(self) -> Result<(), Error> {
        self.tcb().suspend()
    }

    /// Writes the first `count` registers of `regs` into the child, and
    /// resumes it if `resume`.
    pub fn tcb_write_registers(
        self,
        resume: bool,
        count: u64,
        regs: &UserContext,
    ) -> Result<(), Error> {
        self.tcb().write_registers(resume, 0, count, regs)
    }

    /// Reads the first `count` registers of the child.
    pub fn tcb_read_registers(self, suspend: bool, count: u64) -> Result<UserContext, Error> {
        self.tcb().read_registers(suspend, 0, count)
    }

    /// Restarts the child at `entry_point` (libmicrokit's
    /// `microkit_pd_restart`): writes only the PC and resumes. The stack
    /// pointer and memory keep their state; a child that needs a clean
    /// start must be built for it.
    pub fn restart(self, entry_point: u64) -> Result<(), Error> {
        let regs = UserContext {
            pc: entry_point,
            ..Default::default()
        };
        self.tcb_write_registers(true, 1, &regs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_kernel::record;
    use septa_abi::{Label, MessageInfo};
    use septa_sel4::ipc_buffer;

    #[test]
    fn restart_writes_only_the_pc_and_resumes() {
        let seen = record();
        Child::new(2).restart(0x20_0000).unwrap();
        let r = seen.borrow()[0];
        assert_eq!(r.x[0], 202 + 2);
        let info = MessageInfo(r.x[1]);
        assert_eq!(
            (info.label(), info.length()),
            (Label::TcbWriteRegisters.number(), 3)
        );
        assert_eq!(&r.x[2..5], &[1, 1, 0x20_0000]);
        let _ = ipc_buffer::get_mr(0);
    }

    #[test]
    fn suspend_and_resume_invoke_the_child_tcb() {
        let seen = record();
        Child::new(63).tcb_suspend().unwrap();
        Child::new(0).tcb_resume().unwrap();
        let s = seen.borrow();
        assert_eq!(
            (s[0].x[0], MessageInfo(s[0].x[1]).label()),
            (265, Label::TcbSuspend.number())
        );
        assert_eq!(
            (s[1].x[0], MessageInfo(s[1].x[1]).label()),
            (202, Label::TcbResume.number())
        );
    }

    #[test]
    #[should_panic(expected = "child ids")]
    fn child_ids_past_the_slot_range_are_refused() {
        let _ = Child::new(64);
    }
}
