//! The active-server fast paths (`fastpath::call_active` and
//! `reply_recv_active`) must leave exactly the state the slow path leaves,
//! as the passive ones (`super::fastpath`, whose comparison this uses):
//! a client with a scheduling context calls a server with one of its own,
//! which answers with ReplyRecv; the same scenario runs through
//! `handle_syscall` and through `handle_syscall_slow`, and the arena, the
//! scheduler's globals, the address space and the machine's log (VTTBR,
//! FPU, timer) are compared after every system call.
//!
//! The scenarios vary what the fast paths check: priorities, with a third
//! thread ready or one the server wakes before it answers; the server's SC
//! (round robin, constant bandwidth, sporadic, lent by its notification,
//! out of budget) and the client's (the root's, one of its own, sporadic,
//! its refill not ready when the answer comes); the message and the
//! client cap's rights; a pending signal; the wrong reply cap; a server
//! without an address space; a release due; clock steps that run budgets
//! out.

use super::fastpath::{
    asid_pool, bind_notification, digest, give_vspace, outcome, same, set_priority, Outcome,
};
use super::{Sys, MS, ROOT_TCB};
use crate::context::Reg;
use crate::fastpath::TAKEN_ACTIVE;
use crate::machine;
use crate::memory;
use crate::object::sched_context::{refill_new, Sc};
use crate::object::sched_control::FLAG_SPORADIC;
use crate::sched;
use proptest::prelude::*;
use septa_abi::{syscall as sys, CapRights, Label, ObjectType};

/// What a scenario varies.
#[derive(Clone, Debug)]
struct Params {
    client_prio: u64,
    server_prio: u64,
    /// The server's budget and period (microseconds), and whether its SC
    /// is sporadic.
    server_sc: (u64, u64),
    server_sporadic: bool,
    server_vspace: bool,
    /// A third thread, ready at this priority (at most the client's).
    other: Option<u64>,
    /// A thread waiting on a notification that the server signals before
    /// each answer, at this priority (made ready, or run at once).
    waiter: Option<u64>,
    len: u64,
    caps: u64,
    rights: u64,
    badge: u64,
    rlen: u64,
    rcaps: u64,
    /// The server's bound notification, and whether it signals it to
    /// itself before answering (a pending signal).
    ntfn: Option<bool>,
    /// The server's SC is also bound to that notification (the slow path's
    /// Recv gives it back to the notification).
    ntfn_sc: bool,
    /// The server names its endpoint as the reply object.
    wrong_reply: bool,
    /// Clock advances before the call and before the answer (ticks).
    delay_call: u64,
    delay_reply: u64,
    rounds: u64,
    /// The client is a thread with an SC of this budget and period (and
    /// sporadic flag) rather than the root thread.
    client_sc: Option<(u64, u64, bool)>,
    /// A thread at (at least the client's) priority, parked in the
    /// release queue.
    released: Option<u64>,
    /// In this round the client's head refill is made due 1 ms later
    /// after its call (its refill is not ready when the answer comes).
    client_late: Option<u64>,
    /// In this round the server's head refill is made due 1 ms later
    /// before the call (the server is out of budget when called).
    server_late: Option<u64>,
}

/// Makes `sc`'s only refill, of `budget_us`, due `late` ticks from now
/// (what a refill charged in the past would be); the clock stays.
fn make_late(sc: Sc, budget_us: u64, late: u64) {
    let now = sched::with(|s| s.cur_time.get());
    sched::with(|s| s.cur_time.set(now + late));
    refill_new(
        sc,
        sc.refill_max(),
        sched::us_to_ticks(budget_us),
        sc.period(),
    );
    sched::with(|s| s.cur_time.set(now));
}

/// Runs a scenario through the fast paths (`slow` false) or the slow path
/// only.
fn scenario(slow: bool, p: &Params) -> Outcome {
    let mut s = Sys::new();
    let pool = asid_pool(&mut s);
    let root = s.root.tcb;
    give_vspace(&mut s, pool, root);
    let ep = s.make(ObjectType::Endpoint, 0);
    let client_ep = s.slot();
    s.fx.mint(client_ep, ep, CapRights(p.rights), p.badge)
        .unwrap();
    let reply = s.make(ObjectType::Reply, 0);
    let ntfn = s.make(ObjectType::Notification, 0);
    let wake = s.make(ObjectType::Notification, 0);
    let server = s.thread(p.server_prio, Some(p.server_sc));
    let server_sc = server.sc_slot.unwrap();
    if p.server_sporadic {
        s.configure(server_sc, p.server_sc.0, p.server_sc.1, 0, FLAG_SPORADIC);
    }
    if p.server_vspace {
        give_vspace(&mut s, pool, server.tcb);
    }
    if p.ntfn.is_some() {
        bind_notification(&s, server.tcb_slot, ntfn);
    }
    s.resume(server);
    // The server runs to its Recv, then the root comes back at the
    // client's priority.
    set_priority(&s, ROOT_TCB, 0);
    assert_eq!(s.cur(), server.tcb);
    server.tcb.set_reg(Reg::REPLY, reply);
    s.load(server.tcb, ep, 0, &[], &[]);
    s.syscall(server.tcb, sys::RECV);
    assert_eq!(s.cur(), root);
    // Bound now, the SC stays the server's until its next Recv.
    if p.ntfn_sc {
        let r = s.call(root, server_sc, Label::SchedContextBind, &[], &[ntfn]);
        assert_eq!(r.info.label(), 0, "Bind: {r:?}");
    }
    set_priority(&s, ROOT_TCB, p.client_prio);
    if let Some(prio) = p.waiter {
        set_priority(&s, ROOT_TCB, 255);
        let w = s.thread(prio, Some((MS, MS)));
        give_vspace(&mut s, pool, w.tcb);
        s.resume(w);
        set_priority(&s, ROOT_TCB, 0);
        assert_eq!(s.cur(), w.tcb);
        s.load(w.tcb, wake, 0, &[], &[]);
        s.syscall(w.tcb, sys::WAIT);
        assert_eq!(s.cur(), root);
        set_priority(&s, ROOT_TCB, p.client_prio);
    }
    if let Some(prio) = p.other {
        let o = s.thread(prio.min(p.client_prio), Some((MS, MS)));
        give_vspace(&mut s, pool, o.tcb);
        s.resume(o);
        assert_eq!(s.cur(), root);
    }
    if let Some(prio) = p.released {
        let r = s.thread(p.client_prio.max(prio), Some((MS / 2, 2 * MS)));
        give_vspace(&mut s, pool, r.tcb);
        s.resume(r);
        if s.cur() == r.tcb {
            s.tick(machine::now() + MS * 100 * 6 / 10);
            assert!(r.tcb.in_release_queue(), "postponed");
        }
    }
    let client = match p.client_sc {
        None => root,
        Some((budget, period, sporadic)) => {
            let c = s.thread(p.client_prio, Some((budget, period)));
            if sporadic {
                s.configure(c.sc_slot.unwrap(), budget, period, 0, FLAG_SPORADIC);
            }
            give_vspace(&mut s, pool, c.tcb);
            s.resume(c);
            set_priority(&s, ROOT_TCB, 0);
            c.tcb
        }
    };
    let client_budget = p.client_sc.map_or(10 * MS, |c| c.0);
    let _ = machine::take_log();
    s.slow = slow;
    let mut steps = Vec::new();
    let ep_caps: Vec<u64> = vec![ep; p.caps as usize];
    let answer_caps: Vec<u64> = vec![ep; p.rcaps as usize];
    for round in 0..p.rounds {
        if s.cur() != client {
            break;
        }
        if p.server_late == Some(round) {
            if let Some(sc) = sched::sc_of(server.tcb) {
                make_late(sc, p.server_sc.0, MS * 100);
            }
        }
        machine::set_now(machine::now() + p.delay_call);
        let words: Vec<u64> = (0..p.len).map(|i| 0x100 * round + i).collect();
        s.load(client, client_ep, 5, &words, &ep_caps);
        s.syscall(client, sys::CALL);
        steps.push(digest(&s));
        if s.cur() != server.tcb {
            break;
        }
        if p.client_late == Some(round) {
            if let Some(sc) = sched::sc_of(client) {
                make_late(sc, client_budget, MS * 100);
            }
        }
        if p.ntfn == Some(true) {
            s.load(server.tcb, ntfn, 0, &[], &[]);
            s.syscall(server.tcb, sys::SEND);
            steps.push(digest(&s));
        }
        if p.waiter.is_some() {
            s.load(server.tcb, wake, 0, &[], &[]);
            s.syscall(server.tcb, sys::SEND);
            steps.push(digest(&s));
        }
        if s.cur() != server.tcb {
            break;
        }
        machine::set_now(machine::now() + p.delay_reply);
        let answer: Vec<u64> = (0..p.rlen).map(|i| 0x900 * round + i).collect();
        server
            .tcb
            .set_reg(Reg::REPLY, if p.wrong_reply { ep } else { reply });
        s.load(server.tcb, ep, 6, &answer, &answer_caps);
        s.syscall(server.tcb, sys::REPLY_RECV);
        steps.push(digest(&s));
    }
    outcome(&s, steps)
}

fn prio() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..8, 1u64..255]
}

/// Ticks of a clock step: none, a little, a large part of a 1 ms budget,
/// more than a budget.
fn delay() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(700),
        Just(MS * 100 * 9 / 10),
        Just(2 * MS * 100),
        Just(20 * MS * 100)
    ]
}

/// Budget and period (microseconds): round robin, constant bandwidth.
fn budget() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        Just((5 * MS, 5 * MS)),
        Just((MS, 10 * MS)),
        Just((MS, MS)),
        Just((MS / 2, MS))
    ]
}

/// Mostly `a`, sometimes `b`: each condition of the fast paths holds in
/// most cases, so that most scenarios take them somewhere.
fn mostly<T: Clone + core::fmt::Debug + 'static>(
    a: impl Strategy<Value = T> + 'static,
    b: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    prop_oneof![10 => a, 1 => b].boxed()
}

fn params() -> impl Strategy<Value = Params> {
    (
        (
            prio(),
            prio(),
            budget(),
            mostly(Just(false), Just(true)),
            mostly(Just(true), Just(false)),
        ),
        (
            mostly(Just(None), prio().prop_map(Some)),
            mostly(Just(None), prio().prop_map(Some)),
            mostly(0u64..5, 5u64..7),
            mostly(Just(0u64), Just(1)),
            mostly(Just(CapRights::ALL.0), 0u64..16),
            0u64..4,
        ),
        (
            mostly(0u64..5, 5u64..7),
            mostly(Just(0u64), Just(1)),
            proptest::option::of(mostly(Just(false), Just(true))),
            any::<bool>(),
            mostly(Just(false), Just(true)),
        ),
        (
            mostly(prop_oneof![Just(0u64), Just(700)], delay()),
            mostly(prop_oneof![Just(0u64), Just(700)], delay()),
            1u64..5,
        ),
        (
            proptest::option::of((budget(), mostly(Just(false), Just(true)))),
            mostly(Just(None), prio().prop_map(Some)),
            mostly(Just(None), (0u64..3).prop_map(Some)),
            mostly(Just(None), (0u64..3).prop_map(Some)),
        ),
    )
        .prop_map(
            |(
                (client_prio, server_prio, server_sc, server_sporadic, server_vspace),
                (other, waiter, len, caps, rights, badge),
                (rlen, rcaps, ntfn, ntfn_sc, wrong_reply),
                (delay_call, delay_reply, rounds),
                (client_sc, released, client_late, server_late),
            )| Params {
                client_prio,
                server_prio,
                server_sc,
                server_sporadic,
                server_vspace,
                other,
                waiter,
                len,
                caps,
                rights,
                badge,
                rlen,
                rcaps,
                ntfn,
                ntfn_sc: ntfn_sc && ntfn == Some(false),
                wrong_reply,
                delay_call,
                delay_reply,
                rounds,
                client_sc: client_sc.map(|((b, p), sp)| (b, p, sp)),
                released,
                client_late,
                server_late,
            },
        )
}

/// The benchmark's case: every condition holds.
fn plain() -> Params {
    Params {
        client_prio: 1,
        server_prio: 2,
        server_sc: (5 * MS, 5 * MS),
        server_sporadic: false,
        server_vspace: true,
        other: None,
        waiter: None,
        len: 2,
        caps: 0,
        rights: CapRights::ALL.0,
        badge: 0x77,
        rlen: 3,
        rcaps: 0,
        ntfn: None,
        ntfn_sc: false,
        wrong_reply: false,
        delay_call: 0,
        delay_reply: 0,
        rounds: 3,
        client_sc: Some((5 * MS, 5 * MS, false)),
        released: None,
        client_late: None,
        server_late: None,
    }
}

/// Runs `p` both ways, compares, and returns how many calls and answers
/// took the active fast paths.
fn both_ways(p: &Params) -> Result<[u64; 2], TestCaseError> {
    let slow = scenario(true, p);
    TAKEN_ACTIVE.with(|t| t.set([0; 2]));
    let fast = scenario(false, p);
    same(&fast, &slow, memory::arena::PHYS_BASE)?;
    Ok(TAKEN_ACTIVE.with(|t| t.get()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_active_fast_paths_leave_what_the_slow_path_leaves(p in params()) {
        both_ways(&p)?;
    }
}

#[test]
fn calls_to_an_active_server_and_its_answers_take_the_fast_path() {
    for p in [
        plain(),
        // The root as the client (a round-robin SC of 10 ms).
        Params {
            client_sc: None,
            ..plain()
        },
        // A constant-bandwidth client and server, the server below.
        Params {
            client_prio: 30,
            server_prio: 20,
            server_sc: (MS, 10 * MS),
            client_sc: Some((MS, 10 * MS, false)),
            other: Some(20),
            ntfn: Some(false),
            ..plain()
        },
    ] {
        let taken = both_ways(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
        assert_eq!(taken, [3, 3], "{p:?}");
    }
}

#[test]
fn each_condition_alone_sends_the_active_call_or_answer_to_the_slow_path() {
    type Change = fn(&mut Params);
    let declines: [(&str, Change, [u64; 2]); 16] = [
        ("five words", |p| p.len = 5, [0, 3]),
        ("a cap", |p| p.caps = 1, [0, 3]),
        ("five words back", |p| p.rlen = 5, [3, 0]),
        ("a cap back", |p| p.rcaps = 1, [3, 0]),
        // The call leaves the client inactive: nobody to answer.
        (
            "no grant rights",
            |p| p.rights = CapRights::new(false, false, true, true).0,
            [0, 0],
        ),
        ("no address space", |p| p.server_vspace = false, [0, 3]),
        ("a sporadic server", |p| p.server_sporadic = true, [0, 3]),
        (
            "a sporadic client",
            |p| p.client_sc = Some((MS, 10 * MS, true)),
            [3, 0],
        ),
        // Out of budget when called (its refill is due 1 ms later, in the
        // third round too): the slow path runs it all the same.
        (
            "a server out of budget",
            |p| p.server_late = Some(1),
            [1, 3],
        ),
        // The slow path postpones the client; the server waits again.
        (
            "the caller's refill not ready",
            |p| p.client_late = Some(0),
            [1, 0],
        ),
        (
            "a lower-priority server and a ready thread above it",
            |p| {
                p.client_prio = 10;
                p.server_prio = 5;
                p.other = Some(6);
            },
            [0, 0],
        ),
        // The server wakes a thread between it and the client: it runs
        // after the answer, and the client waits for it.
        (
            "a woken thread above the client",
            |p| {
                p.client_prio = 10;
                p.server_prio = 30;
                p.waiter = Some(20);
            },
            [1, 0],
        ),
        ("a spent budget", |p| p.delay_call = 20 * MS * 100, [0, 0]),
        ("a pending signal", |p| p.ntfn = Some(true), [1, 0]),
        // The slow path's Recv gives the SC back to the notification: the
        // server is passive from then on.
        (
            "the server's SC lent by its notification",
            |p| {
                p.ntfn = Some(false);
                p.ntfn_sc = true;
            },
            [1, 0],
        ),
        ("the wrong reply cap", |p| p.wrong_reply = true, [1, 0]),
    ];
    for (what, change, want) in declines {
        let mut p = plain();
        change(&mut p);
        let taken = both_ways(&p).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(taken, want, "{what}");
    }
}

#[test]
fn a_release_due_sends_the_call_to_the_slow_path() {
    // The released thread outranks both: it runs after the first call.
    let p = Params {
        released: Some(30),
        delay_call: 2 * MS * 100,
        ..plain()
    };
    assert_eq!(both_ways(&p).unwrap(), [0, 0]);
}
