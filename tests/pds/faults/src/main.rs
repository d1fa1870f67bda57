//! # test-faults: faults decoded, PDs restarted, peers working on
//!
//! Three PDs from one program, told apart by name:
//! - `peer` does [`TRIPS`] notification round trips with `echo`, then tells
//!   `crasher` to take its next fault; when `crasher` is back (it signals
//!   from its `init`), the next batch of round trips, and so on;
//! - `echo` answers each signal;
//! - `crasher` counts its starts in the shared region `state` (which a
//!   restart does not touch) and, when told, takes the fault of this start:
//!   a null dereference, a stack overflow, a panic. The monitor restarts it
//!   (policy: restart, at most 3, memory reloaded); each new start checks
//!   that its image's data and bss were reloaded.
//!
//! After the third restart `crasher` reports to `peer`, which checks that
//! all round trips were made and prints the result.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use septa_runtime::{println, protection_domain, setvar, Channel, ChannelSet, Handler};
use septa_test_report as report;

/// Round trips between two faults.
const TRIPS: u32 = 100;
/// The faults, in order.
const FAULTS: u64 = 3;

/// Channels: peer-echo is 0 at both ends; peer-crasher is 1 at peer, 0 at
/// crasher.
const PEER_ECHO: Channel = Channel::new(0);
const PEER_CRASHER: Channel = Channel::new(1);
const CRASHER_PEER: Channel = Channel::new(0);

setvar! {
    /// The shared region where `crasher` counts its starts.
    static STATE = "state_vaddr";
}

/// In `.data`: 7 in the image; a start after a dirty one finds 7 again
/// only if the monitor reloaded the image.
static DATA_WORD: AtomicU64 = AtomicU64::new(7);
/// In `.bss`: zero in the image.
static BSS_WORD: AtomicU64 = AtomicU64::new(0);

fn starts() -> &'static AtomicU64 {
    // SAFETY: the tool maps the region `state` (4 KiB) read-write at STATE
    // in `crasher` alone, for its whole life, and across restarts; the
    // first word is only ever used as this atomic counter.
    unsafe { &*STATE.as_ptr::<AtomicU64>() }
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    // A frame that is really used, so each level touches new stack.
    let mut frame = [depth; 64];
    black_box(&mut frame);
    if depth == u64::MAX {
        return 0;
    }
    frame[depth as usize % 64] + recurse(black_box(depth + 1))
}

fn take_fault(start: u64) {
    match start {
        1 => {
            println!("crasher: reading address 0");
            let null = black_box(0usize) as *const u64;
            // SAFETY: none: this is the fault under test. The address is
            // hidden from the compiler, so it emits the load; the page at 0
            // is never mapped, so the load faults and never returns.
            let v = unsafe { core::ptr::read_volatile(null) };
            println!(
                "{}",
                report::fail("faults", &format_args!("read {v} from address 0"))
            );
        }
        2 => {
            println!("crasher: recursing without end");
            let v = recurse(0);
            println!(
                "{}",
                report::fail("faults", &format_args!("recursion returned {v}"))
            );
        }
        3 => panic!("crasher panics on purpose"),
        _ => {}
    }
}

enum Role {
    Peer { trips: u32, batches: u64 },
    Echo,
    Crasher { start: u64 },
}

impl Handler for Role {
    fn notified(&mut self, channels: ChannelSet) {
        match self {
            Role::Echo => {
                let _ = PEER_ECHO.notify();
            }
            Role::Crasher { start } => take_fault(*start),
            Role::Peer { trips, batches } => {
                if channels.contains(PEER_ECHO) {
                    *trips += 1;
                    if *trips < TRIPS {
                        let _ = PEER_ECHO.notify();
                    } else {
                        *trips = 0;
                        *batches += 1;
                        // Round trips done: the crasher may fault.
                        let _ = PEER_CRASHER.notify();
                    }
                }
                if channels.contains(PEER_CRASHER) {
                    // The crasher (re)started: next batch, or the end.
                    if *batches >= FAULTS {
                        println!(
                            "peer: {} round trips with echo while crasher faulted {FAULTS} times",
                            *batches * u64::from(TRIPS)
                        );
                        println!("{}", report::ok("faults"));
                        println!("{}", report::DONE);
                    } else {
                        let _ = PEER_ECHO.notify();
                    }
                }
            }
        }
    }
}

fn init() -> Role {
    match septa_runtime::pd_name().as_str() {
        "echo" => Role::Echo,
        "peer" => {
            // Wait for the crasher's first start before the first batch.
            Role::Peer {
                trips: 0,
                batches: 0,
            }
        }
        _ => {
            let start = starts().fetch_add(1, Ordering::Relaxed) + 1;
            let fresh =
                DATA_WORD.load(Ordering::Relaxed) == 7 && BSS_WORD.load(Ordering::Relaxed) == 0;
            println!(
                "crasher: start {start}, image data {}",
                if fresh { "fresh" } else { "NOT reloaded" }
            );
            if !fresh {
                println!(
                    "{}",
                    report::fail(
                        "faults",
                        &format_args!("start {start} found the last start's data")
                    )
                );
            }
            // Dirty the image, so the next start can tell a reload.
            DATA_WORD.store(99, Ordering::Relaxed);
            BSS_WORD.store(99, Ordering::Relaxed);
            let _ = CRASHER_PEER.notify();
            Role::Crasher { start }
        }
    }
}

protection_domain!(init);
