//! # septa-zva: zeroing memory a cache block at a time
//!
//! Boot spends most of its instructions zeroing: the root task's 4 MiB heap
//! (its `.bss`, zeroed by the loader) and the root CNode (4 MiB at 2^17
//! slots, zeroed by the kernel), then every object the initializer retypes.
//! A byte or word loop costs about 0.6 instructions a byte; `DC ZVA` zeroes
//! a whole block (64 bytes on the Cortex-A53 QEMU models) in one.
//!
//! [`zero`] zeroes the unaligned head and tail with `write_bytes` and the
//! blocks between with `DC ZVA`. It owns nothing; callers vouch for the
//! memory. On the host (tests) and where `DCZID_EL0` forbids `DC ZVA`, it
//! falls back to `write_bytes`.
#![no_std]

/// How a range splits around whole blocks: `[start, head)` and
/// `[body_end, end)` are zeroed bytewise, `[head, body_end)` block by block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub head: usize,
    pub body_end: usize,
}

/// Splits `[start, start + len)` for blocks of `block` bytes (a power of
/// two), or `None` when no whole block fits.
pub fn split(start: usize, len: usize, block: usize) -> Option<Split> {
    if block == 0 || !block.is_power_of_two() {
        return None;
    }
    let end = start.checked_add(len)?;
    let head = start.checked_add(block - 1)? & !(block - 1);
    let body_end = end & !(block - 1);
    (head < body_end).then_some(Split { head, body_end })
}

/// The `DC ZVA` block size in bytes, or 0 when the instruction is not
/// permitted (`DCZID_EL0.DZP`).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn block_bytes() -> usize {
    let id: u64;
    // SAFETY: reading DCZID_EL0 has no side effects and is allowed at every
    // exception level.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) id, options(nomem, nostack)) };
    const DZP: u64 = 1 << 4;
    if id & DZP != 0 {
        0
    } else {
        // BS: log2 of the block size in 4-byte words.
        4 << (id & 0xf)
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn block_bytes() -> usize {
    0
}

/// Zeroes `len` bytes at `p`.
///
/// # Safety
///
/// `p..p + len` must be valid for writes, and, on the target, mapped as
/// Normal memory (`DC ZVA` faults on Device memory).
pub unsafe fn zero(p: *mut u8, len: usize) {
    let start = p as usize;
    let Some(s) = split(start, len, block_bytes()) else {
        // SAFETY: the caller's contract.
        unsafe { core::ptr::write_bytes(p, 0, len) };
        return;
    };
    // SAFETY: both pieces lie in `p..p + len` (`split` keeps
    // start <= head <= body_end <= end); the caller's contract covers them.
    unsafe {
        core::ptr::write_bytes(p, 0, s.head - start);
        core::ptr::write_bytes(s.body_end as *mut u8, 0, start + len - s.body_end);
    }
    zero_blocks(s.head, s.body_end);
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
fn zero_blocks(from: usize, to: usize) {
    let block = block_bytes();
    let mut a = from;
    // Sixteen blocks an iteration: each block costs its `DC ZVA` and the
    // add to the next address (the instruction takes no offset), and the
    // loop's test is spread over sixteen (2.2 instructions a block; 2.75
    // at four an iteration, which boot's 4 MiB root CNode alone paid
    // 36,000 instructions for).
    while a + 16 * block <= to {
        // SAFETY: sixteen block-aligned addresses inside the caller's range
        // (see `zero`), which is writable Normal memory.
        unsafe {
            core::arch::asm!(
                ".rept 16",
                "dc zva, {a}",
                "add {a}, {a}, {b}",
                ".endr",
                a = inout(reg) a,
                b = in(reg) block,
                options(nostack),
            )
        };
    }
    while a < to {
        // SAFETY: `a` is a block-aligned address inside the caller's range
        // (see `zero`), which is writable Normal memory.
        unsafe { core::arch::asm!("dc zva, {}", in(reg) a, options(nostack)) };
        a += block;
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
fn zero_blocks(from: usize, to: usize) {
    // Never reached: `block_bytes` is 0 off target, so `split` declines.
    // SAFETY: as in `zero`.
    unsafe { core::ptr::write_bytes(from as *mut u8, 0, to - from) };
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn the_split_covers_exactly_the_whole_blocks_inside() {
        for start in 0..200usize {
            for len in 0..300usize {
                let got = split(start, len, 64);
                let inside: std::vec::Vec<usize> = (start..start + len)
                    .filter(|a| a % 64 == 0 && a + 64 <= start + len)
                    .collect();
                match got {
                    None => assert!(inside.is_empty(), "{start} {len}"),
                    Some(s) => {
                        assert_eq!(s.head, inside[0]);
                        assert_eq!(s.body_end, inside[inside.len() - 1] + 64);
                    }
                }
            }
        }
    }

    #[test]
    fn no_split_without_a_usable_block_size() {
        assert_eq!(split(0, 4096, 0), None);
        assert_eq!(split(0, 4096, 48), None);
        assert_eq!(split(usize::MAX - 10, 5, 64), None);
    }

    #[test]
    fn zero_clears_exactly_the_range() {
        let mut buf = [0xffu8; 300];
        // SAFETY: the range lies inside `buf`.
        unsafe { zero(buf.as_mut_ptr().add(7), 250) };
        assert!(buf[..7].iter().all(|b| *b == 0xff));
        assert!(buf[7..257].iter().all(|b| *b == 0));
        assert!(buf[257..].iter().all(|b| *b == 0xff));
    }
}
