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
use septa_sel4::{syscall, Cap};

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

mod counter {
    pub fn read() -> u64 {
        septa_pmu::cycles()
    }

    /// Starts the cycle counter and has it count EL2 too. A real seL4
    /// 16.0.0 kernel that exports the PMU (KernelArmExportPMUUser, no
    /// benchmark build) opens it to EL0 but leaves the counter stopped:
    /// PMCCNTR_EL0 does not move until PMCR_EL0.E and PMCNTENSET_EL0.C are
    /// set (observed), and `septa-pmu` does not set them.
    pub fn enable() {
        start();
        septa_pmu::count_kernel_too();
    }

    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    fn start() {
        /// PMCR_EL0.E: enable the counters.
        const PMCR_E: u64 = 1;
        /// PMCNTENSET_EL0.C: the cycle counter.
        const CYCLE_COUNTER: u64 = 1 << 31;
        // SAFETY: programs PMU control registers the kernel opened to EL0
        // (reading the counter did not trap); no memory is touched.
        unsafe {
            core::arch::asm!(
                "mrs {t}, pmcr_el0",
                "orr {t}, {t}, {e}",
                "msr pmcr_el0, {t}",
                "msr pmcntenset_el0, {c}",
                "isb",
                t = out(reg) _,
                e = in(reg) PMCR_E,
                c = in(reg) CYCLE_COUNTER,
                options(nomem, nostack),
            )
        };
    }

    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    fn start() {}
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
        crate::outln!(
            "{PROGRESS} pmu: not readable at EL0 on this kernel ({f:x?}); no instruction counts"
        );
        return Ok(());
    }
    let call = CALL_CYCLES.load(Relaxed);
    let yield_ = YIELD_CYCLES.load(Relaxed);
    if call == 0 {
        fail!("the PMU probe finished without measuring");
    }
    crate::outln!(
        "{PROGRESS} pmu: PMCCNTR_EL0 per operation (instructions when QEMU runs with -icount shift=0), mean of {ROUNDS}: Call+ReplyRecv round trip {call}, Yield {yield_}"
    );
    Ok(())
}
