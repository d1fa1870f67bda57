//! The rest: the initial capabilities (DebugCapIdentify), DebugNameThread,
//! Yield, the SMC capability (src/arch/arm/object/smc.c) and the domain
//! capability (src/object/domain.c). SMC and domain cases run last: they
//! touch machine-wide state (firmware, the domain schedule).

use septa_abi::kernel_config::{cap_tag, DOMAIN_DURATION_BITS, NUM_DOMAINS, NUM_DOMAIN_SCHEDULES};
use septa_abi::{init_cap, Label, CONFIG};
use septa_sel4::cap::cap_type::*;
use septa_sel4::invocation::Invocation;
use septa_sel4::{syscall, Cap, Error, SmcContext};

use crate::cases::util::{raw, settle, ALL};
use crate::env::{self, Cx};
use crate::report::Outcome;
use crate::thread::{self, mail, post, Spawn};
use crate::{check, check_eq, check_err, needs, ok, Case};

pub const LABELS: &[Label] = &[
    Label::ArmSmcCall,
    Label::DomainSetSet,
    Label::DomainScheduleConfigure,
    Label::DomainScheduleSetStart,
];

/// Run first: what the kernel handed over.
pub const CASES: &[Case] = &[
    Case {
        name: "debug/identify-initial-caps",
        run: initial_caps,
    },
    Case {
        name: "debug/identify-bootinfo-regions",
        run: bootinfo_regions,
    },
    Case {
        name: "debug/identify-empty-and-unresolvable",
        run: identify_empty,
    },
    Case {
        name: "debug/name-thread",
        run: name_thread,
    },
    Case {
        name: "syscall/yield-returns",
        run: yield_returns,
    },
    Case {
        name: "harness/joined-thread-stays-stopped",
        run: joined_thread_stays_stopped,
    },
];

/// Run last.
pub const LATE_CASES: &[Case] = &[
    Case {
        name: "smc/psci-version",
        run: psci_version,
    },
    Case {
        name: "smc/badge-restricts-function",
        run: smc_badge,
    },
    Case {
        name: "smc/badged-cap-cannot-be-rebadged",
        run: smc_rebadge,
    },
    Case {
        name: "smc/truncated",
        run: smc_truncated,
    },
    Case {
        name: "smc/illegal-operation",
        run: smc_illegal,
    },
    Case {
        name: "domain/set-thread-domain",
        run: domain_set,
    },
    Case {
        name: "domain/set-errors",
        run: domain_set_errors,
    },
    Case {
        name: "domain/schedule-configure",
        run: schedule_configure,
    },
    Case {
        name: "domain/schedule-configure-errors",
        run: schedule_configure_errors,
    },
    Case {
        name: "domain/schedule-set-start",
        run: schedule_start,
    },
    Case {
        name: "domain/illegal-operation",
        run: domain_illegal,
    },
    Case {
        name: "domain/schedule-runs-each-domain-in-turn",
        run: domains_in_turn,
    },
];

fn initial_caps(cx: &mut Cx) -> Outcome {
    needs!(CONFIG.debug_build(), "the debug calls (KernelDebugBuild)");
    use init_cap::*;
    let table = [
        (NULL, cap_tag::NULL),
        (TCB, cap_tag::THREAD),
        (CNODE, cap_tag::CNODE),
        (VSPACE, cap_tag::VSPACE),
        (IRQ_CONTROL, cap_tag::IRQ_CONTROL),
        (ASID_CONTROL, cap_tag::ASID_CONTROL),
        (ASID_POOL, cap_tag::ASID_POOL),
        (IO_PORT_CONTROL, cap_tag::NULL),
        (IO_SPACE, cap_tag::NULL),
        (BOOT_INFO_FRAME, cap_tag::FRAME),
        (IPC_BUFFER, cap_tag::FRAME),
        (DOMAIN, cap_tag::DOMAIN),
        (SMMU_SID_CONTROL, cap_tag::NULL),
        (SMMU_CB_CONTROL, cap_tag::NULL),
        (SCHED_CONTEXT, cap_tag::SCHED_CONTEXT),
        (SMC, cap_tag::SMC),
    ];
    for (slot, tag) in table {
        check_eq!(cx.identify(Cap::<Unspecified>::from_bits(slot)), tag, slot);
    }
    Ok(())
}

fn bootinfo_regions(cx: &mut Cx) -> Outcome {
    needs!(CONFIG.debug_build(), "the debug calls (KernelDebugBuild)");
    let bi = env::bootinfo();
    let raw_bi = bi.raw();
    let regions = [
        (
            "userImagePaging",
            raw_bi.user_image_paging,
            cap_tag::PAGE_TABLE,
        ),
        ("extraBIPages", raw_bi.extra_bi_pages, cap_tag::FRAME),
        ("schedcontrol", raw_bi.sched_control, cap_tag::SCHED_CONTROL),
        ("userImageFrames", raw_bi.user_image_frames, cap_tag::FRAME),
        ("untyped", raw_bi.untyped, cap_tag::UNTYPED),
    ];
    for (what, r, tag) in regions {
        for slot in [r.start, r.end - 1] {
            check_eq!(
                cx.identify(Cap::<Unspecified>::from_bits(slot)),
                tag,
                (what, slot)
            );
        }
    }
    check_eq!(
        raw_bi.init_thread_cnode_size_bits,
        u64::from(septa_abi::ROOT_CNODE_SIZE_BITS)
    );
    check_eq!(
        (raw_bi.node_id, raw_bi.num_nodes),
        (0, 1),
        "node id and count"
    );
    check_eq!(
        raw_bi.empty.end,
        1 << septa_abi::ROOT_CNODE_SIZE_BITS,
        "end of the empty region"
    );
    Ok(())
}

fn identify_empty(cx: &mut Cx) -> Outcome {
    needs!(CONFIG.debug_build(), "the debug calls (KernelDebugBuild)");
    let s = cx.slot()?;
    check_eq!(
        cx.identify(Cap::<Unspecified>::from_cptr(s)),
        cap_tag::NULL,
        "an empty slot"
    );
    // An address that does not resolve identifies as the null cap.
    let bad: Cap<Unspecified> = Cap::from_bits(1 << 63);
    check_eq!(cx.identify(bad), cap_tag::NULL, "an unresolvable address");
    Ok(())
}

fn name_thread(cx: &mut Cx) -> Outcome {
    needs!(CONFIG.debug_build(), "the debug calls (KernelDebugBuild)");
    let t = thread::spawn(cx, Spawn::new(|_| {}, 0).suspended())?;
    // A debug aid: success is the kernel not halting.
    syscall::debug_name_thread(t.tcb, "conformance-child");
    syscall::debug_name_thread(cx.root_tcb(), "conformance");
    check_eq!(cx.identify(t.tcb), cap_tag::THREAD);
    Ok(())
}

fn yield_returns(cx: &mut Cx) -> Outcome {
    for _ in 0..3 {
        syscall::yield_now();
    }
    check_eq!(cx.identify(cx.root_tcb()), cap_tag::THREAD);
    Ok(())
}

/// The suite's own threads: a joined thread never runs again, so its worker
/// may start the next. The root, above its threads, wakes at a thread's
/// `done` signal while that thread is still runnable (it has yet to suspend
/// itself); were it left so, it would run again on the stack the worker's
/// next thread uses as soon as the root let lower priorities run. Here the
/// next thread is below it, so it would run first, and stop the newcomer.
fn joined_thread_stays_stopped(cx: &mut Cx) -> Outcome {
    let first = thread::spawn(cx, Spawn::new(post_mark, 1))?;
    first.join()?;
    thread::next_round()?;
    let below = thread::DEFAULT_PRIO - 1;
    let second = thread::spawn(cx, Spawn::new(post_mark, 2).prio(below))?;
    check_eq!(second.worker, first.worker, "the worker is reused");
    settle(cx)?;
    check_eq!(mail(0), 2, "the second thread ran");
    second.join()
}

/// Posts its argument in mail 0.
fn post_mark(v: u64) {
    post(0, v);
}

/// SMCCC function id of PSCI_VERSION, answered by QEMU's PSCI emulation
/// (`virt` with EL2 and no EL3 firmware uses the SMC conduit).
const PSCI_VERSION: u64 = 0x8400_0000;
/// PSCI_FEATURES: only ever sent where the kernel refuses it first.
const PSCI_FEATURES: u64 = 0x8400_000a;
/// What QEMU 7.2's `virt` answers to PSCI_VERSION: PSCI 1.1 (major in bits
/// 16 and up, minor below). Observed on a real seL4 16.0.0 kernel.
const QEMU_PSCI_1_1: u64 = 0x1_0001;

fn psci_args() -> SmcContext {
    SmcContext {
        x: [PSCI_VERSION, 1, 2, 3, 4, 5, 6, 7],
    }
}

fn psci_version(cx: &mut Cx) -> Outcome {
    let out = ok!(cx.smc().call(&psci_args()));
    // x0 is the answer; PSCI leaves x1..x7 as they were.
    check_eq!(out.x, [QEMU_PSCI_1_1, 1, 2, 3, 4, 5, 6, 7]);
    let reply = ok!(cx
        .smc()
        .invoke(&septa_sel4::invocation::build::smc_call(&psci_args())));
    check_eq!(
        reply.info.length(),
        SmcContext::WORDS as u64,
        "reply length"
    );
    Ok(())
}

fn smc_badge(cx: &mut Cx) -> Outcome {
    // A badged SMC cap allows exactly the function id of its badge.
    let only_version = cx.mint(cx.smc(), ALL, PSCI_VERSION)?;
    ok!(only_version.call(&psci_args()));
    let mut other = psci_args();
    other.x[0] = PSCI_FEATURES;
    check_err!(only_version.call(&other), Error::IllegalOperation);
    Ok(())
}

fn smc_rebadge(cx: &mut Cx) -> Outcome {
    let badged = cx.mint(cx.smc(), ALL, PSCI_VERSION)?;
    let slot = cx.slot()?;
    let root = cx.root_cnode();
    check_err!(
        root.mint(
            slot,
            env::ROOT_DEPTH,
            root,
            badged.cptr(),
            env::ROOT_DEPTH,
            ALL,
            PSCI_FEATURES
        ),
        Error::IllegalOperation
    );
    Ok(())
}

fn smc_truncated(cx: &mut Cx) -> Outcome {
    let seven = raw(Label::ArmSmcCall, &[PSCI_VERSION, 0, 0, 0, 0, 0, 0]);
    check_err!(cx.smc().invoke(&seven), Error::TruncatedMessage);
    Ok(())
}

fn smc_illegal(cx: &mut Cx) -> Outcome {
    check_err!(
        cx.smc().invoke(&Invocation::new(Label::ArmPageMap)),
        Error::IllegalOperation
    );
    Ok(())
}

fn domain_set(cx: &mut Cx) -> Outcome {
    let t = thread::spawn(cx, Spawn::new(|_| {}, 0))?;
    ok!(cx.domain().set(0, t.tcb));
    t.join()?;
    Ok(())
}

fn domain_set_errors(cx: &mut Cx) -> Outcome {
    let t = thread::spawn(cx, Spawn::new(|_| {}, 0).suspended())?;
    let d = cx.domain();
    check_err!(
        d.set(NUM_DOMAINS as u8, t.tcb),
        Error::InvalidArgument { index: 0 }
    );
    let ep = cx.endpoint()?;
    check_err!(d.set(0, ep.cast()), Error::InvalidArgument { index: 1 });
    check_err!(
        d.invoke(&Invocation::new(Label::DomainSetSet).cap(t.tcb.cptr())),
        Error::TruncatedMessage
    );
    check_err!(
        d.invoke(&raw(Label::DomainSetSet, &[0])),
        Error::TruncatedMessage
    );
    Ok(())
}

/// The one real entry of the boot schedule: domain 0 for the longest time.
const BOOT_DURATION: u64 = u64::MAX >> (64 - DOMAIN_DURATION_BITS);

fn schedule_configure(cx: &mut Cx) -> Outcome {
    // Writing back what the kernel booted with.
    ok!(cx.domain().schedule_configure(0, 0, BOOT_DURATION));
    Ok(())
}

fn schedule_configure_errors(cx: &mut Cx) -> Outcome {
    let d = cx.domain();
    // The last entry must stay an end marker.
    let last = NUM_DOMAIN_SCHEDULES - 2;
    check_err!(
        d.schedule_configure(last + 1, 0, 100),
        Error::RangeError { min: 0, max: last }
    );
    check_err!(
        d.schedule_configure(0, NUM_DOMAINS as u8, 100),
        Error::RangeError {
            min: 0,
            max: NUM_DOMAINS - 1
        }
    );
    check_err!(
        d.schedule_configure(0, 0, BOOT_DURATION + 1),
        Error::InvalidArgument { index: 2 }
    );
    // The start entry may not become an end marker.
    check_err!(
        d.schedule_configure(0, 0, 0),
        Error::InvalidArgument { index: 2 }
    );
    check_err!(
        d.invoke(&raw(Label::DomainScheduleConfigure, &[0, 0])),
        Error::TruncatedMessage
    );
    Ok(())
}

fn schedule_start(cx: &mut Cx) -> Outcome {
    let d = cx.domain();
    check_err!(
        d.schedule_set_start(NUM_DOMAIN_SCHEDULES),
        Error::RangeError {
            min: 0,
            max: NUM_DOMAIN_SCHEDULES - 1
        }
    );
    // Entry 1 is the end marker.
    check_err!(d.schedule_set_start(1), Error::InvalidArgument { index: 0 });
    check_err!(
        d.invoke(&Invocation::new(Label::DomainScheduleSetStart)),
        Error::TruncatedMessage
    );
    ok!(d.schedule_set_start(0));
    // The root still runs, in domain 0.
    syscall::yield_now();
    let t = thread::spawn(cx, Spawn::new(|_| {}, 0))?;
    t.join()?;
    Ok(())
}

fn domain_illegal(cx: &mut Cx) -> Outcome {
    check_err!(
        cx.domain().invoke(&Invocation::new(Label::TcbSuspend)),
        Error::IllegalOperation
    );
    Ok(())
}

/// Ticks of the generic timer per millisecond (62.5 MHz).
const TICKS_PER_MS: u64 = septa_abi::kernel_config::mcs::TIMER_CLOCK_HZ / 1000;

/// The physical count (exported to EL0 in every configuration).
fn now() -> u64 {
    septa_pmu::system_counter()
}

/// A schedule of two domains, 2 ms each: a thread of domain 1 that never
/// blocks, at a priority above the root's, runs only in domain 1's turns,
/// and the root (domain 0) runs in its own turns although a higher-priority
/// thread is always ready. Without domains the root would starve.
fn domains_in_turn(cx: &mut Cx) -> Outcome {
    fn spinner(_: u64) {
        loop {
            post(1, mail(1) + 1);
        }
    }
    let d = cx.domain();
    let turn = 2 * TICKS_PER_MS;
    ok!(d.schedule_configure(0, 0, turn));
    ok!(d.schedule_configure(1, 1, turn));
    // Entry 2 is an end marker since boot; start at entry 0 now.
    ok!(d.schedule_set_start(0));
    let t = thread::spawn(cx, Spawn::new(spinner, 0).prio(200).suspended())?;
    ok!(d.set(1, t.tcb));
    ok!(cx.root_tcb().set_priority(cx.root_tcb(), 100));
    ok!(t.tcb.resume());
    // Sample the spinner's counter in pairs a short spin apart, for at
    // least ten turns (20 ms) and at least SAMPLES samples: counted in
    // samples, not only in time, so that a loaded host that stalls QEMU
    // (whose counter follows the host's clock) cannot end the run before
    // the root had its turns. A root that starves stays in the loop until
    // the time limit.
    const SAMPLES: u64 = 1000;
    let (mut samples, mut moved) = (0u64, 0u64);
    let start = now();
    while (samples < SAMPLES || now() - start < 10 * turn) && now() - start < 100 * turn {
        let a = mail(1);
        for _ in 0..100 {
            core::hint::black_box(0);
        }
        moved += (mail(1) != a) as u64;
        samples += 1;
    }
    let elapsed_ms = (now() - start) / TICKS_PER_MS;
    let runs = mail(1);
    ok!(t.tcb.suspend());
    // The boot schedule back: one entry, domain 0 for ever.
    ok!(d.schedule_configure(1, 0, 0));
    ok!(d.schedule_configure(0, 0, BOOT_DURATION));
    ok!(d.schedule_set_start(0));
    check!(runs > 0, "the domain-1 thread never ran");
    check!(
        samples >= SAMPLES,
        "the root barely ran: {samples} samples in {elapsed_ms} ms"
    );
    // Within the root's turns the spinner stands still; only a pair that
    // straddles a switch sees it move.
    check!(
        moved * 10 < samples,
        "the spinner ran during the root's domain: {moved} of {samples} samples"
    );
    Ok(())
}
