//! # Thread control blocks
//!
//! A TCB object is `2^TCB_SIZE_BITS` bytes (2 KiB; 4 KiB in the debug
//! configuration), all reached through the memory window by a [`Tcb`]
//! handle (the object's physical address, which is also what a TCB cap
//! names). Its layout:
//!
//! | bytes | what |
//! |---|---|
//! | `0x000..0x0a0` | the five cap slots ([`CTABLE`] .. [`TIMEOUT_HANDLER`]), so the capability layer can tear them down like a small CNode |
//! | `0x0a0..0x0b0` | links of the debug list of all threads (DebugDumpScheduler) |
//! | `0x0b0..0x1f0` | the thread's name (DebugNameThread), NUL-terminated |
//! | `0x1f0..0x400` | FP/SIMD state: q0..q31, then FPSR and FPCR |
//! | `0x400..0x528` | the saved registers, a [`UserContext`] |
//! | `0x528..` | scheduling and IPC state ([`TcbFields`]) |
//! | `0x780..0x7a8` | utilisation counters (benchmark configuration, `crate::benchmark`) |
//! | `0x800..` | hardware debug state (debug configuration, 4 KiB TCB, [`debug`]) |
//!
//! ## The zero rule
//!
//! An all-zero TCB is an inactive thread at priority 0 and MCP 0 in domain
//! 0, bound to nothing, with empty cap slots, no IPC buffer, no fault and
//! all registers zero. The one thing seL4 sets differently at creation is
//! the user SPSR (`PSTATE_USER`) and the domain (the current one);
//! [`init_new`] does that (and links the
//! thread into the debug list) for every TCB a Retype creates.
//!
//! ## Queue links
//!
//! A thread is in at most one queue at a time (a ready queue, the release
//! queue, or an endpoint's or notification's wait queue), so, as in seL4,
//! one pair of links (`sched_next`, `sched_prev`) serves them all.

pub mod debug;
pub mod invoke;
pub mod queue;

use crate::cap::{Cap, CapType};
use crate::context::{Reg, UserContext, SPSR_USER};
use crate::cte::SlotRef;
use crate::fault::Fault;
use crate::memory;
use septa_abi::TCB_SIZE_BITS;

/// Slot indices inside a TCB (MCS layout).
pub const CTABLE: u64 = 0;
pub const VTABLE: u64 = 1;
pub const BUFFER: u64 = 2;
pub const FAULT_HANDLER: u64 = 3;
pub const TIMEOUT_HANDLER: u64 = 4;
/// Number of cap slots at the start of a TCB.
pub const TCB_CNODE_ENTRIES: u64 = 5;

/// Bytes in a TCB object.
pub const TCB_BYTES: u64 = 1 << TCB_SIZE_BITS;

const DEBUG_NEXT: u64 = 0x0a0;
const DEBUG_PREV: u64 = 0x0a8;
/// Where the name starts, and its room including the NUL.
pub const NAME_OFFSET: u64 = 0x0b0;
pub const NAME_BYTES: u64 = 0x140;
/// FP/SIMD state: 32 128-bit registers, then FPSR, then FPCR.
pub const FPU_OFFSET: u64 = 0x1f0;
pub const FPU_BYTES: u64 = 32 * 16 + 16;
/// The saved registers.
pub const CONTEXT_OFFSET: u64 = 0x400;
/// Scheduling and IPC state.
pub const FIELDS_OFFSET: u64 = CONTEXT_OFFSET + core::mem::size_of::<UserContext>() as u64;
/// Where the [`TcbFields`] end; the rest of the 2 KiB is the benchmark
/// configuration's counters (`crate::benchmark`) and spare.
pub const FIELDS_END: u64 = FIELDS_OFFSET + core::mem::size_of::<TcbFields>() as u64;

const _: () = assert!(NAME_OFFSET + NAME_BYTES == FPU_OFFSET);
const _: () = assert!(FPU_OFFSET.is_multiple_of(16) && FPU_OFFSET + FPU_BYTES == CONTEXT_OFFSET);
const _: () = assert!(FIELDS_OFFSET + core::mem::size_of::<TcbFields>() as u64 <= TCB_BYTES);

/// The word fields of a TCB after its register context. Never read as a
/// whole: it fixes the offsets the accessors of [`Tcb`] use.
#[repr(C)]
pub struct TcbFields {
    /// [`ThreadState`].
    state: u64,
    /// Bit 0: in a ready queue; bit 1: in the release queue.
    queue_flags: u64,
    /// The endpoint or notification the thread is blocked on.
    blocking_object: u64,
    /// Badge of a blocked send.
    blocking_badge: u64,
    /// Bits of a blocked send: grant, grant-reply, call.
    ipc_flags: u64,
    /// The reply object of a thread blocked in Recv or on a reply.
    reply_object: u64,
    sched_next: u64,
    sched_prev: u64,
    priority: u64,
    mcp: u64,
    domain: u64,
    /// seL4_TCBFlag bits (fpuDisabled).
    tcb_flags: u64,
    /// Virtual address of the IPC buffer.
    ipc_buffer: u64,
    bound_notification: u64,
    sched_context: u64,
    yield_to: u64,
    fault: [u64; 4],
    lookup_failure: [u64; 4],
    vcpu: u64,
    /// The fast paths' memo of their CSpace look-ups
    /// (`crate::cspace::lookup_fp_memo`): not thread state, a cache of
    /// what the walk found, valid while no cap anywhere has changed.
    lookup_memo: [u64; LOOKUP_MEMO_WORDS as usize],
}

/// Words of a TCB's look-up memo.
pub const LOOKUP_MEMO_WORDS: u64 = 8;

macro_rules! field_offset {
    ($f:ident) => {
        FIELDS_OFFSET + core::mem::offset_of!(TcbFields, $f) as u64
    };
}

/// Where the look-up memo lies in the TCB (host tests leave it out when
/// they compare the fast path's memory with the slow path's).
pub const LOOKUP_MEMO: u64 = field_offset!(lookup_memo);

const QUEUED: u64 = 1 << 0;
const IN_RELEASE_QUEUE: u64 = 1 << 1;
const CAN_GRANT: u64 = 1 << 0;
const CAN_GRANT_REPLY: u64 = 1 << 1;
const IS_CALL: u64 = 1 << 2;

/// seL4_TCBFlag_fpuDisabled: the thread runs with FP/SIMD trapped.
pub const FLAG_FPU_DISABLED: u64 = 1;
/// Every TCB flag this configuration knows (seL4_TCBFlag_MASK).
pub const FLAG_MASK: u64 = FLAG_FPU_DISABLED;

/// What a thread is doing (seL4's `_thread_state`). Zero is Inactive.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    Inactive = 0,
    Running = 1,
    /// Runnable; re-executes the instruction that entered the kernel.
    Restart = 2,
    BlockedOnReceive = 3,
    BlockedOnSend = 4,
    BlockedOnReply = 5,
    BlockedOnNotification = 6,
    /// Only the idle thread.
    Idle = 7,
}

impl ThreadState {
    fn from_u64(v: u64) -> ThreadState {
        match v {
            1 => ThreadState::Running,
            2 => ThreadState::Restart,
            3 => ThreadState::BlockedOnReceive,
            4 => ThreadState::BlockedOnSend,
            5 => ThreadState::BlockedOnReply,
            6 => ThreadState::BlockedOnNotification,
            7 => ThreadState::Idle,
            _ => ThreadState::Inactive,
        }
    }

    /// Running or Restart (seL4's `isRunnable`).
    pub fn is_runnable(self) -> bool {
        matches!(self, ThreadState::Running | ThreadState::Restart)
    }

    /// Waiting on an object (seL4's `isBlocked`).
    pub fn is_blocked(self) -> bool {
        matches!(
            self,
            ThreadState::BlockedOnReceive
                | ThreadState::BlockedOnSend
                | ThreadState::BlockedOnNotification
                | ThreadState::BlockedOnReply
        )
    }

    /// Inactive or blocked (seL4's `isStopped`).
    pub fn is_stopped(self) -> bool {
        self == ThreadState::Inactive || self.is_blocked()
    }
}

/// A TCB, named by the physical address of the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tcb(u64);

impl Tcb {
    /// The TCB at `paddr` (2 KiB aligned, non-zero).
    #[inline(always)]
    pub fn new(paddr: u64) -> Tcb {
        debug_assert!(paddr != 0, "TCB at 0");
        // Every `Tcb` is checked once, here, to lie in the window and be
        // aligned, so that its word fields are reached without a check each
        // (`read`).
        memory::check_object(paddr, TCB_BYTES, TCB_BYTES);
        Tcb(paddr)
    }

    /// The TCB a stored link names, if any (0 is none).
    #[inline(always)]
    pub fn from_link(paddr: u64) -> Option<Tcb> {
        (paddr != 0).then(|| Tcb::new(paddr))
    }

    #[inline(always)]
    pub fn paddr(self) -> u64 {
        self.0
    }

    /// The link value of an optional TCB.
    #[inline(always)]
    pub fn link(t: Option<Tcb>) -> u64 {
        t.map_or(0, |t| t.0)
    }

    /// A word field; `off` is one of this module's offsets, all inside
    /// the TCB object and multiples of 8.
    #[inline(always)]
    fn read(self, off: u64) -> u64 {
        assert!(
            off + 8 <= TCB_BYTES && off.is_multiple_of(8),
            "a TCB field offset outside the TCB or unaligned"
        );
        // SAFETY: the word lies inside the TCB object, whose whole range and
        // alignment `Tcb::new` (the only constructor) passed to
        // `check_object`, at an offset that keeps it aligned.
        unsafe { memory::read_object_field(self.0, off) }
    }

    #[inline(always)]
    fn write(self, off: u64, v: u64) {
        assert!(
            off + 8 <= TCB_BYTES && off.is_multiple_of(8),
            "a TCB field offset outside the TCB or unaligned"
        );
        // SAFETY: as in `read`.
        unsafe { memory::write_object_field(self.0, off, v) }
    }

    // --- registers -------------------------------------------------------

    /// Physical address of the saved registers.
    pub fn context_paddr(self) -> u64 {
        self.0 + CONTEXT_OFFSET
    }

    #[inline(always)]
    pub fn reg(self, r: Reg) -> u64 {
        self.read(CONTEXT_OFFSET + r.offset())
    }

    #[inline(always)]
    pub fn set_reg(self, r: Reg, v: u64) {
        self.write(CONTEXT_OFFSET + r.offset(), v)
    }

    /// The address a Restart thread resumes at (seL4's `getRestartPC`).
    pub fn restart_pc(self) -> u64 {
        self.reg(Reg::FAULT_IP)
    }

    /// Sets where the thread resumes (seL4's `setNextPC`).
    pub fn set_next_pc(self, pc: u64) {
        self.set_reg(Reg::NEXT_IP, pc)
    }

    /// Makes the fault address follow the resume address, so a thread
    /// restarted later does not re-execute what it already did (seL4's
    /// `updateRestartPC`).
    pub fn update_restart_pc(self) {
        self.set_reg(Reg::FAULT_IP, self.reg(Reg::NEXT_IP))
    }

    /// Physical address of the FP/SIMD save area.
    #[inline(always)]
    pub fn fpu_paddr(self) -> u64 {
        self.0 + FPU_OFFSET
    }

    // --- state -----------------------------------------------------------

    #[inline(always)]
    pub fn state(self) -> ThreadState {
        ThreadState::from_u64(self.read(field_offset!(state)))
    }

    /// Sets the state word alone; callers that may change whether the
    /// thread can run use `sched::set_thread_state`.
    #[inline(always)]
    pub fn set_state_raw(self, s: ThreadState) {
        self.write(field_offset!(state), s as u64)
    }

    #[inline(always)]
    fn queue_flags(self) -> u64 {
        self.read(field_offset!(queue_flags))
    }

    fn set_queue_flag(self, flag: u64, on: bool) {
        let f = self.queue_flags();
        self.write(
            field_offset!(queue_flags),
            if on { f | flag } else { f & !flag },
        )
    }

    /// In neither a ready queue nor the release queue.
    #[inline(always)]
    pub fn in_no_queue(self) -> bool {
        self.queue_flags() == 0
    }

    /// In a ready queue (seL4's `tcbQueued`).
    #[inline(always)]
    pub fn is_queued(self) -> bool {
        self.queue_flags() & QUEUED != 0
    }

    pub fn set_queued(self, on: bool) {
        self.set_queue_flag(QUEUED, on)
    }

    /// In the release queue (seL4's `tcbInReleaseQueue`).
    #[inline(always)]
    pub fn in_release_queue(self) -> bool {
        self.queue_flags() & IN_RELEASE_QUEUE != 0
    }

    pub fn set_in_release_queue(self, on: bool) {
        self.set_queue_flag(IN_RELEASE_QUEUE, on)
    }

    #[inline(always)]
    pub fn blocking_object(self) -> u64 {
        self.read(field_offset!(blocking_object))
    }

    #[inline(always)]
    pub fn set_blocking_object(self, obj: u64) {
        self.write(field_offset!(blocking_object), obj)
    }

    pub fn blocking_badge(self) -> u64 {
        self.read(field_offset!(blocking_badge))
    }

    /// Records what a blocked sender sends: badge and rights.
    pub fn set_blocked_send(
        self,
        badge: u64,
        can_grant: bool,
        can_grant_reply: bool,
        is_call: bool,
    ) {
        self.write(field_offset!(blocking_badge), badge);
        let mut f = 0;
        if can_grant {
            f |= CAN_GRANT;
        }
        if can_grant_reply {
            f |= CAN_GRANT_REPLY;
        }
        if is_call {
            f |= IS_CALL;
        }
        self.write(field_offset!(ipc_flags), f);
    }

    fn ipc_flags(self) -> u64 {
        self.read(field_offset!(ipc_flags))
    }

    pub fn blocking_can_grant(self) -> bool {
        self.ipc_flags() & CAN_GRANT != 0
    }

    pub fn blocking_can_grant_reply(self) -> bool {
        self.ipc_flags() & CAN_GRANT_REPLY != 0
    }

    pub fn blocking_is_call(self) -> bool {
        self.ipc_flags() & IS_CALL != 0
    }

    /// The reply object of a thread blocked in Recv or on a reply, or 0.
    #[inline(always)]
    pub fn reply_object(self) -> u64 {
        self.read(field_offset!(reply_object))
    }

    #[inline(always)]
    pub fn set_reply_object(self, reply: u64) {
        self.write(field_offset!(reply_object), reply)
    }

    // --- queue links -----------------------------------------------------

    #[inline(always)]
    pub fn sched_next(self) -> Option<Tcb> {
        Tcb::from_link(self.read(field_offset!(sched_next)))
    }

    #[inline(always)]
    pub fn set_sched_next(self, t: Option<Tcb>) {
        self.write(field_offset!(sched_next), Tcb::link(t))
    }

    #[inline(always)]
    pub fn sched_prev(self) -> Option<Tcb> {
        Tcb::from_link(self.read(field_offset!(sched_prev)))
    }

    #[inline(always)]
    pub fn set_sched_prev(self, t: Option<Tcb>) {
        self.write(field_offset!(sched_prev), Tcb::link(t))
    }

    // --- scheduling parameters -------------------------------------------

    #[inline(always)]
    pub fn priority(self) -> u64 {
        self.read(field_offset!(priority))
    }

    pub fn set_priority_raw(self, p: u64) {
        self.write(field_offset!(priority), p)
    }

    pub fn mcp(self) -> u64 {
        self.read(field_offset!(mcp))
    }

    pub fn set_mcp(self, p: u64) {
        self.write(field_offset!(mcp), p)
    }

    #[inline(always)]
    pub fn domain(self) -> u64 {
        self.read(field_offset!(domain))
    }

    pub fn set_domain_raw(self, d: u64) {
        self.write(field_offset!(domain), d)
    }

    #[inline(always)]
    pub fn flags(self) -> u64 {
        self.read(field_offset!(tcb_flags))
    }

    pub fn set_flags(self, f: u64) {
        self.write(field_offset!(tcb_flags), f)
    }

    pub fn ipc_buffer(self) -> u64 {
        self.read(field_offset!(ipc_buffer))
    }

    pub fn set_ipc_buffer(self, v: u64) {
        self.write(field_offset!(ipc_buffer), v)
    }

    /// The bound notification's physical address, or 0.
    #[inline(always)]
    pub fn bound_notification(self) -> u64 {
        self.read(field_offset!(bound_notification))
    }

    pub fn set_bound_notification(self, n: u64) {
        self.write(field_offset!(bound_notification), n)
    }

    /// The scheduling context's physical address, or 0.
    #[inline(always)]
    pub fn sched_context(self) -> u64 {
        self.read(field_offset!(sched_context))
    }

    #[inline(always)]
    pub fn set_sched_context(self, sc: u64) {
        self.write(field_offset!(sched_context), sc)
    }

    /// The scheduling context this thread yielded to, or 0.
    #[inline(always)]
    pub fn yield_to(self) -> u64 {
        self.read(field_offset!(yield_to))
    }

    pub fn set_yield_to(self, sc: u64) {
        self.write(field_offset!(yield_to), sc)
    }

    /// The VCPU bound to this thread, or 0 (`object::vcpu` keeps the two
    /// sides of the binding in step).
    #[inline(always)]
    pub fn vcpu(self) -> u64 {
        self.read(field_offset!(vcpu))
    }

    pub fn set_vcpu(self, vcpu: u64) {
        self.write(field_offset!(vcpu), vcpu)
    }

    // --- faults ----------------------------------------------------------

    /// The fault the thread is stopped with (Null if none).
    pub fn fault(self) -> Fault {
        let off = field_offset!(fault);
        let w: [u64; 4] = memory::read(self.0 + off);
        let l: [u64; 4] = memory::read(self.0 + field_offset!(lookup_failure));
        Fault::decode(w, l)
    }

    pub fn set_fault(self, f: &Fault) {
        let (w, l) = f.encode();
        memory::write(self.0 + field_offset!(fault), w);
        memory::write(self.0 + field_offset!(lookup_failure), l);
    }

    /// Whether the thread has a fault pending (cheaper than [`Self::fault`]).
    #[inline(always)]
    pub fn has_fault(self) -> bool {
        self.read(field_offset!(fault)) != 0
    }

    /// Word `i` of the look-up memo (`crate::cspace::lookup_fp_memo`).
    #[inline(always)]
    pub fn lookup_memo(self, i: u64) -> u64 {
        self.read(LOOKUP_MEMO + 8 * i)
    }

    #[inline(always)]
    pub fn set_lookup_memo(self, i: u64, v: u64) {
        self.write(LOOKUP_MEMO + 8 * i, v)
    }

    // --- cap slots -------------------------------------------------------

    #[inline(always)]
    pub fn slot(self, index: u64) -> SlotRef {
        slot(self.0, index)
    }

    pub fn cspace_root(self) -> Cap {
        self.slot(CTABLE).cap_expecting(CapType::CNode)
    }

    // --- debug -----------------------------------------------------------

    pub fn debug_next(self) -> Option<Tcb> {
        Tcb::from_link(self.read(DEBUG_NEXT))
    }

    fn set_debug_next(self, t: Option<Tcb>) {
        self.write(DEBUG_NEXT, Tcb::link(t))
    }

    fn debug_prev(self) -> Option<Tcb> {
        Tcb::from_link(self.read(DEBUG_PREV))
    }

    fn set_debug_prev(self, t: Option<Tcb>) {
        self.write(DEBUG_PREV, Tcb::link(t))
    }

    /// Stores the thread's name (DebugNameThread), cut to fit with its NUL.
    pub fn set_name(self, name: &[u8]) {
        let n = name.len().min(NAME_BYTES as usize - 1);
        for (i, &b) in name[..n].iter().enumerate() {
            memory::write::<u8>(self.0 + NAME_OFFSET + i as u64, b);
        }
        memory::write::<u8>(self.0 + NAME_OFFSET + n as u64, 0);
    }

    /// The thread's name into `out`; returns its length.
    pub fn name(self, out: &mut [u8; NAME_BYTES as usize]) -> usize {
        for (i, b) in out.iter_mut().enumerate() {
            *b = memory::read::<u8>(self.0 + NAME_OFFSET + i as u64);
            if *b == 0 {
                return i;
            }
        }
        out.len()
    }
}

/// Slot `index` of the TCB at `tcb` (the object base a TCB cap names).
pub fn slot(tcb: u64, index: u64) -> SlotRef {
    debug_assert!(index < TCB_CNODE_ENTRIES);
    SlotRef::nth(tcb, index)
}

crate::kernel_global!(
    /// Head of the list of all TCBs (seL4's `ksDebugTCBs`).
    static DEBUG_TCBS: u64 = 0;
);

/// The first thread of the debug list of all threads.
pub fn debug_list_head() -> Option<Tcb> {
    Tcb::from_link(DEBUG_TCBS.with(|h| *h.borrow()))
}

/// Empties the debug list (boot).
pub fn debug_reset() {
    DEBUG_TCBS.with(|h| *h.borrow_mut() = 0);
}

/// Puts a thread at the head of the debug list (seL4's `tcbDebugAppend`).
#[inline(never)]
pub fn debug_append(tcb: Tcb) {
    let head = debug_list_head();
    tcb.set_debug_prev(None);
    tcb.set_debug_next(head);
    if let Some(h) = head {
        h.set_debug_prev(Some(tcb));
    }
    DEBUG_TCBS.with(|h| *h.borrow_mut() = tcb.paddr());
}

/// Takes a thread off the debug list (seL4's `tcbDebugRemove`).
pub fn debug_remove(tcb: Tcb) {
    let (prev, next) = (tcb.debug_prev(), tcb.debug_next());
    match prev {
        Some(p) => p.set_debug_next(next),
        None => {
            if debug_list_head() == Some(tcb) {
                DEBUG_TCBS.with(|h| *h.borrow_mut() = Tcb::link(next));
            }
        }
    }
    if let Some(n) = next {
        n.set_debug_prev(prev);
    }
    tcb.set_debug_prev(None);
    tcb.set_debug_next(None);
}

/// Set-up of a TCB a Retype just created from zeroed memory (what seL4's
/// `createObject` does beyond zeroing): the user SPSR and the debug list.
pub fn init_new(paddr: u64) {
    let tcb = Tcb::new(paddr);
    tcb.set_reg(Reg::SPSR, SPSR_USER);
    // A new thread belongs to the domain that is running (seL4's
    // `createObject`).
    tcb.set_domain_raw(crate::sched::cur_domain());
    debug_append(tcb);
}

/// Clean-up when the last cap to a TCB is deleted, before its slots are
/// torn down (seL4's `finaliseCap` for a thread cap): unbind the
/// notification and the scheduling context (completing a pending YieldTo
/// to it), suspend, leave the debug list, unbind the VCPU, release the
/// FPU.
pub fn finalise(tcb: u64) {
    let tcb = Tcb::new(tcb);
    crate::object::notification::unbind_notification(tcb);
    if let Some(sc) = crate::object::sched_context::Sc::from_link(tcb.sched_context()) {
        crate::object::sched_context::unbind_tcb(sc);
        if let Some(from) = Tcb::from_link(sc.yield_from()) {
            crate::object::sched_context::complete_yield_to(from);
        }
    }
    crate::sched::suspend(tcb);
    debug_remove(tcb);
    // seL4's `Arch_prepareThreadDelete`.
    crate::object::vcpu::prepare_thread_delete(tcb);
    crate::sched::fpu_release(tcb);
}
