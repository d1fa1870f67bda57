//! # The stored form of a capability: two words
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

use super::{Cap, CapType, FrameSize, Mapping, VmRights, ZombieKind};
use septa_abi::PAGE_BITS;

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

pub(super) const fn mask(bits: u32) -> u64 {
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

    /// This cap of a mapped 4 KiB frame, moved `n` pages on: the frame `n`
    /// pages further in physical memory, mapped `n` pages further in the
    /// same address space, everything else the same. Both addresses are
    /// fields that a page adds a constant to (the mapping's page number
    /// in word 0, the address in word 1), so boot's run of image frames
    /// encodes one cap and adds for the rest (about 40 instructions a
    /// frame less than [`Cap::encode`]).
    #[inline(always)]
    pub fn small_frame_advanced(self, n: u64) -> RawCap {
        let [w0, w1] = self.0;
        let page = 1u64 << PAGE_BITS;
        RawCap([
            w0 + (n << 16),
            w1 + (((n * page) >> PTR_ALIGN_BITS) << PTR_SHIFT),
        ])
    }

    /// Decodes a stored cap; an unknown pattern (a kernel bug) reads as the
    /// null cap rather than taking the kernel down. Out of line: the
    /// `Cap` copy was inlined into ~20 slow-path callers.
    #[inline(never)]
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
}
