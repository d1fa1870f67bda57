//! The interrupt fast path (`fastpath::interrupt`) must leave exactly the
//! state the slow path leaves: the same scenario runs twice from the same
//! start, once with every interrupt through `handle_interrupt_entry` (fast
//! path first) and once through `handle_interrupt_entry_slow`, and the
//! whole outcome is compared as for the IPC fast paths (the arena word by
//! word, the scheduler's globals, the current address space, every request
//! made of the machine: masks, ends of interrupt, timer, address-space and
//! FPU switches; and a digest after each interrupt).
//!
//! A driver thread with a scheduling context of its own waits for an IRQ's
//! notification (on it, or bound to it and in Recv on an endpoint) while
//! the root thread runs, or the idle thread. The scenarios vary what the
//! fast path checks: priorities (with a third thread ready), sporadic or
//! short budgets, the driver in another domain, a notification already
//! active, the kernel's timer or an
//! IRQ without a handler instead, the clock (budgets running out, the
//! driver parked in the release queue and due again), and several
//! interrupts in a row with the driver waiting again in between.

use super::fastpath::{
    asid_pool, bind_notification, digest, give_vspace, outcome, same, set_priority, Outcome,
};
use super::{Sys, MS, ROOT_CNODE_COPY, ROOT_TCB};
use crate::cap::Cap;
use crate::cte::write_boot_slot;
use crate::fastpath::TAKEN;
use crate::machine;
use crate::memory;
use crate::object::irq::IRQ_COUNT;
use crate::object::tcb::ThreadState;
use crate::{sched, syscall};
use proptest::prelude::*;
use septa_abi::{syscall as sys, CapRights, Label, ObjectType};

const D: u64 = 64;
/// The driver's IRQ (a shared peripheral interrupt) and one without a
/// handler.
const SPI: u16 = 48;
const UNHANDLED: u16 = 49;
/// Where the IRQ slots go: free arena memory above the root CNode.
const IRQ_NODE_OFFSET: u64 = 0x2_0000;

/// What an interrupt scenario varies.
#[derive(Clone, Debug)]
struct IrqParams {
    /// The root's priority (the interrupted thread).
    prio: u64,
    driver_prio: u64,
    /// The driver's SC: budget and period (microseconds), sporadic.
    budget: u64,
    period: u64,
    sporadic: bool,
    /// The driver in domain 1.
    cross_domain: bool,
    /// A third thread, ready at this priority (at most the root's).
    other: Option<u64>,
    /// The notification bound to the driver, which waits on it or in
    /// Recv on an endpoint (a Microkit PD's wait).
    bound: bool,
    on_endpoint: bool,
    /// The root blocks before the interrupts (they come from idle, or
    /// from the third thread).
    root_blocks: bool,
    /// The root signals the notification before the driver waits.
    pending: bool,
    badge: u64,
    /// Per interrupt: which line (0 the driver's, 1 the kernel timer, 2
    /// one without a handler), the ticks before it, and the ticks the
    /// driver runs after it before waiting again.
    irqs: Vec<(u8, u64, u64)>,
}

/// Runs an interrupt scenario through the fast path (`slow` false) or
/// the slow path only.
fn irq_scenario(slow: bool, p: &IrqParams) -> Outcome {
    let mut s = Sys::new();
    crate::object::irq::reset_for_test();
    let node = s.fx.arena.phys_base + IRQ_NODE_OFFSET;
    memory::zero(node, IRQ_COUNT as u64 * crate::cte::SLOT_BYTES);
    machine::set_irq_node(node);
    let pool = asid_pool(&mut s);
    let root = s.root.tcb;
    give_vspace(&mut s, pool, root);
    let ntfn = s.make(ObjectType::Notification, 0);
    // The handler's notification cap, badged (SetNotification refuses one
    // without the send right).
    let minted = s.slot();
    s.fx.mint(minted, ntfn, CapRights::ALL, p.badge).unwrap();
    let handler = s.slot();
    let r = s.call(
        root,
        super::super::IRQ,
        Label::IrqIssueIrqHandler,
        &[SPI as u64, handler, D],
        &[ROOT_CNODE_COPY],
    );
    assert_eq!(r.info.label(), 0, "IssueIRQHandler: {r:?}");
    let r = s.call(root, handler, Label::IrqSetIrqHandler, &[], &[minted]);
    assert_eq!(r.info.label(), 0, "SetNotification: {r:?}");

    // The driver, with an SC of its own.
    let driver = s.thread(p.driver_prio, None);
    give_vspace(&mut s, pool, driver.tcb);
    let sc = s.make(ObjectType::SchedContext, 8);
    let flags = if p.sporadic {
        crate::object::sched_control::FLAG_SPORADIC
    } else {
        0
    };
    s.configure(sc, p.budget, p.period, 0, flags);
    let r = s.call(root, sc, Label::SchedContextBind, &[], &[driver.tcb_slot]);
    assert_eq!(r.info.label(), 0, "Bind: {r:?}");
    if p.bound {
        bind_notification(&s, driver.tcb_slot, ntfn);
    }
    s.resume(driver);
    // The driver runs to its wait, then the root comes back.
    set_priority(&s, ROOT_TCB, 0);
    let ep = s.make(ObjectType::Endpoint, 0);
    let reply = s.make(ObjectType::Reply, 0);
    let wait = |s: &Sys| {
        let t = driver.tcb;
        if p.bound && p.on_endpoint {
            t.set_reg(crate::context::Reg::REPLY, reply);
            s.load(t, ep, 0, &[], &[]);
            s.syscall(t, sys::RECV);
        } else {
            s.load(t, ntfn, 0, &[], &[]);
            s.syscall(t, sys::WAIT);
        }
    };
    if p.pending {
        // The driver waits elsewhere, and the notification is active when
        // the interrupt comes.
        let elsewhere = s.make(ObjectType::Notification, 0);
        s.load(driver.tcb, elsewhere, 0, &[], &[]);
        s.syscall(driver.tcb, sys::WAIT);
        s.load(root, ntfn, 0, &[], &[]);
        s.syscall(root, sys::SEND);
    } else {
        wait(&s);
    }
    assert_eq!(s.cur(), root);
    set_priority(&s, ROOT_TCB, p.prio);
    if p.cross_domain {
        let dom = s.slot();
        write_boot_slot(s.fx.slot(dom), &Cap::Domain);
        let r = s.call(root, dom, Label::DomainSetSet, &[1], &[driver.tcb_slot]);
        assert_eq!(r.info.label(), 0);
    }
    if let Some(prio) = p.other {
        let o = s.thread(prio.min(p.prio), Some((MS, MS)));
        give_vspace(&mut s, pool, o.tcb);
        s.resume(o);
    }
    if p.root_blocks && s.cur() == root {
        let other = s.make(ObjectType::Notification, 0);
        s.load(root, other, 0, &[], &[]);
        s.syscall(root, sys::WAIT);
    }
    let _ = machine::take_log();
    let mut steps = Vec::new();
    let mut now = machine::now();
    for &(line, before, runs) in &p.irqs {
        now += before;
        machine::set_now(now);
        let irq = match line {
            0 => SPI,
            1 => machine::TIMER_IRQ,
            _ => UNHANDLED,
        };
        machine::set_pending_irq(Some(irq));
        crate::benchmark::enter();
        if slow {
            syscall::handle_interrupt_entry_slow();
        } else {
            syscall::handle_interrupt_entry();
        }
        crate::benchmark::exit(sched::cur_thread());
        steps.push(digest(&s));
        // The driver, if it runs, acknowledges the IRQ and waits again.
        if s.cur() == driver.tcb && driver.tcb.state() == ThreadState::Running {
            now += runs;
            machine::set_now(now);
            // (Out of budget, the Ack is left for the driver's next turn.)
            s.load(driver.tcb, handler, Label::IrqAckIrq.number(), &[], &[]);
            s.syscall(driver.tcb, sys::CALL);
            if s.cur() == driver.tcb && driver.tcb.state() == ThreadState::Running {
                wait(&s);
            }
            steps.push(digest(&s));
        }
    }
    outcome(&s, steps)
}

fn prio() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..8, 1u64..255]
}

fn irq_params() -> impl Strategy<Value = IrqParams> {
    (
        (prio(), prio(), proptest::option::of(prio())),
        prop_oneof![
            Just((5 * MS, 5 * MS)),
            Just((MS, 10 * MS)),
            Just((MS, MS)),
            Just((100, 1000))
        ],
        proptest::collection::vec(any::<bool>(), 7),
        0u64..8,
        proptest::collection::vec(
            (
                prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
                prop_oneof![0u64..2_000, 0u64..2_000_000],
                prop_oneof![0u64..2_000, 0u64..2_000_000],
            ),
            1..5,
        ),
    )
        .prop_map(
            |((prio, driver_prio, other), (budget, period), b, badge, irqs)| IrqParams {
                prio,
                driver_prio,
                budget,
                period,
                sporadic: b[0],
                cross_domain: b[1] && b[2],
                other,
                bound: b[3],
                on_endpoint: b[4],
                root_blocks: b[5] && b[6],
                pending: b[2] && b[5] && b[6],
                badge,
                irqs,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_interrupt_fast_path_leaves_what_the_slow_path_leaves(p in irq_params()) {
        let slow = irq_scenario(true, &p);
        let fast = irq_scenario(false, &p);
        same(&fast, &slow, memory::arena::PHYS_BASE)?;
    }
}

/// The benchmark's case (`bench irq`): the driver above the interrupted
/// thread waits on the notification, or bound to it in Recv on an
/// endpoint, or the interrupt comes from idle; each takes the fast path
/// and leaves what the slow path leaves.
#[test]
fn an_interrupt_waking_a_higher_driver_takes_the_fast_path_and_agrees() {
    for (bound, on_endpoint, root_blocks) in [
        (false, false, false),
        (true, true, false),
        (true, false, false),
        (false, false, true),
    ] {
        let p = IrqParams {
            prio: 1,
            driver_prio: 2,
            budget: 5 * MS,
            period: 5 * MS,
            sporadic: false,
            cross_domain: false,
            other: None,
            bound,
            on_endpoint,
            root_blocks,
            pending: false,
            badge: 1,
            irqs: vec![(0, 1000, 1000), (0, 1000, 1000), (0, 1000, 1000)],
        };
        let slow = irq_scenario(true, &p);
        TAKEN.with(|t| t.set([0; 4]));
        let fast = irq_scenario(false, &p);
        assert_eq!(TAKEN.with(|t| t.get())[3], 3, "{p:?}");
        same(&fast, &slow, memory::arena::PHYS_BASE).unwrap();
    }
}
