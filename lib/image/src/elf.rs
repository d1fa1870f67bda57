//! The little of ELF64 the loader needs: the entry point and the loadable
//! segments of a little-endian aarch64 executable. No allocation, no
//! `unsafe`: every field is read from the byte slice with bounds checks.

/// One PT_LOAD program header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub file_size: u64,
    pub mem_size: u64,
    /// `p_flags`: the R/W/X bits and, in the OS-specific range,
    /// [`PF_SEPTA_UNDEFINED`].
    pub flags: u32,
}

impl Load {
    /// Whether the bytes past the file's part must read as zero. A segment
    /// marked [`PF_SEPTA_UNDEFINED`] holds memory its program initializes
    /// itself before use (a heap), so a loader may leave it as it finds it.
    pub fn zero_fill(&self) -> bool {
        self.flags & PF_SEPTA_UNDEFINED == 0
    }
}

/// A `p_flags` bit in the OS-specific range (`PF_MASKOS`, 0x0ff00000) that
/// Septa's root-task linker script sets on the segment of its `.noinit`
/// section: its contents start undefined, and the loader does not zero it.
pub const PF_SEPTA_UNDEFINED: u32 = 0x0010_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    NotElf64LittleEndian,
    NotAarch64,
    Truncated,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ElfError::NotElf => "not an ELF file",
            ElfError::NotElf64LittleEndian => "not a 64-bit little-endian ELF file",
            ElfError::NotAarch64 => "not an aarch64 ELF file",
            ElfError::Truncated => "ELF file truncated (headers or a segment past its end)",
        })
    }
}

const PT_LOAD: u32 = 1;
const EM_AARCH64: u16 = 183;

fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    Ok(u16::from_le_bytes(
        b.get(at..at + 2)
            .ok_or(ElfError::Truncated)?
            .try_into()
            .unwrap(),
    ))
}
fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    Ok(u32::from_le_bytes(
        b.get(at..at + 4)
            .ok_or(ElfError::Truncated)?
            .try_into()
            .unwrap(),
    ))
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    Ok(u64::from_le_bytes(
        b.get(at..at + 8)
            .ok_or(ElfError::Truncated)?
            .try_into()
            .unwrap(),
    ))
}

/// A checked view of an ELF64 aarch64 file.
pub struct Elf<'a> {
    bytes: &'a [u8],
    phoff: usize,
    phentsize: usize,
    phnum: usize,
    pub entry: u64,
}

impl<'a> Elf<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        if bytes.get(..4) != Some(b"\x7fELF") {
            return Err(ElfError::NotElf);
        }
        // EI_CLASS = 2 (64-bit), EI_DATA = 1 (little endian).
        if bytes.get(4..6) != Some(&[2, 1]) {
            return Err(ElfError::NotElf64LittleEndian);
        }
        if u16_at(bytes, 18)? != EM_AARCH64 {
            return Err(ElfError::NotAarch64);
        }
        let elf = Elf {
            bytes,
            entry: u64_at(bytes, 24)?,
            phoff: u64_at(bytes, 32)? as usize,
            phentsize: u16_at(bytes, 54)? as usize,
            phnum: u16_at(bytes, 56)? as usize,
        };
        if elf.phentsize < 56 {
            return Err(ElfError::Truncated);
        }
        for i in 0..elf.phnum {
            if let Some(l) = elf.header(i)? {
                if l.offset
                    .checked_add(l.file_size)
                    .is_none_or(|e| e > bytes.len() as u64)
                    || l.file_size > l.mem_size
                {
                    return Err(ElfError::Truncated);
                }
            }
        }
        Ok(elf)
    }

    fn header(&self, i: usize) -> Result<Option<Load>, ElfError> {
        let at = self
            .phoff
            .checked_add(i * self.phentsize)
            .ok_or(ElfError::Truncated)?;
        let b = self.bytes;
        if u32_at(b, at)? != PT_LOAD {
            return Ok(None);
        }
        Ok(Some(Load {
            offset: u64_at(b, at + 8)?,
            vaddr: u64_at(b, at + 16)?,
            paddr: u64_at(b, at + 24)?,
            file_size: u64_at(b, at + 32)?,
            mem_size: u64_at(b, at + 40)?,
            flags: u32_at(b, at + 4)?,
        }))
    }

    /// The loadable segments with a nonzero size in memory (checked by `parse`).
    pub fn loads(&self) -> impl Iterator<Item = Load> + '_ {
        (0..self.phnum)
            .filter_map(|i| self.header(i).ok().flatten())
            .filter(|l| l.mem_size > 0)
    }

    /// The bytes of a segment that come from the file.
    pub fn data(&self, l: &Load) -> &'a [u8] {
        &self.bytes[l.offset as usize..(l.offset + l.file_size) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF with one PT_LOAD segment and one PT_NOTE.
    fn sample() -> [u8; 64 + 2 * 56 + 16] {
        let mut b = [0u8; 64 + 2 * 56 + 16];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&EM_AARCH64.to_le_bytes());
        b[24..32].copy_from_slice(&0x20_0040u64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[ph + 8..ph + 16].copy_from_slice(&(64u64 + 112).to_le_bytes());
        b[ph + 16..ph + 24].copy_from_slice(&0x20_0000u64.to_le_bytes());
        b[ph + 24..ph + 32].copy_from_slice(&0x4000_0000u64.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&16u64.to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&4096u64.to_le_bytes());
        b[ph + 4..ph + 8].copy_from_slice(&6u32.to_le_bytes());
        b[ph + 56..ph + 60].copy_from_slice(&4u32.to_le_bytes());
        b[176..192].copy_from_slice(b"0123456789abcdef");
        b
    }

    #[test]
    fn reads_entry_and_loadable_segments_only() {
        let b = sample();
        let elf = Elf::parse(&b).unwrap();
        assert_eq!(elf.entry, 0x20_0040);
        let loads: std::vec::Vec<_> = elf.loads().collect();
        assert_eq!(
            loads,
            [Load {
                offset: 176,
                vaddr: 0x20_0000,
                paddr: 0x4000_0000,
                file_size: 16,
                mem_size: 4096,
                flags: 6,
            }]
        );
        assert_eq!(elf.data(&loads[0]), b"0123456789abcdef");
        assert!(loads[0].zero_fill());
    }

    #[test]
    fn a_segment_marked_undefined_is_not_zero_filled() {
        let mut b = sample();
        b[64 + 4..64 + 8].copy_from_slice(&(PF_SEPTA_UNDEFINED | 6).to_le_bytes());
        let elf = Elf::parse(&b).unwrap();
        let load = elf.loads().next().unwrap();
        assert!(!load.zero_fill());
    }

    #[test]
    fn rejects_what_is_not_a_sound_aarch64_elf64() {
        let b = sample();
        assert_eq!(Elf::parse(&b[..3]).err(), Some(ElfError::NotElf));
        let mut c = b;
        c[4] = 1;
        assert_eq!(Elf::parse(&c).err(), Some(ElfError::NotElf64LittleEndian));
        let mut c = b;
        c[18] = 62;
        assert_eq!(Elf::parse(&c).err(), Some(ElfError::NotAarch64));
        assert_eq!(Elf::parse(&b[..180]).err(), Some(ElfError::Truncated));
        let mut c = b;
        c[64 + 32..64 + 40].copy_from_slice(&8192u64.to_le_bytes());
        assert_eq!(
            Elf::parse(&c).err(),
            Some(ElfError::Truncated),
            "file size above memory size"
        );
    }
}
