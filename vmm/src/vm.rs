//! The virtual machine: booting the guest, and answering every trap of its
//! vCPUs.
//!
//! Each trap arrives as a fault of a vCPU's thread ([`Vm::fault`]); the
//! answer ([`Reply`]) says whether the thread goes on. What each fault
//! means (seL4 16.0.0 with hypervisor support, and Septa's kernel):
//!
//! | fault | from | the VMM |
//! |---|---|---|
//! | VMFault | a load or store to guest-physical memory that is not mapped: MMIO | decodes the syndrome, emulates the GIC distributor, the PL011 and the virtio-mmio transports; anything else gets a synchronous external abort |
//! | UnknownSyscall | `hvc` (seL4 takes it as a system call; x7 is not a valid one) | PSCI / SMCCC ([`crate::psci`]) |
//! | CapFault | `hvc` whose x7 happens to be a valid seL4 system call number: the kernel looked x0 up in the vCPU thread's empty CSpace | the same firmware call |
//! | VCPUFault | `smc` (trapped), WFI/WFE, a trapped system register, anything else | firmware call; go on; read-as-zero; undefined instruction |
//! | VGICMaintenance | the guest ended an interrupt from a list register | frees the register, acknowledges a virtual timer event, refills |
//! | VPPIEvent | the virtual timer fired (the kernel masked it) | makes PPI 27 pending |
//!
//! The guest cannot crash the VMM: every register it controls is checked,
//! every kernel error is logged and at worst stops the guest.

use core::fmt;

use septa_abi::vcpu_reg;
use septa_runtime::Vcpu;
use septa_sel4::fault::Fault;
use septa_sel4::{Error, UserContext};
use septa_vm_layout::map as m;
use septa_vm_layout::{place, ImageHeader, Placement};

use crate::gicd::{self, Distributor};
use crate::pl011::{self, Pl011};
use crate::platform::{Hooks, Platform};
use crate::psci::{self, Call};
use crate::syndrome::{self, ec, Access, Origin, Undecodable};
use crate::vgic::ListRegisters;
use crate::virtio::mmio::Device as _;
use crate::virtio::{self, GuestMem};
use crate::{fdt, MAX_VCPUS};

/// The virtual timer's PPI (INTID 27), which seL4 delivers as VPPI events.
pub const VTIMER_IRQ: u16 = (m::PPI_BASE + m::TIMER_VIRT_PPI) as u16;
/// The console's INTID.
const UART_IRQ: usize = (m::SPI_BASE + m::UART_SPI) as usize;
/// SCTLR_EL1 of a vCPU at boot: MMU and caches off, alignment checks off;
/// the RES1 bits of ARMv8.0 plus what seL4's `vcpu_init` sets
/// (CP15BEN, nTWI, nTWE, UCT, UCI), so a reboot starts the way the first
/// boot did.
pub const SCTLR_BOOT: u64 = 0x34d5_8820;
/// MPIDR_EL1 bit 31 is RES1.
const MPIDR_RES1: u64 = 1 << 31;
/// Input bytes kept for the guest's console beyond the UART's FIFO.
pub const INPUT_CAPACITY: usize = 4096;
/// Console output is passed on at each line end, or when this much waits.
const OUTPUT_CHUNK: usize = 256;
/// VBAR_EL1 of a guest that has not set up its exception vectors yet: an
/// exception injected then would run from address 0, so a vCPU that needs
/// one is stopped instead.
const NO_VECTORS: u64 = 0;

/// What to tell a vCPU's thread after its fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Go on where the registers say (a reply with label 0, no registers).
    Resume,
    /// The answer to an UnknownSyscall fault: x0..x7, then the PC to go on
    /// at (a reply whose registers the kernel writes back).
    Syscall([u64; 9]),
    /// No reply: the thread stays stopped, or was started afresh.
    Hold,
}

/// A vCPU's power state (PSCI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    Off,
    On,
}

/// Where the guest's files are, in the VMM.
#[derive(Clone, Copy, Debug)]
pub struct Images<'a> {
    pub kernel: &'a [u8],
    pub initrd: &'a [u8],
    pub dtb: &'a [u8],
}

/// The guest's RAM: guest-physical base and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ram {
    pub base: u64,
    pub size: u64,
}

/// Why the guest cannot boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BootError {
    #[error("the kernel image: {0}")]
    Image(#[from] septa_vm_layout::ImageError),
    #[error("placing the guest: {0}")]
    Place(#[from] septa_vm_layout::PlaceError),
    #[error("the device tree: {0}")]
    Dtb(#[from] fdt::FdtError),
    #[error("the device tree puts the initrd at {dtb:#x}, but it belongs at {placed:#x} for this kernel and RAM")]
    InitrdMismatch { dtb: u64, placed: u64 },
    #[error("the device tree has no /chosen/{0}, though there is an initrd")]
    NoInitrdProperty(&'static str),
    #[error("{len:#x} bytes at {gpa:#x} do not fit in guest RAM")]
    OutsideRam { gpa: u64, len: u64 },
    #[error("the VM has no vCPU")]
    NoVcpu,
    #[error("the kernel refused to set up vCPU {vcpu}: {error}")]
    Kernel { vcpu: u8, error: Error },
}

/// What the VMM logs about the guest's misdeeds, each kind counted so a
/// hostile guest cannot flood the console: the first 16 of a kind, then
/// every power of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Noise {
    Mmio,
    Distributor,
    Firmware,
    Sysreg,
    Exception,
    Virtio,
}

const NOISE_KINDS: usize = 6;

/// State of one VM.
pub struct Vm<'a, P: Platform, H: Hooks> {
    pub platform: P,
    hooks: H,
    images: Images<'a>,
    ram: Ram,
    /// The vCPUs in MPIDR order (index 0 boots), by their ids.
    vcpus: [Option<(Vcpu, Power)>; MAX_VCPUS],
    gicd: Distributor,
    lrs: ListRegisters,
    /// vCPUs that wait in their WFI (held, no reply to the trap): the
    /// physical count at which the guest's virtual timer fires
    /// (`u64::MAX`: it is off), until [`Vm::wake_idle`] resumes them.
    idle: [Option<u64>; MAX_VCPUS],
    /// The wake-up last asked of the platform.
    wake: Option<u64>,
    uart: Pl011,
    input: [u8; INPUT_CAPACITY],
    input_head: usize,
    input_len: usize,
    output: [u8; OUTPUT_CHUNK],
    output_len: usize,
    /// The guest runs (it has not powered off or failed to boot).
    running: bool,
    boots: u32,
    noise: [u64; NOISE_KINDS],
    /// Guest RAM as the devices reach it (none: no virtio device works).
    mem: Option<GuestMem>,
    /// The network card and its transport's slot.
    net: Option<(u32, virtio::net::Net)>,
    /// The disk and its transport's slot.
    blk: Option<(u32, virtio::blk::Blk)>,
    /// The virtio console and its transport's slot: with one, typed
    /// input goes to it rather than to the PL011.
    console: Option<(u32, virtio::console::Console)>,
    /// A sealed VM (`docs/vmm.md`, "A VMM that cannot read the guest"):
    /// the initializer loaded the guest into RAM the VMM never maps, the
    /// devices see only the shared window and require ACCESS_PLATFORM, and
    /// a reset is refused (the VMM cannot load the guest again).
    sealed: bool,
}

/// A GPR's position in the TCB register order (pc, sp, spsr, x0..x8, x16,
/// x17, x18, x29, x30, x9..x15, x19..x28).
pub const fn tcb_index(x: u8) -> usize {
    match x {
        0..=8 => 3 + x as usize,
        16 => 12,
        17 => 13,
        18 => 14,
        29 => 15,
        30 => 16,
        9..=15 => 17 + (x as usize - 9),
        19..=28 => 24 + (x as usize - 19),
        _ => 0,
    }
}

fn get_x(regs: &UserContext, x: u8) -> u64 {
    if x >= 31 {
        return 0; // xzr
    }
    regs.to_words()[tcb_index(x)]
}

fn set_x(regs: &mut UserContext, x: u8, value: u64) {
    if x < 31 {
        let mut w = regs.to_words();
        w[tcb_index(x)] = value;
        *regs = UserContext::from_words(&w);
    }
}

/// Registers to read or write so that GPR `x` and the PC are covered.
fn count_for(x: u8) -> usize {
    if x >= 31 {
        1
    } else {
        tcb_index(x) + 1
    }
}

/// Where a guest-physical address falls.
#[derive(Clone, Copy)]
enum Device {
    Gicd(u64),
    Uart(u64),
    /// A virtio-mmio transport's slot and an offset in it.
    Virtio(u32, u64),
    None,
}

fn device_at(gpa: u64) -> Device {
    if (m::GICD_BASE..m::GICD_BASE + m::GICD_SIZE).contains(&gpa) {
        return Device::Gicd(gpa - m::GICD_BASE);
    }
    if (m::UART_BASE..m::UART_BASE + m::UART_SIZE).contains(&gpa) {
        return Device::Uart(gpa - m::UART_BASE);
    }
    let virtio_end = m::VIRTIO_MMIO_BASE + m::VIRTIO_MMIO_STRIDE * u64::from(m::VIRTIO_MMIO_COUNT);
    if (m::VIRTIO_MMIO_BASE..virtio_end).contains(&gpa) {
        let off = gpa - m::VIRTIO_MMIO_BASE;
        return Device::Virtio(
            (off / m::VIRTIO_MMIO_STRIDE) as u32,
            off % m::VIRTIO_MMIO_STRIDE,
        );
    }
    Device::None
}

/// Appends `b` to the guest's console output (the PL011's or the virtio
/// console's), passing it on at a line end or when the chunk is full.
fn put_output<P: Platform>(
    output: &mut [u8; OUTPUT_CHUNK],
    len: &mut usize,
    platform: &mut P,
    b: u8,
) {
    output[*len] = b;
    *len += 1;
    if b == b'\n' || *len == OUTPUT_CHUNK {
        platform.console(&output[..*len]);
        *len = 0;
    }
}

/// What a guest access to a device's transport did.
enum Accessed<W> {
    /// A read, and the value read.
    Read(u32),
    /// A write, what the transport made of it and the device's work.
    Written(virtio::mmio::Effect, W),
}

/// A guest access to one device's transport.
fn transport_access<D: virtio::mmio::Device>(
    dev: &mut D,
    mem: &GuestMem,
    off: u64,
    a: &Access,
    value: u64,
) -> Result<Accessed<D::Work>, &'static str> {
    if a.write {
        let (effect, work) = dev.write(mem, off, a.size, value as u32)?;
        Ok(Accessed::Written(effect, work))
    } else {
        dev.read(off, a.size).map(Accessed::Read)
    }
}

/// An access to a transport with no device behind it: reads answer "no
/// device" (see [`virtio_empty`]), writes are ignored.
fn virtio_none(off: u64, a: &Access) -> Option<u64> {
    (!a.write).then(|| u64::from(virtio_empty(off)))
}

/// virtio-mmio registers the VMM answers on every transport until it
/// emulates devices (virtio 1.2, 4.2.2): magic "virt", version 2, device
/// id 0, which a driver reads as "no device here".
fn virtio_empty(offset: u64) -> u32 {
    match offset {
        0x000 => 0x7472_6976,
        0x004 => 2,
        0x00c => 0x554d_4551, // vendor id, as QEMU's
        _ => 0,
    }
}

impl<'a, P: Platform, H: Hooks> Vm<'a, P, H> {
    /// A VM whose vCPUs are `vcpus` (index 0 first), loaded from `images`
    /// into `ram`. Nothing runs until [`boot`](Self::boot).
    pub fn new(platform: P, hooks: H, images: Images<'a>, ram: Ram, vcpus: &[Vcpu]) -> Self {
        let mut slots = [None; MAX_VCPUS];
        for (s, v) in slots.iter_mut().zip(vcpus) {
            *s = Some((*v, Power::Off));
        }
        Vm {
            platform,
            hooks,
            images,
            ram,
            vcpus: slots,
            gicd: Distributor::new(vcpus.len().min(MAX_VCPUS)),
            lrs: ListRegisters::new(),
            idle: [None; MAX_VCPUS],
            wake: None,
            uart: Pl011::new(),
            input: [0; INPUT_CAPACITY],
            input_head: 0,
            input_len: 0,
            output: [0; OUTPUT_CHUNK],
            output_len: 0,
            running: false,
            boots: 0,
            noise: [0; NOISE_KINDS],
            mem: None,
            net: None,
            blk: None,
            console: None,
            sealed: false,
        }
    }

    /// Gives the devices guest RAM (the VMM's view of it).
    pub fn set_guest_mem(&mut self, mem: GuestMem) {
        self.mem = Some(mem);
    }

    /// Seals the VM: the guest is already in its RAM (the initializer put
    /// it there; [`boot`](Self::boot) copies nothing), the devices reach
    /// only the memory given by [`set_guest_mem`](Self::set_guest_mem)
    /// (the shared window) and require VIRTIO_F_ACCESS_PLATFORM, so that
    /// the guest maps every buffer through its DMA API into the window;
    /// a PSCI SYSTEM_RESET powers the guest off instead.
    pub fn seal(&mut self) {
        self.sealed = true;
        let f = virtio::mmio::F_ACCESS_PLATFORM;
        if let Some((_, d)) = self.net.as_mut() {
            virtio::mmio::Device::transport(d).require(f);
        }
        if let Some((_, d)) = self.blk.as_mut() {
            virtio::mmio::Device::transport(d).require(f);
        }
        if let Some((_, d)) = self.console.as_mut() {
            virtio::mmio::Device::transport(d).require(f);
        }
    }

    /// Whether the VM is sealed.
    pub fn sealed(&self) -> bool {
        self.sealed
    }

    /// Offers the guest a network card on transport `slot`.
    pub fn attach_net(&mut self, slot: u32, net: virtio::net::Net) {
        self.net = Some((slot, net));
        if self.sealed {
            self.seal();
        }
    }

    /// Offers the guest a disk on transport `slot`.
    pub fn attach_blk(&mut self, slot: u32, blk: virtio::blk::Blk) {
        self.blk = Some((slot, blk));
        if self.sealed {
            self.seal();
        }
    }

    /// Offers the guest a virtio console on transport `slot`: typed input
    /// goes to it from now on.
    pub fn attach_console(&mut self, slot: u32, console: virtio::console::Console) {
        self.console = Some((slot, console));
        if self.sealed {
            self.seal();
        }
    }

    /// After the console's work: what the guest wrote passed on (as the
    /// PL011's is), its interrupt, its complaint, then typed input into
    /// the chains it has posted.
    fn console_work(&mut self, mut w: virtio::console::Work) {
        let (Some(mem), Some((slot, console))) = (self.mem, self.console.as_mut()) else {
            return;
        };
        let slot = *slot;
        if w.output {
            let (output, len, platform) =
                (&mut self.output, &mut self.output_len, &mut self.platform);
            let t = console.transmit(&mem, |bytes| {
                for &b in bytes {
                    put_output(output, len, platform, b);
                }
            });
            w.interrupt |= t.interrupt;
            w.error = w.error.or(t.error);
        }
        if w.interrupt {
            self.virtio_interrupt(slot);
        }
        if let Some(e) = w.error {
            self.noisy(Noise::Virtio, format_args!("console: {e}: refused"));
        }
        self.feed_input();
    }

    /// The block virtualiser answered: complete and send requests.
    pub fn blk_poll(&mut self) {
        let (Some(mem), Some((_, blk))) = (self.mem, self.blk.as_mut()) else {
            return;
        };
        let w = blk.poll(&mem);
        self.blk_work(w);
        self.flush_irqs();
    }

    /// Makes virtio-mmio transport `slot`'s interrupt pending (edge).
    fn virtio_interrupt(&mut self, slot: u32) {
        let irq = (m::SPI_BASE + m::VIRTIO_MMIO_FIRST_SPI + slot) as usize;
        self.gicd.set_pending(0, irq);
    }

    fn blk_work(&mut self, w: virtio::blk::Work) {
        let Some((slot, _)) = self.blk else { return };
        if w.interrupt {
            self.virtio_interrupt(slot);
        }
        if let Some(e) = w.error {
            self.noisy(Noise::Virtio, format_args!("disk: {e}: refused"));
        }
    }

    pub fn net(&self) -> Option<&virtio::net::Net> {
        self.net.as_ref().map(|(_, n)| n)
    }

    /// The net virtualisers signalled: move what can move.
    pub fn net_poll(&mut self) {
        let (Some(mem), Some((_, net))) = (self.mem, self.net.as_mut()) else {
            return;
        };
        let w = net.poll(&mem);
        self.net_work(w);
        self.flush_irqs();
    }

    fn net_work(&mut self, w: virtio::net::Work) {
        let Some((slot, _)) = self.net else { return };
        if w.interrupt {
            self.virtio_interrupt(slot);
        }
        if w.notify_rx || w.notify_tx {
            self.platform.net_notify(w.notify_rx, w.notify_tx);
        }
        if let Some(e) = w.error {
            self.noisy(Noise::Virtio, format_args!("network card: {e}: refused"));
        }
    }

    /// A guest access to virtio-mmio transport `slot`.
    fn virtio_access(
        &mut self,
        slot: u32,
        off: u64,
        a: &Access,
        value: u64,
    ) -> Result<Option<u64>, &'static str> {
        let Some(mem) = self.mem else {
            return Ok(virtio_none(off, a));
        };
        if let Some((_, blk)) = self.blk.as_mut().filter(|(s, _)| *s == slot) {
            let (effect, work) = match transport_access(blk, &mem, off, a, value)? {
                Accessed::Read(v) => return Ok(Some(u64::from(v))),
                Accessed::Written(effect, work) => (effect, work),
            };
            self.ignored("disk", effect, off, value);
            self.blk_work(work);
        } else if let Some((_, console)) = self.console.as_mut().filter(|(s, _)| *s == slot) {
            let (effect, work) = match transport_access(console, &mem, off, a, value)? {
                Accessed::Read(v) => return Ok(Some(u64::from(v))),
                Accessed::Written(effect, work) => (effect, work),
            };
            self.ignored("console", effect, off, value);
            self.console_work(work);
        } else if let Some((_, net)) = self.net.as_mut().filter(|(s, _)| *s == slot) {
            let (effect, work) = match transport_access(net, &mem, off, a, value)? {
                Accessed::Read(v) => return Ok(Some(u64::from(v))),
                Accessed::Written(effect, work) => (effect, work),
            };
            self.ignored("network card", effect, off, value);
            self.net_work(work);
        } else {
            return Ok(virtio_none(off, a));
        }
        Ok(None)
    }

    /// Logs a register write a device ignored.
    fn ignored(&mut self, device: &str, effect: virtio::mmio::Effect, off: u64, value: u64) {
        if let virtio::mmio::Effect::Ignored(why) = effect {
            self.noisy(
                Noise::Virtio,
                format_args!("{device}: write {value:#x} at {off:#x} ignored: {why}"),
            );
        }
    }

    fn log(&mut self, args: fmt::Arguments<'_>) {
        self.platform.log(args);
    }

    fn noisy(&mut self, kind: Noise, args: fmt::Arguments<'_>) {
        let n = &mut self.noise[kind as usize];
        *n += 1;
        let n = *n;
        if n <= 16 || n.is_power_of_two() {
            if n > 16 {
                self.platform.log(format_args!("{args} ({n} so far)"));
            } else {
                self.platform.log(args);
            }
        }
    }

    /// What the VMM runs on (the PD's event loop reaches its console
    /// through it).
    pub fn platform_mut(&mut self) -> &mut P {
        &mut self.platform
    }

    pub fn running(&self) -> bool {
        self.running
    }

    pub fn boots(&self) -> u32 {
        self.boots
    }

    /// The index (MPIDR affinity 0) of the vCPU with this id.
    fn index_of(&self, vcpu: Vcpu) -> Option<usize> {
        self.vcpus
            .iter()
            .position(|s| s.is_some_and(|(v, _)| v == vcpu))
    }

    fn vcpu_at(&self, index: usize) -> Option<Vcpu> {
        self.vcpus.get(index).copied().flatten().map(|(v, _)| v)
    }

    fn set_power(&mut self, index: usize, p: Power) {
        if let Some(Some((_, power))) = self.vcpus.get_mut(index) {
            *power = p;
        }
        if let Some(idle) = self.idle.get_mut(index) {
            *idle = None;
        }
        self.gicd.set_online(index, p == Power::On);
    }

    // ------------------------------------------------------------------
    // Booting

    /// Stops every vCPU, loads the images and starts vCPU 0 at the
    /// kernel. Used at start-up and for PSCI SYSTEM_RESET. On an error the
    /// guest stays stopped.
    pub fn boot(&mut self) -> Result<Placement, BootError> {
        self.hooks.boot_started();
        self.running = false;
        for i in 0..MAX_VCPUS {
            if let Some(v) = self.vcpu_at(i) {
                // A stopped thread cannot be stopped twice wrongly: the
                // kernel accepts suspending a suspended thread.
                let _ = self.platform.stop(v);
                self.set_power(i, Power::Off);
            }
        }
        let first = self.vcpu_at(0).ok_or(BootError::NoVcpu)?;
        let header = ImageHeader::parse(self.images.kernel)?;
        let p = place(
            self.ram.base,
            self.ram.size,
            &header,
            self.images.initrd.len() as u64,
        )?;
        let dtb_len = fdt::check(self.images.dtb)?;
        if !self.images.initrd.is_empty() {
            for (prop, placed) in [
                ("linux,initrd-start", p.initrd),
                ("linux,initrd-end", p.initrd_end),
            ] {
                match fdt::chosen_number(self.images.dtb, prop)? {
                    Some(dtb) if dtb == placed => {}
                    Some(dtb) => return Err(BootError::InitrdMismatch { dtb, placed }),
                    None => return Err(BootError::NoInitrdProperty(prop)),
                }
            }
        }
        let images = self.images;
        // A sealed VM's guest is in RAM already (the initializer loaded
        // it, from the same files at the same places).
        let load: &[(u64, &[u8])] = if self.sealed {
            &[]
        } else {
            &[
                (p.kernel, images.kernel),
                (p.dtb, &images.dtb[..dtb_len]),
                (p.initrd, images.initrd),
            ]
        };
        for &(gpa, bytes) in load {
            self.platform
                .copy_to_ram(gpa, bytes)
                .map_err(|e| BootError::OutsideRam {
                    gpa: e.gpa,
                    len: e.len,
                })?;
        }
        self.gicd.reset();
        self.uart.reset();
        if let Some((_, net)) = self.net.as_mut() {
            net.reset();
        }
        if let Some((_, blk)) = self.blk.as_mut() {
            blk.reset();
        }
        if let Some((_, console)) = self.console.as_mut() {
            console.reset();
        }
        self.output_len = 0;
        self.boots += 1;
        self.hooks.guest_starting();
        self.start(0, p.kernel, p.dtb)
            .map_err(|error| BootError::Kernel {
                vcpu: first.id(),
                error,
            })?;
        self.running = true;
        Ok(p)
    }

    /// Starts vCPU `index` at `entry` with `x0` (booting.rst's entry state
    /// for vCPU 0, PSCI CPU_ON's for the others): EL1h, interrupts masked,
    /// MMU and caches off, every other register zero.
    fn start(&mut self, index: usize, entry: u64, x0: u64) -> Result<(), Error> {
        let Some(v) = self.vcpu_at(index) else {
            return Err(Error::InvalidArgument { index: 0 });
        };
        for (reg, value) in [
            (vcpu_reg::SCTLR, SCTLR_BOOT),
            (vcpu_reg::CNTV_CTL, 0),
            (vcpu_reg::CNTV_CVAL, 0),
            (vcpu_reg::VMPIDR_EL2, MPIDR_RES1 | index as u64),
        ] {
            self.platform.write_vcpu_reg(v, reg, value)?;
        }
        // A virtual timer event the kernel masked before a restart would
        // keep the timer silent for ever.
        self.platform.ack_vppi(v, u64::from(VTIMER_IRQ))?;
        let regs = UserContext {
            pc: entry,
            spsr: syndrome::PSTATE_EL1H_MASKED,
            x0,
            ..Default::default()
        };
        self.platform
            .write_regs(v, septa_abi::TCB_REGISTER_COUNT, &regs)?;
        self.set_power(index, Power::On);
        self.platform.resume(v)
    }

    /// Stops the guest for good (PSCI SYSTEM_OFF, or a failure).
    fn power_off(&mut self) {
        for i in 0..MAX_VCPUS {
            if let Some(v) = self.vcpu_at(i) {
                let _ = self.platform.stop(v);
                self.set_power(i, Power::Off);
            }
        }
        self.flush_output();
        self.running = false;
    }

    // ------------------------------------------------------------------
    // Interrupts

    /// Fills every running vCPU's free list registers.
    fn flush_irqs(&mut self) {
        for i in 0..self.gicd.cpus() {
            let Some(v) = self.vcpu_at(i) else { continue };
            let platform = &mut self.platform;
            let r = self.lrs.flush(i, &mut self.gicd, |lr, ready| {
                platform.inject_irq(v, ready.irq, ready.priority, ready.group, lr)
            });
            if let Err(e) = r {
                self.log(format_args!(
                    "cannot inject an interrupt into vCPU {v}: {e}"
                ));
            }
        }
    }

    fn uart_line(&mut self) {
        let level = self.uart.irq();
        self.gicd.set_line(UART_IRQ, level);
    }

    // ------------------------------------------------------------------
    // Console

    /// Input for the guest's console; returns how many bytes were taken
    /// (the rest must wait: see [`input_space`](Self::input_space)).
    pub fn console_input(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        for &b in bytes {
            if self.input_len == INPUT_CAPACITY {
                break;
            }
            self.input[(self.input_head + self.input_len) % INPUT_CAPACITY] = b;
            self.input_len += 1;
            taken += 1;
        }
        self.feed_input();
        self.flush_irqs();
        taken
    }

    /// Typed input to the guest's console: the virtio console if it has
    /// one, else the PL011.
    fn feed_input(&mut self) {
        let (Some(mem), Some((slot, console))) = (self.mem, self.console.as_mut()) else {
            self.feed_uart();
            return;
        };
        let slot = *slot;
        let mut work = virtio::console::Work::default();
        // The ring's bytes in at most two runs.
        for _ in 0..2 {
            let end = (self.input_head + self.input_len).min(INPUT_CAPACITY);
            let (n, w) = console.receive(&mem, &self.input[self.input_head..end]);
            work.interrupt |= w.interrupt;
            work.error = work.error.or(w.error);
            self.input_head = (self.input_head + n) % INPUT_CAPACITY;
            self.input_len -= n;
            if n == 0 || self.input_len == 0 {
                break;
            }
        }
        if work.interrupt {
            self.virtio_interrupt(slot);
        }
        if let Some(e) = work.error {
            self.noisy(Noise::Virtio, format_args!("console: {e}: refused"));
        }
    }

    /// Room for console input.
    pub fn input_space(&self) -> usize {
        INPUT_CAPACITY - self.input_len
    }

    fn feed_uart(&mut self) {
        while self.input_len > 0 && self.uart.receive(self.input[self.input_head]) {
            self.input_head = (self.input_head + 1) % INPUT_CAPACITY;
            self.input_len -= 1;
        }
        self.uart_line();
    }

    fn transmit(&mut self, b: u8) {
        put_output(
            &mut self.output,
            &mut self.output_len,
            &mut self.platform,
            b,
        );
    }

    /// Passes on what the guest wrote since the last time.
    pub fn flush_output(&mut self) {
        if self.output_len > 0 {
            let n = self.output_len;
            self.output_len = 0;
            let out = self.output;
            self.platform.console(&out[..n]);
        }
    }

    // ------------------------------------------------------------------
    // Faults

    /// Handles a fault of vCPU `vcpu`'s thread.
    pub fn fault(&mut self, vcpu: Vcpu, fault: &Fault) -> Reply {
        let Some(index) = self.index_of(vcpu) else {
            self.log(format_args!(
                "a fault from child {vcpu}, which is not a vCPU of this VM: {fault:?}"
            ));
            return Reply::Hold;
        };
        let mut tx_only = false;
        let reply = match *fault {
            Fault::VmFault {
                ip,
                addr,
                prefetch,
                fsr,
            } => {
                let (reply, tx) = self.vm_fault(index, vcpu, ip, addr, prefetch, fsr);
                tx_only = tx;
                reply
            }
            Fault::UnknownSyscall { regs, fault_ip, .. } => {
                let mut out = [0u64; 9];
                out[..8].copy_from_slice(&regs);
                match self.firmware(index, [regs[0], regs[1], regs[2], regs[3]]) {
                    Some(x0) => {
                        out[0] = x0;
                        out[8] = fault_ip.wrapping_add(4);
                        Reply::Syscall(out)
                    }
                    None => Reply::Hold,
                }
            }
            // `hvc` with a valid seL4 system call number in x7: the kernel
            // looked up x0 in the thread's empty CSpace and failed.
            Fault::CapFault { .. } => self.firmware_by_regs(index, vcpu),
            Fault::VcpuFault { hsr } => self.vcpu_fault(index, vcpu, hsr),
            Fault::VgicMaintenance { idx } => {
                if let Some(irq) = self.lrs.ended(index, idx, &mut self.gicd) {
                    if irq == VTIMER_IRQ {
                        if let Err(e) = self.platform.ack_vppi(vcpu, u64::from(irq)) {
                            self.log(format_args!("acknowledging the virtual timer failed: {e}"));
                        }
                    }
                }
                Reply::Resume
            }
            Fault::VppiEvent { irq } => {
                if irq == u64::from(VTIMER_IRQ) {
                    self.gicd.set_pending(index, usize::from(VTIMER_IRQ));
                } else {
                    self.log(format_args!(
                        "an event for virtual PPI {irq}, which no device has"
                    ));
                    let _ = self.platform.ack_vppi(vcpu, irq);
                }
                Reply::Resume
            }
            Fault::UserException { fault_ip, esr, .. } => {
                self.noisy(
                    Noise::Exception,
                    format_args!(
                        "vCPU {vcpu}: exception {esr:#x} at {fault_ip:#x}: the guest gets an undefined instruction"
                    ),
                );
                self.inject(index, vcpu, syndrome::undefined(), fault_ip)
            }
            ref other => {
                self.log(format_args!(
                    "vCPU {vcpu}: unexpected fault {other:?}; stopped"
                ));
                let _ = self.platform.stop(vcpu);
                self.set_power(index, Power::Off);
                Reply::Hold
            }
        };
        if !tx_only {
            self.flush_output();
        }
        self.flush_irqs();
        reply
    }

    /// A guest access to memory that is not mapped. Returns the reply and
    /// whether the access was a byte to the console (output is passed on
    /// in lines, not bytes).
    fn vm_fault(
        &mut self,
        index: usize,
        vcpu: Vcpu,
        ip: u64,
        addr: u64,
        prefetch: bool,
        fsr: u64,
    ) -> (Reply, bool) {
        if prefetch {
            self.noisy(
                Noise::Mmio,
                format_args!(
                    "vCPU {vcpu}: instruction fetch from {addr:#x} (pc {ip:#x}), which is not the guest's memory: instruction abort"
                ),
            );
            return (self.inject(index, vcpu, 0, ip), false);
        }
        let access = match Access::decode(fsr) {
            Ok(a) => a,
            Err(Undecodable::CacheMaintenance) => {
                // Cleaning or invalidating device memory does nothing.
                return (self.skip(vcpu), false);
            }
            Err(why) => {
                self.noisy(
                    Noise::Mmio,
                    format_args!(
                        "vCPU {vcpu}: access to {addr:#x} at pc {ip:#x} cannot be emulated ({why:?}, syndrome {fsr:#x}): data abort"
                    ),
                );
                return (self.inject(index, vcpu, fsr, ip), false);
            }
        };
        let count = count_for(access.reg);
        let mut regs = match self.platform.read_regs(vcpu, count) {
            Ok(r) => r,
            Err(e) => return (self.stop_failed(vcpu, e), false),
        };
        let value = access.store_value(get_x(&regs, access.reg));
        let device = device_at(addr);
        let result = match device {
            Device::Gicd(off) => self.gicd_access(index, vcpu, off, &access, value),
            Device::Uart(off) => self.uart_access(off, &access, value),
            Device::Virtio(slot, off) => self.virtio_access(slot, off, &access, value),
            Device::None => Err("no device there"),
        };
        let tx = access.write && matches!(device, Device::Uart(o) if o & !3 == pl011::reg::DR);
        match result {
            Ok(read) => {
                let mut n = 1;
                if let Some(data) = read {
                    set_x(&mut regs, access.reg, access.load_value(data));
                    n = count;
                }
                regs.pc = regs.pc.wrapping_add(4);
                match self.platform.write_regs(vcpu, n, &regs) {
                    Ok(()) => (Reply::Resume, tx),
                    Err(e) => (self.stop_failed(vcpu, e), false),
                }
            }
            Err(why) => {
                if matches!(device, Device::None) {
                    self.hooks.unhandled_mmio(addr, access.write, value);
                }
                let what = if access.write { "write" } else { "read" };
                self.noisy(
                    Noise::Mmio,
                    format_args!(
                        "vCPU {vcpu}: {}-byte {what} at {addr:#x} (pc {:#x}): {why}: data abort",
                        access.size, regs.pc
                    ),
                );
                (self.inject(index, vcpu, fsr, regs.pc), false)
            }
        }
    }

    /// The distributor: `Ok(Some(data))` for a read, `Ok(None)` for a write.
    fn gicd_access(
        &mut self,
        index: usize,
        vcpu: Vcpu,
        off: u64,
        a: &Access,
        value: u64,
    ) -> Result<Option<u64>, &'static str> {
        let size = a.size;
        let refused = |e: gicd::AccessError| match e {
            gicd::AccessError::Size(_) => "the distributor takes 1, 2 or 4 bytes",
            gicd::AccessError::Misaligned => "misaligned distributor access",
            gicd::AccessError::Outside => "outside the distributor",
        };
        if a.write {
            match self.gicd.write(index, off, size, value as u32).map_err(refused)? {
                gicd::Outcome::Done => {}
                gicd::Outcome::Ignored(why) => self.noisy(
                    Noise::Distributor,
                    format_args!(
                        "vCPU {vcpu}: distributor write {value:#x} at offset {off:#x} ignored: {why}"
                    ),
                ),
            }
            Ok(None)
        } else {
            self.gicd
                .read(index, off, size)
                .map(|v| Some(u64::from(v)))
                .map_err(refused)
        }
    }

    fn uart_access(
        &mut self,
        off: u64,
        a: &Access,
        value: u64,
    ) -> Result<Option<u64>, &'static str> {
        let refused = |_| "the UART takes 1, 2 or 4 bytes at a register";
        let r = if a.write {
            match self
                .uart
                .write(off, a.size, value as u32)
                .map_err(refused)?
            {
                pl011::Effect::Transmit(b) => self.transmit(b),
                pl011::Effect::None | pl011::Effect::Ignored(_) => {}
            }
            // A write may have made room in the receive FIFO (switching
            // the FIFOs on or off empties them; on, it holds sixteen):
            // what waits in the VMM goes in now, or it would wait for the
            // next key typed while the guest waits for an interrupt.
            self.feed_uart();
            None
        } else {
            let v = self.uart.read(off, a.size).map_err(refused)?;
            if off & !3 == pl011::reg::DR {
                self.feed_uart();
            }
            Some(u64::from(v))
        };
        self.uart_line();
        Ok(r)
    }

    /// Steps over the trapped instruction.
    fn skip(&mut self, vcpu: Vcpu) -> Reply {
        match self.platform.read_regs(vcpu, 1) {
            Ok(mut r) => {
                r.pc = r.pc.wrapping_add(4);
                match self.platform.write_regs(vcpu, 1, &r) {
                    Ok(()) => Reply::Resume,
                    Err(e) => self.stop_failed(vcpu, e),
                }
            }
            Err(e) => self.stop_failed(vcpu, e),
        }
    }

    fn stop_failed(&mut self, vcpu: Vcpu, e: Error) -> Reply {
        self.log(format_args!(
            "vCPU {vcpu}: the kernel refused to move it on ({e}); stopped"
        ));
        let _ = self.platform.stop(vcpu);
        if let Some(i) = self.index_of(vcpu) {
            self.set_power(i, Power::Off);
        }
        Reply::Hold
    }

    /// Makes the guest take a synchronous exception at its EL1 vector:
    /// `esr_or_abort` is the trap's own syndrome (a data abort is turned
    /// into an external abort of the same direction), 0 for an
    /// instruction abort, or a ready ESR_EL1 of the undefined-instruction
    /// kind.
    fn inject(&mut self, index: usize, vcpu: Vcpu, trap_esr: u64, pc: u64) -> Reply {
        let mut regs = match self.platform.read_regs(vcpu, 3) {
            Ok(r) => r,
            Err(e) => return self.stop_failed(vcpu, e),
        };
        let origin = Origin::from_spsr(regs.spsr);
        let (esr, far) = match syndrome::class(trap_esr) {
            _ if trap_esr == 0 => (syndrome::instruction_abort(origin), pc),
            ec::DABT_LOWER | ec::DABT_SAME => {
                (syndrome::data_abort(origin, trap_esr & (1 << 6) != 0), 0)
            }
            _ => (trap_esr, 0),
        };
        let vbar = match self.platform.read_vcpu_reg(vcpu, vcpu_reg::VBAR) {
            Ok(v) => v,
            Err(e) => return self.stop_failed(vcpu, e),
        };
        if vbar == NO_VECTORS {
            self.log(format_args!(
                "vCPU {vcpu}: an exception at pc {pc:#x} before the guest set its vectors: stopped"
            ));
            let _ = self.platform.stop(vcpu);
            self.set_power(index, Power::Off);
            return Reply::Hold;
        }
        let writes = [
            (vcpu_reg::ESR, esr),
            (vcpu_reg::FAR, far),
            (vcpu_reg::ELR_EL1, regs.pc),
            (vcpu_reg::SPSR_EL1, regs.spsr),
        ];
        for (reg, value) in writes {
            if let Err(e) = self.platform.write_vcpu_reg(vcpu, reg, value) {
                return self.stop_failed(vcpu, e);
            }
        }
        regs.pc = vbar.wrapping_add(origin.vector());
        regs.spsr = syndrome::PSTATE_EL1H_MASKED;
        match self.platform.write_regs(vcpu, 3, &regs) {
            Ok(()) => Reply::Resume,
            Err(e) => self.stop_failed(vcpu, e),
        }
    }

    /// WFI or WFE. A WFI with nothing pending for the vCPU waits: the
    /// thread is held (no reply) until [`wake_idle`](Self::wake_idle) finds
    /// an interrupt pending for it or its virtual timer's deadline past,
    /// and resumes it at the WFI, which then completes. The kernel stops
    /// the virtual timer of a vCPU that is not running (seL4 16.0.0 saves
    /// CNTV_CTL and writes 0 to it, and masks its PPI), so the deadline is
    /// read from the VCPU's registers and timed by the platform. WFE, a
    /// WFI with something pending, or a platform that cannot time a
    /// wake-up: the thread goes back to the instruction at once.
    fn wfx(&mut self, index: usize, vcpu: Vcpu, hsr: u64) -> Reply {
        // ISS bit 0 (TI): 1 for WFE.
        if hsr & 1 != 0 || self.has_pending(index) {
            return Reply::Resume;
        }
        let Some(now) = self.platform.counter() else {
            return Reply::Resume;
        };
        let deadline = match self.vtimer_deadline(vcpu) {
            Ok(d) => d,
            Err(e) => {
                self.log(format_args!(
                    "vCPU {vcpu}: its timer cannot be read ({e}): it does not wait in WFI"
                ));
                return Reply::Resume;
            }
        };
        if deadline <= now {
            return Reply::Resume;
        }
        self.idle[index] = Some(deadline);
        self.arm_wake();
        Reply::Hold
    }

    /// The physical count at which the vCPU's virtual timer fires
    /// (`u64::MAX` if it is off or masked): the virtual count is the
    /// physical one less CNTVOFF, and the timer fires once it reaches
    /// CNTV_CVAL.
    fn vtimer_deadline(&mut self, vcpu: Vcpu) -> Result<u64, Error> {
        let ctl = self.platform.read_vcpu_reg(vcpu, vcpu_reg::CNTV_CTL)?;
        // ENABLE (bit 0) and not IMASK (bit 1).
        if ctl & 0b11 != 0b01 {
            return Ok(u64::MAX);
        }
        let cval = self.platform.read_vcpu_reg(vcpu, vcpu_reg::CNTV_CVAL)?;
        let off = self.platform.read_vcpu_reg(vcpu, vcpu_reg::CNTVOFF)?;
        Ok(cval.saturating_add(off))
    }

    /// Whether an interrupt is pending for vCPU `index`, or in its list
    /// registers.
    fn has_pending(&self, index: usize) -> bool {
        self.lrs.in_use(index) || self.gicd.next(index).is_some()
    }

    /// Asks the platform to wake the VMM at the earliest deadline of the
    /// vCPUs that wait, if it changed.
    fn arm_wake(&mut self) {
        let next = self
            .idle
            .iter()
            .flatten()
            .copied()
            .filter(|d| *d != u64::MAX)
            .min();
        if next != self.wake {
            self.wake = next;
            self.platform.wake_at(next);
        }
    }

    /// Resumes every vCPU waiting in its WFI that has an interrupt pending
    /// or whose timer's deadline has passed. The VMM calls it after each
    /// of its events (a notification, a fault).
    pub fn wake_idle(&mut self) {
        if self.idle.iter().all(Option::is_none) {
            return;
        }
        let now = self.platform.counter().unwrap_or(u64::MAX);
        for i in 0..MAX_VCPUS {
            let Some(deadline) = self.idle[i] else {
                continue;
            };
            if deadline > now && !self.has_pending(i) {
                continue;
            }
            self.idle[i] = None;
            if let Some(v) = self.vcpu_at(i) {
                if let Err(e) = self.platform.resume(v) {
                    self.log(format_args!("vCPU {v}: cannot resume it from WFI: {e}"));
                }
            }
        }
        self.arm_wake();
    }

    fn vcpu_fault(&mut self, index: usize, vcpu: Vcpu, hsr: u64) -> Reply {
        match syndrome::class(hsr) {
            ec::WFX => self.wfx(index, vcpu, hsr),
            ec::SMC64 | ec::HVC64 => self.firmware_by_regs(index, vcpu),
            ec::SYSREG => self.sysreg(vcpu, hsr),
            class => {
                self.noisy(
                    Noise::Exception,
                    format_args!(
                        "vCPU {vcpu}: trap of class {class:#x} (syndrome {hsr:#x}): the guest gets an undefined instruction"
                    ),
                );
                let pc = self.platform.read_regs(vcpu, 1).map(|r| r.pc).unwrap_or(0);
                self.inject(index, vcpu, syndrome::undefined(), pc)
            }
        }
    }

    /// A trapped MSR/MRS (ISS: Op0 21:20, Op2 19:17, Op1 16:14, CRn 13:10,
    /// Rt 9:5, CRm 4:1, direction 0): read as zero, writes ignored.
    fn sysreg(&mut self, vcpu: Vcpu, hsr: u64) -> Reply {
        let rt = ((hsr >> 5) & 0x1f) as u8;
        let read = hsr & 1 != 0;
        let f = |shift: u64, bits: u64| (hsr >> shift) & ((1 << bits) - 1);
        self.noisy(
            Noise::Sysreg,
            format_args!(
                "vCPU {vcpu}: {} of system register S{}_{}_C{}_C{}_{}: {}",
                if read { "read" } else { "write" },
                f(20, 2),
                f(14, 3),
                f(10, 4),
                f(1, 4),
                f(17, 3),
                if read { "reads as zero" } else { "ignored" }
            ),
        );
        let count = count_for(rt);
        let mut regs = match self.platform.read_regs(vcpu, count) {
            Ok(r) => r,
            Err(e) => return self.stop_failed(vcpu, e),
        };
        if read {
            set_x(&mut regs, rt, 0);
        }
        regs.pc = regs.pc.wrapping_add(4);
        match self.platform.write_regs(vcpu, count, &regs) {
            Ok(()) => Reply::Resume,
            Err(e) => self.stop_failed(vcpu, e),
        }
    }

    /// A firmware call whose registers must be read from the thread (`smc`,
    /// or `hvc` that took seL4's system call path).
    fn firmware_by_regs(&mut self, index: usize, vcpu: Vcpu) -> Reply {
        let count = tcb_index(3) + 1;
        let mut regs = match self.platform.read_regs(vcpu, count) {
            Ok(r) => r,
            Err(e) => return self.stop_failed(vcpu, e),
        };
        match self.firmware(index, [regs.x0, regs.x1, regs.x2, regs.x3]) {
            Some(x0) => {
                regs.x0 = x0;
                regs.pc = regs.pc.wrapping_add(4);
                match self.platform.write_regs(vcpu, tcb_index(0) + 1, &regs) {
                    Ok(()) => Reply::Resume,
                    Err(e) => self.stop_failed(vcpu, e),
                }
            }
            None => Reply::Hold,
        }
    }

    /// Carries out a PSCI or SMCCC call from vCPU `index`; returns x0 for
    /// the caller, or `None` if the caller does not go on.
    fn firmware(&mut self, index: usize, x: [u64; 4]) -> Option<u64> {
        match psci::decode(x) {
            Call::Value(v) => Some(v),
            Call::Suspend => Some(psci::SUCCESS),
            Call::CpuOff => {
                let v = self.vcpu_at(index)?;
                self.log(format_args!("vCPU {v} is off (PSCI CPU_OFF)"));
                let _ = self.platform.stop(v);
                self.set_power(index, Power::Off);
                None
            }
            Call::CpuOn {
                target,
                entry,
                context,
            } => Some(self.cpu_on(target, entry, context)),
            Call::AffinityInfo { target } => Some(
                match psci::target_index(target)
                    .and_then(|t| self.vcpus.get(t as usize).copied().flatten())
                {
                    Some((_, Power::On)) => psci::AFFINITY_ON,
                    Some((_, Power::Off)) => psci::AFFINITY_OFF,
                    None => psci::INVALID_PARAMETERS,
                },
            ),
            Call::SystemOff => {
                self.flush_output();
                self.log(format_args!("guest powered off (PSCI SYSTEM_OFF)"));
                self.power_off();
                self.platform.guest_off();
                None
            }
            Call::SystemReset if self.sealed => {
                // The guest's RAM is not the VMM's to reload: it powers off.
                self.flush_output();
                self.log(format_args!(
                    "guest reset (PSCI SYSTEM_RESET) refused: the VM is sealed and the VMM cannot load it again; powered off"
                ));
                self.power_off();
                self.platform.guest_off();
                None
            }
            Call::SystemReset => {
                self.flush_output();
                self.log(format_args!(
                    "guest reset (PSCI SYSTEM_RESET): booting it again"
                ));
                if let Err(e) = self.boot() {
                    self.log(format_args!("the guest cannot boot again: {e}"));
                    self.power_off();
                }
                None
            }
            Call::Unknown(id) => {
                self.noisy(
                    Noise::Firmware,
                    format_args!("firmware call {id:#x} is not supported"),
                );
                Some(psci::NOT_SUPPORTED)
            }
        }
    }

    fn cpu_on(&mut self, target: u64, entry: u64, context: u64) -> u64 {
        let Some(t) = psci::target_index(target).map(|t| t as usize) else {
            return psci::INVALID_PARAMETERS;
        };
        match self.vcpus.get(t).copied().flatten() {
            None => psci::INVALID_PARAMETERS,
            Some((_, Power::On)) => psci::ALREADY_ON,
            Some((v, Power::Off)) => {
                if !(self.ram.base..self.ram.base + self.ram.size).contains(&entry) {
                    return psci::INVALID_ADDRESS;
                }
                match self.start(t, entry, context) {
                    Ok(()) => {
                        self.log(format_args!("vCPU {v} is on (PSCI CPU_ON at {entry:#x})"));
                        psci::SUCCESS
                    }
                    Err(e) => {
                        self.log(format_args!("vCPU {v} could not start: {e}"));
                        psci::INTERNAL_FAILURE
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
