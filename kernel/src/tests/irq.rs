//! Interrupts: issuing handlers and SGI signals, the IRQ state machine,
//! the per-IRQ kernel slots in the derivation tree, delivery and Ack.
//!
//! The kernel's IRQ slots live in the arena (the machine double says
//! where); the machine double records masking, unmasking, trigger changes
//! and SGIs, and `irq::test_log` the signals delivered.

use super::*;
use crate::invocation::ReplyWords;
use crate::machine::{self, Op};
use crate::object::irq::{
    decode_irq_control_invocation, decode_irq_handler_invocation, decode_sgi_signal_invocation,
    handle_interrupt, irq_slot, irq_state, test_log, IrqState, IRQ_COUNT,
};
use septa_abi::irq::{KERNEL_TIMER, MAX_IRQ, VGIC_MAINTENANCE, VTIMER_EVENT};

/// Where the IRQ slots go in the arena: above the root CNode, below the
/// device untyped (which the kernel never touches).
const IRQ_NODE_OFFSET: u64 = 0x2_0000;
const NTFN: u64 = 10;
const HANDLER: u64 = 20;
const SPARE: u64 = 30;
/// A shared peripheral interrupt (a virtio-mmio line on QEMU `virt`).
const SPI: u64 = 48;

fn setup() -> Fixture {
    machine::reset();
    crate::object::irq::reset_for_test();
    let fx = Fixture::new(20);
    let node = fx.arena.phys_base + IRQ_NODE_OFFSET;
    memory::zero(node, IRQ_COUNT as u64 * crate::cte::SLOT_BYTES);
    machine::set_irq_node(node);
    fx.retype(UT, ObjectType::Notification, 0, NTFN, 2).unwrap();
    machine::take_log();
    test_log::take();
    fx
}

fn control(fx: &Fixture, label: Label, args: &[u64], with_root: bool) -> Result<(), Exception> {
    let extra = [fx.root_slot];
    let n = usize::from(with_root);
    decode_irq_control_invocation(
        &Invocation::new(label.number(), args, &extra[..n]),
        fx.slot(IRQ),
        &mut ReplyWords::default(),
    )
}

fn issue(fx: &Fixture, irq: u64, dest: u64) -> Result<(), Exception> {
    control(fx, Label::IrqIssueIrqHandler, &[irq, dest, D], true)
}

fn handler(fx: &Fixture, slot: u64, label: Label, extra: &[u64]) -> Result<(), Exception> {
    let slots: Vec<SlotRef> = extra.iter().map(|&i| fx.slot(i)).collect();
    decode_irq_handler_invocation(
        &Invocation::new(label.number(), &[], &slots),
        &fx.cap(slot),
        fx.slot(slot),
        &mut ReplyWords::default(),
    )
}

fn syscall_err(r: Result<(), Exception>) -> SyscallError {
    match r {
        Err(Exception::Syscall(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn ntfn_paddr(fx: &Fixture, slot: u64) -> u64 {
    fx.cap(slot).object_paddr().unwrap()
}

#[test]
fn the_timer_and_the_reserved_ppis_start_active_everything_else_inactive() {
    let _fx = setup();
    assert_eq!(irq_state(KERNEL_TIMER), Some(IrqState::Timer));
    assert_eq!(irq_state(VGIC_MAINTENANCE), Some(IrqState::Reserved));
    assert_eq!(irq_state(VTIMER_EVENT), Some(IrqState::Reserved));
    let inactive = (0..=MAX_IRQ)
        .filter(|&i| irq_state(i) == Some(IrqState::Inactive))
        .count();
    assert_eq!(inactive, IRQ_COUNT - 3);
    assert_eq!(irq_state(MAX_IRQ + 1), None);
}

#[test]
fn issuing_a_handler_activates_and_unmasks_the_irq() {
    let fx = setup();
    issue(&fx, SPI, HANDLER).unwrap();
    assert_eq!(fx.cap(HANDLER), Cap::IrqHandler { irq: SPI });
    assert_eq!(irq_state(SPI), Some(IrqState::Signal));
    assert_eq!(machine::take_log(), [Op::Unmask(SPI as u16)]);
    assert!(crate::cte::is_mdb_parent_of(fx.slot(IRQ), fx.slot(HANDLER)));
    assert!(fx.slot(HANDLER).mdb().revocable);
    check_links(&fx);
    // Once only.
    assert_eq!(
        syscall_err(issue(&fx, SPI, SPARE)),
        SyscallError::RevokeFirst
    );
}

#[test]
fn issue_reports_sel4s_errors_in_sel4s_order() {
    let fx = setup();
    assert_eq!(
        syscall_err(control(&fx, Label::IrqAckIrq, &[SPI, HANDLER, D], true)),
        SyscallError::IllegalOperation
    );
    assert_eq!(
        syscall_err(control(
            &fx,
            Label::IrqIssueIrqHandler,
            &[SPI, HANDLER],
            true
        )),
        SyscallError::TruncatedMessage
    );
    assert_eq!(
        syscall_err(control(
            &fx,
            Label::IrqIssueIrqHandler,
            &[SPI, HANDLER, D],
            false
        )),
        SyscallError::TruncatedMessage
    );
    // Out of range, checked before anything else about the IRQ or slot.
    let range = SyscallError::RangeError {
        min: 0,
        max: MAX_IRQ,
    };
    assert_eq!(syscall_err(issue(&fx, MAX_IRQ + 1, NTFN)), range);
    assert_eq!(syscall_err(issue(&fx, u64::MAX, NTFN)), range);
    assert_eq!(range.reply().words(), &[0, 159]);
    // The kernel's own IRQs are active: RevokeFirst, before the slot.
    for irq in [KERNEL_TIMER, VGIC_MAINTENANCE, VTIMER_EVENT] {
        assert_eq!(
            syscall_err(issue(&fx, irq, NTFN)),
            SyscallError::RevokeFirst
        );
    }
    // The destination: lookup errors, then an occupied slot.
    assert_eq!(
        syscall_err(control(
            &fx,
            Label::IrqIssueIrqHandler,
            &[SPI, HANDLER, 0],
            true
        )),
        SyscallError::RangeError { min: 1, max: 64 }
    );
    assert_eq!(
        syscall_err(control(
            &fx,
            Label::IrqIssueIrqHandler,
            &[SPI, HANDLER, 4],
            true
        )),
        crate::cspace::lookup_target_slot(&fx.root_cap(), HANDLER, 4).unwrap_err()
    );
    assert_eq!(
        syscall_err(issue(&fx, SPI, NTFN)),
        SyscallError::DeleteFirst
    );
    assert_eq!(irq_state(SPI), Some(IrqState::Inactive));
    assert!(
        machine::take_log().is_empty(),
        "a refused issue touches nothing"
    );
    // The highest IRQ is fine.
    issue(&fx, MAX_IRQ, HANDLER).unwrap();
}

#[test]
fn a_gic_with_fewer_lines_lowers_the_range() {
    let fx = setup();
    machine::set_irq_lines(64);
    assert_eq!(
        syscall_err(issue(&fx, 64, HANDLER)),
        SyscallError::RangeError { min: 0, max: 63 }
    );
    issue(&fx, 63, HANDLER).unwrap();
}

#[test]
fn issue_with_trigger_sets_the_trigger_first() {
    let fx = setup();
    let get = |irq, edge, dest, n: usize| {
        let args = [irq, edge, dest, D];
        control(&fx, Label::ArmIrqIssueIrqHandlerTrigger, &args[..n], true)
    };
    assert_eq!(
        syscall_err(get(SPI, 1, HANDLER, 3)),
        SyscallError::TruncatedMessage
    );
    assert_eq!(
        syscall_err(get(MAX_IRQ + 1, 1, HANDLER, 4)),
        SyscallError::RangeError {
            min: 0,
            max: MAX_IRQ
        }
    );
    assert_eq!(
        syscall_err(get(KERNEL_TIMER, 1, HANDLER, 4)),
        SyscallError::RevokeFirst
    );
    assert_eq!(syscall_err(get(SPI, 1, NTFN, 4)), SyscallError::DeleteFirst);
    assert!(machine::take_log().is_empty());
    get(SPI, 7, HANDLER, 4).unwrap();
    assert_eq!(
        machine::take_log(),
        [Op::Trigger(SPI as u16, true), Op::Unmask(SPI as u16)]
    );
    get(SPI + 1, 0, SPARE, 4).unwrap();
    assert_eq!(
        machine::take_log(),
        [
            Op::Trigger(SPI as u16 + 1, false),
            Op::Unmask(SPI as u16 + 1)
        ]
    );
    assert_eq!(fx.cap(SPARE), Cap::IrqHandler { irq: SPI + 1 });
}

#[test]
fn sgi_signal_caps_are_issued_checked_and_raise_their_sgi() {
    let fx = setup();
    let sgi = |args: &[u64], with_root| control(&fx, Label::ArmIrqIssueSgiSignal, args, with_root);
    assert_eq!(
        syscall_err(sgi(&[3, 0, HANDLER], true)),
        SyscallError::TruncatedMessage
    );
    assert_eq!(
        syscall_err(sgi(&[3, 0, HANDLER, D], false)),
        SyscallError::TruncatedMessage
    );
    assert_eq!(
        syscall_err(sgi(&[16, 0, HANDLER, D], true)),
        SyscallError::RangeError { min: 0, max: 15 }
    );
    assert_eq!(
        syscall_err(sgi(&[3, 8, HANDLER, D], true)),
        SyscallError::InvalidArgument { index: 1 }
    );
    assert_eq!(
        syscall_err(sgi(&[3, 0, NTFN, D], true)),
        SyscallError::DeleteFirst
    );
    sgi(&[15, 7, HANDLER, D], true).unwrap();
    let cap = fx.cap(HANDLER);
    assert_eq!(cap, Cap::SgiSignal { irq: 15, target: 7 });
    assert!(crate::cte::is_mdb_parent_of(fx.slot(IRQ), fx.slot(HANDLER)));
    // SGIs have no IRQ state; the same SGI may be issued again.
    sgi(&[15, 7, SPARE, D], true).unwrap();
    assert!(machine::take_log().is_empty());
    decode_sgi_signal_invocation(&cap).unwrap();
    assert_eq!(machine::take_log(), [Op::SendSgi(15, 7)]);
    // Revoking IRQ control takes them back.
    fx.revoke(IRQ).unwrap();
    assert!(fx.slot(HANDLER).is_empty() && fx.slot(SPARE).is_empty());
}

#[test]
fn set_notification_checks_the_cap_and_its_send_right() {
    let fx = setup();
    issue(&fx, SPI, HANDLER).unwrap();
    assert_eq!(
        syscall_err(handler(&fx, HANDLER, Label::IrqSetIrqHandler, &[])),
        SyscallError::TruncatedMessage
    );
    assert_eq!(
        syscall_err(handler(&fx, HANDLER, Label::IrqSetIrqHandler, &[IRQ])),
        SyscallError::InvalidCapability { index: 0 }
    );
    // A notification cap without the send (write) right.
    fx.mint(SPARE, NTFN, CapRights::new(false, false, true, false), 0)
        .unwrap();
    assert_eq!(
        syscall_err(handler(&fx, HANDLER, Label::IrqSetIrqHandler, &[SPARE])),
        SyscallError::InvalidCapability { index: 0 }
    );
    assert!(irq_slot(SPI).is_empty());
    assert_eq!(
        syscall_err(handler(&fx, HANDLER, Label::IrqIssueIrqHandler, &[NTFN])),
        SyscallError::IllegalOperation
    );
}

#[test]
fn an_interrupt_signals_with_the_badge_and_stays_masked_until_ack() {
    let fx = setup();
    issue(&fx, SPI, HANDLER).unwrap();
    fx.mint(SPARE, NTFN, CapRights::ALL, 0x40).unwrap();
    handler(&fx, HANDLER, Label::IrqSetIrqHandler, &[SPARE]).unwrap();
    // The kernel slot holds a copy, a child of the badged original.
    assert_eq!(irq_slot(SPI).cap(), fx.cap(SPARE));
    assert!(crate::cte::is_mdb_parent_of(fx.slot(SPARE), irq_slot(SPI)));
    machine::take_log();

    assert_eq!(handle_interrupt(SPI as u16), IrqState::Signal);
    assert_eq!(test_log::take(), [(ntfn_paddr(&fx, NTFN), 0x40)]);
    assert_eq!(machine::take_log(), [Op::Mask(SPI as u16)]);
    handler(&fx, HANDLER, Label::IrqAckIrq, &[]).unwrap();
    assert_eq!(machine::take_log(), [Op::Unmask(SPI as u16)]);

    // Pointing it elsewhere replaces the cap in the slot.
    handler(&fx, HANDLER, Label::IrqSetIrqHandler, &[NTFN + 1]).unwrap();
    handle_interrupt(SPI as u16);
    assert_eq!(test_log::take(), [(ntfn_paddr(&fx, NTFN + 1), 0)]);
    assert_eq!(irq_slot(SPI).cap(), fx.cap(NTFN + 1));
    assert!(!fx.slot(SPARE).is_empty(), "the caller's cap stays");
    check_links(&fx);

    // Cleared: the interrupt is masked but nobody hears of it.
    handler(&fx, HANDLER, Label::IrqClearIrqHandler, &[]).unwrap();
    assert!(irq_slot(SPI).is_empty());
    machine::take_log();
    assert_eq!(handle_interrupt(SPI as u16), IrqState::Signal);
    assert!(test_log::take().is_empty());
    assert_eq!(machine::take_log(), [Op::Mask(SPI as u16)]);
}

#[test]
fn revoking_the_notification_clears_the_handler() {
    let fx = setup();
    issue(&fx, SPI, HANDLER).unwrap();
    fx.mint(SPARE, NTFN, CapRights::ALL, 5).unwrap();
    handler(&fx, HANDLER, Label::IrqSetIrqHandler, &[SPARE]).unwrap();
    fx.revoke(SPARE).unwrap();
    assert!(
        irq_slot(SPI).is_empty(),
        "the kernel slot's copy was a child"
    );
    handle_interrupt(SPI as u16);
    assert!(test_log::take().is_empty());
    assert_eq!(irq_state(SPI), Some(IrqState::Signal));
    check_links(&fx);
}

#[test]
fn deleting_the_last_handler_cap_deactivates_the_irq() {
    let fx = setup();
    issue(&fx, SPI, HANDLER).unwrap();
    handler(&fx, HANDLER, Label::IrqSetIrqHandler, &[NTFN]).unwrap();
    fx.copy(SPARE, HANDLER, CapRights::ALL).unwrap();
    machine::take_log();
    // A copy goes: the IRQ stays active.
    fx.delete(SPARE).unwrap();
    assert_eq!(irq_state(SPI), Some(IrqState::Signal));
    assert!(!irq_slot(SPI).is_empty());
    assert!(machine::take_log().is_empty());
    // The last one goes: slot emptied, IRQ inactive and masked.
    fx.delete(HANDLER).unwrap();
    assert!(irq_slot(SPI).is_empty());
    assert_eq!(irq_state(SPI), Some(IrqState::Inactive));
    assert_eq!(machine::take_log(), [Op::Mask(SPI as u16)]);
    check_links(&fx);
    // It can be issued again; a stray interrupt meanwhile is masked.
    handle_interrupt(SPI as u16);
    assert_eq!(machine::take_log(), [Op::Mask(SPI as u16)]);
    issue(&fx, SPI, HANDLER).unwrap();
    // Revoking IRQ control does the same for every handler.
    issue(&fx, SPI + 1, SPARE).unwrap();
    fx.revoke(IRQ).unwrap();
    assert_eq!(irq_state(SPI), Some(IrqState::Inactive));
    assert_eq!(irq_state(SPI + 1), Some(IrqState::Inactive));
}

#[test]
fn kernel_and_unknown_interrupts_are_handed_back_or_masked() {
    let _fx = setup();
    assert_eq!(handle_interrupt(KERNEL_TIMER as u16), IrqState::Timer);
    assert_eq!(handle_interrupt(VTIMER_EVENT as u16), IrqState::Reserved);
    assert!(
        machine::take_log().is_empty(),
        "the kernel's own IRQs are not masked here"
    );
    assert_eq!(handle_interrupt(SPI as u16), IrqState::Inactive);
    assert_eq!(handle_interrupt(1000), IrqState::Inactive);
    assert_eq!(machine::take_log(), [Op::Mask(SPI as u16), Op::Mask(1000)]);
    assert!(test_log::take().is_empty());
}
