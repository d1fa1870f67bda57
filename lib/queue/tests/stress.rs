//! Two threads, one on each side of a queue, run the real handles and the
//! signalling protocol as two PDs would, with a simulated seL4
//! notification between them, for millions of entries: nothing lost,
//! reordered or duplicated, and no missed wake-up.
//!
//! A missed wake-up shows as both sides blocked with no notification
//! pending before the work is done: a state nothing can leave. The
//! notification watches for it and fails the test at once (rather than
//! hanging), naming what each side was waiting for.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use septa_queue::net::{BuffDesc, Buffers, Loans, NetRing, Sink, Source, BUFFER_SIZE};
use septa_queue::{host::leak, serial, Idle, Ring};

/// A notification object: a word a signal sets and a wait takes, as
/// seL4's; plus what a watchdog needs to see a deadlock.
struct Notification {
    name: &'static str,
    word: Mutex<bool>,
    cv: Condvar,
    /// The owner has decided to block (set before it waits).
    blocked: AtomicBool,
    /// The owner has finished and will never signal again.
    finished: AtomicBool,
    signals: AtomicU64,
    /// Wake-ups (each paid for by one signal).
    wakeups: AtomicU64,
}

impl Notification {
    fn new(name: &'static str) -> Self {
        Notification {
            name,
            word: Mutex::new(false),
            cv: Condvar::new(),
            blocked: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            signals: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
        }
    }

    fn signal(&self) {
        self.signals.fetch_add(1, SeqCst);
        *self.word.lock().unwrap() = true;
        self.cv.notify_one();
    }

    fn finish(&self) {
        self.finished.store(true, SeqCst);
    }

    /// Will never run again unless signalled: blocked with its word clear,
    /// or finished.
    fn stuck(&self) -> bool {
        self.finished.load(SeqCst) || (self.blocked.load(SeqCst) && !self.pending())
    }

    fn pending(&self) -> bool {
        *self.word.lock().unwrap()
    }

    /// Blocks until signalled. Fails the test if, for four looks in a
    /// row 50 ms apart, this side's word is clear and the peer is stuck
    /// (blocked with its word clear, or finished): a lost wake-up, since
    /// only the two of them can wake each other and both are asleep. Also
    /// fails after a minute, whatever the reason. No look holds one lock
    /// while taking the other.
    fn wait(&self, peer: &Notification) {
        self.blocked.store(true, SeqCst);
        let start = Instant::now();
        let mut stuck_looks = 0;
        loop {
            {
                let word = self.word.lock().unwrap();
                let (mut word, _) = self
                    .cv
                    .wait_timeout_while(word, Duration::from_millis(50), |w| !*w)
                    .unwrap();
                if *word {
                    *word = false;
                    self.blocked.store(false, SeqCst);
                    self.wakeups.fetch_add(1, SeqCst);
                    return;
                }
            }
            if peer.stuck() && !self.pending() {
                stuck_looks += 1;
            } else {
                stuck_looks = 0;
            }
            assert!(
                stuck_looks < 4,
                "lost wake-up: {} and {} both blocked, no signal pending",
                self.name,
                peer.name
            );
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{} blocked for a minute",
                self.name
            );
        }
    }
}

/// xorshift64: burst sizes, the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    /// Spins for a random moment: placed where the protocol's races are
    /// (between a side's last look and its request, between a publish and
    /// the notification phase), it makes the other thread's steps land
    /// there often, where scheduling alone rarely puts them.
    fn jitter(&mut self) {
        for _ in 0..self.below(200) {
            std::hint::spin_loop();
        }
    }
}

/// Entries sent through the net queues. Sized for a few seconds in a debug
/// build on a loaded two-core machine.
const NET_ITEMS: u64 = 2_000_000;
const NET_CAPACITY: u32 = 32;

#[test]
fn net_queues_carry_millions_of_buffers_without_loss_or_lost_wake_up() {
    let (free, active) = (
        leak(NetRing::bytes(NET_CAPACITY)),
        leak(NetRing::bytes(NET_CAPACITY)),
    );
    let data = leak(NET_CAPACITY as usize * BUFFER_SIZE as usize);
    let buffers = Buffers::new(0, data.len());
    let to_source = Notification::new("source");
    let to_sink = Notification::new("sink");
    let sink_requests = AtomicU64::new(1); // the zeroed flag asks once
    let source_requests = AtomicU64::new(1);
    // Re-checks that found work: the race the protocol exists for.
    let reprocessed = AtomicU64::new(0);

    thread::scope(|s| {
        // The source (a transmitting client): takes free buffers, writes
        // the sequence number into each, passes it on. It works in bursts
        // of 1..=16 buffers, each ending in a notification phase, and
        // keeps going while it has buffers (as a PD woken by other events
        // would), so both sides run at once and their requests, re-checks
        // and notification phases race.
        s.spawn(|| {
            let mut src = Source::attach(free, active, NET_CAPACITY).unwrap();
            let mut rng = Rng(1);
            let mut seq = 0u64;
            while seq < NET_ITEMS {
                let burst = rng.below(16) + 1;
                let mut n = 0;
                while n < burst && seq < NET_ITEMS {
                    let Some(d) = src.free.take().unwrap() else {
                        break;
                    };
                    let i = buffers.check(&d).expect("sink handed out a bad buffer");
                    data.write(buffers.offset(i), &seq.to_le_bytes()).unwrap();
                    let d = BuffDesc {
                        len: (seq % BUFFER_SIZE as u64) as u16,
                        ..d
                    };
                    src.active.stage(d).expect("active queue overflow");
                    seq += 1;
                    n += 1;
                }
                src.free.commit();
                src.active.commit();
                rng.jitter();
                if n > 0 && src.active.take_signal_request() {
                    to_sink.signal();
                }
                if seq == NET_ITEMS || n == burst {
                    continue;
                }
                // Out of buffers: ask, look again, block.
                source_requests.fetch_add(1, SeqCst);
                rng.jitter();
                match src.free.try_idle().unwrap() {
                    Idle::Block => to_source.wait(&to_sink),
                    Idle::Reprocess => {
                        reprocessed.fetch_add(1, SeqCst);
                    }
                }
            }
            to_source.finish();
        });

        // The sink (a receiving virtualiser): checks each buffer, gives it
        // back, in bursts likewise.
        s.spawn(|| {
            let mut sink = Sink::attach(free, active, NET_CAPACITY).unwrap();
            let mut rng = Rng(2);
            let mut loans = Loans::<1>::default();
            for i in 0..buffers.count() {
                assert!(loans.lend(i));
            }
            assert_eq!(buffers.fill(&mut sink.free).unwrap(), NET_CAPACITY);
            // Filling publishes work, so it has a notification phase too
            // (leaving it out deadlocks this test at once: the source may
            // already be waiting for buffers).
            if sink.free.take_signal_request() {
                to_source.signal();
            }
            let mut expect = 0u64;
            while expect < NET_ITEMS {
                let burst = rng.below(16) + 1;
                let mut n = 0;
                while n < burst {
                    let Some(d) = sink.active.take().unwrap() else {
                        break;
                    };
                    let i = buffers.check(&d).expect("source sent a bad buffer");
                    loans.reclaim(i).expect("a buffer came back twice");
                    let mut word = [0u8; 8];
                    data.read(buffers.offset(i), &mut word).unwrap();
                    let seq = u64::from_le_bytes(word);
                    assert_eq!(seq, expect, "entry lost, reordered or duplicated");
                    assert_eq!(d.len as u64, seq % BUFFER_SIZE as u64);
                    expect += 1;
                    assert!(loans.lend(i));
                    sink.free.stage(d).expect("free queue overflow");
                    n += 1;
                }
                sink.active.commit();
                sink.free.commit();
                rng.jitter();
                if n > 0 && sink.free.take_signal_request() {
                    to_source.signal();
                }
                if expect == NET_ITEMS || n == burst {
                    continue;
                }
                sink_requests.fetch_add(1, SeqCst);
                rng.jitter();
                match sink.active.try_idle().unwrap() {
                    Idle::Block => to_sink.wait(&to_source),
                    Idle::Reprocess => {
                        reprocessed.fetch_add(1, SeqCst);
                    }
                }
            }
            to_sink.finish();
            assert_eq!(loans.count(), NET_CAPACITY, "every buffer accounted for");
        });
    });

    // Never signalled needlessly: every signal answers a request.
    for (n, requests) in [(&to_sink, &sink_requests), (&to_source, &source_requests)] {
        let signals = n.signals.load(SeqCst);
        assert!(
            signals <= requests.load(SeqCst),
            "{} signalled {signals} times for {} requests",
            n.name,
            requests.load(SeqCst)
        );
    }
    eprintln!(
        "net: {NET_ITEMS} buffers, {} signals to the sink, {} to the source, {} re-checks found work",
        to_sink.signals.load(SeqCst),
        to_source.signals.load(SeqCst),
        reprocessed.load(SeqCst)
    );
}

/// Bytes sent through the serial queue.
const SERIAL_BYTES: u64 = 8_000_000;
const SERIAL_CAPACITY: u32 = 256;

/// The byte at position `i` of the test stream: a hash, so that a lost,
/// repeated or swapped byte shows.
fn stream(i: u64) -> u8 {
    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8
}

#[test]
fn a_serial_queue_carries_millions_of_bytes_in_order_and_whole_lines() {
    let (queue, data) = (leak(serial::layout::SIZE), leak(SERIAL_CAPACITY as usize));
    let to_producer = Notification::new("serial producer");
    let to_consumer = Notification::new("serial consumer");
    let producer_requests = AtomicU64::new(1);
    let reprocessed = AtomicU64::new(0);

    thread::scope(|s| {
        // The producer (a client printing lines): writes whole chunks of
        // 1..=61 bytes or nothing, a burst of 1..=4 chunks per event, each
        // burst ending in a signal to the consumer (sDDF's serial rule:
        // always); when a chunk does not fit it asks for a signal, looks
        // again and blocks.
        s.spawn(|| {
            let mut p = serial::Producer::attach(queue, data, SERIAL_CAPACITY).unwrap();
            let mut rng = Rng(3);
            let mut sent = 0u64;
            let mut chunk = [0u8; 61];
            while sent < SERIAL_BYTES {
                let burst = rng.below(4) + 1;
                let mut full = None;
                let mut n = 0;
                while n < burst && sent < SERIAL_BYTES {
                    let len = (rng.below(61) + 1).min(SERIAL_BYTES - sent) as usize;
                    for (k, b) in chunk[..len].iter_mut().enumerate() {
                        *b = stream(sent + k as u64);
                    }
                    match p.write_all(&chunk[..len]) {
                        Ok(()) => {
                            sent += len as u64;
                            n += 1;
                        }
                        Err(septa_queue::QueueError::Full) => {
                            full = Some(len as u32);
                            break;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                if n > 0 {
                    to_consumer.signal();
                }
                let Some(want) = full else { continue };
                producer_requests.fetch_add(1, SeqCst);
                rng.jitter();
                match p.try_idle(want).unwrap() {
                    Idle::Block => to_producer.wait(&to_consumer),
                    Idle::Reprocess => {
                        reprocessed.fetch_add(1, SeqCst);
                    }
                }
            }
            to_producer.finish();
        });

        // The consumer (the transmit virtualiser): reads 1..=97 bytes per
        // event, signals the producer only if asked, blocks when empty.
        s.spawn(|| {
            let mut c = serial::Consumer::attach(queue, data, SERIAL_CAPACITY).unwrap();
            let mut rng = Rng(4);
            let mut got = 0u64;
            let mut buf = [0u8; 97];
            while got < SERIAL_BYTES {
                let want = rng.below(97) as usize + 1;
                let n = c.read(&mut buf[..want]).unwrap();
                for (k, b) in buf[..n].iter().enumerate() {
                    assert_eq!(*b, stream(got + k as u64), "byte {} wrong", got + k as u64);
                }
                got += n as u64;
                rng.jitter();
                if n > 0 && c.take_signal_request() {
                    to_producer.signal();
                }
                if n == 0 {
                    to_consumer.wait(&to_producer);
                }
            }
            to_consumer.finish();
        });
    });

    let signals = to_producer.signals.load(SeqCst);
    assert!(signals <= producer_requests.load(SeqCst));
    eprintln!(
        "serial: {SERIAL_BYTES} bytes, {signals} signals to the producer for {} requests, {} re-checks found space",
        producer_requests.load(SeqCst),
        reprocessed.load(SeqCst)
    );
}
