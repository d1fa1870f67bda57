//! Board profiles: the machine a system runs on, read from `qemu/<board>.toml`.
//!
//! A profile names the QEMU machine, the RAM, the RAM the boot process keeps,
//! every device with its registers and interrupts, the private peripheral
//! interrupts, and the limits of the kernel built for the board. Profiles in
//! the repository's `qemu/` folder are built in; a system may also name a
//! profile file by path (ending in `.toml`, relative to the system file).

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::diag::{Diagnostic, Kind, Report, Source, Span};
use crate::toml_front::{toml_error, SizeValue};

/// The profiles shipped in the repository, by name.
const BUILT_IN: &[(&str, &str)] = &[("qemu-virt", include_str!("../../../qemu/qemu-virt.toml"))];

/// Names of the built-in boards.
pub fn built_in_names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(n, _)| *n).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Aarch64,
    X86_64,
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::Aarch64 => "aarch64",
            Arch::X86_64 => "x86-64",
        })
    }
}

/// Who may use a device or an interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// Any PD may be given it.
    #[default]
    User,
    /// The kernel keeps it.
    Kernel,
    /// It belongs to the secure world and is out of reach.
    Secure,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Qemu {
    pub binary: String,
    pub machine: String,
    pub cpu: String,
    /// Bytes of RAM given with `-m`.
    pub memory: u64,
}

/// Facts about the kernel built for the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelConfig {
    pub cores: u64,
    pub hypervisor: bool,
    pub smc: bool,
    pub iommu: bool,
    /// Lowest and highest interrupt number a PD may be given.
    pub min_irq: u64,
    pub max_irq: u64,
    /// Number of scheduling domains and of domain schedule slots.
    pub domains: u64,
    pub domain_schedule: u64,
    pub timer_hz: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    pub base: u64,
    pub size: u64,
}

impl Range {
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }

    pub fn contains(&self, start: u64, end: u64) -> bool {
        start >= self.base && end <= self.end()
    }

    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        start < self.end() && self.base < end
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reserved {
    pub name: String,
    pub range: Range,
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoardTrigger {
    Level,
    Edge,
}

impl std::fmt::Display for BoardTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BoardTrigger::Level => "level",
            BoardTrigger::Edge => "edge",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub name: String,
    pub compatible: String,
    pub range: Range,
    /// The interrupts it raises (GIC INTIDs).
    pub irqs: Vec<u64>,
    pub trigger: Option<BoardTrigger>,
    pub owner: Owner,
}

/// A private peripheral interrupt (timers, PMU, GIC maintenance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ppi {
    pub name: String,
    pub irq: u64,
    pub trigger: BoardTrigger,
    pub owner: Owner,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Board {
    pub name: String,
    pub arch: Arch,
    pub qemu: Qemu,
    pub kernel: KernelConfig,
    pub ram: Range,
    pub reserved: Vec<Reserved>,
    pub devices: Vec<Device>,
    pub ppis: Vec<Ppi>,
}

impl Board {
    /// Loads a built-in board by name, or a profile file when `name` ends in
    /// `.toml` (relative to `base_dir`).
    pub fn find(name: &str, base_dir: &Path) -> Result<Board, BoardError> {
        if name.ends_with(".toml") {
            let path = base_dir.join(name);
            let text = std::fs::read_to_string(&path).map_err(|e| BoardError::Unreadable {
                path: name.to_string(),
                reason: e.kind().to_string(),
            })?;
            return Board::parse(name, &text).map_err(BoardError::Invalid);
        }
        match BUILT_IN.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => {
                Board::parse(&format!("qemu/{n}.toml"), text).map_err(BoardError::Invalid)
            }
            None => Err(BoardError::Unknown),
        }
    }

    /// The built-in `qemu-virt` board.
    pub fn qemu_virt() -> Board {
        Board::find("qemu-virt", Path::new(".")).expect("the built-in qemu-virt profile is valid")
    }

    /// Parses a profile text.
    pub fn parse(name: &str, text: &str) -> Result<Board, Report> {
        let source = Source::new(name, text);
        let raw: RawBoard =
            toml::from_str(text).map_err(|e| Report::single(toml_error(&e, &source)))?;
        let mut errors = Vec::new();
        let board = raw.lower(&source, &mut errors);
        if errors.is_empty() {
            Ok(board)
        } else {
            Err(Report {
                diagnostics: errors,
            })
        }
    }

    pub fn device(&self, name: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.name == name)
    }

    /// The device or PPI that raises interrupt `irq`, with its trigger.
    pub fn irq_source(&self, irq: u64) -> Option<(String, Option<BoardTrigger>, Owner)> {
        if let Some(p) = self.ppis.iter().find(|p| p.irq == irq) {
            return Some((p.name.clone(), Some(p.trigger), p.owner));
        }
        self.devices
            .iter()
            .find(|d| d.irqs.contains(&irq))
            .map(|d| (d.name.clone(), d.trigger, d.owner))
    }

    /// Device windows rounded out to `page`-sized pages and merged where they
    /// touch, so that a region spanning neighbouring devices (several virtio
    /// transports in one page) counts as inside the board.
    pub fn device_windows(&self, page: u64) -> Vec<(u64, u64)> {
        let mut w: Vec<(u64, u64)> = self
            .devices
            .iter()
            .map(|d| {
                let start = d.range.base / page * page;
                let end = d.range.end().div_ceil(page).saturating_mul(page);
                (start, end)
            })
            .collect();
        w.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in w {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// RAM that regions may use, that is RAM less the reserved areas.
    pub fn is_ram(&self, start: u64, end: u64) -> bool {
        self.ram.contains(start, end)
    }

    /// The board as a kernel sees it that manages RAM only from `ram_base`
    /// up (real seL4 on QEMU `virt`: from its physical base, 0x6000_0000,
    /// as its `avail_p_regs` says): RAM starts there, the reservations at
    /// the start of RAM move with it, and the RAM below becomes device
    /// memory (a device `ram-below-kernel`, which seL4 hands out as device
    /// untypeds and where a region with a fixed address costs no RAM). A
    /// base at or below the start of RAM, or past its end, changes nothing.
    pub fn for_kernel_ram(mut self, ram_base: u64) -> Board {
        let old = self.ram.clone();
        if ram_base <= old.base || ram_base >= old.end() {
            return self;
        }
        self.ram = Range {
            base: ram_base,
            size: old.end() - ram_base,
        };
        for r in &mut self.reserved {
            if r.range.base == old.base {
                r.range.base = ram_base;
            }
        }
        self.devices.push(Device {
            name: "ram-below-kernel".into(),
            compatible: "memory".into(),
            range: Range {
                base: old.base,
                size: ram_base - old.base,
            },
            irqs: Vec::new(),
            trigger: None,
            owner: Owner::User,
        });
        self
    }
}

/// Why a board could not be found.
#[derive(Debug)]
pub enum BoardError {
    Unknown,
    Unreadable { path: String, reason: String },
    Invalid(Report),
}

// ------------------------------------------------------------ profile format

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBoard {
    name: String,
    arch: Arch,
    qemu: RawQemu,
    kernel: RawKernel,
    ram: RawRange,
    #[serde(default)]
    reserved: Vec<Spanned<RawReserved>>,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
    #[serde(default)]
    ppi: Vec<Spanned<RawPpi>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQemu {
    binary: String,
    machine: String,
    cpu: String,
    memory: SizeValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    cores: u64,
    hypervisor: bool,
    smc: bool,
    iommu: bool,
    min_irq: u64,
    max_irq: u64,
    domains: u64,
    domain_schedule: u64,
    timer_hz: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    base: u64,
    size: SizeValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReserved {
    name: String,
    base: u64,
    size: SizeValue,
    why: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: String,
    compatible: String,
    base: u64,
    size: SizeValue,
    #[serde(default)]
    irqs: Vec<u64>,
    /// Inclusive first and last interrupt of a block (an MSI frame).
    irq_range: Option<[u64; 2]>,
    trigger: Option<BoardTrigger>,
    #[serde(default)]
    owner: Owner,
    /// Repeat the device `count` times, `stride` bytes apart, naming the
    /// copies NAME0, NAME1, ... and adding the copy's index to each interrupt.
    count: Option<u64>,
    stride: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPpi {
    name: String,
    irq: u64,
    trigger: BoardTrigger,
    owner: Owner,
}

impl RawBoard {
    fn lower(self, source: &Arc<Source>, errors: &mut Vec<Diagnostic>) -> Board {
        let mut bad = |msg: String, span: Option<Span>| {
            errors.push(Diagnostic::new(Kind::BoardInvalid(msg), source, span));
        };
        let ram = Range {
            base: self.ram.base,
            size: self.ram.size.0,
        };
        let mut reserved = Vec::new();
        for r in self.reserved {
            let span = Some(Span::from(r.span()));
            let r = r.into_inner();
            let range = Range {
                base: r.base,
                size: r.size.0,
            };
            if !ram.contains(range.base, range.end()) {
                bad(
                    format!("reserved area `{}` is not inside RAM", r.name),
                    span,
                );
            }
            reserved.push(Reserved {
                name: r.name,
                range,
                why: r.why,
            });
        }
        let mut devices = Vec::new();
        for d in self.device {
            let span = Some(Span::from(d.span()));
            let d = d.into_inner();
            let mut irqs = d.irqs.clone();
            if let Some([first, last]) = d.irq_range {
                if last < first {
                    bad(format!("device `{}` has an empty irq_range", d.name), span);
                }
                irqs.extend(first..=last);
            }
            let copies = match (d.count, d.stride) {
                (None, None) => None,
                (Some(c), Some(s)) if c > 0 && s >= d.size.0 => Some((c, s)),
                _ => {
                    bad(
                        format!(
                            "device `{}` needs both `count` (> 0) and `stride` (>= size)",
                            d.name
                        ),
                        span,
                    );
                    None
                }
            };
            let base_dev = Device {
                name: d.name.clone(),
                compatible: d.compatible.clone(),
                range: Range {
                    base: d.base,
                    size: d.size.0,
                },
                irqs,
                trigger: d.trigger,
                owner: d.owner,
            };
            if ram.overlaps(base_dev.range.base, base_dev.range.end()) {
                bad(format!("device `{}` overlaps RAM", d.name), span);
            }
            match copies {
                None => devices.push(base_dev),
                Some((count, stride)) => {
                    for i in 0..count {
                        let mut c = base_dev.clone();
                        c.name = format!("{}{i}", d.name);
                        c.range.base = d.base + i * stride;
                        c.irqs = base_dev.irqs.iter().map(|q| q + i).collect();
                        devices.push(c);
                    }
                }
            }
        }
        let ppis = self
            .ppi
            .into_iter()
            .map(|p| {
                let p = p.into_inner();
                Ppi {
                    name: p.name,
                    irq: p.irq,
                    trigger: p.trigger,
                    owner: p.owner,
                }
            })
            .collect();
        Board {
            name: self.name,
            arch: self.arch,
            qemu: Qemu {
                binary: self.qemu.binary,
                machine: self.qemu.machine,
                cpu: self.qemu.cpu,
                memory: self.qemu.memory.0,
            },
            kernel: KernelConfig {
                cores: self.kernel.cores,
                hypervisor: self.kernel.hypervisor,
                smc: self.kernel.smc,
                iommu: self.kernel.iommu,
                min_irq: self.kernel.min_irq,
                max_irq: self.kernel.max_irq,
                domains: self.kernel.domains,
                domain_schedule: self.kernel.domain_schedule,
                timer_hz: self.kernel.timer_hz,
            },
            ram,
            reserved,
            devices,
            ppis,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_virt_matches_qemu_7_2() {
        let b = Board::qemu_virt();
        assert_eq!(b.ram.base, 0x4000_0000);
        assert_eq!(b.ram.size, 2 << 30);
        assert_eq!(b.qemu.machine, "virt,virtualization=on");
        assert_eq!(b.qemu.cpu, "cortex-a53");
        let uart = b.device("uart").unwrap();
        assert_eq!(
            (uart.range.base, uart.irqs.as_slice()),
            (0x0900_0000, &[33][..])
        );
        assert_eq!(b.device("gic-dist").unwrap().range.base, 0x0800_0000);
        assert_eq!(b.device("gic-cpu").unwrap().range.base, 0x0801_0000);
        assert_eq!(b.device("rtc").unwrap().range.base, 0x0901_0000);
        for n in 0..32u64 {
            let v = b.device(&format!("virtio-mmio{n}")).unwrap();
            assert_eq!(v.range.base, 0x0a00_0000 + 0x200 * n);
            assert_eq!(v.irqs, vec![48 + n]);
        }
        assert!(b.device("virtio-mmio32").is_none());
        let kernel_ppis: Vec<u64> = b
            .ppis
            .iter()
            .filter(|p| p.owner == Owner::Kernel)
            .map(|p| p.irq)
            .collect();
        assert_eq!(kernel_ppis, vec![25, 26, 27]);
        // The boot area starts RAM, where the kernel is linked.
        assert!(b
            .reserved
            .iter()
            .any(|r| r.name == "boot" && r.range.base == b.ram.base));
    }

    #[test]
    fn device_windows_merge_neighbours() {
        let b = Board::qemu_virt();
        let w = b.device_windows(0x1000);
        // The 32 virtio transports form one 16 KiB window.
        assert!(w.contains(&(0x0a00_0000, 0x0a00_4000)));
        // Flash, distributor, CPU interface and MSI frame touch; so do GICH and GICV.
        assert!(w.contains(&(0, 0x0802_1000)), "{w:x?}");
        assert!(w.contains(&(0x0803_0000, 0x0805_0000)), "{w:x?}");
    }

    #[test]
    fn bad_profiles_are_reported() {
        let text =
            include_str!("../../../qemu/qemu-virt.toml").replace("cores = 1", "cores = \"one\"");
        let err = Board::parse("x.toml", &text).unwrap_err();
        assert!(err.one_line().contains("x.toml:"), "{}", err.one_line());
        let text = include_str!("../../../qemu/qemu-virt.toml")
            .replace("base = 0x0900_0000", "base = 0x4000_1000");
        let err = Board::parse("x.toml", &text).unwrap_err();
        assert!(
            err.one_line().contains("overlaps RAM"),
            "{}",
            err.one_line()
        );
    }

    #[test]
    fn unknown_board() {
        assert!(matches!(
            Board::find("no-such-board", Path::new(".")),
            Err(BoardError::Unknown)
        ));
    }
}
