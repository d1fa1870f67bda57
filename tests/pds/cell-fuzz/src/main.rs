//! # test-cell-fuzz: a hostile cell and its judge
//!
//! `fuzzer` is a cell (`tests/systems/cell-fuzz`) whose program does not
//! keep to the safe cell API: it makes [`OPERATIONS`] random system calls
//! and invocations, on every capability slot it holds (its input
//! notification, its reply object, its channels' notification and endpoint
//! caps) and on slots it does not hold, with random labels, message
//! lengths, extra caps and message registers, random system call numbers,
//! and random memory reads and writes. Many fault; the monitor restarts it
//! each time with its memory kept (`memory = "keep"`), so it goes on where
//! it was: its state lives in statics, which a restart leaves alone, and
//! its random writes go only where nothing of its own is mapped.
//!
//! Left out, on purpose: the debug system calls (in a debug kernel any
//! thread may halt the machine or dump the scheduler; seL4's too, by
//! design, and release kernels have none), and blocking receives on which
//! nothing would ever arrive (a wait that never ends tests nothing).
//!
//! `judge` (a PD, above the cells) hears the fuzzer's end, then asks the
//! bystander cell (`test-cells`) for its verdict, and says `done`.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_cells::peers;
use septa_runtime::septa_sel4::{ipc_buffer, syscall, CPtr, MessageInfo};
use septa_runtime::{mr_get, msginfo_new, println, protection_domain, Channel, ChannelSet};
use septa_runtime::{Handler, PdCell};
use septa_test_report as report;
use test_cell_fuzz_protocol as p;

/// System calls and invocations the fuzzer makes in all.
const OPERATIONS: u64 = 1_000_000;
/// Microkit's CSpace: input notification 1, reply object 4, a
/// notification cap at 10 + id for each channel it may notify, an
/// endpoint cap at 74 + id for each it may call.
const INPUT: u64 = 1;
const REPLY: u64 = 4;
const NOTIFY_BASE: u64 = 10;
const PP_BASE: u64 = 74;

/// The fuzzer's state, in statics: a restart with its memory kept leaves
/// them as they were, so it resumes.
static RNG: PdCell<u64> = PdCell::new(0x2545_f491_4f6c_dd1d);
static DONE: PdCell<u64> = PdCell::new(0);
static STARTS: PdCell<u64> = PdCell::new(0);

fn next() -> u64 {
    let mut x = RNG.get();
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    RNG.replace(x);
    x
}

/// Most caps a cell holds: input, reply, and a notification and an
/// endpoint cap for each of at most 16 channels.
const MAX_HELD: usize = 2 + 2 * 16;

/// The slots of its caps (the runtime's channel masks say which channels
/// it has), found at each start.
static HELD: PdCell<([u64; MAX_HELD], usize)> = PdCell::new(([0; MAX_HELD], 0));

fn find_held() {
    let mut slots = [0; MAX_HELD];
    slots[0] = INPUT;
    slots[1] = REPLY;
    let mut n = 2;
    let notify = septa_runtime::symbols::microkit_notifications.get();
    let pps = septa_runtime::symbols::microkit_pps.get();
    for (base, mask) in [(NOTIFY_BASE, notify), (PP_BASE, pps)] {
        for id in (0..64).filter(|id| mask & (1 << id) != 0) {
            if n < MAX_HELD {
                slots[n] = base + id;
                n += 1;
            }
        }
    }
    HELD.replace((slots, n));
}

/// A slot holding one of its caps, at random.
fn held(r: u64) -> u64 {
    let (slots, n) = HELD.get();
    slots[(r % n.max(1) as u64) as usize]
}

/// Any slot: mostly empty ones (and far beyond the CNode).
fn any_slot(r: u64) -> u64 {
    match r % 3 {
        0 => r % 512,
        1 => NOTIFY_BASE + (r >> 8) % 128,
        _ => r >> 16,
    }
}

/// A random message: label, length (up to 127),
/// extra caps (their slots random too), and random message registers.
fn message(r: u64) -> MessageInfo {
    // Mostly short messages, now and then up to 127 words (the kernel
    // cuts at 120): long ones cost copying, not coverage.
    let len = if r & 0xc == 0 {
        (r >> 4) % 128
    } else {
        (r >> 4) % 9
    };
    let extra = (r >> 12) % 4;
    for i in 0..len.min(120) as usize {
        ipc_buffer::set_mr(i, next());
    }
    for i in 0..extra as usize {
        ipc_buffer::set_cap(i, CPtr::from_bits(held(next())));
    }
    let label = match (r >> 16) % 4 {
        0 => (r >> 20) % 80,
        1 => (r >> 20) % 8,
        _ => r >> 24,
    };
    MessageInfo::new(label, 0, extra, len)
}

/// A system call number that is none of the kernel's (nor a debug or
/// benchmark call): the kernel answers with an UnknownSyscall fault.
fn unknown_syscall(r: u64) -> i64 {
    match r % 3 {
        0 => -31 - (r >> 8) as i64 % 10,
        1 => (r >> 8) as i64 % 51,
        _ => (r >> 8) as i64 | 0x4000_0000,
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn raw_syscall(number: i64, x0: u64, x1: u64) {
    // SAFETY: `svc #0` enters the kernel; whatever the number and
    // arguments, the kernel either returns (clobbering x0..x7) or raises
    // a fault the monitor handles. No memory of ours is promised to it.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inout("x0") x0 => _, inout("x1") x1 => _,
            out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _,
            in("x7") number,
            options(nostack),
        )
    };
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn raw_syscall(_: i64, _: u64, _: u64) {}

/// An address nothing of the fuzzer's is mapped at (below its image, or
/// far above it) for writes; any address for reads.
fn address(r: u64, write: bool) -> usize {
    let a = match r % 4 {
        0 => (r >> 8) % 0x20_0000,
        1 => 0x1_0000_0000 + (r >> 8) % 0x40_0000_0000,
        2 if !write => 0x20_0000 + (r >> 8) % 0x100_0000,
        _ => r >> 16,
    };
    (a & !7) as usize
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn touch(addr: usize, write: bool, value: u64) {
    let p = addr as *mut u64;
    if write {
        // SAFETY: a hostile write, on purpose: `address` only gives
        // addresses where nothing of this program is mapped, so the
        // kernel raises a VM fault (the monitor restarts us) and no Rust
        // object is touched.
        unsafe { p.write_volatile(value) };
    } else {
        // SAFETY: a read has no effect on memory; an unmapped address
        // faults (as above), a mapped one is read and the value dropped.
        let _ = unsafe { p.read_volatile() };
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn touch(_: usize, _: bool, _: u64) {}

/// One random operation, out of 10,000: most on caps it holds (which
/// must refuse nonsense or deliver it harmlessly), a few on slots it does
/// not hold, and a few that fault (about 5 in 1,000: each costs a
/// restart).
fn operation() {
    let r = next();
    let cap = CPtr::from_bits(held(r >> 16));
    match r % 10_000 {
        // Calls and sends on its caps: endpoints reach the PDs at the
        // other end, notifications signal, the reply object answers no one.
        0..=4499 => {
            syscall::call(cap, message(next()));
        }
        4500..=6499 => syscall::nb_send(cap, message(next())),
        6500..=7499 => syscall::send(cap, message(next())),
        // Receives on its own notification: non-blocking, or blocking
        // right after signalling itself, so that it returns.
        7500..=8299 => {
            syscall::nb_recv(
                CPtr::from_bits(INPUT),
                septa_runtime::septa_sel4::Cap::from_bits(REPLY),
            );
        }
        8300..=8699 => {
            syscall::poll(CPtr::from_bits(INPUT));
        }
        8700..=8899 => {
            syscall::signal(CPtr::from_bits(INPUT));
            syscall::wait(CPtr::from_bits(INPUT));
        }
        // Yield gives up the rest of the budget (MCS): the cell waits for
        // its next period, so yields are rare.
        8900 => syscall::yield_now(),
        8901..=9899 => syscall::nb_send(cap, message(next())),
        // A non-blocking send on a slot it does not hold: refused, no fault.
        9900..=9959 => syscall::nb_send(CPtr::from_bits(any_slot(next())), message(next())),
        // Faults: a call or a receive on a slot it does not hold, an
        // unknown system call, a random memory access.
        9960..=9969 => {
            syscall::call(
                CPtr::from_bits(any_slot(next()) | 0x1000),
                msginfo_new(next() % 64, 0),
            );
        }
        9970..=9979 => {
            syscall::nb_recv(
                CPtr::from_bits(any_slot(next()) | 0x1000),
                septa_runtime::septa_sel4::Cap::from_bits(REPLY),
            );
        }
        9980..=9984 => raw_syscall(unknown_syscall(next()), next(), next()),
        // A receive on one of its caps other than its input: it may only
        // send on them, so the kernel refuses (a fault); with read rights
        // it would take what is meant for its peers.
        9985..=9994 => {
            syscall::nb_recv(cap, septa_runtime::septa_sel4::Cap::from_bits(REPLY));
        }
        _ => {
            let write = r & (1 << 40) != 0;
            touch(address(next(), write), write, r);
        }
    }
}

fn fuzz() {
    STARTS.replace(STARTS.get() + 1);
    find_held();
    if STARTS.get() == 1 {
        println!("fuzzer: {OPERATIONS} random operations");
    }
    while DONE.get() < OPERATIONS {
        // Counted before it runs: an operation that faults is not redone.
        DONE.replace(DONE.get() + 1);
        operation();
    }
    let judge = Channel::new(judge_channel());
    septa_runtime::mr_set(0, p::FUZZ_MAGIC);
    septa_runtime::mr_set(1, DONE.get());
    septa_runtime::mr_set(2, STARTS.get());
    println!(
        "fuzzer: {} operations made, started {} times",
        DONE.get(),
        STARTS.get()
    );
    let _ = judge.pp_call(msginfo_new(p::FUZZ_DONE, 3));
}

septa_runtime::patched! {
    /// A cell's table of channels by peer name (`septa_cells::peers`),
    /// which the tool writes into every cell; the fuzzer reads it raw.
    static PEERS: [u8; peers::SIZE] = "septa_cell_peers", [0; peers::SIZE];
}

/// The fuzzer's channel to the judge: the first entry of its peer table
/// (the system declares it first), the id after the name.
fn judge_channel() -> u8 {
    PEERS.byte(peers::NAME_LEN)
}
/// The judge's channels: the fuzzer's and the bystander's.
const FROM_FUZZER: u8 = 0;
const BYSTANDER: Channel = Channel::new(1);

struct Judge {
    fuzzed: bool,
    refused: u64,
}

impl Handler for Judge {
    fn notified(&mut self, _: ChannelSet) {
        // The fuzzer notifies at random: nothing to do.
    }

    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
        let magic = if msg.length() > 0 { mr_get(0) } else { 0 };
        match (ch.id(), msg.label(), magic) {
            (FROM_FUZZER, p::FUZZ_DONE, p::FUZZ_MAGIC) if !self.fuzzed => {
                self.fuzzed = true;
                let (ops, starts) = (mr_get(1), mr_get(2));
                println!(
                    "judge: the fuzzer made {ops} operations and was started {starts} times; {} random calls to the judge refused",
                    self.refused
                );
                if ops >= OPERATIONS {
                    println!("{}", report::ok("fuzzer-made-a-million-operations"));
                } else {
                    println!("{}", report::fail("fuzzer-made-a-million-operations", &ops));
                }
                if starts > 1 {
                    println!("{}", report::ok("fuzzer-faults-restarted"));
                } else {
                    println!(
                        "{}",
                        report::fail("fuzzer-faults-restarted", &"it never faulted")
                    );
                }
                let _ = BYSTANDER.notify();
                msginfo_new(p::OK, 0)
            }
            (1, p::VERDICT, p::VERDICT_MAGIC) => {
                let (verdict, ticks) = (mr_get(1), mr_get(2));
                println!("judge: the bystander saw {ticks} timeouts");
                match verdict {
                    p::INTACT if ticks > 0 => println!("{}", report::ok("bystander-untouched")),
                    _ => println!("{}", report::fail("bystander-untouched", &verdict)),
                }
                println!("{}", report::DONE);
                msginfo_new(p::OK, 0)
            }
            _ => {
                self.refused += 1;
                msginfo_new(p::REFUSED, 0)
            }
        }
    }
}

enum Role {
    Judge(Judge),
    Fuzzer,
}

impl Handler for Role {
    fn notified(&mut self, ch: ChannelSet) {
        if let Role::Judge(j) = self {
            j.notified(ch);
        }
    }

    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
        match self {
            Role::Judge(j) => j.protected(ch, msg),
            Role::Fuzzer => msginfo_new(p::REFUSED, 0),
        }
    }
}

fn init() -> Role {
    if septa_runtime::pd_name().as_str() == "judge" {
        return Role::Judge(Judge {
            fuzzed: false,
            refused: 0,
        });
    }
    fuzz();
    Role::Fuzzer
}

protection_domain!(init);
