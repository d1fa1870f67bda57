//! # The virtio-console driver PD
//!
//! At start-up it takes the console on its transport (registers at
//! `regs_vaddr`, patched by the tool with `setvar_device`), negotiates the
//! modern interface with `virtio-drivers`, and posts a receive buffer. Then:
//!
//! - an interrupt (channel [`protocol::IRQ`]): acknowledge it in the device,
//!   move whatever arrived into the input buffer, acknowledge the IRQ to the
//!   kernel, and notify the client if there is new input;
//! - a call from the client (channel [`protocol::CLIENT`]): `WRITE` sends
//!   its bytes to the device, `READ` hands over waiting input (see
//!   [`protocol`]).
//!
//! All memory the device reads or writes comes from the DMA region
//! (`dma_vaddr`, `dma_paddr`, `dma_size`): the virtqueues through the
//! [`Hal`], and the receive and transmit buffers through the global
//! allocator, which takes from the same pool. So [`Hal::share`] only
//! translates an address; a buffer outside the region is a bug and panics.
#![cfg_attr(target_os = "none", no_std, no_main)]

extern crate alloc;

use alloc::boxed::Box;
use core::ptr::NonNull;

use septa_runtime::{
    mr_get, mr_set, msginfo_new, println, protection_domain, setvar, Channel, ChannelSet, Handler,
    MessageInfo, PdCell,
};
use virtio_console::pool::{Pool, Region};
use virtio_console::protocol::{self, MAX_BYTES};
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

setvar! {
    /// The device's registers (its transport inside the mapped page).
    static REGS = "regs_vaddr";
    /// The DMA region, in this PD and for the device.
    static DMA_VADDR = "dma_vaddr";
    static DMA_PADDR = "dma_paddr";
    static DMA_SIZE = "dma_size";
}

/// Bytes of one virtio-mmio transport's registers (QEMU `virt`'s stride).
const TRANSPORT_SIZE: usize = 0x200;
/// Input kept for the client until it reads it; more is dropped.
const INPUT_CAPACITY: usize = 4096;

fn region() -> Region {
    Region {
        vaddr: DMA_VADDR.addr(),
        paddr: DMA_PADDR.get(),
        size: DMA_SIZE.get() as usize,
    }
}

/// What of the DMA region is handed out (one thread: see `PdCell`).
static POOL: PdCell<Pool> = PdCell::new(Pool::new());

/// Takes zeroed memory from the DMA region.
fn take(size: usize, align: usize) -> Option<NonNull<u8>> {
    let mut pool = POOL.get();
    let vaddr = pool.take(&region(), size, align)?;
    POOL.replace(pool);
    let ptr = NonNull::new(vaddr as *mut u8)?;
    // SAFETY: `take` returned `size` bytes inside the DMA region, which the
    // tool maps read-write at DMA_VADDR in this PD alone, and which no one
    // has been given before (the pool only moves forward).
    unsafe { ptr.as_ptr().write_bytes(0, size) };
    Some(ptr)
}

/// The global allocator: the DMA pool. The console driver allocates its
/// receive buffer here, and this PD its transmit buffer, once each. (On
/// the host, where the crate only type-checks, std's allocator stays.)
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
struct DmaHeap;

// SAFETY: `alloc` hands out disjoint, aligned blocks of the mapped DMA
// region or null when it is full; `dealloc` never reuses memory, which is
// always sound.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
unsafe impl core::alloc::GlobalAlloc for DmaHeap {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        take(layout.size(), layout.align()).map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: core::alloc::Layout) {}
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[global_allocator]
static HEAP: DmaHeap = DmaHeap;

/// `virtio-drivers`' view of Septa: DMA memory is the region, and the
/// device sees physical addresses.
struct SeptaHal;

// SAFETY: `dma_alloc` returns page-aligned, zeroed memory of the mapped DMA
// region that nothing else uses (see `take`), with its physical address;
// `share` returns the physical address of a buffer that lies in that
// region (and panics otherwise), which is where the device must look.
unsafe impl Hal for SeptaHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let size = pages * PAGE_SIZE;
        match take(size, PAGE_SIZE) {
            Some(ptr) => {
                let paddr = region()
                    .translate(ptr.as_ptr() as usize, size)
                    .expect("the pool lies inside the region");
                (paddr, ptr)
            }
            // Physical address 0 tells `virtio-drivers` the allocation failed.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // The pool never gives memory back; the queues live as long as
        // the PD.
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        unreachable!("only the PCI transport asks for this")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let vaddr = buffer.as_ptr().cast::<u8>() as usize;
        region()
            .translate(vaddr, buffer.len())
            .unwrap_or_else(|| panic!("buffer at {vaddr:#x} is outside the DMA region"))
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

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
        if !channels.contains(protocol::IRQ) {
            return;
        }
        // Device first (it stops signalling), then the kernel (it may
        // deliver the next edge).
        let _ = self.console.ack_interrupt();
        let fresh = self.drain();
        if let Err(e) = protocol::IRQ.irq_ack() {
            println!("virtio-console: IRQ acknowledgement failed: {e}");
        }
        if fresh {
            let _ = protocol::CLIENT.notify();
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
        if channel != protocol::CLIENT {
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
    let header = NonNull::new(REGS.as_ptr::<VirtIOHeader>()).expect("regs_vaddr is patched");
    // SAFETY: the tool maps the transport's page uncached in this PD alone
    // and patches REGS with the address of the transport's registers in it
    // (`setvar_device`); TRANSPORT_SIZE bytes of registers lie there, and
    // the mapping lasts as long as the PD.
    let transport = unsafe { MmioTransport::new(header, TRANSPORT_SIZE) }
        .unwrap_or_else(|e| panic!("no virtio-mmio transport at {:#x}: {e}", REGS.addr()));
    let kind = transport.device_type();
    assert!(
        kind == DeviceType::Console,
        "the transport at {:#x} holds a {kind:?} device, not a console",
        REGS.addr()
    );
    let version = transport.version();
    let console = VirtIOConsole::<SeptaHal, _>::new(transport)
        .unwrap_or_else(|e| panic!("the console would not start: {e}"));
    let tx = Box::new([0u8; MAX_BYTES]);
    println!(
        "virtio-console: console ready (virtio-mmio {version:?}), {} of {} DMA bytes used",
        POOL.get().used(),
        DMA_SIZE.get()
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
