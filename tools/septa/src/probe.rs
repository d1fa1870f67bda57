//! Host probes: what the test harness does from the host side while a test
//! system runs, and what it expects back.
//!
//! A test system's folder may hold a file `probe`, one step per line, run in
//! order once the system boots; `#` starts a comment, blank lines are
//! skipped:
//!
//! ```text
//! after "console-echo: ready"              # a serial console line contains this
//! send console "hello, septa\n"            # bytes to virtio console `console`
//! expect console "HELLO, SEPTA\n" 5s       # bytes from it must contain this
//! send uart "\x1c1\r"                      # keys typed on the UART (QEMU's stdin)
//! lines 200 "a line {}" "b line {}" 20s    # each client's lines, whole and in order
//! ```
//!
//! | step | meaning |
//! |---|---|
//! | `after TEXT [LIMIT]` | wait until a line of the serial console (the PDs' output) contains TEXT |
//! | `type-until TEXT MARKER [LIMIT]` | type TEXT on the board's UART, and again every [`RETYPE_EVERY`] until a new console line contains MARKER: for a shell that may drop what is typed before it reads its line (a Linux guest's console while its shell starts); only for commands that may run twice |
//! | `send CONSOLE TEXT` | write TEXT to the host end of the system's virtio console CONSOLE; CONSOLE `uart` is the board's UART (QEMU's standard input), which the serial subsystem reads |
//! | `expect CONSOLE TEXT [LIMIT]` | read from virtio console CONSOLE until what arrived since the last `expect` contains TEXT |
//! | `http PORT PATH TEXT [LIMIT]` | `GET PATH` on the host port forwarded to guest TCP port PORT; the response must contain TEXT |
//! | `request PORT HEAD WANT [send=SIZE@SEED [cut=N]] [body=SIZE@SEED] [LIMIT]` | one HTTP request on the host port forwarded to guest TCP port PORT: HEAD (a text: the request line and headers, blank line included, sent as written; `{len}` in it becomes the length of what `send` names) then `send`'s SIZE bytes of a seeded generator (`netprobe::Rng`), or only their first N with `cut=N`, after which the probe closes its sending side; the response (read to its end) must contain WANT, and with `body=` its body must be exactly those bytes |
//! | `reboot` | cuts the power (kills QEMU) and boots the system again on the same disks; the steps after it run against the new boot (its forwarded ports are new too; wait for it with a step that retries, such as `http`) |
//! | `tcp-echo PORT SIZE [LIMIT]` | send SIZE pseudo-random bytes (`10MiB`, `4096`) to guest TCP port PORT while reading them back; the hashes must agree |
//! | `tcp-send PORT SIZE [LIMIT]` | send SIZE pseudo-random bytes to guest TCP port PORT, close, and wait until the guest closes; the wall-clock rate is a benchmark figure |
//! | `udp-echo PORT COUNT [LIMIT]` | send COUNT datagrams of varied sizes to guest UDP port PORT, each until it comes back |
//! | `fuzz PORT COUNT [LIMIT]` | inject COUNT malformed, truncated, oversized and random frames into the system's network card (the harness adds an injection port), checking between bursts that the stack answers pings; the counters of `/api/status` on guest TCP port PORT must account for every frame the stack was sure to see and drop |
//! | `tcp-accept PORT TEXT [LIMIT]` | listen on the host's 127.0.0.1:PORT (the system reaches it as 10.0.2.2:PORT) and accept one connection that must carry TEXT |
//! | `serve PORT SIZE [LIMIT]` | listen on the host's 127.0.0.1:PORT and, in the background, answer one HTTP GET before LIMIT with SIZE pseudo-random bytes (`netprobe::SERVE_SEED`); the step returns once it listens. In a `send uart` TEXT, `{tcp/N}` is the host port this run forwards to the system's tcp/N |
//! | `no-line TEXT` | no console line so far contains TEXT |
//! | `dashboard PORT PATH NAMES [LIMIT]` | load PATH from the host port forwarded to guest TCP port PORT in headless Chromium (`chromium`, or `$SEPTA_CHROMIUM`; missing, the step fails and says so), let its scripts run, save a screenshot as `dashboard.png` in the system's build folder, and check the page it rendered shows every PD of NAMES (space-separated) with non-zero CPU time (`crate::netprobe::dashboard`) |
//! | `top CONSOLE N [LIMIT]` | read N frames of statistics from virtio console CONSOLE (the statistics PD's, `[stats]`) the way `cargo septa top` does, and check them (`crate::top::check`): a growing refresh count, CPU time for every cell not stopped, no PD above what its budget allows |
//! | `stats CONSOLE TEXT [LIMIT]` | read frames of statistics until the PD TEXT names shows every `field=value` TEXT gives after its name (`crate::top::matches`: `faults`, `restarts`, `overruns`, `cpu_ms` exact or `>N`/`<N`; `state`; `kind`; the servers' counters for it as `KIND.FIELD`, `net.refused`, `kv.puts`, `blk.reads`, ...) |
//! | `cpu CONSOLE NAMES [SIZE] [LIMIT]` | read frames of statistics from virtio console CONSOLE until one shows the PDs NAMES (space-separated) quiet (together less than [`QUIET_US`] of CPU since the frame before). Without SIZE, that frame is the start; with SIZE (after a start on the same console), each PD's CPU time since the start divided by SIZE's KiB is a figure for `septa bench`, `PD-cpu-per-kib`, in instructions under `-icount` (one nanosecond of virtual time each), and their sum `cpu-per-kib` |
//! | `lines N PATTERN... [LIMIT]` | wait until the serial console has shown, for every PATTERN (a text with one `{}`), the N lines it makes with `{}` = 1, 2, ..., N, in that order; every console line that contains a PATTERN's text before `{}` must be the next of its lines exactly (after ANSI colour codes are removed), or the step fails: a torn, lost, repeated or reordered line |
//!
//! TEXT is in double quotes, with the escapes `\n`, `\r`, `\t`, `\\`, `\"`
//! and `\xHH`. LIMIT is a number with `ms` or `s` (default
//! [`DEFAULT_LIMIT`]); the system's own time limit bounds everything. The
//! probe passes when every step does: the harness counts it as the case
//! `probe`, or fails it with the step's line and what went wrong (what did
//! arrive, for an `expect`). Waiting is driven by what arrives, never by
//! sleeping. A console's host end is the Unix socket QEMU listens on
//! ([`crate::qemu::Machine::console_socket`]); the probe connects to it at
//! its first `send` or `expect`, after an `after` step has shown that the
//! system is up, and the connection stays open until the harness has
//! stopped QEMU ([`Consoles`]): QEMU drops a console's connection as soon
//! as its host end closes, with whatever it had not yet read of it (a
//! probe's last `send`, while the guest had no receive buffer posted).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::netprobe::NetEnv;

/// The name of the file in a test system's folder.
pub const FILE: &str = "probe";

/// How long a step waits unless its line says otherwise.
pub const DEFAULT_LIMIT: Duration = Duration::from_secs(10);

/// Bytes of unexpected output quoted in a failure.
const QUOTE_MAX: usize = 200;

/// The name of the board's UART in `send` steps (a virtio device may not
/// have the name of a board device, so it cannot be a virtio console's).
pub const UART: &str = "uart";

/// How long `type-until` waits for its marker before it types again.
/// (A tenth of a second in the host tests, which play the shell.)
pub const RETYPE_EVERY: Duration = if cfg!(test) {
    Duration::from_millis(100)
} else {
    Duration::from_secs(5)
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    After {
        text: String,
    },
    TypeUntil {
        bytes: Vec<u8>,
        text: String,
    },
    Send {
        console: String,
        bytes: Vec<u8>,
    },
    Expect {
        console: String,
        bytes: Vec<u8>,
    },
    Lines {
        count: u32,
        patterns: Vec<Pattern>,
    },
    Http {
        port: u16,
        path: String,
        want: String,
    },
    Request {
        port: u16,
        head: Vec<u8>,
        want: String,
        send: Option<Random>,
        cut: Option<u64>,
        body: Option<Random>,
    },
    Reboot,
    TcpEcho {
        port: u16,
        size: u64,
    },
    TcpSend {
        port: u16,
        size: u64,
    },
    UdpEcho {
        port: u16,
        count: u32,
    },
    Fuzz {
        port: u16,
        count: u64,
    },
    NoLine {
        text: String,
    },
    Dashboard {
        port: u16,
        path: String,
        names: Vec<String>,
    },
    TcpAccept {
        port: u16,
        want: Vec<u8>,
    },
    Top {
        console: String,
        frames: u32,
    },
    Stats {
        console: String,
        pd: String,
        want: Vec<(String, String)>,
    },
    Serve {
        port: u16,
        size: u64,
    },
    Cpu {
        console: String,
        names: Vec<String>,
        size: Option<u64>,
    },
}

/// CPU time in a frame's second under which the PDs of a `cpu` step count
/// as quiet: far below what a transfer keeps them busy for, far above an
/// idle stack's timers.
pub const QUIET_US: u64 = 2_000;

/// `SIZE@SEED`: SIZE bytes of [`crate::netprobe::Rng`] seeded with SEED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Random {
    pub size: u64,
    pub seed: u64,
}

impl Random {
    fn parse(w: &str) -> Result<Random, String> {
        let (size, seed) = w
            .split_once('@')
            .ok_or_else(|| format!("expected SIZE@SEED, not `{w}`"))?;
        let seed = seed
            .parse()
            .map_err(|_| format!("the seed must be a number, not `{seed}`"))?;
        Ok(Random {
            size: if size == "0" { 0 } else { parse_size(size)? },
            seed,
        })
    }

    /// The bytes.
    pub fn bytes(self) -> Vec<u8> {
        let mut v = vec![0u8; self.size as usize];
        crate::netprobe::Rng(self.seed | 1).fill(&mut v);
        v
    }
}

/// A `lines` pattern: the text before and after its `{}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub stem: String,
    pub tail: String,
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        match text.split_once("{}") {
            Some((stem, tail)) if !tail.contains("{}") && !stem.is_empty() => Ok(Pattern {
                stem: stem.to_string(),
                tail: tail.to_string(),
            }),
            Some(("", _)) => Err(format!(
                "the pattern {text:?} must start with text before its `{{}}`"
            )),
            _ => Err(format!("the pattern {text:?} needs exactly one `{{}}`")),
        }
    }

    fn line(&self, n: u32) -> String {
        format!("{}{n}{}", self.stem, self.tail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Line in the probe file, from 1.
    pub line: usize,
    pub action: Action,
    pub limit: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Probe {
    pub steps: Vec<Step>,
}

/// A probe file that cannot be read as one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("probe:{line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeError {
    #[error("line {line}: no console line contained {text:?} within {limit:?}")]
    NoMarker {
        line: usize,
        text: String,
        limit: Duration,
    },
    #[error("line {line}: the console ended before a line contained {text:?}")]
    ConsoleEnded { line: usize, text: String },
    #[error("line {line}: the system has no virtio console `{console}`")]
    UnknownConsole { line: usize, console: String },
    #[error("line {line}: cannot connect to console `{console}` at {path}: {reason}")]
    Connect {
        line: usize,
        console: String,
        path: PathBuf,
        reason: String,
    },
    #[error("line {line}: sending to console `{console}` failed: {reason}")]
    Send {
        line: usize,
        console: String,
        reason: String,
    },
    #[error("line {line}: expected {want} from console `{console}` within {limit:?}; {got}")]
    Expect {
        line: usize,
        console: String,
        want: String,
        limit: Duration,
        got: String,
    },
    #[error("line {line}: the console showed {got:?} where {want:?} was due")]
    WrongLine {
        line: usize,
        want: String,
        got: String,
    },
    #[error("line {line}: {missing} within {limit:?}")]
    LinesMissing {
        line: usize,
        missing: String,
        limit: Duration,
    },
    #[error("line {line}: the system has no UART input for the probe to type on")]
    NoUart { line: usize },
    #[error("line {line}: {what}: {why}")]
    Net {
        line: usize,
        what: String,
        why: String,
    },
    #[error("line {line}: the console showed {got:?}, which contains {text:?}")]
    Unwanted {
        line: usize,
        text: String,
        got: String,
    },
    #[error("line {line}: the statistics on console `{console}`: {why}")]
    Stats {
        line: usize,
        console: String,
        why: String,
    },
}

impl Probe {
    pub fn parse(text: &str) -> Result<Probe, ParseError> {
        let mut steps = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| ParseError { line, message };
            let mut rest = raw.trim_start();
            if rest.is_empty() || rest.starts_with('#') {
                continue;
            }
            let word = take_word(&mut rest);
            let (action, limit_allowed) = match word {
                "after" => (
                    Action::After {
                        text: String::from_utf8(take_text(&mut rest).map_err(err)?)
                            .map_err(|_| err("the marker must be UTF-8 text".into()))?,
                    },
                    true,
                ),
                "type-until" => {
                    let bytes = take_text(&mut rest).map_err(err)?;
                    let text = String::from_utf8(take_text(&mut rest).map_err(err)?)
                        .map_err(|_| err("the marker must be UTF-8 text".into()))?;
                    (Action::TypeUntil { bytes, text }, true)
                }
                "lines" => {
                    let count = take_word(&mut rest);
                    let count: u32 = count.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        err(format!(
                            "`lines` needs a count of lines (1 or more), not `{count}`"
                        ))
                    })?;
                    let mut patterns = Vec::new();
                    while rest.trim_start().starts_with('"') {
                        let text = String::from_utf8(take_text(&mut rest).map_err(err)?)
                            .map_err(|_| err("a pattern must be UTF-8 text".into()))?;
                        patterns.push(Pattern::parse(&text).map_err(err)?);
                    }
                    if patterns.is_empty() {
                        return Err(err("`lines` needs at least one pattern".into()));
                    }
                    (Action::Lines { count, patterns }, true)
                }
                "cpu" => {
                    let console = take_word(&mut rest).to_string();
                    if console.is_empty() || console.starts_with('"') {
                        return Err(err("`cpu` needs a console name".into()));
                    }
                    let text = String::from_utf8(take_text(&mut rest).map_err(err)?)
                        .map_err(|_| err("the names must be UTF-8".into()))?;
                    let names: Vec<String> = text.split_whitespace().map(String::from).collect();
                    if names.is_empty() {
                        return Err(err("`cpu` needs the names of PDs".into()));
                    }
                    let mut peek = rest;
                    let size = match parse_size(take_word(&mut peek)) {
                        Ok(size) => {
                            rest = peek;
                            Some(size)
                        }
                        Err(_) => None,
                    };
                    (
                        Action::Cpu {
                            console,
                            names,
                            size,
                        },
                        true,
                    )
                }
                "top" | "stats" => {
                    let console = take_word(&mut rest).to_string();
                    if console.is_empty() || console.starts_with('"') {
                        return Err(err(format!("`{word}` needs a console name")));
                    }
                    if word == "top" {
                        let n = take_word(&mut rest);
                        let frames = n.parse().ok().filter(|n| *n > 1).ok_or_else(|| {
                            err(format!("`top` needs a count of frames (2 or more), not `{n}`"))
                        })?;
                        (Action::Top { console, frames }, true)
                    } else {
                        let text = String::from_utf8(take_text(&mut rest).map_err(err)?)
                            .map_err(|_| err("the text must be UTF-8".into()))?;
                        let mut words = text.split_whitespace();
                        let pd = words.next().unwrap_or_default().to_string();
                        let want: Option<Vec<(String, String)>> = words
                            .map(|w| {
                                w.split_once('=')
                                    .map(|(f, v)| (f.to_string(), v.to_string()))
                            })
                            .collect();
                        match want {
                            Some(want) if !pd.is_empty() && !want.is_empty() => {
                                (Action::Stats { console, pd, want }, true)
                            }
                            _ => {
                                return Err(err(
                                    "`stats` needs \"PD field=value ...\"".into(),
                                ))
                            }
                        }
                    }
                }
                "send" | "expect" => {
                    let console = take_word(&mut rest).to_string();
                    if console.is_empty() || console.starts_with('"') {
                        return Err(err(format!(
                            "`{word}` needs a console name before the text"
                        )));
                    }
                    if word == "expect" && console == UART {
                        return Err(err(format!(
                            "`expect {UART}`: the UART's output is the console itself; wait for it with `after` or `lines`"
                        )));
                    }
                    let bytes = take_text(&mut rest).map_err(err)?;
                    if word == "send" {
                        (Action::Send { console, bytes }, false)
                    } else {
                        (Action::Expect { console, bytes }, true)
                    }
                }
                "http" => {
                    let port = take_port(&mut rest).map_err(err)?;
                    let path = String::from_utf8(take_text(&mut rest).map_err(err)?)
                        .map_err(|_| err("the path must be UTF-8 text".into()))?;
                    let want = String::from_utf8(take_text(&mut rest).map_err(err)?)
                        .map_err(|_| err("the text must be UTF-8".into()))?;
                    (Action::Http { port, path, want }, true)
                }
                "request" => {
                    let port = take_port(&mut rest).map_err(err)?;
                    let head = take_text(&mut rest).map_err(err)?;
                    let want = String::from_utf8(take_text(&mut rest).map_err(err)?)
                        .map_err(|_| err("the text must be UTF-8".into()))?;
                    let (mut send, mut cut, mut body) = (None, None, None);
                    loop {
                        let before = rest;
                        let w = take_word(&mut rest);
                        match w.split_once('=') {
                            Some(("send", v)) => send = Some(Random::parse(v).map_err(err)?),
                            Some(("body", v)) => body = Some(Random::parse(v).map_err(err)?),
                            Some(("cut", v)) => {
                                cut = Some(v.parse().map_err(|_| {
                                    err(format!("cut= takes a number of bytes, not `{v}`"))
                                })?)
                            }
                            Some((k, _)) => {
                                return Err(err(format!(
                                    "unknown option `{k}=` (send=, cut=, body=)"
                                )))
                            }
                            None => {
                                rest = before;
                                break;
                            }
                        }
                    }
                    if cut.is_some() && send.is_none() {
                        return Err(err("cut= needs send=".into()));
                    }
                    (
                        Action::Request {
                            port,
                            head,
                            want,
                            send,
                            cut,
                            body,
                        },
                        true,
                    )
                }
                "reboot" => (Action::Reboot, false),
                "tcp-echo" | "tcp-send" => {
                    let port = take_port(&mut rest).map_err(err)?;
                    let size = parse_size(take_word(&mut rest)).map_err(err)?;
                    if word == "tcp-echo" {
                        (Action::TcpEcho { port, size }, true)
                    } else {
                        (Action::TcpSend { port, size }, true)
                    }
                }
                "udp-echo" | "fuzz" => {
                    let port = take_port(&mut rest).map_err(err)?;
                    let w = take_word(&mut rest);
                    let n: u64 = w
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| err(format!("`{word}` needs a count, not `{w}`")))?;
                    if word == "fuzz" {
                        (Action::Fuzz { port, count: n }, true)
                    } else {
                        (
                            Action::UdpEcho {
                                port,
                                count: u32::try_from(n).unwrap_or(u32::MAX),
                            },
                            true,
                        )
                    }
                }
                "dashboard" => {
                    let port = take_port(&mut rest).map_err(err)?;
                    let path = String::from_utf8(take_text(&mut rest).map_err(err)?)
                        .map_err(|_| err("the path must be UTF-8 text".into()))?;
                    let names: Vec<String> =
                        String::from_utf8(take_text(&mut rest).map_err(err)?)
                            .map_err(|_| err("the names must be UTF-8".into()))?
                            .split_whitespace()
                            .map(String::from)
                            .collect();
                    if names.is_empty() {
                        return Err(err("`dashboard` needs the names of the PDs it must show".into()));
                    }
                    (Action::Dashboard { port, path, names }, true)
                }
                "serve" => {
                    let port = take_port(&mut rest).map_err(err)?;
                    let size = parse_size(take_word(&mut rest)).map_err(err)?;
                    (Action::Serve { port, size }, true)
                }
                "tcp-accept" => {
                    let port = take_port(&mut rest).map_err(err)?;
                    let want = take_text(&mut rest).map_err(err)?;
                    (Action::TcpAccept { port, want }, true)
                }
                "no-line" => (
                    Action::NoLine {
                        text: String::from_utf8(take_text(&mut rest).map_err(err)?)
                            .map_err(|_| err("the text must be UTF-8".into()))?,
                    },
                    false,
                ),
                other => {
                    return Err(err(format!(
                        "unknown step `{other}`: use `after`, `send`, `expect`, `lines`, `http`, `request`, `reboot`, `tcp-echo`, `tcp-send`, `udp-echo`, `fuzz`, `tcp-accept`, `serve`, `type-until`, `no-line`, `dashboard`, `top`, `stats` or `cpu`"
                    )))
                }
            };
            let limit = match take_word(&mut rest) {
                "" => DEFAULT_LIMIT,
                w if limit_allowed => parse_limit(w).map_err(err)?,
                w => return Err(err(format!("unexpected `{w}` after the text"))),
            };
            if !rest.trim_start().is_empty() && !rest.trim_start().starts_with('#') {
                return Err(err(format!("unexpected `{}`", rest.trim())));
            }
            steps.push(Step {
                line,
                action,
                limit,
            });
        }
        Ok(Probe { steps })
    }

    /// The virtio consoles the probe talks to.
    pub fn consoles(&self) -> impl Iterator<Item = (usize, &str)> {
        self.steps.iter().filter_map(|s| match &s.action {
            Action::Send { console, .. }
            | Action::Expect { console, .. }
            | Action::Top { console, .. }
            | Action::Stats { console, .. }
            | Action::Cpu { console, .. }
                if console != UART =>
            {
                Some((s.line, console.as_str()))
            }
            _ => None,
        })
    }

    /// The probe's parts, one per boot: the steps before each `reboot`,
    /// and those after the last.
    pub fn boots(&self) -> Vec<Probe> {
        let mut parts = vec![Probe::default()];
        for s in &self.steps {
            match s.action {
                Action::Reboot => parts.push(Probe::default()),
                _ => parts
                    .last_mut()
                    .expect("one at least")
                    .steps
                    .push(s.clone()),
            }
        }
        parts
    }

    /// Whether the probe types on the UART (then the harness gives it
    /// QEMU's standard input).
    pub fn types_on_uart(&self) -> bool {
        self.steps.iter().any(|s| match &s.action {
            Action::Send { console, .. } => console == UART,
            Action::TypeUntil { .. } => true,
            _ => false,
        })
    }

    /// Whether the probe injects frames (then the harness gives the
    /// system's network card an injection port).
    pub fn injects(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.action, Action::Fuzz { .. }))
    }

    /// Runs the steps with no network (see [`Probe::run_net`]), closing
    /// the consoles' connections at the end.
    #[cfg(test)]
    pub fn run(
        &self,
        lines: &Receiver<String>,
        sockets: &HashMap<String, PathBuf>,
        uart: Option<&mut dyn Write>,
    ) -> Result<(), ProbeError> {
        let mut conns = Consoles::default();
        self.run_net(lines, sockets, uart, &NetEnv::default(), &mut conns)
    }

    /// Runs the steps: `lines` brings the serial console's lines as they
    /// arrive (and closes when the system stops), `sockets` maps each
    /// console's name to its socket, `uart` is QEMU's standard input (if
    /// the probe types on the UART), `net` where the system's forwarded
    /// ports are. The connections to consoles it opens are left in
    /// `conns`, for the caller to close once QEMU has stopped. Stops at the
    /// first failing step.
    pub fn run_net(
        &self,
        lines: &Receiver<String>,
        sockets: &HashMap<String, PathBuf>,
        mut uart: Option<&mut dyn Write>,
        net: &NetEnv,
        conns: &mut Consoles,
    ) -> Result<(), ProbeError> {
        let conns = &mut conns.0;
        let mut seen: Vec<String> = Vec::new();
        // Each console's start frame of `cpu`.
        let mut cpu_start: HashMap<String, crate::top::Frame> = HashMap::new();
        for step in &self.steps {
            let deadline = Instant::now() + step.limit;
            let fail = |what: &str, why: String| ProbeError::Net {
                line: step.line,
                what: what.to_string(),
                why,
            };
            match &step.action {
                Action::After { text } => wait_for_line(lines, text, step, deadline, &mut seen)?,
                Action::TypeUntil { bytes, text } => loop {
                    let Some(input) = uart.as_deref_mut() else {
                        return Err(ProbeError::NoUart { line: step.line });
                    };
                    input
                        .write_all(&forwarded_ports(bytes, net))
                        .and_then(|()| input.flush())
                        .map_err(|e| ProbeError::Send {
                            line: step.line,
                            console: UART.to_string(),
                            reason: e.to_string(),
                        })?;
                    let until = deadline.min(Instant::now() + RETYPE_EVERY);
                    match wait_for_line(lines, text, step, until, &mut seen) {
                        Err(ProbeError::NoMarker { .. }) if Instant::now() < deadline => {}
                        r => break r?,
                    }
                },
                Action::Lines { count, patterns } => {
                    wait_for_lines(lines, *count, patterns, step, deadline, &mut seen)?
                }
                Action::Http { port, path, want } => {
                    let what = format!("GET {path} on tcp/{port}");
                    let r = crate::netprobe::http_get(net, *port, path, deadline)
                        .map_err(|e| fail(&what, e))?;
                    if !r.contains(want.as_str()) {
                        return Err(fail(
                            &what,
                            format!("the response lacks {want:?}: {}", quote(r.as_bytes())),
                        ));
                    }
                }
                Action::Request {
                    port,
                    head,
                    want,
                    send,
                    cut,
                    body,
                } => {
                    let line = String::from_utf8_lossy(head);
                    let what = format!(
                        "{} on tcp/{port}",
                        line.split("\r\n").next().unwrap_or_default()
                    );
                    let sent = send.map(Random::bytes).unwrap_or_default();
                    let head = String::from_utf8_lossy(head)
                        .replace("{len}", &sent.len().to_string())
                        .into_bytes();
                    let upto = cut.map_or(sent.len(), |c| (c as usize).min(sent.len()));
                    let r = crate::netprobe::http_request(
                        net,
                        *port,
                        &head,
                        &sent[..upto],
                        cut.is_some(),
                        deadline,
                    )
                    .map_err(|e| fail(&what, e))?;
                    let text = String::from_utf8_lossy(&r);
                    if !text.contains(want.as_str()) {
                        return Err(fail(
                            &what,
                            format!("the response lacks {want:?}: {}", quote(&r)),
                        ));
                    }
                    if let Some(b) = body {
                        crate::netprobe::check_body(&r, &b.bytes()).map_err(|e| fail(&what, e))?;
                    }
                }
                Action::Reboot => unreachable!("the harness splits the probe at each reboot"),
                Action::Dashboard { port, path, names } => {
                    let what = format!("the dashboard at {path} on tcp/{port}");
                    crate::netprobe::dashboard(net, *port, path, names, deadline)
                        .map_err(|e| fail(&what, e))?;
                }
                Action::TcpEcho { port, size } => {
                    let what = format!("TCP echo on tcp/{port}");
                    let r = crate::netprobe::tcp_echo(net, *port, *size, deadline)
                        .map_err(|e| fail(&what, e))?;
                    println!("   probe: {what}: {r}");
                }
                Action::TcpSend { port, size } => {
                    let what = format!("TCP stream to tcp/{port}");
                    let r = crate::netprobe::tcp_send(net, *port, *size, deadline)
                        .map_err(|e| fail(&what, e))?;
                    println!("   probe: {what}: {r}");
                }
                Action::UdpEcho { port, count } => {
                    let what = format!("UDP echo on udp/{port}");
                    let r = crate::netprobe::udp_echo(net, *port, *count, deadline)
                        .map_err(|e| fail(&what, e))?;
                    println!("   probe: {what}: {r}");
                }
                Action::Fuzz { port, count } => fuzz_step(net, *port, *count, deadline, &fail)?,
                Action::Serve { port, size } => crate::netprobe::serve(*port, *size, deadline)
                    .map_err(|e| fail(&format!("serving on the host's tcp/{port}"), e))?,
                Action::TcpAccept { port, want } => {
                    crate::netprobe::tcp_accept(*port, want, deadline)
                        .map_err(|e| fail(&format!("accepting on the host's tcp/{port}"), e))?
                }
                Action::NoLine { text } => {
                    while let Ok(l) = lines.try_recv() {
                        seen.push(l);
                    }
                    if let Some(l) = seen.iter().find(|l| l.contains(text.as_str())) {
                        return Err(ProbeError::Unwanted {
                            line: step.line,
                            text: text.clone(),
                            got: plain(l),
                        });
                    }
                }
                Action::Send { console, bytes } if console == UART => {
                    let Some(input) = uart.as_deref_mut() else {
                        return Err(ProbeError::NoUart { line: step.line });
                    };
                    input
                        .write_all(&forwarded_ports(bytes, net))
                        .and_then(|()| input.flush())
                        .map_err(|e| ProbeError::Send {
                            line: step.line,
                            console: console.clone(),
                            reason: e.to_string(),
                        })?;
                }
                Action::Send { console, bytes } => {
                    let conn = connect(conns, sockets, console, step.line)?;
                    conn.stream.write_all(bytes).map_err(|e| ProbeError::Send {
                        line: step.line,
                        console: console.clone(),
                        reason: e.to_string(),
                    })?;
                }
                Action::Top { console, frames } => {
                    let conn = connect(conns, sockets, console, step.line)?;
                    let mut seen = Vec::new();
                    let r = crate::top::follow(&mut conn.stream, Some(deadline), |prev, now| {
                        // What `cargo septa top` would draw.
                        let _ = crate::top::render(prev, now);
                        seen.push(now.clone());
                        seen.len() < *frames as usize
                    });
                    let stats_error = |why: String| ProbeError::Stats {
                        line: step.line,
                        console: console.clone(),
                        why,
                    };
                    r.map_err(|e| stats_error(format!("{e} after {} frames", seen.len())))?;
                    crate::top::check(&seen).map_err(stats_error)?;
                }
                Action::Cpu {
                    console,
                    names,
                    size,
                } => {
                    let stats_error = |why: String| ProbeError::Stats {
                        line: step.line,
                        console: console.clone(),
                        why,
                    };
                    let conn = connect(conns, sockets, console, step.line)?;
                    let mut quiet = None;
                    crate::top::follow(&mut conn.stream, Some(deadline), |prev, now| {
                        if prev.is_some_and(|p| crate::top::busy_us(p, now, names) < QUIET_US) {
                            quiet = Some(now.clone());
                        }
                        quiet.is_none()
                    })
                    .map_err(|e| {
                        stats_error(format!("{e} before {} were quiet", names.join(" ")))
                    })?;
                    let end = quiet.expect("follow stops at a quiet frame");
                    match size {
                        None => {
                            cpu_start.insert(console.clone(), end);
                        }
                        Some(size) => {
                            let start = cpu_start.get(console).ok_or_else(|| {
                                stats_error("no `cpu` step without a size started the count".into())
                            })?;
                            let split = crate::top::cpu_per_kib(start, &end, names, *size)
                                .map_err(stats_error)?;
                            if let Ok(mut f) = crate::netprobe::FIGURES.lock() {
                                f.extend(split);
                            }
                        }
                    }
                }
                Action::Stats { console, pd, want } => {
                    let conn = connect(conns, sockets, console, step.line)?;
                    let mut last: Option<crate::top::Frame> = None;
                    let r = crate::top::follow(&mut conn.stream, Some(deadline), |_, now| {
                        last = Some(now.clone());
                        !crate::top::matches(now, pd, want)
                    });
                    r.map_err(|e| ProbeError::Stats {
                        line: step.line,
                        console: console.clone(),
                        why: match last
                            .as_ref()
                            .map(|f| (f, f.entries.iter().find(|e| e.name() == pd)))
                        {
                            Some((f, Some(l))) => {
                                let mut shown = format!(
                                    "{e}; {pd} showed faults={} restarts={} overruns={} state={}",
                                    l.faults,
                                    l.restarts,
                                    l.overruns,
                                    l.state.name()
                                );
                                for c in f.counters.iter().filter(|c| c.entry.name() == pd) {
                                    for (name, v) in c.kind.fields().iter().zip(c.entry.values) {
                                        shown += &format!(" {}.{name}={v}", c.kind.name());
                                    }
                                }
                                shown
                            }
                            _ => format!("{e}; no frame named {pd}"),
                        },
                    })?;
                }
                Action::Expect { console, bytes } => {
                    let conn = connect(conns, sockets, console, step.line)?;
                    conn.expect(bytes, deadline)
                        .map_err(|got| ProbeError::Expect {
                            line: step.line,
                            console: console.clone(),
                            want: quote(bytes),
                            limit: step.limit,
                            got,
                        })?;
                }
            }
        }
        Ok(())
    }
}

/// `bytes` with each `{tcp/N}` (or `{udp/N}`) replaced by the host port
/// this run forwards to that port of the system (left as it is when none
/// does): a guest typed to can reach a native cell through the host.
pub fn forwarded_ports(bytes: &[u8], net: &NetEnv) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(start) = rest.iter().position(|&b| b == b'{') {
        out.extend_from_slice(&rest[..start]);
        rest = &rest[start..];
        let end = rest.iter().position(|&b| b == b'}');
        let port = end.and_then(|e| {
            let inner = std::str::from_utf8(&rest[1..e]).ok()?;
            let (proto, port) = inner.split_once('/')?;
            let proto = match proto {
                "tcp" => septa_sysdesc::Proto::Tcp,
                "udp" => septa_sysdesc::Proto::Udp,
                _ => return None,
            };
            net.forwards.get(&(proto, port.parse().ok()?)).copied()
        });
        match (end, port) {
            (Some(e), Some(p)) => {
                out.extend_from_slice(p.to_string().as_bytes());
                rest = &rest[e + 1..];
            }
            _ => {
                out.push(b'{');
                rest = &rest[1..];
            }
        }
    }
    out.extend_from_slice(rest);
    out
}

/// The fuzz step: counters before, the frames, counters after.
fn fuzz_step(
    net: &NetEnv,
    port: u16,
    count: u64,
    deadline: Instant,
    fail: &dyn Fn(&str, String) -> ProbeError,
) -> Result<(), ProbeError> {
    use crate::netprobe::{fuzz, http_get, json_number};
    let what = format!("fuzz through the card, counters from tcp/{port}");
    let status = |d| -> Result<(u64, u64, String), ProbeError> {
        let r = http_get(net, port, "/api/status", d).map_err(|e| fail(&what, e))?;
        let n = |k| {
            json_number(&r, k)
                .ok_or_else(|| fail(&what, format!("no `{k}` in {}", quote(r.as_bytes()))))
        };
        Ok((n("rx_frames")?, n("rx_dropped")?, r))
    };
    let (frames0, dropped0, r) = status(deadline)?;
    let field = |k: &str| {
        r.split(&format!("\"{k}\":\""))
            .nth(1)
            .and_then(|t| t.split('"').next())
            .map(String::from)
    };
    let ip = field("address").and_then(|a| {
        let v: Vec<u8> = a.split('.').filter_map(|x| x.parse().ok()).collect();
        <[u8; 4]>::try_from(v).ok()
    });
    let mac = field("mac").and_then(|a| {
        let v: Vec<u8> = a
            .split(':')
            .filter_map(|x| u8::from_str_radix(x, 16).ok())
            .collect();
        <[u8; 6]>::try_from(v).ok()
    });
    let (Some(ip), Some(mac)) = (ip, mac) else {
        return Err(fail(&what, "no address or MAC in /api/status".into()));
    };
    let rep = match fuzz(net, mac, ip, count, deadline) {
        Ok(r) => r,
        Err(e) => {
            // What the stack says now, if it still answers over HTTP.
            let now = http_get(
                net,
                port,
                "/api/status",
                Instant::now() + Duration::from_secs(10),
            );
            let body = now.map_or_else(
                |e| e,
                |r| r.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
            );
            return Err(fail(
                &what,
                format!("{e}; /api/status then: {}", body.trim()),
            ));
        }
    };
    let (frames1, dropped1, _) = status(deadline)?;
    let (frames, dropped) = (frames1 - frames0, dropped1 - dropped0);
    println!(
        "   probe: fuzz: {} frames sent, {} sure to reach the stack ({} sure to be dropped); the stack counted {frames} received, {dropped} dropped",
        rep.sent, rep.seen, rep.dropped
    );
    if frames < rep.seen || dropped < rep.dropped {
        return Err(fail(
            &what,
            format!(
                "the counters do not account for the frames: {frames} received (at least {} due), {dropped} dropped (at least {} due)",
                rep.seen, rep.dropped
            ),
        ));
    }
    Ok(())
}

fn wait_for_line(
    lines: &Receiver<String>,
    text: &str,
    step: &Step,
    deadline: Instant,
    seen: &mut Vec<String>,
) -> Result<(), ProbeError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(text) => {
                seen.push(l);
                return Ok(());
            }
            Ok(l) => seen.push(l),
            Err(RecvTimeoutError::Timeout) => {
                return Err(ProbeError::NoMarker {
                    line: step.line,
                    text: text.to_string(),
                    limit: step.limit,
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ProbeError::ConsoleEnded {
                    line: step.line,
                    text: text.to_string(),
                })
            }
        }
    }
}

/// A console line without ANSI control sequences (`ESC [ ... letter`, the
/// colours the serial subsystem may put on a client's lines) or the
/// carriage return before its end.
pub fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out.trim_end_matches('\r').to_string()
}

fn wait_for_lines(
    lines: &Receiver<String>,
    count: u32,
    patterns: &[Pattern],
    step: &Step,
    deadline: Instant,
    seen: &mut Vec<String>,
) -> Result<(), ProbeError> {
    let mut next = vec![1u32; patterns.len()];
    let missing = |next: &[u32]| {
        let parts: Vec<String> = patterns
            .iter()
            .zip(next)
            .filter(|(_, n)| **n <= count)
            .map(|(p, n)| format!("{:?} and the {} after it", p.line(*n), count - n))
            .collect();
        format!("the console never showed {}", parts.join("; nor "))
    };
    while next.iter().any(|n| *n <= count) {
        let left = deadline.saturating_duration_since(Instant::now());
        let raw = match lines.recv_timeout(left) {
            Ok(l) => l,
            Err(_) => {
                return Err(ProbeError::LinesMissing {
                    line: step.line,
                    missing: missing(&next),
                    limit: step.limit,
                })
            }
        };
        let line = plain(&raw);
        seen.push(raw);
        for (p, n) in patterns.iter().zip(next.iter_mut()) {
            if !line.contains(&p.stem) {
                continue;
            }
            let want = p.line(*n);
            if *n > count || line != want {
                return Err(ProbeError::WrongLine {
                    line: step.line,
                    want: if *n > count {
                        format!("no more than {count} lines of {:?}", p.stem)
                    } else {
                        want
                    },
                    got: line,
                });
            }
            *n += 1;
        }
    }
    Ok(())
}

/// A probe's open connections to virtio consoles, by console name. Dropping
/// it closes them: the harness does so only after QEMU has stopped, so that
/// QEMU reads all the probe sent (see the module's documentation).
#[derive(Default)]
pub struct Consoles(HashMap<String, Conn>);

/// A connection to one console, with what arrived and is not yet matched.
struct Conn {
    stream: UnixStream,
    pending: Vec<u8>,
}

impl Conn {
    /// Reads until `pending` contains `want` (then drops it and everything
    /// before), or until `deadline`; the error says what arrived.
    fn expect(&mut self, want: &[u8], deadline: Instant) -> Result<(), String> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(at) = find(&self.pending, want) {
                self.pending.drain(..at + want.len());
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.received("the time ran out"));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| e.to_string())?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(self.received("the console closed")),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(self.received("the time ran out"))
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(self.received(&e.to_string())),
            }
        }
    }

    fn received(&self, why: &str) -> String {
        if self.pending.is_empty() {
            format!("{why} and nothing arrived")
        } else {
            format!("{why}; received {}", quote(&self.pending))
        }
    }
}

fn connect<'a>(
    conns: &'a mut HashMap<String, Conn>,
    sockets: &HashMap<String, PathBuf>,
    console: &str,
    line: usize,
) -> Result<&'a mut Conn, ProbeError> {
    let Some(path) = sockets.get(console) else {
        return Err(ProbeError::UnknownConsole {
            line,
            console: console.to_string(),
        });
    };
    if !conns.contains_key(console) {
        let stream = UnixStream::connect(path).map_err(|e| ProbeError::Connect {
            line,
            console: console.to_string(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let conn = Conn {
            stream,
            pending: Vec::new(),
        };
        conns.insert(console.to_string(), conn);
    }
    Ok(conns.get_mut(console).expect("inserted above"))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Bytes as a quoted string with escapes, cut after [`QUOTE_MAX`].
fn quote(bytes: &[u8]) -> String {
    let cut = bytes.len() > QUOTE_MAX;
    let mut s = String::from("\"");
    for &b in &bytes[..bytes.len().min(QUOTE_MAX)] {
        match b {
            b'\n' => s += "\\n",
            b'\r' => s += "\\r",
            b'\t' => s += "\\t",
            b'\\' => s += "\\\\",
            b'"' => s += "\\\"",
            0x20..=0x7e => s.push(b as char),
            _ => s += &format!("\\x{b:02x}"),
        }
    }
    s.push('"');
    if cut {
        s += &format!(" (and {} more bytes)", bytes.len() - QUOTE_MAX);
    }
    s
}

/// A port number.
fn take_port(rest: &mut &str) -> Result<u16, String> {
    let w = take_word(rest);
    w.parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("expected a port (1 to 65535), not `{w}`"))
}

/// A size: bytes, or a number with `KiB` or `MiB`.
pub(crate) fn parse_size(w: &str) -> Result<u64, String> {
    let (num, unit) = match w.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => w.split_at(i),
        None => (w, ""),
    };
    let mult = match unit {
        "" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ => {
            return Err(format!(
                "`{w}`: a size is bytes, or a number with KiB or MiB"
            ))
        }
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| format!("`{w}` is not a size"))
}

/// The next word (up to whitespace), or a quoted text left in place.
fn take_word<'a>(rest: &mut &'a str) -> &'a str {
    let s = rest.trim_start();
    if s.starts_with('"') || s.starts_with('#') {
        *rest = s;
        return if s.starts_with('#') { "" } else { "\"" };
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    *rest = &s[end..];
    &s[..end]
}

/// A double-quoted text with escapes, as bytes.
fn take_text(rest: &mut &str) -> Result<Vec<u8>, String> {
    let s = rest.trim_start();
    let Some(body) = s.strip_prefix('"') else {
        return Err("expected a text in double quotes".into());
    };
    let mut out = Vec::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                *rest = &body[i + 1..];
                return Ok(out);
            }
            '\\' => {
                let e = chars.next().map(|(_, e)| e);
                match e {
                    Some('n') => out.push(b'\n'),
                    Some('r') => out.push(b'\r'),
                    Some('t') => out.push(b'\t'),
                    Some('\\') => out.push(b'\\'),
                    Some('"') => out.push(b'"'),
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).map(|(_, h)| h).collect();
                        let b = u8::from_str_radix(&hex, 16)
                            .ok()
                            .filter(|_| hex.len() == 2)
                            .ok_or_else(|| format!("`\\x{hex}` needs two hex digits"))?;
                        out.push(b);
                    }
                    Some(other) => return Err(format!("unknown escape `\\{other}`")),
                    None => break,
                }
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    Err("the text has no closing quote".into())
}

fn parse_limit(w: &str) -> Result<Duration, String> {
    let bad = || format!("`{w}` is not a time limit: write it as `500ms` or `5s`");
    let (num, unit) = w
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| w.split_at(i))
        .ok_or_else(bad)?;
    let n: u64 = num.parse().map_err(|_| bad())?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::sync::mpsc;

    const ECHO: &str = r#"
# comment
after "echo: ready"
send console "hello, septa\n"   # a trailing comment
expect console "HELLO, SEPTA\n" 2s
send console "tab\there \"q\" \\ \x01"
"#;

    #[test]
    fn steps_are_read_with_escapes_and_limits() {
        let p = Probe::parse(ECHO).unwrap();
        assert_eq!(p.steps.len(), 4);
        assert_eq!(
            p.steps[0],
            Step {
                line: 3,
                action: Action::After {
                    text: "echo: ready".into()
                },
                limit: DEFAULT_LIMIT,
            }
        );
        assert_eq!(
            p.steps[2].action,
            Action::Expect {
                console: "console".into(),
                bytes: b"HELLO, SEPTA\n".to_vec()
            }
        );
        assert_eq!(p.steps[2].limit, Duration::from_secs(2));
        assert_eq!(
            p.steps[3].action,
            Action::Send {
                console: "console".into(),
                bytes: b"tab\there \"q\" \\ \x01".to_vec()
            }
        );
        let consoles: Vec<_> = p.consoles().collect();
        assert_eq!(consoles, [(4, "console"), (5, "console"), (6, "console")]);
    }

    #[test]
    fn cpu_steps_take_names_an_optional_size_and_a_limit() {
        let p = Probe::parse("cpu stats \"a b\" 30s\ncpu stats \"a b\" 64MiB 9s\ncpu stats \"a\"")
            .unwrap();
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            p.steps[0].action,
            Action::Cpu {
                console: "stats".into(),
                names: names.clone(),
                size: None
            }
        );
        assert_eq!(p.steps[0].limit, Duration::from_secs(30));
        assert_eq!(
            p.steps[1].action,
            Action::Cpu {
                console: "stats".into(),
                names,
                size: Some(64 << 20)
            }
        );
        assert_eq!(p.steps[1].limit, Duration::from_secs(9));
        assert_eq!(p.steps[2].limit, DEFAULT_LIMIT);
        for bad in [
            "cpu",
            "cpu stats",
            "cpu stats \"\"",
            "cpu stats \"a\" 3 lots",
        ] {
            assert!(Probe::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_and_reboots_are_read() {
        let p = Probe::parse(
            "request 80 \"PUT /kv/a HTTP/1.1\\r\\nContent-Length: {len}\\r\\n\\r\\n\" \"200 OK\" send=64KiB@7 cut=10 5s\n\
             reboot\n\
             request 80 \"GET /kv/a HTTP/1.1\\r\\n\\r\\n\" \"200\" body=0@1\n",
        )
        .unwrap();
        assert_eq!(
            p.steps[0].action,
            Action::Request {
                port: 80,
                head: b"PUT /kv/a HTTP/1.1\r\nContent-Length: {len}\r\n\r\n".to_vec(),
                want: "200 OK".into(),
                send: Some(Random {
                    size: 65536,
                    seed: 7
                }),
                cut: Some(10),
                body: None,
            }
        );
        assert_eq!(p.steps[0].limit, Duration::from_secs(5));
        let parts = p.boots();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].steps.len(), parts[1].steps.len()), (1, 1));
        assert_eq!(parts[1].steps[0].line, 3);
        assert_eq!(
            Random { size: 9, seed: 3 }.bytes(),
            Random { size: 9, seed: 3 }.bytes()
        );
        for bad in [
            "request 80 \"x\" \"y\" cut=3",
            "request 80 \"x\" \"y\" send=12",
            "request 80 \"x\" \"y\" colour=red",
            "reboot 5s",
        ] {
            assert!(Probe::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_name_their_line() {
        for (text, line, what) in [
            ("wait \"x\"", 1, "unknown step `wait`"),
            ("\nsend \"x\"", 2, "needs a console name"),
            ("expect c x", 1, "double quotes"),
            ("after \"x", 1, "no closing quote"),
            ("after \"x\" 5 minutes", 1, "not a time limit"),
            ("send c \"x\" 5s", 1, "unexpected `5s`"),
            ("after \"\\q\"", 1, "unknown escape"),
            ("after \"\\x4\"", 1, "two hex digits"),
            ("after \"x\" 1s more", 1, "unexpected `more`"),
        ] {
            let e = Probe::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(what), "{text}: {e}");
        }
    }

    /// A stand-in for QEMU's end of a console: answers each line it
    /// receives with `answer(line)`.
    fn fake_console(
        answer: fn(&str) -> String,
    ) -> (
        crate::testkit::Scratch,
        PathBuf,
        std::thread::JoinHandle<()>,
    ) {
        let dir = crate::testkit::Scratch::new("probe");
        let path = dir.join("c.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                while let Some(at) = got.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = got.drain(..=at).collect();
                    let reply = answer(std::str::from_utf8(&line).unwrap().trim_end());
                    if s.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            }
        });
        (dir, path, t)
    }

    fn run_against(answer: fn(&str) -> String) -> Result<(), ProbeError> {
        let (_dir, path, _server) = fake_console(answer);
        let probe =
            Probe::parse(ECHO.lines().take(5).collect::<Vec<_>>().join("\n").as_str()).unwrap();
        let (tx, rx) = mpsc::channel();
        tx.send("booting".to_string()).unwrap();
        tx.send("pd: echo: ready".to_string()).unwrap();
        let sockets = HashMap::from([("console".to_string(), path)]);
        probe.run(&rx, &sockets, None)
    }

    /// QEMU drops a console's connection, with what it has not read yet,
    /// the moment the host end closes: the probe's connections outlive its
    /// steps, until the caller drops them.
    #[test]
    fn consoles_stay_open_after_the_last_step() {
        let dir = crate::testkit::Scratch::new("probe");
        let path = dir.join("c.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let probe = Probe::parse("send console \"bye\\n\"").unwrap();
        let (_tx, rx) = mpsc::channel();
        let sockets = HashMap::from([("console".to_string(), path)]);
        let mut conns = Consoles::default();
        probe
            .run_net(&rx, &sockets, None, &NetEnv::default(), &mut conns)
            .unwrap();
        // The probe is done; QEMU reads only now.
        let (mut s, _) = listener.accept().unwrap();
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"bye\n");
        let e = s.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::WouldBlock, "the console was closed");
        drop(conns);
        s.set_nonblocking(false).unwrap();
        assert_eq!(s.read(&mut buf).unwrap(), 0, "closed with the consoles");
    }

    #[test]
    fn a_right_answer_passes() {
        run_against(|l| format!("{}\n", l.to_uppercase())).unwrap();
    }

    #[test]
    fn a_wrong_answer_fails_and_shows_what_came() {
        let e = run_against(|l| format!("{l}\n")).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ProbeError::Expect { line: 5, .. }), "{text}");
        assert!(
            text.contains(r#"expected "HELLO, SEPTA\n" from console `console` within 2s"#),
            "{text}"
        );
        assert!(text.contains(r#"received "hello, septa\n""#), "{text}");
    }

    #[test]
    fn a_missing_marker_or_console_fails() {
        let p = Probe::parse("after \"ready\" 50ms").unwrap();
        let (tx, rx) = mpsc::channel();
        tx.send("nothing here".to_string()).unwrap();
        let e = p.run(&rx, &HashMap::new(), None).unwrap_err();
        assert!(matches!(e, ProbeError::NoMarker { line: 1, .. }), "{e}");
        drop(tx);
        let e = p.run(&rx, &HashMap::new(), None).unwrap_err();
        assert!(matches!(e, ProbeError::ConsoleEnded { .. }), "{e}");
        let p = Probe::parse("send net0 \"x\"").unwrap();
        let e = p.run(&rx, &HashMap::new(), None).unwrap_err();
        assert!(matches!(e, ProbeError::UnknownConsole { .. }), "{e}");
    }

    fn feed(lines: &[&str]) -> Receiver<String> {
        let (tx, rx) = mpsc::channel();
        for l in lines {
            tx.send(l.to_string()).unwrap();
        }
        rx
    }

    #[test]
    fn whole_lines_in_order_pass_among_others() {
        let p = Probe::parse("lines 2 \"a: {} ok\" \"b| {}\" 1s").unwrap();
        let rx = feed(&[
            "boot",
            "\x1b[31ma: 1 ok\x1b[0m\r",
            "b| 1",
            "kernel says hi",
            "b| 2\r",
            "a: 2 ok",
        ]);
        p.run(&rx, &HashMap::new(), None).unwrap();
    }

    #[test]
    fn torn_lost_or_reordered_lines_fail() {
        let p = Probe::parse("lines 3 \"a: {} ok\" \"b| {}\" 200ms").unwrap();
        for (console, want, got) in [
            (&["a: 1 ok", "a: 2 ob| 1"][..], "a: 2 ok", "a: 2 ob| 1"),
            (&["a: 1 ok", "a: 3 ok"], "a: 3 ok", "a: 3 ok"),
            (&["b| 2"], "b| 1", "b| 2"),
        ] {
            let e = p.run(&feed(console), &HashMap::new(), None).unwrap_err();
            match &e {
                ProbeError::WrongLine { got: g, .. } => {
                    assert_eq!(g, got, "{e}");
                    assert!(e.to_string().contains(want) || want == got, "{e}");
                }
                other => panic!("{other}"),
            }
        }
        let (tx, rx) = mpsc::channel();
        for l in ["a: 1 ok", "a: 2 ok", "a: 3 ok", "a: 4 ok"] {
            tx.send(l.to_string()).unwrap();
        }
        let p1 = Probe::parse("lines 3 \"a: {} ok\"\nlines 1 \"a: {} ok\" 100ms").unwrap();
        let e = p1.run(&rx, &HashMap::new(), None).unwrap_err();
        assert!(matches!(e, ProbeError::WrongLine { .. }), "{e}");
        let e = p
            .run(&feed(&["a: 1 ok"]), &HashMap::new(), None)
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, ProbeError::LinesMissing { .. }), "{text}");
        assert!(text.contains("\"a: 2 ok\" and the 1 after it"), "{text}");
        assert!(text.contains("\"b| 1\" and the 2 after it"), "{text}");
    }

    #[test]
    fn keys_typed_on_the_uart_reach_its_input() {
        let p = Probe::parse("send uart \"\\x1c1\\r\"\nafter \"x\" 10ms").unwrap();
        assert!(p.types_on_uart());
        assert_eq!(p.consoles().count(), 0, "the UART is no virtio console");
        let mut typed: Vec<u8> = Vec::new();
        let rx = feed(&["x"]);
        p.run(&rx, &HashMap::new(), Some(&mut typed)).unwrap();
        assert_eq!(typed, b"\x1c1\r");
        let e = p.run(&feed(&["x"]), &HashMap::new(), None).unwrap_err();
        assert!(matches!(e, ProbeError::NoUart { line: 1 }), "{e}");
    }

    #[test]
    fn lines_and_uart_steps_are_checked_when_read() {
        for (text, what) in [
            ("lines \"a {}\"", "needs a count"),
            ("lines 0 \"a {}\"", "needs a count"),
            ("lines 3", "at least one pattern"),
            ("lines 3 \"a\"", "exactly one `{}`"),
            ("lines 3 \"a {} {}\"", "exactly one `{}`"),
            ("lines 3 \"{} a\"", "start with text"),
            ("expect uart \"x\"", "with `after` or `lines`"),
        ] {
            let e = Probe::parse(text).unwrap_err();
            assert!(e.message.contains(what), "{text}: {e}");
        }
    }

    #[test]
    fn quotes_escape_and_cut() {
        assert_eq!(quote(b"a\"\n\x02"), r#""a\"\n\x02""#);
        let long = vec![b'a'; QUOTE_MAX + 5];
        assert!(quote(&long).ends_with("(and 5 more bytes)"));
    }

    /// A UART whose first `drop` writes are lost (a shell not yet
    /// reading); each later write is answered with `answer` on the
    /// console.
    struct LossyShell {
        drop: usize,
        writes: usize,
        console: mpsc::Sender<String>,
        answer: &'static str,
    }

    impl Write for LossyShell {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes += 1;
            if self.writes > self.drop {
                let _ = self.console.send(self.answer.to_string());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn type_until_types_again_until_the_shell_answers() {
        let probe = Probe::parse("type-until \"uname -r\\r\" \"-cloud-arm64\" 2s").unwrap();
        assert!(probe.types_on_uart());
        let (tx, rx) = mpsc::channel();
        let mut shell = LossyShell {
            drop: 2,
            writes: 0,
            console: tx.clone(),
            answer: "6.1.0-57-cloud-arm64",
        };
        probe.run(&rx, &HashMap::new(), Some(&mut shell)).unwrap();
        assert_eq!(shell.writes, 3);
        // A shell that never answers: the step fails at its limit, having
        // typed about once per RETYPE_EVERY.
        let probe = Probe::parse("type-until \"x\\r\" \"never\" 1s").unwrap();
        let mut mute = LossyShell {
            drop: usize::MAX,
            writes: 0,
            console: tx,
            answer: "",
        };
        let e = probe
            .run(&rx, &HashMap::new(), Some(&mut mute))
            .unwrap_err();
        assert!(matches!(e, ProbeError::NoMarker { line: 1, .. }), "{e}");
        assert!((5..=11).contains(&mute.writes), "{}", mute.writes);
    }
}
