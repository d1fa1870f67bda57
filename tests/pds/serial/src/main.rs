//! # test-serial: clients of the serial subsystem, honest and hostile
//!
//! One program, its role chosen by the PD's name (tests/systems/serial-*,
//! queue-hostile):
//!
//! - `mux_*`: prints [`LINES`] numbered lines, yielding to the other
//!   clients (of the same priority) after each, so that the clients' lines
//!   interleave on the console; `mux_b` prints through `log`. The line's
//!   length depends on the client, so that a torn line cannot pass for a
//!   whole one. The harness checks from the console that every line
//!   arrives whole and in order (the probe's `lines` step); the PD says
//!   `ok` once it has printed them all.
//! - `echo_*`: echoes each line of input it gets as `NAME got: LINE`, and
//!   says `ok` with the first; on the line `finish` it says `done`. The
//!   probe types to them in turn, switching with the key sequence.
//! - `scribbler`: writes random values over its own queues (indices, flag
//!   and data) and notifies the virtualisers, [`ROUNDS`] times, yielding
//!   after each; its own output is lost, nobody else's may be.
//! - `done` (the lowest priority): runs once everyone else has finished
//!   and says `done`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::septa_sel4::syscall;
use septa_runtime::symbols::PdName;
use septa_runtime::{println, protection_domain, serial, ChannelSet, Handler};
use septa_test_report as report;

/// Lines each `mux_*` client prints.
const LINES: u32 = 200;
/// Bursts of scribbling.
const ROUNDS: u32 = 300;
/// The longest line of input kept.
const LINE_MAX: usize = 128;

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

fn mux(name: &str) {
    if !serial::connected() {
        println!("{}", report::fail(name, &"not a serial client"));
        return;
    }
    // Lengths differ per client: a's lines are long, c's short.
    let filler = match name.as_bytes().last() {
        Some(b'a') => 120,
        Some(b'b') => 60,
        _ => 8,
    };
    let pad = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890";
    for i in 1..=LINES {
        if i > 1 {
            syscall::yield_now();
        }
        if name == "mux_b" {
            log::info!("{name} line {i} of {LINES} {}", &pad[..filler]);
        } else {
            println!("{name} line {i} of {LINES} {}", &pad[..filler]);
        }
    }
    // Right after the last line, with no yield between: once the console
    // shows that line, this one has gone out too.
    println!("{}", report::ok(name));
}

fn scribble() {
    let regions = [serial::output_region(), serial::input_region()];
    let channels = [serial::output_channel(), serial::input_channel()];
    let mut rng = Random(0x9e37_79b9_7f4a_7c15);
    for _ in 0..ROUNDS {
        for r in regions.iter().flatten() {
            for _ in 0..8 {
                let x = rng.next();
                // Mostly the header's three words, sometimes the data.
                let at = if x & 3 == 0 {
                    ((x >> 8) as usize % r.len()) & !3
                } else {
                    ((x >> 8) as usize % 3) * 4
                };
                let value = if x & 4 == 0 {
                    (x >> 40) as u32 & 0xfff
                } else {
                    (x >> 32) as u32
                };
                let _ = r.write(at, &value.to_le_bytes());
            }
        }
        for ch in channels.iter().flatten() {
            let _ = ch.notify();
        }
        syscall::yield_now();
    }
}

struct Echo {
    name: PdName,
    line: [u8; LINE_MAX],
    len: usize,
    lines: u32,
}

impl Handler for Echo {
    fn notified(&mut self, channels: ChannelSet) {
        if !serial::input_channel().is_some_and(|ch| channels.contains(ch)) {
            return;
        }
        let mut buf = [0u8; 64];
        loop {
            let n = serial::read(&mut buf);
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if b == b'\r' || b == b'\n' {
                    self.line_done();
                } else if self.len < LINE_MAX {
                    self.line[self.len] = b;
                    self.len += 1;
                }
            }
        }
    }
}

impl Echo {
    fn line_done(&mut self) {
        if self.len == 0 {
            return;
        }
        let line = core::str::from_utf8(&self.line[..self.len]).unwrap_or("(not UTF-8)");
        let name = self.name.as_str();
        println!("{name} got: {line}");
        self.lines += 1;
        if self.lines == 1 {
            println!("{}", report::ok(name));
        }
        if line == "finish" {
            println!("{}", report::DONE);
        }
        self.len = 0;
    }
}

// One value per PD, made once (no heap to box the echo into): its size
// does not matter.
#[allow(clippy::large_enum_variant)]
enum Pd {
    Idle,
    Echo(Echo),
}

impl Handler for Pd {
    fn notified(&mut self, channels: ChannelSet) {
        match self {
            Pd::Echo(e) => e.notified(channels),
            // Room made in a queue it asked about, or the virtualisers'
            // answers to the scribbler: nothing to do.
            Pd::Idle => {}
        }
    }
}

fn init() -> Pd {
    let name = septa_runtime::pd_name();
    let name = name.as_str();
    if name.starts_with("mux_") {
        mux(name);
        Pd::Idle
    } else if name.starts_with("echo_") {
        if serial::input_channel().is_none() {
            println!("{}", report::fail(name, &"no serial input"));
        }
        println!("{name}: ready for input");
        Pd::Echo(Echo {
            name: septa_runtime::pd_name(),
            line: [0; LINE_MAX],
            len: 0,
            lines: 0,
        })
    } else if name == "scribbler" {
        scribble();
        Pd::Idle
    } else if name == "done" {
        println!("{}", report::DONE);
        Pd::Idle
    } else {
        panic!("no serial test role for PD {name:?}");
    }
}

protection_domain!(init);
