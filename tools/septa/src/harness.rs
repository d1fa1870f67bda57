//! `septa test`: host tests, then test systems booted on QEMU.
//!
//! A test system is a directory `tests/systems/NAME/` with a `system.toml`;
//! the repository's default `system.toml` runs as the test `default`.
//! Its PDs print result lines on the console, written and parsed by the
//! crate `septa-test-report` (lib/test-report):
//!
//! ```text
//! [septa-test] ok CASE
//! [septa-test] FAIL CASE: why
//! [septa-test] done
//! ```
//!
//! A system passes its cases that print `ok`; each `FAIL` is a failed case,
//! and so is a line with the marker that is none of the three (a misspelt
//! verdict must not pass unseen); a system that never prints `done` within
//! its time limit, or that prints no `ok` at all, is one more failure. An optional `expect` file beside the
//! description lists text that must appear in the console log, one per line
//! (for what the monitor prints, say). An optional `root-task` file names a
//! crate that is the whole system, booted instead of the initializer (see
//! [`crate::pack::root_task`]; the kernel conformance suite is one). An
//! optional `probe` file says what the harness does from the host while the
//! system runs (send bytes to a virtio console or type on the UART once a
//! marker line shows, expect an answer within a time limit, check that
//! lines arrive whole and in order: [`crate::probe`]); it is one more
//! case, `probe`, which fails with the step and what arrived instead. An
//! optional `limit` file gives the seconds a system may run when that is
//! more than the suite's limit. The run ends with `N passed, M failed`.
//!
//! Images are built for the harness: the initializer then also prints
//! `[septa-test] ok boot` once it has read BootInfo and the spec, and turns a
//! failure to build the system into a failed case and `done`, so a system
//! that cannot start fails at once, naming the object.
//!
//! A system that needs kernel features Septa's kernel does not have yet
//! carries an `xfail` file saying which. On Septa's kernel its failure is
//! reported as such and counted as skipped, and its passing is an error
//! (the marker must go); with `--kernel` the marker is ignored. `--kernel PATH`
//! packs that kernel (a real seL4 16.0.0, say) into every system, so the
//! same suite runs on both kernels.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use miette::{IntoDiagnostic, Result};
use septa_test_report::Line;

use crate::pack::{self, Image};
use crate::probe::Probe;
use crate::qemu;
use crate::workspace::Workspace;
use septa_abi::Config;

/// The file that asks for a run under `-icount` (see [`System`]).
pub const ICOUNT_FILE: &str = "icount";
/// A file whose number is the seconds a system may run, when that is more
/// than the suite's limit.
pub const LIMIT_FILE: &str = "limit";

/// Time limit of a system marked `xfail` on Septa's kernel.
const XFAIL_LIMIT: Duration = Duration::from_secs(20);

/// What one test system did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub passed: Vec<String>,
    pub failed: Vec<String>,
    pub done: bool,
    /// The harness stopped the system itself (a failed probe): a missing
    /// `done` is then no failure of its own.
    pub stopped_early: bool,
    /// When each console line arrived, from QEMU's start, in the log's
    /// order (for benchmarks that time a boot on the wall clock).
    pub stamps: Vec<Duration>,
}

impl Outcome {
    /// Reads one console line; returns true once the system said `done`.
    pub fn feed(&mut self, line: &str) -> bool {
        match septa_test_report::parse(line) {
            None => {}
            Some(Line::Ok(case)) => self.passed.push(case.to_string()),
            Some(Line::Fail(case, "")) => self.failed.push(case.to_string()),
            Some(Line::Fail(case, why)) => self.failed.push(format!("{case}: {why}")),
            Some(Line::Done) => self.done = true,
            Some(Line::Malformed(rest)) => {
                self.failed.push(format!("malformed result line: {rest:?}"))
            }
        }
        self.done
    }

    /// Closes the outcome: a missing `done`, an empty run and unmet
    /// expectations become failures.
    pub fn finish(&mut self, timed_out: bool, log: &str, expect: &[String]) {
        if !self.done && !self.stopped_early {
            self.failed.push(if timed_out {
                "did not finish within its time limit".into()
            } else {
                "stopped before printing done".into()
            });
        } else if self.passed.is_empty() && self.failed.is_empty() {
            self.failed.push("printed no result line".into());
        }
        for e in expect {
            if !log.contains(e.as_str()) {
                self.failed
                    .push(format!("expected console text missing: {e}"));
            }
        }
    }
}

struct System {
    name: String,
    file: PathBuf,
    expect: Vec<String>,
    /// The `probe` file, read (or why it could not be).
    probe: Option<Result<Probe, String>>,
    /// Why this system is known to fail on Septa's kernel (its `xfail`
    /// file), when the run uses Septa's kernel.
    xfail: Option<String>,
    /// Seconds it may run, when more than the suite's limit (a `limit`
    /// file: a system that does much work, such as a million fuzzing
    /// operations, on a loaded host).
    limit: Option<Duration>,
    /// The kernel configuration it runs in: its `[system] config`, else
    /// debug.
    config: Config,
    /// Runs under `-icount` (an `icount` file beside it): QEMU's clock
    /// then follows the instructions executed, so a system that measures
    /// time is not at the mercy of a busy host.
    icount: bool,
    /// Its VM's guest is booted on bare QEMU instead of the system (a
    /// `bare-qemu` file: [`crate::guest::bare::suite_case`]); the file's
    /// text names the VM, if the system has several.
    bare: Option<Option<String>>,
    /// The host drives several boots (a `session` file: [`crate::session`]).
    session: Option<Result<crate::session::Kind, String>>,
}

/// A test system's description: `system.toml`, else its one `*.system`
/// file (a Microkit system description).
pub(crate) fn description_in(dir: &Path) -> Option<PathBuf> {
    let toml = dir.join("system.toml");
    if toml.is_file() {
        return Some(toml);
    }
    let mut xml = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "system"));
    match (xml.next(), xml.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

fn discover(ws: &Workspace, filter: Option<&str>, own_kernel: bool) -> Result<Vec<System>> {
    let dir = ws.root.join("tests/systems");
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in entries {
        let path = e.into_diagnostic()?.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // Its description: system.toml, or a Microkit `.system` file.
        let Some(file) = description_in(&path) else {
            continue;
        };
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let expect = std::fs::read_to_string(path.join("expect"))
            .map(|s| {
                s.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let probe = match std::fs::read_to_string(path.join(crate::probe::FILE)) {
            Ok(text) => Some(Probe::parse(&text).map_err(|e| e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(Err(format!("cannot read {}: {e}", crate::probe::FILE))),
        };
        let xfail = std::fs::read_to_string(path.join("xfail"))
            .ok()
            .filter(|_| own_kernel)
            .map(|s| s.trim().to_string());
        let config = septa_sysdesc::described_config(&file)
            .map_err(|r| miette::miette!("{}", r.render()))?
            .unwrap_or(Config::Debug);
        let session = match std::fs::read_to_string(path.join(crate::session::FILE)) {
            Ok(text) => Some(crate::session::Kind::parse(&text).map_err(|e| e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(Err(format!("cannot read {}: {e}", crate::session::FILE))),
        };
        let bare = std::fs::read_to_string(path.join(crate::guest::bare::TEST_FILE))
            .ok()
            .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()));
        let own_limit = std::fs::read_to_string(path.join(LIMIT_FILE))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(Duration::from_secs);
        out.push(System {
            limit: own_limit,
            icount: path.join(ICOUNT_FILE).is_file(),
            name,
            file,
            expect,
            probe,
            xfail,
            config,
            bare,
            session,
        });
    }
    // The README's default system is a test too, so `cargo septa run`
    // shows what the suite has checked.
    let default = ws.root.join("system.toml");
    if default.is_file() && filter.is_none_or(|f| "default".contains(f)) {
        let readme = std::fs::read_to_string(ws.root.join("README.md")).unwrap_or_default();
        let forwards = tcp_forwards(&default);
        out.push(System {
            name: "default".into(),
            icount: false,
            config: septa_sysdesc::described_config(&default)
                .ok()
                .flatten()
                .unwrap_or(Config::Debug),
            file: default,
            expect: readme_expect(&readme, own_kernel),
            probe: readme_probe(&readme, &forwards)
                .map(|text| Probe::parse(&text).map_err(|e| e.to_string())),
            xfail: None,
            limit: None,
            bare: None,
            session: None,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What the README says the default system prints: the lines of the text
/// block after "It prints", but `...`. Lines from the boot of Septa's
/// kernel (`Septa kernel`, the initializer's count of the untyped memory
/// that kernel leaves) are checked on Septa's kernel only.
pub fn readme_expect(readme: &str, own_kernel: bool) -> Vec<String> {
    let Some(at) = readme.find("It prints") else {
        return vec![];
    };
    let Some(block) = readme[at..].split("```text\n").nth(1) else {
        return vec![];
    };
    let block = block.split("```").next().unwrap_or("");
    block
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && *l != "...")
        .filter(|l| own_kernel || !(l.starts_with("Septa kernel") || l.starts_with("initializer:")))
        .map(String::from)
        .collect()
}

/// The default system's TCP forwards, host port to guest port (8080 to 80
/// if the description cannot be read: the README's examples then fail
/// where the system does).
fn tcp_forwards(file: &Path) -> Vec<(u16, u16)> {
    match septa_sysdesc::load(file) {
        Ok(l) => l
            .system
            .forwards
            .iter()
            .filter(|f| f.proto == septa_sysdesc::Proto::Tcp)
            .map(|f| (f.host, f.guest))
            .collect(),
        Err(_) => vec![(8080, 80)],
    }
}

/// The README's `curl ... http://localhost:PORT/PATH` examples as a probe,
/// in the README's order: each answers `200 OK` from the default system's
/// forward of host port PORT (`forwards`, host to guest; the harness
/// forwards a free host port in its place); a port not forwarded is no
/// example. A plain `curl URL` is a GET; `-X METHOD` another method, and
/// with `--data-binary` (or `-d`) 4 KiB of random bytes are sent as the
/// body with their `Content-Length`, as curl would send the file. Then
/// the probe waits for the last line of what the README says the system
/// prints ([`readme_expect`]), so that the run lasts until it is printed
/// (the default system's Linux cell says its marker seconds after the
/// native PDs' lines, and after `done`). None without an example.
pub fn readme_probe(readme: &str, forwards: &[(u16, u16)]) -> Option<String> {
    const URL: &str = "http://localhost:";
    let mut steps: Vec<String> = readme
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("curl "))
        .filter_map(|rest| {
            let words: Vec<&str> = rest.split(" #").next()?.split_whitespace().collect();
            let (guest, path) = words.iter().find_map(|w| {
                let rest = w.strip_prefix(URL)?;
                let at = rest.find('/')?;
                let port: u16 = rest[..at].parse().ok()?;
                let guest = forwards.iter().find(|f| f.0 == port)?.1;
                Some((guest, &rest[at..]))
            })?;
            let method = words
                .windows(2)
                .find(|w| w[0] == "-X")
                .map_or("GET", |w| w[1]);
            let data = words
                .iter()
                .any(|w| w.starts_with("--data") || *w == "-d");
            Some(match (method, data) {
                ("GET", false) => format!("http {guest} \"{path}\" \"HTTP/1.1 200 OK\" 90s"),
                (m, data) => format!(
                    "request {guest} \"{m} {path} HTTP/1.1\\r\\nHost: localhost\\r\\n{}\\r\\n\" \"HTTP/1.1 200 OK\"{} 90s",
                    if data { "Content-Length: {len}\\r\\n" } else { "" },
                    if data { " send=4KiB@1" } else { "" },
                ),
            })
        })
        .collect();
    if steps.is_empty() {
        return None;
    }
    if let Some(last) = readme_expect(readme, false)
        .pop()
        .filter(|l| !l.contains(['"', '\\']))
    {
        steps.push(format!("after \"{last}\" 120s"));
    }
    Some(steps.join("\n"))
}

/// Boots `image` headless until it prints `done` or `limit` passes, while
/// `probe`, if any, works from the host; its verdict becomes the case
/// `probe`. A probe with `reboot` steps is run in parts, one per boot:
/// when a part has passed and the system has said `done`, QEMU is killed
/// (a power cut) and booted again on the same disks for the next part.
/// Each boot's result lines count (a case passed in several is listed
/// once); the log keeps every boot after a `==== boot N ====` line.
pub fn boot(
    image: &Image,
    limit: Duration,
    log_path: &Path,
    qemu_args: &[&str],
    probe: Option<&Probe>,
) -> Result<(Outcome, String, bool)> {
    let parts = probe.map(Probe::boots).filter(|p| p.len() > 1);
    let Some(parts) = parts else {
        let r = boot_once(image, limit, qemu_args, probe)?;
        std::fs::write(log_path, &r.1).into_diagnostic()?;
        return Ok(r);
    };
    let start = Instant::now();
    let mut all = Outcome::default();
    let mut log = String::new();
    let mut timed_out = false;
    for (i, part) in parts.iter().enumerate() {
        log.push_str(&format!("==== boot {} ====\n", i + 1));
        let (o, l, t) = boot_once(
            image,
            limit.saturating_sub(start.elapsed()),
            qemu_args,
            Some(part),
        )?;
        log.push_str(&l);
        let last = i + 1 == parts.len();
        for c in o.passed {
            if !all.passed.contains(&c) {
                all.passed.push(c);
            }
        }
        let failed = !o.failed.is_empty() || (!last && (t || !o.done));
        all.failed.extend(
            o.failed
                .into_iter()
                .map(|f| format!("{f} (boot {})", i + 1)),
        );
        all.stamps.extend(o.stamps);
        all.stopped_early |= o.stopped_early;
        timed_out = t;
        if last {
            all.done = o.done;
        } else if failed {
            if all.failed.is_empty() {
                all.failed
                    .push(format!("boot {} did not print done in time", i + 1));
            }
            all.stopped_early = true;
            break;
        }
    }
    // The probe is one case: passed once every part has.
    if all.failed.iter().any(|f| f.starts_with("probe")) {
        all.passed.retain(|c| c != "probe");
    }
    std::fs::write(log_path, &log).into_diagnostic()?;
    Ok((all, log, timed_out))
}

/// One boot of [`boot`], with one part of the probe.
fn boot_once(
    image: &Image,
    limit: Duration,
    qemu_args: &[&str],
    probe: Option<&Probe>,
) -> Result<(Outcome, String, bool)> {
    // Host ports chosen for this run: forwards, and the injection port.
    let (image, net) = &per_run_ports(image, probe.is_some_and(Probe::injects))?;
    let mut cmd = qemu::headless(image)?;
    // A probe that types on the UART gets QEMU's standard input, which is
    // the UART's receive side (`-serial stdio`).
    if probe.is_some_and(Probe::types_on_uart) {
        cmd.stdin(std::process::Stdio::piped());
    }
    let mut child = cmd.args(qemu_args).spawn().into_diagnostic()?;
    let mut uart = child.stdin.take();
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let lines = tx.clone();
    std::thread::spawn(move || {
        // Lossy: a client may print any bytes (one that scribbles over its
        // queue prints garbage), and the console must go on being read.
        let mut out = BufReader::new(stdout);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match out.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&raw);
            let line = text.trim_end_matches('\n').to_string();
            if lines.send(Event::Line(line)).is_err() {
                break;
            }
        }
    });
    // The probe sees every console line too, on its own thread, so that
    // its waiting never holds up the console; its verdict comes back as an
    // event among the lines.
    let mut probe_lines = probe.map(|p| {
        let (line_tx, line_rx) = mpsc::channel::<String>();
        let p = p.clone();
        let sockets: std::collections::HashMap<String, PathBuf> = image
            .machine
            .consoles()
            .map(|(n, s)| (n.to_string(), s))
            .collect();
        let verdict = tx.clone();
        let mut uart = uart.take();
        let net = net.clone();
        std::thread::spawn(move || {
            let input = uart.as_mut().map(|u| u as &mut dyn std::io::Write);
            let mut conns = crate::probe::Consoles::default();
            let r = p.run_net(&line_rx, &sockets, input, &net, &mut conns);
            let _ = verdict.send(Event::Probe(r, conns));
        });
        line_tx
    });
    drop(tx);
    let mut probe_pending = probe.is_some();
    let start = Instant::now();
    let mut outcome = Outcome::default();
    let mut log = String::new();
    let mut timed_out = false;
    let mut consoles = crate::probe::Consoles::default();
    let record = |outcome: &mut Outcome, r: Result<(), crate::probe::ProbeError>| match r {
        Ok(()) => outcome.passed.push("probe".into()),
        Err(e) => outcome.failed.push(format!("probe: {e}")),
    };
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(Event::Line(raw)) => {
                // Judged without the colours a serial client's lines may
                // carry.
                let line = crate::probe::plain(&raw);
                log.push_str(&line);
                log.push('\n');
                outcome.stamps.push(start.elapsed());
                if let Some(t) = &probe_lines {
                    // A probe that has finished no longer listens.
                    let _ = t.send(raw);
                }
                // A system done before its probe goes on being read (and
                // logged, and shown to the probe) until the probe is.
                if outcome.feed(&line) && !probe_pending {
                    break;
                }
            }
            Ok(Event::Probe(r, conns)) => {
                probe_pending = false;
                probe_lines = None;
                consoles = conns;
                let failed = r.is_err();
                record(&mut outcome, r);
                // The host's side has failed: no point in waiting longer.
                if failed {
                    outcome.stopped_early = true;
                    break;
                }
                if outcome.done {
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    // The system is done (or out of time) before the probe: a probe still
    // waiting for a console line learns the console has ended; one reading
    // from a console gets what is already there, within the time left,
    // before QEMU goes.
    drop(probe_lines);
    while probe_pending {
        let left = limit.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok(Event::Line(_)) => {}
            Ok(Event::Probe(r, conns)) => {
                record(&mut outcome, r);
                probe_pending = false;
                consoles = conns;
            }
            Err(_) => {
                outcome
                    .failed
                    .push("probe: did not finish within the time limit".into());
                probe_pending = false;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // Only now, with QEMU gone, may the probe's consoles close.
    drop(consoles);
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    if !err.trim().is_empty() {
        log.push_str("--- qemu stderr ---\n");
        log.push_str(&err);
    }
    Ok((outcome, log, timed_out))
}

/// `image` with fresh host ports for its forwards (free ports of the
/// loopback, so systems booted side by side never clash), and an
/// injection port if `inject`; what the probe needs to know of them.
fn per_run_ports(image: &Image, inject: bool) -> Result<(Image, crate::netprobe::NetEnv)> {
    use crate::netprobe::{free_port, NetEnv};
    let mut img = image.clone();
    let mut env = NetEnv {
        dir: img.machine.dir.clone(),
        ..NetEnv::default()
    };
    for d in &mut img.machine.devices {
        for (proto, host, guest, _) in &mut d.forwards {
            *host = free_port(*proto).into_diagnostic()?;
            env.forwards.insert((*proto, *guest), *host);
        }
    }
    if inject {
        let udp = || free_port(septa_sysdesc::Proto::Udp).into_diagnostic();
        let (qemu_in, qemu_out, ours) = (udp()?, udp()?, udp()?);
        img.machine.inject = Some((qemu_in, qemu_out, ours));
        let at = |p| std::net::SocketAddr::from(([127, 0, 0, 1], p));
        env.inject = Some((at(qemu_in), at(ours)));
    }
    Ok((img, env))
}

/// What arrives while a system runs.
enum Event {
    /// A line of the serial console.
    Line(String),
    /// The probe's verdict, and its connections to consoles, open until
    /// QEMU has stopped.
    Probe(Result<(), crate::probe::ProbeError>, crate::probe::Consoles),
}

/// A system's probe, checked against the consoles its image has.
fn checked_probe(s: &System, img: &Image) -> Result<Option<Probe>> {
    let Some(p) = &s.probe else {
        return Ok(None);
    };
    let p = p
        .clone()
        .map_err(|e| miette::miette!("tests/systems/{}/{e}", s.name))?;
    let consoles: Vec<&str> = img.machine.consoles().map(|(n, _)| n).collect();
    if let Some((line, c)) = p.consoles().find(|(_, c)| !consoles.contains(c)) {
        return Err(miette::miette!(
            "tests/systems/{}/{}:{line}: the system has no virtio console `{c}` (it has: {})",
            s.name,
            crate::probe::FILE,
            if consoles.is_empty() {
                "none".to_string()
            } else {
                consoles.join(", ")
            }
        ));
    }
    Ok(Some(p))
}

/// Runs `cargo test --workspace` and counts its results.
fn host_tests(ws: &Workspace) -> Result<(usize, usize)> {
    eprintln!("   host tests: cargo test --workspace");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(&ws.root)
        .args(["test", "--workspace", "--quiet"])
        .env_remove("CARGO_PRIMARY_PACKAGE")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .into_diagnostic()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut passed, mut failed) = (0, 0);
    for line in text.lines() {
        if let Some((p, f)) = parse_cargo_result(line) {
            passed += p;
            failed += f;
        }
    }
    if !out.status.success() {
        print!("{text}");
        if failed == 0 {
            failed = 1;
        }
    }
    println!("host tests: {passed} passed, {failed} failed");
    Ok((passed, failed))
}

/// Reads cargo's `test result: ok. 3 passed; 0 failed; ...` line.
pub fn parse_cargo_result(line: &str) -> Option<(usize, usize)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let num = |key: &str| -> Option<usize> {
        rest.split(';').find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(key)?
                .trim()
                .parse()
                .ok()
        })
    };
    Some((num("passed")?, num("failed")?))
}

/// Runs the host tests, then the test systems. Each system runs in its
/// own configuration; `config` (or, with `kernel` a real seL4 ELF, the
/// configuration it was built in) limits the run to the systems of one.
pub fn run(
    ws: &Workspace,
    filter: Option<&str>,
    host: bool,
    limit: Duration,
    kernel: Option<&Path>,
    config: Option<Config>,
) -> Result<bool> {
    let (mut passed, mut failed) = if host { host_tests(ws)? } else { (0, 0) };
    // Only the configuration asked for, or the one of the kernel given.
    let only = match (config, kernel) {
        (None, None) => None,
        _ => Some(crate::config::resolve(config, None, kernel, Config::Debug)?),
    };
    let mut systems = discover(ws, filter, kernel.is_none())?;
    let mut skipped = 0;
    if let Some(c) = only {
        println!(
            "configuration: {} (systems of other configurations are skipped)",
            c.name()
        );
        systems.retain(|s| {
            let keep = s.config == c;
            if !keep {
                println!(
                    "skip {}: runs in the {} configuration",
                    s.name,
                    s.config.name()
                );
                skipped += 1;
            }
            keep
        });
    }
    if !systems.is_empty() {
        qemu::ensure_installed()?;
    }
    let mut images = vec![];
    let (bare, systems): (Vec<&System>, Vec<&System>) =
        systems.iter().partition(|s| s.bare.is_some());
    // Guests on bare QEMU need no image: they start at once, beside the
    // builds (the first fetches Debian's packages).
    let (tx, rx) = mpsc::channel();
    for s in &bare {
        let (tx, ws_root, file) = (tx.clone(), ws.root.clone(), s.file.clone());
        let (name, vm) = (s.name.clone(), s.bare.clone().flatten());
        std::thread::spawn(move || {
            let ws = Workspace { root: ws_root };
            let r = crate::guest::bare::suite_case(&ws, &file, vm.as_deref(), limit);
            let _ = tx.send((name, r));
        });
    }
    let mut running = bare.len();
    for s in &systems {
        let choice = pack::ConfigChoice {
            flag: Some(s.config),
            default: s.config,
        };
        images.push(
            pack::build_system(ws, &s.file, kernel, true, choice)
                .map(|img| (s, img))
                .map_err(|e| (s, e)),
        );
    }
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut pending = images.into_iter();
    let mut results = vec![];
    loop {
        while running < jobs {
            let Some(next) = pending.next() else { break };
            let tx = tx.clone();
            running += 1;
            match next {
                Ok((s, img)) => {
                    let log_path = img.path.with_file_name("console.log");
                    let name = s.name.clone();
                    let expect = s.expect.clone();
                    let qemu_args: &[&str] = if s.icount { &qemu::ICOUNT } else { &[] };
                    let probe = match checked_probe(s, &img) {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = tx.send((name, Err(e)));
                            continue;
                        }
                    };
                    // No long wait for what is marked to fail anyway.
                    let limit = if s.xfail.is_some() {
                        limit.min(XFAIL_LIMIT)
                    } else {
                        s.limit.map_or(limit, |own| own.max(limit))
                    };
                    if let Some(kind) = s.session.clone() {
                        std::thread::spawn(move || {
                            let r = kind
                                .map_err(|e| miette::miette!("tests/systems/{name}/{e}"))
                                .and_then(|k| crate::session::run(&img, &k, limit, qemu_args))
                                .and_then(|(mut o, log)| {
                                    std::fs::write(&log_path, &log).into_diagnostic()?;
                                    o.finish(false, &log, &expect);
                                    Ok((o, log))
                                });
                            let _ = tx.send((name, r));
                        });
                        continue;
                    }
                    std::thread::spawn(move || {
                        let r = boot(&img, limit, &log_path, qemu_args, probe.as_ref()).map(
                            |(mut o, log, timed_out)| {
                                o.finish(timed_out, &log, &expect);
                                (o, log)
                            },
                        );
                        let _ = tx.send((name, r));
                    });
                }
                Err((s, e)) => {
                    let _ = tx.send((s.name.clone(), Err(e)));
                }
            }
        }
        if running == 0 {
            break;
        }
        results.push(rx.recv().into_diagnostic()?);
        running -= 1;
    }
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, r) in results {
        let xfail = systems
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.xfail.clone());
        match (r, xfail) {
            (Ok((o, _)), Some(why)) if !o.failed.is_empty() => {
                println!(
                    "xfail {name}: {} of its cases fail on Septa's kernel, as marked: {why}",
                    o.failed.len()
                );
                skipped += 1;
            }
            (Err(_), Some(why)) => {
                println!(
                    "xfail {name}: does not build or boot on Septa's kernel, as marked: {why}"
                );
                skipped += 1;
            }
            (Ok(_), Some(_)) => {
                println!(
                    "FAIL {name}: passes on Septa's kernel now; remove tests/systems/{name}/xfail"
                );
                failed += 1;
            }
            (Ok((o, log)), None) => {
                for c in &o.passed {
                    println!("ok   {name}: {c}");
                }
                for c in &o.failed {
                    println!("FAIL {name}: {c}");
                }
                if !o.failed.is_empty() {
                    println!("---- {name}: last console lines ----");
                    let lines: Vec<_> = log.lines().collect();
                    for l in &lines[lines.len().saturating_sub(30)..] {
                        println!("  | {l}");
                    }
                }
                passed += o.passed.len();
                failed += o.failed.len();
            }
            (Err(e), None) => {
                println!("FAIL {name}: {e:?}");
                failed += 1;
            }
        }
    }
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_reads_result_lines_among_other_output() {
        let mut o = Outcome::default();
        assert!(!o.feed("booting..."));
        assert!(!o.feed("pd1: [septa-test] ok ping-pong"));
        assert!(!o.feed("[septa-test] FAIL misuse: no error"));
        assert!(o.feed("[septa-test] done\r"));
        o.finish(false, "", &[]);
        assert_eq!(o.passed, ["ping-pong"]);
        assert_eq!(o.failed, ["misuse: no error"]);
    }

    #[test]
    fn a_misspelt_result_line_is_a_failure() {
        let mut o = Outcome::default();
        o.feed("[septa-test] ok a");
        o.feed("[septa-test] Ok b");
        o.feed("[septa-test] FAIL c");
        assert!(o.feed("[septa-test] done"));
        assert_eq!(o.passed, ["a"]);
        assert_eq!(o.failed, ["malformed result line: \"Ok b\"", "c"]);
    }

    #[test]
    fn missing_done_empty_runs_and_expectations_fail() {
        let mut o = Outcome::default();
        o.feed("[septa-test] ok a");
        o.finish(true, "", &[]);
        assert_eq!(o.failed, ["did not finish within its time limit"]);
        let mut o = Outcome::default();
        o.feed("[septa-test] done");
        o.finish(
            false,
            "monitor: fault",
            &["monitor: fault".into(), "restarted".into()],
        );
        assert_eq!(
            o.failed,
            [
                "printed no result line",
                "expected console text missing: restarted"
            ]
        );
    }

    #[test]
    fn a_system_the_harness_stopped_is_judged_by_what_stopped_it() {
        let mut o = Outcome::default();
        o.failed.push("probe: line 3: expected \"X\"".into());
        o.stopped_early = true;
        o.finish(false, "", &[]);
        assert_eq!(o.failed, ["probe: line 3: expected \"X\""]);
    }

    #[test]
    fn the_readme_says_what_the_default_system_prints() {
        let readme = "It prints (the test `default`):\n\n```text\nSepta kernel 0.1.0\ninitializer: 5 objects\n...\ngreeter: hello\n```\n\n```text\nnot this\n```\n";
        assert_eq!(
            readme_expect(readme, true),
            [
                "Septa kernel 0.1.0",
                "initializer: 5 objects",
                "greeter: hello"
            ]
        );
        assert_eq!(readme_expect(readme, false), ["greeter: hello"]);
        let curls = "```sh\ncurl http://localhost:8080/   # the page\n  curl http://localhost:8080/api/x\ncurl http://localhost:8081/\ncurl http://localhost:9999/\n```\n";
        const FORWARDS: &[(u16, u16)] = &[(8080, 80), (8081, 8000)];
        assert_eq!(
            readme_probe(curls, FORWARDS).as_deref(),
            Some(
                "http 80 \"/\" \"HTTP/1.1 200 OK\" 90s\nhttp 80 \"/api/x\" \"HTTP/1.1 200 OK\" 90s\nhttp 8000 \"/\" \"HTTP/1.1 200 OK\" 90s"
            )
        );
        assert_eq!(readme_probe("no examples", FORWARDS), None);
        let kv = "curl -X PUT --data-binary @f http://localhost:8080/kv/a  # put
curl -X DELETE http://localhost:8080/kv/a
";
        let p = readme_probe(kv, FORWARDS).unwrap();
        assert_eq!(
            p,
            "request 80 \"PUT /kv/a HTTP/1.1\\r\\nHost: localhost\\r\\nContent-Length: {len}\\r\\n\\r\\n\" \"HTTP/1.1 200 OK\" send=4KiB@1 90s\n\
             request 80 \"DELETE /kv/a HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n\" \"HTTP/1.1 200 OK\" 90s"
        );
        Probe::parse(&p).unwrap();
        let probe = readme_probe(include_str!("../../../README.md"), FORWARDS).unwrap();
        assert!(probe.contains("\"/cells\""), "{probe}");
        let with_block = format!("{readme}{curls}");
        assert!(
            readme_probe(&with_block, FORWARDS)
                .unwrap()
                .ends_with("\nafter \"greeter: hello\" 120s"),
            "the probe waits for the last line shown"
        );
        Probe::parse(&probe).unwrap();
        let real = include_str!("../../../README.md");
        assert!(
            readme_expect(real, false).len() >= 3,
            "the README shows what the default system prints"
        );
    }

    #[test]
    fn cargo_result_lines_are_counted() {
        assert_eq!(
            parse_cargo_result("test result: ok. 12 passed; 0 failed; 1 ignored"),
            Some((12, 0))
        );
        assert_eq!(
            parse_cargo_result("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(parse_cargo_result("running 3 tests"), None);
    }
}
