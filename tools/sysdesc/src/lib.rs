//! `septa-sysdesc`: the system description front end of the `septa` tool.
//!
//! What it is: the library that reads a system description, `system.toml`
//! (the format is documented in this crate's README.md) or a Microkit 2.3.0
//! `.system` XML file, checks it against the rules of Microkit and of the
//! board it names, and returns a typed [`System`] model, or diagnostics that
//! name file, line and column with a stable code and help.
//!
//! What it owns: the format, the model, the diagnostics and their codes, the
//! board profile format (`qemu/<board>.toml`, read through [`Board`]) and the
//! `graph` renderings (DOT and a self-contained SVG).
//!
//! What it must not touch: program images (a missing image is the build's
//! concern), the spec format, the file system beyond reading the description,
//! its board profile and prefill files.
//!
//! Stages: `toml_front` / `xml_front` (text to model, single values checked
//! through `check`) then `validate` (rules across items and against the board).

#![forbid(unsafe_code)]

pub mod blk;
mod board;
pub mod cells;
mod check;
mod diag;
mod expand;
pub mod graph;
mod guest;
mod kind;
pub mod linux;
mod model;
pub mod net;
pub mod serial;
pub mod stats;
pub mod timer;
mod toml_front;
pub mod units;
mod validate;
pub mod virtio;
mod xml_front;

use std::path::Path;

pub use blk::{BlkDisk, BlkPartition, PartitionTable};
pub use board::{
    Arch, Board, BoardTrigger, Device, KernelConfig, Owner, Ppi, Qemu, Range, Reserved,
};
pub use diag::{Diagnostic, Report, Source, Span};
pub use kind::Kind;
pub use model::*;

/// Limits of the model that other stages may need.
pub mod limits {
    pub use crate::check::{
        ipc_buffer_vaddr, pd_map_limit, stack_top, vm_map_limit, CAP_SLOTS, DEFAULT_STACK, MAX_ID,
        MAX_PDS, MAX_STACK, MAX_SYMBOL_INDEX, MIN_STACK, PAGE_SIZES,
    };
}

pub use check::split_symbol;

/// Which language a description is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Septa's `system.toml`.
    Toml,
    /// Microkit's XML `.system` file.
    Xml,
}

impl Format {
    /// `.system` and `.xml` files are XML; everything else is TOML.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("system") | Some("xml") => Format::Xml,
            _ => Format::Toml,
        }
    }
}

/// A valid system and the warnings found while checking it.
#[derive(Debug)]
pub struct Loaded {
    pub system: System,
    pub warnings: Vec<Diagnostic>,
}

/// Reads, parses and validates the description at `path`. Paths inside it
/// (board profiles, prefill files) are relative to its folder.
pub fn load(path: &Path) -> Result<Loaded, Report> {
    load_for_kernel(path, None)
}

/// As [`load`], for a kernel that manages RAM only from `kernel_ram_base`
/// up ([`Board::for_kernel_ram`]): the description is checked against the
/// board as that kernel sees it.
pub fn load_for_kernel(path: &Path, kernel_ram_base: Option<u64>) -> Result<Loaded, Report> {
    let (name, text) = read(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_with(&name, &text, Format::from_path(path), base, kernel_ram_base)
}

/// The board the description at `path` names, with the description read
/// by its front end but not validated: for a system the tool boots without
/// realising its description (one that names its own root task, or one
/// without protection domains), which still runs on the board it names.
pub fn load_board(path: &Path) -> Result<Board, Report> {
    let (name, text) = read(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let source = Source::new(name, text);
    match front_end(&source, Format::from_path(path), base) {
        (Some(system), diags) if !diags.iter().any(|d| !d.is_warning()) => Ok(system.board),
        (_, diagnostics) => {
            let mut r = Report { diagnostics };
            r.sort();
            Err(r)
        }
    }
}

/// The text of the description at `path`, and its name for diagnostics.
fn read(path: &Path) -> Result<(String, String), Report> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((name, text)),
        Err(e) => {
            let source = Source::new(name.clone(), "");
            Err(Report::single(Diagnostic::new(
                Kind::Unreadable {
                    path: name,
                    reason: e.to_string(),
                },
                &source,
                None,
            )))
        }
    }
}

/// Text to model: the front end of `kind`, with no rule across items.
fn front_end(
    source: &std::sync::Arc<Source>,
    kind: Format,
    base_dir: &Path,
) -> (Option<System>, Vec<Diagnostic>) {
    match kind {
        Format::Toml => toml_front::parse(source, base_dir),
        Format::Xml => xml_front::parse(source, base_dir),
    }
}

/// Parses and validates a description held in memory; relative paths inside
/// it are taken from the current directory.
pub fn parse_str(name: &str, src: &str, kind: Format) -> Result<Loaded, Report> {
    parse_str_in(name, src, kind, Path::new("."))
}

/// As [`parse_str`], with relative paths taken from `base_dir`.
pub fn parse_str_in(
    name: &str,
    src: &str,
    kind: Format,
    base_dir: &Path,
) -> Result<Loaded, Report> {
    parse_with(name, src, kind, base_dir, None)
}

fn parse_with(
    name: &str,
    src: &str,
    kind: Format,
    base_dir: &Path,
    kernel_ram_base: Option<u64>,
) -> Result<Loaded, Report> {
    let source = Source::new(name, src);
    let (system, mut diags) = front_end(&source, kind, base_dir);
    let mut system = match system {
        Some(s) => s,
        None => {
            let mut r = Report { diagnostics: diags };
            r.sort();
            return Err(r);
        }
    };
    if let Some(b) = kernel_ram_base {
        system.board = system.board.for_kernel_ram(b);
    }
    // Cross-item rules run only on a model whose single values were sound,
    // so that one typo does not cascade into follow-on errors.
    if !diags.iter().any(|d| !d.is_warning()) {
        let mut sink = diag::Sink::new(&source);
        validate::validate(&system, &mut sink);
        diags.extend(sink.out);
    }
    let mut report = Report { diagnostics: diags };
    report.sort();
    if report.has_errors() {
        return Err(report);
    }
    validate::choose_page_sizes(&mut system);
    Ok(Loaded {
        system,
        warnings: report.diagnostics,
    })
}

/// The kernel configuration a description's `[system] config` names, read
/// without the rest: for descriptions the tool does not realise (a system
/// that is its own root task, or one without protection domains). A
/// Microkit `.system` file names none.
pub fn described_config(path: &Path) -> Result<Option<septa_abi::Config>, Report> {
    if Format::from_path(path) != Format::Toml {
        return Ok(None);
    }
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let source = Source::new(name, &text);
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        // The full parse reports syntax errors where it matters.
        Err(_) => return Ok(None),
    };
    let Some(c) = table
        .get("system")
        .and_then(|s| s.get("config"))
        .and_then(|c| c.as_str())
    else {
        return Ok(None);
    };
    septa_abi::Config::from_name(c).map(Some).ok_or_else(|| {
        Report::single(Diagnostic::new(
            Kind::UnknownConfig(c.to_string()),
            &source,
            None,
        ))
    })
}

/// The `[system] user_errors` of a description, read without the rest (as
/// [`described_config`]); `None` if it says nothing (or is not TOML).
pub fn described_user_errors(path: &Path) -> Option<bool> {
    if Format::from_path(path) != Format::Toml {
        return None;
    }
    let table: toml::Table = std::fs::read_to_string(path).ok()?.parse().ok()?;
    table.get("system")?.get("user_errors")?.as_bool()
}

/// Resolves the board a description names, reporting at `span` if it cannot.
pub(crate) fn find_board(
    sink: &mut diag::Sink,
    name: &str,
    span: Option<Span>,
    base_dir: &Path,
) -> Option<Board> {
    match Board::find(name, base_dir) {
        Ok(b) => Some(b),
        Err(board::BoardError::Unknown) => {
            sink.emit(
                Kind::UnknownBoard {
                    name: name.to_string(),
                    known: board::built_in_names().join(", "),
                },
                span,
            );
            None
        }
        Err(board::BoardError::Unreadable { path, reason }) => {
            sink.emit(Kind::BoardUnreadable { path, reason }, span);
            None
        }
        Err(board::BoardError::Invalid(report)) => {
            sink.out.extend(report.diagnostics);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "[system]\nboard = \"qemu-virt\"\n\n[pd.a]\nprogram = \"a\"\n";

    #[test]
    fn minimal_system_has_microkit_defaults() {
        let l = parse_str("m.toml", OK, Format::Toml).unwrap();
        let pd = &l.system.pds[0];
        assert_eq!((pd.priority, pd.budget_us, pd.period_us), (0, 1000, 1000));
        assert_eq!(pd.stack_size, 8 << 10);
        assert!(pd.fpu && !pd.passive && !pd.smc);
        assert_eq!(pd.restart.policy, Policy::Stop);
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn unreadable_file_is_reported() {
        let r = load(Path::new("/nonexistent/system.toml")).unwrap_err();
        assert_eq!(r.diagnostics[0].code(), "septa::file::unreadable");
        assert!(r.to_string().contains("1 error"));
    }

    #[test]
    fn the_board_of_a_description_without_pds_is_read() {
        let dir = std::env::temp_dir().join(format!("sysdesc-board-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("system.toml");
        std::fs::write(&file, "[system]\nboard = \"qemu-virt\"\n").unwrap();
        // Not a valid system (no PD), but its board is known.
        assert!(load(&file).is_err());
        assert_eq!(load_board(&file).unwrap(), Board::qemu_virt());
        std::fs::write(&file, "[system]\nboard = \"qemu-vert\"\n").unwrap();
        let r = load_board(&file).unwrap_err();
        assert_eq!(r.diagnostics[0].code(), "septa::board::unknown");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fixed_regions_below_a_kernel_with_ram_higher_up_are_device_memory() {
        let dir = std::env::temp_dir().join(format!("sysdesc-kram-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("system.toml");
        let with_region = |paddr: u64| {
            format!(
                "{OK}maps = [{{ region = \"dma\", vaddr = 0x3000_0000 }}]\n\
                 [region.dma]\nsize = \"64 KiB\"\nphys = {paddr:#x}\n"
            )
        };
        // In the RAM Septa's kernel keeps for boot: refused.
        std::fs::write(&file, with_region(0x4800_0000)).unwrap();
        let r = load(&file).unwrap_err();
        assert_eq!(r.diagnostics[0].code(), "septa::region::reserved");
        // seL4 on QEMU virt manages RAM from 0x6000_0000 only: below is
        // device memory, where the region is fine.
        let l = load_for_kernel(&file, Some(0x6000_0000)).unwrap();
        assert_eq!(l.system.board.ram.base, 0x6000_0000);
        assert!(!l.system.board.is_ram(0x4800_0000, 0x4801_0000));
        assert_eq!(l.system.board.reserved[0].range.base, 0x6000_0000);
        // ... and its boot area is now where that kernel sits.
        std::fs::write(&file, with_region(0x6400_0000)).unwrap();
        assert!(load(&file).is_ok());
        let r = load_for_kernel(&file, Some(0x6000_0000)).unwrap_err();
        assert_eq!(r.diagnostics[0].code(), "septa::region::reserved");
        // A kernel at the start of RAM sees the board as it is.
        assert_eq!(
            Board::qemu_virt().for_kernel_ram(0x4000_0000),
            Board::qemu_virt()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn positions_are_line_and_column_of_the_value() {
        let text = OK.replace("program = \"a\"", "program = \"a\"\npriority = 300");
        let r = parse_str("p.toml", &text, Format::Toml).unwrap_err();
        assert_eq!(
            r.one_line(),
            "p.toml:6:12: error[septa::sched::priority_range]: priority 300 is out of range 0..=254\n"
        );
    }

    #[test]
    fn rendering_shows_the_source_and_help() {
        let text = OK.replace("program = \"a\"", "program = \"a\"\nprioity = 3");
        let r = parse_str("p.toml", &text, Format::Toml).unwrap_err();
        let shown = r.render();
        assert!(shown.contains("septa::toml::unknown_key"), "{shown}");
        assert!(shown.contains("prioity = 3"), "{shown}");
        assert!(shown.contains("did you mean `priority`?"), "{shown}");
    }

    #[test]
    fn errors_in_a_multibyte_line_count_characters() {
        let text = OK.replace(
            "program = \"a\"",
            "program = \"a\" # größe\nstack = \"1 KiB\"",
        );
        let r = parse_str("u.toml", &text, Format::Toml).unwrap_err();
        assert!(r.one_line().starts_with("u.toml:6:9:"), "{}", r.one_line());
    }

    #[test]
    fn large_pages_are_chosen_when_everything_allows() {
        let text = format!(
            "{OK}maps = [{{ region = \"big\", vaddr = 0x4000_0000 }}, {{ region = \"odd\", vaddr = 0x5000_1000 }}]\n\
             [region.big]\nsize = \"4 MiB\"\n[region.odd]\nsize = \"2 MiB\"\n"
        );
        let s = parse_str("l.toml", &text, Format::Toml).unwrap().system;
        assert_eq!(s.region("big").unwrap().page_size, 2 << 20);
        assert_eq!(s.region("odd").unwrap().page_size, 4 << 10);
    }
}
