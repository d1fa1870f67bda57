//! # bench-pd: the PDs of the benchmark systems (bench/systems)
//!
//! The role comes from the PD's name, which the tool patches in:
//! - `first`: the only PD of the boot benchmark; prints instructions from
//!   QEMU's start to its `init` (system counter x 16, read as CNTPCT_EL0,
//!   which every Microkit configuration exports);
//! - `server`: answers protected calls at once and returns from `notified`
//!   at once;
//! - `client-ppc`: times protected calls on channel 0;
//! - `client-notify`: times notifications on channel 0, each of which runs
//!   the higher-priority server to completion before the client resumes;
//! - `queue-producer`: times one enqueue + dequeue pair with signalling on a
//!   net ring (septa-queue) in the region `queue`: it enqueues a descriptor
//!   and, the consumer having asked, notifies channel 0; then the same pair
//!   without signalling, on a second ring that it both fills and empties;
//! - `queue-consumer`: the higher-priority other side: in `notified` it
//!   dequeues (checking each descriptor is the next in sequence), asks for a
//!   signal, looks again and blocks, as every queue consumer does;
//! - `serial-client`: a client of the serial subsystem; times `println!`
//!   of 64-byte lines (62 characters, then `\r\n`) all the way to the
//!   UART, the virtualiser and the driver running above it, and reports
//!   instructions per line and per byte; then the same bytes sent as they
//!   are (`serial::write`, what a PD forwarding a guest's console does).
//!
//! Method (docs/architecture.md): count the kernel too (PMCCFILTR.NSH),
//! warm up with 100 operations, time 10,000, report instructions per
//! operation as `[septa-bench] NAME VALUE`, where NAME comes from the
//! `bench_name` setvar-free convention: the system's directory name is not
//! known to the PD, so the client prints its own operation kind and the
//! runner prefixes the system name.
//!
//! Output: the benchmark configuration has no kernel printing, so the PDs
//! that report map the board's PL011 (a device region, `uart_regs`) and
//! print there themselves; with kernel printing they use it as usual.
#![cfg_attr(target_os = "none", no_std, no_main)]
// Two `unsafe`s: trusting the system description that the queue region
// (`queue_region`) and the UART (`uart_regs`) are mapped.
#![deny(unsafe_code)]

use septa_pmu::{count_kernel_too, cycles, system_counter, INSTRUCTIONS_PER_TICK};
use septa_queue::net::{BuffDesc, NetRing};
use septa_queue::{Consumer, Idle, Producer, Ring, Shared};
use septa_runtime::{
    println, protection_domain, setvar, Channel, ChannelSet, Handler, MessageInfo,
};
use septa_test_report as report;

const WARM_UP: u64 = 100;
const TIMED: u64 = 10_000;
const CHANNEL: Channel = Channel::new(0);

septa_runtime::setvar! {
    /// Where the queue benchmark's region is mapped, and its size.
    static QUEUE = "queue";
    static QUEUE_SIZE = "queue_size";
}

/// The queue benchmark's rings: entries each (a power of two), the
/// signalled ring at the start of the region, the local one after it.
const QUEUE_CAPACITY: u32 = 64;

enum Server {
    /// Answers at once (ppc and notify benchmarks); nothing to do.
    Plain,
    /// The queue benchmark's consumer and the sequence number it expects.
    Queue(Consumer<NetRing>, u64),
}

impl Handler for Server {
    fn notified(&mut self, _channels: ChannelSet) {
        let Server::Queue(rx, expect) = self else {
            return;
        };
        loop {
            while let Ok(Some(d)) = rx.dequeue() {
                if d.io_or_offset != *expect {
                    let why = format_args!("got entry {} for {expect}", d.io_or_offset);
                    println!("{}", report::fail("bench", &why));
                }
                *expect += 1;
            }
            match rx.try_idle() {
                Ok(Idle::Block) => break,
                Ok(Idle::Reprocess) => continue,
                Err(e) => {
                    println!("{}", report::fail("bench", &e));
                    break;
                }
            }
        }
    }

    fn protected(&mut self, _channel: Channel, _msg: MessageInfo) -> MessageInfo {
        MessageInfo::new(0, 0, 0, 0)
    }
}

/// The benchmark's two rings in the region `queue`: (signalled, local).
fn queue_region() -> (Shared, Shared) {
    #[allow(unsafe_code)]
    // SAFETY: the system description maps the region `queue` read-write at
    // the patched `queue` address with the patched size, for the PD's whole
    // life, and this PD touches it only through `Shared`.
    let region = unsafe { Shared::new(QUEUE.as_ptr(), QUEUE_SIZE.get() as usize) }
        .expect("the queue region is mapped");
    let half = region.len() / 2;
    let ring = |at| {
        region
            .window(at, NetRing::bytes(QUEUE_CAPACITY))
            .expect("the queue region holds two rings")
    };
    (ring(0), ring(half))
}

/// The producer: the signalled pair, then the local pair.
fn queue_producer() {
    let (signalled, local) = queue_region();
    let mut tx = Producer::<NetRing>::attach(signalled, QUEUE_CAPACITY).unwrap();
    let mut seq = 0;
    count_kernel_too();
    let per_pair = time(|| {
        let d = BuffDesc {
            io_or_offset: seq,
            len: 60,
            oid: 0,
        };
        seq += 1;
        if tx.enqueue(d).is_err() {
            println!("{}", report::fail("bench", &"the consumer did not keep up"));
        }
        if tx.take_signal_request() {
            let _ = CHANNEL.notify();
        }
    });
    // Every entry was taken, and the consumer asks for the next signal.
    let drained = tx.space() == Ok(QUEUE_CAPACITY) && tx.require_signal();
    println!("{}", report::figure("signalled-pair", per_pair));

    let mut ltx = Producer::<NetRing>::attach(local, QUEUE_CAPACITY).unwrap();
    let mut lrx = Consumer::<NetRing>::attach(local, QUEUE_CAPACITY).unwrap();
    let mut ok = true;
    let per_local = time(|| {
        let d = BuffDesc {
            io_or_offset: seq,
            len: 60,
            oid: 0,
        };
        ok &= ltx.enqueue(d).is_ok() && lrx.dequeue() == Ok(Some(d));
    });
    println!("{}", report::figure("local-pair", per_local));
    if drained && ok {
        println!("{}", report::ok("bench"));
    } else {
        let why = format_args!("queue entries lost (drained {drained}, local {ok})");
        println!("{}", report::fail("bench", &why));
    }
    println!("{}", report::DONE);
}

/// The line the serial benchmark prints: 62 characters, then the `\r\n`
/// the runtime sends for `\n`.
const LINE: &str = "serial-tx 0123456789 0123456789 0123456789 0123456789 abcdefgh";
const LINE_BYTES: u64 = 64;

/// The serial benchmark's client.
fn serial_client() {
    if !septa_runtime::serial::connected() {
        println!("{}", report::fail("bench", &"not a serial client"));
        println!("{}", report::DONE);
        return;
    }
    count_kernel_too();
    let per_line = time(|| println!("{LINE}"));
    // The same bytes as they are (what a PD forwarding a guest's console
    // sends), without `println!`'s formatting.
    let mut raw = [0u8; LINE_BYTES as usize];
    raw[..LINE.len()].copy_from_slice(LINE.as_bytes());
    raw[LINE.len()..].copy_from_slice(b"\r\n");
    let per_write = time(|| {
        septa_runtime::serial::write(&raw);
    });
    println!("{}", report::figure("per-line", per_line));
    println!("{}", report::figure("per-byte", per_line / LINE_BYTES));
    println!("{}", report::figure("per-byte-raw", per_write / LINE_BYTES));
    println!("{}", report::ok("bench"));
    println!("{}", report::DONE);
}

/// Runs `op` WARM_UP times, then TIMED times under the cycle counter, and
/// returns instructions per operation in hundredths.
fn time(mut op: impl FnMut()) -> u64 {
    for _ in 0..WARM_UP {
        op();
    }
    let start = cycles();
    for _ in 0..TIMED {
        op();
    }
    (cycles() - start) * 100 / TIMED
}

const _: () = assert!(LINE.len() as u64 + 2 == LINE_BYTES);

setvar! {
    /// Where the PL011's registers are mapped (0: not mapped).
    static UART = "uart_regs";
}

fn init() -> Server {
    if !septa_abi::CONFIG.printing() && UART.get() != 0 {
        #[allow(unsafe_code)]
        // SAFETY: the tool maps the `uart` device region uncached and
        // read-write at UART in this PD for its whole life.
        unsafe {
            septa_runtime::print::print_to_pl011(UART.addr())
        };
    }
    let name = septa_runtime::pd_name();
    match name.as_str() {
        "first" => {
            let boot = system_counter() * INSTRUCTIONS_PER_TICK;
            println!("{}", report::figure("boot", boot * 100));
            println!("{}", report::ok("bench"));
            println!("{}", report::DONE);
        }
        "server" => {}
        "queue-consumer" => {
            let (signalled, _) = queue_region();
            return Server::Queue(Consumer::attach(signalled, QUEUE_CAPACITY).unwrap(), 0);
        }
        "queue-producer" => queue_producer(),
        "serial-client" => serial_client(),
        "client-ppc" => {
            count_kernel_too();
            let per_call = time(|| {
                let _ = CHANNEL.pp_call(MessageInfo::new(0, 0, 0, 0));
            });
            println!("{}", report::figure("round-trip", per_call));
            println!("{}", report::ok("bench"));
            println!("{}", report::DONE);
        }
        "client-notify" => {
            count_kernel_too();
            let per_signal = time(|| {
                let _ = CHANNEL.notify();
            });
            println!("{}", report::figure("round-trip", per_signal));
            println!("{}", report::ok("bench"));
            println!("{}", report::DONE);
        }
        other => println!(
            "{}",
            report::fail("bench", &format_args!("no benchmark role for PD {other:?}"))
        ),
    }
    Server::Plain
}

protection_domain!(init);
