//! # Untyped memory and Retype
//!
//! All kernel memory starts as untyped: a naturally aligned power-of-two
//! block of physical memory, named by an untyped cap with a *watermark*
//! (`free_index`, bytes from the start already handed out). Retype carves
//! new objects out of it, upward from the watermark, each aligned to its
//! own size, and puts an original cap to each into consecutive empty slots
//! of a destination CNode, as children of the untyped in the derivation
//! tree. Nothing is ever freed piecemeal: memory comes back only when every
//! child of the untyped is gone (revoke it), and then the next Retype
//! *resets* the untyped.
//!
//! ## Zeroing happens at reset
//!
//! Every object's initial state is all-zero bytes (see `object`). As in
//! seL4 16.0.0, the invariant that keeps this cheap is: **the memory of a
//! RAM untyped above its watermark is always zero**. Retype therefore just
//! moves the watermark. Reset restores the invariant by clearing the used
//! part, from the watermark down, in 2^[`RESET_CHUNK_BITS`]-byte chunks
//! with a preemption point after each (the watermark follows, so a
//! preempted reset resumes where it stopped). Untyped caps handed out at
//! boot ([`boot_untyped_cap`]) start with the watermark at the end, so
//! their first Retype clears them. Device untyped memory is never cleared:
//! it may be device registers, and only frames and further untypeds can be
//! made from it.

use crate::cap::{Cap, FrameSize, VmRights};
use crate::cspace::lookup_target_slot;
use crate::cte::{ensure_empty_slot, ensure_no_children, insert_new_cap, SlotRef};
use crate::error::{Exception, LookupFault, Preempted, SyscallError};
use crate::invocation::Invocation;
use crate::memory;
use crate::preempt::preemption_point;
use septa_abi::{
    Label, ObjectType, MAX_UNTYPED_BITS, MIN_SCHED_CONTEXT_BITS, MIN_UNTYPED_BITS, SLOT_SIZE_BITS,
    WORD_BITS,
};

/// Most objects one Retype may create (seL4's default
/// `CONFIG_RETYPE_FAN_OUT_LIMIT`).
pub const RETYPE_FAN_OUT_LIMIT: u64 = 256;
/// Bytes cleared between preemption points when resetting, as a power of
/// two (seL4's default `CONFIG_RESET_CHUNK_BITS`).
pub const RESET_CHUNK_BITS: u32 = 8;

/// The cap to an untyped region the boot code hands to the root task: its
/// watermark is at the end, so the memory is cleared on first use.
pub fn boot_untyped_cap(paddr: u64, size_bits: u8, is_device: bool) -> Cap {
    Cap::Untyped {
        paddr,
        size_bits,
        free_index: 1 << size_bits,
        is_device,
    }
}

/// Size in bits of one object of `ty` with the user's size argument
/// (seL4's `getObjectSize`). May exceed any sensible size for absurd
/// arguments; the caller range-checks the result.
pub fn object_size_bits(ty: ObjectType, user_size: u64) -> u64 {
    match ty.fixed_size_bits() {
        Some(bits) => bits as u64,
        None => match ty {
            ObjectType::CNode => (SLOT_SIZE_BITS as u64).wrapping_add(user_size),
            _ => user_size, // Untyped, SchedContext
        },
    }
}

/// Whether `ty` is a frame (the only objects besides untyped that device
/// memory may become).
pub fn is_frame_type(ty: ObjectType) -> bool {
    matches!(
        ty,
        ObjectType::SmallPage | ObjectType::LargePage | ObjectType::HugePage
    )
}

/// The objects one Retype created: `count` objects of `2^object_size_bits`
/// bytes each, back to back from `first_paddr`, with their caps in
/// consecutive slots of `dest_cnode` from `dest_offset`. The caller runs
/// type-specific set-up and cache maintenance from this (frames must be
/// cleaned to the point of coherency, page tables to the point of
/// unification, as seL4 does at creation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewObjects {
    pub object_type: ObjectType,
    pub user_size: u64,
    pub object_size_bits: u32,
    pub first_paddr: u64,
    pub count: u64,
    pub is_device: bool,
    /// Physical address of the destination CNode's first slot.
    pub dest_cnode: u64,
    pub dest_offset: u64,
}

impl NewObjects {
    /// Physical address of object `i`.
    pub fn paddr(&self, i: u64) -> u64 {
        self.first_paddr + (i << self.object_size_bits)
    }

    /// Slot holding the cap to object `i`.
    pub fn slot(&self, i: u64) -> SlotRef {
        SlotRef::nth(self.dest_cnode, self.dest_offset + i)
    }

    /// The objects' physical addresses, in order.
    pub fn paddrs(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.count).map(|i| self.paddr(i))
    }
}

/// The original cap to a new object of `ty` at `paddr` (seL4's
/// `createObject`, minus the per-type set-up: see [`NewObjects`]).
pub fn create_object_cap(ty: ObjectType, paddr: u64, user_size: u64, is_device: bool) -> Cap {
    let frame = |size| Cap::Frame {
        paddr,
        size,
        rights: VmRights::ReadWrite,
        is_device,
        mapped: None,
    };
    match ty {
        ObjectType::Untyped => Cap::Untyped {
            paddr,
            size_bits: user_size as u8,
            free_index: 0,
            is_device,
        },
        ObjectType::Tcb => Cap::Tcb { paddr },
        ObjectType::Endpoint => Cap::new_endpoint(paddr),
        ObjectType::Notification => Cap::new_notification(paddr),
        ObjectType::CNode => Cap::CNode {
            paddr,
            radix: user_size as u8,
            guard_size: 0,
            guard: 0,
        },
        ObjectType::SchedContext => Cap::SchedContext {
            paddr,
            size_bits: user_size as u8,
        },
        ObjectType::Reply => Cap::Reply {
            paddr,
            can_grant: true,
        },
        ObjectType::SmallPage => frame(FrameSize::Small),
        ObjectType::LargePage => frame(FrameSize::Large),
        ObjectType::HugePage => frame(FrameSize::Huge),
        ObjectType::VSpace => Cap::VSpace {
            paddr,
            mapped_asid: None,
        },
        ObjectType::PageTable => Cap::PageTable {
            paddr,
            mapped: None,
        },
        ObjectType::Vcpu => Cap::Vcpu { paddr },
    }
}

const fn align_up(value: u64, bits: u64) -> u64 {
    let m = (1u64 << bits) - 1;
    (value + m) & !m
}

/// Decodes and performs an invocation of the untyped cap `cap` held in
/// `slot`. Argument order (seL4's `Untyped_Retype`): type, size_bits,
/// node_index, node_depth, node_offset, num_objects; extra cap 0 is the
/// root of the destination lookup.
pub fn decode_untyped_invocation(
    inv: &Invocation,
    slot: SlotRef,
    cap: &Cap,
) -> Result<NewObjects, Exception> {
    let Cap::Untyped {
        paddr: base,
        size_bits: block_bits,
        free_index,
        is_device,
    } = *cap
    else {
        debug_assert!(false, "decode_untyped_invocation on {cap:?}");
        return Err(SyscallError::IllegalOperation.into());
    };
    if inv.label != Label::UntypedRetype.number() {
        return Err(SyscallError::IllegalOperation.into());
    }
    let Some(root_slot) = inv.extra_cap(0).filter(|_| inv.length() >= 6) else {
        return Err(SyscallError::TruncatedMessage.into());
    };
    let (new_type, user_size) = (inv.arg(0), inv.arg(1));
    let (node_index, node_depth) = (inv.arg(2), inv.arg(3));
    let (node_offset, node_window) = (inv.arg(4), inv.arg(5));

    let Some(ty) = ObjectType::from_u64(new_type) else {
        return Err(SyscallError::InvalidArgument { index: 0 }.into());
    };
    let obj_bits = object_size_bits(ty, user_size);
    if user_size >= WORD_BITS as u64 || obj_bits > MAX_UNTYPED_BITS as u64 {
        return Err(SyscallError::RangeError {
            min: 0,
            max: MAX_UNTYPED_BITS as u64,
        }
        .into());
    }
    let too_small = match ty {
        ObjectType::CNode => user_size == 0,
        ObjectType::Untyped => user_size < MIN_UNTYPED_BITS as u64,
        ObjectType::SchedContext => user_size < MIN_SCHED_CONTEXT_BITS as u64,
        _ => false,
    };
    if too_small {
        return Err(SyscallError::InvalidArgument { index: 1 }.into());
    }

    let node_cap = if node_depth == 0 {
        root_slot.cap()
    } else {
        lookup_target_slot(&root_slot.cap(), node_index, node_depth)?.cap()
    };
    let Cap::CNode {
        paddr: dest_cnode,
        radix,
        ..
    } = node_cap
    else {
        return Err(SyscallError::FailedLookup {
            source: false,
            fault: LookupFault::MissingCapability {
                bits_left: node_depth,
            },
        }
        .into());
    };

    let node_size = 1u64 << radix;
    if node_offset > node_size - 1 {
        return Err(SyscallError::RangeError {
            min: 0,
            max: node_size - 1,
        }
        .into());
    }
    if !(1..=RETYPE_FAN_OUT_LIMIT).contains(&node_window) {
        return Err(SyscallError::RangeError {
            min: 1,
            max: RETYPE_FAN_OUT_LIMIT,
        }
        .into());
    }
    if node_window > node_size - node_offset {
        return Err(SyscallError::RangeError {
            min: 1,
            max: node_size - node_offset,
        }
        .into());
    }
    for i in node_offset..node_offset + node_window {
        ensure_empty_slot(SlotRef::nth(dest_cnode, i))?;
    }

    // With no children left, the whole untyped can be used again (after a
    // reset); otherwise allocation continues from the watermark.
    let (start, reset) = match ensure_no_children(slot) {
        Ok(()) => (0, true),
        Err(_) => (free_index, false),
    };
    let free_bytes = (1u64 << block_bits) - start;
    if (free_bytes >> obj_bits) < node_window {
        return Err(SyscallError::NotEnoughMemory {
            available: free_bytes,
        }
        .into());
    }
    if is_device && !is_frame_type(ty) && ty != ObjectType::Untyped {
        return Err(SyscallError::InvalidArgument { index: 1 }.into());
    }
    let first = align_up(base + start, obj_bits);

    invoke_retype(
        slot,
        reset,
        first,
        ty,
        user_size,
        obj_bits as u32,
        dest_cnode,
        node_offset,
        node_window,
    )
}

/// Clears the used part of an untyped and brings its watermark back to 0
/// (seL4's `resetUntypedCap`), preemptibly; see the module header.
fn reset_untyped(slot: SlotRef) -> Result<(), Preempted> {
    let Cap::Untyped {
        paddr,
        size_bits,
        free_index,
        is_device,
    } = slot.cap()
    else {
        return Ok(());
    };
    if free_index == 0 {
        return Ok(());
    }
    let set_watermark = |w| {
        slot.set_cap(&Cap::Untyped {
            paddr,
            size_bits,
            free_index: w,
            is_device,
        })
    };
    if is_device || (size_bits as u32) < RESET_CHUNK_BITS {
        if !is_device {
            memory::zero(paddr, 1 << size_bits);
        }
        set_watermark(0);
        return Ok(());
    }
    let chunk = 1u64 << RESET_CHUNK_BITS;
    // From the chunk holding the last used byte down to the first chunk.
    let mut offset = (free_index - 1) & !(chunk - 1);
    loop {
        memory::zero(paddr + offset, chunk);
        set_watermark(offset);
        preemption_point()?;
        if offset == 0 {
            return Ok(());
        }
        offset -= chunk;
    }
}

#[allow(clippy::too_many_arguments)]
fn invoke_retype(
    slot: SlotRef,
    reset: bool,
    first: u64,
    ty: ObjectType,
    user_size: u64,
    obj_bits: u32,
    dest_cnode: u64,
    dest_offset: u64,
    count: u64,
) -> Result<NewObjects, Exception> {
    if reset {
        reset_untyped(slot)?;
    }
    let Cap::Untyped {
        paddr: base,
        size_bits,
        is_device,
        ..
    } = slot.cap()
    else {
        unreachable!("the invoked slot still holds its untyped cap");
    };
    let end = first + (count << obj_bits);
    slot.set_cap(&Cap::Untyped {
        paddr: base,
        size_bits,
        free_index: end - base,
        is_device,
    });

    let new = NewObjects {
        object_type: ty,
        user_size,
        object_size_bits: obj_bits,
        first_paddr: first,
        count,
        is_device,
        dest_cnode,
        dest_offset,
    };
    for i in 0..count {
        let p = new.paddr(i);
        debug_assert!(
            is_device || memory::is_zero(p, 1 << obj_bits.min(16)),
            "retyped memory at {p:#x} is not zero"
        );
        let cap = create_object_cap(ty, p, user_size, is_device);
        insert_new_cap(slot, new.slot(i), &cap);
    }
    Ok(new)
}
