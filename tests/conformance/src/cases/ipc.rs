//! Endpoint IPC (src/object/endpoint.c, src/kernel/thread.c, the MCS
//! system calls of src/api/syscall.c): Send, NBSend, Call, Recv, NBRecv,
//! ReplyRecv, NBSendRecv, NBSendWait, badges, long messages, capability
//! transfer (grant, unwrapping, receive slots) and reply objects.

use core::sync::atomic::Ordering::Relaxed;

use septa_abi::ipc_buffer::MSG_MAX_LENGTH;
use septa_abi::kernel_config::{cap_tag, MAX_PRIORITY};
use septa_abi::{CNodeCapData, Label, MessageInfo};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::invocation::Invocation;
use septa_sel4::{ipc_buffer, syscall, Cap, Error, LookupFailure};

use crate::cases::util::{
    load_words, mr, recv_fault, reply, settle, ALL, READ, RW, RW_GRANT_REPLY, WRITE,
};
use crate::env::{Cx, ROOT_DEPTH};
use crate::report::{Failure, Outcome};
use crate::space;
use crate::thread::{self, mail, post, Spawn, Thread, MAIL};
use crate::{check, check_eq, check_err, ok, Case};

/// IPC is system calls, not labelled invocations; Call on a reply object
/// sends label 0.
pub const LABELS: &[Label] = &[];

pub const CASES: &[Case] = &[
    Case {
        name: "ipc/send-blocks-until-received",
        run: send_blocks,
    },
    Case {
        name: "ipc/receiver-waits-for-send",
        run: recv_waits,
    },
    Case {
        name: "ipc/call-and-reply",
        run: call_reply,
    },
    Case {
        name: "ipc/long-message-both-ways",
        run: long_message,
    },
    Case {
        name: "ipc/length-clamped-to-maximum",
        run: length_clamped,
    },
    Case {
        name: "ipc/badge-of-the-sending-cap",
        run: badges,
    },
    Case {
        name: "ipc/nbsend-without-receiver-is-dropped",
        run: nbsend_dropped,
    },
    Case {
        name: "ipc/nbrecv-without-sender",
        run: nbrecv_empty,
    },
    Case {
        name: "ipc/nbrecv-takes-a-queued-sender",
        run: nbrecv_queued,
    },
    Case {
        name: "ipc/senders-queue-in-order",
        run: fifo,
    },
    Case {
        name: "ipc/senders-queue-by-priority",
        run: by_priority,
    },
    Case {
        name: "ipc/set-priority-reorders-senders",
        run: reorder_senders,
    },
    Case {
        name: "ipc/receivers-queue-by-priority",
        run: receivers_by_priority,
    },
    Case {
        name: "ipc/reply-recv-server",
        run: reply_recv,
    },
    Case {
        name: "ipc/nb-send-recv",
        run: nb_send_recv,
    },
    Case {
        name: "ipc/nb-send-recv-without-receiver",
        run: nb_send_recv_dropped,
    },
    Case {
        name: "ipc/nb-send-wait",
        run: nb_send_wait,
    },
    Case {
        name: "ipc/grant-transfers-a-cap",
        run: grant,
    },
    Case {
        name: "ipc/no-grant-no-transfer",
        run: no_grant,
    },
    Case {
        name: "ipc/cap-of-the-same-endpoint-is-unwrapped",
        run: unwrap,
    },
    Case {
        name: "ipc/unwrap-then-transfer",
        run: unwrap_then_transfer,
    },
    Case {
        name: "ipc/one-cap-transferred-at-most",
        run: one_transfer,
    },
    Case {
        name: "ipc/occupied-receive-slot",
        run: occupied_slot,
    },
    Case {
        name: "ipc/grant-reply-allows-reply-not-caps",
        run: grant_reply_only,
    },
    Case {
        name: "ipc/reply-transfers-caps-with-grant",
        run: reply_grant,
    },
    Case {
        name: "ipc/call-to-a-receiver-without-reply-object",
        run: call_without_reply,
    },
    Case {
        name: "ipc/call-without-grant-rights",
        run: call_without_grant,
    },
    Case {
        name: "ipc/reply-object-without-caller",
        run: reply_no_caller,
    },
    Case {
        name: "ipc/reply-object-reused",
        run: reply_reused,
    },
    Case {
        name: "ipc/deleting-reply-object-stops-caller",
        run: reply_deleted,
    },
    Case {
        name: "ipc/send-needs-write-right",
        run: send_needs_write,
    },
    Case {
        name: "ipc/recv-needs-read-right",
        run: recv_needs_read,
    },
    Case {
        name: "ipc/recv-needs-a-reply-object",
        run: recv_needs_reply,
    },
    Case {
        name: "ipc/deleting-endpoint-restarts-senders",
        run: delete_restarts,
    },
    Case {
        name: "ipc/calls-follow-a-changed-cspace",
        run: calls_follow_cspace,
    },
];

/// The reply object of the last `recv_into`.
static LAST_REPLY: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn ep_of(i: usize) -> Cap<Endpoint> {
    Cap::from_bits(mail(i))
}

/// Waits (no reply object) on the endpoint in mail 0; records label, length
/// and MR0..3 in mail 8.. and the badge in mail 7.
fn wait_and_record(_: u64) {
    let (info, badge) = syscall::wait(ep_of(0).cptr());
    post(7, badge);
    post(8, info.label());
    post(9, info.length());
    for i in 0..4 {
        post(10 + i, ipc_buffer::get_mr(i));
    }
}

fn send_blocks(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(wait_and_record, 0))?;
    // The receiver has not run yet: this Send blocks until it receives.
    load_words(&[11, 12, 13, 14]);
    ep.send(MessageInfo::new(0x42, 0, 0, 4));
    t.join()?;
    check_eq!((mail(8), mail(9)), (0x42, 4), "label and length");
    check_eq!([mail(10), mail(11), mail(12), mail(13)], [11, 12, 13, 14]);
    Ok(())
}

fn recv_waits(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(wait_and_record, 0))?;
    settle(cx)?;
    check_eq!(mail(9), 0, "nothing received before the send");
    load_words(&[21, 22]);
    ep.send(MessageInfo::new(0x7, 0, 0, 2));
    t.join()?;
    check_eq!(
        (mail(7), mail(8), mail(9), mail(10), mail(11)),
        (0, 0x7, 2, 21, 22)
    );
    Ok(())
}

/// Calls the endpoint in mail 0 with label 0x33 and MR0..2 = 1, 2, 3;
/// records the reply's label, length and MR0..1 in mail 8..
fn caller(_: u64) {
    load_words(&[1, 2, 3]);
    let info = syscall::call(ep_of(0).cptr(), MessageInfo::new(0x33, 0, 0, 3));
    post(8, info.label());
    post(9, info.length());
    post(10, ipc_buffer::get_mr(0));
    post(11, ipc_buffer::get_mr(1));
    post(12, 1);
}

fn call_reply(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let badged = cx.mint(ep, ALL, 0x5150)?;
    post(0, badged.bits());
    let r = cx.reply()?;
    let t = thread::spawn(cx, Spawn::new(caller, 0))?;
    let (info, badge) = syscall::recv(ep.cptr(), r);
    check_eq!(
        (info.label(), info.length(), badge),
        (0x33, 3, 0x5150),
        "label, length, badge"
    );
    check_eq!([mr(0), mr(1), mr(2)], [1, 2, 3]);
    check_eq!(mail(12), 0, "caller ran on before the reply");
    reply(r, 0x99, &[41, 42]);
    t.join()?;
    check_eq!((mail(8), mail(9), mail(10), mail(11)), (0x99, 2, 41, 42));
    Ok(())
}

fn long_message(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let words: [u64; MSG_MAX_LENGTH] = core::array::from_fn(|i| 1000 + i as u64);
        load_words(&words);
        let info = syscall::call(
            ep_of(0).cptr(),
            MessageInfo::new(1, 0, 0, MSG_MAX_LENGTH as u64),
        );
        post(9, info.length());
        let bad = (0..MSG_MAX_LENGTH)
            .filter(|&i| ipc_buffer::get_mr(i) != 2000 + i as u64)
            .count();
        post(10, bad as u64);
    }
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let r = cx.reply()?;
    let t = thread::spawn(cx, Spawn::new(body, 0))?;
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!(info.length(), MSG_MAX_LENGTH as u64);
    for i in 0..MSG_MAX_LENGTH {
        check_eq!(mr(i), 1000 + i as u64, i);
    }
    let back: [u64; MSG_MAX_LENGTH] = core::array::from_fn(|i| 2000 + i as u64);
    reply(r, 0, &back);
    t.join()?;
    check_eq!(
        (mail(9), mail(10)),
        (MSG_MAX_LENGTH as u64, 0),
        "reply length, words wrong"
    );
    Ok(())
}

fn length_clamped(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        // The length field holds up to 127; the kernel reads at most 120.
        syscall::send(ep_of(0).cptr(), MessageInfo::new(0, 0, 0, 0x7f));
    }
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    thread::spawn(cx, Spawn::new(body, 0))?;
    let r = cx.reply()?;
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!(info.length(), MSG_MAX_LENGTH as u64);
    Ok(())
}

/// Sends an empty message on the endpoint in mail `arg`.
fn send_on(arg: u64) {
    syscall::send(ep_of(arg as usize).cptr(), MessageInfo::new(0, 0, 0, 0));
}

fn badges(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let badged = cx.mint(ep, ALL, 0xbeef)?;
    post(1, badged.bits());
    post(2, ep.bits());
    thread::spawn(cx, Spawn::new(send_on, 1))?;
    let r = cx.reply()?;
    check_eq!(syscall::recv(ep.cptr(), r).1, 0xbeef, "badged cap");
    thread::spawn(cx, Spawn::new(send_on, 2))?;
    check_eq!(syscall::recv(ep.cptr(), r).1, 0, "unbadged cap");
    Ok(())
}

fn nbsend_dropped(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    syscall::nb_send_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), [5, 0, 0, 0]);
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(wait_and_record, 0))?;
    settle(cx)?;
    check_eq!(mail(9), 0, "the dropped message was not kept");
    syscall::nb_send_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), [6, 0, 0, 0]);
    t.join()?;
    check_eq!(
        (mail(9), mail(10)),
        (1, 6),
        "the send with a waiting receiver"
    );
    Ok(())
}

fn nbrecv_empty(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let r = cx.reply()?;
    let (_, badge) = syscall::nb_recv(ep.cptr(), r);
    check_eq!(badge, 0);
    Ok(())
}

fn nbrecv_queued(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let badged = cx.mint(ep, ALL, 0x21)?;
    post(1, badged.bits());
    thread::spawn(cx, Spawn::new(send_on, 1))?;
    settle(cx)?;
    let r = cx.reply()?;
    check_eq!(syscall::nb_recv(ep.cptr(), r).1, 0x21);
    check_eq!(
        syscall::nb_recv(ep.cptr(), r).1,
        0,
        "the queue is empty again"
    );
    Ok(())
}

fn fifo(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    for (i, badge) in [(1, 0xa), (2, 0xb), (3, 0xc)] {
        post(i, cx.mint(ep, ALL, badge)?.bits());
    }
    // One at a time, so each is queued on the endpoint after the last
    // (woken threads of equal priority are not run in the order woken).
    for i in 1..=3 {
        thread::spawn(cx, Spawn::new(send_on, i))?;
        settle(cx)?;
    }
    let r = cx.reply()?;
    let got: [u64; 3] = core::array::from_fn(|_| syscall::recv(ep.cptr(), r).1);
    check_eq!(got, [0xa, 0xb, 0xc]);
    Ok(())
}

/// Queues three senders (badges 0xa, 0xb, 0xc) on a new endpoint, one at
/// a time, at the given priorities; returns the endpoint and their threads.
fn queue_senders(cx: &mut Cx, prios: [u64; 3]) -> Result<(Cap<Endpoint>, [Thread; 3]), Failure> {
    let ep = cx.endpoint()?;
    let mut threads = [None; 3];
    for (k, badge) in [0xa, 0xb, 0xc].into_iter().enumerate() {
        post(1 + k, cx.mint(ep, ALL, badge)?.bits());
        threads[k] = Some(thread::spawn(
            cx,
            Spawn::new(send_on, 1 + k as u64).prio(prios[k]),
        )?);
        settle(cx)?;
    }
    let [Some(a), Some(b), Some(c)] = threads else {
        crate::fail!("three senders");
    };
    Ok((ep, [a, b, c]))
}

fn by_priority(cx: &mut Cx) -> Outcome {
    // MCS endpoint queues are kept in priority order (tcbAppend), FIFO
    // among equals.
    let (ep, _) = queue_senders(cx, [50, 70, 60])?;
    let r = cx.reply()?;
    let got: [u64; 3] = core::array::from_fn(|_| syscall::recv(ep.cptr(), r).1);
    check_eq!(got, [0xb, 0xc, 0xa]);
    Ok(())
}

fn reorder_senders(cx: &mut Cx) -> Outcome {
    let (ep, [a, _, _]) = queue_senders(cx, [50, 70, 60])?;
    // setPriority of a queued sender moves it in the queue (reorderEP).
    ok!(a.tcb.set_priority(cx.root_tcb(), 80));
    let r = cx.reply()?;
    let got: [u64; 3] = core::array::from_fn(|_| syscall::recv(ep.cptr(), r).1);
    check_eq!(got, [0xa, 0xb, 0xc]);
    Ok(())
}

fn receivers_by_priority(cx: &mut Cx) -> Outcome {
    fn receive(id: u64) {
        let (_, _) = syscall::wait(ep_of(0).cptr());
        post(1 + id as usize, 1);
    }
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    thread::spawn(cx, Spawn::new(receive, 0).prio(50))?;
    settle(cx)?;
    thread::spawn(cx, Spawn::new(receive, 1).prio(70))?;
    settle(cx)?;
    // The later but higher receiver gets the first message.
    syscall::nb_send(ep.cptr(), MessageInfo::new(0, 0, 0, 0));
    settle(cx)?;
    check_eq!((mail(1), mail(2)), (0, 1));
    Ok(())
}

fn reply_recv(cx: &mut Cx) -> Outcome {
    fn server(_: u64) {
        let ep = ep_of(0);
        let r: Cap<Reply> = Cap::from_bits(mail(1));
        let (_, _, mut mrs) = syscall::recv_with_mrs(ep.cptr(), r);
        loop {
            MAIL[2].fetch_add(1, Relaxed);
            let out = [mrs[0] + 1, 0, 0, 0];
            let (_, _, next) =
                syscall::reply_recv_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), out, r);
            mrs = next;
        }
    }
    let ep = cx.endpoint()?;
    let r = cx.reply()?;
    post(0, ep.bits());
    post(1, r.bits());
    thread::spawn(cx, Spawn::new(server, 0))?;
    for x in [5u64, 10, 100] {
        let (info, mrs) =
            syscall::call_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), [x, 0, 0, 0]);
        check_eq!((info.length(), mrs[0]), (1, x + 1), x);
    }
    check_eq!(mail(2), 3, "requests served");
    Ok(())
}

fn nb_send_recv(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let r: Cap<Reply> = Cap::from_bits(mail(2));
        let (info, _, mrs) = syscall::nb_send_recv_with_mrs(
            ep_of(0).cptr(),
            MessageInfo::new(0x5, 0, 0, 1),
            [77, 0, 0, 0],
            ep_of(1).cptr(),
            r,
        );
        post(8, info.label());
        post(10, mrs[0]);
    }
    let to_root = cx.endpoint()?;
    let to_child = cx.endpoint()?;
    let r = cx.reply()?;
    post(0, to_root.bits());
    post(1, to_child.bits());
    post(2, r.bits());
    let t = thread::spawn(cx, Spawn::new(body, 0))?;
    let rr = cx.reply()?;
    let (info, _, mrs) = syscall::recv_with_mrs(to_root.cptr(), rr);
    check_eq!((info.label(), mrs[0]), (0x5, 77), "the send half");
    syscall::send_with_mrs(
        to_child.cptr(),
        MessageInfo::new(0x6, 0, 0, 1),
        [88, 0, 0, 0],
    );
    t.join()?;
    check_eq!((mail(8), mail(10)), (0x6, 88), "the receive half");
    Ok(())
}

fn nb_send_recv_dropped(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let r: Cap<Reply> = Cap::from_bits(mail(2));
        let (_, _, mrs) = syscall::nb_send_recv_with_mrs(
            ep_of(0).cptr(),
            MessageInfo::new(0, 0, 0, 1),
            [1, 0, 0, 0],
            ep_of(1).cptr(),
            r,
        );
        post(10, mrs[0]);
    }
    let nobody = cx.endpoint()?;
    let to_child = cx.endpoint()?;
    let r = cx.reply()?;
    post(0, nobody.bits());
    post(1, to_child.bits());
    post(2, r.bits());
    let t = thread::spawn(cx, Spawn::new(body, 0))?;
    settle(cx)?;
    let rr = cx.reply()?;
    check_eq!(
        syscall::nb_recv(nobody.cptr(), rr).1,
        0,
        "nothing queued on the send side"
    );
    syscall::send_with_mrs(to_child.cptr(), MessageInfo::new(0, 0, 0, 1), [9, 0, 0, 0]);
    t.join()?;
    check_eq!(mail(10), 9);
    Ok(())
}

fn nb_send_wait(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let n: Cap<Notification> = Cap::from_bits(mail(1));
        let (_, badge) =
            syscall::nb_send_wait(ep_of(0).cptr(), MessageInfo::new(0x8, 0, 0, 0), n.cptr());
        post(7, badge);
    }
    let ep = cx.endpoint()?;
    let n = cx.notification()?;
    let nb = cx.mint(n, ALL, 0x30)?;
    post(0, ep.bits());
    post(1, n.bits());
    let t = thread::spawn(cx, Spawn::new(body, 0))?;
    let r = cx.reply()?;
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!(info.label(), 0x8, "the send half");
    nb.signal();
    t.join()?;
    check_eq!(mail(7), 0x30, "the wait half");
    Ok(())
}

/// Sends, on the endpoint cap in mail 0, the caps in mail 1.. (count in the
/// argument), with label 0x10 and one word.
fn send_caps(n: u64) {
    for i in 0..n as usize {
        ipc_buffer::set_cap(i, Cap::<Unspecified>::from_bits(mail(1 + i)).cptr());
    }
    ipc_buffer::set_mr(0, 0xcafe);
    syscall::send(ep_of(0).cptr(), MessageInfo::new(0x10, 0, n, 1));
}

/// Receives on `ep` with the receive path at a fresh slot; returns the
/// message info and the slot.
fn recv_into(cx: &mut Cx, ep: Cap<Endpoint>) -> Result<(MessageInfo, Cap<Unspecified>), Failure> {
    let slot = cx.slot()?;
    let r = cx.reply()?;
    LAST_REPLY.store(r.bits(), Relaxed);
    ipc_buffer::set_receive_path(cx.root_cnode(), slot, ROOT_DEPTH);
    let (info, _) = syscall::recv(ep.cptr(), r);
    Ok((info, slot.cast()))
}

fn grant(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let n = cx.notification()?;
    let nb = cx.mint(n, ALL, 0x5)?;
    post(0, ep.bits());
    post(1, nb.bits());
    thread::spawn(cx, Spawn::new(send_caps, 1))?;
    let (info, got) = recv_into(cx, ep)?;
    check_eq!(
        (
            info.label(),
            info.length(),
            info.extra_caps(),
            info.caps_unwrapped()
        ),
        (0x10, 1, 1, 0)
    );
    check_eq!(cx.identify(got), cap_tag::NOTIFICATION);
    got.cast::<Notification>().signal();
    check_eq!(n.poll(), 0x5, "signal through the received cap");
    Ok(())
}

fn no_grant(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let weak = cx.mint(ep, RW_GRANT_REPLY, 0)?;
    let n = cx.notification()?;
    post(0, weak.bits());
    post(1, n.bits());
    thread::spawn(cx, Spawn::new(send_caps, 1))?;
    let (info, got) = recv_into(cx, ep)?;
    check_eq!(
        (info.label(), info.extra_caps(), mr(0)),
        (0x10, 0, 0xcafe),
        "message without the cap"
    );
    check_eq!(cx.identify(got), cap_tag::NULL);
    Ok(())
}

fn unwrap(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let badged = cx.mint(ep, ALL, 0x66)?;
    post(0, ep.bits());
    post(1, badged.bits());
    thread::spawn(cx, Spawn::new(send_caps, 1))?;
    let (info, got) = recv_into(cx, ep)?;
    // A cap to the receiving endpoint arrives as its badge only.
    check_eq!((info.extra_caps(), info.caps_unwrapped()), (1, 0b1));
    check_eq!(ipc_buffer::get_cap_or_badge(0), 0x66);
    check_eq!(cx.identify(got), cap_tag::NULL, "receive slot");
    Ok(())
}

fn unwrap_then_transfer(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let badged = cx.mint(ep, ALL, 0x7)?;
    let n = cx.notification()?;
    post(0, ep.bits());
    post(1, badged.bits());
    post(2, n.bits());
    thread::spawn(cx, Spawn::new(send_caps, 2))?;
    let (info, got) = recv_into(cx, ep)?;
    check_eq!((info.extra_caps(), info.caps_unwrapped()), (2, 0b01));
    check_eq!(ipc_buffer::get_cap_or_badge(0), 0x7);
    check_eq!(cx.identify(got), cap_tag::NOTIFICATION);
    Ok(())
}

fn one_transfer(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let a = cx.notification()?;
    let b = cx.tcb()?;
    post(0, ep.bits());
    post(1, a.bits());
    post(2, b.bits());
    thread::spawn(cx, Spawn::new(send_caps, 2))?;
    let (info, got) = recv_into(cx, ep)?;
    // One receive slot: the second cap needs another and stops the transfer.
    check_eq!((info.extra_caps(), info.caps_unwrapped()), (1, 0));
    check_eq!(cx.identify(got), cap_tag::NOTIFICATION);
    Ok(())
}

fn occupied_slot(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let n = cx.notification()?;
    post(0, ep.bits());
    post(1, n.bits());
    thread::spawn(cx, Spawn::new(send_caps, 1))?;
    let full = cx.tcb()?;
    let r = cx.reply()?;
    ipc_buffer::set_receive_path(cx.root_cnode(), full.cptr(), ROOT_DEPTH);
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!((info.extra_caps(), mr(0)), (0, 0xcafe));
    check_eq!(
        cx.identify(full),
        cap_tag::THREAD,
        "the occupied slot keeps its cap"
    );
    Ok(())
}

/// Calls the endpoint in mail 0 with the cap in mail 1 as extra cap and the
/// receive path at the slot in mail 2; records the reply's label, extra
/// caps and length in mail 8..
fn call_with_cap(_: u64) {
    ipc_buffer::set_cap(0, septa_sel4::CPtr::from_bits(mail(1)));
    ipc_buffer::set_receive_path(
        Cap::from_bits(septa_abi::init_cap::CNODE),
        septa_sel4::CPtr::from_bits(mail(2)),
        ROOT_DEPTH,
    );
    let info = syscall::call(ep_of(0).cptr(), MessageInfo::new(0x44, 0, 1, 0));
    post(8, info.label());
    post(9, info.extra_caps());
    post(10, info.length());
}

fn grant_reply_only(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let weak = cx.mint(ep, RW_GRANT_REPLY, 0)?;
    let n = cx.notification()?;
    post(0, weak.bits());
    post(1, n.bits());
    let t = thread::spawn(cx, Spawn::new(call_with_cap, 0))?;
    let (info, got) = recv_into(cx, ep)?;
    // GrantReply: the caller may be replied to, but sends no caps.
    check_eq!((info.label(), info.extra_caps()), (0x44, 0));
    check_eq!(cx.identify(got), cap_tag::NULL);
    reply_and_join(t, 0x45)
}

/// Replies with `label` through the reply object the last `recv_into`
/// used, and waits for the caller to finish.
fn reply_and_join(t: Thread, label: u64) -> Outcome {
    let r: Cap<Reply> = Cap::from_bits(LAST_REPLY.load(Relaxed));
    reply(r, label, &[]);
    t.join()?;
    check_eq!(mail(8), label, "reply label");
    Ok(())
}

fn reply_grant(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let n = cx.notification()?;
    let slot = cx.slot()?;
    post(0, ep.bits());
    post(1, n.bits());
    post(2, slot.bits());
    // First through a reply capability without Grant: the cap stays behind.
    let t = thread::spawn(cx, Spawn::new(call_with_cap, 0))?;
    let r = cx.reply()?;
    syscall::recv(ep.cptr(), r);
    let no_grant = cx.copy(r, RW)?;
    let gift = cx.notification()?;
    ipc_buffer::set_cap(0, gift.cptr());
    syscall::send(no_grant.cptr(), MessageInfo::new(0x46, 0, 1, 0));
    t.join()?;
    check_eq!(
        (mail(8), mail(9)),
        (0x46, 0),
        "reply without Grant: label, caps"
    );
    check_eq!(
        cx.identify(Cap::<Notification>::from_cptr(slot)),
        cap_tag::NULL
    );
    // Then through the original, which may grant.
    thread::next_round()?;
    post(0, ep.bits());
    post(1, n.bits());
    post(2, slot.bits());
    let t = thread::spawn(cx, Spawn::new(call_with_cap, 0))?;
    syscall::recv(ep.cptr(), r);
    ipc_buffer::set_cap(0, gift.cptr());
    syscall::send(r.cptr(), MessageInfo::new(0x47, 0, 1, 0));
    t.join()?;
    check_eq!(
        (mail(8), mail(9)),
        (0x47, 1),
        "reply with Grant: label, caps"
    );
    check_eq!(
        cx.identify(Cap::<Notification>::from_cptr(slot)),
        cap_tag::NOTIFICATION
    );
    Ok(())
}

fn call_without_reply(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(caller, 0))?;
    // Waiting without a reply object: the caller is delivered but left
    // inactive, with nobody to reply to it (sendIPC, MCS).
    let (info, _) = syscall::wait(ep.cptr());
    check_eq!(info.label(), 0x33);
    settle(cx)?;
    check_eq!(mail(12), 0, "the caller went on");
    // Resumed, it calls again; this time with a reply object.
    ok!(t.tcb.resume());
    let r = cx.reply()?;
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!(info.label(), 0x33, "the repeated call");
    reply(r, 0x1, &[5, 6]);
    t.join()?;
    check_eq!((mail(8), mail(10)), (0x1, 5));
    Ok(())
}

fn call_without_grant(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let weak = cx.mint(ep, RW, 0)?;
    post(0, weak.bits());
    let t = thread::spawn(cx, Spawn::new(caller, 0))?;
    let r = cx.reply()?;
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!(info.label(), 0x33);
    // No Grant or GrantReply on the caller's cap: no reply is set up.
    reply(r, 0x2, &[1]);
    settle(cx)?;
    check_eq!(mail(12), 0, "the caller got a reply");
    check!(!t.finished(), "the caller finished");
    Ok(())
}

fn reply_no_caller(cx: &mut Cx) -> Outcome {
    let r = cx.reply()?;
    // doReplyTransfer: nothing to do; the call returns an empty success.
    let got = ok!(r.invoke(&Invocation::new(Label::InvalidInvocation)));
    check_eq!(got.info.length(), 0);
    reply(r, 0, &[]);
    Ok(())
}

fn reply_reused(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let r = cx.reply()?;
    for round in 0..3u64 {
        let t = thread::spawn(cx, Spawn::new(caller, 0))?;
        let (info, _) = syscall::recv(ep.cptr(), r);
        check_eq!(info.label(), 0x33, round);
        reply(r, 0x40 + round, &[round]);
        t.join()?;
        check_eq!(mail(8), 0x40 + round, round);
        thread::next_round()?;
        post(0, ep.bits());
    }
    Ok(())
}

fn reply_deleted(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(caller, 0))?;
    let r = cx.reply()?;
    syscall::recv(ep.cptr(), r);
    // Deleting the reply object unlinks the caller, which becomes inactive.
    ok!(cx.delete(r));
    settle(cx)?;
    check_eq!(mail(12), 0, "the caller went on");
    ok!(t.tcb.resume());
    let r2 = cx.reply()?;
    let (info, _) = syscall::recv(ep.cptr(), r2);
    check_eq!(info.label(), 0x33, "the caller, resumed, calls again");
    reply(r2, 0x3, &[]);
    t.join()?;
    check_eq!(mail(8), 0x3);
    Ok(())
}

fn send_needs_write(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let ro = cx.mint(ep, READ, 0)?;
    check_err!(
        ro.invoke(&Invocation::new(Label::InvalidInvocation)),
        Error::InvalidCapability { index: 0 }
    );
    Ok(())
}

/// A thread that waits on the capability in mail 0 (whatever it is) with a
/// fault handler, for the receive-phase cap faults.
fn spawn_waiter(cx: &mut Cx, fault: Cap<Endpoint>) -> Result<Thread, Failure> {
    fn body(_: u64) {
        syscall::wait(septa_sel4::CPtr::from_bits(mail(0)));
        post(12, 1);
    }
    thread::spawn(cx, Spawn::new(body, 0).fault(fault))
}

fn recv_needs_read(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let wo = cx.mint(ep, WRITE, 0)?;
    post(0, wo.bits());
    let fep = cx.endpoint()?;
    let fault = cx.mint(fep, ALL, 0x1)?;
    spawn_waiter(cx, fault)?;
    let r = cx.reply()?;
    let (f, badge) = recv_fault(fep, r);
    check_eq!(badge, 0x1, "fault badge");
    match f {
        Fault::CapFault {
            addr,
            in_recv_phase,
            failure,
            ..
        } => {
            check_eq!((addr, in_recv_phase), (wo.bits(), true));
            check_eq!(failure, LookupFailure::MissingCapability { bits_left: 0 });
        }
        other => crate::fail!("expected a cap fault got {other:?}"),
    }
    Ok(())
}

fn recv_needs_reply(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let not_reply: Cap<Reply> = Cap::from_bits(mail(1));
        syscall::recv(ep_of(0).cptr(), not_reply);
        post(12, 1);
    }
    let ep = cx.endpoint()?;
    let other = cx.endpoint()?;
    post(0, ep.bits());
    post(1, other.bits());
    let fep = cx.endpoint()?;
    let fault = cx.mint(fep, ALL, 0x2)?;
    thread::spawn(cx, Spawn::new(body, 0).fault(fault))?;
    let r = cx.reply()?;
    let (f, _) = recv_fault(fep, r);
    // lookupReply: the cap in the reply register is not a reply object.
    match f {
        Fault::CapFault {
            addr,
            in_recv_phase,
            failure,
            ..
        } => {
            check_eq!((addr, in_recv_phase), (other.bits(), true));
            check_eq!(failure, LookupFailure::MissingCapability { bits_left: 0 });
        }
        other => crate::fail!("expected a cap fault got {other:?}"),
    }
    Ok(())
}

fn delete_restarts(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        syscall::send(ep_of(1).cptr(), MessageInfo::new(0, 0, 0, 0));
        post(12, 1);
    }
    let ep = cx.endpoint()?;
    let copy = cx.copy(ep, ALL)?;
    post(1, copy.bits());
    let t = thread::spawn(cx, Spawn::new(body, 0))?;
    settle(cx)?;
    check_eq!(mail(12), 0, "the sender did not block");
    // The last capability goes: cancelAllIPC restarts the sender, whose
    // retried Send finds an empty slot and does nothing.
    ok!(cx.delete(copy));
    ok!(cx.delete(ep));
    t.join()?;
    check_eq!(mail(12), 1);
    Ok(())
}

/// A thread calling through the same address again and again reaches
/// whatever that address names in its CSpace now: after SetSpace gives it
/// another CSpace root, where the address names a cap of another badge,
/// its calls carry the new badge. (Septa's fast paths remember each
/// thread's last look-up until a cap changes anywhere; this is the system
/// level check of that, on the real kernel build, beside the host
/// property test.)
fn calls_follow_cspace(cx: &mut Cx) -> Outcome {
    // Answers every call with the badge it came with.
    fn server(_: u64) {
        let ep = ep_of(0);
        let r: Cap<Reply> = Cap::from_bits(mail(1));
        let (_, mut badge, _) = syscall::recv_with_mrs(ep.cptr(), r);
        loop {
            let out = [badge, 0, 0, 0];
            let info = MessageInfo::new(0, 0, 0, 1);
            (_, badge, _) = syscall::reply_recv_with_mrs(ep.cptr(), info, out, r);
        }
    }
    // Calls slot 1 of its CSpace root for ever, posting the badge echoed
    // (mail 2) and counting its calls (mail 3).
    fn client(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(1);
        loop {
            let (_, mrs) = syscall::call_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 0), [0; 4]);
            post(2, mrs[0]);
            MAIL[3].fetch_add(1, Relaxed);
        }
    }
    // Yields to the client (same priority, its own budget of a few ms,
    // many calls) until mail 2 reads `badge` after more than `after`
    // calls; false if it never does (well inside the case's time limit).
    fn wait_for(badge: u64, after: u64) -> bool {
        for _ in 0..100 {
            if mail(2) == badge && mail(3) > after {
                return true;
            }
            syscall::yield_now();
        }
        false
    }
    let ep = cx.endpoint()?;
    let r = cx.reply()?;
    post(0, ep.bits());
    post(1, r.bits());
    // Two one-level CSpaces of 16 slots (a 60-bit guard of zeros), slot 1
    // of each the endpoint with badge 1 or 2.
    let data = CNodeCapData::new(0, 60);
    let mut spaces = [cx.root_cnode(); 2];
    for (badge, space) in (1u64..).zip(spaces.iter_mut()) {
        *space = cx.cnode(4)?;
        let one = septa_sel4::CPtr::from_bits(1);
        ok!(space.mint(one, 4, cx.root_cnode(), ep.cptr(), ROOT_DEPTH, ALL, badge));
    }
    let prio = thread::DEFAULT_PRIO;
    let srv = thread::spawn(cx, Spawn::new(server, 0).prio(prio + 1))?;
    let c = thread::spawn(cx, Spawn::new(client, 0).prio(prio).suspended())?;
    let vspace = space::vspace(c.worker);
    ok!(c.tcb.set_space(None, spaces[0], data, vspace, 0));
    let root = cx.root_tcb();
    ok!(root.set_priority(root, prio));
    ok!(c.tcb.resume());
    let first = wait_for(1, 0);
    ok!(c.tcb.set_space(None, spaces[1], data, vspace, 0));
    let calls = mail(3);
    let second = first && wait_for(2, calls + 1);
    let (echo, total) = (mail(2), mail(3));
    ok!(c.tcb.suspend());
    ok!(srv.tcb.suspend());
    ok!(root.set_priority(root, MAX_PRIORITY));
    check!(
        first,
        "no call came through the first CSpace: badge {echo}, {total} calls"
    );
    check!(
        second,
        "calls after SetSpace still reach the first CSpace's cap: badge {echo}, {} calls since",
        total - calls
    );
    Ok(())
}
