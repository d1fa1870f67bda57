//! Realising the spec: every object from untyped memory, filled, mapped,
//! its capabilities minted, its threads configured and started.
//!
//! The stages, in the order the kernel needs them:
//! 1. create: the allocation plan (`septa_spec::place`, the same the tool
//!    simulated) over BootInfo's untyped list, performed one
//!    `Untyped_Retype` at a time into free slots of the initializer's CNode;
//! 2. ASIDs: every VSpace into the initial ASID pool;
//! 3. fill: each frame with contents through the window;
//! 4. map: page tables, then frames (each mapping through its own copy of
//!    the frame capability, since a capability maps once);
//! 5. IRQs: a handler per interrupt, delivering to a badged notification;
//! 6. slots: every capability minted into its CNode slot;
//! 7. threads: scheduling context, CSpace, VSpace, IPC buffer, priorities,
//!    fault endpoint, bound notification, vCPU, registers;
//! 8. start: resume every thread the spec starts;
//! 9. the domain schedule, if any (threads got their domains in 7).
//!
//! A failure names the stage and the object and stops there.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use septa_abi::bootinfo::BootInfo;
use septa_abi::{init_cap, CNodeCapData, CapRights, ObjectType, WORD_BITS};
use septa_sel4::bootinfo::BootInfoRef;
use septa_sel4::invocation::build;
use septa_sel4::{cap_type, CPtr, Cap, Error, UserContext, VmAttributes};
use septa_spec::place::{self, From, Step, Untyped};
use septa_spec::{Cap as SpecCap, FillSource, MapAttrs, ObjId, ObjectKind, Rights, Spec};

use crate::frames::{self, FrameAccess};

/// The initializer's root CNode, as the kernel set it up.
pub const ROOT: Cap<cap_type::CNode> = Cap::from_bits(init_cap::CNODE);
/// Depth of a lookup in the initializer's CSpace: a whole word.
pub const DEPTH: u8 = WORD_BITS as u8;

/// What went wrong, and where.
#[derive(Debug)]
pub struct Failure<'a> {
    pub stage: &'static str,
    /// The object (or thread, or PD) concerned.
    pub what: &'a str,
    pub cause: Cause,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Cause {
    Kernel(Error),
    Place(place::PlaceError),
    /// The initializer's CNode has no free slot left.
    NoSlots,
    /// A fill points outside the blob's data area or the frame.
    BadFill,
    /// An object kind or size the initializer cannot make or map.
    Unsupported,
}

impl fmt::Display for Failure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}` failed: ", self.stage, self.what)?;
        match &self.cause {
            Cause::Kernel(e) => write!(f, "{e}"),
            Cause::Place(e) => match e {
                place::PlaceError::Misaligned { paddr, .. } => {
                    write!(f, "its address {paddr:#x} is not aligned to its size")
                }
                place::PlaceError::NotCovered { paddr, .. } => {
                    write!(f, "no untyped memory covers its address {paddr:#x}")
                }
                place::PlaceError::Overlap { paddr, .. } => {
                    write!(f, "its address {paddr:#x} overlaps another fixed object")
                }
                place::PlaceError::NoSpace { size_bits, .. } => {
                    write!(f, "no free untyped block of 2^{size_bits} bytes is left")
                }
            },
            Cause::NoSlots => write!(f, "no free slot left in the initializer's CNode"),
            Cause::BadFill => write!(f, "a fill lies outside the data area or the frame"),
            Cause::Unsupported => write!(f, "not supported by this initializer"),
        }
    }
}

/// Free slots of the initializer's CNode.
#[derive(Clone, Copy, Debug)]
pub struct Slots {
    next: u64,
    end: u64,
}

impl Slots {
    pub fn new(bi: &BootInfo) -> Slots {
        Slots {
            next: bi.empty.start,
            end: bi.empty.end,
        }
    }

    pub fn take(&mut self) -> Result<CPtr, Cause> {
        if self.next >= self.end {
            return Err(Cause::NoSlots);
        }
        self.next += 1;
        Ok(CPtr::from_bits(self.next - 1))
    }
}

/// What the initializer holds after realising: the slot of each object's
/// original capability, and the free slots left.
#[derive(Debug)]
pub struct Realized {
    pub objects: Vec<CPtr>,
    pub slots: Slots,
}

impl Realized {
    pub fn cap<T: septa_sel4::CapType>(&self, id: ObjId) -> Cap<T> {
        self.objects[id as usize].cast()
    }
}

/// The object type and size argument of `Untyped_Retype` for `kind`.
/// The domain capability BootInfo gives the root task.
fn domain_cap() -> Cap<cap_type::DomainSet> {
    Cap::from_bits(init_cap::DOMAIN)
}

pub fn retype_args(kind: ObjectKind) -> Option<(ObjectType, u64)> {
    Some(match kind {
        ObjectKind::Tcb => (ObjectType::Tcb, 0),
        ObjectKind::Endpoint => (ObjectType::Endpoint, 0),
        ObjectKind::Notification => (ObjectType::Notification, 0),
        ObjectKind::Reply => (ObjectType::Reply, 0),
        ObjectKind::SchedContext { size_bits } => (ObjectType::SchedContext, size_bits.into()),
        ObjectKind::CNode { radix } => (ObjectType::CNode, radix.into()),
        ObjectKind::VSpace => (ObjectType::VSpace, 0),
        ObjectKind::PageTable => (ObjectType::PageTable, 0),
        ObjectKind::Frame { size_bits } => match u32::from(size_bits) {
            septa_abi::PAGE_BITS => (ObjectType::SmallPage, 0),
            septa_abi::LARGE_PAGE_BITS => (ObjectType::LargePage, 0),
            septa_abi::HUGE_PAGE_BITS => (ObjectType::HugePage, 0),
            _ => return None,
        },
        ObjectKind::Vcpu => (ObjectType::Vcpu, 0),
    })
}

fn cap_rights(r: Rights) -> CapRights {
    CapRights::new(r.grant_reply, r.grant, r.read, r.write)
}

/// seL4 page attributes for a mapping.
pub fn vm_attributes(a: MapAttrs) -> VmAttributes {
    let mut v = if a.cached {
        VmAttributes::DEFAULT
    } else {
        VmAttributes::NONE
    };
    if !a.execute {
        v = v.union(VmAttributes::EXECUTE_NEVER);
    }
    v
}

/// The untyped list of BootInfo, for the planner.
pub fn untypeds(bi: &BootInfoRef) -> Vec<Untyped> {
    bi.untyped()
        .map(|(_, d)| Untyped {
            paddr: d.paddr,
            size_bits: d.size_bits,
            device: d.is_device != 0,
        })
        .collect()
}

/// Copies the fills of a frame into `bytes` (already zero).
pub fn apply_fills(
    fills: &[septa_spec::Fill],
    bytes: &mut [u8],
    data: &[u8],
    bi: &BootInfoRef,
) -> Result<(), Cause> {
    for f in fills {
        let at = f.offset as usize;
        let len = f.len as usize;
        let dest = bytes.get_mut(at..at + len).ok_or(Cause::BadFill)?;
        match f.source {
            FillSource::Data { offset } => {
                let from = offset as usize;
                let src = data.get(from..from + len).ok_or(Cause::BadFill)?;
                dest.copy_from_slice(src);
            }
            FillSource::BootInfo { id, offset } => {
                // Bytes past the end of the region stay zero.
                if let Some((_, body)) = bi.extra_regions().find(|(i, _)| *i == id) {
                    let from = (offset as usize).min(body.len());
                    let n = len.min(body.len() - from);
                    dest[..n].copy_from_slice(&body[from..from + n]);
                }
            }
        }
    }
    Ok(())
}

/// Mints `cap` of the spec into `dest`/`index` (depth `depth`).
fn mint(
    dest: Cap<cap_type::CNode>,
    index: u64,
    depth: u8,
    src: CPtr,
    rights: CapRights,
    badge: u64,
) -> Result<(), Error> {
    dest.mint(
        CPtr::from_bits(index),
        depth,
        ROOT,
        src,
        DEPTH,
        rights,
        badge,
    )
}

/// A failure of `stage` on `what`.
fn fail<'a>(stage: &'static str, what: &'a str, cause: Cause) -> Failure<'a> {
    Failure { stage, what, cause }
}

/// Turns a kernel error of `stage` on `what` into a failure.
fn kernel<'a>(stage: &'static str, what: &'a str) -> impl Fn(Error) -> Failure<'a> {
    move |e| fail(stage, what, Cause::Kernel(e))
}

/// Creates, fills, maps, wires and starts everything in `spec`: the nine
/// stages of the module's comment, in order.
pub fn realize<'a>(
    spec: &Spec<'a>,
    data: &[u8],
    bi: &BootInfoRef,
    mem: &mut dyn FrameAccess,
) -> Result<Realized, Failure<'a>> {
    let mut r = create(spec, bi)?;
    assign_asids(spec, &r)?;
    fill(spec, data, bi, mem, &r)?;
    map(spec, &mut r)?;
    let handlers = irqs(spec, &mut r)?;
    fill_slots(spec, &r, &handlers)?;
    configure_threads(spec, bi, &mut r)?;
    start(spec, &r)?;
    schedule_domains(spec)?;
    Ok(r)
}

/// 1. Every object, retyped from untyped memory as the allocation plan
///    says, into free slots of the initializer's CNode.
fn create<'a>(spec: &Spec<'a>, bi: &BootInfoRef) -> Result<Realized, Failure<'a>> {
    let name = |id: ObjId| spec.objects[id as usize].name;
    let mut slots = Slots::new(bi.raw());
    let uts = untypeds(bi);
    let requests: Vec<place::Request> = spec
        .objects
        .iter()
        .map(|o| place::Request {
            size_bits: o.kind.size_bits(septa_abi::CONFIG),
            paddr: o.paddr,
        })
        .collect();
    let steps = place::plan(&uts, &requests).map_err(|e| {
        let obj = match e {
            place::PlaceError::Misaligned { obj, .. }
            | place::PlaceError::NotCovered { obj, .. }
            | place::PlaceError::Overlap { obj, .. }
            | place::PlaceError::NoSpace { obj, .. } => obj,
        };
        fail("allocating", name(obj), Cause::Place(e))
    })?;
    let boot_uts: Vec<Cap<cap_type::Untyped>> = bi.untyped().map(|(c, _)| c).collect();
    let mut children: Vec<Cap<cap_type::Untyped>> = Vec::new();
    let mut objects = vec![CPtr::NULL; spec.objects.len()];
    for s in &steps {
        let (from, ty, size, what) = match *s {
            Step::Child {
                from, size_bits, ..
            } => (
                from,
                ObjectType::Untyped,
                u64::from(size_bits),
                "an untyped filler",
            ),
            Step::Object { from, obj, .. } => {
                let (ty, size) = retype_args(spec.objects[obj as usize].kind)
                    .ok_or_else(|| fail("creating", name(obj), Cause::Unsupported))?;
                (from, ty, size, name(obj))
            }
        };
        let ut = match from {
            From::Boot(i) => boot_uts[i as usize],
            From::Child(c) => children[c as usize],
        };
        let dest = slots.take().map_err(|c| fail("creating", what, c))?;
        ut.retype(ty, size, ROOT, CPtr::NULL, 0, dest.bits(), 1)
            .map_err(kernel("creating", what))?;
        match *s {
            Step::Child { .. } => children.push(dest.cast()),
            Step::Object { obj, .. } => objects[obj as usize] = dest,
        }
    }
    Ok(Realized { objects, slots })
}

/// 2. Every VSpace into the initial ASID pool.
fn assign_asids<'a>(spec: &Spec<'a>, r: &Realized) -> Result<(), Failure<'a>> {
    let pool: Cap<cap_type::AsidPool> = Cap::from_bits(init_cap::ASID_POOL);
    for (id, o) in spec.objects.iter().enumerate() {
        if o.kind == ObjectKind::VSpace {
            pool.assign(r.cap(id as ObjId))
                .map_err(kernel("assigning an ASID to", o.name))?;
        }
    }
    Ok(())
}

/// 3. Each frame's contents, written through the initializer's window.
fn fill<'a>(
    spec: &Spec<'a>,
    data: &[u8],
    bi: &BootInfoRef,
    mem: &mut dyn FrameAccess,
    r: &Realized,
) -> Result<(), Failure<'a>> {
    if let Some(root) = spec.root {
        let own: Cap<cap_type::VSpace> = Cap::from_bits(init_cap::VSPACE);
        let [l2, l3] = root.window_tables;
        frames::install_window(own, r.objects[l2 as usize], r.objects[l3 as usize]).map_err(
            kernel(
                "installing the fill window with",
                spec.objects[l2 as usize].name,
            ),
        )?;
    }
    for (id, o) in spec.objects.iter().enumerate() {
        let ObjectKind::Frame { size_bits } = o.kind else {
            continue;
        };
        if o.fill.is_empty() {
            continue;
        }
        let mut result = Ok(());
        mem.with_frame(r.objects[id], size_bits, &mut |bytes| {
            result = apply_fills(&o.fill, bytes, data, bi);
        })
        .map_err(kernel("filling", o.name))?;
        result.map_err(|c| fail("filling", o.name, c))?;
    }
    Ok(())
}

/// 4. Page tables (upper levels first), then frames, each frame through a
///    copy of its capability (a capability maps once).
fn map<'a>(spec: &Spec<'a>, r: &mut Realized) -> Result<(), Failure<'a>> {
    for m in &spec.mappings {
        let obj = &spec.objects[m.object as usize];
        let vspace = r.objects[m.vspace as usize];
        match obj.kind {
            ObjectKind::PageTable => {
                r.cap::<cap_type::PageTable>(m.object)
                    .map(vspace.cast(), m.vaddr, VmAttributes::DEFAULT)
                    .map_err(kernel("mapping", obj.name))?;
            }
            _ => {
                let copy = r.slots.take().map_err(|c| fail("mapping", obj.name, c))?;
                ROOT.copy(
                    copy,
                    DEPTH,
                    ROOT,
                    r.objects[m.object as usize],
                    DEPTH,
                    CapRights::ALL,
                )
                .map_err(kernel("copying for a mapping", obj.name))?;
                let a = m.attrs;
                let rights = CapRights::new(false, false, a.read, a.write);
                copy.cast::<cap_type::Unspecified>()
                    .invoke(&build::page_map(
                        vspace,
                        m.vaddr,
                        rights,
                        vm_attributes(a).0,
                    ))
                    .map_err(kernel("mapping", obj.name))?;
            }
        }
    }
    Ok(())
}

/// 5. A handler per interrupt, delivering to a badged copy of its
///    notification; returns each IRQ's handler slot.
fn irqs<'a>(spec: &Spec<'a>, r: &mut Realized) -> Result<Vec<(u16, CPtr)>, Failure<'a>> {
    let irq_control: Cap<cap_type::IrqControl> = Cap::from_bits(init_cap::IRQ_CONTROL);
    let mut handlers: Vec<(u16, CPtr)> = Vec::with_capacity(spec.irqs.len());
    for q in &spec.irqs {
        let what = spec.objects[q.notification as usize].name;
        let h = r
            .slots
            .take()
            .map_err(|c| fail("getting an IRQ handler for", what, c))?;
        irq_control
            .get_trigger(q.irq.into(), q.edge, ROOT, h, DEPTH)
            .map_err(kernel("getting an IRQ handler for", what))?;
        let n = r
            .slots
            .take()
            .map_err(|c| fail("badging a notification", what, c))?;
        mint(
            ROOT,
            n.bits(),
            DEPTH,
            r.objects[q.notification as usize],
            CapRights::ALL,
            q.badge,
        )
        .map_err(kernel("badging for an IRQ", what))?;
        h.cast::<cap_type::IrqHandler>()
            .set_notification(n.cast())
            .map_err(kernel("delivering an IRQ to", what))?;
        handlers.push((q.irq, h));
    }
    Ok(handlers)
}

/// 6. Every capability of the spec, minted into its CNode slot.
fn fill_slots<'a>(
    spec: &Spec<'a>,
    r: &Realized,
    handlers: &[(u16, CPtr)],
) -> Result<(), Failure<'a>> {
    for s in &spec.slots {
        let dest_obj = &spec.objects[s.cnode as usize];
        let ObjectKind::CNode { radix } = dest_obj.kind else {
            return Err(fail("filling a slot of", dest_obj.name, Cause::Unsupported));
        };
        let dest: Cap<cap_type::CNode> = r.cap(s.cnode);
        let res = match s.cap {
            SpecCap::Object {
                obj,
                rights,
                badge,
                guard_size,
            } => {
                let badge = if matches!(spec.objects[obj as usize].kind, ObjectKind::CNode { .. }) {
                    CNodeCapData::new(0, guard_size.into()).0
                } else {
                    badge
                };
                mint(
                    dest,
                    s.index,
                    radix,
                    r.objects[obj as usize],
                    cap_rights(rights),
                    badge,
                )
            }
            SpecCap::IrqHandler { irq } => match handlers.iter().find(|(i, _)| *i == irq) {
                Some((_, h)) => mint(dest, s.index, radix, *h, CapRights::ALL, 0),
                None => return Err(fail("filling a slot of", dest_obj.name, Cause::Unsupported)),
            },
            SpecCap::Smc => mint(
                dest,
                s.index,
                radix,
                CPtr::from_bits(init_cap::SMC),
                CapRights::ALL,
                0,
            ),
        };
        res.map_err(kernel("filling a slot of", dest_obj.name))?;
    }
    Ok(())
}

/// A copy of endpoint `ep` with `badge` (write, grant and grant-reply, as
/// a fault or timeout endpoint must have), in a free slot of ours.
fn badged<'a>(
    r: &mut Realized,
    (ep, badge): (ObjId, u64),
    stage: &'static str,
    name: &'a str,
) -> Result<Cap<cap_type::Endpoint>, Failure<'a>> {
    let s = r.slots.take().map_err(|c| fail(stage, name, c))?;
    let rwg = CapRights::new(false, true, true, true);
    mint(ROOT, s.bits(), DEPTH, r.objects[ep as usize], rwg, badge).map_err(kernel(stage, name))?;
    Ok(s.cast())
}

/// 7. Each thread: scheduling context, CSpace, VSpace, IPC buffer,
///    priorities, fault endpoint, timeout endpoint, bound notification,
///    FPU, vCPU, registers.
fn configure_threads<'a>(
    spec: &Spec<'a>,
    bi: &BootInfoRef,
    r: &mut Realized,
) -> Result<(), Failure<'a>> {
    let sched_control = bi
        .sched_control(0)
        .ok_or_else(|| fail("configuring", "the scheduling control", Cause::Unsupported))?;
    let me: Cap<cap_type::Tcb> = Cap::from_bits(init_cap::TCB);
    for t in &spec.threads {
        let tcb: Cap<cap_type::Tcb> = r.cap(t.tcb);
        let sc = match t.sched_context {
            Some(p) => {
                let sc: Cap<cap_type::SchedContext> = r.cap(p.sched_context);
                sched_control
                    .configure_flags(sc, p.budget_us, p.period_us, 0, p.badge, 0)
                    .map_err(kernel("configuring the scheduling context of", t.name))?;
                Some(sc)
            }
            None => None,
        };
        let fault_ep = t
            .fault_endpoint
            .map(|e| badged(r, e, "badging the fault endpoint of", t.name))
            .transpose()?;
        tcb.configure(
            r.cap(t.cspace),
            CNodeCapData::new(0, t.cspace_guard_size.into()),
            r.cap(t.vspace),
            0,
            t.ipc_buffer_vaddr,
            Some(r.cap(t.ipc_buffer)),
        )
        .map_err(kernel("configuring", t.name))?;
        tcb.set_sched_params(me, t.max_priority.into(), t.priority.into(), sc, fault_ep)
            .map_err(kernel("setting the priority of", t.name))?;
        if let Some(e) = t.timeout_endpoint {
            let ep = badged(r, e, "badging the timeout endpoint of", t.name)?;
            tcb.set_timeout_endpoint(Some(ep))
                .map_err(kernel("setting the timeout endpoint of", t.name))?;
        }
        // Kernel messages name the thread, as Microkit's monitor has them
        // (DebugNameThread: debug configuration only).
        if !t.name.is_empty() {
            septa_sel4::syscall::debug_name_thread(tcb, t.name);
        }
        if t.domain != 0 {
            domain_cap()
                .set(t.domain, tcb)
                .map_err(kernel("setting the domain of", t.name))?;
        }
        if let Some(n) = t.bound_notification {
            tcb.bind_notification(r.cap(n))
                .map_err(kernel("binding the notification of", t.name))?;
        }
        if !t.fpu {
            tcb.set_flags(0, septa_abi::tcb_flag::FPU_DISABLED)
                .map_err(kernel("disabling the FPU of", t.name))?;
        }
        if let Some(v) = t.vcpu {
            r.cap::<cap_type::Vcpu>(v)
                .set_tcb(tcb)
                .map_err(kernel("binding the vCPU of", t.name))?;
        }
        if t.entry != 0 {
            let regs = UserContext {
                pc: t.entry,
                sp: t.stack_top,
                ..Default::default()
            };
            tcb.write_registers(false, 0, 2, &regs)
                .map_err(kernel("setting the registers of", t.name))?;
        }
    }
    Ok(())
}

/// 8. Every thread the spec starts, resumed in the spec's order.
fn start<'a>(spec: &Spec<'a>, r: &Realized) -> Result<(), Failure<'a>> {
    for t in spec.threads.iter().filter(|t| t.start) {
        r.cap::<cap_type::Tcb>(t.tcb)
            .resume()
            .map_err(kernel("starting", t.name))?;
    }
    Ok(())
}

/// 9. The domain schedule, last: from its start the initializer (in
///    domain 0, as the monitor) runs only in domain 0's turns.
fn schedule_domains<'a>(spec: &Spec<'a>) -> Result<(), Failure<'a>> {
    let Some(d) = &spec.domain_schedule else {
        return Ok(());
    };
    let dom = domain_cap();
    let what = "the domain schedule";
    for (i, &(domain, ticks)) in d.entries.iter().enumerate() {
        dom.schedule_configure(d.first_index + i as u64, domain, ticks)
            .map_err(kernel("configuring", what))?;
    }
    dom.schedule_set_start(d.start_index)
        .map_err(kernel("starting", what))?;
    Ok(())
}
