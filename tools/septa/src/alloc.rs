//! The allocation stage: will the system fit?
//!
//! The tool does not know exactly which untyped memory the kernel will hand
//! over, but it knows enough to bound it from below: the board's RAM, less
//! what the board profile reserves, less the span the loader fills (kernel,
//! root task image with the spec blob, device tree), less an allowance for
//! the objects the kernel makes for the root task at boot (seL4 takes them
//! from the top of the highest free region). It cuts that memory into
//! aligned blocks as the kernel does and runs the initializer's own
//! allocation plan (`septa_spec::place`) over it, so a system that cannot
//! fit fails here, at build time, naming the first object that does not.
//!
//! It also chooses the physical address of each region that a `setvar`
//! needs the address of but the description leaves open (Microkit's
//! `setvar region_paddr`): from the top of the free memory down, so far
//! from the kernel and the boot image, which the loader puts at the bottom.
//!
//! Input: the board, the boot footprint, the objects. Output: [`Fit`] (for
//! the report) or an error a person can act on.

use std::collections::HashMap;

use septa_abi::bootinfo::MAX_UNTYPED_CAPS;
use septa_abi::Config;
use septa_spec::place::{self, PlaceError, Request, Untyped};
use septa_spec::Spec;
use septa_sysdesc::{Board, SetValue, System};

/// What the loader puts in RAM at boot, as physical ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// The kernel's physical span (from its ELF).
    pub kernel: (u64, u64),
    /// Bytes of the root task image that follow it (initializer and blob).
    pub user_len: u64,
}

/// Room left for the device tree after the root task image (QEMU's is
/// 1 MiB).
pub const DTB_ALLOWANCE: u64 = 2 << 20;
/// The kernel's boot-time objects for the root task: its CNode of 2^17
/// slots (4 MiB), the extra BootInfo pages with a copy of the device tree,
/// its VSpace, TCB, IPC buffer and ASID pool; 8 MiB bounds them.
pub const ROOT_SERVER_ALLOWANCE: u64 = 8 << 20;

/// How the objects fit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fit {
    /// Free RAM the estimate starts from.
    pub free: u64,
    /// RAM the objects take (fixed RAM objects included).
    pub used: u64,
    /// The untyped blocks of the estimate.
    pub untypeds: Vec<Untyped>,
    /// Where each object landed in the simulation.
    pub paddrs: Vec<Option<u64>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    #[error(
        "the system does not fit in RAM: object `{name}` ({size}) finds no free block; \
         the objects need {need} in all and about {free} are free after the kernel and the boot image"
    )]
    NoSpace {
        name: String,
        size: String,
        need: String,
        free: String,
    },
    #[error("object `{name}` at {paddr:#x} lies in RAM the kernel or the boot image uses, or outside RAM")]
    NotFree { name: String, paddr: u64 },
    #[error("object `{name}` at {paddr:#x} overlaps another object with a fixed address")]
    Overlap { name: String, paddr: u64 },
    #[error("object `{name}` at {paddr:#x} is not aligned to its size")]
    Misaligned { name: String, paddr: u64 },
    #[error("region `{region}` ({size}) needs a physical address for a setvar, and no free RAM is left to give it one")]
    NoRoomForRegion { region: String, size: String },
}

/// Bytes as a person reads them.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in UNITS {
        if bytes >= size {
            return if bytes.is_multiple_of(size) {
                format!("{} {name}", bytes / size)
            } else {
                format!("{:.1} {name}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} bytes")
}

/// `ranges` less `[start, end)`.
fn remove(ranges: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for &(s, e) in ranges.iter() {
        if end <= s || e <= start {
            out.push((s, e));
            continue;
        }
        if s < start {
            out.push((s, start));
        }
        if end < e {
            out.push((end, e));
        }
    }
    *ranges = out;
}

/// The RAM the kernel will hand over as untyped, at least.
pub fn free_ram(board: &Board, boot: &Footprint) -> Vec<(u64, u64)> {
    let mut free = vec![(board.ram.base, board.ram.end())];
    for r in &board.reserved {
        remove(&mut free, r.range.base, r.range.end());
    }
    // The loader puts kernel, device tree and root task image together from
    // the kernel's physical base up. RAM below the kernel is not counted: a
    // real seL4 build knows RAM only from its own base up (its memory map
    // starts at its physBase).
    let boot_end = boot.kernel.1 + boot.user_len.next_multiple_of(4096) + DTB_ALLOWANCE;
    remove(&mut free, board.ram.base, boot_end);
    if let Some(&(s, e)) = free.last() {
        remove(&mut free, e.saturating_sub(ROOT_SERVER_ALLOWANCE).max(s), e);
    }
    free.retain(|(s, e)| s < e);
    free
}

/// Cuts free ranges into the aligned power-of-two blocks the kernel makes
/// untyped capabilities of (at most as many as BootInfo lists).
pub fn untypeds(free: &[(u64, u64)]) -> Vec<Untyped> {
    let mut out = Vec::new();
    for &(start, end) in free {
        let mut cur = start;
        while cur < end && out.len() < MAX_UNTYPED_CAPS {
            let align = if cur == 0 { 63 } else { cur.trailing_zeros() };
            let fit = 63 - (end - cur).leading_zeros();
            let bits = align.min(fit).min(septa_abi::MAX_UNTYPED_BITS);
            if bits < septa_abi::PAGE_BITS {
                break;
            }
            out.push(Untyped {
                paddr: cur,
                size_bits: bits as u8,
                device: false,
            });
            cur += 1 << bits;
        }
    }
    out
}

/// Physical addresses for the regions a `setvar` needs the address of but
/// the description leaves open, taken from the top of `free` down (and
/// removed from it); plus every region with a fixed address.
pub fn region_paddrs(
    sys: &System,
    free: &mut Vec<(u64, u64)>,
) -> Result<HashMap<String, u64>, AllocError> {
    let mut out: HashMap<String, u64> = sys
        .regions
        .iter()
        .filter_map(|r| r.phys.map(|p| (r.name.clone(), p)))
        .collect();
    // Fixed RAM regions are not free either.
    for r in &sys.regions {
        if let Some(p) = r.phys {
            remove(free, p, p + r.size);
        }
    }
    let mut wanted: Vec<&str> = sys
        .pds
        .iter()
        .flat_map(|p| p.setvars.iter())
        .filter_map(|s| match &s.value {
            SetValue::Paddr(r) => Some(r.as_str()),
            _ => None,
        })
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    for name in wanted {
        if out.contains_key(name) {
            continue;
        }
        let r = sys.region(name).expect("checked by the front end");
        let mut chosen = None;
        for &(s, e) in free.iter().rev() {
            let Some(top) = e.checked_sub(r.size) else {
                continue;
            };
            let at = top & !(r.page_size - 1);
            if at >= s {
                chosen = Some(at);
                break;
            }
        }
        let at = chosen.ok_or_else(|| AllocError::NoRoomForRegion {
            region: name.to_string(),
            size: human(r.size),
        })?;
        remove(free, at, at + r.size);
        out.insert(name.to_string(), at);
    }
    Ok(out)
}

/// Runs the initializer's allocation plan over the estimate.
pub fn check(
    spec: &Spec,
    board: &Board,
    free: &[(u64, u64)],
    config: Config,
) -> Result<Fit, AllocError> {
    let uts = untypeds(free);
    let in_ram = |p: u64| board.ram.contains(p, p + 1);
    // Device memory is always handed over (as device untyped) and costs no
    // RAM, so device objects stay out of the simulation; fixed RAM objects
    // must lie in the estimate. `ids` maps the simulation's indices back.
    let ids: Vec<usize> = spec
        .objects
        .iter()
        .enumerate()
        .filter(|(_, o)| o.paddr.is_none_or(in_ram))
        .map(|(i, _)| i)
        .collect();
    let requests: Vec<Request> = ids
        .iter()
        .map(|&i| {
            let o = &spec.objects[i];
            Request {
                size_bits: o.kind.size_bits(config),
                paddr: o.paddr,
            }
        })
        .collect();
    let free_total: u64 = uts.iter().map(|u| 1u64 << u.size_bits).sum();
    let need: u64 = requests.iter().map(|r| 1u64 << r.size_bits).sum();
    let name = |obj: u32| spec.objects[ids[obj as usize]].name.to_string();
    let steps = place::plan(&uts, &requests).map_err(|e| match e {
        PlaceError::NoSpace { obj, size_bits } => AllocError::NoSpace {
            name: name(obj),
            size: human(1 << size_bits),
            need: human(need),
            free: human(free_total),
        },
        PlaceError::NotCovered { obj, paddr } => AllocError::NotFree {
            name: name(obj),
            paddr,
        },
        PlaceError::Overlap { obj, paddr } => AllocError::Overlap {
            name: name(obj),
            paddr,
        },
        PlaceError::Misaligned { obj, paddr } => AllocError::Misaligned {
            name: name(obj),
            paddr,
        },
    })?;
    let mut paddrs: Vec<Option<u64>> = spec.objects.iter().map(|o| o.paddr).collect();
    for s in &steps {
        if let place::Step::Object { obj, paddr, .. } = *s {
            paddrs[ids[obj as usize]] = Some(paddr);
        }
    }
    Ok(Fit {
        free: free_total,
        used: need,
        untypeds: uts,
        paddrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_spec::{Object, ObjectKind};

    fn board() -> Board {
        Board::qemu_virt()
    }

    fn boot() -> Footprint {
        Footprint {
            kernel: (0x4000_0000, 0x4020_0000),
            user_len: 0x10_0000,
        }
    }

    #[test]
    fn free_ram_leaves_out_reserved_boot_and_root_server_memory() {
        let free = free_ram(&board(), &boot());
        let total: u64 = free.iter().map(|(s, e)| e - s).sum();
        // 2 GiB, less the 256 MiB the profile reserves for boot at the
        // start of RAM (the boot span lies inside it), less the root
        // server's objects.
        let boot_end = 0x4020_0000 + 0x10_0000 + DTB_ALLOWANCE;
        assert!(boot_end <= 0x5000_0000);
        let expect = (2u64 << 30) - (256 << 20) - ROOT_SERVER_ALLOWANCE;
        assert_eq!(total, expect);
        assert!(free.iter().all(|&(s, _)| s >= 0x5000_0000));
        // A kernel based higher (seL4's qemu-arm-virt build: 0x6000_0000)
        // leaves the RAM below it out.
        let high = free_ram(
            &board(),
            &Footprint {
                kernel: (0x6000_0000, 0x6025_0000),
                user_len: 0x10_0000,
            },
        );
        assert!(high[0].0 >= 0x6025_0000, "{high:x?}");
        let uts = untypeds(&free);
        assert_eq!(uts.iter().map(|u| 1u64 << u.size_bits).sum::<u64>(), total);
        assert!(uts.iter().all(|u| u.paddr % (1 << u.size_bits) == 0));
    }

    fn spec_of(objs: Vec<Object<'static>>) -> Spec<'static> {
        Spec {
            objects: objs,
            ..Default::default()
        }
    }

    fn frame(name: &'static str, bits: u8, paddr: Option<u64>) -> Object<'static> {
        Object {
            name,
            kind: ObjectKind::Frame { size_bits: bits },
            paddr,
            fill: vec![],
        }
    }

    #[test]
    fn a_system_too_large_fails_naming_an_object() {
        let free = vec![(0x4000_0000, 0x4080_0000)]; // 8 MiB
        let ok = spec_of(vec![frame("a", 21, None), frame("b", 21, None)]);
        let fit = check(&ok, &board(), &free, Config::Debug).unwrap();
        assert_eq!(fit.used, 4 << 20);
        let big = spec_of(vec![
            frame("a", 21, None),
            frame("b", 21, None),
            frame("c", 21, None),
            frame("d", 21, None),
            frame("e", 12, None),
        ]);
        let err = check(&big, &board(), &free, Config::Debug).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`e` (4 KiB)"), "{msg}");
        assert!(
            msg.contains("need 8.0 MiB") && msg.contains("8 MiB are free"),
            "{msg}"
        );
    }

    #[test]
    fn device_frames_cost_no_ram_and_fixed_ram_must_be_free() {
        let free = vec![(0x4000_0000, 0x4010_0000)];
        let uart = spec_of(vec![frame("uart", 12, Some(0x900_0000))]);
        assert_eq!(
            check(&uart, &board(), &free, Config::Debug).unwrap().used,
            0
        );
        let pinned = spec_of(vec![frame("pinned", 12, Some(0x4200_0000))]);
        assert!(matches!(
            check(&pinned, &board(), &free, Config::Debug),
            Err(AllocError::NotFree { .. })
        ));
    }

    #[test]
    fn setvar_regions_get_addresses_from_the_top() {
        let src = r#"
[system]
board = "qemu-virt"
[pd.a]
program = "a"
setvars = [{ symbol = "buf_paddr", region = "buf" }]
maps = [{ region = "buf", vaddr = 0x3000_0000 }]
[region.buf]
size = "64 KiB"
[region.uart]
device = "uart"
"#;
        let sys = septa_sysdesc::parse_str("t.toml", src, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system;
        let mut free = vec![(0x4000_0000, 0x5000_0000)];
        let p = region_paddrs(&sys, &mut free).unwrap();
        assert_eq!(p["buf"], 0x5000_0000 - 0x1_0000);
        assert_eq!(p["uart"], 0x900_0000);
        assert_eq!(free, vec![(0x4000_0000, 0x4fff_0000)]);
        let mut none = vec![(0x4000_0000, 0x4000_8000)];
        assert!(matches!(
            region_paddrs(&sys, &mut none),
            Err(AllocError::NoRoomForRegion { .. })
        ));
    }

    #[test]
    fn a_region_larger_than_ram_fails_the_build_by_name() {
        let src = r#"
[system]
board = "qemu-virt"
[pd.a]
program = "a"
maps = [{ region = "huge", vaddr = 0x4000_0000 }]
[region.huge]
size = "1800 MiB"
"#;
        let sys = septa_sysdesc::parse_str("t.toml", src, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system;
        let img = crate::elf::tests::sample();
        let progs = [crate::spec::Program { image: &img }];
        let built =
            crate::spec::build(&sys, &progs, &HashMap::new(), std::path::Path::new(".")).unwrap();
        let spec = built.spec();
        let free = free_ram(&sys.board, &boot());
        let msg = match check(&spec, &sys.board, &free, Config::Debug) {
            Ok(fit) => panic!("{} fit in {}", human(fit.used), human(fit.free)),
            Err(e) => e.to_string(),
        };
        assert!(
            msg.starts_with("the system does not fit in RAM: object `region.huge."),
            "{msg}"
        );
        assert!(msg.contains("(2 MiB)"), "large pages: {msg}");
        // Half the size fits.
        let small = src.replace("1800 MiB", "512 MiB");
        let sys = septa_sysdesc::parse_str("t.toml", &small, septa_sysdesc::Format::Toml)
            .unwrap()
            .system;
        let built =
            crate::spec::build(&sys, &progs, &HashMap::new(), std::path::Path::new(".")).unwrap();
        let fit = check(&built.spec(), &sys.board, &free, Config::Debug).unwrap();
        assert!(fit.used > 512 << 20 && fit.used < fit.free);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human(100), "100 bytes");
    }
}
