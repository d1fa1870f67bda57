//! The key-value sessions: `powercut` and `corrupt`, run against the
//! `storm` role of `tests/pds/kv` (its header gives the console lines it
//! prints) and the kv cell's start-up report (`protection-domains/kv`).
//!
//! The host keeps the model: for each key, the value (version, length) of
//! the last acknowledged put, or none after an acknowledged delete. Every
//! line the storm printed before a cut reaches the host (the console is
//! the PL011, written synchronously by QEMU, and the pipe is read to its
//! end after the kill), so the host knows every operation begun; at most
//! one, the last, was not acknowledged.
//!
//! - **powercut**: before each boot the host opens a copy of the
//!   partition with `septa-kv-store` itself and requires the cell to report
//!   the same recovery (records, keys, checksum failures): a checksum
//!   failure that goes unreported fails. The read-back must be exactly
//!   the model, or the model with the one unacknowledged operation applied
//!   whole; every value must pass the storm's byte check (nothing torn is
//!   half-present) and no get may fail. Cut points are seeded: after a
//!   random number of operations of the boot, a random few milliseconds
//!   more, so that cuts land inside writes, flushes and compactions.
//! - **corrupt**: between two boots the host writes random bytes over the
//!   partition (spans over the live log, one superblock copy, or all of
//!   it). The cell must refuse the disk or recover; every value it
//!   returns must be one that was put (whole), and if what it returns
//!   differs from the model, it must have reported damage (a checksum
//!   failure, lost records, a bad superblock copy, a `Corrupt` answer).
//!   After a refusal the host blanks the partition and fills it again.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use miette::{miette, IntoDiagnostic, Result};
use septa_kv_store::{Disk, End, State, Store};
use septa_partition::SECTOR;

use super::{Missed, Rng, Session};

/// A kv session's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Cuts (powercut) or rounds of damage (corrupt).
    pub count: usize,
    pub seed: u64,
    /// The store's partition, by its name in the description.
    pub partition: String,
    pub device: Option<String>,
}

impl Settings {
    /// Reads `kills=N` (powercut) or `rounds=N` (corrupt), `seed=S`,
    /// `partition=P`, `[device=D]`.
    pub fn parse(words: &[&str], powercut: bool) -> Result<Settings, String> {
        let count_key = if powercut { "kills" } else { "rounds" };
        let (mut count, mut seed, mut partition, mut device) = (None, None, None, None);
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("expected KEY=VALUE, not {w:?}"))?;
            let number = || {
                v.parse::<u64>()
                    .map_err(|_| format!("{k} takes a number, not {v:?}"))
            };
            match k {
                _ if k == count_key => count = Some(number()? as usize),
                "seed" => seed = Some(number()?),
                "partition" => partition = Some(v.to_string()),
                "device" => device = Some(v.to_string()),
                _ => {
                    return Err(format!(
                        "unknown setting {k:?} ({count_key}, seed, partition, device)"
                    ))
                }
            }
        }
        let missing = |what: &str| format!("missing {what}=...");
        Ok(Settings {
            count: count.filter(|&c| c > 0).ok_or_else(|| missing(count_key))?,
            seed: seed.ok_or_else(|| missing("seed"))?,
            partition: partition.ok_or_else(|| missing("partition"))?,
            device,
        })
    }
}

/// Where a partition's bytes are in an image: (offset, length).
fn partition_bytes(image: &Path, name: &str) -> Result<(u64, u64)> {
    let ends = crate::disk::Ends::read(image)?;
    let w = ends.window();
    let table = septa_partition::read(&w).map_err(|e| miette!("{}: {e}", image.display()))?;
    let found = table
        .partitions()
        .flatten()
        .find(|p| p.name.is(name) || p.index.to_string() == name)
        .map(|p| (p.first * SECTOR, p.sectors * SECTOR));
    found.ok_or_else(|| miette!("{}: no partition `{name}`", image.display()))
}

fn read_bytes(image: &Path, (at, len): (u64, u64)) -> Result<Vec<u8>> {
    let mut f = std::fs::File::open(image).into_diagnostic()?;
    f.seek(SeekFrom::Start(at)).into_diagnostic()?;
    let mut v = vec![0u8; len as usize];
    f.read_exact(&mut v).into_diagnostic()?;
    Ok(v)
}

fn write_bytes(image: &Path, at: u64, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(image)
        .into_diagnostic()?;
    f.seek(SeekFrom::Start(at)).into_diagnostic()?;
    f.write_all(bytes).into_diagnostic()?;
    f.sync_data().into_diagnostic()
}

/// A partition's bytes as a disk, for the host's own look at the store.
struct Mem(Vec<u8>);

impl Disk for Mem {
    type Error = &'static str;
    fn blocks(&self) -> u64 {
        self.0.len() as u64 / 4096
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let at = block as usize * 4096;
        let src = self.0.get(at..at + buf.len()).ok_or("past the end")?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), Self::Error> {
        let at = block as usize * 4096;
        let dst = self.0.get_mut(at..at + buf.len()).ok_or("past the end")?;
        dst.copy_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// What the host finds opening (a copy of) the store: the recovery the
/// cell must report, and where the log lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Blank,
    Refused,
    Recovered {
        records: u64,
        keys: usize,
        failures: u32,
        torn: bool,
        head: u64,
        tail: u64,
        log_blocks: u64,
    },
}

fn look(bytes: Vec<u8>) -> Look {
    if bytes[..2 * 4096].iter().all(|&b| b == 0) {
        return Look::Blank;
    }
    let mut state = Box::new(State::new());
    match Store::open(&mut state, Mem(bytes), 0) {
        Ok((store, r)) => {
            let u = store.usage();
            Look::Recovered {
                records: r.records,
                keys: r.keys,
                failures: r.checksum_failures(),
                torn: r.end != End::Clean,
                head: u.head,
                tail: u.tail,
                log_blocks: u.log_blocks,
            }
        }
        Err(_) => Look::Refused,
    }
}

/// Checks the cell's start-up report against what the host found.
fn report_matches(lines: &[String], l: Look) -> Result<(), String> {
    let find = |pat: &str| lines.iter().find(|x| x.contains(pat)).cloned();
    match l {
        Look::Blank => find("was blank: formatted")
            .map(|_| ())
            .ok_or_else(|| "the cell did not report formatting a blank partition".into()),
        Look::Refused => find("kv: REFUSED")
            .map(|_| ())
            .ok_or_else(|| "the host cannot open the store, but the cell did not refuse it".into()),
        Look::Recovered {
            records,
            keys,
            failures,
            ..
        } => {
            let want_rec = format!("kv: recovered {records} records, {keys} keys");
            let want_fail = format!("kv: {failures} checksum failure(s) at start");
            match (find(&want_rec), find(&want_fail)) {
                (Some(_), Some(_)) => Ok(()),
                _ => Err(format!(
                    "the host's look at the partition says \"{want_rec}\" and \"{want_fail}\"; the cell said {:?}",
                    lines
                        .iter()
                        .filter(|x| x.contains("kv: "))
                        .collect::<Vec<_>>()
                )),
            }
        }
    }
}

/// A value as the storm describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    Value { version: u32, len: usize },
    Torn { len: usize },
    Error(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Put {
        key: String,
        version: u32,
        len: usize,
    },
    Del {
        key: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Pending,
    Acked,
    Refused,
}

/// What one boot's storm printed.
#[derive(Debug, Default)]
struct Storm {
    found: BTreeMap<String, Found>,
    read_back: bool,
    unavailable: bool,
    ops: Vec<(Op, Answer)>,
    problems: Vec<String>,
}

fn field<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words.iter().find_map(|w| w.strip_prefix(key))
}

impl Storm {
    fn parse(lines: &[String]) -> Storm {
        let mut s = Storm::default();
        for (i, l) in lines.iter().enumerate() {
            let Some(rest) = l.split_once("storm: ").map(|(_, r)| r) else {
                continue;
            };
            // A cut may end the console inside a line; the storm prints
            // before it calls, so an operation cut short in its line was
            // never called.
            let cut_short = i + 1 == lines.len();
            let unreadable = |s: &mut Storm| {
                if !cut_short {
                    s.problems.push(format!("unreadable line {l:?}"));
                }
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            let num = |k: &str| field(&words, k).and_then(|v| v.parse::<u64>().ok());
            match words.first().copied() {
                Some("found") if words.len() >= 3 => {
                    let key = words[1].to_string();
                    let f = if let Some(e) = field(&words, "error=") {
                        Found::Error(e.to_string())
                    } else if words[2] == "torn" {
                        Found::Torn {
                            len: num("len=").unwrap_or(0) as usize,
                        }
                    } else {
                        match (num("v="), num("len=")) {
                            (Some(v), Some(len)) => Found::Value {
                                version: v as u32,
                                len: len as usize,
                            },
                            _ => {
                                unreadable(&mut s);
                                continue;
                            }
                        }
                    };
                    s.found.insert(key, f);
                }
                Some("found") => unreadable(&mut s),
                Some("read") => s.read_back = true,
                Some("the") => s.unavailable = true,
                Some("put") => match (words.get(1), num("v="), num("len=")) {
                    (Some(k), Some(v), Some(len)) => s.ops.push((
                        Op::Put {
                            key: k.to_string(),
                            version: v as u32,
                            len: len as usize,
                        },
                        Answer::Pending,
                    )),
                    _ => unreadable(&mut s),
                },
                Some("del") => match words.get(1) {
                    Some(k) => s
                        .ops
                        .push((Op::Del { key: k.to_string() }, Answer::Pending)),
                    None => unreadable(&mut s),
                },
                Some("acked") | Some("refused") => {
                    let a = if words[0] == "acked" {
                        Answer::Acked
                    } else {
                        s.problems
                            .push(format!("the store refused an operation: {l:?}"));
                        Answer::Refused
                    };
                    match s.ops.last_mut() {
                        Some((_, ans @ Answer::Pending)) => *ans = a,
                        _ => s.problems.push(format!("an answer to no operation: {l:?}")),
                    }
                }
                _ => {}
            }
        }
        if let Some(i) = s.ops.iter().position(|(_, a)| *a == Answer::Pending) {
            if i + 1 != s.ops.len() {
                s.problems
                    .push(format!("operation {} was never answered", i + 1));
            }
        }
        s
    }

    /// The values read back (torn and failed ones left out).
    fn values(&self) -> Model {
        self.found
            .iter()
            .filter_map(|(k, f)| match f {
                Found::Value { version, len } => Some((k.clone(), (*version, *len))),
                _ => None,
            })
            .collect()
    }

    /// The unacknowledged operation a cut left, if any.
    fn in_flight(&self) -> Option<Op> {
        match self.ops.last() {
            Some((op, Answer::Pending)) => Some(op.clone()),
            _ => None,
        }
    }
}

/// Key → (version, length) of its value.
type Model = BTreeMap<String, (u32, usize)>;

fn apply(m: &mut Model, op: &Op) {
    match op {
        Op::Put { key, version, len } => {
            m.insert(key.clone(), (*version, *len));
        }
        Op::Del { key } => {
            m.remove(key);
        }
    }
}

/// How two models differ, for a failure message.
fn differences(want: &Model, got: &Model) -> String {
    let mut d = Vec::new();
    for (k, v) in want {
        match got.get(k) {
            None => d.push(format!("{k} v={} missing", v.0)),
            Some(g) if g != v => d.push(format!("{k} v={} found as v={}", v.0, g.0)),
            _ => {}
        }
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            d.push(format!("{k} v={} should be absent", g.0));
        }
    }
    d.truncate(6);
    d.join(", ")
}

/// How long one boot may take to read its store back.
const BOOT_LIMIT: Duration = Duration::from_secs(60);

/// Most operations a boot makes before its cut.
const MAX_OPS_BEFORE_CUT: u64 = 12;
/// A value this long is written in several requests (the test gives the
/// cell an 8 KiB transfer region).
const LARGE: usize = 16 * 1024;
/// Most extra microseconds before a cut, after the chosen operation began.
const MAX_CUT_DELAY_US: u64 = 4000;

/// `powercut`: see the module header.
pub fn powercut(s: &mut Session, k: &Settings) -> Result<()> {
    let image = s.disk(k.device.as_deref())?;
    let part = partition_bytes(&image, &k.partition)?;
    let mut rng = Rng::new(k.seed);
    let mut model = Model::new();
    let mut in_flight: Option<Op> = None;
    let (mut torn, mut applied, mut dropped, mut acked) = (0, 0, 0, 0);
    let mut problems: Vec<String> = Vec::new();
    // `count` cuts, then one boot more to read back after the last.
    for i in 0..=k.count {
        let last = i == k.count;
        let before = look(read_bytes(&image, part)?);
        if let Look::Recovered { torn: true, .. } = before {
            torn += 1;
        }
        let mut b = s.boot()?;
        let n = s.boot_number();
        let deadline = (Instant::now() + BOOT_LIMIT).min(s.deadline);
        let at = b.wait_for(deadline, |l| l.contains("storm: read back"));
        if at.is_ok() && !last {
            let ops = rng.range(1, MAX_OPS_BEFORE_CUT);
            // Every other cut waits for a large put after that: it takes
            // several requests, so the cut may tear its record.
            let large = rng.range(0, 1) == 1;
            let mut seen = 0;
            let _ = b.wait_for(deadline, |l| {
                if l.contains("storm: put ") || l.contains("storm: del ") {
                    seen += 1;
                }
                let big = l
                    .split_once(" len=")
                    .and_then(|(_, n)| n.trim().parse::<usize>().ok())
                    .is_some_and(|n| n >= LARGE);
                seen >= ops && (!large || (l.contains("storm: put ") && big))
            });
            // The one deliberate delay: where in the operation the cut lands.
            std::thread::sleep(Duration::from_micros(rng.range(0, MAX_CUT_DELAY_US)));
        }
        let (lines, err) = b.cut();
        s.absorb(&lines, &err);
        if let Err(m) = at {
            problems.push(format!(
                "boot {n}: {} before the storm read its keys back",
                if m == Missed::TimedOut {
                    "timed out"
                } else {
                    "QEMU ended"
                }
            ));
            break;
        }
        if let Err(e) = report_matches(&lines, before) {
            problems.push(format!("boot {n}: {e}"));
        }
        let storm = Storm::parse(&lines);
        problems.extend(storm.problems.iter().map(|p| format!("boot {n}: {p}")));
        for (key, f) in &storm.found {
            if !matches!(f, Found::Value { .. }) {
                problems.push(format!("boot {n}: {key} read back as {f:?}"));
            }
        }
        let got = storm.values();
        let mut with = model.clone();
        if let Some(op) = &in_flight {
            apply(&mut with, op);
        }
        if got == model {
            dropped += usize::from(in_flight.is_some() && with != model);
        } else if got == with {
            applied += 1;
        } else {
            problems.push(format!(
                "boot {n}: the read-back is neither what was acknowledged nor that plus the cut operation ({:?}): {}",
                in_flight,
                differences(&model, &got)
            ));
        }
        // Judge the next boot from what this one found.
        model = got;
        for (op, a) in &storm.ops {
            if *a == Answer::Acked {
                apply(&mut model, op);
                acked += 1;
            }
        }
        in_flight = storm.in_flight();
        if problems.len() > 8 {
            break;
        }
    }
    s.log.push_str(&format!(
        "powercut: {} cuts, {acked} acknowledged operations, {torn} recoveries met a torn record, \
         the cut operation was found applied {applied} times and not {dropped} times\n",
        k.count
    ));
    s.case(
        "powercut",
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        },
    );
    println!(
        "   powercut: {} cuts, {acked} acknowledged operations, {torn} recoveries met a torn record; the cut operation found {applied}, not found {dropped}",
        k.count
    );
    Ok(())
}

/// How a round damages the partition.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Random spans, mostly over the live log.
    Spans,
    /// One superblock copy.
    Super,
    /// Every byte.
    Whole,
}

fn damage(
    image: &Path,
    (at, len): (u64, u64),
    how: Damage,
    before: Look,
    rng: &mut Rng,
) -> Result<String> {
    let write_random = |rng: &mut Rng, off: u64, n: u64| -> Result<()> {
        let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        write_bytes(image, at + off, &bytes)
    };
    let mut spans = Vec::new();
    match how {
        Damage::Whole => write_random(rng, 0, len)?,
        Damage::Super => {
            let copy = rng.range(0, 1);
            write_random(rng, copy * 4096, 4096)?;
            spans.push(format!("superblock copy {copy}"));
        }
        Damage::Spans => {
            let (head, tail, log) = match before {
                Look::Recovered {
                    head,
                    tail,
                    log_blocks,
                    ..
                } => (head, tail, log_blocks),
                _ => (0, 0, len / 4096 - 2),
            };
            let live = (tail + log - head) % log;
            for _ in 0..rng.range(1, 4) {
                let n = rng.range(1, 16 * 1024);
                // Three in four over the live log, else anywhere.
                let off = if live > 0 && rng.range(0, 3) > 0 {
                    let block = 2 + (head + rng.range(0, live - 1)) % log;
                    block * 4096 + rng.range(0, 4095)
                } else {
                    rng.range(0, len - 1)
                };
                let n = n.min(len - off);
                write_random(rng, off, n)?;
                spans.push(format!("{n} bytes at {off}"));
            }
        }
    }
    Ok(format!("{how:?} {}", spans.join(", ")))
}

/// Lines by which the cell says it found damage.
fn damage_reported(lines: &[String], storm: &Storm) -> bool {
    lines.iter().any(|l| {
        l.contains("kv: checksum failure:")
            || l.contains("kv: DAMAGE")
            || l.contains("kv: superblock copy")
            || l.contains("kv: REFUSED")
    }) || storm
        .found
        .values()
        .any(|f| *f == Found::Error("Corrupt".into()))
}

/// `corrupt`: see the module header.
pub fn corrupt(s: &mut Session, k: &Settings) -> Result<()> {
    let image = s.disk(k.device.as_deref())?;
    let part = partition_bytes(&image, &k.partition)?;
    let mut rng = Rng::new(k.seed);
    // Every (version, length) each key ever held, acknowledged.
    let mut history: BTreeMap<String, Vec<(u32, usize)>> = BTreeMap::new();
    let mut model = Model::new();
    let mut problems: Vec<String> = Vec::new();
    let (mut refused, mut recovered_damage, mut unharmed) = (0, 0, 0);
    let boot = |s: &mut Session, model: &mut Model, history: &mut BTreeMap<_, Vec<_>>| {
        let before = look(read_bytes(&image, part)?);
        let b = s.boot()?;
        let (lines, err, done) = b.finish(s.deadline);
        s.absorb(&lines, &err);
        let n = s.boot_number();
        let storm = Storm::parse(&lines);
        let mut p = Vec::new();
        if !done {
            p.push(format!("boot {n}: did not print done in time"));
        }
        if let Err(e) = report_matches(&lines, before) {
            p.push(format!("boot {n}: {e}"));
        }
        p.extend(storm.problems.iter().map(|x| format!("boot {n}: {x}")));
        let mut after = storm.values();
        for (op, a) in &storm.ops {
            if *a == Answer::Acked {
                apply(&mut after, op);
                if let Op::Put { key, version, len } = op {
                    history
                        .entry(key.clone())
                        .or_default()
                        .push((*version, *len));
                }
            } else {
                p.push(format!("boot {n}: {op:?} was not acknowledged"));
            }
        }
        let judged = (storm, lines, before);
        *model = after;
        Ok::<_, miette::Report>((judged, p))
    };
    let ((_, _, _), p) = boot(s, &mut model, &mut history)?;
    problems.extend(p);
    for round in 1..=k.count {
        let before = look(read_bytes(&image, part)?);
        let how = match rng.range(0, 5) {
            0 => Damage::Whole,
            1 => Damage::Super,
            _ => Damage::Spans,
        };
        let what = damage(&image, part, how, before, &mut rng)?;
        s.log
            .push_str(&format!("==== round {round}: the host wrote {what} ====\n"));
        let expected = model.clone();
        let ((storm, lines, _), p) = boot(s, &mut model, &mut history)?;
        problems.extend(p);
        let n = s.boot_number();
        let reported = damage_reported(&lines, &storm);
        if storm.unavailable {
            if !lines.iter().any(|l| l.contains("kv: REFUSED")) {
                problems.push(format!(
                    "boot {n}: the store is unavailable without a refusal"
                ));
            }
            refused += 1;
            // Start again on a blank partition.
            write_bytes(&image, part.0, &vec![0u8; part.1 as usize])?;
            let ((_, _, _), p) = boot(s, &mut model, &mut history)?;
            problems.extend(p);
            continue;
        }
        if !storm.read_back {
            problems.push(format!("boot {n}: the storm did not read its keys back"));
            continue;
        }
        for (key, f) in &storm.found {
            match f {
                Found::Value { version, len } => {
                    if !history
                        .get(key)
                        .is_some_and(|h| h.contains(&(*version, *len)))
                    {
                        problems.push(format!(
                            "boot {n}: {key} returned v={version} len={len}, never put"
                        ));
                    }
                }
                Found::Torn { len } => problems.push(format!(
                    "boot {n}: {key} returned {len} bytes that are not what was put"
                )),
                Found::Error(e) if e == "Corrupt" => {}
                Found::Error(e) => problems.push(format!("boot {n}: get {key}: {e}")),
            }
        }
        let got = storm.values();
        if got != expected {
            if reported {
                recovered_damage += 1;
            } else {
                problems.push(format!(
                    "boot {n}: the store lost data without reporting damage: {}",
                    differences(&expected, &got)
                ));
            }
        } else {
            unharmed += 1;
        }
        if problems.len() > 8 {
            break;
        }
    }
    println!(
        "   corrupt: {} rounds: refused {refused}, recovered with reported loss {recovered_damage}, every value intact {unharmed}",
        k.count
    );
    s.case(
        "corrupt",
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(t: &str) -> Vec<String> {
        t.lines().map(String::from).collect()
    }

    #[test]
    fn a_storm_is_read_from_its_lines() {
        let s = Storm::parse(&lines(
            "storm: found key-0001 v=5 len=20\n\
             storm: found key-0002 torn len=30\n\
             storm: found key-0003 error=Corrupt\n\
             storm: read back 3 keys (mount 4)\n\
             storm: put key-0004 v=7 len=100\n\
             storm: acked\n\
             storm: del key-0001\n",
        ));
        assert!(s.read_back && s.problems.is_empty());
        assert_eq!(s.found.len(), 3);
        assert_eq!(s.values().len(), 1);
        assert_eq!(s.ops.len(), 2);
        assert_eq!(
            s.in_flight(),
            Some(Op::Del {
                key: "key-0001".into()
            })
        );
    }

    #[test]
    fn an_unanswered_operation_before_the_last_is_a_problem() {
        let s = Storm::parse(&lines(
            "storm: put key-0004 v=7 len=100\nstorm: put key-0005 v=8 len=100\nstorm: acked\n",
        ));
        assert_eq!(s.problems.len(), 1);
        // A line cut short by the cut is no problem.
        let s = Storm::parse(&lines(
            "storm: put key-0004 v=7 len=100\nstorm: acked\nstorm: put k",
        ));
        assert!(s.problems.is_empty() && s.in_flight().is_none());
    }

    #[test]
    fn the_host_looks_at_a_store_as_the_cell_does() {
        let mut bytes = vec![0u8; 256 * 4096];
        assert_eq!(look(bytes.clone()), Look::Blank);
        {
            let mut state = Box::new(State::new());
            let (mut st, _) = Store::open(&mut state, Mem(std::mem::take(&mut bytes)), 1).unwrap();
            st.put(b"a", b"one").unwrap();
            bytes = std::mem::take(&mut st.disk().0);
        }
        let Look::Recovered {
            records, failures, ..
        } = look(bytes.clone())
        else {
            panic!("not recovered")
        };
        assert_eq!((records, failures), (1, 0));
        bytes[..2 * 4096].fill(0xa5);
        assert_eq!(look(bytes), Look::Refused);
    }

    #[test]
    fn settings_need_their_keys() {
        assert!(Settings::parse(&["kills=3", "seed=1", "partition=p"], true).is_ok());
        assert!(Settings::parse(&["kills=0", "seed=1", "partition=p"], true).is_err());
        assert!(Settings::parse(&["seed=1", "partition=p"], false).is_err());
    }
}
