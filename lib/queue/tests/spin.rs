//! Model-checks the signalling protocol (`model/signal.pml`) with Spin, and
//! checks that the checker catches each broken variant of it.
//!
//! Needs `spin` (Debian package `spin`; `.ci/run` installs it) and `gcc`
//! (Spin preprocesses the model with `gcc -E` and pan is C). Missing either
//! is a test failure, not a skip: the proof is part of the suite.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

const MODEL: &str = include_str!("../model/signal.pml");

/// What one verification run must end in.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// No error of any kind.
    Holds,
    /// An assertion fails (the monitor's lost wake-up, or an ordering one).
    Assertion,
    /// A deadlock: a state where no PD can move and not both are done.
    InvalidEndState,
}

struct Run {
    name: &'static str,
    defines: &'static [&'static str],
    /// Look for non-progress cycles (pan built with -DNP, run with -l).
    liveness: bool,
    expect: Expect,
}

fn work_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "spin-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run_tool(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `{program}`: {e}. The protocol proof needs Spin and a C \
                 compiler: `apt-get install --no-install-recommends spin gcc` (.ci/run does)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // pan exits non-zero when it finds an error; spin and gcc must not.
    if program != "./pan" {
        assert!(out.status.success(), "`{program} {args:?}` failed:\n{text}");
    }
    text
}

/// Generates, compiles and runs the verifier; returns pan's report.
fn verify(run: &Run) -> String {
    let dir = work_dir(run.name);
    std::fs::write(dir.join("signal.pml"), MODEL).unwrap();
    let mut spin_args: Vec<String> = run.defines.iter().map(|d| format!("-D{d}")).collect();
    spin_args.extend(["-a".into(), "signal.pml".into()]);
    let spin_args: Vec<&str> = spin_args.iter().map(String::as_str).collect();
    run_tool(&dir, "spin", &spin_args);
    // -O0: compiling dominates (pan runs in milliseconds here). SAFETY
    // leaves out the cycle detection a safety run does not use.
    let mut cc = vec!["-O0", "-o", "pan", "pan.c"];
    cc.insert(0, if run.liveness { "-DNP" } else { "-DSAFETY" });
    run_tool(&dir, "gcc", &cc);
    // -m: search depth; -w20: a 1M-slot hash table (the default 16M is
    // far more than these models need).
    let mut pan = vec!["-m1000000", "-w20"];
    if run.liveness {
        pan.push("-l");
    }
    let report = run_tool(&dir, "./pan", &pan);
    let _ = std::fs::remove_dir_all(&dir);
    report
}

fn errors(report: &str) -> usize {
    let at = report
        .find("errors: ")
        .unwrap_or_else(|| panic!("pan printed no error count:\n{report}"));
    report[at + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap()
}

fn judge(run: &Run, report: &str) -> Result<(), String> {
    if report.contains("max search depth too small") {
        return Err(format!("{}: search depth too small", run.name));
    }
    let n = errors(report);
    let ok = match run.expect {
        Expect::Holds => n == 0,
        Expect::Assertion => n > 0 && report.contains("assertion violated"),
        Expect::InvalidEndState => n > 0 && report.contains("invalid end state"),
    };
    // A proof over a model with dead branches proves less than it seems:
    // every statement of both PDs (the re-check's reprocess path, both
    // notification phases, blocking) must be reached.
    if run.expect == Expect::Holds && !run.liveness {
        for pd in ["producer", "consumer"] {
            let reached = format!("unreached in proctype {pd}\n\t(0 of ");
            if !report.contains(&reached) {
                return Err(format!(
                    "{}: part of the {pd} is unreachable:\n{report}",
                    run.name
                ));
            }
        }
    }
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{}: expected {:?}, pan found {n} error(s):\n{report}",
            run.name, run.expect
        ))
    }
}

/// Runs every verification, two at a time (the machines have few cores),
/// and reports every failure at once.
fn check_all(runs: Vec<Run>) {
    let next = AtomicUsize::new(0);
    let failures: Vec<String> = thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut failed = vec![];
                    while let Some(run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(e) = judge(run, &verify(run)) {
                            failed.push(e);
                        }
                    }
                    failed
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_protocol_never_loses_a_wake_up_and_never_deadlocks() {
    check_all(vec![
        Run {
            name: "cap1",
            defines: &["CAP=1", "ITEMS=3"],
            liveness: false,
            expect: Expect::Holds,
        },
        Run {
            name: "cap2",
            defines: &["CAP=2", "ITEMS=6"],
            liveness: false,
            expect: Expect::Holds,
        },
        Run {
            name: "cap4",
            defines: &["CAP=4", "ITEMS=10"],
            liveness: false,
            expect: Expect::Holds,
        },
        Run {
            name: "livelock",
            defines: &["CAP=2", "ITEMS=6"],
            liveness: true,
            expect: Expect::Holds,
        },
    ]);
}

#[test]
fn the_checker_catches_every_broken_variant() {
    let mut runs = vec![];
    for (name, broken) in [
        ("no-recheck", "BROKEN_NO_RECHECK"),
        ("producer-no-recheck", "BROKEN_PRODUCER_NO_RECHECK"),
        ("check-first", "BROKEN_CHECK_FIRST"),
        ("notify-early", "BROKEN_NOTIFY_EARLY"),
    ] {
        let defines: &'static [&'static str] = Box::leak(Box::new([broken]));
        // The monitor names the lost wake-up.
        runs.push(Run {
            name,
            defines,
            liveness: false,
            expect: Expect::Assertion,
        });
    }
    // Without the monitor, the deadlock check alone finds where the
    // canonical mistake (the re-check left out) leads.
    runs.push(Run {
        name: "no-recheck-deadlock",
        defines: &["BROKEN_NO_RECHECK", "NO_MONITOR"],
        liveness: false,
        expect: Expect::InvalidEndState,
    });
    check_all(runs);
}
