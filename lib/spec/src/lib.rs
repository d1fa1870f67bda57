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
//! header of five little-endian words (magic, version, spec length, data
//! offset, total length), then the postcard-encoded `Spec`, then, page-aligned, the data
//! area that `Fill` records point into (patched ELF segment contents,
//! prefill files).
//!
//! Order guarantees the tool gives and the initializer relies on:
//! - `Spec::mappings` lists page tables before frames, and the page tables
//!   of one VSpace from the top level down, so each can be installed in
//!   turn;
//! - every object named by a slot, mapping, thread, IRQ or PD record exists
//!   (`Spec::check` verifies it, so a broken blob is refused before any
//!   object is created).
//!
//! Owns: the types, their encoding, and the allocation plan ([`place`])
//! that the tool simulates and the initializer performs. Must not touch:
//! memory or syscalls.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod place;

use alloc::vec::Vec;
use septa_abi as abi;
use serde::{Deserialize, Serialize};

/// Index of an object in `Spec::objects`.
pub type ObjId = u32;

/// "SEPTSPEC" as little-endian bytes.
pub const BLOB_MAGIC: u64 = u64::from_le_bytes(*b"SEPTSPEC");
/// Bumped whenever the encoding changes.
pub const SPEC_VERSION: u32 = 4;
/// Bytes of the blob header: magic, version, spec length, data offset,
/// total length.
pub const BLOB_HEADER_LEN: usize = 40;

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

/// Bytes copied into a frame: `len` bytes from `source` to `offset` in the
/// frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fill {
    pub offset: u32,
    pub len: u32,
    pub source: FillSource,
}

/// Where the bytes of a [`Fill`] come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FillSource {
    /// From `offset` in the blob's data area.
    Data { offset: u64 },
    /// From `offset` in the body of the extra BootInfo region `id` the
    /// kernel hands the root task (6: the device tree); bytes past the end
    /// of the region are left zero.
    BootInfo { id: u64, offset: u64 },
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
    /// Write and grant-reply: an endpoint cap that may send and call but
    /// not receive (what a cell gets, so it cannot take its peer's
    /// messages).
    pub const CALL: Rights = Rights {
        read: false,
        write: true,
        grant: false,
        grant_reply: true,
    };
    pub const READ: Rights = Rights {
        read: true,
        write: false,
        grant: false,
        grant_reply: false,
    };
    /// Read, write and grant: what Microkit gives endpoint caps.
    pub const RWG: Rights = Rights {
        read: true,
        write: true,
        grant: true,
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
    /// Guard size of the CSpace root cap (64 - radix for a one-level
    /// CSpace; 0 for Microkit's two-level one, whose second level carries
    /// the guard).
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
    /// Endpoint and badge that receive this thread's timeout faults (its
    /// scheduling context ran out of budget): cells', whose overruns the
    /// monitor counts. Installed as a minted cap, like the fault endpoint.
    pub timeout_endpoint: Option<(ObjId, u64)>,
    pub bound_notification: Option<ObjId>,
    pub entry: u64,
    pub stack_top: u64,
    /// Whether the initializer starts it (every PD, children included, as
    /// in Microkit; a VM's vCPU threads wait for their parent PD).
    pub start: bool,
    /// A VCPU bound to this thread (VMs).
    pub vcpu: Option<ObjId>,
    /// Whether the thread may use the FPU (seL4's `fpuDisabled` flag is set
    /// when it may not).
    pub fpu: bool,
    /// Its scheduling domain (0 unless the system has a domain schedule).
    pub domain: u8,
}

/// The domain schedule the initializer gives the kernel once every thread
/// has started (Microkit's `<domain_schedule>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSchedule {
    /// Entries in order: a domain and its time in timer ticks; (0, 0) is an
    /// end marker.
    pub entries: Vec<(u8, u64)>,
    /// Where in the kernel's schedule the first entry goes (Microkit's
    /// `index_shift`).
    pub first_index: u64,
    /// The index the kernel starts from (`index_shift + start_index`).
    pub start_index: u64,
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
    /// Index into `Spec::pds` of the parent, for a child PD: its faults go
    /// to the parent, not to the monitor.
    pub parent: Option<u32>,
    /// The badge its faults (and, if passive, its end-of-init message)
    /// arrive with at the monitor.
    pub fault_badge: u64,
    /// A passive PD tells the monitor when its `init` is done; the monitor
    /// then takes its scheduling context from its TCB and binds it to
    /// `notification`, as Microkit does.
    pub passive: bool,
    /// The PD's own notification (bound to its TCB).
    pub notification: ObjId,
    pub policy: Policy,
    /// Frames whose contents a restart restores (their `fill` is reapplied
    /// over zeroes).
    pub writable_frames: Vec<ObjId>,
    /// A frame where the monitor publishes this PD's restart count
    /// (generation) for its clients, with the word offset in it.
    pub generation: Option<(ObjId, u32)>,
    /// Its reply object: if it faults while serving a protected procedure
    /// call, the monitor answers the blocked caller through it.
    pub reply: ObjId,
    /// Stack range, for telling a stack overflow from other VM faults.
    pub stack: (u64, u64),
    /// It is a cell (`[cell.*]`): the statistics say so.
    pub cell: bool,
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
    /// The objects the initializer keeps for itself; `None` when there is
    /// nothing to build.
    pub root: Option<RootObjects>,
    /// The domain schedule, if the system has one.
    pub domain_schedule: Option<DomainSchedule>,
    /// Where the monitor keeps its statistics, if the system has a
    /// statistics PD (`[stats]`).
    pub stats: Option<StatsExport>,
    /// Built for `septa test`: the initializer also reports on the test
    /// harness's protocol (`[septa-test] ok boot` once the spec is read; a
    /// failure to build the system as a failed case and `done`), so a
    /// system that cannot start fails at once instead of timing out.
    pub test_harness: bool,
}

/// The monitor's statistics table and who may ask for a refresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsExport {
    /// The frame the monitor writes the table into (`septa_cells::stats`).
    pub frame: ObjId,
    /// Index into `Spec::pds` of the statistics PD: only a call with its
    /// badge and the refresh label is answered.
    pub requester: u32,
}

/// Objects the initializer uses itself, created with the rest so the tool's
/// allocation check counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootObjects {
    /// The monitor's endpoint: every fault of a top-level PD arrives here,
    /// with the PD's `fault_badge`.
    pub fault_endpoint: ObjId,
    /// The reply object the monitor receives with.
    pub reply: ObjId,
    /// Two page tables (second and third level) for the window through
    /// which the initializer fills frames.
    pub window_tables: [ObjId; 2],
}

/// A reference in a spec that names no object, or an object of the wrong
/// kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckError {
    /// What refers: "slot", "mapping", "thread", "irq", "pd", "root".
    pub what: &'static str,
    /// Its index in its list.
    pub index: usize,
    pub obj: ObjId,
}

impl core::fmt::Display for CheckError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} {} refers to object {}, which does not exist or has the wrong kind",
            self.what, self.index, self.obj
        )
    }
}

impl Spec<'_> {
    /// The kind of object `id`, if it exists.
    pub fn kind(&self, id: ObjId) -> Option<ObjectKind> {
        self.objects.get(id as usize).map(|o| o.kind)
    }

    /// Checks that every reference names an existing object of a fitting
    /// kind, so the initializer can index without checking again.
    pub fn check(&self) -> Result<(), CheckError> {
        use ObjectKind as K;
        let is = |id: ObjId, ok: fn(ObjectKind) -> bool| self.kind(id).is_some_and(ok);
        let err = |what, index, obj| Err(CheckError { what, index, obj });
        let cnode = |k| matches!(k, K::CNode { .. });
        let frame = |k| matches!(k, K::Frame { .. });
        for (i, s) in self.slots.iter().enumerate() {
            if !is(s.cnode, cnode) {
                return err("slot", i, s.cnode);
            }
            if let Cap::Object { obj, .. } = s.cap {
                if self.kind(obj).is_none() {
                    return err("slot", i, obj);
                }
            }
        }
        for (i, m) in self.mappings.iter().enumerate() {
            if !is(m.vspace, |k| k == K::VSpace) {
                return err("mapping", i, m.vspace);
            }
            if !is(m.object, |k| matches!(k, K::Frame { .. } | K::PageTable)) {
                return err("mapping", i, m.object);
            }
        }
        for (i, t) in self.threads.iter().enumerate() {
            let mut refs = [
                (t.tcb, (|k| k == K::Tcb) as fn(ObjectKind) -> bool),
                (t.cspace, cnode),
                (t.vspace, |k| k == K::VSpace),
                (t.ipc_buffer, frame),
            ]
            .to_vec();
            if let Some(s) = t.sched_context {
                refs.push((s.sched_context, |k| matches!(k, K::SchedContext { .. })));
            }
            if let Some((ep, _)) = t.fault_endpoint {
                refs.push((ep, |k| k == K::Endpoint));
            }
            if let Some((ep, _)) = t.timeout_endpoint {
                refs.push((ep, |k| k == K::Endpoint));
            }
            if let Some(n) = t.bound_notification {
                refs.push((n, |k| k == K::Notification));
            }
            if let Some(v) = t.vcpu {
                refs.push((v, |k| k == K::Vcpu));
            }
            for (id, ok) in refs {
                if !is(id, ok) {
                    return err("thread", i, id);
                }
            }
            if u64::from(t.domain) >= abi::kernel_config::NUM_DOMAINS {
                return err("thread domain", i, t.domain.into());
            }
        }
        if let Some(d) = &self.domain_schedule {
            let slots = abi::kernel_config::NUM_DOMAIN_SCHEDULES;
            for (i, &(dom, _)) in d.entries.iter().enumerate() {
                if u64::from(dom) >= abi::kernel_config::NUM_DOMAINS {
                    return err("domain schedule entry", i, dom.into());
                }
            }
            // The kernel's last entry must stay an end marker.
            if d.first_index + d.entries.len() as u64 >= slots || d.start_index >= slots {
                return err("domain schedule", 0, d.first_index as ObjId);
            }
        }
        for (i, q) in self.irqs.iter().enumerate() {
            if !is(q.notification, |k| k == K::Notification) {
                return err("irq", i, q.notification);
            }
        }
        for (i, p) in self.pds.iter().enumerate() {
            if p.thread as usize >= self.threads.len() {
                return err("pd", i, p.thread);
            }
            if p.parent.is_some_and(|q| q as usize >= self.pds.len()) {
                return err("pd", i, p.parent.unwrap_or_default());
            }
            if !is(p.notification, |k| k == K::Notification) {
                return err("pd", i, p.notification);
            }
            for f in &p.writable_frames {
                if !is(*f, frame) {
                    return err("pd", i, *f);
                }
            }
            if let Some((g, _)) = p.generation {
                if !is(g, frame) {
                    return err("pd", i, g);
                }
            }
            if !is(p.reply, |k| k == K::Reply) {
                return err("pd", i, p.reply);
            }
        }
        if let Some(x) = self.stats {
            if !is(x.frame, frame) {
                return err("stats", 0, x.frame);
            }
            if x.requester as usize >= self.pds.len() {
                return err("stats", 0, x.requester);
            }
        }
        if let Some(r) = self.root {
            for (id, ok) in [
                (
                    r.fault_endpoint,
                    (|k| k == K::Endpoint) as fn(ObjectKind) -> bool,
                ),
                (r.reply, |k| k == K::Reply),
                (r.window_tables[0], |k| k == K::PageTable),
                (r.window_tables[1], |k| k == K::PageTable),
            ] {
                if !is(id, ok) {
                    return err("root", 0, id);
                }
            }
        }
        Ok(())
    }
}

impl ObjectKind {
    /// log2 of the bytes the object takes from untyped memory in kernel
    /// configuration `config` (a TCB's size depends on it).
    pub fn size_bits(self, config: abi::Config) -> u8 {
        match self {
            ObjectKind::Tcb => config.tcb_size_bits() as u8,
            ObjectKind::Endpoint => abi::ENDPOINT_SIZE_BITS as u8,
            ObjectKind::Notification => abi::NOTIFICATION_SIZE_BITS as u8,
            ObjectKind::Reply => abi::REPLY_SIZE_BITS as u8,
            ObjectKind::SchedContext { size_bits } => size_bits,
            ObjectKind::CNode { radix } => radix + abi::SLOT_SIZE_BITS as u8,
            ObjectKind::VSpace => abi::VSPACE_SIZE_BITS as u8,
            ObjectKind::PageTable => abi::PAGE_TABLE_SIZE_BITS as u8,
            ObjectKind::Frame { size_bits } => size_bits,
            ObjectKind::Vcpu => abi::VCPU_SIZE_BITS as u8,
        }
    }
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
    let total = data_offset + data.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&BLOB_MAGIC.to_le_bytes());
    out.extend_from_slice(&(SPEC_VERSION as u64).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&(data_offset as u64).to_le_bytes());
    out.extend_from_slice(&(total as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out.resize(data_offset, 0);
    out.extend_from_slice(data);
    out
}

/// The whole length of the blob that `header` (its first
/// [`BLOB_HEADER_LEN`] bytes) starts, so a reader can size its view before
/// decoding.
pub fn blob_len(header: &[u8]) -> Result<usize, BlobError> {
    let word = |i: usize| -> Result<u64, BlobError> {
        let b = header.get(i * 8..i * 8 + 8).ok_or(BlobError::TooShort)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap()))
    };
    if word(0)? != BLOB_MAGIC {
        return Err(BlobError::BadMagic);
    }
    let version = word(1)? as u32;
    if version != SPEC_VERSION {
        return Err(BlobError::BadVersion(version));
    }
    usize::try_from(word(4)?).map_err(|_| BlobError::TooShort)
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
    let total = word(4)? as usize;
    let blob = blob.get(..total).ok_or(BlobError::TooShort)?;
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

    fn obj(name: &'static str, kind: ObjectKind) -> Object<'static> {
        Object {
            name,
            kind,
            paddr: None,
            fill: vec![],
        }
    }

    fn sample() -> Spec<'static> {
        let mut text = obj("pd.a.text", ObjectKind::Frame { size_bits: 12 });
        text.fill = vec![
            Fill {
                offset: 16,
                len: 5,
                source: FillSource::Data { offset: 0 },
            },
            Fill {
                offset: 100,
                len: 8,
                source: FillSource::BootInfo { id: 6, offset: 4 },
            },
        ];
        let mut uart = obj("uart", ObjectKind::Frame { size_bits: 12 });
        uart.paddr = Some(0x900_0000);
        Spec {
            objects: vec![
                obj("pd.a.tcb", ObjectKind::Tcb),
                text,
                uart,
                obj("pd.a.cnode", ObjectKind::CNode { radix: 9 }),
                obj("pd.a.vspace", ObjectKind::VSpace),
                obj("pd.a.ntfn", ObjectKind::Notification),
                obj("monitor.ep", ObjectKind::Endpoint),
                obj("monitor.reply", ObjectKind::Reply),
                obj("window.l2", ObjectKind::PageTable),
                obj("window.l3", ObjectKind::PageTable),
                obj("pd.a.reply", ObjectKind::Reply),
            ],
            slots: vec![Slot {
                cnode: 3,
                index: 138,
                cap: Cap::IrqHandler { irq: 33 },
            }],
            mappings: vec![Mapping {
                vspace: 4,
                object: 1,
                vaddr: 0x20_0000,
                attrs: MapAttrs {
                    read: true,
                    write: false,
                    execute: true,
                    cached: true,
                },
            }],
            threads: vec![Thread {
                tcb: 0,
                name: "a",
                cspace: 3,
                cspace_guard_size: 55,
                vspace: 4,
                ipc_buffer: 1,
                ipc_buffer_vaddr: 0xff_ffff_f000,
                priority: 100,
                max_priority: 100,
                sched_context: None,
                fault_endpoint: Some((6, 1)),
                timeout_endpoint: None,
                bound_notification: Some(5),
                entry: 0x20_0000,
                stack_top: 0xff_ffff_e000,
                start: true,
                vcpu: None,
                fpu: true,
                domain: 0,
            }],
            irqs: vec![Irq {
                irq: 33,
                edge: false,
                notification: 5,
                badge: 1,
            }],
            pds: vec![Pd {
                name: "a",
                thread: 0,
                parent: None,
                fault_badge: 1,
                passive: false,
                notification: 5,
                policy: Policy::Restart {
                    limit: 3,
                    backoff_us: 1000,
                    reset_memory: true,
                },
                writable_frames: vec![1],
                generation: None,
                reply: 10,
                stack: (0xff_ffff_c000, 0xff_ffff_e000),
                cell: false,
            }],
            root: Some(RootObjects {
                fault_endpoint: 6,
                reply: 7,
                window_tables: [8, 9],
            }),
            test_harness: true,
            domain_schedule: None,
            stats: None,
        }
    }

    #[test]
    fn blob_round_trips_with_its_data() {
        let blob = encode_blob(&sample(), b"hello");
        assert_eq!(blob.len() % 4096, 5);
        assert_eq!(blob_len(&blob[..BLOB_HEADER_LEN]), Ok(blob.len()));
        // Bytes after the blob (page padding) are not part of it.
        let mut padded = blob.clone();
        padded.resize(blob.len() + 100, 0xee);
        assert_eq!(decode_blob(&padded).unwrap().1, b"hello");
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

    #[test]
    fn check_accepts_a_sound_spec_and_names_broken_references() {
        assert_eq!(sample().check(), Ok(()));
        let mut s = sample();
        s.slots[0].cnode = 0; // a TCB, not a CNode
        assert_eq!(
            s.check(),
            Err(CheckError {
                what: "slot",
                index: 0,
                obj: 0
            })
        );
        let mut s = sample();
        s.threads[0].fault_endpoint = Some((99, 1));
        assert_eq!(s.check().unwrap_err().what, "thread");
        let mut s = sample();
        s.mappings[0].object = 0;
        assert_eq!(s.check().unwrap_err().what, "mapping");
        let mut s = sample();
        s.pds[0].writable_frames.push(5);
        assert_eq!(s.check().unwrap_err().obj, 5);
        let mut s = sample();
        s.root.as_mut().unwrap().window_tables[1] = 7;
        assert_eq!(s.check().unwrap_err().what, "root");
    }

    #[test]
    fn object_sizes_follow_the_abi() {
        use abi::Config::*;
        assert_eq!(ObjectKind::CNode { radix: 9 }.size_bits(Release), 14);
        assert_eq!(ObjectKind::Tcb.size_bits(Release), 11);
        assert_eq!(ObjectKind::Tcb.size_bits(Debug), 12);
        assert_eq!(ObjectKind::VSpace.size_bits(Debug), 13);
        assert_eq!(ObjectKind::Frame { size_bits: 21 }.size_bits(Benchmark), 21);
    }
}
