//! The suite's world: BootInfo, the slot and memory allocators, and [`Cx`],
//! the handle every case receives.
//!
//! Everything a case creates comes from one untyped, the *case pool*, into
//! slots taken from BootInfo's empty region after the case's *mark*. When a
//! case ends (or is aborted) the suite revokes the case pool, which deletes
//! every object the case made and every capability derived from them, then
//! deletes whatever else the case left in its slots, and moves the slot
//! cursor back to the mark. So each case starts from the same state, and the
//! next retype from the pool exercises untyped reuse after revoke.
//!
//! The *infrastructure pool* holds what outlives cases: the worker address
//! spaces and the watchdog.
//!
//! State lives in atomics, not on the stack: the watchdog may restart the
//! root thread on a fresh stack in the middle of a case, and the suite must
//! find its allocators as they were.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use septa_abi::{init_cap, CapRights, ObjectType};
use septa_sel4::bootinfo::BootInfoRef;
use septa_sel4::cap::cap_type::*;
use septa_sel4::{CPtr, Cap, CapType, Error};

use crate::report::Failure;
use crate::{fail, ok};

/// Depth of a CPtr that names a slot of the root CNode directly: its 47-bit
/// zero guard plus 17 radix bits resolve exactly the whole word.
pub const ROOT_DEPTH: u8 = septa_abi::WORD_BITS as u8;

/// Size of every scheduling context the suite creates for its threads: room
/// for the two refills of a round-robin or periodic context and a few more.
pub const SC_BITS: u64 = 8;

static BOOTINFO: AtomicU64 = AtomicU64::new(0);
static NEXT_SLOT: AtomicU64 = AtomicU64::new(0);
static SLOT_END: AtomicU64 = AtomicU64::new(0);
static CASE_MARK: AtomicU64 = AtomicU64::new(0);
static CASE_POOL: AtomicU64 = AtomicU64::new(0);
static CASE_POOL_BITS: AtomicU64 = AtomicU64::new(0);
static CASE_POOL_PADDR: AtomicU64 = AtomicU64::new(0);
static INFRA_POOL: AtomicU64 = AtomicU64::new(0);
static DEVICE_UT: AtomicU64 = AtomicU64::new(0);
static DEVICE_UT_BITS: AtomicU64 = AtomicU64::new(0);
static DEVICE_UT_PADDR: AtomicU64 = AtomicU64::new(0);

/// Records the BootInfo address the kernel passed in x0.
///
/// # Safety
/// `ptr` must be the kernel's BootInfo, mapped read-only with its extra
/// pages for the rest of the program.
pub unsafe fn set_bootinfo(ptr: *const septa_abi::bootinfo::BootInfo) {
    BOOTINFO.store(ptr as u64, Relaxed);
}

/// BootInfo, as recorded at start.
pub fn bootinfo() -> BootInfoRef {
    let p = BOOTINFO.load(Relaxed) as *const septa_abi::bootinfo::BootInfo;
    assert!(!p.is_null(), "BootInfo used before it was recorded");
    // SAFETY: `set_bootinfo`'s contract: the pointer is the kernel's
    // BootInfo, mapped for the rest of the program.
    unsafe { BootInfoRef::from_ptr(p) }
}

/// Splits memory into the infrastructure and case pools and opens the slot
/// allocator on BootInfo's empty region. Called once, before any case.
pub fn init() -> Result<(), Failure> {
    let bi = bootinfo();
    let empty = bi.empty();
    NEXT_SLOT.store(empty.start, Relaxed);
    SLOT_END.store(empty.end, Relaxed);
    CASE_MARK.store(empty.start, Relaxed);

    // The largest RAM untyped feeds both pools; a device untyped of at least
    // a page is kept for the device-memory cases.
    let mut best: Option<(Cap<Untyped>, u8, u64)> = None;
    for (cap, d) in bi.untyped() {
        if d.is_device != 0 {
            let bits = DEVICE_UT_BITS.load(Relaxed);
            if u32::from(d.size_bits) >= septa_abi::PAGE_BITS
                && (bits == 0 || u64::from(d.size_bits) < bits)
            {
                DEVICE_UT.store(cap.bits(), Relaxed);
                DEVICE_UT_BITS.store(u64::from(d.size_bits), Relaxed);
                DEVICE_UT_PADDR.store(d.paddr, Relaxed);
            }
        } else if best.is_none_or(|(_, b, _)| d.size_bits > b) {
            best = Some((cap, d.size_bits, d.paddr));
        }
    }
    let Some((ram, bits, paddr)) = best else {
        fail!("BootInfo lists no RAM untyped");
    };
    let bits = u64::from(bits);
    if bits < INFRA_POOL_BITS + 1 {
        fail!(
            "largest RAM untyped is 2^{bits} bytes, the suite needs 2^{}",
            INFRA_POOL_BITS + 1
        );
    }
    let root = Cap::<CNode>::from_bits(init_cap::CNODE);
    let infra = take_slot()?;
    ok!(ram.retype(
        ObjectType::Untyped,
        INFRA_POOL_BITS,
        root,
        CPtr::NULL,
        0,
        infra.bits(),
        1
    ));
    let pool = take_slot()?;
    // Half the untyped, aligned after the infrastructure pool.
    ok!(ram.retype(
        ObjectType::Untyped,
        bits - 1,
        root,
        CPtr::NULL,
        0,
        pool.bits(),
        1
    ));
    INFRA_POOL.store(infra.bits(), Relaxed);
    CASE_POOL.store(pool.bits(), Relaxed);
    CASE_POOL_BITS.store(bits - 1, Relaxed);
    CASE_POOL_PADDR.store(paddr + (1 << (bits - 1)), Relaxed);
    CASE_MARK.store(NEXT_SLOT.load(Relaxed), Relaxed);
    Ok(())
}

/// Physical address of register window `index` of the first device tree
/// node compatible with `compatible`, from the device tree the kernel hands
/// over in BootInfo's extra region.
pub fn fdt_device(compatible: &str, index: usize) -> Option<u64> {
    let fdt = fdt::Fdt::new(bootinfo().fdt()?).ok()?;
    let node = fdt.find_compatible(&[compatible])?;
    let reg = node.reg()?.nth(index)?;
    Some(reg.starting_address as u64)
}

/// The BootInfo device untyped that covers `paddr`: cap, base, size bits.
pub fn device_untyped_covering(paddr: u64) -> Option<(Cap<Untyped>, u64, u8)> {
    bootinfo()
        .untyped()
        .find(|(_, d)| {
            d.is_device != 0 && d.paddr <= paddr && paddr - d.paddr < (1u64 << d.size_bits)
        })
        .map(|(c, d)| (c, d.paddr, d.size_bits))
}

/// A 4 KiB frame cap to the device memory at `paddr` (page aligned), made
/// from the BootInfo device untyped that covers it: untypeds retyped from
/// its start skip what lies below `paddr`. The untyped must have no
/// children yet; the caps go into slots of the running case (or of the
/// infrastructure, before it is sealed), so deleting them frees it again.
pub fn device_frame_at(cx: &mut Cx, paddr: u64) -> Result<Cap<SmallPage>, Failure> {
    let Some((ut, base, _)) = device_untyped_covering(paddr) else {
        fail!("no device untyped covers {paddr:#x}");
    };
    let mut cur = base;
    while cur < paddr {
        let align = cur.trailing_zeros();
        let fit = 63 - (paddr - cur).leading_zeros();
        let bits = align.min(fit);
        let _: Cap<Untyped> = cx.retype_from(ut, ObjectType::Untyped, u64::from(bits))?;
        cur += 1 << bits;
    }
    cx.retype_from(ut, ObjectType::SmallPage, 0)
}

/// Size of the infrastructure pool: worker address spaces and the watchdog.
pub const INFRA_POOL_BITS: u64 = 22;

/// The pool every case allocates from.
pub fn case_pool() -> Cap<Untyped> {
    Cap::from_bits(CASE_POOL.load(Relaxed))
}

/// log2 of the case pool's size.
pub fn case_pool_bits() -> u64 {
    CASE_POOL_BITS.load(Relaxed)
}

/// Physical address of the case pool: where the first object a case
/// creates lies, since the pool is empty (and reset) when each case starts.
pub fn case_pool_paddr() -> u64 {
    CASE_POOL_PADDR.load(Relaxed)
}

/// The pool of long-lived objects.
pub fn infra_pool() -> Cap<Untyped> {
    Cap::from_bits(INFRA_POOL.load(Relaxed))
}

/// A device untyped of at least a page, with its size and address.
pub fn device_untyped() -> Option<(Cap<Untyped>, u64, u64)> {
    let c = DEVICE_UT.load(Relaxed);
    (c != 0).then(|| {
        (
            Cap::from_bits(c),
            DEVICE_UT_BITS.load(Relaxed),
            DEVICE_UT_PADDR.load(Relaxed),
        )
    })
}

fn take_slot() -> Result<CPtr, Failure> {
    let s = NEXT_SLOT.fetch_add(1, Relaxed);
    if s >= SLOT_END.load(Relaxed) {
        fail!("out of empty slots at {s}");
    }
    Ok(CPtr::from_bits(s))
}

/// Makes the slots allocated so far permanent (infrastructure).
pub fn seal_infrastructure() {
    CASE_MARK.store(NEXT_SLOT.load(Relaxed), Relaxed);
}

/// Undoes a case: revokes the case pool (deleting every object the case
/// made and every capability derived from them), deletes whatever is left
/// in the case's slots and rewinds the slot cursor. Errors are returned for
/// the report but cleanup goes on regardless.
pub fn cleanup_case() -> Result<(), Error> {
    let root = Cap::<CNode>::from_bits(init_cap::CNODE);
    let revoked = root.revoke(case_pool().cptr(), ROOT_DEPTH);
    let mark = CASE_MARK.load(Relaxed);
    let next = NEXT_SLOT.load(Relaxed).min(SLOT_END.load(Relaxed));
    let mut deleted = Ok(());
    for s in mark..next {
        if let Err(e) = root.delete(CPtr::from_bits(s), ROOT_DEPTH) {
            deleted = deleted.and(Err(e));
        }
    }
    NEXT_SLOT.store(mark, Relaxed);
    revoked.and(deleted)
}

/// The handle a case works through. It holds no state of its own.
pub struct Cx {
    _private: (),
}

impl Cx {
    pub(crate) fn new() -> Cx {
        Cx { _private: () }
    }

    pub fn root_cnode(&self) -> Cap<CNode> {
        Cap::from_bits(init_cap::CNODE)
    }
    pub fn root_tcb(&self) -> Cap<Tcb> {
        Cap::from_bits(init_cap::TCB)
    }
    pub fn root_vspace(&self) -> Cap<VSpace> {
        Cap::from_bits(init_cap::VSPACE)
    }
    pub fn root_sc(&self) -> Cap<SchedContext> {
        Cap::from_bits(init_cap::SCHED_CONTEXT)
    }
    pub fn irq_control(&self) -> Cap<IrqControl> {
        Cap::from_bits(init_cap::IRQ_CONTROL)
    }
    pub fn asid_control(&self) -> Cap<AsidControl> {
        Cap::from_bits(init_cap::ASID_CONTROL)
    }
    pub fn asid_pool(&self) -> Cap<AsidPool> {
        Cap::from_bits(init_cap::ASID_POOL)
    }
    pub fn domain(&self) -> Cap<DomainSet> {
        Cap::from_bits(init_cap::DOMAIN)
    }
    pub fn smc(&self) -> Cap<Smc> {
        Cap::from_bits(init_cap::SMC)
    }
    pub fn ipc_buffer_frame(&self) -> Cap<SmallPage> {
        Cap::from_bits(init_cap::IPC_BUFFER)
    }
    pub fn bootinfo_frame(&self) -> Cap<SmallPage> {
        Cap::from_bits(init_cap::BOOT_INFO_FRAME)
    }
    pub fn sched_control(&self) -> Result<Cap<SchedControl>, Failure> {
        match bootinfo().sched_control(0) {
            Some(c) => Ok(c),
            None => fail!("BootInfo names no SchedControl capability"),
        }
    }
    pub fn pool(&self) -> Cap<Untyped> {
        case_pool()
    }

    /// An empty slot of the root CNode, freed when the case ends.
    pub fn slot(&mut self) -> Result<CPtr, Failure> {
        take_slot()
    }

    /// `n` consecutive empty slots; returns the first.
    pub fn slots(&mut self, n: u64) -> Result<CPtr, Failure> {
        let first = take_slot()?;
        for _ in 1..n {
            take_slot()?;
        }
        Ok(first)
    }

    /// Retypes one object of type `ty` from `ut` into a fresh slot.
    pub fn retype_from<T: CapType>(
        &mut self,
        ut: Cap<Untyped>,
        ty: ObjectType,
        size_bits: u64,
    ) -> Result<Cap<T>, Failure> {
        let slot = self.slot()?;
        if let Err(e) = ut.retype(
            ty,
            size_bits,
            self.root_cnode(),
            CPtr::NULL,
            0,
            slot.bits(),
            1,
        ) {
            fail!("retype of {ty:?} (size {size_bits}) failed: {e:?}");
        }
        Ok(slot.cast())
    }

    /// One object from the case pool.
    pub fn obj<T: CapType>(&mut self, ty: ObjectType, size_bits: u64) -> Result<Cap<T>, Failure> {
        self.retype_from(case_pool(), ty, size_bits)
    }

    pub fn endpoint(&mut self) -> Result<Cap<Endpoint>, Failure> {
        self.obj(ObjectType::Endpoint, 0)
    }
    pub fn notification(&mut self) -> Result<Cap<Notification>, Failure> {
        self.obj(ObjectType::Notification, 0)
    }
    pub fn reply(&mut self) -> Result<Cap<Reply>, Failure> {
        self.obj(ObjectType::Reply, 0)
    }
    pub fn tcb(&mut self) -> Result<Cap<Tcb>, Failure> {
        self.obj(ObjectType::Tcb, 0)
    }
    pub fn sched_context(&mut self) -> Result<Cap<SchedContext>, Failure> {
        self.obj(ObjectType::SchedContext, SC_BITS)
    }
    pub fn cnode(&mut self, radix: u64) -> Result<Cap<CNode>, Failure> {
        self.obj(ObjectType::CNode, radix)
    }
    pub fn frame(&mut self) -> Result<Cap<SmallPage>, Failure> {
        self.obj(ObjectType::SmallPage, 0)
    }
    pub fn page_table(&mut self) -> Result<Cap<PageTable>, Failure> {
        self.obj(ObjectType::PageTable, 0)
    }
    pub fn untyped(&mut self, size_bits: u64) -> Result<Cap<Untyped>, Failure> {
        self.obj(ObjectType::Untyped, size_bits)
    }

    /// A VSpace with an ASID from the initial pool.
    pub fn vspace(&mut self) -> Result<Cap<VSpace>, Failure> {
        let vs: Cap<VSpace> = self.obj(ObjectType::VSpace, 0)?;
        ok!(self.asid_pool().assign(vs));
        Ok(vs)
    }

    /// A scheduling context configured with `budget`/`period` (µs).
    pub fn configured_sc(
        &mut self,
        budget: u64,
        period: u64,
    ) -> Result<Cap<SchedContext>, Failure> {
        let sc = self.sched_context()?;
        ok!(self
            .sched_control()?
            .configure_flags(sc, budget, period, 0, 0, 0));
        Ok(sc)
    }

    /// CNode_Copy of `cap` with `rights` into a fresh slot.
    pub fn copy<T: CapType>(&mut self, cap: Cap<T>, rights: CapRights) -> Result<Cap<T>, Failure> {
        let slot = self.slot()?;
        let root = self.root_cnode();
        ok!(root.copy(slot, ROOT_DEPTH, root, cap.cptr(), ROOT_DEPTH, rights));
        Ok(slot.cast())
    }

    /// CNode_Mint of `cap` with `rights` and `badge` into a fresh slot.
    pub fn mint<T: CapType>(
        &mut self,
        cap: Cap<T>,
        rights: CapRights,
        badge: u64,
    ) -> Result<Cap<T>, Failure> {
        let slot = self.slot()?;
        let root = self.root_cnode();
        ok!(root.mint(
            slot,
            ROOT_DEPTH,
            root,
            cap.cptr(),
            ROOT_DEPTH,
            rights,
            badge
        ));
        Ok(slot.cast())
    }

    /// Deletes the capability in `cap`'s slot.
    pub fn delete<T: CapType>(&mut self, cap: Cap<T>) -> Result<(), Error> {
        self.root_cnode().delete(cap.cptr(), ROOT_DEPTH)
    }

    /// The kernel's type tag of the capability in `cap`'s slot, where the
    /// configuration has DebugCapIdentify (debug).
    pub fn identify<T: CapType>(&self, cap: Cap<T>) -> Tag {
        Tag(septa_sel4::syscall::debug_cap_identify(cap.cptr()))
    }
}

/// A capability's type tag as DebugCapIdentify reports it, or unknown in
/// configurations without the call (release, benchmark). An unknown tag
/// equals every tag: there, a case's tag checks are skipped and the rest of
/// the case still runs. Cases that check nothing but tags are not run
/// there at all (`needs_debug_build`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tag(pub Option<u32>);

impl PartialEq<u32> for Tag {
    fn eq(&self, other: &u32) -> bool {
        self.0.is_none_or(|t| t == *other)
    }
}

impl core::fmt::Debug for Tag {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("(no DebugCapIdentify)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_abi::bootinfo::{BootInfo, SlotRegion, UntypedDesc, MAX_UNTYPED_CAPS};
    use septa_abi::{Label, MessageInfo};
    use septa_sel4::host::{self, HostKernel, Regs};
    use septa_sel4::ipc_buffer;
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::vec::Vec;

    /// (invoked cap, label, message words, extra caps) of every Call,
    /// answered with success.
    type Seen = Rc<RefCell<Vec<(u64, u64, Vec<u64>, Vec<u64>)>>>;

    struct Recorder(Seen);

    impl HostKernel for Recorder {
        fn syscall(&mut self, regs: &mut Regs) {
            assert_eq!(regs.syscall(), septa_abi::syscall::CALL);
            let info = MessageInfo(regs.x[1]);
            let words = (0..info.length() as usize)
                .map(|i| {
                    if i < 4 {
                        regs.x[2 + i]
                    } else {
                        ipc_buffer::get_mr(i)
                    }
                })
                .collect();
            let caps = (0..info.extra_caps() as usize)
                .map(ipc_buffer::get_cap_or_badge)
                .collect();
            self.0
                .borrow_mut()
                .push((regs.x[0], info.label(), words, caps));
            regs.x[1] = MessageInfo::new(0, 0, 0, 0).0;
        }
    }

    fn untyped(paddr: u64, size_bits: u8, is_device: u8) -> UntypedDesc {
        UntypedDesc {
            paddr,
            size_bits,
            is_device,
            padding: [0; 6],
        }
    }

    #[test]
    fn pools_come_from_the_largest_ram_untyped_and_cleanup_revokes_and_deletes() {
        let mut list = [UntypedDesc::default(); MAX_UNTYPED_CAPS];
        list[0] = untyped(0x900_0000, 12, 1);
        list[1] = untyped(0x800_0000, 16, 1);
        list[2] = untyped(0x6000_0000, 24, 0);
        list[3] = untyped(0x8000_0000, 28, 0);
        let bi = BootInfo {
            extra_len: 0,
            node_id: 0,
            num_nodes: 1,
            num_io_pt_levels: 0,
            ipc_buffer: 0x41_2000,
            empty: SlotRegion {
                start: 400,
                end: 1 << 17,
            },
            shared_frames: SlotRegion::default(),
            user_image_frames: SlotRegion::default(),
            user_image_paging: SlotRegion::default(),
            io_space_caps: SlotRegion::default(),
            extra_bi_pages: SlotRegion::default(),
            init_thread_cnode_size_bits: 17,
            init_thread_domain: 0,
            sched_control: SlotRegion {
                start: 299,
                end: 300,
            },
            untyped: SlotRegion {
                start: 300,
                end: 304,
            },
            untyped_list: list,
        };
        let bi: &'static BootInfo = Box::leak(Box::new(bi));
        // SAFETY: a leaked BootInfo lives for the rest of the test program;
        // its extra region is empty.
        unsafe { set_bootinfo(bi) };
        host::install_ipc_buffer();
        let seen: Seen = Rc::new(RefCell::new(Vec::new()));
        host::set_kernel(Box::new(Recorder(seen.clone())));

        init().unwrap();
        let retype = Label::UntypedRetype.number();
        let untyped_type = ObjectType::Untyped as u64;
        let root = init_cap::CNODE;
        {
            let s = seen.borrow();
            assert_eq!(s.len(), 2);
            // From the 2^28 untyped (slot 303): the infrastructure pool,
            // then half of it as the case pool.
            let pool = vec![untyped_type, INFRA_POOL_BITS, 0, 0, 400, 1];
            assert_eq!(s[0], (303, retype, pool, vec![root]));
            assert_eq!(
                s[1],
                (
                    303,
                    retype,
                    vec![untyped_type, 27, 0, 0, 401, 1],
                    vec![root]
                )
            );
        }
        assert_eq!(case_pool().bits(), 401);
        assert_eq!(case_pool_paddr(), 0x8000_0000 + (1 << 27));
        // The smallest device untyped of a page or more.
        assert_eq!(
            device_untyped().map(|(c, b, p)| (c.bits(), b, p)),
            Some((300, 12, 0x900_0000))
        );

        seen.borrow_mut().clear();
        let mut cx = Cx::new();
        let ep = cx.endpoint().unwrap();
        assert_eq!(ep.bits(), 402);
        let c = cx.copy(ep, CapRights::ALL).unwrap();
        assert_eq!(c.bits(), 403);
        cleanup_case().unwrap();
        let s = seen.borrow();
        let labels: Vec<u64> = s.iter().map(|x| x.1).collect();
        use Label::*;
        assert_eq!(
            labels,
            [
                UntypedRetype,
                CNodeCopy,
                CNodeRevoke,
                CNodeDelete,
                CNodeDelete
            ]
            .map(|l| l.number())
        );
        // The endpoint comes from the pool; revoke names the pool; the
        // deletes name the case's two slots; all through the root CNode.
        assert_eq!((s[0].0, &s[0].2[4]), (401, &402));
        let depth = u64::from(ROOT_DEPTH);
        for (i, slot) in [(2, 401), (3, 402), (4, 403)] {
            assert_eq!((s[i].0, &s[i].2), (root, &vec![slot, depth]));
        }
        // The next case reuses the same slots.
        drop(s);
        assert_eq!(cx.slot().unwrap().bits(), 402);
    }
}
