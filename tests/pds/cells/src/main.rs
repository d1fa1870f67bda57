//! # test-cells: the well-behaved cells of the hostile-cell tests
//!
//! One program, the role by the cell's name:
//!
//! - `spinner`, `steady_a`, `steady_b` (`tests/systems/cell-spin`): each
//!   spins for a window of the clock and counts the time it ran: a gap
//!   of more than [`GAP_NS`] between two readings of the counter is time
//!   another ran. Each checks its share against the one it was declared
//!   (budget over period, known here by name): at most a little above it
//!   (the kernel enforces the budget) and, for the steady cells, which the
//!   spinner outranks, not much below it (the spinner cannot take it);
//! - `crasher` (`cell-crashloop`): panics as soon as it starts, every time;
//! - `bystander` (`cell-crashloop`, `cell-fuzz`): keeps a pattern in its
//!   heap and a 10 ms periodic timeout, and checks after each that the
//!   pattern is intact and the timeout was not late. Beside a judge
//!   (`cell-fuzz`) it answers the judge's notification with its verdict;
//!   otherwise it says `done` itself after [`BYSTANDER_TICKS`] ticks.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_cell::{cell, clock, peer, println, timer, Cell, Events, Vec};
use septa_test_report as report;
use test_cell_fuzz_protocol as judge;

const MS: u64 = 1_000_000;
/// A longer gap between two counter readings is time another thread ran.
const GAP_NS: u64 = 20_000;
/// How long each cell of cell-spin measures (steady_b a little longer, so
/// that its `done` comes after every verdict).
const WINDOW_NS: u64 = 1_000 * MS;
const LAST_WINDOW_NS: u64 = 1_200 * MS;
/// The bystander's timeout period, and the most a timeout may be late.
const TICK_NS: u64 = 10 * MS;
const LATE_NS: u64 = 30 * MS;
const BYSTANDER_TICKS: u64 = 150;
/// Words of the bystander's heap pattern.
const PATTERN_WORDS: usize = 4096;

/// Declared shares in per cent (budget / period in the system file).
fn declared(name: &str) -> Option<u64> {
    match name {
        "spinner" => Some(50),
        "steady_a" | "steady_b" => Some(20),
        _ => None,
    }
}

fn spin(name: &str) {
    let Some(share) = declared(name) else {
        return;
    };
    let window = if name == "steady_b" {
        LAST_WINDOW_NS
    } else {
        WINDOW_NS
    };
    let start = clock::ticks();
    let mut last = start;
    let mut ran = 0u64;
    let gap = GAP_NS * clock::frequency() / 1_000_000_000;
    loop {
        let now = clock::ticks();
        let d = now - last;
        if d <= gap {
            ran += d;
        }
        last = now;
        if clock::ticks_to_ns(now - start) >= window {
            break;
        }
    }
    let total = last - start;
    let got = ran * 1000 / total.max(1); // per mille
    println!(
        "{name}: ran {}.{}% of {} ms (declared {share}%)",
        got / 10,
        got % 10,
        clock::ticks_to_ns(total) / MS
    );
    let case = match name {
        "spinner" => "spinner-held-to-its-budget",
        "steady_a" => "steady_a-kept-its-share",
        _ => "steady_b-kept-its-share",
    };
    // At most 2 points above the declared share; the steady cells at least
    // 85% of theirs (the rest goes to the kernel, the monitor counting
    // overruns and the system's services).
    let high = got <= share * 10 + 20;
    let low = name == "spinner" || got * 100 >= share * 10 * 85;
    if high && low {
        println!("{}", report::ok(case));
    } else {
        let why = format_args!("ran {got} per mille, declared {share}%");
        println!("{}", report::fail(case, &why));
    }
    if name == "steady_b" {
        println!("{}", report::DONE);
    }
}

struct Bystander {
    pattern: Vec<u64>,
    last: u64,
    ticks: u64,
    broken: u64,
    reported: bool,
}

fn word(i: usize) -> u64 {
    (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xb157_a4de
}

impl Bystander {
    fn new() -> Bystander {
        let pattern: Vec<u64> = (0..PATTERN_WORDS).map(word).collect();
        if let Err(e) = timer::every(TICK_NS) {
            println!("{}", report::fail("bystander-timer", &e));
        }
        Bystander {
            pattern,
            last: timer::now().unwrap_or(0),
            ticks: 0,
            broken: judge::INTACT,
            reported: false,
        }
    }

    fn check(&mut self) {
        let now = timer::now().unwrap_or(0);
        if now.saturating_sub(self.last) > TICK_NS + LATE_NS && self.broken == judge::INTACT {
            println!("bystander: a timeout {} ms late", (now - self.last) / MS);
            self.broken = judge::TICKS_LATE;
        }
        self.last = now;
        self.ticks += 1;
        if self.pattern.iter().enumerate().any(|(i, w)| *w != word(i)) {
            self.broken = judge::HEAP_CHANGED;
        }
    }

    fn verdict(&self) -> Result<(), &'static str> {
        match self.broken {
            judge::INTACT => Ok(()),
            judge::HEAP_CHANGED => Err("its heap changed"),
            _ => Err("its timeouts came late"),
        }
    }
}

impl Cell for Bystander {
    fn notified(&mut self, events: Events) {
        if events.timer() {
            self.check();
        }
        match peer("judge") {
            Some(j) if events.from(j) && !self.reported => {
                self.reported = true;
                let args = [judge::VERDICT_MAGIC, self.broken, self.ticks];
                let _ = j.call(judge::VERDICT, &args, &mut []);
            }
            None if self.ticks == BYSTANDER_TICKS && !self.reported => {
                self.reported = true;
                match self.verdict() {
                    Ok(()) => println!("{}", report::ok("bystander-ran-on")),
                    Err(why) => println!("{}", report::fail("bystander-ran-on", &why)),
                }
                println!("{}", report::DONE);
            }
            _ => {}
        }
    }
}

enum Role {
    Bystander(Bystander),
    Idle,
}

impl Cell for Role {
    fn notified(&mut self, events: Events) {
        if let Role::Bystander(b) = self {
            b.notified(events);
        }
    }
}

fn init() -> Role {
    let name = septa_cell::name();
    match name.as_str() {
        "crasher" => {
            println!("crasher: started; crashing");
            panic!("the crasher crashes on every start");
        }
        "bystander" => Role::Bystander(Bystander::new()),
        n => {
            spin(n);
            Role::Idle
        }
    }
}

cell!(init);
