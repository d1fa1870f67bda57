//! Where everything goes: pure arithmetic over ELF program headers, so it is
//! tested on the host. A plan never overlaps the loader, the payload it reads
//! from, or itself; when it would, the loader stops with the reason.
#![cfg_attr(not(test), allow(dead_code))]

use core::fmt;

pub const PAGE: u64 = 4096;

pub const fn align_up(x: u64, a: u64) -> u64 {
    (x + a - 1) & !(a - 1)
}

/// How many bytes of a device tree are in use, from the first ten
/// big-endian words of its header (magic, totalsize, off_dt_struct,
/// off_dt_strings, off_mem_rsvmap, version, last_comp_version,
/// boot_cpuid_phys, size_dt_strings, size_dt_struct). QEMU's tree says
/// 1 MiB, most of it free space for a bootloader to edit in; copying only
/// what is used saves the loader half its work. The usual layout (header,
/// reservation map, structure, strings) is required; anything else, or a
/// version before 17 (no size_dt_struct), keeps the whole `totalsize`.
pub fn fdt_used_len(h: [u32; 10]) -> u64 {
    let [_, total, off_struct, off_strings, off_rsvmap, version, _, _, size_strings, size_struct] =
        h.map(u64::from);
    const HEADER_LEN: u64 = 40;
    let usual = version >= 17
        && off_rsvmap >= HEADER_LEN
        && off_rsvmap <= off_struct
        && off_struct + size_struct <= off_strings;
    if !usual {
        return total;
    }
    (off_strings + size_strings).min(total)
}

/// A loadable segment: where its bytes come from and where they go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical destination for the kernel; virtual address for the user image.
    pub addr: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub mem_size: u64,
    /// Whether the bytes past `file_size` are zeroed ([`Load::zero_fill`]).
    ///
    /// [`Load::zero_fill`]: septa_image::elf::Load::zero_fill
    pub zero_fill: bool,
}

/// Physical range, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end && o.start < self.end
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub kernel: Range,
    /// The user image, extra blob included: x0 and x1 of the boot contract.
    pub user: Range,
    /// Physical minus virtual for the user image: x2.
    pub pv_offset: u64,
    /// Physical address where the extra blob goes.
    pub extra: u64,
    pub dtb: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    NoSegments(&'static str),
    Overlap(&'static str, Range, &'static str, Range),
    OutsideRam(&'static str, Range),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoSegments(w) => write!(f, "the {w} ELF has no loadable segment"),
            PlanError::Overlap(a, ra, b, rb) => write!(
                f,
                "the {a} ({:#x}..{:#x}) would overlap the {b} ({:#x}..{:#x})",
                ra.start, ra.end, rb.start, rb.end
            ),
            PlanError::OutsideRam(w, r) => {
                write!(f, "the {w} ({:#x}..{:#x}) lies outside RAM", r.start, r.end)
            }
        }
    }
}

/// The page-aligned span the segments cover.
pub fn span(segs: &[Segment]) -> Option<Range> {
    let start = segs.iter().map(|s| s.addr).min()?;
    let end = segs.iter().map(|s| s.addr + s.mem_size).max()?;
    Some(Range {
        start: start & !(PAGE - 1),
        end: align_up(end, PAGE),
    })
}

/// Lays out the kernel, then the DTB, then the user image and extra blob.
///
/// The order is part of the seL4 boot contract: seL4 16.0.0 reserves the
/// kernel image, the DTB and the user image in that order and refuses to
/// boot ("reserved region in wrong order") unless they also lie at rising
/// physical addresses.
///
/// `busy` are ranges that must stay untouched while loading (the loader
/// itself and its payload).
pub fn make(
    kernel: &[Segment],
    user: &[Segment],
    extra_len: u64,
    dtb_len: u64,
    ram: Range,
    busy: &[(&'static str, Range)],
) -> Result<Plan, PlanError> {
    let k = span(kernel).ok_or(PlanError::NoSegments("kernel"))?;
    let u = span(user).ok_or(PlanError::NoSegments("root task"))?;
    let dtb = k.end;
    let dtb_r = Range {
        start: dtb,
        end: align_up(dtb + dtb_len, PAGE),
    };
    let user_start = dtb_r.end;
    let pv_offset = user_start.wrapping_sub(u.start);
    let extra = user_start + (u.end - u.start);
    let user_end = extra + align_up(extra_len, PAGE);
    let user_r = Range {
        start: user_start,
        end: user_end,
    };
    for (name, r) in [
        ("kernel", k),
        ("root task image", user_r),
        ("device tree", dtb_r),
    ] {
        if r.start < ram.start || r.end > ram.end {
            return Err(PlanError::OutsideRam(name, r));
        }
        for (bname, b) in busy {
            if r.overlaps(b) {
                return Err(PlanError::Overlap(name, r, bname, *b));
            }
        }
    }
    Ok(Plan {
        kernel: k,
        user: user_r,
        pv_offset,
        extra,
        dtb,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Range = Range {
        start: 0x4000_0000,
        end: 0xc000_0000,
    };

    fn seg(addr: u64, size: u64) -> Segment {
        Segment {
            addr,
            file_offset: 0,
            file_size: size,
            mem_size: size,
            zero_fill: true,
        }
    }

    #[test]
    fn only_the_used_part_of_a_device_tree_is_copied() {
        // The header QEMU 7.2 writes for `-machine virt,virtualization=on
        // -cpu cortex-a53 -m 2G` (dumpdtb): 1 MiB in total, 7.3 KiB used.
        let qemu = [
            0xd00d_feed,
            0x10_0000,
            0x40,
            0x1bc8,
            0x30,
            17,
            16,
            0,
            0x1c6,
            0x1b88,
        ];
        assert_eq!(fdt_used_len(qemu), 0x1bc8 + 0x1c6);
        // Strings before the structure, an old version, or sizes past the
        // total: the whole tree.
        let mut odd = qemu;
        odd[2] = 0x2000;
        assert_eq!(fdt_used_len(odd), 0x10_0000);
        let mut old = qemu;
        old[5] = 16;
        assert_eq!(fdt_used_len(old), 0x10_0000);
        let mut small = qemu;
        small[1] = 0x1000;
        assert_eq!(fdt_used_len(small), 0x1000);
    }

    #[test]
    fn dtb_follows_kernel_and_user_image_follows_dtb() {
        let p = make(
            &[seg(0x4000_0000, 0x2_1000)],
            &[seg(0x20_0000, 0x1800), seg(0x20_2000, 0x100)],
            0x1234,
            0x100,
            RAM,
            &[(
                "loader",
                Range {
                    start: 0x7000_0000,
                    end: 0x7100_0000,
                },
            )],
        )
        .unwrap();
        assert_eq!(
            p.kernel,
            Range {
                start: 0x4000_0000,
                end: 0x4002_1000
            }
        );
        assert_eq!(p.dtb, p.kernel.end);
        assert_eq!(p.user.start, 0x4002_2000, "the DTB's page lies between");
        assert_eq!(p.pv_offset, 0x4002_2000 - 0x20_0000);
        assert_eq!(p.extra, 0x4002_2000 + 0x3000);
        assert_eq!(p.user.end, p.extra + 0x2000);
    }

    #[test]
    fn without_a_dtb_the_user_image_follows_the_kernel() {
        let p = make(
            &[seg(0x6000_0000, 0x1000)],
            &[seg(0x40_0000, 0x1000)],
            0,
            0,
            RAM,
            &[],
        )
        .unwrap();
        assert_eq!(p.user.start, p.kernel.end);
        assert!(p.kernel.end <= p.dtb && p.dtb <= p.user.start);
    }

    #[test]
    fn refuses_overlap_with_loader_and_ram_overflow() {
        let busy = [(
            "loader",
            Range {
                start: 0x4010_0000,
                end: 0x4020_0000,
            },
        )];
        let e = make(
            &[seg(0x4000_0000, 0x20_0000)],
            &[seg(0, 0x1000)],
            0,
            0,
            RAM,
            &busy,
        );
        assert!(matches!(
            e,
            Err(PlanError::Overlap("kernel", _, "loader", _))
        ));
        let e = make(
            &[seg(0xbfff_f000, 0x2000)],
            &[seg(0, 0x1000)],
            0,
            0,
            RAM,
            &[],
        );
        assert!(matches!(e, Err(PlanError::OutsideRam("kernel", _))));
        assert_eq!(
            make(&[], &[seg(0, 1)], 0, 0, RAM, &[]),
            Err(PlanError::NoSegments("kernel"))
        );
    }
}
