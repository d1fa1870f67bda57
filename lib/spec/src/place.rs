//! Where each object comes from: the one allocation algorithm, shared by
//! the tool (which runs it over its estimate of the free memory, so a system
//! that cannot fit fails at build time) and the initializer (which runs it
//! over the real untyped list and then performs the steps). Because both run
//! the same code, the build-time check and the boot-time allocation cannot
//! disagree about how memory is carved; they can only disagree about what
//! memory there is, and the tool's estimate of that is conservative.
//!
//! The algorithm, as capDL loaders do it:
//! 1. Objects with a fixed physical address, in address order: each comes
//!    from the untyped (device or RAM) that covers it. The untyped's
//!    watermark is advanced to the address by retyping "filler" untyped
//!    children of the largest aligned sizes that fit the gap; fillers of RAM
//!    go back to the free pool, so nothing is wasted.
//! 2. The rest of each RAM untyped that gave a fixed object is split the
//!    same way into aligned children, so every free block is a power of two
//!    at an aligned address.
//! 3. The other objects, largest first (ties by index): each goes to the
//!    free block with the least room left that still fits it ("best fit").
//!    Since sizes only shrink, each block fills without gaps.
//!
//! Device untypeds give only fixed-address objects: their memory is not
//! zeroed and only frames may be made from it.

use alloc::vec::Vec;

use crate::ObjId;

/// seL4's smallest untyped object (`seL4_MinUntypedBits`).
pub const MIN_UNTYPED_BITS: u8 = septa_abi::MIN_UNTYPED_BITS as u8;

/// An untyped capability the kernel hands over, as BootInfo describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Untyped {
    pub paddr: u64,
    pub size_bits: u8,
    pub device: bool,
}

impl Untyped {
    pub fn end(&self) -> u64 {
        self.paddr + (1u64 << self.size_bits)
    }
}

/// What the planner needs of an object: its size and fixed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub size_bits: u8,
    pub paddr: Option<u64>,
}

/// The untyped a step retypes: one of the boot untypeds (index into the
/// list given to [`plan`]) or a child made by an earlier step (numbered in
/// the order the `Child` steps appear).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    Boot(u32),
    Child(u32),
}

/// One `Untyped_Retype` of one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// An untyped child of 2^`size_bits` bytes at `paddr` (a filler or a
    /// split block).
    Child {
        from: From,
        size_bits: u8,
        paddr: u64,
    },
    /// Object `obj`, which lands at `paddr`.
    Object { from: From, obj: ObjId, paddr: u64 },
}

/// Why objects cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// The fixed address is not aligned to the object's size.
    Misaligned { obj: ObjId, paddr: u64 },
    /// No untyped covers the fixed address range.
    NotCovered { obj: ObjId, paddr: u64 },
    /// The fixed address range overlaps an object placed before it.
    Overlap { obj: ObjId, paddr: u64 },
    /// No free block is large enough.
    NoSpace { obj: ObjId, size_bits: u8 },
}

impl core::fmt::Display for PlaceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            PlaceError::Misaligned { obj, paddr } => {
                write!(
                    f,
                    "object {obj}: address {paddr:#x} is not aligned to its size"
                )
            }
            PlaceError::NotCovered { obj, paddr } => write!(
                f,
                "object {obj}: no untyped memory covers its address {paddr:#x}"
            ),
            PlaceError::Overlap { obj, paddr } => write!(
                f,
                "object {obj}: its address {paddr:#x} overlaps another fixed object"
            ),
            PlaceError::NoSpace { obj, size_bits } => write!(
                f,
                "object {obj}: no free untyped block of 2^{size_bits} bytes is left"
            ),
        }
    }
}

/// A free block during step 3.
#[derive(Clone, Copy, Debug)]
struct Block {
    from: From,
    base: u64,
    end: u64,
    watermark: u64,
}

const fn align_up(x: u64, size: u64) -> u64 {
    (x + size - 1) & !(size - 1)
}

/// Cuts `[start, end)` into the largest aligned power-of-two children,
/// appending the steps and, when `free` is given, the blocks.
fn split(
    from: From,
    start: u64,
    end: u64,
    steps: &mut Vec<Step>,
    children: &mut u32,
    mut free: Option<&mut Vec<Block>>,
) {
    let mut cur = start;
    while cur < end {
        let room = end - cur;
        // Largest power of two that `cur` is aligned to and that fits.
        let align_bits = if cur == 0 { 63 } else { cur.trailing_zeros() };
        let fit_bits = 63 - room.leading_zeros();
        let bits = align_bits.min(fit_bits).min(septa_abi::MAX_UNTYPED_BITS);
        if bits < u32::from(MIN_UNTYPED_BITS) {
            // A sliver below seL4's smallest untyped: it cannot be named.
            // Object sizes keep every address 16-byte aligned, so this only
            // happens at the very end of a range.
            break;
        }
        let size = 1u64 << bits;
        steps.push(Step::Child {
            from,
            size_bits: bits as u8,
            paddr: cur,
        });
        if let Some(free) = free.as_deref_mut() {
            free.push(Block {
                from: From::Child(*children),
                base: cur,
                end: cur + size,
                watermark: cur,
            });
        }
        *children += 1;
        cur += size;
    }
}

/// Plans the retype of every object in `objects` (indexed by `ObjId`) from
/// `untypeds`.
pub fn plan(untypeds: &[Untyped], objects: &[Request]) -> Result<Vec<Step>, PlaceError> {
    let mut steps = Vec::with_capacity(objects.len() + untypeds.len());
    let mut children = 0u32;
    let mut watermark: Vec<u64> = untypeds.iter().map(|u| u.paddr).collect();
    let mut free: Vec<Block> = Vec::new();

    // 1. Fixed addresses, lowest first.
    let mut fixed: Vec<(u64, ObjId, u8)> = objects
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.paddr.map(|p| (p, i as ObjId, r.size_bits)))
        .collect();
    fixed.sort_unstable();
    for &(paddr, obj, size_bits) in &fixed {
        let size = 1u64 << size_bits;
        if paddr & (size - 1) != 0 {
            return Err(PlaceError::Misaligned { obj, paddr });
        }
        let Some(u) = untypeds
            .iter()
            .position(|u| u.paddr <= paddr && paddr + size <= u.end())
        else {
            return Err(PlaceError::NotCovered { obj, paddr });
        };
        if paddr < watermark[u] {
            return Err(PlaceError::Overlap { obj, paddr });
        }
        let from = From::Boot(u as u32);
        let keep = (!untypeds[u].device).then_some(&mut free);
        split(from, watermark[u], paddr, &mut steps, &mut children, keep);
        steps.push(Step::Object { from, obj, paddr });
        watermark[u] = paddr + size;
    }

    // 2. The rest of every RAM untyped becomes free blocks.
    for (i, u) in untypeds.iter().enumerate() {
        if u.device {
            continue;
        }
        let from = From::Boot(i as u32);
        if watermark[i] == u.paddr {
            free.push(Block {
                from,
                base: u.paddr,
                end: u.end(),
                watermark: u.paddr,
            });
        } else {
            split(
                from,
                watermark[i],
                u.end(),
                &mut steps,
                &mut children,
                Some(&mut free),
            );
        }
    }

    // 3. Everything else, largest first, best fit.
    let mut rest: Vec<(u8, ObjId)> = objects
        .iter()
        .enumerate()
        .filter(|(_, r)| r.paddr.is_none())
        .map(|(i, r)| (r.size_bits, i as ObjId))
        .collect();
    rest.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (size_bits, obj) in rest {
        let size = 1u64 << size_bits;
        let mut best: Option<(usize, u64)> = None;
        for (i, b) in free.iter().enumerate() {
            let at = align_up(b.watermark, size);
            if at.checked_add(size).is_none_or(|e| e > b.end) {
                continue;
            }
            let left = b.end - b.watermark;
            let better = match best {
                None => true,
                Some((j, l)) => left < l || (left == l && b.base < free[j].base),
            };
            if better {
                best = Some((i, left));
            }
        }
        let Some((i, _)) = best else {
            return Err(PlaceError::NoSpace { obj, size_bits });
        };
        let b = &mut free[i];
        let paddr = align_up(b.watermark, size);
        steps.push(Step::Object {
            from: b.from,
            obj,
            paddr,
        });
        b.watermark = paddr + size;
    }
    Ok(steps)
}

/// Bytes of free RAM left in the blocks after `steps` (for reports): the
/// total of the RAM untypeds less the objects placed in RAM.
pub fn ram_left(untypeds: &[Untyped], objects: &[Request], steps: &[Step]) -> u64 {
    let total: u64 = untypeds
        .iter()
        .filter(|u| !u.device)
        .map(|u| 1u64 << u.size_bits)
        .sum();
    let in_ram = |p: u64| {
        untypeds
            .iter()
            .any(|u| !u.device && u.paddr <= p && p < u.end())
    };
    let used: u64 = steps
        .iter()
        .filter_map(|s| match *s {
            Step::Object { obj, paddr, .. } if in_ram(paddr) => {
                Some(1u64 << objects[obj as usize].size_bits)
            }
            _ => None,
        })
        .sum();
    total.saturating_sub(used)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::vec;

    fn ram(paddr: u64, size_bits: u8) -> Untyped {
        Untyped {
            paddr,
            size_bits,
            device: false,
        }
    }

    fn req(size_bits: u8) -> Request {
        Request {
            size_bits,
            paddr: None,
        }
    }

    fn at(size_bits: u8, paddr: u64) -> Request {
        Request {
            size_bits,
            paddr: Some(paddr),
        }
    }

    /// Replays the steps as the kernel would: every retype lies inside the
    /// untyped it names, at or above its watermark, aligned; returns each
    /// object's address.
    fn replay(untypeds: &[Untyped], objects: &[Request], steps: &[Step]) -> Vec<Option<u64>> {
        let mut uts: Vec<(u64, u64, u64)> = untypeds
            .iter()
            .map(|u| (u.paddr, u.end(), u.paddr))
            .collect();
        let boot = uts.len();
        let mut placed = vec![None; objects.len()];
        for s in steps {
            let (from, size, paddr) = match *s {
                Step::Child {
                    from,
                    size_bits,
                    paddr,
                } => (from, 1u64 << size_bits, paddr),
                Step::Object { from, obj, paddr } => {
                    assert!(placed[obj as usize].is_none(), "object {obj} placed twice");
                    placed[obj as usize] = Some(paddr);
                    (from, 1u64 << objects[obj as usize].size_bits, paddr)
                }
            };
            let idx = match from {
                From::Boot(i) => i as usize,
                From::Child(c) => boot + c as usize,
            };
            let (base, end, wm) = uts[idx];
            let expect = align_up(wm, size);
            assert_eq!(paddr, expect, "{s:?}: the kernel would place it elsewhere");
            assert!(
                base <= paddr && paddr + size <= end,
                "{s:?} outside its untyped"
            );
            uts[idx].2 = paddr + size;
            if let Step::Child { .. } = s {
                uts.push((paddr, paddr + size, paddr));
            }
        }
        placed
    }

    #[test]
    fn largest_first_best_fit_fills_small_blocks_first() {
        let uts = [ram(0x4000_0000, 20), ram(0x5000_0000, 13)];
        let objs = [req(12), req(13), req(12), req(11)];
        let steps = plan(&uts, &objs).unwrap();
        let placed = replay(&uts, &objs, &steps);
        // The 8 KiB object fills the 8 KiB block exactly; the rest go to
        // the 1 MiB block, largest first.
        assert_eq!(placed[1], Some(0x5000_0000));
        assert_eq!(placed[0], Some(0x4000_0000));
        assert_eq!(placed[2], Some(0x4000_1000));
        assert_eq!(placed[3], Some(0x4000_2000));
        assert_eq!(
            ram_left(&uts, &objs, &steps),
            (1 << 20) + (1 << 13) - (2 << 12) - (1 << 13) - (1 << 11)
        );
    }

    #[test]
    fn fixed_objects_get_fillers_and_the_rest_stays_usable() {
        let dev = Untyped {
            paddr: 0x900_0000,
            size_bits: 16,
            device: true,
        };
        let uts = [ram(0x4000_0000, 24), dev];
        // A RAM frame pinned in the middle, a device frame, and a 4 MiB
        // object that still fits beside the pinned frame.
        let objs = [at(12, 0x4080_0000), at(12, 0x900_3000), req(22), req(12)];
        let steps = plan(&uts, &objs).unwrap();
        let placed = replay(&uts, &objs, &steps);
        assert_eq!(placed[0], Some(0x4080_0000));
        assert_eq!(placed[1], Some(0x900_3000));
        let big = placed[2].unwrap();
        assert!(big + (1 << 22) <= 0x4080_0000 || big >= 0x4080_1000);
        // Fillers of device memory are not reused for ordinary objects.
        assert!(placed[3].unwrap() >= 0x4000_0000);
    }

    #[test]
    fn errors_name_the_object() {
        let uts = [ram(0x4000_0000, 16)];
        assert_eq!(
            plan(&uts, &[req(12), req(17)]),
            Err(PlaceError::NoSpace {
                obj: 1,
                size_bits: 17
            })
        );
        assert_eq!(
            plan(&uts, &[at(12, 0x4000_0800)]),
            Err(PlaceError::Misaligned {
                obj: 0,
                paddr: 0x4000_0800
            })
        );
        assert_eq!(
            plan(&uts, &[at(12, 0x5000_0000)]),
            Err(PlaceError::NotCovered {
                obj: 0,
                paddr: 0x5000_0000
            })
        );
        assert_eq!(
            plan(&uts, &[at(13, 0x4000_0000), at(12, 0x4000_1000)]),
            Err(PlaceError::Overlap {
                obj: 1,
                paddr: 0x4000_1000
            })
        );
    }

    #[test]
    fn random_systems_never_overlap() {
        // A small linear congruential generator: deterministic, no deps.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        let mut planned = 0;
        for _ in 0..200 {
            let uts = [
                ram(0x4000_0000, 22),
                ram(0x4040_0000, 21),
                ram(0x4060_0000, 14),
            ];
            let mut objs = vec![];
            for _ in 0..next(60) {
                let bits = [4, 5, 6, 11, 12, 13, 14, 21][next(8) as usize];
                if bits == 12 && next(5) == 0 {
                    let page = 0x4000_0000 + (next(0x600) << 12);
                    if !objs.iter().any(|r: &Request| r.paddr == Some(page)) {
                        objs.push(at(12, page));
                        continue;
                    }
                }
                objs.push(req(bits));
            }
            let Ok(steps) = plan(&uts, &objs) else {
                continue;
            };
            planned += 1;
            let placed = replay(&uts, &objs, &steps);
            let mut spans: Vec<(u64, u64)> = placed
                .iter()
                .zip(&objs)
                .map(|(p, r)| {
                    let p = p.expect("every object placed");
                    (p, p + (1 << r.size_bits))
                })
                .collect();
            spans.sort_unstable();
            for w in spans.windows(2) {
                assert!(w[0].1 <= w[1].0, "overlap {:x?}", w);
            }
        }
        assert!(
            planned > 50,
            "only {planned} of 200 systems could be planned"
        );
    }
}
