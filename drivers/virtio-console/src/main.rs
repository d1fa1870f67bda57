//! # virtio-console: a driver PD for a virtio console
//!
//! It owns one virtio console on a virtio-mmio transport (modern
//! interface), its interrupt (channel [`IRQ`]) and a DMA region, and serves
//! one client on channel [`CLIENT`] with the serial protocol
//! (`septa-serial-protocol`). What is common to every virtio driver (the
//! DMA pool, `virtio-drivers`' HAL, the transport) is `septa-virtio-hal`'s;
//! this PD adds the console's device logic and the protocol.
//!
//! At start-up it takes the console on its transport, negotiates the
//! modern interface with `virtio-drivers`, and posts a receive buffer. Then:
//!
//! - an interrupt: acknowledge it in the device, move whatever arrived into
//!   the input buffer, acknowledge the IRQ to the kernel, and notify the
//!   client if there is new input;
//! - a call from the client: `WRITE` sends its bytes to the device, `READ`
//!   hands over waiting input.
//!
//! What it owns: the device's registers and queues, the DMA region. What it
//! must not touch: anything else; it makes no policy (what input means is
//! the client's business).
//!
//! ## Wiring (system.toml)
//!
//! ```toml
//! [pd.console]
//! program = "virtio-console"
//! priority = 200                 # above its client, which calls it
//! maps = [
//!     { region = "console_regs", vaddr = 0x2000_0000, cached = false,
//!       setvar_device = "regs_vaddr", setvar_device_size = "regs_size" },
//!     { region = "console_dma", vaddr = 0x2100_0000,
//!       setvar_vaddr = "dma_vaddr", setvar_size = "dma_size" },
//! ]
//! irqs = [{ device = "console", id = 0 }]
//! setvars = [{ symbol = "dma_paddr", region = "console_dma" }]
//!
//! [region.console_regs]
//! device = "console"
//!
//! [region.console_dma]
//! size = "64 KiB"
//!
//! [[virtio]]
//! name = "console"
//! kind = "console"
//!
//! [[channel]]
//! a = { pd = "client", id = 0, pp = true }
//! b = { pd = "console", id = 1 }
//! ```
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;

use septa_runtime::{
    mr_get, mr_set, msginfo_new, println, protection_domain, Channel, ChannelSet, Handler,
    MessageInfo,
};
use septa_serial_protocol::calls::{self as protocol, MAX_BYTES};
use septa_virtio_hal::SeptaHal;
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::DeviceType;

/// The device's interrupt.
const IRQ: Channel = Channel::new(0);
/// This end of the channel to the client.
const CLIENT: Channel = Channel::new(1);
/// Input kept for the client until it reads it; more is dropped.
const INPUT_CAPACITY: usize = 4096;

/// The receive buffer `virtio-drivers` allocates, and this PD's transmit
/// buffer, come from the DMA region. (On the host, where the crate only
/// type-checks, std's allocator stays.)
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[global_allocator]
static HEAP: septa_virtio_hal::DmaHeap = septa_virtio_hal::DmaHeap;

struct Driver {
    console: VirtIOConsole<SeptaHal, MmioTransport<'static>>,
    /// Where client bytes wait for the device: in the DMA region.
    tx: Box<[u8; MAX_BYTES]>,
    input: [u8; INPUT_CAPACITY],
    /// Bytes of `input` waiting for the client.
    waiting: usize,
    dropped: usize,
}

impl Driver {
    /// Moves what the device has received into `input`.
    fn drain(&mut self) -> bool {
        let before = self.waiting;
        loop {
            match self.console.recv(true) {
                Ok(Some(b)) if self.waiting < INPUT_CAPACITY => {
                    self.input[self.waiting] = b;
                    self.waiting += 1;
                }
                Ok(Some(_)) => self.dropped += 1,
                Ok(None) => break,
                Err(e) => {
                    println!("virtio-console: receiving failed: {e}");
                    break;
                }
            }
        }
        self.waiting > before
    }

    fn write(&mut self) -> MessageInfo {
        let Some(bytes) = protocol::unpack(&mut self.tx[..], mr_get) else {
            return msginfo_new(protocol::ERROR, 0);
        };
        let n = bytes.len();
        if n > 0 {
            if let Err(e) = self.console.send_bytes(&self.tx[..n]) {
                println!("virtio-console: sending failed: {e}");
                return msginfo_new(protocol::ERROR, 0);
            }
        }
        mr_set(0, n as u64);
        msginfo_new(protocol::OK, 1)
    }

    fn read(&mut self) -> MessageInfo {
        // Input may have arrived without an interrupt we have seen yet.
        self.drain();
        let n = self.waiting.min(MAX_BYTES);
        let used = protocol::pack(&self.input[..n], mr_set);
        self.input.copy_within(n..self.waiting, 0);
        self.waiting -= n;
        msginfo_new(protocol::OK, used as u64)
    }
}

impl Handler for Driver {
    fn notified(&mut self, channels: ChannelSet) {
        if !channels.contains(IRQ) {
            return;
        }
        // Device first (it stops signalling), then the kernel (it may
        // deliver the next edge).
        let _ = self.console.ack_interrupt();
        let fresh = self.drain();
        if let Err(e) = IRQ.irq_ack() {
            println!("virtio-console: IRQ acknowledgement failed: {e}");
        }
        if fresh {
            let _ = CLIENT.notify();
        }
        if self.dropped > 0 {
            println!(
                "virtio-console: input buffer full, {} bytes dropped",
                self.dropped
            );
            self.dropped = 0;
        }
    }

    fn protected(&mut self, channel: Channel, msg: MessageInfo) -> MessageInfo {
        if channel != CLIENT {
            return msginfo_new(protocol::ERROR, 0);
        }
        match msg.label() {
            protocol::WRITE => self.write(),
            protocol::READ => self.read(),
            _ => msginfo_new(protocol::ERROR, 0),
        }
    }
}

fn init() -> Driver {
    let transport = septa_virtio_hal::transport(DeviceType::Console)
        .unwrap_or_else(|e| panic!("virtio-console: {e}"));
    let version = transport.version();
    let console = VirtIOConsole::<SeptaHal, _>::new(transport)
        .unwrap_or_else(|e| panic!("the console would not start: {e}"));
    let tx = Box::new([0u8; MAX_BYTES]);
    let (used, size) = septa_virtio_hal::dma_usage();
    println!(
        "virtio-console: console ready (virtio-mmio {version:?}), {used} of {size} DMA bytes used"
    );
    Driver {
        console,
        tx,
        input: [0; INPUT_CAPACITY],
        waiting: 0,
        dropped: 0,
    }
}

protection_domain!(init);
