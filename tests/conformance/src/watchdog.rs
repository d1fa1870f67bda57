//! The watchdog: a thread that turns a hung or crashed case into one failed
//! case instead of a stalled suite.
//!
//! It runs at the highest priority on a periodic scheduling context (a short
//! budget every [`TICK_US`]), in worker 0. Each period it receives, without
//! blocking, on the root task's fault endpoint (if the root thread faulted, a
//! case crashed it: it records the fault), and it counts the running case's
//! ticks (past the case's limit, it records a timeout). In both cases it
//! restarts the root thread at [`crate::recover`] on a fresh stack (suspend,
//! write pc/sp, resume). The root then reports the case as failed, cleans up
//! after it and goes on with the next one.
//!
//! Yield ends its period: on a periodic context `Yield` gives up the rest of
//! the budget, so the thread sleeps until its next refill.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::{CapRights, ObjectType};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::{syscall, Cap, UserContext};

use crate::env::{self, Cx};
use crate::ok;
use crate::report::Failure;
use crate::space::WATCHDOG_WORKER;
use crate::thread::{self, Sched, Spawn};

/// Period of the watchdog, microseconds.
pub const TICK_US: u64 = 10_000;
/// Its budget per period, microseconds.
const BUDGET_US: u64 = 2_000;
/// A case may run this many ticks unless it asks for more.
pub const DEFAULT_LIMIT_TICKS: u64 = 300;
/// Badge of the root task's fault endpoint capability.
const ROOT_FAULT_BADGE: u64 = 0xfa17;

/// Why the root was restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    None,
    Timeout,
    Fault(Fault),
    Panic,
}

static ACTIVE: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);
static LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_LIMIT_TICKS);
static KIND: AtomicU64 = AtomicU64::new(0);
static FAULT_WORDS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static FAULT_LABEL: AtomicU64 = AtomicU64::new(0);
static EP: AtomicU64 = AtomicU64::new(0);
static REPLY: AtomicU64 = AtomicU64::new(0);
static ROOT_STACK_TOP: AtomicU64 = AtomicU64::new(0);
static RECOVER_PC: AtomicU64 = AtomicU64::new(0);

const KIND_NONE: u64 = 0;
const KIND_TIMEOUT: u64 = 1;
const KIND_FAULT: u64 = 2;
const KIND_PANIC: u64 = 3;

/// Starts watching a case: `limit` ticks from now.
pub fn arm(limit: u64) {
    TICKS.store(0, Relaxed);
    LIMIT.store(limit, Relaxed);
    KIND.store(KIND_NONE, Relaxed);
    ACTIVE.store(1, Relaxed);
}

/// Stops watching (between cases).
pub fn disarm() {
    ACTIVE.store(0, Relaxed);
}

/// Gives the running case `ticks` ticks from now instead of the default.
pub fn extend(ticks: u64) {
    TICKS.store(0, Relaxed);
    LIMIT.store(ticks, Relaxed);
}

/// Records that the root panicked (the panic handler then restarts it).
pub fn note_panic() {
    KIND.store(KIND_PANIC, Relaxed);
}

/// Why the root was last restarted, and forgets it.
pub fn take_abort() -> Abort {
    let k = KIND.swap(KIND_NONE, Relaxed);
    match k {
        KIND_TIMEOUT => Abort::Timeout,
        KIND_PANIC => Abort::Panic,
        KIND_FAULT => {
            let info = septa_sel4::MessageInfo::new(FAULT_LABEL.load(Relaxed), 0, 0, 8);
            Abort::Fault(Fault::decode(info, |i| {
                FAULT_WORDS.get(i).map_or(0, |w| w.load(Relaxed))
            }))
        }
        _ => Abort::None,
    }
}

/// Creates the watchdog from the infrastructure pool, makes it the root
/// thread's fault handler and starts it. `recover_pc` and `stack_top` are
/// where the root restarts.
pub fn start(cx: &mut Cx, recover_pc: u64, stack_top: u64) -> Result<(), Failure> {
    let infra = env::infra_pool();
    let ep: Cap<Endpoint> = cx.retype_from(infra, ObjectType::Endpoint, 0)?;
    let reply: Cap<Reply> = cx.retype_from(infra, ObjectType::Reply, 0)?;
    let badged = cx.mint(ep, CapRights::ALL, ROOT_FAULT_BADGE)?;
    EP.store(ep.bits(), Relaxed);
    REPLY.store(reply.bits(), Relaxed);
    ROOT_STACK_TOP.store(stack_top, Relaxed);
    RECOVER_PC.store(recover_pc, Relaxed);
    let max = septa_abi::kernel_config::MAX_PRIORITY;
    let sc: Cap<SchedContext> = cx.retype_from(infra, ObjectType::SchedContext, env::SC_BITS)?;
    ok!(cx
        .sched_control()?
        .configure_flags(sc, BUDGET_US, TICK_US, 0, 0, 0));
    let spawn = Spawn::new(watch, 0)
        .prio(max)
        .sched(Sched::Given(sc))
        .worker(WATCHDOG_WORKER)
        .pool(infra);
    thread::spawn(cx, spawn)?;
    // Only now that someone listens: the root's faults go to the watchdog.
    ok!(cx
        .root_tcb()
        .set_sched_params(cx.root_tcb(), max, max, Some(cx.root_sc()), Some(badged)));
    Ok(())
}

fn watch(_: u64) {
    let ep: Cap<Endpoint> = Cap::from_bits(EP.load(Relaxed));
    let reply: Cap<Reply> = Cap::from_bits(REPLY.load(Relaxed));
    loop {
        let (info, badge) = syscall::nb_recv(ep.cptr(), reply);
        if badge == ROOT_FAULT_BADGE {
            FAULT_LABEL.store(info.label(), Relaxed);
            for (i, w) in FAULT_WORDS.iter().enumerate() {
                w.store(septa_sel4::ipc_buffer::get_mr(i), Relaxed);
            }
            KIND.store(KIND_FAULT, Relaxed);
            restart_root();
        } else if ACTIVE.load(Relaxed) != 0 {
            let t = TICKS.fetch_add(1, Relaxed) + 1;
            if t >= LIMIT.load(Relaxed) {
                KIND.store(KIND_TIMEOUT, Relaxed);
                restart_root();
            }
        }
        syscall::yield_now();
    }
}

/// Suspends the root thread wherever it is and resumes it at the recovery
/// entry on a fresh stack, at its own priority again (a case may have
/// lowered it below a thread that now never stops).
fn restart_root() {
    ACTIVE.store(0, Relaxed);
    let root: Cap<Tcb> = Cap::from_bits(septa_abi::init_cap::TCB);
    let _ = root.suspend();
    let _ = root.set_priority(root, septa_abi::kernel_config::MAX_PRIORITY);
    let regs = UserContext {
        pc: RECOVER_PC.load(Relaxed),
        sp: ROOT_STACK_TOP.load(Relaxed),
        spsr: septa_abi::kernel_config::PSTATE_USER,
        ..Default::default()
    };
    let _ = root.write_registers(true, 0, thread::START_REG_COUNT, &regs);
}
