//! # Capabilities: the decoded form, the 16-byte stored form, and their rules
//!
//! A capability names one kernel object (by physical address) together with
//! the rights and per-cap data (badge, guard, mapping) of that reference.
//! Code works with the decoded [`Cap`] enum; slots store the packed
//! [`RawCap`] of two words, because a slot is 32 bytes (`seL4_SlotBits` = 5)
//! and half of it belongs to the derivation-tree links (see `cte`).
//!
//! ## The stored layout
//!
//! Word 1 bits 0..5 hold the cap type number exactly as seL4 numbers it
//! ([`CapType`]; what `seL4_DebugCapIdentify` returns), so identifying a cap
//! never needs a full decode. Caps that name an object keep its physical
//! address shifted right by 4 in word 1 bits 20..64 (all kernel objects are
//! at least 16-byte aligned, which leaves room for 48-bit physical
//! addresses). Small fields sit in word 1 bits 5..20; wide data (badge,
//! guard, free index, mapping) takes word 0. The layout is private to this
//! module and checked by a round-trip property test; nothing outside the
//! kernel sees it.
//!
//! ## The rules
//!
//! The functions here are the pure parts of seL4's capability semantics:
//! which caps refer to the same object or to overlapping memory
//! ([`same_region_as`], [`same_object_as`]), which derived caps become
//! revocable originals ([`is_cap_revocable`]), how Mint, Mutate and Rotate
//! change badges and guards ([`update_cap_data`]) and rights
//! ([`mask_rights`]), and which caps may be copied at all ([`derive`]).

use crate::cte::{ensure_no_children, SlotRef};
use crate::error::SyscallError;
use septa_abi::{
    CNodeCapData, CapRights, ASID_POOL_SIZE_BITS, ENDPOINT_SIZE_BITS, HUGE_PAGE_BITS,
    LARGE_PAGE_BITS, NOTIFICATION_SIZE_BITS, PAGE_BITS, PAGE_TABLE_SIZE_BITS, REPLY_SIZE_BITS,
    SLOT_SIZE_BITS, TCB_SIZE_BITS, VCPU_SIZE_BITS, VSPACE_SIZE_BITS, WORD_BITS,
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

    /// Architecture caps have odd numbers.
    pub fn is_arch(self) -> bool {
        (self as u64) % 2 == 1
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

/// A capability as stored in a slot: two words.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RawCap(pub [u64; 2]);

// SAFETY: a `repr(C)` wrapper of two u64 words: no padding, any bits valid.
unsafe impl crate::memory::Pod for RawCap {}

// Word 1 layout (see the module header).
const TAG_BITS: u32 = 5;
const PTR_SHIFT: u32 = 20;
/// Physical addresses are stored shifted right by this much.
const PTR_ALIGN_BITS: u32 = 4;
/// Largest physical address a cap can hold, plus one.
pub const CAP_PADDR_LIMIT: u64 = 1 << (64 - PTR_SHIFT + PTR_ALIGN_BITS);
const ZOMBIE_TCB: u64 = 64;

/// Rights bits of [`RawCap::as_endpoint`] and [`RawCap::as_notification`]
/// (their order in the stored word, from bit 5).
pub const EP_SEND: u64 = 1 << 0;
pub const EP_RECEIVE: u64 = 1 << 1;
pub const EP_GRANT: u64 = 1 << 2;
pub const EP_GRANT_REPLY: u64 = 1 << 3;

const fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

const fn field(w: u64, shift: u32, bits: u32) -> u64 {
    (w >> shift) & mask(bits)
}

fn put(v: u64, shift: u32, bits: u32) -> u64 {
    debug_assert!(v <= mask(bits), "cap field {v:#x} wider than {bits} bits");
    (v & mask(bits)) << shift
}

fn put_ptr(paddr: u64) -> u64 {
    debug_assert!(
        paddr.is_multiple_of(1 << PTR_ALIGN_BITS) && paddr < CAP_PADDR_LIMIT,
        "object address {paddr:#x} cannot be stored in a cap"
    );
    (paddr >> PTR_ALIGN_BITS) << PTR_SHIFT
}

const fn get_ptr(w1: u64) -> u64 {
    (w1 >> PTR_SHIFT) << PTR_ALIGN_BITS
}

fn put_mapping(m: Option<Mapping>) -> (u64, u64) {
    match m {
        None => (0, 0),
        Some(Mapping { asid, vaddr }) => {
            debug_assert!(vaddr.is_multiple_of(1 << PAGE_BITS));
            (1, asid as u64 | put(vaddr >> PAGE_BITS, 16, 48))
        }
    }
}

fn get_mapping(is_mapped: u64, w0: u64) -> Option<Mapping> {
    (is_mapped != 0).then(|| Mapping {
        asid: field(w0, 0, 16) as u16,
        vaddr: field(w0, 16, 48) << PAGE_BITS,
    })
}

impl RawCap {
    pub const NULL: RawCap = RawCap([0, 0]);

    /// The cap type number stored in the cap (0 for anything unknown).
    #[inline]
    pub fn type_number(self) -> u64 {
        field(self.0[1], 0, TAG_BITS)
    }

    /// [`RawCap::try_decode`], always expanded at the call site.
    #[inline(always)]
    fn try_decode_inline(self) -> Option<Cap> {
        let [w0, w1] = self.0;
        let ptr = get_ptr(w1);
        let bit = |n: u32| field(w1, n, 1) != 0;
        let ty = CapType::from_u64(field(w1, 0, TAG_BITS))?;
        Some(match ty {
            CapType::Null => Cap::Null,
            CapType::Untyped => Cap::Untyped {
                paddr: ptr,
                is_device: bit(5),
                size_bits: field(w1, 6, 6) as u8,
                free_index: w0,
            },
            CapType::Endpoint => Cap::Endpoint {
                paddr: ptr,
                badge: w0,
                can_send: bit(5),
                can_receive: bit(6),
                can_grant: bit(7),
                can_grant_reply: bit(8),
            },
            CapType::Notification => Cap::Notification {
                paddr: ptr,
                badge: w0,
                can_send: bit(5),
                can_receive: bit(6),
            },
            CapType::Reply => Cap::Reply {
                paddr: ptr,
                can_grant: bit(5),
            },
            CapType::CNode => Cap::CNode {
                paddr: ptr,
                guard_size: field(w1, 5, 6) as u8,
                radix: field(w1, 11, 6) as u8,
                guard: w0,
            },
            CapType::Tcb => Cap::Tcb { paddr: ptr },
            CapType::SchedContext => Cap::SchedContext {
                paddr: ptr,
                size_bits: field(w1, 5, 6) as u8,
            },
            CapType::SchedControl => Cap::SchedControl { core: w0 },
            CapType::IrqControl => Cap::IrqControl,
            CapType::IrqHandler => Cap::IrqHandler { irq: w0 },
            CapType::Zombie => Cap::Zombie {
                paddr: ptr,
                kind: match field(w1, 5, 7) {
                    ZOMBIE_TCB => ZombieKind::Tcb,
                    r if r < 64 => ZombieKind::CNode { radix: r as u8 },
                    _ => return None,
                },
                number: w0,
            },
            CapType::Domain => Cap::Domain,
            CapType::Smc => Cap::Smc { badge: w0 },
            CapType::SgiSignal => Cap::SgiSignal {
                target: field(w0, 0, 32) as u32,
                irq: field(w0, 32, 4) as u8,
            },
            CapType::AsidControl => Cap::AsidControl,
            CapType::AsidPool => Cap::AsidPool {
                paddr: ptr,
                asid_base: field(w0, 0, 16) as u16,
            },
            CapType::Frame => Cap::Frame {
                paddr: ptr,
                size: FrameSize::from_bits(field(w1, 5, 2))?,
                rights: VmRights::from_bits(field(w1, 7, 2))?,
                is_device: bit(9),
                mapped: get_mapping(field(w1, 10, 1), w0),
            },
            CapType::PageTable => Cap::PageTable {
                paddr: ptr,
                mapped: get_mapping(field(w1, 5, 1), w0),
            },
            CapType::VSpace => Cap::VSpace {
                paddr: ptr,
                mapped_asid: bit(5).then_some(field(w0, 0, 16) as u16),
            },
            CapType::Vcpu => Cap::Vcpu { paddr: ptr },
        })
    }

    /// Decodes a stored cap. Only bit patterns written by [`Cap::encode`]
    /// occur in slots; anything else gives `None`.
    pub fn try_decode(self) -> Option<Cap> {
        self.try_decode_inline()
    }

    /// [`RawCap::decode`] expanded at the call site, for the IPC path's
    /// few lookups: the caller's match on the result then folds into the
    /// decode and no `Cap` goes through memory.
    #[inline(always)]
    pub fn decode_inline(self) -> Cap {
        self.try_decode_inline().unwrap_or(Cap::Null)
    }

    /// Decodes a stored cap if it has type `ty`, at the call site: with a
    /// constant `ty` only that type's arm of the decoder is compiled in, a
    /// few instructions, where the full decoder costs a jump table and
    /// every variant's fields.
    #[inline(always)]
    pub fn decode_as(self, ty: CapType) -> Option<Cap> {
        if self.type_number() == ty as u64 {
            self.try_decode_inline()
        } else {
            None
        }
    }

    // --- Shortcuts for the IPC paths ----------------------------------------
    //
    // Each reads the few fields one cap type has straight from the stored
    // words, `None` for any other type: no `Cap` is built, so nothing goes
    // through memory. They agree with `try_decode` (a property test checks).

    /// A CNode cap's (address, radix, guard size, guard).
    #[inline(always)]
    pub fn as_cnode(self) -> Option<(u64, u64, u64, u64)> {
        let [w0, w1] = self.0;
        (field(w1, 0, TAG_BITS) == CapType::CNode as u64)
            .then(|| (get_ptr(w1), field(w1, 11, 6), field(w1, 5, 6), w0))
    }

    /// An endpoint cap's (address, badge, rights): send, receive, grant and
    /// grant-reply as the bits [`EP_SEND`] .. [`EP_GRANT_REPLY`].
    #[inline(always)]
    pub fn as_endpoint(self) -> Option<(u64, u64, u64)> {
        let [w0, w1] = self.0;
        (field(w1, 0, TAG_BITS) == CapType::Endpoint as u64)
            .then(|| (get_ptr(w1), w0, field(w1, 5, 4)))
    }

    /// A notification cap's (address, badge, rights): send and receive as
    /// the bits [`EP_SEND`] and [`EP_RECEIVE`].
    #[inline(always)]
    pub fn as_notification(self) -> Option<(u64, u64, u64)> {
        let [w0, w1] = self.0;
        (field(w1, 0, TAG_BITS) == CapType::Notification as u64)
            .then(|| (get_ptr(w1), w0, field(w1, 5, 2)))
    }

    /// A reply cap's (address, can grant).
    #[inline(always)]
    pub fn as_reply(self) -> Option<(u64, bool)> {
        let w1 = self.0[1];
        (field(w1, 0, TAG_BITS) == CapType::Reply as u64)
            .then(|| (get_ptr(w1), field(w1, 5, 1) != 0))
    }

    /// A VSpace cap that has an ASID: (address, ASID).
    #[inline(always)]
    pub fn as_mapped_vspace(self) -> Option<(u64, u16)> {
        let [w0, w1] = self.0;
        (field(w1, 0, TAG_BITS) == CapType::VSpace as u64 && field(w1, 5, 1) != 0)
            .then(|| (get_ptr(w1), field(w0, 0, 16) as u16))
    }

    /// Decodes a stored cap; an unknown pattern (a kernel bug) reads as the
    /// null cap rather than taking the kernel down.
    pub fn decode(self) -> Cap {
        let c = self.try_decode();
        debug_assert!(c.is_some(), "undecodable cap {:x?}", self.0);
        c.unwrap_or(Cap::Null)
    }
}

impl Cap {
    /// Packs the cap into its stored form.
    pub fn encode(&self) -> RawCap {
        let tag = self.cap_type() as u64;
        let b = |v: bool, n: u32| (v as u64) << n;
        let (w0, w1) = match *self {
            Cap::Null | Cap::IrqControl | Cap::Domain | Cap::AsidControl => (0, 0),
            Cap::Untyped {
                paddr,
                size_bits,
                free_index,
                is_device,
            } => (
                free_index,
                put_ptr(paddr) | b(is_device, 5) | put(size_bits as u64, 6, 6),
            ),
            Cap::Endpoint {
                paddr,
                badge,
                can_send,
                can_receive,
                can_grant,
                can_grant_reply,
            } => (
                badge,
                put_ptr(paddr)
                    | b(can_send, 5)
                    | b(can_receive, 6)
                    | b(can_grant, 7)
                    | b(can_grant_reply, 8),
            ),
            Cap::Notification {
                paddr,
                badge,
                can_send,
                can_receive,
            } => (badge, put_ptr(paddr) | b(can_send, 5) | b(can_receive, 6)),
            Cap::Reply { paddr, can_grant } => (0, put_ptr(paddr) | b(can_grant, 5)),
            Cap::CNode {
                paddr,
                radix,
                guard_size,
                guard,
            } => (
                guard,
                put_ptr(paddr) | put(guard_size as u64, 5, 6) | put(radix as u64, 11, 6),
            ),
            Cap::Tcb { paddr } | Cap::Vcpu { paddr } => (0, put_ptr(paddr)),
            Cap::SchedContext { paddr, size_bits } => {
                (0, put_ptr(paddr) | put(size_bits as u64, 5, 6))
            }
            Cap::SchedControl { core } => (core, 0),
            Cap::IrqHandler { irq } => (irq, 0),
            Cap::Zombie {
                paddr,
                kind,
                number,
            } => {
                let k = match kind {
                    ZombieKind::Tcb => ZOMBIE_TCB,
                    ZombieKind::CNode { radix } => radix as u64,
                };
                (number, put_ptr(paddr) | put(k, 5, 7))
            }
            Cap::Smc { badge } => (badge, 0),
            Cap::SgiSignal { irq, target } => (target as u64 | put(irq as u64, 32, 4), 0),
            Cap::AsidPool { paddr, asid_base } => (asid_base as u64, put_ptr(paddr)),
            Cap::Frame {
                paddr,
                size,
                rights,
                is_device,
                mapped,
            } => {
                let (m, w0) = put_mapping(mapped);
                (
                    w0,
                    put_ptr(paddr)
                        | put(size as u64, 5, 2)
                        | put(rights as u64, 7, 2)
                        | b(is_device, 9)
                        | put(m, 10, 1),
                )
            }
            Cap::PageTable { paddr, mapped } => {
                let (m, w0) = put_mapping(mapped);
                (w0, put_ptr(paddr) | put(m, 5, 1))
            }
            Cap::VSpace { paddr, mapped_asid } => (
                mapped_asid.unwrap_or(0) as u64,
                put_ptr(paddr) | b(mapped_asid.is_some(), 5),
            ),
        };
        RawCap([w0, w1 | tag])
    }

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

    pub fn is_arch(&self) -> bool {
        self.cap_type().is_arch()
    }

    /// Whether the cap names memory (seL4's `cap_get_capIsPhysical`).
    pub fn is_physical(&self) -> bool {
        self.object_paddr().is_some()
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

/// Whether `b` lies inside the memory or authority `a` covers (seL4's
/// `sameRegionAs`): an untyped covers every object inside its range, the
/// IRQ control cap covers every IRQ handler and SGI cap, and otherwise two
/// caps must name the same object.
pub fn same_region_as(a: &Cap, b: &Cap) -> bool {
    match (*a, *b) {
        (
            Cap::Untyped {
                paddr, size_bits, ..
            },
            _,
        ) => match b.object_paddr() {
            Some(b_base) => {
                let a_top = paddr + mask(size_bits as u32);
                let b_top = b_base.wrapping_add(mask(b.size_bits()));
                paddr <= b_base && b_top <= a_top && b_base <= b_top
            }
            None => false,
        },
        (Cap::Endpoint { paddr: p, .. }, Cap::Endpoint { paddr: q, .. })
        | (Cap::Notification { paddr: p, .. }, Cap::Notification { paddr: q, .. })
        | (Cap::Tcb { paddr: p }, Cap::Tcb { paddr: q })
        | (Cap::Reply { paddr: p, .. }, Cap::Reply { paddr: q, .. })
        | (Cap::PageTable { paddr: p, .. }, Cap::PageTable { paddr: q, .. })
        | (Cap::VSpace { paddr: p, .. }, Cap::VSpace { paddr: q, .. })
        | (Cap::AsidPool { paddr: p, .. }, Cap::AsidPool { paddr: q, .. })
        | (Cap::Vcpu { paddr: p }, Cap::Vcpu { paddr: q }) => p == q,
        (
            Cap::CNode {
                paddr: p, radix: r, ..
            },
            Cap::CNode {
                paddr: q, radix: s, ..
            },
        ) => p == q && r == s,
        (
            Cap::SchedContext {
                paddr: p,
                size_bits: r,
            },
            Cap::SchedContext {
                paddr: q,
                size_bits: s,
            },
        ) => p == q && r == s,
        (Cap::IrqHandler { irq: i }, Cap::IrqHandler { irq: j }) => i == j,
        (Cap::IrqControl, Cap::IrqControl | Cap::IrqHandler { .. } | Cap::SgiSignal { .. }) => true,
        (Cap::Domain, Cap::Domain)
        | (Cap::SchedControl { .. }, Cap::SchedControl { .. })
        | (Cap::AsidControl, Cap::AsidControl)
        | (Cap::Smc { .. }, Cap::Smc { .. }) => true,
        (Cap::SgiSignal { irq: i, target: t }, Cap::SgiSignal { irq: j, target: u }) => {
            i == j && t == u
        }
        (
            Cap::Frame {
                paddr: p, size: s, ..
            },
            Cap::Frame {
                paddr: q, size: t, ..
            },
        ) => {
            let top_a = p + mask(s.size_bits());
            let top_b = q + mask(t.size_bits());
            p <= q && top_a >= top_b && q <= top_b
        }
        _ => false,
    }
}

/// Whether two caps refer to the very same object (seL4's `sameObjectAs`):
/// never true for untyped or IRQ control caps (they are ranges of
/// authority, each cap final on its own); frames must also agree on size
/// and device-ness; SGI caps are never the same object.
pub fn same_object_as(a: &Cap, b: &Cap) -> bool {
    match (*a, *b) {
        (Cap::Untyped { .. } | Cap::IrqControl | Cap::SgiSignal { .. }, _) => false,
        (
            Cap::Frame {
                paddr: p,
                size: s,
                is_device: d,
                ..
            },
            Cap::Frame {
                paddr: q,
                size: t,
                is_device: e,
                ..
            },
        ) => p == q && s == t && d == e,
        (Cap::Frame { .. }, _) => false,
        _ => same_region_as(a, b),
    }
}

/// The name the task brief uses for [`same_object_as`].
pub fn cap_same_object(a: &Cap, b: &Cap) -> bool {
    same_object_as(a, b)
}

/// Whether a cap derived from `src` becomes an original that can be
/// revoked on its own (seL4's `isCapRevocable`): newly badged endpoint,
/// notification and SMC caps, IRQ handler and SGI caps issued by IRQ
/// control, and every untyped cap.
pub fn is_cap_revocable(derived: &Cap, src: &Cap) -> bool {
    match *derived {
        Cap::Endpoint { .. } | Cap::Notification { .. } | Cap::Smc { .. } => {
            derived.badge() != src.badge()
        }
        Cap::IrqHandler { .. } | Cap::SgiSignal { .. } => matches!(src, Cap::IrqControl),
        Cap::Untyped { .. } => true,
        _ => false,
    }
}

/// Applies the data word of Mint (`preserve` false), or of Mutate and
/// Rotate (`preserve` true), to a cap (seL4's `updateCapData`).
///
/// Endpoint, notification and SMC caps take the word as a badge, but only
/// when minting from an unbadged cap; otherwise the result is the null cap,
/// which the caller reports as an error. CNode caps take it as guard data
/// (guard size in bits 0..6, guard above), refused when guard and radix
/// together exceed a word. Every other cap ignores the word.
pub fn update_cap_data(preserve: bool, data: u64, cap: &Cap) -> Cap {
    match *cap {
        Cap::Endpoint { badge, .. } | Cap::Notification { badge, .. } | Cap::Smc { badge } => {
            if !preserve && badge == 0 {
                let mut c = *cap;
                match &mut c {
                    Cap::Endpoint { badge, .. }
                    | Cap::Notification { badge, .. }
                    | Cap::Smc { badge } => *badge = data,
                    _ => unreachable!(),
                }
                c
            } else {
                Cap::Null
            }
        }
        Cap::CNode { paddr, radix, .. } => {
            let d = CNodeCapData(data);
            let guard_size = d.guard_size();
            if guard_size + radix as u64 > WORD_BITS as u64 {
                Cap::Null
            } else {
                Cap::CNode {
                    paddr,
                    radix,
                    guard_size: guard_size as u8,
                    guard: d.guard() & mask(guard_size as u32),
                }
            }
        }
        _ => *cap,
    }
}

/// Removes the rights not in `rights` from a cap (seL4's `maskCapRights`).
/// Only endpoint, notification, reply and frame caps carry rights.
pub fn mask_rights(rights: CapRights, cap: &Cap) -> Cap {
    match *cap {
        Cap::Endpoint {
            paddr,
            badge,
            can_send,
            can_receive,
            can_grant,
            can_grant_reply,
        } => Cap::Endpoint {
            paddr,
            badge,
            can_send: can_send && rights.write(),
            can_receive: can_receive && rights.read(),
            can_grant: can_grant && rights.grant(),
            can_grant_reply: can_grant_reply && rights.grant_reply(),
        },
        Cap::Notification {
            paddr,
            badge,
            can_send,
            can_receive,
        } => Cap::Notification {
            paddr,
            badge,
            can_send: can_send && rights.write(),
            can_receive: can_receive && rights.read(),
        },
        Cap::Reply { paddr, can_grant } => Cap::Reply {
            paddr,
            can_grant: can_grant && rights.grant(),
        },
        Cap::Frame {
            paddr,
            size,
            rights: vm,
            is_device,
            mapped,
        } => Cap::Frame {
            paddr,
            size,
            rights: vm.mask(rights),
            is_device,
            mapped,
        },
        _ => *cap,
    }
}

/// Whether a cap may cancel badged sends: an endpoint cap with all four
/// rights (seL4's `hasCancelSendRights`).
pub fn has_cancel_send_rights(cap: &Cap) -> bool {
    matches!(
        cap,
        Cap::Endpoint {
            can_send: true,
            can_receive: true,
            can_grant: true,
            can_grant_reply: true,
            ..
        }
    )
}

/// The cap a copy of `cap` (held in `slot`) would be (seL4's `deriveCap`):
/// zombies and IRQ control cannot be copied (null result, reported by the
/// caller); an untyped only while it has no children (else RevokeFirst);
/// page tables and VSpaces only once mapped or assigned (else
/// IllegalOperation); a frame copy starts unmapped.
pub fn derive(slot: SlotRef, cap: &Cap) -> Result<Cap, SyscallError> {
    match *cap {
        Cap::Zombie { .. } | Cap::IrqControl => Ok(Cap::Null),
        Cap::Untyped { .. } => {
            ensure_no_children(slot)?;
            Ok(*cap)
        }
        Cap::VSpace {
            mapped_asid: None, ..
        }
        | Cap::PageTable { mapped: None, .. } => Err(SyscallError::IllegalOperation),
        Cap::Frame {
            paddr,
            size,
            rights,
            is_device,
            ..
        } => Ok(Cap::Frame {
            paddr,
            size,
            rights,
            is_device,
            mapped: None,
        }),
        _ => Ok(*cap),
    }
}

#[cfg(test)]
pub(crate) mod strategy {
    //! Proptest generators of valid caps.
    use super::*;
    use proptest::prelude::*;

    fn paddr(align_bits: u32) -> impl Strategy<Value = u64> {
        (0u64..(CAP_PADDR_LIMIT >> align_bits)).prop_map(move |p| p << align_bits)
    }

    fn mapping() -> impl Strategy<Value = Option<Mapping>> {
        proptest::option::of((1u16.., 0u64..(1 << 36)).prop_map(|(asid, v)| Mapping {
            asid,
            vaddr: v << PAGE_BITS,
        }))
    }

    pub fn any_cap() -> impl Strategy<Value = Cap> {
        prop_oneof![
            Just(Cap::Null),
            (paddr(4), 4u8..=47, 0u64..(1 << 47), any::<bool>()).prop_map(
                |(paddr, size_bits, free_index, is_device)| Cap::Untyped {
                    paddr,
                    size_bits,
                    free_index,
                    is_device
                }
            ),
            (paddr(4), any::<u64>(), any::<[bool; 4]>()).prop_map(|(paddr, badge, r)| {
                Cap::Endpoint {
                    paddr,
                    badge,
                    can_send: r[0],
                    can_receive: r[1],
                    can_grant: r[2],
                    can_grant_reply: r[3],
                }
            }),
            (paddr(6), any::<u64>(), any::<bool>(), any::<bool>()).prop_map(
                |(paddr, badge, can_send, can_receive)| Cap::Notification {
                    paddr,
                    badge,
                    can_send,
                    can_receive
                }
            ),
            (paddr(5), any::<bool>())
                .prop_map(|(paddr, can_grant)| Cap::Reply { paddr, can_grant }),
            (paddr(6), 1u8..=42, 0u8..=63, any::<u64>()).prop_map(|(paddr, radix, gs, g)| {
                Cap::CNode {
                    paddr,
                    radix,
                    guard_size: gs,
                    guard: g,
                }
            }),
            paddr(11).prop_map(|paddr| Cap::Tcb { paddr }),
            (paddr(7), 7u8..=47)
                .prop_map(|(paddr, size_bits)| Cap::SchedContext { paddr, size_bits }),
            any::<u64>().prop_map(|core| Cap::SchedControl { core }),
            Just(Cap::IrqControl),
            any::<u64>().prop_map(|irq| Cap::IrqHandler { irq }),
            (paddr(5), proptest::option::of(0u8..64), any::<u64>()).prop_map(
                |(paddr, r, number)| {
                    Cap::Zombie {
                        paddr,
                        kind: r.map_or(ZombieKind::Tcb, |radix| ZombieKind::CNode { radix }),
                        number,
                    }
                }
            ),
            Just(Cap::Domain),
            any::<u64>().prop_map(|badge| Cap::Smc { badge }),
            (0u8..16, any::<u32>()).prop_map(|(irq, target)| Cap::SgiSignal { irq, target }),
            Just(Cap::AsidControl),
            (paddr(12), any::<u16>())
                .prop_map(|(paddr, asid_base)| Cap::AsidPool { paddr, asid_base }),
            (
                paddr(12),
                prop_oneof![
                    Just(FrameSize::Small),
                    Just(FrameSize::Large),
                    Just(FrameSize::Huge)
                ],
                prop_oneof![
                    Just(VmRights::KernelOnly),
                    Just(VmRights::ReadWrite),
                    Just(VmRights::ReadOnly)
                ],
                any::<bool>(),
                mapping()
            )
                .prop_map(|(paddr, size, rights, is_device, mapped)| Cap::Frame {
                    paddr,
                    size,
                    rights,
                    is_device,
                    mapped
                }),
            (paddr(12), mapping()).prop_map(|(paddr, mapped)| Cap::PageTable { paddr, mapped }),
            (paddr(12), proptest::option::of(any::<u16>()))
                .prop_map(|(paddr, mapped_asid)| Cap::VSpace { paddr, mapped_asid }),
            paddr(12).prop_map(|paddr| Cap::Vcpu { paddr }),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_cap_survives_encode_then_decode(cap in strategy::any_cap()) {
            let raw = cap.encode();
            prop_assert_eq!(raw.try_decode(), Some(cap));
            prop_assert_eq!(raw.type_number(), cap.type_number());
        }

        #[test]
        fn the_raw_shortcuts_agree_with_the_full_decode(cap in strategy::any_cap()) {
            let raw = cap.encode();
            let bits = |b: &[bool]| b.iter().enumerate().fold(0, |a, (i, &v)| a | (v as u64) << i);
            let want = match cap {
                Cap::CNode { paddr, radix, guard_size, guard } => {
                    Some((paddr, radix as u64, guard_size as u64, guard))
                }
                _ => None,
            };
            prop_assert_eq!(raw.as_cnode(), want);
            let want = match cap {
                Cap::Endpoint { paddr, badge, can_send, can_receive, can_grant, can_grant_reply } => {
                    Some((paddr, badge, bits(&[can_send, can_receive, can_grant, can_grant_reply])))
                }
                _ => None,
            };
            prop_assert_eq!(raw.as_endpoint(), want);
            let want = match cap {
                Cap::Notification { paddr, badge, can_send, can_receive } => {
                    Some((paddr, badge, bits(&[can_send, can_receive])))
                }
                _ => None,
            };
            prop_assert_eq!(raw.as_notification(), want);
            let want = match cap {
                Cap::Reply { paddr, can_grant } => Some((paddr, can_grant)),
                _ => None,
            };
            prop_assert_eq!(raw.as_reply(), want);
            let want = match cap {
                Cap::VSpace { paddr, mapped_asid: Some(asid) } => Some((paddr, asid)),
                _ => None,
            };
            prop_assert_eq!(raw.as_mapped_vspace(), want);
        }

        #[test]
        fn decoding_arbitrary_words_never_panics_and_is_stable(w0 in any::<u64>(), w1 in any::<u64>()) {
            if let Some(cap) = RawCap([w0, w1]).try_decode() {
                // Whatever decodes re-encodes to something that decodes the same.
                prop_assert_eq!(cap.encode().try_decode(), Some(cap));
            }
        }
    }

    #[test]
    fn the_null_cap_is_all_zero_so_fresh_memory_holds_empty_slots() {
        assert_eq!(Cap::Null.encode(), RawCap([0, 0]));
        assert_eq!(RawCap([0, 0]).decode(), Cap::Null);
    }

    #[test]
    fn type_numbers_follow_sel4() {
        assert_eq!(Cap::new_endpoint(0x1000).type_number(), 4);
        assert_eq!(
            Cap::Frame {
                paddr: 0x1000,
                size: FrameSize::Small,
                rights: VmRights::ReadWrite,
                is_device: false,
                mapped: None
            }
            .type_number(),
            1
        );
        assert_eq!(Cap::Smc { badge: 0 }.type_number(), 25);
        assert!(CapType::Vcpu.is_arch() && !CapType::CNode.is_arch());
        for n in 0..32 {
            if let Some(t) = CapType::from_u64(n) {
                assert_eq!(t as u64, n);
            }
        }
    }

    #[test]
    fn untyped_regions_contain_objects_inside_them_only() {
        let ut = Cap::Untyped {
            paddr: 0x4000_0000,
            size_bits: 16,
            free_index: 0,
            is_device: false,
        };
        assert!(same_region_as(&ut, &Cap::new_endpoint(0x4000_fff0)));
        assert!(!same_region_as(&ut, &Cap::new_endpoint(0x4001_0000)));
        assert!(!same_region_as(&ut, &Cap::new_endpoint(0x3fff_fff0)));
        // A TCB that would stick out of the end is not inside.
        assert!(!same_region_as(&ut, &Cap::Tcb { paddr: 0x4000_fc00 }));
        assert!(same_region_as(&ut, &Cap::Tcb { paddr: 0x4000_f800 }));
        // Non-physical caps are never inside an untyped.
        assert!(!same_region_as(&ut, &Cap::IrqControl));
        // Untyped caps are never "the same object", even as themselves.
        assert!(!same_object_as(&ut, &ut));
    }

    #[test]
    fn badges_are_set_once_by_mint_and_never_by_mutate() {
        let ep = Cap::new_endpoint(0x100);
        let badged = update_cap_data(false, 42, &ep);
        assert_eq!(badged.badge(), Some(42));
        assert_eq!(update_cap_data(false, 7, &badged), Cap::Null);
        assert_eq!(update_cap_data(true, 7, &ep), Cap::Null);
        let smc = Cap::Smc { badge: 0 };
        assert_eq!(update_cap_data(false, 3, &smc), Cap::Smc { badge: 3 });
        // Caps without data ignore the word.
        assert_eq!(
            update_cap_data(true, 99, &Cap::Tcb { paddr: 0x800 }),
            Cap::Tcb { paddr: 0x800 }
        );
    }

    #[test]
    fn cnode_guard_data_is_masked_and_bounded_by_the_word() {
        let cn = Cap::CNode {
            paddr: 0x1000,
            radix: 8,
            guard_size: 0,
            guard: 0,
        };
        let c = update_cap_data(true, CNodeCapData::new(0xff, 4).0, &cn);
        assert_eq!(
            c,
            Cap::CNode {
                paddr: 0x1000,
                radix: 8,
                guard_size: 4,
                guard: 0xf
            }
        );
        assert!(!update_cap_data(true, CNodeCapData::new(0, 56).0, &cn).is_null());
        assert!(update_cap_data(true, CNodeCapData::new(0, 57).0, &cn).is_null());
    }

    #[test]
    fn rights_only_ever_shrink() {
        let ep = Cap::new_endpoint(0x100);
        let r = mask_rights(CapRights::new(false, true, false, true), &ep);
        assert_eq!(
            r,
            Cap::Endpoint {
                paddr: 0x100,
                badge: 0,
                can_send: true,
                can_receive: false,
                can_grant: true,
                can_grant_reply: false
            }
        );
        assert_eq!(mask_rights(CapRights::ALL, &r), r);
        assert!(!has_cancel_send_rights(&r) && has_cancel_send_rights(&ep));
        assert_eq!(
            VmRights::ReadWrite.mask(CapRights::new(false, false, true, false)),
            VmRights::ReadOnly
        );
        assert_eq!(
            VmRights::ReadWrite.mask(CapRights::new(false, false, false, true)),
            VmRights::KernelOnly
        );
        assert_eq!(VmRights::ReadOnly.mask(CapRights::ALL), VmRights::ReadOnly);
        assert_eq!(
            VmRights::KernelOnly.mask(CapRights::ALL),
            VmRights::KernelOnly
        );
    }

    #[test]
    fn revocable_derivations() {
        let ep = Cap::new_endpoint(0x100);
        assert!(is_cap_revocable(&update_cap_data(false, 1, &ep), &ep));
        assert!(!is_cap_revocable(&ep, &ep));
        assert!(is_cap_revocable(
            &Cap::IrqHandler { irq: 3 },
            &Cap::IrqControl
        ));
        assert!(!is_cap_revocable(
            &Cap::IrqHandler { irq: 3 },
            &Cap::IrqHandler { irq: 3 }
        ));
        let ut = Cap::Untyped {
            paddr: 0x1000,
            size_bits: 12,
            free_index: 0,
            is_device: false,
        };
        assert!(is_cap_revocable(&ut, &ut));
        assert!(!is_cap_revocable(
            &Cap::Tcb { paddr: 0x800 },
            &Cap::Tcb { paddr: 0x800 }
        ));
    }
}
