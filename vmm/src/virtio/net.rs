//! The guest's network card: a virtio-net device (virtio 1.2, 5.1) on
//! the net virtualisers' queues, the VMM being one more client of them
//! with a MAC of its own.
//!
//! Offered: VIRTIO_NET_F_MAC and VIRTIO_F_VERSION_1, nothing else (no
//! checksum or segmentation offloads, no mergeable receive buffers, no
//! control queue, one queue pair), so every frame is a whole Ethernet
//! frame behind the 12-byte `virtio_net_hdr_v1`, as on the wire.
//!
//! The data path copies: a frame the receive virtualiser put in one of
//! the VMM's buffers is copied into the next receive chain the guest made
//! available (header zeroed, `num_buffers` 1), and the buffer goes back; a
//! chain the guest made available on the transmit queue is copied, past
//! its header, into a free transmit buffer and passed on. Every guest
//! address is checked ([`super::GuestMem`]); a chain that is malformed,
//! too short for a frame or longer than one comes back used with nothing
//! written and is counted; a queue whose indices make no sense makes the
//! device ask for a reset.

use septa_net_protocol::wiring::{self, MAX_FRAME};
use septa_queue::net::{Buffers, Sink, Source};
use septa_queue::{Idle, Shared};

use super::mem::GuestMem;
use super::mmio::{self, Device, Identity, Transport, F_VERSION_1};
use super::queue::{gather, scatter, Chain, Queue, QueueError};

/// Virtio device id of a network card.
pub const DEVICE_ID: u32 = 1;
/// VIRTIO_NET_F_MAC: the configuration space holds the MAC.
pub const F_MAC: u64 = 1 << 5;
/// `virtio_net_hdr_v1` with VERSION_1: flags, gso_type, hdr_len,
/// gso_size, csum_start, csum_offset, num_buffers.
pub const HEADER: usize = 12;
/// The receive and transmit queues.
pub const RX: usize = 0;
pub const TX: usize = 1;

/// The VMM's ends of the virtualisers' queues and its data regions.
pub struct Backend {
    /// Frames from the receive virtualiser (the VMM is the pair's sink).
    pub rx: Sink,
    pub rx_data: Shared,
    /// Frames to the transmit virtualiser (the VMM is the pair's source).
    pub tx: Source,
    pub tx_data: Shared,
}

impl Backend {
    /// Hands every receive buffer to the virtualiser and asks for both
    /// signals (what a client does once at start).
    pub fn start(&mut self) -> Result<(), septa_queue::QueueError> {
        rx_buffers().fill(&mut self.rx.free)?;
        self.rx.active.request_signal();
        self.tx.free.request_signal();
        Ok(())
    }
}

/// The buffers of the receive and transmit data regions.
fn rx_buffers() -> Buffers {
    Buffers::new(0, wiring::GUEST_RX_DATA_SIZE as usize)
}
fn tx_buffers() -> Buffers {
    Buffers::new(0, wiring::GUEST_TX_DATA_SIZE as usize)
}

/// What the device did in one round, for the VMM to act on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Raise the device's interrupt.
    pub interrupt: bool,
    /// Signal the receive virtualiser (buffers came back and it asked).
    pub notify_rx: bool,
    /// Signal the transmit virtualiser (frames went out and it asked).
    pub notify_tx: bool,
    /// The first thing the guest got wrong, if anything.
    pub error: Option<NetError>,
}

/// What the guest got wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("{queue} queue: {error}")]
    Queue {
        queue: &'static str,
        error: QueueError,
    },
    #[error("a transmit chain of {len} bytes is not one frame behind a {HEADER}-byte header")]
    TxLength { len: u64 },
    #[error("a transmit chain has a buffer the device would write")]
    TxWritable,
    #[error("a receive chain of {room} writable bytes cannot take a {len}-byte frame")]
    RxRoom { room: u64, len: usize },
    #[error("the {0} virtualiser broke the queue protocol")]
    Peer(&'static str),
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Chains refused (given back with nothing done).
    pub refused: u64,
}

/// The device.
pub struct Net {
    pub transport: Transport,
    mac: [u8; 6],
    backend: Option<Backend>,
    pub stats: Stats,
}

impl Net {
    pub fn new(mac: [u8; 6], backend: Option<Backend>) -> Self {
        Net {
            transport: Transport::new(Identity {
                id: DEVICE_ID,
                features: F_VERSION_1 | F_MAC,
                queues: 2,
            }),
            mac,
            backend,
            stats: Stats::default(),
        }
    }

    /// The guest's machine is reset (a reboot): so is the device.
    pub fn reset(&mut self) {
        self.transport.reset();
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

impl Device for Net {
    type Work = Work;
    const CONFIG_READ_ONLY: &'static str = "the network card's configuration is read-only";

    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn config(&self, space: &mut [u8; mmio::CONFIG_MAX]) {
        space[..6].copy_from_slice(&self.mac);
    }

    fn bad_queue(error: QueueError) -> Work {
        Work {
            interrupt: true,
            error: Some(NetError::Queue { queue: "a", error }),
            ..Work::default()
        }
    }

    /// Moves what can move: frames the virtualiser delivered into the
    /// guest's receive chains, the guest's transmit chains out.
    fn poll(&mut self, mem: &GuestMem) -> Work {
        let mut w = Work::default();
        if !self.transport.running() {
            return w;
        }
        let Some(b) = self.backend.as_mut() else {
            return w;
        };
        let mut queues = self.transport.queues;
        let (rx_q, tx_q) = queues.split_at_mut(1);
        let rx = receive(mem, &mut rx_q[RX], b, &mut self.stats, &mut w);
        let tx = transmit(mem, &mut tx_q[0], b, &mut self.stats, &mut w);
        let used = w.interrupt;
        w.interrupt = false;
        for (q, r) in [(&rx_q[RX], rx), (&tx_q[0], tx)] {
            if let Err(error) = r {
                if !matches!(error, QueueError::NotReady) {
                    w.error.get_or_insert(NetError::Queue {
                        queue: if core::ptr::eq(q, &rx_q[RX]) {
                            "receive"
                        } else {
                            "transmit"
                        },
                        error,
                    });
                    self.transport.needs_reset();
                    w.interrupt = true;
                }
            }
        }
        if used && (rx_q[RX].wants_interrupt(mem) || tx_q[0].wants_interrupt(mem)) {
            w.interrupt = true;
        }
        if w.interrupt {
            self.transport.interrupt |= if used { mmio::INT_USED } else { 0 };
        }
        self.transport.queues = queues;
        w
    }
}

/// Counts a chain refused and reports why (the first error of a round).
fn note(stats: &mut Stats, w: &mut Work, e: NetError) {
    stats.refused += 1;
    w.error.get_or_insert(e);
    w.interrupt = true;
}

/// Gives chain `head` back used with nothing written, refused.
fn refuse(
    q: &mut Queue,
    mem: &GuestMem,
    head: u16,
    e: NetError,
    stats: &mut Stats,
    w: &mut Work,
) -> Result<(), QueueError> {
    note(stats, w, e);
    q.push_used(mem, head, 0)
}

/// The next chain of `q` that passes its checks (those that fail are
/// refused on the way).
fn next_chain(
    q: &mut Queue,
    mem: &GuestMem,
    queue: &'static str,
    stats: &mut Stats,
    w: &mut Work,
) -> Result<Option<Chain>, QueueError> {
    q.pop_valid(mem, |error| {
        note(stats, w, NetError::Queue { queue, error })
    })
}

/// Frames from the receive virtualiser into the guest's receive chains.
fn receive(
    mem: &GuestMem,
    q: &mut Queue,
    b: &mut Backend,
    stats: &mut Stats,
    w: &mut Work,
) -> Result<(), QueueError> {
    let mut frame = [0u8; HEADER + MAX_FRAME];
    loop {
        match b.rx.active.is_empty() {
            Ok(false) => {}
            Ok(true) => match b.rx.active.try_idle() {
                Ok(Idle::Block) => return Ok(()),
                Ok(Idle::Reprocess) => continue,
                Err(_) => {
                    w.error.get_or_insert(NetError::Peer("receive"));
                    return Ok(());
                }
            },
            Err(_) => {
                w.error.get_or_insert(NetError::Peer("receive"));
                return Ok(());
            }
        }
        // A frame waits: it needs a chain of the guest's (the guest's
        // notification brings the VMM back when it posts one).
        let Some(chain) = next_chain(q, mem, "receive", stats, w)? else {
            return Ok(());
        };
        let desc = match b.rx.active.dequeue() {
            Ok(Some(d)) => d,
            _ => {
                // Gone, or the peer is broken: the chain goes back empty.
                w.error.get_or_insert(NetError::Peer("receive"));
                q.push_used(mem, chain.head, 0)?;
                w.interrupt = true;
                return Ok(());
            }
        };
        let Ok(index) = rx_buffers().check(&desc) else {
            w.error.get_or_insert(NetError::Peer("receive"));
            q.push_used(mem, chain.head, 0)?;
            w.interrupt = true;
            continue;
        };
        let len = usize::from(desc.len).min(MAX_FRAME);
        frame[..HEADER].fill(0);
        frame[HEADER - 2] = 1; // num_buffers
        let read = b
            .rx_data
            .read(rx_buffers().offset(index), &mut frame[HEADER..HEADER + len]);
        if let Some(back) = rx_buffers().desc(index) {
            if b.rx.free.enqueue(back).is_err() {
                w.error.get_or_insert(NetError::Peer("receive"));
            }
            w.notify_rx |= b.rx.free.take_signal_request();
        }
        if read.is_err() {
            q.push_used(mem, chain.head, 0)?;
            w.interrupt = true;
            continue;
        }
        let room = chain.bytes(true);
        if room < (HEADER + len) as u64 {
            refuse(q, mem, chain.head, NetError::RxRoom { room, len }, stats, w)?;
            continue;
        }
        let n = scatter(mem, &chain, 0, &frame[..HEADER + len])?;
        q.push_used(mem, chain.head, n as u32)?;
        stats.rx_frames += 1;
        w.interrupt = true;
    }
}

/// The guest's transmit chains to the transmit virtualiser.
fn transmit(
    mem: &GuestMem,
    q: &mut Queue,
    b: &mut Backend,
    stats: &mut Stats,
    w: &mut Work,
) -> Result<(), QueueError> {
    let mut frame = [0u8; MAX_FRAME];
    let mut sent = false;
    let r = loop {
        if !q.has_avail(mem)? {
            break Ok(());
        }
        // A chain waits: it needs a free transmit buffer (the virtualiser
        // signals when it gives one back).
        if b.tx.free.is_empty().unwrap_or(true) {
            b.tx.free.request_signal();
            if b.tx.free.is_empty().unwrap_or(true) {
                break Ok(());
            }
            b.tx.free.cancel_signal();
        }
        let Some(chain) = next_chain(q, mem, "transmit", stats, w)? else {
            break Ok(());
        };
        if chain.bytes(true) != 0 {
            refuse(q, mem, chain.head, NetError::TxWritable, stats, w)?;
            continue;
        }
        let total = chain.bytes(false);
        if total < (HEADER + 14) as u64 || total > (HEADER + MAX_FRAME) as u64 {
            refuse(
                q,
                mem,
                chain.head,
                NetError::TxLength { len: total },
                stats,
                w,
            )?;
            continue;
        }
        let len = (total as usize) - HEADER;
        gather(mem, &chain, HEADER as u64, &mut frame[..len])?;
        let desc = match b.tx.free.dequeue() {
            Ok(Some(d)) => d,
            _ => {
                w.error.get_or_insert(NetError::Peer("transmit"));
                q.push_used(mem, chain.head, 0)?;
                w.interrupt = true;
                break Ok(());
            }
        };
        let ok = match tx_buffers().check(&desc) {
            Ok(index) => {
                let mut out = tx_buffers().desc(index).unwrap_or(desc);
                out.len = len as u16;
                b.tx_data
                    .write(tx_buffers().offset(index), &frame[..len])
                    .is_ok()
                    && b.tx.active.enqueue(out).is_ok()
            }
            Err(_) => false,
        };
        if !ok {
            w.error.get_or_insert(NetError::Peer("transmit"));
        } else {
            sent = true;
            stats.tx_frames += 1;
        }
        q.push_used(mem, chain.head, 0)?;
        w.interrupt = true;
    };
    if sent {
        w.notify_tx |= b.tx.active.take_signal_request();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::{reg, status, Effect};
    use crate::virtio::queue::flags;
    use crate::virtio::testing::{make_ready, GuestQueue, XorShift, BASE, BUFS, QUEUES, RAM, SIZE};
    use septa_net_protocol::region;
    use septa_queue::host::leak;
    use septa_queue::net::BuffDesc;
    use std::vec::Vec;

    const AVAIL: [u64; 2] = [QUEUES[0].avail, QUEUES[1].avail];
    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x57];

    /// A guest, its card, and the virtualisers' ends of the queues.
    struct Rig {
        mem: GuestMem,
        net: Net,
        /// The receive virtualiser's end (source) and data.
        virt_rx: Source,
        rx_data: Shared,
        /// The transmit virtualiser's end (sink) and data.
        virt_tx: Sink,
        tx_data: Shared,
        /// The guest's side of each queue.
        q: [GuestQueue; 2],
    }

    fn w(r: &mut Rig, off: u64, v: u32) -> Work {
        let mem = r.mem;
        r.net.write(&mem, off, 4, v).unwrap().1
    }

    fn rig() -> Rig {
        let mem = GuestMem::new(BASE, leak(RAM));
        let rxq = leak(wiring::QUEUES_SIZE as usize);
        let txq = leak(wiring::QUEUES_SIZE as usize);
        let rx_data = leak(wiring::GUEST_RX_DATA_SIZE as usize);
        let tx_data = leak(wiring::GUEST_TX_DATA_SIZE as usize);
        let mut backend = Backend {
            rx: region::sink(rxq).unwrap(),
            rx_data,
            tx: region::source(txq).unwrap(),
            tx_data,
        };
        backend.start().unwrap();
        let mut virt_tx = region::sink(txq).unwrap();
        tx_buffers().fill(&mut virt_tx.free).unwrap();
        let mut r = Rig {
            mem,
            net: Net::new(MAC, Some(backend)),
            virt_rx: region::source(rxq).unwrap(),
            rx_data,
            virt_tx,
            tx_data,
            q: QUEUES,
        };
        // Linux's virtio_mmio probe and virtio_net's setup, in order.
        assert_eq!(r.net.read(reg::MAGIC, 4), Ok(mmio::MAGIC));
        assert_eq!(r.net.read(reg::VERSION, 4), Ok(2));
        assert_eq!(r.net.read(reg::DEVICE_ID, 4), Ok(DEVICE_ID));
        w(&mut r, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        w(&mut r, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(r.net.read(reg::DEVICE_FEATURES, 4), Ok(1));
        w(&mut r, reg::DEVICE_FEATURES_SEL, 0);
        assert_eq!(r.net.read(reg::DEVICE_FEATURES, 4), Ok(1 << 5));
        w(&mut r, reg::DRIVER_FEATURES_SEL, 1);
        w(&mut r, reg::DRIVER_FEATURES, 1);
        w(&mut r, reg::DRIVER_FEATURES_SEL, 0);
        w(&mut r, reg::DRIVER_FEATURES, 1 << 5);
        w(&mut r, reg::STATUS, 0xb);
        assert_eq!(r.net.read(reg::STATUS, 4), Ok(0xb));
        for q in 0..2 {
            w(&mut r, reg::QUEUE_SEL, q);
            assert_eq!(r.net.read(reg::QUEUE_READY, 4), Ok(0));
            assert_eq!(r.net.read(reg::QUEUE_NUM_MAX, 4), Ok(256));
        }
        make_ready(&QUEUES, |off, v| {
            w(&mut r, off, v);
        });
        for q in 0..2 {
            w(&mut r, reg::QUEUE_SEL, q);
            assert_eq!(r.net.read(reg::QUEUE_READY, 4), Ok(1));
        }
        let mut cfg = [0u8; 6];
        for (i, b) in cfg.iter_mut().enumerate() {
            *b = r.net.read(reg::CONFIG + i as u64, 1).unwrap() as u8;
        }
        assert_eq!(cfg, MAC);
        w(&mut r, reg::STATUS, 0xf);
        r
    }

    /// Writes descriptor `i` of queue `q`.
    fn desc(r: &Rig, q: usize, i: u16, addr: u64, len: u32, fl: u16, next: u16) {
        r.q[q].desc(&r.mem, i, addr, len, fl, next);
    }

    /// Makes chain `head` available on queue `q` and notifies.
    fn offer(r: &mut Rig, q: usize, head: u16) -> Work {
        let mem = r.mem;
        r.q[q].post(&mem, head);
        w(r, reg::QUEUE_NOTIFY, q as u32)
    }

    fn used(r: &Rig, q: usize) -> Vec<(u32, u32)> {
        r.q[q].used(&r.mem)
    }

    fn frame(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn a_frame_goes_out_past_its_header() {
        let mut r = rig();
        let f = frame(60);
        r.mem.write(BUFS, &[0xee; HEADER]).unwrap();
        r.mem.write(BUFS + 0x100, &f[..20]).unwrap();
        r.mem.write(BUFS + 0x200, &f[20..]).unwrap();
        desc(&r, TX, 0, BUFS, HEADER as u32, flags::NEXT, 1);
        desc(&r, TX, 1, BUFS + 0x100, 20, flags::NEXT, 2);
        desc(&r, TX, 2, BUFS + 0x200, 40, 0, 0);
        let work = offer(&mut r, TX, 0);
        assert_eq!(work.error, None);
        assert!(work.interrupt);
        let d = r.virt_tx.active.dequeue().unwrap().unwrap();
        assert_eq!(d.len, 60);
        let mut got = [0u8; 60];
        r.tx_data.read(d.io_or_offset as usize, &mut got).unwrap();
        assert_eq!(&got[..], &f[..]);
        assert_eq!(used(&r, TX), [(0, 0)]);
        assert_eq!(r.net.stats.tx_frames, 1);
        assert_eq!(r.net.read(reg::INTERRUPT_STATUS, 4), Ok(mmio::INT_USED));
    }

    /// The receive virtualiser delivers `f`.
    fn deliver(r: &mut Rig, f: &[u8]) {
        let b = r.virt_rx.free.dequeue().unwrap().unwrap();
        r.rx_data.write(b.io_or_offset as usize, f).unwrap();
        r.virt_rx
            .active
            .enqueue(BuffDesc {
                len: f.len() as u16,
                ..b
            })
            .unwrap();
    }

    #[test]
    fn a_frame_comes_in_behind_a_header_and_its_buffer_goes_back() {
        let mut r = rig();
        let f = frame(1514);
        let free_before = r.virt_rx.free.len().unwrap();
        deliver(&mut r, &f);
        // No receive chain yet: the frame waits.
        assert!(!r.net.poll(&r.mem.clone()).interrupt);
        desc(&r, RX, 0, BUFS, 2048, flags::WRITE, 0);
        let work = offer(&mut r, RX, 0);
        assert_eq!(work.error, None);
        assert!(work.interrupt);
        assert_eq!(used(&r, RX), [(0, (HEADER + 1514) as u32)]);
        let mut got = std::vec![0u8; HEADER + 1514];
        r.mem.read(BUFS, &mut got).unwrap();
        assert_eq!(got[HEADER - 2], 1, "num_buffers");
        assert_eq!(&got[HEADER..], &f[..]);
        assert_eq!(r.virt_rx.free.len().unwrap(), free_before);
    }

    #[test]
    fn hostile_chains_are_refused_and_the_card_goes_on() {
        let mut r = rig();
        // (what, the chain: address, length, flags, next)
        type Case<'a> = (&'a str, &'a [(u64, u32, u16, u16)]);
        let cases: [Case; 6] = [
            ("outside RAM", &[(0x1000, 74, 0, 0)]),
            ("past RAM's end", &[(BASE + RAM as u64 - 8, 74, 0, 0)]),
            ("huge length", &[(BUFS, u32::MAX, 0, 0)]),
            ("a loop", &[(BUFS, 12, flags::NEXT, 0)]),
            ("next out of range", &[(BUFS, 12, flags::NEXT, 999)]),
            ("indirect", &[(BUFS, 64, flags::INDIRECT, 0)]),
        ];
        for (i, (what, chain)) in cases.iter().enumerate() {
            for (k, (addr, len, fl, next)) in chain.iter().enumerate() {
                desc(&r, TX, k as u16, *addr, *len, *fl, *next);
            }
            let work = offer(&mut r, TX, 0);
            assert!(work.error.is_some(), "{what}: no error");
            assert_eq!(used(&r, TX).len(), i + 1, "{what}: not given back");
        }
        // Too short, too long, and a writable buffer on the transmit queue.
        for (len, fl) in [
            (HEADER as u32 + 4, 0),
            (HEADER as u32 + 1515, 0),
            (80, flags::WRITE),
        ] {
            desc(&r, TX, 0, BUFS, len, fl, 0);
            assert!(offer(&mut r, TX, 0).error.is_some());
        }
        // A head past the queue's size.
        assert!(offer(&mut r, TX, SIZE + 3).error.is_some());
        // A receive chain too small for the frame.
        deliver(&mut r, &frame(200));
        desc(&r, RX, 0, BUFS, 100, flags::WRITE, 0);
        assert!(matches!(
            offer(&mut r, RX, 0).error,
            Some(NetError::RxRoom { .. })
        ));
        assert_eq!(r.net.stats.refused, 11);
        assert!(r.net.transport.running());
        // The card still works.
        desc(&r, TX, 0, BUFS, 74, 0, 0);
        assert_eq!(offer(&mut r, TX, 0).error, None);
        assert_eq!(r.net.stats.tx_frames, 1);
        assert!(r.virt_tx.active.dequeue().unwrap().is_some());
    }

    #[test]
    fn a_broken_queue_makes_the_card_ask_for_a_reset() {
        let mut r = rig();
        // The available index jumps past the ring.
        r.mem.write_u16(AVAIL[TX] + 2, SIZE + 5).unwrap();
        let work = w(&mut r, reg::QUEUE_NOTIFY, TX as u32);
        assert!(matches!(
            work.error,
            Some(NetError::Queue {
                error: QueueError::AvailIndex { .. },
                ..
            })
        ));
        assert!(work.interrupt);
        assert_eq!(
            r.net.read(reg::STATUS, 4).unwrap() & status::NEEDS_RESET,
            status::NEEDS_RESET
        );
        assert!(!r.net.transport.running());
        // The guest resets it and sets it up again.
        w(&mut r, reg::STATUS, 0);
        assert_eq!(r.net.read(reg::STATUS, 4), Ok(0));
        assert_eq!(r.net.read(reg::QUEUE_READY, 4), Ok(0));
    }

    #[test]
    fn rings_outside_ram_and_bad_registers_are_refused() {
        let mut r = rig();
        w(&mut r, reg::STATUS, 0);
        w(&mut r, reg::QUEUE_SEL, 0);
        w(&mut r, reg::QUEUE_DESC_LOW, 0xffff_f000);
        w(&mut r, reg::QUEUE_DESC_HIGH, 0xffff_ffff);
        let work = w(&mut r, reg::QUEUE_READY, 1);
        assert!(matches!(
            work.error,
            Some(NetError::Queue {
                error: QueueError::Ring(_),
                ..
            })
        ));
        assert_eq!(r.net.read(reg::QUEUE_READY, 4), Ok(0));
        // A size that is no power of two, or too big.
        for size in [3, 512, 0] {
            w(&mut r, reg::STATUS, 0);
            w(&mut r, reg::QUEUE_NUM, size);
            assert!(w(&mut r, reg::QUEUE_READY, 1).error.is_some());
        }
        // A queue that does not exist reads as absent.
        w(&mut r, reg::QUEUE_SEL, 7);
        assert_eq!(r.net.read(reg::QUEUE_NUM_MAX, 4), Ok(0));
        let mem = r.mem;
        assert_eq!(
            r.net.write(&mem, reg::QUEUE_NOTIFY, 4, 9).unwrap().0,
            Effect::Ignored("a notification for a queue the device does not have")
        );
        assert!(r.net.read(reg::STATUS, 2).is_err());
        assert!(r.net.read(reg::STATUS + 1, 4).is_err());
        assert!(r.net.read(reg::CONFIG + 1, 2).is_err());
        // Features the card did not offer: FEATURES_OK does not stick.
        w(&mut r, reg::STATUS, 0);
        w(&mut r, reg::DRIVER_FEATURES_SEL, 0);
        w(&mut r, reg::DRIVER_FEATURES, 1 << 5 | 1);
        w(&mut r, reg::STATUS, 0xb);
        assert_eq!(r.net.read(reg::STATUS, 4).unwrap() & status::FEATURES_OK, 0);
    }

    #[test]
    fn a_sealed_card_requires_access_platform() {
        let mut r = rig();
        r.net
            .transport
            .require(crate::virtio::mmio::F_ACCESS_PLATFORM);
        let features = |r: &mut Rig, hi: u32| {
            w(r, reg::STATUS, 0);
            w(r, reg::DEVICE_FEATURES_SEL, 1);
            assert_eq!(r.net.read(reg::DEVICE_FEATURES, 4), Ok(0b11));
            w(r, reg::DRIVER_FEATURES_SEL, 0);
            w(r, reg::DRIVER_FEATURES, 1 << 5);
            w(r, reg::DRIVER_FEATURES_SEL, 1);
            w(r, reg::DRIVER_FEATURES, hi);
            w(r, reg::STATUS, 0xb);
            r.net.read(reg::STATUS, 4).unwrap() & status::FEATURES_OK
        };
        // VERSION_1 without ACCESS_PLATFORM: refused; with it: taken.
        assert_eq!(features(&mut r, 0b01), 0);
        assert_eq!(features(&mut r, 0b11), status::FEATURES_OK);
    }

    #[test]
    fn random_rings_never_reach_outside_ram() {
        let mut r = rig();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut next = || rng.draw();
        for round in 0..2000 {
            // Garbage over both descriptor tables and available rings.
            let mem = r.mem;
            for q in &r.q {
                q.garble(&mem, &mut XorShift(next()), BUFS, 4096);
            }
            if round % 3 == 0 {
                deliver(&mut r, &frame(64 + (next() % 1400) as usize));
            }
            let q = (next() % 2) as usize;
            r.q[q].jump(&mem, (next() % 20) as u16);
            let _ = w(&mut r, reg::QUEUE_NOTIFY, q as u32);
            // Whatever happened, the frames that went out are sound.
            while let Some(d) = r.virt_tx.active.dequeue().unwrap() {
                assert!(usize::from(d.len) <= MAX_FRAME);
                r.virt_tx.free.enqueue(BuffDesc { len: 0, ..d }).unwrap();
            }
            if !r.net.transport.running() {
                // Start again, as a guest would after NEEDS_RESET.
                let mem = r.mem;
                let _ = r.net.write(&mem, reg::STATUS, 4, 0);
                for q in &mut r.q {
                    q.restart(&mem);
                }
                for (off, v) in [
                    (reg::DRIVER_FEATURES_SEL, 1),
                    (reg::DRIVER_FEATURES, 1),
                    (reg::DRIVER_FEATURES_SEL, 0),
                    (reg::DRIVER_FEATURES, 1 << 5),
                    (reg::STATUS, 0xb),
                ] {
                    w(&mut r, off, v);
                }
                make_ready(&QUEUES, |off, v| {
                    w(&mut r, off, v);
                });
                w(&mut r, reg::STATUS, 0xf);
            }
        }
    }
}
