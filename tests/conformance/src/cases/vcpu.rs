//! VCPUs (src/arch/arm/object/vcpu.c, include/arch/arm/armv/armv8-a/64/
//! armv/vcpu.h, src/drivers/timer/generic_timer.c, the hyp paths of
//! src/arch/arm/64/traps.S and src/arch/arm/64/kernel/vspace.c): the
//! object, its five invocations with every error, binding to a TCB, and
//! guests: threads bound to a VCPU that run the routines of
//! [`super::guest`] at EL1 and report to the case, their VMM, by faults.
//!
//! What the cases rely on of seL4's lazy VCPU switching: while the VMM (a
//! native thread) runs after its guest stopped, the guest's VCPU stays
//! loaded but disabled, so ReadReg and WriteReg reach the hardware except
//! for SCTLR, CPACR and the timer registers, which disabling saved; a
//! second guest's VCPU being loaded saves the first into its object, which
//! is what InjectIRQ's list-register check reads.
//!
//! The syndromes are composed from the Arm architecture's fields for the
//! instructions in [`super::guest`]; the kernel passes ESR_EL2 through.

use septa_abi::irq::{MAX_IRQ, VTIMER_EVENT};
use septa_abi::kernel_config::{cap_tag, PSTATE_USER, VCPU_INITIAL_SCTLR as SCTLR_EL1_VM};
use septa_abi::{syscall as nr, vcpu_reg as reg, Label, ObjectType, TCB_REGISTER_COUNT};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::invocation::Invocation;
use septa_sel4::{CNodeCapData, CPtr, Cap, Error, UserContext, VmAttributes};

use crate::cases::fault::{esr, expect_unknown_syscall, fault_ep, Handler};
use crate::cases::guest::{self, addr, Sym};
use crate::cases::util::{call_words, recv_fault, reply, RW};
use crate::env::{self, Cx};
use crate::report::{Failure, Outcome};
use crate::space::{self, map_frame, rw};
use crate::thread;
use crate::{check, check_eq, check_err, fail, ok, Case};

pub const LABELS: &[Label] = &[
    Label::ArmVcpuSetTcb,
    Label::ArmVcpuInjectIrq,
    Label::ArmVcpuReadReg,
    Label::ArmVcpuWriteReg,
    Label::ArmVcpuAckVppi,
];

pub const CASES: &[Case] = &[
    Case {
        name: "vcpu/retype-is-a-4k-aligned-object",
        run: retype,
    },
    Case {
        name: "vcpu/new-vcpu-registers",
        run: new_registers,
    },
    Case {
        name: "vcpu/read-write-every-register",
        run: every_register,
    },
    Case {
        name: "vcpu/read-write-register-errors",
        run: register_errors,
    },
    Case {
        name: "vcpu/inject-irq-errors",
        run: inject_errors,
    },
    Case {
        name: "vcpu/ack-vppi-and-errors",
        run: ack_vppi,
    },
    Case {
        name: "vcpu/set-tcb-errors",
        run: set_tcb_errors,
    },
    Case {
        name: "vcpu/other-labels-illegal",
        run: other_labels,
    },
    Case {
        name: "vcpu/binding-keeps-el1-spsr",
        run: binding_spsr,
    },
    Case {
        name: "vcpu/guest-runs-at-el1",
        run: guest_at_el1,
    },
    Case {
        name: "vcpu/guest-system-registers",
        run: guest_sysregs,
    },
    Case {
        name: "vcpu/guest-hvc-system-call",
        run: guest_syscall,
    },
    Case {
        name: "vcpu/guest-smc-and-wfi-are-vcpu-faults",
        run: guest_traps,
    },
    Case {
        name: "vcpu/guest-vm-faults-name-the-ipa",
        run: guest_vm_faults,
    },
    Case {
        name: "vcpu/guest-debug-registers-are-its-own",
        run: guest_debug,
    },
    Case {
        name: "vcpu/guest-fp-trap-goes-to-el1",
        run: guest_fp_trap,
    },
    Case {
        name: "vcpu/guest-fp-state-kept",
        run: guest_fp_state,
    },
    Case {
        name: "vcpu/two-guests-keep-their-registers",
        run: two_guests,
    },
    Case {
        name: "vcpu/virtual-timer-vppi-event",
        run: vtimer,
    },
    Case {
        name: "vcpu/inject-irq-and-vgic-maintenance",
        run: vgic,
    },
    Case {
        name: "vcpu/delete-vcpu-of-stopped-guest",
        run: delete_vcpu,
    },
    Case {
        name: "vcpu/delete-tcb-drops-the-loaded-state",
        run: delete_tcb,
    },
    Case {
        name: "vcpu/set-domain-saves-the-loaded-vcpu",
        run: set_domain,
    },
];

/// EL1h with D, A, I and F masked: how every guest starts.
const SPSR_EL1H: u64 = 0x3c5;
/// The mode field of SPSR.
const SPSR_MODE: u64 = 0x1f;
/// CurrentEL of EL1.
const CURRENT_EL1: u64 = 1 << 2;
/// CPACR_EL1.FPEN: FP/SIMD not trapped at EL1 or EL0.
const CPACR_FPEN: u64 = 3 << 20;
/// What a guest reports with: no system call number (x7).
const REPORT: u64 = 0x5e97_0000;
/// Guest-physical addresses no worker maps: each the first page of a
/// level-1 entry (1 GiB) with no table below it.
const GUEST_UNMAPPED: u64 = 0x40_0000_0000;
const GUEST_UNMAPPED_CODE: u64 = 0x40_4000_0000;
/// Where guests see the GIC virtual CPU interface.
const GUEST_GICV: u64 = 0x41_0000_0000;
/// The GIC virtual CPU interface of QEMU `virt` (GICV), which seL4 hands
/// out as device memory for a VMM to map.
const GICV_PADDR: u64 = 0x0804_0000;
/// The virtual timer's PPI on QEMU `virt` (INTERRUPT_VTIMER_EVENT).
const VTIMER_PPI: u64 = 27;
/// List registers of QEMU's GICv2 virtual interface (GICH_VTR.ListRegs + 1):
/// observed on seL4 16.0.0 (InjectIRQ's range error).
const NUM_LRS: u64 = 4;

// --- Syndromes (Arm ARM, ESR_EL2) -----------------------------------------

/// EC of a trapped WFI/WFE and of a trapped SMC from AArch64.
const EC_WFX: u64 = 0x01;
const EC_SMC64: u64 = 0x17;
const EC_FP: u64 = 0x07;
/// Condition code fields of WFx and FP traps from AArch64: CV 1, COND 0xe.
const ISS_CV_AL: u64 = 1 << 24 | 0xe << 20;
/// Translation fault at level 1: no level-2 table for the address.
const FSC_TRANSLATION_L1: u64 = 0b00_0101;
/// The SMC immediate in [`guest`]'s `smc #0x17`.
const SMC_IMM: u64 = 0x17;

fn syndrome(ec: u64, iss: u64) -> u64 {
    ec << esr::EC_SHIFT | esr::IL | iss
}

// --- Guests ---------------------------------------------------------------

/// A thread bound to a VCPU, in a worker address space.
#[derive(Clone, Copy, Debug)]
struct Guest {
    tcb: Cap<Tcb>,
    vcpu: Cap<Vcpu>,
    worker: usize,
}

/// A guest faulting to `handler` at priority 100 with its own round-robin
/// scheduling context; not started.
fn guest(cx: &mut Cx, handler: Cap<Endpoint>) -> Result<Guest, Failure> {
    let worker = thread::take_worker()?;
    let tcb = cx.tcb()?;
    ok!(tcb.configure(
        cx.root_cnode(),
        CNodeCapData(0),
        space::vspace(worker),
        0,
        space::ipc_buffer_vaddr(),
        Some(space::ipc_frame(worker)),
    ));
    let sc = cx.configured_sc(thread::DEFAULT_BUDGET_US, thread::DEFAULT_BUDGET_US)?;
    ok!(tcb.set_sched_params(
        cx.root_tcb(),
        0,
        thread::DEFAULT_PRIO,
        Some(sc),
        Some(handler)
    ));
    let vcpu: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    ok!(vcpu.set_tcb(tcb));
    Ok(Guest { tcb, vcpu, worker })
}

/// Starts `g` at `entry` in EL1h with x0..x6 from `x` and x7 the report
/// number.
fn start(g: &Guest, entry: Sym, x: [u64; 7]) -> Outcome {
    let regs = UserContext {
        pc: addr(entry),
        spsr: SPSR_EL1H,
        x0: x[0],
        x1: x[1],
        x2: x[2],
        x3: x[3],
        x4: x[4],
        x5: x[5],
        x6: x[6],
        x7: REPORT,
        ..Default::default()
    };
    ok!(g.tcb.write_registers(true, 0, 11, &regs));
    Ok(())
}

/// Receives the guest's report by the `hvc` at `at`: its x0..x7 after
/// checking the whole UnknownSyscall message.
fn report(h: &Handler, at: Sym) -> Result<[u64; 8], Failure> {
    let (ep, _, r) = *h;
    let (f, _) = recv_fault(ep, r);
    match f {
        Fault::UnknownSyscall {
            regs,
            fault_ip,
            lr,
            spsr,
            syscall,
            ..
        } => {
            check_eq!(fault_ip, addr(at), "the hvc's address (FaultIP)");
            check_eq!(lr, addr(at) + 4, "the address after the hvc (ELR)");
            check_eq!(spsr & !0xf000_0000, SPSR_EL1H, "the guest's SPSR");
            check_eq!(syscall, REPORT, "the number in x7");
            Ok(regs)
        }
        other => fail!("expected the guest's report at {at:?} got {other:?}"),
    }
}

/// Resumes a guest after the `hvc` at `at` with registers `x`.
fn resume(h: &Handler, at: Sym, x: [u64; 8]) {
    let mut words = [0u64; 9];
    words[..8].copy_from_slice(&x);
    words[8] = addr(at) + 4;
    reply(h.2, 0, &words);
}

/// Sets the stopped `tcb`'s program counter (before a reply restarts it).
fn set_pc(tcb: Cap<Tcb>, pc: u64) -> Outcome {
    let n = TCB_REGISTER_COUNT as u64;
    let mut regs = ok!(tcb.read_registers(false, 0, n));
    regs.pc = pc;
    ok!(tcb.write_registers(false, 0, n, &regs));
    Ok(())
}

fn expect_vcpu_fault(h: &Handler) -> Result<u64, Failure> {
    let (f, _) = recv_fault(h.0, h.2);
    match f {
        Fault::VcpuFault { hsr } => Ok(hsr),
        other => fail!("expected a VCPU fault got {other:?}"),
    }
}

// --- The object and its invocations ---------------------------------------

fn retype(cx: &mut Cx) -> Outcome {
    // 8 KiB: an endpoint at the start, so a VCPU can only go in the upper
    // 4 KiB, which leaves nothing.
    let ut = cx.untyped(13)?;
    let _: Cap<Endpoint> = cx.retype_from(ut, ObjectType::Endpoint, 0)?;
    // The size argument is ignored for an object of fixed size.
    let v: Cap<Vcpu> = cx.retype_from(ut, ObjectType::Vcpu, 5)?;
    check_eq!(cx.identify(v), cap_tag::VCPU);
    let slot = cx.slot()?;
    check_err!(
        ut.retype(
            ObjectType::Endpoint,
            0,
            cx.root_cnode(),
            CPtr::NULL,
            0,
            slot.bits(),
            1
        ),
        Error::NotEnoughMemory { available: 0 }
    );
    // Copies, and the object's deletion with its last cap.
    let c = cx.copy(v, RW)?;
    check_eq!(cx.identify(c), cap_tag::VCPU);
    ok!(cx.delete(v));
    ok!(c.read_reg(reg::SCTLR));
    ok!(cx.delete(c));
    check_eq!(cx.identify(c), cap_tag::NULL);
    Ok(())
}

fn new_registers(cx: &mut Cx) -> Outcome {
    let v: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    check_eq!(ok!(v.read_reg(reg::SCTLR)), SCTLR_EL1_VM, "SCTLR");
    for f in 1..reg::COUNT {
        check_eq!(ok!(v.read_reg(f)), 0, f);
    }
    Ok(())
}

fn every_register(cx: &mut Cx) -> Outcome {
    // A VCPU that has never run keeps every register as written.
    let v: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    for f in 0..reg::COUNT {
        ok!(v.write_reg(f, 0x5eb7_0000_0000_0000 | f << 8 | f));
    }
    for f in 0..reg::COUNT {
        check_eq!(ok!(v.read_reg(f)), 0x5eb7_0000_0000_0000 | f << 8 | f, f);
    }
    // The reply of a Call carries exactly the value.
    let r = ok!(call_words(v.cptr(), Label::ArmVcpuReadReg, &[reg::VBAR]));
    check_eq!((r.label(), r.length()), (0, 1));
    Ok(())
}

fn register_errors(cx: &mut Cx) -> Outcome {
    let v: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    // decodeVCPUReadReg/WriteReg: a bad field is reported as argument 1.
    check_err!(v.read_reg(reg::COUNT), Error::InvalidArgument { index: 1 });
    check_err!(v.read_reg(u64::MAX), Error::InvalidArgument { index: 1 });
    check_err!(
        v.write_reg(reg::COUNT, 0),
        Error::InvalidArgument { index: 1 }
    );
    check_err!(
        call_words(v.cptr(), Label::ArmVcpuReadReg, &[]),
        Error::TruncatedMessage
    );
    check_err!(
        call_words(v.cptr(), Label::ArmVcpuWriteReg, &[reg::VBAR]),
        Error::TruncatedMessage
    );
    // Nothing was written by the failed calls.
    check_eq!(ok!(v.read_reg(reg::VBAR)), 0);
    Ok(())
}

fn inject_errors(cx: &mut Cx) -> Outcome {
    let v: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    let range = |max| Error::RangeError { min: 0, max };
    check_err!(v.inject_irq(1024, 0, 0, 0), range(1023));
    check_err!(v.inject_irq(u16::MAX, 0, 0, 0), range(1023));
    check_err!(v.inject_irq(42, 32, 0, 0), range(31));
    check_err!(v.inject_irq(42, 0, 2, 0), range(1));
    check_err!(v.inject_irq(42, 0, 0, NUM_LRS as u8), range(NUM_LRS - 1));
    check_err!(v.inject_irq(42, 0, 0, u8::MAX), range(NUM_LRS - 1));
    // The checks come in that order.
    check_err!(v.inject_irq(1024, 32, 2, u8::MAX), range(1023));
    check_err!(v.inject_irq(42, 32, 2, u8::MAX), range(31));
    check_err!(
        call_words(v.cptr(), Label::ArmVcpuInjectIrq, &[]),
        Error::TruncatedMessage
    );
    // A pending interrupt may be replaced; the largest values are accepted.
    ok!(v.inject_irq(1023, 31, 1, NUM_LRS as u8 - 1));
    ok!(v.inject_irq(42, 0, 0, NUM_LRS as u8 - 1));
    Ok(())
}

fn ack_vppi(cx: &mut Cx) -> Outcome {
    let v: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    ok!(v.ack_vppi(VTIMER_EVENT));
    check_err!(
        v.ack_vppi(MAX_IRQ + 1),
        Error::RangeError {
            min: 0,
            max: MAX_IRQ
        }
    );
    check_err!(
        v.ack_vppi(u64::MAX),
        Error::RangeError {
            min: 0,
            max: MAX_IRQ
        }
    );
    // In range but not a virtual PPI: argument 0.
    for irq in [0, 25, 26, 33, MAX_IRQ] {
        check_err!(v.ack_vppi(irq), Error::InvalidArgument { index: 0 });
    }
    check_err!(
        call_words(v.cptr(), Label::ArmVcpuAckVppi, &[]),
        Error::TruncatedMessage
    );
    Ok(())
}

fn set_tcb_errors(cx: &mut Cx) -> Outcome {
    let v: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    let ep = cx.endpoint()?;
    check_err!(
        v.invoke(&Invocation::new(Label::ArmVcpuSetTcb)),
        Error::TruncatedMessage
    );
    check_err!(
        v.invoke(&Invocation::new(Label::ArmVcpuSetTcb).cap(ep.cptr())),
        Error::IllegalOperation
    );
    let other: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    check_err!(
        v.invoke(&Invocation::new(Label::ArmVcpuSetTcb).cap(other.cptr())),
        Error::IllegalOperation
    );
    let t = cx.tcb()?;
    ok!(v.set_tcb(t));
    // Binding again, and to a VCPU's own thread, is fine.
    ok!(v.set_tcb(t));
    ok!(other.set_tcb(t));
    Ok(())
}

fn other_labels(cx: &mut Cx) -> Outcome {
    let v: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    for label in [
        Label::InvalidInvocation,
        Label::UntypedRetype,
        Label::TcbSuspend,
        Label::ArmPageMap,
        Label::ArmSmcCall,
    ] {
        check_err!(
            call_words(v.cptr(), label, &[0, 0, 0]),
            Error::IllegalOperation
        );
    }
    Ok(())
}

fn spsr_of(t: Cap<Tcb>) -> Result<u64, Failure> {
    Ok(ok!(t.read_registers(false, 0, 3)).spsr)
}

fn write_spsr(t: Cap<Tcb>, spsr: u64) -> Outcome {
    let regs = UserContext {
        spsr,
        ..Default::default()
    };
    ok!(t.write_registers(false, 0, 3, &regs));
    Ok(())
}

fn binding_spsr(cx: &mut Cx) -> Outcome {
    let flags = 0xf000_0000;
    let t = cx.tcb()?;
    let v: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    // Without a VCPU only EL0t survives (sanitiseRegister).
    write_spsr(t, flags | SPSR_EL1H)?;
    check_eq!(spsr_of(t)?, flags | PSTATE_USER, "no VCPU");
    // With one, EL0t, EL1t and EL1h are kept as written.
    ok!(v.set_tcb(t));
    for mode in [SPSR_EL1H, 0x3c4, 0x3c0, 0x3c9] {
        write_spsr(t, flags | mode)?;
        let want = if mode & SPSR_MODE == 0x9 {
            flags | PSTATE_USER
        } else {
            flags | mode
        };
        check_eq!(spsr_of(t)?, want, mode);
    }
    write_spsr(t, flags | SPSR_EL1H)?;
    // Binding the VCPU elsewhere unbinds it (dissociateVCPUTCB), which
    // sanitises the SPSR the thread keeps.
    let t2 = cx.tcb()?;
    ok!(v.set_tcb(t2));
    check_eq!(spsr_of(t)?, flags | PSTATE_USER, "after rebinding");
    write_spsr(t2, SPSR_EL1H)?;
    // Binding another VCPU to the thread does the same to the first.
    let v2: Cap<Vcpu> = cx.obj(ObjectType::Vcpu, 0)?;
    ok!(v2.set_tcb(t2));
    check_eq!(spsr_of(t2)?, PSTATE_USER, "another VCPU bound");
    write_spsr(t2, SPSR_EL1H)?;
    // Rebinding the same pair too.
    ok!(v2.set_tcb(t2));
    check_eq!(spsr_of(t2)?, PSTATE_USER, "bound again");
    write_spsr(t2, SPSR_EL1H)?;
    // And deleting the VCPU.
    ok!(cx.delete(v2));
    check_eq!(spsr_of(t2)?, PSTATE_USER, "VCPU deleted");
    Ok(())
}

// --- Guests ---------------------------------------------------------------

fn guest_at_el1(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x77)?;
    let g = guest(cx, h.1)?;
    ok!(g.vcpu.write_reg(reg::SP_EL1, 0x5000));
    start(&g, Sym::Probe, [0; 7])?;
    let (f, badge) = {
        let (ep, _, r) = h;
        recv_fault(ep, r)
    };
    check_eq!(badge, 0x77, "the fault endpoint's badge");
    let Fault::UnknownSyscall { regs, fault_ip, .. } = f else {
        fail!("expected the guest's report got {f:?}");
    };
    check_eq!(fault_ip, addr(Sym::ProbeHvc));
    check_eq!(regs[0], CURRENT_EL1, "CurrentEL");
    check_eq!(regs[1], 1, "SPSel: SP_EL1");
    check_eq!(regs[2], 0x3c0, "DAIF all masked");
    check_eq!(regs[3], 0x5000, "SP is SP_EL1 as written");
    Ok(())
}

fn guest_sysregs(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x78)?;
    let g = guest(cx, h.1)?;
    let vectors = addr(Sym::Vectors);
    ok!(g.vcpu.write_reg(reg::VMPIDR_EL2, 0x8000_0003));
    start(
        &g,
        Sym::Sysregs,
        [0x1111, vectors, 0x33, 0x4440, 0x5555, 0x6666, 0],
    )?;
    let x = report(&h, Sym::SysregsHvc1)?;
    // TPIDRRO_EL0 is a TCB register, read-only at EL0 but not at EL1: the
    // kernel keeps what the guest wrote.
    let n = TCB_REGISTER_COUNT as u64;
    check_eq!(
        ok!(g.tcb.read_registers(false, 0, n)).tpidrro_el0,
        0x6666,
        "TPIDRRO_EL0 in the TCB"
    );
    // The guest's registers, as it wrote them, read by the VMM while the
    // VCPU stays loaded (disabled) on the CPU.
    check_eq!(ok!(g.vcpu.read_reg(reg::TPIDR_EL1)), 0x1111, "TPIDR_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::VBAR)), vectors, "VBAR_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::CIDR)), 0x33, "CONTEXTIDR_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::SP_EL1)), 0x4440, "SP_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::ELR_EL1)), 0x5555, "ELR_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::SCTLR)), SCTLR_EL1_VM, "SCTLR_EL1");
    // Written by the VMM, seen by the guest.
    ok!(g.vcpu.write_reg(reg::TPIDR_EL1, 0xaaaa));
    ok!(g.vcpu.write_reg(reg::CIDR, 0x77));
    ok!(g.vcpu.write_reg(reg::SP_EL1, 0xbbb0));
    ok!(g.vcpu.write_reg(reg::ELR_EL1, 0xcccc));
    resume(&h, Sym::SysregsHvc1, x);
    let x = report(&h, Sym::SysregsHvc2)?;
    check_eq!(x[0], 0xaaaa, "TPIDR_EL1 in the guest");
    check_eq!(x[1], vectors, "VBAR_EL1 in the guest");
    check_eq!(x[2], 0x77, "CONTEXTIDR_EL1 in the guest");
    check_eq!(x[3], 0xbbb0, "SP_EL1 in the guest");
    check_eq!(x[4], 0x8000_0003, "MPIDR_EL1 is VMPIDR_EL2");
    check_eq!(x[5], 0xcccc, "ELR_EL1 in the guest");
    check_eq!(x[6], 0x6666, "TPIDRRO_EL0 in the guest");
    Ok(())
}

fn guest_syscall(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x79)?;
    let g = guest(cx, h.1)?;
    let junk = 0x1234_5678;
    start(
        &g,
        Sym::Syscall,
        [10, 11, 12, 13, 14, nr::YIELD as u64, junk],
    )?;
    // The first hvc (x7 = Yield) is a system call: the guest goes on to
    // the second, whose number is no system call.
    let (ep, _, r) = h;
    let (f, _) = recv_fault(ep, r);
    let (regs, fault_ip, sp, lr, spsr, syscall) = expect_unknown_syscall(f)?;
    check_eq!(syscall, junk, "number");
    check_eq!(
        regs,
        [10, 11, 12, 13, 14, nr::YIELD as u64, junk, junk],
        "x0..x7"
    );
    check_eq!(fault_ip, addr(Sym::SyscallHvc), "FaultIP: the hvc");
    check_eq!(lr, addr(Sym::SyscallHvc) + 4, "ELR: after the hvc");
    check_eq!(sp, 0, "SP_EL0");
    check_eq!(spsr & SPSR_MODE, 0x5, "SPSR: EL1h");
    Ok(())
}

fn guest_traps(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x7a)?;
    let g = guest(cx, h.1)?;
    start(&g, Sym::Smc, [0; 7])?;
    // HCR_EL2.TSC: smc is a VCPU fault with its syndrome; the thread is
    // restarted at the smc unless the VMM moves it on.
    let hsr = expect_vcpu_fault(&h)?;
    check_eq!(hsr, syndrome(EC_SMC64, SMC_IMM), "smc #0x17");
    check_eq!(
        ok!(g.tcb.read_registers(false, 0, 1)).pc,
        addr(Sym::Smc),
        "pc"
    );
    reply(h.2, 0, &[]);
    let hsr = expect_vcpu_fault(&h)?;
    check_eq!(
        hsr,
        syndrome(EC_SMC64, SMC_IMM),
        "smc again after a plain reply"
    );
    set_pc(g.tcb, addr(Sym::Wfi))?;
    reply(h.2, 0, &[]);
    // HCR_EL2.TWI: wfi is one too.
    let hsr = expect_vcpu_fault(&h)?;
    check_eq!(hsr, syndrome(EC_WFX, ISS_CV_AL), "wfi");
    set_pc(g.tcb, addr(Sym::TrapsHvc))?;
    reply(h.2, 0, &[]);
    report(&h, Sym::TrapsHvc)?;
    Ok(())
}

/// The syndrome of the guest's 64-bit `ldr x0, [x1]` aborting at stage 2
/// with a level-1 translation fault.
fn guest_load_abort() -> u64 {
    syndrome(
        esr::EC_DABT_LOWER,
        esr::ISV | esr::SAS_DOUBLEWORD | esr::SF | FSC_TRANSLATION_L1,
    )
}

fn guest_vm_faults(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x7b)?;
    let g = guest(cx, h.1)?;
    let offset = 0x10;
    start(
        &g,
        Sym::Load,
        [
            0,
            GUEST_UNMAPPED + offset,
            0x600d,
            0,
            GUEST_UNMAPPED_CODE + 0x40,
            0,
            0,
        ],
    )?;
    // The load: the guest's MMU is off, so the IPA is the address itself.
    let (f, _) = recv_fault(h.0, h.2);
    let Fault::VmFault {
        ip,
        addr: ipa,
        prefetch,
        fsr,
    } = f
    else {
        fail!("expected a VM fault got {f:?}");
    };
    check_eq!(
        (ip, ipa, prefetch, fsr),
        (
            addr(Sym::Load),
            GUEST_UNMAPPED + offset,
            false,
            guest_load_abort()
        ),
        "ip, address, prefetch, FSR"
    );
    // Map guest memory there; the reply restarts the load.
    let frame = cx.frame()?;
    let pool = cx.pool();
    map_frame(
        cx,
        pool,
        space::vspace(g.worker),
        frame,
        GUEST_UNMAPPED,
        rw(),
        VmAttributes::DEFAULT,
    )?;
    reply(h.2, 0, &[]);
    let x = report(&h, Sym::LoadHvc)?;
    check_eq!(x[0], 0, "the new page reads as zero");
    check_eq!(x[3], 0x600d, "the guest's store reads back");
    // An instruction fetch from an unmapped IPA.
    resume(&h, Sym::LoadHvc, x);
    let (f, _) = recv_fault(h.0, h.2);
    let target = GUEST_UNMAPPED_CODE + 0x40;
    let iabt = syndrome(esr::EC_IABT_LOWER, FSC_TRANSLATION_L1);
    check_eq!(
        f,
        Fault::VmFault {
            ip: target,
            addr: target,
            prefetch: true,
            fsr: iabt
        }
    );
    set_pc(g.tcb, addr(Sym::JumpHvc))?;
    reply(h.2, 0, &[]);
    let x = report(&h, Sym::JumpHvc)?;
    check_eq!(x[4], target, "x4 kept");
    Ok(())
}

fn guest_debug(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x74)?;
    let g = guest(cx, h.1)?;
    // MDCR_EL2 traps debug register accesses to the kernel only for native
    // threads (with the hardware debug API, vcpu_enable clears TDA, TDE,
    // TDOSA and TDRA; without it they are never set): the guest reads its
    // own, with no VCPU fault on the way.
    start(&g, Sym::Debug, [0; 7])?;
    report(&h, Sym::DebugHvc)?;
    Ok(())
}

fn guest_fp_trap(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x7c)?;
    let g = guest(cx, h.1)?;
    // CPACR_EL1 of a new VCPU traps FP/SIMD at EL1: the guest takes its own
    // exception, at its vector for the current EL with SP_EL1.
    let vectors = addr(Sym::Vectors);
    ok!(g.vcpu.write_reg(reg::VBAR, vectors));
    start(&g, Sym::Fp, [0x1234, 0, 0, 0, 0, 0, 0])?;
    let (f, _) = recv_fault(h.0, h.2);
    let Fault::UnknownSyscall { fault_ip, .. } = f else {
        fail!("expected the vector's hvc got {f:?}");
    };
    check_eq!(
        fault_ip,
        vectors + guest::VECTOR_SYNC_CURRENT_SPX,
        "the EL1 vector of a synchronous exception"
    );
    check_eq!(
        ok!(g.vcpu.read_reg(reg::ESR)),
        syndrome(EC_FP, ISS_CV_AL),
        "ESR_EL1"
    );
    check_eq!(ok!(g.vcpu.read_reg(reg::ELR_EL1)), addr(Sym::Fp), "ELR_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::SPSR_EL1)), SPSR_EL1H, "SPSR_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::CPACR)), 0, "CPACR_EL1");
    Ok(())
}

/// Overwrites the VMM's own d0 (and so q0).
fn clobber_fp() {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    // SAFETY: writes d0, which is declared clobbered; no memory access.
    unsafe {
        core::arch::asm!("fmov d0, xzr", out("v0") _, options(nomem, nostack));
    }
}

fn guest_fp_state(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x7d)?;
    let g = guest(cx, h.1)?;
    ok!(g.vcpu.write_reg(reg::CPACR, CPACR_FPEN));
    let value = 0x4045_0000_0000_1234;
    start(&g, Sym::Fp, [value, 0, 0, 0, 0, 0, 0])?;
    let x = report(&h, Sym::FpHvc1)?;
    check_eq!(ok!(g.vcpu.read_reg(reg::CPACR)), CPACR_FPEN, "CPACR_EL1");
    // The VMM uses FP/SIMD itself, and so does another thread, before the
    // guest reads its d0 back.
    clobber_fp();
    let t = thread::spawn(cx, thread::Spawn::new(|_| clobber_fp(), 0))?;
    t.join()?;
    resume(&h, Sym::FpHvc1, x);
    let x = report(&h, Sym::FpHvc2)?;
    check_eq!(x[1], value, "d0 after other threads used the FPU");
    Ok(())
}

fn two_guests(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x7e)?;
    let a = guest(cx, h.1)?;
    let h2 = (h.0, h.1, cx.reply()?);
    let b = guest(cx, h.1)?;
    let vectors = addr(Sym::Vectors);
    start(
        &a,
        Sym::Sysregs,
        [0xa1, vectors, 0xa3, 0xa40, 0xa5, 0xa6, 0],
    )?;
    let xa = report(&h, Sym::SysregsHvc1)?;
    // The second guest's VCPU replaces the first on the CPU, which saves
    // the first into its object.
    start(
        &b,
        Sym::Sysregs,
        [0xb1, vectors, 0xb3, 0xb40, 0xb5, 0xb6, 0],
    )?;
    let xb = report(&h2, Sym::SysregsHvc1)?;
    check_eq!(ok!(a.vcpu.read_reg(reg::TPIDR_EL1)), 0xa1, "A's, saved");
    check_eq!(ok!(b.vcpu.read_reg(reg::TPIDR_EL1)), 0xb1, "B's, loaded");
    ok!(a.vcpu.write_reg(reg::VMPIDR_EL2, 0x8000_000a));
    ok!(b.vcpu.write_reg(reg::VMPIDR_EL2, 0x8000_000b));
    resume(&h, Sym::SysregsHvc1, xa);
    let xa = report(&h, Sym::SysregsHvc2)?;
    check_eq!(
        &xa[..7],
        &[0xa1, vectors, 0xa3, 0xa40, 0x8000_000a, 0xa5, 0xa6][..],
        "A's registers"
    );
    resume(&h2, Sym::SysregsHvc1, xb);
    let xb = report(&h2, Sym::SysregsHvc2)?;
    check_eq!(
        &xb[..7],
        &[0xb1, vectors, 0xb3, 0xb40, 0x8000_000b, 0xb5, 0xb6][..],
        "B's registers"
    );
    let _ = (a.worker, b.worker);
    Ok(())
}

fn vtimer(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x7f)?;
    let g = guest(cx, h.1)?;
    let turns = 200_000;
    start(&g, Sym::Vtimer, [0, 1, turns, turns, 0, 0, 0])?;
    // The timer fires while the guest loops: a VPPI event, the PPI masked.
    let (f, badge) = recv_fault(h.0, h.2);
    check_eq!((f, badge), (Fault::VppiEvent { irq: VTIMER_PPI }, 0x7f));
    // Disabling the VCPU saved the timer's control: enabled, condition met.
    check_eq!(ok!(g.vcpu.read_reg(reg::CNTV_CTL)), 0b101, "CNTV_CTL");
    check_eq!(ok!(g.vcpu.read_reg(reg::CNTV_CVAL)), 0, "CNTV_CVAL");
    reply(h.2, 0, &[]);
    // No second event until it is acknowledged: the loop ends and reports.
    let x = report(&h, Sym::VtimerHvc1)?;
    check_eq!(x[2], 0, "the loop ran to its end");
    ok!(g.vcpu.ack_vppi(VTIMER_PPI));
    // Acknowledged: as the guest resumes and loops again, the still
    // pending timer fires.
    resume(&h, Sym::VtimerHvc1, x);
    let (f, _) = recv_fault(h.0, h.2);
    check_eq!(f, Fault::VppiEvent { irq: VTIMER_PPI }, "after AckVPPI");
    reply(h.2, 0, &[]);
    report(&h, Sym::VtimerHvc2)?;
    check_eq!(ok!(g.vcpu.read_reg(reg::CNTV_CTL)) & 1, 0, "timer off");
    Ok(())
}

/// A frame of the GIC virtual CPU interface, from the device untyped that
/// holds it (retyping the memory before it as untypeds first).
fn gicv_frame(cx: &mut Cx) -> Result<Cap<SmallPage>, Failure> {
    let bi = env::bootinfo();
    let Some((ut, base, bits)) = bi.untyped().find_map(|(c, d)| {
        let end = d.paddr + (1u64 << d.size_bits);
        (d.is_device != 0 && (d.paddr..end).contains(&GICV_PADDR)).then_some((
            c,
            d.paddr,
            u64::from(d.size_bits),
        ))
    }) else {
        fail!("no device untyped holds the GIC virtual CPU interface at {GICV_PADDR:#x}");
    };
    let _ = bits;
    // Retype advances a watermark, aligning each object to its size: fill
    // the space before the frame with the largest aligned untypeds.
    let mut at = base;
    while at < GICV_PADDR {
        let mut b = at.trailing_zeros().min(47) as u64;
        while at + (1 << b) > GICV_PADDR {
            b -= 1;
        }
        let _: Cap<Untyped> = cx.retype_from(ut, ObjectType::Untyped, b)?;
        at += 1 << b;
    }
    let frame: Cap<SmallPage> = cx.retype_from(ut, ObjectType::SmallPage, 0)?;
    check_eq!(
        ok!(frame.get_address()),
        GICV_PADDR,
        "the GICV frame's address"
    );
    Ok(frame)
}

fn vgic(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x70)?;
    let g = guest(cx, h.1)?;
    let gicv = gicv_frame(cx)?;
    let pool = cx.pool();
    map_frame(
        cx,
        pool,
        space::vspace(g.worker),
        gicv,
        GUEST_GICV,
        rw(),
        VmAttributes::NONE,
    )?;
    // Injected before the guest first runs: into the VCPU object.
    let (virq, lr) = (42, 1);
    ok!(g.vcpu.inject_irq(virq, 0, 0, lr));
    start(&g, Sym::Vgic, [0, GUEST_GICV, 0, 0, 0, 0, 0])?;
    let x = report(&h, Sym::VgicHvc1)?;
    check_eq!(x[5], u64::from(virq), "GICV_IAR: the injected interrupt");
    // The interrupt is active in list register 1, but only in the hardware:
    // the VCPU object still records it pending, so InjectIRQ accepts the
    // index (vgic.lr is what decodeVCPUInjectIRQ checks).
    // Another guest runs: the first VCPU is saved with the active entry.
    let h2 = (h.0, h.1, cx.reply()?);
    let other = guest(cx, h.1)?;
    start(&other, Sym::Probe, [0; 7])?;
    report(&h2, Sym::ProbeHvc)?;
    check_err!(g.vcpu.inject_irq(43, 0, 0, lr), Error::DeleteFirst);
    ok!(g.vcpu.inject_irq(43, 0, 0, lr + 1));
    // The guest ends its interrupt: the list register asked for a
    // maintenance interrupt (EOI bit), so the VMM hears of it.
    resume(&h, Sym::VgicHvc1, x);
    let (f, badge) = recv_fault(h.0, h.2);
    check_eq!(
        (f, badge),
        (
            Fault::VgicMaintenance {
                idx: Some(u64::from(lr))
            },
            0x70
        )
    );
    reply(h.2, 0, &[]);
    report(&h, Sym::VgicHvc2)?;
    // The maintenance cleared the list register in the VCPU's record too:
    // once the VCPU is saved again, the index is free.
    start(&other, Sym::Probe, [0; 7])?;
    report(&h2, Sym::ProbeHvc)?;
    ok!(g.vcpu.inject_irq(44, 0, 0, lr));
    Ok(())
}

fn delete_vcpu(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x71)?;
    let g = guest(cx, h.1)?;
    start(&g, Sym::Probe, [0; 7])?;
    let x = report(&h, Sym::ProbeHvc)?;
    check_eq!(x[0], CURRENT_EL1);
    // The VCPU goes while it is loaded: the thread is a native one again,
    // its SPSR sanitised.
    ok!(cx.delete(g.vcpu));
    let spsr = spsr_of(g.tcb)?;
    check_eq!(spsr, PSTATE_USER | (spsr & 0xf000_0000), "SPSR");
    // Restarted at the routine's start, it runs at EL0, where reading
    // CurrentEL is undefined.
    let mut words = [0u64; 9];
    words[..8].copy_from_slice(&x);
    words[8] = addr(Sym::Probe);
    reply(h.2, 0, &words);
    let (f, _) = recv_fault(h.0, h.2);
    let Fault::UserException { fault_ip, esr, .. } = f else {
        fail!("expected an undefined instruction at EL0 got {f:?}");
    };
    check_eq!((fault_ip, esr), (addr(Sym::Probe), esr::UNKNOWN));
    Ok(())
}

fn delete_tcb(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x72)?;
    let g = guest(cx, h.1)?;
    start(&g, Sym::Probe, [0; 7])?;
    report(&h, Sym::ProbeHvc)?;
    // The VCPU is still loaded (disabled) since its guest stopped, so this
    // write reaches the hardware register only.
    ok!(g.vcpu.write_reg(reg::TPIDR_EL1, 0xdead));
    ok!(g.vcpu.write_reg(reg::CNTV_CVAL, 0xbeef));
    check_eq!(ok!(g.vcpu.read_reg(reg::TPIDR_EL1)), 0xdead);
    // The thread goes: dissociateVCPUTCB drops the loaded VCPU unsaved
    // (vcpu_invalidate_active), so the VCPU is left with what its object
    // last held: TPIDR_EL1 as it was before the guest ran; CNTV_CVAL, which
    // disabling saved and the write went to, survives.
    ok!(cx.delete(g.tcb));
    check_eq!(ok!(g.vcpu.read_reg(reg::TPIDR_EL1)), 0, "TPIDR_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::CNTV_CVAL)), 0xbeef, "CNTV_CVAL");
    let t = cx.tcb()?;
    ok!(g.vcpu.set_tcb(t));
    check!(
        spsr_of(t)? == PSTATE_USER,
        "a new thread's SPSR is untouched by binding"
    );
    Ok(())
}

fn set_domain(cx: &mut Cx) -> Outcome {
    let h = fault_ep(cx, 0x73)?;
    let g = guest(cx, h.1)?;
    start(&g, Sym::Sysregs, [0x1234, 0, 0, 0, 0, 0, 0])?;
    report(&h, Sym::SysregsHvc1)?;
    // Moving the guest to another domain saves its loaded VCPU and unloads
    // it (prepareSetDomain, vcpu_flush_if_current) ...
    ok!(cx.domain().set(1, g.tcb));
    ok!(g.vcpu.write_reg(reg::CIDR, 0x55));
    // ... so nothing is lost when its thread goes (compare
    // vcpu/delete-tcb-drops-the-loaded-state), and the write went to the
    // object.
    ok!(cx.delete(g.tcb));
    check_eq!(ok!(g.vcpu.read_reg(reg::TPIDR_EL1)), 0x1234, "TPIDR_EL1");
    check_eq!(ok!(g.vcpu.read_reg(reg::CIDR)), 0x55, "CONTEXTIDR_EL1");
    Ok(())
}
