//! The validated model of a system: what later stages (spec generation,
//! allocation, image packing, graphs) consume.
//!
//! Units are fixed: sizes and addresses in bytes (`u64`), durations in
//! microseconds. PDs are flattened: a child follows its parent (depth first),
//! names its parent by index and carries its child id. Every item keeps the
//! source spans of its keys in a [`Src`], which is skipped by serde and never
//! takes part in equality.

use std::path::PathBuf;

use serde::Serialize;

use crate::board::{Board, Device};
use crate::diag::Span;

/// Where the parts of an item were written: key name to span. The span of
/// the whole item is under `""`.
#[derive(Debug, Clone, Default)]
pub struct Src {
    spans: Vec<(&'static str, Span)>,
}

/// Locations never make two models differ.
impl PartialEq for Src {
    fn eq(&self, _: &Src) -> bool {
        true
    }
}
impl Eq for Src {}

impl Src {
    pub fn new(whole: Span) -> Src {
        Src {
            spans: vec![("", whole)],
        }
    }

    pub fn set(&mut self, key: &'static str, span: Span) {
        self.spans.push((key, span));
    }

    pub fn with(mut self, key: &'static str, span: Option<Span>) -> Src {
        if let Some(s) = span {
            self.set(key, s);
        }
        self
    }

    /// The span of `key`, or of the whole item when the key was not written.
    pub fn at(&self, key: &str) -> Option<Span> {
        self.spans
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .or_else(|| self.spans.iter().find(|(k, _)| k.is_empty()))
            .map(|(_, s)| *s)
    }

    /// The span of the first of `keys` that was written, else of the item.
    pub fn at_any(&self, keys: &[&str]) -> Option<Span> {
        keys.iter()
            .find_map(|k| self.spans.iter().find(|(s, _)| s == k).map(|(_, sp)| *sp))
            .or_else(|| self.whole())
    }

    pub fn whole(&self) -> Option<Span> {
        self.at("")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct System {
    pub board: Board,
    /// The kernel configuration the description asks for (`[system]
    /// config`); the tool's default when `None`.
    #[serde(serialize_with = "config_name")]
    pub config: Option<septa_abi::Config>,
    /// Whether Septa's kernel, in a configuration with printing, prints a
    /// line for each failed invocation (`[system] user_errors`; seL4's user
    /// errors); the kernel's default (yes) when `None`.
    pub user_errors: Option<bool>,
    pub pds: Vec<Pd>,
    pub regions: Vec<Region>,
    pub channels: Vec<Channel>,
    pub forwards: Vec<Forward>,
    /// Virtio devices QEMU attaches to the board's virtio-mmio transports
    /// (Septa's addition; none from a Microkit `.system` file).
    pub virtio: Vec<Virtio>,
    pub domains: Option<Domains>,
    pub io_spaces: Vec<IoSpace>,
    /// Block subsystems (`[blk.DEVICE]`, Septa's addition), already
    /// expanded into the PDs, regions and channels above.
    pub blk: Vec<crate::blk::BlkDisk>,
    /// The serial subsystem `[serial]` expanded into (Septa's addition).
    pub serial: Option<Serial>,
    /// The timer subsystem `[timer]` expanded into (Septa's addition).
    pub timer: Option<Timer>,
    /// The network subsystem `[net]` expanded into (Septa's addition).
    pub net: Option<Net>,
    /// The cells `[cell.*]` expanded into (Septa's addition), in the
    /// order written.
    pub cells: Vec<Cell>,
    /// The statistics PD `[stats]` expanded into (Septa's addition).
    pub stats: Option<Stats>,
}

fn config_name<S: serde::Serializer>(
    c: &Option<septa_abi::Config>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.map_or("", |c| c.name()))
}

impl System {
    pub fn pd_index(&self, name: &str) -> Option<usize> {
        self.pds.iter().position(|p| p.name == name)
    }

    pub fn region(&self, name: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.name == name)
    }

    /// Whether region `name` must be physically contiguous at a known
    /// address: it has a fixed one, or some PD's `setvars` asks for it (then
    /// the allocator chooses it, as Microkit's tool does).
    pub fn needs_phys(&self, name: &str) -> bool {
        self.region(name).is_some_and(|r| r.phys.is_some())
            || self.pds.iter().any(|p| {
                p.setvars
                    .iter()
                    .any(|s| s.value == SetValue::Paddr(name.to_string()))
            })
    }

    /// The board device a region or IRQ names with `device = "NAME"`: a
    /// virtio device of the system (its transport), else a device of the
    /// board.
    pub fn device(&self, name: &str) -> Option<&Device> {
        crate::virtio::resolve(&self.board, &self.virtio, name)
    }

    /// The virtio device named `name`.
    pub fn virtio_device(&self, name: &str) -> Option<&Virtio> {
        self.virtio.iter().find(|v| v.name == name)
    }

    /// The virtio net device a forward goes through: the one it names, or
    /// the system's only one.
    pub fn forward_device(&self, f: &Forward) -> Option<&Virtio> {
        match &f.device {
            Some(name) => self
                .virtio_device(name)
                .filter(|v| v.kind == VirtioKind::Net),
            None => {
                let mut nets = self.virtio.iter().filter(|v| v.kind == VirtioKind::Net);
                let first = nets.next();
                first.filter(|_| nets.next().is_none())
            }
        }
    }

    /// The children of PD `idx`, in order.
    pub fn children(&self, idx: usize) -> impl Iterator<Item = (usize, &Pd)> {
        self.pds
            .iter()
            .enumerate()
            .filter(move |(_, p)| p.parent == Some(idx))
    }
}

/// What a PD runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Program {
    /// A crate of the workspace, built by the tool.
    Crate(String),
    /// A prebuilt ELF image.
    Elf(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pd {
    pub name: String,
    /// Index of the parent PD in [`System::pds`], for children.
    pub parent: Option<usize>,
    /// The id by which the parent names this child (0..=61).
    pub child_id: Option<u64>,
    /// Symbol in the parent's image that is set to `child_id`.
    pub setvar_id: Option<String>,
    pub program: Program,
    /// Image used only to find and patch symbols (Microkit's `path_for_symbols`).
    pub symbols: Option<PathBuf>,
    pub priority: u8,
    pub budget_us: u64,
    pub period_us: u64,
    pub passive: bool,
    pub stack_size: u64,
    pub cpu: u8,
    pub smc: bool,
    pub fpu: bool,
    pub domain: Option<String>,
    pub restart: Restart,
    pub maps: Vec<Map>,
    pub irqs: Vec<Irq>,
    pub setvars: Vec<SetVar>,
    pub ioports: Vec<IoPort>,
    pub caps: Vec<CapMap>,
    pub vm: Option<Vm>,
    /// Bytes the tool writes at symbols of the image (computed by a
    /// subsystem's expansion; a description cannot write them).
    pub consts: Vec<Const>,
    /// The subsystem whose expansion made this PD, if one did.
    pub subsystem: Option<Subsystem>,
    #[serde(skip)]
    pub src: Src,
}

/// A subsystem the tool expands into PDs, regions and channels (Septa's
/// addition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subsystem {
    Serial,
    Timer,
    Net,
    /// A cell's PD (`[cell.NAME]`).
    Cell,
    /// The statistics PD and its console driver (`[stats]`).
    Stats,
    /// A `[blk.DEVICE]` section: its driver and virtualiser.
    Blk,
}

impl std::fmt::Display for Subsystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Subsystem::Serial => "serial",
            Subsystem::Timer => "timer",
            Subsystem::Net => "net",
            Subsystem::Cell => "cell",
            Subsystem::Stats => "stats",
            Subsystem::Blk => "blk",
        })
    }
}

/// The network subsystem, as `[net]` expanded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Net {
    /// The virtio net device.
    pub device: String,
    /// Indices into [`System::pds`].
    pub driver: usize,
    pub virt_rx: usize,
    pub virt_tx: usize,
    pub stack: usize,
    /// The stack's MAC.
    pub mac: [u8; 6],
    /// `dhcp`, or the static address (`a.b.c.d/n via g`).
    pub address: String,
    /// The cells, cell i on the stack's channel 2 + i.
    pub cells: Vec<NetCell>,
    /// The guests' network cards: virtualiser clients 1, 2, ... (the
    /// stack is client 0).
    pub guests: Vec<NetGuest>,
    #[serde(skip)]
    pub src: Src,
}

/// A VM's network card, which its VMM backs as a client of the net
/// virtualisers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetGuest {
    /// The VMM's PD.
    pub pd: usize,
    pub vm: String,
    /// The guest device's name.
    pub device: String,
    pub mac: [u8; 6],
}

/// A cell of the network stack and its ports (`tcp/80`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetCell {
    pub pd: usize,
    pub listen: Vec<String>,
    pub connect: Vec<String>,
}

/// The timer subsystem, as `[timer]` expanded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timer {
    /// Index into [`System::pds`].
    pub driver: usize,
    /// The timer's interrupt (the EL1 physical timer's PPI).
    pub irq: u64,
    /// The clients (PD indices), client i on the driver's channel 1 + i.
    pub clients: Vec<usize>,
    #[serde(skip)]
    pub src: Src,
}

/// A cell, as `[cell.NAME]` expanded it: one PD (of the same name) with
/// exactly what the cell declared, and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    /// Index into [`System::pds`] of the cell's PD.
    pub pd: usize,
    /// Its priority band (`low`, `normal`, `high`).
    pub band: String,
    /// The memory quota: stack, heap and program image together.
    pub memory: u64,
    pub heap: u64,
    /// The heap's region, if the cell has a heap.
    pub heap_region: Option<String>,
    /// Prints through the serial subsystem.
    pub console: bool,
    /// A client of the timer subsystem.
    pub timer: bool,
    /// Its channels, in the order declared.
    pub peers: Vec<CellPeer>,
    /// A cell of the network subsystem: the rules it listens and
    /// connects by (the stack's configuration holds them).
    pub net: Option<(Vec<String>, Vec<String>)>,
    /// A client of the key-value cell.
    pub kv: Option<CellKv>,
    /// Bytes of the regions its services share with their servers
    /// (counted in its quota).
    pub regions: u64,
    /// A Linux cell (`linux = { ... }`): its PD is the VMM that runs the
    /// guest; `None` for a cell that runs a program.
    pub linux: Option<CellLinux>,
    #[serde(skip)]
    pub src: Src,
}

/// What a Linux cell runs and reaches: its guest (the VM of the cell's
/// PD, named after the cell) and the devices the VMM offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellLinux {
    /// The guest's RAM, and the region that holds it (mapped into the
    /// VM and, to load the guest, into the VMM).
    pub ram: u64,
    pub ram_region: String,
    /// The VCPU's priority (the VMM runs one above it).
    pub vcpu_priority: u8,
    /// The guest takes the keyboard from the serial subsystem.
    pub input: bool,
    /// Its console is a virtio console (`hvc0`) rather than the PL011.
    pub virtio_console: bool,
    /// Its network card: the address it asks DHCP for, and the forwards
    /// to it (indices into [`System::forwards`]).
    pub net: Option<(Option<String>, Vec<usize>)>,
    /// Its disk: the `[blk.DEVICE]` and the partition.
    pub disk: Option<(String, String)>,
    /// Sealed: the shared window's region, guest-physical base and size.
    pub shared: Option<(String, u64, u64)>,
}

/// A cell's `kv` service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellKv {
    /// Index into [`System::pds`] of the key-value cell.
    pub pd: usize,
    pub namespace: String,
    /// Bytes of keys and values the namespace may hold.
    pub quota: u64,
    /// The channel's id at the cell's end and at the store's.
    pub cell_id: u64,
    pub server_id: u64,
}

/// One channel of a cell to a named PD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellPeer {
    /// Index into [`System::pds`].
    pub pd: usize,
    /// The channel id at the cell's end (chosen by the tool) and at the
    /// PD's (written in the description).
    pub cell_id: u64,
    pub peer_id: u64,
    /// The cell may call the PD.
    pub pp: bool,
    /// The cell may notify the PD (the PD may always notify the cell).
    pub notify: bool,
}

/// The statistics PD, as `[stats]` expanded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Index into [`System::pds`] of the statistics PD.
    pub pd: usize,
    /// Index of the virtio console driver PD it writes through.
    pub console_driver: usize,
    /// The `[[virtio]]` console `cargo septa top` attaches to.
    pub console: String,
    /// The region the monitor writes the table into (mapped read-only
    /// into the statistics PD).
    pub table: String,
    /// The PD the table is exported to (`http`), read-only.
    pub http: Option<usize>,
    /// The servers whose per-client counters are exported with it
    /// (`septa_cells::counters`): each server's PD and its region.
    pub counters: Vec<(usize, String)>,
    #[serde(skip)]
    pub src: Src,
}

/// Bytes written at a symbol whose size is exactly theirs: configuration
/// a subsystem's expansion computes (as sDDF's tools write config
/// structures into its programs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Const {
    pub symbol: String,
    pub bytes: Vec<u8>,
    /// What the bytes are, for the report.
    pub what: String,
}

/// The serial subsystem, as `[serial]` expanded it: which PDs drive the
/// UART, multiplex its output and route its input, and who the clients
/// are, numbered as the virtualisers number them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Serial {
    /// The board device (a PL011).
    pub device: String,
    /// Indices into [`System::pds`].
    pub driver: usize,
    pub virt_tx: usize,
    pub virt_rx: Option<usize>,
    /// Clients of the transmit virtualiser, client i at i (the receive
    /// virtualiser last, when there is one).
    pub clients: Vec<SerialClient>,
    /// Clients of the receive virtualiser (PD indices), client i at i: the
    /// numbers typed after Ctrl-\; the first has the keyboard at start.
    pub input: Vec<usize>,
    /// Bytes of each client queue.
    pub capacity: u32,
    #[serde(skip)]
    pub src: Src,
}

/// One client of the transmit virtualiser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerialClient {
    /// Index into [`System::pds`].
    pub pd: usize,
    pub prefix: String,
    pub colour: Option<String>,
}

/// What the monitor does when a PD faults (Septa's addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restart {
    pub policy: Policy,
    /// Most restarts before the policy falls back to `stop`; `None` = no limit.
    pub limit: Option<u32>,
    pub backoff_us: u64,
    pub memory: RestartMemory,
    /// A region whose first word (little-endian u64) the monitor sets to
    /// the PD's restart count before each restart, so that the PD's
    /// clients, which map the region, can tell it restarted.
    pub generation: Option<String>,
}

impl Default for Restart {
    fn default() -> Restart {
        Restart {
            policy: Policy::Stop,
            limit: None,
            backoff_us: 0,
            memory: RestartMemory::Reload,
            generation: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Start the PD again from its entry point.
    Restart,
    /// Leave the PD stopped; the rest of the system runs on.
    Stop,
    /// Stop the whole system.
    Halt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartMemory {
    /// Reload the image's writable data and zero the stack and bss.
    Reload,
    /// Leave the PD's own memory as the fault left it.
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Perms {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Perms {
    pub const READ_WRITE: Perms = Perms {
        read: true,
        write: true,
        execute: false,
    };

    /// Parses Microkit's letters; `None` if another letter appears.
    pub fn parse(s: &str) -> Option<Perms> {
        let mut p = Perms {
            read: false,
            write: false,
            execute: false,
        };
        for c in s.chars() {
            match c {
                'r' => p.read = true,
                'w' => p.write = true,
                'x' => p.execute = true,
                _ => return None,
            }
        }
        Some(p)
    }
}

impl std::fmt::Display for Perms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (on, c) in [(self.read, 'r'), (self.write, 'w'), (self.execute, 'x')] {
            if on {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// A memory region mapped into a PD or VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Map {
    pub region: String,
    pub vaddr: u64,
    pub perms: Perms,
    pub cached: bool,
    pub setvar_vaddr: Option<String>,
    pub setvar_size: Option<String>,
    pub setvar_prefill_size: Option<String>,
    /// Symbol set to the virtual address of the device's registers inside
    /// this mapping (the region must name a `device`; a virtio transport
    /// sits inside its page).
    pub setvar_device: Option<String>,
    /// Symbol set to the size of the device's registers, as the board
    /// profile gives it (a virtio transport's, say: smaller than the page).
    pub setvar_device_size: Option<String>,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Level,
    Edge,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Trigger::Level => "level",
            Trigger::Edge => "edge",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    High,
    Low,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IrqKind {
    /// A GIC interrupt id (ARM); `device` names the board device it came from.
    Arm {
        irq: u64,
        trigger: Trigger,
        device: Option<String>,
    },
    /// x86-64 I/O APIC pin.
    IoApic {
        ioapic: u64,
        pin: u64,
        vector: u64,
        trigger: Trigger,
        polarity: Polarity,
    },
    /// x86-64 MSI of a PCI device `bus:dev.func`.
    Msi {
        pci: (u8, u8, u8),
        handle: u64,
        vector: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Irq {
    /// The channel id the PD sees.
    pub id: u64,
    pub kind: IrqKind,
    pub setvar_id: Option<String>,
    #[serde(skip)]
    pub src: Src,
}

impl Irq {
    /// The number that must be unique in the system.
    pub fn number(&self) -> u64 {
        match self.kind {
            IrqKind::Arm { irq, .. } => irq,
            IrqKind::IoApic { vector, .. } | IrqKind::Msi { vector, .. } => vector,
        }
    }
}

/// A variable the tool sets in the PD's image (`setvars`): Microkit's
/// physical address of a region, or (Septa's additions) a region's size, a
/// number or a text. `symbol` may index an array (`NAME[INDEX]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetVar {
    pub symbol: String,
    pub value: SetValue,
    #[serde(skip)]
    pub src: Src,
}

/// What a `setvars` entry writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetValue {
    /// The physical address of the region (`region`; the region gets a
    /// fixed address).
    Paddr(String),
    /// The size of the region in bytes (`region_size`).
    Size(String),
    /// A number (`value`).
    Number(u64),
    /// Text, NUL-padded (`text`): at most [`SetValue::TEXT_MAX`] bytes.
    Text(String),
}

impl SetValue {
    /// Bytes of a text element: a text fills a symbol of at least this
    /// size, or one element of this size of an indexed array; it keeps a
    /// NUL at its end.
    pub const TEXT_ELEMENT: u64 = 64;
    /// The longest text.
    pub const TEXT_MAX: usize = Self::TEXT_ELEMENT as usize - 1;

    /// The region this value reads, if any.
    pub fn region(&self) -> Option<&str> {
        match self {
            SetValue::Paddr(r) | SetValue::Size(r) => Some(r),
            SetValue::Number(_) | SetValue::Text(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IoPort {
    pub id: u64,
    pub addr: u64,
    pub size: u64,
    pub setvar_id: Option<String>,
    pub setvar_addr: Option<String>,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapKind {
    Tcb,
    Sc,
    Vspace,
    /// Septa's addition: the PD's own notification (the one bound to its
    /// TCB), read-only, so that it can wait for notifications alone while
    /// it serves a protected call (`septa_runtime::OwnNotification`).
    Notification,
}

/// An extra capability placed in a PD's CSpace (Microkit's `<cspace>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapMap {
    pub slot: u64,
    pub kind: CapKind,
    /// The PD whose object the cap refers to.
    pub pd: String,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vm {
    pub name: String,
    pub priority: u8,
    pub budget_us: u64,
    pub period_us: u64,
    pub vcpus: Vec<Vcpu>,
    pub maps: Vec<Map>,
    /// What the guest runs and which devices it sees (Septa's addition;
    /// a Microkit `<virtual_machine>` gets the defaults).
    pub guest: Guest,
    #[serde(skip)]
    pub src: Src,
}

/// A VM's guest: its kernel, initrd and command line, and the virtio
/// devices the VMM emulates for it. The guest's RAM is its VM's maps at
/// and above `septa_vm_layout::map::RAM_BASE` ([`Vm::ram`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Guest {
    /// An arm64 Linux Image (or a gzip of one), relative to the
    /// description's folder; `None`: the Debian cloud kernel the tool
    /// fetches.
    pub kernel: Option<PathBuf>,
    /// An initrd, relative to the description's folder; `None`: the
    /// busybox initramfs the tool builds (only with Debian's kernel).
    pub initrd: Option<PathBuf>,
    /// The kernel command line; `None`: the tool's default (the console on
    /// the PL011).
    pub bootargs: Option<String>,
    pub devices: Vec<GuestDevice>,
    /// A sealed guest's shared window (guest-physical base, size): the
    /// only guest memory its VMM maps, where the guest keeps every virtio
    /// buffer and ring; the rest of its RAM the initializer loads and the
    /// VMM never maps (a Linux cell's `sealed = true`).
    pub shared: Option<(u64, u64)>,
}

/// A virtio device the VMM emulates for its guest, on a virtio-mmio
/// transport of the guest's own memory map (not the board's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestDevice {
    pub name: String,
    pub kind: VirtioKind,
    /// The guest's transport: `septa_vm_layout::map::virtio_mmio(slot)`.
    pub slot: u32,
    #[serde(skip)]
    pub src: Src,
}

impl Vm {
    /// The guest's RAM as `(guest-physical base, size, map)`, one per map
    /// at or above the layout's RAM base, in address order; `size_of`
    /// gives a region's size by name.
    pub fn ram(&self, size_of: impl Fn(&str) -> Option<u64>) -> Vec<(u64, u64, &Map)> {
        let mut spans: Vec<(u64, u64, &Map)> = self
            .maps
            .iter()
            .filter(|m| m.vaddr >= septa_vm_layout::map::RAM_BASE)
            .filter_map(|m| size_of(&m.region).map(|s| (m.vaddr, s, m)))
            .collect();
        spans.sort_by_key(|s| s.0);
        spans
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vcpu {
    pub id: u64,
    /// The core it runs on; `None` = the parent PD's.
    pub cpu: Option<u8>,
    pub setvar_id: Option<String>,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefill {
    /// Bytes of a file, read at build time.
    File { path: PathBuf, len: u64 },
    /// Boot information filled in by the initializer.
    BootInfo(BootInfoKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BootInfoKind {
    Fdt,
    X86Vbe,
    X86Mbmmap,
    X86AcpiRsdp,
    X86FrameBuffer,
    X86TscFreq,
}

impl BootInfoKind {
    pub fn parse(s: &str) -> Option<BootInfoKind> {
        Some(match s {
            "fdt" => BootInfoKind::Fdt,
            "x86_vbe" => BootInfoKind::X86Vbe,
            "x86_mbmmap" => BootInfoKind::X86Mbmmap,
            "x86_acpi_rsdp" => BootInfoKind::X86AcpiRsdp,
            "x86_framebuffer" => BootInfoKind::X86FrameBuffer,
            "x86_tsc_freq" => BootInfoKind::X86TscFreq,
            _ => return None,
        })
    }

    pub fn is_x86(self) -> bool {
        self != BootInfoKind::Fdt
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Region {
    pub name: String,
    pub size: u64,
    pub page_size: u64,
    /// Whether the author chose the page size (else the tool may raise it).
    pub page_size_given: bool,
    /// Fixed physical address.
    pub phys: Option<u64>,
    /// The board device whose registers this region covers.
    pub device: Option<String>,
    pub prefill: Option<Prefill>,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct End {
    /// Index into [`System::pds`].
    pub pd: usize,
    pub id: u64,
    /// This end may make protected procedure calls to the other end.
    pub pp: bool,
    /// This end may notify the other end.
    pub notify: bool,
    pub setvar_id: Option<String>,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    pub a: End,
    pub b: End,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    Tcp,
    Udp,
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A host port forwarded to the guest side of QEMU user networking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    pub host: u16,
    pub guest: u16,
    pub proto: Proto,
    /// The virtio net device whose user network forwards the port; `None`:
    /// the system's only one.
    pub device: Option<String>,
    /// The address on the system's side the port goes to; `None`: QEMU's
    /// first DHCP lease (10.0.2.15), which the network stack takes.
    pub address: Option<[u8; 4]>,
    #[serde(skip)]
    pub src: Src,
}

/// What a virtio device is (the device QEMU attaches).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VirtioKind {
    /// A console (QEMU's virtio-serial with one console port), whose host
    /// end is a socket.
    Console,
    /// A network card on QEMU's user network, which forwards host ports.
    Net,
    /// A block device backed by a file on the host.
    Blk,
}

impl VirtioKind {
    pub const ALL: [(&'static str, VirtioKind); 3] = [
        ("console", VirtioKind::Console),
        ("net", VirtioKind::Net),
        ("blk", VirtioKind::Blk),
    ];

    pub fn parse(s: &str) -> Option<VirtioKind> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }
}

impl std::fmt::Display for VirtioKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(_, k)| k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?");
        f.write_str(name)
    }
}

/// A virtio device attached to one of the board's virtio-mmio transports
/// (Septa's addition). Regions and IRQs name it with `device = NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Virtio {
    pub name: String,
    pub kind: VirtioKind,
    /// Index of its transport among the board's virtio-mmio devices.
    pub slot: u64,
    /// The board device of that transport (`virtio-mmio31`, say).
    pub transport: String,
    /// A block device's backing file, as written (relative to the
    /// description's folder).
    pub file: Option<PathBuf>,
    /// A block device's size: the tool makes the image (of this size, and
    /// partitioned if a `[blk]` section names the device) when the file is
    /// missing, and gives each test run a fresh one.
    pub size: Option<u64>,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub name: String,
    /// The id given by the author; the tool assigns the rest.
    pub id: Option<u64>,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainDuration {
    Us(u64),
    Ticks(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleEntry {
    Run {
        domain: String,
        duration: DomainDuration,
    },
    End,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domains {
    pub domains: Vec<Domain>,
    /// `None` when domains are declared without a schedule (an error).
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub start_index: u64,
    pub index_shift: Option<u64>,
    pub entries: Vec<ScheduleEntry>,
    #[serde(skip)]
    pub entry_src: Vec<Src>,
    #[serde(skip)]
    pub src: Src,
}

/// An IO address space (x86-64 IOMMU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IoSpace {
    pub name: String,
    pub peripheral: String,
    pub domain_id: Option<u64>,
    pub maps: Vec<IoMap>,
    #[serde(skip)]
    pub src: Src,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IoMap {
    pub region: String,
    pub iovaddr: u64,
    pub perms: Perms,
    #[serde(skip)]
    pub src: Src,
}
