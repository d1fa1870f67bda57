//! The VMM as a protection domain: what the tool patches in, the seL4
//! implementation of [`Platform`], and the event loop's [`Handler`].
//!
//! ## What the tool gives the VMM
//!
//! For a PD with a VM, the tool puts the guest's three files in regions of
//! their own, prefilled and mapped read-only into the VMM, and patches
//! these symbols (all optional: a VMM that does not declare one is not
//! given it):
//!
//! | symbol | value |
//! |---|---|
//! | `septa_vm_kernel_vaddr`, `_size` | the arm64 Image |
//! | `septa_vm_initrd_vaddr`, `_size` | the initrd |
//! | `septa_vm_dtb_vaddr`, `_size` | the device tree |
//! | `septa_vm_ram_gpa`, `septa_vm_ram_size` | the guest's RAM, guest-physical |
//! | `septa_vm_ram_vaddr` | where the VMM maps that RAM (the description maps it) |
//! | `septa_vm_vcpus` | the vCPU ids, one byte each in the order of the description (0xff: none) |
//!
//! and one channel id the description may give with `setvar_id` on the
//! VMM's end of a channel:
//!
//! | symbol | channel |
//! |---|---|
//! | `vmm_guest_off_channel` | notified when the guest powers off |
//!
//! ## The guest's console
//!
//! The guest's PL011 is a client of Septa's serial subsystem: list the VMM
//! among `[serial] clients` (and `input`, to type to the guest) and the
//! guest's output goes, bytes as they are, through the transmit
//! virtualiser to the UART, beside every other client's lines, and what is
//! typed while the VMM has the keyboard reaches the guest's receive FIFO
//! (`Ctrl-\`, the VMM's number, Enter gives it the keyboard). The VMM's own
//! log lines go the same way. A VMM that is no serial client writes the
//! guest's output where it prints (the kernel's debug console) and the
//! guest gets no input.
//!
//! Output the transmit queue cannot take yet waits in the VMM
//! ([`PENDING_CAPACITY`] bytes) until the virtualiser makes room; a guest
//! that writes faster than the UART drains loses what does not fit, and
//! the VMM says how much.

use core::fmt;

use septa_abi::microkit::slot;
use septa_runtime::septa_sel4::fault::Fault;
use septa_runtime::septa_sel4::{cap_type, Cap, Error, UserContext};
use septa_runtime::{
    mr_set, msginfo_new, println, serial, setvar, Channel, ChannelSet, Child, Handler, MessageInfo,
    Vcpu,
};

use crate::platform::{Hooks, OutsideRam, Platform};
use crate::virtio::net::{Backend, Net};
use crate::virtio::GuestMem;
use crate::vm::{Images, Ram, Reply, Vm};
use crate::MAX_VCPUS;
use septa_net_protocol::{region, wiring};
use septa_queue::Shared;

setvar! {
    static KERNEL_VADDR = "septa_vm_kernel_vaddr";
    static KERNEL_SIZE = "septa_vm_kernel_size";
    static INITRD_VADDR = "septa_vm_initrd_vaddr";
    static INITRD_SIZE = "septa_vm_initrd_size";
    static DTB_VADDR = "septa_vm_dtb_vaddr";
    static DTB_SIZE = "septa_vm_dtb_size";
    static RAM_GPA = "septa_vm_ram_gpa";
    static RAM_SIZE = "septa_vm_ram_size";
    static RAM_VADDR = "septa_vm_ram_vaddr";
    // A sealed VM's shared window (guest-physical base, size, and where
    // the VMM maps it): all of the guest's memory the VMM may reach.
    static SHARED_GPA = "septa_vm_shared_gpa" default 0;
    static SHARED_SIZE = "septa_vm_shared_size" default 0;
    static SHARED_VADDR = "septa_vm_shared_vaddr" default 0;
    static VCPUS = "septa_vm_vcpus" default u64::MAX;
    static OFF_CHANNEL = "vmm_guest_off_channel" default u64::MAX;
    // The guest's network card (`[net]` makes the VMM a client of its
    // virtualisers when the VM has a `net` device): the card's MAC and
    // transport slot, its queue and data regions, its channels.
    static NET = "septa_vm_net" default 0;
    static NET_RX_QUEUES = "vmm_net_rx_queues" default 0;
    static NET_RX_DATA = "vmm_net_rx_data" default 0;
    static NET_TX_QUEUES = "vmm_net_tx_queues" default 0;
    static NET_TX_DATA = "vmm_net_tx_data" default 0;
    static NET_RX_CHANNEL = "vmm_net_rx_channel" default u64::MAX;
    static NET_TX_CHANNEL = "vmm_net_tx_channel" default u64::MAX;
    // The guest's disk (a `[blk]` partition whose client is the VMM, the
    // VM having a `blk` device): its transport slot, plus one (0: none).
    static BLK = "septa_vm_blk" default 0;
    // The guest's virtio console (the VM having a `console` device): its
    // transport slot, plus one (0: none; the console is the PL011 alone).
    static CONSOLE = "septa_vm_console" default 0;
}

/// The vCPUs the tool listed, in order.
fn vcpus() -> ([Vcpu; MAX_VCPUS], usize) {
    let mut out = [Vcpu::new(0); MAX_VCPUS];
    let mut n = 0;
    for b in VCPUS.get().to_le_bytes() {
        if b == 0xff || u64::from(b) >= septa_abi::microkit::SLOT_RANGE_SIZE || n == MAX_VCPUS {
            break;
        }
        out[n] = Vcpu::new(b);
        n += 1;
    }
    (out, n)
}

fn channel(v: &septa_runtime::Setvar) -> Option<Channel> {
    u8::try_from(v.get())
        .ok()
        .filter(|id| u64::from(*id) < septa_abi::microkit::MAX_CHANNELS)
        .map(Channel::new)
}

/// A region the tool mapped read-only into this PD.
fn region(vaddr: &septa_runtime::Setvar, size: &septa_runtime::Setvar) -> &'static [u8] {
    if vaddr.get() == 0 {
        return &[];
    }
    // SAFETY: the tool maps `size` bytes of a prefilled region at `vaddr`,
    // read-only, for the whole life of the PD, and patches both symbols
    // with exactly those numbers; nothing writes the region (the guest has
    // no mapping of it), so a shared slice of it stays valid and unchanged.
    #[allow(unsafe_code)]
    unsafe {
        core::slice::from_raw_parts(vaddr.as_ptr::<u8>(), size.get() as usize)
    }
}

/// A region the description maps read-write into this PD, shared with a
/// virtualiser.
fn shared(vaddr: &septa_runtime::Setvar, size: u64) -> Option<Shared> {
    if vaddr.get() == 0 {
        return None;
    }
    // SAFETY: the tool maps a region of exactly `size` bytes (the
    // network subsystem's fixed sizes) at the patched address, read-write,
    // for the PD's whole life; the VMM touches it only through `Shared`.
    #[allow(unsafe_code)]
    unsafe {
        Shared::new(vaddr.get() as *mut u8, size as usize)
    }
}

/// A sealed VM's shared window, as the devices reach it.
fn shared_window() -> Option<GuestMem> {
    let (gpa, size) = (SHARED_GPA.get(), SHARED_SIZE.get());
    if size == 0 || SHARED_VADDR.get() == 0 {
        return None;
    }
    // SAFETY: the tool maps the window, `size` bytes from
    // `septa_vm_shared_vaddr`, read-write into this PD as one span for its
    // whole life; the guest writes it as it likes, which `Shared`'s
    // atomic, bounds-checked copies allow for.
    #[allow(unsafe_code)]
    let mem = unsafe { Shared::new(SHARED_VADDR.get() as *mut u8, size as usize) }?;
    Some(GuestMem::new(gpa, mem))
}

/// Guest RAM as the VMM maps it, as the devices reach it.
fn guest_mem() -> Option<GuestMem> {
    let (gpa, size) = (RAM_GPA.get(), RAM_SIZE.get());
    if size == 0 || RAM_VADDR.get() == 0 {
        return None;
    }
    // SAFETY: the description maps the guest's whole RAM, `size` bytes
    // from `septa_vm_ram_vaddr`, read-write into this PD as one span for
    // its whole life (the tool refuses a VMM that does not); the guest
    // writes it as it likes, which `Shared`'s atomic, bounds-checked
    // copies allow for.
    #[allow(unsafe_code)]
    let mem = unsafe { Shared::new(RAM_VADDR.get() as *mut u8, size as usize) }?;
    Some(GuestMem::new(gpa, mem))
}

/// The guest's network card, if the tool wired one: its slot and device.
fn net_device() -> Option<(u32, Net)> {
    let cfg = NET.get().to_le_bytes();
    if cfg[7] != 1 {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&cfg[..6]);
    let size = wiring::QUEUES_SIZE;
    let backend = (|| {
        let rx = region::sink(shared(&NET_RX_QUEUES, size)?).ok()?;
        let tx = region::source(shared(&NET_TX_QUEUES, size)?).ok()?;
        Some(Backend {
            rx,
            rx_data: shared(&NET_RX_DATA, wiring::GUEST_RX_DATA_SIZE)?,
            tx,
            tx_data: shared(&NET_TX_DATA, wiring::GUEST_TX_DATA_SIZE)?,
        })
    })();
    let mut backend = match backend {
        Some(b) => b,
        None => {
            println!(
                "{}: the network card's queues are not mapped: it stays unplugged",
                septa_runtime::pd_name()
            );
            return None;
        }
    };
    if let Err(e) = backend.start() {
        println!(
            "{}: the network card's queues: {e}",
            septa_runtime::pd_name()
        );
    }
    Some((u32::from(cfg[6]), Net::new(mac, Some(backend))))
}

/// Guest console output kept while the serial transmit queue is full.
pub const PENDING_CAPACITY: usize = 4096;

/// Guest console output the transmit queue has not taken yet: a ring.
struct Pending {
    buf: [u8; PENDING_CAPACITY],
    head: usize,
    len: usize,
    /// Bytes lost since the last note about it.
    dropped: u64,
}

impl Pending {
    /// Keeps what fits of `bytes`, counting the rest as dropped.
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len == PENDING_CAPACITY {
                self.dropped += 1;
                continue;
            }
            self.buf[(self.head + self.len) % PENDING_CAPACITY] = b;
            self.len += 1;
        }
    }

    /// The oldest bytes, as one contiguous slice.
    fn front(&self) -> &[u8] {
        let end = (self.head + self.len).min(PENDING_CAPACITY);
        &self.buf[self.head..end]
    }

    fn consume(&mut self, n: usize) {
        self.head = (self.head + n) % PENDING_CAPACITY;
        self.len -= n;
    }
}

/// seL4 (or Septa's kernel) underneath.
pub struct Sel4 {
    off: Option<Channel>,
    net_rx: Option<Channel>,
    net_tx: Option<Channel>,
    pending: Pending,
}

impl Sel4 {
    /// Cleans `[start, end)` of this PD's address space to the point of
    /// coherency, one page at a time (the kernel refuses a range that
    /// crosses a page and says where the page ends).
    fn clean(start: u64, end: u64) {
        let vspace: Cap<cap_type::VSpace> = Cap::from_bits(slot::VSPACE);
        let mut at = start;
        while at < end {
            // Try up to the next 2 MiB boundary (the largest page the tool
            // maps regions with).
            let step = ((at | 0x1f_ffff) + 1).min(end);
            match vspace.clean_data(at, step) {
                Ok(()) => at = step,
                Err(Error::RangeError { max, .. }) if max >= at && max < step => {
                    let _ = vspace.clean_data(at, max + 1);
                    at = max + 1;
                }
                Err(_) => at = step,
            }
        }
    }
}

impl Sel4 {
    /// Hands waiting guest output to the transmit queue until it is all
    /// taken or the queue is full (then the virtualiser is asked to say
    /// when there is room: [`serial::output_channel`]).
    fn flush_console(&mut self) {
        while self.pending.len > 0 {
            let n = serial::write(self.pending.front());
            if n > 0 {
                self.pending.consume(n);
            } else if !serial::wait_for_space(self.pending.front().len() as u32) {
                break;
            }
        }
        if self.pending.dropped > 0 && self.pending.len == 0 {
            let lost = core::mem::take(&mut self.pending.dropped);
            self.log(format_args!(
                "{lost} bytes of the guest's console output dropped: the serial queue was full"
            ));
        }
    }
}

impl Platform for Sel4 {
    fn read_regs(&mut self, vcpu: Vcpu, count: usize) -> Result<UserContext, Error> {
        vcpu.read_registers(count as u64)
    }

    fn write_regs(&mut self, vcpu: Vcpu, count: usize, regs: &UserContext) -> Result<(), Error> {
        vcpu.write_registers(false, count as u64, regs)
    }

    fn read_vcpu_reg(&mut self, vcpu: Vcpu, reg: u64) -> Result<u64, Error> {
        vcpu.read_reg(reg)
    }

    fn write_vcpu_reg(&mut self, vcpu: Vcpu, reg: u64, value: u64) -> Result<(), Error> {
        vcpu.write_reg(reg, value)
    }

    fn inject_irq(
        &mut self,
        vcpu: Vcpu,
        irq: u16,
        priority: u8,
        group: u8,
        lr: u8,
    ) -> Result<(), Error> {
        vcpu.inject_irq(irq, priority, group, lr)
    }

    fn ack_vppi(&mut self, vcpu: Vcpu, irq: u64) -> Result<(), Error> {
        vcpu.ack_vppi(irq)
    }

    fn stop(&mut self, vcpu: Vcpu) -> Result<(), Error> {
        vcpu.stop()
    }

    fn resume(&mut self, vcpu: Vcpu) -> Result<(), Error> {
        vcpu.resume()
    }

    fn copy_to_ram(&mut self, gpa: u64, bytes: &[u8]) -> Result<(), OutsideRam> {
        let len = bytes.len() as u64;
        let outside = OutsideRam { gpa, len };
        let (base, size) = (RAM_GPA.get(), RAM_SIZE.get());
        let off = gpa.checked_sub(base).ok_or(outside)?;
        if RAM_VADDR.get() == 0 || off.checked_add(len).is_none_or(|e| e > size) {
            return Err(outside);
        }
        let dst = RAM_VADDR.get() + off;
        // SAFETY: [dst, dst + len) lies inside the guest RAM mapping the
        // description gives this PD (read-write, for the PD's life, checked
        // just above against the size the tool patched); `bytes` is a
        // different region (an image, read-only) so they cannot overlap.
        // The VMM copies only while every vCPU is stopped, so the guest
        // does not touch the RAM meanwhile, and no Rust reference into
        // guest RAM exists.
        #[allow(unsafe_code)]
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst as *mut u8, bytes.len());
        }
        // The guest starts with its caches off: what the copy left in the
        // data cache must reach memory first.
        Self::clean(dst, dst + len);
        Ok(())
    }

    fn console(&mut self, bytes: &[u8]) {
        if serial::output_channel().is_none() {
            // No serial client: where the PD prints.
            (septa_runtime::print::sink())(bytes);
            return;
        }
        self.pending.push(bytes);
        self.flush_console();
    }

    fn log(&mut self, line: fmt::Arguments<'_>) {
        println!("{}: {line}", septa_runtime::pd_name());
    }

    fn guest_off(&mut self) {
        if let Some(ch) = self.off {
            let _ = ch.notify();
        }
    }

    fn net_notify(&mut self, rx: bool, tx: bool) {
        for (want, ch) in [(rx, self.net_rx), (tx, self.net_tx)] {
            if let (true, Some(ch)) = (want, ch) {
                let _ = ch.notify();
            }
        }
    }

    /// CNTPCT_EL0, for a VMM that is a timer client (the tool makes every
    /// Linux cell's VMM one); otherwise a vCPU's WFI returns at once.
    fn counter(&mut self) -> Option<u64> {
        septa_runtime::timer::channel()?;
        Some(counter::count())
    }

    fn wake_at(&mut self, at: Option<u64>) {
        let r = match at {
            Some(at) => {
                let ticks = at.saturating_sub(counter::count());
                let ns =
                    u128::from(ticks) * 1_000_000_000 / u128::from(counter::frequency().max(1));
                septa_runtime::timer::set_timeout(u64::try_from(ns).unwrap_or(u64::MAX).max(1))
            }
            None => septa_runtime::timer::cancel(),
        };
        if let Err(e) = r {
            self.log(format_args!("the timer refused a wake-up: {e}"));
        }
    }
}

/// The generic timer's physical counter, which both kernels let EL0 read
/// (the timer driver reads it too).
#[cfg(target_arch = "aarch64")]
mod counter {
    use core::arch::asm;

    /// CNTPCT_EL0, after an `isb` so that it is not read ahead.
    pub fn count() -> u64 {
        let v: u64;
        // SAFETY: reads a system register EL0 may read on this board's
        // kernels; no memory is touched, nothing else changes.
        #[allow(unsafe_code)]
        unsafe {
            asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack))
        };
        v
    }

    /// CNTFRQ_EL0: the counter's ticks a second.
    pub fn frequency() -> u64 {
        let v: u64;
        // SAFETY: as in `count`.
        #[allow(unsafe_code)]
        unsafe {
            asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack))
        };
        v
    }
}

/// On the host (the PD's code is type-checked there, never run) there is
/// no counter to read.
#[cfg(not(target_arch = "aarch64"))]
mod counter {
    pub fn count() -> u64 {
        0
    }

    pub fn frequency() -> u64 {
        0
    }
}

/// The VMM PD's state.
pub struct VmmPd<H: Hooks> {
    vm: Vm<'static, Sel4, H>,
    /// The block virtualiser's channel, if the guest has a disk.
    blk_channel: Option<Channel>,
    /// The receive virtualiser may have put input the VMM has not read.
    input_waiting: bool,
}

impl<H: Hooks> VmmPd<H> {
    /// Reads console input while the guest has room for it.
    fn pull_input(&mut self) {
        let mut buf = [0u8; 64];
        while self.input_waiting {
            let room = self.vm.input_space().min(buf.len());
            if room == 0 {
                // The guest reads its FIFO; each read of it is a fault
                // of the guest's, after which the VMM tries again.
                return;
            }
            let n = serial::read(&mut buf[..room]);
            if n == 0 {
                self.input_waiting = false;
                return;
            }
            self.vm.console_input(&buf[..n]);
        }
    }
}

impl<H: Hooks> Handler for VmmPd<H> {
    fn notified(&mut self, channels: ChannelSet) {
        if self.blk_channel.is_some_and(|c| channels.contains(c)) {
            self.vm.blk_poll();
        }
        let p = self.vm.platform_mut();
        if [p.net_rx, p.net_tx]
            .into_iter()
            .flatten()
            .any(|c| channels.contains(c))
        {
            self.vm.net_poll();
        }
        if serial::input_channel().is_some_and(|c| channels.contains(c)) {
            self.input_waiting = true;
            self.pull_input();
        }
        if serial::output_channel().is_some_and(|c| channels.contains(c)) {
            self.vm.platform_mut().flush_console();
        }
        // A timeout of the timer's, or anything above, may be what a vCPU
        // waiting in WFI waits for.
        self.vm.wake_idle();
    }

    fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
        let fault = Fault::from_ipc_buffer(msg);
        let reply = match Vcpu::from_child(child) {
            Some(v) => self.vm.fault(v, &fault),
            None => Reply::Hold,
        };
        self.pull_input();
        self.vm.wake_idle();
        match reply {
            Reply::Resume => Some(msginfo_new(0, 0)),
            Reply::Syscall(regs) => {
                for (i, r) in regs.iter().enumerate() {
                    mr_set(i, *r);
                }
                Some(msginfo_new(0, regs.len() as u64))
            }
            Reply::Hold => None,
        }
    }
}

/// Starts the VMM: reads what the tool patched and boots the guest.
pub fn init<H: Hooks>(hooks: H) -> VmmPd<H> {
    let off = channel(&OFF_CHANNEL);
    let (ids, n) = vcpus();
    let images = Images {
        kernel: region(&KERNEL_VADDR, &KERNEL_SIZE),
        initrd: region(&INITRD_VADDR, &INITRD_SIZE),
        dtb: region(&DTB_VADDR, &DTB_SIZE),
    };
    let ram = Ram {
        base: RAM_GPA.get(),
        size: RAM_SIZE.get(),
    };
    let mut vm = Vm::new(
        Sel4 {
            off,
            net_rx: channel(&NET_RX_CHANNEL),
            net_tx: channel(&NET_TX_CHANNEL),
            pending: Pending {
                buf: [0; PENDING_CAPACITY],
                head: 0,
                len: 0,
                dropped: 0,
            },
        },
        hooks,
        images,
        ram,
        &ids[..n],
    );
    if SHARED_SIZE.get() != 0 {
        // Sealed: the guest's RAM is not mapped here at all (the
        // initializer loaded the guest); the devices reach the window.
        match shared_window() {
            Some(mem) => {
                let (base, size) = mem.span();
                println!(
                    "{}: sealed: the guest's RAM is not mapped here; its devices share {size:#x} bytes at guest-physical {base:#x}",
                    septa_runtime::pd_name()
                );
                vm.set_guest_mem(mem);
            }
            None => println!(
                "{}: sealed, but the shared window is not mapped: the devices reach no memory",
                septa_runtime::pd_name()
            ),
        }
        vm.seal();
    } else if let Some(mem) = guest_mem() {
        vm.set_guest_mem(mem);
    }
    if let Some((slot, net)) = net_device() {
        let m = net.mac();
        println!(
            "{}: network card on virtio-mmio slot {slot}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            septa_runtime::pd_name(),
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        vm.attach_net(slot, net);
        // Tell the receive virtualiser its buffers are there.
        vm.platform_mut().net_notify(true, false);
    }
    if let Some(slot) = CONSOLE.get().checked_sub(1) {
        println!(
            "{}: console on virtio-mmio slot {slot}",
            septa_runtime::pd_name()
        );
        vm.attach_console(slot as u32, crate::virtio::console::Console::new());
    }
    let mut blk_channel = None;
    if let Some(slot) = BLK.get().checked_sub(1) {
        match septa_block_protocol::Connection::from_setvars() {
            Ok(conn) => {
                println!(
                    "{}: disk on virtio-mmio slot {slot}",
                    septa_runtime::pd_name()
                );
                blk_channel = Some(conn.channel());
                vm.attach_blk(slot as u32, crate::virtio::blk::Blk::new(Some(conn)));
            }
            Err(e) => println!(
                "{}: the disk is not wired ({e}): it stays unplugged",
                septa_runtime::pd_name()
            ),
        }
    }
    match vm.boot() {
        Ok(p) => println!(
            "{}: guest booting: kernel {} bytes at {:#x}, device tree at {:#x}, initrd {} bytes at {:#x}",
            septa_runtime::pd_name(),
            images.kernel.len(),
            p.kernel,
            p.dtb,
            images.initrd.len(),
            p.initrd
        ),
        Err(e) => println!(
            "{}: the guest cannot boot: {e}",
            septa_runtime::pd_name()
        ),
    }
    VmmPd {
        vm,
        blk_channel,
        input_waiting: serial::input_channel().is_some(),
    }
}
