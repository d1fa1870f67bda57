//! Property tests of the scheduler's data structures against simple
//! models: priority-ordered wait queues, the ready queues with their
//! bitmap, and the refill algorithm's invariants.

use super::{Sys, MS};
use crate::object::endpoint::{self, Ep, EpState};
use crate::object::sched_context::{self, Refill, Sc};
use crate::object::tcb::queue::TcbQueue;
use crate::object::tcb::{Tcb, ThreadState};
use crate::sched;
use proptest::prelude::*;
use septa_abi::ObjectType;

/// A TCB in the arena for queue tests (never run).
fn tcbs(s: &mut Sys, n: usize) -> Vec<Tcb> {
    (0..n)
        .map(|_| {
            let slot = s.make(ObjectType::Tcb, 0);
            Tcb::new(s.paddr(slot))
        })
        .collect()
}

#[derive(Clone, Debug)]
enum QOp {
    Insert { who: usize, prio: u64 },
    Remove { who: usize },
}

fn qop() -> impl Strategy<Value = QOp> {
    prop_oneof![
        (0usize..8, 0u64..4).prop_map(|(who, prio)| QOp::Insert { who, prio }),
        (0usize..8).prop_map(|who| QOp::Remove { who }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Endpoint and notification queues keep priority order, and arrival
    /// order among equal priorities (seL4's `tcbAppend`).
    #[test]
    fn wait_queues_are_priority_then_fifo(ops in proptest::collection::vec(qop(), 1..60)) {
        let mut s = Sys::new();
        let ts = tcbs(&mut s, 8);
        let mut q = TcbQueue::EMPTY;
        // Model: (prio, arrival) of each queued thread.
        let mut model: Vec<(u64, u64, usize)> = Vec::new();
        let mut clock = 0;
        for op in ops {
            match op {
                QOp::Insert { who, prio } => {
                    if model.iter().any(|m| m.2 == who) {
                        continue;
                    }
                    ts[who].set_priority_raw(prio);
                    q = q.insert_by_priority(ts[who]);
                    clock += 1;
                    model.push((prio, clock, who));
                }
                QOp::Remove { who } => {
                    if let Some(i) = model.iter().position(|m| m.2 == who) {
                        q = q.remove(ts[who]);
                        model.remove(i);
                    }
                }
            }
            let mut want = model.clone();
            want.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            let want: Vec<Tcb> = want.iter().map(|m| ts[m.2]).collect();
            let got: Vec<Tcb> = q.iter().collect();
            prop_assert_eq!(&got, &want);
            // Links agree backwards too.
            let mut back = Vec::new();
            let mut cur = q.end;
            while let Some(t) = cur {
                back.push(t);
                cur = t.sched_prev();
            }
            back.reverse();
            prop_assert_eq!(back, want);
        }
    }

    /// The endpoint's own queue operations (with their spelled-out common
    /// cases: the head leaves, the queue was empty) leave what the general
    /// list operations leave: the same order, links and endpoint words.
    #[test]
    fn endpoint_queue_shortcuts_agree_with_the_list_operations(
        ops in proptest::collection::vec(qop(), 1..60),
        recv in any::<bool>(),
    ) {
        let mut s = Sys::new();
        let (a, b) = (tcbs(&mut s, 8), tcbs(&mut s, 8));
        let (na, nb) = (s.make(ObjectType::Endpoint, 0), s.make(ObjectType::Endpoint, 0));
        let (ep_a, ep_b) = (Ep::new(s.paddr(na)), Ep::new(s.paddr(nb)));
        let st = if recv { EpState::Recv } else { EpState::Send };
        let mut queued = [false; 8];
        for op in ops {
            match op {
                QOp::Insert { who, prio } if !queued[who] => {
                    a[who].set_priority_raw(prio);
                    b[who].set_priority_raw(prio);
                    endpoint::append(a[who], ep_a, st);
                    // The general form.
                    ep_b.set_queue(ep_b.queue().insert_by_priority(b[who]));
                    ep_b.set_state(st);
                    queued[who] = true;
                }
                QOp::Remove { who } if queued[who] => {
                    endpoint::dequeue(a[who], ep_a);
                    let q = ep_b.queue().remove(b[who]);
                    ep_b.set_queue(q);
                    if q.is_empty() {
                        ep_b.set_state(EpState::Idle);
                    }
                    queued[who] = false;
                }
                _ => {}
            }
            let index = |ts: &[Tcb], t: Option<Tcb>| t.map(|t| ts.iter().position(|&x| x == t).unwrap());
            prop_assert_eq!(ep_a.state(), ep_b.state());
            let (qa, qb) = (ep_a.queue(), ep_b.queue());
            prop_assert_eq!(index(&a, qa.head), index(&b, qb.head));
            prop_assert_eq!(index(&a, qa.end), index(&b, qb.end));
            for i in 0..8 {
                prop_assert_eq!(index(&a, a[i].sched_next()), index(&b, b[i].sched_next()));
                prop_assert_eq!(index(&a, a[i].sched_prev()), index(&b, b[i].sched_prev()));
            }
        }
    }

    /// The bitmap always names the highest non-empty ready queue.
    #[test]
    fn ready_bitmap_tracks_the_highest_priority(ops in proptest::collection::vec((0usize..6, 0u64..256, any::<bool>()), 1..60)) {
        let mut s = Sys::new();
        let ts = tcbs(&mut s, 6);
        let sc_slot = s.make(ObjectType::SchedContext, 8);
        let sc = Sc::new(s.paddr(sc_slot));
        sched_context::refill_new(sc, 2, sched::us_to_ticks(MS), 0);
        let root = s.root.tcb;
        sched::tcb_sched_dequeue(root);
        let mut queued = [None::<u64>; 6];
        for (who, prio, on) in ops {
            let t = ts[who];
            if on && queued[who].is_none() {
                t.set_priority_raw(prio);
                t.set_state_raw(ThreadState::Running);
                t.set_sched_context(sc.paddr());
                sched::tcb_sched_enqueue(t);
                queued[who] = Some(prio);
            } else if !on && queued[who].is_some() {
                sched::tcb_sched_dequeue(t);
                queued[who] = None;
            }
            let want = queued.iter().flatten().max().copied();
            prop_assert_eq!(sched::highest_ready_prio(), want);
            for (i, q) in queued.iter().enumerate() {
                prop_assert_eq!(ts[i].is_queued(), q.is_some());
            }
        }
    }
}

/// The refills of `sc`, head first.
pub fn refills(sc: Sc) -> Vec<Refill> {
    let mut out = [Refill::default(); 64];
    let n = sc.refills(&mut out);
    out[..n].to_vec()
}

/// The invariants seL4's refill code keeps (its `REFILL_SANITY_*`): the
/// amounts sum to the budget, refills are ordered and do not overlap, the
/// head holds at least the minimum budget, and no more refills are used
/// than the buffer holds.
fn check_refills(sc: Sc, budget: u64) -> Result<(), TestCaseError> {
    let r = refills(sc);
    prop_assert!(!r.is_empty() && r.len() as u64 <= sc.refill_max());
    prop_assert_eq!(r.iter().map(|x| x.amount).sum::<u64>(), budget, "{:?}", r);
    for w in r.windows(2) {
        prop_assert!(w[0].time + w[0].amount <= w[1].time, "overlap in {:?}", r);
    }
    prop_assert!(
        r[0].amount >= sched::min_budget(),
        "head below minimum: {:?}",
        r
    );
    Ok(())
}

#[derive(Clone, Debug)]
enum ROp {
    /// Time passes (ticks).
    Wait(u64),
    /// The SC, being current, is charged this much of its head.
    Charge(u64),
    /// Its thread wakes up (sporadic unblock).
    Unblock,
}

fn rop() -> impl Strategy<Value = ROp> {
    prop_oneof![
        (0u64..400_000).prop_map(ROp::Wait),
        (0u64..200_000).prop_map(ROp::Charge),
        Just(ROp::Unblock),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Charging and unblocking in any order keeps the refill invariants,
    /// and the head never becomes usable before its time.
    #[test]
    fn refills_keep_the_sporadic_invariants(
        budget_ms in 1u64..4,
        extra_period_ms in 0u64..5,
        max_refills in 2u64..8,
        ops in proptest::collection::vec(rop(), 1..80),
    ) {
        let mut s = Sys::new();
        let slot = s.make(ObjectType::SchedContext, 10);
        let sc = Sc::new(s.paddr(slot));
        let budget = sched::us_to_ticks(budget_ms * MS);
        let period = budget + sched::us_to_ticks(extra_period_ms * MS) + 1;
        sched_context::refill_new(sc, max_refills, budget, period);
        check_refills(sc, budget)?;
        let mut now = sched::cur_time();
        for op in ops {
            match op {
                ROp::Wait(t) => {
                    now += t;
                    sched::with(|st| st.cur_time.set(now));
                }
                ROp::Charge(c) => {
                    // The kernel charges only usable refills.
                    if sc.refill_ready() {
                        sched_context::refill_budget_check(sc, c);
                    }
                }
                ROp::Unblock => sched_context::refill_unblock_check(sc),
            }
            check_refills(sc, budget)?;
        }
    }
}

/// A hand-worked example: a 2 ms budget every 10 ms, charged 0.5 ms, then
/// its head used up; the used part comes back one period after it started.
#[test]
fn charged_time_returns_one_period_later() {
    let mut s = Sys::new();
    let slot = s.make(ObjectType::SchedContext, 8);
    let sc = Sc::new(s.paddr(slot));
    let t0 = sched::cur_time();
    let (budget, period) = (sched::us_to_ticks(2 * MS), sched::us_to_ticks(10 * MS));
    sched_context::refill_new(sc, 4, budget, period);
    let half = sched::us_to_ticks(MS / 2);
    sched_context::refill_budget_check(sc, half);
    assert_eq!(
        refills(sc),
        vec![
            Refill {
                time: t0 + half,
                amount: budget - half
            },
            Refill {
                time: t0 + period,
                amount: half
            }
        ]
    );
    // The rest of the head: it merges with the refill it touches.
    sched_context::refill_budget_check(sc, budget - half);
    assert_eq!(
        refills(sc),
        vec![Refill {
            time: t0 + period,
            amount: budget
        }]
    );
    assert!(!sc.refill_ready());
}
