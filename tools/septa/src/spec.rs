//! The spec stage: from the validated `System` and each PD's patched image
//! to the `Spec` the initializer realises, with Microkit 2.3.0's semantics.
//!
//! For every PD (index `i` in the description's order, children after
//! their parent):
//! - a TCB, a VSpace, a scheduling context (256 bytes, badge `0x100 + i`,
//!   passive PDs too: the monitor takes it away once their `init` is done),
//!   a notification bound to the TCB, a reply object, and an endpoint if the
//!   PD receives protected calls, has children or runs a VM;
//! - Microkit's two-level CSpace: a 64-slot root CNode (guard 0) whose slot
//!   0 holds the 512-slot "Microkit CNode" (guard 64 - 6 - 9 bits), so that
//!   CPtr `n < 512` names slot `n` of the Microkit CNode and CPtr `s << 58`
//!   names slot `s` of the root (the description's extra `caps`);
//! - the Microkit CNode's fixed slots: input (the endpoint, or else the
//!   notification) 1, fault endpoint 2, VSpace 3, reply 4, monitor endpoint 5
//!   (passive PDs), SMC 7; output notifications from 10 (badge `1 << peer
//!   id`), PPC endpoints from 74 (badge `1 << 63 | peer id`), IRQ handlers
//!   from 138, child TCBs from 202, VM TCBs from 266, vCPUs from 330;
//! - the image's segments as 4 KiB frames, each page at full memory size
//!   (file bytes as a `Fill` from the data area, the rest zero), mapped with
//!   the segment's permissions; the IPC buffer at the top user page; the
//!   stack just below a guard page;
//! - faults go to the monitor's endpoint with badge `i + 1`, or to the
//!   parent's endpoint with badge `1 << 62 | child id`.
//!
//! Regions become frames of their page size, at their fixed address if
//! they have one, filled from their prefill. Page tables are added for
//! every mapping and listed before the frames, upper level first.
//!
//! Input: `System`, patched images, region addresses, the folder of the
//! description (for prefill files). Output: [`Built`], an owned spec plus
//! its data area.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use septa_abi::bootinfo::EXTRA_FDT;
use septa_abi::microkit::{slot, FAULT_BADGE, IPC_BUFFER_VADDR, PPC_BADGE, STACK_TOP};
use septa_abi::{HUGE_PAGE_BITS, LARGE_PAGE_BITS, PAGE_BITS, WORD_BITS};
use septa_spec::{
    Cap, Fill, FillSource, Irq, MapAttrs, Mapping, ObjId, Object, ObjectKind, Pd, Policy, Rights,
    RootObjects, SchedParams, Slot, Spec, Thread,
};
use septa_sysdesc::{
    BootInfoKind, CapKind, IrqKind, Perms, Prefill, RestartMemory, System, Trigger,
};

use crate::elf::ElfImage;

/// Bits of the root CNode of a PD (Microkit's `PD_ROOT_CAP_BITS`).
pub const ROOT_CNODE_BITS: u8 = septa_abi::microkit::PD_ROOT_CAP_BITS as u8;
/// Bits of the Microkit CNode (Microkit's `PD_CAP_BITS`: 512 slots).
pub const PD_CNODE_BITS: u8 = 9;
/// Size bits of each scheduling context (Microkit: 256 bytes, room for
/// extra refills).
pub const SCHED_CONTEXT_BITS: u8 = 8;
/// First badge of scheduling contexts (Microkit: `0x100 + PD index`).
pub const SCHED_BADGE_BASE: u64 = 0x100;

const PAGE: u64 = 1 << PAGE_BITS;

/// The spec, owned: names are kept beside their records and lent out by
/// [`Built::spec`].
#[derive(Debug, Default)]
pub struct Built {
    pub objects: Vec<(String, Object<'static>)>,
    pub slots: Vec<Slot>,
    pub mappings: Vec<Mapping>,
    pub threads: Vec<(String, Thread<'static>)>,
    pub irqs: Vec<Irq>,
    pub pds: Vec<(String, Pd<'static>)>,
    pub root: Option<RootObjects>,
    /// The data area `Fill` records point into.
    pub data: Vec<u8>,
    /// Per PD, for the report: its root CNode, Microkit CNode and VSpace.
    pub pd_objects: Vec<PdObjects>,
    /// The domain schedule (`crate::domains`).
    pub domain_schedule: Option<septa_spec::DomainSchedule>,
    /// The monitor's statistics table (`[stats]`).
    pub stats: Option<septa_spec::StatsExport>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PdObjects {
    pub root_cnode: ObjId,
    pub cnode: ObjId,
    pub vspace: ObjId,
    pub tcb: ObjId,
}

impl Built {
    /// The spec, borrowing names from `self`.
    pub fn spec(&self) -> Spec<'_> {
        Spec {
            objects: self
                .objects
                .iter()
                .map(|(n, o)| Object {
                    name: n,
                    ..o.clone()
                })
                .collect(),
            slots: self.slots.clone(),
            mappings: self.mappings.clone(),
            threads: self
                .threads
                .iter()
                .map(|(n, t)| Thread {
                    name: n,
                    ..t.clone()
                })
                .collect(),
            irqs: self.irqs.clone(),
            pds: self
                .pds
                .iter()
                .map(|(n, p)| Pd {
                    name: n,
                    ..p.clone()
                })
                .collect(),
            root: self.root,
            domain_schedule: self.domain_schedule.clone(),
            stats: self.stats,
            test_harness: false,
        }
    }

    pub fn name(&self, id: ObjId) -> &str {
        &self.objects[id as usize].0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{space}: {a} and {b} both map {at:#x}")]
    MapOverlap {
        space: String,
        a: String,
        b: String,
        at: u64,
    },
    #[error("{space}: {what} at {vaddr:#x} is not aligned to its {size:#x}-byte pages")]
    Misaligned {
        space: String,
        what: String,
        vaddr: u64,
        size: u64,
    },
    #[error("region `{region}`: cannot read prefill {path}: {reason}")]
    Prefill {
        region: String,
        path: PathBuf,
        reason: String,
    },
    #[error("PD `{pd}`: extra cap slot {slot} is past the root CNode's {max} slots")]
    CapSlot { pd: String, slot: u64, max: u64 },
    #[error("cell `{cell}` needs {} KiB (program image {} KiB, stack {} KiB, heap {} KiB, service regions {} KiB) but its memory quota is {} KiB", (image + stack + heap + regions) / 1024, image / 1024, stack / 1024, heap / 1024, regions / 1024, quota / 1024)]
    CellQuota {
        cell: String,
        image: u64,
        stack: u64,
        heap: u64,
        regions: u64,
        quota: u64,
    },
    #[error("{0}: not supported by this build of the tool")]
    Unsupported(String),
    #[error("PD `{pd}`: its stack of {size:#x} bytes reaches down to its program at {end:#x}")]
    StackOverlap { pd: String, size: u64, end: u64 },
}

/// What is mapped where in one address space, for overlap checks.
#[derive(Default)]
struct Space {
    /// Start address to (end, description).
    used: BTreeMap<u64, (u64, String)>,
}

impl Space {
    fn claim(&mut self, space: &str, start: u64, end: u64, what: &str) -> Result<(), SpecError> {
        let clash = self
            .used
            .range(..end)
            .next_back()
            .filter(|(_, (e, _))| *e > start);
        if let Some((s, (_, other))) = clash {
            return Err(SpecError::MapOverlap {
                space: space.to_string(),
                a: other.clone(),
                b: what.to_string(),
                at: start.max(*s),
            });
        }
        self.used.insert(start, (end, what.to_string()));
        Ok(())
    }
}

struct Builder<'a> {
    sys: &'a System,
    /// Each PD gets its own TCB (Microkit's benchmark configuration: for
    /// the kernel's utilisation calls).
    own_tcb: bool,
    out: Built,
    /// Page tables: (vspace, level, base) to object; level 2 covers 1 GiB,
    /// level 3 covers 2 MiB.
    tables: BTreeMap<(ObjId, u8, u64), ObjId>,
    frames: Vec<Mapping>,
    spaces: HashMap<ObjId, Space>,
}

fn attrs(p: Perms, cached: bool) -> MapAttrs {
    MapAttrs {
        read: p.read,
        write: p.write,
        execute: p.execute,
        cached,
    }
}

impl Builder<'_> {
    fn obj(&mut self, name: String, kind: ObjectKind) -> ObjId {
        self.obj_at(name, kind, None, vec![])
    }

    fn obj_at(
        &mut self,
        name: String,
        kind: ObjectKind,
        paddr: Option<u64>,
        fill: Vec<Fill>,
    ) -> ObjId {
        let id = self.out.objects.len() as ObjId;
        self.out.objects.push((
            name,
            Object {
                name: "",
                kind,
                paddr,
                fill,
            },
        ));
        id
    }

    fn data(&mut self, bytes: &[u8]) -> u64 {
        // Word-aligned, so the initializer may copy in words.
        let at = self.out.data.len().next_multiple_of(8);
        self.out.data.resize(at, 0);
        self.out.data.extend_from_slice(bytes);
        at as u64
    }

    fn slot(&mut self, cnode: ObjId, index: u64, cap: Cap) {
        self.out.slots.push(Slot { cnode, index, cap });
    }

    fn cap(obj: ObjId, rights: Rights, badge: u64) -> Cap {
        Cap::Object {
            obj,
            rights,
            badge,
            guard_size: 0,
        }
    }

    /// Maps `frame` (2^`bits` bytes) at `vaddr` in `vspace`, adding the page
    /// tables it needs.
    fn map(
        &mut self,
        (vspace, space_name): (ObjId, &str),
        frame: ObjId,
        bits: u32,
        vaddr: u64,
        a: MapAttrs,
        what: &str,
    ) -> Result<(), SpecError> {
        let size = 1u64 << bits;
        if !vaddr.is_multiple_of(size) {
            return Err(SpecError::Misaligned {
                space: space_name.to_string(),
                what: what.to_string(),
                vaddr,
                size,
            });
        }
        self.spaces
            .entry(vspace)
            .or_default()
            .claim(space_name, vaddr, vaddr + size, what)?;
        if bits < HUGE_PAGE_BITS {
            self.table(vspace, space_name, 2, vaddr & !((1 << HUGE_PAGE_BITS) - 1));
        }
        if bits < LARGE_PAGE_BITS {
            self.table(vspace, space_name, 3, vaddr & !((1 << LARGE_PAGE_BITS) - 1));
        }
        self.frames.push(Mapping {
            vspace,
            object: frame,
            vaddr,
            attrs: a,
        });
        Ok(())
    }

    fn table(&mut self, vspace: ObjId, space_name: &str, level: u8, base: u64) {
        if self.tables.contains_key(&(vspace, level, base)) {
            return;
        }
        let id = self.obj(
            format!("{space_name}.pt{level}.{base:#x}"),
            ObjectKind::PageTable,
        );
        self.tables.insert((vspace, level, base), id);
    }

    fn finish(mut self) -> Built {
        // Page tables first, upper level first, then the frames.
        let mut tables: Vec<_> = self.tables.into_iter().collect();
        tables.sort_by_key(|((vs, level, base), _)| (*level, *vs, *base));
        let cached = MapAttrs {
            read: true,
            write: true,
            execute: false,
            cached: true,
        };
        self.out.mappings = tables
            .into_iter()
            .map(|((vspace, _, vaddr), object)| Mapping {
                vspace,
                object,
                vaddr,
                attrs: cached,
            })
            .collect();
        self.out.mappings.extend(self.frames);
        self.out
    }
}

/// What the spec stage needs of each PD program.
pub struct Program<'a> {
    pub image: &'a ElfImage,
}

/// Builds the spec. `paddrs` holds the physical address of every region
/// that has one; `base` is the folder of the description.
pub fn build(
    sys: &System,
    programs: &[Program],
    paddrs: &HashMap<String, u64>,
    base: &Path,
    config: septa_abi::Config,
) -> Result<Built, SpecError> {
    let mut b = Builder {
        sys,
        own_tcb: config == septa_abi::Config::Benchmark,
        out: Built::default(),
        tables: BTreeMap::new(),
        frames: Vec::new(),
        spaces: HashMap::new(),
    };
    if sys.pds.is_empty() {
        return Ok(b.finish());
    }
    if !sys.io_spaces.is_empty() {
        return Err(SpecError::Unsupported("I/O address spaces".into()));
    }

    // The initializer's own objects.
    let mon_ep = b.obj("monitor.fault_ep".into(), ObjectKind::Endpoint);
    let mon_reply = b.obj("monitor.reply".into(), ObjectKind::Reply);
    let l2 = b.obj("initializer.window.pt2".into(), ObjectKind::PageTable);
    let l3 = b.obj("initializer.window.pt3".into(), ObjectKind::PageTable);
    b.out.root = Some(RootObjects {
        fault_endpoint: mon_ep,
        reply: mon_reply,
        window_tables: [l2, l3],
    });

    let regions = region_frames(&mut b, paddrs, base)?;
    let mut per_pd: Vec<PdState> = Vec::with_capacity(sys.pds.len());
    let domains = crate::domains::build(sys);
    for (i, prog) in programs.iter().enumerate() {
        let first_thread = b.out.threads.len();
        let st = build_pd(&mut b, i, prog, &regions, mon_ep, &per_pd)?;
        per_pd.push(st);
        // The PD's threads (its own and its VM's) run in its domain.
        let dom = domains.of(sys.pds[i].domain.as_deref());
        for (_, t) in &mut b.out.threads[first_thread..] {
            t.domain = dom;
        }
    }
    b.out.domain_schedule = domains.schedule;
    // The statistics table: the first frame of its region, which only the
    // monitor writes (the statistics PD maps it read-only).
    if let Some(st) = &sys.stats {
        if let Some((_, frames)) = regions.get(st.table.as_str()) {
            b.out.stats = frames.first().map(|f| septa_spec::StatsExport {
                frame: *f,
                requester: st.pd as u32,
            });
        }
    }
    channels(&mut b, &per_pd);
    extra_caps(&mut b, &per_pd)?;
    b.out.pd_objects = per_pd
        .iter()
        .map(|s| PdObjects {
            root_cnode: s.root_cnode,
            cnode: s.cnode,
            vspace: s.vspace,
            tcb: s.tcb,
        })
        .collect();
    Ok(b.finish())
}

/// Every region as frames of its page size, at its physical address if it
/// has one (`paddrs` holds those the tool chose), filled from its prefill
/// (a file in `base`, or boot information).
fn region_frames<'a>(
    b: &mut Builder<'a>,
    paddrs: &HashMap<String, u64>,
    base: &Path,
) -> Result<RegionFrames<'a>, SpecError> {
    let mut out: RegionFrames = HashMap::new();
    for r in &b.sys.regions {
        let bits = r.page_size.trailing_zeros();
        let count = r.size / r.page_size;
        let bytes = match &r.prefill {
            Some(Prefill::File { path, .. }) => {
                let full = base.join(path);
                Some(std::fs::read(&full).map_err(|e| SpecError::Prefill {
                    region: r.name.clone(),
                    path: full.clone(),
                    reason: e.to_string(),
                })?)
            }
            _ => None,
        };
        let bootinfo = match &r.prefill {
            Some(Prefill::BootInfo(BootInfoKind::Fdt)) => Some(EXTRA_FDT),
            Some(Prefill::BootInfo(k)) => {
                return Err(SpecError::Unsupported(format!(
                    "region `{}`: boot information prefill {k:?}",
                    r.name
                )))
            }
            _ => None,
        };
        let data_at = bytes.as_deref().map(|d| b.data(d));
        let phys = r.phys.or_else(|| paddrs.get(&r.name).copied());
        let mut frames = Vec::new();
        for n in 0..count {
            let start = n * r.page_size;
            let mut fill = vec![];
            if let (Some(d), Some(at)) = (&bytes, data_at) {
                let len = (d.len() as u64).saturating_sub(start).min(r.page_size);
                if len > 0 {
                    fill.push(Fill {
                        offset: 0,
                        len: len as u32,
                        source: FillSource::Data { offset: at + start },
                    });
                }
            }
            if let Some(id) = bootinfo {
                fill.push(Fill {
                    offset: 0,
                    len: r.page_size as u32,
                    source: FillSource::BootInfo { id, offset: start },
                });
            }
            frames.push(b.obj_at(
                format!("region.{}.{n}", r.name),
                ObjectKind::Frame {
                    size_bits: bits as u8,
                },
                phys.map(|p| p + start),
                fill,
            ));
        }
        out.insert(&r.name, (bits, frames));
    }
    Ok(out)
}

/// Each channel end: a notification cap to the peer (badge: the peer's
/// channel bit) if it may notify, a badged endpoint cap if it may call.
fn channels(b: &mut Builder, per_pd: &[PdState]) {
    for ch in &b.sys.channels {
        for (me, peer) in [(&ch.a, &ch.b), (&ch.b, &ch.a)] {
            let mine = &per_pd[me.pd];
            let theirs = &per_pd[peer.pd];
            // Microkit gives a PD read rights on its peer's notification and
            // endpoint, with which it could wait on them and take what is
            // meant for the peer; a cell gets only what sending needs.
            let cell = b.sys.cells.iter().any(|c| c.pd == me.pd);
            let (signal, call) = if cell {
                (Rights::WRITE, Rights::CALL)
            } else {
                (Rights::RW, Rights::RWG)
            };
            if me.notify {
                b.slot(
                    mine.cnode,
                    slot::BASE_OUTPUT_NOTIFICATION + me.id,
                    Builder::cap(theirs.ntfn, signal, 1 << peer.id),
                );
            }
            if me.pp {
                let ep = theirs.ep.expect("a PD that can be called has an endpoint");
                b.slot(
                    mine.cnode,
                    slot::BASE_ENDPOINT + me.id,
                    Builder::cap(ep, call, PPC_BADGE | peer.id),
                );
            }
        }
    }
}

/// The description's extra caps (Microkit's `<cspace>`), into root CNodes.
fn extra_caps(b: &mut Builder, per_pd: &[PdState]) -> Result<(), SpecError> {
    let sys = b.sys;
    for (i, pd) in sys.pds.iter().enumerate() {
        for c in &pd.caps {
            let max = 1u64 << ROOT_CNODE_BITS;
            if c.slot >= max {
                return Err(SpecError::CapSlot {
                    pd: pd.name.clone(),
                    slot: c.slot,
                    max,
                });
            }
            let src = &per_pd[sys.pd_index(&c.pd).expect("checked by the front end")];
            // A PD may wait on its own notification, never signal it
            // (the front end allows only its own).
            let (obj, rights) = match c.kind {
                CapKind::Tcb => (src.tcb, Rights::ALL),
                CapKind::Sc => (src.sc, Rights::ALL),
                CapKind::Vspace => (src.vspace, Rights::ALL),
                CapKind::Notification => (src.ntfn, Rights::READ),
            };
            b.slot(per_pd[i].root_cnode, c.slot, Builder::cap(obj, rights, 0));
        }
    }
    Ok(())
}

/// The objects of one PD that the rest of the spec refers to.
struct PdState {
    tcb: ObjId,
    sc: ObjId,
    vspace: ObjId,
    ntfn: ObjId,
    reply: ObjId,
    ep: Option<ObjId>,
    cnode: ObjId,
    root_cnode: ObjId,
}

fn needs_ep(sys: &System, i: usize) -> bool {
    let pd = &sys.pds[i];
    sys.children(i).next().is_some()
        || pd.vm.is_some()
        || sys
            .channels
            .iter()
            .any(|c| (c.a.pp && c.b.pd == i) || (c.b.pp && c.a.pd == i))
}

fn policy(pd: &septa_sysdesc::Pd) -> Policy {
    match pd.restart.policy {
        septa_sysdesc::Policy::Stop => Policy::Stop,
        septa_sysdesc::Policy::Halt => Policy::Halt,
        septa_sysdesc::Policy::Restart => Policy::Restart {
            limit: pd.restart.limit.unwrap_or(u32::MAX),
            backoff_us: pd.restart.backoff_us,
            reset_memory: pd.restart.memory == RestartMemory::Reload,
        },
    }
}

/// Frames of each region: their size bits and objects, by region name.
type RegionFrames<'a> = HashMap<&'a str, (u32, Vec<ObjId>)>;

/// Where a thread's faults go: an endpoint and the badge they carry.
type FaultRoute = (ObjId, u64);

/// Read-write, cached, never executed: IPC buffers and stacks.
const RW: MapAttrs = MapAttrs {
    read: true,
    write: true,
    execute: false,
    cached: true,
};

/// One PD: its objects, address space, CSpace, thread and record, and its
/// virtual machine if it has one. `earlier` holds the PDs before it (a
/// child's parent among them).
fn build_pd(
    b: &mut Builder,
    i: usize,
    prog: &Program,
    regions: &RegionFrames,
    mon_ep: ObjId,
    earlier: &[PdState],
) -> Result<PdState, SpecError> {
    let pd = &b.sys.pds[i];
    let n = format!("pd.{}", pd.name);
    let st = pd_objects(b, i, &n);
    let space = (st.vspace, n.as_str());
    let mut writable = map_image(b, pd, space, prog.image)?;
    map_regions(b, space, &pd.maps, regions)?;
    let ipc = map_ipc_buffer_and_stack(b, pd, space, &mut writable)?;
    let fault = fault_route(b, i, st.tcb, mon_ep, earlier);
    fixed_slots(b, i, &st, fault, mon_ep);
    irqs(b, pd, &st)?;
    let thread = ThreadSetup {
        ipc,
        fault,
        writable,
        entry: prog.image.entry,
    };
    record(b, i, &st, thread, regions);
    if let Some(vm) = &pd.vm {
        let ep = st.ep.expect("a PD with a VM has an endpoint");
        build_vm(b, vm, st.cnode, ep, regions)?;
    }
    Ok(st)
}

/// A PD's kernel objects, named `n.*`, and Microkit's two-level CSpace:
/// the Microkit CNode in slot 0 of the root CNode.
fn pd_objects(b: &mut Builder, i: usize, n: &str) -> PdState {
    let tcb = b.obj(format!("{n}.tcb"), ObjectKind::Tcb);
    let vspace = b.obj(format!("{n}.vspace"), ObjectKind::VSpace);
    let sc = b.obj(
        format!("{n}.sc"),
        ObjectKind::SchedContext {
            size_bits: SCHED_CONTEXT_BITS,
        },
    );
    let ntfn = b.obj(format!("{n}.ntfn"), ObjectKind::Notification);
    let reply = b.obj(format!("{n}.reply"), ObjectKind::Reply);
    let ep = needs_ep(b.sys, i).then(|| b.obj(format!("{n}.ep"), ObjectKind::Endpoint));
    let root_cnode = b.obj(
        format!("{n}.cnode.root"),
        ObjectKind::CNode {
            radix: ROOT_CNODE_BITS,
        },
    );
    let cnode = b.obj(
        format!("{n}.cnode"),
        ObjectKind::CNode {
            radix: PD_CNODE_BITS,
        },
    );
    b.slot(
        root_cnode,
        0,
        Cap::Object {
            obj: cnode,
            rights: Rights::ALL,
            badge: 0,
            guard_size: (WORD_BITS as u8) - ROOT_CNODE_BITS - PD_CNODE_BITS,
        },
    );
    PdState {
        tcb,
        sc,
        vspace,
        ntfn,
        reply,
        ep,
        cnode,
        root_cnode,
    }
}

/// The program image's pages: each page gets the file bytes of every
/// segment that touches it (a page two segments share gets both) and the
/// union of their permissions. Checked against the stack's lowest address.
fn image_pages(b: &mut Builder, image: &ElfImage) -> BTreeMap<u64, (Vec<Fill>, MapAttrs)> {
    let mut pages: BTreeMap<u64, (Vec<Fill>, MapAttrs)> = BTreeMap::new();
    for seg in &image.segments {
        let at = b.data(&seg.data);
        let file_end = seg.vaddr + seg.data.len() as u64;
        let mut page = seg.vaddr & !(PAGE - 1);
        while page < seg.end() {
            let entry = pages.entry(page).or_insert_with(|| {
                (
                    vec![],
                    MapAttrs {
                        read: false,
                        write: false,
                        execute: false,
                        cached: true,
                    },
                )
            });
            entry.1.read |= seg.read;
            entry.1.write |= seg.write;
            entry.1.execute |= seg.execute;
            let from = page.max(seg.vaddr);
            let to = (page + PAGE).min(file_end);
            if from < to {
                entry.0.push(Fill {
                    offset: (from - page) as u32,
                    len: (to - from) as u32,
                    source: FillSource::Data {
                        offset: at + (from - seg.vaddr),
                    },
                });
            }
            page += PAGE;
        }
    }
    pages
}

/// The program image as frames mapped into the PD; returns the writable
/// ones (the monitor reloads them on a restart with `memory = "reload"`).
fn map_image(
    b: &mut Builder,
    pd: &septa_sysdesc::Pd,
    (vspace, n): (ObjId, &str),
    image: &ElfImage,
) -> Result<Vec<ObjId>, SpecError> {
    let pages = image_pages(b, image);
    // A cell's quota covers its program too: image pages, stack, heap and
    // its services' regions (the description was checked without the
    // image).
    // (A Linux cell's quota is its guest's RAM, a region of its own.)
    if let Some(c) = b
        .sys
        .cells
        .iter()
        .find(|c| b.sys.pds[c.pd].name == pd.name && c.linux.is_none())
    {
        let image = pages.len() as u64 * PAGE;
        let need = image + pd.stack_size + c.heap + c.regions;
        if need > c.memory {
            return Err(SpecError::CellQuota {
                cell: pd.name.clone(),
                image,
                stack: pd.stack_size,
                heap: c.heap,
                regions: c.regions,
                quota: c.memory,
            });
        }
    }
    if let Some((&last, _)) = pages.iter().next_back() {
        if last + PAGE > STACK_TOP - pd.stack_size {
            return Err(SpecError::StackOverlap {
                pd: pd.name.clone(),
                size: pd.stack_size,
                end: last + PAGE,
            });
        }
    }
    let mut writable = Vec::new();
    for (page, (fill, a)) in pages {
        let f = b.obj_at(
            format!("{n}.image.{page:#x}"),
            ObjectKind::Frame {
                size_bits: PAGE_BITS as u8,
            },
            None,
            fill,
        );
        if a.write {
            writable.push(f);
        }
        let what = format!("its program page {page:#x}");
        b.map((vspace, n), f, PAGE_BITS, page, a, &what)?;
    }
    Ok(writable)
}

/// The regions `maps` names, mapped into an address space (a PD's or a
/// VM's), frame by frame.
fn map_regions(
    b: &mut Builder,
    space: (ObjId, &str),
    maps: &[septa_sysdesc::Map],
    regions: &RegionFrames,
) -> Result<(), SpecError> {
    for m in maps {
        let (bits, frames) = &regions[m.region.as_str()];
        let a = attrs(m.perms, m.cached);
        let what = format!("region `{}`", m.region);
        for (k, f) in frames.iter().enumerate() {
            let vaddr = m.vaddr + ((k as u64) << bits);
            b.map(space, *f, *bits, vaddr, a, &what)?;
        }
    }
    Ok(())
}

/// The IPC buffer at the top user page, and the stack below it with a guard
/// page between; returns the IPC buffer's frame and adds the stack's to
/// `writable`.
fn map_ipc_buffer_and_stack(
    b: &mut Builder,
    pd: &septa_sysdesc::Pd,
    (vspace, n): (ObjId, &str),
    writable: &mut Vec<ObjId>,
) -> Result<ObjId, SpecError> {
    let page = ObjectKind::Frame {
        size_bits: PAGE_BITS as u8,
    };
    let ipc = b.obj(format!("{n}.ipc_buffer"), page);
    b.map(
        (vspace, n),
        ipc,
        PAGE_BITS,
        IPC_BUFFER_VADDR,
        RW,
        "its IPC buffer",
    )?;
    let lowest = STACK_TOP - pd.stack_size;
    for k in 0..pd.stack_size / PAGE {
        let s = b.obj(format!("{n}.stack.{k}"), page);
        writable.push(s);
        b.map(
            (vspace, n),
            s,
            PAGE_BITS,
            lowest + k * PAGE,
            RW,
            "its stack",
        )?;
    }
    Ok(ipc)
}

/// Where PD `i`'s faults go: to the monitor with badge `i + 1`, or, for a
/// child, to its parent's endpoint with the child's id (and the parent gets
/// the child's TCB).
fn fault_route(
    b: &mut Builder,
    i: usize,
    tcb: ObjId,
    mon_ep: ObjId,
    earlier: &[PdState],
) -> FaultRoute {
    let pd = &b.sys.pds[i];
    match (pd.parent, pd.child_id) {
        (Some(parent), Some(id)) => {
            let p = &earlier[parent];
            let ep = p.ep.expect("a parent has an endpoint");
            b.slot(
                p.cnode,
                slot::BASE_TCB + id,
                Builder::cap(tcb, Rights::ALL, 0),
            );
            (ep, FAULT_BADGE | id)
        }
        _ => (mon_ep, i as u64 + 1),
    }
}

/// The Microkit CNode's fixed slots: input, fault endpoint, VSpace, reply,
/// its own TCB (benchmark configuration, as Microkit 2.3.0 gives it), and
/// the monitor's endpoint (passive PDs) and SMC (when allowed).
fn fixed_slots(b: &mut Builder, i: usize, st: &PdState, fault: FaultRoute, mon_ep: ObjId) {
    let pd = &b.sys.pds[i];
    let input = match st.ep {
        Some(e) => Builder::cap(e, Rights::RWG, 0),
        None => Builder::cap(st.ntfn, Rights::RW, 0),
    };
    let cnode = st.cnode;
    b.slot(cnode, slot::INPUT, input);
    // A cell gets no capability it was not declared: not its fault
    // endpoint (the kernel holds the TCB's own copy; with one in its
    // CSpace it could send the monitor forged faults) nor its VSpace.
    let cell = b.sys.cells.iter().find(|c| c.pd == i);
    let is_cell = cell.is_some();
    if !is_cell {
        b.slot(
            cnode,
            slot::FAULT_EP,
            Builder::cap(fault.0, Rights::RWG, fault.1),
        );
    }
    // A Linux cell's VMM keeps its VSpace: it cleans the guest's files to
    // the point of coherency with it (a VSpace cap maps nothing without a
    // frame cap, and it holds none but its own regions'). A sealed one
    // loads nothing, and gets none.
    let loads = |l: &septa_sysdesc::CellLinux| l.shared.is_none();
    if !is_cell || cell.is_some_and(|c| c.linux.as_ref().is_some_and(loads)) {
        b.slot(cnode, slot::VSPACE, Builder::cap(st.vspace, Rights::ALL, 0));
    }
    b.slot(cnode, slot::REPLY, Builder::cap(st.reply, Rights::ALL, 0));
    if b.own_tcb && !is_cell {
        b.slot(cnode, slot::TCB, Builder::cap(st.tcb, Rights::ALL, 0));
    }
    // Passive PDs say on it that their init is done; the statistics PD
    // asks for refreshes.
    let stats = b.sys.stats.as_ref().is_some_and(|s| s.pd == i);
    if pd.passive || stats {
        b.slot(
            cnode,
            slot::MONITOR_EP,
            Builder::cap(mon_ep, Rights::RWG, i as u64 + 1),
        );
    }
    if pd.smc {
        b.slot(cnode, slot::SMC, Cap::Smc);
    }
}

/// IRQs: each delivered to the PD's notification with its channel's bit,
/// its handler in the Microkit CNode. I/O ports are refused.
fn irqs(b: &mut Builder, pd: &septa_sysdesc::Pd, st: &PdState) -> Result<(), SpecError> {
    for irq in &pd.irqs {
        let (number, edge) = match &irq.kind {
            IrqKind::Arm { irq, trigger, .. } => (*irq, *trigger == Trigger::Edge),
            other => {
                return Err(SpecError::Unsupported(format!(
                    "PD `{}`: IRQ {other:?}",
                    pd.name
                )))
            }
        };
        b.out.irqs.push(Irq {
            irq: number as u16,
            edge,
            notification: st.ntfn,
            badge: 1 << irq.id,
        });
        b.slot(
            st.cnode,
            slot::BASE_IRQ + irq.id,
            Cap::IrqHandler { irq: number as u16 },
        );
    }
    if !pd.ioports.is_empty() {
        return Err(SpecError::Unsupported(format!(
            "PD `{}`: I/O ports",
            pd.name
        )));
    }
    Ok(())
}

/// What a PD's thread and record need besides its objects.
struct ThreadSetup {
    /// The IPC buffer's frame.
    ipc: ObjId,
    fault: FaultRoute,
    /// Frames a restart with `memory = "reload"` resets.
    writable: Vec<ObjId>,
    /// The program's entry point.
    entry: u64,
}

/// PD `i`'s thread and its record for the monitor.
fn record(b: &mut Builder, i: usize, st: &PdState, t: ThreadSetup, regions: &RegionFrames) {
    let ThreadSetup {
        ipc,
        fault,
        writable,
        entry,
    } = t;
    let pd = &b.sys.pds[i];
    let is_cell = b.sys.cells.iter().any(|c| c.pd == i);
    let thread = b.out.threads.len() as u32;
    b.out.threads.push((
        pd.name.clone(),
        Thread {
            tcb: st.tcb,
            name: "",
            cspace: st.root_cnode,
            cspace_guard_size: 0,
            vspace: st.vspace,
            ipc_buffer: ipc,
            ipc_buffer_vaddr: IPC_BUFFER_VADDR,
            priority: pd.priority,
            max_priority: pd.priority,
            sched_context: Some(SchedParams {
                sched_context: st.sc,
                budget_us: pd.budget_us,
                period_us: pd.period_us,
                badge: SCHED_BADGE_BASE + i as u64,
            }),
            fault_endpoint: Some(fault),
            // A cell's overruns go to the monitor (which counts them and
            // lets it run on), with its fault badge.
            timeout_endpoint: is_cell.then_some(fault),
            bound_notification: Some(st.ntfn),
            entry,
            stack_top: STACK_TOP,
            start: true,
            vcpu: None,
            fpu: pd.fpu,
            domain: 0,
        },
    ));
    b.out.pds.push((
        pd.name.clone(),
        Pd {
            name: "",
            thread,
            parent: pd.parent.map(|p| p as u32),
            fault_badge: fault.1,
            passive: pd.passive,
            notification: st.ntfn,
            policy: if pd.parent.is_some() {
                // The parent handles a child's faults, not the monitor.
                Policy::Stop
            } else {
                policy(pd)
            },
            writable_frames: writable,
            // Word 0 of the region's first frame (validation made sure the
            // region exists and the policy is restart).
            generation: pd
                .restart
                .generation
                .as_deref()
                .and_then(|g| regions.get(g))
                .and_then(|(_, frames)| frames.first())
                .map(|f| (*f, 0)),
            reply: st.reply,
            stack: (STACK_TOP - pd.stack_size, STACK_TOP),
            cell: is_cell,
        },
    ));
}

/// A virtual machine: its own address space, one thread per vCPU, stopped
/// until the parent starts it; the parent's CNode gets each vCPU and its
/// TCB, and `ep` (the parent's) receives their faults.
fn build_vm(
    b: &mut Builder,
    vm: &septa_sysdesc::Vm,
    cnode: ObjId,
    ep: ObjId,
    regions: &RegionFrames,
) -> Result<(), SpecError> {
    let vn = format!("vm.{}", vm.name);
    let vm_space = b.obj(format!("{vn}.vspace"), ObjectKind::VSpace);
    map_regions(b, (vm_space, &vn), &vm.maps, regions)?;
    for (k, v) in vm.vcpus.iter().enumerate() {
        let cn = format!("{vn}.vcpu{}", v.id);
        let vtcb = b.obj(format!("{cn}.tcb"), ObjectKind::Tcb);
        let vsc = b.obj(
            format!("{cn}.sc"),
            ObjectKind::SchedContext {
                size_bits: SCHED_CONTEXT_BITS,
            },
        );
        let vcpu = b.obj(cn.clone(), ObjectKind::Vcpu);
        let vcnode = b.obj(
            format!("{cn}.cnode"),
            ObjectKind::CNode {
                radix: PD_CNODE_BITS,
            },
        );
        let vipc = b.obj(
            format!("{cn}.ipc_buffer"),
            ObjectKind::Frame {
                size_bits: PAGE_BITS as u8,
            },
        );
        b.out.threads.push((
            cn.clone(),
            Thread {
                tcb: vtcb,
                name: "",
                cspace: vcnode,
                cspace_guard_size: (WORD_BITS as u8) - PD_CNODE_BITS,
                vspace: vm_space,
                ipc_buffer: vipc,
                // Not mapped: a vCPU thread never uses its IPC buffer.
                ipc_buffer_vaddr: 0,
                priority: vm.priority,
                max_priority: vm.priority,
                sched_context: Some(SchedParams {
                    sched_context: vsc,
                    budget_us: vm.budget_us,
                    period_us: vm.period_us,
                    badge: SCHED_BADGE_BASE + k as u64,
                }),
                fault_endpoint: Some((ep, FAULT_BADGE | v.id)),
                timeout_endpoint: None,
                bound_notification: None,
                entry: 0,
                stack_top: 0,
                start: false,
                vcpu: Some(vcpu),
                fpu: true,
                domain: 0,
            },
        ));
        b.slot(
            cnode,
            slot::BASE_VCPU + v.id,
            Builder::cap(vcpu, Rights::ALL, 0),
        );
        b.slot(
            cnode,
            slot::BASE_VM_TCB + v.id,
            Builder::cap(vtcb, Rights::ALL, 0),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::tests::sample;

    const SYSTEM: &str = r#"
[system]
board = "qemu-virt"

[pd.server]
program = "server"
priority = 200
passive = true
maps = [{ region = "shared", vaddr = 0x3000_0000 }]
irqs = [{ irq = 40, id = 3, trigger = "edge" }]

[pd.client]
program = "client"
priority = 100
stack = "16 KiB"
restart = { policy = "restart", limit = 3 }
maps = [{ region = "shared", vaddr = 0x4000_0000, perms = "r" }, { region = "uart", vaddr = 0x5000_0000, cached = false }]
caps = [{ slot = 2, cap = "sc", pd = "client" }]

[pd.client.children.kid]
id = 4
program = "kid"
priority = 50

[region.shared]
size = "8 KiB"

[region.uart]
device = "uart"

[[channel]]
a = { pd = "client", id = 1, pp = true, notify = false }
b = { pd = "server", id = 2 }

[[channel]]
a = { pd = "client", id = 5 }
b = { pd = "server", id = 0 }
"#;

    fn built() -> Built {
        let sys = septa_sysdesc::parse_str("t.toml", SYSTEM, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system;
        let img = sample();
        let progs: Vec<Program> = sys.pds.iter().map(|_| Program { image: &img }).collect();
        build(
            &sys,
            &progs,
            &HashMap::new(),
            Path::new("."),
            septa_abi::Config::Debug,
        )
        .unwrap()
    }

    fn id(b: &Built, name: &str) -> ObjId {
        b.objects
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no object {name}")) as ObjId
    }

    fn slot_cap(b: &Built, cnode: &str, index: u64) -> Cap {
        let c = id(b, cnode);
        b.slots
            .iter()
            .find(|s| s.cnode == c && s.index == index)
            .unwrap_or_else(|| panic!("{cnode} slot {index} empty"))
            .cap
    }

    fn target(cap: Cap) -> (ObjId, u64) {
        match cap {
            Cap::Object { obj, badge, .. } => (obj, badge),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_spec_checks_and_round_trips() {
        let b = built();
        let spec = b.spec();
        spec.check().unwrap();
        let blob = septa_spec::encode_blob(&spec, &b.data);
        let (back, data) = septa_spec::decode_blob(&blob).unwrap();
        assert_eq!(back, spec);
        assert_eq!(data, &b.data[..]);
    }

    #[test]
    fn channels_have_microkit_badges_and_slots() {
        let b = built();
        // client notifies server on its channel 5: server's notification,
        // badge 1 << (server's id 0).
        assert_eq!(
            target(slot_cap(&b, "pd.client.cnode", 10 + 5)),
            (id(&b, "pd.server.ntfn"), 1 << 0)
        );
        // server notifies client on its channel 2 (client's id 1).
        assert_eq!(
            target(slot_cap(&b, "pd.server.cnode", 10 + 2)),
            (id(&b, "pd.client.ntfn"), 1 << 1)
        );
        // client calls server on channel 1: server's endpoint, PPC badge
        // with the server's id.
        assert_eq!(
            target(slot_cap(&b, "pd.client.cnode", 74 + 1)),
            (id(&b, "pd.server.ep"), 1 << 63 | 2)
        );
        // The pp end notifies nothing (notify = false).
        let c = id(&b, "pd.client.cnode");
        assert!(!b.slots.iter().any(|s| s.cnode == c && s.index == 10 + 1));
        // The server is called, so its input is its endpoint.
        assert_eq!(
            target(slot_cap(&b, "pd.server.cnode", 1)).0,
            id(&b, "pd.server.ep")
        );
    }

    #[test]
    fn faults_go_to_the_monitor_or_the_parent() {
        let b = built();
        let mon = id(&b, "monitor.fault_ep");
        assert_eq!(target(slot_cap(&b, "pd.server.cnode", 2)), (mon, 1));
        assert_eq!(target(slot_cap(&b, "pd.client.cnode", 2)), (mon, 2));
        assert_eq!(
            target(slot_cap(&b, "pd.kid.cnode", 2)),
            (id(&b, "pd.client.ep"), 1 << 62 | 4)
        );
        assert_eq!(
            target(slot_cap(&b, "pd.client.cnode", 202 + 4)).0,
            id(&b, "pd.kid.tcb")
        );
        // The passive server reaches the monitor on slot 5 with its badge.
        assert_eq!(target(slot_cap(&b, "pd.server.cnode", 5)), (mon, 1));
        assert_eq!(
            b.pds[1].1.policy,
            Policy::Restart {
                limit: 3,
                backoff_us: 0,
                reset_memory: true
            }
        );
        assert_eq!(b.pds[2].1.parent, Some(1));
    }

    #[test]
    fn the_cspace_is_microkits_two_levels() {
        let b = built();
        match slot_cap(&b, "pd.client.cnode.root", 0) {
            Cap::Object {
                obj, guard_size, ..
            } => {
                assert_eq!(obj, id(&b, "pd.client.cnode"));
                assert_eq!(guard_size, 64 - 6 - 9);
            }
            other => panic!("{other:?}"),
        }
        // The extra cap lands in the root CNode.
        assert_eq!(
            target(slot_cap(&b, "pd.client.cnode.root", 2)).0,
            id(&b, "pd.client.sc")
        );
        let t = &b.threads[1].1;
        assert_eq!(
            (t.cspace, t.cspace_guard_size),
            (id(&b, "pd.client.cnode.root"), 0)
        );
    }

    #[test]
    fn images_stacks_and_regions_are_mapped() {
        let b = built();
        let vs = id(&b, "pd.client.vspace");
        let maps: Vec<&Mapping> = b.mappings.iter().filter(|m| m.vspace == vs).collect();
        let find = |vaddr: u64| {
            maps.iter()
                .find(|m| m.vaddr == vaddr && !b.name(m.object).contains(".pt"))
                .unwrap_or_else(|| panic!("nothing at {vaddr:#x}"))
        };
        // Text: read + execute, filled with the segment's bytes.
        let text = find(0x20_0000);
        assert!(text.attrs.execute && !text.attrs.write);
        let obj = &b.objects[text.object as usize].1;
        assert_eq!(obj.fill.len(), 1);
        let FillSource::Data { offset } = obj.fill[0].source else {
            panic!()
        };
        assert_eq!(b.data[offset as usize], 0xaa);
        // The second text page holds 0x800 bytes of file data.
        assert_eq!(
            b.objects[find(0x20_1000).object as usize].1.fill[0].len,
            0x800
        );
        // The .bss part of the data segment is mapped but not filled.
        let bss = find(0x20_4000);
        assert!(bss.attrs.write && b.objects[bss.object as usize].1.fill.is_empty());
        // Stack: 16 KiB just below the guard page under the IPC buffer.
        for k in 0..4 {
            find(STACK_TOP - 0x4000 + k * 0x1000);
        }
        assert!(maps.iter().all(|m| m.vaddr != STACK_TOP));
        find(IPC_BUFFER_VADDR);
        // The region's two frames, read-only for the client; the device
        // uncached at the uart's address.
        let shared = find(0x4000_1000);
        assert!(shared.attrs.read && !shared.attrs.write);
        let uart = find(0x5000_0000);
        assert!(!uart.attrs.cached);
        assert_eq!(b.objects[uart.object as usize].1.paddr, Some(0x900_0000));
        // Writable frames (data, bss, stack) are restored on restart.
        let p = &b.pds[1].1;
        assert_eq!(p.writable_frames.len(), 3 + 4);
        assert_eq!(p.stack, (STACK_TOP - 0x4000, STACK_TOP));
    }

    #[test]
    fn page_tables_precede_frames_upper_level_first() {
        let b = built();
        let is_pt = |m: &Mapping| b.objects[m.object as usize].1.kind == ObjectKind::PageTable;
        let first_frame = b.mappings.iter().position(|m| !is_pt(m)).unwrap();
        assert!(b.mappings[first_frame..].iter().all(|m| !is_pt(m)));
        let levels: Vec<bool> = b.mappings[..first_frame]
            .iter()
            .map(|m| b.name(m.object).contains(".pt2."))
            .collect();
        assert!(levels.windows(2).all(|w| w[0] >= w[1]), "{levels:?}");
        // The client maps 0x20_0000 (GiB 0), 0x4000_0000 (GiB 1), 0x5000_0000
        // (GiB 1) and the top: three second-level tables.
        let vs = id(&b, "pd.client.vspace");
        let l2 = b.mappings[..first_frame]
            .iter()
            .filter(|m| m.vspace == vs && b.name(m.object).contains(".pt2."))
            .count();
        assert_eq!(l2, 3);
    }

    #[test]
    fn irqs_and_passive_pds() {
        let b = built();
        assert_eq!(b.irqs.len(), 1);
        assert_eq!(
            (b.irqs[0].irq, b.irqs[0].edge, b.irqs[0].badge),
            (40, true, 1 << 3)
        );
        assert_eq!(
            slot_cap(&b, "pd.server.cnode", 138 + 3),
            Cap::IrqHandler { irq: 40 }
        );
        assert!(b.pds[0].1.passive);
        // Passive PDs still start with a scheduling context.
        assert!(b.threads[0].1.sched_context.is_some());
    }

    #[test]
    fn a_map_over_the_image_is_refused() {
        let src = SYSTEM.replace("vaddr = 0x3000_0000", "vaddr = 0x20_0000");
        let err = build_text(&src).unwrap_err();
        assert!(matches!(err, SpecError::MapOverlap { .. }), "{err}");
    }

    const CELLS: &str = r#"
[system]
board = "qemu-virt"

[pd.server]
program = "server"
priority = 200

[cell.worker]
program = "worker"
memory = "1 MiB"
heap = "64 KiB"
services = [{ kind = "channel", pd = "server", id = 3, pp = true }]
"#;

    /// The spec of a description, every program the sample image.
    fn build_text(text: &str) -> Result<Built, SpecError> {
        let sys = septa_sysdesc::parse_str("c.toml", text, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system;
        let img = sample();
        let progs: Vec<Program> = sys.pds.iter().map(|_| Program { image: &img }).collect();
        build(
            &sys,
            &progs,
            &HashMap::new(),
            Path::new("."),
            septa_abi::Config::Debug,
        )
    }

    #[test]
    fn a_cell_gets_only_what_sending_needs_and_a_timeout_endpoint() {
        let b = build_text(CELLS).unwrap();
        let w = b.pds.iter().position(|(n, _)| n == "worker").unwrap();
        assert!(b.pds[w].1.cell);
        let t = &b.threads[b.pds[w].1.thread as usize].1;
        assert_eq!(t.timeout_endpoint, t.fault_endpoint);
        // Its channel to the server: call without receiving; no fault
        // endpoint or VSpace cap in its CSpace.
        let cnode = "pd.worker.cnode";
        match slot_cap(&b, cnode, slot::BASE_ENDPOINT) {
            Cap::Object { rights, .. } => assert_eq!(rights, Rights::CALL),
            other => panic!("{other:?}"),
        }
        match slot_cap(&b, cnode, slot::BASE_OUTPUT_NOTIFICATION) {
            Cap::Object { rights, .. } => assert_eq!(rights, Rights::WRITE),
            other => panic!("{other:?}"),
        }
        let id = b.objects.iter().position(|(n, _)| n == cnode).unwrap() as ObjId;
        for s in [slot::FAULT_EP, slot::VSPACE] {
            assert!(!b.slots.iter().any(|x| x.cnode == id && x.index == s));
        }
        // The server, a PD, keeps Microkit's caps and has no timeout
        // endpoint.
        let srv = &b.pds[b.pds.iter().position(|(n, _)| n == "server").unwrap()].1;
        assert!(!srv.cell);
        assert!(b.threads[srv.thread as usize].1.timeout_endpoint.is_none());
    }

    #[test]
    fn a_linux_cells_vmm_is_a_cell_that_keeps_its_vspace_and_runs_its_vcpu_below_it() {
        let text = r#"
[system]
board = "qemu-virt"

[pd.watch]
program = "watch"
priority = 50

[cell.web]
linux = { ram = "64 MiB" }
services = [{ kind = "channel", pd = "watch", id = 0 }]
"#;
        let b = build_text(text).unwrap();
        let w = b.pds.iter().position(|(n, _)| n == "web").unwrap();
        assert!(b.pds[w].1.cell);
        let cnode = "pd.web.cnode";
        let id = b.objects.iter().position(|(n, _)| n == cnode).unwrap() as ObjId;
        let has = |s: u64| b.slots.iter().any(|x| x.cnode == id && x.index == s);
        assert!(!has(slot::FAULT_EP));
        assert!(
            has(slot::VSPACE),
            "the VMM cleans its guest's files with it"
        );
        // Its channel to `watch`: notify only.
        match slot_cap(&b, cnode, slot::BASE_OUTPUT_NOTIFICATION) {
            Cap::Object { rights, .. } => assert_eq!(rights, Rights::WRITE),
            other => panic!("{other:?}"),
        }
        // The VCPU runs one below the VMM; the VMM may not be notified by
        // `watch`.
        let vmm = &b.threads[b.pds[w].1.thread as usize].1;
        let vcpu = b.threads.iter().find(|(_, t)| t.vcpu.is_some()).unwrap();
        assert_eq!(vcpu.1.priority + 1, vmm.priority);
        let watch = b
            .objects
            .iter()
            .position(|(n, _)| n == "pd.watch.cnode")
            .unwrap() as ObjId;
        assert!(!b
            .slots
            .iter()
            .any(|x| x.cnode == watch && x.index == slot::BASE_OUTPUT_NOTIFICATION));
    }

    #[test]
    fn a_cell_whose_program_does_not_fit_its_quota_is_refused() {
        // 64 KiB heap and 8 KiB stack leave no room for the program.
        let err = build_text(&CELLS.replace("1 MiB", "72 KiB")).unwrap_err();
        assert!(matches!(err, SpecError::CellQuota { .. }), "{err}");
        assert!(err.to_string().contains("program image"), "{err}");
    }
}
