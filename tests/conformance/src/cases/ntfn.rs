//! Notifications (src/object/notification.c): Signal, Wait, Poll (NBWait),
//! badge accumulation, waiter queues, bound notifications and their
//! interplay with endpoint receives.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::{Label, MessageInfo};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::invocation::Invocation;
use septa_sel4::{syscall, CPtr, Cap, Error, LookupFailure};

use crate::cases::util::{recv_fault, reply, settle, ALL, READ, WRITE};
use crate::env::Cx;
use crate::report::Outcome;
use crate::thread::{self, mail, post, Spawn};
use crate::{check_eq, check_err, fail, ok, Case};

/// Signals are system calls; Call on a notification is label 0.
pub const LABELS: &[Label] = &[];

pub const CASES: &[Case] = &[
    Case {
        name: "ntfn/signal-then-poll",
        run: signal_poll,
    },
    Case {
        name: "ntfn/badges-accumulate",
        run: accumulate,
    },
    Case {
        name: "ntfn/poll-without-signal",
        run: poll_empty,
    },
    Case {
        name: "ntfn/nbsend-signals",
        run: nbsend_signals,
    },
    Case {
        name: "ntfn/wait-blocks-until-signalled",
        run: wait_blocks,
    },
    Case {
        name: "ntfn/wait-takes-pending-signal",
        run: wait_pending,
    },
    Case {
        name: "ntfn/unbadged-signal-is-still-a-signal",
        run: unbadged,
    },
    Case {
        name: "ntfn/waiters-woken-in-order",
        run: waiters_in_order,
    },
    Case {
        name: "ntfn/waiters-queue-by-priority",
        run: waiters_by_priority,
    },
    Case {
        name: "ntfn/bound-signal-wakes-recv",
        run: bound_wakes_recv,
    },
    Case {
        name: "ntfn/signal-runs-a-higher-bound-receiver-at-once",
        run: higher_bound_recv,
    },
    Case {
        name: "ntfn/signal-runs-a-higher-waiter-at-once",
        run: higher_waiter,
    },
    Case {
        name: "ntfn/bound-pending-signal-before-wait",
        run: bound_pending,
    },
    Case {
        name: "ntfn/bound-thread-in-call-not-woken",
        run: bound_in_call,
    },
    Case {
        name: "ntfn/wait-on-ntfn-bound-elsewhere",
        run: bound_elsewhere,
    },
    Case {
        name: "ntfn/signal-needs-write-right",
        run: signal_needs_write,
    },
    Case {
        name: "ntfn/wait-needs-read-right",
        run: wait_needs_read,
    },
    Case {
        name: "ntfn/deleting-restarts-waiters",
        run: delete_restarts,
    },
];

fn n_of(i: usize) -> Cap<Notification> {
    Cap::from_bits(mail(i))
}

fn signal_poll(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let b = cx.mint(n, ALL, 0x3)?;
    b.signal();
    check_eq!(n.poll(), 0x3);
    check_eq!(n.poll(), 0, "second poll");
    Ok(())
}

fn accumulate(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let one = cx.mint(n, ALL, 0x1)?;
    let two = cx.mint(n, ALL, 0x2)?;
    let high = cx.mint(n, ALL, 1 << 63)?;
    for c in [one, two, one, high] {
        c.signal();
    }
    check_eq!(n.poll(), 0x3 | 1 << 63);
    Ok(())
}

fn poll_empty(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    check_eq!(n.poll(), 0);
    Ok(())
}

fn nbsend_signals(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let b = cx.mint(n, ALL, 0x9)?;
    syscall::nb_send(b.cptr(), MessageInfo::new(0, 0, 0, 0));
    check_eq!(n.poll(), 0x9);
    // A Call signals too, and gets an empty reply from the kernel.
    ok!(b.invoke(&Invocation::new(Label::InvalidInvocation)));
    check_eq!(n.poll(), 0x9);
    Ok(())
}

/// Waits on the notification in mail 0; puts the badge in mail 1 + arg.
fn waiter(arg: u64) {
    let badge = n_of(0).wait();
    post(1 + arg as usize, badge);
}

fn wait_blocks(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let b = cx.mint(n, ALL, 0x8)?;
    post(0, n.bits());
    let t = thread::spawn(cx, Spawn::new(waiter, 0))?;
    settle(cx)?;
    check_eq!(mail(1), 0, "woken without a signal");
    b.signal();
    t.join()?;
    check_eq!(mail(1), 0x8);
    Ok(())
}

fn wait_pending(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let b = cx.mint(n, ALL, 0x4)?;
    b.signal();
    post(0, n.bits());
    let t = thread::spawn(cx, Spawn::new(waiter, 0))?;
    t.join()?;
    check_eq!(mail(1), 0x4);
    check_eq!(n.poll(), 0, "the signal was consumed");
    Ok(())
}

fn unbadged(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    // Signalled with badge 0: active, with nothing to OR in.
    n.signal();
    post(0, n.bits());
    post(1, 0xdead);
    let t = thread::spawn(cx, Spawn::new(waiter, 0))?;
    t.join()?;
    check_eq!(mail(1), 0, "badge of an unbadged signal");
    Ok(())
}

static ORDER: AtomicU64 = AtomicU64::new(0);

fn ordered_waiter(arg: u64) {
    let badge = n_of(0).wait();
    let k = ORDER.fetch_add(1, Relaxed) as usize;
    post(4 + 2 * k, arg);
    post(5 + 2 * k, badge);
}

fn waiters_in_order(cx: &mut Cx) -> Outcome {
    ORDER.store(0, Relaxed);
    let n = cx.notification()?;
    post(0, n.bits());
    let a = thread::spawn(cx, Spawn::new(ordered_waiter, 0xa))?;
    settle(cx)?;
    let b = thread::spawn(cx, Spawn::new(ordered_waiter, 0xb))?;
    settle(cx)?;
    let one = cx.mint(n, ALL, 1)?;
    let two = cx.mint(n, ALL, 2)?;
    // Each signal wakes the head of the queue only.
    one.signal();
    a.join()?;
    check_eq!((mail(4), mail(5)), (0xa, 1), "first waiter");
    settle(cx)?;
    check_eq!(mail(6), 0, "the second waiter woke on the first signal");
    two.signal();
    b.join()?;
    check_eq!((mail(6), mail(7)), (0xb, 2), "second waiter");
    Ok(())
}

fn waiters_by_priority(cx: &mut Cx) -> Outcome {
    ORDER.store(0, Relaxed);
    let n = cx.notification()?;
    post(0, n.bits());
    let low = thread::spawn(cx, Spawn::new(ordered_waiter, 0xa).prio(50))?;
    settle(cx)?;
    let high = thread::spawn(cx, Spawn::new(ordered_waiter, 0xb).prio(70))?;
    settle(cx)?;
    let mid = thread::spawn(cx, Spawn::new(ordered_waiter, 0xc).prio(60))?;
    settle(cx)?;
    // Raised while waiting: reorderNTFN moves it to the front.
    ok!(low.tcb.set_priority(cx.root_tcb(), 80));
    let one = cx.mint(n, ALL, 1)?;
    for t in [low, high, mid] {
        one.signal();
        t.join()?;
    }
    check_eq!([mail(4), mail(6), mail(8)], [0xa, 0xb, 0xc]);
    Ok(())
}

/// Receives on the endpoint in mail 0 with the reply object in mail 2;
/// puts the badge in mail 3.
fn bound_receiver(_: u64) {
    let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
    let r: Cap<Reply> = Cap::from_bits(mail(2));
    let (_, badge) = syscall::recv(ep.cptr(), r);
    post(3, badge);
}

fn bound_wakes_recv(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let n = cx.notification()?;
    let r = cx.reply()?;
    post(0, ep.bits());
    post(2, r.bits());
    let t = thread::spawn(cx, Spawn::new(bound_receiver, 0).suspended())?;
    ok!(t.tcb.bind_notification(n));
    ok!(t.tcb.resume());
    settle(cx)?;
    let b = cx.mint(n, ALL, 0x40)?;
    b.signal();
    t.join()?;
    check_eq!(mail(3), 0x40);
    Ok(())
}

/// The root, lowered to `ROOT_PRIO`, signals a thread above it that
/// `setup` left waiting: the woken thread runs before the Signal returns
/// (the badge is in its mail at once, with no join or settle between), and
/// the root runs again when it blocks. In the benchmark configuration this
/// is the signal fast path's direct switch; the root's priority is back at
/// the top before anything is checked.
fn signal_runs_higher(
    cx: &mut Cx,
    setup: impl FnOnce(&mut Cx) -> Result<thread::Thread, crate::report::Failure>,
) -> Outcome {
    const ROOT_PRIO: u64 = 100;
    let max = septa_abi::kernel_config::MAX_PRIORITY;
    post(3, 0);
    ok!(cx.root_tcb().set_priority(cx.root_tcb(), ROOT_PRIO));
    let result = setup(cx);
    let badge_at_once = result.as_ref().ok().map(|_| {
        let n = n_of(1);
        n.signal();
        mail(3)
    });
    ok!(cx.root_tcb().set_priority(cx.root_tcb(), max));
    let t = result?;
    t.join()?;
    check_eq!(
        badge_at_once,
        Some(0x21),
        "the woken thread did not run at once"
    );
    Ok(())
}

fn higher_bound_recv(cx: &mut Cx) -> Outcome {
    signal_runs_higher(cx, |cx| {
        let ep = cx.endpoint()?;
        let n = cx.notification()?;
        let r = cx.reply()?;
        post(0, ep.bits());
        post(1, cx.mint(n, ALL, 0x21)?.bits());
        post(2, r.bits());
        let t = thread::spawn(cx, Spawn::new(bound_receiver, 0).prio(150).suspended())?;
        ok!(t.tcb.bind_notification(n));
        // Above the root: it runs to its Recv at once.
        ok!(t.tcb.resume());
        Ok(t)
    })
}

fn higher_waiter(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let badge = n_of(0).wait();
        post(3, badge);
    }
    signal_runs_higher(cx, |cx| {
        let n = cx.notification()?;
        post(0, n.bits());
        post(1, cx.mint(n, ALL, 0x21)?.bits());
        thread::spawn(cx, Spawn::new(body, 0).prio(150))
    })
}

fn bound_pending(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
        let (_, badge) = syscall::wait(ep.cptr());
        post(3, badge);
    }
    let ep = cx.endpoint()?;
    let n = cx.notification()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(body, 0).suspended())?;
    ok!(t.tcb.bind_notification(n));
    let b = cx.mint(n, ALL, 0x11)?;
    b.signal();
    ok!(t.tcb.resume());
    t.join()?;
    check_eq!(mail(3), 0x11);
    Ok(())
}

fn bound_in_call(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
        let info = syscall::call(ep.cptr(), MessageInfo::new(0x1, 0, 0, 0));
        post(3, info.label());
        // The signal sent meanwhile waits in the notification.
        post(4, n_of(1).poll());
    }
    let ep = cx.endpoint()?;
    let n = cx.notification()?;
    post(0, ep.bits());
    post(1, n.bits());
    let t = thread::spawn(cx, Spawn::new(body, 0).suspended())?;
    ok!(t.tcb.bind_notification(n));
    ok!(t.tcb.resume());
    let r = cx.reply()?;
    syscall::recv(ep.cptr(), r);
    let b = cx.mint(n, ALL, 0x22)?;
    b.signal();
    settle(cx)?;
    check_eq!(mail(3), 0, "the caller woke before the reply");
    reply(r, 0x5, &[]);
    t.join()?;
    check_eq!((mail(3), mail(4)), (0x5, 0x22));
    Ok(())
}

/// Waits on the cptr in mail 0 (no matter what it holds).
fn raw_waiter(_: u64) {
    syscall::wait(CPtr::from_bits(mail(0)));
    post(12, 1);
}

fn expect_recv_cap_fault(cx: &mut Cx, cptr: u64) -> Outcome {
    let fep = cx.endpoint()?;
    let fault = cx.mint(fep, ALL, 0x4)?;
    post(0, cptr);
    thread::spawn(cx, Spawn::new(raw_waiter, 0).fault(fault))?;
    let r = cx.reply()?;
    let (f, _) = recv_fault(fep, r);
    match f {
        Fault::CapFault {
            addr,
            in_recv_phase,
            failure,
            ..
        } => {
            check_eq!((addr, in_recv_phase), (cptr, true));
            check_eq!(failure, LookupFailure::MissingCapability { bits_left: 0 });
        }
        other => fail!("expected a cap fault got {other:?}"),
    }
    Ok(())
}

fn bound_elsewhere(cx: &mut Cx) -> Outcome {
    fn never(_: u64) {}
    let n = cx.notification()?;
    let owner = thread::spawn(cx, Spawn::new(never, 0).suspended())?;
    ok!(owner.tcb.bind_notification(n));
    expect_recv_cap_fault(cx, n.bits())
}

fn signal_needs_write(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let ro = cx.mint(n, READ, 0x1)?;
    check_err!(
        ro.invoke(&Invocation::new(Label::InvalidInvocation)),
        Error::InvalidCapability { index: 0 }
    );
    // A Send is not answered, and signals nothing.
    ro.signal();
    check_eq!(n.poll(), 0);
    Ok(())
}

fn wait_needs_read(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let wo = cx.mint(n, WRITE, 0x1)?;
    expect_recv_cap_fault(cx, wo.bits())
}

fn delete_restarts(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    let copy = cx.copy(n, ALL)?;
    let fep = cx.endpoint()?;
    let fault = cx.mint(fep, ALL, 0x4)?;
    post(0, copy.bits());
    thread::spawn(cx, Spawn::new(raw_waiter, 0).fault(fault))?;
    settle(cx)?;
    // The last cap goes: cancelAllSignals restarts the waiter, whose retried
    // Wait finds an empty slot: a cap fault in the receive phase.
    ok!(cx.delete(copy));
    ok!(cx.delete(n));
    let r = cx.reply()?;
    let (f, _) = recv_fault(fep, r);
    match f {
        Fault::CapFault {
            addr,
            in_recv_phase,
            failure,
            ..
        } => {
            check_eq!((addr, in_recv_phase), (copy.bits(), true));
            check_eq!(failure, LookupFailure::MissingCapability { bits_left: 0 });
        }
        other => fail!("expected a cap fault got {other:?}"),
    }
    check_eq!(mail(12), 0, "the waiter went on");
    Ok(())
}
