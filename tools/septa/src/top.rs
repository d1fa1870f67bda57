//! `cargo septa top`: a live view of a running system's statistics.
//!
//! The statistics PD (`[stats]`) writes a frame of text each second to a
//! virtio console (`septa_cells::stats::text`): the monitor's count of
//! every PD's CPU time, faults, restarts and budget overruns. `top`
//! attaches to that console's host end (the Unix socket QEMU listens on in
//! the system's build folder, while `cargo septa run` or the test harness
//! runs it), reads frames as they come and redraws a table: each PD's
//! share of the CPU over the last second beside the share its budget and
//! period allow. The test harness reads the same frames with the same
//! code (probe steps `top` and `stats`).

use std::io::{ErrorKind, Read};
use std::time::Instant;

use septa_cells::counters::{self, Kind};
use septa_cells::stats::{text, Entry};

/// One frame: the refresh count, the statistics PD's clock, every PD,
/// and the servers' per-client counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub refresh: u64,
    pub now_ns: u64,
    pub entries: Vec<Entry>,
    pub counters: Vec<Counted>,
}

/// One client's counters at one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub server: String,
    pub kind: Kind,
    pub entry: counters::Entry,
}

impl Frame {
    /// Counter `field` of `kind` that the servers keep for PD `pd` (the
    /// sum, if several servers of the kind serve it); `None` if none
    /// does or the kind has no such counter.
    pub fn counter(&self, pd: &str, kind: Kind, field: &str) -> Option<u64> {
        let f = kind.field(field)?;
        let mut found = None;
        for c in &self.counters {
            if c.kind == kind && c.entry.name() == pd {
                *found.get_or_insert(0) += c.entry.values[f];
            }
        }
        found
    }
}

/// Assembles frames from a console's bytes, which may arrive in any
/// pieces and start in the middle of a frame.
#[derive(Default)]
pub struct Frames {
    line: Vec<u8>,
    open: Option<Frame>,
}

impl Frames {
    /// Feeds bytes; returns the frames they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut done = Vec::new();
        for &b in bytes {
            if b != b'\n' {
                self.line.push(b);
                continue;
            }
            let line = String::from_utf8_lossy(&self.line).trim().to_string();
            self.line.clear();
            if let Some((refresh, now_ns)) = text::parse_header(&line) {
                self.open = Some(Frame {
                    refresh,
                    now_ns,
                    entries: Vec::new(),
                    counters: Vec::new(),
                });
            } else if line == text::END {
                done.extend(self.open.take());
            } else if let (Some(f), Some((server, kind, entry))) =
                (&mut self.open, counters::text::parse(&line))
            {
                f.counters.push(Counted {
                    server: server.into(),
                    kind,
                    entry,
                });
            } else if let Some(f) = &mut self.open {
                match text::parse_entry(&line) {
                    Some(e) => f.entries.push(e),
                    // A torn or foreign line spoils the frame.
                    None => self.open = None,
                }
            }
        }
        done
    }
}

/// A PD's CPU share between two frames, in per cent (`None` for the
/// first frame, or if the PD is new).
pub fn share(prev: Option<&Frame>, now: &Frame, e: &Entry) -> Option<f64> {
    let prev = prev?;
    let before = prev.entries.iter().find(|p| p.name == e.name)?;
    let dt = now.now_ns.checked_sub(prev.now_ns).filter(|d| *d > 0)?;
    Some(e.cpu_us.saturating_sub(before.cpu_us) as f64 * 1e5 / dt as f64)
}

/// What a PD's budget over its period allows, in per cent.
pub fn allowed(e: &Entry) -> f64 {
    if e.period_us == 0 {
        return 0.0;
    }
    f64::from(e.budget_us) * 100.0 / f64::from(e.period_us)
}

/// The table for `now` (shares against `prev`).
pub fn render(prev: Option<&Frame>, now: &Frame) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "septa top: refresh {}, {:.1} s since the timer started",
        now.refresh,
        now.now_ns as f64 / 1e9
    );
    let _ = writeln!(
        o,
        "{:<24} {:<4} {:<8} {:>4} {:>7} {:>7} {:>12} {:>7} {:>8} {:>8}",
        "NAME",
        "KIND",
        "STATE",
        "PRIO",
        "CPU%",
        "BUDGET%",
        "CPU TIME ms",
        "FAULTS",
        "RESTARTS",
        "OVERRUNS"
    );
    for e in &now.entries {
        let cpu = share(prev, now, e).map_or("-".to_string(), |s| format!("{s:.1}"));
        let _ = writeln!(
            o,
            "{:<24} {:<4} {:<8} {:>4} {:>7} {:>7.1} {:>12} {:>7} {:>8} {:>8}",
            e.name(),
            if e.cell { "cell" } else { "pd" },
            e.state.name(),
            e.priority,
            cpu,
            allowed(e),
            e.cpu_us / 1000,
            e.faults,
            e.restarts,
            e.overruns
        );
    }
    // The servers' counters, one table per kind; then each PD's own IPC
    // counts (kind `ipc`: the PD is its own "server").
    for kind in Kind::ALL {
        let rows: Vec<&Counted> = now.counters.iter().filter(|c| c.kind == kind).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = write!(
            o,
            "\n{:<24} {:<24}",
            format!("{} CLIENT", kind.name().to_uppercase()),
            "SERVER"
        );
        for f in kind.fields() {
            let _ = write!(o, " {:>13}", f.to_uppercase());
        }
        let _ = writeln!(o);
        for c in rows {
            let _ = write!(o, "{:<24} {:<24}", c.entry.name(), c.server);
            for v in c.entry.values.iter().take(kind.fields().len()) {
                let _ = write!(o, " {v:>13}");
            }
            let _ = writeln!(o);
        }
    }
    o
}

/// What the harness checks of a run of frames (probe step `top`): they
/// come with a growing refresh count, every cell has had CPU time by the
/// last, and no PD gets more than its budget
/// allows (a few points of slack for measuring between two refreshes).
pub fn check(frames: &[Frame]) -> Result<(), String> {
    const SLACK: f64 = 5.0;
    if let Some(last) = frames.last() {
        if let Some(e) = last.entries.iter().find(|e| e.cell && e.cpu_us == 0) {
            return Err(format!(
                "cell {} has had no CPU time by refresh {}",
                e.name(),
                last.refresh
            ));
        }
    }
    for w in frames.windows(2) {
        let (prev, now) = (&w[0], &w[1]);
        if now.refresh <= prev.refresh {
            return Err(format!(
                "refresh {} came after {}",
                now.refresh, prev.refresh
            ));
        }
        for e in &now.entries {
            let Some(s) = share(Some(prev), now, e) else {
                continue;
            };
            if e.period_us > 0 && s > allowed(e) + SLACK {
                return Err(format!(
                    "{} used {s:.1}% of the CPU in refresh {}, more than its budget allows ({:.1}%)",
                    e.name(),
                    now.refresh,
                    allowed(e)
                ));
            }
        }
    }
    Ok(())
}

/// Whether PD `pd` of frame `f` has every `field=value` of `want`
/// (probe step `stats`): fields `faults`, `restarts`, `overruns`,
/// `cpu_ms`, `state`, `kind`, and the counters servers keep for it as
/// `KIND.FIELD` (`net.refused`, `kv.puts`, `blk.reads`:
/// `septa_cells::counters::Kind::fields`); each value exact, `>N` for more
/// than N, `<N` for less. A PD missing from the frame matches nothing.
pub fn matches(f: &Frame, pd: &str, want: &[(String, String)]) -> bool {
    let Some(e) = f.entries.iter().find(|e| e.name() == pd) else {
        return false;
    };
    want.iter().all(|(field, value)| {
        let number = match field.as_str() {
            "faults" => Some(u64::from(e.faults)),
            "restarts" => Some(u64::from(e.restarts)),
            "overruns" => Some(u64::from(e.overruns)),
            "cpu_ms" => Some(e.cpu_us / 1000),
            other => other
                .split_once('.')
                .and_then(|(k, name)| f.counter(pd, Kind::from_name(k)?, name)),
        };
        match (number, field.as_str()) {
            (Some(n), _) => {
                if let Some(v) = value.strip_prefix('>') {
                    v.parse::<u64>().is_ok_and(|v| n > v)
                } else if let Some(v) = value.strip_prefix('<') {
                    v.parse::<u64>().is_ok_and(|v| n < v)
                } else {
                    value.parse::<u64>() == Ok(n)
                }
            }
            (None, "state") => e.state.name() == value,
            (None, "kind") => (if e.cell { "cell" } else { "pd" }) == value,
            _ => false,
        }
    })
}

/// Microseconds of CPU the PDs `names` consumed between frames `prev` and
/// `now` together (a PD missing from either counts nothing).
pub fn busy_us(prev: &Frame, now: &Frame, names: &[String]) -> u64 {
    names
        .iter()
        .filter_map(|n| Some(cpu_of(now, n)?.saturating_sub(cpu_of(prev, n)?)))
        .sum()
}

fn cpu_of(f: &Frame, name: &str) -> Option<u64> {
    f.entries
        .iter()
        .find(|e| e.name() == name)
        .map(|e| e.cpu_us)
}

/// Each PD of `names`'s CPU time from frame `start` to frame `end` per KiB
/// of `bytes`, in instructions under `-icount shift=0` (a nanosecond of
/// virtual time per instruction), as figures `PD-cpu-per-kib`, and their
/// sum `cpu-per-kib`. A PD that is in neither frame is an error: a
/// misspelt name must not read as a PD that cost nothing.
pub fn cpu_per_kib(
    start: &Frame,
    end: &Frame,
    names: &[String],
    bytes: u64,
) -> Result<Vec<(String, f64)>, String> {
    let kib = (bytes as f64 / 1024.0).max(1.0);
    let mut out = Vec::new();
    let mut sum = 0.0;
    for n in names {
        let (Some(a), Some(b)) = (cpu_of(start, n), cpu_of(end, n)) else {
            return Err(format!("no PD `{n}` in the statistics"));
        };
        let v = b.saturating_sub(a) as f64 * 1000.0 / kib;
        sum += v;
        out.push((format!("{n}-cpu-per-kib"), v.round()));
    }
    out.push(("cpu-per-kib".into(), sum.round()));
    Ok(out)
}

/// Reads frames from `stream` until `until` says stop or `deadline`
/// passes; calls `each` with every frame and the one before it.
pub fn follow(
    stream: &mut std::os::unix::net::UnixStream,
    deadline: Option<Instant>,
    mut each: impl FnMut(Option<&Frame>, &Frame) -> bool,
) -> Result<(), String> {
    let mut frames = Frames::default();
    let mut prev: Option<Frame> = None;
    let mut buf = [0u8; 4096];
    loop {
        let left = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err("the time ran out".into());
                }
                Some(left)
            }
            None => None,
        };
        stream.set_read_timeout(left).map_err(|e| e.to_string())?;
        let n = match stream.read(&mut buf) {
            Ok(0) => return Err("the console closed".into()),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("the time ran out".into())
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.to_string()),
        };
        for f in frames.feed(&buf[..n]) {
            if !each(prev.as_ref(), &f) {
                return Ok(());
            }
            prev = Some(f);
        }
    }
}

/// `cargo septa top`: attaches to `socket` and redraws the table at each
/// frame, for `frames` frames or until interrupted.
pub fn run(socket: &std::path::Path, frames: Option<u64>) -> miette::Result<()> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket).map_err(|e| {
        miette::miette!(
            "cannot attach to {}: {e} (is the system running? start it with `cargo septa run`)",
            socket.display()
        )
    })?;
    let mut shown = 0u64;
    let r = follow(&mut stream, None, |prev, now| {
        // Clear the screen and draw from the top.
        print!("\x1b[H\x1b[2J{}", render(prev, now));
        shown += 1;
        frames.is_none_or(|n| shown < n)
    });
    r.map_err(|e| miette::miette!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_cells::stats::State;

    fn frame(refresh: u64, now_ns: u64, cpu: &[(&str, u64, bool)]) -> String {
        let mut s = format!("{} {refresh} {now_ns}\n", text::HEADER);
        for (name, cpu_us, cell) in cpu {
            let mut e = Entry::named(name);
            e.cpu_us = *cpu_us;
            e.cell = *cell;
            e.budget_us = 2000;
            e.period_us = 10_000;
            text::entry(&mut s, &e).unwrap();
        }
        s + text::END + "\n"
    }

    #[test]
    fn cpu_is_split_per_kib_and_a_missing_pd_is_an_error() {
        let mut f = Frames::default();
        let text = frame(1, 0, &[("drv", 1_000, false), ("stack", 5_000, false)])
            + &frame(2, 1, &[("drv", 3_000, false), ("stack", 9_000, false)]);
        let got = f.feed(text.as_bytes());
        let names: Vec<String> = ["drv", "stack"].map(String::from).into();
        assert_eq!(busy_us(&got[0], &got[1], &names), 6_000);
        // 2 ms and 4 ms over 1 MiB: 2,000,000 and 4,000,000 ns / 1024 KiB.
        let split = cpu_per_kib(&got[0], &got[1], &names, 1 << 20).unwrap();
        assert_eq!(
            split,
            [
                ("drv-cpu-per-kib".to_string(), 1953.0),
                ("stack-cpu-per-kib".to_string(), 3906.0),
                ("cpu-per-kib".to_string(), 5859.0),
            ]
        );
        let wrong: Vec<String> = vec!["driver".into()];
        assert!(cpu_per_kib(&got[0], &got[1], &wrong, 1 << 20)
            .unwrap_err()
            .contains("no PD `driver`"));
    }

    #[test]
    fn frames_are_assembled_from_pieces_and_torn_ones_dropped() {
        let mut f = Frames::default();
        let a = frame(1, 1_000_000_000, &[("worker", 100, true)]);
        let b = frame(2, 2_000_000_000, &[("worker", 200_100, true)]);
        // Starts mid-frame: the tail of an earlier one is ignored.
        let mut bytes = b"er cell running 1 2 3 4 5 6 7\nsepta-stats-end\n".to_vec();
        bytes.extend_from_slice(a.as_bytes());
        bytes.extend_from_slice(b.as_bytes());
        let mut got = Vec::new();
        for chunk in bytes.chunks(7) {
            got.extend(f.feed(chunk));
        }
        assert_eq!(got.len(), 2);
        assert_eq!(
            share(Some(&got[0]), &got[1], &got[1].entries[0]),
            Some(20.0)
        );
        assert!(check(&got).is_ok());
        let shown = render(Some(&got[0]), &got[1]);
        assert!(
            shown.contains("worker") && shown.contains("20.0"),
            "{shown}"
        );
        // A torn line spoils its frame.
        let torn = a.replace("running", "runn");
        assert!(f.feed(torn.as_bytes()).is_empty());
    }

    #[test]
    fn a_cell_over_its_budget_or_without_cpu_fails_the_check() {
        let mut f = Frames::default();
        let mut feed = |s: String| f.feed(s.as_bytes());
        let a = feed(frame(1, 1_000_000_000, &[("w", 0, true)]));
        let over = feed(frame(2, 2_000_000_000, &[("w", 400_000, true)]));
        let all = [a.clone(), over].concat();
        assert!(check(&all).unwrap_err().contains("more than its budget"));
        let never = feed(frame(3, 3_000_000_000, &[("w", 0, true)]));
        let all = [a, never].concat();
        assert!(check(&all).unwrap_err().contains("no CPU time"));
    }

    #[test]
    fn fields_match_exactly_or_above() {
        let mut e = Entry::named("crasher");
        e.faults = 5;
        e.restarts = 4;
        e.state = State::Stopped;
        let mut c = counters::Entry::named("crasher");
        c.values = [1, 2, 3, 4, 5, 6];
        let f = Frame {
            refresh: 1,
            now_ns: 0,
            entries: vec![e],
            counters: vec![
                Counted {
                    server: "store".into(),
                    kind: Kind::Kv,
                    entry: c,
                },
                Counted {
                    server: "store2".into(),
                    kind: Kind::Kv,
                    entry: c,
                },
            ],
        };
        let w = |s: &[(&str, &str)]| -> Vec<(String, String)> {
            s.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let m = |want: &[(&str, &str)]| matches(&f, "crasher", &w(want));
        assert!(m(&[
            ("faults", "5"),
            ("restarts", "4"),
            ("state", "stopped")
        ]));
        assert!(m(&[("faults", ">4")]));
        assert!(!m(&[("faults", ">5")]));
        assert!(m(&[("faults", "<6"), ("faults", ">4")]));
        assert!(!m(&[("state", "running")]));
        assert!(!m(&[("colour", "red")]));
        // Counters, summed over the servers of a kind.
        assert!(m(&[("kv.puts", "4"), ("kv.refused", ">7")]));
        assert!(!m(&[("net.refused", "0")]));
        assert!(!m(&[("kv.sockets", "0")]));
        assert!(!matches(&f, "other", &w(&[("faults", "0")])));
    }

    #[test]
    fn counter_lines_join_their_frame() {
        let mut text = frame(1, 0, &[("w", 10, true)]);
        let mut c = counters::Entry::named("w");
        c.values[1] = 7;
        let mut line = String::new();
        counters::text::entry(&mut line, "net_stack", Kind::Net, &c).unwrap();
        text = text.replace(text::END, &format!("{line}{}", text::END));
        let got = Frames::default().feed(text.as_bytes());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].counter("w", Kind::Net, "refused"), Some(7));
        let shown = render(None, &got[0]);
        assert!(
            shown.contains("NET CLIENT") && shown.contains("net_stack"),
            "{shown}"
        );
    }
}
