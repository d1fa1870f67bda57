//! Faults (src/api/faults.c, src/kernel/faulthandler.c, the aarch64 trap
//! paths of src/arch/arm/64/traps.S and c_traps.c): each kind delivered to
//! the fault endpoint with its exact message, and replies that restart the
//! thread (or do not).
//!
//! The ESR values are composed from the Arm architecture's syndrome fields
//! for the instructions in [`super::instr`]; the kernel passes ESR_EL2
//! through unchanged.

use septa_abi::kernel_config::PSTATE_USER;
use septa_abi::{fault as labels, Label, MessageInfo, TCB_REGISTER_COUNT};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::{ipc_buffer, syscall, CPtr, Cap, LookupFailure, VmAttributes};

use crate::cases::instr;
use crate::cases::untyped::root_guard_bits;
use crate::cases::util::{recv_fault, reply, settle, ALL, WRITE_GRANT_REPLY};
use crate::env::Cx;
use crate::report::{Failure, Outcome};
use crate::space::{self, rw};
use crate::thread::{self, mail, post, Spawn, Thread};
use crate::{check, check_eq, fail, needs, ok, Case};

pub const LABELS: &[Label] = &[];

pub const CASES: &[Case] = &[
    Case {
        name: "fault/vm-read-then-map-and-restart",
        run: vm_read,
    },
    Case {
        name: "fault/vm-write",
        run: vm_write,
    },
    Case {
        name: "fault/vm-prefetch",
        run: vm_prefetch,
    },
    Case {
        name: "fault/unknown-syscall-and-reply-registers",
        run: unknown_syscall,
    },
    Case {
        name: "fault/unknown-syscall-positive-number",
        run: unknown_syscall_positive,
    },
    Case {
        name: "fault/unknown-syscall-reply-label-stops-thread",
        run: unknown_syscall_stop,
    },
    Case {
        name: "fault/unknown-syscall-short-reply",
        run: unknown_syscall_short,
    },
    Case {
        name: "fault/user-exception-undefined-instruction",
        run: user_exception,
    },
    Case {
        name: "fault/user-exception-reply-label-stops-thread",
        run: user_exception_stop,
    },
    Case {
        name: "fault/vcpu-fault-breakpoint",
        run: vcpu_fault,
    },
    Case {
        name: "fault/cap-fault-invoked-cap",
        run: cap_fault_send,
    },
    Case {
        name: "fault/cap-fault-receive-phase",
        run: cap_fault_recv,
    },
    Case {
        name: "fault/cap-fault-extra-cap",
        run: cap_fault_extra,
    },
    Case {
        name: "fault/handler-with-grant-reply-only",
        run: grant_reply_handler,
    },
    Case {
        name: "fault/passive-handler-runs-on-faulters-context",
        run: passive_handler,
    },
    Case {
        name: "fault/without-handler-thread-stops",
        run: no_handler,
    },
];

/// Exception syndrome fields (Arm ARM, ESR_ELx).
pub(crate) mod esr {
    pub const EC_SHIFT: u64 = 26;
    /// 32-bit instruction.
    pub const IL: u64 = 1 << 25;
    pub const EC_IABT_LOWER: u64 = 0x20;
    pub const EC_DABT_LOWER: u64 = 0x24;
    pub const EC_BRK64: u64 = 0x3c;
    /// Instruction syndrome valid, 64-bit access, register, 64-bit register.
    pub const ISV: u64 = 1 << 24;
    pub const SAS_DOUBLEWORD: u64 = 3 << 22;
    pub const SRT_SHIFT: u64 = 16;
    pub const SF: u64 = 1 << 15;
    pub const WNR: u64 = 1 << 6;
    /// Translation fault at level 2 (the worker's level-2 table has no
    /// entry for the address).
    pub const FSC_TRANSLATION_L2: u64 = 0b00_0110;
    /// Translation fault at level 3 (a level-3 table without the page).
    pub const FSC_TRANSLATION_L3: u64 = 0b00_0111;
    /// Permission fault at level 3 (the page's mapping forbids the access).
    pub const FSC_PERMISSION_L3: u64 = 0b00_1111;
    /// An unknown-reason exception: `udf`, as the kernel passes it on.
    pub const UNKNOWN: u64 = IL;
}

/// The register `instr::load` and `instr::store` transfer (x9).
pub(crate) const SRT: u64 = 9;
/// An address no worker maps: inside the worker's first GiB but under no
/// level-2 entry.
const UNMAPPED: u64 = 0x1000_0000;

fn data_abort_esr(write: bool) -> u64 {
    data_abort(write, esr::FSC_TRANSLATION_L2)
}

/// The syndrome of `instr::load` (or `instr::store`) aborting with `fsc`.
pub(crate) fn data_abort(write: bool, fsc: u64) -> u64 {
    esr::EC_DABT_LOWER << esr::EC_SHIFT
        | esr::IL
        | esr::ISV
        | esr::SAS_DOUBLEWORD
        | SRT << esr::SRT_SHIFT
        | esr::SF
        | if write { esr::WNR } else { 0 }
        | fsc
}

/// A fault endpoint, a badged handler capability to give threads, and a
/// reply object to receive faults with.
pub(crate) type Handler = (Cap<Endpoint>, Cap<Endpoint>, Cap<Reply>);

/// A fault endpoint and a badged handler cap for threads.
pub(crate) fn fault_ep(cx: &mut Cx, badge: u64) -> Result<Handler, Failure> {
    let ep = cx.endpoint()?;
    let handler = cx.mint(ep, ALL, badge)?;
    let r = cx.reply()?;
    Ok((ep, handler, r))
}

pub(crate) fn expect_vm(f: Fault) -> Result<(u64, u64, bool, u64), Failure> {
    match f {
        Fault::VmFault {
            ip,
            addr,
            prefetch,
            fsr,
        } => Ok((ip, addr, prefetch, fsr)),
        other => fail!("expected a VM fault got {other:?}"),
    }
}

fn vm_read(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let (pc, v) = instr::load(UNMAPPED);
        post(1, pc);
        post(2, v + 1);
    }
    let (ep, handler, r) = fault_ep(cx, 0x61)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    let (f, badge) = recv_fault(ep, r);
    check_eq!(badge, 0x61, "badge");
    let (ip, addr, prefetch, fsr) = expect_vm(f)?;
    check_eq!(
        (addr, prefetch, fsr),
        (UNMAPPED, false, data_abort_esr(false)),
        "address, prefetch, FSR"
    );
    // Map a (zeroed) page there; the reply restarts the load.
    let frame = cx.frame()?;
    let pool = cx.pool();
    space::map_frame(
        cx,
        pool,
        space::vspace(t.worker),
        frame,
        UNMAPPED,
        rw(),
        VmAttributes::DEFAULT,
    )?;
    reply(r, 0, &[]);
    t.join()?;
    check_eq!(mail(1), ip, "faulting IP is the load");
    check_eq!(mail(2), 1, "value loaded after the restart (+1)");
    Ok(())
}

fn vm_write(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let pc = instr::store(UNMAPPED, 0x5eed);
        post(1, pc);
    }
    let (ep, handler, r) = fault_ep(cx, 0x62)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    let (f, _) = recv_fault(ep, r);
    let (ip, addr, prefetch, fsr) = expect_vm(f)?;
    check_eq!(
        (addr, prefetch, fsr),
        (UNMAPPED, false, data_abort_esr(true)),
        "address, prefetch, FSR"
    );
    let frame = cx.frame()?;
    let pool = cx.pool();
    space::map_frame(
        cx,
        pool,
        space::vspace(t.worker),
        frame,
        UNMAPPED,
        rw(),
        VmAttributes::DEFAULT,
    )?;
    reply(r, 0, &[]);
    t.join()?;
    check_eq!(mail(1), ip, "faulting IP is the store");
    Ok(())
}

fn vm_prefetch(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        instr::jump(UNMAPPED);
        post(1, 1);
    }
    let (ep, handler, r) = fault_ep(cx, 0x63)?;
    thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    let (f, _) = recv_fault(ep, r);
    let (ip, addr, prefetch, fsr) = expect_vm(f)?;
    let esr = esr::EC_IABT_LOWER << esr::EC_SHIFT | esr::IL | esr::FSC_TRANSLATION_L2;
    check_eq!(
        (ip, addr, prefetch, fsr),
        (UNMAPPED, UNMAPPED, true, esr),
        "IP, address, prefetch, FSR"
    );
    Ok(())
}

/// The syscall number the unknown-syscall case uses: below the debug calls
/// and with no benchmark calls configured.
const BOGUS_SYSCALL: i64 = -50;

pub(crate) fn svc_body(number: u64) {
    let (pc, sp, after) = instr::svc(number, [10, 11, 12, 13, 14, 15, 16]);
    post(1, pc);
    post(2, sp);
    for (i, x) in after.iter().enumerate() {
        post(3 + i, *x);
    }
    post(11, 1);
}

/// x0..x7, fault IP, SP, next PC, SPSR and number of an unknown syscall.
pub(crate) type SyscallFault = ([u64; 8], u64, u64, u64, u64, u64);

pub(crate) fn expect_unknown_syscall(f: Fault) -> Result<SyscallFault, Failure> {
    match f {
        Fault::UnknownSyscall {
            regs,
            fault_ip,
            sp,
            lr,
            spsr,
            syscall,
        } => Ok((regs, fault_ip, sp, lr, spsr, syscall)),
        other => fail!("expected an unknown-syscall fault got {other:?}"),
    }
}

fn unknown_syscall(cx: &mut Cx) -> Outcome {
    let (ep, handler, r) = fault_ep(cx, 0x64)?;
    let t = thread::spawn(
        cx,
        Spawn::new(svc_body, BOGUS_SYSCALL as u64).fault(handler),
    )?;
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!(
        (info.label(), info.length()),
        (labels::UNKNOWN_SYSCALL, labels::unknown_syscall::LENGTH)
    );
    let (regs, fault_ip, sp, lr, spsr, number) =
        expect_unknown_syscall(Fault::from_ipc_buffer(info))?;
    let nr = BOGUS_SYSCALL as u64;
    check_eq!(regs, [10, 11, 12, 13, 14, 15, 16, nr], "x0..x7");
    check_eq!(number, nr, "syscall number");
    check_eq!(lr, fault_ip + 4, "next PC");
    check_eq!(spsr & !0xf000_0000, PSTATE_USER, "SPSR (flags aside)");
    // Reply: new x0..x7, resume after the svc with the same SP and SPSR.
    let mut words = [0u64; 12];
    words[..8].copy_from_slice(&[0x1234, 1, 2, 3, 4, 5, 6, 7]);
    words[8] = fault_ip + 4;
    words[9] = sp;
    words[10] = fault_ip + 4;
    words[11] = spsr;
    reply(r, 0, &words);
    t.join()?;
    check_eq!(
        (mail(1), mail(2)),
        (fault_ip, sp),
        "IP and SP the thread saw"
    );
    let after: [u64; 8] = core::array::from_fn(|i| mail(3 + i));
    check_eq!(
        after,
        [0x1234, 1, 2, 3, 4, 5, 6, 7],
        "x0..x7 after the reply"
    );
    Ok(())
}

fn unknown_syscall_positive(cx: &mut Cx) -> Outcome {
    let (ep, handler, r) = fault_ep(cx, 0x65)?;
    let nr = 5u64;
    thread::spawn(cx, Spawn::new(svc_body, nr).fault(handler))?;
    let (f, _) = recv_fault(ep, r);
    let (regs, _, _, _, _, number) = expect_unknown_syscall(f)?;
    check_eq!((number, regs[7]), (nr, nr));
    Ok(())
}

fn unknown_syscall_stop(cx: &mut Cx) -> Outcome {
    let (ep, handler, r) = fault_ep(cx, 0x66)?;
    let t = thread::spawn(
        cx,
        Spawn::new(svc_body, BOGUS_SYSCALL as u64).fault(handler),
    )?;
    recv_fault(ep, r);
    // A non-zero label: handleFaultReply says no restart; the thread stays
    // inactive.
    reply(r, 1, &[]);
    settle(cx)?;
    check_eq!(mail(11), 0, "the thread ran on");
    check!(!t.finished(), "the thread finished");
    // Resumed, it executes the svc again: a second fault.
    ok!(t.tcb.resume());
    let (f, _) = recv_fault(ep, r);
    expect_unknown_syscall(f)?;
    Ok(())
}

fn unknown_syscall_short(cx: &mut Cx) -> Outcome {
    let (ep, handler, r) = fault_ep(cx, 0x6e)?;
    thread::spawn(
        cx,
        Spawn::new(svc_body, BOGUS_SYSCALL as u64).fault(handler),
    )?;
    recv_fault(ep, r);
    // One register in the reply: x0 is written, the fault IP is not, so
    // the restarted thread executes the svc again.
    reply(r, 0, &[0x5]);
    let (f, _) = recv_fault(ep, r);
    let (regs, ..) = expect_unknown_syscall(f)?;
    check_eq!(
        regs[..2],
        [0x5, 11],
        "x0 from the short reply, x1 as it was"
    );
    check_eq!(mail(11), 0, "the thread got past the svc");
    Ok(())
}

fn udf_body(_: u64) {
    let (pc, sp) = instr::udf();
    post(1, pc);
    post(2, sp);
    post(11, 1);
}

fn user_exception(cx: &mut Cx) -> Outcome {
    let (ep, handler, r) = fault_ep(cx, 0x67)?;
    let t = thread::spawn(cx, Spawn::new(udf_body, 0).fault(handler))?;
    let (info, badge) = syscall::recv(ep.cptr(), r);
    check_eq!(
        (info.label(), info.length(), badge),
        (labels::USER_EXCEPTION, labels::user_exception::LENGTH, 0x67)
    );
    let f = Fault::from_ipc_buffer(info);
    let Fault::UserException {
        fault_ip,
        sp,
        spsr,
        esr,
        code,
    } = f
    else {
        fail!("expected a user exception got {f:?}");
    };
    check_eq!((esr, code), (esr::UNKNOWN, 0), "ESR and code");
    check_eq!(spsr & !0xf000_0000, PSTATE_USER, "SPSR (flags aside)");
    // Resume after the udf.
    reply(r, 0, &[fault_ip + 4, sp, spsr]);
    t.join()?;
    check_eq!((mail(1), mail(2)), (fault_ip, sp), "IP and SP of the udf");
    Ok(())
}

fn user_exception_stop(cx: &mut Cx) -> Outcome {
    let (ep, handler, r) = fault_ep(cx, 0x68)?;
    let t = thread::spawn(cx, Spawn::new(udf_body, 0).fault(handler))?;
    let (f, _) = recv_fault(ep, r);
    check!(
        matches!(f, Fault::UserException { .. }),
        "expected a user exception got {f:?}"
    );
    reply(r, 7, &[]);
    settle(cx)?;
    check_eq!(mail(11), 0, "the thread ran on");
    ok!(t.tcb.resume());
    let (f, _) = recv_fault(ep, r);
    check!(
        matches!(f, Fault::UserException { .. }),
        "after resume: {f:?}"
    );
    Ok(())
}

/// Moves a thread blocked on a fault past its faulting instruction.
pub(crate) fn skip_instruction(t: &Thread) -> Outcome {
    let n = TCB_REGISTER_COUNT as u64;
    let mut regs = ok!(t.tcb.read_registers(false, 0, n));
    regs.pc += 4;
    ok!(t.tcb.write_registers(false, 0, n, &regs));
    Ok(())
}

fn vcpu_fault(cx: &mut Cx) -> Outcome {
    // With the hardware debug API a `brk` is a debug exception instead
    // (fault/breakpoint-instruction-is-a-debug-exception).
    needs!(
        !septa_abi::CONFIG.hardware_debug_api(),
        "a configuration without the hardware debug API"
    );
    fn body(_: u64) {
        let pc = instr::brk();
        post(1, pc);
    }
    let (ep, handler, r) = fault_ep(cx, 0x69)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!((info.label(), info.length()), (labels::VCPU_FAULT, 1));
    // A hyp kernel passes EL0 traps other than aborts, SVC/HVC and unknown
    // instructions to the handler as a VCPU fault with the syndrome.
    let hsr = esr::EC_BRK64 << esr::EC_SHIFT | esr::IL | instr::BRK_IMM;
    check_eq!(Fault::from_ipc_buffer(info), Fault::VcpuFault { hsr });
    skip_instruction(&t)?;
    reply(r, 0, &[]);
    t.join()?;
    Ok(())
}

/// Calls the cptr in mail 0 through a raw svc (so the faulting IP is known),
/// with the extra cap in mail 5 if non-zero.
fn bad_call(_: u64) {
    let extra = mail(5);
    let info = if extra != 0 {
        ipc_buffer::set_cap(0, CPtr::from_bits(extra));
        MessageInfo::new(0, 0, 1, 0)
    } else {
        MessageInfo::new(0, 0, 0, 0)
    };
    let call = septa_abi::syscall::CALL as u64;
    let (pc, _, _) = instr::svc(call, [mail(0), info.0, 0, 0, 0, 0, 0]);
    post(1, pc);
    post(11, 1);
}

/// The lookup failure of an address with a bit set in the root CNode's
/// 47-bit zero guard.
fn bad_guard() -> LookupFailure {
    LookupFailure::GuardMismatch {
        bits_left: 64,
        guard_found: 0,
        bits_found: root_guard_bits(),
    }
}

fn cap_fault_send(cx: &mut Cx) -> Outcome {
    let bad = 1u64 << 63;
    post(0, bad);
    let (ep, handler, r) = fault_ep(cx, 0x6a)?;
    let t = thread::spawn(cx, Spawn::new(bad_call, 0).fault(handler))?;
    let (info, _) = syscall::recv(ep.cptr(), r);
    check_eq!(info.label(), labels::CAP_FAULT);
    let f = Fault::from_ipc_buffer(info);
    let Fault::CapFault {
        ip,
        addr,
        in_recv_phase,
        failure,
    } = f
    else {
        fail!("expected a cap fault got {f:?}");
    };
    check_eq!((addr, in_recv_phase, failure), (bad, false, bad_guard()));
    // Point x0 at a notification and reply: the call is retried and now
    // signals it.
    let n = cx.notification()?;
    let nb = cx.mint(n, ALL, 0x3)?;
    let count = TCB_REGISTER_COUNT as u64;
    let mut regs = ok!(t.tcb.read_registers(false, 0, count));
    check_eq!(regs.pc, ip, "the thread's PC is the faulting svc");
    regs.x0 = nb.bits();
    ok!(t.tcb.write_registers(false, 0, count, &regs));
    reply(r, 0, &[]);
    t.join()?;
    check_eq!(mail(1), ip);
    check_eq!(n.poll(), 0x3, "the retried call signalled");
    Ok(())
}

fn cap_fault_recv(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        syscall::wait(CPtr::from_bits(mail(0)));
    }
    let bad = 1u64 << 62;
    post(0, bad);
    let (ep, handler, r) = fault_ep(cx, 0x6b)?;
    thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    let (f, _) = recv_fault(ep, r);
    let Fault::CapFault {
        addr,
        in_recv_phase,
        failure,
        ..
    } = f
    else {
        fail!("expected a cap fault got {f:?}");
    };
    check_eq!((addr, in_recv_phase, failure), (bad, true, bad_guard()));
    Ok(())
}

fn cap_fault_extra(cx: &mut Cx) -> Outcome {
    let target = cx.endpoint()?;
    let bad = 1u64 << 61;
    post(0, target.bits());
    post(5, bad);
    let (ep, handler, r) = fault_ep(cx, 0x6c)?;
    thread::spawn(cx, Spawn::new(bad_call, 0).fault(handler))?;
    let (f, _) = recv_fault(ep, r);
    // lookupExtraCaps: the address of the extra cap that failed.
    let Fault::CapFault {
        addr,
        in_recv_phase,
        failure,
        ..
    } = f
    else {
        fail!("expected a cap fault got {f:?}");
    };
    check_eq!((addr, in_recv_phase, failure), (bad, false, bad_guard()));
    Ok(())
}

fn grant_reply_handler(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let handler = cx.mint(ep, WRITE_GRANT_REPLY, 0x6d)?;
    let r = cx.reply()?;
    let t = thread::spawn(cx, Spawn::new(udf_body, 0).fault(handler))?;
    let (f, badge) = recv_fault(ep, r);
    check_eq!(badge, 0x6d);
    let Fault::UserException {
        fault_ip, sp, spsr, ..
    } = f
    else {
        fail!("expected a user exception got {f:?}");
    };
    // GrantReply is enough for the reply to reach the faulting thread.
    reply(r, 0, &[fault_ip + 4, sp, spsr]);
    t.join()?;
    Ok(())
}

fn passive_handler(cx: &mut Cx) -> Outcome {
    /// Handles user exceptions on the endpoint in mail 20 with the reply in
    /// mail 21: counts them in mail 22 and resumes after the instruction.
    fn handler(_: u64) {
        let ep: Cap<Endpoint> = Cap::from_bits(mail(20));
        let r: Cap<Reply> = Cap::from_bits(mail(21));
        let (mut info, _) = syscall::recv(ep.cptr(), r);
        loop {
            if let Fault::UserException {
                fault_ip, sp, spsr, ..
            } = Fault::from_ipc_buffer(info)
            {
                post(22, mail(22) + 1);
                crate::cases::util::load_words(&[fault_ip + 4, sp, spsr]);
                info = syscall::reply_recv(ep.cptr(), MessageInfo::new(0, 0, 0, 3), r).0;
            } else {
                info = syscall::recv(ep.cptr(), r).0;
            }
        }
    }
    let (ep, fault, r) = fault_ep(cx, 0x6f)?;
    post(20, ep.bits());
    post(21, r.bits());
    let h = thread::spawn(cx, Spawn::new(handler, 0).prio(150))?;
    settle(cx)?;
    // The handler has no context of its own from here on: only the faulting
    // thread's, donated with the fault message, lets it run.
    let Some(hsc) = h.sc else { fail!("no context") };
    ok!(hsc.unbind_object(h.tcb));
    let t = thread::spawn(cx, Spawn::new(udf_body, 0).fault(fault))?;
    t.join()?;
    check_eq!(
        (mail(22), mail(11)),
        (1, 1),
        "faults handled, thread finished"
    );
    Ok(())
}

fn no_handler(cx: &mut Cx) -> Outcome {
    let t = thread::spawn(cx, Spawn::new(udf_body, 0))?;
    settle(cx)?;
    // No fault handler: the kernel makes the thread inactive.
    check_eq!(mail(11), 0, "the thread ran on");
    check!(!t.finished(), "the thread finished");
    Ok(())
}
