//! Invocations: a message built first, then sent with Call.
//!
//! [`Invocation`] is plain data (label, message words, extra caps), and every
//! invocation of the configuration has a pure builder in [`build`] that lays
//! out its arguments exactly as libsel4 16.0.0's generated stubs do:
//! non-capability arguments become message words in the XML order, packed
//! by size (a `seL4_Bool` takes one bit, a `seL4_Uint8` eight, each aligned
//! to its own size, never straddling a word); capability arguments other
//! than the invoked one become extra caps in the XML order. Host tests check
//! these layouts word by word.
//!
//! [`perform`] then does the system call: extra caps into the IPC buffer's
//! `caps_or_badges`, message words 4 and up into the buffer, the first four
//! in x2..x5; the reply's label is the error code, decoded into [`Error`].

use septa_abi::{Label, MessageInfo, TCB_REGISTER_COUNT};

use crate::cap::CPtr;
use crate::error::Error;
use crate::ipc_buffer;
use crate::syscall::{self, FAST_MRS};

/// The longest invocation message: TCB_WriteRegisters, two words of
/// arguments and the whole register set.
pub const MAX_INVOCATION_WORDS: usize = 2 + TCB_REGISTER_COUNT;
/// The longest reply an invocation of this configuration returns (TCB
/// ReadRegisters); error replies are at most 5 words.
pub const MAX_REPLY_WORDS: usize = TCB_REGISTER_COUNT;

/// One invocation message, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    label: Label,
    words: [u64; MAX_INVOCATION_WORDS],
    len: usize,
    caps: [CPtr; septa_abi::ipc_buffer::MSG_MAX_EXTRA_CAPS],
    ncaps: usize,
}

impl Invocation {
    pub const fn new(label: Label) -> Self {
        Invocation {
            label,
            words: [0; MAX_INVOCATION_WORDS],
            len: 0,
            caps: [CPtr::NULL; septa_abi::ipc_buffer::MSG_MAX_EXTRA_CAPS],
            ncaps: 0,
        }
    }

    /// Appends one message word.
    pub fn word(mut self, w: u64) -> Self {
        self.words[self.len] = w;
        self.len += 1;
        self
    }

    /// Appends an extra capability.
    pub fn cap(mut self, c: CPtr) -> Self {
        self.caps[self.ncaps] = c;
        self.ncaps += 1;
        self
    }

    pub fn label(&self) -> Label {
        self.label
    }

    pub fn words(&self) -> &[u64] {
        &self.words[..self.len]
    }

    pub fn caps(&self) -> &[CPtr] {
        &self.caps[..self.ncaps]
    }

    /// The message info word: label, extra caps, length.
    pub fn info(&self) -> MessageInfo {
        MessageInfo::new(self.label.number(), 0, self.ncaps as u64, self.len as u64)
    }
}

/// A successful invocation's reply: its info and its message words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub info: MessageInfo,
    words: [u64; MAX_REPLY_WORDS],
}

impl Reply {
    /// Builds a reply from its info and words (words past the array are
    /// dropped; the longest reply fits).
    pub fn new(info: MessageInfo, words: &[u64]) -> Self {
        let mut r = Reply {
            info,
            words: [0; MAX_REPLY_WORDS],
        };
        let n = words.len().min(MAX_REPLY_WORDS);
        r.words[..n].copy_from_slice(&words[..n]);
        r
    }

    /// Message word `i`, zero past the end.
    pub fn mr(&self, i: usize) -> u64 {
        self.words.get(i).copied().unwrap_or(0)
    }

    /// Turns an error reply into [`Error`].
    pub fn check(self) -> Result<Reply, Error> {
        match Error::decode(self.info.label(), |i| self.mr(i)) {
            None => Ok(self),
            Some(e) => Err(e),
        }
    }
}

/// Sends `inv` to the object named by `dest` and waits for the answer.
pub fn perform(dest: CPtr, inv: &Invocation) -> Result<Reply, Error> {
    for (i, c) in inv.caps().iter().enumerate() {
        ipc_buffer::set_cap(i, *c);
    }
    let words = inv.words();
    let mut fast = [0; FAST_MRS];
    for (i, w) in words.iter().enumerate() {
        if i < FAST_MRS {
            fast[i] = *w;
        } else {
            ipc_buffer::set_mr(i, *w);
        }
    }
    let (info, regs) = syscall::call_with_mrs(dest, inv.info(), fast);
    let len = (info.length() as usize).min(MAX_REPLY_WORDS);
    let mut out = [0; MAX_REPLY_WORDS];
    for (i, w) in out.iter_mut().enumerate().take(len) {
        *w = if i < FAST_MRS {
            regs[i]
        } else {
            ipc_buffer::get_mr(i)
        };
    }
    // A kernel error reply may carry its details in MR0..MR3 with a length
    // that counts them; keep the registers even if the length says less,
    // as libsel4 does by copying them back on error.
    if info.label() != 0 {
        out[..FAST_MRS].copy_from_slice(&regs);
    }
    Reply::new(info, &out).check()
}

/// The builders: one per invocation label, arguments in XML order.
pub mod build {
    use super::Invocation;
    use crate::cap::CPtr;
    use crate::user_context::{SmcContext, UserContext};
    use septa_abi::{CapRights, Label, ObjectType};

    // --- Untyped -------------------------------------------------------

    pub fn untyped_retype(
        ty: ObjectType,
        size_bits: u64,
        root: CPtr,
        node_index: u64,
        node_depth: u64,
        node_offset: u64,
        num_objects: u64,
    ) -> Invocation {
        Invocation::new(Label::UntypedRetype)
            .cap(root)
            .word(ty as u64)
            .word(size_bits)
            .word(node_index)
            .word(node_depth)
            .word(node_offset)
            .word(num_objects)
    }

    // --- TCB -----------------------------------------------------------

    /// `suspend_source` is a 1-bit Bool at bit 0, `arch_flags` a Uint8
    /// aligned to bit 8, both in word 0.
    pub fn tcb_read_registers(suspend_source: bool, arch_flags: u8, count: u64) -> Invocation {
        Invocation::new(Label::TcbReadRegisters)
            .word(u64::from(suspend_source) | u64::from(arch_flags) << 8)
            .word(count)
    }

    /// Only the first `count` registers (at most 36) are sent; the kernel
    /// accepts any length of at least `2 + count`.
    pub fn tcb_write_registers(
        resume_target: bool,
        arch_flags: u8,
        count: u64,
        regs: &UserContext,
    ) -> Invocation {
        let mut inv = Invocation::new(Label::TcbWriteRegisters)
            .word(u64::from(resume_target) | u64::from(arch_flags) << 8)
            .word(count);
        let n = (count as usize).min(septa_abi::TCB_REGISTER_COUNT);
        for w in &regs.to_words()[..n] {
            inv = inv.word(*w);
        }
        inv
    }

    pub fn tcb_copy_registers(
        source: CPtr,
        suspend_source: bool,
        resume_target: bool,
        transfer_frame: bool,
        transfer_integer: bool,
        arch_flags: u8,
    ) -> Invocation {
        Invocation::new(Label::TcbCopyRegisters).cap(source).word(
            u64::from(suspend_source)
                | u64::from(resume_target) << 1
                | u64::from(transfer_frame) << 2
                | u64::from(transfer_integer) << 3
                | u64::from(arch_flags) << 8,
        )
    }

    /// MCS form: no fault endpoint (that moved to SetSchedParams/SetSpace).
    pub fn tcb_configure(
        cspace_root: CPtr,
        cspace_root_data: u64,
        vspace_root: CPtr,
        vspace_root_data: u64,
        buffer: u64,
        buffer_frame: CPtr,
    ) -> Invocation {
        Invocation::new(Label::TcbConfigure)
            .cap(cspace_root)
            .cap(vspace_root)
            .cap(buffer_frame)
            .word(cspace_root_data)
            .word(vspace_root_data)
            .word(buffer)
    }

    pub fn tcb_set_priority(authority: CPtr, priority: u64) -> Invocation {
        Invocation::new(Label::TcbSetPriority)
            .cap(authority)
            .word(priority)
    }

    pub fn tcb_set_mc_priority(authority: CPtr, mcp: u64) -> Invocation {
        Invocation::new(Label::TcbSetMcPriority)
            .cap(authority)
            .word(mcp)
    }

    pub fn tcb_set_sched_params(
        authority: CPtr,
        mcp: u64,
        priority: u64,
        sched_context: CPtr,
        fault_ep: CPtr,
    ) -> Invocation {
        Invocation::new(Label::TcbSetSchedParams)
            .cap(authority)
            .cap(sched_context)
            .cap(fault_ep)
            .word(mcp)
            .word(priority)
    }

    pub fn tcb_set_timeout_endpoint(timeout_fault_ep: CPtr) -> Invocation {
        Invocation::new(Label::TcbSetTimeoutEndpoint).cap(timeout_fault_ep)
    }

    pub fn tcb_set_ipc_buffer(buffer: u64, buffer_frame: CPtr) -> Invocation {
        Invocation::new(Label::TcbSetIpcBuffer)
            .cap(buffer_frame)
            .word(buffer)
    }

    /// MCS form: the fault endpoint is a capability.
    pub fn tcb_set_space(
        fault_ep: CPtr,
        cspace_root: CPtr,
        cspace_root_data: u64,
        vspace_root: CPtr,
        vspace_root_data: u64,
    ) -> Invocation {
        Invocation::new(Label::TcbSetSpace)
            .cap(fault_ep)
            .cap(cspace_root)
            .cap(vspace_root)
            .word(cspace_root_data)
            .word(vspace_root_data)
    }

    pub fn tcb_suspend() -> Invocation {
        Invocation::new(Label::TcbSuspend)
    }

    pub fn tcb_resume() -> Invocation {
        Invocation::new(Label::TcbResume)
    }

    pub fn tcb_bind_notification(notification: CPtr) -> Invocation {
        Invocation::new(Label::TcbBindNotification).cap(notification)
    }

    pub fn tcb_unbind_notification() -> Invocation {
        Invocation::new(Label::TcbUnbindNotification)
    }

    pub fn tcb_set_tls_base(tls_base: u64) -> Invocation {
        Invocation::new(Label::TcbSetTlsBase).word(tls_base)
    }

    pub fn tcb_set_flags(clear: u64, set: u64) -> Invocation {
        Invocation::new(Label::TcbSetFlags).word(clear).word(set)
    }

    pub fn tcb_set_breakpoint(bp: u64, vaddr: u64, ty: u64, size: u64, rw: u64) -> Invocation {
        Invocation::new(Label::TcbSetBreakpoint)
            .word(bp)
            .word(vaddr)
            .word(ty)
            .word(size)
            .word(rw)
    }

    pub fn tcb_get_breakpoint(bp: u64) -> Invocation {
        Invocation::new(Label::TcbGetBreakpoint).word(bp)
    }

    pub fn tcb_unset_breakpoint(bp: u64) -> Invocation {
        Invocation::new(Label::TcbUnsetBreakpoint).word(bp)
    }

    pub fn tcb_configure_single_stepping(bp: u64, n_instructions: u64) -> Invocation {
        Invocation::new(Label::TcbConfigureSingleStepping)
            .word(bp)
            .word(n_instructions)
    }

    // --- CNode ---------------------------------------------------------

    fn cnode_index_depth(label: Label, index: u64, depth: u8) -> Invocation {
        Invocation::new(label).word(index).word(u64::from(depth))
    }

    pub fn cnode_revoke(index: u64, depth: u8) -> Invocation {
        cnode_index_depth(Label::CNodeRevoke, index, depth)
    }

    pub fn cnode_delete(index: u64, depth: u8) -> Invocation {
        cnode_index_depth(Label::CNodeDelete, index, depth)
    }

    pub fn cnode_cancel_badged_sends(index: u64, depth: u8) -> Invocation {
        cnode_index_depth(Label::CNodeCancelBadgedSends, index, depth)
    }

    fn cnode_two_paths(
        label: Label,
        dest_index: u64,
        dest_depth: u8,
        src_root: CPtr,
        src_index: u64,
        src_depth: u8,
    ) -> Invocation {
        Invocation::new(label)
            .cap(src_root)
            .word(dest_index)
            .word(u64::from(dest_depth))
            .word(src_index)
            .word(u64::from(src_depth))
    }

    pub fn cnode_copy(
        dest_index: u64,
        dest_depth: u8,
        src_root: CPtr,
        src_index: u64,
        src_depth: u8,
        rights: CapRights,
    ) -> Invocation {
        cnode_two_paths(
            Label::CNodeCopy,
            dest_index,
            dest_depth,
            src_root,
            src_index,
            src_depth,
        )
        .word(rights.0)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn cnode_mint(
        dest_index: u64,
        dest_depth: u8,
        src_root: CPtr,
        src_index: u64,
        src_depth: u8,
        rights: CapRights,
        badge: u64,
    ) -> Invocation {
        cnode_two_paths(
            Label::CNodeMint,
            dest_index,
            dest_depth,
            src_root,
            src_index,
            src_depth,
        )
        .word(rights.0)
        .word(badge)
    }

    pub fn cnode_move(
        dest_index: u64,
        dest_depth: u8,
        src_root: CPtr,
        src_index: u64,
        src_depth: u8,
    ) -> Invocation {
        cnode_two_paths(
            Label::CNodeMove,
            dest_index,
            dest_depth,
            src_root,
            src_index,
            src_depth,
        )
    }

    pub fn cnode_mutate(
        dest_index: u64,
        dest_depth: u8,
        src_root: CPtr,
        src_index: u64,
        src_depth: u8,
        badge: u64,
    ) -> Invocation {
        cnode_two_paths(
            Label::CNodeMutate,
            dest_index,
            dest_depth,
            src_root,
            src_index,
            src_depth,
        )
        .word(badge)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn cnode_rotate(
        dest_index: u64,
        dest_depth: u8,
        dest_badge: u64,
        pivot_root: CPtr,
        pivot_index: u64,
        pivot_depth: u8,
        pivot_badge: u64,
        src_root: CPtr,
        src_index: u64,
        src_depth: u8,
    ) -> Invocation {
        Invocation::new(Label::CNodeRotate)
            .cap(pivot_root)
            .cap(src_root)
            .word(dest_index)
            .word(u64::from(dest_depth))
            .word(dest_badge)
            .word(pivot_index)
            .word(u64::from(pivot_depth))
            .word(pivot_badge)
            .word(src_index)
            .word(u64::from(src_depth))
    }

    // --- IRQ -----------------------------------------------------------

    pub fn irq_control_get(irq: u64, root: CPtr, index: u64, depth: u8) -> Invocation {
        Invocation::new(Label::IrqIssueIrqHandler)
            .cap(root)
            .word(irq)
            .word(index)
            .word(u64::from(depth))
    }

    pub fn irq_control_get_trigger(
        irq: u64,
        trigger: u64,
        root: CPtr,
        index: u64,
        depth: u8,
    ) -> Invocation {
        Invocation::new(Label::ArmIrqIssueIrqHandlerTrigger)
            .cap(root)
            .word(irq)
            .word(trigger)
            .word(index)
            .word(u64::from(depth))
    }

    pub fn irq_control_issue_sgi_signal(
        irq: u64,
        target: u64,
        root: CPtr,
        index: u64,
        depth: u8,
    ) -> Invocation {
        Invocation::new(Label::ArmIrqIssueSgiSignal)
            .cap(root)
            .word(irq)
            .word(target)
            .word(index)
            .word(u64::from(depth))
    }

    pub fn irq_handler_ack() -> Invocation {
        Invocation::new(Label::IrqAckIrq)
    }

    pub fn irq_handler_set_notification(notification: CPtr) -> Invocation {
        Invocation::new(Label::IrqSetIrqHandler).cap(notification)
    }

    pub fn irq_handler_clear() -> Invocation {
        Invocation::new(Label::IrqClearIrqHandler)
    }

    // --- Domains ---------------------------------------------------------

    pub fn domain_set_set(domain: u8, thread: CPtr) -> Invocation {
        Invocation::new(Label::DomainSetSet)
            .cap(thread)
            .word(u64::from(domain))
    }

    pub fn domain_schedule_configure(index: u64, domain: u8, duration: u64) -> Invocation {
        Invocation::new(Label::DomainScheduleConfigure)
            .word(index)
            .word(u64::from(domain))
            .word(duration)
    }

    pub fn domain_schedule_set_start(index: u64) -> Invocation {
        Invocation::new(Label::DomainScheduleSetStart).word(index)
    }

    // --- MCS scheduling ------------------------------------------------

    pub fn sched_control_configure_flags(
        sched_context: CPtr,
        budget: u64,
        period: u64,
        extra_refills: u64,
        badge: u64,
        flags: u64,
    ) -> Invocation {
        Invocation::new(Label::SchedControlConfigureFlags)
            .cap(sched_context)
            .word(budget)
            .word(period)
            .word(extra_refills)
            .word(badge)
            .word(flags)
    }

    pub fn sched_context_bind(cap: CPtr) -> Invocation {
        Invocation::new(Label::SchedContextBind).cap(cap)
    }

    pub fn sched_context_unbind() -> Invocation {
        Invocation::new(Label::SchedContextUnbind)
    }

    pub fn sched_context_unbind_object(cap: CPtr) -> Invocation {
        Invocation::new(Label::SchedContextUnbindObject).cap(cap)
    }

    pub fn sched_context_consumed() -> Invocation {
        Invocation::new(Label::SchedContextConsumed)
    }

    pub fn sched_context_yield_to() -> Invocation {
        Invocation::new(Label::SchedContextYieldTo)
    }

    // --- ARM VSpace, SMC, page tables, frames, ASIDs ---------------------

    fn range(label: Label, start: u64, end: u64) -> Invocation {
        Invocation::new(label).word(start).word(end)
    }

    pub fn vspace_clean_data(start: u64, end: u64) -> Invocation {
        range(Label::ArmVSpaceCleanData, start, end)
    }

    pub fn vspace_invalidate_data(start: u64, end: u64) -> Invocation {
        range(Label::ArmVSpaceInvalidateData, start, end)
    }

    pub fn vspace_clean_invalidate_data(start: u64, end: u64) -> Invocation {
        range(Label::ArmVSpaceCleanInvalidateData, start, end)
    }

    pub fn vspace_unify_instruction(start: u64, end: u64) -> Invocation {
        range(Label::ArmVSpaceUnifyInstruction, start, end)
    }

    pub fn smc_call(args: &SmcContext) -> Invocation {
        let mut inv = Invocation::new(Label::ArmSmcCall);
        for w in args.x {
            inv = inv.word(w);
        }
        inv
    }

    pub fn page_table_map(vspace: CPtr, vaddr: u64, attr: u64) -> Invocation {
        Invocation::new(Label::ArmPageTableMap)
            .cap(vspace)
            .word(vaddr)
            .word(attr)
    }

    pub fn page_table_unmap() -> Invocation {
        Invocation::new(Label::ArmPageTableUnmap)
    }

    pub fn page_map(vspace: CPtr, vaddr: u64, rights: CapRights, attr: u64) -> Invocation {
        Invocation::new(Label::ArmPageMap)
            .cap(vspace)
            .word(vaddr)
            .word(rights.0)
            .word(attr)
    }

    pub fn page_unmap() -> Invocation {
        Invocation::new(Label::ArmPageUnmap)
    }

    pub fn page_clean_data(start_offset: u64, end_offset: u64) -> Invocation {
        range(Label::ArmPageCleanData, start_offset, end_offset)
    }

    pub fn page_invalidate_data(start_offset: u64, end_offset: u64) -> Invocation {
        range(Label::ArmPageInvalidateData, start_offset, end_offset)
    }

    pub fn page_clean_invalidate_data(start_offset: u64, end_offset: u64) -> Invocation {
        range(Label::ArmPageCleanInvalidateData, start_offset, end_offset)
    }

    pub fn page_unify_instruction(start_offset: u64, end_offset: u64) -> Invocation {
        range(Label::ArmPageUnifyInstruction, start_offset, end_offset)
    }

    pub fn page_get_address() -> Invocation {
        Invocation::new(Label::ArmPageGetAddress)
    }

    pub fn asid_control_make_pool(untyped: CPtr, root: CPtr, index: u64, depth: u8) -> Invocation {
        Invocation::new(Label::ArmAsidControlMakePool)
            .cap(untyped)
            .cap(root)
            .word(index)
            .word(u64::from(depth))
    }

    pub fn asid_pool_assign(vspace: CPtr) -> Invocation {
        Invocation::new(Label::ArmAsidPoolAssign).cap(vspace)
    }

    // --- VCPU ------------------------------------------------------------

    pub fn vcpu_set_tcb(tcb: CPtr) -> Invocation {
        Invocation::new(Label::ArmVcpuSetTcb).cap(tcb)
    }

    /// One word: virq (16 bits) at 0, priority at 16, group at 24, index
    /// at 32 (each Uint8 aligned to 8 bits).
    pub fn vcpu_inject_irq(virq: u16, priority: u8, group: u8, index: u8) -> Invocation {
        Invocation::new(Label::ArmVcpuInjectIrq).word(
            u64::from(virq)
                | u64::from(priority) << 16
                | u64::from(group) << 24
                | u64::from(index) << 32,
        )
    }

    pub fn vcpu_read_reg(field: u64) -> Invocation {
        Invocation::new(Label::ArmVcpuReadReg).word(field)
    }

    pub fn vcpu_write_reg(field: u64, value: u64) -> Invocation {
        Invocation::new(Label::ArmVcpuWriteReg)
            .word(field)
            .word(value)
    }

    pub fn vcpu_ack_vppi(irq: u64) -> Invocation {
        Invocation::new(Label::ArmVcpuAckVppi).word(irq)
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use crate::host::{self, HostKernel, Regs};
    use crate::user_context::{SmcContext, UserContext};
    use septa_abi::{CapRights, ObjectType};
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::vec;
    use std::vec::Vec;

    fn c(n: u64) -> CPtr {
        CPtr::from_bits(n)
    }

    /// (label, words, caps) of an invocation, for compact comparisons.
    fn shape(inv: &Invocation) -> (Label, Vec<u64>, Vec<u64>) {
        (
            inv.label(),
            inv.words().to_vec(),
            inv.caps().iter().map(|c| c.bits()).collect(),
        )
    }

    // The expected layouts below are written from the libsel4 16.0.0
    // generated stubs for aarch64 MCS (argument order of the XML files,
    // caps split out, small arguments bit-packed).

    #[test]
    fn untyped_and_cnode_layouts() {
        assert_eq!(
            shape(&untyped_retype(ObjectType::Endpoint, 0, c(2), 0, 0, 100, 3)),
            (Label::UntypedRetype, vec![2, 0, 0, 0, 100, 3], vec![2])
        );
        assert_eq!(
            shape(&cnode_mint(
                10,
                64,
                c(2),
                20,
                64,
                CapRights::new(false, true, true, true),
                0xbeef
            )),
            (
                Label::CNodeMint,
                vec![10, 64, 20, 64, 0b0111, 0xbeef],
                vec![2]
            )
        );
        assert_eq!(
            shape(&cnode_copy(1, 8, c(3), 2, 9, CapRights::ALL)),
            (Label::CNodeCopy, vec![1, 8, 2, 9, 0xf], vec![3])
        );
        assert_eq!(
            shape(&cnode_move(1, 8, c(3), 2, 9)),
            (Label::CNodeMove, vec![1, 8, 2, 9], vec![3])
        );
        assert_eq!(
            shape(&cnode_mutate(1, 8, c(3), 2, 9, 7)),
            (Label::CNodeMutate, vec![1, 8, 2, 9, 7], vec![3])
        );
        assert_eq!(
            shape(&cnode_rotate(1, 2, 3, c(4), 5, 6, 7, c(8), 9, 10)),
            (
                Label::CNodeRotate,
                vec![1, 2, 3, 5, 6, 7, 9, 10],
                vec![4, 8]
            )
        );
        assert_eq!(
            shape(&cnode_revoke(5, 64)),
            (Label::CNodeRevoke, vec![5, 64], vec![])
        );
        assert_eq!(shape(&cnode_delete(5, 64)).0, Label::CNodeDelete);
        assert_eq!(
            shape(&cnode_cancel_badged_sends(5, 64)).0,
            Label::CNodeCancelBadgedSends
        );
    }

    #[test]
    fn tcb_layouts() {
        assert_eq!(
            shape(&tcb_read_registers(true, 0x5, 36)),
            (Label::TcbReadRegisters, vec![0x501, 36], vec![])
        );
        let regs = UserContext {
            pc: 0x20_0000,
            sp: 0x1000,
            spsr: 5,
            ..Default::default()
        };
        assert_eq!(
            shape(&tcb_write_registers(true, 0, 3, &regs)),
            (
                Label::TcbWriteRegisters,
                vec![1, 3, 0x20_0000, 0x1000, 5],
                vec![]
            )
        );
        assert_eq!(tcb_write_registers(false, 0, 36, &regs).words().len(), 38);
        assert_eq!(
            shape(&tcb_copy_registers(c(9), true, false, true, true, 0x2)),
            (Label::TcbCopyRegisters, vec![0b1101 | 0x200], vec![9])
        );
        assert_eq!(
            shape(&tcb_configure(c(2), 0x41, c(3), 0, 0x7000, c(10))),
            (Label::TcbConfigure, vec![0x41, 0, 0x7000], vec![2, 3, 10])
        );
        assert_eq!(
            shape(&tcb_set_priority(c(1), 100)),
            (Label::TcbSetPriority, vec![100], vec![1])
        );
        assert_eq!(
            shape(&tcb_set_mc_priority(c(1), 200)),
            (Label::TcbSetMcPriority, vec![200], vec![1])
        );
        assert_eq!(
            shape(&tcb_set_sched_params(c(1), 254, 100, c(14), c(20))),
            (Label::TcbSetSchedParams, vec![254, 100], vec![1, 14, 20])
        );
        assert_eq!(
            shape(&tcb_set_timeout_endpoint(c(7))),
            (Label::TcbSetTimeoutEndpoint, vec![], vec![7])
        );
        assert_eq!(
            shape(&tcb_set_ipc_buffer(0x9000, c(10))),
            (Label::TcbSetIpcBuffer, vec![0x9000], vec![10])
        );
        assert_eq!(
            shape(&tcb_set_space(c(5), c(2), 0, c(3), 0)),
            (Label::TcbSetSpace, vec![0, 0], vec![5, 2, 3])
        );
        assert_eq!(shape(&tcb_suspend()), (Label::TcbSuspend, vec![], vec![]));
        assert_eq!(shape(&tcb_resume()), (Label::TcbResume, vec![], vec![]));
        assert_eq!(
            shape(&tcb_bind_notification(c(12))),
            (Label::TcbBindNotification, vec![], vec![12])
        );
        assert_eq!(
            shape(&tcb_unbind_notification()).0,
            Label::TcbUnbindNotification
        );
        assert_eq!(
            shape(&tcb_set_tls_base(0x1234)),
            (Label::TcbSetTlsBase, vec![0x1234], vec![])
        );
        assert_eq!(
            shape(&tcb_set_flags(1, 2)),
            (Label::TcbSetFlags, vec![1, 2], vec![])
        );
    }

    #[test]
    fn irq_domain_and_sched_layouts() {
        assert_eq!(
            shape(&irq_control_get(33, c(2), 138, 64)),
            (Label::IrqIssueIrqHandler, vec![33, 138, 64], vec![2])
        );
        assert_eq!(
            shape(&irq_control_get_trigger(33, 1, c(2), 138, 64)),
            (
                Label::ArmIrqIssueIrqHandlerTrigger,
                vec![33, 1, 138, 64],
                vec![2]
            )
        );
        assert_eq!(
            shape(&irq_control_issue_sgi_signal(1, 0, c(2), 140, 64)),
            (Label::ArmIrqIssueSgiSignal, vec![1, 0, 140, 64], vec![2])
        );
        assert_eq!(
            shape(&irq_handler_ack()),
            (Label::IrqAckIrq, vec![], vec![])
        );
        assert_eq!(
            shape(&irq_handler_set_notification(c(11))),
            (Label::IrqSetIrqHandler, vec![], vec![11])
        );
        assert_eq!(shape(&irq_handler_clear()).0, Label::IrqClearIrqHandler);
        assert_eq!(
            shape(&domain_set_set(3, c(1))),
            (Label::DomainSetSet, vec![3], vec![1])
        );
        assert_eq!(
            shape(&domain_schedule_configure(2, 1, 500)),
            (Label::DomainScheduleConfigure, vec![2, 1, 500], vec![])
        );
        assert_eq!(
            shape(&domain_schedule_set_start(4)),
            (Label::DomainScheduleSetStart, vec![4], vec![])
        );
        assert_eq!(
            shape(&sched_control_configure_flags(
                c(30),
                1000,
                2000,
                0,
                0x55,
                0
            )),
            (
                Label::SchedControlConfigureFlags,
                vec![1000, 2000, 0, 0x55, 0],
                vec![30]
            )
        );
        assert_eq!(
            shape(&sched_context_bind(c(6))),
            (Label::SchedContextBind, vec![], vec![6])
        );
        assert_eq!(shape(&sched_context_unbind()).0, Label::SchedContextUnbind);
        assert_eq!(
            shape(&sched_context_unbind_object(c(6))),
            (Label::SchedContextUnbindObject, vec![], vec![6])
        );
        assert_eq!(
            shape(&sched_context_consumed()).0,
            Label::SchedContextConsumed
        );
        assert_eq!(
            shape(&sched_context_yield_to()).0,
            Label::SchedContextYieldTo
        );
    }

    #[test]
    fn arm_memory_layouts() {
        assert_eq!(
            shape(&vspace_clean_data(0x1000, 0x2000)),
            (Label::ArmVSpaceCleanData, vec![0x1000, 0x2000], vec![])
        );
        assert_eq!(
            shape(&vspace_invalidate_data(1, 2)).0,
            Label::ArmVSpaceInvalidateData
        );
        assert_eq!(
            shape(&vspace_clean_invalidate_data(1, 2)).0,
            Label::ArmVSpaceCleanInvalidateData
        );
        assert_eq!(
            shape(&vspace_unify_instruction(1, 2)).0,
            Label::ArmVSpaceUnifyInstruction
        );
        assert_eq!(
            shape(&page_table_map(c(3), 0x4000_0000, 3)),
            (Label::ArmPageTableMap, vec![0x4000_0000, 3], vec![3])
        );
        assert_eq!(shape(&page_table_unmap()).0, Label::ArmPageTableUnmap);
        assert_eq!(
            shape(&page_map(
                c(3),
                0x20_0000,
                CapRights::new(false, false, true, false),
                7
            )),
            (Label::ArmPageMap, vec![0x20_0000, 0b10, 7], vec![3])
        );
        assert_eq!(shape(&page_unmap()).0, Label::ArmPageUnmap);
        assert_eq!(
            shape(&page_clean_data(0, 64)),
            (Label::ArmPageCleanData, vec![0, 64], vec![])
        );
        assert_eq!(
            shape(&page_invalidate_data(0, 64)).0,
            Label::ArmPageInvalidateData
        );
        assert_eq!(
            shape(&page_clean_invalidate_data(0, 64)).0,
            Label::ArmPageCleanInvalidateData
        );
        assert_eq!(
            shape(&page_unify_instruction(0, 64)).0,
            Label::ArmPageUnifyInstruction
        );
        assert_eq!(shape(&page_get_address()).0, Label::ArmPageGetAddress);
        assert_eq!(
            shape(&asid_control_make_pool(c(20), c(2), 50, 64)),
            (Label::ArmAsidControlMakePool, vec![50, 64], vec![20, 2])
        );
        assert_eq!(
            shape(&asid_pool_assign(c(3))),
            (Label::ArmAsidPoolAssign, vec![], vec![3])
        );
        let args = SmcContext {
            x: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        assert_eq!(
            shape(&smc_call(&args)),
            (Label::ArmSmcCall, vec![1, 2, 3, 4, 5, 6, 7, 8], vec![])
        );
    }

    #[test]
    fn vcpu_layouts() {
        assert_eq!(
            shape(&vcpu_set_tcb(c(266))),
            (Label::ArmVcpuSetTcb, vec![], vec![266])
        );
        assert_eq!(
            shape(&vcpu_inject_irq(0x1b, 0xa0, 1, 3)),
            (
                Label::ArmVcpuInjectIrq,
                vec![0x1b | 0xa0 << 16 | 1 << 24 | 3 << 32],
                vec![]
            )
        );
        assert_eq!(
            shape(&vcpu_read_reg(11)),
            (Label::ArmVcpuReadReg, vec![11], vec![])
        );
        assert_eq!(
            shape(&vcpu_write_reg(18, 0xdead)),
            (Label::ArmVcpuWriteReg, vec![18, 0xdead], vec![])
        );
        assert_eq!(
            shape(&vcpu_ack_vppi(27)),
            (Label::ArmVcpuAckVppi, vec![27], vec![])
        );
    }

    #[test]
    fn message_info_counts_words_and_caps() {
        let inv = tcb_set_sched_params(c(1), 254, 100, c(14), c(20));
        let info = inv.info();
        assert_eq!(
            (info.label(), info.extra_caps(), info.length()),
            (Label::TcbSetSchedParams.number(), 3, 2)
        );
    }

    /// What the fake kernel saw: registers, buffered words, extra caps.
    type Seen = Rc<RefCell<Vec<(Regs, Vec<u64>, [u64; 3])>>>;

    /// A kernel that checks what `perform` put in registers and buffer.
    struct Fake {
        seen: Seen,
        reply: (MessageInfo, Vec<u64>),
    }

    impl HostKernel for Fake {
        fn syscall(&mut self, regs: &mut Regs) {
            let len = MessageInfo(regs.x[1]).length() as usize;
            let buffered: Vec<u64> = (4..len).map(ipc_buffer::get_mr).collect();
            let caps = [0, 1, 2].map(ipc_buffer::get_cap_or_badge);
            self.seen.borrow_mut().push((*regs, buffered, caps));
            let (info, words) = &self.reply;
            regs.x[1] = info.0;
            for (i, w) in words.iter().enumerate() {
                if i < 4 {
                    regs.x[2 + i] = *w;
                } else {
                    ipc_buffer::set_mr(i, *w);
                }
            }
        }
    }

    fn fake(info: MessageInfo, words: &[u64]) -> Seen {
        let seen = Rc::new(RefCell::new(Vec::new()));
        host::install_ipc_buffer();
        host::set_kernel(Box::new(Fake {
            seen: seen.clone(),
            reply: (info, words.to_vec()),
        }));
        seen
    }

    #[test]
    fn perform_splits_words_between_registers_and_buffer() {
        let seen = fake(MessageInfo::new(0, 0, 0, 0), &[]);
        let inv = cnode_mint(10, 64, c(2), 20, 64, CapRights::ALL, 0xbeef);
        perform(c(0x99), &inv).unwrap();
        let (regs, buffered, caps) = seen.borrow()[0].clone();
        assert_eq!(regs.syscall(), septa_abi::syscall::CALL);
        assert_eq!(regs.x[0], 0x99);
        assert_eq!(MessageInfo(regs.x[1]), inv.info());
        assert_eq!(&regs.x[2..6], &[10, 64, 20, 64]);
        assert_eq!(buffered, vec![0xf, 0xbeef]);
        assert_eq!(caps[0], 2);
    }

    #[test]
    fn perform_decodes_errors_with_details_beyond_the_registers() {
        // FailedLookup, guard mismatch: five words, the last in the buffer.
        fake(MessageInfo::new(6, 0, 0, 5), &[1, 4, 20, 3, 2]);
        let err = perform(c(1), &tcb_resume()).unwrap_err();
        assert_eq!(
            err,
            Error::FailedLookup {
                was_source: true,
                failure: crate::error::LookupFailure::GuardMismatch {
                    bits_left: 20,
                    guard_found: 3,
                    bits_found: 2
                }
            }
        );
    }

    #[test]
    fn perform_returns_long_replies() {
        let words: Vec<u64> = (100..108).collect();
        fake(MessageInfo::new(0, 0, 0, 8), &words);
        let reply = perform(c(7), &smc_call(&SmcContext::default())).unwrap();
        assert_eq!((0..8).map(|i| reply.mr(i)).collect::<Vec<_>>(), words);
    }
}
