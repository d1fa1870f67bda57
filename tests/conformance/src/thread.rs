//! Threads for the cases: created from the case pool, run in a worker
//! address space (see [`crate::space`]), started at a plain `fn(u64)`.
//!
//! A thread's body gets one word; cases pass more through [`MAIL`], a small
//! array of shared words (the root and its workers share all image memory).
//! When the body returns, the thread signals its `done` notification and
//! suspends itself, so the root can [`Thread::join`] it. A thread that
//! panics prints the panic, marks its worker, and does the same.
//!
//! A worker's stack and start record outlive its thread, so a worker is
//! reused only once its thread can never run again: [`Thread::join`]
//! suspends the thread itself rather than trust it to do so. The root runs
//! above its threads, so the `done` signal hands it the processor while the
//! thread is still runnable, between its signal and its own suspend. Left
//! so, it would share its stack with the worker's next thread and, run again
//! (say once that thread's budget ran out on a loaded host), clobber it.
//! [`next_round`] refuses to reuse a worker whose thread was not joined.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::ObjectType;
use septa_sel4::cap::cap_type::*;
use septa_sel4::{CNodeCapData, Cap, UserContext};

use crate::env::{Cx, SC_BITS};
use crate::report::{Failure, Outcome};
use crate::space::{self, WORKERS};
use crate::{fail, ok};

/// Shared words between a case and its threads, zeroed before each case.
pub static MAIL: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];

/// Reads mail word `i`.
pub fn mail(i: usize) -> u64 {
    MAIL[i].load(Relaxed)
}

/// Writes mail word `i`.
pub fn post(i: usize, v: u64) {
    MAIL[i].store(v, Relaxed)
}

/// Clears every mail word and marks every case worker free. Between cases
/// only, once the case's threads are deleted; within a case, [`next_round`].
pub fn reset() {
    for m in &MAIL {
        m.store(0, Relaxed);
    }
    BUSY.store(0, Relaxed);
    STARTED.store(0, Relaxed);
    for p in &PANICKED {
        p.store(0, Relaxed);
    }
}

/// Default budget (and period) of a round-robin thread, in microseconds.
pub const DEFAULT_BUDGET_US: u64 = 5_000;
/// Priority of a thread unless the case chooses: below the root's 255.
pub const DEFAULT_PRIO: u64 = 100;

struct StartInfo {
    entry: AtomicU64,
    arg: AtomicU64,
    tcb: AtomicU64,
    done: AtomicU64,
}

static START: [StartInfo; WORKERS] = [const {
    StartInfo {
        entry: AtomicU64::new(0),
        arg: AtomicU64::new(0),
        tcb: AtomicU64::new(0),
        done: AtomicU64::new(0),
    }
}; WORKERS];

/// Workers in use by the running case (bit per worker).
static BUSY: AtomicU64 = AtomicU64::new(0);
/// Workers whose thread was started and has not been joined (bit per worker).
static STARTED: AtomicU64 = AtomicU64::new(0);
/// Set by a worker's thread that panicked.
static PANICKED: [AtomicU64; WORKERS] = [const { AtomicU64::new(0) }; WORKERS];

/// How a thread gets time.
#[derive(Clone, Copy, Debug)]
pub enum Sched {
    /// Its own round-robin context (budget = period).
    RoundRobin,
    /// Its own periodic context, budget and period in microseconds.
    Periodic { budget: u64, period: u64 },
    /// A context the case made.
    Given(Cap<SchedContext>),
    /// None: the thread is passive until a context is donated or bound.
    Passive,
}

/// What to start.
#[derive(Clone, Copy)]
pub struct Spawn {
    entry: fn(u64),
    arg: u64,
    prio: u64,
    mcp: u64,
    sched: Sched,
    fault_ep: Option<Cap<Endpoint>>,
    start: bool,
    worker: Option<usize>,
    pool: Option<Cap<Untyped>>,
}

impl Spawn {
    pub fn new(entry: fn(u64), arg: u64) -> Spawn {
        Spawn {
            entry,
            arg,
            prio: DEFAULT_PRIO,
            mcp: 0,
            sched: Sched::RoundRobin,
            fault_ep: None,
            start: true,
            worker: None,
            pool: None,
        }
    }
    pub fn prio(mut self, prio: u64) -> Spawn {
        self.prio = prio;
        self
    }
    pub fn mcp(mut self, mcp: u64) -> Spawn {
        self.mcp = mcp;
        self
    }
    pub fn sched(mut self, sched: Sched) -> Spawn {
        self.sched = sched;
        self
    }
    pub fn fault(mut self, ep: Cap<Endpoint>) -> Spawn {
        self.fault_ep = Some(ep);
        self
    }
    /// Create the thread but leave it suspended.
    pub fn suspended(mut self) -> Spawn {
        self.start = false;
        self
    }
    pub(crate) fn worker(mut self, w: usize) -> Spawn {
        self.worker = Some(w);
        self
    }
    pub(crate) fn pool(mut self, ut: Cap<Untyped>) -> Spawn {
        self.pool = Some(ut);
        self
    }
}

/// A thread a case started.
#[derive(Clone, Copy, Debug)]
pub struct Thread {
    pub tcb: Cap<Tcb>,
    pub sc: Option<Cap<SchedContext>>,
    pub done: Cap<Notification>,
    pub worker: usize,
}

/// A worker address space for a thread of the running case.
pub(crate) fn take_worker() -> Result<usize, Failure> {
    for w in 1..WORKERS {
        let bit = 1 << w;
        if BUSY.fetch_or(bit, Relaxed) & bit == 0 {
            return Ok(w);
        }
    }
    fail!("more than {} threads in one case", WORKERS - 1)
}

/// The registers a thread starts with: at [`thread_start`] on its worker's
/// stack, with the worker index as the argument.
pub fn start_regs(worker: usize) -> UserContext {
    UserContext {
        pc: thread_start as *const () as u64,
        sp: space::stack_top(worker),
        spsr: septa_abi::kernel_config::PSTATE_USER,
        x0: worker as u64,
        ..Default::default()
    }
}

/// Number of leading registers of [`start_regs`] worth writing (pc..x0).
pub const START_REG_COUNT: u64 = 4;

/// Creates (and unless told otherwise starts) a thread.
pub fn spawn(cx: &mut Cx, s: Spawn) -> Result<Thread, Failure> {
    if !space::ready() {
        fail!("no worker address spaces to run a thread in (their setup failed, see the start of the log)");
    }
    let w = match s.worker {
        Some(w) => w,
        None => take_worker()?,
    };
    let ut = s.pool.unwrap_or_else(|| cx.pool());
    let tcb: Cap<Tcb> = cx.retype_from(ut, ObjectType::Tcb, 0)?;
    let done: Cap<Notification> = cx.retype_from(ut, ObjectType::Notification, 0)?;
    ok!(tcb.configure(
        cx.root_cnode(),
        CNodeCapData(0),
        space::vspace(w),
        0,
        space::ipc_buffer_vaddr(),
        Some(space::ipc_frame(w)),
    ));
    let sc = match s.sched {
        Sched::RoundRobin | Sched::Periodic { .. } => {
            let (budget, period) = match s.sched {
                Sched::Periodic { budget, period } => (budget, period),
                _ => (DEFAULT_BUDGET_US, DEFAULT_BUDGET_US),
            };
            let sc: Cap<SchedContext> = cx.retype_from(ut, ObjectType::SchedContext, SC_BITS)?;
            ok!(cx
                .sched_control()?
                .configure_flags(sc, budget, period, 0, 0, 0));
            Some(sc)
        }
        Sched::Given(sc) => Some(sc),
        Sched::Passive => None,
    };
    ok!(tcb.set_sched_params(cx.root_tcb(), s.mcp, s.prio, sc, s.fault_ep));
    let st = &START[w];
    st.entry.store(s.entry as usize as u64, Relaxed);
    st.arg.store(s.arg, Relaxed);
    st.tcb.store(tcb.bits(), Relaxed);
    st.done.store(done.bits(), Relaxed);
    PANICKED[w].store(0, Relaxed);
    ok!(tcb.write_registers(s.start, 0, START_REG_COUNT, &start_regs(w)));
    STARTED.fetch_or(1 << w, Relaxed);
    Ok(Thread {
        tcb,
        sc,
        done,
        worker: w,
    })
}

impl Thread {
    /// Waits until the thread's body has returned (or it panicked), then
    /// suspends it: on return the thread never runs again, and its worker
    /// may be reused ([`next_round`]).
    pub fn join(&self) -> Outcome {
        self.done.wait();
        // It may still be runnable, between its signal and its suspend.
        ok!(self.tcb.suspend());
        STARTED.fetch_and(!(1 << self.worker), Relaxed);
        self.check_panic()
    }

    /// Whether the body has returned, without waiting.
    pub fn finished(&self) -> bool {
        self.done.poll() != 0
    }

    /// Fails if the thread panicked.
    pub fn check_panic(&self) -> Outcome {
        if PANICKED[self.worker].load(Relaxed) != 0 {
            fail!("thread in worker {} panicked", self.worker);
        }
        Ok(())
    }
}

/// Within a case, between rounds that each start threads: clears the mail
/// and frees the workers, all of whose threads must have been joined.
pub fn next_round() -> Outcome {
    let started = STARTED.load(Relaxed);
    if started != 0 {
        fail!(
            "worker {} still has a thread that may run: join it before reusing the worker",
            started.trailing_zeros()
        );
    }
    reset();
    Ok(())
}

/// Where every thread starts: runs its body, then reports and stops.
pub extern "C" fn thread_start(worker: u64) -> ! {
    let w = worker as usize % WORKERS;
    // The worker's IPC buffer outlives its threads: forget any receive
    // path a previous thread left there.
    clear_receive_path();
    let st = &START[w];
    let raw = st.entry.load(Relaxed) as usize;
    // SAFETY: `spawn` stored a `fn(u64)` of this image, and every worker
    // maps the image at the addresses it was linked for.
    let entry = unsafe { core::mem::transmute::<usize, fn(u64)>(raw) };
    entry(st.arg.load(Relaxed));
    finish(w)
}

/// Sets no receive slot: capabilities sent to this thread are not taken.
pub fn clear_receive_path() {
    septa_sel4::ipc_buffer::set_receive_path(Cap::null(), septa_sel4::CPtr::NULL, 0);
}

/// Ends worker `w`'s thread: signal done, suspend.
pub fn finish(w: usize) -> ! {
    let st = &START[w % WORKERS];
    // Both read before the signal: once it is sent, the root may join this
    // thread and start another in the worker, with a new start record.
    let done: Cap<Notification> = Cap::from_bits(st.done.load(Relaxed));
    let tcb: Cap<Tcb> = Cap::from_bits(st.tcb.load(Relaxed));
    if !done.cptr().is_null() {
        done.signal();
    }
    let _ = tcb.suspend();
    // Not reached on a kernel that suspends the caller.
    loop {
        septa_sel4::syscall::yield_now();
    }
}

/// Called by the panic handler on a worker's stack.
pub fn panicked(w: usize) -> ! {
    PANICKED[w % WORKERS].store(1, Relaxed);
    finish(w)
}

/// The worker whose stack holds `sp`, if any.
pub fn worker_of_sp(sp: u64) -> Option<usize> {
    (0..WORKERS).find(|&w| space::stack_range(w).contains(&sp))
}

/// Whether the running thread is a worker (its stack is a worker's), not
/// the root thread.
pub fn in_worker() -> bool {
    let sp: u64;
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    // SAFETY: reads the stack pointer into a register; no memory access.
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp, options(nomem, nostack))
    };
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    {
        sp = 0;
    }
    worker_of_sp(sp).is_some()
}
