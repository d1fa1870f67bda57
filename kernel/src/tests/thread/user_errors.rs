//! The console line for each failed invocation (`crate::user_error`), in
//! configurations with printing.

use super::*;
use septa_abi::CONFIG;

/// What the kernel printed since the log was last taken.
fn console() -> String {
    machine::take_printed()
}

#[test]
fn a_failed_invocation_prints_where_who_and_why() {
    let s = Sys::new();
    let root = s.root.tcb;
    let _ = machine::take_log();
    crate::user_error::set_enabled(true);
    // Priority 256: out of range.
    let r = s.call(root, ROOT_TCB, Label::TcbSetPriority, &[256], &[ROOT_TCB]);
    let failed_at = root.reg(Reg::FAULT_IP);
    // Switched off, nothing.
    crate::user_error::set_enabled(false);
    s.call(root, ROOT_TCB, Label::TcbSetPriority, &[256], &[ROOT_TCB]);
    // An invalid cap to invoke (the root, without a fault handler, stops).
    crate::user_error::set_enabled(true);
    s.load(root, 0x3ff, 1, &[], &[]);
    s.syscall(root, sys::CALL);
    crate::user_error::set_enabled(false);
    let out = console();
    if !CONFIG.printing() {
        assert_eq!(out, "");
        return;
    }
    assert_ne!(r.info.label(), 0);
    // The user errors (the root's cap fault prints more, as in seL4).
    let mut lines = out.lines().filter(|l| l.starts_with("<<seL4"));
    let want = format!(
        "<<seL4(CPU 0) [decodeTCBInvocation/TcbSetPriority T{:#x} \"\" @{failed_at:x}]: ",
        root.paddr()
    );
    let first = lines.next().unwrap();
    assert!(
        first.starts_with(&want),
        "{first:?} does not start {want:?}"
    );
    assert!(first.ends_with(">>"), "{first:?}");
    let second = lines.next().unwrap();
    assert!(
        second.contains("[handleInvocation/lookup")
            && second.contains("Invocation of invalid cap #1023.>>"),
        "{second:?}"
    );
    assert_eq!(lines.next(), None);
}
