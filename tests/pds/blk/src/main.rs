//! # test-blk: block clients that check what the disk gives back
//!
//! One program, told its role by its PD's name. Each waits on its own
//! notification (a `notification` cap in slot 1) inside `init`, so that a
//! test reads as a sequence of requests and their answers.
//!
//! - `rw` (tests/systems/blk-rw): writes a pattern over its whole
//!   partition, 16 blocks a request and four in flight, flushes, reads it
//!   all back and checks every word; then overwrites scattered single
//!   blocks with a second pattern and checks the mix; then the partition's
//!   edges (its last block is writable, the one after it is refused).
//! - `owner` and `intruder` (tests/systems/blk-partitions): the owner fills
//!   its partition (right after the intruder's) and tells the intruder; the
//!   intruder reads and writes past its end, across it, at absurd block
//!   numbers, from outside its data region, misaligned, with no blocks and
//!   with an unknown code, and must be refused every time, while its own
//!   last block still works; then the owner checks its data is untouched.
//! - `direct` (tests/systems/blk-driver): wired to the driver by hand, no
//!   virtualiser: reads, writes, flushes and a barrier on the whole disk,
//!   and the device's own error for a read past its end.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_block_protocol::{Connection, RequestCode, Response, Status, TRANSFER_SIZE};
use septa_runtime::{
    println, protection_domain, setvar, Channel, ChannelSet, Handler, OwnNotification,
};
use septa_test_report as report;

setvar! {
    /// The partition's size the description declares, in blocks (`rw`).
    static EXPECT_BLOCKS = "expect_blocks";
}

/// The channel between `owner` and `intruder`.
const PEER: Channel = Channel::new(5);
/// Blocks a request moves in the bulk passes, and requests in flight.
const CHUNK: u16 = 16;
const DEPTH: u64 = 4;
const BLOCK: usize = TRANSFER_SIZE as usize;

fn fail(case: &str, why: &dyn core::fmt::Display) {
    println!("{}", report::fail(case, why));
}

fn verdict(case: &str, ok: bool, why: &dyn core::fmt::Display) {
    if ok {
        println!("{}", report::ok(case));
    } else {
        fail(case, why);
    }
}

/// The word `w` of block `b` in pattern `pass`.
fn word(b: u64, w: usize, pass: u64) -> u64 {
    (b << 32 | w as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ pass.wrapping_mul(0xd6e8_feb8_6659_fd93)
}

struct Disk {
    c: Connection,
    wait: OwnNotification,
    next: u32,
    blocks: u64,
    data_blocks: u64,
}

impl Disk {
    /// Attaches and waits until the server says what the storage is.
    fn open() -> Disk {
        let c = Connection::from_setvars()
            .unwrap_or_else(|e| panic!("{}: not a block client: {e}", septa_runtime::pd_name()));
        let wait = OwnNotification::in_slot(1).expect("slot 1");
        let info = loop {
            match c.info() {
                Some(i) => break i,
                None => {
                    wait.wait();
                }
            }
        };
        let data_blocks = c.data().len() as u64 / TRANSFER_SIZE as u64;
        Disk {
            c,
            wait,
            next: 1,
            blocks: info.capacity,
            data_blocks,
        }
    }

    /// One request, waited for.
    fn one(&mut self, code: RequestCode, offset: u64, block: u64, count: u16) -> Response {
        self.next += 1;
        let id = self.next;
        if let Err(e) = self.c.stage(code, offset, block, count, id) {
            panic!("the request queue refused a request: {e}");
        }
        let mut got = None;
        let wait = self.wait;
        self.c
            .complete(
                1,
                || {
                    wait.wait();
                },
                |r| got = Some(r),
            )
            .expect("the server keeps its queue protocol");
        let r = got.expect("one response");
        assert_eq!(r.id, id, "the response answers the request");
        r
    }

    /// Moves `blocks` blocks from `first` in requests of [`CHUNK`] blocks,
    /// [`DEPTH`] at a time, each batch through data buffers `0..DEPTH`;
    /// `before` fills a buffer (for writes), `after` checks one (reads).
    /// Returns the first error status, if any.
    fn bulk(
        &mut self,
        code: RequestCode,
        first: u64,
        blocks: u64,
        mut before: impl FnMut(&Connection, u64, u64, u16),
        mut after: impl FnMut(&Connection, u64, u64, u16),
    ) -> Option<Status> {
        let mut b = first;
        let mut bad = None;
        while b < first + blocks {
            let mut batch = [(0u64, 0u16, 0u32); DEPTH as usize];
            let mut n = 0;
            while n < DEPTH as usize && b < first + blocks {
                let count = (first + blocks - b).min(u64::from(CHUNK)) as u16;
                let offset = n as u64 * u64::from(CHUNK) * TRANSFER_SIZE as u64;
                before(&self.c, offset, b, count);
                self.next += 1;
                self.c
                    .stage(code, offset, b, count, self.next)
                    .expect("room for a batch");
                batch[n] = (b, count, self.next);
                b += u64::from(count);
                n += 1;
            }
            let wait = self.wait;
            let mut statuses = [(0u32, Status::Ok); DEPTH as usize];
            let mut k = 0;
            self.c
                .complete(
                    n,
                    || {
                        wait.wait();
                    },
                    |r| {
                        statuses[k] = (r.id, r.status);
                        k += 1;
                    },
                )
                .expect("the server keeps its queue protocol");
            for (i, &(blk, count, id)) in batch[..n].iter().enumerate() {
                let status = statuses[..n].iter().find(|s| s.0 == id).map(|s| s.1);
                match status {
                    Some(Status::Ok) => {
                        let offset = i as u64 * u64::from(CHUNK) * TRANSFER_SIZE as u64;
                        after(&self.c, offset, blk, count);
                    }
                    other => {
                        bad.get_or_insert(other.unwrap_or(Status::Unspecified));
                    }
                }
            }
        }
        bad
    }
}

/// Writes pattern `pass` for blocks `b..b+count` into the buffer at `offset`.
fn fill(c: &Connection, offset: u64, b: u64, count: u16, pass: u64) {
    let mut block = [0u8; BLOCK];
    for k in 0..u64::from(count) {
        for (w, chunk) in block.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&word(b + k, w, pass).to_le_bytes());
        }
        let at = offset as usize + k as usize * BLOCK;
        c.data().write(at, &block).expect("inside the data region");
    }
}

/// The first block of `b..b+count` in the buffer at `offset` that does not
/// hold pattern `pass(block)`.
fn first_wrong(
    c: &Connection,
    offset: u64,
    b: u64,
    count: u16,
    pass: impl Fn(u64) -> u64,
) -> Option<u64> {
    let mut block = [0u8; BLOCK];
    for k in 0..u64::from(count) {
        let at = offset as usize + k as usize * BLOCK;
        c.data()
            .read(at, &mut block)
            .expect("inside the data region");
        let p = pass(b + k);
        let good = block
            .chunks_exact(8)
            .enumerate()
            .all(|(w, chunk)| u64::from_le_bytes(chunk.try_into().unwrap()) == word(b + k, w, p));
        if !good {
            return Some(b + k);
        }
    }
    None
}

fn rw() {
    let mut d = Disk::open();
    let want = EXPECT_BLOCKS.get();
    verdict(
        "capacity",
        d.blocks == want && d.blocks > 0,
        &format_args!(
            "the partition has {} blocks, the description says {want}",
            d.blocks
        ),
    );
    assert!(
        d.data_blocks >= DEPTH * u64::from(CHUNK),
        "the data region holds a batch"
    );
    let blocks = d.blocks;
    let bad = d.bulk(
        RequestCode::Write,
        0,
        blocks,
        |c, o, b, n| fill(c, o, b, n, 1),
        |_, _, _, _| {},
    );
    verdict(
        "write-whole",
        bad.is_none(),
        &format_args!("a write failed: {bad:?}"),
    );
    let r = d.one(RequestCode::Flush, 0, 0, 0);
    verdict(
        "flush",
        r.status == Status::Ok,
        &format_args!("{:?}", r.status),
    );
    let mut wrong = None;
    let bad = d.bulk(
        RequestCode::Read,
        0,
        blocks,
        |_, _, _, _| {},
        |c, o, b, n| {
            if wrong.is_none() {
                wrong = first_wrong(c, o, b, n, |_| 1);
            }
        },
    );
    verdict(
        "read-back",
        bad.is_none() && wrong.is_none(),
        &format_args!("status {bad:?}, first wrong block {wrong:?}"),
    );

    // Every 37th block gets pattern 2, alone in its request.
    let second = |b: u64| if b % 37 == 5 { 2 } else { 1 };
    let mut ok = true;
    for b in (5..blocks).step_by(37) {
        fill(&d.c, 0, b, 1, 2);
        ok &= d.one(RequestCode::Write, 0, b, 1).status == Status::Ok;
    }
    ok &= d.one(RequestCode::Flush, 0, 0, 0).status == Status::Ok;
    let mut wrong = None;
    let bad = d.bulk(
        RequestCode::Read,
        0,
        blocks,
        |_, _, _, _| {},
        |c, o, b, n| {
            if wrong.is_none() {
                wrong = first_wrong(c, o, b, n, second);
            }
        },
    );
    verdict(
        "overwrite",
        ok && bad.is_none() && wrong.is_none(),
        &format_args!("writes ok: {ok}, status {bad:?}, first wrong block {wrong:?}"),
    );

    let last = d.one(RequestCode::Write, 0, blocks - 1, 1).status;
    let past = d.one(RequestCode::Write, 0, blocks, 1).status;
    verdict(
        "edges",
        last == Status::Ok && past == Status::InvalidParam,
        &format_args!("last block: {last:?}, the one after: {past:?}"),
    );
}

fn owner() {
    let mut d = Disk::open();
    let blocks = d.blocks;
    let bad = d.bulk(
        RequestCode::Write,
        0,
        blocks,
        |c, o, b, n| fill(c, o, b, n, 7),
        |_, _, _, _| {},
    );
    let f = d.one(RequestCode::Flush, 0, 0, 0).status;
    verdict(
        "owner-fill",
        bad.is_none() && f == Status::Ok,
        &format_args!("write {bad:?}, flush {f:?}"),
    );
    let _ = PEER.notify();
    // The intruder's attempts, then its signal.
    while !d.wait.wait().contains(PEER) {}
    let mut wrong = None;
    let bad = d.bulk(
        RequestCode::Read,
        0,
        blocks,
        |_, _, _, _| {},
        |c, o, b, n| {
            if wrong.is_none() {
                wrong = first_wrong(c, o, b, n, |_| 7);
            }
        },
    );
    verdict(
        "untouched",
        bad.is_none() && wrong.is_none(),
        &format_args!("status {bad:?}, first changed block {wrong:?}"),
    );
    println!("{}", report::DONE);
}

fn intruder() {
    let mut d = Disk::open();
    while !d.wait.wait().contains(PEER) {}
    let (end, data) = (d.blocks, d.data_blocks * TRANSFER_SIZE as u64);
    let attempts: [(&str, RequestCode, u64, u64, u16); 9] = [
        ("read-past-end", RequestCode::Read, 0, end, 1),
        ("write-past-end", RequestCode::Write, 0, end, 4),
        ("read-across-end", RequestCode::Read, 0, end - 1, 2),
        ("write-across-end", RequestCode::Write, 0, end - 2, 8),
        ("write-wrapping", RequestCode::Write, 0, u64::MAX - 1, 4),
        ("buffer-outside-data", RequestCode::Write, data, 0, 1),
        ("buffer-misaligned", RequestCode::Write, 0x800, 0, 1),
        ("no-blocks", RequestCode::Write, 0, 0, 0),
        ("unknown-code", RequestCode::Other(9), 0, 0, 1),
    ];
    fill(&d.c, 0, 0, 8, 99);
    for (case, code, offset, block, count) in attempts {
        let s = d.one(code, offset, block, count).status;
        verdict(
            case,
            s == Status::InvalidParam,
            &format_args!("answered {s:?}"),
        );
    }
    let s = d.one(RequestCode::Write, 0, end - 1, 1).status;
    verdict(
        "own-last-block",
        s == Status::Ok,
        &format_args!("answered {s:?}"),
    );
    let _ = PEER.notify();
}

fn direct() {
    let mut d = Disk::open();
    let blocks = d.blocks;
    let span = 64.min(blocks);
    let bad = d.bulk(
        RequestCode::Write,
        blocks - span,
        span,
        |c, o, b, n| fill(c, o, b, n, 3),
        |_, _, _, _| {},
    );
    let barrier = d.one(RequestCode::Barrier, 0, 0, 0).status;
    let flush = d.one(RequestCode::Flush, 0, 0, 0).status;
    let mut wrong = None;
    let bad2 = d.bulk(
        RequestCode::Read,
        blocks - span,
        span,
        |_, _, _, _| {},
        |c, o, b, n| {
            if wrong.is_none() {
                wrong = first_wrong(c, o, b, n, |_| 3);
            }
        },
    );
    verdict(
        "driver-rw",
        bad.is_none()
            && bad2.is_none()
            && wrong.is_none()
            && flush == Status::Ok
            && barrier == Status::Ok,
        &format_args!(
            "write {bad:?} read {bad2:?} wrong {wrong:?} flush {flush:?} barrier {barrier:?}"
        ),
    );
    // The device itself refuses a read past its end.
    let s = d.one(RequestCode::Read, 0, blocks, 1).status;
    verdict(
        "device-ioerr",
        s == Status::Io,
        &format_args!("answered {s:?}"),
    );
    let s = d.one(RequestCode::Other(7), 0, 0, 1).status;
    verdict(
        "driver-unknown-code",
        s == Status::InvalidParam,
        &format_args!("answered {s:?}"),
    );
    let s = d.one(RequestCode::Read, 0, 0, 0).status;
    verdict(
        "driver-no-blocks",
        s == Status::InvalidParam,
        &format_args!("answered {s:?}"),
    );
}

/// What a role leaves behind once it has said everything: notifications
/// that arrive late (a last signal from the server) are nothing to act on.
struct Finished;

impl Handler for Finished {
    fn notified(&mut self, _: ChannelSet) {}
}

fn init() -> Finished {
    match septa_runtime::pd_name().as_str() {
        "rw" => {
            rw();
            println!("{}", report::DONE);
        }
        "owner" => owner(),
        "intruder" => intruder(),
        "direct" => {
            direct();
            println!("{}", report::DONE);
        }
        other => panic!("no block test role for PD {other:?}"),
    }
    Finished
}

protection_domain!(init);
