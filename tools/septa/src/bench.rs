//! `septa bench`: instructions per operation, counted under QEMU.
//!
//! Each directory under `bench/systems/` is a benchmark system whose PDs
//! print `[septa-bench] NAME VALUE` (see `bench/pds/bench-pd`; the line is
//! written and read by `septa-test-report`). Every system is built in the
//! benchmark configuration (Microkit's: the PMU exported to EL0, no kernel
//! printing, so the PDs print through the UART themselves), with Septa's
//! kernel or the `--kernel` given, and booted with
//! `-icount shift=0,sleep=off`, so every
//! figure is an instruction count that repeats exactly; a system whose
//! folder holds a file `no-icount` measures rates in wall time instead
//! (bench/systems/blk-wall) and boots without it. Results go to
//! `build/bench/results.json` and a chart `build/bench/results.svg`, beside
//! the real seL4 figures of `bench/reference.toml`.
//!
//! A system with a file `yardstick.toml` is measured beside the same Debian
//! kernel on bare QEMU in the same run ([`Yardstick`]: vm-tcp, vm-disk,
//! net-bulk); a system with a VMM also prints the VMM's memory footprint
//! and the share of its guest's RAM it maps, from the system as built
//! (`crate::guests::Footprint`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use object::{Object, ObjectSection, SectionKind};

use septa_abi::Config;

use crate::harness::{self, Outcome};
use crate::{cargo, pack, qemu, workspace::Workspace};

const LIMIT: Duration = Duration::from_secs(120);
/// A benchmark driven from the host moves more (64 MiB for net-bulk).
const PROBE_LIMIT: Duration = Duration::from_secs(900);

/// A benchmark system that measures rates in wall time holds this file:
/// it boots without `-icount`.
pub const NO_ICOUNT_FILE: &str = "no-icount";

/// Reads `[septa-bench] NAME VALUE` from a console line.
pub fn parse_line(line: &str) -> Option<(String, f64)> {
    septa_test_report::parse_figure(line).map(|(name, v)| (name.to_string(), v))
}

/// Bytes of executable code in an ELF file.
pub fn code_bytes(elf: &Path) -> Result<u64> {
    let data = std::fs::read(elf).into_diagnostic()?;
    let file = object::File::parse(&*data).into_diagnostic()?;
    Ok(file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .map(|s| s.size())
        .sum())
}

type Reference = BTreeMap<String, BTreeMap<String, f64>>;

fn reference(ws: &Workspace) -> Result<Reference> {
    let path = ws.root.join("bench/reference.toml");
    let text = std::fs::read_to_string(&path).into_diagnostic()?;
    toml::from_str(&text)
        .into_diagnostic()
        .wrap_err_with(|| format!("reading {}", path.display()))
}

pub fn run(
    ws: &Workspace,
    filter: Option<&str>,
    kernel: Option<&Path>,
    config: Option<Config>,
) -> Result<bool> {
    qemu::ensure_installed()?;
    let config = crate::config::resolve(config, None, kernel, Config::Benchmark)?;
    if !config.export_pmu() {
        eprintln!(
            "   note: the {} configuration does not export the PMU to EL0; the benchmark PDs will fault",
            config.name()
        );
    }
    println!("configuration: {}", config.name());
    let kernel_path: PathBuf = match kernel {
        Some(k) => k.to_path_buf(),
        None => cargo::build(ws, cargo::SOFTFLOAT, &["septa-kernel"], config)?.remove(0),
    };
    let mut results: BTreeMap<String, f64> = BTreeMap::new();
    results.insert("kernel-code-bytes".into(), code_bytes(&kernel_path)? as f64);
    let mut failures = 0;
    let dir = ws.root.join("bench/systems");
    let mut systems: Vec<_> = std::fs::read_dir(&dir)
        .into_diagnostic()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("system.toml").is_file())
        .filter(|p| filter.is_none_or(|f| p.file_name().unwrap().to_string_lossy().contains(f)))
        .collect();
    systems.sort();
    for sys in systems {
        let name = sys.file_name().unwrap().to_string_lossy().to_string();
        let choice = pack::ConfigChoice {
            flag: Some(config),
            default: config,
        };
        let image = pack::build_system(ws, &sys.join("system.toml"), kernel, true, choice)?;
        if name == "ppc-active" {
            let len = std::fs::metadata(&image.path).into_diagnostic()?.len();
            results.insert("image-bytes".into(), len as f64);
        }
        let log_path = image.path.with_file_name("bench.log");
        // A system driven from the host (net-bulk) has a probe.
        let probe = match std::fs::read_to_string(sys.join(crate::probe::FILE)) {
            Ok(text) => Some(
                crate::probe::Probe::parse(&text)
                    .map_err(|e| miette!("bench/systems/{name}/{e}"))?,
            ),
            Err(_) => None,
        };
        let limit = if probe.is_some() { PROBE_LIMIT } else { LIMIT };
        if let Ok(mut f) = crate::netprobe::FIGURES.lock() {
            f.clear();
        }
        // A system that measures wall time (a `no-icount` file) runs
        // with QEMU's clock following the host's.
        let args: &[&str] = if sys.join(NO_ICOUNT_FILE).is_file() {
            &[]
        } else {
            &qemu::ICOUNT
        };
        let yard = read_yardstick(&sys)?;
        let (mut outcome, log, timed_out) =
            harness::boot(&image, limit, &log_path, args, probe.as_ref())?;
        outcome.finish(timed_out, &log, &[]);
        let mut figures: Vec<_> = log.lines().filter_map(parse_line).collect();
        if let Ok(mut f) = crate::netprobe::FIGURES.lock() {
            figures.append(&mut f);
        }
        let extra = match (&yard, image.guests.first()) {
            (Some(y), _) if outcome.failed.is_empty() => yardstick(
                ws,
                &sys,
                y,
                image.guests.first(),
                &log,
                &figures,
                !args.is_empty(),
            )
            .map(Some),
            (Some(_), _) => Ok(None),
            (None, Some(g)) => guest_figures(&g.artefacts, &outcome, &log, &figures).map(Some),
            (None, None) => Ok(None),
        };
        match extra {
            Ok(more) => figures.extend(more.into_iter().flatten()),
            Err(e) => {
                println!("FAIL {name}: {e:?}");
                failures += 1;
            }
        }
        let none = figures.is_empty();
        // What the VMM holds, from the system as built.
        if let Some(g) = image.guests.first() {
            figures.extend(g.footprint.figures());
        }
        report_outcome(&name, &outcome, &log, none);
        failures += (!outcome.failed.is_empty() || none) as usize;
        for (what, v) in figures {
            let key = if what == "boot" {
                what
            } else {
                format!("{name}/{what}")
            };
            results.entry(key).or_insert(v);
        }
    }
    let refs = reference(ws)?;
    print_table(&results, &refs);
    let out = ws.root.join("build/bench");
    std::fs::create_dir_all(&out).into_diagnostic()?;
    let json = serde_json::json!({
        "configuration": config.name(),
        "kernel": kernel_path.display().to_string(),
        "septa": results,
        "reference": refs,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .into_diagnostic()?;
    std::fs::write(out.join("results.svg"), chart(&results, &refs)).into_diagnostic()?;
    println!("results: {}", out.join("results.json").display());
    if failures > 0 {
        return Err(miette!("{failures} benchmark system(s) failed"));
    }
    Ok(true)
}

/// The figures of a system that runs a Linux guest (bench/systems/
/// guest-boot), from its console log, and of the yardstick: the same
/// kernel, initrd and device tree booted on bare QEMU with the same flags
/// (`-icount shift=0,sleep=off`), now.
///
/// | figure | what |
/// |---|---|
/// | `septa-instructions` | the VMM's loading of the guest (`vmm-load`, from its benchmark build) plus the guest's kernel log timestamp of its init marker: virtual ns, one per instruction (the guest never idles under the VMM: a WFI traps and comes back) |
/// | `bare-instructions` | the marker's timestamp on bare QEMU (virtual ns: instructions, plus any idle time QEMU skips) |
/// | `ratio` | the first over the second (the goal: 1.15 at most) |
/// | `septa-wall-s`, `bare-wall-s` | wall seconds: from the VMM's line saying it boots the guest to the marker line, and from QEMU's start to the marker line |
/// | `vm-exit` | instructions per trapped MMIO round trip, guest to VMM and back: `septa-mmio-loop`'s system counter ticks (16 instructions each) over its reads |
///
/// Both timestamps count from the guest kernel's sched_clock start, a
/// little after its entry; the part before it is left out on both sides.
fn guest_figures(
    a: &crate::guest::Artefacts,
    outcome: &Outcome,
    log: &str,
    figures: &[(String, f64)],
) -> Result<Vec<(String, f64)>> {
    use crate::guest::{bare, programs, INIT_MARKER};
    let lines: Vec<&str> = log.lines().collect();
    let marker_at = |l: &str| l.contains(&format!("] {INIT_MARKER}"));
    let septa_ns = lines
        .iter()
        .filter(|l| marker_at(l))
        .find_map(|l| bare::printk_ns(l))
        .ok_or_else(|| miette!("no kernel log line of the init marker (the probe asks dmesg)"))?;
    let load = figures
        .iter()
        .find(|(n, _)| n == "vmm-load")
        .map(|(_, v)| *v)
        .ok_or_else(|| miette!("the VMM printed no vmm-load figure"))?;
    let ticks = lines
        .iter()
        .find_map(|l| programs::mmio_loop_ticks(l))
        .ok_or_else(|| miette!("no output of septa-mmio-loop"))?;
    let stamp = |pred: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .position(|l| pred(l))
            .and_then(|i| outcome.stamps.get(i))
            .copied()
    };
    let vmm = stamp(&|l| l.contains("guest booting:"));
    let marker = stamp(&|l| l.trim_start().starts_with(INIT_MARKER));
    let septa_wall = match (vmm, marker) {
        (Some(v), Some(m)) if m >= v => (m - v).as_secs_f64(),
        _ => return Err(miette!("no VMM start or marker line to time")),
    };
    eprintln!("   yardstick: the same guest on bare QEMU");
    let b = bare::boot(
        a,
        &bare::Options {
            icount: true,
            limit: LIMIT,
            commands: vec![bare::DMESG_MARKER.to_string()],
            ..Default::default()
        },
    )?;
    let bare_ns = b
        .guest_ns_at_marker
        .ok_or_else(|| miette!("bare QEMU: no kernel log line of the init marker"))?;
    let septa = load + septa_ns as f64;
    Ok(vec![
        ("septa-instructions".into(), septa),
        ("bare-instructions".into(), bare_ns as f64),
        ("ratio".into(), septa / bare_ns as f64),
        ("septa-wall-s".into(), septa_wall),
        ("bare-wall-s".into(), b.to_marker.as_secs_f64()),
        (
            "vm-exit".into(),
            (ticks * septa_pmu::INSTRUCTIONS_PER_TICK) as f64 / programs::MMIO_LOOP_READS as f64,
        ),
    ])
}

/// A benchmark system's yardstick: the file `yardstick.toml` in its
/// folder. The same Debian kernel and initramfs boot on bare QEMU in the
/// same run (`crate::guest::bare`: the same CPU, RAM and virtio devices on
/// virtio-mmio, and the same `-icount` flags as the system, or none), and
/// do what the system did:
///
/// ```toml
/// guest = "../vm-tcp/system.toml"   # whose VM's guest boots (default: this system's)
/// tcp = { port = 9, size = "64MiB" } # the host sends SIZE to a guest listening on PORT
/// disk = { size = "40MiB" }          # the guest's disk file; the guest runs DISK_COMMAND on it
/// ```
///
/// | figure | what |
/// |---|---|
/// | `bare-linux-mb-per-s` | with `tcp`: wall MB/s (10^6 bytes a second) from the host's connection until the guest, with all of it, closes; the system's own is the probe's `wall-mb-per-s` (its `tcp-send`) |
/// | `ratio-to-bare-linux` | the system's `wall-mb-per-s` over it |
/// | `write-mb-per-s`, `read-mb-per-s` | with `disk`: the system's guest's [`DISK_COMMAND`], from the kernel log's timestamps of its marks |
/// | `bare-linux-write-mb-per-s`, `bare-linux-read-mb-per-s` | the same on bare QEMU |
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Yardstick {
    guest: Option<PathBuf>,
    tcp: Option<TcpYardstick>,
    disk: Option<DiskYardstick>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpYardstick {
    port: u16,
    size: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DiskYardstick {
    size: String,
}

/// The yardstick file's name.
pub const YARDSTICK_FILE: &str = "yardstick.toml";

fn read_yardstick(sys: &Path) -> Result<Option<Yardstick>> {
    let path = sys.join(YARDSTICK_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .into_diagnostic()
            .wrap_err_with(|| format!("reading {}", path.display()))
            .map(Some),
        Err(_) => Ok(None),
    }
}

/// What the guest types for the disk benchmark (the probe of
/// bench/systems/vm-disk types the same): 128 MiB written to its disk and
/// read back with direct I/O, 1 MiB a request, each step marked in the
/// kernel log (microsecond timestamps of the guest's clock, which follows
/// the host's without `-icount`), then the marks printed.
pub const DISK_COMMAND: &str = "echo septa-disk: start >/dev/kmsg && dd if=/dev/zero of=/dev/vda bs=1M count=128 oflag=direct 2>/dev/null && echo septa-disk: written 134217728 >/dev/kmsg && dd if=/dev/vda of=/dev/null bs=1M count=128 iflag=direct 2>/dev/null && echo septa-disk: read 134217728 >/dev/kmsg && dmesg | grep 'septa-disk: '";

/// The write and read rates (MB/s) of [`DISK_COMMAND`] from its kernel log
/// lines, `[  12.345678] septa-disk: written 134217728`, anywhere in a line.
pub fn disk_rates<'a>(lines: impl IntoIterator<Item = &'a str> + Clone) -> Result<(f64, f64)> {
    let mark = |what: &str| -> Result<(u64, u64)> {
        let key = format!("] septa-disk: {what}");
        lines
            .clone()
            .into_iter()
            .find_map(|l| {
                let at = l.find(&key)?;
                let open = l[..at].rfind('[')?;
                let ns = crate::guest::bare::printk_ns(&l[open..])?;
                let bytes = l[at + key.len()..].trim().parse().unwrap_or(0);
                Some((ns, bytes))
            })
            .ok_or_else(|| miette!("no kernel log line `septa-disk: {what}` from the guest"))
    };
    let (start, _) = mark("start")?;
    let (written, wbytes) = mark("written")?;
    let (read, rbytes) = mark("read")?;
    let rate = |bytes: u64, from: u64, to: u64| -> Result<f64> {
        if to <= from || bytes == 0 {
            return Err(miette!("the guest's disk marks are out of order or empty"));
        }
        Ok(bytes as f64 / ((to - from) as f64 / 1e9) / 1e6)
    };
    Ok((rate(wbytes, start, written)?, rate(rbytes, written, read)?))
}

/// The shell commands of the TCP yardstick's guest: take an address, and
/// count what arrives on `port` with `nc` (in the foreground, so that its
/// input stays the console and it ends when the host closes), saying that
/// it listens a second after starting it (the host connects then: a
/// connection QEMU forwards before the guest listens is reset after QEMU
/// has taken megabytes). The probe of bench/systems/vm-tcp types the same.
fn tcp_commands(port: u16) -> Vec<String> {
    vec![
        "ifconfig eth0 up && udhcpc -i eth0 -n -q -t 10".to_string(),
        format!(
            "(sleep 1; echo \"septa-tcp: lis\"\"tening\") & nc -l -p {port} | wc -c | sed 's/^/septa-tcp: received /'"
        ),
    ]
}

fn yardstick(
    ws: &Workspace,
    sys: &Path,
    y: &Yardstick,
    own: Option<&crate::guests::Prepared>,
    log: &str,
    figures: &[(String, f64)],
    icount: bool,
) -> Result<Vec<(String, f64)>> {
    use crate::guest::bare;
    let artefacts = match &y.guest {
        Some(file) => {
            crate::guest::cli::prepare_file(ws, &sys.join(file), None, Default::default())?
        }
        None => own.map(|g| g.artefacts.clone()).ok_or_else(|| {
            miette!("{YARDSTICK_FILE}: the system has no guest; name one with `guest`")
        })?,
    };
    let mut out = Vec::new();
    if let Some(t) = &y.tcp {
        let size =
            crate::probe::parse_size(&t.size).map_err(|e| miette!("{YARDSTICK_FILE}: {e}"))?;
        let ours = figures
            .iter()
            .find(|(n, _)| n == "wall-mb-per-s")
            .map(|(_, v)| *v)
            .ok_or_else(|| miette!("the probe measured no wall-mb-per-s (a tcp-send step)"))?;
        let host = crate::netprobe::free_port(septa_sysdesc::Proto::Tcp).into_diagnostic()?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], host));
        let deadline = std::time::Instant::now() + PROBE_LIMIT;
        eprintln!(
            "   yardstick: {} MiB from the host to the same guest on bare QEMU",
            size >> 20
        );
        let b = bare::boot(
            &artefacts,
            &bare::Options {
                icount,
                limit: PROBE_LIMIT,
                commands: tcp_commands(t.port),
                forwards: vec![(septa_sysdesc::Proto::Tcp, host, t.port)],
                disk_size: None,
                during: Some(bare::During {
                    command: 1,
                    after: "septa-tcp: listening".into(),
                    action: std::sync::Arc::new(move || {
                        crate::netprobe::tcp_send_to(addr, size, deadline)
                            .map(|secs| secs.to_string())
                    }),
                }),
            },
        )?;
        let secs: f64 = match b.during {
            Some(Ok(s)) => s.parse().into_diagnostic()?,
            Some(Err(e)) => return Err(miette!("bare QEMU: the transfer failed: {e}")),
            None => return Err(miette!("bare QEMU: the guest never said it listens")),
        };
        let want = format!("septa-tcp: received {size}");
        if !b.outputs.iter().flatten().any(|l| l.contains(&want)) {
            return Err(miette!(
                "bare QEMU: the guest did not receive {size} bytes: {:?}",
                b.outputs.last()
            ));
        }
        let bare_rate = size as f64 / secs / 1e6;
        out.push(("bare-linux-mb-per-s".into(), bare_rate));
        out.push(("ratio-to-bare-linux".into(), ours / bare_rate));
    }
    if let Some(d) = &y.disk {
        let size =
            crate::probe::parse_size(&d.size).map_err(|e| miette!("{YARDSTICK_FILE}: {e}"))?;
        let (w, r) = disk_rates(log.lines())?;
        out.push(("write-mb-per-s".into(), w));
        out.push(("read-mb-per-s".into(), r));
        eprintln!("   yardstick: the same disk commands on bare QEMU");
        let b = bare::boot(
            &artefacts,
            &bare::Options {
                icount,
                limit: LIMIT,
                commands: vec![DISK_COMMAND.to_string()],
                disk_size: Some(size),
                ..Default::default()
            },
        )?;
        let (w, r) =
            disk_rates(b.outputs.iter().flatten().map(String::as_str)).wrap_err("bare QEMU")?;
        out.push(("bare-linux-write-mb-per-s".into(), w));
        out.push(("bare-linux-read-mb-per-s".into(), r));
    }
    Ok(out)
}

fn report_outcome(name: &str, o: &Outcome, log: &str, no_figures: bool) {
    if o.failed.is_empty() && !no_figures {
        return;
    }
    let mut why = o.failed.clone();
    if no_figures {
        why.push("printed no figures".to_string());
    }
    println!("FAIL {name}: {}", why.join("; "));
    let lines: Vec<_> = log.lines().collect();
    for l in &lines[lines.len().saturating_sub(20)..] {
        println!("  | {l}");
    }
}

fn print_table(results: &BTreeMap<String, f64>, refs: &Reference) {
    let sel4 = refs.get("sel4-benchmark-build");
    let rust = refs.get("sel4-benchmark-rust-pds");
    println!(
        "{:<40} {:>14} {:>14} {:>8} {:>16} {:>8}",
        "figure", "this run", "seL4 (bench)", "ratio", "seL4 (Rust PDs)", "ratio"
    );
    let column = |m: Option<&BTreeMap<String, f64>>, k: &str, v: f64| {
        let r = m.and_then(|m| m.get(k));
        (
            r.map(|r| format!("{r:.0}")).unwrap_or_default(),
            r.map(|r| format!("{:.2}", v / r)).unwrap_or_default(),
        )
    };
    for (k, v) in results {
        let (r, ratio) = column(sel4, k, *v);
        let (rr, rratio) = column(rust, k, *v);
        println!("{k:<40} {v:>14.2} {r:>14} {ratio:>8} {rr:>16} {rratio:>8}");
    }
}

/// A bar chart: for each figure seL4 also has, Septa's bar beside seL4's,
/// each scaled to the larger of the two.
pub fn chart(results: &BTreeMap<String, f64>, refs: &Reference) -> String {
    let sel4 = refs
        .get("sel4-benchmark-build")
        .cloned()
        .unwrap_or_default();
    let rows: Vec<_> = results
        .iter()
        .filter_map(|(k, v)| Some((k, *v, *sel4.get(k)?)))
        .collect();
    let (w, row_h, left) = (720.0, 56.0, 200.0);
    let h = 60.0 + row_h * rows.len() as f64;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">
<text x="12" y="24" font-size="16" font-weight="bold">Instructions per operation (lower is better)</text>
<rect x="{left}" y="34" width="12" height="12" fill="#2a6fdb"/><text x="{}" y="45">this run</text>
<rect x="{}" y="34" width="12" height="12" fill="#999"/><text x="{}" y="45">seL4 16.0.0 (benchmark build)</text>
"##,
        left + 16.0,
        left + 90.0,
        left + 106.0
    );
    for (i, (k, ours, theirs)) in rows.iter().enumerate() {
        let y = 60.0 + row_h * i as f64;
        let max = ours.max(*theirs).max(1.0);
        let span = w - left - 120.0;
        s += &format!(r#"<text x="12" y="{}">{k}</text>"#, y + 22.0);
        for (j, (v, color)) in [(ours, "#2a6fdb"), (theirs, "#999")]
            .into_iter()
            .enumerate()
        {
            let by = y + 6.0 + 20.0 * j as f64;
            s += &format!(
                r#"<rect x="{left}" y="{by}" width="{:.1}" height="16" fill="{color}"/><text x="{:.1}" y="{}">{v:.0}</text>"#,
                span * v / max,
                left + span * v / max + 6.0,
                by + 13.0
            );
        }
    }
    s + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines_are_read_among_other_output() {
        assert_eq!(
            parse_line("client: [septa-bench] round-trip 725.50"),
            Some(("round-trip".into(), 725.5))
        );
        assert_eq!(
            parse_line("[septa-bench] boot 5964512.00\r"),
            Some(("boot".into(), 5964512.0))
        );
        assert_eq!(parse_line("[septa-bench] broken"), None);
        assert_eq!(parse_line("no mark here 12"), None);
    }

    #[test]
    fn disk_rates_come_from_the_kernel_log_marks() {
        let log = "echo septa-disk: start >/dev/kmsg && dd ...\n\
                   [   10.000000] septa-disk: start\n\
                   guest: [   10.500000] septa-disk: written 134217728\n\
                   [   11.000000] septa-disk: read 134217728\n";
        let (w, r) = disk_rates(log.lines()).unwrap();
        assert!(
            (w - 268.435456).abs() < 1e-9 && (r - 268.435456).abs() < 1e-9,
            "{w} {r}"
        );
        let cut =
            "[   10.000000] septa-disk: start\n[   10.500000] septa-disk: written 134217728\n";
        assert!(disk_rates(cut.lines()).is_err());
        let backwards = "[   10.000000] septa-disk: start\n[    9.000000] septa-disk: written 1\n[   11.000000] septa-disk: read 1\n";
        assert!(disk_rates(backwards.lines()).is_err());
    }

    /// The probes of bench/systems/vm-disk and vm-tcp type what the
    /// yardstick types on bare QEMU.
    #[test]
    fn the_probes_type_what_the_yardstick_types() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/systems");
        let typed = |sys: &str| -> Vec<String> {
            let text = std::fs::read_to_string(root.join(sys).join(crate::probe::FILE)).unwrap();
            crate::probe::Probe::parse(&text)
                .unwrap()
                .steps
                .into_iter()
                .filter_map(|s| match s.action {
                    crate::probe::Action::Send { bytes, .. } => {
                        Some(String::from_utf8(bytes).unwrap().trim_end().to_string())
                    }
                    _ => None,
                })
                .collect()
        };
        assert!(typed("vm-disk").contains(&DISK_COMMAND.to_string()));
        let tcp = typed("vm-tcp");
        let y = read_yardstick(&root.join("vm-tcp")).unwrap().unwrap();
        assert!(
            tcp.contains(&tcp_commands(y.tcp.unwrap().port)[1]),
            "{tcp:?}"
        );
    }

    #[test]
    fn the_yardstick_file_is_read_and_checked() {
        let y: Yardstick =
            toml::from_str("guest = \"../g/system.toml\"\ntcp = { port = 9, size = \"64MiB\" }\n")
                .unwrap();
        assert_eq!(y.tcp.as_ref().map(|t| t.port), Some(9));
        assert!(y.disk.is_none());
        assert!(toml::from_str::<Yardstick>("tcp = { port = 9 }\n").is_err());
        assert!(toml::from_str::<Yardstick>("tpc = 1\n").is_err());
    }

    #[test]
    fn the_chart_has_a_bar_pair_per_shared_figure() {
        let mut ours = BTreeMap::new();
        ours.insert("a".to_string(), 50.0);
        ours.insert("only-ours".to_string(), 7.0);
        let mut refs = Reference::new();
        refs.insert(
            "sel4-benchmark-build".into(),
            [("a".to_string(), 100.0)].into(),
        );
        let svg = chart(&ours, &refs);
        assert_eq!(svg.matches("<rect").count(), 2 + 2, "legend plus one pair");
        assert!(svg.contains(">a<") && !svg.contains("only-ours"));
    }
}
