//! The VMM's fault paths against a fake kernel that records what it is
//! asked to do.

use super::*;
use crate::fdt;
use crate::gicd::reg;
use std::collections::BTreeMap;
use std::string::String;
use std::vec;
use std::vec::Vec;

const RAM: Ram = Ram {
    base: 0x4000_0000,
    size: 64 << 20,
};
const VBAR: u64 = 0xffff_8000_0801_0000;

#[derive(Default)]
struct Fake {
    regs: BTreeMap<u8, UserContext>,
    vregs: BTreeMap<(u8, u64), u64>,
    ram: BTreeMap<u64, Vec<u8>>,
    running: BTreeMap<u8, bool>,
    /// (vCPU, list register, irq)
    injected: Vec<(u8, u8, u16)>,
    acks: Vec<(u8, u64)>,
    console: Vec<u8>,
    log: Vec<String>,
    off: u32,
    /// The kernel has this many list registers.
    lrs: u8,
    /// The physical counter, if the platform can wake the VMM at a count.
    counter: Option<u64>,
    /// Every wake-up asked for.
    wakes: Vec<Option<u64>>,
}

impl Platform for Fake {
    fn read_regs(&mut self, v: Vcpu, count: usize) -> Result<UserContext, Error> {
        let full = self.regs.get(&v.id()).copied().unwrap_or_default();
        let mut w = [0u64; 36];
        w[..count].copy_from_slice(&full.to_words()[..count]);
        Ok(UserContext::from_words(&w))
    }
    fn write_regs(&mut self, v: Vcpu, count: usize, regs: &UserContext) -> Result<(), Error> {
        let mut w = self
            .regs
            .get(&v.id())
            .copied()
            .unwrap_or_default()
            .to_words();
        w[..count].copy_from_slice(&regs.to_words()[..count]);
        self.regs.insert(v.id(), UserContext::from_words(&w));
        Ok(())
    }
    fn read_vcpu_reg(&mut self, v: Vcpu, reg: u64) -> Result<u64, Error> {
        if reg >= vcpu_reg::COUNT {
            return Err(Error::InvalidArgument { index: 1 });
        }
        Ok(self.vregs.get(&(v.id(), reg)).copied().unwrap_or(0))
    }
    fn write_vcpu_reg(&mut self, v: Vcpu, reg: u64, value: u64) -> Result<(), Error> {
        self.vregs.insert((v.id(), reg), value);
        Ok(())
    }
    fn inject_irq(&mut self, v: Vcpu, irq: u16, _p: u8, _g: u8, lr: u8) -> Result<(), Error> {
        if lr >= self.lrs {
            return Err(Error::RangeError {
                min: 0,
                max: u64::from(self.lrs) - 1,
            });
        }
        self.injected.push((v.id(), lr, irq));
        Ok(())
    }
    fn ack_vppi(&mut self, v: Vcpu, irq: u64) -> Result<(), Error> {
        self.acks.push((v.id(), irq));
        Ok(())
    }
    fn stop(&mut self, v: Vcpu) -> Result<(), Error> {
        self.running.insert(v.id(), false);
        Ok(())
    }
    fn resume(&mut self, v: Vcpu) -> Result<(), Error> {
        self.running.insert(v.id(), true);
        Ok(())
    }
    fn copy_to_ram(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), OutsideRam> {
        let len = bytes.len() as u64;
        if gpa < RAM.base || gpa + len > RAM.base + RAM.size {
            return Err(OutsideRam { gpa, len });
        }
        self.ram.insert(gpa, bytes.to_vec());
        Ok(())
    }
    fn console(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }
    fn log(&mut self, line: fmt::Arguments<'_>) {
        self.log.push(std::format!("{line}"));
    }
    fn guest_off(&mut self) {
        self.off += 1;
    }
    fn counter(&mut self) -> Option<u64> {
        self.counter
    }
    fn wake_at(&mut self, at: Option<u64>) {
        self.wakes.push(at);
    }
}

use crate::platform::OutsideRam;

/// Records the hook's calls.
#[derive(Default)]
struct Spy(Vec<(u64, bool, u64)>);
impl Hooks for Spy {
    fn unhandled_mmio(&mut self, gpa: u64, write: bool, value: u64) {
        self.0.push((gpa, write, value));
    }
}

fn kernel_image() -> Vec<u8> {
    let mut k = vec![0u8; 4096];
    k[16..24].copy_from_slice(&(2u64 << 20).to_le_bytes());
    k[56..60].copy_from_slice(b"ARM\x64");
    k
}

const INITRD: &[u8] = b"an initrd of some bytes";

/// The device tree the tool would write for this kernel and initrd.
fn dtb_for(kernel: &[u8]) -> Vec<u8> {
    let h = ImageHeader::parse(kernel).unwrap();
    let p = place(RAM.base, RAM.size, &h, INITRD.len() as u64).unwrap();
    fdt::tree_with_chosen(&[
        ("linux,initrd-start", &p.initrd.to_be_bytes()),
        ("linux,initrd-end", &p.initrd_end.to_be_bytes()),
    ])
}

fn leak(v: Vec<u8>) -> &'static [u8] {
    Box::leak(v.into_boxed_slice())
}

use std::boxed::Box;

fn vm_with(vcpus: &[u8], kernel: Vec<u8>, dtb: Vec<u8>) -> Vm<'static, Fake, Spy> {
    let ids: Vec<Vcpu> = vcpus.iter().map(|&i| Vcpu::new(i)).collect();
    let fake = Fake {
        lrs: 4,
        ..Fake::default()
    };
    Vm::new(
        fake,
        Spy::default(),
        Images {
            kernel: leak(kernel),
            initrd: INITRD,
            dtb: leak(dtb),
        },
        RAM,
        &ids,
    )
}

/// A VM with vCPU ids `vcpus`, booted, its guest's vectors set.
fn booted(vcpus: &[u8]) -> Vm<'static, Fake, Spy> {
    let k = kernel_image();
    let d = dtb_for(&k);
    let mut vm = vm_with(vcpus, k, d);
    vm.boot().unwrap();
    for &v in vcpus {
        vm.platform.vregs.insert((v, vcpu_reg::VBAR), VBAR);
    }
    vm
}

const V0: Vcpu = Vcpu::new(0);

/// A data abort syndrome with a valid instruction syndrome.
fn dabt(size_log2: u64, write: bool, reg: u64) -> u64 {
    0x24 << 26 | 1 << 25 | 1 << 24 | size_log2 << 22 | reg << 16 | (write as u64) << 6 | 0x07
}

fn mmio(vm: &mut Vm<'static, Fake, Spy>, addr: u64, fsr: u64) -> Reply {
    vm.fault(
        V0,
        &Fault::VmFault {
            ip: 0xffff_8000_0010_0000,
            addr,
            prefetch: false,
            fsr,
        },
    )
}

fn regs(vm: &Vm<'static, Fake, Spy>, v: u8) -> UserContext {
    vm.platform.regs[&v]
}

fn set_regs(vm: &mut Vm<'static, Fake, Spy>, v: u8, f: impl FnOnce(&mut UserContext)) {
    let r = vm.platform.regs.entry(v).or_default();
    f(r);
}

#[test]
fn boot_loads_the_files_where_placed_and_starts_vcpu_0() {
    let vm = booted(&[3, 5]);
    let f = &vm.platform;
    assert_eq!(f.ram[&0x4000_0000].len(), 4096, "kernel");
    let dtb_at = 0x4020_0000; // after the kernel's 2 MiB image_size
    assert_eq!(&f.ram[&dtb_at][..4], &[0xd0, 0x0d, 0xfe, 0xed]);
    assert_eq!(f.ram[&(dtb_at + (2 << 20))], INITRD);
    let r = f.regs[&3];
    assert_eq!((r.pc, r.x0, r.spsr), (0x4000_0000, dtb_at, 0x3c5));
    assert_eq!(f.running.get(&3), Some(&true));
    assert_eq!(f.running.get(&5), Some(&false), "vCPU 1 waits for CPU_ON");
    assert_eq!(f.vregs[&(3, vcpu_reg::VMPIDR_EL2)], 0x8000_0000);
    assert_eq!(f.vregs[&(3, vcpu_reg::SCTLR)], SCTLR_BOOT);
    assert_eq!(f.acks, [(3, 27)], "a stale timer mask is lifted");
    assert!(vm.running());
}

#[test]
fn a_bad_kernel_or_device_tree_is_a_clear_error_and_nothing_runs() {
    let mut k = kernel_image();
    k[56] = b'X';
    let d = dtb_for(&kernel_image());
    let mut vm = vm_with(&[0], k, d.clone());
    let e = vm.boot().unwrap_err();
    assert!(std::format!("{e}").contains("no arm64 Image magic"), "{e}");
    assert!(vm.platform.running.values().all(|r| !r));
    assert!(!vm.running());

    // A tree that puts the initrd elsewhere than the VMM would.
    let wrong = fdt::tree_with_chosen(&[
        ("linux,initrd-start", &0x4800_0000u64.to_be_bytes()),
        ("linux,initrd-end", &0x4800_0010u64.to_be_bytes()),
    ]);
    let mut vm = vm_with(&[0], kernel_image(), wrong);
    assert_eq!(
        vm.boot(),
        Err(BootError::InitrdMismatch {
            dtb: 0x4800_0000,
            placed: 0x4040_0000
        })
    );
    let mut vm = vm_with(
        &[0],
        kernel_image(),
        b"not a tree at all, but long enough to look".to_vec(),
    );
    assert!(matches!(vm.boot(), Err(BootError::Dtb(_))));
    let mut vm = vm_with(&[], kernel_image(), d);
    assert_eq!(vm.boot(), Err(BootError::NoVcpu));
}

#[test]
fn distributor_reads_land_in_the_register_and_move_the_pc_on() {
    let mut vm = booted(&[0]);
    set_regs(&mut vm, 0, |r| {
        r.pc = 0x1000;
        r.x21 = 0xdead;
    });
    // ldr w21, [GICD_TYPER]
    let reply = mmio(&mut vm, m::GICD_BASE + reg::TYPER, dabt(2, false, 21));
    assert_eq!(reply, Reply::Resume);
    let r = regs(&vm, 0);
    assert_eq!((r.pc, r.x21), (0x1004, 3), "one CPU, 128 lines");
    // strb wzr? no: str w2, [GICD_CTLR] with x2 = 1, then read it back.
    set_regs(&mut vm, 0, |r| r.x2 = 1);
    mmio(&mut vm, m::GICD_BASE, dabt(2, true, 2));
    mmio(&mut vm, m::GICD_BASE, dabt(2, false, 9));
    assert_eq!(regs(&vm, 0).x9, 1);
    assert_eq!(regs(&vm, 0).pc, 0x100c);
}

#[test]
fn console_output_goes_out_a_line_at_a_time() {
    let mut vm = booted(&[0]);
    for b in b"hi\n" {
        set_regs(&mut vm, 0, |r| r.x1 = u64::from(*b));
        mmio(&mut vm, m::UART_BASE, dabt(1, true, 1));
    }
    assert_eq!(vm.platform.console, b"hi\n");
    set_regs(&mut vm, 0, |r| r.x1 = u64::from(b'$'));
    mmio(&mut vm, m::UART_BASE, dabt(1, true, 1));
    assert_eq!(vm.platform.console, b"hi\n", "waits for the line");
    // Anything else the guest does passes it on (a prompt has no newline).
    vm.fault(V0, &Fault::VcpuFault { hsr: 0x0400_0000 });
    assert_eq!(vm.platform.console, b"hi\n$");
}

#[test]
fn console_input_raises_the_uart_interrupt_and_is_read_in_order() {
    let mut vm = booted(&[0]);
    // The guest enables the distributor, SPI 1 and the UART's RX interrupt.
    let w = |vm: &mut Vm<'static, Fake, Spy>, addr: u64, v: u64| {
        set_regs(vm, 0, |r| r.x3 = v);
        mmio(vm, addr, dabt(2, true, 3));
    };
    w(&mut vm, m::GICD_BASE, 1);
    w(&mut vm, m::GICD_BASE + reg::ISENABLER + 4, 1 << 1);
    w(&mut vm, m::GICD_BASE + reg::ITARGETSR + 32, 1 << 8);
    w(&mut vm, m::UART_BASE + pl011::reg::LCR_H, 0x70);
    w(
        &mut vm,
        m::UART_BASE + pl011::reg::IMSC,
        u64::from(pl011::INT_RX),
    );
    assert!(vm.platform.injected.is_empty());
    let long: Vec<u8> = (0..40).collect();
    assert_eq!(vm.console_input(&long), 40);
    assert_eq!(vm.platform.injected, [(0, 0, 33)]);
    // The guest drains the FIFO; the rest follows from the VMM's buffer.
    let mut got = Vec::new();
    for _ in 0..40 {
        mmio(&mut vm, m::UART_BASE, dabt(2, false, 4));
        got.push(regs(&vm, 0).x4 as u8);
    }
    assert_eq!(got, long);
    // The guest ends the interrupt; the line is low now: nothing more.
    vm.fault(V0, &Fault::VgicMaintenance { idx: Some(0) });
    assert_eq!(vm.platform.injected.len(), 1);
    assert_eq!(vm.input_space(), INPUT_CAPACITY);
}

#[test]
fn input_waiting_when_the_guest_empties_its_fifo_follows_at_once() {
    let mut vm = booted(&[0]);
    let w = |vm: &mut Vm<'static, Fake, Spy>, addr: u64, v: u64| {
        set_regs(vm, 0, |r| r.x3 = v);
        mmio(vm, addr, dabt(2, true, 3));
    };
    w(&mut vm, m::UART_BASE + pl011::reg::LCR_H, 0x70);
    let typed: Vec<u8> = (0..40).collect();
    assert_eq!(vm.console_input(&typed), 40);
    // The guest's driver shuts the port down and starts it again (Linux's
    // pl011 clears FEN on shutdown): the FIFO's 16 bytes are gone, the
    // rest must come in without another key being typed.
    // (the one byte the FIFO held while it was off goes too).
    w(&mut vm, m::UART_BASE + pl011::reg::LCR_H, 0x60);
    w(&mut vm, m::UART_BASE + pl011::reg::LCR_H, 0x70);
    let mut got = Vec::new();
    for _ in 0..23 {
        mmio(&mut vm, m::UART_BASE + pl011::reg::FR, dabt(2, false, 4));
        assert_eq!(regs(&vm, 0).x4 & 0x10, 0, "the FIFO is empty");
        mmio(&mut vm, m::UART_BASE, dabt(2, false, 4));
        got.push(regs(&vm, 0).x4 as u8);
    }
    assert_eq!(got, typed[17..]);
    assert_eq!(vm.input_space(), INPUT_CAPACITY);
}

#[test]
fn accesses_nothing_answers_get_an_abort_at_the_guests_vector() {
    let mut vm = booted(&[0]);
    set_regs(&mut vm, 0, |r| {
        r.pc = 0x40_1000;
        r.spsr = 0x0; // EL0t: from user space
        r.x7 = 0xdead_fa17;
    });
    // str w7, [0x2000_0000]
    let reply = mmio(&mut vm, 0x2000_0000, dabt(2, true, 7));
    assert_eq!(reply, Reply::Resume);
    let r = regs(&vm, 0);
    assert_eq!((r.pc, r.spsr), (VBAR + 0x400, 0x3c5));
    let v = &vm.platform.vregs;
    assert_eq!(v[&(0, vcpu_reg::ELR_EL1)], 0x40_1000);
    assert_eq!(v[&(0, vcpu_reg::SPSR_EL1)], 0);
    assert_eq!(
        v[&(0, vcpu_reg::ESR)],
        0x9200_0450,
        "lower-EL SEA, write, FnV"
    );
    assert_eq!(vm.hooks.0, [(0x2000_0000, true, 0xdead_fa17)]);
    assert!(vm
        .platform
        .log
        .last()
        .unwrap()
        .contains("4-byte write at 0x20000000"));

    // From the kernel (EL1h): same-EL vector, and an instruction fetch.
    set_regs(&mut vm, 0, |r| {
        r.pc = 0xffff_8000_0000_1234;
        r.spsr = 0x3c5;
    });
    vm.fault(
        V0,
        &Fault::VmFault {
            ip: 0xffff_8000_0000_1234,
            addr: 0x3000_0000,
            prefetch: true,
            fsr: 0x8200_0007,
        },
    );
    assert_eq!(regs(&vm, 0).pc, VBAR + 0x200);
    assert_eq!(vm.platform.vregs[&(0, vcpu_reg::ESR)], 0x8600_0010);
    assert_eq!(
        vm.platform.vregs[&(0, vcpu_reg::FAR)],
        0xffff_8000_0000_1234
    );
}

#[test]
fn what_the_syndrome_does_not_describe_is_refused_cleanly() {
    let mut vm = booted(&[0]);
    set_regs(&mut vm, 0, |r| r.spsr = 0x3c5);
    // A load pair to the distributor: no ISV.
    mmio(&mut vm, m::GICD_BASE, 0x9200_0007);
    assert_eq!(regs(&vm, 0).pc, VBAR + 0x200);
    // An 8-byte access to the distributor, a misaligned one to the UART.
    mmio(&mut vm, m::GICD_BASE + 8, dabt(3, false, 0));
    mmio(&mut vm, m::UART_BASE + 2, dabt(1, false, 0));
    let log = vm.platform.log.join("\n");
    assert!(log.contains("cannot be emulated"), "{log}");
    assert!(
        log.contains("the distributor takes 1, 2 or 4 bytes"),
        "{log}"
    );
    assert!(log.contains("the UART takes 1, 2 or 4 bytes"), "{log}");
    // A cache maintenance instruction on device memory is stepped over.
    set_regs(&mut vm, 0, |r| r.pc = 0x2000);
    mmio(&mut vm, m::UART_BASE, dabt(2, true, 0) | 1 << 8);
    assert_eq!(regs(&vm, 0).pc, 0x2004);
}

#[test]
fn an_exception_before_the_guest_has_vectors_stops_it() {
    let mut vm = booted(&[0]);
    vm.platform.vregs.insert((0, vcpu_reg::VBAR), 0);
    assert_eq!(mmio(&mut vm, 0x1000, dabt(2, false, 0)), Reply::Hold);
    assert_eq!(vm.platform.running.get(&0), Some(&false));
}

fn hvc(vm: &mut Vm<'static, Fake, Spy>, x: [u64; 4]) -> Reply {
    let mut regs = [0u64; 8];
    regs[..4].copy_from_slice(&x);
    regs[7] = 0x1234; // x7 survives the call
    vm.fault(
        V0,
        &Fault::UnknownSyscall {
            regs,
            fault_ip: 0x4010_0000,
            sp: 0,
            lr: 0,
            spsr: 0x3c5,
            syscall: 0x1234,
        },
    )
}

#[test]
fn hvc_answers_psci_and_refuses_the_unknown() {
    let mut vm = booted(&[0]);
    let Reply::Syscall(r) = hvc(&mut vm, [0x8400_0000, 0, 0, 0]) else {
        panic!("an answer")
    };
    assert_eq!(r[0], psci::PSCI_VERSION_1_0);
    assert_eq!((r[7], r[8]), (0x1234, 0x4010_0004), "x7 kept, PC moved on");
    let Reply::Syscall(r) = hvc(&mut vm, [0xc600_0000, 1, 2, 3]) else {
        panic!("an answer")
    };
    assert_eq!(r[..4], [psci::NOT_SUPPORTED, 1, 2, 3]);
    assert!(vm
        .platform
        .log
        .last()
        .unwrap()
        .contains("0xc6000000 is not supported"));
}

#[test]
fn smc_and_hvc_through_the_system_call_path_answer_the_same() {
    let mut vm = booted(&[0]);
    set_regs(&mut vm, 0, |r| {
        r.pc = 0x5000;
        r.x0 = 0x8000_0000; // SMCCC_VERSION
    });
    assert_eq!(
        vm.fault(V0, &Fault::VcpuFault { hsr: 0x5e00_0000 }),
        Reply::Resume
    );
    assert_eq!(
        (regs(&vm, 0).x0, regs(&vm, 0).pc),
        (psci::SMCCC_VERSION_1_1, 0x5004)
    );
    set_regs(&mut vm, 0, |r| r.x0 = 0x8400_0006);
    let cap_fault = Fault::CapFault {
        ip: 0x5004,
        addr: 0x8400_0006,
        in_recv_phase: false,
        failure: septa_sel4::error::LookupFailure::InvalidRoot,
    };
    assert_eq!(vm.fault(V0, &cap_fault), Reply::Resume);
    assert_eq!(
        (regs(&vm, 0).x0, regs(&vm, 0).pc),
        (psci::MIGRATE_NONE, 0x5008)
    );
}

#[test]
fn system_off_stops_everything_and_says_so() {
    let mut vm = booted(&[0]);
    assert_eq!(hvc(&mut vm, [0x8400_0008, 0, 0, 0]), Reply::Hold);
    assert_eq!(vm.platform.running.get(&0), Some(&false));
    assert_eq!(vm.platform.off, 1);
    assert!(!vm.running());
    assert!(vm
        .platform
        .log
        .iter()
        .any(|l| l.contains("PSCI SYSTEM_OFF")));
}

#[test]
fn system_reset_loads_the_files_again_and_reboots() {
    let mut vm = booted(&[0]);
    vm.platform.ram.clear();
    set_regs(&mut vm, 0, |r| r.pc = 0x4123_0000);
    assert_eq!(hvc(&mut vm, [0x8400_0009, 0, 0, 0]), Reply::Hold);
    assert_eq!(vm.platform.ram.len(), 3, "kernel, tree, initrd");
    assert_eq!(regs(&vm, 0).pc, 0x4000_0000);
    assert_eq!(vm.platform.running.get(&0), Some(&true));
    assert_eq!(vm.boots(), 2);
}

#[test]
fn secondary_vcpus_follow_psci() {
    let mut vm = booted(&[0, 7]);
    let x0 = |r: Reply| match r {
        Reply::Syscall(r) => r[0],
        other => panic!("{other:?}"),
    };
    assert_eq!(x0(hvc(&mut vm, [0xc400_0004, 1, 0, 0])), psci::AFFINITY_OFF);
    assert_eq!(
        x0(hvc(&mut vm, [0xc400_0003, 1, 0x1000, 5])),
        psci::INVALID_ADDRESS
    );
    assert_eq!(
        x0(hvc(&mut vm, [0xc400_0003, 2, 0x4008_0000, 5])),
        psci::INVALID_PARAMETERS
    );
    assert_eq!(
        x0(hvc(&mut vm, [0xc400_0003, 1, 0x4008_0000, 5])),
        psci::SUCCESS
    );
    let r = regs(&vm, 7);
    assert_eq!((r.pc, r.x0, r.spsr), (0x4008_0000, 5, 0x3c5));
    assert_eq!(vm.platform.vregs[&(7, vcpu_reg::VMPIDR_EL2)], 0x8000_0001);
    assert_eq!(
        x0(hvc(&mut vm, [0xc400_0003, 1, 0x4008_0000, 5])),
        psci::ALREADY_ON
    );
    assert_eq!(x0(hvc(&mut vm, [0xc400_0004, 1, 0, 0])), psci::AFFINITY_ON);
    // vCPU 1 turns itself off.
    let off = vm.fault(
        Vcpu::new(7),
        &Fault::UnknownSyscall {
            regs: [0x8400_0002, 0, 0, 0, 0, 0, 0, 0],
            fault_ip: 0,
            sp: 0,
            lr: 0,
            spsr: 0,
            syscall: 0,
        },
    );
    assert_eq!(off, Reply::Hold);
    assert_eq!(x0(hvc(&mut vm, [0xc400_0004, 1, 0, 0])), psci::AFFINITY_OFF);
}

#[test]
fn the_virtual_timer_is_injected_and_acknowledged_when_ended() {
    let mut vm = booted(&[0]);
    vm.platform.acks.clear();
    // The timer fires before the guest enabled it: it waits.
    vm.fault(V0, &Fault::VppiEvent { irq: 27 });
    assert!(vm.platform.injected.is_empty());
    set_regs(&mut vm, 0, |r| r.x0 = 1);
    mmio(&mut vm, m::GICD_BASE, dabt(2, true, 0));
    set_regs(&mut vm, 0, |r| r.x0 = 1 << 27);
    mmio(&mut vm, m::GICD_BASE + reg::ISENABLER, dabt(2, true, 0));
    assert_eq!(vm.platform.injected, [(0, 0, 27)]);
    assert!(
        vm.platform.acks.is_empty(),
        "masked until the guest ends it"
    );
    vm.fault(V0, &Fault::VgicMaintenance { idx: Some(0) });
    assert_eq!(vm.platform.acks, [(0, 27)]);
    // An event for a PPI no device has is acknowledged and logged.
    vm.fault(V0, &Fault::VppiEvent { irq: 30 });
    assert_eq!(vm.platform.acks, [(0, 27), (0, 30)]);
}

/// A WFI (ISS bit 0 clear) trap.
const WFI: u64 = 0x0600_0000;

/// A booted VM whose platform can time wake-ups, its vCPU 0's virtual
/// timer set to fire at physical count 1,600 (virtual 1,500, offset 100),
/// the counter at 1,000.
fn timed() -> Vm<'static, Fake, Spy> {
    let mut vm = booted(&[0]);
    vm.platform.counter = Some(1000);
    for (reg, v) in [
        (vcpu_reg::CNTV_CTL, 1),
        (vcpu_reg::CNTV_CVAL, 1500),
        (vcpu_reg::CNTVOFF, 100),
    ] {
        vm.platform.vregs.insert((0, reg), v);
    }
    vm
}

#[test]
fn a_wfi_with_nothing_pending_waits_for_the_timers_deadline() {
    let mut vm = timed();
    assert_eq!(vm.fault(V0, &Fault::VcpuFault { hsr: WFI }), Reply::Hold);
    assert_eq!(vm.platform.wakes, [Some(1600)]);
    vm.platform.running.insert(0, false);
    // Woken early (another event of the VMM's): it goes on waiting.
    vm.platform.counter = Some(1599);
    vm.wake_idle();
    assert!(!vm.platform.running[&0]);
    // Its deadline: resumed at the WFI, no wake-up wanted any more.
    vm.platform.counter = Some(1600);
    vm.wake_idle();
    assert!(vm.platform.running[&0]);
    assert_eq!(vm.platform.wakes, [Some(1600), None]);
    vm.wake_idle();
    assert_eq!(vm.platform.wakes.len(), 2, "nothing waits: nothing asked");
}

#[test]
fn a_waiting_wfi_is_resumed_by_an_interrupt() {
    let mut vm = timed();
    // The timer is off: only an interrupt ends the wait.
    vm.platform.vregs.insert((0, vcpu_reg::CNTV_CTL), 0);
    set_regs(&mut vm, 0, |r| r.x0 = 1);
    mmio(&mut vm, m::GICD_BASE, dabt(2, true, 0));
    set_regs(&mut vm, 0, |r| r.x0 = 1 << 27);
    mmio(&mut vm, m::GICD_BASE + reg::ISENABLER, dabt(2, true, 0));
    assert_eq!(vm.fault(V0, &Fault::VcpuFault { hsr: WFI }), Reply::Hold);
    assert!(vm.platform.wakes.is_empty(), "no deadline to wake at");
    vm.platform.running.insert(0, false);
    vm.platform.counter = Some(u64::MAX - 1);
    vm.wake_idle();
    assert!(!vm.platform.running[&0], "no deadline, no interrupt");
    // The timer's event (as another vCPU's fault would bring): injected,
    // and the waiting vCPU resumed.
    vm.fault(V0, &Fault::VppiEvent { irq: 27 });
    assert_eq!(vm.platform.injected, [(0, 0, 27)]);
    vm.wake_idle();
    assert!(vm.platform.running[&0]);
    // With the interrupt in its list register, a WFI goes straight back.
    assert_eq!(vm.fault(V0, &Fault::VcpuFault { hsr: WFI }), Reply::Resume);
}

#[test]
fn a_wfi_goes_straight_back_when_the_vmm_cannot_time_it_or_it_is_due() {
    let mut vm = booted(&[0]);
    assert_eq!(vm.fault(V0, &Fault::VcpuFault { hsr: WFI }), Reply::Resume);
    let mut vm = timed();
    vm.platform.counter = Some(1600);
    assert_eq!(vm.fault(V0, &Fault::VcpuFault { hsr: WFI }), Reply::Resume);
    assert!(vm.platform.wakes.is_empty());
    // A guest that masked its timer has no deadline, but still waits.
    let mut vm = timed();
    vm.platform.vregs.insert((0, vcpu_reg::CNTV_CTL), 3);
    assert_eq!(vm.fault(V0, &Fault::VcpuFault { hsr: WFI }), Reply::Hold);
    assert!(vm.platform.wakes.is_empty());
    // A reset forgets the wait.
    vm.boot().unwrap();
    vm.platform.running.insert(0, false);
    vm.platform.counter = Some(u64::MAX);
    vm.wake_idle();
    assert!(!vm.platform.running[&0], "not resumed by a stale wait");
}

#[test]
fn wfi_goes_straight_back() {
    let mut vm = booted(&[0]);
    set_regs(&mut vm, 0, |r| r.pc = 0x7000);
    assert_eq!(
        vm.fault(V0, &Fault::VcpuFault { hsr: 0x0600_0001 }),
        Reply::Resume
    );
    assert_eq!(regs(&vm, 0).pc, 0x7000, "the WFI runs again");
}

#[test]
fn system_registers_read_as_zero_and_other_traps_are_undefined() {
    let mut vm = booted(&[0]);
    set_regs(&mut vm, 0, |r| {
        r.pc = 0x8000;
        r.spsr = 0x3c5;
        r.x5 = 77;
    });
    // mrs x5, <something trapped>: Rt = 5, direction read.
    let hsr = 0x18 << 26 | 1 << 25 | 5 << 5 | 1;
    assert_eq!(vm.fault(V0, &Fault::VcpuFault { hsr }), Reply::Resume);
    assert_eq!((regs(&vm, 0).x5, regs(&vm, 0).pc), (0, 0x8004));
    // An exception class the VMM has no answer for.
    vm.fault(V0, &Fault::VcpuFault { hsr: 0x3f << 26 });
    assert_eq!(regs(&vm, 0).pc, VBAR + 0x200);
    assert_eq!(vm.platform.vregs[&(0, vcpu_reg::ESR)], 0x0200_0000);
}

#[test]
fn faults_from_strangers_are_logged_not_obeyed() {
    let mut vm = booted(&[0]);
    assert_eq!(
        vm.fault(Vcpu::new(9), &Fault::VppiEvent { irq: 27 }),
        Reply::Hold
    );
    assert!(vm.platform.log.last().unwrap().contains("not a vCPU"));
}

#[test]
fn a_hostile_guest_floods_the_log_only_so_much() {
    let mut vm = booted(&[0]);
    set_regs(&mut vm, 0, |r| r.spsr = 0x3c5);
    let before = vm.platform.log.len();
    for _ in 0..1000 {
        mmio(&mut vm, 0x2000_0000, dabt(2, false, 0));
    }
    // 16, then 32, 64, 128, 256, 512.
    assert_eq!(vm.platform.log.len() - before, 16 + 5);
}

/// A small deterministic generator for the fuzz test.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 ^ (self.0 >> 29)
    }
}

#[test]
fn no_guest_input_panics_the_vmm() {
    let mut vm = booted(&[0, 1]);
    let mut rng = Lcg(7);
    for i in 0..20_000 {
        let words: Vec<u64> = (0..8).map(|_| rng.next()).collect();
        // Guest registers of any value, including the vectors.
        let ctx = UserContext::from_words(&core::array::from_fn(|k| {
            words[k % 8].rotate_left(k as u32)
        }));
        vm.platform.regs.insert(0, ctx);
        vm.platform.vregs.insert((0, vcpu_reg::VBAR), words[7] & 1);
        let addr = match i % 4 {
            0 => m::GICD_BASE + (words[1] & 0xfff),
            1 => m::UART_BASE + (words[1] & 0xfff),
            2 => m::VIRTIO_MMIO_BASE + (words[1] & 0x3fff),
            _ => words[1],
        };
        let f = match words[0] % 7 {
            0..=2 => Fault::VmFault {
                ip: words[2],
                addr,
                prefetch: words[3] & 1 == 1,
                fsr: words[4],
            },
            3 => Fault::VcpuFault { hsr: words[4] },
            4 => Fault::UnknownSyscall {
                regs: [
                    words[5] & 0x8600_00ff | (words[5] & 1) << 30,
                    words[6],
                    words[7],
                    words[1],
                    0,
                    0,
                    0,
                    0,
                ],
                fault_ip: words[2],
                sp: 0,
                lr: 0,
                spsr: words[3],
                syscall: words[4],
            },
            5 => Fault::VgicMaintenance {
                idx: Some(words[5] % 70),
            },
            _ => Fault::VppiEvent { irq: words[6] % 40 },
        };
        let v = Vcpu::new((words[3] % 2) as u8);
        let _ = vm.fault(v, &f);
        if i % 50 == 0 {
            let _ = vm.console_input(&words[6].to_le_bytes());
        }
    }
}
