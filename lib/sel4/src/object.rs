//! The invocations of each object type, as methods on [`Cap<T>`].
//!
//! Argument order follows the seL4 16.0.0 interface XML; capability
//! arguments are typed, optional ones (`seL4_CapNull` allowed) are `Option`.
//! Each method builds its message with [`crate::invocation::build`] and
//! sends it with [`crate::invocation::perform`].

use septa_abi::{CNodeCapData, CapRights, MessageInfo, ObjectType};

use crate::cap::{cap_type::*, opt_cptr, CPtr, Cap, CapType, FrameType};
use crate::error::Error;
use crate::invocation::{build, perform, Invocation, Reply as InvocationReply};
use crate::syscall;
use crate::user_context::{SmcContext, UserContext};
use crate::Badge;

impl<T: CapType> Cap<T> {
    /// Sends a built invocation to this capability.
    pub fn invoke(self, inv: &Invocation) -> Result<InvocationReply, Error> {
        perform(self.cptr(), inv)
    }

    fn invoke_unit(self, inv: Invocation) -> Result<(), Error> {
        self.invoke(&inv).map(drop)
    }
}

/// Frame mapping attributes (`seL4_ARM_VMAttributes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmAttributes(pub u64);

impl VmAttributes {
    pub const NONE: VmAttributes = VmAttributes(0);
    pub const CACHEABLE: VmAttributes = VmAttributes(septa_abi::vm_attributes::PAGE_CACHEABLE);
    pub const PARITY_ENABLED: VmAttributes = VmAttributes(septa_abi::vm_attributes::PARITY_ENABLED);
    pub const EXECUTE_NEVER: VmAttributes = VmAttributes(septa_abi::vm_attributes::EXECUTE_NEVER);
    /// Cacheable with parity, executable: libsel4's default.
    pub const DEFAULT: VmAttributes = VmAttributes(septa_abi::vm_attributes::DEFAULT);

    pub const fn union(self, other: VmAttributes) -> VmAttributes {
        VmAttributes(self.0 | other.0)
    }
}

// --- Endpoints and notifications: the IPC system calls, typed -------------

impl Cap<Endpoint> {
    /// Call with the message in the IPC buffer.
    pub fn call(self, info: MessageInfo) -> MessageInfo {
        syscall::call(self.cptr(), info)
    }

    pub fn send(self, info: MessageInfo) {
        syscall::send(self.cptr(), info)
    }

    pub fn nb_send(self, info: MessageInfo) {
        syscall::nb_send(self.cptr(), info)
    }

    /// Blocks for a message; the caller's reply capability goes to `reply`.
    pub fn recv(self, reply: Cap<Reply>) -> (MessageInfo, Badge) {
        syscall::recv(self.cptr(), reply)
    }
}

impl Cap<Notification> {
    pub fn signal(self) {
        syscall::signal(self.cptr())
    }

    /// Blocks until signalled; returns the accumulated badge bits.
    pub fn wait(self) -> Badge {
        syscall::wait(self.cptr()).1
    }

    /// The pending badge bits, zero if none.
    pub fn poll(self) -> Badge {
        syscall::poll(self.cptr()).1
    }
}

// --- Untyped ----------------------------------------------------------------

impl Cap<Untyped> {
    /// Creates `num_objects` objects of type `ty` (size `size_bits` for the
    /// variable-sized types) in slots `node_offset..` of the CNode found at
    /// `node_index`/`node_depth` from `root`.
    #[allow(clippy::too_many_arguments)]
    pub fn retype(
        self,
        ty: ObjectType,
        size_bits: u64,
        root: Cap<CNode>,
        node_index: CPtr,
        node_depth: u64,
        node_offset: u64,
        num_objects: u64,
    ) -> Result<(), Error> {
        self.invoke_unit(build::untyped_retype(
            ty,
            size_bits,
            root.cptr(),
            node_index.bits(),
            node_depth,
            node_offset,
            num_objects,
        ))
    }
}

// --- TCB -----------------------------------------------------------------------

impl Cap<Tcb> {
    /// Reads the first `count` registers (at most 36); the rest stay zero.
    pub fn read_registers(
        self,
        suspend_source: bool,
        arch_flags: u8,
        count: u64,
    ) -> Result<UserContext, Error> {
        let reply = self.invoke(&build::tcb_read_registers(
            suspend_source,
            arch_flags,
            count,
        ))?;
        let n = (count as usize).min(septa_abi::TCB_REGISTER_COUNT);
        let mut words = [0; septa_abi::TCB_REGISTER_COUNT];
        for (i, w) in words.iter_mut().enumerate().take(n) {
            *w = reply.mr(i);
        }
        Ok(UserContext::from_words(&words))
    }

    pub fn write_registers(
        self,
        resume_target: bool,
        arch_flags: u8,
        count: u64,
        regs: &UserContext,
    ) -> Result<(), Error> {
        self.invoke_unit(build::tcb_write_registers(
            resume_target,
            arch_flags,
            count,
            regs,
        ))
    }

    pub fn copy_registers(
        self,
        source: Cap<Tcb>,
        suspend_source: bool,
        resume_target: bool,
        transfer_frame: bool,
        transfer_integer: bool,
        arch_flags: u8,
    ) -> Result<(), Error> {
        self.invoke_unit(build::tcb_copy_registers(
            source.cptr(),
            suspend_source,
            resume_target,
            transfer_frame,
            transfer_integer,
            arch_flags,
        ))
    }

    pub fn configure(
        self,
        cspace_root: Cap<CNode>,
        cspace_root_data: CNodeCapData,
        vspace_root: Cap<VSpace>,
        vspace_root_data: u64,
        buffer: u64,
        buffer_frame: Option<Cap<SmallPage>>,
    ) -> Result<(), Error> {
        self.invoke_unit(build::tcb_configure(
            cspace_root.cptr(),
            cspace_root_data.0,
            vspace_root.cptr(),
            vspace_root_data,
            buffer,
            opt_cptr(buffer_frame),
        ))
    }

    pub fn set_priority(self, authority: Cap<Tcb>, priority: u64) -> Result<(), Error> {
        self.invoke_unit(build::tcb_set_priority(authority.cptr(), priority))
    }

    pub fn set_mc_priority(self, authority: Cap<Tcb>, mcp: u64) -> Result<(), Error> {
        self.invoke_unit(build::tcb_set_mc_priority(authority.cptr(), mcp))
    }

    pub fn set_sched_params(
        self,
        authority: Cap<Tcb>,
        mcp: u64,
        priority: u64,
        sched_context: Option<Cap<SchedContext>>,
        fault_ep: Option<Cap<Endpoint>>,
    ) -> Result<(), Error> {
        self.invoke_unit(build::tcb_set_sched_params(
            authority.cptr(),
            mcp,
            priority,
            opt_cptr(sched_context),
            opt_cptr(fault_ep),
        ))
    }

    pub fn set_timeout_endpoint(
        self,
        timeout_fault_ep: Option<Cap<Endpoint>>,
    ) -> Result<(), Error> {
        self.invoke_unit(build::tcb_set_timeout_endpoint(opt_cptr(timeout_fault_ep)))
    }

    pub fn set_ipc_buffer(
        self,
        buffer: u64,
        buffer_frame: Option<Cap<SmallPage>>,
    ) -> Result<(), Error> {
        self.invoke_unit(build::tcb_set_ipc_buffer(buffer, opt_cptr(buffer_frame)))
    }

    pub fn set_space(
        self,
        fault_ep: Option<Cap<Endpoint>>,
        cspace_root: Cap<CNode>,
        cspace_root_data: CNodeCapData,
        vspace_root: Cap<VSpace>,
        vspace_root_data: u64,
    ) -> Result<(), Error> {
        self.invoke_unit(build::tcb_set_space(
            opt_cptr(fault_ep),
            cspace_root.cptr(),
            cspace_root_data.0,
            vspace_root.cptr(),
            vspace_root_data,
        ))
    }

    pub fn suspend(self) -> Result<(), Error> {
        self.invoke_unit(build::tcb_suspend())
    }

    pub fn resume(self) -> Result<(), Error> {
        self.invoke_unit(build::tcb_resume())
    }

    pub fn bind_notification(self, notification: Cap<Notification>) -> Result<(), Error> {
        self.invoke_unit(build::tcb_bind_notification(notification.cptr()))
    }

    pub fn unbind_notification(self) -> Result<(), Error> {
        self.invoke_unit(build::tcb_unbind_notification())
    }

    pub fn set_tls_base(self, tls_base: u64) -> Result<(), Error> {
        self.invoke_unit(build::tcb_set_tls_base(tls_base))
    }

    /// Clears then sets thread flags; returns the resulting flags.
    pub fn set_flags(self, clear: u64, set: u64) -> Result<u64, Error> {
        Ok(self.invoke(&build::tcb_set_flags(clear, set))?.mr(0))
    }

    // The hardware debug API: only the debug configuration has these
    // methods; elsewhere they are sent as label 0 and refused with
    // IllegalOperation (`septa_abi::Label::number`).

    /// SetBreakpoint: `ty` and `rw` as `septa_abi::hardware_debug`.
    pub fn set_breakpoint(
        self,
        bp: u64,
        vaddr: u64,
        ty: u64,
        size: u64,
        rw: u64,
    ) -> Result<(), Error> {
        self.invoke_unit(build::tcb_set_breakpoint(bp, vaddr, ty, size, rw))
    }

    /// GetBreakpoint: how breakpoint `bp` of the thread is set up.
    pub fn get_breakpoint(self, bp: u64) -> Result<Breakpoint, Error> {
        let r = self.invoke(&build::tcb_get_breakpoint(bp))?;
        Ok(Breakpoint {
            vaddr: r.mr(0),
            ty: r.mr(1),
            size: r.mr(2),
            rw: r.mr(3),
            enabled: r.mr(4) != 0,
        })
    }

    /// UnsetBreakpoint: disables and clears breakpoint `bp`.
    pub fn unset_breakpoint(self, bp: u64) -> Result<(), Error> {
        self.invoke_unit(build::tcb_unset_breakpoint(bp))
    }

    /// ConfigureSingleStepping: a debug exception after every
    /// `n_instructions` instructions (0 stops stepping); returns whether a
    /// breakpoint register was taken for it.
    pub fn configure_single_stepping(self, bp: u64, n_instructions: u64) -> Result<bool, Error> {
        let r = self.invoke(&build::tcb_configure_single_stepping(bp, n_instructions))?;
        Ok(r.mr(0) != 0)
    }
}

/// A breakpoint as GetBreakpoint reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakpoint {
    pub vaddr: u64,
    pub ty: u64,
    pub size: u64,
    pub rw: u64,
    pub enabled: bool,
}

// --- CNode -------------------------------------------------------------------

impl Cap<CNode> {
    pub fn revoke(self, index: CPtr, depth: u8) -> Result<(), Error> {
        self.invoke_unit(build::cnode_revoke(index.bits(), depth))
    }

    pub fn delete(self, index: CPtr, depth: u8) -> Result<(), Error> {
        self.invoke_unit(build::cnode_delete(index.bits(), depth))
    }

    pub fn cancel_badged_sends(self, index: CPtr, depth: u8) -> Result<(), Error> {
        self.invoke_unit(build::cnode_cancel_badged_sends(index.bits(), depth))
    }

    pub fn copy(
        self,
        dest_index: CPtr,
        dest_depth: u8,
        src_root: Cap<CNode>,
        src_index: CPtr,
        src_depth: u8,
        rights: CapRights,
    ) -> Result<(), Error> {
        self.invoke_unit(build::cnode_copy(
            dest_index.bits(),
            dest_depth,
            src_root.cptr(),
            src_index.bits(),
            src_depth,
            rights,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn mint(
        self,
        dest_index: CPtr,
        dest_depth: u8,
        src_root: Cap<CNode>,
        src_index: CPtr,
        src_depth: u8,
        rights: CapRights,
        badge: u64,
    ) -> Result<(), Error> {
        self.invoke_unit(build::cnode_mint(
            dest_index.bits(),
            dest_depth,
            src_root.cptr(),
            src_index.bits(),
            src_depth,
            rights,
            badge,
        ))
    }

    /// `move` is a Rust keyword, hence the name.
    pub fn move_(
        self,
        dest_index: CPtr,
        dest_depth: u8,
        src_root: Cap<CNode>,
        src_index: CPtr,
        src_depth: u8,
    ) -> Result<(), Error> {
        self.invoke_unit(build::cnode_move(
            dest_index.bits(),
            dest_depth,
            src_root.cptr(),
            src_index.bits(),
            src_depth,
        ))
    }

    pub fn mutate(
        self,
        dest_index: CPtr,
        dest_depth: u8,
        src_root: Cap<CNode>,
        src_index: CPtr,
        src_depth: u8,
        badge: u64,
    ) -> Result<(), Error> {
        self.invoke_unit(build::cnode_mutate(
            dest_index.bits(),
            dest_depth,
            src_root.cptr(),
            src_index.bits(),
            src_depth,
            badge,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub fn rotate(
        self,
        dest_index: CPtr,
        dest_depth: u8,
        dest_badge: u64,
        pivot_root: Cap<CNode>,
        pivot_index: CPtr,
        pivot_depth: u8,
        pivot_badge: u64,
        src_root: Cap<CNode>,
        src_index: CPtr,
        src_depth: u8,
    ) -> Result<(), Error> {
        self.invoke_unit(build::cnode_rotate(
            dest_index.bits(),
            dest_depth,
            dest_badge,
            pivot_root.cptr(),
            pivot_index.bits(),
            pivot_depth,
            pivot_badge,
            src_root.cptr(),
            src_index.bits(),
            src_depth,
        ))
    }
}

// --- IRQs ----------------------------------------------------------------------

impl Cap<IrqControl> {
    /// `IRQControl_Get`: a handler for `irq` into `root`/`index`/`depth`.
    pub fn get(self, irq: u64, root: Cap<CNode>, index: CPtr, depth: u8) -> Result<(), Error> {
        self.invoke_unit(build::irq_control_get(
            irq,
            root.cptr(),
            index.bits(),
            depth,
        ))
    }

    /// `IRQControl_GetTrigger`: as `get`, edge-triggered if `edge`.
    pub fn get_trigger(
        self,
        irq: u64,
        edge: bool,
        root: Cap<CNode>,
        index: CPtr,
        depth: u8,
    ) -> Result<(), Error> {
        self.invoke_unit(build::irq_control_get_trigger(
            irq,
            u64::from(edge),
            root.cptr(),
            index.bits(),
            depth,
        ))
    }

    /// `IRQControl_IssueSGISignal`: a capability that raises SGI `irq` on
    /// the cores in `target`.
    pub fn issue_sgi_signal(
        self,
        irq: u64,
        target: u64,
        root: Cap<CNode>,
        index: CPtr,
        depth: u8,
    ) -> Result<(), Error> {
        self.invoke_unit(build::irq_control_issue_sgi_signal(
            irq,
            target,
            root.cptr(),
            index.bits(),
            depth,
        ))
    }
}

impl Cap<IrqHandler> {
    pub fn ack(self) -> Result<(), Error> {
        self.invoke_unit(build::irq_handler_ack())
    }

    pub fn set_notification(self, notification: Cap<Notification>) -> Result<(), Error> {
        self.invoke_unit(build::irq_handler_set_notification(notification.cptr()))
    }

    pub fn clear(self) -> Result<(), Error> {
        self.invoke_unit(build::irq_handler_clear())
    }
}

// --- Domains ---------------------------------------------------------------------

impl Cap<DomainSet> {
    pub fn set(self, domain: u8, thread: Cap<Tcb>) -> Result<(), Error> {
        self.invoke_unit(build::domain_set_set(domain, thread.cptr()))
    }

    pub fn schedule_configure(self, index: u64, domain: u8, duration: u64) -> Result<(), Error> {
        self.invoke_unit(build::domain_schedule_configure(index, domain, duration))
    }

    pub fn schedule_set_start(self, index: u64) -> Result<(), Error> {
        self.invoke_unit(build::domain_schedule_set_start(index))
    }
}

// --- MCS -------------------------------------------------------------------------

/// What a scheduling context can be bound to.
pub trait SchedContextBindable: CapType {}
impl SchedContextBindable for Tcb {}
impl SchedContextBindable for Notification {}

impl Cap<SchedControl> {
    /// Budget and period in microseconds.
    pub fn configure_flags(
        self,
        sched_context: Cap<SchedContext>,
        budget: u64,
        period: u64,
        extra_refills: u64,
        badge: u64,
        flags: u64,
    ) -> Result<(), Error> {
        self.invoke_unit(build::sched_control_configure_flags(
            sched_context.cptr(),
            budget,
            period,
            extra_refills,
            badge,
            flags,
        ))
    }
}

impl Cap<SchedContext> {
    pub fn bind<T: SchedContextBindable>(self, object: Cap<T>) -> Result<(), Error> {
        self.invoke_unit(build::sched_context_bind(object.cptr()))
    }

    pub fn unbind(self) -> Result<(), Error> {
        self.invoke_unit(build::sched_context_unbind())
    }

    pub fn unbind_object<T: SchedContextBindable>(self, object: Cap<T>) -> Result<(), Error> {
        self.invoke_unit(build::sched_context_unbind_object(object.cptr()))
    }

    /// Time consumed since the last query, in microseconds.
    pub fn consumed(self) -> Result<u64, Error> {
        Ok(self.invoke(&build::sched_context_consumed())?.mr(0))
    }

    /// Lets the bound thread run now; returns the time it consumed.
    pub fn yield_to(self) -> Result<u64, Error> {
        Ok(self.invoke(&build::sched_context_yield_to())?.mr(0))
    }
}

// --- Address spaces ----------------------------------------------------------

impl Cap<VSpace> {
    pub fn clean_data(self, start: u64, end: u64) -> Result<(), Error> {
        self.invoke_unit(build::vspace_clean_data(start, end))
    }

    pub fn invalidate_data(self, start: u64, end: u64) -> Result<(), Error> {
        self.invoke_unit(build::vspace_invalidate_data(start, end))
    }

    pub fn clean_invalidate_data(self, start: u64, end: u64) -> Result<(), Error> {
        self.invoke_unit(build::vspace_clean_invalidate_data(start, end))
    }

    pub fn unify_instruction(self, start: u64, end: u64) -> Result<(), Error> {
        self.invoke_unit(build::vspace_unify_instruction(start, end))
    }
}

impl Cap<PageTable> {
    pub fn map(self, vspace: Cap<VSpace>, vaddr: u64, attr: VmAttributes) -> Result<(), Error> {
        self.invoke_unit(build::page_table_map(vspace.cptr(), vaddr, attr.0))
    }

    pub fn unmap(self) -> Result<(), Error> {
        self.invoke_unit(build::page_table_unmap())
    }
}

impl<F: FrameType> Cap<F> {
    pub fn map(
        self,
        vspace: Cap<VSpace>,
        vaddr: u64,
        rights: CapRights,
        attr: VmAttributes,
    ) -> Result<(), Error> {
        self.invoke_unit(build::page_map(vspace.cptr(), vaddr, rights, attr.0))
    }

    pub fn unmap(self) -> Result<(), Error> {
        self.invoke_unit(build::page_unmap())
    }

    pub fn clean_data(self, start_offset: u64, end_offset: u64) -> Result<(), Error> {
        self.invoke_unit(build::page_clean_data(start_offset, end_offset))
    }

    pub fn invalidate_data(self, start_offset: u64, end_offset: u64) -> Result<(), Error> {
        self.invoke_unit(build::page_invalidate_data(start_offset, end_offset))
    }

    pub fn clean_invalidate_data(self, start_offset: u64, end_offset: u64) -> Result<(), Error> {
        self.invoke_unit(build::page_clean_invalidate_data(start_offset, end_offset))
    }

    pub fn unify_instruction(self, start_offset: u64, end_offset: u64) -> Result<(), Error> {
        self.invoke_unit(build::page_unify_instruction(start_offset, end_offset))
    }

    /// The physical address of the frame.
    pub fn get_address(self) -> Result<u64, Error> {
        Ok(self.invoke(&build::page_get_address())?.mr(0))
    }
}

impl Cap<AsidControl> {
    pub fn make_pool(
        self,
        untyped: Cap<Untyped>,
        root: Cap<CNode>,
        index: CPtr,
        depth: u8,
    ) -> Result<(), Error> {
        self.invoke_unit(build::asid_control_make_pool(
            untyped.cptr(),
            root.cptr(),
            index.bits(),
            depth,
        ))
    }
}

impl Cap<AsidPool> {
    pub fn assign(self, vspace: Cap<VSpace>) -> Result<(), Error> {
        self.invoke_unit(build::asid_pool_assign(vspace.cptr()))
    }
}

// --- SMC and VCPU --------------------------------------------------------------

impl Cap<Smc> {
    /// Makes the SMC call `args` and returns the secure monitor's x0..x7.
    pub fn call(self, args: &SmcContext) -> Result<SmcContext, Error> {
        let reply = self.invoke(&build::smc_call(args))?;
        let mut out = SmcContext::default();
        for (i, x) in out.x.iter_mut().enumerate() {
            *x = reply.mr(i);
        }
        Ok(out)
    }
}

impl Cap<Vcpu> {
    pub fn set_tcb(self, tcb: Cap<Tcb>) -> Result<(), Error> {
        self.invoke_unit(build::vcpu_set_tcb(tcb.cptr()))
    }

    pub fn inject_irq(self, virq: u16, priority: u8, group: u8, index: u8) -> Result<(), Error> {
        self.invoke_unit(build::vcpu_inject_irq(virq, priority, group, index))
    }

    /// `field` is one of [`septa_abi::vcpu_reg`].
    pub fn read_reg(self, field: u64) -> Result<u64, Error> {
        Ok(self.invoke(&build::vcpu_read_reg(field))?.mr(0))
    }

    pub fn write_reg(self, field: u64, value: u64) -> Result<(), Error> {
        self.invoke_unit(build::vcpu_write_reg(field, value))
    }

    pub fn ack_vppi(self, irq: u64) -> Result<(), Error> {
        self.invoke_unit(build::vcpu_ack_vppi(irq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{self, HostKernel, Regs};
    use std::boxed::Box;

    /// Answers every call with a fixed reply, words in MR0..3.
    struct Answer(MessageInfo, [u64; 4]);
    impl HostKernel for Answer {
        fn syscall(&mut self, regs: &mut Regs) {
            regs.x[1] = self.0 .0;
            regs.x[2..6].copy_from_slice(&self.1);
        }
    }

    fn answer(info: MessageInfo, words: [u64; 4]) {
        host::install_ipc_buffer();
        host::set_kernel(Box::new(Answer(info, words)));
    }

    #[test]
    fn results_come_from_the_reply() {
        answer(MessageInfo::new(0, 0, 0, 1), [0x4000_1000, 0, 0, 0]);
        let frame: Cap<SmallPage> = Cap::from_bits(500);
        assert_eq!(frame.get_address(), Ok(0x4000_1000));
        let tcb: Cap<Tcb> = Cap::from_bits(6);
        let regs = tcb.read_registers(false, 0, 2).unwrap();
        assert_eq!((regs.pc, regs.sp, regs.spsr), (0x4000_1000, 0, 0));
    }

    #[test]
    fn errors_surface_as_results() {
        answer(MessageInfo::new(4, 0, 0, 2), [0, 255, 0, 0]);
        let tcb: Cap<Tcb> = Cap::from_bits(6);
        assert_eq!(
            tcb.set_priority(tcb, 300),
            Err(Error::RangeError { min: 0, max: 255 })
        );
    }
}
