//! # test-queue: septa-queue between protection domains, one of them hostile
//!
//! One program, three PDs told apart by name (tests/systems/queue):
//! - `sink` (highest priority) lends 16 buffers to each of two clients over
//!   a net free/active ring pair, as a virtualiser does: it takes filled
//!   buffers from each client's active ring, checks each descriptor names
//!   one of that client's buffers and that the buffer was lent, and gives it
//!   back on the free ring. It checks the honest client's numbers arrive in
//!   order, and reports the protocol faults of the other;
//! - `source` sends [`ITEMS`] numbered buffers, waiting for free ones with
//!   the signalling protocol (ask, look again, block);
//! - `scribbler` (lowest priority) writes random values over its own rings,
//!   then signals the sink, [`ROUNDS`] times.
//!
//! Result lines: `[septa-test] ok queue` once the sink has every honest
//! buffer and the scribbler has finished and been reported.
#![cfg_attr(target_os = "none", no_std, no_main)]
// One `unsafe`: trusting the system description that a region is mapped
// (`region`).
#![deny(unsafe_code)]

use septa_queue::net::{BuffDesc, Buffers, Loans, NetRing, Sink, Source, BUFFER_SIZE};
use septa_queue::{Idle, Ring, Shared};
use septa_runtime::{println, protection_domain, setvar, Channel, ChannelSet, Handler, Setvar};
use septa_test_report as report;

setvar! {
    static HONEST_RINGS = "honest_rings";
    static HONEST_RINGS_SIZE = "honest_rings_size";
    static HONEST_DATA = "honest_data";
    static HONEST_DATA_SIZE = "honest_data_size";
    static HOSTILE_RINGS = "hostile_rings";
    static HOSTILE_RINGS_SIZE = "hostile_rings_size";
    static HOSTILE_DATA = "hostile_data";
    static HOSTILE_DATA_SIZE = "hostile_data_size";
}

/// Buffers (and ring entries) per client.
const CAPACITY: u32 = 16;
/// Where the active ring starts in a client's ring region (free at 0).
const ACTIVE_AT: usize = 2048;
/// Buffers the honest source sends.
const ITEMS: u64 = 20_000;
/// Bursts of scribbling.
const ROUNDS: u32 = 300;

/// The sink's channels: one per client, and the scribbler's "finished".
const TO_SOURCE: Channel = Channel::new(0);
const TO_SCRIBBLER: Channel = Channel::new(1);
const SCRIBBLER_DONE: Channel = Channel::new(2);
/// The clients' channel to the sink, and the scribbler's second one.
const TO_SINK: Channel = Channel::new(0);
const DONE: Channel = Channel::new(1);

fn region(vaddr: &Setvar, size: &Setvar) -> Shared {
    #[allow(unsafe_code)]
    // SAFETY: the system description maps this region read-write at the
    // patched address with the patched size for the PD's whole life, and
    // this PD touches it only through `Shared`.
    let shared = unsafe { Shared::new(vaddr.as_ptr(), size.get() as usize) };
    shared.expect("the region is mapped")
}

/// A client's (free, active) rings.
fn rings(r: Shared) -> (Shared, Shared) {
    let ring = |at| r.window(at, NetRing::bytes(CAPACITY)).expect("rings fit");
    (ring(0), ring(ACTIVE_AT))
}

/// One client as the sink sees it.
struct Client {
    name: &'static str,
    rings: Sink,
    data: Shared,
    buffers: Buffers,
    loans: Loans<1>,
    channel: Channel,
}

impl Client {
    fn attach(name: &'static str, rings_region: Shared, data: Shared, channel: Channel) -> Self {
        let (free, active) = rings(rings_region);
        let mut rings = Sink::attach(free, active, CAPACITY).expect("attach");
        let buffers = Buffers::new(0, data.len());
        let mut loans = Loans::default();
        for i in 0..buffers.count() {
            loans.lend(i);
        }
        // Lending the buffers publishes work: a notification phase follows.
        let _ = buffers.fill(&mut rings.free);
        if rings.free.take_signal_request() {
            let _ = channel.notify();
        }
        Client {
            name,
            rings,
            data,
            buffers,
            loans,
            channel,
        }
    }

    /// Takes every filled buffer, checks it, hands it to `check`, gives it
    /// back; then idles the safe way and signals the client if it asked.
    fn serve(&mut self, mut check: impl FnMut(&Shared, usize, &BuffDesc)) {
        let mut returned = 0;
        loop {
            while let Ok(Some(d)) = self.rings.active.take() {
                let i = match self.buffers.check(&d) {
                    Ok(i) => i,
                    Err(f) => {
                        self.rings.active.report(f);
                        continue;
                    }
                };
                if let Err(f) = self.loans.reclaim(i) {
                    self.rings.active.report(f);
                    continue;
                }
                check(&self.data, self.buffers.offset(i), &d);
                self.loans.lend(i);
                if self.rings.free.stage(d).is_ok() {
                    returned += 1;
                }
            }
            self.rings.active.commit();
            self.rings.free.commit();
            match self.rings.active.try_idle() {
                Ok(Idle::Reprocess) => continue,
                Ok(Idle::Block) | Err(_) => break,
            }
        }
        if returned > 0 && self.rings.free.take_signal_request() {
            let _ = self.channel.notify();
        }
    }

    fn faults(&self) -> u32 {
        self.rings.active.faults().count() + self.rings.free.faults().count()
    }
}

struct SinkPd {
    honest: Client,
    hostile: Client,
    expect: u64,
    out_of_order: bool,
    scribbler_done: bool,
    finished: bool,
}

impl SinkPd {
    fn serve(&mut self) {
        let (expect, out_of_order) = (&mut self.expect, &mut self.out_of_order);
        self.honest.serve(|data, offset, d| {
            let mut word = [0u8; 8];
            let _ = data.read(offset, &mut word);
            let seq = u64::from_le_bytes(word);
            *out_of_order |= seq != *expect || d.len as u64 != seq % BUFFER_SIZE as u64;
            *expect += 1;
        });
        self.hostile.serve(|data, offset, d| {
            // Touch what the descriptor claims, as a copier would: it was
            // checked, so this stays inside the region.
            let mut packet = [0u8; BUFFER_SIZE as usize];
            let _ = data.read(offset, &mut packet[..d.len as usize]);
        });
        if self.finished || self.expect < ITEMS || !self.scribbler_done {
            return;
        }
        self.finished = true;
        let faults = self.hostile.faults();
        println!(
            "sink: {} buffers from {}, {}; {} protocol faults by {} (last: {:?}); {} by {}",
            self.expect,
            self.honest.name,
            if self.out_of_order {
                "NOT in order"
            } else {
                "in order"
            },
            faults,
            self.hostile.name,
            self.hostile.rings.active.faults().last(),
            self.honest.faults(),
            self.honest.name,
        );
        if self.out_of_order || self.honest.faults() != 0 {
            println!(
                "{}",
                report::fail("queue", &"the honest client's traffic was hurt")
            );
        } else if faults == 0 {
            println!(
                "{}",
                report::fail("queue", &"the scribbler went unreported")
            );
        } else {
            println!("{}", report::ok("queue"));
        }
        println!("{}", report::DONE);
    }
}

struct SourcePd {
    rings: Source,
    data: Shared,
    buffers: Buffers,
    seq: u64,
}

impl SourcePd {
    /// Sends until out of free buffers (or done), then idles the safe way.
    fn pump(&mut self) {
        while self.seq < ITEMS {
            let mut sent = 0;
            while self.seq < ITEMS {
                let Ok(Some(d)) = self.rings.free.take() else {
                    break;
                };
                let Ok(i) = self.buffers.check(&d) else {
                    let why = format_args!("the sink lent a bad buffer {d:?}");
                    println!("{}", report::fail("queue", &why));
                    return;
                };
                let _ = self
                    .data
                    .write(self.buffers.offset(i), &self.seq.to_le_bytes());
                let d = BuffDesc {
                    len: (self.seq % BUFFER_SIZE as u64) as u16,
                    ..d
                };
                if self.rings.active.stage(d).is_err() {
                    println!("{}", report::fail("queue", &"the active ring overflowed"));
                    return;
                }
                self.seq += 1;
                sent += 1;
            }
            self.rings.free.commit();
            self.rings.active.commit();
            if sent > 0 && self.rings.active.take_signal_request() {
                let _ = TO_SINK.notify();
            }
            if self.seq == ITEMS {
                break;
            }
            match self.rings.free.try_idle() {
                Ok(Idle::Block) => return,
                Ok(Idle::Reprocess) => continue,
                Err(e) => {
                    let why = format_args!("the sink broke the protocol: {e}");
                    println!("{}", report::fail("queue", &why));
                    return;
                }
            }
        }
    }
}

/// xorshift64.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes random values over the scribbler's rings: indices, flags and
/// descriptors, small values (near-valid indices and offsets) as often as
/// any.
fn scribble() {
    let rings_region = region(&HOSTILE_RINGS, &HOSTILE_RINGS_SIZE);
    let mut rng = Random(0x2545_f491_4f6c_dd1d);
    for _ in 0..ROUNDS {
        for _ in 0..24 {
            let x = rng.next();
            let at = (x >> 8) as usize % (rings_region.len() / 4) * 4;
            let value = if x & 1 == 0 {
                (x >> 40) as u32 & 0x3f
            } else {
                (x >> 32) as u32
            };
            let _ = rings_region.write(at, &value.to_le_bytes());
        }
        let _ = TO_SINK.notify();
    }
    let _ = DONE.notify();
}

// One value per PD, made once (no heap to box the sink into): its size
// does not matter.
#[allow(clippy::large_enum_variant)]
enum Pd {
    Sink(SinkPd),
    Source(SourcePd),
    Scribbler,
}

impl Handler for Pd {
    fn notified(&mut self, channels: ChannelSet) {
        match self {
            Pd::Sink(sink) => {
                if channels.contains(SCRIBBLER_DONE) {
                    sink.scribbler_done = true;
                }
                sink.serve();
            }
            Pd::Source(source) => source.pump(),
            // The sink gives back buffers it never wrote; nothing to do.
            Pd::Scribbler => {}
        }
    }
}

fn init() -> Pd {
    match septa_runtime::pd_name().as_str() {
        "sink" => Pd::Sink(SinkPd {
            honest: Client::attach(
                "source",
                region(&HONEST_RINGS, &HONEST_RINGS_SIZE),
                region(&HONEST_DATA, &HONEST_DATA_SIZE),
                TO_SOURCE,
            ),
            hostile: Client::attach(
                "scribbler",
                region(&HOSTILE_RINGS, &HOSTILE_RINGS_SIZE),
                region(&HOSTILE_DATA, &HOSTILE_DATA_SIZE),
                TO_SCRIBBLER,
            ),
            expect: 0,
            out_of_order: false,
            scribbler_done: false,
            finished: false,
        }),
        "source" => {
            let (free, active) = rings(region(&HONEST_RINGS, &HONEST_RINGS_SIZE));
            let data = region(&HONEST_DATA, &HONEST_DATA_SIZE);
            let mut source = SourcePd {
                rings: Source::attach(free, active, CAPACITY).expect("attach"),
                buffers: Buffers::new(0, data.len()),
                data,
                seq: 0,
            };
            source.pump();
            Pd::Source(source)
        }
        "scribbler" => {
            scribble();
            Pd::Scribbler
        }
        other => panic!("no queue test role for PD {other:?}"),
    }
}

protection_domain!(init);
