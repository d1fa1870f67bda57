//! For tests: the pipeline's cargo-free stages ([`pack::compose`]) run on a
//! description file, with a small synthetic program image standing in for
//! each PD's program, so that host tests see the spec, the blob and the
//! report a real build would make from that description.
//!
//! Each program gets one image, shared by every PD that runs it (as a
//! real build shares one ELF): a text segment whose bytes depend on the
//! program's name, and a data segment holding every symbol that any of
//! its PDs has patched (libmicrokit's and the setvars), each of the size
//! the patch stage requires (arrays as long as their highest element).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use septa_sysdesc::{Program, System};

use crate::elf::{ElfImage, Segment};
use crate::pack::{self, Boot, Composed};
use crate::patch;

/// Where the synthetic programs are linked (as the runtime's script does).
const TEXT_BASE: u64 = septa_abi::microkit::IMAGE_BASE;
const TEXT_LEN: u64 = 0x1800;
const DATA_BASE: u64 = 0x20_2000;
/// Room after the symbols, as `.bss`.
const BSS_LEN: u64 = 0x1000;

/// The boot footprint the tests assume: a 2 MiB kernel at the start of
/// RAM, a 1 MiB initializer.
pub const BOOT: Boot = Boot {
    kernel: (0x4000_0000, 0x4020_0000),
    initializer: 0x10_0000,
};

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh folder under the system's temporary directory for one test,
/// removed (with what the test left in it) when the test is done, so that
/// the suite leaves nothing behind in /tmp.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `septa-WHAT-PID-THREAD`: unique per test even when tests run in
    /// parallel threads of one process.
    pub fn new(what: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!(
            "septa-{what}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Loads and validates a description, failing the test with its report.
pub fn load(file: &Path) -> System {
    septa_sysdesc::load(file)
        .unwrap_or_else(|r| panic!("{}: {}", file.display(), r.render()))
        .system
}

/// A program's name, as the report and the image path give it.
fn program_name(p: &Program) -> String {
    match p {
        Program::Crate(c) => c.clone(),
        Program::Elf(path) => path.display().to_string(),
    }
}

/// One synthetic image per PD, shared between PDs with the same program.
pub fn images(sys: &System) -> Vec<ElfImage> {
    // Every region gets some address, so that every setvar has a value:
    // only the symbols' names and sizes matter here.
    let paddrs: HashMap<String, u64> = sys.regions.iter().map(|r| (r.name.clone(), 0)).collect();
    let mut symbols: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (i, pd) in sys.pds.iter().enumerate() {
        let writes = patch::writes_for(sys, i, &paddrs).expect("writes");
        let table = symbols.entry(program_name(&pd.program)).or_default();
        for w in writes {
            // An element `NAME[i]` needs an array `NAME` that holds it.
            let (name, size) = match septa_sysdesc::split_symbol(&w.symbol) {
                Some((name, Some(i))) => {
                    let element = if w.kind == patch::Kind::Text {
                        septa_sysdesc::SetValue::TEXT_ELEMENT
                    } else {
                        8
                    };
                    (name.to_string(), (u64::from(i) + 1) * element)
                }
                _ if w.kind == patch::Kind::Text => {
                    (w.symbol.clone(), septa_sysdesc::SetValue::TEXT_ELEMENT)
                }
                _ => (w.symbol.clone(), w.bytes.len() as u64),
            };
            let entry = table.entry(name).or_insert(0);
            *entry = (*entry).max(size);
        }
    }
    let made: BTreeMap<String, ElfImage> = symbols
        .into_iter()
        .map(|(name, table)| {
            let mut at = DATA_BASE;
            let mut syms = vec![];
            for (sym, size) in &table {
                syms.push((sym.as_str(), at, *size));
                at += size.next_multiple_of(8);
            }
            let seed = name
                .bytes()
                .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
            let text: Vec<u8> = (0..TEXT_LEN).map(|k| seed.wrapping_add(k as u8)).collect();
            let data_len = at - DATA_BASE;
            let mut img = ElfImage::synthetic(
                TEXT_BASE,
                vec![
                    Segment {
                        vaddr: TEXT_BASE,
                        data: text,
                        mem_size: TEXT_LEN,
                        read: true,
                        write: false,
                        execute: true,
                    },
                    Segment {
                        vaddr: DATA_BASE,
                        data: vec![0; data_len as usize],
                        mem_size: data_len + BSS_LEN,
                        read: true,
                        write: true,
                        execute: false,
                    },
                ],
                &syms,
            );
            img.path = PathBuf::from(&name);
            (name, img)
        })
        .collect();
    sys.pds
        .iter()
        .map(|pd| made[&program_name(&pd.program)].clone())
        .collect()
}

/// The description in `file` through the cargo-free stages, as `septa
/// build` would take it (no `symbols` images: the synthetic images carry
/// their symbols).
pub fn compose(file: &Path) -> (System, Composed) {
    let sys = load(file);
    let mut imgs = images(&sys);
    let none = vec![None; imgs.len()];
    let base = file.parent().unwrap_or(Path::new("."));
    let composed = pack::compose(
        &sys,
        base,
        BOOT,
        &mut imgs,
        &none,
        false,
        septa_abi::Config::Debug,
    )
    .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
    (sys, composed)
}
