//! Host-driven sessions: a test system that the harness boots more than
//! once, on the same disks, doing things from the host between and during
//! the boots (cutting the power, damaging a disk), and judging what each
//! boot printed against what the host knows.
//!
//! A test's folder may hold a file `session`: one line naming the kind of
//! session and its settings (`#` starts a comment):
//!
//! ```text
//! boots 2                                     # boot to `done`, twice
//! powercut kills=60 seed=7 partition=store    # tests/systems/kv-powercut
//! corrupt rounds=12 seed=3 partition=store    # tests/systems/kv-corrupt
//! ```
//!
//! | kind | what the host does |
//! |---|---|
//! | `boots N` | boots the system N times, each to `done`, on the same disks (state that must survive a reboot) |
//! | `powercut kills=N seed=S partition=P [device=D]` | [`kv::powercut`]: kills QEMU at seeded random moments of a key-value storm, N times, then boots once more; judges every read-back |
//! | `corrupt rounds=N seed=S partition=P [device=D]` | [`kv::corrupt`]: N times, writes random bytes over the partition between two boots; judges what the store returns and reports |
//!
//! A partition is named as in the description (`[blk.DEVICE]`); the device
//! defaults to the system's one block device. The session's verdicts are
//! cases like any other (the kind's name, plus what it adds); the PDs'
//! own result lines count too: a case that passes is listed once, a
//! failure with the boot that printed it. The console log keeps every boot,
//! each after a `==== boot N ====` line.
//!
//! A new kind is a function that takes a [`Session`]: [`Session::boot`]
//! starts QEMU on the system's image and disks and gives a [`Boot`], whose
//! [`Boot::wait_for`] waits for a console line, [`Boot::cut`] kills QEMU
//! (a power cut: whatever the device had not handed to the host's file is
//! lost) and [`Boot::finish`] waits for `done`; [`Session::disk`] finds a
//! partition's bytes in the image between boots. Waiting is driven by
//! console lines; the one deliberate delay is the random moment of a cut.

pub mod kv;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::Child;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use miette::{miette, IntoDiagnostic, Result};

use crate::harness::Outcome;
use crate::pack::Image;
use crate::qemu;

/// The name of the file in a test system's folder.
pub const FILE: &str = "session";

/// What a session does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Boots(usize),
    Powercut(kv::Settings),
    Corrupt(kv::Settings),
}

/// A `session` file that cannot be read as one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("session:{line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl Kind {
    pub fn parse(text: &str) -> Result<Kind, ParseError> {
        let mut found = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| ParseError { line, message };
            let body = raw.split('#').next().unwrap_or("").trim();
            if body.is_empty() {
                continue;
            }
            if found.is_some() {
                return Err(err("a session file holds one line".into()));
            }
            let mut words = body.split_whitespace();
            let kind = words.next().unwrap_or("");
            let rest: Vec<&str> = words.collect();
            found = Some(match kind {
                "boots" => match rest.as_slice() {
                    [n] => match n.parse::<usize>() {
                        Ok(n) if n >= 1 => Kind::Boots(n),
                        _ => return Err(err(format!("`boots` takes a count from 1, not {n:?}"))),
                    },
                    _ => return Err(err("`boots` takes one count: boots N".into())),
                },
                "powercut" | "corrupt" => {
                    let s = kv::Settings::parse(&rest, kind == "powercut").map_err(err)?;
                    if kind == "powercut" {
                        Kind::Powercut(s)
                    } else {
                        Kind::Corrupt(s)
                    }
                }
                other => {
                    return Err(err(format!(
                        "unknown session kind {other:?} (boots, powercut, corrupt)"
                    )))
                }
            });
        }
        found.ok_or(ParseError {
            line: 1,
            message: "an empty session file".into(),
        })
    }
}

/// A session in progress: the image, what was printed, the verdicts.
pub struct Session<'a> {
    image: &'a Image,
    qemu_args: &'a [&'a str],
    /// The whole session's end.
    pub deadline: Instant,
    pub outcome: Outcome,
    pub log: String,
    boots: usize,
    /// Whether the monitor reported a PD fault in any boot.
    pub faults: Vec<String>,
}

/// One boot of the system, running.
pub struct Boot {
    child: Child,
    stderr: std::process::ChildStderr,
    rx: Receiver<String>,
    /// Console lines so far.
    pub lines: Vec<String>,
    /// The console has ended (QEMU exited).
    ended: bool,
}

/// Why [`Boot::wait_for`] returned without the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    TimedOut,
    Ended,
}

impl Boot {
    /// Waits until a console line satisfies `want`; returns its index in
    /// [`Boot::lines`].
    pub fn wait_for(
        &mut self,
        deadline: Instant,
        mut want: impl FnMut(&str) -> bool,
    ) -> Result<usize, Missed> {
        // A line already seen counts.
        let mut from = 0;
        loop {
            if let Some(i) = self.lines[from..].iter().position(|l| want(l)) {
                return Ok(from + i);
            }
            from = self.lines.len();
            if self.ended {
                return Err(Missed::Ended);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(RecvTimeoutError::Timeout) => return Err(Missed::TimedOut),
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
    }

    /// Cuts the power: kills QEMU at once (SIGKILL, nothing shut down),
    /// then reads what the console had already carried out of it.
    pub fn cut(mut self) -> (Vec<String>, String) {
        let _ = self.child.kill();
        self.end()
    }

    /// Waits for the system's `done` (or the deadline), then stops QEMU.
    /// Returns the lines, QEMU's stderr, and whether `done` came.
    pub fn finish(mut self, deadline: Instant) -> (Vec<String>, String, bool) {
        let done = self
            .wait_for(deadline, |l| {
                matches!(
                    septa_test_report::parse(l),
                    Some(septa_test_report::Line::Done)
                )
            })
            .is_ok();
        let _ = self.child.kill();
        let (lines, err) = self.end();
        (lines, err, done)
    }

    fn end(mut self) -> (Vec<String>, String) {
        let _ = self.child.wait();
        // QEMU is gone: the reader thread sees the end of its output.
        while let Ok(line) = self.rx.recv() {
            self.lines.push(line);
        }
        let mut err = String::new();
        let _ = self.stderr.read_to_string(&mut err);
        (self.lines, err)
    }
}

impl<'a> Session<'a> {
    pub fn new(image: &'a Image, qemu_args: &'a [&'a str], limit: Duration) -> Session<'a> {
        Session {
            image,
            qemu_args,
            deadline: Instant::now() + limit,
            outcome: Outcome::default(),
            log: String::new(),
            boots: 0,
            faults: Vec::new(),
        }
    }

    /// Boots the system once more, on the disks as the last boot left them.
    pub fn boot(&mut self) -> Result<Boot> {
        self.boots += 1;
        let mut child = qemu::headless(self.image)?
            .args(self.qemu_args)
            .spawn()
            .into_diagnostic()?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line.trim_end_matches('\r').to_string()).is_err() {
                    break;
                }
            }
        });
        Ok(Boot {
            child,
            stderr,
            rx,
            lines: Vec::new(),
            ended: false,
        })
    }

    /// Which boot this is (from 1).
    pub fn boot_number(&self) -> usize {
        self.boots
    }

    /// Takes a finished boot's console into the log and the outcome: its
    /// result lines (a passing case once, a failure with its boot), and
    /// any fault the monitor reported.
    pub fn absorb(&mut self, lines: &[String], stderr: &str) {
        let n = self.boots;
        self.log.push_str(&format!("==== boot {n} ====\n"));
        for l in lines {
            self.log.push_str(l);
            self.log.push('\n');
            if l.contains("monitor: PD ") && l.contains(" faulted") {
                self.faults.push(format!("boot {n}: {l}"));
            }
            match septa_test_report::parse(l) {
                Some(septa_test_report::Line::Ok(case)) => {
                    if !self.outcome.passed.iter().any(|c| c == case) {
                        self.outcome.passed.push(case.to_string());
                    }
                }
                Some(septa_test_report::Line::Done) | None => {}
                Some(_) => {
                    let mut one = Outcome::default();
                    one.feed(l);
                    for f in one.failed {
                        self.outcome.failed.push(format!("{f} (boot {n})"));
                    }
                }
            }
        }
        if !stderr.trim().is_empty() {
            self.log.push_str("--- qemu stderr ---\n");
            self.log.push_str(stderr);
        }
    }

    /// Records the session's own verdict on `case`.
    pub fn case(&mut self, case: &str, verdict: Result<(), String>) {
        match verdict {
            Ok(()) => self.outcome.passed.push(case.to_string()),
            Err(why) => self.outcome.failed.push(format!("{case}: {why}")),
        }
    }

    /// The image file of block device `device` (the system's only one
    /// when `None`).
    pub fn disk(&self, device: Option<&str>) -> Result<PathBuf> {
        let mut blk = self
            .image
            .machine
            .devices
            .iter()
            .filter(|d| d.kind == septa_sysdesc::VirtioKind::Blk)
            .filter(|d| device.is_none_or(|n| d.name == n));
        match (blk.next(), blk.next()) {
            (Some(d), None) => d
                .file
                .clone()
                .ok_or_else(|| miette!("block device `{}` has no image", d.name)),
            (None, _) => Err(miette!(
                "the system has no block device{}",
                device.map(|d| format!(" `{d}`")).unwrap_or_default()
            )),
            (Some(_), Some(_)) => Err(miette!(
                "the system has several block devices: name one with device=NAME"
            )),
        }
    }
}

/// Runs the session `kind` on `image`; returns its outcome and log.
pub fn run(
    image: &Image,
    kind: &Kind,
    limit: Duration,
    qemu_args: &[&str],
) -> Result<(Outcome, String)> {
    let mut s = Session::new(image, qemu_args, limit);
    let r = match kind {
        Kind::Boots(n) => boots(&mut s, *n),
        Kind::Powercut(k) => kv::powercut(&mut s, k),
        Kind::Corrupt(k) => kv::corrupt(&mut s, k),
    };
    if let Err(e) = r {
        s.outcome.failed.push(format!("session: {e}"));
    }
    let faults = std::mem::take(&mut s.faults);
    s.case(
        "no-fault",
        if faults.is_empty() {
            Ok(())
        } else {
            Err(faults.join("; "))
        },
    );
    // Every boot ended as its kind intended: no `done` is missing.
    s.outcome.done = true;
    Ok((s.outcome, s.log))
}

/// `boots N`: N boots on the same disks, each to `done`.
fn boots(s: &mut Session, n: usize) -> Result<()> {
    for i in 1..=n {
        let b = s.boot()?;
        let (lines, err, done) = b.finish(s.deadline);
        s.absorb(&lines, &err);
        if !done {
            s.outcome
                .failed
                .push(format!("boot {i} did not print done in time"));
            break;
        }
    }
    Ok(())
}

/// A small seeded generator for the host's random choices (splitmix64):
/// a session's seed fixes every kill point and every damaged byte, so a
/// failure repeats.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_files_parse() {
        assert_eq!(Kind::parse("# two\nboots 2\n"), Ok(Kind::Boots(2)));
        let Kind::Powercut(k) = Kind::parse("powercut kills=60 seed=7 partition=store").unwrap()
        else {
            panic!("not a powercut")
        };
        assert_eq!((k.count, k.seed, k.partition.as_str()), (60, 7, "store"));
        assert!(k.device.is_none());
        assert!(Kind::parse("boots 0").is_err());
        assert!(Kind::parse("boots 2\nboots 3").is_err());
        assert!(Kind::parse("").is_err());
        let e = Kind::parse("\nreboot 2").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(Kind::parse("powercut kills=60 seed=7").is_err());
        assert!(Kind::parse("corrupt rounds=3 seed=1 partition=p colour=red").is_err());
        assert!(Kind::parse("corrupt kills=3 seed=1 partition=p").is_err());
    }

    #[test]
    fn the_generator_repeats_and_stays_in_range() {
        let (mut a, mut b) = (Rng::new(5), Rng::new(5));
        for _ in 0..1000 {
            let x = a.range(3, 9);
            assert_eq!(x, b.range(3, 9));
            assert!((3..=9).contains(&x));
        }
    }
}
