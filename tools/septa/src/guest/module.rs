//! `septa_hostile.ko`: a Linux kernel module the tool writes into every
//! initramfs it builds, which plays a hostile guest kernel when loaded
//! (`insmod /lib/modules/septa/septa_hostile.ko`; tests/systems/vm-hostile).
//!
//! What only code at EL1 can do, and a guest's user space cannot (its `hvc`
//! and `smc` are undefined instructions, and it cannot mask interrupts):
//!
//! - eight junk firmware calls with `hvc`, then the same with `smc`:
//!   function ids no one implements, with junk arguments and x7 values
//!   that send a seL4 hypervisor's `hvc` down each of its paths (x7 not a
//!   system call: an UnknownSyscall fault; a Call or Recv whose x0 fails
//!   its lookup in the vCPU thread's empty CSpace: a capability fault).
//!   Each must come back as NOT_SUPPORTED (-1). x7 is never one of the
//!   kernel's debug calls (-12..-17): on a debug kernel those run for the
//!   guest, DebugHalt included;
//! - then 2^27 turns of a loop with every interrupt masked (about 270
//!   million instructions).
//!
//! `init_module` then returns -ENODEV if every call was refused cleanly
//! (busybox's insmod says "No such device"), -EIO if not: the module never
//! stays loaded.
//!
//! The module is a relocatable ELF file the loader of the guest's own
//! kernel accepts: `vermagic`, the `module_layout` symbol version, the size
//! of `struct module` (the section `.gnu.linkonce.this_module`) and where
//! in it the init function's address goes are all taken from a module of
//! the same kernel package (virtio_mmio.ko: [`Template`]); the sections
//! arm64's loader insists on (`.plt`, `.init.plt`,
//! `.text.ftrace_trampoline`) are there, empty. It is not signed: loading
//! it taints the kernel, which Debian's configuration allows
//! (`CONFIG_MODULE_SIG_FORCE` is off).

use miette::{miette, Result};
use object::read::{Object as _, ObjectSection as _, ObjectSymbol as _};
use object::write::{Object, Relocation, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, RelocationTarget, SectionKind,
    SymbolFlags, SymbolKind, SymbolScope,
};

/// The module's name, and its file in the initramfs.
pub const NAME: &str = "septa_hostile";
pub const PATH: &str = "lib/modules/septa/septa_hostile.ko";
/// The module whose layout the tool copies.
pub const TEMPLATE: &str = "virtio_mmio";

/// What a module must agree on with its kernel, read from one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub vermagic: String,
    /// `sizeof(struct module)`: the size of `.gnu.linkonce.this_module`.
    pub module_size: usize,
    /// Where `struct module` holds the name and the init function.
    pub name_offset: usize,
    pub init_offset: u64,
    /// The CRC of `module_layout` (kernels with MODVERSIONS).
    pub module_layout: Option<u64>,
}

const THIS_MODULE: &str = ".gnu.linkonce.this_module";

/// Reads the template from a module file of the kernel, the module named
/// `own_name`.
pub fn template(ko: &[u8], own_name: &str) -> Result<Template> {
    let bad = |what: &str| miette!("the template module {own_name}.ko: {what}");
    let file = object::File::parse(ko).map_err(|e| bad(&e.to_string()))?;
    let section = |name: &str| {
        file.section_by_name(name)
            .ok_or_else(|| bad(&format!("no section {name}")))
    };
    let modinfo = section(".modinfo")?
        .data()
        .map_err(|e| bad(&e.to_string()))?;
    let vermagic = modinfo
        .split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"vermagic="))
        .ok_or_else(|| bad("no vermagic"))?;
    let this = section(THIS_MODULE)?;
    let data = this.data().map_err(|e| bad(&e.to_string()))?;
    let own = format!("{own_name}\0");
    let name_offset = data
        .windows(own.len())
        .position(|w| w == own.as_bytes())
        .ok_or_else(|| bad("its struct module does not hold its name"))?;
    let init_offset = this
        .relocations()
        .find_map(|(offset, r)| match r.target() {
            RelocationTarget::Symbol(i) => file
                .symbol_by_index(i)
                .ok()
                .filter(|s| s.name() == Ok("init_module"))
                .map(|_| offset),
            _ => None,
        })
        .ok_or_else(|| bad("no relocation of init_module in its struct module"))?;
    let module_layout = match file.section_by_name("__versions") {
        Some(v) => v
            .data()
            .map_err(|e| bad(&e.to_string()))?
            .chunks_exact(64)
            .find(|e| e[8..].split(|b| *b == 0).next() == Some(b"module_layout"))
            .map(|e| u64::from_le_bytes(e[..8].try_into().expect("8 bytes"))),
        None => None,
    };
    Ok(Template {
        vermagic: String::from_utf8_lossy(vermagic).into_owned(),
        module_size: data.len(),
        name_offset,
        init_offset,
        module_layout,
    })
}

/// `init_module`, as GNU `as` assembled it.
#[rustfmt::skip]
const CODE: [u32; 34] = [
    0xd503245f, //  0: bti   c                  (a NOP before ARMv8.5)
    0xa9be53f3, //  4: stp   x19, x20, [sp, #-32]!
    0xa9015bf5, //  8: stp   x21, x22, [sp, #16]
    0xd2800015, //  c: mov   x21, #0            answers other than NOT_SUPPORTED
    0xd2800014, // 10: mov   x20, #0            0: hvc, 1: smc
    0x100003b3, // 14: adr   x19, junk (0x88)
    0xd2800116, // 18: mov   x22, #8            entries
    0xa8c11e60, // 1c: ldp   x0, x7, [x19], #16
    0xd2800bc1, // 20: mov   x1, #0x5e          junk arguments
    0xd2812f42, // 24: mov   x2, #0x97a
    0xd28175a3, // 28: mov   x3, #0xbad
    0xb5000074, // 2c: cbnz  x20, 0x38
    0xd4000002, // 30: hvc   #0
    0x14000002, // 34: b     0x3c
    0xd4000003, // 38: smc   #0
    0xb100041f, // 3c: cmn   x0, #1             NOT_SUPPORTED is -1
    0x9a9506b5, // 40: cinc  x21, x21, ne
    0xf10006d6, // 44: subs  x22, x22, #1
    0x54fffea1, // 48: b.ne  0x1c
    0x91000694, // 4c: add   x20, x20, #1
    0xf1000a9f, // 50: cmp   x20, #2
    0x54fffe01, // 54: b.ne  0x14
    0xd5034fdf, // 58: msr   daifset, #0xf      every interrupt masked
    0xd2a10000, // 5c: mov   x0, #0x8000000     2^27 turns
    0xf1000400, // 60: subs  x0, x0, #1
    0x54ffffe1, // 64: b.ne  0x60
    0xd5034fff, // 68: msr   daifclr, #0xf
    0x12800240, // 6c: mov   w0, #-19           -ENODEV: all refused cleanly
    0xb4000055, // 70: cbz   x21, 0x78
    0x12800080, // 74: mov   w0, #-5            -EIO: some call answered otherwise
    0xa9415bf5, // 78: ldp   x21, x22, [sp, #16]
    0xa8c253f3, // 7c: ldp   x19, x20, [sp], #32
    0xd65f03c0, // 80: ret
    0xd503201f, // 84: nop                      (the table is 8-aligned)
];

/// The junk calls at 0x88: (x0, x7).
const JUNK: [(u64, u64); 8] = [
    (0x0, 0),
    (0xdead_beef, 0),
    (u64::MAX, 0x1234),
    (0xc600_0000, 0),            // a vendor-specific hypervisor call (KVM's range)
    (0x8400_0012, 0),            // PSCI SYSTEM_RESET2, not offered
    (0xc400_0008, 0),            // SYSTEM_OFF has no SMC64 form
    (0xdead_beef, -1i64 as u64), // seL4 Call: x0 fails its lookup
    (0xc600_0000, -7i64 as u64), // seL4 Recv: likewise
];

/// The module for the kernel `t` was read from.
pub fn build(t: &Template) -> Result<Vec<u8>> {
    let mut o = Object::new(BinaryFormat::Elf, Architecture::Aarch64, Endianness::Little);
    let mut text: Vec<u8> = CODE.iter().flat_map(|w| w.to_le_bytes()).collect();
    for (x0, x7) in JUNK {
        text.extend_from_slice(&x0.to_le_bytes());
        text.extend_from_slice(&x7.to_le_bytes());
    }
    let init = o.add_section(Vec::new(), b".init.text".to_vec(), SectionKind::Text);
    o.append_section_data(init, &text, 8);

    let this = o.add_section(
        Vec::new(),
        THIS_MODULE.as_bytes().to_vec(),
        SectionKind::Data,
    );
    let mut m = vec![0u8; t.module_size];
    let name = format!("{NAME}\0");
    if t.name_offset + name.len() > m.len() || t.init_offset as usize + 8 > m.len() {
        return Err(miette!("the template's struct module is too small"));
    }
    m[t.name_offset..t.name_offset + name.len()].copy_from_slice(name.as_bytes());
    o.append_section_data(this, &m, 64);

    let info = o.add_section(Vec::new(), b".modinfo".to_vec(), SectionKind::ReadOnlyData);
    let modinfo = format!("license=GPL\0vermagic={}\0name={NAME}\0", t.vermagic);
    o.append_section_data(info, modinfo.as_bytes(), 1);

    if let Some(crc) = t.module_layout {
        let v = o.add_section(
            Vec::new(),
            b"__versions".to_vec(),
            SectionKind::ReadOnlyData,
        );
        let mut entry = vec![0u8; 64];
        entry[..8].copy_from_slice(&crc.to_le_bytes());
        entry[8..8 + 13].copy_from_slice(b"module_layout");
        o.append_section_data(v, &entry, 8);
    }
    // arm64's module loader sizes these itself, but wants them there.
    for (s, kind) in [
        (".plt", SectionKind::Text),
        (".init.plt", SectionKind::ReadOnlyData),
        (".text.ftrace_trampoline", SectionKind::Text),
    ] {
        let id = o.add_section(Vec::new(), s.as_bytes().to_vec(), kind);
        o.append_section_data(id, &[0], 1);
    }

    let init_sym = o.add_symbol(Symbol {
        name: b"init_module".to_vec(),
        value: 0,
        size: (CODE.len() * 4) as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(init),
        flags: SymbolFlags::None,
    });
    o.add_symbol(Symbol {
        name: b"__this_module".to_vec(),
        value: 0,
        size: t.module_size as u64,
        kind: SymbolKind::Data,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(this),
        flags: SymbolFlags::None,
    });
    o.add_relocation(
        this,
        Relocation {
            offset: t.init_offset,
            symbol: init_sym,
            addend: 0,
            flags: RelocationFlags::Elf {
                r_type: object::elf::R_AARCH64_ABS64,
            },
        },
    )
    .map_err(|e| miette!("writing {NAME}.ko: {e}"))?;
    o.write().map_err(|e| miette!("writing {NAME}.ko: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_template() -> Template {
        Template {
            vermagic: "6.1.0-57-cloud-arm64 SMP mod_unload modversions aarch64".into(),
            module_size: 0x380,
            name_offset: 24,
            init_offset: 0x138,
            module_layout: Some(0x1234_5678),
        }
    }

    #[test]
    fn the_module_reads_back_as_its_own_template() {
        // What the tool writes is itself a valid template: the kernel's
        // loader looks at the same things.
        let ko = build(&sample_template()).unwrap();
        assert_eq!(template(&ko, NAME).unwrap(), sample_template());
        let f = object::File::parse(&*ko).unwrap();
        for s in [
            ".init.text",
            ".plt",
            ".init.plt",
            ".text.ftrace_trampoline",
            "__versions",
        ] {
            assert!(f.section_by_name(s).is_some(), "{s}");
        }
        let text = f.section_by_name(".init.text").unwrap();
        let data = text.data().unwrap();
        assert_eq!(data.len(), 0x88 + 16 * 8);
        assert_eq!(&data[0x88 + 16..0x88 + 24], &0xdead_beefu64.to_le_bytes());
    }

    #[test]
    fn the_adr_reaches_the_table() {
        let w = CODE[5];
        let imm = (((w >> 5) & 0x7ffff) << 2) | ((w >> 29) & 3);
        assert_eq!(0x14 + imm as usize, 0x88);
        assert_eq!(CODE.len() * 4, 0x88);
    }

    #[test]
    fn a_module_without_what_the_loader_needs_is_refused() {
        let mut t = sample_template();
        t.init_offset = 0x400;
        assert!(build(&t).is_err());
        assert!(template(b"not an elf", NAME).is_err());
    }
}
