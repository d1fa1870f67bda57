//! # The system-call layer: every way into the kernel from a thread
//!
//! The arch code saves the current thread's registers into its TCB and calls
//! one of the entry points here; when it returns, the arch code resumes
//! whatever [`crate::sched::cur_thread`] is then (or idles). The entry
//! points are seL4's `handleSyscall`, `handleUnknownSyscall`,
//! `handleInterruptEntry`, `handleUserLevelFault`, `handleVMFaultEvent` and
//! `handleVCPUFault`:
//!
//! - a system call (x7 = number) is charged the time since the last entry;
//!   if the thread's budget is spent it is left to retry later. Send, NBSend
//!   and Call *invoke* the cap in x0 ([`handle_invocation`]): look it and
//!   the extra caps up, gather the message, dispatch by cap type, and
//!   reply (errors in the label, details in the message registers). The
//!   receive calls ([`handle_recv`]) wait on an endpoint or notification.
//!   MCS's combined calls (ReplyRecv, NBSendRecv, NBSendWait) first invoke
//!   (a reply object, or a send) and then receive;
//! - numbers outside the MCS range are the debug calls or an
//!   UnknownSyscall fault;
//! - interrupts: the timer feeds the scheduler, other lines go to their
//!   handlers (`object::irq::handle_interrupt`);
//! - exceptions become faults sent to the thread's fault handler.
//!
//! Each entry ends with `schedule` and `activate_thread`. Call and ReplyRecv
//! first try the fast path ([`crate::fastpath`]), which does the whole
//! exchange itself when its result is certain; [`handle_syscall_slow`] is
//! the general path it must agree with.

use crate::cap::{Cap, RawCap, EP_GRANT, EP_GRANT_REPLY, EP_RECEIVE, EP_SEND};
use crate::context::Reg;
use crate::cspace::{lookup_cap, lookup_raw};
use crate::cte::SlotRef;
use crate::error::{Exception, LookupFault, Preempted, SyscallError};
use crate::fault::{handle_fault, Fault};
use crate::invocation::{Invocation, ReplyWords};
use crate::ipc::{self, get_mr, lookup_extra_caps, lookup_ipc_buffer, message_info};
use crate::machine;
use crate::object::endpoint::{self, Ep};
use crate::object::notification::{self, Ntfn};
use crate::object::reply::ReplyObj;
use crate::object::sched_context::Sc;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::object::{domain, irq, sched_control, smc, vcpu, vspace};
use crate::sched;
use crate::untyped::{decode_untyped_invocation, NewObjects};
use crate::user_error;
use septa_abi::ipc_buffer::MSG_MAX_LENGTH;
use septa_abi::{syscall as sys, ObjectType, CONFIG};

/// The MCS system calls, -1 (Call) down to -11 (Yield).
pub const SYSCALL_MIN: i64 = sys::YIELD;
pub const SYSCALL_MAX: i64 = sys::CALL;

/// Longest name DebugNameThread accepts, including its NUL (seL4:
/// the message area of the IPC buffer).
const NAME_MAX: usize = MSG_MAX_LENGTH * 8;

/// A system call as the host tests make it: the number is x7. Call,
/// ReplyRecv, Recv and Wait try the fast path first ([`crate::fastpath`]),
/// and in the benchmark configuration Send too (the signal fast path).
/// The target's entries (`svc`, and a guest's `hvc`) do the same in
/// `arch::aarch64::trap` (`handle_fast_syscall`, `handle_svc`), where the
/// fast paths are inline once; this copy is not in the kernel.
#[cfg(not(target_os = "none"))]
pub fn handle_syscall(number: i64) {
    let done = match number {
        sys::CALL => crate::fastpath::call(sched::cur_thread()),
        sys::REPLY_RECV => crate::fastpath::reply_recv(sched::cur_thread()),
        sys::SEND if CONFIG.signal_fastpath() => crate::fastpath::signal(sched::cur_thread()),
        sys::RECV => crate::fastpath::recv_out_of_line(sched::cur_thread(), true),
        sys::WAIT => crate::fastpath::recv_out_of_line(sched::cur_thread(), false),
        _ => false,
    };
    if !done {
        handle_syscall_slow(number);
    }
}

/// The general system-call path (seL4's `slowpath`), the reference the
/// fast path must agree with.
pub fn handle_syscall_slow(number: i64) {
    crate::preempt::reset_work_units();
    if (SYSCALL_MIN..=SYSCALL_MAX).contains(&number) {
        handle_mcs_syscall(number);
    } else {
        handle_unknown_syscall(number as u64);
    }
}

/// Runs `f` if the current thread still has budget for this entry (seL4's
/// `MCS_DO_IF_BUDGET`), then picks the next thread.
fn if_budget_then_schedule(f: impl FnOnce()) {
    sched::update_timestamp();
    if sched::check_budget_restart() {
        f();
    }
    sched::schedule();
    sched::activate_thread();
}

fn handle_mcs_syscall(number: i64) {
    if_budget_then_schedule(|| {
        let cur = sched::cur_thread();
        let x0 = cur.reg(Reg::CAP);
        let preempted = match number {
            sys::SEND => handle_invocation(false, true, false, false, x0),
            sys::NB_SEND => handle_invocation(false, false, false, false, x0),
            sys::CALL => handle_invocation(true, true, true, false, x0),
            sys::RECV => {
                handle_recv(true, true);
                Ok(())
            }
            sys::WAIT => {
                handle_recv(true, false);
                Ok(())
            }
            sys::NB_WAIT => {
                handle_recv(false, false);
                Ok(())
            }
            sys::NB_RECV => {
                handle_recv(false, true);
                Ok(())
            }
            sys::REPLY_RECV => handle_invocation(false, false, true, true, cur.reg(Reg::REPLY))
                .map(|()| handle_recv(true, true)),
            sys::NB_SEND_RECV => {
                handle_invocation(false, false, true, true, cur.reg(Reg::NB_SEND_RECV_DEST))
                    .map(|()| handle_recv(true, true))
            }
            sys::NB_SEND_WAIT => handle_invocation(false, false, true, true, cur.reg(Reg::REPLY))
                .map(|()| handle_recv(true, false)),
            sys::YIELD => {
                handle_yield();
                Ok(())
            }
            _ => Ok(()),
        };
        if preempted.is_err() {
            mcs_preemption_point();
            check_interrupt();
        }
    });
}

/// What the kernel does after a preempted operation, before taking the
/// interrupt (seL4's `mcsPreemptionPoint`).
fn mcs_preemption_point() {
    let cur = sched::cur_thread();
    if sched::is_schedulable(cur) {
        sched::check_budget();
    } else if sched::cur_sc().is_some_and(|sc| sc.is_active()) {
        let consumed = sched::with(|s| s.consumed.get());
        sched::charge_budget(consumed, false);
    } else {
        sched::with(|s| s.consumed.set(0));
    }
}

/// The preemption check of long operations (registered with
/// `preempt::set_preemption_check`): the budget of the current SC ran out,
/// or an interrupt is pending.
pub fn preemption_check() -> bool {
    sched::update_timestamp();
    let consumed = sched::with(|s| s.consumed.get());
    let budget_ok =
        sched::cur_sc().is_some_and(|sc| sc.is_active() && sc.refill_sufficient(consumed));
    !budget_ok || machine::irq_pending() || sched::cur_domain_expired()
}

/// Takes the pending interrupt, if any, and handles it.
fn check_interrupt() {
    if let Some(irq) = machine::irq_acknowledge() {
        handle_irq(irq);
    }
}

/// One acknowledged interrupt: the kernel timer marks the timer for
/// reprogramming; the VGIC maintenance and virtual timer PPIs go to the
/// VCPU code and are then ended; any other line is masked, ended and
/// handed to its handler (which signals a notification).
pub fn handle_irq(irq: machine::Irq) {
    if irq == machine::TIMER_IRQ {
        machine::timer_ack();
        machine::irq_eoi(irq);
        sched::set_reprogram();
    } else if irq::irq_state(irq as u64) == Some(irq::IrqState::Reserved) {
        vcpu::handle_reserved_irq(irq);
        machine::irq_eoi(irq);
    } else {
        // Masked until user level acknowledges it through its handler cap.
        machine::irq_mask(irq);
        machine::irq_eoi(irq);
        irq::deliver(irq);
    }
}

/// Entry for an interrupt from a thread or the idle loop (seL4's
/// `handleInterruptEntry`): [`handle_interrupt_entry_slow`], with the
/// interrupt fast path ([`fastpath::interrupt`]) for a signal that wakes a
/// thread above the interrupted one, taken when the budget check would let
/// the current thread go on and change nothing. Returns whether the fast
/// path was taken (the current thread is then a woken one, never idle).
///
/// Inline in the interrupt handler (`arch::aarch64::trap::handle_irq`, one
/// for the thread and the idle entries): out of line, the call and the
/// frame cost the irq figure 14.5 instructions.
#[inline(always)]
pub fn handle_interrupt_entry() -> bool {
    sched::update_timestamp();
    if !sched::budget_lets_current_go_on() {
        sched::check_budget();
        check_interrupt();
    } else if let Some(irq) = machine::irq_acknowledge() {
        if crate::fastpath::interrupt(irq) {
            return true;
        }
        handle_irq(irq);
    }
    sched::schedule();
    sched::activate_thread();
    false
}

/// [`handle_interrupt_entry`] without the fast path (seL4's
/// `handleInterruptEntry`; host tests compare the two).
#[cfg(test)]
pub fn handle_interrupt_entry_slow() {
    sched::update_timestamp();
    sched::check_budget();
    check_interrupt();
    sched::schedule();
    sched::activate_thread();
}

/// Entry for an exception the thread cannot handle itself: an undefined
/// instruction (seL4's `handleUserLevelFault`).
pub fn handle_user_level_fault(number: u64, code: u64) {
    if_budget_then_schedule(|| {
        handle_fault(sched::cur_thread(), Fault::UserException { number, code })
    });
}

/// Entry for an abort (seL4's `handleVMFaultEvent`): `address` is the
/// faulting data address, or for an instruction abort the pc; a guest's
/// is reported as the guest-physical address its stage 1 maps it to.
pub fn handle_vm_fault(address: u64, fsr: u64, instruction: bool) {
    if_budget_then_schedule(|| {
        handle_fault(
            sched::cur_thread(),
            Fault::Vm {
                address: vcpu::fault_address(address),
                fsr,
                instruction,
            },
        )
    });
}

/// ESR of an undefined instruction (EC 0, IL 1): a UserException rather
/// than a VCPU fault.
pub const UNKNOWN_FAULT: u64 = 0x0200_0000;

/// Entry for any other lower-EL exception in a hypervisor build (seL4's
/// `handleVCPUFault`): with the hardware debug API a debug exception
/// (breakpoint, watchpoint, single step, `brk`) becomes a DebugException,
/// an unknown instruction a UserException, and anything else, VCPU or not,
/// a VCPUFault carrying the syndrome. `far` is FAR_EL2 (a watchpoint's
/// data address).
pub fn handle_vcpu_fault(hsr: u64, far: u64) {
    if CONFIG.hardware_debug_api() && tcb::debug::is_debug_fault(hsr) {
        if_budget_then_schedule(|| {
            let cur = sched::cur_thread();
            if let Some(f) = tcb::debug::debug_exception(cur, hsr, far) {
                handle_fault(cur, f);
            }
        });
        return;
    }
    if hsr == UNKNOWN_FAULT {
        handle_user_level_fault(hsr, 0);
        return;
    }
    if_budget_then_schedule(|| handle_fault(sched::cur_thread(), Fault::Vcpu { hsr }));
}

// ---------------------------------------------------------------------------
// Invocations.

/// Invokes the cap at `cptr` with the current thread's message (seL4's
/// `handleInvocation`). Lookup failures become cap faults (if the call
/// blocks); decoder errors become error replies (if it is a Call).
fn handle_invocation(
    is_call: bool,
    is_blocking: bool,
    can_donate: bool,
    first_phase: bool,
    cptr: u64,
) -> Result<(), Preempted> {
    let thread = sched::cur_thread();
    let info = message_info(thread.reg(Reg::MSG_INFO));
    let (raw, slot) = match lookup_raw(thread.slot(tcb::CTABLE).raw_cap(), cptr) {
        Ok(cs) => cs,
        Err(lookup) => {
            if CONFIG.printing() {
                user_error::lookup_failed(thread, cptr, false);
            }
            if is_blocking {
                handle_fault(
                    thread,
                    Fault::Cap {
                        address: cptr,
                        in_receive_phase: false,
                        lookup,
                    },
                );
            }
            return Ok(());
        }
    };
    let ctx = Dispatch {
        thread,
        is_call,
        is_blocking,
        can_donate,
        first_phase,
    };
    // IPC caps (the hot path) need neither the message words nor a reply
    // buffer: the transfer reads the sender's registers itself. Their
    // fields are read from the stored cap, and the IPC buffer only matters
    // when the message names extra caps, which must be looked up (and may
    // fault) as for any invocation.
    if let Some(ipc_cap) = IpcCap::from_raw(raw) {
        if info.extra_caps() != 0 {
            let buffer = lookup_ipc_buffer(false, thread);
            if let Err(f) = lookup_extra_caps(thread, buffer, info) {
                if CONFIG.printing() {
                    user_error::lookup_failed(thread, cptr, true);
                }
                if is_blocking {
                    handle_fault(thread, f);
                }
                return Ok(());
            }
        }
        // As in seL4, the caller is in Restart while its invocation runs
        // (see `invoke_object`).
        sched::set_thread_state(thread, ThreadState::Restart);
        let result = decode_ipc_invocation(ipc_cap, &ctx);
        if CONFIG.printing() {
            if let Err(Exception::Syscall(e)) = &result {
                user_error::invocation_failed(thread, &raw.decode(), info.label(), e);
            }
        }
        return finish_invocation(thread, is_call, result, &[]);
    }
    let buffer = lookup_ipc_buffer(false, thread);
    let extra = match lookup_extra_caps(thread, buffer, info) {
        Ok(e) => e,
        Err(f) => {
            if CONFIG.printing() {
                user_error::lookup_failed(thread, cptr, true);
            }
            if is_blocking {
                handle_fault(thread, f);
            }
            return Ok(());
        }
    };
    invoke_object(thread, info, buffer, &extra, &raw.decode(), slot, &ctx)
}

/// The rest of [`handle_invocation`] for caps that are not IPC caps:
/// gathers the message words and runs the type's decoder. Kept out of line
/// so the IPC path does not pay for the large buffers on its stack.
#[inline(never)]
fn invoke_object(
    thread: Tcb,
    info: septa_abi::MessageInfo,
    buffer: Option<u64>,
    extra: &ipc::ExtraCaps,
    cap: &Cap,
    slot: SlotRef,
    ctx: &Dispatch,
) -> Result<(), Preempted> {
    let mut length = info.length() as usize;
    if length > ipc::N_MSG_REGISTERS && buffer.is_none() {
        // Without a buffer only the register words exist; seL4 truncates
        // rather than failing, since not every caller can take an error.
        length = ipc::N_MSG_REGISTERS;
    }
    // Only the message's words are written (zeroing the whole buffer on
    // every invocation cost about 300 instructions).
    let mut args = [core::mem::MaybeUninit::<u64>::uninit(); MSG_MAX_LENGTH];
    let length = length.min(MSG_MAX_LENGTH);
    for (i, a) in args.iter_mut().enumerate().take(length) {
        a.write(get_mr(thread, buffer, i));
    }
    // SAFETY: the loop above initialised the first `length` words, and
    // `MaybeUninit<u64>` has `u64`'s layout.
    let args = unsafe { core::slice::from_raw_parts(args.as_ptr().cast::<u64>(), length) };
    let (extra_slots, n_extra) = extra.to_array();
    let inv = Invocation::new(info.label(), args, &extra_slots[..n_extra]);
    let mut reply = ReplyWords::default();

    // As in seL4, the caller is in Restart while its invocation runs: a
    // preempted operation is re-executed, and an operation that blocks or
    // stops the caller changes the state away from Restart.
    sched::set_thread_state(thread, ThreadState::Restart);
    let result = decode_invocation(&inv, cap, slot, ctx, &mut reply);
    if CONFIG.printing() {
        if let Err(Exception::Syscall(e)) = &result {
            user_error::invocation_failed(thread, cap, info.label(), e);
        }
    }
    finish_invocation(thread, ctx.is_call, result, reply.words())
}

/// The caller's side of an invocation's outcome (seL4's tail of
/// `handleInvocation`): an error reply, the reply words, back to Running.
fn finish_invocation(
    thread: Tcb,
    is_call: bool,
    result: Result<(), Exception>,
    reply: &[u64],
) -> Result<(), Preempted> {
    match result {
        Err(Exception::Preempted) => Err(Preempted),
        Err(Exception::Syscall(e)) => {
            if thread.state() == ThreadState::Restart {
                sched::set_thread_state(thread, ThreadState::Running);
            }
            if is_call {
                ipc::reply_from_kernel_error(thread, &e);
            }
            Ok(())
        }
        Ok(()) => {
            if thread.state() == ThreadState::Restart {
                if is_call {
                    ipc::reply_from_kernel_words(thread, reply);
                }
                sched::set_thread_state(thread, ThreadState::Running);
            }
            Ok(())
        }
    }
}

/// Endpoint, notification and reply caps, as the invocation needs them:
/// invoked without the message words, which the transfer reads from the
/// sender itself.
#[derive(Clone, Copy, Debug)]
enum IpcCap {
    /// Address, badge, rights (`cap::EP_*` bits).
    Endpoint(u64, u64, u64),
    Notification(u64, u64, u64),
    /// Address, can grant.
    Reply(u64, bool),
}

impl IpcCap {
    #[inline(always)]
    fn from_raw(raw: RawCap) -> Option<IpcCap> {
        if let Some((p, b, r)) = raw.as_endpoint() {
            Some(IpcCap::Endpoint(p, b, r))
        } else if let Some((p, b, r)) = raw.as_notification() {
            Some(IpcCap::Notification(p, b, r))
        } else {
            raw.as_reply().map(|(p, g)| IpcCap::Reply(p, g))
        }
    }
}

/// The IPC caps' part of [`decode_invocation`].
fn decode_ipc_invocation(cap: IpcCap, d: &Dispatch) -> Result<(), Exception> {
    match cap {
        IpcCap::Endpoint(paddr, badge, rights) => {
            if rights & EP_SEND == 0 {
                return invalid_cap0();
            }
            endpoint::send_ipc(
                d.is_blocking,
                d.is_call,
                badge,
                rights & EP_GRANT != 0,
                rights & EP_GRANT_REPLY != 0,
                d.can_donate,
                d.thread,
                Ep::new(paddr),
            );
            Ok(())
        }
        IpcCap::Notification(paddr, badge, rights) => {
            if rights & EP_SEND == 0 {
                return invalid_cap0();
            }
            notification::send_signal(paddr, badge);
            Ok(())
        }
        IpcCap::Reply(paddr, can_grant) => {
            ipc::do_reply_transfer(d.thread, ReplyObj::new(paddr), can_grant);
            Ok(())
        }
    }
}

/// How the cap is being invoked.
struct Dispatch {
    thread: Tcb,
    is_call: bool,
    is_blocking: bool,
    can_donate: bool,
    /// The send phase of ReplyRecv, NBSendRecv or NBSendWait: only IPC
    /// caps and caps whose invocation cannot block or preempt are allowed.
    first_phase: bool,
}

fn invalid_cap0() -> Result<(), Exception> {
    Err(SyscallError::InvalidCapability { index: 0 }.into())
}

/// Dispatches an invocation by the type of the invoked cap (seL4's
/// `decodeInvocation`).
fn decode_invocation(
    inv: &Invocation,
    cap: &Cap,
    slot: SlotRef,
    d: &Dispatch,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    match *cap {
        Cap::Frame { .. }
        | Cap::PageTable { .. }
        | Cap::VSpace { .. }
        | Cap::AsidControl
        | Cap::AsidPool { .. } => vspace::decode_invocation(inv, cap, slot, reply),
        Cap::Vcpu { .. } => vcpu::decode_invocation(inv, cap, reply),
        // Any invocation of an SGI signal cap raises its SGI.
        Cap::SgiSignal { .. } => irq::decode_sgi_signal_invocation(cap),
        Cap::Smc { .. } => smc::decode_invocation(inv, cap, reply),
        Cap::Null | Cap::Zombie { .. } => invalid_cap0(),
        // `handle_invocation` invokes IPC caps from the stored cap without
        // coming here.
        Cap::Endpoint { .. } | Cap::Notification { .. } | Cap::Reply { .. } => {
            debug_assert!(false, "decode_invocation on an IPC cap");
            invalid_cap0()
        }
        Cap::Tcb { .. } => {
            if d.first_phase {
                return invalid_cap0();
            }
            tcb::invoke::decode_invocation(inv, cap, slot, reply)
        }
        Cap::Domain => {
            if d.first_phase {
                return invalid_cap0();
            }
            domain::decode_invocation(inv)
        }
        Cap::CNode { .. } => {
            if d.first_phase {
                return invalid_cap0();
            }
            crate::cnode::decode_cnode_invocation(inv, cap)
        }
        Cap::Untyped { .. } => {
            decode_untyped_invocation(inv, slot, cap).map(|new| init_new_objects(&new))
        }
        Cap::IrqControl => irq::decode_irq_control_invocation(inv, slot, reply),
        Cap::IrqHandler { .. } => irq::decode_irq_handler_invocation(inv, cap, slot, reply),
        Cap::SchedControl { .. } => {
            if d.first_phase {
                return invalid_cap0();
            }
            sched_control::decode_invocation(inv, cap)
        }
        Cap::SchedContext { paddr, .. } => {
            if d.first_phase {
                return invalid_cap0();
            }
            crate::object::sched_context::decode_invocation(inv, Sc::new(paddr), reply)
        }
    }
}

/// The per-type set-up of objects a Retype created (what seL4's
/// `createObject` does beyond zeroing): TCBs get their initial SPSR and
/// join the debug list; VCPUs their initial SCTLR and vGIC control; frames
/// are cleaned to the point of coherency and translation tables to where
/// the table walker sees them. The objects lie back to back, so the
/// cleaning is one range over all of them (the same cache lines as one
/// range per object).
pub fn init_new_objects(new: &NewObjects) {
    let clean = match new.object_type {
        ObjectType::Tcb => {
            new.paddrs().for_each(tcb::init_new);
            false
        }
        ObjectType::Vcpu => {
            new.paddrs().for_each(vcpu::init_new);
            false
        }
        ObjectType::SmallPage | ObjectType::LargePage | ObjectType::HugePage => !new.is_device,
        ObjectType::PageTable | ObjectType::VSpace => true,
        _ => false,
    };
    if clean {
        machine::clean_data(new.first_paddr, new.count << new.object_size_bits);
    }
}

// ---------------------------------------------------------------------------
// Receiving.

/// The reply object named by x6 for Recv-like calls (seL4's `lookupReply`),
/// in the CSpace whose root is `root`.
fn lookup_reply(thread: Tcb, root: RawCap) -> Result<ReplyObj, Fault> {
    let cptr = thread.reg(Reg::REPLY);
    let fault = |lookup| Fault::Cap {
        address: cptr,
        in_receive_phase: true,
        lookup,
    };
    match lookup_raw(root, cptr) {
        Ok((raw, _)) => match raw.as_reply() {
            Some((paddr, _)) => Ok(ReplyObj::new(paddr)),
            None => Err(fault(LookupFault::MissingCapability { bits_left: 0 })),
        },
        Err(lf) => Err(fault(lf)),
    }
}

/// Receives on the endpoint or notification in x0 (seL4's `handleRecv`).
/// `can_reply` takes a reply object from x6.
fn handle_recv(is_blocking: bool, can_reply: bool) {
    let thread = sched::cur_thread();
    let cptr = thread.reg(Reg::CAP);
    let missing = Fault::Cap {
        address: cptr,
        in_receive_phase: true,
        lookup: LookupFault::MissingCapability { bits_left: 0 },
    };
    let root = thread.slot(tcb::CTABLE).raw_cap();
    let raw = match lookup_raw(root, cptr) {
        Ok((raw, _)) => raw,
        Err(lookup) => {
            handle_fault(
                thread,
                Fault::Cap {
                    address: cptr,
                    in_receive_phase: true,
                    lookup,
                },
            );
            return;
        }
    };
    if let Some((paddr, _, rights)) = raw.as_endpoint() {
        if rights & EP_RECEIVE == 0 {
            handle_fault(thread, missing);
            return;
        }
        let reply = if can_reply {
            match lookup_reply(thread, root) {
                Ok(r) => Some(r),
                Err(f) => {
                    handle_fault(thread, f);
                    return;
                }
            }
        } else {
            None
        };
        endpoint::receive_ipc(thread, Ep::new(paddr), is_blocking, reply);
    } else if let Some((paddr, _, rights)) = raw.as_notification() {
        let n = Ntfn::new(paddr);
        let bound = n.bound_tcb();
        if rights & EP_RECEIVE == 0 || bound.is_some_and(|b| b != thread) {
            handle_fault(thread, missing);
            return;
        }
        notification::receive_signal(thread, n, is_blocking);
    } else {
        handle_fault(thread, missing);
    }
}

/// Gives up the rest of the head refill (seL4's `handleYield`).
fn handle_yield() {
    let Some(sc) = sched::cur_sc() else {
        return;
    };
    let consumed = sc.consumed() + sched::with(|s| s.consumed.get());
    sched::charge_budget(sc.head().amount, false);
    // Count what was really used, not the whole refill given up.
    sc.set_consumed(consumed);
}

// ---------------------------------------------------------------------------
// Debug system calls.

/// The debug calls, or an UnknownSyscall fault (seL4's
/// `handleUnknownSyscall`). The debug calls do not charge time. Which
/// exist depends on the configuration (`septa_abi::Config`): DebugPutChar
/// and DebugDumpScheduler with printing, the others in the debug build;
/// any other number is a fault.
///
/// Out of line (see the crate header): inlined into the system-call path it
/// made every system call dearer.
#[inline(never)]
pub fn handle_unknown_syscall(w: u64) {
    let cur = sched::cur_thread();
    let printing = CONFIG.printing();
    let debug = CONFIG.debug_build();
    match w as i64 {
        sys::DEBUG_PUT_CHAR if printing => crate::print::put_user_char(cur.reg(Reg::CAP) as u8),
        sys::DEBUG_DUMP_SCHEDULER if printing => dump_scheduler(),
        sys::DEBUG_HALT if debug => {
            crate::kdebugln!("DebugHalt from thread {:#x} \"{}\"", cur.paddr(), Name(cur));
            machine::halt();
        }
        sys::DEBUG_SNAPSHOT if debug => {
            // Not yet: seL4 prints the capDL of the whole system here.
            crate::kdebugln!(
                "DebugSnapshot from thread {:#x} \"{}\"",
                cur.paddr(),
                Name(cur)
            );
        }
        sys::DEBUG_CAP_IDENTIFY if debug => {
            let t = crate::debug::debug_cap_identify(&cur.cspace_root(), cur.reg(Reg::CAP));
            cur.set_reg(Reg::CAP, t);
        }
        sys::DEBUG_NAME_THREAD if debug => debug_name_thread(cur),
        n if crate::benchmark::handle_syscall(n) => {}
        _ => {
            if_budget_then_schedule(|| handle_fault(cur, Fault::UnknownSyscall { number: w }));
        }
    }
}

/// DebugNameThread: the TCB cap in x0, the name from IPC buffer word 1.
/// Like seL4, a misuse halts the machine: it is a debugging aid, and a
/// system that gets it wrong is misconfigured.
fn debug_name_thread(cur: Tcb) {
    let target = match lookup_cap(&cur.cspace_root(), cur.reg(Reg::CAP)) {
        Ok(Cap::Tcb { paddr }) => Tcb::new(paddr),
        _ => {
            crate::kdebugln!("DebugNameThread: cap is not a TCB, halting");
            machine::halt();
            return;
        }
    };
    let Some(buf) = lookup_ipc_buffer(true, cur) else {
        crate::kdebugln!("DebugNameThread: no IPC buffer, halting");
        machine::halt();
        return;
    };
    let mut name = [0u8; NAME_MAX];
    let mut len = NAME_MAX;
    for (i, b) in name.iter_mut().enumerate() {
        *b = crate::memory::read::<u8>(buf + 8 + i as u64);
        if *b == 0 {
            len = i;
            break;
        }
    }
    if len == NAME_MAX {
        crate::kdebugln!("DebugNameThread: name too long, halting");
        machine::halt();
        return;
    }
    target.set_name(&name[..len]);
}

/// Displays a thread's name.
struct Name(Tcb);

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut buf = [0u8; tcb::NAME_BYTES as usize];
        let n = self.0.name(&mut buf);
        f.write_str(core::str::from_utf8(&buf[..n]).unwrap_or("?"))
    }
}

/// DebugDumpScheduler: every thread with its state, pc and priority.
fn dump_scheduler() {
    crate::kdebugln!("threads (name, state, pc, priority, in release queue):");
    let mut next = tcb::debug_list_head();
    while let Some(t) = next {
        let pc = if t.state() == ThreadState::Idle {
            0
        } else {
            t.restart_pc()
        };
        crate::kdebugln!(
            "  {:<32} {:<22} {:#018x} {:>3} {}",
            Name(t),
            state_name(t.state()),
            pc,
            t.priority(),
            if t.in_release_queue() { "yes" } else { "no" }
        );
        next = t.debug_next();
    }
}

fn state_name(s: ThreadState) -> &'static str {
    match s {
        ThreadState::Inactive => "inactive",
        ThreadState::Running => "running",
        ThreadState::Restart => "restart",
        ThreadState::BlockedOnReceive => "blocked on receive",
        ThreadState::BlockedOnSend => "blocked on send",
        ThreadState::BlockedOnReply => "blocked on reply",
        ThreadState::BlockedOnNotification => "blocked on notification",
        ThreadState::Idle => "idle",
    }
}
