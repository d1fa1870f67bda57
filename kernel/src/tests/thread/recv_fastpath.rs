//! The Recv fast path (`fastpath::recv`) must leave exactly the state the
//! slow path leaves: the same scenario runs twice from the same start,
//! once with every system call through `handle_syscall` (fast paths
//! first) and once through `handle_syscall_slow`, and the whole outcome
//! is compared as for the other fast paths (the arena word by word, the
//! scheduler's globals, the current address space, every request made of
//! the machine, and a digest after each system call).
//!
//! The notify-rt pattern: the root thread (the client) signals a server
//! with a scheduling context of its own, which wakes, and waits again
//! (Wait or Recv on the notification, or Recv or Wait on an endpoint with
//! the notification bound), and the client resumes. The scenarios vary
//! what the fast path checks, each of which must make it decline or
//! choose as the slow path does: priorities (the server above or below the
//! client, a third ready thread), a signal pending when the server waits
//! again, a sender waiting on the endpoint, a thread in the release queue
//! that is due, the domain's time running out (as the server waits, or
//! as the client signals: the signal fast path must decline), the server's budget
//! running out, a thread above the client that the server makes ready
//! (it must be chosen; or declined, if it never ran and its address
//! space has no VMID yet), no ready thread at all (the idle thread runs), the
//! wrong cap as reply object, a notification bound to another thread,
//! and a sporadic server.

use super::fastpath::{
    asid_pool, bind_notification, digest, give_vspace, outcome, same, set_priority, Outcome,
};
use super::{Sys, MS, ROOT_TCB};
use crate::context::Reg;
use crate::fastpath::RECV_TAKEN;
use crate::machine;
use crate::memory;
use crate::object::tcb::ThreadState;
use crate::sched;
use proptest::prelude::*;
use septa_abi::{syscall as sys, CapRights, Label, ObjectType};

/// How the server waits again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Wait on the notification.
    WaitNtfn,
    /// Recv on the notification (a Microkit PD without an endpoint).
    RecvNtfn,
    /// Recv on an endpoint with a reply object, the notification bound
    /// (a Microkit PD with an endpoint).
    RecvEp,
    /// Wait on the endpoint (no reply object), the notification bound.
    WaitEp,
}

#[derive(Clone, Debug)]
struct RecvParams {
    client_prio: u64,
    server_prio: u64,
    mode: Mode,
    /// The notification is bound to the server (always, on an endpoint).
    bound: bool,
    /// A third thread, ready at this priority (at most the client's).
    other: Option<u64>,
    /// The server signals its own notification before it waits again.
    pending: bool,
    /// A thread waits in Send on the endpoint.
    sender: bool,
    /// A thread parked in the release queue, due when the server waits.
    released: Option<u64>,
    /// The domain's time runs out as the server waits.
    domain_out: bool,
    /// The domain's time runs out as the client signals (the signal fast
    /// path must decline too).
    signal_domain_out: bool,
    /// Ticks the server runs before it waits again.
    delay: u64,
    /// The server makes a thread ready above the client, this far below
    /// its own priority, before it waits.
    wake: Option<u64>,
    /// That thread ran before (its address space has a VMID).
    wake_ran: bool,
    /// The server suspends the client before it waits (nothing is ready).
    idle: bool,
    /// The server names its notification as the reply object.
    wrong_reply: bool,
    /// The notification is bound to another thread.
    bound_elsewhere: bool,
    /// The server's SC is sporadic (budget below its period).
    sporadic: bool,
    rounds: u64,
    badge: u64,
}

/// Runs a scenario through the fast paths (`slow` false) or the slow path
/// only; returns the outcome and how often the server waited.
fn recv_scenario(slow: bool, p: &RecvParams) -> (Outcome, u64) {
    let mut s = Sys::new();
    let pool = asid_pool(&mut s);
    let root = s.root.tcb;
    give_vspace(&mut s, pool, root);
    let ntfn = s.make(ObjectType::Notification, 0);
    let signal_cap = s.slot();
    s.fx.mint(signal_cap, ntfn, CapRights::ALL, p.badge)
        .unwrap();
    let ep = s.make(ObjectType::Endpoint, 0);
    let reply = s.make(ObjectType::Reply, 0);
    let budget = if p.sporadic {
        (MS, 10 * MS)
    } else {
        (5 * MS, 5 * MS)
    };
    let server = s.thread(p.server_prio, Some(budget));
    give_vspace(&mut s, pool, server.tcb);
    let on_endpoint = matches!(p.mode, Mode::RecvEp | Mode::WaitEp);
    if p.bound_elsewhere {
        let o = s.thread(1, None);
        bind_notification(&s, o.tcb_slot, ntfn);
    } else if p.bound || on_endpoint {
        bind_notification(&s, server.tcb_slot, ntfn);
    }
    // A thread the server may make ready, above the client.
    let woken = p.wake.map(|below| {
        let prio = p.server_prio.saturating_sub(below).max(p.client_prio + 1);
        let w = s.thread(prio.min(255), Some((MS, MS)));
        give_vspace(&mut s, pool, w.tcb);
        w
    });
    // The server runs to its first Wait on the notification (or on the
    // endpoint, if the notification is another's), then the root comes
    // back at the client's priority.
    set_priority(&s, ROOT_TCB, 0);
    s.resume(server);
    assert_eq!(s.cur(), server.tcb);
    if p.bound_elsewhere {
        s.load(server.tcb, ep, 0, &[], &[]);
    } else {
        s.load(server.tcb, ntfn, 0, &[], &[]);
    }
    s.syscall(server.tcb, sys::WAIT);
    assert_eq!(s.cur(), root);
    // The thread to be woken runs once and suspends itself.
    if let Some(w) = woken.filter(|_| p.wake_ran) {
        s.resume(w);
        assert_eq!(s.cur(), w.tcb);
        s.call(w.tcb, w.tcb_slot, Label::TcbSuspend, &[], &[]);
        assert_eq!(s.cur(), root);
    }
    // A sender that waits on the endpoint (the server is not there).
    if p.sender && !p.bound_elsewhere {
        let snd = s.thread(1, Some((MS, MS)));
        give_vspace(&mut s, pool, snd.tcb);
        s.resume(snd);
        assert_eq!(s.cur(), snd.tcb);
        s.load(snd.tcb, ep, 9, &[1, 2], &[]);
        s.syscall(snd.tcb, sys::SEND);
        assert_eq!(snd.tcb.state(), ThreadState::BlockedOnSend);
    }
    assert_eq!(s.cur(), root);
    set_priority(&s, ROOT_TCB, p.client_prio);
    if let Some(prio) = p.other {
        let o = s.thread(prio.min(p.client_prio), Some((MS, MS)));
        give_vspace(&mut s, pool, o.tcb);
        s.resume(o);
    }
    // A thread above the client that spends its budget at once and waits
    // in the release queue; it is due once the server has run `delay`.
    if let Some(prio) = p.released {
        let r = s.thread(p.client_prio.max(prio), Some((MS / 2, 2 * MS)));
        give_vspace(&mut s, pool, r.tcb);
        s.resume(r);
        if s.cur() == r.tcb {
            s.tick(machine::now() + MS * 100 * 6 / 10);
            assert!(r.tcb.in_release_queue(), "postponed");
        }
    }
    let _ = machine::take_log();
    s.slow = slow;
    // Only the scenario's own system calls are counted.
    RECV_TAKEN.with(|t| t.set(0));
    let mut steps = Vec::new();
    let mut waits = 0;
    for _ in 0..p.rounds {
        if s.cur() != root {
            break;
        }
        if p.signal_domain_out {
            sched::with(|st| st.domain_time.set(1));
        }
        s.load(root, signal_cap, 0, &[], &[]);
        s.syscall(root, sys::SEND);
        steps.push(digest(&s));
        if s.cur() != server.tcb {
            continue;
        }
        if p.pending {
            s.load(server.tcb, signal_cap, 0, &[], &[]);
            s.syscall(server.tcb, sys::SEND);
            steps.push(digest(&s));
        }
        if let Some(w) = woken {
            if w.tcb.state() == ThreadState::Inactive {
                s.call(server.tcb, w.tcb_slot, Label::TcbResume, &[], &[]);
                steps.push(digest(&s));
            }
        }
        if p.idle {
            s.call(server.tcb, ROOT_TCB, Label::TcbSuspend, &[], &[]);
            steps.push(digest(&s));
        }
        if p.domain_out {
            sched::with(|st| st.domain_time.set(1));
        }
        machine::set_now(machine::now() + p.delay);
        // The server waits again, and again while something is there to
        // receive.
        for _ in 0..3 {
            if s.cur() != server.tcb {
                break;
            }
            let (cap, number) = match p.mode {
                Mode::WaitNtfn => (ntfn, sys::WAIT),
                Mode::RecvNtfn => (ntfn, sys::RECV),
                Mode::RecvEp => (ep, sys::RECV),
                Mode::WaitEp => (ep, sys::WAIT),
            };
            server
                .tcb
                .set_reg(Reg::REPLY, if p.wrong_reply { ntfn } else { reply });
            s.load(server.tcb, cap, 0, &[], &[]);
            s.syscall(server.tcb, number);
            steps.push(digest(&s));
            waits += 1;
        }
    }
    (outcome(&s, steps), waits)
}

fn prio() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..8, 1u64..255]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::WaitNtfn),
        Just(Mode::RecvNtfn),
        Just(Mode::RecvEp),
        Just(Mode::WaitEp)
    ]
}

/// Mostly the common case, each deviation now and then.
fn rare() -> impl Strategy<Value = bool> {
    prop_oneof![4 => Just(false), 1 => Just(true)]
}

fn params() -> impl Strategy<Value = RecvParams> {
    (
        (
            prio(),
            prio(),
            mode(),
            any::<bool>(),
            proptest::option::of(prio()),
        ),
        (rare(), rare(), proptest::option::of(prio()), rare(), rare()),
        (
            prop_oneof![
                3 => Just(0u64),
                1 => Just(700),
                1 => Just(2 * MS * 100),
                1 => Just(20 * MS * 100)
            ],
            (proptest::option::of(0u64..4), any::<bool>()),
            rare(),
            rare(),
            rare(),
            rare(),
        ),
        (1u64..4, 0u64..8),
    )
        .prop_map(
            |(
                (client_prio, server_prio, mode, bound, other),
                (pending, sender, released, domain_out, signal_domain_out),
                (delay, (wake, wake_ran), idle, wrong_reply, bound_elsewhere, sporadic),
                (rounds, badge),
            )| RecvParams {
                client_prio,
                server_prio,
                mode,
                bound,
                other,
                pending,
                sender,
                released,
                domain_out,
                signal_domain_out,
                delay,
                wake,
                wake_ran,
                idle,
                wrong_reply,
                bound_elsewhere,
                sporadic,
                rounds,
                badge,
            },
        )
}

/// The notify-rt case: every Wait and Recv of the server takes the fast
/// path.
fn plain(mode: Mode) -> RecvParams {
    RecvParams {
        client_prio: 10,
        server_prio: 20,
        mode,
        bound: true,
        other: Some(5),
        pending: false,
        sender: false,
        released: None,
        domain_out: false,
        signal_domain_out: false,
        delay: 0,
        wake: None,
        wake_ran: true,
        idle: false,
        wrong_reply: false,
        bound_elsewhere: false,
        sporadic: false,
        rounds: 3,
        badge: 3,
    }
}

/// Runs both ways, compares, and returns how often the server waited and
/// how often the fast way took the Recv fast path for it.
fn compare(p: &RecvParams) -> Result<[u64; 2], TestCaseError> {
    let (slow, slow_waits) = recv_scenario(true, p);
    let (fast, waits) = recv_scenario(false, p);
    let taken = RECV_TAKEN.with(|t| t.get());
    same(&fast, &slow, memory::arena::PHYS_BASE)?;
    prop_assert_eq!(waits, slow_waits);
    Ok([waits, taken])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_recv_fast_path_leaves_what_the_slow_path_leaves(p in params()) {
        compare(&p)?;
    }
}

#[test]
fn a_server_waiting_again_takes_the_recv_fast_path_in_every_mode() {
    for mode in [Mode::WaitNtfn, Mode::RecvNtfn, Mode::RecvEp, Mode::WaitEp] {
        let p = plain(mode);
        assert_eq!(compare(&p).unwrap(), [3, 3], "{mode:?}");
    }
}

#[test]
fn each_condition_alone_sends_the_recv_to_the_slow_path() {
    type Change = fn(&mut RecvParams);
    // What changes, and how often the server waits and how often that is
    // fast (a wait that receives at once leaves the server running, and
    // it waits again).
    let cases: [(&str, Mode, Change, [u64; 2]); 13] = [
        (
            "a pending signal",
            Mode::WaitNtfn,
            |p| p.pending = true,
            [6, 3],
        ),
        (
            "a pending bound signal",
            Mode::RecvEp,
            |p| p.pending = true,
            [6, 3],
        ),
        // The first Recv takes the sender's message.
        (
            "a waiting sender",
            Mode::RecvEp,
            |p| p.sender = true,
            [4, 3],
        ),
        // The released thread outranks the server and runs.
        (
            "a due release",
            Mode::RecvNtfn,
            |p| {
                p.released = Some(30);
                p.delay = 2 * MS * 100;
            },
            [1, 0],
        ),
        // The server runs again in the next domain period, and waits.
        (
            "the domain's time out",
            Mode::RecvNtfn,
            |p| p.domain_out = true,
            [6, 3],
        ),
        // The client's signal is not sent: it is left to restart in the
        // next domain period, and runs out of domain time again each round.
        (
            "the domain's time out at the signal",
            Mode::RecvEp,
            |p| p.signal_domain_out = true,
            [0, 0],
        ),
        // The round-robin server ends its time slice, runs again at once
        // (it is still the highest) and waits again.
        (
            "no budget left",
            Mode::RecvEp,
            |p| p.delay = 20 * MS * 100,
            [6, 3],
        ),
        (
            "nothing ready",
            Mode::WaitNtfn,
            |p| {
                p.idle = true;
                p.other = None;
            },
            [1, 0],
        ),
        // The server faults (it has no handler) and stays inactive.
        (
            "the wrong reply cap",
            Mode::RecvEp,
            |p| p.wrong_reply = true,
            [1, 0],
        ),
        // The slow path would give its address space a VMID.
        (
            "a thread to run that never ran",
            Mode::RecvEp,
            |p| {
                p.wake = Some(1);
                p.wake_ran = false;
            },
            [1, 0],
        ),
        // Not declines: the highest ready thread is chosen either way.
        (
            "a thread above the client",
            Mode::RecvEp,
            |p| p.wake = Some(1),
            [1, 1],
        ),
        (
            "a sporadic server",
            Mode::RecvNtfn,
            |p| p.sporadic = true,
            [3, 3],
        ),
        (
            "an unbound notification",
            Mode::WaitNtfn,
            |p| p.bound = false,
            [3, 3],
        ),
    ];
    for (what, mode, change, want) in cases {
        let mut p = plain(mode);
        change(&mut p);
        let got = compare(&p).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, want, "{what}");
    }
}
