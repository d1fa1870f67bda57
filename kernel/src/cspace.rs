//! # CSpace addressing: from a capability address to a slot
//!
//! A capability address (CPtr) is a word read most-significant bit first.
//! Starting from a CNode cap, each level consumes the cap's guard (which
//! must match) and then `radix` bits that index a slot. If the slot holds
//! another CNode cap and bits remain, translation continues there;
//! otherwise it ends at that slot. The `depth` says how many bits of the
//! address to translate (all 64 for an invocation's cap, fewer for CNode
//! operations that name a slot holding a CNode cap itself).
//!
//! [`resolve_address_bits`] is seL4's `resolveAddressBits` with its exact
//! lookup failures; [`lookup_slot_for_cnode_op`] adds the checks and error
//! details that CNode and Untyped invocations report for their slot
//! arguments; [`lookup_slot`] and [`lookup_cap`] serve the system-call
//! layer, which resolves the invoked cap and the extra caps through the
//! thread's CSpace root.

use crate::cap::{Cap, RawCap};
use crate::cte::SlotRef;
use crate::error::{LookupFault, SyscallError};
use crate::object::tcb::{self, Tcb};
use septa_abi::WORD_BITS;

const fn mask(bits: u64) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// `x >> n`, 0 once every bit is shifted out (the depth is at most a word
/// on every path, but a wide shift must never panic).
const fn shr(x: u64, n: u64) -> u64 {
    if n >= 64 {
        0
    } else {
        x >> n
    }
}

/// A resolved address: the slot reached and how many address bits were
/// left untranslated (non-zero when a non-CNode cap ended the walk early).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub slot: SlotRef,
    pub bits_remaining: u64,
}

/// Translates the top `n_bits` bits of `cptr` starting at `node_cap`.
#[inline(never)]
pub fn resolve_address_bits(
    node_cap: &Cap,
    cptr: u64,
    n_bits: u64,
) -> Result<Resolved, LookupFault> {
    if !matches!(node_cap, Cap::CNode { .. }) {
        return Err(LookupFault::InvalidRoot);
    }
    resolve_raw(node_cap.encode(), cptr, n_bits)
}

/// [`resolve_address_bits`] from a stored root cap: the walk reads the
/// fields of each CNode cap straight from the slot, never building a
/// decoded [`Cap`] (the system-call paths look caps up this way).
#[inline]
pub fn resolve_raw(root: RawCap, cptr: u64, n_bits: u64) -> Result<Resolved, LookupFault> {
    let Some(mut node) = root.as_cnode() else {
        return Err(LookupFault::InvalidRoot);
    };
    let mut n_bits = n_bits;
    loop {
        let (paddr, radix, guard_size, guard) = node;
        let level_bits = radix + guard_size;
        if level_bits == 0 {
            // No CNode cap can have neither radix nor guard (Retype demands
            // radix >= 1); stop rather than loop should one appear.
            debug_assert!(false, "CNode cap resolves no bits");
            return Err(LookupFault::DepthMismatch {
                bits_left: n_bits,
                bits_found: 0,
            });
        }

        if guard_size > n_bits {
            return Err(LookupFault::GuardMismatch {
                bits_left: n_bits,
                guard_found: guard,
                bits_found: guard_size,
            });
        }
        let found = if guard_size == 0 {
            0
        } else {
            shr(cptr, n_bits - guard_size) & mask(guard_size)
        };
        if found != guard {
            return Err(LookupFault::GuardMismatch {
                bits_left: n_bits,
                guard_found: guard,
                bits_found: guard_size,
            });
        }

        if level_bits > n_bits {
            return Err(LookupFault::DepthMismatch {
                bits_left: n_bits,
                bits_found: level_bits,
            });
        }

        let index = shr(cptr, n_bits - level_bits) & mask(radix);
        let slot = SlotRef::nth(paddr, index);
        if n_bits == level_bits {
            return Ok(Resolved {
                slot,
                bits_remaining: 0,
            });
        }
        n_bits -= level_bits;
        match slot.raw_cap().as_cnode() {
            Some(n) => node = n,
            None => {
                return Ok(Resolved {
                    slot,
                    bits_remaining: n_bits,
                })
            }
        }
    }
}

/// Looks up the slot a CNode operation names by (root, index, depth)
/// (seL4's `lookupSlotForCNodeOp`): the root must be a CNode cap, the depth
/// 1..=64, and the address must be translated exactly to its depth.
/// `is_source` goes into the FailedLookup error.
#[inline(never)]
pub fn lookup_slot_for_cnode_op(
    is_source: bool,
    root: &Cap,
    cptr: u64,
    depth: u64,
) -> Result<SlotRef, SyscallError> {
    if !matches!(root, Cap::CNode { .. }) {
        return Err(SyscallError::FailedLookup {
            source: is_source,
            fault: LookupFault::InvalidRoot,
        });
    }
    if !(1..=WORD_BITS as u64).contains(&depth) {
        return Err(SyscallError::RangeError {
            min: 1,
            max: WORD_BITS as u64,
        });
    }
    let r =
        resolve_address_bits(root, cptr, depth).map_err(|fault| SyscallError::FailedLookup {
            source: is_source,
            fault,
        })?;
    if r.bits_remaining != 0 {
        return Err(SyscallError::FailedLookup {
            source: is_source,
            fault: LookupFault::DepthMismatch {
                bits_left: r.bits_remaining,
                bits_found: 0,
            },
        });
    }
    Ok(r.slot)
}

/// The source slot of a copy, move or rotate (failures flagged "source").
pub fn lookup_source_slot(root: &Cap, cptr: u64, depth: u64) -> Result<SlotRef, SyscallError> {
    lookup_slot_for_cnode_op(true, root, cptr, depth)
}

/// The destination slot of a CNode operation (failures flagged "not source").
pub fn lookup_target_slot(root: &Cap, cptr: u64, depth: u64) -> Result<SlotRef, SyscallError> {
    lookup_slot_for_cnode_op(false, root, cptr, depth)
}

/// The pivot slot of a rotate (reported like a source, as in seL4).
pub fn lookup_pivot_slot(root: &Cap, cptr: u64, depth: u64) -> Result<SlotRef, SyscallError> {
    lookup_slot_for_cnode_op(true, root, cptr, depth)
}

/// Resolves a full 64-bit capability address in a thread's CSpace, given
/// the thread's CSpace root cap (seL4's `lookupSlot`). A non-CNode cap met
/// before all bits are used ends the walk successfully at its slot.
pub fn lookup_slot(cspace_root: &Cap, cptr: u64) -> Result<SlotRef, LookupFault> {
    resolve_address_bits(cspace_root, cptr, WORD_BITS as u64).map(|r| r.slot)
}

/// The cap at a capability address (seL4's `lookupCap`).
pub fn lookup_cap(cspace_root: &Cap, cptr: u64) -> Result<Cap, LookupFault> {
    lookup_slot(cspace_root, cptr).map(|s| s.cap())
}

/// The stored cap and its slot at a full capability address in the CSpace
/// whose root is the stored cap `root` (seL4's `lookupCapAndSlot`, for the
/// system-call paths, which decode only what they need).
#[inline(always)]
pub fn lookup_raw(root: RawCap, cptr: u64) -> Result<(RawCap, SlotRef), LookupFault> {
    let slot = resolve_raw(root, cptr, WORD_BITS as u64)?.slot;
    Ok((slot.raw_cap(), slot))
}

/// The cap at a full 64-bit capability address, for the fast paths (seL4's
/// `lookup_fp`): the walk of [`resolve_address_bits`] over the stored
/// caps, reading only the fields of CNode caps on the way. Every address
/// that walk fails on (bad root, guard or depth mismatch) gives the null
/// cap here, and the caller leaves the work to the slow path, which then
/// reports the failure; where it succeeds, both find the same slot (a
/// property test checks).
///
/// The usual CSpaces take one or two levels: Microkit's (and the
/// initializer's) is a root CNode without guard whose slot 0 holds a
/// CNode whose guard and radix take the rest of the word. Those two
/// levels are walked inline, each in a few instructions without branches
/// on the field values; deeper CSpaces go on in [`lookup_fp_walk`].
#[inline(always)]
pub fn lookup_fp(root: RawCap, cptr: u64) -> RawCap {
    lookup_fp_slot(root, cptr).map_or(RawCap::NULL, SlotRef::raw_cap)
}

/// [`lookup_fp`]'s slot, if the walk succeeds.
#[inline(always)]
pub fn lookup_fp_slot(root: RawCap, cptr: u64) -> Option<SlotRef> {
    lookup_fp_last(root, cptr).0
}

/// Two look-ups in one CSpace for the fast paths (an endpoint and a reply
/// cap): [`lookup_fp`] of each. (The fast paths look up through
/// [`lookup_fp_pair_memo`]; the tests check the walk itself here.)
#[cfg(test)]
pub fn lookup_fp_pair(root: RawCap, a: u64, b: u64) -> (RawCap, RawCap) {
    let (a, b) = lookup_fp_pair_slots(root, a, b);
    let cap = |s: Option<SlotRef>| s.map_or(RawCap::NULL, SlotRef::raw_cap);
    (cap(a), cap(b))
}

/// [`lookup_fp_pair`]'s slots. Where the first went through the usual
/// two levels and `b` agrees with `a` above the last CNode's index bits,
/// `b` takes the same path to that CNode (the same first-level slot, the
/// same guards), so its slot is found from there without walking again.
#[inline(always)]
pub fn lookup_fp_pair_slots(root: RawCap, a: u64, b: u64) -> (Option<SlotRef>, Option<SlotRef>) {
    let (slot_a, last) = lookup_fp_last(root, a);
    let slot_b = match last {
        // radix < 64: the path to the last CNode took at least one bit.
        Some((paddr, radix)) if (a ^ b) >> radix == 0 => {
            let index = if radix == 0 {
                0
            } else {
                b & (u64::MAX >> (64 - radix))
            };
            Some(SlotRef::nth(paddr, index))
        }
        _ => lookup_fp_apart(root, b),
    };
    (slot_a, slot_b)
}

/// [`lookup_fp_slot`] out of line, for [`lookup_fp_pair_slots`]'s second
/// address where it takes a path of its own (not the usual case: one copy
/// of the walk is enough).
#[inline(never)]
fn lookup_fp_apart(root: RawCap, cptr: u64) -> Option<SlotRef> {
    lookup_fp_slot(root, cptr)
}

/// [`lookup_fp_slot`], and where it ended in the second of the usual two
/// levels (the level that took the rest of the word), that CNode's first
/// slot and radix.
#[inline(always)]
fn lookup_fp_last(root: RawCap, cptr: u64) -> (Option<SlotRef>, Option<(u64, u64)>) {
    const WORD: u64 = WORD_BITS as u64;
    let Some((paddr, radix, guard_size, guard)) = root.as_cnode() else {
        return (None, None);
    };
    let level = radix + guard_size;
    // Nothing to translate, or more than a word: depth failures.
    if level.wrapping_sub(1) >= WORD {
        return (None, None);
    }
    // Both fields are 6 bits wide, so every shift below is under 64. A
    // field of 0 gives 0: no guard bits (to match a guard of 0, as the
    // general walk demands), or slot 0 of a CNode with radix 0.
    if (cptr >> 1) >> (WORD - 1 - guard_size) != guard {
        return (None, None);
    }
    let index = ((cptr << guard_size) >> 1) >> (WORD - 1 - radix);
    let slot = SlotRef::nth(paddr, index);
    if level == WORD {
        return (Some(slot), None);
    }
    let Some((paddr, radix, guard_size, guard)) = slot.raw_cap().as_cnode() else {
        return (Some(slot), None);
    };
    // The second level, if it takes the rest of the word (level < 64).
    let rest = cptr << level;
    if level + radix + guard_size == WORD {
        if (rest >> 1) >> (WORD - 1 - guard_size) != guard {
            return (None, None);
        }
        let index = ((rest << guard_size) >> 1) >> (WORD - 1 - radix);
        return (Some(SlotRef::nth(paddr, index)), Some((paddr, radix)));
    }
    (
        lookup_fp_walk(paddr, radix, guard_size, guard, cptr, level),
        None,
    )
}

/// [`lookup_fp`] from its second level on, for CSpaces of other shapes:
/// the walk from the CNode with these fields, `done` bits of `cptr`
/// translated, to the slot it ends at, if it succeeds. Out of line (the
/// usual CSpaces never come here), its arguments and result in registers.
#[inline(never)]
fn lookup_fp_walk(
    paddr: u64,
    radix: u64,
    guard_size: u64,
    guard: u64,
    cptr: u64,
    mut done: u64,
) -> Option<SlotRef> {
    const WORD: u64 = WORD_BITS as u64;
    let mut node = (paddr, radix, guard_size, guard);
    loop {
        let (paddr, radix, guard_size, guard) = node;
        let level = radix + guard_size;
        // Nothing to translate, or more than is left: both depth failures.
        if level == 0 || level > WORD - done {
            return None;
        }
        // The untranslated bits, at the top of the word (`done` < 64 here).
        let rest = cptr << done;
        if guard_size != 0 && rest >> (WORD - guard_size) != guard {
            return None;
        }
        // guard_size < 64, since level <= 64 and a level with radix 0 and a
        // 64-bit guard would need a 7-bit guard size field.
        let index = if radix == 0 {
            0
        } else {
            (rest << guard_size) >> (WORD - radix)
        };
        let slot = SlotRef::nth(paddr, index);
        done += level;
        if done == WORD {
            return Some(slot);
        }
        match slot.raw_cap().as_cnode() {
            Some(n) => node = n,
            None => return Some(slot),
        }
    }
}

// --- the fast paths' memo ----------------------------------------------------

/// The count of changes to stored caps (see [`lookup_fp_memo`]): starts at
/// 1, so a memo of all zeros (a new TCB's) is never current.
struct CapChanges {
    count: core::cell::Cell<u64>,
}

crate::kernel_cells!(
    static CAP_CHANGES: CapChanges = CapChanges {
        count: core::cell::Cell::new(1),
    };
);

#[inline(always)]
fn cap_changes() -> u64 {
    CAP_CHANGES.with(|c| c.count.get())
}

/// Marks that a stored cap changed: every memo of a look-up is out of
/// date. Every write of a cap into a slot calls this (`SlotRef::set_cap`,
/// `write_boot_slot_raw`). Clearing memory needs no mark of its own: an
/// untyped is cleared only once no cap to anything in it is left (each
/// removal a write), and its own cap is written after each cleared chunk.
#[inline(always)]
pub fn caps_changed() {
    CAP_CHANGES.with(|c| c.count.set(c.count.get() + 1));
}

/// Words of a TCB's look-up memo: one address ...
const MEMO_ONE: u64 = 0;
/// ... and a pair of addresses (each entry the count of cap changes it was
/// made at, the address(es), the slot(s) found).
const MEMO_PAIR: u64 = 3;
const _: () = assert!(MEMO_PAIR + 5 <= crate::object::tcb::LOOKUP_MEMO_WORDS);

/// [`lookup_fp`] in the CSpace of thread `t`, remembered: the slot found
/// for the last address the thread looked up this way is kept in the TCB
/// with the count of cap changes at the time, and while no stored cap has
/// changed since, the same address finds the same slot without the walk.
///
/// That is exact, not a guess: the walk reads nothing but `cptr`, the cap
/// in the thread's CSpace root slot and caps in the CNodes on the way, and
/// every write of a cap anywhere (the root slot is one of the TCB's slots)
/// counts as a change ([`caps_changed`]). A new TCB's memo (zeros) never
/// matches, the count starting at 1; a deleted CNode had its cap removed
/// first. Only a successful walk is remembered, so the slow path still
/// finds and reports every failure.
#[inline(always)]
pub fn lookup_fp_memo(t: Tcb, cptr: u64) -> RawCap {
    if t.lookup_memo(MEMO_ONE) == cap_changes() && t.lookup_memo(MEMO_ONE + 1) == cptr {
        return SlotRef::new(t.lookup_memo(MEMO_ONE + 2)).raw_cap();
    }
    lookup_fp_remember(t, cptr)
}

/// [`lookup_fp_memo`] without a current memo: the walk, remembered if it
/// succeeds. Inline, although not the usual case: out of line, the cap it
/// returns met the memo's in a stack slot, and the hit paths of Call,
/// signal and Recv paid for the join (ppc-passive 689 against 677, for
/// 372 bytes of code). The pair's is out of line: inlining it too bought
/// 3 instructions for 276 bytes.
#[inline(always)]
fn lookup_fp_remember(t: Tcb, cptr: u64) -> RawCap {
    let Some(slot) = lookup_fp_slot(t.slot(tcb::CTABLE).raw_cap(), cptr) else {
        return RawCap::NULL;
    };
    t.set_lookup_memo(MEMO_ONE, cap_changes());
    t.set_lookup_memo(MEMO_ONE + 1, cptr);
    t.set_lookup_memo(MEMO_ONE + 2, slot.paddr());
    slot.raw_cap()
}

/// [`lookup_fp_pair`] in the CSpace of thread `t`, remembered as
/// [`lookup_fp_memo`] remembers one address (in an entry of its own: a
/// server's ReplyRecv looks up its endpoint and reply object, its calls to
/// others one endpoint).
#[inline(always)]
pub fn lookup_fp_pair_memo(t: Tcb, a: u64, b: u64) -> (RawCap, RawCap) {
    if t.lookup_memo(MEMO_PAIR) == cap_changes()
        && t.lookup_memo(MEMO_PAIR + 1) == a
        && t.lookup_memo(MEMO_PAIR + 2) == b
    {
        return (
            SlotRef::new(t.lookup_memo(MEMO_PAIR + 3)).raw_cap(),
            SlotRef::new(t.lookup_memo(MEMO_PAIR + 4)).raw_cap(),
        );
    }
    lookup_fp_pair_remember(t, a, b)
}

/// [`lookup_fp_pair_memo`] without a current memo (out of line, unlike
/// [`lookup_fp_remember`]); remembered only if both walks succeed.
#[inline(never)]
fn lookup_fp_pair_remember(t: Tcb, a: u64, b: u64) -> (RawCap, RawCap) {
    let (slot_a, slot_b) = lookup_fp_pair_slots(t.slot(tcb::CTABLE).raw_cap(), a, b);
    if let (Some(sa), Some(sb)) = (slot_a, slot_b) {
        t.set_lookup_memo(MEMO_PAIR, cap_changes());
        t.set_lookup_memo(MEMO_PAIR + 1, a);
        t.set_lookup_memo(MEMO_PAIR + 2, b);
        t.set_lookup_memo(MEMO_PAIR + 3, sa.paddr());
        t.set_lookup_memo(MEMO_PAIR + 4, sb.paddr());
    }
    let cap = |s: Option<SlotRef>| s.map_or(RawCap::NULL, SlotRef::raw_cap);
    (cap(slot_a), cap(slot_b))
}
