//! # bench-blk: the storage benchmark (bench/systems/blk, blk-wall)
//!
//! The role comes from the PD's name:
//! - `blk-client`: a block client of the virtualiser (partition `bench`),
//!   one request at a time: 4 KiB reads and writes at random blocks, then
//!   the partition read and written in order, 64 KiB a request;
//! - `kv-client`: once the block client notifies it, puts of 100-byte
//!   values to the key-value cell, each durable (written and flushed) when
//!   it returns.
//!
//! With the setvar `wall` 0 (bench/systems/blk, booted under `-icount`)
//! each figure is instructions per operation: the whole machine's, kernel,
//! driver, virtualiser and cell included (INST_RETIRED at EL2 too), and
//! not the time the one CPU waits for the device (the cycle counter would
//! count that: under -icount it follows the virtual clock). With `wall` 1
//! (bench/systems/blk-wall, booted without `-icount`, so the system
//! counter follows the host's clock) each figure is a rate: requests,
//! megabytes or puts per second of wall time, the host's disk included.
//!
//! Output: the benchmark configuration has no kernel printing; the PDs
//! map the PL011 (`uart_regs`) and print there.
#![cfg_attr(target_os = "none", no_std, no_main)]
// One `unsafe`: trusting the description that the UART is mapped.
#![deny(unsafe_code)]

use septa_block_protocol::{Connection, RequestCode, Status, TRANSFER_SIZE};
use septa_kv_protocol::KvClient;
use septa_pmu::{count_instructions, instructions, system_counter};
use septa_runtime::{
    println, protection_domain, setvar, Channel, ChannelSet, Handler, OwnNotification,
};
use septa_test_report as report;

setvar! {
    /// Where the PL011's registers are mapped (0: not mapped).
    static UART = "uart_regs";
    /// 1: print rates of wall time; 0: instructions per operation.
    static WALL = "wall";
}

/// The system counter's frequency on QEMU virt.
const COUNTER_HZ: u64 = 62_500_000;
const WARM_UP: u64 = 100;
/// Requests timed per random pattern; bytes moved per sequential pass.
const RANDOM: u64 = 2_000;
const SEQ_BYTES: u64 = 16 << 20;
/// Blocks a sequential request moves.
const SEQ_BLOCKS: u16 = 16;
const PUTS: u64 = 300;

/// What a timed run took: instructions and system-counter ticks.
#[derive(Clone, Copy)]
struct Took {
    instructions: u64,
    ticks: u64,
}

fn timed(n: u64, mut op: impl FnMut(u64)) -> Took {
    let (i0, t0) = (instructions(), system_counter());
    for k in 0..n {
        op(k);
    }
    Took {
        instructions: u64::from(instructions().wrapping_sub(i0)),
        ticks: (system_counter() - t0).max(1),
    }
}

/// Prints `name` as instructions per operation (`per` operations), or,
/// with `wall`, `rate_name` as `units` per second.
fn report_figure(name: &str, rate_name: &str, took: Took, per: u64, units: u64) {
    if WALL.get() != 0 {
        let per_s = units as u128 * COUNTER_HZ as u128 * 100 / took.ticks as u128;
        println!("{}", report::figure(rate_name, per_s as u64));
    } else {
        println!(
            "{}",
            report::figure(name, took.instructions * 100 / per.max(1))
        );
    }
}

/// xorshift64: random block numbers.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

struct Blk {
    c: Connection,
    wait: OwnNotification,
    id: u32,
}

impl Blk {
    fn one(&mut self, code: RequestCode, block: u64, count: u16) -> bool {
        self.id = self.id.wrapping_add(1);
        if self.c.stage(code, 0, block, count, self.id).is_err() {
            return false;
        }
        let wait = self.wait;
        let mut ok = false;
        let done = self.c.complete(
            1,
            || {
                wait.wait();
            },
            |r| ok = r.status == Status::Ok,
        );
        done.is_ok() && ok
    }
}

fn blk_client() -> bool {
    let wait = OwnNotification::in_slot(1).expect("slot 1 is an extra-cap slot");
    let Ok(c) = Connection::from_setvars() else {
        println!("bench-blk: no block connection");
        return false;
    };
    let info = loop {
        match c.info() {
            Some(i) => break i,
            None => {
                wait.wait();
            }
        }
    };
    let blocks = info.capacity;
    let mut b = Blk { c, wait, id: 0 };
    let mut ok = true;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    // Fill the data region with something other than zeros.
    let _ = b.c.data().write(0, &[0x5a; 4096]);
    for (code, name, rate) in [
        (RequestCode::Write, "rand-write-4k", "rand-write-4k-iops"),
        (RequestCode::Read, "rand-read-4k", "rand-read-4k-iops"),
    ] {
        for _ in 0..WARM_UP {
            ok &= b.one(code, next(&mut rng) % blocks, 1);
        }
        let took = timed(RANDOM, |_| ok &= b.one(code, next(&mut rng) % blocks, 1));
        report_figure(name, rate, took, RANDOM, RANDOM);
    }
    let requests = (SEQ_BYTES / (u64::from(SEQ_BLOCKS) * u64::from(TRANSFER_SIZE)))
        .min(blocks / u64::from(SEQ_BLOCKS));
    let kib = requests * u64::from(SEQ_BLOCKS) * u64::from(TRANSFER_SIZE) / 1024;
    for (code, name, rate) in [
        (
            RequestCode::Write,
            "seq-write-per-kib",
            "seq-write-kib-per-s",
        ),
        (RequestCode::Read, "seq-read-per-kib", "seq-read-kib-per-s"),
    ] {
        let took = timed(requests, |k| {
            ok &= b.one(code, k * u64::from(SEQ_BLOCKS), SEQ_BLOCKS)
        });
        report_figure(name, rate, took, kib, kib);
    }
    ok &= b.one(RequestCode::Flush, 0, 0);
    ok
}

fn kv_client() -> bool {
    let Some(kv) = KvClient::from_setvars() else {
        println!("bench-blk: no key-value connection");
        return false;
    };
    let value = [0xa5u8; 100];
    let mut ok = true;
    let key = |i: u64| {
        let mut k = *b"bench-00";
        k[6] = b'0' + (i / 10 % 10) as u8;
        k[7] = b'0' + (i % 10) as u8;
        k
    };
    for i in 0..WARM_UP {
        ok &= kv.put(&key(i), &value).is_ok();
    }
    let took = timed(PUTS, |i| ok &= kv.put(&key(i), &value).is_ok());
    report_figure("kv-put-100b", "kv-puts-per-s", took, PUTS, PUTS);
    ok
}

/// The channel on which the block client tells the kv client it is done,
/// so that the two never run at once.
const NEXT: Channel = Channel::new(0);

fn verdict(case: &str, ok: bool) {
    if ok {
        println!("{}", report::ok(case));
    } else {
        println!("{}", report::fail(case, &"a request failed"));
    }
}

/// The kv client waits for the block client's notification.
struct Role {
    kv: bool,
}

impl Handler for Role {
    fn notified(&mut self, _: ChannelSet) {
        if core::mem::take(&mut self.kv) {
            verdict("kv", kv_client());
            println!("{}", report::DONE);
        }
    }
}

fn init() -> Role {
    if !septa_abi::CONFIG.printing() && UART.get() != 0 {
        #[allow(unsafe_code)]
        // SAFETY: the tool maps the `uart` device region uncached and
        // read-write at UART in this PD for its whole life.
        unsafe {
            septa_runtime::print::print_to_pl011(UART.addr())
        };
    }
    count_instructions();
    match septa_runtime::pd_name().as_str() {
        "blk-client" => {
            verdict("blk", blk_client());
            let _ = NEXT.notify();
            Role { kv: false }
        }
        "kv-client" => Role { kv: true },
        other => panic!("no storage benchmark role for PD {other:?}"),
    }
}

protection_domain!(init);
