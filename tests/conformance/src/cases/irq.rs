//! Interrupts (src/object/interrupt.c, src/arch/arm/object/interrupt.c):
//! IRQControl issuing handlers (with and without a trigger), SGI signal
//! capabilities, IRQHandler set/clear/ack, and delivery of a real interrupt
//! (a software-generated one, the only kind a test can raise) to the
//! notification.

use septa_abi::kernel_config::{cap_tag, irq};
use septa_abi::{Label, WORD_BITS};
use septa_sel4::cap::cap_type::*;
use septa_sel4::invocation::Invocation;
use septa_sel4::{Cap, Error};

use crate::cases::util::{raw, ALL, READ};
use crate::env::{Cx, ROOT_DEPTH};
use crate::report::{Failure, Outcome};
use crate::{check_eq, check_err, ok, Case};

pub const LABELS: &[Label] = &[
    Label::IrqIssueIrqHandler,
    Label::IrqAckIrq,
    Label::IrqSetIrqHandler,
    Label::IrqClearIrqHandler,
    Label::ArmIrqIssueIrqHandlerTrigger,
    Label::ArmIrqIssueSgiSignal,
];

pub const CASES: &[Case] = &[
    Case {
        name: "irq/issue-handler",
        run: issue,
    },
    Case {
        name: "irq/issue-handler-out-of-range",
        run: issue_range,
    },
    Case {
        name: "irq/issue-handler-kernel-irqs",
        run: issue_reserved,
    },
    Case {
        name: "irq/issue-handler-destination-errors",
        run: issue_dest,
    },
    Case {
        name: "irq/issue-handler-truncated",
        run: issue_truncated,
    },
    Case {
        name: "irq/issue-handler-with-trigger",
        run: trigger,
    },
    Case {
        name: "irq/issue-handler-with-trigger-errors",
        run: trigger_errors,
    },
    Case {
        name: "irq/handler-copies-and-release",
        run: copies,
    },
    Case {
        name: "irq/handler-set-notification",
        run: set_ntfn,
    },
    Case {
        name: "irq/handler-set-notification-errors",
        run: set_ntfn_errors,
    },
    Case {
        name: "irq/handler-clear-and-ack",
        run: clear_ack,
    },
    Case {
        name: "irq/handler-illegal-operation",
        run: handler_illegal,
    },
    Case {
        name: "irq/control-illegal-operation",
        run: control_illegal,
    },
    Case {
        name: "irq/sgi-signal-cap",
        run: sgi_cap,
    },
    Case {
        name: "irq/sgi-signal-errors",
        run: sgi_errors,
    },
    Case {
        name: "irq/sgi-delivered-to-notification",
        run: sgi_delivery,
    },
    Case {
        name: "irq/cleared-handler-delivers-nothing",
        run: sgi_cleared,
    },
    Case {
        name: "irq/deleted-handler-delivers-nothing",
        run: sgi_deleted,
    },
];

/// An SPI nothing on QEMU `virt` raises.
const QUIET_SPI: u64 = 140;
/// Another one, for the trigger variant.
const QUIET_SPI_2: u64 = 141;
/// The SGI the delivery case raises.
const TEST_SGI: u64 = 1;
/// The CPU interface of the one core.
const CORE0: u64 = 0;

fn get(cx: &mut Cx, irq: u64) -> Result<Result<Cap<IrqHandler>, Error>, Failure> {
    let slot = cx.slot()?;
    Ok(cx
        .irq_control()
        .get(irq, cx.root_cnode(), slot, ROOT_DEPTH)
        .map(|()| slot.cast()))
}

fn issue(cx: &mut Cx) -> Outcome {
    let h = ok!(get(cx, QUIET_SPI)?);
    check_eq!(cx.identify(h), cap_tag::IRQ_HANDLER);
    // Active now: a second handler is refused until this one goes.
    check_err!(get(cx, QUIET_SPI)?, Error::RevokeFirst);
    ok!(cx.delete(h));
    ok!(get(cx, QUIET_SPI)?);
    Ok(())
}

fn issue_range(cx: &mut Cx) -> Outcome {
    check_err!(
        get(cx, irq::MAX_IRQ + 1)?,
        Error::RangeError {
            min: 0,
            max: irq::MAX_IRQ
        }
    );
    Ok(())
}

fn issue_reserved(cx: &mut Cx) -> Outcome {
    for n in [irq::KERNEL_TIMER, irq::VGIC_MAINTENANCE, irq::VTIMER] {
        check_err!(get(cx, n)?, Error::RevokeFirst);
    }
    Ok(())
}

fn issue_dest(cx: &mut Cx) -> Outcome {
    let ep = cx.endpoint()?;
    let control = cx.irq_control();
    let root = cx.root_cnode();
    check_err!(
        control.get(QUIET_SPI, root, ep.cptr(), ROOT_DEPTH),
        Error::DeleteFirst
    );
    let slot = cx.slot()?;
    check_err!(
        control.get(QUIET_SPI, root, slot, 0),
        Error::RangeError {
            min: 1,
            max: u64::from(WORD_BITS)
        }
    );
    Ok(())
}

fn issue_truncated(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let control = cx.irq_control();
    let two = raw(Label::IrqIssueIrqHandler, &[QUIET_SPI, slot.bits()]).cap(cx.root_cnode().cptr());
    check_err!(control.invoke(&two), Error::TruncatedMessage);
    let no_cap = raw(Label::IrqIssueIrqHandler, &[QUIET_SPI, slot.bits(), 64]);
    check_err!(control.invoke(&no_cap), Error::TruncatedMessage);
    Ok(())
}

fn trigger(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    ok!(cx
        .irq_control()
        .get_trigger(QUIET_SPI_2, true, cx.root_cnode(), slot, ROOT_DEPTH));
    check_eq!(
        cx.identify(Cap::<IrqHandler>::from_cptr(slot)),
        cap_tag::IRQ_HANDLER
    );
    let again = cx.slot()?;
    check_err!(
        cx.irq_control()
            .get_trigger(QUIET_SPI_2, false, cx.root_cnode(), again, ROOT_DEPTH),
        Error::RevokeFirst
    );
    Ok(())
}

fn trigger_errors(cx: &mut Cx) -> Outcome {
    let slot = cx.slot()?;
    let control = cx.irq_control();
    let root = cx.root_cnode();
    check_err!(
        control.get_trigger(irq::MAX_IRQ + 1, false, root, slot, ROOT_DEPTH),
        Error::RangeError {
            min: 0,
            max: irq::MAX_IRQ
        }
    );
    check_err!(
        control.get_trigger(irq::KERNEL_TIMER, false, root, slot, ROOT_DEPTH),
        Error::RevokeFirst
    );
    let three = raw(
        Label::ArmIrqIssueIrqHandlerTrigger,
        &[QUIET_SPI_2, 0, slot.bits()],
    )
    .cap(root.cptr());
    check_err!(control.invoke(&three), Error::TruncatedMessage);
    Ok(())
}

fn copies(cx: &mut Cx) -> Outcome {
    let h = ok!(get(cx, QUIET_SPI)?);
    let c = cx.copy(h, ALL)?;
    check_eq!(cx.identify(c), cap_tag::IRQ_HANDLER);
    // Deleting one of two copies keeps the IRQ taken; the last frees it.
    ok!(cx.delete(h));
    check_err!(get(cx, QUIET_SPI)?, Error::RevokeFirst);
    ok!(cx.delete(c));
    ok!(get(cx, QUIET_SPI)?);
    Ok(())
}

fn set_ntfn(cx: &mut Cx) -> Outcome {
    let h = ok!(get(cx, QUIET_SPI)?);
    let n = cx.notification()?;
    ok!(h.set_notification(n));
    let n2 = cx.notification()?;
    // Replacing the notification is allowed.
    ok!(h.set_notification(n2));
    Ok(())
}

fn set_ntfn_errors(cx: &mut Cx) -> Outcome {
    let h = ok!(get(cx, QUIET_SPI)?);
    let ep = cx.endpoint()?;
    check_err!(
        h.set_notification(ep.cast()),
        Error::InvalidCapability { index: 0 }
    );
    let n = cx.notification()?;
    let ro = cx.copy(n, READ)?;
    check_err!(
        h.set_notification(ro),
        Error::InvalidCapability { index: 0 }
    );
    check_err!(
        h.invoke(&Invocation::new(Label::IrqSetIrqHandler)),
        Error::TruncatedMessage
    );
    Ok(())
}

fn clear_ack(cx: &mut Cx) -> Outcome {
    let h = ok!(get(cx, QUIET_SPI)?);
    ok!(h.clear());
    let n = cx.notification()?;
    ok!(h.set_notification(n));
    ok!(h.ack());
    ok!(h.clear());
    ok!(h.ack());
    Ok(())
}

fn handler_illegal(cx: &mut Cx) -> Outcome {
    let h = ok!(get(cx, QUIET_SPI)?);
    check_err!(
        h.invoke(&Invocation::new(Label::IrqIssueIrqHandler)),
        Error::IllegalOperation
    );
    Ok(())
}

fn control_illegal(cx: &mut Cx) -> Outcome {
    check_err!(
        cx.irq_control().invoke(&Invocation::new(Label::IrqAckIrq)),
        Error::IllegalOperation
    );
    Ok(())
}

fn sgi(cx: &mut Cx, irq: u64, target: u64) -> Result<Result<Cap<Unspecified>, Error>, Failure> {
    let slot = cx.slot()?;
    Ok(cx
        .irq_control()
        .issue_sgi_signal(irq, target, cx.root_cnode(), slot, ROOT_DEPTH)
        .map(|()| slot.cast()))
}

fn sgi_cap(cx: &mut Cx) -> Outcome {
    let s = ok!(sgi(cx, TEST_SGI, CORE0)?);
    check_eq!(cx.identify(s), cap_tag::SGI_SIGNAL);
    // Several capabilities for one SGI are fine (it is not "active").
    ok!(sgi(cx, TEST_SGI, CORE0)?);
    Ok(())
}

fn sgi_errors(cx: &mut Cx) -> Outcome {
    check_err!(
        sgi(cx, irq::NUM_SGIS, CORE0)?,
        Error::RangeError {
            min: 0,
            max: irq::NUM_SGIS - 1
        }
    );
    check_err!(
        sgi(cx, TEST_SGI, irq::SGI_NUM_TARGETS)?,
        Error::InvalidArgument { index: 1 }
    );
    let ep = cx.endpoint()?;
    check_err!(
        cx.irq_control()
            .issue_sgi_signal(TEST_SGI, CORE0, cx.root_cnode(), ep.cptr(), ROOT_DEPTH),
        Error::DeleteFirst
    );
    let three = raw(Label::ArmIrqIssueSgiSignal, &[TEST_SGI, CORE0, 5]).cap(cx.root_cnode().cptr());
    check_err!(cx.irq_control().invoke(&three), Error::TruncatedMessage);
    Ok(())
}

fn sgi_delivery(cx: &mut Cx) -> Outcome {
    let h = ok!(get(cx, TEST_SGI)?);
    let n = cx.notification()?;
    let nb = cx.mint(n, ALL, 0x1000)?;
    ok!(h.set_notification(nb));
    let s = ok!(sgi(cx, TEST_SGI, CORE0)?);
    check_eq!(n.poll(), 0, "signalled before the SGI");
    // Any invocation of the SGI signal capability raises the SGI.
    ok!(s.invoke(&Invocation::new(Label::InvalidInvocation)));
    // The interrupt is taken as the kernel returns to user level; waiting
    // covers a late one.
    check_eq!(n.wait(), 0x1000, "badge delivered by the interrupt");
    ok!(h.ack());
    Ok(())
}

/// A handler for the test SGI, the notification it signals, and a
/// capability that raises the SGI.
type SgiSetup = (Cap<IrqHandler>, Cap<Notification>, Cap<Unspecified>);

/// Sets up the test SGI to signal a badged notification.
fn sgi_setup(cx: &mut Cx) -> Result<SgiSetup, Failure> {
    let h = ok!(get(cx, TEST_SGI)?);
    let n = cx.notification()?;
    let nb = cx.mint(n, ALL, 0x2000)?;
    ok!(h.set_notification(nb));
    let s = ok!(sgi(cx, TEST_SGI, CORE0)?);
    Ok((h, n, s))
}

fn raise(s: Cap<Unspecified>) -> Outcome {
    ok!(s.invoke(&Invocation::new(Label::InvalidInvocation)));
    // The interrupt is taken on the way back to user level; a yield gives
    // a late one another kernel exit.
    septa_sel4::syscall::yield_now();
    Ok(())
}

fn sgi_cleared(cx: &mut Cx) -> Outcome {
    let (h, n, s) = sgi_setup(cx)?;
    ok!(h.clear());
    raise(s)?;
    check_eq!(n.poll(), 0, "signalled with no notification set");
    Ok(())
}

fn sgi_deleted(cx: &mut Cx) -> Outcome {
    let (h, n, s) = sgi_setup(cx)?;
    ok!(cx.delete(h));
    raise(s)?;
    check_eq!(n.poll(), 0, "signalled after the handler was deleted");
    Ok(())
}
