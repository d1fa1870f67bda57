//! What a thread at EL0 may touch without the kernel, as seL4 16.0.0 sets
//! it up for Microkit's configurations (`armv_init_user_access`,
//! `SCTLR_EL1_NATIVE`), and how the traps it may not are reported:
//!
//! - user cache maintenance (`AArch64UserCacheEnable`): `dc cvac`,
//!   `dc civac`, `dc cvau`, `ic ivau` and reading CTR_EL0 run at EL0;
//! - the physical counter and the EL1 physical timer are exported
//!   (`KernelArmExportPCNTUser`, `KernelArmExportPTMRUser`);
//! - the virtual counter and timer are not: reading them traps, and a hyp
//!   kernel reports a trapped system register access of a thread, VCPU or
//!   not, as a VCPU fault carrying the syndrome (src/arch/arm/64/traps.S
//!   `lower_el_sync`, `handleVCPUFault`);
//! - the PMU is exported in the benchmark configuration only
//!   (`KernelArmExportPMUUser`, with the cycle counter running:
//!   `arm_init_ccnt`); elsewhere reading PMCCNTR_EL0 traps like the
//!   virtual timer;
//! - what the kernel hands out of the GIC: only the first page of the
//!   distributor, CPU interface and hypervisor control interface stay the
//!   kernel's (`kernel_device_frames`), the virtual CPU interface is a
//!   device untyped a VMM can map.
//!
//! Each thread runs with a fault handler, so a trap that should not happen
//! arrives as a fault message and fails the case with its label.

use septa_abi::fault as labels;
use septa_abi::kernel_config::mcs::TIMER_CLOCK_HZ;
use septa_abi::Label;
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::{syscall, Cap, VmAttributes};

use crate::cases::fault::{esr, fault_ep};
use crate::cases::util::settle;
use crate::env::{self, Cx};
use crate::report::Outcome;
use crate::space::{self, map_frame};
use crate::thread::{self, mail, post, Spawn};
use crate::{check, check_eq, fail, ok, Case};

pub const LABELS: &[Label] = &[];

pub const CASES: &[Case] = &[
    Case {
        name: "el0/cache-maintenance-and-ctr",
        run: cache_maintenance,
    },
    Case {
        name: "el0/physical-counter-and-timer",
        run: physical_timer,
    },
    Case {
        name: "el0/virtual-timer-traps-as-vcpu-fault",
        run: virtual_timer_traps,
    },
    Case {
        name: "el0/gic-frames-the-kernel-keeps-and-hands-out",
        run: gic_frames,
    },
    Case {
        name: "el0/pmu-cycle-counter-in-benchmark-only",
        run: pmu_cycle_counter,
    },
];

/// Where a worker maps the GIC's virtual CPU interface.
const GICV_VADDR: u64 = 0x1040_0000;
/// GICV_IIDR: the interface's identification register.
const GICV_IIDR: u64 = 0xfc;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    use core::arch::asm;

    /// The four user cache maintenance instructions on the line holding
    /// `addr`, then CTR_EL0.
    pub fn cache_ops(addr: u64) -> u64 {
        let ctr: u64;
        // SAFETY: cache maintenance by address on memory the thread maps;
        // it changes no memory contents. CTR_EL0 is only read.
        unsafe {
            asm!(
                "dc cvac, {a}",
                "dc civac, {a}",
                "dc cvau, {a}",
                "ic ivau, {a}",
                "dsb ish",
                "isb",
                "mrs {ctr}, ctr_el0",
                a = in(reg) addr,
                ctr = out(reg) ctr,
                options(nostack),
            );
        }
        ctr
    }

    /// CNTFRQ_EL0 and two readings of CNTPCT_EL0.
    pub fn physical_count() -> (u64, u64, u64) {
        let (f, a, b): (u64, u64, u64);
        // SAFETY: reads of the generic timer's frequency and count.
        unsafe {
            asm!(
                "mrs {f}, cntfrq_el0",
                "isb",
                "mrs {a}, cntpct_el0",
                "isb",
                "mrs {b}, cntpct_el0",
                f = out(reg) f,
                a = out(reg) a,
                b = out(reg) b,
                options(nostack, nomem),
            );
        }
        (f, a, b)
    }

    /// Arms the EL1 physical timer (masked) `ticks` ahead and waits until
    /// its condition is met; returns CNTP_CTL_EL0 then, and switches it
    /// off. At most `spins` reads.
    pub fn physical_timer(ticks: u64, spins: u64) -> u64 {
        let ctl: u64;
        // SAFETY: programs the EL1 physical timer, which the kernel
        // exported to EL0 and does not use itself (it keeps the EL2 one).
        unsafe {
            asm!(
                "isb",
                "mrs {t}, cntpct_el0",
                "add {t}, {t}, {ticks}",
                "msr cntp_cval_el0, {t}",
                "mov {t}, #3",          // ENABLE, IMASK
                "msr cntp_ctl_el0, {t}",
                "isb",
                "2: mrs {ctl}, cntp_ctl_el0",
                "tbnz {ctl}, #2, 3f",   // ISTATUS
                "subs {spins}, {spins}, #1",
                "b.ne 2b",
                "3: msr cntp_ctl_el0, xzr",
                "isb",
                ticks = in(reg) ticks,
                spins = inout(reg) spins => _,
                t = out(reg) _,
                ctl = out(reg) ctl,
                options(nostack, nomem),
            );
        }
        ctl
    }

    /// `mrs x9, cntv_ctl_el0` at the returned address (a register EL0 may
    /// not read); returns once a handler moved the thread past it.
    pub fn read_cntv_ctl() -> u64 {
        let pc: u64;
        // SAFETY: a trapped system register read; the handler skips it.
        unsafe {
            asm!(
                "adr {pc}, 2f",
                "2: mrs x9, cntv_ctl_el0",
                pc = out(reg) pc,
                out("x9") _,
                options(nostack, nomem),
            );
        }
        pc
    }

    /// Two readings of PMCCNTR_EL0 around `spins` loop iterations, by
    /// `mrs x9` at the returned address for the first (a handler that
    /// finds it trapped moves the thread past both).
    pub fn read_cycles(spins: u64) -> (u64, u64, u64) {
        let (pc, a, b): (u64, u64, u64);
        // SAFETY: reads of the cycle counter; trapped, the handler skips
        // the first and the second traps again the same way.
        unsafe {
            asm!(
                "adr {pc}, 2f",
                "2: mrs x9, pmccntr_el0",
                "mov {a}, x9",
                "3: subs {spins}, {spins}, #1",
                "b.ne 3b",
                "mrs x9, pmccntr_el0",
                "mov {b}, x9",
                pc = out(reg) pc,
                a = out(reg) a,
                b = out(reg) b,
                spins = inout(reg) spins => _,
                out("x9") _,
                options(nostack, nomem),
            );
        }
        (pc, a, b)
    }

    /// A 32-bit read of device memory at `addr`.
    pub fn read32(addr: u64) -> u32 {
        // SAFETY: the case maps the frame at `addr` before the thread runs.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp {
    const HOST: &str = "EL0 instructions only run on the target";
    pub fn cache_ops(_: u64) -> u64 {
        unreachable!("{HOST}")
    }
    pub fn physical_count() -> (u64, u64, u64) {
        unreachable!("{HOST}")
    }
    pub fn physical_timer(_: u64, _: u64) -> u64 {
        unreachable!("{HOST}")
    }
    pub fn read_cntv_ctl() -> u64 {
        unreachable!("{HOST}")
    }
    pub fn read32(_: u64) -> u32 {
        unreachable!("{HOST}")
    }
    pub fn read_cycles(_: u64) -> (u64, u64, u64) {
        unreachable!("{HOST}")
    }
}

/// A line of data for the cache operations (in the shared image).
static LINE: [u64; 8] = [0x5eb7a; 8];

/// The ISS of a trapped `mrs x9, cntv_ctl_el0` (EC 0x18): Op0 3, Op2 1,
/// Op1 3, CRn 14, Rt 9, CRm 3, read.
const CNTV_CTL_READ_ISS: u64 = 3 << 20 | 1 << 17 | 3 << 14 | 14 << 10 | 9 << 5 | 3 << 1 | 1;
/// The ISS of a trapped `mrs x9, pmccntr_el0`: Op0 3, Op2 0, Op1 3, CRn 9,
/// Rt 9, CRm 13, read.
const PMCCNTR_READ_ISS: u64 = 3 << 20 | 3 << 14 | 9 << 10 | 9 << 5 | 13 << 1 | 1;
/// Exception class of a trapped MSR/MRS.
const EC_SYSREG: u64 = 0x18;

/// Mail word a thread's body sets last, when it got through.
const DONE: usize = 31;

/// Waits for `t` to finish, failing the case with the fault message if it
/// faulted instead (its handler is the endpoint `ep`, minted with a
/// non-zero badge, so a message is told from none by the badge).
fn no_fault(cx: &mut Cx, t: &thread::Thread, ep: Cap<Endpoint>, r: Cap<Reply>) -> Outcome {
    for _ in 0..100 {
        let (info, badge) = syscall::nb_recv(ep.cptr(), r);
        if badge != 0 {
            fail!(
                "the thread faulted: label {} {:x?}",
                info.label(),
                Fault::from_ipc_buffer(info)
            );
        }
        if mail(DONE) != 0 {
            return t.join();
        }
        settle(cx)?;
    }
    fail!("the thread neither finished nor faulted")
}

fn cache_maintenance(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let ctr = imp::cache_ops(LINE.as_ptr() as u64);
        post(1, ctr);
        post(2, LINE[0]);
        post(DONE, 1);
    }
    let (ep, handler, r) = fault_ep(cx, 0x71)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    no_fault(cx, &t, ep, r)?;
    let ctr = mail(1);
    // CTR_EL0: bit 31 is RES1; DminLine (bits 16..20) is a real line size.
    check!(ctr >> 31 & 1 == 1, "CTR_EL0 {ctr:#x}: bit 31 is RES1");
    check!((ctr >> 16) & 0xf >= 2, "CTR_EL0 {ctr:#x}: DminLine");
    check_eq!(
        mail(2),
        0x5eb7a,
        "the line's data after clean and invalidate"
    );
    Ok(())
}

fn physical_timer(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let (f, a, b) = imp::physical_count();
        post(1, f);
        post(2, a);
        post(3, b);
        // 1000 ticks (16 us) ahead; QEMU gets there long before the spins
        // run out.
        post(4, imp::physical_timer(1000, 1 << 24));
        post(DONE, 1);
    }
    let (ep, handler, r) = fault_ep(cx, 0x72)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    no_fault(cx, &t, ep, r)?;
    check_eq!(mail(1), TIMER_CLOCK_HZ, "CNTFRQ_EL0");
    check!(
        mail(3) >= mail(2),
        "CNTPCT_EL0 went back: {} then {}",
        mail(2),
        mail(3)
    );
    // ENABLE, IMASK and ISTATUS: the timer reached its compare value.
    check_eq!(mail(4), 0b111, "CNTP_CTL_EL0 once the timer fired");
    Ok(())
}

fn virtual_timer_traps(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        post(1, imp::read_cntv_ctl());
    }
    let (ep, handler, r) = fault_ep(cx, 0x73)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    let (info, badge) = syscall::recv(ep.cptr(), r);
    // The thread has no VCPU; the label is still VCPUFault, as in seL4.
    check_eq!(
        (info.label(), info.length(), badge),
        (labels::VCPU_FAULT, 1, 0x73)
    );
    let hsr = EC_SYSREG << esr::EC_SHIFT | esr::IL | CNTV_CTL_READ_ISS;
    check_eq!(Fault::from_ipc_buffer(info), Fault::VcpuFault { hsr });
    crate::cases::fault::skip_instruction(&t)?;
    crate::cases::util::reply(r, 0, &[]);
    t.join()?;
    check!(mail(1) != 0, "the thread went on past the trapped read");
    Ok(())
}

fn gic_frames(cx: &mut Cx) -> Outcome {
    let compatible = "arm,cortex-a15-gic";
    let Some(gicv) = env::fdt_device(compatible, 3) else {
        fail!("the device tree names no GIC virtual CPU interface");
    };
    // Distributor, CPU interface, hypervisor control: the first page is the
    // kernel's, the next is device memory handed out.
    for i in 0..3 {
        let Some(base) = env::fdt_device(compatible, i) else {
            fail!("the device tree names no GIC register window {i}");
        };
        check!(
            env::device_untyped_covering(base).is_none(),
            "{base:#x}: the kernel's page of GIC window {i} is an untyped"
        );
        check!(
            env::device_untyped_covering(base + space::PAGE).is_some(),
            "{:#x}: the rest of GIC window {i} is no device untyped",
            base + space::PAGE
        );
    }
    check!(
        env::device_untyped_covering(gicv).is_some(),
        "{gicv:#x}: the virtual CPU interface is no device untyped"
    );
    // Mapped in a worker, it reads like a GIC CPU interface.
    fn body(_: u64) {
        post(1, u64::from(imp::read32(GICV_VADDR + GICV_IIDR)));
        post(2, 1);
        post(DONE, 1);
    }
    let frame: Cap<SmallPage> = env::device_frame_at(cx, gicv)?;
    let (ep, handler, r) = fault_ep(cx, 0x74)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler).suspended())?;
    let pool = cx.pool();
    map_frame(
        cx,
        pool,
        space::vspace(t.worker),
        frame,
        GICV_VADDR,
        space::rw(),
        VmAttributes::NONE,
    )?;
    ok!(t.tcb.resume());
    no_fault(cx, &t, ep, r)?;
    check_eq!(mail(2), 1, "the thread read the interface");
    // GICV_IIDR: an Arm GIC (implementer 0x43b in bits 0..12).
    check_eq!(mail(1) & 0xfff, 0x43b, "GICV_IIDR implementer");
    Ok(())
}

fn pmu_cycle_counter(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        let (_, a, b) = imp::read_cycles(10_000);
        post(1, a);
        post(2, b);
        post(DONE, 1);
    }
    let (ep, handler, r) = fault_ep(cx, 0x76)?;
    let t = thread::spawn(cx, Spawn::new(body, 0).fault(handler))?;
    if septa_abi::CONFIG.export_pmu() {
        no_fault(cx, &t, ep, r)?;
        check!(
            mail(2) > mail(1),
            "PMCCNTR_EL0 stood still: {} then {}",
            mail(1),
            mail(2)
        );
        return Ok(());
    }
    // Not exported: each read traps to the kernel, which reports it as it
    // reports any trapped system register access of a thread.
    let hsr = EC_SYSREG << esr::EC_SHIFT | esr::IL | PMCCNTR_READ_ISS;
    for _ in 0..2 {
        let (info, badge) = syscall::recv(ep.cptr(), r);
        check_eq!(
            (info.label(), info.length(), badge),
            (labels::VCPU_FAULT, 1, 0x76)
        );
        check_eq!(Fault::from_ipc_buffer(info), Fault::VcpuFault { hsr });
        crate::cases::fault::skip_instruction(&t)?;
        crate::cases::util::reply(r, 0, &[]);
    }
    t.join()?;
    check_eq!(mail(DONE), 1, "the thread went on past the trapped reads");
    Ok(())
}
