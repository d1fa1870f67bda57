//! The root task's world: its objects, its capabilities and its BootInfo,
//! laid out as seL4 16.0.0 lays them out for this configuration.
//!
//! The arch boot code hands over the free RAM (kernel image, root task image
//! and device tree already taken out), the device regions, and where the
//! root task's image lies; `create` builds the root CNode (2^17 slots), the
//! VSpace with the page tables the image needs, the IPC buffer, BootInfo and
//! extra BootInfo (the device tree) frames, the ASID pool, the TCB and the
//! scheduling context objects, and finally turns every byte still free into
//! untyped capabilities: device regions first, then RAM, each cut into
//! naturally aligned blocks. Slots follow seL4 16.0.0's order (observed on
//! the real kernel, see docs/real-sel4.md): the fixed initial caps, then
//! paging caps, extra BootInfo pages, the SchedControl cap, image frames,
//! the untypeds, and the rest is the empty region.
//!
//! Pure bookkeeping through the memory window, tested on the host;
//! [`init_root_thread`] then fills in the thread (registers, priority,
//! scheduling context). The TLB and the hardware VSpace switch are the arch
//! code's job.

use septa_abi::bootinfo::{
    BootInfo, BootInfoHeader, SlotRegion, UntypedDesc, EXTRA_FDT, MAX_UNTYPED_CAPS,
};
use septa_abi::{
    init_cap, MAX_UNTYPED_BITS, MIN_SCHED_CONTEXT_BITS, MIN_UNTYPED_BITS, PAGE_BITS,
    PAGE_TABLE_SIZE_BITS, ROOT_CNODE_SIZE_BITS, SLOT_SIZE_BITS, TCB_SIZE_BITS, VSPACE_SIZE_BITS,
    WORD_BITS,
};

use crate::bootmem::{untyped_blocks, BootMemError, FreeList, Region};
use crate::cap::{derive, Cap, FrameSize, Mapping, RawCap, VmRights};
use crate::context::{Reg, SPSR_USER};
use crate::cte::{cte_insert, write_boot_slot, write_boot_slot_raw, SlotRef};
use crate::memory;
use crate::object::sched_context::Sc;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::object::vspace::{asid_pool_assign, ASID_TABLE, ROOT_ASID};
use crate::pagetable::{self, Attrs, Pte};
use crate::sched;
use crate::untyped::boot_untyped_cap;

const PAGE: u64 = 1 << PAGE_BITS;

// SAFETY: `repr(C)` structs of integers (and arrays of them) with no padding
// the kernel relies on; any bit pattern is a valid value.
unsafe impl memory::Pod for BootInfo {}
// SAFETY: as above: two u64 words.
unsafe impl memory::Pod for BootInfoHeader {}
const ROOT_SLOTS: u64 = 1 << ROOT_CNODE_SIZE_BITS;

/// Where the root task's image is and what comes with it.
#[derive(Clone, Copy, Debug)]
pub struct Input {
    /// The image's physical range (page aligned), as the loader gave it.
    pub image: Region,
    /// Physical minus virtual address of the image.
    pub pv_offset: u64,
    pub entry: u64,
    /// The device tree, copied into the extra BootInfo region.
    pub dtb: Option<(u64, u64)>,
}

/// What the thread and arch code need to start the root task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootServer {
    pub cnode: u64,
    pub vspace: u64,
    pub asid: u16,
    pub tcb: u64,
    pub sched_context: u64,
    pub ipc_buffer: u64,
    pub ipc_buffer_vaddr: u64,
    pub bootinfo_vaddr: u64,
    pub entry: u64,
    /// Slots in use; the rest of the root CNode is empty.
    pub first_empty_slot: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    Memory(BootMemError),
    /// The root CNode has no room for all the boot caps.
    OutOfSlots,
    /// The image is not page aligned or lies beyond the user address space.
    BadImage,
}

impl BootError {
    /// Prints the error as `{:?}` writes it, without `core::fmt`
    /// (`print::raw`: the configurations without printing report a failed
    /// boot with it too).
    pub fn print(&self) {
        use crate::print::raw;
        match *self {
            BootError::Memory(BootMemError::TooManyRegions) => raw::str("Memory(TooManyRegions)"),
            BootError::Memory(BootMemError::OutOfMemory { bytes, align }) => {
                raw::str("Memory(OutOfMemory { bytes: ");
                raw::dec(bytes);
                raw::str(", align: ");
                raw::dec(align);
                raw::str(" })");
            }
            BootError::OutOfSlots => raw::str("OutOfSlots"),
            BootError::BadImage => raw::str("BadImage"),
        }
    }
}

impl From<BootMemError> for BootError {
    fn from(e: BootMemError) -> Self {
        BootError::Memory(e)
    }
}

/// Hands out the root CNode's slots in order.
struct Slots {
    cnode: u64,
    next: u64,
}

impl Slots {
    fn put(&mut self, cap: &Cap) -> Result<u64, BootError> {
        self.put_raw(cap.encode())
    }

    /// [`Slots::put`] for a cap in its stored form.
    fn put_raw(&mut self, cap: RawCap) -> Result<u64, BootError> {
        if self.next >= ROOT_SLOTS {
            return Err(BootError::OutOfSlots);
        }
        let n = self.next;
        write_boot_slot_raw(SlotRef::nth(self.cnode, n), cap);
        self.next += 1;
        Ok(n)
    }

    fn put_at(&self, index: u64, cap: &Cap) {
        write_boot_slot(SlotRef::nth(self.cnode, index), cap);
    }
}

fn zeroed(free: &mut FreeList, size_bits: u32) -> Result<u64, BootError> {
    let p = free.alloc(1 << size_bits, 1 << size_bits)?;
    memory::zero(p, 1 << size_bits);
    Ok(p)
}

/// Where the root task's image and the frames after it go in its address
/// space: the image, then the IPC buffer, BootInfo and the extra BootInfo
/// pages (the device tree).
struct Layout {
    v_start: u64,
    ipc_buffer_vaddr: u64,
    bootinfo_vaddr: u64,
    extra_vaddr: u64,
    /// BootInfo's `extra_len` (seL4 reports the region's exact length)...
    extra_len: u64,
    /// ... and its frames, which cover it rounded up to pages.
    extra_frames_len: u64,
    mapped_end: u64,
}

impl Layout {
    /// The layout of `input`, if its image is page aligned, not empty, and
    /// everything fits below the top of the user address space.
    fn of(input: &Input) -> Result<Layout, BootError> {
        let image = input.image;
        if !image.start.is_multiple_of(PAGE) || !image.end.is_multiple_of(PAGE) || image.is_empty()
        {
            return Err(BootError::BadImage);
        }
        let v_start = image.start.wrapping_sub(input.pv_offset);
        let v_end = image.end.wrapping_sub(input.pv_offset);
        let header = core::mem::size_of::<BootInfoHeader>() as u64;
        let extra_len = input.dtb.map_or(0, |(_, len)| header + len);
        let extra_frames_len = extra_len.next_multiple_of(PAGE);
        let extra_vaddr = v_end + 2 * PAGE;
        let mapped_end = extra_vaddr + extra_frames_len;
        if v_end < v_start || mapped_end > septa_abi::USER_TOP {
            return Err(BootError::BadImage);
        }
        Ok(Layout {
            v_start,
            ipc_buffer_vaddr: v_end,
            bootinfo_vaddr: v_end + PAGE,
            extra_vaddr,
            extra_len,
            extra_frames_len,
            mapped_end,
        })
    }
}

/// A small frame mapped read-write (executable if `execute`) at `vaddr` in
/// the root VSpace `vspace`, whose page tables are in place; returns its
/// cap.
fn map_frame(vspace: u64, vaddr: u64, paddr: u64, execute: bool) -> Cap {
    let (_, e) = pagetable::walk(vspace, vaddr, 3);
    map_frame_at(e, vaddr, paddr, execute)
}

/// [`map_frame`] with the page-table entry for `vaddr` already found.
fn map_frame_at(e: u64, vaddr: u64, paddr: u64, execute: bool) -> Cap {
    let attrs = Attrs {
        read: true,
        write: true,
        execute,
        cacheable: true,
    };
    pagetable::write(e, Pte::leaf(3, paddr, attrs));
    Cap::Frame {
        paddr,
        size: FrameSize::Small,
        rights: VmRights::ReadWrite,
        is_device: false,
        mapped: Some(Mapping {
            asid: ROOT_ASID,
            vaddr,
        }),
    }
}

/// The root CNode, with its own cap in its slot.
fn root_cnode(free: &mut FreeList) -> Result<Slots, BootError> {
    let cnode = zeroed(free, ROOT_CNODE_SIZE_BITS + SLOT_SIZE_BITS)?;
    let slots = Slots {
        cnode,
        next: init_cap::FIRST_FREE,
    };
    slots.put_at(
        init_cap::CNODE,
        &Cap::CNode {
            paddr: cnode,
            radix: ROOT_CNODE_SIZE_BITS as u8,
            guard_size: (WORD_BITS - ROOT_CNODE_SIZE_BITS) as u8,
            guard: 0,
        },
    );
    Ok(slots)
}

/// The root VSpace and the first ASID pool (ASID 0 names it), with their
/// caps and those of the kernel's singletons (ASID control, IRQ control,
/// the domain and SMC caps). Returns the VSpace.
fn address_space(free: &mut FreeList, slots: &Slots) -> Result<u64, BootError> {
    let vspace = zeroed(free, VSPACE_SIZE_BITS)?;
    let pool = zeroed(free, septa_abi::ASID_POOL_SIZE_BITS)?;
    asid_pool_assign(pool, ROOT_ASID, vspace);
    ASID_TABLE.with(|t| t[0].set(pool));
    slots.put_at(
        init_cap::VSPACE,
        &Cap::VSpace {
            paddr: vspace,
            mapped_asid: Some(ROOT_ASID),
        },
    );
    slots.put_at(
        init_cap::ASID_POOL,
        &Cap::AsidPool {
            paddr: pool,
            asid_base: 0,
        },
    );
    slots.put_at(init_cap::ASID_CONTROL, &Cap::AsidControl);
    slots.put_at(init_cap::IRQ_CONTROL, &Cap::IrqControl);
    slots.put_at(init_cap::DOMAIN, &Cap::Domain);
    slots.put_at(init_cap::SMC, &Cap::Smc { badge: 0 });
    Ok(vspace)
}

/// Every page table the layout needs, each with its cap (BootInfo's
/// `user_image_paging`).
fn page_tables(
    free: &mut FreeList,
    slots: &mut Slots,
    vspace: u64,
    layout: &Layout,
) -> Result<SlotRegion, BootError> {
    let start = slots.next;
    let mut v = layout.v_start & !((1 << pagetable::entry_bits(2)) - 1);
    while v < layout.mapped_end {
        while let Some(level) = pagetable::missing_table(vspace, v) {
            let table = zeroed(free, PAGE_TABLE_SIZE_BITS)?;
            pagetable::install_table(vspace, v, level, table);
            let base = v & !((1u64 << pagetable::entry_bits(level - 1)) - 1);
            slots.put(&Cap::PageTable {
                paddr: table,
                mapped: Some(Mapping {
                    asid: ROOT_ASID,
                    vaddr: base,
                }),
            })?;
        }
        v += 1 << pagetable::entry_bits(3);
    }
    Ok(SlotRegion {
        start,
        end: slots.next,
    })
}

/// The extra BootInfo pages: a header and the device tree, mapped after
/// BootInfo (BootInfo's `extra_bi_pages`; empty without a device tree).
fn extra_pages(
    free: &mut FreeList,
    slots: &mut Slots,
    vspace: u64,
    layout: &Layout,
    dtb: Option<(u64, u64)>,
) -> Result<SlotRegion, BootError> {
    let start = slots.next;
    if let Some((dtb, len)) = dtb {
        let header = core::mem::size_of::<BootInfoHeader>() as u64;
        let extra = free.alloc(layout.extra_frames_len, PAGE)?;
        memory::zero(extra, layout.extra_frames_len);
        memory::write(
            extra,
            BootInfoHeader {
                id: EXTRA_FDT,
                len: header + len,
            },
        );
        memory::copy(dtb, extra + header, len);
        for off in (0..layout.extra_frames_len).step_by(PAGE as usize) {
            slots.put(&map_frame(
                vspace,
                layout.extra_vaddr + off,
                extra + off,
                false,
            ))?;
        }
    }
    Ok(SlotRegion {
        start,
        end: slots.next,
    })
}

/// The thread's own TCB and scheduling context (the thread code fills them
/// in) and the scheduling-control cap; returns (TCB, SC, the control
/// cap's region).
fn thread_objects(
    free: &mut FreeList,
    slots: &mut Slots,
) -> Result<(u64, u64, SlotRegion), BootError> {
    let tcb = zeroed(free, TCB_SIZE_BITS)?;
    let sched_context = zeroed(free, MIN_SCHED_CONTEXT_BITS)?;
    slots.put_at(init_cap::TCB, &Cap::Tcb { paddr: tcb });
    slots.put_at(
        init_cap::SCHED_CONTEXT,
        &Cap::SchedContext {
            paddr: sched_context,
            size_bits: MIN_SCHED_CONTEXT_BITS as u8,
        },
    );
    let sched_control = SlotRegion {
        start: slots.next,
        end: slots.next + 1,
    };
    slots.put(&Cap::SchedControl { core: 0 })?;
    Ok((tcb, sched_context, sched_control))
}

/// The image's frames, mapped executable where the image says (BootInfo's
/// `user_image_frames`).
fn image_frames(slots: &mut Slots, vspace: u64, input: &Input) -> Result<SlotRegion, BootError> {
    let start = slots.next;
    // The last level-3 table walked to: the frames of one 2 MiB block have
    // their entries side by side in it, so the walk from the root is done
    // once a table rather than once a frame (about 100,000 instructions of
    // boot for a 4 MiB image).
    let mut table: Option<(u64, u64)> = None;
    let mut first: Option<RawCap> = None;
    let mut p = input.image.start;
    while p < input.image.end {
        let vaddr = p.wrapping_sub(input.pv_offset);
        let block = vaddr >> pagetable::entry_bits(2);
        let e = match table {
            Some((b, t)) if b == block => pagetable::entry_at(t, 3, vaddr),
            _ => match pagetable::walk(vspace, vaddr, 3) {
                (3, e) => {
                    let t = e - 8 * pagetable::index(3, vaddr);
                    table = Some((block, t));
                    e
                }
                (_, e) => e,
            },
        };
        // The first frame's cap is encoded, the others are that one moved
        // on (`small_frame_advanced`).
        let n = (p - input.image.start) / PAGE;
        let cap = map_frame_at(e, vaddr, p, true);
        let raw = match first {
            None => *first.insert(cap.encode()),
            Some(f) => f.small_frame_advanced(n),
        };
        debug_assert_eq!(raw, cap.encode());
        slots.put_raw(raw)?;
        p += PAGE;
    }
    Ok(SlotRegion {
        start,
        end: slots.next,
    })
}

/// Everything left becomes untyped: devices first, then what is left of
/// RAM, as seL4 does. Returns their caps' region and BootInfo's list.
fn untypeds(
    free: &FreeList,
    slots: &mut Slots,
    devices: &[Region],
) -> Result<(SlotRegion, [UntypedDesc; MAX_UNTYPED_CAPS]), BootError> {
    let mut list = [UntypedDesc::default(); MAX_UNTYPED_CAPS];
    let mut count = 0;
    let start = slots.next;
    let mut result = Ok(());
    let mut give = |r: Region, is_device: bool| {
        untyped_blocks(r, MIN_UNTYPED_BITS, MAX_UNTYPED_BITS, |paddr, bits| {
            if count == MAX_UNTYPED_CAPS || result.is_err() {
                return;
            }
            if let Err(e) = slots.put(&boot_untyped_cap(paddr, bits as u8, is_device)) {
                result = Err(e);
                return;
            }
            list[count] = UntypedDesc {
                paddr,
                size_bits: bits as u8,
                is_device: is_device as u8,
                padding: [0; 6],
            };
            count += 1;
        })
    };
    for d in devices {
        give(*d, true);
    }
    for r in free.regions() {
        give(*r, false);
    }
    result?;
    Ok((
        SlotRegion {
            start,
            end: slots.next,
        },
        list,
    ))
}

/// Builds the root task's objects and caps from `free`, and turns what is
/// left of `free` and all of `devices` into untypeds: the root CNode, the
/// address space and its page tables, the IPC buffer, BootInfo and its
/// extra pages, the thread's objects, the image's frames, the untypeds,
/// then BootInfo itself, in that order (which fixes every slot number).
///
/// Out of line (see the crate header): inlined into the arch boot code it
/// cost boot about 7,000 instructions.
#[inline(never)]
pub fn create(
    free: &mut FreeList,
    devices: &[Region],
    input: &Input,
) -> Result<RootServer, BootError> {
    let layout = Layout::of(input)?;
    let mut slots = root_cnode(free)?;
    let vspace = address_space(free, &slots)?;
    let paging = page_tables(free, &mut slots, vspace, &layout)?;

    let ipc_buffer = zeroed(free, PAGE_BITS)?;
    let bootinfo = zeroed(free, PAGE_BITS)?;
    slots.put_at(
        init_cap::IPC_BUFFER,
        &map_frame(vspace, layout.ipc_buffer_vaddr, ipc_buffer, false),
    );
    slots.put_at(
        init_cap::BOOT_INFO_FRAME,
        &map_frame(vspace, layout.bootinfo_vaddr, bootinfo, false),
    );
    let extra_bi_pages = extra_pages(free, &mut slots, vspace, &layout, input.dtb)?;
    let (tcb, sched_context, sched_control) = thread_objects(free, &mut slots)?;
    let user_image_frames = image_frames(&mut slots, vspace, input)?;
    let (untyped, untyped_list) = untypeds(free, &mut slots, devices)?;

    memory::write(
        bootinfo,
        BootInfo {
            extra_len: layout.extra_len,
            node_id: 0,
            num_nodes: 1,
            num_io_pt_levels: 0,
            ipc_buffer: layout.ipc_buffer_vaddr,
            empty: SlotRegion {
                start: slots.next,
                end: ROOT_SLOTS,
            },
            shared_frames: SlotRegion::default(),
            user_image_frames,
            user_image_paging: paging,
            io_space_caps: SlotRegion::default(),
            extra_bi_pages,
            init_thread_cnode_size_bits: ROOT_CNODE_SIZE_BITS as u64,
            init_thread_domain: 0,
            sched_control,
            untyped,
            untyped_list,
        },
    );

    Ok(RootServer {
        cnode: slots.cnode,
        vspace,
        asid: ROOT_ASID,
        tcb,
        sched_context,
        ipc_buffer,
        ipc_buffer_vaddr: layout.ipc_buffer_vaddr,
        bootinfo_vaddr: layout.bootinfo_vaddr,
        entry: input.entry,
        first_empty_slot: slots.next,
    })
}

/// Makes the root task's thread from the objects [`create`] made (seL4's
/// `create_initial_thread`): its CSpace, VSpace and IPC buffer caps copied
/// into its TCB slots, BootInfo's address in x0, the entry as its pc,
/// priority and MCP 255, and a round-robin scheduling context of the boot
/// time slice. The caller hands it to `sched::init` as the first thread.
pub fn init_root_thread(rs: &RootServer) -> Tcb {
    let tcb = Tcb::new(rs.tcb);
    tcb.set_reg(Reg::SPSR, SPSR_USER);
    let root = |i| SlotRef::nth(rs.cnode, i);
    let insert = |src: SlotRef, cap: &Cap, index| cte_insert(cap, src, tcb.slot(index));
    insert(
        root(init_cap::CNODE),
        &root(init_cap::CNODE).cap(),
        tcb::CTABLE,
    );
    insert(
        root(init_cap::VSPACE),
        &root(init_cap::VSPACE).cap(),
        tcb::VTABLE,
    );
    let buffer = root(init_cap::IPC_BUFFER);
    // A derived frame cap starts unmapped, as a copy must.
    if let Ok(cap) = derive(buffer, &buffer.cap()) {
        insert(buffer, &cap, tcb::BUFFER);
    }
    tcb.set_ipc_buffer(rs.ipc_buffer_vaddr);
    tcb.set_reg(Reg::CAP, rs.bootinfo_vaddr);
    tcb.set_next_pc(rs.entry);
    sched::configure_sched_context(
        tcb,
        Sc::new(rs.sched_context),
        sched::us_to_ticks(sched::BOOT_THREAD_TIME_SLICE_MS * 1000),
    );
    tcb.set_priority_raw(sched::MAX_PRIO);
    tcb.set_mcp(sched::MAX_PRIO);
    tcb.set_state_raw(ThreadState::Running);
    tcb.set_name(b"rootserver");
    tcb
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cte::SlotRef;
    use crate::memory::arena::Arena;

    /// A 64 MiB arena at 0x4000_0000 standing in for RAM.
    fn setup() -> (Arena, FreeList, Input) {
        let a = Arena::new(64 << 20, 0xee);
        let mut free = FreeList::default();
        let ram = Region::new(a.phys_base, a.phys_base + a.size);
        free.add(ram).unwrap();
        let image = Region::new(a.phys_base + (1 << 20), a.phys_base + (1 << 20) + 5 * PAGE);
        let dtb = (a.phys_base + (2 << 20), 300);
        memory::write::<u32>(dtb.0, 0xedfe_0dd0);
        for r in [
            Region::new(a.phys_base, a.phys_base + (1 << 20)),
            image,
            Region::new(dtb.0, dtb.0 + PAGE),
        ] {
            free.remove(r).unwrap();
        }
        let input = Input {
            image,
            pv_offset: image.start - 0x40_0000,
            entry: 0x40_0010,
            dtb: Some(dtb),
        };
        (a, free, input)
    }

    fn bootinfo(rs: &RootServer) -> BootInfo {
        match SlotRef::nth(rs.cnode, init_cap::BOOT_INFO_FRAME).cap() {
            Cap::Frame { paddr, .. } => memory::read(paddr),
            c => panic!("slot 9 holds {c:?}"),
        }
    }

    #[test]
    fn initial_caps_sit_in_their_slots() {
        let (_a, mut free, input) = setup();
        let rs = create(&mut free, &[Region::new(0x0900_0000, 0x0900_1000)], &input).unwrap();
        let cap = |i| SlotRef::nth(rs.cnode, i).cap();
        assert_eq!(cap(init_cap::NULL), Cap::Null);
        assert_eq!(cap(init_cap::TCB), Cap::Tcb { paddr: rs.tcb });
        assert!(matches!(
            cap(init_cap::CNODE),
            Cap::CNode {
                radix: 17,
                guard_size: 47,
                guard: 0,
                ..
            }
        ));
        assert_eq!(
            cap(init_cap::VSPACE),
            Cap::VSpace {
                paddr: rs.vspace,
                mapped_asid: Some(1)
            }
        );
        assert_eq!(cap(init_cap::IRQ_CONTROL), Cap::IrqControl);
        assert_eq!(cap(init_cap::ASID_CONTROL), Cap::AsidControl);
        assert!(matches!(
            cap(init_cap::ASID_POOL),
            Cap::AsidPool { asid_base: 0, .. }
        ));
        assert_eq!(cap(init_cap::IO_PORT_CONTROL), Cap::Null);
        assert_eq!(cap(init_cap::IO_SPACE), Cap::Null);
        assert!(
            matches!(cap(init_cap::BOOT_INFO_FRAME), Cap::Frame { mapped: Some(Mapping { vaddr, asid: 1 }), .. } if vaddr == rs.bootinfo_vaddr)
        );
        assert!(
            matches!(cap(init_cap::IPC_BUFFER), Cap::Frame { mapped: Some(Mapping { vaddr, .. }), .. } if vaddr == rs.ipc_buffer_vaddr)
        );
        assert_eq!(cap(init_cap::DOMAIN), Cap::Domain);
        assert_eq!(cap(init_cap::SMMU_SID_CONTROL), Cap::Null);
        assert!(matches!(
            cap(init_cap::SCHED_CONTEXT),
            Cap::SchedContext { size_bits: 7, .. }
        ));
        assert_eq!(cap(init_cap::SMC), Cap::Smc { badge: 0 });
        assert_eq!(
            crate::object::vspace::find_vspace_for_asid(1),
            Some(rs.vspace)
        );
    }

    #[test]
    fn bootinfo_regions_describe_the_slots_and_untypeds_cover_free_memory() {
        let (a, mut free, input) = setup();
        let devices = [
            Region::new(0, 0x0800_0000),
            Region::new(0x0900_0000, 0x0900_1000),
        ];
        let rs = create(&mut free, &devices, &input).unwrap();
        let bi = bootinfo(&rs);
        assert_eq!(bi.ipc_buffer, 0x40_0000 + 5 * PAGE);
        assert_eq!(rs.bootinfo_vaddr, bi.ipc_buffer + PAGE);
        assert_eq!(bi.init_thread_cnode_size_bits, 17);
        assert_eq!(bi.user_image_frames.len(), 5);
        assert_eq!(
            bi.user_image_paging.len(),
            2,
            "one level-2 and one level-3 table"
        );
        assert_eq!(bi.extra_bi_pages.len(), 1);
        assert_eq!(bi.extra_len, 16 + 300);
        assert_eq!(bi.sched_control.len(), 1);
        assert_eq!(
            bi.empty,
            SlotRegion {
                start: bi.untyped.end,
                end: 1 << 17
            }
        );
        for (k, s) in (bi.user_image_frames.start..bi.user_image_frames.end).enumerate() {
            let Cap::Frame {
                paddr,
                mapped: Some(m),
                ..
            } = SlotRef::nth(rs.cnode, s).cap()
            else {
                panic!()
            };
            assert_eq!(paddr, input.image.start + k as u64 * PAGE);
            assert_eq!(m.vaddr, 0x40_0000 + k as u64 * PAGE);
        }
        // Untypeds: devices first, each naturally aligned, and together with
        // everything the root task got they cover the RAM left after boot.
        let n = bi.untyped.len() as usize;
        let list = &bi.untyped_list[..n];
        assert!(list[0].is_device == 1 && list[0].paddr == 0);
        let first_ram = list.iter().position(|u| u.is_device == 0).unwrap();
        assert!(list[first_ram..].iter().all(|u| u.is_device == 0));
        let mut ram = 0;
        for (i, u) in list.iter().enumerate() {
            assert_eq!(u.paddr % (1 << u.size_bits), 0);
            let cap = SlotRef::nth(rs.cnode, bi.untyped.start + i as u64).cap();
            assert!(
                matches!(cap, Cap::Untyped { paddr, size_bits, is_device, .. }
                if paddr == u.paddr && size_bits == u.size_bits && is_device == (u.is_device == 1))
            );
            if u.is_device == 0 {
                ram += 1u64 << u.size_bits;
            }
        }
        let root_objects =
            (4 << 20) + 2 * PAGE + PAGE + 2 * PAGE + 2 * PAGE + PAGE + (1 << 11) + (1 << 7);
        let reserved = (1 << 20) + 5 * PAGE + PAGE;
        assert!(ram <= a.size - reserved - root_objects);
        assert!(
            ram > a.size - reserved - root_objects - (64 << 10),
            "only slivers are lost to alignment"
        );
        // The extra BootInfo region starts with the FDT header and the tree.
        let Cap::Frame { paddr, .. } = SlotRef::nth(rs.cnode, bi.extra_bi_pages.start).cap() else {
            panic!()
        };
        let h: BootInfoHeader = memory::read(paddr);
        assert_eq!((h.id, h.len), (EXTRA_FDT, 16 + 300));
        assert_eq!(memory::read::<u32>(paddr + 16), 0xedfe_0dd0);
    }

    #[test]
    fn the_address_space_maps_image_ipc_buffer_and_bootinfo() {
        let (_a, mut free, input) = setup();
        let rs = create(&mut free, &[], &input).unwrap();
        let leaf = |v| {
            let (level, e) = pagetable::walk(rs.vspace, v, 3);
            assert_eq!(level, 3);
            pagetable::read(e)
        };
        assert_eq!(leaf(0x40_0000).addr(), input.image.start);
        assert_eq!(
            leaf(0x40_0000 + 4 * PAGE).addr(),
            input.image.start + 4 * PAGE
        );
        assert_eq!(leaf(rs.ipc_buffer_vaddr).addr(), rs.ipc_buffer);
        assert!(leaf(rs.bootinfo_vaddr).is_valid());
        assert!(
            !leaf(rs.bootinfo_vaddr + 2 * PAGE).is_valid(),
            "nothing past the extra BootInfo page"
        );
    }

    #[test]
    fn a_misaligned_image_is_refused() {
        let (_a, mut free, mut input) = setup();
        input.image.end -= 1;
        assert_eq!(create(&mut free, &[], &input), Err(BootError::BadImage));
    }
}
