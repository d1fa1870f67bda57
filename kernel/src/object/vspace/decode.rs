//! # The invocations of Frame, PageTable, VSpace, ASIDControl and ASIDPool
//! caps
//!
//! Checks run in the order of seL4 16.0.0's `decodeARMMMUInvocation` (with
//! hypervisor support), so the first failing check decides the error a
//! caller sees. Arguments (interfaces `seL4_ARM_*` in seL4's
//! `object-api-arch.xml` and `object-api-sel4-arch.xml`; caps are extra
//! caps, words are message registers):
//!
//! | invocation | MRs | extra caps |
//! |---|---|---|
//! | Page Map | vaddr, rights, attributes | vspace |
//! | Page Unmap, GetAddress | | |
//! | Page Clean/Invalidate/CleanInvalidate_Data, Unify_Instruction | start offset, end offset | |
//! | PageTable Map | vaddr, attributes | vspace |
//! | PageTable Unmap | | |
//! | VSpace Clean/Invalidate/CleanInvalidate_Data, Unify_Instruction | start, end | |
//! | ASIDControl MakePool | index, depth | untyped, root CNode |
//! | ASIDPool Assign | | vspace |
//!
//! Page tables map at level 1 or 2, wherever the walk for `vaddr` first
//! finds no table (seL4's `lookupPTSlot`); frames need the walk to end at
//! exactly their level (4 KiB at 3, 2 MiB at 2, 1 GiB at 1).

use super::{
    find_vspace_for_asid, flush_asid_page, read_entry, unmap_frame, unmap_page_table, write_entry,
    write_pte, AsidEntry, ASIDS_PER_POOL, ASID_TABLE,
};
use crate::cap::{Cap, FrameSize, Mapping, VmRights};
use crate::cspace::lookup_target_slot;
use crate::cte::{cte_insert, ensure_empty_slot, ensure_no_children, is_final_capability, SlotRef};
use crate::error::{Exception, LookupFault, SyscallError};
use crate::invocation::{Invocation, ReplyWords};
use crate::machine;
use crate::memory;
use crate::pagetable::{self, Attrs, Pte};
use septa_abi::{
    vm_attributes, CapRights, Label, ASID_POOL_INDEX_BITS, ASID_POOL_SIZE_BITS, PAGE_BITS,
    PAGE_TABLE_SIZE_BITS, USER_TOP,
};

/// The top of the physical range seL4's hyp kernel window covers
/// (`PADDR_TOP` = 2^39 - 2^30): Page cache operations beyond it are
/// refused. Septa's window may be smaller; both bounds apply.
const HYP_PADDR_TOP: u64 = (1 << 39) - (1 << 30);

type Result<T = ()> = core::result::Result<T, Exception>;

fn err<T>(e: SyscallError) -> Result<T> {
    Err(Exception::Syscall(e))
}

/// The FailedLookup error of an ASID that names no VSpace: seL4's
/// `findVSpaceForASID` leaves an InvalidRoot lookup fault behind.
const NO_VSPACE_FOR_ASID: SyscallError = SyscallError::FailedLookup {
    source: false,
    fault: LookupFault::InvalidRoot,
};

const fn mask(bits: u32) -> u64 {
    (1u64 << bits) - 1
}

/// Decodes and performs an invocation of the Frame, PageTable, VSpace,
/// ASIDControl or ASIDPool cap `cap` held in `slot`. Page GetAddress puts
/// its result (the frame's physical address) in `reply`; every other
/// invocation replies with nothing.
pub fn decode_invocation(
    inv: &Invocation,
    cap: &Cap,
    slot: SlotRef,
    reply: &mut ReplyWords,
) -> Result {
    let label = Label::from_u64(inv.label);
    // The fields are taken out here, once: the decoders below need no
    // second match on the cap (with a panic for the other kinds).
    match *cap {
        Cap::Frame {
            paddr,
            size,
            rights,
            is_device,
            mapped,
        } => {
            let frame = Frame {
                paddr,
                size,
                rights,
                is_device,
                mapped,
            };
            decode_frame(inv, label, frame, slot, reply)
        }
        Cap::PageTable { paddr, mapped } => decode_page_table(inv, label, paddr, mapped, slot),
        Cap::VSpace { .. } => decode_vspace(inv, label, cap),
        Cap::AsidControl => decode_asid_control(inv, label),
        Cap::AsidPool { paddr, asid_base } => decode_asid_pool(inv, label, paddr, asid_base),
        _ => {
            debug_assert!(false, "vspace::decode_invocation on {cap:?}");
            err(SyscallError::IllegalOperation)
        }
    }
}

/// The root and ASID of a VSpace cap that has an ASID (seL4's
/// `isValidNativeRoot`).
fn native_root(cap: &Cap) -> Option<(u64, u16)> {
    match *cap {
        Cap::VSpace {
            paddr,
            mapped_asid: Some(asid),
        } => Some((paddr, asid)),
        _ => None,
    }
}

/// Checks that a VSpace cap's ASID still names its root; `cap_index` is
/// the cap's number for InvalidCapability.
fn checked_root(cap: &Cap, cap_index: u64) -> Result<(u64, u16)> {
    let Some((root, asid)) = native_root(cap) else {
        return err(SyscallError::InvalidCapability { index: cap_index });
    };
    match find_vspace_for_asid(asid) {
        None => err(NO_VSPACE_FOR_ASID),
        Some(found) if found != root => err(SyscallError::InvalidCapability { index: cap_index }),
        Some(_) => Ok((root, asid)),
    }
}

/// The cache operation a Page or VSpace flush label asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CacheOp {
    Clean,
    Invalidate,
    CleanInvalidate,
    Unify,
}

impl CacheOp {
    fn perform(self, paddr: u64, len: u64) {
        match self {
            CacheOp::Clean => machine::clean_data(paddr, len),
            CacheOp::Invalidate => machine::invalidate_data(paddr, len),
            CacheOp::CleanInvalidate => machine::clean_invalidate_data(paddr, len),
            CacheOp::Unify => machine::unify_instruction(paddr, len),
        }
    }
}

/// Whether the kernel may maintain `[paddr, paddr + len)` by address: it
/// must lie in seL4's hyp window and in the window this kernel maps.
fn maintainable(paddr: u64, len: u64) -> bool {
    paddr
        .checked_add(len)
        .is_some_and(|end| end <= HYP_PADDR_TOP)
        && memory::in_window(paddr, len)
}

/// The leaf entry for a frame mapping with seL4's stage-2 attributes:
/// access from the (masked) VM rights, memory type from the Cacheable
/// attribute, execute-never from ExecuteNever. Device frames are mapped as
/// the attributes say, as in seL4.
fn leaf(level: pagetable::Level, paddr: u64, rights: VmRights, attributes: u64) -> Pte {
    Pte::leaf(
        level,
        paddr,
        Attrs {
            read: rights != VmRights::KernelOnly,
            write: rights == VmRights::ReadWrite,
            execute: attributes & vm_attributes::EXECUTE_NEVER == 0,
            cacheable: attributes & vm_attributes::PAGE_CACHEABLE != 0,
        },
    )
}

// ---------------------------------------------------------------------------
// Frames

/// The fields of the invoked Frame cap.
#[derive(Clone, Copy)]
struct Frame {
    paddr: u64,
    size: FrameSize,
    rights: VmRights,
    is_device: bool,
    mapped: Option<Mapping>,
}

impl Frame {
    /// The cap with `mapped` as its mapping.
    fn cap(self, mapped: Option<Mapping>) -> Cap {
        Cap::Frame {
            paddr: self.paddr,
            size: self.size,
            rights: self.rights,
            is_device: self.is_device,
            mapped,
        }
    }
}

fn decode_frame(
    inv: &Invocation,
    label: Option<Label>,
    frame: Frame,
    slot: SlotRef,
    reply: &mut ReplyWords,
) -> Result {
    match label {
        Some(Label::ArmPageMap) => frame_map(inv, frame, slot),
        Some(Label::ArmPageUnmap) => {
            frame_unmap(frame, slot);
            Ok(())
        }
        Some(Label::ArmPageCleanData) => frame_flush(inv, frame, CacheOp::Clean),
        Some(Label::ArmPageInvalidateData) => frame_flush(inv, frame, CacheOp::Invalidate),
        Some(Label::ArmPageCleanInvalidateData) => {
            frame_flush(inv, frame, CacheOp::CleanInvalidate)
        }
        Some(Label::ArmPageUnifyInstruction) => frame_flush(inv, frame, CacheOp::Unify),
        Some(Label::ArmPageGetAddress) => {
            reply.push(frame.paddr);
            Ok(())
        }
        _ => err(SyscallError::IllegalOperation),
    }
}

/// Page Map: maps the frame at `vaddr` in a VSpace, or remaps it (new
/// rights and attributes) where it already is. A frame cap holds one
/// mapping: a mapped cap may only be mapped again at the same VSpace and
/// address.
fn frame_map(inv: &Invocation, frame: Frame, slot: SlotRef) -> Result {
    let Frame {
        paddr,
        size,
        rights,
        mapped,
        ..
    } = frame;
    let Some(vspace_slot) = inv.extra_cap(0).filter(|_| inv.length() >= 3) else {
        return err(SyscallError::TruncatedMessage);
    };
    let vaddr = inv.arg(0);
    let vm_rights = rights.mask(CapRights(inv.arg(1)));
    let attributes = inv.arg(2);
    let size_bits = size.size_bits();

    let (root, asid) = checked_root(&vspace_slot.cap(), 1)?;
    if vaddr & mask(size_bits) != 0 {
        return err(SyscallError::AlignmentError);
    }
    match mapped {
        Some(m) if m.asid != asid => return err(SyscallError::InvalidCapability { index: 1 }),
        Some(m) if m.vaddr != vaddr => return err(SyscallError::InvalidArgument { index: 0 }),
        Some(_) => {}
        None => {
            if vaddr.saturating_add(mask(size_bits)) > USER_TOP {
                return err(SyscallError::InvalidArgument { index: 0 });
            }
        }
    }
    let (level, entry, bits_left) = pagetable::lookup_slot(root, vaddr);
    if bits_left != size_bits {
        return err(SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::MissingCapability {
                bits_left: bits_left as u64,
            },
        });
    }

    // Whatever the slot held before (an older mapping of this frame, or of
    // another one, as seL4 allows) may be cached in the TLB.
    let replaced = pagetable::read(entry).is_valid();
    slot.set_cap(&frame.cap(Some(Mapping { asid, vaddr })));
    write_pte(entry, leaf(level, paddr, vm_rights, attributes));
    if replaced {
        flush_asid_page(asid, vaddr);
    }
    Ok(())
}

/// Page Unmap: removes the cap's mapping, if it has one and it is still
/// there, and forgets it in the cap.
fn frame_unmap(frame: Frame, slot: SlotRef) {
    if let Some(m) = frame.mapped {
        unmap_frame(frame.paddr, frame.size, m);
    }
    slot.set_cap(&frame.cap(None));
}

/// Page Clean_Data and friends: the range is given as offsets inside the
/// frame, which must be mapped; maintenance is done by physical address
/// through the kernel window, as seL4's hyp kernel does.
#[inline(never)]
fn frame_flush(inv: &Invocation, frame: Frame, op: CacheOp) -> Result {
    let Frame {
        paddr,
        size,
        mapped,
        ..
    } = frame;
    if inv.length() < 2 {
        return err(SyscallError::TruncatedMessage);
    }
    let Some(m) = mapped else {
        return err(SyscallError::IllegalOperation);
    };
    if find_vspace_for_asid(m.asid).is_none() {
        return err(NO_VSPACE_FOR_ASID);
    }
    let (start, end) = (inv.arg(0), inv.arg(1));
    if end <= start {
        return err(SyscallError::InvalidArgument { index: 1 });
    }
    let page_size = 1u64 << size.size_bits();
    if start >= page_size || end > page_size {
        return err(SyscallError::InvalidArgument { index: 0 });
    }
    let pstart = paddr + start;
    let len = end - start;
    if !maintainable(pstart, len) {
        return err(SyscallError::IllegalOperation);
    }
    // seL4 passes the range on as an inclusive end and so skips a range of
    // one byte; Septa maintains exactly the bytes asked for.
    op.perform(pstart, len);
    Ok(())
}

// ---------------------------------------------------------------------------
// Page tables

fn decode_page_table(
    inv: &Invocation,
    label: Option<Label>,
    paddr: u64,
    mapped: Option<Mapping>,
    slot: SlotRef,
) -> Result {
    match label {
        Some(Label::ArmPageTableUnmap) => {
            if !is_final_capability(slot) {
                return err(SyscallError::RevokeFirst);
            }
            if let Some(m) = mapped {
                unmap_page_table(paddr, m);
                // What was mapped through the table goes with it, so that
                // it is empty when mapped again (seL4's `clearMemory_PT`).
                memory::zero(paddr, 1 << PAGE_TABLE_SIZE_BITS);
            }
            slot.set_cap(&Cap::PageTable {
                paddr,
                mapped: None,
            });
            Ok(())
        }
        Some(Label::ArmPageTableMap) => page_table_map(inv, paddr, mapped, slot),
        _ => err(SyscallError::IllegalOperation),
    }
}

/// PageTable Map: links the table into a VSpace at the first level where
/// the walk for `vaddr` finds no table; refused when the walk reaches the
/// last level (both tables exist) or finds a mapping in the way.
fn page_table_map(inv: &Invocation, table: u64, mapped: Option<Mapping>, slot: SlotRef) -> Result {
    let Some(vspace_slot) = inv.extra_cap(0).filter(|_| inv.length() >= 2) else {
        return err(SyscallError::TruncatedMessage);
    };
    if mapped.is_some() {
        return err(SyscallError::InvalidCapability { index: 0 });
    }
    let vaddr = inv.arg(0);
    let vspace_cap = vspace_slot.cap();
    if native_root(&vspace_cap).is_none() {
        return err(SyscallError::InvalidCapability { index: 1 });
    }
    if vaddr > USER_TOP {
        return err(SyscallError::InvalidArgument { index: 0 });
    }
    let (root, asid) = checked_root(&vspace_cap, 1)?;
    let (_, entry, bits_left) = pagetable::lookup_slot(root, vaddr);
    if bits_left == PAGE_BITS || pagetable::read(entry).is_valid() {
        return err(SyscallError::DeleteFirst);
    }
    slot.set_cap(&Cap::PageTable {
        paddr: table,
        mapped: Some(Mapping {
            asid,
            vaddr: vaddr & !mask(bits_left),
        }),
    });
    // The entry was invalid, so no TLB entry can exist for it.
    write_pte(entry, Pte::table(table));
    Ok(())
}

// ---------------------------------------------------------------------------
// VSpaces

fn decode_vspace(inv: &Invocation, label: Option<Label>, cap: &Cap) -> Result {
    let op = match label {
        Some(Label::ArmVSpaceCleanData) => CacheOp::Clean,
        Some(Label::ArmVSpaceInvalidateData) => CacheOp::Invalidate,
        Some(Label::ArmVSpaceCleanInvalidateData) => CacheOp::CleanInvalidate,
        Some(Label::ArmVSpaceUnifyInstruction) => CacheOp::Unify,
        _ => return err(SyscallError::IllegalOperation),
    };
    if inv.length() < 2 {
        return err(SyscallError::TruncatedMessage);
    }
    let (start, end) = (inv.arg(0), inv.arg(1));
    if end <= start {
        return err(SyscallError::InvalidArgument { index: 1 });
    }
    if end > USER_TOP {
        return err(SyscallError::IllegalOperation);
    }
    let (root, _) = checked_root(cap, 0)?;
    let (level, entry, bits) = pagetable::lookup_slot(root, start);
    let pte = pagetable::read(entry);
    if !pte.is_page(level) {
        // Nothing is mapped there, so nothing of this address space can
        // be in the cache: success, as in seL4.
        return Ok(());
    }
    let page_mask = mask(bits);
    if start & !page_mask != (end - 1) & !page_mask {
        return err(SyscallError::RangeError {
            min: start,
            max: (start & !page_mask) + page_mask,
        });
    }
    let pstart = pte.addr() + (start & page_mask);
    let len = end - start;
    // seL4 does not check the window here (its window covers what frames
    // can be); a frame beyond Septa's window is not maintained by address.
    if maintainable(pstart, len) {
        op.perform(pstart, len);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// ASID control and pools

/// ASIDControl MakePool: turns a 4 KiB untyped with no children into an
/// ASID pool for the first free range of ASIDs. The untyped is used up
/// whole (its watermark goes to the end) and the pool cap becomes its
/// child.
fn decode_asid_control(inv: &Invocation, label: Option<Label>) -> Result {
    if label != Some(Label::ArmAsidControlMakePool) {
        return err(SyscallError::IllegalOperation);
    }
    let (Some(parent), Some(root_slot)) = (inv.extra_cap(0), inv.extra_cap(1)) else {
        return err(SyscallError::TruncatedMessage);
    };
    if inv.length() < 2 {
        return err(SyscallError::TruncatedMessage);
    }
    let (index, depth) = (inv.arg(0), inv.arg(1));
    let untyped = parent.cap();
    let root = root_slot.cap();

    let Some(pool_index) = ASID_TABLE.with(|t| t.iter().position(|p| p.get() == 0)) else {
        return err(SyscallError::DeleteFirst);
    };
    let asid_base = (pool_index << ASID_POOL_INDEX_BITS) as u16;

    let Cap::Untyped {
        paddr,
        size_bits,
        is_device: false,
        ..
    } = untyped
    else {
        return err(SyscallError::InvalidCapability { index: 1 });
    };
    if size_bits as u32 != ASID_POOL_SIZE_BITS {
        return err(SyscallError::InvalidCapability { index: 1 });
    }
    ensure_no_children(parent)?;
    let dest = lookup_target_slot(&root, index, depth)?;
    ensure_empty_slot(dest)?;

    parent.set_cap(&Cap::Untyped {
        paddr,
        size_bits,
        free_index: 1 << size_bits,
        is_device: false,
    });
    memory::zero(paddr, 1 << ASID_POOL_SIZE_BITS);
    cte_insert(&Cap::AsidPool { paddr, asid_base }, parent, dest);
    ASID_TABLE.with(|t| t[pool_index].set(paddr));
    Ok(())
}

/// ASIDPool Assign: gives the first free ASID of the pool to a VSpace that
/// has none yet (ASID 0 is never given out).
fn decode_asid_pool(inv: &Invocation, label: Option<Label>, pool: u64, asid_base: u16) -> Result {
    if label != Some(Label::ArmAsidPoolAssign) {
        return err(SyscallError::IllegalOperation);
    }
    let Some(vspace_slot) = inv.extra_cap(0) else {
        return err(SyscallError::TruncatedMessage);
    };
    let Cap::VSpace {
        paddr: vspace,
        mapped_asid: None,
    } = vspace_slot.cap()
    else {
        return err(SyscallError::InvalidCapability { index: 1 });
    };
    let installed = ASID_TABLE.with(|t| t[asid_base as usize >> ASID_POOL_INDEX_BITS].get());
    if installed == 0 {
        return err(NO_VSPACE_FOR_ASID);
    }
    if installed != pool {
        return err(SyscallError::InvalidCapability { index: 0 });
    }
    let free = (0..ASIDS_PER_POOL as u16)
        .map(|i| asid_base + i)
        .find(|&asid| asid != 0 && read_entry(pool, asid).is_none());
    let Some(asid) = free else {
        return err(SyscallError::DeleteFirst);
    };
    write_entry(pool, asid, Some(AsidEntry { vspace, vmid: None }));
    vspace_slot.set_cap(&Cap::VSpace {
        paddr: vspace,
        mapped_asid: Some(asid),
    });
    Ok(())
}
