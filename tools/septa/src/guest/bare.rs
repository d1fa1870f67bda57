//! Booting a guest on bare QEMU: the kernel, initramfs and device tree of
//! [`super::prepare`] on `-machine virt,virtualization=off`, where QEMU
//! itself plays the hypervisor's part (it answers PSCI `hvc` calls and
//! emulates the GIC, the PL011 and the virtio-mmio transports at the very
//! addresses of `septa_vm_layout::map`).
//!
//! This is the yardstick the VMM is measured against (the same kernel and
//! initrd, the same CPU, RAM and devices, with no Septa underneath) and a
//! test that the guest's three files are right: [`boot`] waits for
//! [`super::INIT_MARKER`], then runs commands in the guest's shell through
//! the console and returns what they printed.
//!
//! QEMU loads the initrd and the device tree where it likes and rewrites
//! `/chosen/linux,initrd-*` and `/memory` to match (hw/arm/boot.c); every
//! other node is the tool's.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use miette::{miette, IntoDiagnostic, Result};
use septa_sysdesc::{Proto, VirtioKind};

use super::{Artefacts, INIT_MARKER};
use crate::qemu::{Device, Machine, QEMU};

/// The QEMU machine of a Septa guest: a GICv2 and no EL2, so the guest
/// kernel starts at EL1, as under the VMM.
pub const MACHINE: &str = "virt,virtualization=off,gic-version=2";
pub const CPU: &str = "cortex-a53";
/// Flags that make the instruction count exact and repeatable
/// (/work/shared/benchmarks.md): one instruction per virtual ns, no
/// sleeping when idle.
pub const ICOUNT: &str = "shift=0,sleep=off";

/// How to boot.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Add `-icount` [`ICOUNT`].
    pub icount: bool,
    /// The whole boot, commands included, may take this long.
    pub limit: Duration,
    /// Shell commands to run once the marker shows, in order.
    pub commands: Vec<String>,
    /// Host ports the guest's network card's user network forwards:
    /// (protocol, host port on 127.0.0.1, guest port).
    pub forwards: Vec<(Proto, u16, u16)>,
    /// The size of each block device's (empty) disk file; `None`: 1 MiB.
    pub disk_size: Option<u64>,
    /// Something the host does while a command runs.
    pub during: Option<During>,
}

/// What the host does while command `command` runs: once a console line
/// after the command's echo contains `after`, `action` runs on a thread of
/// its own; the command's end waits for it, and its result is
/// [`Boot::during`]. (The network benchmarks: the guest says it listens,
/// then the host sends.)
#[derive(Clone)]
pub struct During {
    pub command: usize,
    pub after: String,
    pub action: std::sync::Arc<dyn Fn() -> Result<String, String> + Send + Sync>,
}

impl std::fmt::Debug for During {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("During")
            .field("command", &self.command)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

/// What a boot showed.
#[derive(Debug, Clone)]
pub struct Boot {
    /// From spawning QEMU to the marker line, wall clock.
    pub to_marker: Duration,
    /// The guest's clock at the marker, from its printk timestamp in
    /// nanoseconds (under `-icount` shift=0: virtual ns, one per
    /// instruction while the CPU runs, plus any idle time QEMU skips).
    /// It counts from the kernel's sched_clock start, a little after entry.
    pub guest_ns_at_marker: Option<u64>,
    /// Each command's output lines.
    pub outputs: Vec<Vec<String>>,
    /// The whole console.
    pub log: String,
    /// What [`Options::during`]'s action returned.
    pub during: Option<Result<String, String>>,
}

/// The QEMU command line for `a`, without the console or monitor
/// options.
pub fn command(a: &Artefacts, opts: &Options) -> Result<std::process::Command> {
    let machine = Machine {
        binary: QEMU.into(),
        machine: MACHINE.into(),
        cpu: CPU.into(),
        memory: a.tree.ram.1,
        devices: devices(a, opts)?,
        dir: a.dir.clone(),
        uart_input: Vec::new(),
        inject: None,
        stats_console: None,
        dashboard: false,
        kv_api: false,
    };
    for (_, sock) in machine.consoles() {
        let _ = std::fs::remove_file(sock);
    }
    let mut c = std::process::Command::new(&machine.binary);
    c.args(machine.args().map_err(|e| miette!("{e}"))?)
        .args(["-smp", &a.tree.vcpus.to_string()])
        .arg("-kernel")
        .arg(&a.kernel)
        .arg("-initrd")
        .arg(&a.initrd)
        .arg("-dtb")
        .arg(&a.dtb)
        .args(["-no-reboot"]);
    if opts.icount {
        c.args(["-icount", ICOUNT]);
    }
    Ok(c)
}

/// The guest's devices as QEMU devices on the same transports; a block
/// device gets an empty disk in the build folder (1 MiB unless
/// `opts.disk_size`), a network card the forwards of `opts`.
fn devices(a: &Artefacts, opts: &Options) -> Result<Vec<Device>> {
    a.tree
        .devices
        .iter()
        .map(|(name, kind, slot)| {
            let file = if *kind == VirtioKind::Blk {
                let p = a.dir.join(format!("{name}.img"));
                let f = std::fs::File::create(&p).into_diagnostic()?;
                f.set_len(opts.disk_size.unwrap_or(1 << 20))
                    .into_diagnostic()?;
                Some(p)
            } else {
                None
            };
            let forwards = if *kind == VirtioKind::Net {
                opts.forwards
                    .iter()
                    .map(|&(proto, host, guest)| (proto, host, guest, None))
                    .collect()
            } else {
                Vec::new()
            };
            Ok(Device {
                name: name.clone(),
                kind: *kind,
                slot: *slot as u64,
                file,
                forwards,
            })
        })
        .collect()
}

/// Boots the guest and runs `opts.commands` in its shell.
pub fn boot(a: &Artefacts, opts: &Options) -> Result<Boot> {
    let mut c = command(a, opts)?;
    c.args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c
        .spawn()
        .map_err(|e| miette!("cannot start {QEMU} ({e}): install the package qemu-system-arm"))?;
    let mut session = Session::new(&mut child, start + opts.limit);
    let r = session.run(opts, start);
    let log = session.log.clone();
    drop(session);
    // poweroff ends QEMU through PSCI SYSTEM_OFF; make sure.
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    let _ = std::fs::write(a.dir.join("bare-console.log"), &log);
    r.map_err(|e| {
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        miette!(
            "{e}\n--- last console lines ---\n{}{}",
            tail.join("\n"),
            if err.trim().is_empty() {
                String::new()
            } else {
                format!("\n--- qemu stderr ---\n{err}")
            }
        )
    })
    .map(|(to_marker, outputs, during)| Boot {
        to_marker,
        guest_ns_at_marker: guest_ns(&outputs),
        outputs,
        log,
        during,
    })
}

/// The kernel log's timestamp of the marker, from the output of the last
/// command when it is [`DMESG_MARKER`].
fn guest_ns(outputs: &[Vec<String>]) -> Option<u64> {
    outputs
        .iter()
        .flatten()
        .filter(|l| l.contains(INIT_MARKER))
        .find_map(|l| printk_ns(l))
}

/// The command that prints the marker's kernel log line.
pub const DMESG_MARKER: &str = "dmesg | grep 'septa-guest: init reached'";

/// `[   12.345678] text` to nanoseconds.
pub fn printk_ns(line: &str) -> Option<u64> {
    let inner = line
        .trim_start()
        .strip_prefix('[')?
        .split(']')
        .next()?
        .trim();
    let (s, us) = inner.split_once('.')?;
    Some(s.parse::<u64>().ok()? * 1_000_000_000 + us.parse::<u64>().ok()? * 1_000)
}

/// The console of one boot.
struct Session {
    stdin: std::process::ChildStdin,
    lines: Receiver<String>,
    deadline: Instant,
    log: String,
}

impl Session {
    fn new(child: &mut Child, deadline: Instant) -> Session {
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
        Session {
            stdin: child.stdin.take().expect("piped"),
            lines: rx,
            deadline,
            log: String::new(),
        }
    }

    /// The next console line, or why there is none.
    fn line(&mut self) -> Result<String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(l) => {
                self.log.push_str(&l);
                self.log.push('\n');
                Ok(l)
            }
            Err(RecvTimeoutError::Timeout) => {
                Err(miette!("the guest did not get there within its time limit"))
            }
            Err(RecvTimeoutError::Disconnected) => Err(miette!("QEMU stopped")),
        }
    }

    #[allow(clippy::type_complexity)]
    fn run(
        &mut self,
        opts: &Options,
        start: Instant,
    ) -> Result<(Duration, Vec<Vec<String>>, Option<Result<String, String>>)> {
        loop {
            let l = self
                .line()
                .map_err(|e| miette!("no `{INIT_MARKER}` line: {e}"))?;
            if l.contains(INIT_MARKER) && !l.contains("echo") {
                break;
            }
        }
        let to_marker = start.elapsed();
        let mut outputs = Vec::new();
        let mut during = None;
        for (i, cmd) in opts.commands.iter().enumerate() {
            let mut host = opts.during.as_ref().filter(|d| d.command == i);
            let mut thread = None;
            // The sentinel is printed by `echo` from two halves, so that
            // the shell's echo of the command line never matches it.
            let sentinel = format!("septa-probe-done-{i}");
            let line = format!("{cmd}; echo septa-probe-done-\"{i}\"\n");
            self.stdin.write_all(line.as_bytes()).into_diagnostic()?;
            self.stdin.flush().into_diagnostic()?;
            let mut out = Vec::new();
            // The command line is echoed twice when typed ahead of the
            // shell (by the tty, then by the shell after its prompt): its
            // output is what follows the last echo.
            loop {
                let l = self
                    .line()
                    .map_err(|e| miette!("command `{cmd}` did not finish: {e}"))?;
                if l.contains(&format!("septa-probe-done-\"{i}\"")) {
                    out.clear();
                } else if l.trim_end().ends_with(&sentinel) {
                    break;
                } else {
                    if let Some(d) = host.filter(|d| l.contains(&d.after)) {
                        let action = d.action.clone();
                        thread = Some(std::thread::spawn(move || action()));
                        host = None;
                    }
                    out.push(l);
                }
            }
            if let Some(t) = thread {
                during = Some(
                    t.join()
                        .unwrap_or_else(|_| Err("the host's action panicked".into())),
                );
            }
            outputs.push(out);
        }
        // A clean end: PSCI SYSTEM_OFF, which -no-reboot makes QEMU's exit.
        let _ = self.stdin.write_all(b"poweroff -f\n");
        let _ = self.stdin.flush();
        Ok((to_marker, outputs, during))
    }
}

/// The file that marks a test system whose VM's guest the suite boots on
/// bare QEMU (it holds the VM's name, or nothing for the only VM).
pub const TEST_FILE: &str = "bare-qemu";

/// The test of a `bare-qemu` system: the guest is prepared (fetched on
/// the first run), prepared again from the cache alone (no apt, so no
/// network), then booted; its shell must name the Debian kernel and see
/// every device the description gives it. Cases: `fetch`, `offline`,
/// `marker`, `uname`, `devices`.
pub fn suite_case(
    ws: &crate::workspace::Workspace,
    file: &std::path::Path,
    vm: Option<&str>,
    limit: Duration,
) -> Result<(crate::harness::Outcome, String)> {
    let mut o = crate::harness::Outcome::default();
    let mut case = |ok: bool, name: &str, why: String| {
        if ok {
            o.passed.push(name.to_string());
        } else {
            o.failed.push(format!("{name}: {why}"));
        }
    };
    let opts = super::Options::default();
    let a = match super::cli::prepare_file(ws, file, vm, opts.clone()) {
        Ok(a) => a,
        Err(e) => {
            case(false, "fetch", format!("{e:?}"));
            o.done = true;
            return Ok((o, String::new()));
        }
    };
    case(true, "fetch", String::new());
    let offline = super::cli::prepare_file(
        ws,
        file,
        vm,
        super::Options {
            offline: true,
            ..opts
        },
    );
    match offline {
        Ok(b) => case(!b.network, "offline", "apt ran".into()),
        Err(e) => case(false, "offline", format!("{e:?}")),
    }
    // One line per device that the guest's drivers bound: its name under
    // /dev or /sys/class/net.
    let probe: Vec<String> = a
        .tree
        .devices
        .iter()
        .map(|(_, kind, _)| match kind {
            VirtioKind::Console => "/dev/hvc0",
            VirtioKind::Net => "/sys/class/net/eth0",
            VirtioKind::Blk => "/dev/vda",
        })
        .map(String::from)
        .collect();
    let mut commands = vec!["uname -r".to_string()];
    if !probe.is_empty() {
        commands.push(format!("ls -1d {}", probe.join(" ")));
    }
    let b = match boot(
        &a,
        &Options {
            limit,
            commands,
            ..Options::default()
        },
    ) {
        Ok(b) => b,
        Err(e) => {
            case(false, "marker", format!("{e:?}"));
            o.done = true;
            return Ok((o, String::new()));
        }
    };
    case(true, "marker", String::new());
    println!(
        "     guest: {} to `{INIT_MARKER}` on bare QEMU in {:.2} s",
        file.parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        b.to_marker.as_secs_f64()
    );
    let uname = b.outputs.first().map(|o| o.join("\n")).unwrap_or_default();
    match &a.release {
        Some(r) => case(
            uname.trim() == r,
            "uname",
            format!("`uname -r` printed {uname:?}, not {r:?}"),
        ),
        None => case(
            !uname.trim().is_empty(),
            "uname",
            "`uname -r` printed nothing".into(),
        ),
    }
    if let Some(out) = b.outputs.get(1) {
        let missing: Vec<&String> = probe
            .iter()
            .filter(|p| !out.iter().any(|l| l.trim() == p.as_str()))
            .collect();
        case(
            missing.is_empty(),
            "devices",
            format!("no {missing:?} in the guest (its console said {out:?})"),
        );
    }
    o.done = true;
    Ok((o, b.log))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printk_timestamps_are_read() {
        assert_eq!(
            printk_ns("[    1.534017] septa-guest: init reached"),
            Some(1_534_017_000)
        );
        assert_eq!(printk_ns("septa-guest: init reached"), None);
        assert_eq!(
            guest_ns(&[vec!["[    0.500000] septa-guest: init reached".into()]]),
            Some(500_000_000)
        );
    }
}
