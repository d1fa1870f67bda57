//! # virtio-blk: a driver PD for a virtio block device
//!
//! It owns one virtio-blk device on a virtio-mmio transport (modern
//! interface), its interrupt and a DMA region, and serves one client (the
//! block virtualiser, or a client wired by hand) through a septa-queue
//! block queue pair with sDDF 0.7's layout: requests carry the physical
//! address of their buffer, and the device reads and writes it in place,
//! in the client's data region. The driver maps those regions too
//! ("windows"), because `virtio-drivers` takes buffers as slices of this
//! PD's memory; it reads and writes none of their bytes.
//!
//! - **Requests**: read, write, flush (a virtio FLUSH: when it completes,
//!   every write completed before it was sent is on the host's disk, given
//!   QEMU's cache mode, which the tool sets: `tools/septa/src/qemu.rs`),
//!   and barrier (answered once everything before it has completed; nothing
//!   after it is taken before). Requests complete in any order.
//! - **Errors**: what the device answers (`IOERR`, `UNSUPP`, a transfer
//!   past its end) comes back as an error response ([`plan::status`]); what
//!   cannot be put to the device (no blocks, overflowing sectors, unknown
//!   codes, a buffer outside every window) is refused the same way. Nothing
//!   a client sends faults the driver.
//! - **Interrupt driven**: the device interrupts when it has used buffers;
//!   the driver acknowledges it at the device, completes what it can,
//!   acknowledges the IRQ, takes new requests and notifies its client.
//! - **At start**: negotiates `VERSION_1`, `FLUSH`, `RO`, `BLK_SIZE` and
//!   `RING_EVENT_IDX` (what the device offers of them), sets up one
//!   virtqueue of [`QUEUE_SIZE`] descriptors (three a request, so
//!   [`SLOTS`] in flight), asks the device for its id, and publishes the
//!   storage information (capacity in 4 KiB blocks, serial, read-only)
//!   before marking it ready.
//!
//! Why not `virtio-drivers`' `VirtIOBlk`: its flush waits by spinning, and
//! its queue is fixed at 16 descriptors; the transport and the virtqueue
//! are used as they are.
//!
//! What it owns: the device's registers and queue, the DMA region. Must
//! not: look inside the data it moves or decide who may use which blocks
//! (that is the virtualiser's job).
//!
//! ## Wiring (the tool generates this for a `[blk.DEVICE]` section)
//!
//! | setvar | what |
//! |---|---|
//! | `regs_vaddr`, `regs_size`, `dma_vaddr`, `dma_paddr`, `dma_size` | `septa-virtio-hal`'s |
//! | `blk_driver_queues`, `blk_driver_queues_size` | the queue region shared with the client |
//! | `blk_driver_capacity` | the queues' capacity (a `value`) |
//! | `blk_driver_info` | the storage-info region the driver publishes |
//! | `blk_driver_channel` | the client's channel (`setvar_id`) |
//! | `blk_driver_irq` | the device's IRQ channel (`setvar_id`) |
//! | `blk_window[i]`, `blk_window_size[i]`, `blk_window_paddr[i]` | data region `i` the device may reach (up to 16) |
#![cfg_attr(target_os = "none", no_std, no_main)]
// `unsafe` only where the virtqueue takes buffers as slices (see `Slots`).
#![deny(unsafe_code)]

extern crate alloc;

mod plan;

use alloc::boxed::Box;
use core::ptr::NonNull;

use plan::{Plan, ID_BYTES, SECTOR, SECTORS_PER_BLOCK, T_FLUSH, T_GET_ID, T_IN, T_OUT};
use septa_block_protocol::{Response, Status, StorageInfo, StorageRegion};
use septa_queue::blk::{info_layout, Server};
use septa_queue::Shared;
use septa_runtime::{
    println, protection_domain, setvar, setvar_array, Channel, ChannelSet, Handler,
};
use septa_virtio_hal::SeptaHal;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, Transport};

setvar! {
    static QUEUES = "blk_driver_queues";
    static QUEUES_SIZE = "blk_driver_queues_size";
    static CAPACITY = "blk_driver_capacity";
    static INFO = "blk_driver_info";
    static CLIENT = "blk_driver_channel";
    static IRQ = "blk_driver_irq";
}

/// Client data regions the device may reach.
const MAX_WINDOWS: usize = 16;

setvar_array! {
    static WINDOW: [MAX_WINDOWS] = "blk_window";
    static WINDOW_SIZE: [MAX_WINDOWS] = "blk_window_size";
    static WINDOW_PADDR: [MAX_WINDOWS] = "blk_window_paddr";
}

/// Descriptors of the virtqueue (QEMU offers up to 256).
pub const QUEUE_SIZE: usize = 128;
/// Requests in flight: a read or write takes three descriptors (header,
/// data, status), a flush two.
pub const SLOTS: usize = QUEUE_SIZE / 3;

/// Feature bits (virtio 1.2, 5.2.3 and 6).
const F_RO: u64 = 1 << 5;
const F_BLK_SIZE: u64 = 1 << 6;
const F_FLUSH: u64 = 1 << 9;
const F_EVENT_IDX: u64 = 1 << 29;
const F_VERSION_1: u64 = 1 << 32;
const WANTED: u64 = F_RO | F_BLK_SIZE | F_FLUSH | F_EVENT_IDX | F_VERSION_1;

/// The device-visible part of one request: its header and status byte.
#[repr(C)]
struct SlotMem {
    header: [u8; 16],
    status: [u8; 1],
}

/// A request the device holds.
#[derive(Clone, Copy)]
struct InFlight {
    token: u16,
    id: u32,
    /// The data buffer: (address in this PD, bytes, whether the device
    /// writes it).
    data: Option<(usize, usize, bool)>,
    count: u16,
}

/// The slots' device-visible memory, in the DMA region, and who holds
/// each slot.
struct Slots {
    mem: NonNull<SlotMem>,
    held: [Option<InFlight>; SLOTS],
}

impl Slots {
    fn new() -> Slots {
        let mem: Box<[SlotMem; SLOTS]> = Box::new(core::array::from_fn(|_| SlotMem {
            header: [0; 16],
            status: [0xff],
        }));
        Slots {
            // Leaked: the device uses these for the PD's whole life.
            mem: NonNull::from(Box::leak(mem)).cast(),
            held: [None; SLOTS],
        }
    }

    fn free(&self) -> Option<usize> {
        self.held.iter().position(Option::is_none)
    }

    fn in_flight(&self) -> usize {
        self.held.iter().filter(|h| h.is_some()).count()
    }

    /// The buffers of slot `i` as the virtqueue takes them: (device reads,
    /// device writes, how many of each), in the order `add` and
    /// `pop_used` both need.
    ///
    /// The slices are handed to the virtqueue only (in `add`, and again in
    /// `pop_used` for the same request), which gives their addresses to
    /// the device and reads or writes none of their bytes itself; the
    /// driver touches `header` before `add` and `status` after `pop_used`,
    /// never while the device holds them.
    #[allow(unsafe_code)]
    fn buffers(
        &mut self,
        i: usize,
        data: Option<(usize, usize, bool)>,
    ) -> ([&'static [u8]; 2], [&'static mut [u8]; 2], usize, usize) {
        assert!(i < SLOTS);
        // SAFETY: slot `i` lies in the leaked array of `SLOTS` entries, in
        // the DMA region, used by nothing but this driver and the device.
        let slot = unsafe { &mut *self.mem.as_ptr().add(i) };
        // SAFETY: the slot's header, alive for ever (leaked); see above
        // for who touches it when.
        let header: &'static [u8] =
            unsafe { core::slice::from_raw_parts(slot.header.as_ptr(), 16) };
        // SAFETY: the slot's status byte, as for the header.
        let status: &'static mut [u8] =
            unsafe { core::slice::from_raw_parts_mut(slot.status.as_mut_ptr(), 1) };
        match data {
            Some((vaddr, len, true)) => {
                // SAFETY: `vaddr..vaddr+len` lies inside a window
                // registered from the description's read-write mappings
                // (`window_at` checked it), mapped for the PD's whole life;
                // only the device touches its bytes through this slice.
                let d = unsafe { core::slice::from_raw_parts_mut(vaddr as *mut u8, len) };
                ([header, &[]], [d, status], 1, 2)
            }
            Some((vaddr, len, false)) => {
                // SAFETY: as for the device-written case above.
                let d = unsafe { core::slice::from_raw_parts(vaddr as *const u8, len) };
                ([header, d], [status, &mut []], 2, 1)
            }
            None => ([header, &[]], [status, &mut []], 1, 1),
        }
    }

    #[allow(unsafe_code)]
    fn slot(&mut self, i: usize) -> &mut SlotMem {
        assert!(i < SLOTS);
        // SAFETY: as in `buffers`; called only while the device does not
        // hold slot `i` (before `add`, after `pop_used`).
        unsafe { &mut *self.mem.as_ptr().add(i) }
    }
}

struct Driver {
    transport: MmioTransport<'static>,
    queue: VirtQueue<SeptaHal, QUEUE_SIZE>,
    slots: Slots,
    server: Server,
    client: Channel,
    irq: Channel,
    /// A barrier's id, while it waits for what is in flight.
    barrier: Option<u32>,
    /// Responses enqueued since the client was last notified.
    answered: bool,
}

impl Driver {
    fn respond(&mut self, id: u32, status: Status, count: u16) {
        let r = Response {
            status,
            success_count: if status == Status::Ok { count } else { 0 },
            id,
        };
        // Room was checked before the request was taken.
        if self.server.responses.stage(r).is_err() {
            println!("virtio-blk: response to {id} lost: the response queue is full");
        }
        self.answered = true;
    }

    /// Puts slot `i`'s request to the device.
    fn start(
        &mut self,
        i: usize,
        kind: u32,
        sector: u64,
        id: u32,
        data: Option<(usize, usize, bool)>,
        count: u16,
    ) {
        let slot = self.slots.slot(i);
        slot.header = plan::header(kind, sector);
        slot.status = [0xff];
        let (ins, mut outs, n_in, n_out) = self.slots.buffers(i, data);
        #[allow(unsafe_code)]
        // SAFETY: the buffers stay valid and untouched until `pop_used`
        // returns this request (see `Slots::buffers`).
        let added = unsafe { self.queue.add(&ins[..n_in], &mut outs[..n_out]) };
        match added {
            Ok(token) => {
                self.slots.held[i] = Some(InFlight {
                    token,
                    id,
                    data,
                    count,
                })
            }
            Err(e) => {
                println!("virtio-blk: the virtqueue refused request {id}: {e}");
                self.respond(id, Status::Unspecified, 0);
            }
        }
    }

    /// Takes requests while a slot, room for the answer and no barrier
    /// allow.
    fn take_requests(&mut self) {
        let mut started = false;
        while self.barrier.is_none() {
            let Some(i) = self.slots.free() else { break };
            // Room for the answers of everything in flight and this one
            // (staged answers already take theirs).
            let in_flight = self.slots.in_flight() as u32;
            match self.server.responses.space() {
                Ok(room) if room > in_flight => {}
                _ => break,
            }
            let req = match self.server.requests.take() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(f) => {
                    println!("virtio-blk: the client broke the request queue: {f}");
                    break;
                }
            };
            match plan::plan(&req) {
                Plan::Refuse(s) => self.respond(req.id, s, 0),
                Plan::Barrier if self.slots.in_flight() == 0 => self.respond(req.id, Status::Ok, 0),
                Plan::Barrier => self.barrier = Some(req.id),
                Plan::Flush => {
                    self.start(i, T_FLUSH, 0, req.id, None, 0);
                    started = true;
                }
                Plan::Transfer {
                    write,
                    sector,
                    io,
                    len,
                } => match septa_virtio_hal::window_at(io, len) {
                    Some(vaddr) => {
                        let kind = if write { T_OUT } else { T_IN };
                        self.start(
                            i,
                            kind,
                            sector,
                            req.id,
                            Some((vaddr, len, !write)),
                            req.count,
                        );
                        started = true;
                    }
                    None => {
                        println!(
                            "virtio-blk: request {}: buffer {io:#x}+{len:#x} is in no data region of the device's",
                            req.id
                        );
                        self.respond(req.id, Status::InvalidParam, 0);
                    }
                },
            }
        }
        self.server.requests.commit();
        if started && self.queue.should_notify() {
            self.transport.notify(0);
        }
    }

    /// Answers every request the device has finished.
    fn complete(&mut self) {
        while let Some(token) = self.queue.peek_used() {
            let Some(i) = self
                .slots
                .held
                .iter()
                .position(|h| h.is_some_and(|f| f.token == token))
            else {
                println!("virtio-blk: the device used descriptor {token}, which it was not given");
                return;
            };
            let f = self.slots.held[i].expect("found above");
            let (ins, mut outs, n_in, n_out) = self.slots.buffers(i, f.data);
            #[allow(unsafe_code)]
            // SAFETY: the same buffers `start` added for this token.
            let popped = unsafe { self.queue.pop_used(token, &ins[..n_in], &mut outs[..n_out]) };
            self.slots.held[i] = None;
            let status = match popped {
                Ok(_) => plan::status(self.slots.slot(i).status[0]),
                Err(e) => {
                    println!("virtio-blk: completing request {}: {e}", f.id);
                    Status::Unspecified
                }
            };
            self.respond(f.id, status, f.count);
        }
        if let Some(id) = self.barrier.filter(|_| self.slots.in_flight() == 0) {
            self.barrier = None;
            self.respond(id, Status::Ok, 0);
        }
    }
}

impl Handler for Driver {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.irq) {
            // Device first (it lowers its line), then the kernel.
            self.transport.ack_interrupt();
            self.complete();
            if let Err(e) = self.irq.irq_ack() {
                println!("virtio-blk: IRQ acknowledgement failed: {e}");
            }
        }
        self.take_requests();
        self.server.responses.commit();
        if core::mem::take(&mut self.answered) {
            let _ = self.client.notify();
        }
    }
}

/// The global allocator is the DMA pool (request headers come from it).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[global_allocator]
static HEAP: septa_virtio_hal::DmaHeap = septa_virtio_hal::DmaHeap;

#[allow(unsafe_code)]
fn region(vaddr: u64, len: u64, what: &str) -> Shared {
    if vaddr == 0 || len == 0 {
        panic!("virtio-blk: {what} is not wired (its setvars are unset)");
    }
    // SAFETY: the tool patched `vaddr` and `len` from a read-write map of
    // this PD in the system description, which lasts the PD's life; the
    // driver touches it only through `Shared`.
    unsafe { Shared::new(vaddr as *mut u8, len as usize) }.expect("a mapped region")
}

/// Features: what the device offers of [`WANTED`]; `VERSION_1` must be
/// accepted when offered.
fn negotiate(t: &mut MmioTransport<'static>) -> u64 {
    t.set_status(DeviceStatus::empty());
    t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let features = t.read_device_features() & WANTED;
    t.write_driver_features(features);
    t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
    if !t.get_status().contains(DeviceStatus::FEATURES_OK) {
        t.set_status(DeviceStatus::FAILED);
        panic!("virtio-blk: the device refused features {features:#x}");
    }
    t.set_guest_page_size(virtio_drivers::PAGE_SIZE as u32);
    features
}

/// Asks the device for its id, waiting for the answer (at start only).
fn device_id(d: &mut Driver) -> [u8; ID_BYTES] {
    let id = Box::leak(Box::new([0u8; ID_BYTES]));
    let (vaddr, len) = (id.as_ptr() as usize, id.len());
    d.start(0, T_GET_ID, 0, u32::MAX, Some((vaddr, len, true)), 0);
    d.transport.notify(0);
    while d.queue.peek_used().is_none() {
        core::hint::spin_loop();
    }
    d.complete();
    // Nobody asked: the answer is the driver's own.
    d.server.responses.unstage();
    d.answered = false;
    *id
}

fn init() -> Driver {
    let mut transport = septa_virtio_hal::transport(DeviceType::Block)
        .unwrap_or_else(|e| panic!("virtio-blk: {e}"));
    let features = negotiate(&mut transport);
    let sectors = transport
        .read_consistent(|| {
            let lo: u32 = transport.read_config_space(0)?;
            let hi: u32 = transport.read_config_space(4)?;
            Ok(u64::from(lo) | u64::from(hi) << 32)
        })
        .unwrap_or_else(|e| panic!("virtio-blk: reading the capacity: {e}"));
    let logical: u32 = if features & F_BLK_SIZE != 0 {
        transport.read_config_space(20).unwrap_or(SECTOR as u32)
    } else {
        SECTOR as u32
    };
    let queue = VirtQueue::<SeptaHal, QUEUE_SIZE>::new(
        &mut transport,
        0,
        false,
        features & F_EVENT_IDX != 0,
    )
    .unwrap_or_else(|e| panic!("virtio-blk: setting up the virtqueue: {e}"));
    transport.finish_init();

    for i in 0..MAX_WINDOWS {
        let (v, s, p) = (WINDOW.get(i), WINDOW_SIZE.get(i), WINDOW_PADDR.get(i));
        if v != 0 && !septa_virtio_hal::add_window(v as usize, p, s as usize) {
            panic!("virtio-blk: no room for data window {i}");
        }
    }
    let capacity = CAPACITY.get() as u32;
    let queues = region(QUEUES.get(), QUEUES_SIZE.get(), "the queue region");
    let (rq, rs) = septa_block_protocol::rings(&queues, capacity)
        .unwrap_or_else(|| panic!("virtio-blk: the queue region cannot hold {capacity} entries"));
    let server = Server::attach(rq, rs, capacity)
        .unwrap_or_else(|e| panic!("virtio-blk: the queues: {e:?}"));
    let info = StorageRegion::attach(region(
        INFO.get(),
        info_layout::REGION_SIZE as u64,
        "the info region",
    ))
    .unwrap_or_else(|e| panic!("virtio-blk: the info region: {e:?}"));

    let mut d = Driver {
        transport,
        queue,
        slots: Slots::new(),
        server,
        client: Channel::new(CLIENT.get() as u8),
        irq: Channel::new(IRQ.get() as u8),
        barrier: None,
        answered: false,
    };
    let id = device_id(&mut d);
    let mut serial = [0u8; 64];
    serial[..ID_BYTES].copy_from_slice(&id);
    let read_only = features & F_RO != 0;
    info.publish(&StorageInfo {
        serial_number: serial,
        read_only,
        sector_size: logical as u16,
        block_size: 1,
        queue_depth: SLOTS as u16,
        capacity: sectors / SECTORS_PER_BLOCK,
        ..StorageInfo::default()
    });
    info.set_ready(true);
    let (used, size) = septa_virtio_hal::dma_usage();
    let serial = core::str::from_utf8(&id[..id.iter().position(|&b| b == 0).unwrap_or(ID_BYTES)])
        .unwrap_or("?");
    println!(
        "virtio-blk: {} MiB{} (id {serial:?}), {} requests in flight, {used} of {size} DMA bytes used",
        (sectors * SECTOR) >> 20,
        if read_only { ", read-only" } else { "" },
        SLOTS,
    );
    d
}

protection_domain!(init);
