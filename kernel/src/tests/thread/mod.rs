//! Host tests of threads, IPC, scheduling and faults, driven through the
//! real system-call layer.
//!
//! [`Sys`] extends the capability-layer [`Fixture`] into a small running
//! system: an idle thread in kernel memory, a root thread at priority 255
//! whose CSpace is the fixture's root CNode, a SchedControl cap, and
//! helpers that retype objects and make threads with the kernel's own
//! invocations. A test plays a thread by writing its registers and IPC
//! buffer and calling `syscall::handle_syscall` while it is the current
//! thread, as the arch code would after an `svc`.

mod active_fastpath;
mod benchmark;
mod fastpath;
mod fault;
mod ipc;
mod irq_fastpath;
mod model;
mod recv_fastpath;
mod scheduling;
mod tcb_invocations;
mod user_errors;
mod vcpu;

use super::{Fixture, D};
use crate::cap::{Cap, FrameSize, VmRights};
use crate::context::Reg;
use crate::cte::cte_insert;
use crate::ipc::{buffer_word, set_buffer_word};
use crate::machine;
use crate::object::sched_context::Sc;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::sched;
use crate::syscall;
use septa_abi::ipc_buffer::{CAPS_OR_BADGES_OFFSET, RECEIVE_CNODE_OFFSET};
use septa_abi::{syscall as sys, Label, MessageInfo, ObjectType};

/// Root CNode slots the fixture uses.
pub const ROOT_TCB: u64 = 10;
pub const ROOT_SC: u64 = 11;
pub const ROOT_BUFFER: u64 = 12;
pub const SCHED_CONTROL: u64 = 13;
/// Where objects made by tests go from.
pub const FIRST_FREE: u64 = 32;

/// Virtual address every thread's IPC buffer pretends to be at (the frame
/// cap in the buffer slot is what the kernel uses).
pub const BUFFER_VADDR: u64 = 0x10_0000;
/// A pc for threads (the kernel never runs user code on the host).
pub const PC: u64 = 0x40_0000;
/// 1 ms at the host double's 100 MHz clock, in microseconds for
/// ConfigureFlags.
pub const MS: u64 = 1000;

/// A thread a test made: its TCB and the root slots of its caps.
#[derive(Clone, Copy, Debug)]
pub struct Thread {
    pub tcb: Tcb,
    pub tcb_slot: u64,
    pub sc_slot: Option<u64>,
}

/// What a system call returned to the thread: x0 (badge), message info,
/// and the message registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub badge: u64,
    pub info: MessageInfo,
    pub mrs: Vec<u64>,
}

pub struct Sys {
    pub fx: Fixture,
    pub root: Thread,
    next_slot: u64,
    /// System calls skip the fast path (to compare the two).
    pub slow: bool,
}

impl Drop for Sys {
    fn drop(&mut self) {
        crate::preempt::set_preemption_check(None);
        machine::set_pending_irq(None);
        let _ = machine::take_log();
    }
}

impl Sys {
    /// A system in a 2^22-byte arena: the root thread runs.
    pub fn new() -> Sys {
        machine::set_now(1_000_000);
        let _ = machine::take_log();
        machine::set_pending_irq(None);
        // Kernel globals outlive a test on its thread: forget the threads
        // of an earlier test before making new ones.
        tcb::debug_reset();
        crate::object::vspace::reset_for_test();
        sched::reset_for_test();
        crate::object::vcpu::test_support::reset();
        machine::with_vcpu_hw(|h| *h = Default::default());
        crate::benchmark::reset_for_test();
        let fx = Fixture::new(22);
        // Kernel memory for the idle thread: the zeroed area below the root
        // CNode (the fixture keeps its own root slot at +0x100), aligned for
        // the TCB of the configuration.
        let idle_tcb = fx.arena.phys_base + tcb::TCB_BYTES;
        let idle_sc = idle_tcb + tcb::TCB_BYTES;
        let mut s = Sys {
            fx,
            root: Thread {
                tcb: Tcb::new(idle_tcb),
                tcb_slot: ROOT_TCB,
                sc_slot: Some(ROOT_SC),
            },
            next_slot: FIRST_FREE,
            slow: false,
        };
        // The root thread's objects, made as boot would.
        s.fx.retype(super::UT, ObjectType::Tcb, 0, ROOT_TCB, 1)
            .unwrap();
        s.fx.retype(super::UT, ObjectType::SchedContext, 8, ROOT_SC, 1)
            .unwrap();
        s.fx.retype(super::UT, ObjectType::SmallPage, 0, ROOT_BUFFER, 1)
            .unwrap();
        crate::cte::write_boot_slot(s.fx.slot(SCHED_CONTROL), &Cap::SchedControl { core: 0 });
        cte_insert(&s.fx.root_cap(), s.fx.root_slot, s.fx.slot(ROOT_CNODE_COPY));
        let Cap::Tcb { paddr } = s.fx.cap(ROOT_TCB) else {
            unreachable!()
        };
        let root = Tcb::new(paddr);
        tcb::init_new(paddr);
        cte_insert(&s.fx.root_cap(), s.fx.root_slot, root.slot(tcb::CTABLE));
        s.give_buffer(root, ROOT_BUFFER);
        let Cap::SchedContext { paddr: sc, .. } = s.fx.cap(ROOT_SC) else {
            unreachable!()
        };
        sched::configure_sched_context(root, Sc::new(sc), sched::us_to_ticks(10 * MS));
        root.set_priority_raw(sched::MAX_PRIO);
        root.set_mcp(sched::MAX_PRIO);
        root.set_state_raw(ThreadState::Running);
        root.set_next_pc(PC);
        sched::init(idle_tcb, idle_sc, Some(root));
        sched::start();
        assert_eq!(sched::cur_thread(), root);
        s.root.tcb = root;
        s
    }

    /// A free root slot.
    pub fn slot(&mut self) -> u64 {
        let n = self.next_slot;
        self.next_slot += 1;
        n
    }

    /// Retypes one object into a fresh root slot (as the root thread).
    pub fn make(&mut self, ty: ObjectType, size: u64) -> u64 {
        let n = self.slot();
        self.fx.retype(super::UT, ty, size, n, 1).unwrap();
        // What the system-call layer does after a Retype.
        match self.fx.cap(n) {
            Cap::Tcb { paddr } => tcb::init_new(paddr),
            Cap::Vcpu { paddr } => crate::object::vcpu::init_new(paddr),
            _ => {}
        }
        n
    }

    /// The physical address of the object in root slot `n`.
    pub fn paddr(&self, n: u64) -> u64 {
        self.fx.cap(n).object_paddr().expect("an object cap")
    }

    /// Puts a copy of the frame in root slot `frame` into `t`'s buffer slot.
    pub fn give_buffer(&self, t: Tcb, frame: u64) {
        let Cap::Frame { paddr, .. } = self.fx.cap(frame) else {
            panic!("slot {frame} is not a frame")
        };
        let cap = Cap::Frame {
            paddr,
            size: FrameSize::Small,
            rights: VmRights::ReadWrite,
            is_device: false,
            mapped: None,
        };
        cte_insert(&cap, self.fx.slot(frame), t.slot(tcb::BUFFER));
        t.set_ipc_buffer(BUFFER_VADDR);
    }

    /// The physical address of a thread's IPC buffer.
    pub fn buffer(&self, t: Tcb) -> u64 {
        crate::ipc::lookup_ipc_buffer(true, t).expect("thread has a buffer")
    }

    /// A new thread sharing the root CSpace, with an IPC buffer, at
    /// `prio`; with `budget_us`, a scheduling context of that budget
    /// (period `period_us`). It is not started.
    pub fn thread(&mut self, prio: u64, sc: Option<(u64, u64)>) -> Thread {
        let tcb_slot = self.make(ObjectType::Tcb, 0);
        let buf = self.make(ObjectType::SmallPage, 0);
        let t = Tcb::new(self.paddr(tcb_slot));
        cte_insert(&self.fx.root_cap(), self.fx.root_slot, t.slot(tcb::CTABLE));
        self.give_buffer(t, buf);
        t.set_next_pc(PC);
        let r = self.call(
            self.root.tcb,
            tcb_slot,
            Label::TcbSetPriority,
            &[prio],
            &[ROOT_TCB],
        );
        assert_eq!(r.info.label(), 0, "SetPriority: {r:?}");
        let sc_slot = sc.map(|(budget, period)| {
            let s = self.make(ObjectType::SchedContext, 8);
            self.configure(s, budget, period, 0, 0);
            let r = self.call(self.root.tcb, s, Label::SchedContextBind, &[], &[tcb_slot]);
            assert_eq!(r.info.label(), 0, "Bind: {r:?}");
            s
        });
        Thread {
            tcb: t,
            tcb_slot,
            sc_slot,
        }
    }

    /// SchedControl ConfigureFlags on the SC in root slot `sc`.
    pub fn configure(&mut self, sc: u64, budget_us: u64, period_us: u64, badge: u64, flags: u64) {
        let r = self.call(
            self.root.tcb,
            SCHED_CONTROL,
            Label::SchedControlConfigureFlags,
            &[budget_us, period_us, 0, badge, flags],
            &[sc],
        );
        assert_eq!(r.info.label(), 0, "ConfigureFlags: {r:?}");
    }

    /// Starts a thread (TCB Resume, as the root).
    pub fn resume(&mut self, t: Thread) {
        let r = self.call(self.root.tcb, t.tcb_slot, Label::TcbResume, &[], &[]);
        assert_eq!(r.info.label(), 0);
    }

    /// Loads a message into `t`'s registers and buffer: x0 = `cptr`, the
    /// message info, MRs, and the extra caps' addresses.
    pub fn load(&self, t: Tcb, cptr: u64, label: u64, mrs: &[u64], caps: &[u64]) {
        t.set_reg(Reg::CAP, cptr);
        t.set_reg(
            Reg::MSG_INFO,
            MessageInfo::new(label, 0, caps.len() as u64, mrs.len() as u64).0,
        );
        let buf = crate::ipc::lookup_ipc_buffer(false, t);
        for (i, &w) in mrs.iter().enumerate() {
            if i < 4 {
                t.set_reg(crate::context::MSG_REGISTERS[i], w);
            } else if let Some(b) = buf {
                set_buffer_word(b, i + 1, w);
            }
        }
        if let Some(b) = buf {
            for (i, &c) in caps.iter().enumerate() {
                set_buffer_word(b, CAPS_OR_BADGES_OFFSET / 8 + i, c);
            }
        }
    }

    /// Makes `t` execute system call `number` (it must be current).
    pub fn syscall(&self, t: Tcb, number: i64) {
        assert_eq!(sched::cur_thread(), t, "only the current thread can trap");
        let pc = t.reg(Reg::NEXT_IP);
        t.set_reg(Reg::FAULT_IP, pc);
        t.set_next_pc(pc + 4);
        t.set_reg(Reg::X7, number as u64);
        crate::benchmark::enter();
        if self.slow {
            syscall::handle_syscall_slow(number);
        } else {
            syscall::handle_syscall(number);
        }
        crate::benchmark::exit(sched::cur_thread());
    }

    /// What `t` got back: badge, info, and the message registers.
    pub fn reply(&self, t: Tcb) -> Reply {
        let info = MessageInfo(t.reg(Reg::MSG_INFO));
        let buf = crate::ipc::lookup_ipc_buffer(true, t);
        let mrs = (0..info.length() as usize)
            .map(|i| crate::ipc::get_mr(t, buf, i))
            .collect();
        Reply {
            badge: t.reg(Reg::BADGE),
            info,
            mrs,
        }
    }

    /// `t` Calls the cap at root slot `cptr` (a full 64-bit address).
    pub fn call(&self, t: Tcb, cptr: u64, label: Label, mrs: &[u64], caps: &[u64]) -> Reply {
        self.load(t, cptr, label.number(), mrs, caps);
        self.syscall(t, sys::CALL);
        self.reply(t)
    }

    /// Like [`Self::call`] with a raw label.
    pub fn call_raw(&self, t: Tcb, cptr: u64, label: u64, mrs: &[u64], caps: &[u64]) -> Reply {
        self.load(t, cptr, label, mrs, caps);
        self.syscall(t, sys::CALL);
        self.reply(t)
    }

    /// Sets `t`'s receive slot (for cap transfer) to root slot `slot`.
    pub fn receive_into(&self, t: Tcb, slot: u64) {
        let b = self.buffer(t);
        // The receive root is the root CNode itself, named by a copy of its
        // cap in root slot ROOT_CNODE_COPY.
        set_buffer_word(b, RECEIVE_CNODE_OFFSET / 8, ROOT_CNODE_COPY);
        set_buffer_word(b, RECEIVE_CNODE_OFFSET / 8 + 1, slot);
        set_buffer_word(b, RECEIVE_CNODE_OFFSET / 8 + 2, D);
    }

    /// Word `i` of `t`'s IPC buffer.
    pub fn buf_word(&self, t: Tcb, i: usize) -> u64 {
        buffer_word(self.buffer(t), i)
    }

    /// Runs the scheduler as after an interrupt at time `now` (ticks).
    pub fn tick(&self, now: u64) {
        machine::set_now(now);
        machine::set_pending_irq(Some(machine::TIMER_IRQ));
        syscall::handle_interrupt_entry();
    }

    pub fn cur(&self) -> Tcb {
        sched::cur_thread()
    }
}

/// A root slot holding a copy of the root CNode cap (the destination root
/// of Retype, the receive root of cap transfers).
pub const ROOT_CNODE_COPY: u64 = 14;
