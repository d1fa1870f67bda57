//! # virtio-net: a driver PD for a virtio network device
//!
//! It owns one virtio-net device on a virtio-mmio transport (modern
//! interface), its interrupt, a DMA pool for the virtqueues, and the two
//! data regions whose buffers it lends the device: frames go between the
//! device and the network virtualisers without a copy here. Wiring, sizes
//! and addresses are `septa-net-protocol`'s ([`wiring::driver`]); the
//! `[net]` subsystem of a description generates all of it.
//!
//! - Receive: the receive virtualiser gives empty buffers in the free
//!   queue; the driver posts them to the device; when the device has
//!   filled one, the driver passes it on in the active queue, the frame at
//!   [`wiring::DRIVER_FRAME_OFFSET`] (after the device's header) and its
//!   length in the descriptor.
//! - Transmit: the transmit virtualiser passes filled buffers (frame at the
//!   same offset) in the active queue; the driver writes the device's
//!   header in front, posts them, and gives each back in the free queue
//!   once the device is done with it.
//!
//! What the device throws at it: a full receive ring (the virtualiser
//! gives nothing back) only means the device holds fewer buffers and drops
//! what it cannot place, as a NIC does; a frame longer than a buffer is
//! never delivered (no mergeable buffers are negotiated, so the device
//! drops it); a completion that makes no sense (a token the driver never
//! gave, a header of the wrong size) is counted and its buffer goes back
//! empty. A device that asks for a reset (`DEVICE_NEEDS_RESET`, which
//! QEMU sets when it finds the driver's rings inconsistent and announces
//! with a configuration interrupt) or that was reset under the driver
//! (its `DRIVER_OK` gone, seen at the next event) is reset and started
//! again: features negotiated anew, new virtqueues, every receive buffer
//! the device held posted again, and every transmit buffer it held given
//! back to the virtualiser (those frames are lost, as on a NIC's reset;
//! TCP sends them again), so no buffer of the queues goes missing.
//! Descriptors from the virtualisers are checked (`Buffers::check`) before
//! any buffer is touched.
//!
//! Owns: the device's registers and virtqueues, the DMA pool, the driver's
//! side of the two queue pairs. Must not: look into frames (policy is the
//! virtualisers' and the stack's).
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::mem::ManuallyDrop;

use septa_net_protocol::region;
use septa_net_protocol::wiring::{self, driver as w};
use septa_queue::net::{Buffers, Sink, Source};
use septa_queue::{Idle, Shared};
use septa_runtime::{println, protection_domain, setvar, Channel, ChannelSet, Handler};
use septa_virtio_hal::{Masked, SeptaHal};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType};

const IRQ: Channel = Channel::new(w::IRQ);
const VIRT_RX: Channel = Channel::new(w::VIRT_RX);
const VIRT_TX: Channel = Channel::new(w::VIRT_TX);

/// Entries of each virtqueue: one per buffer, so every buffer fits.
const QUEUE_SIZE: usize = wiring::BUFFERS as usize;

/// The driver allocates nothing itself, but `virtio-drivers` built with
/// `alloc` (another driver of the workspace asks for it, and cargo unifies
/// features) needs an allocator to link: the DMA pool's, as the console
/// driver's.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[global_allocator]
static HEAP: septa_virtio_hal::DmaHeap = septa_virtio_hal::DmaHeap;

setvar! {
    static RX_DATA_PADDR = "net_rx_data_paddr";
    static TX_DATA_PADDR = "net_tx_data_paddr";
}

type Net = VirtIONetRaw<SeptaHal, Masked<MmioTransport<'static>>, QUEUE_SIZE>;

/// VIRTIO_F_RING_EVENT_IDX, which the device is never offered:
/// `virtio-drivers` 0.13 decides whether to notify the device by comparing
/// its 16-bit ring indices without wrap-around (`avail_idx >=
/// avail_event + 1`, not virtio's `vring_need_event`), so once they wrap (every
/// 65,536 buffers) it can fail to notify a device that waits for buffers,
/// which then starves. Without the feature the device's flag decides,
/// which has no arithmetic to get wrong.
const EVENT_IDX: u64 = 1 << 29;

/// A data region and its buffers, named by offset on the queues.
struct Data {
    mem: Shared,
    buffers: Buffers,
}

impl Data {
    /// The whole buffer `index`, lent to the device.
    ///
    /// # Safety
    ///
    /// The buffer must be this driver's to lend: taken from the queue from
    /// the virtualiser and not yet given back, so the virtualiser does not
    /// touch it, and not already lent to the device.
    unsafe fn buffer(&self, index: u32) -> &'static mut [u8] {
        let at = self.buffers.offset(index);
        // SAFETY: `index` is below the region's buffer count (from
        // `Buffers::check`), so the buffer lies inside the mapped region
        // (`mem` covers it for the PD's life); the caller guarantees no one
        // else uses it while the slice lives.
        unsafe {
            core::slice::from_raw_parts_mut(self.mem.as_ptr().add(at), wiring::BUFFER_SIZE as usize)
        }
    }
}

/// Which buffer (and how many of its bytes) each device token (the head
/// descriptor of a chain) holds.
struct InFlight {
    by_token: [Option<(u32, usize)>; QUEUE_SIZE],
    count: usize,
}

impl InFlight {
    const fn new() -> Self {
        InFlight {
            by_token: [None; QUEUE_SIZE],
            count: 0,
        }
    }

    fn put(&mut self, token: u16, index: u32, len: usize) -> bool {
        match self.by_token.get_mut(token as usize) {
            Some(slot @ None) => {
                *slot = Some((index, len));
                self.count += 1;
                true
            }
            _ => false,
        }
    }

    fn take(&mut self, token: u16) -> Option<(u32, usize)> {
        let index = self.by_token.get_mut(token as usize)?.take()?;
        self.count -= 1;
        Some(index)
    }

    /// Takes every buffer back (the device that held them is gone).
    fn drain(&mut self) -> impl Iterator<Item = u32> + '_ {
        self.count = 0;
        self.by_token
            .iter_mut()
            .filter_map(|s| s.take().map(|(i, _)| i))
    }
}

#[derive(Default)]
struct Counters {
    rx: u64,
    tx: u64,
    faults: u64,
    /// `faults` when last reported.
    reported: u64,
    /// Times the device was reset and started again.
    resets: u64,
    /// Frames the device held to send when it was reset.
    tx_lost: u64,
}

struct Driver {
    /// Dropped (which resets the device and gives its virtqueues back)
    /// only in `recover`, right before it is replaced.
    net: ManuallyDrop<Net>,
    rx: Source,
    rx_data: Data,
    rx_flight: InFlight,
    tx: Sink,
    tx_data: Data,
    tx_flight: InFlight,
    counters: Counters,
}

const fn buf_len() -> usize {
    wiring::BUFFER_SIZE as usize
}

/// The region of `size` bytes mapped at `base`.
fn mapped(base: u64, size: u64) -> Shared {
    // SAFETY: the tool maps each of this PD's queue and data regions
    // read-write at its `wiring::driver` address with its `wiring` size for
    // the PD's whole life, and this PD touches them only through `Shared`
    // (and, for a buffer lent to the device, through `Data::buffer`).
    unsafe { Shared::new(base as *mut u8, size as usize) }.expect("a region's address is not null")
}

fn data(base: u64, paddr: u64) -> Data {
    let mem = mapped(base, wiring::DATA_SIZE);
    if !septa_virtio_hal::add_window(base as usize, paddr, wiring::DATA_SIZE as usize) {
        panic!("virtio-net: no room for another DMA region");
    }
    Data {
        mem,
        buffers: Buffers::new(0, wiring::DATA_SIZE as usize),
    }
}

/// Why the device must be reset, if it must.
fn needs_reset(status: DeviceStatus) -> Option<&'static str> {
    if status.contains(DeviceStatus::DEVICE_NEEDS_RESET) {
        Some("the device asks for a reset")
    } else if !status.contains(DeviceStatus::DRIVER_OK) {
        Some("the device was reset under the driver")
    } else {
        None
    }
}

fn start_device() -> Net {
    let transport = septa_virtio_hal::transport(DeviceType::Network)
        .unwrap_or_else(|e| panic!("virtio-net: {e}"));
    Net::new(Masked::new(transport, EVENT_IDX))
        .unwrap_or_else(|e| panic!("virtio-net: the device would not start: {e}"))
}

impl Driver {
    /// Posts the empty buffers the receive virtualiser gave back.
    fn post_rx(&mut self) {
        loop {
            while self.rx_flight.count < QUEUE_SIZE {
                let desc = match self.rx.free.dequeue() {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(_) => {
                        self.counters.faults += 1;
                        break;
                    }
                };
                let Ok(index) = self.rx_data.buffers.check(&desc) else {
                    self.counters.faults += 1;
                    continue;
                };
                // SAFETY: the virtualiser handed this buffer over (it was
                // in the free queue) and it is not lent to the device.
                let buf = unsafe { self.rx_data.buffer(index) };
                // SAFETY: the buffer stays untouched until its completion,
                // when `receive_complete` is given the same buffer.
                match unsafe { self.net.receive_begin(buf) } {
                    Ok(token) if self.rx_flight.put(token, index, buf_len()) => {}
                    _ => self.counters.faults += 1,
                }
            }
            if self.rx_flight.count == QUEUE_SIZE {
                // The device has a buffer for each of its slots; the next
                // interrupt brings us back.
                return;
            }
            match self.rx.free.try_idle() {
                Ok(Idle::Reprocess) => continue,
                _ => return,
            }
        }
    }

    /// Passes what the device received to the receive virtualiser.
    fn complete_rx(&mut self) {
        let mut moved = false;
        while let Some(token) = self.net.poll_receive() {
            let Some((index, _)) = self.rx_flight.take(token) else {
                // A token we never gave: nothing sane to do but stop.
                self.counters.faults += 1;
                break;
            };
            // SAFETY: buffer `index` was lent to the device under `token`;
            // this is its completion, given the same buffer.
            let buf = unsafe { self.rx_data.buffer(index) };
            // SAFETY: as above: the same buffer as `receive_begin` had.
            let done = unsafe { self.net.receive_complete(token, buf) };
            let mut desc = self.rx_data.buffers.desc(index).expect("checked index");
            match done {
                Ok((wiring::DRIVER_FRAME_OFFSET, len)) if len <= wiring::MAX_FRAME => {
                    desc.len = len as u16;
                    self.counters.rx += 1;
                }
                // A header of another size, or an impossible length: the
                // buffer goes up empty, and the virtualiser gives it back.
                _ => self.counters.faults += 1,
            }
            if self.rx.active.enqueue(desc).is_err() {
                self.counters.faults += 1;
            }
            moved = true;
        }
        if moved && self.rx.active.take_signal_request() {
            let _ = VIRT_RX.notify();
        }
    }

    /// Posts the frames the transmit virtualiser passed on.
    fn post_tx(&mut self) {
        loop {
            while self.tx_flight.count < QUEUE_SIZE {
                let desc = match self.tx.active.dequeue() {
                    Ok(Some(d)) => d,
                    Ok(None) => break,
                    Err(_) => {
                        self.counters.faults += 1;
                        break;
                    }
                };
                let Ok(index) = self.tx_data.buffers.check(&desc) else {
                    self.counters.faults += 1;
                    continue;
                };
                let len = desc.len as usize;
                // SAFETY: the virtualiser handed this buffer over (in the
                // active queue) and it is not lent to the device.
                let buf = unsafe { self.tx_data.buffer(index) };
                if len > wiring::MAX_FRAME || len == 0 {
                    self.give_back_tx(index);
                    self.counters.faults += 1;
                    continue;
                }
                let frame = &mut buf[..wiring::DRIVER_FRAME_OFFSET + len];
                let posted = self.net.fill_buffer_header(frame).ok()
                    == Some(wiring::DRIVER_FRAME_OFFSET)
                    // SAFETY: the buffer stays untouched until its
                    // completion, given the same slice.
                    && unsafe { self.net.transmit_begin(frame) }
                        .is_ok_and(|token| self.tx_flight.put(token, index, frame.len()));
                if !posted {
                    self.counters.faults += 1;
                    self.give_back_tx(index);
                }
            }
            if self.tx_flight.count == QUEUE_SIZE {
                return;
            }
            match self.tx.active.try_idle() {
                Ok(Idle::Reprocess) => continue,
                _ => return,
            }
        }
    }

    fn give_back_tx(&mut self, index: u32) {
        let desc = self.tx_data.buffers.desc(index).expect("checked index");
        if self.tx.free.enqueue(desc).is_err() {
            self.counters.faults += 1;
        }
    }

    /// Gives back the buffers the device has sent.
    fn complete_tx(&mut self) {
        let mut moved = false;
        while let Some(token) = self.net.poll_transmit() {
            let Some((index, len)) = self.tx_flight.take(token) else {
                self.counters.faults += 1;
                break;
            };
            // SAFETY: buffer `index` was lent to the device under `token`,
            // `len` bytes of it; this is its completion.
            let buf = unsafe { self.tx_data.buffer(index) };
            // SAFETY: the same slice `transmit_begin` had.
            if unsafe { self.net.transmit_complete(token, &buf[..len]) }.is_ok() {
                self.counters.tx += 1;
            } else {
                self.counters.faults += 1;
            }
            self.give_back_tx(index);
            moved = true;
        }
        if moved && self.tx.free.take_signal_request() {
            let _ = VIRT_TX.notify();
        }
    }
}

impl Driver {
    /// Resets the device and starts it again; the buffers it held are
    /// posted again (receive) or given back (transmit).
    fn recover(&mut self, why: &str, status: DeviceStatus) {
        let mut rx_held = [0u32; QUEUE_SIZE];
        let mut held = 0;
        for index in self.rx_flight.drain() {
            rx_held[held] = index;
            held += 1;
        }
        let mut tx_lost = 0;
        let mut tx_held = [0u32; QUEUE_SIZE];
        for index in self.tx_flight.drain() {
            tx_held[tx_lost] = index;
            tx_lost += 1;
        }
        // SAFETY: `self.net` is overwritten below before anything uses it
        // again, and a `ManuallyDrop` is never dropped twice (if starting
        // the new device panics, the PD stops with it). Dropping unsets
        // the queues and resets the device, so it no longer reaches the
        // buffers above (now the driver's alone) or the virtqueues, which
        // go back to the DMA pool for the new device's.
        unsafe { ManuallyDrop::drop(&mut self.net) };
        self.net = ManuallyDrop::new(start_device());
        for &index in &tx_held[..tx_lost] {
            self.give_back_tx(index);
        }
        for &index in &rx_held[..held] {
            // SAFETY: the buffer was lent to the old device, which is
            // gone; the driver holds it and lends it to this one alone.
            let buf = unsafe { self.rx_data.buffer(index) };
            // SAFETY: as in `post_rx`: untouched until its completion.
            match unsafe { self.net.receive_begin(buf) } {
                Ok(token) if self.rx_flight.put(token, index, buf_len()) => {}
                _ => self.counters.faults += 1,
            }
        }
        let c = &mut self.counters;
        c.resets += 1;
        c.tx_lost += tx_lost as u64;
        println!(
            "virtio-net: {why} (status {:#x}): reset {}, {held} receive buffers posted again, frames to send lost: {tx_lost} ({} in all)",
            status.bits(),
            c.resets,
            c.tx_lost
        );
        if tx_lost > 0 && self.tx.free.take_signal_request() {
            let _ = VIRT_TX.notify();
        }
    }

    /// Resets the device if it must be (see [`needs_reset`]), then
    /// everything both ways, once.
    fn service(&mut self) {
        let status = septa_virtio_hal::device_status();
        if let Some(why) = needs_reset(status) {
            self.recover(why, status);
        }
        self.process();
    }

    /// Everything both ways, once.
    fn process(&mut self) {
        self.complete_tx();
        self.complete_rx();
        self.post_rx();
        self.post_tx();
    }
}

impl Handler for Driver {
    fn notified(&mut self, channels: ChannelSet) {
        let irq = channels.contains(IRQ);
        if irq {
            let _ = self.net.ack_interrupt();
        }
        self.service();
        if irq {
            if let Err(e) = IRQ.irq_ack() {
                println!("virtio-net: IRQ acknowledgement failed: {e}");
            }
            // The device raises its interrupt as a level while its status
            // is unacknowledged; the board routes it as an edge. What came
            // after the acknowledgement above raised no new edge while the
            // kernel held the IRQ masked: look again until the status
            // stays clear, so the next frame makes an edge of its own.
            while !self.net.ack_interrupt().is_empty() {
                self.service();
            }
        }
        // Faults are reported as they double, so a storm costs a few lines.
        let c = &mut self.counters;
        if septa_net_protocol::report_due(c.faults, &mut c.reported, 1) {
            println!(
                "virtio-net: {} faults ({} frames received, {} sent)",
                c.faults, c.rx, c.tx
            );
        }
    }
}

fn init() -> Driver {
    let net = start_device();
    let mac = net.mac_address();
    let rx = region::source(mapped(w::RX_QUEUES, wiring::QUEUES_SIZE)).expect("receive queues");
    let tx = region::sink(mapped(w::TX_QUEUES, wiring::QUEUES_SIZE)).expect("transmit queues");
    let mut d = Driver {
        net: ManuallyDrop::new(net),
        rx,
        rx_data: data(w::RX_DATA, RX_DATA_PADDR.get()),
        rx_flight: InFlight::new(),
        tx,
        tx_data: data(w::TX_DATA, TX_DATA_PADDR.get()),
        tx_flight: InFlight::new(),
        counters: Counters::default(),
    };
    // Every transmit buffer starts with the virtualiser.
    if let Err(e) = d.tx_data.buffers.fill(&mut d.tx.free) {
        panic!("virtio-net: the transmit free queue: {e:?}");
    }
    d.rx.free.request_signal();
    d.tx.active.request_signal();
    let (used, size) = septa_virtio_hal::dma_usage();
    println!(
        "virtio-net: device ready, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {} buffers each way, {used} of {size} DMA bytes used",
        mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], wiring::BUFFERS
    );
    d
}

protection_domain!(init);
