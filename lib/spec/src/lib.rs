//! # septa-spec: what the initializer builds, defined once
//!
//! The tool turns a system description into a `Spec`: a capDL-like list of
//! kernel objects, the capabilities in each CNode, the mappings in each
//! VSpace, each thread's settings, and the interrupts; plus, for the
//! monitor, one record per protection domain (name, fault badge, restart
//! policy). The initializer reads the same type from the image and realises
//! it using nothing but the seL4 ABI.
//!
//! The tool decides everything that can be decided before boot (which page
//! tables exist, which slot holds which cap, every badge, every patched
//! symbol); the initializer decides only what depends on the actual memory
//! (which untyped each object comes from). Objects are referred to by index
//! (`ObjId`) into `Spec::objects`.
//!
//! Wire format: the extra blob after the initializer's image starts with a
//! `BlobHeader` (magic, spec length), then the postcard-encoded `Spec`, then
//! the data area that `Fill` records point into (ELF segment contents,
//! prefill files), page-aligned.
//!
//! Owns: the types and their encoding. Must not touch: memory or syscalls.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Index of an object in `Spec::objects`.
pub type ObjId = u32;

/// "SEPTSPEC" as little-endian bytes.
pub const BLOB_MAGIC: u64 = u64::from_le_bytes(*b"SEPTSPEC");
/// Bumped whenever the encoding changes.
pub const SPEC_VERSION: u32 = 1;
/// Bytes of the blob header: magic, version, spec length, data offset.
pub const BLOB_HEADER_LEN: usize = 32;

/// A kernel object to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object<'a> {
    /// Unique, human-readable: `pd.serial.tcb`, `region.uart`, ...
    pub name: &'a str,
    pub kind: ObjectKind,
    /// A fixed physical address (device memory, or a region the
    /// description pins); `None` lets the initializer choose.
    pub paddr: Option<u64>,
    /// Initial contents (frames only), applied in order over zeroed memory.
    pub fill: Vec<Fill>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectKind {
    Tcb,
    Endpoint,
    Notification,
    Reply,
    /// Size in bits (seL4 minimum 7).
    SchedContext {
        size_bits: u8,
    },
    /// 2^`radix` slots.
    CNode {
        radix: u8,
    },
    VSpace,
    PageTable,
    /// 12 (4 KiB), 21 (2 MiB) or 30 (1 GiB).
    Frame {
        size_bits: u8,
    },
    Vcpu,
}

/// Bytes copied into a frame: `len` bytes from `data_offset` in the blob's
/// data area to `offset` in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub offset: u32,
    pub data_offset: u64,
    pub len: u32,
}

/// seL4 capability rights (read, write, grant, grant-reply).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
    pub grant: bool,
    pub grant_reply: bool,
}

impl Rights {
    pub const ALL: Rights = Rights {
        read: true,
        write: true,
        grant: true,
        grant_reply: true,
    };
    pub const RW: Rights = Rights {
        read: true,
        write: true,
        grant: false,
        grant_reply: false,
    };
    pub const WRITE: Rights = Rights {
        read: false,
        write: true,
        grant: false,
        grant_reply: false,
    };
}

/// A capability to place in a CNode slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cap {
    /// A cap to an object of the spec, minted with these rights and badge
    /// (badge 0: unbadged). CNode caps use `guard_size` (guard 0).
    Object {
        obj: ObjId,
        rights: Rights,
        badge: u64,
        guard_size: u8,
    },
    /// An IRQ handler cap for interrupt `irq`.
    IrqHandler { irq: u16 },
    /// The SMC cap.
    Smc,
}

/// One slot of one CNode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub cnode: ObjId,
    pub index: u64,
    pub cap: Cap,
}

/// What a mapping allows and how memory behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapAttrs {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
    pub cached: bool,
}

/// A frame or page table mapped into a VSpace. Page tables come first in
/// `Spec::mappings`, in the order they must be installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub vspace: ObjId,
    pub object: ObjId,
    pub vaddr: u64,
    pub attrs: MapAttrs,
}

/// A thread's configuration and first register values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread<'a> {
    pub tcb: ObjId,
    pub name: &'a str,
    pub cspace: ObjId,
    /// Guard size of the CSpace root cap (64 - radix for a one-level CSpace).
    pub cspace_guard_size: u8,
    pub vspace: ObjId,
    pub ipc_buffer: ObjId,
    pub ipc_buffer_vaddr: u64,
    pub priority: u8,
    pub max_priority: u8,
    /// `None` for a passive thread (runs on its callers' time).
    pub sched_context: Option<SchedParams>,
    /// Endpoint (in the monitor's or a parent's CSpace) and badge that
    /// receives this thread's faults; installed as a minted cap.
    pub fault_endpoint: Option<(ObjId, u64)>,
    pub bound_notification: Option<ObjId>,
    pub entry: u64,
    pub stack_top: u64,
    /// Whether the initializer starts it (child PDs and VMs are started by
    /// their parent).
    pub start: bool,
    /// A VCPU bound to this thread (VMs).
    pub vcpu: Option<ObjId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedParams {
    pub sched_context: ObjId,
    pub budget_us: u64,
    pub period_us: u64,
    pub badge: u64,
}

/// An interrupt delivered to a notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Irq {
    pub irq: u16,
    pub edge: bool,
    pub notification: ObjId,
    pub badge: u64,
}

/// What the monitor does when a protection domain faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Policy {
    /// Leave it stopped; the rest of the system goes on.
    Stop,
    /// Restart it, at most `limit` times, waiting `backoff_us` first, and
    /// restore its writable memory to its initial contents if `reset_memory`.
    Restart {
        limit: u32,
        backoff_us: u64,
        reset_memory: bool,
    },
    /// Stop the whole system.
    Halt,
}

/// The monitor's record of a protection domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pd<'a> {
    pub name: &'a str,
    /// Index into `Spec::threads`.
    pub thread: u32,
    /// The badge its faults arrive with at the monitor.
    pub fault_badge: u64,
    pub policy: Policy,
    /// Frames whose contents a restart restores (their `fill` is reapplied
    /// over zeroes).
    pub writable_frames: Vec<ObjId>,
    /// A frame where the monitor publishes this PD's restart count
    /// (generation) for its clients, with the word offset in it.
    pub generation: Option<(ObjId, u32)>,
    /// Stack range, for telling a stack overflow from other VM faults.
    pub stack: (u64, u64),
}

/// Everything the initializer builds.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Spec<'a> {
    #[serde(borrow)]
    pub objects: Vec<Object<'a>>,
    pub slots: Vec<Slot>,
    pub mappings: Vec<Mapping>,
    #[serde(borrow)]
    pub threads: Vec<Thread<'a>>,
    pub irqs: Vec<Irq>,
    #[serde(borrow)]
    pub pds: Vec<Pd<'a>>,
    /// The monitor's endpoint: every fault of a top-level PD arrives here.
    pub monitor_endpoint: Option<ObjId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobError {
    TooShort,
    BadMagic,
    BadVersion(u32),
    Decode,
}

impl core::fmt::Display for BlobError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlobError::TooShort => write!(f, "the spec blob is shorter than its header says"),
            BlobError::BadMagic => write!(f, "no spec after the initializer's image (bad magic)"),
            BlobError::BadVersion(v) => {
                write!(f, "spec version {v}, this initializer reads {SPEC_VERSION}")
            }
            BlobError::Decode => write!(f, "the spec does not decode"),
        }
    }
}

/// Encodes `spec` and `data` into a blob (header, spec, page-aligned data).
pub fn encode_blob(spec: &Spec, data: &[u8]) -> Vec<u8> {
    let body = postcard::to_allocvec(spec).expect("encoding into memory cannot fail");
    let data_offset = (BLOB_HEADER_LEN + body.len()).next_multiple_of(4096);
    let mut out = Vec::with_capacity(data_offset + data.len());
    out.extend_from_slice(&BLOB_MAGIC.to_le_bytes());
    out.extend_from_slice(&(SPEC_VERSION as u64).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&(data_offset as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out.resize(data_offset, 0);
    out.extend_from_slice(data);
    out
}

/// Reads a blob: the spec (borrowing names from it) and the data area.
pub fn decode_blob(blob: &[u8]) -> Result<(Spec<'_>, &[u8]), BlobError> {
    let word = |i: usize| -> Result<u64, BlobError> {
        let b = blob.get(i * 8..i * 8 + 8).ok_or(BlobError::TooShort)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    };
    if word(0)? != BLOB_MAGIC {
        return Err(BlobError::BadMagic);
    }
    let version = word(1)? as u32;
    if version != SPEC_VERSION {
        return Err(BlobError::BadVersion(version));
    }
    let len = word(2)? as usize;
    let data_offset = word(3)? as usize;
    let body = blob.get(
        BLOB_HEADER_LEN
            ..BLOB_HEADER_LEN
                .checked_add(len)
                .ok_or(BlobError::TooShort)?,
    );
    let body = body.ok_or(BlobError::TooShort)?;
    let data = blob.get(data_offset..).ok_or(BlobError::TooShort)?;
    let spec = postcard::from_bytes(body).map_err(|_| BlobError::Decode)?;
    Ok((spec, data))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::vec;

    fn sample() -> Spec<'static> {
        Spec {
            objects: vec![
                Object {
                    name: "pd.a.tcb",
                    kind: ObjectKind::Tcb,
                    paddr: None,
                    fill: vec![],
                },
                Object {
                    name: "pd.a.text",
                    kind: ObjectKind::Frame { size_bits: 12 },
                    paddr: None,
                    fill: vec![Fill {
                        offset: 16,
                        data_offset: 0,
                        len: 5,
                    }],
                },
                Object {
                    name: "uart",
                    kind: ObjectKind::Frame { size_bits: 12 },
                    paddr: Some(0x900_0000),
                    fill: vec![],
                },
            ],
            slots: vec![Slot {
                cnode: 0,
                index: 1,
                cap: Cap::IrqHandler { irq: 33 },
            }],
            mappings: vec![Mapping {
                vspace: 0,
                object: 1,
                vaddr: 0x20_0000,
                attrs: MapAttrs {
                    read: true,
                    write: false,
                    execute: true,
                    cached: true,
                },
            }],
            threads: vec![],
            irqs: vec![Irq {
                irq: 33,
                edge: false,
                notification: 0,
                badge: 1,
            }],
            pds: vec![Pd {
                name: "a",
                thread: 0,
                fault_badge: 1,
                policy: Policy::Restart {
                    limit: 3,
                    backoff_us: 1000,
                    reset_memory: true,
                },
                writable_frames: vec![1],
                generation: None,
                stack: (0xff_0000, 0x100_0000),
            }],
            monitor_endpoint: Some(0),
        }
    }

    #[test]
    fn blob_round_trips_with_its_data() {
        let blob = encode_blob(&sample(), b"hello");
        assert_eq!(blob.len() % 4096, 5);
        let (spec, data) = decode_blob(&blob).unwrap();
        assert_eq!(spec, sample());
        assert_eq!(data, b"hello");
    }

    #[test]
    fn bad_blobs_are_named() {
        let mut blob = encode_blob(&sample(), b"");
        assert_eq!(decode_blob(&blob[..20]).err(), Some(BlobError::TooShort));
        blob[8] = 9;
        assert_eq!(decode_blob(&blob).err(), Some(BlobError::BadVersion(9)));
        blob[0] ^= 1;
        assert_eq!(decode_blob(&blob).err(), Some(BlobError::BadMagic));
        let mut blob = encode_blob(&sample(), b"");
        blob[BLOB_HEADER_LEN] = 0xff;
        blob[BLOB_HEADER_LEN + 1] = 0xff;
        assert_eq!(decode_blob(&blob).err(), Some(BlobError::Decode));
    }
}
