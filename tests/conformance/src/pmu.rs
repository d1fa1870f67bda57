//! Instruction counts for the lead, when the kernel lets user level read
//! the PMU (a benchmark build, `KernelArmExportPMUUser`): not a case, just
//! a report after the cases.
//!
//! A probe thread with a fault handler reads the cycle counter. If that
//! traps, the kernel does not export the PMU and the suite says so. If it
//! works, the thread enables the cycle counter for all exception levels
//! (PMCCFILTR_EL0.NSH, so time in the EL2 kernel counts; under QEMU with
//! `-icount shift=0` a cycle is one instruction) and measures a Call/Reply
//! round trip to a server thread and a Yield.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::MessageInfo;
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::{debug_println, syscall, Cap};

use crate::cases::util::ALL;
use crate::env::Cx;
use crate::report::{Outcome, PROGRESS};
use crate::thread::{self, Spawn};
use crate::{fail, ok};

/// Round trips and yields measured.
const ROUNDS: u64 = 1000;
/// Badge of the probe's fault handler capability.
const FAULT_BADGE: u64 = 0xf0;

static EP: AtomicU64 = AtomicU64::new(0);
static CALL_CYCLES: AtomicU64 = AtomicU64::new(0);
static YIELD_CYCLES: AtomicU64 = AtomicU64::new(0);

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod counter {
    /// PMCR_EL0.E: enable the counters.
    const PMCR_E: u64 = 1;
    /// PMCNTENSET_EL0 bit of the cycle counter.
    const CYCLE_COUNTER: u64 = 1 << 31;
    /// PMCCFILTR_EL0.NSH: count at EL2 too.
    const NSH: u64 = 1 << 27;

    pub fn read() -> u64 {
        let v: u64;
        // SAFETY: reads the cycle counter; traps (to a fault handler) if
        // the kernel did not open the PMU to EL0. No memory is touched.
        unsafe { core::arch::asm!("mrs {}, pmccntr_el0", out(reg) v, options(nomem, nostack)) };
        v
    }

    pub fn enable() {
        // SAFETY: programs the PMU's cycle counter, which the kernel opened
        // to EL0 (read() did not trap); no memory is touched.
        unsafe {
            core::arch::asm!(
                "mrs {t}, pmcr_el0",
                "orr {t}, {t}, {e}",
                "msr pmcr_el0, {t}",
                "msr pmcntenset_el0, {c}",
                "msr pmccfiltr_el0, {f}",
                "isb",
                t = out(reg) _,
                e = in(reg) PMCR_E,
                c = in(reg) CYCLE_COUNTER,
                f = in(reg) NSH,
                options(nomem, nostack),
            )
        };
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod counter {
    pub fn read() -> u64 {
        unreachable!("the PMU is read on the target only")
    }
    pub fn enable() {}
}

fn server(_: u64) {
    let ep: Cap<Endpoint> = Cap::from_bits(EP.load(Relaxed));
    let r: Cap<Reply> = Cap::from_bits(REPLY.load(Relaxed));
    let info = MessageInfo::new(0, 0, 0, 0);
    syscall::recv_with_mrs(ep.cptr(), r);
    loop {
        syscall::reply_recv_with_mrs(ep.cptr(), info, [0; 4], r);
    }
}

static REPLY: AtomicU64 = AtomicU64::new(0);

fn probe(_: u64) {
    counter::read();
    counter::enable();
    let ep: Cap<Endpoint> = Cap::from_bits(EP.load(Relaxed));
    let info = MessageInfo::new(0, 0, 0, 0);
    let start = counter::read();
    for _ in 0..ROUNDS {
        syscall::call_with_mrs(ep.cptr(), info, [0; 4]);
    }
    let mid = counter::read();
    for _ in 0..ROUNDS {
        syscall::yield_now();
    }
    let end = counter::read();
    CALL_CYCLES.store((mid - start) / ROUNDS, Relaxed);
    YIELD_CYCLES.store((end - mid) / ROUNDS, Relaxed);
}

/// Probes the PMU and prints what it finds.
pub fn report(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let r = cx.reply()?;
    EP.store(ep.bits(), Relaxed);
    REPLY.store(r.bits(), Relaxed);
    let fault_ep = cx.endpoint()?;
    let handler = cx.mint(fault_ep, ALL, FAULT_BADGE)?;
    thread::spawn(cx, Spawn::new(server, 0).prio(101))?;
    let p = thread::spawn(cx, Spawn::new(probe, 0).fault(handler).suspended())?;
    // The root hears of the probe either way: a fault on the handler, or
    // its done notification, bound to the root for the purpose.
    ok!(cx.root_tcb().bind_notification(p.done));
    ok!(p.tcb.resume());
    let fr = cx.reply()?;
    let (info, badge) = syscall::recv(fault_ep.cptr(), fr);
    ok!(cx.root_tcb().unbind_notification());
    if badge == FAULT_BADGE {
        let f = Fault::from_ipc_buffer(info);
        debug_println!(
            "{PROGRESS} pmu: not readable at EL0 on this kernel ({f:x?}); no instruction counts"
        );
        return Ok(());
    }
    let call = CALL_CYCLES.load(Relaxed);
    let yield_ = YIELD_CYCLES.load(Relaxed);
    if call == 0 {
        fail!("the PMU probe finished without measuring");
    }
    debug_println!(
        "{PROGRESS} pmu: PMCCNTR_EL0 per operation (instructions when QEMU runs with -icount shift=0), mean of {ROUNDS}: Call+ReplyRecv round trip {call}, Yield {yield_}"
    );
    Ok(())
}
