//! The monitor: what the initializer does once everything runs. It waits
//! on its endpoint, where every top-level PD's faults arrive (badge: the
//! PD's index plus one) and where passive PDs say their `init` is done.
//!
//! - A message with label 0 from a passive PD: the PD's scheduling context
//!   is taken from its TCB and bound to its notification (Microkit binds it
//!   there; Septa also unbinds it from the TCB, so the PD really runs only
//!   on its callers' time, and on the notification's when signalled).
//! - A fault: it is decoded and printed with the PD's name (see
//!   `fault_text`); a caller blocked in a protected procedure call to the
//!   PD is answered with `SERVER_FAULT_LABEL` (it would wait for ever
//!   otherwise); then the PD's policy applies:
//!   - `stop`: the PD is suspended; the rest of the system runs on;
//!   - `halt`: every PD is suspended;
//!   - `restart`: up to `limit` times, the PD is suspended, its writable
//!     memory restored if asked (image data and bss reloaded, stack zeroed),
//!     its registers reset (PC = entry, SP = stack top, all else zero),
//!     its generation published if it has a generation frame, and it is
//!     resumed; past the limit it is stopped.
//!
//! - A timeout fault (a cell ran out of budget before its period ended;
//!   only cells have a timeout endpoint): counted as an overrun, its
//!   consumed time added to the PD's, and the PD resumed at once (the
//!   kernel runs it again when its budget is refilled).
//! - A call from the statistics PD with `septa_cells::stats::REFRESH_LABEL`:
//!   every PD's scheduling context is read (`SchedContextConsumed`, which
//!   also resets it, so each microsecond is counted once), the table is
//!   written into the statistics frame, and only then the call answered.
//!
//! Per PD the monitor keeps CPU time, faults, overruns and restarts; no
//! PD can write them: they change only on what the kernel reports.
//!
//! Back-off without a timer driver: before a restart with `backoff_us`,
//! the monitor reconfigures its own scheduling context to a short budget
//! in a period of `backoff_us` and yields, which makes the kernel hold it
//! until the next period (MCS time, no device needed); then it restores a
//! round-robin budget. Other PDs run meanwhile.

use alloc::vec::Vec;

use septa_abi::microkit::SERVER_FAULT_LABEL;
use septa_abi::{init_cap, TCB_REGISTER_COUNT};
use septa_sel4::bootinfo::BootInfoRef;
use septa_sel4::fault::Fault;
use septa_sel4::{cap_type, debug_println, syscall, Cap, Error, MessageInfo, UserContext};
use septa_spec::{ObjectKind, Policy, Spec};

use septa_cells::stats as table;

use crate::fault_text::Described;
use crate::frames::FrameAccess;
use crate::realize::{apply_fills, Realized};

/// Most budget of the monitor's scheduling context while it backs off
/// (half the back-off when that is shorter). After the wake-up it needs
/// this to reach its next system call: with 100 us, measured under QEMU on
/// a loaded host, the kernel's exit path and the monitor's first
/// instructions often took longer, and each shortfall cost a whole period
/// more (a 20 ms back-off lasted 200-800 ms).
pub const BACKOFF_BUDGET_US: u64 = 1000;
/// The monitor's round-robin budget and period after a back-off.
pub const MONITOR_SLICE_US: u64 = 10_000;

/// Faults of one PD the monitor describes each; past them, only the
/// faults whose count is a power of two, so that a PD that faults in a
/// loop (a hostile cell) cannot flood the console and slow the system.
pub const TOLD_EACH: u32 = 8;

fn told(n: u32) -> bool {
    n <= TOLD_EACH || n.is_power_of_two()
}

/// What the monitor remembers of each PD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PdState {
    pub restarts: u32,
    /// Faults received (timeouts are overruns, not faults).
    pub faults: u32,
    /// Timeout faults: times its budget ran out before its period ended.
    pub overruns: u32,
    /// Microseconds its scheduling context consumed, as far as read.
    pub cpu_us: u64,
    /// Its scheduling context is bound to its notification, not its TCB.
    pub passive_now: bool,
    pub stopped: bool,
}

pub struct Monitor<'s, 'a> {
    spec: &'s Spec<'a>,
    data: &'s [u8],
    bi: BootInfoRef,
    caps: &'s Realized,
    mem: &'s mut dyn FrameAccess,
    pub state: Vec<PdState>,
    pub halted: bool,
    /// Statistics refreshes answered.
    pub refreshes: u64,
}

impl<'s, 'a> Monitor<'s, 'a> {
    pub fn new(
        spec: &'s Spec<'a>,
        data: &'s [u8],
        bi: BootInfoRef,
        caps: &'s Realized,
        mem: &'s mut dyn FrameAccess,
    ) -> Self {
        Monitor {
            spec,
            data,
            bi,
            caps,
            mem,
            state: alloc::vec![PdState::default(); spec.pds.len()],
            halted: false,
            refreshes: 0,
        }
    }

    /// Waits for one message and handles it.
    pub fn step(&mut self) {
        let Some(root) = self.spec.root else {
            return;
        };
        let ep = self.caps.objects[root.fault_endpoint as usize];
        let reply: Cap<cap_type::Reply> = self.caps.cap(root.reply);
        let (info, badge) = syscall::recv(ep, reply);
        self.handle(info, badge);
    }

    /// Handles a message that arrived with `badge`.
    pub fn handle(&mut self, info: MessageInfo, badge: u64) {
        let fault = Fault::from_ipc_buffer(info);
        let pd = badge
            .checked_sub(1)
            .map(|i| i as usize)
            .filter(|i| *i < self.spec.pds.len());
        let Some(p) = pd else {
            debug_println!(
                "monitor: a message with unknown badge {badge:#x} (label {}) ignored",
                info.label()
            );
            return;
        };
        if self
            .spec
            .stats
            .is_some_and(|s| s.requester as usize == p && info.label() == table::REFRESH_LABEL)
        {
            self.refresh();
            self.reply(MessageInfo::new(0, 0, 0, 0));
            return;
        }
        if self.halted {
            return;
        }
        if let Fault::Timeout { consumed, .. } = fault {
            let s = &mut self.state[p];
            s.overruns = s.overruns.saturating_add(1);
            s.cpu_us = s.cpu_us.saturating_add(consumed);
            // An empty reply with label 0 lets the thread run on.
            self.reply(MessageInfo::new(0, 0, 0, 0));
            return;
        }
        if fault == Fault::Null {
            self.become_passive(p);
        } else {
            self.fault(p, &fault);
        }
    }

    /// Answers the message just received, through the monitor's reply
    /// object.
    fn reply(&self, info: MessageInfo) {
        if let Some(root) = self.spec.root {
            syscall::send(self.caps.objects[root.reply as usize], info);
        }
    }

    /// Reads every PD's scheduling context and writes the statistics
    /// table.
    pub fn refresh(&mut self) {
        let Some(export) = self.spec.stats else {
            return;
        };
        let mut entries = Vec::with_capacity(self.spec.pds.len());
        for (p, pd) in self.spec.pds.iter().enumerate() {
            let t = &self.spec.threads[pd.thread as usize];
            if let Some(sc) = self.sched_context(p) {
                if let Ok(us) = sc.consumed() {
                    self.state[p].cpu_us = self.state[p].cpu_us.saturating_add(us);
                }
            }
            let s = &self.state[p];
            let mut e = table::Entry::named(pd.name);
            e.cpu_us = s.cpu_us;
            if let Some(params) = t.sched_context {
                e.budget_us = params.budget_us.min(u64::from(u32::MAX)) as u32;
                e.period_us = params.period_us.min(u64::from(u32::MAX)) as u32;
            }
            e.faults = s.faults;
            e.restarts = s.restarts;
            e.overruns = s.overruns;
            e.state = if s.stopped {
                table::State::Stopped
            } else if s.passive_now {
                table::State::Passive
            } else {
                table::State::Running
            };
            e.cell = pd.cell;
            e.priority = t.priority;
            entries.push(e);
        }
        self.refreshes += 1;
        let refreshes = self.refreshes;
        let size_bits = match self.spec.objects[export.frame as usize].kind {
            ObjectKind::Frame { size_bits } => size_bits,
            _ => return,
        };
        let r = self.mem.with_frame(
            self.caps.objects[export.frame as usize],
            size_bits,
            &mut |bytes| {
                table::write(bytes, refreshes, &entries);
            },
        );
        if let Err(e) = r {
            debug_println!("monitor: could not write the statistics: {e}");
        }
    }

    fn tcb(&self, p: usize) -> Cap<cap_type::Tcb> {
        let t = &self.spec.threads[self.spec.pds[p].thread as usize];
        self.caps.cap(t.tcb)
    }

    fn sched_context(&self, p: usize) -> Option<Cap<cap_type::SchedContext>> {
        let t = &self.spec.threads[self.spec.pds[p].thread as usize];
        t.sched_context.map(|s| self.caps.cap(s.sched_context))
    }

    fn become_passive(&mut self, p: usize) {
        let pd = &self.spec.pds[p];
        let name = pd.name;
        if !pd.passive {
            debug_println!("monitor: PD {name} sent an empty message but is not passive; ignored");
            return;
        }
        let Some(sc) = self.sched_context(p) else {
            return;
        };
        let ntfn: Cap<cap_type::Notification> = self.caps.cap(pd.notification);
        let r = sc.unbind_object(self.tcb(p)).and_then(|()| sc.bind(ntfn));
        match r {
            Ok(()) => {
                self.state[p].passive_now = true;
                debug_println!("monitor: PD {name} is now passive");
            }
            Err(e) => debug_println!("monitor: PD {name} could not become passive: {e}"),
        }
    }

    fn fault(&mut self, p: usize, fault: &Fault) {
        self.state[p].faults = self.state[p].faults.saturating_add(1);
        let pd = &self.spec.pds[p];
        let name = pd.name;
        let tcb = self.tcb(p);
        let regs = tcb
            .read_registers(false, 0, TCB_REGISTER_COUNT as u64)
            .unwrap_or_default();
        let d = Described {
            fault,
            regs: &regs,
            stack: pd.stack,
        };
        let n = self.state[p].faults;
        let say = told(n);
        if say {
            if n > TOLD_EACH {
                debug_println!(
                    "monitor: PD {name} faulted {n} times (past {TOLD_EACH}, only every power of two is shown)"
                );
            }
            debug_println!("monitor: PD {name} faulted: {d}");
            debug_println!(
                "monitor:   pc {:#x} sp {:#x} lr {:#x} x0 {:#x}",
                regs.pc,
                regs.sp,
                regs.x30,
                regs.x0
            );
        }
        // Suspending also cancels the fault message's pending reply, so
        // the reply object is free for the next receive.
        if let Err(e) = tcb.suspend() {
            debug_println!("monitor: could not suspend PD {name}: {e}");
        }
        if pd.policy != Policy::Halt {
            self.answer_caller(p);
        }
        match pd.policy {
            Policy::Stop => {
                self.state[p].stopped = true;
                debug_println!("monitor: PD {name} stopped (its policy is stop)");
            }
            Policy::Halt => {
                debug_println!("monitor: halting the system (PD {name}'s policy is halt)");
                for q in 0..self.spec.pds.len() {
                    let _ = self.tcb(q).suspend();
                    self.state[q].stopped = true;
                }
                self.halted = true;
                debug_println!("monitor: system halted");
            }
            Policy::Restart {
                limit,
                backoff_us,
                reset_memory,
            } => {
                if self.state[p].restarts >= limit {
                    self.state[p].stopped = true;
                    debug_println!(
                        "monitor: PD {name} reached its restart limit ({limit}); stopped"
                    );
                    return;
                }
                match self.restart(p, backoff_us, reset_memory) {
                    Ok(()) => {
                        let n = self.state[p].restarts;
                        if !say {
                        } else if limit == u32::MAX {
                            debug_println!("monitor: PD {name} restarted ({n})");
                        } else {
                            debug_println!("monitor: PD {name} restarted ({n} of {limit})");
                        }
                    }
                    Err(e) => {
                        self.state[p].stopped = true;
                        debug_println!("monitor: restarting PD {name} failed: {e}; stopped");
                    }
                }
            }
        }
    }

    /// If PD `p` faulted while serving a protected procedure call, its
    /// caller waits on `p`'s reply object: answer it with
    /// [`SERVER_FAULT_LABEL`] through that object, which also gives a
    /// donated scheduling context back to the caller. When nobody waits on
    /// it (the fault came in `init` or `notified`), the kernel does nothing.
    fn answer_caller(&self, p: usize) {
        let reply = self.caps.objects[self.spec.pds[p].reply as usize];
        syscall::send(reply, MessageInfo::new(SERVER_FAULT_LABEL, 0, 0, 0));
    }

    /// Fills frame `id` afresh: zeroes, then its initial contents.
    fn reload(&mut self, id: u32) -> Result<(), Error> {
        let obj = &self.spec.objects[id as usize];
        let ObjectKind::Frame { size_bits } = obj.kind else {
            return Ok(());
        };
        let (data, bi) = (self.data, &self.bi);
        let mut bad = false;
        self.mem
            .with_frame(self.caps.objects[id as usize], size_bits, &mut |bytes| {
                bytes.fill(0);
                bad = apply_fills(&obj.fill, bytes, data, bi).is_err();
            })?;
        if bad {
            debug_println!(
                "monitor: the initial contents of {} are out of range",
                obj.name
            );
        }
        Ok(())
    }

    fn restart(&mut self, p: usize, backoff_us: u64, reset_memory: bool) -> Result<(), Error> {
        let pd = &self.spec.pds[p];
        let t = &self.spec.threads[pd.thread as usize];
        if reset_memory {
            for f in &pd.writable_frames {
                self.reload(*f)?;
            }
        }
        let regs = UserContext {
            pc: t.entry,
            sp: t.stack_top,
            ..Default::default()
        };
        let tcb = self.tcb(p);
        tcb.write_registers(false, 0, TCB_REGISTER_COUNT as u64, &regs)?;
        if self.state[p].passive_now {
            // Give the scheduling context back to the thread for its init;
            // it will say again when it is done.
            if let Some(sc) = self.sched_context(p) {
                sc.unbind()?;
                sc.bind(tcb)?;
            }
            self.state[p].passive_now = false;
        }
        if backoff_us > 0 {
            self.back_off(backoff_us);
        }
        self.state[p].restarts += 1;
        if let Some((frame, word)) = pd.generation {
            let n = u64::from(self.state[p].restarts);
            let size_bits = match self.spec.objects[frame as usize].kind {
                ObjectKind::Frame { size_bits } => size_bits,
                _ => septa_abi::PAGE_BITS as u8,
            };
            self.mem
                .with_frame(self.caps.objects[frame as usize], size_bits, &mut |bytes| {
                    let at = word as usize * 8;
                    if let Some(w) = bytes.get_mut(at..at + 8) {
                        w.copy_from_slice(&n.to_le_bytes());
                    }
                })?;
        }
        tcb.resume()
    }

    /// Sleeps for about `us` microseconds on MCS time (see the module
    /// comment); does nothing if the kernel refuses.
    fn back_off(&self, us: u64) {
        let Some(ctl) = self.bi.sched_control(0) else {
            return;
        };
        let own: Cap<cap_type::SchedContext> = Cap::from_bits(init_cap::SCHED_CONTEXT);
        let budget = BACKOFF_BUDGET_US.min(us / 2);
        // The yield gives up the whole budget, which comes back a period
        // after it was granted: the monitor wakes a period minus a budget
        // after the yield (measured: tests/systems/recovery), so the
        // period is the back-off plus the budget.
        if ctl
            .configure_flags(own, budget, us + budget, 0, 0, 0)
            .is_ok()
        {
            syscall::yield_now();
            let _ = ctl.configure_flags(own, MONITOR_SLICE_US, MONITOR_SLICE_US, 0, 0, 0);
        }
    }

    /// Runs for ever.
    pub fn run(&mut self) -> ! {
        loop {
            self.step();
        }
    }
}
