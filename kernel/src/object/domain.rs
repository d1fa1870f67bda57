//! # The domain cap: moving threads between scheduling domains, and the
//! domain schedule
//!
//! Every configuration has Microkit's 16 domains and 100 schedule entries
//! (the last always an end marker). `DomainSetSet` moves a thread to a
//! domain, `DomainScheduleConfigure` writes an entry, and
//! `DomainScheduleSetStart` makes an entry the start of the schedule and
//! switches to it at once (see `sched::domain`). The checks and errors are
//! seL4's `decodeDomainInvocation`.

use crate::cap::Cap;
use crate::error::{Exception, SyscallError};
use crate::invocation::Invocation;
use crate::object::tcb::Tcb;
use crate::sched::{self, DOMAIN_SCHEDULE_LENGTH, DSCHED_MAX_DURATION, NUM_DOMAINS};
use septa_abi::Label;

/// Decodes and performs an invocation of the domain cap.
pub fn decode_invocation(inv: &Invocation) -> Result<(), Exception> {
    match Label::from_u64(inv.label) {
        Some(Label::DomainSetSet) => {
            if inv.length() == 0 {
                return Err(SyscallError::TruncatedMessage.into());
            }
            let domain = inv.arg(0);
            if domain >= NUM_DOMAINS {
                return Err(SyscallError::InvalidArgument { index: 0 }.into());
            }
            let Some(slot) = inv.extra_cap(0) else {
                return Err(SyscallError::TruncatedMessage.into());
            };
            let Cap::Tcb { paddr } = slot.cap() else {
                return Err(SyscallError::InvalidArgument { index: 1 }.into());
            };
            sched::set_domain(Tcb::new(paddr), domain);
            Ok(())
        }
        Some(Label::DomainScheduleConfigure) => {
            if inv.length() < 3 {
                return Err(SyscallError::TruncatedMessage.into());
            }
            let (index, domain, duration) = (inv.arg(0), inv.arg(1), inv.arg(2));
            let len = DOMAIN_SCHEDULE_LENGTH as u64;
            if index >= len - 1 {
                return Err(SyscallError::RangeError {
                    min: 0,
                    max: len - 2,
                }
                .into());
            }
            if domain >= NUM_DOMAINS {
                return Err(SyscallError::RangeError {
                    min: 0,
                    max: NUM_DOMAINS - 1,
                }
                .into());
            }
            if duration > DSCHED_MAX_DURATION {
                return Err(SyscallError::InvalidArgument { index: 2 }.into());
            }
            if duration == 0 && domain != 0 {
                return Err(SyscallError::InvalidArgument { index: 1 }.into());
            }
            let start = sched::with(|s| s.dom_schedule_start.get()) as u64;
            if index == start && duration == 0 {
                return Err(SyscallError::InvalidArgument { index: 2 }.into());
            }
            sched::with(|s| {
                s.dom_schedule[index as usize].set(sched::domain_entry(domain, duration))
            });
            Ok(())
        }
        Some(Label::DomainScheduleSetStart) => {
            if inv.length() < 1 {
                return Err(SyscallError::TruncatedMessage.into());
            }
            let index = inv.arg(0);
            let len = DOMAIN_SCHEDULE_LENGTH as u64;
            if index >= len {
                return Err(SyscallError::RangeError {
                    min: 0,
                    max: len - 1,
                }
                .into());
            }
            if sched::with(|s| s.dom_schedule[index as usize].get()) == 0 {
                return Err(SyscallError::InvalidArgument { index: 0 }.into());
            }
            sched::with(|s| {
                s.dom_schedule_start.set(index as usize);
                // End the current entry now and start over from the new one.
                s.domain_time.set(0);
                s.dom_schedule_idx.set(DOMAIN_SCHEDULE_LENGTH - 2);
            });
            sched::reschedule_required();
            Ok(())
        }
        _ => Err(SyscallError::IllegalOperation.into()),
    }
}
