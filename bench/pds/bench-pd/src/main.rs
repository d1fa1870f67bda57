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
//! - `irq-driver`: times a device interrupt to its `notified`: it owns the
//!   EL1 physical timer's interrupt (channel 1), arms the timer a little
//!   ahead, and in `notified` reads the cycle counter; the difference from
//!   the last stamp the spinner left in the region `stamp` is the delivery
//!   (the kernel's interrupt path, the switch to the driver and the
//!   runtime's event loop up to the handler); then it re-arms the timer
//!   and acknowledges the interrupt, as a driver does;
//! - `irq-spinner`: the lower-priority PD the interrupt preempts: it
//!   stores the cycle counter into `stamp` in a tight loop, so the last
//!   stamp is at most one loop (4 instructions) before the interrupt.
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
// Two more: the EL1 physical timer's registers, which the kernel exports
// to EL0 (`arm_timer`), and the `stamp` word of the irq benchmark.
#![deny(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

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
    /// Where the irq benchmark's `stamp` region is mapped.
    static STAMP = "stamp";
}

/// The queue benchmark's rings: entries each (a power of two), the
/// signalled ring at the start of the region, the local one after it.
const QUEUE_CAPACITY: u32 = 64;

enum Server {
    /// Answers at once (ppc and notify benchmarks); nothing to do.
    Plain,
    /// The irq benchmark's driver.
    Irq(IrqDriver),
    /// The queue benchmark's consumer and the sequence number it expects.
    Queue(Consumer<NetRing>, u64),
}

impl Handler for Server {
    fn notified(&mut self, channels: ChannelSet) {
        if let Server::Irq(d) = self {
            d.interrupt(channels);
            return;
        }
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

/// The irq benchmark's timer channel (the driver's IRQ), and how far
/// ahead it arms the timer: 200 ticks, 3,200 instructions of spinning.
const TIMER_IRQ: Channel = Channel::new(1);
const IRQ_DELAY_TICKS: u64 = 200;

/// The EL1 physical timer, which both kernels export to EL0 in every
/// Microkit configuration (seL4's `KernelArmExportPTMRUser`).
mod arm_timer {
    /// CNTP_CTL_EL0.ENABLE (IMASK clear: the interrupt is raised).
    pub const ENABLE: u64 = 1;

    /// Arms the timer to fire once the count reaches `ticks`.
    pub fn arm(ticks: u64) {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        #[allow(unsafe_code)]
        // SAFETY: writes two timer registers the kernel exported to EL0;
        // their only effect is when the timer's interrupt is raised.
        unsafe {
            core::arch::asm!(
                "msr cntp_cval_el0, {t}",
                "msr cntp_ctl_el0, {c}",
                "isb",
                t = in(reg) ticks,
                c = in(reg) ENABLE,
                options(nomem, nostack)
            )
        };
        let _ = (ticks, ENABLE);
    }

    /// Turns the timer off (its interrupt goes down).
    pub fn stop() {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        #[allow(unsafe_code)]
        // SAFETY: as in `arm`.
        unsafe {
            core::arch::asm!("msr cntp_ctl_el0, xzr", "isb", options(nomem, nostack))
        };
    }
}

/// The `stamp` word the spinner writes and the driver reads.
fn stamp() -> &'static AtomicU64 {
    #[allow(unsafe_code)]
    // SAFETY: the system description maps the region `stamp` (a page,
    // read-write) at the patched address in both PDs for their whole
    // life; the word is aligned and only ever accessed atomically.
    unsafe {
        &*STAMP.as_ptr::<AtomicU64>()
    }
}

/// The irq benchmark's driver: interrupts seen and instructions summed.
struct IrqDriver {
    seen: u64,
    sum: u64,
    worst: u64,
}

impl IrqDriver {
    fn start() -> Self {
        arm_timer::arm(system_counter() + IRQ_DELAY_TICKS);
        IrqDriver {
            seen: 0,
            sum: 0,
            worst: 0,
        }
    }

    fn interrupt(&mut self, channels: ChannelSet) {
        let now = cycles();
        let delivered = now.wrapping_sub(stamp().load(Ordering::Relaxed));
        if !channels.contains(TIMER_IRQ) {
            println!(
                "{}",
                report::fail("bench", &"notified without the timer's IRQ")
            );
            return;
        }
        self.seen += 1;
        if self.seen > WARM_UP {
            self.sum += delivered;
            self.worst = self.worst.max(delivered);
        }
        if self.seen == WARM_UP + TIMED {
            arm_timer::stop();
            let _ = TIMER_IRQ.irq_ack();
            println!("{}", report::figure("to-notified", self.sum * 100 / TIMED));
            println!("{}", report::figure("to-notified-worst", self.worst * 100));
            println!("{}", report::ok("bench"));
            println!("{}", report::DONE);
            return;
        }
        arm_timer::arm(system_counter() + IRQ_DELAY_TICKS);
        let _ = TIMER_IRQ.deferred_irq_ack();
    }
}

/// The irq benchmark's spinner: never returns.
fn irq_spinner() -> ! {
    count_kernel_too();
    let stamp = stamp();
    loop {
        stamp.store(cycles(), Ordering::Relaxed);
    }
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
        "irq-driver" => return Server::Irq(IrqDriver::start()),
        "irq-spinner" => irq_spinner(),
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
