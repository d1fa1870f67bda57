//! Program images: the loadable segments and symbols of a PD's ELF file,
//! held in memory so the patch stage can write into them before the spec
//! stage turns them into frame contents.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::elf::{PF_R, PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};

/// One loadable segment. `data` holds the file bytes (possibly extended
/// with zeros by a patch that wrote into `.bss`); the rest up to `mem_size`
/// is zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub mem_size: u64,
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl Segment {
    pub fn end(&self) -> u64 {
        self.vaddr + self.mem_size
    }
}

/// A program image.
#[derive(Clone, Debug)]
pub struct ElfImage {
    pub path: PathBuf,
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// Symbol name to (address, size).
    symbols: HashMap<String, (u64, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path} is not a 64-bit little-endian aarch64 ELF executable: {reason}")]
    NotAarch64 { path: PathBuf, reason: String },
    #[error("{path} has no loadable segment")]
    NoSegments { path: PathBuf },
    #[error("{path}: segments at {a:#x} and {b:#x} overlap")]
    Overlap { path: PathBuf, a: u64, b: u64 },
    #[error(
        "{path} is not linked as a protection domain: {why}. A Rust PD is linked \
         right when it depends on septa-runtime and is built in this workspace \
         (its .cargo/config.toml links with the runtime's pd.ld; a RUSTFLAGS \
         variable replaces that setting); a C PD links with libmicrokit's script"
    )]
    NotAPd { path: PathBuf, why: String },
    #[error("{path}: {len} bytes at {vaddr:#x} are not inside one loadable segment")]
    OutsideSegments {
        path: PathBuf,
        vaddr: u64,
        len: usize,
    },
}

impl ElfImage {
    pub fn read(path: &Path) -> Result<ElfImage, ElfError> {
        let bytes = std::fs::read(path).map_err(|e| ElfError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        ElfImage::parse(&bytes, path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<ElfImage, ElfError> {
        let not = |reason: String| ElfError::NotAarch64 {
            path: path.to_path_buf(),
            reason,
        };
        let file = ElfFile64::<Endianness>::parse(bytes).map_err(|e| not(e.to_string()))?;
        let header = file.elf_header();
        let endian = file.endian();
        if header.e_machine(endian) != object::elf::EM_AARCH64 {
            return Err(not("machine is not aarch64".into()));
        }
        if endian != Endianness::Little {
            return Err(not("big-endian".into()));
        }
        let mut segments = Vec::new();
        for ph in file.elf_program_headers() {
            if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
                continue;
            }
            let flags = ph.p_flags(endian);
            let data = ph
                .data(endian, bytes)
                .map_err(|_| not("a segment lies outside the file".into()))?;
            segments.push(Segment {
                vaddr: ph.p_vaddr(endian),
                data: data.to_vec(),
                mem_size: ph.p_memsz(endian),
                read: flags & PF_R != 0,
                write: flags & PF_W != 0,
                execute: flags & PF_X != 0,
            });
        }
        if segments.is_empty() {
            return Err(ElfError::NoSegments {
                path: path.to_path_buf(),
            });
        }
        segments.sort_by_key(|s| s.vaddr);
        for w in segments.windows(2) {
            if w[0].end() > w[1].vaddr {
                return Err(ElfError::Overlap {
                    path: path.to_path_buf(),
                    a: w[0].vaddr,
                    b: w[1].vaddr,
                });
            }
        }
        let symbols = file
            .symbols()
            .filter_map(|s| Some((s.name().ok()?.to_string(), (s.address(), s.size()))))
            .filter(|(n, _)| !n.is_empty())
            .collect();
        Ok(ElfImage {
            path: path.to_path_buf(),
            entry: file.entry(),
            segments,
            symbols,
        })
    }

    /// Checks the layout every PD program has, whoever linked it
    /// (septa-runtime's pd.ld or libmicrokit's script): its lowest segment
    /// starts at the PD image base, and so does its entry point (`_start`,
    /// in section `.text.start`, which both scripts put first). A program
    /// linked with the linker's defaults fails the second test even where
    /// it happens to pass the first.
    pub fn check_pd_layout(&self) -> Result<(), ElfError> {
        let base = septa_abi::microkit::IMAGE_BASE;
        let lowest = self.segments.iter().map(|s| s.vaddr).min().unwrap_or(0);
        let why = if lowest != base {
            format!("its lowest segment starts at {lowest:#x}, not at the PD image base {base:#x}")
        } else if self.entry != base {
            format!(
                "its entry point is {:#x}, not the PD image base {base:#x} where the \
                 runtime's `_start` (section .text.start) goes",
                self.entry
            )
        } else {
            return Ok(());
        };
        Err(ElfError::NotAPd {
            path: self.path.clone(),
            why,
        })
    }

    /// Address and size of symbol `name`.
    pub fn symbol(&self, name: &str) -> Option<(u64, u64)> {
        self.symbols.get(name).copied()
    }

    /// Writes `bytes` at `vaddr`, which must lie in one segment; a write
    /// past the file bytes (into `.bss`) extends them with zeros.
    pub fn write(&mut self, vaddr: u64, bytes: &[u8]) -> Result<(), ElfError> {
        let end = vaddr + bytes.len() as u64;
        let seg = self
            .segments
            .iter_mut()
            .find(|s| s.vaddr <= vaddr && end <= s.end())
            .ok_or_else(|| ElfError::OutsideSegments {
                path: self.path.clone(),
                vaddr,
                len: bytes.len(),
            })?;
        let at = (vaddr - seg.vaddr) as usize;
        if seg.data.len() < at + bytes.len() {
            seg.data.resize(at + bytes.len(), 0);
        }
        seg.data[at..at + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    /// Reads `len` bytes at `vaddr` (zero past the file bytes).
    #[cfg(test)]
    pub fn read_bytes(&self, vaddr: u64, len: usize) -> Option<Vec<u8>> {
        let end = vaddr + len as u64;
        let seg = self
            .segments
            .iter()
            .find(|s| s.vaddr <= vaddr && end <= s.end())?;
        let at = (vaddr - seg.vaddr) as usize;
        Some(
            (at..at + len)
                .map(|i| seg.data.get(i).copied().unwrap_or(0))
                .collect(),
        )
    }

    /// For tests: an image made of the given segments and symbols.
    #[cfg(test)]
    pub fn synthetic(entry: u64, segments: Vec<Segment>, symbols: &[(&str, u64, u64)]) -> Self {
        ElfImage {
            path: PathBuf::from("synthetic.elf"),
            entry,
            segments,
            symbols: symbols
                .iter()
                .map(|(n, a, s)| (n.to_string(), (*a, *s)))
                .collect(),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Two segments as the runtime's linker script makes them.
    pub fn sample() -> ElfImage {
        ElfImage::synthetic(
            0x20_0000,
            vec![
                Segment {
                    vaddr: 0x20_0000,
                    data: vec![0xaa; 0x1800],
                    mem_size: 0x1800,
                    read: true,
                    write: false,
                    execute: true,
                },
                Segment {
                    vaddr: 0x20_2000,
                    data: vec![0x11; 0x100],
                    mem_size: 0x3000,
                    read: true,
                    write: true,
                    execute: false,
                },
            ],
            &[
                ("microkit_name", 0x20_2000, 64),
                ("microkit_passive", 0x20_2040, 1),
                ("microkit_irqs", 0x20_2048, 8),
                ("microkit_notifications", 0x20_2050, 8),
                ("microkit_pps", 0x20_2058, 8),
                ("microkit_ioports", 0x20_2060, 8),
                ("in_bss", 0x20_2800, 8),
                ("wide", 0x20_2900, 4),
            ],
        )
    }

    #[test]
    fn only_an_image_linked_for_a_pd_passes_the_layout_check() {
        sample().check_pd_layout().unwrap();
        // As the linker lays a program out by default (no pd.ld): the
        // read-only data first at the default base, the entry further up.
        let mut defaults = sample();
        defaults.entry = 0x21_2fd0;
        let err = defaults.check_pd_layout().unwrap_err().to_string();
        assert!(err.contains("entry point is 0x212fd0"), "{err}");
        assert!(err.contains("septa-runtime"), "{err}");
        // Linked somewhere else altogether (a root task, say).
        let mut elsewhere = sample();
        for s in &mut elsewhere.segments {
            s.vaddr += 0x20_0000;
        }
        elsewhere.entry += 0x20_0000;
        let err = elsewhere.check_pd_layout().unwrap_err().to_string();
        assert!(err.contains("lowest segment starts at 0x400000"), "{err}");
    }

    #[test]
    fn writes_land_in_their_segment_and_extend_into_bss() {
        let mut e = sample();
        e.write(0x20_2800, &7u64.to_le_bytes()).unwrap();
        assert_eq!(e.segments[1].data.len(), 0x808);
        assert_eq!(e.read_bytes(0x20_2800, 8).unwrap(), 7u64.to_le_bytes());
        assert_eq!(e.read_bytes(0x20_27f8, 8).unwrap(), [0; 8]);
        assert!(matches!(
            e.write(0x20_1ffc, &[0; 8]),
            Err(ElfError::OutsideSegments { .. })
        ));
    }

    #[test]
    #[cfg(not(target_arch = "aarch64"))]
    fn parses_a_real_aarch64_image_and_refuses_others() {
        // The host test binary itself is an ELF of another machine (or not
        // an ELF at all): refused with the reason.
        let me = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&me).unwrap();
        let err = ElfImage::parse(&bytes, &me).unwrap_err();
        assert!(
            matches!(err, ElfError::NotAarch64 { .. }),
            "{err}: the host test binary was taken for a PD image"
        );
        assert!(matches!(
            ElfImage::parse(b"not an elf", Path::new("x")),
            Err(ElfError::NotAarch64 { .. })
        ));
    }
}
