//! Small static arm64 Linux programs the tool writes into every initramfs
//! it builds, byte for byte: no cross compiler is needed to build a guest,
//! so CI builds them too.
//!
//! | path | what |
//! |---|---|
//! | `/bin/septa-mmio-loop` | times 10,000 reads of the GIC distributor's TYPER register through `/dev/mem`, each a trap to the VMM and back (`cargo septa bench`'s `vm-exit`) |
//!
//! Each is one read-and-execute segment holding the code and its strings,
//! loaded at [`BASE`]; the machine code is listed with its assembly (GNU
//! `as` for aarch64 assembled it; a test checks that every address it
//! computes points where the listing says).

/// Where the segment is loaded.
pub const BASE: u64 = 0x40_0000;
/// ELF header and the one program header before the code.
const HEADERS: usize = 64 + 56;

/// `septa-mmio-loop`'s output starts with this.
pub const MMIO_LOOP_PREFIX: &str =
    "septa-mmio-loop: 10000 reads of GICD_TYPER in system counter ticks: ";
/// Its timed reads.
pub const MMIO_LOOP_READS: u64 = 10_000;

/// `septa-mmio-loop`: opens `/dev/mem`, maps the distributor's page, reads
/// GICD_TYPER 100 times to warm up, then 10,000 times between two readings
/// of CNTVCT_EL0, and prints [`MMIO_LOOP_PREFIX`] and the ticks in decimal.
/// Exits 1 if it cannot open or map.
#[rustfmt::skip]
const MMIO_LOOP: [u32; 58] = [
    0x92800c60, //   0: mov   x0, #-100            AT_FDCWD
    0x10000721, //   4: adr   x1, path (0xe8)
    0xd2820042, //   8: mov   x2, #0x1002          O_RDWR | O_SYNC (0x101002)
    0xf2a00202, //   c: movk  x2, #0x10, lsl #16
    0xd2800708, //  10: mov   x8, #56              openat
    0xd4000001, //  14: svc   #0
    0xb7f80620, //  18: tbnz  x0, #63, fail (0xdc)
    0xaa0003e4, //  1c: mov   x4, x0               fd
    0xd2800000, //  20: mov   x0, #0
    0xd2820001, //  24: mov   x1, #4096
    0xd2800062, //  28: mov   x2, #3               PROT_READ | PROT_WRITE
    0xd2800023, //  2c: mov   x3, #1               MAP_SHARED
    0xd2a10005, //  30: mov   x5, #0x08000000      the GIC distributor
    0xd2801bc8, //  34: mov   x8, #222             mmap
    0xd4000001, //  38: svc   #0
    0xb13ffc1f, //  3c: cmn   x0, #0xfff           -4095..-1: an error
    0x540004e8, //  40: b.hi  fail (0xdc)
    0xaa0003f3, //  44: mov   x19, x0
    0xd2800c95, //  48: mov   x21, #100            warm up
    0xb9400676, //  4c: ldr   w22, [x19, #4]       GICD_TYPER: a trap
    0xf10006b5, //  50: subs  x21, x21, #1
    0x54ffffc1, //  54: b.ne  0x4c
    0xd5033fdf, //  58: isb
    0xd53be054, //  5c: mrs   x20, cntvct_el0
    0xd284e215, //  60: mov   x21, #10000          timed
    0xb9400676, //  64: ldr   w22, [x19, #4]
    0xf10006b5, //  68: subs  x21, x21, #1
    0x54ffffc1, //  6c: b.ne  0x64
    0xd5033fdf, //  70: isb
    0xd53be057, //  74: mrs   x23, cntvct_el0
    0xcb1402f7, //  78: sub   x23, x23, x20        ticks
    0xd2800020, //  7c: mov   x0, #1
    0x30000381, //  80: adr   x1, prefix (0xf1)
    0xd2800882, //  84: mov   x2, #68              its length
    0xd2800808, //  88: mov   x8, #64              write
    0xd4000001, //  8c: svc   #0
    0xd10083ff, //  90: sub   sp, sp, #32
    0x91007fe1, //  94: add   x1, sp, #31
    0x52800142, //  98: mov   w2, #10              '\n'
    0x39000022, //  9c: strb  w2, [x1]
    0xd2800143, //  a0: mov   x3, #10
    0x9ac30ae4, //  a4: udiv  x4, x23, x3          one digit, from the end
    0x9b03dc85, //  a8: msub  x5, x4, x3, x23
    0x1100c0a5, //  ac: add   w5, w5, #48          '0'
    0xd1000421, //  b0: sub   x1, x1, #1
    0x39000025, //  b4: strb  w5, [x1]
    0xaa0403f7, //  b8: mov   x23, x4
    0xb5ffff57, //  bc: cbnz  x23, 0xa4
    0xd2800020, //  c0: mov   x0, #1
    0x910083e2, //  c4: add   x2, sp, #32
    0xcb010042, //  c8: sub   x2, x2, x1
    0xd2800808, //  cc: mov   x8, #64              write
    0xd4000001, //  d0: svc   #0
    0xd2800000, //  d4: mov   x0, #0
    0x14000002, //  d8: b     exit (0xe0)
    0xd2800020, //  dc: fail: mov x0, #1
    0xd2800ba8, //  e0: exit: mov x8, #93          exit
    0xd4000001, //  e4: svc   #0
];

/// `septa-mmio-loop`'s bytes: code, then "/dev/mem" at 0xe8 and the
/// prefix at 0xf1.
pub fn mmio_loop() -> Vec<u8> {
    let mut text: Vec<u8> = MMIO_LOOP.iter().flat_map(|w| w.to_le_bytes()).collect();
    text.extend_from_slice(b"/dev/mem\0");
    text.extend_from_slice(MMIO_LOOP_PREFIX.as_bytes());
    elf(&text)
}

/// A static ELF executable of one R+X segment holding `text`, entered at
/// its first byte.
fn elf(text: &[u8]) -> Vec<u8> {
    let entry = BASE + HEADERS as u64;
    let size = (HEADERS + text.len()) as u64;
    let mut e = Vec::with_capacity(HEADERS + text.len());
    // e_ident: ELFCLASS64, ELFDATA2LSB, EV_CURRENT, System V ABI.
    e.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    let h16 = |e: &mut Vec<u8>, v: u16| e.extend_from_slice(&v.to_le_bytes());
    let h32 = |e: &mut Vec<u8>, v: u32| e.extend_from_slice(&v.to_le_bytes());
    let h64 = |e: &mut Vec<u8>, v: u64| e.extend_from_slice(&v.to_le_bytes());
    h16(&mut e, 2); // ET_EXEC
    h16(&mut e, 183); // EM_AARCH64
    h32(&mut e, 1); // EV_CURRENT
    h64(&mut e, entry);
    h64(&mut e, 64); // e_phoff
    h64(&mut e, 0); // e_shoff: no sections
    h32(&mut e, 0); // e_flags
    h16(&mut e, 64); // e_ehsize
    h16(&mut e, 56); // e_phentsize
    h16(&mut e, 1); // e_phnum
    h16(&mut e, 64); // e_shentsize
    h16(&mut e, 0); // e_shnum
    h16(&mut e, 0); // e_shstrndx
    h32(&mut e, 1); // PT_LOAD
    h32(&mut e, 5); // PF_R | PF_X
    h64(&mut e, 0); // p_offset
    h64(&mut e, BASE); // p_vaddr
    h64(&mut e, BASE); // p_paddr
    h64(&mut e, size); // p_filesz
    h64(&mut e, size); // p_memsz
    h64(&mut e, 0x1000); // p_align
    e.extend_from_slice(text);
    e
}

/// The output line of `septa-mmio-loop`: the ticks it printed.
pub fn mmio_loop_ticks(line: &str) -> Option<u64> {
    line[line.find(MMIO_LOOP_PREFIX)? + MMIO_LOOP_PREFIX.len()..]
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target of an `adr` at byte `at` of the code.
    fn adr_target(word: u32, at: usize) -> usize {
        let lo = (word >> 29) & 3;
        let hi = (word >> 5) & 0x7ffff;
        let imm = ((hi << 2) | lo) as i32;
        let imm = (imm << 11) >> 11; // sign-extend 21 bits
        (at as i64 + i64::from(imm)) as usize
    }

    #[test]
    fn the_strings_are_where_the_code_looks() {
        let text: Vec<u8> = MMIO_LOOP.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(text.len(), 0xe8);
        assert_eq!(adr_target(MMIO_LOOP[1], 0x4), 0xe8, "path");
        assert_eq!(adr_target(MMIO_LOOP[32], 0x80), 0xf1, "prefix");
        // `mov x2, #68` is the prefix's length.
        assert_eq!(MMIO_LOOP_PREFIX.len(), 68);
        assert_eq!(MMIO_LOOP[33], 0xd2800002 | (68 << 5));
    }

    #[test]
    fn the_executable_is_one_segment_entered_after_its_headers() {
        let e = mmio_loop();
        assert_eq!(&e[..4], b"\x7fELF");
        let word = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().unwrap());
        assert_eq!(word(24), BASE + 120, "entry");
        assert_eq!(u16::from_le_bytes([e[18], e[19]]), 183, "aarch64");
        assert_eq!(word(64 + 32), e.len() as u64, "p_filesz");
        assert_eq!(&e[120 + 0xe8..120 + 0xf0], b"/dev/mem");
        assert_eq!(
            mmio_loop_ticks(&format!("{MMIO_LOOP_PREFIX}123456\r")),
            Some(123_456)
        );
    }
}
