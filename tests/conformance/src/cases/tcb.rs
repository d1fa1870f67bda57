//! TCB invocations (src/object/tcb.c, decodeTCBInvocation): registers,
//! configuration, priorities and MCP, scheduling parameters, spaces, IPC
//! buffer, notification binding, TLS base, flags, suspend and resume.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::kernel_config::{cap_tag, MAX_PRIORITY, PSTATE_USER, TCB_FLAGS_MASK};
use septa_abi::{CNodeCapData, Label, MessageInfo, ObjectType, TCB_REGISTER_COUNT};
use septa_sel4::cap::cap_type::*;
use septa_sel4::invocation::Invocation;
use septa_sel4::{syscall, Cap, Error, UserContext};

use crate::cases::util::{call_words, raw, settle, ALL, RW, WRITE_GRANT_REPLY};
use crate::env::{self, Cx};
use crate::report::{Failure, Outcome};
use crate::space;
use crate::thread::{self, mail, post, Sched, Spawn, Thread};
use crate::{check, check_eq, check_err, fail, ok, Case};

pub const LABELS: &[Label] = &[
    Label::TcbReadRegisters,
    Label::TcbWriteRegisters,
    Label::TcbCopyRegisters,
    Label::TcbConfigure,
    Label::TcbSetPriority,
    Label::TcbSetMcPriority,
    Label::TcbSetSchedParams,
    Label::TcbSetTimeoutEndpoint,
    Label::TcbSetIpcBuffer,
    Label::TcbSetSpace,
    Label::TcbSuspend,
    Label::TcbResume,
    Label::TcbBindNotification,
    Label::TcbUnbindNotification,
    Label::TcbSetTlsBase,
    Label::TcbSetFlags,
];

pub const CASES: &[Case] = &[
    Case {
        name: "tcb/start-and-finish",
        run: start_and_finish,
    },
    Case {
        name: "tcb/write-then-read-registers",
        run: write_read,
    },
    Case {
        name: "tcb/read-registers-count",
        run: read_count,
    },
    Case {
        name: "tcb/read-registers-out-of-range",
        run: read_range,
    },
    Case {
        name: "tcb/read-registers-of-self",
        run: read_self,
    },
    Case {
        name: "tcb/read-registers-truncated",
        run: read_truncated,
    },
    Case {
        name: "tcb/read-registers-suspends-source",
        run: read_suspends,
    },
    Case {
        name: "tcb/write-registers-of-self",
        run: write_self,
    },
    Case {
        name: "tcb/write-registers-truncated",
        run: write_truncated,
    },
    Case {
        name: "tcb/write-registers-sanitises-spsr",
        run: write_spsr,
    },
    Case {
        name: "tcb/write-registers-count-clamped",
        run: write_clamped,
    },
    Case {
        name: "tcb/write-registers-resumes",
        run: write_resumes,
    },
    Case {
        name: "tcb/copy-registers",
        run: copy_regs,
    },
    Case {
        name: "tcb/copy-registers-frame-only",
        run: copy_frame_only,
    },
    Case {
        name: "tcb/copy-registers-suspend-and-resume",
        run: copy_resume,
    },
    Case {
        name: "tcb/copy-registers-invalid-source",
        run: copy_invalid,
    },
    Case {
        name: "tcb/copy-registers-truncated",
        run: copy_truncated,
    },
    Case {
        name: "tcb/suspend-cancels-ipc-and-resume-restarts",
        run: suspend_resume,
    },
    Case {
        name: "tcb/resume-restarts-a-blocked-call",
        run: resume_blocked,
    },
    Case {
        name: "tcb/delete-removes-a-blocked-sender",
        run: delete_blocked,
    },
    Case {
        name: "tcb/priority-decides-order",
        run: prio_order,
    },
    Case {
        name: "tcb/set-priority-changes-order",
        run: set_prio_order,
    },
    Case {
        name: "tcb/set-priority-above-mcp",
        run: prio_above_mcp,
    },
    Case {
        name: "tcb/set-priority-authority-mcp",
        run: prio_authority,
    },
    Case {
        name: "tcb/set-priority-invalid-authority",
        run: prio_invalid_auth,
    },
    Case {
        name: "tcb/set-priority-truncated",
        run: prio_truncated,
    },
    Case {
        name: "tcb/set-mc-priority",
        run: set_mcp,
    },
    Case {
        name: "tcb/set-mc-priority-errors",
        run: mcp_errors,
    },
    Case {
        name: "tcb/set-sched-params-invalid-sched-context",
        run: ssp_invalid_sc,
    },
    Case {
        name: "tcb/set-sched-params-invalid-authority",
        run: ssp_invalid_auth,
    },
    Case {
        name: "tcb/set-sched-params-invalid-fault-endpoint",
        run: ssp_invalid_fault,
    },
    Case {
        name: "tcb/set-sched-params-sched-context-in-use",
        run: ssp_sc_in_use,
    },
    Case {
        name: "tcb/set-sched-params-unbind-current-thread",
        run: ssp_unbind_current,
    },
    Case {
        name: "tcb/set-sched-params-range",
        run: ssp_range,
    },
    Case {
        name: "tcb/set-sched-params-truncated",
        run: ssp_truncated,
    },
    Case {
        name: "tcb/set-sched-params-blocked-needs-released-sc",
        run: ssp_blocked,
    },
    Case {
        name: "tcb/set-timeout-endpoint",
        run: timeout_ep,
    },
    Case {
        name: "tcb/set-ipc-buffer-errors",
        run: ipc_buffer_errors,
    },
    Case {
        name: "tcb/set-ipc-buffer-device-frame",
        run: ipc_buffer_device,
    },
    Case {
        name: "tcb/no-ipc-buffer-truncates-messages",
        run: no_ipc_buffer,
    },
    Case {
        name: "tcb/configure-errors",
        run: configure_errors,
    },
    Case {
        name: "tcb/configure-cspace-root-data",
        run: configure_guard,
    },
    Case {
        name: "tcb/set-space",
        run: set_space,
    },
    Case {
        name: "tcb/bind-notification-errors",
        run: bind_errors,
    },
    Case {
        name: "tcb/unbind-notification",
        run: unbind,
    },
    Case {
        name: "tcb/set-tls-base",
        run: tls_base,
    },
    Case {
        name: "tcb/set-flags",
        run: set_flags,
    },
    Case {
        name: "tcb/illegal-operation",
        run: illegal,
    },
];

fn start_and_finish(cx: &mut Cx) -> Outcome {
    fn body(arg: u64) {
        post(0, arg + 1);
    }
    let t = thread::spawn(cx, Spawn::new(body, 0x1233))?;
    t.join()?;
    check_eq!(mail(0), 0x1234);
    Ok(())
}

/// A thread that never ran, for register tests.
fn idle_thread(cx: &mut Cx) -> Result<Thread, Failure> {
    fn never(_: u64) {}
    thread::spawn(cx, Spawn::new(never, 0).suspended())
}

/// A register set with every register distinct.
fn pattern() -> UserContext {
    let mut w = [0u64; TCB_REGISTER_COUNT];
    for (i, x) in w.iter_mut().enumerate() {
        *x = 0x1000_0000 + (i as u64) * 0x10;
    }
    // SPSR (word 2) is sanitised to EL0t; write what the kernel keeps.
    w[2] = PSTATE_USER;
    UserContext::from_words(&w)
}

fn write_read(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let p = pattern();
    ok!(t
        .tcb
        .write_registers(false, 0, TCB_REGISTER_COUNT as u64, &p));
    let got = ok!(t.tcb.read_registers(false, 0, TCB_REGISTER_COUNT as u64));
    check_eq!(got, p);
    Ok(())
}

fn read_count(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    ok!(t
        .tcb
        .write_registers(false, 0, TCB_REGISTER_COUNT as u64, &pattern()));
    // Frame registers first, then general ones: the reply is as long as asked.
    for n in [1u64, 3, 17, 20, 36] {
        let reply = ok!(t
            .tcb
            .invoke(&septa_sel4::invocation::build::tcb_read_registers(
                false, 0, n
            )));
        check_eq!(reply.info.length(), n, n);
        for (i, w) in pattern().to_words().iter().enumerate().take(n as usize) {
            check_eq!(reply.mr(i), *w, i);
        }
    }
    Ok(())
}

fn read_range(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let range = Error::RangeError {
        min: 1,
        max: TCB_REGISTER_COUNT as u64,
    };
    check_err!(t.tcb.read_registers(false, 0, 0), range);
    check_err!(
        t.tcb
            .read_registers(false, 0, TCB_REGISTER_COUNT as u64 + 1),
        range
    );
    Ok(())
}

fn read_self(cx: &mut Cx) -> Outcome {
    check_err!(
        cx.root_tcb().read_registers(false, 0, 1),
        Error::IllegalOperation
    );
    Ok(())
}

fn read_truncated(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    check_err!(
        t.tcb.invoke(&raw(Label::TcbReadRegisters, &[0])),
        Error::TruncatedMessage
    );
    Ok(())
}

/// Receives (without a reply object) on the endpoint in mail 0 forever,
/// counting messages in mail 1 and keeping the last MR0 in mail 2.
pub fn receiver(_: u64) {
    let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
    loop {
        syscall::wait(ep.cptr());
        post(2, septa_sel4::ipc_buffer::get_mr(0));
        thread::MAIL[1].fetch_add(1, Relaxed);
    }
}

fn nb_send_word(ep: Cap<Endpoint>, w: u64) {
    syscall::nb_send_with_mrs(ep.cptr(), MessageInfo::new(0, 0, 0, 1), [w, 0, 0, 0]);
}

fn read_suspends(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(receiver, 0))?;
    settle(cx)?;
    ok!(t.tcb.read_registers(true, 0, 1));
    // The receive was cancelled: nobody takes a non-blocking send.
    nb_send_word(ep, 7);
    settle(cx)?;
    check_eq!(mail(1), 0, "messages received while suspended");
    ok!(t.tcb.resume());
    settle(cx)?;
    nb_send_word(ep, 8);
    settle(cx)?;
    check_eq!((mail(1), mail(2)), (1, 8), "messages after resume");
    Ok(())
}

fn write_self(cx: &mut Cx) -> Outcome {
    let regs = UserContext::default();
    check_err!(
        cx.root_tcb().write_registers(false, 0, 1, &regs),
        Error::IllegalOperation
    );
    Ok(())
}

fn write_truncated(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    // Five registers announced, three sent.
    check_err!(
        t.tcb
            .invoke(&raw(Label::TcbWriteRegisters, &[0, 5, 1, 2, 3])),
        Error::TruncatedMessage
    );
    check_err!(
        t.tcb.invoke(&raw(Label::TcbWriteRegisters, &[0])),
        Error::TruncatedMessage
    );
    Ok(())
}

fn write_spsr(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    // sanitiseRegister: keep the NZCV flags, force EL0t with FIQs masked.
    for (written, kept) in [
        (0x3c5, PSTATE_USER),
        (0xf000_03c5, 0xf000_0000 | PSTATE_USER),
        (0, PSTATE_USER),
    ] {
        let regs = UserContext {
            pc: 0x1000,
            sp: 0x2000,
            spsr: written,
            ..Default::default()
        };
        ok!(t.tcb.write_registers(false, 0, 3, &regs));
        let got = ok!(t.tcb.read_registers(false, 0, 3));
        check_eq!(got.spsr, kept, written);
    }
    Ok(())
}

fn write_clamped(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let p = pattern().to_words();
    // A count past the register set, with enough words to satisfy it: the
    // kernel writes the 36 it has.
    let announced = 100usize;
    let mut words = [0xdead_u64; 102];
    words[0] = 0;
    words[1] = announced as u64;
    words[2..2 + p.len()].copy_from_slice(&p);
    ok!(call_words(
        t.tcb.cptr(),
        Label::TcbWriteRegisters,
        &words[..2 + announced]
    ));
    let got = ok!(t.tcb.read_registers(false, 0, TCB_REGISTER_COUNT as u64));
    check_eq!(got.to_words(), p);
    Ok(())
}

fn write_resumes(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        post(0, 0x77);
    }
    let t = thread::spawn(cx, Spawn::new(body, 0).suspended())?;
    settle(cx)?;
    check_eq!(mail(0), 0, "before the resuming write");
    ok!(t.tcb.write_registers(
        true,
        0,
        thread::START_REG_COUNT,
        &thread::start_regs(t.worker)
    ));
    t.join()?;
    check_eq!(mail(0), 0x77);
    Ok(())
}

fn copy_regs(cx: &mut Cx) -> Outcome {
    let a = idle_thread(cx)?;
    let b = idle_thread(cx)?;
    let p = pattern();
    ok!(a
        .tcb
        .write_registers(false, 0, TCB_REGISTER_COUNT as u64, &p));
    ok!(b.tcb.copy_registers(a.tcb, false, false, true, true, 0));
    check_eq!(
        ok!(b.tcb.read_registers(false, 0, TCB_REGISTER_COUNT as u64)),
        p
    );
    Ok(())
}

fn copy_frame_only(cx: &mut Cx) -> Outcome {
    let a = idle_thread(cx)?;
    let b = idle_thread(cx)?;
    let p = pattern();
    ok!(a
        .tcb
        .write_registers(false, 0, TCB_REGISTER_COUNT as u64, &p));
    let zero = UserContext {
        spsr: PSTATE_USER,
        ..Default::default()
    };
    ok!(b
        .tcb
        .write_registers(false, 0, TCB_REGISTER_COUNT as u64, &zero));
    ok!(b.tcb.copy_registers(a.tcb, false, false, true, false, 0));
    let got = ok!(b.tcb.read_registers(false, 0, TCB_REGISTER_COUNT as u64)).to_words();
    let frame = septa_abi::TCB_FRAME_REGISTER_COUNT;
    check_eq!(&got[..frame], &p.to_words()[..frame], "frame registers");
    check_eq!(
        &got[frame..],
        &zero.to_words()[frame..],
        "general registers"
    );
    Ok(())
}

fn copy_resume(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        post(0, 0x55);
    }
    // B is set up but not started; A holds the registers that start B.
    let b = thread::spawn(cx, Spawn::new(body, 0).suspended())?;
    let a = idle_thread(cx)?;
    ok!(a.tcb.write_registers(
        false,
        0,
        thread::START_REG_COUNT,
        &thread::start_regs(b.worker)
    ));
    ok!(b.tcb.copy_registers(a.tcb, true, true, true, true, 0));
    b.join()?;
    check_eq!(mail(0), 0x55);
    Ok(())
}

fn copy_invalid(cx: &mut Cx) -> Outcome {
    let b = idle_thread(cx)?;
    let ep = cx.endpoint()?;
    check_err!(
        b.tcb.copy_registers(ep.cast(), false, false, true, true, 0),
        Error::InvalidCapability { index: 1 }
    );
    Ok(())
}

fn copy_truncated(cx: &mut Cx) -> Outcome {
    let b = idle_thread(cx)?;
    check_err!(
        b.tcb.invoke(&raw(Label::TcbCopyRegisters, &[0b1100])),
        Error::TruncatedMessage
    );
    let a = idle_thread(cx)?;
    check_err!(
        b.tcb
            .invoke(&Invocation::new(Label::TcbCopyRegisters).cap(a.tcb.cptr())),
        Error::TruncatedMessage
    );
    Ok(())
}

fn suspend_resume(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(receiver, 0))?;
    settle(cx)?;
    ok!(t.tcb.suspend());
    nb_send_word(ep, 1);
    settle(cx)?;
    check_eq!(mail(1), 0, "messages received while suspended");
    ok!(t.tcb.resume());
    settle(cx)?;
    nb_send_word(ep, 2);
    settle(cx)?;
    check_eq!((mail(1), mail(2)), (1, 2), "messages after resume");
    Ok(())
}

fn resume_blocked(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(receiver, 0))?;
    settle(cx)?;
    // restart(): a blocked thread counts as stopped; its receive is
    // cancelled and the system call starts again when it next runs.
    ok!(t.tcb.resume());
    nb_send_word(ep, 3);
    check_eq!(
        (mail(1), mail(2)),
        (0, 0),
        "a send before the thread ran again"
    );
    settle(cx)?;
    nb_send_word(ep, 4);
    settle(cx)?;
    check_eq!((mail(1), mail(2)), (1, 4), "a send once it waits again");
    Ok(())
}

fn delete_blocked(cx: &mut Cx) -> Outcome {
    fn sender(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
        ep.send(MessageInfo::new(0, 0, 0, 0));
    }
    let ep = cx.endpoint()?;
    let badged = cx.mint(ep, ALL, 0x33)?;
    post(0, badged.bits());
    let t = thread::spawn(cx, Spawn::new(sender, 0))?;
    settle(cx)?;
    ok!(cx.delete(t.tcb));
    check_eq!(cx.identify(t.tcb), cap_tag::NULL);
    let reply = cx.reply()?;
    let (_, badge) = syscall::nb_recv(ep.cptr(), reply);
    check_eq!(badge, 0, "badge of a sender whose TCB was deleted");
    Ok(())
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// Records its argument in the next free mail word from 4 on.
fn record(arg: u64) {
    let n = SEQ.fetch_add(1, Relaxed) as usize;
    post(4 + n, arg);
}

fn prio_order(cx: &mut Cx) -> Outcome {
    SEQ.store(0, Relaxed);
    thread::spawn(cx, Spawn::new(record, 50).prio(50))?;
    thread::spawn(cx, Spawn::new(record, 60).prio(60))?;
    thread::spawn(cx, Spawn::new(record, 55).prio(55))?;
    settle(cx)?;
    check_eq!([mail(4), mail(5), mail(6)], [60, 55, 50]);
    Ok(())
}

fn set_prio_order(cx: &mut Cx) -> Outcome {
    SEQ.store(0, Relaxed);
    let a = thread::spawn(cx, Spawn::new(record, 1).prio(60).suspended())?;
    let b = thread::spawn(cx, Spawn::new(record, 2).prio(50).suspended())?;
    ok!(a.tcb.set_priority(cx.root_tcb(), 40));
    for t in [a, b] {
        ok!(t.tcb.write_registers(
            true,
            0,
            thread::START_REG_COUNT,
            &thread::start_regs(t.worker)
        ));
    }
    settle(cx)?;
    check_eq!([mail(4), mail(5)], [2, 1]);
    Ok(())
}

fn prio_above_mcp(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    check_err!(
        t.tcb.set_priority(cx.root_tcb(), MAX_PRIORITY + 1),
        Error::RangeError {
            min: 0,
            max: MAX_PRIORITY
        }
    );
    Ok(())
}

fn prio_authority(cx: &mut Cx) -> Outcome {
    let auth = idle_thread(cx)?;
    ok!(auth.tcb.set_mc_priority(cx.root_tcb(), 100));
    let t = idle_thread(cx)?;
    check_err!(
        t.tcb.set_priority(auth.tcb, 101),
        Error::RangeError { min: 0, max: 100 }
    );
    ok!(t.tcb.set_priority(auth.tcb, 100));
    Ok(())
}

fn prio_invalid_auth(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let ep = cx.endpoint()?;
    check_err!(
        t.tcb.set_priority(ep.cast(), 10),
        Error::InvalidCapability { index: 1 }
    );
    Ok(())
}

fn prio_truncated(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let root = cx.root_tcb().cptr();
    check_err!(
        t.tcb
            .invoke(&Invocation::new(Label::TcbSetPriority).cap(root)),
        Error::TruncatedMessage
    );
    check_err!(
        t.tcb.invoke(&raw(Label::TcbSetPriority, &[10])),
        Error::TruncatedMessage
    );
    Ok(())
}

fn set_mcp(cx: &mut Cx) -> Outcome {
    let auth = idle_thread(cx)?;
    ok!(auth.tcb.set_mc_priority(cx.root_tcb(), 50));
    let t = idle_thread(cx)?;
    check_err!(
        t.tcb.set_mc_priority(auth.tcb, 51),
        Error::RangeError { min: 0, max: 50 }
    );
    ok!(t.tcb.set_mc_priority(auth.tcb, 50));
    Ok(())
}

fn mcp_errors(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    check_err!(
        t.tcb.set_mc_priority(cx.root_tcb(), MAX_PRIORITY + 1),
        Error::RangeError {
            min: 0,
            max: MAX_PRIORITY
        }
    );
    let ep = cx.endpoint()?;
    check_err!(
        t.tcb.set_mc_priority(ep.cast(), 1),
        Error::InvalidCapability { index: 1 }
    );
    check_err!(
        t.tcb.invoke(&raw(Label::TcbSetMcPriority, &[1])),
        Error::TruncatedMessage
    );
    Ok(())
}

fn ssp_invalid_auth(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let ep = cx.endpoint()?;
    check_err!(
        t.tcb.set_sched_params(ep.cast(), 0, 10, t.sc, None),
        Error::InvalidCapability { index: 1 }
    );
    Ok(())
}

fn ssp_invalid_sc(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let ep = cx.endpoint()?;
    check_err!(
        t.tcb
            .set_sched_params(cx.root_tcb(), 0, 10, Some(ep.cast()), None),
        Error::InvalidCapability { index: 2 }
    );
    Ok(())
}

fn ssp_invalid_fault(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let sc = t.sc;
    let n = cx.notification()?;
    check_err!(
        t.tcb
            .set_sched_params(cx.root_tcb(), 0, 10, sc, Some(n.cast())),
        Error::InvalidCapability { index: 3 }
    );
    // validFaultHandler: Write and (Grant or GrantReply).
    let ep = cx.endpoint()?;
    let rw = cx.mint(ep, RW, 0)?;
    check_err!(
        t.tcb.set_sched_params(cx.root_tcb(), 0, 10, sc, Some(rw)),
        Error::InvalidCapability { index: 3 }
    );
    let wgr = cx.mint(ep, WRITE_GRANT_REPLY, 0)?;
    ok!(t.tcb.set_sched_params(cx.root_tcb(), 0, 10, sc, Some(wgr)));
    Ok(())
}

fn ssp_sc_in_use(cx: &mut Cx) -> Outcome {
    let a = idle_thread(cx)?;
    let b = thread::spawn(cx, Spawn::new(|_| {}, 0).sched(Sched::Passive).suspended())?;
    let other = cx.configured_sc(1000, 1000)?;
    // A already has a context: another one is refused.
    check_err!(
        a.tcb
            .set_sched_params(cx.root_tcb(), 0, 10, Some(other), None),
        Error::IllegalOperation
    );
    // A's context is bound to A: B cannot take it.
    check_err!(
        b.tcb.set_sched_params(cx.root_tcb(), 0, 10, a.sc, None),
        Error::IllegalOperation
    );
    // The same context again is no change.
    ok!(a.tcb.set_sched_params(cx.root_tcb(), 0, 10, a.sc, None));
    Ok(())
}

fn ssp_unbind_current(cx: &mut Cx) -> Outcome {
    check_err!(
        cx.root_tcb()
            .set_sched_params(cx.root_tcb(), MAX_PRIORITY, MAX_PRIORITY, None, None),
        Error::IllegalOperation
    );
    Ok(())
}

fn ssp_range(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let range = Error::RangeError {
        min: 0,
        max: MAX_PRIORITY,
    };
    check_err!(
        t.tcb
            .set_sched_params(cx.root_tcb(), MAX_PRIORITY + 1, 10, t.sc, None),
        range
    );
    check_err!(
        t.tcb
            .set_sched_params(cx.root_tcb(), 10, MAX_PRIORITY + 1, t.sc, None),
        range
    );
    Ok(())
}

fn ssp_truncated(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let root = cx.root_tcb().cptr();
    let sc = t.sc.map_or(septa_sel4::CPtr::NULL, |s| s.cptr());
    let two_caps = raw(Label::TcbSetSchedParams, &[0, 10]).cap(root).cap(sc);
    check_err!(t.tcb.invoke(&two_caps), Error::TruncatedMessage);
    let one_word = raw(Label::TcbSetSchedParams, &[0])
        .cap(root)
        .cap(sc)
        .cap(septa_sel4::CPtr::NULL);
    check_err!(t.tcb.invoke(&one_word), Error::TruncatedMessage);
    Ok(())
}

fn ssp_blocked(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(receiver, 0))?;
    settle(cx)?;
    // Blocked and now passive: an unconfigured context is not released.
    let Some(sc) = t.sc else {
        fail!("no scheduling context")
    };
    ok!(sc.unbind_object(t.tcb));
    let fresh = cx.sched_context()?;
    check_err!(
        t.tcb
            .set_sched_params(cx.root_tcb(), 0, 10, Some(fresh), None),
        Error::IllegalOperation
    );
    // A configured (released) one is accepted.
    ok!(t.tcb.set_sched_params(cx.root_tcb(), 0, 10, Some(sc), None));
    Ok(())
}

fn timeout_ep(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let ep = cx.endpoint()?;
    ok!(t.tcb.set_timeout_endpoint(Some(ep)));
    ok!(t.tcb.set_timeout_endpoint(None));
    let n = cx.notification()?;
    check_err!(
        t.tcb.set_timeout_endpoint(Some(n.cast())),
        Error::InvalidCapability { index: 1 }
    );
    let rw = cx.mint(ep, RW, 0)?;
    check_err!(
        t.tcb.set_timeout_endpoint(Some(rw)),
        Error::InvalidCapability { index: 1 }
    );
    check_err!(
        t.tcb.invoke(&Invocation::new(Label::TcbSetTimeoutEndpoint)),
        Error::TruncatedMessage
    );
    Ok(())
}

fn ipc_buffer_errors(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let frame = cx.frame()?;
    let va = space::ipc_buffer_vaddr();
    // checkValidIPCBuffer: a frame, not device memory, 1 KiB aligned.
    check_err!(
        t.tcb.set_ipc_buffer(va + 512, Some(frame)),
        Error::AlignmentError
    );
    let ep = cx.endpoint()?;
    check_err!(
        t.tcb.set_ipc_buffer(va, Some(ep.cast())),
        Error::IllegalOperation
    );
    ok!(t.tcb.set_ipc_buffer(va + 1024, Some(frame)));
    ok!(t.tcb.set_ipc_buffer(0, None));
    check_err!(
        t.tcb.invoke(&raw(Label::TcbSetIpcBuffer, &[va])),
        Error::TruncatedMessage
    );
    let no_words = Invocation::new(Label::TcbSetIpcBuffer).cap(frame.cptr());
    check_err!(t.tcb.invoke(&no_words), Error::TruncatedMessage);
    Ok(())
}

fn ipc_buffer_device(cx: &mut Cx) -> Outcome {
    let Some((dev, _, _)) = env::device_untyped() else {
        fail!("BootInfo lists no device untyped of a page or more");
    };
    let t = idle_thread(cx)?;
    let frame: Cap<SmallPage> = cx.retype_from(dev, ObjectType::SmallPage, 0)?;
    check_err!(
        t.tcb.set_ipc_buffer(space::ipc_buffer_vaddr(), Some(frame)),
        Error::IllegalOperation
    );
    Ok(())
}

fn no_ipc_buffer(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(mail(0));
        let (info, _) = syscall::wait(ep.cptr());
        post(1, info.length());
        post(2, septa_sel4::ipc_buffer::get_mr(3));
    }
    let ep = cx.endpoint()?;
    post(0, ep.bits());
    let t = thread::spawn(cx, Spawn::new(body, 0).suspended())?;
    ok!(t.tcb.set_ipc_buffer(0, None));
    ok!(t.tcb.resume());
    settle(cx)?;
    // Six words sent; without a receive buffer only the four in registers
    // arrive (copyMRs) and the length says so.
    crate::cases::util::load_words(&[1, 2, 3, 4, 5, 6]);
    ep.send(MessageInfo::new(0, 0, 0, 6));
    t.join()?;
    check_eq!((mail(1), mail(2)), (4, 4));
    Ok(())
}

fn configure_errors(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let ep = cx.endpoint()?;
    let vs = space::vspace(t.worker);
    let va = space::ipc_buffer_vaddr();
    let frame = space::ipc_frame(t.worker);
    let data = CNodeCapData(0);
    check_err!(
        t.tcb.configure(ep.cast(), data, vs, 0, va, Some(frame)),
        Error::IllegalOperation
    );
    check_err!(
        t.tcb
            .configure(cx.root_cnode(), data, ep.cast(), 0, va, Some(frame)),
        Error::IllegalOperation
    );
    // A VSpace without an ASID cannot be derived.
    let fresh: Cap<VSpace> = cx.obj(ObjectType::VSpace, 0)?;
    check_err!(
        t.tcb
            .configure(cx.root_cnode(), data, fresh, 0, va, Some(frame)),
        Error::IllegalOperation
    );
    check_err!(
        t.tcb
            .configure(cx.root_cnode(), data, vs, 0, va + 8, Some(frame)),
        Error::AlignmentError
    );
    let two_caps = raw(Label::TcbConfigure, &[0, 0, va])
        .cap(cx.root_cnode().cptr())
        .cap(vs.cptr());
    check_err!(t.tcb.invoke(&two_caps), Error::TruncatedMessage);
    let two_words = raw(Label::TcbConfigure, &[0, 0])
        .cap(cx.root_cnode().cptr())
        .cap(vs.cptr())
        .cap(frame.cptr());
    check_err!(t.tcb.invoke(&two_words), Error::TruncatedMessage);
    ok!(t
        .tcb
        .configure(cx.root_cnode(), data, vs, 0, va, Some(frame)));
    Ok(())
}

fn configure_guard(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        // In this thread's own CSpace: slot 1 a notification to signal,
        // slot 2 one to wait on for ever.
        let out: Cap<Notification> = Cap::from_bits(1);
        let wait: Cap<Notification> = Cap::from_bits(2);
        out.signal();
        wait.wait();
    }
    let radix = 2;
    let space_node = cx.cnode(radix)?;
    let n = cx.notification()?;
    let badged = cx.mint(n, ALL, 7)?;
    let w = cx.notification()?;
    let root = cx.root_cnode();
    let d = env::ROOT_DEPTH;
    // A CNode of four slots with a guard that fills the word: address k
    // names slot k.
    let guarded = CNodeCapData::new(0, u64::from(septa_abi::WORD_BITS) - radix);
    let to = |slot: u64| septa_sel4::CPtr::from_bits(slot);
    // The new CNode's own capability has no guard: its depth is its radix.
    let own = radix as u8;
    ok!(space_node.copy(to(1), own, root, badged.cptr(), d, ALL));
    ok!(space_node.copy(to(2), own, root, w.cptr(), d, ALL));
    let t = thread::spawn(cx, Spawn::new(body, 0).suspended())?;
    let va = space::ipc_buffer_vaddr();
    ok!(t.tcb.configure(
        space_node,
        guarded,
        space::vspace(t.worker),
        0,
        va,
        Some(space::ipc_frame(t.worker))
    ));
    ok!(t.tcb.resume());
    settle(cx)?;
    check_eq!(n.poll(), 7, "badge signalled from the thread's own CSpace");
    Ok(())
}

fn set_space(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let vs = space::vspace(t.worker);
    let data = CNodeCapData(0);
    let n = cx.notification()?;
    check_err!(
        t.tcb
            .set_space(Some(n.cast()), cx.root_cnode(), data, vs, 0),
        Error::InvalidCapability { index: 1 }
    );
    let ep = cx.endpoint()?;
    check_err!(
        t.tcb.set_space(None, ep.cast(), data, vs, 0),
        Error::IllegalOperation
    );
    check_err!(
        t.tcb.set_space(None, cx.root_cnode(), data, ep.cast(), 0),
        Error::IllegalOperation
    );
    let caps = Invocation::new(Label::TcbSetSpace)
        .cap(septa_sel4::CPtr::NULL)
        .cap(cx.root_cnode().cptr())
        .cap(vs.cptr());
    check_err!(t.tcb.invoke(&caps.clone().word(0)), Error::TruncatedMessage);
    let two_caps = raw(Label::TcbSetSpace, &[0, 0])
        .cap(septa_sel4::CPtr::NULL)
        .cap(cx.root_cnode().cptr());
    check_err!(t.tcb.invoke(&two_caps), Error::TruncatedMessage);
    let fault = cx.mint(ep, ALL, 1)?;
    ok!(t.tcb.set_space(Some(fault), cx.root_cnode(), data, vs, 0));
    Ok(())
}

fn bind_errors(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let n = cx.notification()?;
    ok!(t.tcb.bind_notification(n));
    let n2 = cx.notification()?;
    // Already bound.
    check_err!(t.tcb.bind_notification(n2), Error::IllegalOperation);
    let u = idle_thread(cx)?;
    // Notification bound elsewhere.
    check_err!(u.tcb.bind_notification(n), Error::IllegalOperation);
    // Not a notification.
    let ep = cx.endpoint()?;
    check_err!(u.tcb.bind_notification(ep.cast()), Error::IllegalOperation);
    // No Read right.
    let wo = cx.mint(n2, septa_abi::CapRights::new(false, false, false, true), 0)?;
    check_err!(u.tcb.bind_notification(wo), Error::IllegalOperation);
    check_err!(
        u.tcb.invoke(&Invocation::new(Label::TcbBindNotification)),
        Error::TruncatedMessage
    );
    // A notification with a waiter cannot be bound.
    fn waiter(_: u64) {
        let n: Cap<Notification> = Cap::from_bits(mail(0));
        n.wait();
    }
    let n3 = cx.notification()?;
    post(0, n3.bits());
    thread::spawn(cx, Spawn::new(waiter, 0))?;
    settle(cx)?;
    check_err!(u.tcb.bind_notification(n3), Error::IllegalOperation);
    Ok(())
}

fn unbind(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let n = cx.notification()?;
    ok!(t.tcb.bind_notification(n));
    ok!(t.tcb.unbind_notification());
    check_err!(t.tcb.unbind_notification(), Error::IllegalOperation);
    // Free again: another thread may bind it.
    let u = idle_thread(cx)?;
    ok!(u.tcb.bind_notification(n));
    Ok(())
}

fn tls_base(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    let base = 0x7777_0000;
    ok!(t.tcb.set_tls_base(base));
    let regs = ok!(t.tcb.read_registers(false, 0, TCB_REGISTER_COUNT as u64));
    check_eq!(regs.tpidr_el0, base, "TPIDR_EL0 (the TLS base)");
    check_err!(
        t.tcb.invoke(&Invocation::new(Label::TcbSetTlsBase)),
        Error::TruncatedMessage
    );
    Ok(())
}

fn set_flags(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    check_eq!(ok!(t.tcb.set_flags(0, TCB_FLAGS_MASK)), TCB_FLAGS_MASK);
    check_eq!(ok!(t.tcb.set_flags(TCB_FLAGS_MASK, 0)), 0);
    // Unknown flags are ignored.
    check_eq!(ok!(t.tcb.set_flags(0, u64::MAX)), TCB_FLAGS_MASK);
    check_eq!(ok!(t.tcb.set_flags(u64::MAX, 0)), 0);
    check_err!(
        t.tcb.invoke(&raw(Label::TcbSetFlags, &[0])),
        Error::TruncatedMessage
    );
    Ok(())
}

fn illegal(cx: &mut Cx) -> Outcome {
    let t = idle_thread(cx)?;
    check_err!(
        t.tcb.invoke(&raw(Label::CNodeRevoke, &[0, 0])),
        Error::IllegalOperation
    );
    check!(t.sc.is_some(), "thread has a context");
    Ok(())
}
