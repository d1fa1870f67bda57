//! A peer that writes garbage into a queue can make its own traffic fail,
//! but never make the reader touch memory outside the region, loop for
//! ever, or fault.
//!
//! Property tests run random operations of the honest side interleaved
//! with random writes of 1, 2, 4 or 8 bytes anywhere in the queue window
//! (indices, flag, entries). Each queue window sits between guard bands of
//! canary bytes that must survive; every access the crate makes is checked
//! against its window by debug assertions (this test builds with them), so
//! a read outside would panic; and every call returns (a loop that did not
//! would hang the test). Then a concurrent scribbler attacks one client's
//! queues while a virtualiser serves it and an honest client: the honest
//! client's traffic arrives whole and in order, and the scribbler is
//! reported.
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use septa_queue::blk::{self, Request, RequestCode, RequestRing, Response, ResponseRing, Status};
use septa_queue::net::{BuffDesc, Buffers, Loans, NetRing, Sink, Source, BUFFER_SIZE};
use septa_queue::{host::leak, serial, Consumer, PeerFault, Producer, Ring, Shared};

const GUARD: usize = 64;
const CANARY: u8 = 0xa5;

/// A `len`-byte window between two guard bands of canary bytes.
struct Guarded {
    whole: Shared,
    len: usize,
}

impl Guarded {
    fn new(len: usize) -> Self {
        let whole = leak(GUARD + len + GUARD);
        whole.write(0, &vec![CANARY; whole.len()]).unwrap();
        let g = Guarded { whole, len };
        g.window().write(0, &vec![0; len]).unwrap();
        g
    }

    fn window(&self) -> Shared {
        self.whole.window(GUARD, self.len).unwrap()
    }

    fn assert_intact(&self) {
        let mut bytes = vec![0; self.whole.len()];
        self.whole.read(0, &mut bytes).unwrap();
        let outside = bytes[..GUARD]
            .iter()
            .chain(&bytes[GUARD + self.len..])
            .all(|b| *b == CANARY);
        assert!(outside, "a write landed outside the queue window");
    }
}

/// A write by the hostile peer: `width` bytes of `value` at `at` (aligned
/// down, clipped into the window).
#[derive(Clone, Debug)]
struct Scribble {
    at: usize,
    width: usize,
    value: u64,
}

impl Scribble {
    fn apply(&self, window: &Shared) {
        let width = self.width.min(window.len());
        let at = (self.at % (window.len() - width + 1)) & !(width - 1);
        window
            .write(at, &self.value.to_le_bytes()[..width])
            .unwrap();
    }
}

fn scribble() -> impl Strategy<Value = Scribble> {
    (
        any::<usize>(),
        prop_oneof![Just(1), Just(2), Just(4), Just(8)],
        // Small values often (near-valid indices), anything sometimes.
        prop_oneof![0u64..70_000, any::<u64>()],
    )
        .prop_map(|(at, width, value)| Scribble { at, width, value })
}

#[derive(Clone, Debug)]
enum ConsumerOp {
    Scribble(Scribble),
    Take,
    Commit,
    Dequeue,
    Len,
    Drain(u32),
    TryIdle,
}

fn consumer_op() -> impl Strategy<Value = ConsumerOp> {
    prop_oneof![
        3 => scribble().prop_map(ConsumerOp::Scribble),
        2 => Just(ConsumerOp::Take),
        1 => Just(ConsumerOp::Commit),
        2 => Just(ConsumerOp::Dequeue),
        1 => Just(ConsumerOp::Len),
        1 => any::<u32>().prop_map(ConsumerOp::Drain),
        1 => Just(ConsumerOp::TryIdle),
    ]
}

#[derive(Clone, Debug)]
enum ProducerOp {
    Scribble(Scribble),
    Stage(u64),
    Commit,
    Enqueue(u64),
    Batch(u8),
    Space,
    Notify,
}

fn producer_op() -> impl Strategy<Value = ProducerOp> {
    prop_oneof![
        3 => scribble().prop_map(ProducerOp::Scribble),
        2 => any::<u64>().prop_map(ProducerOp::Stage),
        1 => Just(ProducerOp::Commit),
        2 => any::<u64>().prop_map(ProducerOp::Enqueue),
        1 => any::<u8>().prop_map(ProducerOp::Batch),
        1 => Just(ProducerOp::Space),
        1 => Just(ProducerOp::Notify),
    ]
}

/// Runs an honest consumer of ring `R` against random garbage; `use_entry`
/// validates and uses each entry as a PD would.
fn hostile_producer<R: Ring>(
    capacity: u32,
    initial: &[Scribble],
    ops: &[ConsumerOp],
    mut use_entry: impl FnMut(R::Entry),
    mut try_idle: impl FnMut(&mut Consumer<R>) -> Result<(), PeerFault>,
) {
    let g = Guarded::new(R::bytes(capacity));
    let q = g.window();
    for s in initial {
        s.apply(&q);
    }
    // Garbage already there does not stop the attach; it is the first
    // fault, if it is one.
    let mut c = Consumer::<R>::attach(q, capacity).unwrap();
    let mut faults = c.faults().count();
    let mut count = |r: Result<(), PeerFault>| faults += r.is_err() as u32;
    for op in ops {
        match op {
            ConsumerOp::Scribble(s) => s.apply(&q),
            ConsumerOp::Take => count(c.take().map(|e| e.map_or((), &mut use_entry))),
            ConsumerOp::Commit => c.commit(),
            ConsumerOp::Dequeue => count(c.dequeue().map(|e| e.map_or((), &mut use_entry))),
            ConsumerOp::Len => count(c.len().map(|n| assert!(n <= capacity))),
            ConsumerOp::Drain(max) => {
                let mut seen = 0;
                let r = c.drain(*max, |e| {
                    seen += 1;
                    use_entry(e)
                });
                assert!(seen <= capacity.min(*max), "drain is bounded");
                count(r.map(|n| assert_eq!(n, seen)));
            }
            ConsumerOp::TryIdle => count(try_idle(&mut c)),
        }
        assert!(c.taken() <= capacity);
    }
    assert_eq!(
        c.faults().count(),
        faults,
        "every fault returned is counted"
    );
    g.assert_intact();
}

/// Runs an honest producer of ring `R` against random garbage.
fn hostile_consumer<R: Ring>(
    capacity: u32,
    initial: &[Scribble],
    ops: &[ProducerOp],
    make: impl Fn(u64) -> R::Entry,
    mut notify: impl FnMut(&mut Producer<R>),
) {
    let g = Guarded::new(R::bytes(capacity));
    let q = g.window();
    for s in initial {
        s.apply(&q);
    }
    let mut p = Producer::<R>::attach(q, capacity).unwrap();
    for op in ops {
        match op {
            ProducerOp::Scribble(s) => s.apply(&q),
            ProducerOp::Stage(v) => {
                let _ = p.stage(make(*v));
            }
            ProducerOp::Commit => p.commit(),
            ProducerOp::Enqueue(v) => {
                let _ = p.enqueue(make(*v));
            }
            ProducerOp::Batch(n) => {
                let r = p.enqueue_batch((0..*n as u64).map(&make));
                if let Ok(k) = r {
                    assert!(k <= capacity && k <= *n as u32);
                }
            }
            ProducerOp::Space => {
                if let Ok(n) = p.space() {
                    assert!(n <= capacity);
                }
            }
            ProducerOp::Notify => notify(&mut p),
        }
        assert!(p.staged() <= capacity);
    }
    g.assert_intact();
}

fn net_desc(v: u64) -> BuffDesc {
    BuffDesc {
        io_or_offset: (v % 8) * BUFFER_SIZE as u64,
        len: v as u16,
        oid: 0,
    }
}

fn blk_request(v: u64) -> Request {
    Request {
        code: RequestCode::from(v as u32 % 5),
        io_or_offset: v,
        block_number: v,
        count: v as u16,
        id: v as u32,
    }
}

proptest! {
    // No failure files: a failing case prints its minimal input.
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_net_consumer_survives_a_hostile_producer(
        cap_log in 0u32..6,
        initial in prop::collection::vec(scribble(), 0..8),
        ops in prop::collection::vec(consumer_op(), 1..120),
    ) {
        let data = Guarded::new(8 * BUFFER_SIZE as usize);
        let buffers = Buffers::new(0, 8 * BUFFER_SIZE as usize);
        hostile_producer::<NetRing>(
            1 << cap_log,
            &initial,
            &ops,
            |d| {
                // Validate, then touch only what validation allowed.
                if let Ok(i) = buffers.check(&d) {
                    assert!(i < 8);
                    let mut pkt = vec![0; d.len as usize];
                    data.window().read(buffers.offset(i), &mut pkt).unwrap();
                }
            },
            |c| c.try_idle().map(drop),
        );
        data.assert_intact();
    }

    #[test]
    fn a_net_producer_survives_a_hostile_consumer(
        cap_log in 0u32..6,
        initial in prop::collection::vec(scribble(), 0..8),
        ops in prop::collection::vec(producer_op(), 1..120),
    ) {
        hostile_consumer::<NetRing>(1 << cap_log, &initial, &ops, net_desc, |p| {
            let _ = p.take_signal_request();
        });
    }

    #[test]
    fn a_block_server_survives_a_hostile_client(
        cap_log in 0u32..6,
        initial in prop::collection::vec(scribble(), 0..8),
        ops in prop::collection::vec(consumer_op(), 1..120),
    ) {
        hostile_producer::<RequestRing>(
            1 << cap_log,
            &initial,
            &ops,
            |r| {
                // Unknown codes arrive as values; buffers are checked.
                if r.check(0, 1 << 20).is_ok() && matches!(r.code, RequestCode::Read | RequestCode::Write) {
                    assert!(r.io_or_offset + r.count as u64 * blk::TRANSFER_SIZE as u64 <= 1 << 20);
                }
            },
            |_| Ok(()),
        );
    }

    #[test]
    fn a_block_client_survives_a_hostile_server(
        cap_log in 0u32..6,
        initial in prop::collection::vec(scribble(), 0..8),
        ops in prop::collection::vec(consumer_op(), 1..120),
        requests in prop::collection::vec(producer_op(), 1..60),
    ) {
        hostile_producer::<ResponseRing>(1 << cap_log, &initial, &ops, |r: Response| {
            let _ = matches!(r.status, Status::Other(_));
        }, |_| Ok(()));
        hostile_consumer::<RequestRing>(1 << cap_log, &initial, &requests, blk_request, |_| {});
    }

    #[test]
    fn serial_queues_survive_a_hostile_peer(
        cap_log in 0u32..8,
        initial in prop::collection::vec(scribble(), 0..8),
        steps in prop::collection::vec((scribble(), 0u8..6, 0usize..600), 1..120),
    ) {
        let cap = 1u32 << cap_log;
        let (qc, dc) = (Guarded::new(serial::layout::SIZE), Guarded::new(cap as usize));
        let (qp, dp) = (Guarded::new(serial::layout::SIZE), Guarded::new(cap as usize));
        for s in &initial {
            s.apply(&qc.window());
            s.apply(&qp.window());
        }
        let mut c = serial::Consumer::attach(qc.window(), dc.window(), cap).unwrap();
        let mut p = serial::Producer::attach(qp.window(), dp.window(), cap).unwrap();
        {
            let mut buf = vec![0u8; 600];
            for (s, op, n) in &steps {
                s.apply(&qc.window());
                s.apply(&qp.window());
                match op {
                    0 => if let Ok(k) = c.read(&mut buf[..*n]) {
                        assert!(k <= *n && k as u32 <= cap);
                    },
                    1 => { let _ = c.dequeue(); }
                    2 => if let Ok(k) = c.transfer(&mut p, *n as u32) {
                        assert!(k <= cap);
                    },
                    3 => if let Ok(k) = p.write(&buf[..*n]) {
                        assert!(k as u32 <= cap);
                    },
                    4 => { let _ = p.write_all(&buf[..*n % 64]); }
                    _ => { let _ = p.try_idle(*n as u32); let _ = c.take_signal_request(); }
                }
            }
        }
        for g in [qc, dc, qp, dp] {
            g.assert_intact();
        }
    }
}

/// A virtualiser serves two clients' Tx queues: one honest, one whose
/// thread scribbles over its queues (indices, flag, descriptors) the whole
/// time. The honest client's 100,000 buffers all arrive, in order; the
/// virtualiser never panics, stays inside the regions, and reports the
/// scribbler.
#[test]
fn a_scribbling_client_hurts_only_itself() {
    const CAP: u32 = 16;
    const ITEMS: u64 = 100_000;
    let honest = (leak(NetRing::bytes(CAP)), leak(NetRing::bytes(CAP)));
    let hostile = (
        Guarded::new(NetRing::bytes(CAP)),
        Guarded::new(NetRing::bytes(CAP)),
    );
    let data = [
        leak(CAP as usize * BUFFER_SIZE as usize),
        leak(CAP as usize * BUFFER_SIZE as usize),
    ];
    let buffers = Buffers::new(0, data[0].len());
    let done = AtomicBool::new(false);
    // A thread that panics stops the others (so the test fails rather
    // than hangs); the virtualiser stops them when it is done.
    struct Stop<'a>(&'a AtomicBool, bool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            if self.1 || thread::panicking() {
                self.0.store(true, SeqCst);
            }
        }
    }

    thread::scope(|s| {
        // The honest client: sequence numbers in its buffers.
        s.spawn(|| {
            let _stop = Stop(&done, false);
            let mut src = Source::attach(honest.0, honest.1, CAP).unwrap();
            let mut seq = 0;
            while seq < ITEMS && !done.load(SeqCst) {
                if let Some(d) = src.free.dequeue().unwrap() {
                    let i = buffers.check(&d).unwrap();
                    data[0]
                        .write(buffers.offset(i), &seq.to_le_bytes())
                        .unwrap();
                    src.active.enqueue(d).unwrap();
                    seq += 1;
                } else {
                    thread::yield_now();
                }
            }
        });
        // The scribbler: random words anywhere in its two queue windows.
        s.spawn(|| {
            let _stop = Stop(&done, false);
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let windows = [hostile.0.window(), hostile.1.window()];
            while !done.load(SeqCst) {
                for _ in 0..64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let w = &windows[(x & 1) as usize];
                    let at = (x >> 8) as usize % (w.len() / 4) * 4;
                    let value = if x & 2 == 0 {
                        (x >> 40) as u32 & 0x3f
                    } else {
                        (x >> 32) as u32
                    };
                    w.write(at, &value.to_le_bytes()).unwrap();
                }
                thread::yield_now();
            }
        });
        // The virtualiser.
        s.spawn(|| {
            let _stop = Stop(&done, true);
            let mut sinks = [
                Sink::attach(honest.0, honest.1, CAP).unwrap(),
                // Attaching works even if the scribbler got there first.
                Sink::attach(hostile.0.window(), hostile.1.window(), CAP).unwrap(),
            ];
            let mut loans = [Loans::<1>::default(), Loans::<1>::default()];
            for (sink, lent) in sinks.iter_mut().zip(&mut loans) {
                for i in 0..CAP {
                    lent.lend(i);
                }
                // The scribbler may already have broken its free queue.
                let _ = buffers.fill(&mut sink.free);
            }
            let mut expect = 0;
            let mut reported = 0;
            let start = Instant::now();
            while expect < ITEMS {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "virtualiser stuck"
                );
                assert!(
                    !done.load(SeqCst) || expect == ITEMS,
                    "a client thread died"
                );
                for (k, sink) in sinks.iter_mut().enumerate() {
                    let mut returned = vec![];
                    let r = sink.active.drain(CAP, |d| returned.push(d));
                    for d in returned {
                        // Validate, check ownership, then use.
                        let i = match buffers.check(&d) {
                            Ok(i) => i,
                            Err(f) => {
                                sink.active.report(f);
                                continue;
                            }
                        };
                        if let Err(f) = loans[k].reclaim(i) {
                            sink.active.report(f);
                            continue;
                        }
                        let mut word = [0u8; 8];
                        data[k].read(buffers.offset(i), &mut word).unwrap();
                        if k == 0 {
                            assert_eq!(u64::from_le_bytes(word), expect, "honest traffic hurt");
                            expect += 1;
                        }
                        loans[k].lend(i);
                        let _ = sink.free.enqueue(d);
                    }
                    if r.is_err() && k == 0 {
                        panic!("the honest client's queue faulted: {r:?}");
                    }
                }
                let faults = sinks[1].active.faults().count() + sinks[1].free.faults().count();
                if faults > reported {
                    reported = faults;
                }
                thread::yield_now();
            }
            assert!(reported > 0, "the scribbler went unreported");
            assert_eq!(
                sinks[0].active.faults().count() + sinks[0].free.faults().count(),
                0
            );
            eprintln!("virtualiser: {ITEMS} honest buffers; {reported} faults by the scribbler");
        });
    });
    hostile.0.assert_intact();
    hostile.1.assert_intact();
}
