//! Booting an image on QEMU, interactively or headless for tests.
//!
//! The command line comes from the board profile (`[qemu]`: binary,
//! machine, CPU, memory) and the system's virtio devices: each is attached
//! to the virtio-mmio transport the front end chose for it
//! (`bus=virtio-mmio-bus.SLOT`; in QEMU 7.2 that bus is transport SLOT, at
//! `0x0a00_0000 + 0x200 * SLOT`), through the modern (non-legacy)
//! interface. A console's host end is a Unix socket in the build folder on
//! which QEMU listens without waiting (`server=on,wait=off`), so a boot
//! never blocks on it and output nobody reads is dropped; a net device's
//! user network forwards the description's host ports on the host's
//! loopback address.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use miette::{miette, IntoDiagnostic, Result};
use septa_sysdesc::{Proto, System, VirtioKind};

use crate::pack::Image;

pub const QEMU: &str = "qemu-system-aarch64";

/// QEMU's `-m` takes whole mebibytes.
const MIB: u64 = 1 << 20;

/// The longest path a Unix socket address holds (`sun_path` is 108 bytes on
/// Linux, with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Why a system cannot be put on QEMU's command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MachineError {
    #[error("the board's memory ({0} bytes) is not a whole number of MiB, which QEMU's -m needs")]
    Memory(u64),
    #[error(
        "the socket path {0} is longer than a Unix socket address holds ({MAX_SOCKET_PATH} bytes)"
    )]
    SocketPath(PathBuf),
}

/// How a block device's image is attached. `cache=writeback` is QEMU's
/// default made explicit: writes go to the host's page cache, and a
/// guest's flush is an `fdatasync` of the image, so a flush the device
/// completes is on the host's disk (`cache=unsafe` would ignore flushes;
/// `none` and `directsync` need O_DIRECT, which tmpfs refuses). Errors are
/// reported to the guest (`werror`, `rerror`), which answers them as
/// error responses, rather than pausing the machine.
pub const DRIVE_OPTIONS: &str = "format=raw,if=none,cache=writeback,werror=report,rerror=report";

/// One virtio device on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub kind: VirtioKind,
    /// The virtio-mmio transport (QEMU's `virtio-mmio-bus.SLOT`).
    pub slot: u64,
    /// A block device's backing file, resolved against the description's
    /// folder.
    pub file: Option<PathBuf>,
    /// Host ports a net device's user network forwards: (protocol, host
    /// port, guest port, guest address if not QEMU's first lease).
    pub forwards: Vec<(Proto, u16, u16, Option<[u8; 4]>)>,
}

/// What QEMU emulates for one image: the board profile's machine and the
/// system's virtio devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub binary: String,
    pub machine: String,
    pub cpu: String,
    /// Bytes of RAM.
    pub memory: u64,
    pub devices: Vec<Device>,
    /// Where the consoles' sockets go (the system's build folder).
    pub dir: PathBuf,
    /// The PDs typed to on the UART (the serial subsystem's input
    /// clients, in the order of their numbers; the first has the keyboard
    /// at start).
    pub uart_input: Vec<String>,
    /// Frame injection into the first net device (a test probe's `fuzz`):
    /// the UDP ports on 127.0.0.1 where QEMU reads frames to inject and
    /// from which it mirrors the card's, and the host's peer port.
    pub inject: Option<(u16, u16, u16)>,
    /// The virtio console the statistics PD writes to (`[stats]`), which
    /// `cargo septa top` attaches to.
    pub stats_console: Option<String>,
    /// A PD besides the statistics PD reads the statistics table (`[stats]
    /// http`): the HTTP status cell serves it as the live dashboard at
    /// `/cells`.
    pub dashboard: bool,
    /// The HTTP status cell (program `http-status`) is a cell with a
    /// key-value namespace: it serves the store at `/kv/`.
    pub kv_api: bool,
}

impl Machine {
    /// The board's machine alone, with no virtio device.
    pub fn bare(board: &septa_sysdesc::Board, dir: &Path) -> Machine {
        Machine {
            binary: board.qemu.binary.clone(),
            machine: board.qemu.machine.clone(),
            cpu: board.qemu.cpu.clone(),
            memory: board.qemu.memory,
            devices: Vec::new(),
            dir: dir.to_path_buf(),
            uart_input: Vec::new(),
            inject: None,
            stats_console: None,
            dashboard: false,
            kv_api: false,
        }
    }

    /// The machine for `sys`, whose description lives in `base`, with its
    /// sockets in `dir` and its block devices' images where `disks` says
    /// (else the file each names, from `base`).
    pub fn for_system(
        sys: &System,
        base: &Path,
        dir: &Path,
        disks: &[(String, PathBuf)],
    ) -> Machine {
        let mut m = Machine::bare(&sys.board, dir);
        m.stats_console = sys.stats.as_ref().map(|s| s.console.clone());
        m.dashboard = sys.stats.as_ref().is_some_and(|st| {
            sys.pds
                .iter()
                .enumerate()
                .any(|(i, pd)| i != st.pd && pd.maps.iter().any(|map| map.region == st.table))
        });
        m.kv_api = sys.cells.iter().any(|c| {
            c.kv.is_some()
                && sys.pds[c.pd].program == septa_sysdesc::Program::Crate("http-status".into())
        });
        if let Some(serial) = &sys.serial {
            m.uart_input = serial
                .input
                .iter()
                .map(|p| sys.pds[*p].name.clone())
                .collect();
        }
        for v in &sys.virtio {
            let forwards = sys
                .forwards
                .iter()
                .filter(|f| sys.forward_device(f).is_some_and(|d| d.name == v.name))
                .map(|f| (f.proto, f.host, f.guest, f.address))
                .collect();
            m.devices.push(Device {
                name: v.name.clone(),
                kind: v.kind,
                slot: v.slot,
                file: disks
                    .iter()
                    .find(|(name, _)| name == &v.name)
                    .map(|(_, p)| p.clone())
                    .or_else(|| v.file.as_ref().map(|f| base.join(f))),
                forwards,
            });
        }
        m
    }

    /// What a person at the UART should know: who the keyboard goes to and
    /// how to move it; `None` if nothing reads the UART's input.
    pub fn uart_help(&self) -> Option<String> {
        let first = self.uart_input.first()?;
        let list: Vec<String> = self
            .uart_input
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{i} {n}"))
            .collect();
        Some(format!(
            "typing goes to `{first}`; to type to another PD press {} ({}); Ctrl-A X quits",
            septa_serial_protocol::keys::HOW,
            list.join(", ")
        ))
    }

    /// What a person can reach from the host: one line per forwarded
    /// port, with a URL for HTTP's usual ports.
    pub fn forward_help(&self) -> Vec<String> {
        self.devices
            .iter()
            .flat_map(|d| d.forwards.iter())
            .map(|(proto, host, guest, address)| match (proto, guest) {
                (Proto::Tcp, 80 | 8080) if self.dashboard && address.is_none() => format!(
                    "network: the system's tcp/{guest} is http://localhost:{host}/ \
                     (the live dashboard: http://localhost:{host}/cells{})",
                    if self.kv_api {
                        format!("; the key-value store: http://localhost:{host}/kv/")
                    } else {
                        String::new()
                    }
                ),
                (Proto::Tcp, 80 | 8080) => {
                    format!("network: the system's tcp/{guest} is http://localhost:{host}/")
                }
                (Proto::Tcp, _) if address.is_some() => {
                    let a = address.unwrap_or_default();
                    format!(
                        "network: tcp/{guest} of the guest at {}.{}.{}.{} is localhost:{host} \
                         (http://localhost:{host}/ if it serves HTTP there)",
                        a[0], a[1], a[2], a[3]
                    )
                }
                _ => format!("network: the system's {proto}/{guest} is localhost:{host} ({proto})"),
            })
            .collect()
    }

    /// Settles the host port of each forward before an interactive run:
    /// the description's, or the one `--port HOST=NEW` chose (`moves`);
    /// a port of the description that another program holds is replaced
    /// by a free one. Returns a line for each port that is not the
    /// description's, for the user; a port the user chose that is taken,
    /// or a `--port` for a port the description does not forward, is an
    /// error.
    pub fn settle_ports(&mut self, moves: &[(u16, u16)]) -> Result<Vec<String>> {
        use crate::netprobe::free_port;
        let mut forwarded: Vec<u16> = self
            .devices
            .iter()
            .flat_map(|d| d.forwards.iter().map(|f| f.1))
            .collect();
        forwarded.sort_unstable();
        forwarded.dedup();
        if let Some((from, _)) = moves.iter().find(|(from, _)| !forwarded.contains(from)) {
            let list: Vec<String> = forwarded.iter().map(u16::to_string).collect();
            return Err(miette!(
                "--port {from}=...: the system forwards no host port {from} (it forwards {})",
                if list.is_empty() {
                    "none".to_string()
                } else {
                    list.join(", ")
                }
            ));
        }
        let mut notes = Vec::new();
        for d in &mut self.devices {
            for (proto, host, guest, _) in &mut d.forwards {
                let chosen = moves.iter().find(|(from, _)| from == host).map(|m| m.1);
                let want = chosen.unwrap_or(*host);
                if port_free(*proto, want) {
                    if chosen.is_some() {
                        notes.push(format!(
                            "network: host port {want} ({proto}) instead of {host}, as asked"
                        ));
                    }
                    *host = want;
                    continue;
                }
                if chosen.is_some() {
                    return Err(miette!(
                        "host port {want} ({proto}), which --port chose for the system's {proto}/{guest}, is in use by another program; choose another"
                    ));
                }
                let free = free_port(*proto).into_diagnostic()?;
                notes.push(format!(
                    "network: host port {host} ({proto}) is in use by another program, so the system's {proto}/{guest} is on port {free} instead (choose one with --port {host}=PORT)"
                ));
                *host = free;
            }
        }
        Ok(notes)
    }

    /// The socket of console `name`.
    pub fn console_socket(&self, name: &str) -> PathBuf {
        self.dir.join(format!("console-{name}.sock"))
    }

    /// The consoles and their sockets.
    pub fn consoles(&self) -> impl Iterator<Item = (&str, PathBuf)> {
        self.devices
            .iter()
            .filter(|d| d.kind == VirtioKind::Console)
            .map(|d| (d.name.as_str(), self.console_socket(&d.name)))
    }

    /// Every argument but the image: machine, CPU, memory and devices.
    pub fn args(&self) -> Result<Vec<String>, MachineError> {
        if !self.memory.is_multiple_of(MIB) {
            return Err(MachineError::Memory(self.memory));
        }
        let mut a: Vec<String> = vec![
            "-machine".into(),
            self.machine.clone(),
            "-cpu".into(),
            self.cpu.clone(),
            "-m".into(),
            format!("{}M", self.memory / MIB),
            // No default network card: QEMU virt would add a virtio-net-pci
            // with a boot ROM that a minimal QEMU install lacks
            // (`efi-virtio.rom`, in the recommended `ipxe-qemu`).
            "-nic".into(),
            "none".into(),
        ];
        if self.devices.is_empty() {
            return Ok(a);
        }
        // Version 2 of the virtio-mmio interface (virtio 1.0): QEMU 7.2
        // offers the legacy one unless told otherwise.
        a.extend(["-global".into(), "virtio-mmio.force-legacy=false".into()]);
        let first_net = self.devices.iter().position(|d| d.kind == VirtioKind::Net);
        for (k, d) in self.devices.iter().enumerate() {
            // Ids from the slot: always valid QEMU ids, whatever the name.
            let id = format!("virtio{}", d.slot);
            let bus = format!("virtio-mmio-bus.{}", d.slot);
            let mut pair = |opt: &str, val: String| a.extend([opt.to_string(), val]);
            match d.kind {
                VirtioKind::Console => {
                    let sock = self.console_socket(&d.name);
                    if sock.as_os_str().len() > MAX_SOCKET_PATH {
                        return Err(MachineError::SocketPath(sock));
                    }
                    pair(
                        "-chardev",
                        format!("socket,id={id},path={},server=on,wait=off", quote(&sock)),
                    );
                    pair("-device", format!("virtio-serial-device,bus={bus},id={id}"));
                    // Port 0, the console port a driver without the
                    // multiport feature talks to.
                    pair("-device", format!("virtconsole,chardev={id},bus={id}.0"));
                }
                VirtioKind::Net => {
                    let mut netdev = format!("user,id={id}");
                    for (proto, host, guest, to) in &d.forwards {
                        let to = to.map_or(String::new(), |a| {
                            format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
                        });
                        netdev += &format!(",hostfwd={proto}:127.0.0.1:{host}-{to}:{guest}");
                    }
                    pair("-netdev", netdev);
                    if let Some((qemu_in, qemu_out, peer)) =
                        self.inject.filter(|_| first_net == Some(k))
                    {
                        // Frames from the host straight onto the card's
                        // wire, past the user network (a filter-redirector
                        // reads them from a UDP chardev, each a 4-byte
                        // big-endian length and the frame), and every frame
                        // the card sends mirrored back the same way.
                        let udp = |name: &str, local: u16| {
                            format!("udp,id={name}{id},host=127.0.0.1,port={peer},localaddr=127.0.0.1,localport={local}")
                        };
                        pair("-chardev", udp("inject", qemu_in));
                        pair("-chardev", udp("mirror", qemu_out));
                        pair(
                            "-object",
                            format!("filter-redirector,id=inject-{id},netdev={id},queue=tx,indev=inject{id}"),
                        );
                        pair(
                            "-object",
                            format!("filter-mirror,id=mirror-{id},netdev={id},queue=rx,outdev=mirror{id}"),
                        );
                    }
                    pair(
                        "-device",
                        format!("virtio-net-device,netdev={id},bus={bus}"),
                    );
                }
                VirtioKind::Blk => {
                    let file = d.file.as_deref().unwrap_or(Path::new(""));
                    pair(
                        "-drive",
                        format!("file={},{DRIVE_OPTIONS},id={id}", quote(file)),
                    );
                    // The device id the driver reads: the device's name
                    // (QEMU keeps 20 bytes; names are plain characters).
                    let serial: String = d.name.chars().take(20).collect();
                    pair(
                        "-device",
                        format!("virtio-blk-device,drive={id},bus={bus},serial={serial}"),
                    );
                }
            }
        }
        Ok(a)
    }
}

/// A path as a value in QEMU's option syntax, where a comma ends the value
/// unless doubled.
fn quote(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The machine every image boots on, with the image loaded where the loader
/// must run. Stale console sockets are removed first.
pub fn base_command(image: &Image) -> Result<Command> {
    let m = &image.machine;
    for (_, sock) in m.consoles() {
        let _ = std::fs::remove_file(sock);
    }
    let mut c = Command::new(&m.binary);
    c.args(m.args().map_err(|e| miette!("{e}"))?)
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={:#x},cpu-num=0",
            quote(&image.path),
            image.load_addr
        ));
    Ok(c)
}

/// Debian's package that holds [`QEMU`].
pub const PACKAGE: &str = "qemu-system-arm";

fn installed() -> bool {
    Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// What to do about QEMU, from what the machine has.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// It is there.
    Present,
    /// Install it with apt-get (we are root on a Debian-like system).
    Install,
    /// It is missing and cannot be installed from here: the error a person
    /// reads, and what to do.
    Refuse { error: String, help: String },
}

/// The decision, apart from the machine so that it can be tested.
pub fn plan(installed: bool, root: bool, apt: bool) -> Plan {
    match (installed, root, apt) {
        (true, _, _) => Plan::Present,
        (false, true, true) => Plan::Install,
        (false, false, true) => Plan::Refuse {
            error: format!(
                "{QEMU} is not installed, and installing it needs root (this tool runs apt-get \
                 itself only as root)"
            ),
            help: format!("run `sudo apt-get install {PACKAGE}`, then this command again"),
        },
        (false, _, false) => Plan::Refuse {
            error: format!("{QEMU} is not installed, and there is no apt-get to install it with"),
            help: format!(
                "install QEMU's aarch64 system emulator ({QEMU}) with your system's package \
                 manager, then run this command again"
            ),
        },
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false)
}

fn has_apt() -> bool {
    Command::new("apt-get")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs QEMU from Debian's packages when it is missing and we may.
pub fn ensure_installed() -> Result<()> {
    // Ask about root and apt-get only when it matters.
    let p = if installed() {
        Plan::Present
    } else {
        plan(false, is_root(), has_apt())
    };
    match p {
        Plan::Present => return Ok(()),
        Plan::Refuse { error, help } => return Err(miette!(help = help, "{error}")),
        Plan::Install => {}
    }
    eprintln!(
        "   installing {PACKAGE} with apt-get (--no-install-recommends: QEMU and the \
         libraries it needs, no graphics stack or boot ROMs)"
    );
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "--no-install-recommends", PACKAGE][..],
    ] {
        let ok = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .into_diagnostic()?
            .success();
        if !ok {
            return Err(miette!("apt-get {} failed", args.join(" ")));
        }
    }
    if installed() {
        Ok(())
    } else {
        Err(miette!("{QEMU} still missing after installing {PACKAGE}"))
    }
}

/// Boots with the serial console on this terminal (Ctrl-A X quits).
pub fn run_interactive(image: &Image, gdb: bool, ports: &[(u16, u16)]) -> Result<()> {
    let mut image = image.clone();
    for note in image.machine.settle_ports(ports)? {
        eprintln!("   {note}");
    }
    let image = &image;
    let mut c = base_command(image)?;
    c.arg("-nographic");
    for (name, sock) in image.machine.consoles() {
        eprintln!(
            "   virtio console `{name}`: socat - UNIX-CONNECT:{}",
            sock.display()
        );
        if image.machine.stats_console.as_deref() == Some(name) {
            eprintln!("   statistics: `cargo septa top` in another terminal");
        }
    }
    if gdb {
        c.args(["-s", "-S"]);
        eprintln!("   waiting for gdb on localhost:1234");
    }
    if let Some(help) = image.machine.uart_help() {
        eprintln!("   serial input: {help}");
    }
    for line in image.machine.forward_help() {
        eprintln!("   {line}");
    }
    eprintln!("   booting {} (quit with Ctrl-A X)", image.path.display());
    let status = c.status().into_diagnostic()?;
    if status.success() {
        Ok(())
    } else {
        Err(miette!("QEMU exited with {status}"))
    }
}

/// Whether `port` of the host's loopback is free for `proto` (QEMU's
/// user network binds 127.0.0.1 for a forward).
fn port_free(proto: Proto, port: u16) -> bool {
    match proto {
        Proto::Tcp => std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        Proto::Udp => std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok(),
    }
}

/// `HOST=NEW` of `--port`: the description's host port and the one to use.
pub fn parse_port_move(text: &str) -> std::result::Result<(u16, u16), String> {
    let port = |w: &str| w.trim().parse::<u16>().ok().filter(|p| *p != 0);
    text.split_once('=')
        .and_then(|(a, b)| Some((port(a)?, port(b)?)))
        .ok_or_else(|| {
            format!("`{text}`: give the description's host port and the one to use, as 8080=8081")
        })
}

/// QEMU flags that make time count instructions: the PMU cycle counter
/// advances once per instruction and the system counter once per 16, the
/// same on every run (method: docs/architecture.md).
pub const ICOUNT: [&str; 2] = ["-icount", "shift=0,sleep=off"];

/// A headless boot whose serial output arrives on the child's stdout.
pub fn headless(image: &Image) -> Result<Command> {
    let mut c = base_command(image)?;
    c.args(["-display", "none", "-monitor", "none", "-serial", "stdio"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(extra: &str) -> System {
        let text = format!("[system]\nboard = \"qemu-virt\"\n[pd.a]\nprogram = \"a\"\n{extra}");
        septa_sysdesc::parse_str_in(
            "t.toml",
            &text,
            septa_sysdesc::Format::Toml,
            Path::new("/srv"),
        )
        .map_err(|r| r.render())
        .unwrap()
        .system
    }

    /// The value after each occurrence of `opt`.
    fn values<'a>(args: &'a [String], opt: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == opt)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn the_machine_comes_from_the_board_profile() {
        let mut board = septa_sysdesc::Board::qemu_virt();
        let args = Machine::bare(&board, Path::new("/b")).args().unwrap();
        assert_eq!(
            args,
            [
                "-machine",
                "virt,virtualization=on",
                "-cpu",
                "cortex-a53",
                "-m",
                "2048M",
                "-nic",
                "none"
            ]
        );
        board.qemu.cpu = "cortex-a72".into();
        board.qemu.memory = 512 << 20;
        board.qemu.binary = "qemu-system-other".into();
        let m = Machine::bare(&board, Path::new("/b"));
        let args = m.args().unwrap();
        assert_eq!(values(&args, "-cpu"), ["cortex-a72"]);
        assert_eq!(values(&args, "-m"), ["512M"]);
        assert_eq!(m.binary, "qemu-system-other");
        board.qemu.memory = (512 << 20) + 1;
        assert_eq!(
            Machine::bare(&board, Path::new("/b")).args(),
            Err(MachineError::Memory((512 << 20) + 1))
        );
    }

    #[test]
    fn virtio_devices_sit_on_their_transports() {
        // The tool has not run anything: the blk file needs to exist for
        // the front end only, so take one that does.
        let disk = format!("{}/Cargo.toml", env!("CARGO_MANIFEST_DIR"));
        let sys = system(&format!(
            "[[virtio]]\nname = \"con\"\nkind = \"console\"\n\
             [[virtio]]\nname = \"net0\"\nkind = \"net\"\n\
             [[virtio]]\nname = \"disk\"\nkind = \"blk\"\nfile = \"{disk}\"\nslot = 2\n\
             [[forward]]\nhost = 8080\nguest = 80\n\
             [[forward]]\nhost = 5353\nguest = 53\nproto = \"udp\"\n"
        ));
        let m = Machine::for_system(&sys, Path::new("/srv"), Path::new("/b/x"), &[]);
        let args = m.args().unwrap();
        assert_eq!(values(&args, "-global"), ["virtio-mmio.force-legacy=false"]);
        assert_eq!(
            values(&args, "-chardev"),
            ["socket,id=virtio31,path=/b/x/console-con.sock,server=on,wait=off"]
        );
        assert_eq!(
            values(&args, "-netdev"),
            ["user,id=virtio23,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:127.0.0.1:5353-:53"]
        );
        assert_eq!(
            values(&args, "-drive"),
            [format!("file={disk},{DRIVE_OPTIONS},id=virtio2")]
        );
        assert_eq!(
            values(&args, "-device"),
            [
                "virtio-serial-device,bus=virtio-mmio-bus.31,id=virtio31",
                "virtconsole,chardev=virtio31,bus=virtio31.0",
                "virtio-net-device,netdev=virtio23,bus=virtio-mmio-bus.23",
                "virtio-blk-device,drive=virtio2,bus=virtio-mmio-bus.2,serial=disk",
            ]
        );
        let consoles: Vec<_> = m.consoles().collect();
        assert_eq!(consoles, [("con", PathBuf::from("/b/x/console-con.sock"))]);
    }

    #[test]
    fn a_forwarded_port_in_use_moves_and_says_so_and_a_chosen_one_is_kept() {
        // A port another program holds (this test), and one that is free.
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap().port();
        let free = crate::netprobe::free_port(Proto::Tcp).unwrap();
        let sys = system(&format!(
            "[[virtio]]\nname = \"net0\"\nkind = \"net\"\n\
             [[forward]]\nhost = {taken}\nguest = 80\n\
             [[forward]]\nhost = {taken}\nguest = 7\nproto = \"udp\"\n"
        ));
        let fresh = || Machine::for_system(&sys, Path::new("/srv"), Path::new("/b/x"), &[]);
        let ports =
            |m: &Machine| -> Vec<u16> { m.devices[0].forwards.iter().map(|f| f.1).collect() };

        // Taken: a free port instead, and a line that says which and how
        // to choose; the UDP forward on the same number is free and stays.
        let mut m = fresh();
        let notes = m.settle_ports(&[]).unwrap();
        let moved = ports(&m)[0];
        assert_ne!(moved, taken);
        assert_eq!(ports(&m)[1], taken);
        assert_eq!(
            notes,
            [format!(
                "network: host port {taken} (tcp) is in use by another program, so the system's tcp/80 is on port {moved} instead (choose one with --port {taken}=PORT)"
            )]
        );
        assert!(m.forward_help()[0].contains(&format!("http://localhost:{moved}/")));
        // QEMU is told the new port.
        assert!(values(&m.args().unwrap(), "-netdev")[0]
            .contains(&format!("hostfwd=tcp:127.0.0.1:{moved}-:80")));

        // Chosen and free: used, for both protocols.
        let mut m = fresh();
        let notes = m.settle_ports(&[(taken, free)]).unwrap();
        assert_eq!(ports(&m), [free, free]);
        assert_eq!(notes.len(), 2);
        assert!(notes[0].contains(&format!("host port {free} (tcp) instead of {taken}")));

        // Chosen and taken, or a port the system does not forward: errors.
        let e = fresh()
            .settle_ports(&[(taken, taken)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is in use by another program; choose another"),
            "{e}"
        );
        let e = fresh().settle_ports(&[(1, free)]).unwrap_err().to_string();
        assert!(
            e.contains(&format!("forwards no host port 1 (it forwards {taken})")),
            "{e}"
        );
        drop(held);

        assert_eq!(parse_port_move("8080=8081"), Ok((8080, 8081)));
        for bad in ["8080", "8080=", "x=1", "0=8081", "8080=70000"] {
            assert!(parse_port_move(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_system_says_where_its_dashboard_is() {
        let sys = crate::testkit::load(&crate::testkit::repo().join("system.toml"));
        let m = Machine::for_system(&sys, Path::new("/srv"), Path::new("/b/x"), &[]);
        assert_eq!(
            m.forward_help(),
            [
                "network: the system's tcp/80 is http://localhost:8080/ \
              (the live dashboard: http://localhost:8080/cells; \
              the key-value store: http://localhost:8080/kv/)",
                "network: tcp/8000 of the guest at 10.0.2.16 is localhost:8081 \
              (http://localhost:8081/ if it serves HTTP there)"
            ]
        );
        assert_eq!(m.stats_console.as_deref(), Some("stats"));
    }

    #[test]
    fn an_injection_port_reaches_the_card_past_the_user_network() {
        let sys = system(
            "[[virtio]]\nname = \"net0\"\nkind = \"net\"\n[[forward]]\nhost = 8080\nguest = 80\n",
        );
        let mut m = Machine::for_system(&sys, Path::new("/srv"), Path::new("/b/x"), &[]);
        assert_eq!(
            m.forward_help(),
            ["network: the system's tcp/80 is http://localhost:8080/"]
        );
        m.inject = Some((4001, 4002, 4003));
        let args = m.args().unwrap();
        assert_eq!(
            values(&args, "-netdev"),
            ["user,id=virtio31,hostfwd=tcp:127.0.0.1:8080-:80"]
        );
        assert_eq!(
            values(&args, "-chardev"),
            [
                "udp,id=injectvirtio31,host=127.0.0.1,port=4003,localaddr=127.0.0.1,localport=4001",
                "udp,id=mirrorvirtio31,host=127.0.0.1,port=4003,localaddr=127.0.0.1,localport=4002",
            ]
        );
        assert_eq!(
            values(&args, "-object"),
            [
                "filter-redirector,id=inject-virtio31,netdev=virtio31,queue=tx,indev=injectvirtio31",
                "filter-mirror,id=mirror-virtio31,netdev=virtio31,queue=rx,outdev=mirrorvirtio31",
            ]
        );
    }

    #[test]
    fn the_uart_help_names_the_clients_by_number() {
        let sys = system(
            "[pd.b]\nprogram = \"b\"\n[serial]\nclients = [\"a\", \"b\"]\ninput = [\"b\", \"a\"]\n",
        );
        let m = Machine::for_system(&sys, Path::new("."), Path::new("/b"), &[]);
        assert_eq!(
            m.uart_help().unwrap(),
            "typing goes to `b`; to type to another PD press Ctrl-\\, the number, Enter (0 b, 1 a); Ctrl-A X quits"
        );
        assert_eq!(Machine::bare(&sys.board, Path::new("/b")).uart_help(), None);
    }

    #[test]
    fn commas_in_paths_are_doubled_and_long_sockets_refused() {
        assert_eq!(quote(Path::new("/a,b/c")), "/a,,b/c");
        let sys = system("[[virtio]]\nname = \"con\"\nkind = \"console\"\n");
        let deep = PathBuf::from(format!("/{}", "d".repeat(100)));
        let m = Machine::for_system(&sys, Path::new("."), &deep, &[]);
        assert!(matches!(m.args(), Err(MachineError::SocketPath(_))));
    }

    #[test]
    fn qemu_is_installed_only_as_root_with_apt() {
        assert_eq!(plan(true, false, false), Plan::Present);
        assert_eq!(plan(true, true, true), Plan::Present);
        assert_eq!(plan(false, true, true), Plan::Install);
    }

    #[test]
    fn without_root_the_refusal_says_what_to_run() {
        let Plan::Refuse { error, help } = plan(false, false, true) else {
            panic!("a user who is not root was offered an install");
        };
        assert!(
            error.contains(QEMU) && error.contains("needs root"),
            "{error}"
        );
        assert!(
            help.contains(&format!("sudo apt-get install {PACKAGE}")),
            "{help}"
        );
    }

    #[test]
    fn without_apt_the_refusal_names_the_emulator() {
        for root in [false, true] {
            let Plan::Refuse { error, help } = plan(false, root, false) else {
                panic!("an install was planned without apt-get");
            };
            assert!(error.contains("no apt-get"), "{error}");
            assert!(help.contains(QEMU), "{help}");
        }
    }
}
