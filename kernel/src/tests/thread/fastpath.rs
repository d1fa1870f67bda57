//! The fast path must leave exactly the state the slow path leaves: the
//! same scenario runs twice from the same start, once with every system
//! call through `handle_syscall` (fast path first) and once through
//! `handle_syscall_slow`, and everything is compared afterwards: every
//! byte of the arena that stands in for physical memory (threads, objects,
//! CNodes), the scheduler's globals, the current address space, and every
//! request made of the machine (address-space switches, FPU, timer).
//!
//! The scenarios vary what the fast path checks: priorities (with a third
//! thread ready), message length and caps, the rights and badge of the
//! client's cap, a passive or active server, a server without a valid
//! address space, a pending signal on the server's bound notification,
//! the wrong cap as reply object, budgets running out, nested calls, and
//! client or server bound to a VCPU (a guest calling by `hvc`, or served).

use super::{Sys, Thread, MS, ROOT_CNODE_COPY, ROOT_TCB};
use crate::cap::Cap;
use crate::context::Reg;
use crate::cte::{cte_insert, write_boot_slot, SlotRef};
use crate::fastpath::TAKEN;
use crate::machine::{self, Op};
use crate::memory;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::object::vspace;
use crate::sched;
use proptest::prelude::*;
use septa_abi::{syscall as sys, CapRights, Label, ObjectType};

const D: u64 = 64;
/// Root slot of the ASIDControl cap these tests add.
const ASID_CONTROL: u64 = 4;

/// Everything a scenario leaves behind.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Outcome {
    /// The arena, word by word.
    memory: Vec<u64>,
    sched: String,
    asid: Option<u16>,
    machine: Vec<Op>,
    cur: Tcb,
    /// A digest of the same after each system call of the scenario, so
    /// that a difference later overwritten (a register) still shows.
    steps: Vec<u64>,
}

pub(super) fn outcome(s: &Sys, steps: Vec<u64>) -> Outcome {
    let a = &s.fx.arena;
    let memo = memo_words();
    Outcome {
        memory: (0..a.size / 8)
            .map(|i| word(&memo, a.phys_base + 8 * i))
            .collect(),
        sched: sched::with(|st| format!("{st:?}")),
        asid: vspace::current_asid(),
        machine: machine::take_log(),
        cur: s.cur(),
        steps,
    }
}

/// The words of every thread's look-up memo (`cspace::lookup_fp_memo`),
/// which the fast path fills and the slow path never reads: a cache, not
/// state, so the comparisons leave it out. (A memo that went wrong would
/// show as a different cap found, so a different outcome.)
fn memo_words() -> std::collections::HashSet<u64> {
    let mut words = std::collections::HashSet::new();
    let mut next = tcb::debug_list_head();
    while let Some(t) = next {
        for i in 0..tcb::LOOKUP_MEMO_WORDS {
            words.insert(t.paddr() + tcb::LOOKUP_MEMO + 8 * i);
        }
        next = t.debug_next();
    }
    words
}

/// The word at `p`, or 0 if it is one of the `memo` words.
fn word(memo: &std::collections::HashSet<u64>, p: u64) -> u64 {
    if memo.contains(&p) {
        0
    } else {
        memory::read::<u64>(p)
    }
}

/// A digest of the state that can change (the kernel area with the root
/// CNode, the objects made so far, the scheduler, the current address
/// space, the machine's log so far).
pub(super) fn digest(s: &Sys) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let a = &s.fx.arena;
    let used = [
        (a.phys_base, a.phys_base + 0x2_0000),
        (
            s.fx.ut_base,
            s.fx.ut_base + s.fx.free_index(super::super::UT),
        ),
    ];
    let memo = memo_words();
    for (from, to) in used {
        for p in (from..to).step_by(8) {
            word(&memo, p).hash(&mut h);
        }
    }
    sched::with(|st| format!("{st:?}")).hash(&mut h);
    vspace::current_asid().hash(&mut h);
    format!("{:?}", machine::take_log()).hash(&mut h);
    h.finish()
}

/// Compares two outcomes, naming the first differing words.
pub(super) fn same(fast: &Outcome, slow: &Outcome, base: u64) -> Result<(), TestCaseError> {
    let diffs: Vec<String> = fast
        .memory
        .iter()
        .zip(&slow.memory)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .take(8)
        .map(|(i, (a, b))| format!("{:#x}: fast {a:#x} slow {b:#x}", base + 8 * i as u64))
        .collect();
    prop_assert!(diffs.is_empty(), "memory differs: {diffs:#?}");
    prop_assert_eq!(&fast.sched, &slow.sched);
    prop_assert_eq!(fast.asid, slow.asid);
    prop_assert_eq!(&fast.machine, &slow.machine);
    prop_assert_eq!(fast.cur, slow.cur);
    let first = fast.steps.iter().zip(&slow.steps).position(|(a, b)| a != b);
    prop_assert!(first.is_none(), "differs after system call {first:?}");
    prop_assert_eq!(fast.steps.len(), slow.steps.len());
    Ok(())
}

/// An ASID pool, made through ASIDControl from a fresh untyped; returns
/// its root slot.
pub(super) fn asid_pool(s: &mut Sys) -> u64 {
    write_boot_slot(s.fx.slot(ASID_CONTROL), &Cap::AsidControl);
    let ut = s.make(ObjectType::Untyped, 12);
    let pool = s.slot();
    let r = s.call(
        s.root.tcb,
        ASID_CONTROL,
        Label::ArmAsidControlMakePool,
        &[pool, D],
        &[ut, ROOT_CNODE_COPY],
    );
    assert_eq!(r.info.label(), 0, "MakePool: {r:?}");
    pool
}

/// Gives `t` an address space of its own with an ASID from `pool`.
pub(super) fn give_vspace(s: &mut Sys, pool: u64, t: Tcb) {
    let vs = s.make(ObjectType::VSpace, 0);
    let r = s.call(s.root.tcb, pool, Label::ArmAsidPoolAssign, &[], &[vs]);
    assert_eq!(r.info.label(), 0, "Assign: {r:?}");
    let slot = s.fx.slot(vs);
    cte_insert(&slot.cap(), slot, t.slot(tcb::VTABLE));
}

/// Binds notification `ntfn` to the thread whose TCB cap is in
/// `thread_slot` (the root's invocation, which must succeed).
pub(super) fn bind_notification(s: &Sys, thread_slot: u64, ntfn: u64) {
    let r = s.call(
        s.root.tcb,
        thread_slot,
        Label::TcbBindNotification,
        &[],
        &[ntfn],
    );
    assert_eq!(r.info.label(), 0, "BindNotification: {r:?}");
}

pub(super) fn set_priority(s: &Sys, target: u64, prio: u64) {
    let r = s.call(
        s.root.tcb,
        target,
        Label::TcbSetPriority,
        &[prio],
        &[ROOT_TCB],
    );
    assert_eq!(r.info.label(), 0, "SetPriority: {r:?}");
}

/// What a scenario varies.
#[derive(Clone, Debug)]
struct Params {
    client_prio: u64,
    server_prio: u64,
    passive: bool,
    server_vspace: bool,
    /// A third thread, ready at this priority (at most the client's).
    other: Option<u64>,
    len: u64,
    caps: u64,
    label: u64,
    rights: u64,
    badge: u64,
    rlen: u64,
    rcaps: u64,
    rlabel: u64,
    /// The server's bound notification, and whether it signals it to
    /// itself before answering (a pending signal).
    ntfn: Option<bool>,
    /// The server names its endpoint as the reply object.
    wrong_reply: bool,
    /// Clock advances before the call and before the answer (ticks).
    delay_call: u64,
    delay_reply: u64,
    /// Rounds of call and answer.
    rounds: u64,
    /// The client is a thread with an SC of this budget and period
    /// (microseconds) rather than the root thread.
    client_sc: Option<(u64, u64)>,
    /// Bits the senders put in the caps-unwrapped field.
    unwrapped: u64,
    /// A thread at (at least the client's) priority, parked in the
    /// release queue.
    released: Option<u64>,
    /// The client, or the server, is bound to a VCPU.
    client_vcpu: bool,
    server_vcpu: bool,
}

/// Binds a new VCPU to the thread in root slot `tcb_slot`.
fn bind_vcpu(s: &mut Sys, tcb_slot: u64) {
    let v = s.make(ObjectType::Vcpu, 0);
    let r = s.call(s.root.tcb, v, Label::ArmVcpuSetTcb, &[], &[tcb_slot]);
    assert_eq!(r.info.label(), 0, "SetTCB: {r:?}");
}

/// Runs a scenario through the fast path (`slow` false) or the slow path
/// only. The client is the root thread; the server waits in Recv with a
/// reply object.
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
    let server: Thread = s.thread(p.server_prio, Some((5 * MS, 5 * MS)));
    if p.server_vspace {
        give_vspace(&mut s, pool, server.tcb);
    }
    if p.server_vcpu {
        bind_vcpu(&mut s, server.tcb_slot);
    }
    if p.ntfn.is_some() {
        bind_notification(&s, server.tcb_slot, ntfn);
    }
    s.resume(server);
    // Let the server run to its Recv, then come back at the client's
    // priority.
    set_priority(&s, ROOT_TCB, 0);
    assert_eq!(s.cur(), server.tcb);
    server.tcb.set_reg(Reg::REPLY, reply);
    s.load(server.tcb, ep, 0, &[], &[]);
    s.syscall(server.tcb, sys::RECV);
    assert_eq!(s.cur(), s.root.tcb);
    set_priority(&s, ROOT_TCB, p.client_prio);
    if p.passive {
        let r = s.call(
            s.root.tcb,
            server.sc_slot.unwrap(),
            Label::SchedContextUnbindObject,
            &[],
            &[server.tcb_slot],
        );
        assert_eq!(r.info.label(), 0);
    }
    if let Some(prio) = p.other {
        let o = s.thread(prio.min(p.client_prio), Some((MS, MS)));
        give_vspace(&mut s, pool, o.tcb);
        s.resume(o);
        assert_eq!(s.cur(), s.root.tcb);
    }
    // A thread above the root that spends its budget at once and waits in
    // the release queue; the client's first call comes after its refill
    // is due (the slow path releases it before choosing).
    if let Some(prio) = p.released {
        let r = s.thread(p.client_prio.max(prio), Some((MS / 2, 2 * MS)));
        give_vspace(&mut s, pool, r.tcb);
        s.resume(r);
        if s.cur() == r.tcb {
            s.tick(machine::now() + MS * 100 * 6 / 10);
            assert!(r.tcb.in_release_queue(), "postponed");
        }
    }
    // The client: the root thread itself, or a thread with an SC of the
    // given budget and period while the root waits at priority 0.
    let client = match p.client_sc {
        None => {
            if p.client_vcpu {
                bind_vcpu(&mut s, ROOT_TCB);
            }
            s.root.tcb
        }
        Some(budget_period) => {
            let c = s.thread(p.client_prio, Some(budget_period));
            give_vspace(&mut s, pool, c.tcb);
            if p.client_vcpu {
                bind_vcpu(&mut s, c.tcb_slot);
            }
            s.resume(c);
            set_priority(&s, ROOT_TCB, 0);
            c.tcb
        }
    };
    let _ = machine::take_log();
    s.slow = slow;
    let mut steps = Vec::new();
    let ep_caps: Vec<u64> = vec![ep; p.caps as usize];
    let answer_caps: Vec<u64> = vec![ep; p.rcaps as usize];
    for round in 0..p.rounds {
        if s.cur() != client {
            break;
        }
        machine::set_now(machine::now() + p.delay_call);
        let words: Vec<u64> = (0..p.len).map(|i| 0x100 * round + i).collect();
        s.load(client, client_ep, p.label, &words, &ep_caps);
        // The caps-unwrapped field is the kernel's to fill: what a sender
        // puts there must not arrive.
        client.set_reg(Reg::MSG_INFO, client.reg(Reg::MSG_INFO) | p.unwrapped << 9);
        s.syscall(client, sys::CALL);
        steps.push(digest(&s));
        if s.cur() != server.tcb {
            break;
        }
        if p.ntfn == Some(true) {
            s.load(server.tcb, ntfn, 0, &[], &[]);
            s.syscall(server.tcb, sys::SEND);
            steps.push(digest(&s));
        }
        machine::set_now(machine::now() + p.delay_reply);
        let answer: Vec<u64> = (0..p.rlen).map(|i| 0x900 * round + i).collect();
        server
            .tcb
            .set_reg(Reg::REPLY, if p.wrong_reply { ep } else { reply });
        s.load(server.tcb, ep, p.rlabel, &answer, &answer_caps);
        let info = server.tcb.reg(Reg::MSG_INFO);
        server.tcb.set_reg(Reg::MSG_INFO, info | p.unwrapped << 9);
        if s.cur() != server.tcb {
            break;
        }
        s.syscall(server.tcb, sys::REPLY_RECV);
        steps.push(digest(&s));
    }
    outcome(&s, steps)
}

/// Priorities, often close together (where the scheduling checks bite).
fn prio() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..8, 1u64..255]
}

fn params() -> impl Strategy<Value = Params> {
    (
        (prio(), prio(), any::<bool>(), any::<bool>()),
        (proptest::option::of(prio()), 0u64..7, 0u64..2, 0u64..1000),
        (0u64..16, 0u64..4, 0u64..7, 0u64..2, 0u64..1000),
        (
            proptest::option::of(any::<bool>()),
            any::<bool>(),
            0u64..8,
            proptest::option::of(prio()),
        ),
        (
            prop_oneof![
                Just(0u64),
                Just(700),
                Just(2 * MS * 100),
                Just(20 * MS * 100)
            ],
            prop_oneof![
                Just(0u64),
                Just(700),
                Just(2 * MS * 100),
                Just(20 * MS * 100)
            ],
            1u64..4,
            proptest::option::of(prop_oneof![
                Just((MS, 10 * MS)),
                Just((10 * MS, 10 * MS)),
                Just((MS / 2, MS))
            ]),
        ),
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (client_prio, server_prio, passive, server_vspace),
                (other, len, caps, label),
                (rights, badge, rlen, rcaps, rlabel),
                (ntfn, wrong_reply, unwrapped, released),
                (delay_call, delay_reply, rounds, client_sc),
                (client_vcpu, server_vcpu),
            )| Params {
                client_prio,
                server_prio,
                passive,
                server_vspace,
                other,
                len,
                caps,
                label,
                rights,
                badge,
                rlen,
                rcaps,
                rlabel,
                ntfn,
                wrong_reply,
                delay_call,
                delay_reply,
                rounds,
                client_sc,
                unwrapped,
                released,
                client_vcpu,
                server_vcpu,
            },
        )
}

/// The scenario every fast-path condition holds in.
fn plain() -> Params {
    Params {
        client_prio: 10,
        server_prio: 20,
        passive: true,
        server_vspace: true,
        other: None,
        len: 2,
        caps: 0,
        label: 5,
        rights: CapRights::ALL.0,
        badge: 0x77,
        rlen: 3,
        rcaps: 0,
        rlabel: 6,
        ntfn: None,
        wrong_reply: false,
        delay_call: 0,
        delay_reply: 0,
        rounds: 3,
        client_sc: None,
        unwrapped: 5,
        released: None,
        client_vcpu: false,
        server_vcpu: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_path_leaves_what_the_slow_path_leaves(p in params()) {
        let base = memory::arena::PHYS_BASE;
        let slow = scenario(true, &p);
        let fast = scenario(false, &p);
        same(&fast, &slow, base)?;
    }
}

#[test]
fn plain_calls_and_answers_take_the_fast_path_and_agree_with_the_slow_one() {
    let p = plain();
    let slow = scenario(true, &p);
    TAKEN.with(|t| t.set([0; 4]));
    let fast = scenario(false, &p);
    // Three calls and three answers, every one fast.
    assert_eq!(TAKEN.with(|t| t.get())[..2], [3, 3]);
    same(&fast, &slow, memory::arena::PHYS_BASE).unwrap();
}

#[test]
fn each_condition_alone_sends_the_call_to_the_slow_path() {
    // What changes, and how many calls and answers stay fast.
    type Change = fn(&mut Params);
    let declines: [(&str, Change, [u64; 2]); 14] = [
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
        ("an active server", |p| p.passive = false, [0, 0]),
        ("no address space", |p| p.server_vspace = false, [0, 3]),
        (
            "a lower-priority server and a ready thread above it",
            |p| {
                p.server_prio = 5;
                p.other = Some(6);
            },
            [0, 0],
        ),
        ("a spent budget", |p| p.delay_call = 20 * MS * 100, [0, 0]),
        ("a pending signal", |p| p.ntfn = Some(true), [1, 0]),
        ("the wrong reply cap", |p| p.wrong_reply = true, [1, 0]),
        (
            "a client of its own, with a sporadic SC",
            |p| p.client_sc = Some((MS, 10 * MS)),
            [3, 3],
        ),
        (
            "the same priorities",
            |p| {
                p.server_prio = p.client_prio;
                p.other = Some(p.client_prio);
            },
            [3, 3],
        ),
        // The released thread outranks both: it runs after the first call.
        (
            "a release due",
            |p| {
                p.released = Some(30);
                p.delay_call = 2 * MS * 100;
            },
            [0, 0],
        ),
    ];
    for (what, change, fast) in declines {
        let mut p = plain();
        change(&mut p);
        let slow = scenario(true, &p);
        TAKEN.with(|t| t.set([0; 4]));
        let f = scenario(false, &p);
        same(&f, &slow, memory::arena::PHYS_BASE).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(TAKEN.with(|t| t.get())[..2], fast, "{what}");
    }
}

/// A call chain: the client calls a passive server, which calls a second
/// passive server on the donated SC; both answer.
fn chain(slow: bool) -> Outcome {
    let mut s = Sys::new();
    let pool = asid_pool(&mut s);
    let root = s.root.tcb;
    give_vspace(&mut s, pool, root);
    let ep1 = s.make(ObjectType::Endpoint, 0);
    let ep2 = s.make(ObjectType::Endpoint, 0);
    let r1 = s.make(ObjectType::Reply, 0);
    let r2 = s.make(ObjectType::Reply, 0);
    let mut servers = Vec::new();
    for (prio, ep, reply) in [(30, ep1, r1), (40, ep2, r2)] {
        let t = s.thread(prio, Some((5 * MS, 5 * MS)));
        give_vspace(&mut s, pool, t.tcb);
        s.resume(t);
        set_priority(&s, ROOT_TCB, 0);
        t.tcb.set_reg(Reg::REPLY, reply);
        s.load(t.tcb, ep, 0, &[], &[]);
        s.syscall(t.tcb, sys::RECV);
        set_priority(&s, ROOT_TCB, 255);
        let r = s.call(
            s.root.tcb,
            t.sc_slot.unwrap(),
            Label::SchedContextUnbindObject,
            &[],
            &[t.tcb_slot],
        );
        assert_eq!(r.info.label(), 0);
        servers.push(t.tcb);
    }
    set_priority(&s, ROOT_TCB, 10);
    let _ = machine::take_log();
    s.slow = slow;
    let (a, b) = (servers[0], servers[1]);
    let mut steps = Vec::new();
    for round in 0..2 {
        s.load(s.root.tcb, ep1, 1, &[round], &[]);
        s.syscall(s.root.tcb, sys::CALL);
        steps.push(digest(&s));
        assert_eq!(s.cur(), a);
        s.load(a, ep2, 2, &[round, 1], &[]);
        s.syscall(a, sys::CALL);
        steps.push(digest(&s));
        assert_eq!(s.cur(), b);
        b.set_reg(Reg::REPLY, r2);
        s.load(b, ep2, 3, &[7], &[]);
        s.syscall(b, sys::REPLY_RECV);
        steps.push(digest(&s));
        assert_eq!(s.cur(), a);
        a.set_reg(Reg::REPLY, r1);
        s.load(a, ep1, 4, &[8, 9], &[]);
        s.syscall(a, sys::REPLY_RECV);
        steps.push(digest(&s));
        assert_eq!(s.cur(), s.root.tcb);
        assert_eq!(s.reply(s.root.tcb).mrs, vec![8, 9]);
        assert_eq!(a.state(), ThreadState::BlockedOnReceive);
    }
    outcome(&s, steps)
}

#[test]
fn a_call_chain_through_two_passive_servers_is_fast_and_agrees() {
    let slow = chain(true);
    TAKEN.with(|t| t.set([0; 4]));
    let fast = chain(false);
    assert_eq!(TAKEN.with(|t| t.get())[..2], [4, 4]);
    same(&fast, &slow, memory::arena::PHYS_BASE).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The fast path's lookup finds what the general lookup finds, and the
    /// null cap wherever that fails: through the root CNode and a
    /// second-level CNode with a guard, at structured and arbitrary
    /// addresses.
    #[test]
    fn the_fast_lookup_agrees_with_the_general_one(
        guard_bits in 0u64..8,
        guard in 0u64..256,
        radix in 1u64..6,
        cptrs in proptest::collection::vec((any::<u64>(), 0u64..64, 0u64..64, any::<bool>()), 1..40),
    ) {
        let mut s = Sys::new();
        let cnode = s.make(ObjectType::CNode, radix);
        let inner = s.slot();
        let g = guard & ((1 << guard_bits) - 1);
        let data = septa_abi::CNodeCapData::new(g, guard_bits).0;
        s.fx.mutate(inner, cnode, data).unwrap();
        // Something to find inside.
        let ep = s.make(ObjectType::Endpoint, 0);
        let Cap::CNode { paddr: inner_paddr, .. } = s.fx.cap(inner) else {
            unreachable!()
        };
        let nested = SlotRef::nth(inner_paddr, 1);
        cte_insert(&s.fx.cap(ep), s.fx.slot(ep), nested);
        let root = s.root.tcb.slot(tcb::CTABLE);
        for (raw, top, low, structured) in cptrs {
            let cptr = if structured {
                // Root slot `top` (of 2^8), then the inner guard and index.
                let shift = 56 - guard_bits;
                let low = low & ((1 << radix) - 1);
                (top << 56) | (g << shift) | (low << (shift - radix)) | (raw & ((1 << (shift - radix)) - 1))
            } else {
                raw
            };
            let slow = crate::cspace::lookup_cap(&root.cap(), cptr).unwrap_or(Cap::Null);
            let fast = crate::cspace::lookup_fp(root.raw_cap(), cptr).decode();
            prop_assert_eq!(fast, slow, "cptr {:#x}", cptr);
        }
    }
}

#[test]
fn calls_between_guests_take_the_fast_path_and_switch_vcpus_as_the_slow_one() {
    for (client_vcpu, server_vcpu) in [(true, false), (false, true), (true, true)] {
        let p = Params {
            client_vcpu,
            server_vcpu,
            ..plain()
        };
        let slow = scenario(true, &p);
        TAKEN.with(|t| t.set([0; 4]));
        let fast = scenario(false, &p);
        assert_eq!(TAKEN.with(|t| t.get())[..2], [3, 3], "{p:?}");
        same(&fast, &slow, memory::arena::PHYS_BASE).unwrap();
        // The client runs at the end: in guest mode if it is a guest, its
        // vGIC on; a server's VCPU was disabled on the way back.
        let hw = machine::vcpu_hw();
        assert_eq!(hw.guest_mode, client_vcpu, "{p:?}");
        assert_eq!(
            hw.vgic[crate::machine::VgicReg::Hcr as usize],
            client_vcpu as u32
        );
    }
}

/// What a signal scenario varies: the root (the signaller) at `prio`, a
/// waiter at `waiter_prio` with an SC of its own (or with `sporadic` refills),
/// in domain 1 rather than the root's (`cross_domain`), a third ready thread,
/// the notification bound to the waiter instead of waited on, and how
/// often the root signals.
#[derive(Clone, Debug)]
struct SignalParams {
    prio: u64,
    waiter_prio: u64,
    sporadic: bool,
    cross_domain: bool,
    other: Option<u64>,
    bound: bool,
    /// Bound, the waiter waits in Recv on an endpoint (with a reply
    /// object) rather than on the notification: a Microkit PD's wait.
    on_endpoint: bool,
    signals: u64,
    badge: u64,
}

/// Runs a signal scenario through the fast path or the slow path only.
fn signal_scenario(slow: bool, p: &SignalParams) -> Outcome {
    let mut s = Sys::new();
    let pool = asid_pool(&mut s);
    let root = s.root.tcb;
    give_vspace(&mut s, pool, root);
    let ntfn = s.make(ObjectType::Notification, 0);
    let sender = s.slot();
    s.fx.mint(sender, ntfn, CapRights::ALL, p.badge).unwrap();
    let (budget, period) = if p.sporadic {
        (MS, 10 * MS)
    } else {
        (5 * MS, 5 * MS)
    };
    let waiter = s.thread(p.waiter_prio, Some((budget, period)));
    give_vspace(&mut s, pool, waiter.tcb);
    if p.bound {
        bind_notification(&s, waiter.tcb_slot, ntfn);
    }
    s.resume(waiter);
    // The waiter runs to its Wait, then the root comes back at its own
    // priority.
    set_priority(&s, ROOT_TCB, 0);
    assert_eq!(s.cur(), waiter.tcb);
    if p.bound && p.on_endpoint {
        let ep = s.make(ObjectType::Endpoint, 0);
        let reply = s.make(ObjectType::Reply, 0);
        waiter.tcb.set_reg(Reg::REPLY, reply);
        s.load(waiter.tcb, ep, 0, &[], &[]);
        s.syscall(waiter.tcb, sys::RECV);
        assert_eq!(waiter.tcb.state(), ThreadState::BlockedOnReceive);
    } else {
        s.load(waiter.tcb, ntfn, 0, &[], &[]);
        s.syscall(waiter.tcb, sys::WAIT);
    }
    set_priority(&s, ROOT_TCB, p.prio);
    if p.cross_domain {
        let dom = s.slot();
        write_boot_slot(s.fx.slot(dom), &Cap::Domain);
        let r = s.call(
            s.root.tcb,
            dom,
            Label::DomainSetSet,
            &[1],
            &[waiter.tcb_slot],
        );
        assert_eq!(r.info.label(), 0);
    }
    if let Some(prio) = p.other {
        let o = s.thread(prio.min(p.prio), Some((MS, MS)));
        give_vspace(&mut s, pool, o.tcb);
        s.resume(o);
    }
    assert_eq!(s.cur(), s.root.tcb);
    let _ = machine::take_log();
    s.slow = slow;
    let mut steps = Vec::new();
    for _ in 0..p.signals {
        if s.cur() != s.root.tcb {
            break;
        }
        s.load(s.root.tcb, sender, 0, &[], &[]);
        s.syscall(s.root.tcb, sys::SEND);
        steps.push(digest(&s));
    }
    outcome(&s, steps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn the_signal_fast_path_leaves_what_the_slow_path_leaves(
        prio in prio(),
        waiter_prio in prio(),
        (sporadic, cross_domain, bound, on_endpoint) in (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        other in proptest::option::of(prio()),
        signals in 1u64..4,
        badge in 0u64..8,
    ) {
        let p = SignalParams { prio, waiter_prio, sporadic, cross_domain, other, bound, on_endpoint, signals, badge };
        let slow = signal_scenario(true, &p);
        let fast = signal_scenario(false, &p);
        same(&fast, &slow, memory::arena::PHYS_BASE)?;
    }
}

#[test]
fn signals_to_a_lower_waiter_take_the_fast_path_in_the_benchmark_configuration() {
    let p = SignalParams {
        prio: 100,
        waiter_prio: 50,
        sporadic: false,
        cross_domain: false,
        other: None,
        bound: false,
        on_endpoint: false,
        signals: 3,
        badge: 2,
    };
    let slow = signal_scenario(true, &p);
    TAKEN.with(|t| t.set([0; 4]));
    let fast = signal_scenario(false, &p);
    // The first wakes the waiter, the next two set the badge.
    let want = if septa_abi::CONFIG.signal_fastpath() {
        3
    } else {
        0
    };
    assert_eq!(TAKEN.with(|t| t.get())[2], want);
    same(&fast, &slow, memory::arena::PHYS_BASE).unwrap();
}

/// The notify-rt case: a client signals a higher-priority server whose
/// bound notification wakes it from its Recv on an endpoint, or a
/// higher-priority thread waiting on the notification itself; both take
/// the signal fast path in the benchmark configuration, switch to the
/// woken thread and leave what the slow path leaves.
#[test]
fn signals_waking_a_higher_thread_switch_to_it_as_the_slow_path_does() {
    for (bound, on_endpoint) in [(true, true), (false, false), (true, false)] {
        let p = SignalParams {
            prio: 50,
            waiter_prio: 100,
            sporadic: false,
            cross_domain: false,
            other: Some(20),
            bound,
            on_endpoint,
            signals: 1,
            badge: 4,
        };
        let slow = signal_scenario(true, &p);
        TAKEN.with(|t| t.set([0; 4]));
        let fast = signal_scenario(false, &p);
        let want = septa_abi::CONFIG.signal_fastpath() as u64;
        assert_eq!(TAKEN.with(|t| t.get())[2], want, "{p:?}");
        same(&fast, &slow, memory::arena::PHYS_BASE).unwrap();
    }
}
