//! The guest's virtio console (virtio 1.2, 5.3): Linux's `hvc0`, on the
//! serial subsystem like the emulated PL011, as an alternative to it.
//!
//! Offered: VIRTIO_F_VERSION_1 and nothing else (no size, no multiple
//! ports, no emergency write), so the device is one port on two queues:
//! receive (0) and transmit (1), and its configuration space is empty.
//!
//! What the guest transmits is copied out of its chains, a piece at a
//! time, to the VMM's console output ([`Console::transmit`]), which goes
//! to the serial subsystem as the PL011's output does (and is lost the
//! same way when the guest writes faster than the UART drains). What is
//! typed is copied into the guest's receive chains as they come
//! ([`Console::receive`]); with no chain posted it waits in the VMM, as
//! for the PL011. Every guest address is checked ([`super::GuestMem`]); a
//! chain that is malformed, a transmit chain the device would write or
//! one longer than the buffer, a receive chain with nothing the device
//! may write come back used with nothing done and are counted; a queue
//! whose indices make no sense makes the device ask for a reset.

use super::mem::GuestMem;
use super::mmio::{self, Device, Identity, Transport, F_VERSION_1};
use super::queue::{gather, scatter, Chain, Queue, QueueError};

/// Virtio device id of a console.
pub const DEVICE_ID: u32 = 3;
/// The receive and transmit queues (port 0).
pub const RX: usize = 0;
pub const TX: usize = 1;
/// The most bytes one transmit chain may carry (a Linux hvc write is at
/// most a page).
pub const MAX_WRITE: usize = 4096;
/// The piece of a chain copied at a time (on the VMM's stack).
const PIECE: usize = 128;

/// What the guest got wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    #[error("{queue} queue: {error}")]
    Queue {
        queue: &'static str,
        error: QueueError,
    },
    #[error("a transmit chain has a buffer the device would write")]
    TxWritable,
    #[error(
        "a transmit chain of {len} bytes, more than the {MAX_WRITE} the console takes at once"
    )]
    TxLength { len: u64 },
    #[error("a receive chain with no buffer the device may write")]
    RxReadOnly,
}

/// What the device did in one round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Raise the device's interrupt.
    pub interrupt: bool,
    /// The guest made output available: the VMM calls
    /// [`Console::transmit`].
    pub output: bool,
    /// The first thing the guest got wrong, if anything.
    pub error: Option<ConsoleError>,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Chains refused (given back with nothing done).
    pub refused: u64,
}

/// The device.
pub struct Console {
    pub transport: Transport,
    pub stats: Stats,
}

impl Default for Console {
    fn default() -> Self {
        Console::new()
    }
}

impl Console {
    pub fn new() -> Self {
        Console {
            transport: Transport::new(Identity {
                id: DEVICE_ID,
                features: F_VERSION_1,
                queues: 2,
            }),
            stats: Stats::default(),
        }
    }

    /// The guest's machine is reset: so is the device.
    pub fn reset(&mut self) {
        self.transport.reset();
    }

    /// Whether the guest's driver has set up the receive queue (typed
    /// bytes have somewhere to go).
    pub fn ready(&self) -> bool {
        self.transport.running() && self.transport.queues[RX].ready
    }

    /// Copies typed `bytes` into the guest's receive chains, one chain
    /// at a time as far as each holds; returns how many went in (the
    /// rest waits for more chains) and the work.
    pub fn receive(&mut self, mem: &GuestMem, bytes: &[u8]) -> (usize, Work) {
        let mut w = Work::default();
        if !self.transport.running() || bytes.is_empty() {
            return (0, w);
        }
        let mut q = self.transport.queues[RX];
        let mut done = 0;
        let r = (|| -> Result<(), QueueError> {
            while done < bytes.len() {
                let Some(chain) = next_chain(&mut q, mem, "receive", &mut self.stats, &mut w)?
                else {
                    return Ok(());
                };
                if chain.bytes(true) == 0 {
                    refuse(
                        &mut q,
                        mem,
                        &chain,
                        ConsoleError::RxReadOnly,
                        &mut self.stats,
                        &mut w,
                    )?;
                    continue;
                }
                let n = scatter(mem, &chain, 0, &bytes[done..])?;
                q.push_used(mem, chain.head, n as u32)?;
                done += n;
                self.stats.bytes_in += n as u64;
                w.interrupt = true;
            }
            Ok(())
        })();
        self.finish(mem, &q, RX, "receive", r, &mut w);
        (done, w)
    }

    /// Ends a round on queue `n`: keeps the queue's progress, turns a
    /// broken queue into a reset request, raises the interrupt if used
    /// buffers went back and the guest wants one.
    fn finish(
        &mut self,
        mem: &GuestMem,
        q: &Queue,
        n: usize,
        queue: &'static str,
        r: Result<(), QueueError>,
        w: &mut Work,
    ) {
        self.transport.queues[n] = *q;
        let used = w.interrupt;
        w.interrupt = false;
        if let Err(error) = r {
            if !matches!(error, QueueError::NotReady) {
                w.error.get_or_insert(ConsoleError::Queue { queue, error });
                self.transport.needs_reset();
                w.interrupt = true;
            }
        }
        if used && q.wants_interrupt(mem) {
            self.transport.interrupt |= mmio::INT_USED;
            w.interrupt = true;
        }
    }

    /// Passes what the guest transmitted to `out`, a piece at a time,
    /// and gives its chains back.
    pub fn transmit(&mut self, mem: &GuestMem, mut out: impl FnMut(&[u8])) -> Work {
        let mut w = Work::default();
        if !self.transport.running() {
            return w;
        }
        let mut q = self.transport.queues[TX];
        let r = (|| -> Result<(), QueueError> {
            let mut piece = [0u8; PIECE];
            while let Some(chain) = next_chain(&mut q, mem, "transmit", &mut self.stats, &mut w)? {
                if chain.bytes(true) != 0 {
                    refuse(
                        &mut q,
                        mem,
                        &chain,
                        ConsoleError::TxWritable,
                        &mut self.stats,
                        &mut w,
                    )?;
                    continue;
                }
                let len = chain.bytes(false);
                if len > MAX_WRITE as u64 {
                    refuse(
                        &mut q,
                        mem,
                        &chain,
                        ConsoleError::TxLength { len },
                        &mut self.stats,
                        &mut w,
                    )?;
                    continue;
                }
                let mut done = 0;
                while done < len {
                    let n = gather(mem, &chain, done, &mut piece)?;
                    out(&piece[..n]);
                    done += n as u64;
                }
                self.stats.bytes_out += len;
                q.push_used(mem, chain.head, 0)?;
                w.interrupt = true;
            }
            Ok(())
        })();
        self.finish(mem, &q, TX, "transmit", r, &mut w);
        w
    }
}

impl Device for Console {
    type Work = Work;
    const CONFIG_READ_ONLY: &'static str = "the console has no configuration to write";

    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn config(&self, _space: &mut [u8; mmio::CONFIG_MAX]) {
        // No VIRTIO_CONSOLE_F_SIZE, F_MULTIPORT or F_EMERG_WRITE: no
        // field of the configuration space is valid.
    }

    fn bad_queue(error: QueueError) -> Work {
        Work {
            interrupt: true,
            error: Some(ConsoleError::Queue { queue: "a", error }),
            output: false,
        }
    }

    /// Says whether the guest made output available; the VMM takes it
    /// with [`Console::transmit`] (the device keeps no buffer of its
    /// own: the output goes where the VMM's console output goes).
    fn poll(&mut self, mem: &GuestMem) -> Work {
        Work {
            output: self.transport.running()
                && self.transport.queues[TX].has_avail(mem).unwrap_or(true),
            ..Work::default()
        }
    }
}

/// Counts a chain refused and reports why (the first error of a round).
fn note(stats: &mut Stats, w: &mut Work, e: ConsoleError) {
    stats.refused += 1;
    w.error.get_or_insert(e);
    w.interrupt = true;
}

/// Gives `chain` back used with nothing written, refused.
fn refuse(
    q: &mut Queue,
    mem: &GuestMem,
    chain: &Chain,
    e: ConsoleError,
    stats: &mut Stats,
    w: &mut Work,
) -> Result<(), QueueError> {
    note(stats, w, e);
    q.push_used(mem, chain.head, 0)
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
        note(stats, w, ConsoleError::Queue { queue, error })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::mmio::{reg, status};
    use crate::virtio::queue::flags;
    use crate::virtio::testing::{make_ready, GuestQueue, XorShift, BASE, BUFS, QUEUES, RAM, SIZE};
    use septa_queue::host::leak;
    use std::vec::Vec;

    struct Rig {
        mem: GuestMem,
        con: Console,
        q: [GuestQueue; 2],
    }

    fn w(r: &mut Rig, off: u64, v: u32) -> Work {
        let mem = r.mem;
        r.con.write(&mem, off, 4, v).unwrap().1
    }

    /// Linux's virtio_mmio probe and virtio_console's setup of port 0.
    fn rig() -> Rig {
        let mut r = Rig {
            mem: GuestMem::new(BASE, leak(RAM)),
            con: Console::new(),
            q: QUEUES,
        };
        assert_eq!(r.con.read(reg::DEVICE_ID, 4), Ok(DEVICE_ID));
        w(&mut r, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        assert_eq!(r.con.read(reg::DEVICE_FEATURES, 4), Ok(0));
        start(&mut r);
        assert_eq!(r.con.read(reg::STATUS, 4), Ok(0xf));
        // No configuration field is valid: all of it reads zero.
        assert_eq!(r.con.read(reg::CONFIG, 4), Ok(0));
        assert!(r.con.ready());
        r
    }

    /// VERSION_1 agreed, both queues set up and made ready, DRIVER_OK.
    fn start(r: &mut Rig) {
        w(r, reg::DRIVER_FEATURES_SEL, 1);
        w(r, reg::DRIVER_FEATURES, 1);
        w(r, reg::STATUS, 0xb);
        make_ready(&QUEUES, |off, v| {
            w(r, off, v);
        });
        w(r, reg::STATUS, 0xf);
    }

    fn desc(r: &Rig, q: usize, i: u16, addr: u64, len: u32, fl: u16, next: u16) {
        r.q[q].desc(&r.mem, i, addr, len, fl, next);
    }

    fn post(r: &mut Rig, q: usize, head: u16) {
        let mem = r.mem;
        r.q[q].post(&mem, head);
    }

    fn offer(r: &mut Rig, q: usize, head: u16) -> Work {
        post(r, q, head);
        w(r, reg::QUEUE_NOTIFY, q as u32)
    }

    fn used(r: &Rig, q: usize) -> Vec<(u32, u32)> {
        r.q[q].used(&r.mem)
    }

    /// What the VMM does when the transmit queue is notified: the
    /// output, and the work of the notification and of the transmission.
    fn send(r: &mut Rig, head: u16) -> (Vec<u8>, Work) {
        let notified = offer(r, TX, head);
        assert!(notified.output);
        let (v, w) = output(r);
        (v, Work { output: true, ..w })
    }

    fn output(r: &mut Rig) -> (Vec<u8>, Work) {
        let mut v = Vec::new();
        let mem = r.mem;
        let w = r.con.transmit(&mem, |b| v.extend_from_slice(b));
        (v, w)
    }

    #[test]
    fn output_leaves_its_chains_and_input_fills_receive_buffers() {
        let mut r = rig();
        r.mem.write(BUFS, b"hello, ").unwrap();
        r.mem.write(BUFS + 0x100, b"world\n").unwrap();
        desc(&r, TX, 0, BUFS, 7, flags::NEXT, 1);
        desc(&r, TX, 1, BUFS + 0x100, 6, 0, 0);
        let (out, work) = send(&mut r, 0);
        assert_eq!(work.error, None);
        assert!(work.interrupt);
        assert_eq!(out, b"hello, world\n");
        assert_eq!(used(&r, TX), [(0, 0)]);
        // Two receive buffers of 8 bytes; 12 bytes typed fill the first
        // and half the second.
        for i in 0..2u16 {
            desc(
                &r,
                RX,
                i,
                BUFS + 0x1000 * u64::from(i + 1),
                8,
                flags::WRITE,
                0,
            );
            post(&mut r, RX, i);
        }
        let mem = r.mem;
        let (n, work) = r.con.receive(&mem, b"uname -r\rls\r");
        assert_eq!((n, work.interrupt, work.error), (12, true, None));
        assert_eq!(used(&r, RX), [(0, 8), (1, 4)]);
        let mut got = [0u8; 8];
        r.mem.read(BUFS + 0x1000, &mut got).unwrap();
        assert_eq!(&got, b"uname -r");
        // No buffer left: typed bytes wait (the VMM keeps them).
        assert_eq!(r.con.receive(&mem, b"x").0, 0);
        assert_eq!((r.con.stats.bytes_in, r.con.stats.bytes_out), (12, 13));
    }

    #[test]
    fn a_page_of_output_goes_out_in_pieces() {
        let mut r = rig();
        let page: Vec<u8> = (0..MAX_WRITE).map(|i| (i * 13 + 1) as u8).collect();
        r.mem.write(BUFS, &page).unwrap();
        desc(&r, TX, 0, BUFS, MAX_WRITE as u32, 0, 0);
        let (out, work) = send(&mut r, 0);
        assert_eq!((out, work.error), (page, None));
        assert_eq!(used(&r, TX), [(0, 0)]);
    }

    #[test]
    fn hostile_chains_are_refused_and_the_console_goes_on() {
        let mut r = rig();
        // A transmit chain the device would write.
        desc(&r, TX, 0, BUFS, 4, flags::WRITE, 0);
        assert_eq!(send(&mut r, 0).1.error, Some(ConsoleError::TxWritable));
        // One longer than the console takes at once.
        desc(&r, TX, 1, BUFS, 4000, flags::NEXT, 2);
        desc(&r, TX, 2, BUFS, 4000, 0, 0);
        assert_eq!(
            send(&mut r, 1).1.error,
            Some(ConsoleError::TxLength { len: 8000 })
        );
        // A buffer outside guest RAM, and a loop.
        desc(&r, TX, 3, BASE + RAM as u64 - 2, 4, 0, 0);
        assert!(matches!(
            send(&mut r, 3).1.error,
            Some(ConsoleError::Queue {
                queue: "transmit",
                error: QueueError::Buffer(_)
            })
        ));
        desc(&r, TX, 4, BUFS, 4, flags::NEXT, 4);
        assert!(matches!(
            send(&mut r, 4).1.error,
            Some(ConsoleError::Queue {
                error: QueueError::TooLong,
                ..
            })
        ));
        assert!(output(&mut r).0.is_empty());
        // A receive chain with nothing to write into.
        desc(&r, RX, 0, BUFS, 8, 0, 0);
        post(&mut r, RX, 0);
        let mem = r.mem;
        let (n, work) = r.con.receive(&mem, b"ab");
        assert_eq!((n, work.error), (0, Some(ConsoleError::RxReadOnly)));
        // Each came back used with nothing done; the console goes on.
        assert_eq!(used(&r, TX).iter().map(|u| u.1).sum::<u32>(), 0);
        assert_eq!(used(&r, TX).len(), 4);
        assert_eq!(r.con.stats.refused, 5);
        r.mem.write(BUFS, b"ok\n").unwrap();
        desc(&r, TX, 5, BUFS, 3, 0, 0);
        assert_eq!(
            send(&mut r, 5),
            (
                b"ok\n".to_vec(),
                Work {
                    interrupt: true,
                    output: true,
                    error: None
                }
            )
        );
    }

    #[test]
    fn a_broken_queue_makes_the_console_ask_for_a_reset() {
        let mut r = rig();
        let mem = r.mem;
        r.q[TX].jump(&mem, SIZE + 1);
        w(&mut r, reg::QUEUE_NOTIFY, TX as u32);
        let (_, work) = output(&mut r);
        assert!(work.interrupt);
        assert!(matches!(
            work.error,
            Some(ConsoleError::Queue {
                error: QueueError::AvailIndex { .. },
                ..
            })
        ));
        assert_ne!(r.con.read(reg::STATUS, 4).unwrap() & status::NEEDS_RESET, 0);
        assert!(!r.con.ready());
        let mem = r.mem;
        assert_eq!(r.con.receive(&mem, b"lost").0, 0);
        w(&mut r, reg::STATUS, 0);
        assert_eq!(r.con.read(reg::STATUS, 4), Ok(0));
    }

    #[test]
    fn random_rings_never_reach_outside_ram() {
        let mut r = rig();
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..2000 {
            let mem = r.mem;
            for q in &r.q {
                q.garble(&mem, &mut rng, BUFS, 5000);
            }
            let q = (rng.draw() % 2) as usize;
            r.q[q].jump(&mem, (rng.draw() % 20) as u16);
            let _ = w(&mut r, reg::QUEUE_NOTIFY, q as u32);
            let _ = r.con.receive(&mem, b"typed input");
            assert!(output(&mut r).0.len() <= MAX_WRITE * usize::from(SIZE));
            if !r.con.transport.running() {
                // Start again, as a guest would after NEEDS_RESET.
                let _ = w(&mut r, reg::STATUS, 0);
                for q in &mut r.q {
                    q.restart(&mem);
                }
                start(&mut r);
            }
        }
    }
}
