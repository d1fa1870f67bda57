//! IPC: rendezvous on endpoints, message and cap transfer, Call and reply
//! objects with scheduling-context donation, notifications.

use super::fastpath::bind_notification;
use super::{Sys, Thread, MS, ROOT_CNODE_COPY, ROOT_TCB};
use crate::cap::Cap;
use crate::context::Reg;
use crate::object::tcb::ThreadState;
use septa_abi::ipc_buffer::CAPS_OR_BADGES_OFFSET;
use septa_abi::{syscall as sys, CapRights, Error, Label, MessageInfo, ObjectType};

const D: u64 = 64;

/// A server at priority 200 with its own SC, left blocked in Recv (with a
/// reply object) on `ep`, the root at priority 10.
fn blocked_server(s: &mut Sys, ep: u64) -> (Thread, u64) {
    let server = s.thread(200, Some((5 * MS, 5 * MS)));
    let reply = s.make(ObjectType::Reply, 0);
    s.resume(server);
    lower_root(s, 10);
    assert_eq!(s.cur(), server.tcb);
    server.tcb.set_reg(Reg::REPLY, reply);
    s.load(server.tcb, ep, 0, &[], &[]);
    s.syscall(server.tcb, sys::RECV);
    assert_eq!(server.tcb.state(), ThreadState::BlockedOnReceive);
    assert_eq!(s.cur(), s.root.tcb);
    (server, reply)
}

fn lower_root(s: &mut Sys, prio: u64) {
    let r = s.call(
        s.root.tcb,
        ROOT_TCB,
        Label::TcbSetPriority,
        &[prio],
        &[ROOT_TCB],
    );
    assert_eq!(r.info.label(), 0);
}

/// A badged copy of the cap in root slot `src`.
fn mint(s: &mut Sys, src: u64, badge: u64, rights: CapRights) -> u64 {
    let n = s.slot();
    s.fx.mint(n, src, rights, badge).unwrap();
    n
}

#[test]
fn a_send_meets_a_waiting_receiver_with_badge_label_and_words() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let badged = mint(&mut s, ep, 0x77, CapRights::ALL);
    let (server, _) = blocked_server(&mut s, ep);
    let words: Vec<u64> = (1..=9).map(|i| i * 11).collect();
    s.load(s.root.tcb, badged, 0x123, &words, &[]);
    s.syscall(s.root.tcb, sys::SEND);
    // The server outranks the root: it runs with the message.
    assert_eq!(s.cur(), server.tcb);
    let r = s.reply(server.tcb);
    assert_eq!(r.badge, 0x77);
    assert_eq!(r.info.label(), 0x123);
    assert_eq!(r.mrs, words);
    assert_eq!(s.root.tcb.state(), ThreadState::Running);
}

#[test]
fn a_receive_meets_a_queued_sender_and_senders_queue_by_priority() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let a = s.thread(20, Some((MS, MS)));
    let b = s.thread(30, Some((MS, MS)));
    s.resume(a);
    s.resume(b);
    lower_root(&mut s, 1);
    // b (30) runs first and blocks sending; then a (20).
    assert_eq!(s.cur(), b.tcb);
    s.load(b.tcb, ep, 2, &[0xb], &[]);
    s.syscall(b.tcb, sys::SEND);
    assert_eq!(s.cur(), a.tcb);
    s.load(a.tcb, ep, 1, &[0xa], &[]);
    s.syscall(a.tcb, sys::SEND);
    assert_eq!(s.cur(), s.root.tcb);
    // The root receives twice: b first (higher priority), then a.
    let reply = s.make(ObjectType::Reply, 0);
    s.root.tcb.set_reg(Reg::REPLY, reply);
    s.load(s.root.tcb, ep, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::RECV);
    assert_eq!(s.reply(s.root.tcb).mrs, vec![0xb]);
    // b was made runnable and outranks the root.
    assert_eq!(s.cur(), b.tcb);
    assert_eq!(b.tcb.state(), ThreadState::Running);
}

#[test]
fn non_blocking_calls_find_nobody() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    s.load(s.root.tcb, ep, 5, &[1, 2], &[]);
    s.syscall(s.root.tcb, sys::NB_SEND);
    assert_eq!(s.root.tcb.state(), ThreadState::Running);
    let reply = s.make(ObjectType::Reply, 0);
    s.root.tcb.set_reg(Reg::REPLY, reply);
    s.root.tcb.set_reg(Reg::BADGE, 99);
    s.load(s.root.tcb, ep, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::NB_RECV);
    assert_eq!(s.root.tcb.reg(Reg::BADGE), 0, "no message: badge 0");
    assert_eq!(s.cur(), s.root.tcb);
}

#[test]
fn messages_are_cut_to_120_words_and_to_4_without_a_buffer() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let (server, _) = blocked_server(&mut s, ep);
    let words: Vec<u64> = (0..120).collect();
    s.load(s.root.tcb, ep, 0, &words, &[]);
    // A length field of 127 reads as 120.
    s.root
        .tcb
        .set_reg(Reg::MSG_INFO, MessageInfo::new(0, 0, 0, 127).0);
    s.syscall(s.root.tcb, sys::SEND);
    let r = s.reply(server.tcb);
    assert_eq!(r.info.length(), 120);
    assert_eq!(r.mrs, words);
    // A receiver without a buffer gets the four register words only.
    let ep2 = s.make(ObjectType::Endpoint, 0);
    server.tcb.set_reg(Reg::REPLY, 0);
    crate::delete::cte_delete(server.tcb.slot(crate::object::tcb::BUFFER), true).unwrap();
    s.load(server.tcb, ep2, 0, &[], &[]);
    s.syscall(server.tcb, sys::WAIT);
    assert_eq!(s.cur(), s.root.tcb);
    s.load(s.root.tcb, ep2, 0, &words[..10], &[]);
    s.syscall(s.root.tcb, sys::SEND);
    let r = MessageInfo(server.tcb.reg(Reg::MSG_INFO));
    assert_eq!(r.length(), 4);
}

#[test]
fn caps_are_granted_into_the_receive_slot_and_the_endpoints_own_cap_unwrapped() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let ntfn = s.make(ObjectType::Notification, 0);
    let badged_ep = mint(&mut s, ep, 0x55, CapRights::ALL);
    let (server, _) = blocked_server(&mut s, ep);
    let dest = s.slot();
    // The receive slot is read from the buffer when the message arrives.
    s.receive_into(server.tcb, dest);
    s.load(s.root.tcb, ep, 9, &[1], &[badged_ep, ntfn]);
    s.syscall(s.root.tcb, sys::SEND);
    let r = s.reply(server.tcb);
    assert_eq!(r.info.extra_caps(), 2);
    assert_eq!(
        r.info.caps_unwrapped(),
        0b01,
        "the cap to this endpoint is unwrapped"
    );
    assert_eq!(s.buf_word(server.tcb, CAPS_OR_BADGES_OFFSET / 8), 0x55);
    assert!(
        matches!(s.fx.cap(dest), Cap::Notification { .. }),
        "got {:?}",
        s.fx.cap(dest)
    );
    // The copy is a child of the original.
    assert!(crate::cte::is_mdb_parent_of(
        s.fx.slot(ntfn),
        s.fx.slot(dest)
    ));
}

#[test]
fn without_grant_no_cap_moves() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let ntfn = s.make(ObjectType::Notification, 0);
    let no_grant = mint(&mut s, ep, 0, CapRights::new(false, false, true, true));
    let (server, _) = blocked_server(&mut s, ep);
    let dest = s.slot();
    s.receive_into(server.tcb, dest);
    s.load(s.root.tcb, no_grant, 0, &[], &[ntfn]);
    s.syscall(s.root.tcb, sys::SEND);
    let r = s.reply(server.tcb);
    assert_eq!(r.info.extra_caps(), 0);
    assert!(s.fx.slot(dest).is_empty());
}

#[test]
fn call_donates_to_a_passive_server_and_the_reply_gives_it_back() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let (server, reply) = blocked_server(&mut s, ep);
    // Make the server passive: take its scheduling context away.
    let sc = server.sc_slot.unwrap();
    let r = s.call(
        s.root.tcb,
        sc,
        Label::SchedContextUnbindObject,
        &[],
        &[server.tcb_slot],
    );
    assert_eq!(r.info.label(), 0);
    assert_eq!(server.tcb.sched_context(), 0);
    let root_sc = s.root.tcb.sched_context();
    // The root calls: blocked on the reply, its SC lent to the server.
    s.load(s.root.tcb, ep, 3, &[40, 2], &[]);
    s.syscall(s.root.tcb, sys::CALL);
    assert_eq!(s.cur(), server.tcb);
    assert_eq!(server.tcb.sched_context(), root_sc);
    assert_eq!(s.root.tcb.sched_context(), 0);
    assert_eq!(s.root.tcb.state(), ThreadState::BlockedOnReply);
    let r = s.reply(server.tcb);
    assert_eq!((r.info.label(), r.mrs.clone()), (3, vec![40, 2]));
    // The server answers and waits again (ReplyRecv).
    server.tcb.set_reg(Reg::REPLY, reply);
    s.load(server.tcb, ep, 0, &[42], &[]);
    s.syscall(server.tcb, sys::REPLY_RECV);
    assert_eq!(server.tcb.state(), ThreadState::BlockedOnReceive);
    assert_eq!(server.tcb.sched_context(), 0, "passive again");
    assert_eq!(s.root.tcb.sched_context(), root_sc, "the SC went home");
    assert_eq!(s.cur(), s.root.tcb);
    let r = s.reply(s.root.tcb);
    assert_eq!((r.badge, r.info.label(), r.mrs.clone()), (0, 0, vec![42]));
}

#[test]
fn a_call_without_grant_rights_leaves_the_caller_inactive() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let send_only = mint(&mut s, ep, 0, CapRights::new(false, false, false, true));
    let (server, _) = blocked_server(&mut s, ep);
    s.load(s.root.tcb, send_only, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::CALL);
    assert_eq!(s.root.tcb.state(), ThreadState::Inactive);
    assert_eq!(s.cur(), server.tcb);
}

#[test]
fn deleting_an_endpoint_restarts_its_waiters() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let (server, reply) = blocked_server(&mut s, ep);
    s.fx.delete(ep).unwrap();
    assert_eq!(server.tcb.state(), ThreadState::Restart);
    assert!(crate::object::reply::ReplyObj::new(s.paddr(reply))
        .tcb()
        .is_none());
    assert_eq!(s.cur(), s.root.tcb, "it runs once the scheduler runs");
}

#[test]
fn cancel_badged_sends_restarts_only_that_badge() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let b1 = mint(&mut s, ep, 1, CapRights::ALL);
    let b2 = mint(&mut s, ep, 2, CapRights::ALL);
    let x = s.thread(20, Some((MS, MS)));
    let y = s.thread(20, Some((MS, MS)));
    s.resume(x);
    s.resume(y);
    lower_root(&mut s, 1);
    let first = s.cur();
    let (first_cap, second) = if first == x.tcb {
        (b1, y.tcb)
    } else {
        (b2, x.tcb)
    };
    let second_cap = if first_cap == b1 { b2 } else { b1 };
    s.load(first, first_cap, 0, &[], &[]);
    s.syscall(first, sys::SEND);
    s.load(second, second_cap, 0, &[], &[]);
    s.syscall(second, sys::SEND);
    assert_eq!(s.cur(), s.root.tcb);
    let r = s.call(
        s.root.tcb,
        ROOT_CNODE_COPY,
        Label::CNodeCancelBadgedSends,
        &[b1, D],
        &[],
    );
    assert_eq!(r.info.label(), 0);
    let (t1, t2) = if first_cap == b1 {
        (first, second)
    } else {
        (second, first)
    };
    // The restarted sender outranks the root (1) and runs.
    assert_eq!(s.cur(), t1);
    assert_eq!(t1.state(), ThreadState::Running);
    assert_eq!(t2.state(), ThreadState::BlockedOnSend);
}

#[test]
fn notifications_accumulate_badges_and_wake_waiters() {
    let mut s = Sys::new();
    let n = s.make(ObjectType::Notification, 0);
    let b1 = mint(&mut s, n, 0b001, CapRights::ALL);
    let b4 = mint(&mut s, n, 0b100, CapRights::ALL);
    for b in [b1, b4] {
        s.load(s.root.tcb, b, 0, &[], &[]);
        s.syscall(s.root.tcb, sys::SEND);
    }
    s.load(s.root.tcb, n, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::WAIT);
    assert_eq!(s.root.tcb.reg(Reg::BADGE), 0b101);
    assert_eq!(s.root.tcb.state(), ThreadState::Running);
    // x0 names the notification and comes back as the badge: 0, nothing.
    s.load(s.root.tcb, n, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::NB_WAIT);
    assert_eq!(s.root.tcb.reg(Reg::BADGE), 0, "nothing pending");
    // A waiter is woken by a signal with the signal's badge.
    let w = s.thread(200, Some((MS, MS)));
    s.resume(w);
    lower_root(&mut s, 10);
    s.load(w.tcb, n, 0, &[], &[]);
    s.syscall(w.tcb, sys::WAIT);
    assert_eq!(w.tcb.state(), ThreadState::BlockedOnNotification);
    s.load(s.root.tcb, b4, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::SEND);
    assert_eq!(s.cur(), w.tcb);
    assert_eq!(w.tcb.reg(Reg::BADGE), 0b100);
}

#[test]
fn a_bound_notification_wakes_a_thread_waiting_on_its_endpoint() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let n = s.make(ObjectType::Notification, 0);
    let b = mint(&mut s, n, 0x40, CapRights::ALL);
    let (server, _) = blocked_server(&mut s, ep);
    bind_notification(&s, server.tcb_slot, n);
    s.load(s.root.tcb, b, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::SEND);
    assert_eq!(s.cur(), server.tcb);
    assert_eq!(server.tcb.reg(Reg::BADGE), 0x40);
    assert_eq!(server.tcb.state(), ThreadState::Running);
}

#[test]
fn receiving_on_a_notification_bound_to_another_thread_is_a_cap_fault() {
    let mut s = Sys::new();
    let n = s.make(ObjectType::Notification, 0);
    let t = s.thread(100, None);
    bind_notification(&s, t.tcb_slot, n);
    // The root has no fault handler: it is stopped.
    s.load(s.root.tcb, n, 0, &[], &[]);
    s.syscall(s.root.tcb, sys::WAIT);
    assert_eq!(s.root.tcb.state(), ThreadState::Inactive);
}

#[test]
fn a_read_only_endpoint_cap_cannot_be_invoked() {
    let mut s = Sys::new();
    let ep = s.make(ObjectType::Endpoint, 0);
    let ro = mint(&mut s, ep, 0, CapRights::new(false, false, true, false));
    let r = s.call(s.root.tcb, ro, Label::InvalidInvocation, &[], &[]);
    assert_eq!(
        (r.info.label(), r.mrs),
        (Error::InvalidCapability as u64, vec![0])
    );
}
