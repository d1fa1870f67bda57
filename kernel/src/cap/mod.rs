//! # Capabilities: the decoded form, the 16-byte stored form, and their rules
//!
//! A capability names one kernel object (by physical address) together with
//! the rights and per-cap data (badge, guard, mapping) of that reference.
//! Code works with the decoded [`Cap`] enum (this module); slots store the
//! packed [`RawCap`] of two words ([`raw`]), because a slot is 32 bytes
//! (`seL4_SlotBits` = 5) and half of it belongs to the derivation-tree links
//! (see `cte`). The pure rules of seL4's capability semantics (which caps
//! name the same object, which derivations are revocable, how Mint and
//! Mutate change a cap, which caps may be copied) are in [`rules`].

mod raw;
mod rules;
#[cfg(test)]
pub(crate) mod strategy;
#[cfg(test)]
mod tests;

pub(crate) use raw::{RawCap, EP_GRANT, EP_GRANT_REPLY, EP_RECEIVE, EP_SEND};
pub(crate) use rules::{
    derive, has_cancel_send_rights, is_cap_revocable, mask_rights, same_object_as, same_region_as,
    update_cap_data,
};

use septa_abi::{
    CapRights, ASID_POOL_SIZE_BITS, ENDPOINT_SIZE_BITS, HUGE_PAGE_BITS, LARGE_PAGE_BITS,
    NOTIFICATION_SIZE_BITS, PAGE_BITS, PAGE_TABLE_SIZE_BITS, REPLY_SIZE_BITS, SLOT_SIZE_BITS,
    TCB_SIZE_BITS, VCPU_SIZE_BITS, VSPACE_SIZE_BITS,
};

/// Cap type numbers of this configuration, as seL4 numbers them (`capType`
/// in the `.bf` files): even numbers are generic caps, odd ones are
/// architecture caps. User level sees them through `seL4_DebugCapIdentify`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapType {
    Null = 0,
    Untyped = 2,
    Endpoint = 4,
    Notification = 6,
    Reply = 8,
    CNode = 10,
    Tcb = 12,
    IrqControl = 14,
    IrqHandler = 16,
    Zombie = 18,
    Domain = 20,
    SchedContext = 22,
    SchedControl = 24,
    Frame = 1,
    PageTable = 3,
    VSpace = 9,
    AsidControl = 11,
    AsidPool = 13,
    Vcpu = 15,
    Smc = 25,
    SgiSignal = 27,
}

impl CapType {
    /// Decodes a type number; numbers this configuration does not use give
    /// `None`.
    #[inline]
    pub fn from_u64(n: u64) -> Option<CapType> {
        use CapType::*;
        Some(match n {
            0 => Null,
            2 => Untyped,
            4 => Endpoint,
            6 => Notification,
            8 => Reply,
            10 => CNode,
            12 => Tcb,
            14 => IrqControl,
            16 => IrqHandler,
            18 => Zombie,
            20 => Domain,
            22 => SchedContext,
            24 => SchedControl,
            1 => Frame,
            3 => PageTable,
            9 => VSpace,
            11 => AsidControl,
            13 => AsidPool,
            15 => Vcpu,
            25 => Smc,
            27 => SgiSignal,
            _ => return None,
        })
    }
}

/// Size of a frame (`vm_page_size`): 4 KiB, 2 MiB or 1 GiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSize {
    Small = 0,
    Large = 1,
    Huge = 2,
}

impl FrameSize {
    pub fn size_bits(self) -> u32 {
        match self {
            FrameSize::Small => PAGE_BITS,
            FrameSize::Large => LARGE_PAGE_BITS,
            FrameSize::Huge => HUGE_PAGE_BITS,
        }
    }
    #[inline]
    fn from_bits(n: u64) -> Option<FrameSize> {
        match n {
            0 => Some(FrameSize::Small),
            1 => Some(FrameSize::Large),
            2 => Some(FrameSize::Huge),
            _ => None,
        }
    }
}

/// What a frame cap allows a mapping to do (aarch64 `vm_rights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmRights {
    KernelOnly = 0,
    ReadWrite = 1,
    ReadOnly = 3,
}

impl VmRights {
    #[inline]
    fn from_bits(n: u64) -> Option<VmRights> {
        match n {
            0 => Some(VmRights::KernelOnly),
            1 => Some(VmRights::ReadWrite),
            3 => Some(VmRights::ReadOnly),
            _ => None,
        }
    }

    /// Restricts frame rights by a rights mask (seL4's `maskVMRights`):
    /// read-only stays read-only if Read is allowed; read-write becomes
    /// read-only without Write; anything else becomes kernel-only (there
    /// are no write-only mappings).
    pub fn mask(self, mask: CapRights) -> VmRights {
        match self {
            VmRights::ReadOnly if mask.read() => VmRights::ReadOnly,
            VmRights::ReadWrite if mask.read() => {
                if mask.write() {
                    VmRights::ReadWrite
                } else {
                    VmRights::ReadOnly
                }
            }
            _ => VmRights::KernelOnly,
        }
    }
}

/// Where a frame or page table is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub asid: u16,
    /// Virtual address of the mapping (page aligned).
    pub vaddr: u64,
}

/// What a zombie stands for: the slots of a TCB or of a CNode of some radix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZombieKind {
    Tcb,
    CNode { radix: u8 },
}

/// A capability, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cap {
    Null,
    /// `free_index` is the watermark: bytes from `paddr` already handed out
    /// (seL4 counts it in 16-byte units; bytes are clearer and the values
    /// are always multiples of 16).
    Untyped {
        paddr: u64,
        size_bits: u8,
        free_index: u64,
        is_device: bool,
    },
    Endpoint {
        paddr: u64,
        badge: u64,
        can_send: bool,
        can_receive: bool,
        can_grant: bool,
        can_grant_reply: bool,
    },
    Notification {
        paddr: u64,
        badge: u64,
        can_send: bool,
        can_receive: bool,
    },
    Reply {
        paddr: u64,
        can_grant: bool,
    },
    CNode {
        paddr: u64,
        radix: u8,
        guard_size: u8,
        guard: u64,
    },
    /// `paddr` is the base of the TCB object (its cap slots come first).
    Tcb {
        paddr: u64,
    },
    SchedContext {
        paddr: u64,
        size_bits: u8,
    },
    SchedControl {
        core: u64,
    },
    IrqControl,
    IrqHandler {
        irq: u64,
    },
    /// A CNode or TCB being torn down: `number` of its slots, from the
    /// first, still need to be cleared. `paddr` is the first slot.
    Zombie {
        paddr: u64,
        kind: ZombieKind,
        number: u64,
    },
    Domain,
    Smc {
        badge: u64,
    },
    SgiSignal {
        irq: u8,
        target: u32,
    },
    AsidControl,
    AsidPool {
        paddr: u64,
        asid_base: u16,
    },
    Frame {
        paddr: u64,
        size: FrameSize,
        rights: VmRights,
        is_device: bool,
        mapped: Option<Mapping>,
    },
    PageTable {
        paddr: u64,
        mapped: Option<Mapping>,
    },
    VSpace {
        paddr: u64,
        mapped_asid: Option<u16>,
    },
    Vcpu {
        paddr: u64,
    },
}

impl Cap {
    pub fn cap_type(&self) -> CapType {
        match self {
            Cap::Null => CapType::Null,
            Cap::Untyped { .. } => CapType::Untyped,
            Cap::Endpoint { .. } => CapType::Endpoint,
            Cap::Notification { .. } => CapType::Notification,
            Cap::Reply { .. } => CapType::Reply,
            Cap::CNode { .. } => CapType::CNode,
            Cap::Tcb { .. } => CapType::Tcb,
            Cap::SchedContext { .. } => CapType::SchedContext,
            Cap::SchedControl { .. } => CapType::SchedControl,
            Cap::IrqControl => CapType::IrqControl,
            Cap::IrqHandler { .. } => CapType::IrqHandler,
            Cap::Zombie { .. } => CapType::Zombie,
            Cap::Domain => CapType::Domain,
            Cap::Smc { .. } => CapType::Smc,
            Cap::SgiSignal { .. } => CapType::SgiSignal,
            Cap::AsidControl => CapType::AsidControl,
            Cap::AsidPool { .. } => CapType::AsidPool,
            Cap::Frame { .. } => CapType::Frame,
            Cap::PageTable { .. } => CapType::PageTable,
            Cap::VSpace { .. } => CapType::VSpace,
            Cap::Vcpu { .. } => CapType::Vcpu,
        }
    }

    /// The type number `seL4_DebugCapIdentify` reports.
    pub fn type_number(&self) -> u64 {
        self.cap_type() as u64
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Cap::Null)
    }

    /// The physical address of the memory the cap names, if any (for a TCB
    /// or zombie, the first slot; seL4's `cap_get_capPtr`).
    pub fn object_paddr(&self) -> Option<u64> {
        match *self {
            Cap::Untyped { paddr, .. }
            | Cap::Endpoint { paddr, .. }
            | Cap::Notification { paddr, .. }
            | Cap::Reply { paddr, .. }
            | Cap::CNode { paddr, .. }
            | Cap::Tcb { paddr }
            | Cap::SchedContext { paddr, .. }
            | Cap::Zombie { paddr, .. }
            | Cap::AsidPool { paddr, .. }
            | Cap::Frame { paddr, .. }
            | Cap::PageTable { paddr, .. }
            | Cap::VSpace { paddr, .. }
            | Cap::Vcpu { paddr } => Some(paddr),
            Cap::Null
            | Cap::SchedControl { .. }
            | Cap::IrqControl
            | Cap::IrqHandler { .. }
            | Cap::Domain
            | Cap::Smc { .. }
            | Cap::SgiSignal { .. }
            | Cap::AsidControl => None,
        }
    }

    /// Size in bits of the memory the cap names (0 if none;
    /// seL4's `cap_get_capSizeBits`).
    pub fn size_bits(&self) -> u32 {
        match *self {
            Cap::Untyped { size_bits, .. } | Cap::SchedContext { size_bits, .. } => {
                size_bits as u32
            }
            Cap::Endpoint { .. } => ENDPOINT_SIZE_BITS,
            Cap::Notification { .. } => NOTIFICATION_SIZE_BITS,
            Cap::Reply { .. } => REPLY_SIZE_BITS,
            Cap::CNode { radix, .. } => radix as u32 + SLOT_SIZE_BITS,
            Cap::Tcb { .. }
            | Cap::Zombie {
                kind: ZombieKind::Tcb,
                ..
            } => TCB_SIZE_BITS,
            Cap::Zombie {
                kind: ZombieKind::CNode { radix },
                ..
            } => radix as u32 + SLOT_SIZE_BITS,
            Cap::Frame { size, .. } => size.size_bits(),
            Cap::PageTable { .. } => PAGE_TABLE_SIZE_BITS,
            Cap::VSpace { .. } => VSPACE_SIZE_BITS,
            Cap::AsidPool { .. } => ASID_POOL_SIZE_BITS,
            Cap::Vcpu { .. } => VCPU_SIZE_BITS,
            Cap::Null
            | Cap::SchedControl { .. }
            | Cap::IrqControl
            | Cap::IrqHandler { .. }
            | Cap::Domain
            | Cap::Smc { .. }
            | Cap::SgiSignal { .. }
            | Cap::AsidControl => 0,
        }
    }

    /// The badge of an endpoint, notification or SMC cap (0 = unbadged).
    pub fn badge(&self) -> Option<u64> {
        match *self {
            Cap::Endpoint { badge, .. } | Cap::Notification { badge, .. } | Cap::Smc { badge } => {
                Some(badge)
            }
            _ => None,
        }
    }

    /// An endpoint cap with every right and no badge (as Retype makes it).
    pub fn new_endpoint(paddr: u64) -> Cap {
        Cap::Endpoint {
            paddr,
            badge: 0,
            can_send: true,
            can_receive: true,
            can_grant: true,
            can_grant_reply: true,
        }
    }

    /// A notification cap with both rights and no badge.
    pub fn new_notification(paddr: u64) -> Cap {
        Cap::Notification {
            paddr,
            badge: 0,
            can_send: true,
            can_receive: true,
        }
    }
}
