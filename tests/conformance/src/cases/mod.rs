//! The cases, one module per object or subject.
//!
//! Each module exports `CASES` (run in order) and `LABELS`, the invocation
//! labels its cases send; the host test checks that together they cover
//! every label of the configuration.
//!
//! Conventions: the expected value of every check is written next to the
//! seL4 16.0.0 source line it comes from (file and function), or says it was
//! observed on a real seL4 16.0.0 kernel of this configuration.

use septa_abi::Label;

use crate::Case;

pub mod benchmark;
pub mod cnode;
pub mod debug_api;
pub mod el0;
pub mod fault;
pub mod guest;
pub mod instr;
pub mod ipc;
pub mod irq;
pub mod misc;
pub mod ntfn;
pub mod sched;
pub mod selftest;
pub mod tcb;
pub mod untyped;
pub mod util;
pub mod vcpu;
pub mod vspace;

/// Every group, in running order.
pub const GROUPS: &[&[Case]] = &[
    selftest::CASES,
    misc::CASES,
    untyped::CASES,
    cnode::CASES,
    tcb::CASES,
    ipc::CASES,
    ntfn::CASES,
    fault::CASES,
    el0::CASES,
    debug_api::CASES,
    benchmark::CASES,
    sched::CASES,
    vspace::CASES,
    irq::CASES,
    vcpu::CASES,
    misc::LATE_CASES,
];

/// The labels the cases send.
pub fn covered_labels() -> impl Iterator<Item = Label> + Clone {
    [
        untyped::LABELS,
        cnode::LABELS,
        tcb::LABELS,
        ipc::LABELS,
        ntfn::LABELS,
        fault::LABELS,
        sched::LABELS,
        vspace::LABELS,
        irq::LABELS,
        vcpu::LABELS,
        misc::LABELS,
        debug_api::LABELS,
    ]
    .into_iter()
    .flatten()
    .copied()
}
