//! Read access to BootInfo, the kernel's description of the root task's
//! world (its layout lives in `septa-abi`).
//!
//! Only the root task has a BootInfo; the kernel passes its address in x0
//! and maps the extra BootInfo pages (device tree, ...) right after it.

use septa_abi::bootinfo::{BootInfo, BootInfoHeader, SlotRegion, UntypedDesc, EXTRA_FDT};
use septa_abi::PAGE_BITS;

use crate::cap::{cap_type, CPtr, Cap};

/// BootInfo together with its extra region.
#[derive(Clone, Copy, Debug)]
pub struct BootInfoRef {
    info: &'static BootInfo,
    extra: &'static [u8],
}

impl BootInfoRef {
    /// # Safety
    /// `ptr` must be the BootInfo address the kernel passed to the root
    /// task, with the BootInfo frame and `extra_len` bytes of extra pages
    /// after it mapped read-only for the rest of the program.
    pub unsafe fn from_ptr(ptr: *const BootInfo) -> Self {
        // SAFETY: the caller guarantees `ptr` is the kernel's BootInfo,
        // mapped and never written while the program runs.
        let info = unsafe { &*ptr };
        let extra_start = ptr.cast::<u8>().wrapping_add(1 << PAGE_BITS);
        // SAFETY: the kernel maps `extra_len` bytes of extra BootInfo
        // starting one page after BootInfo (sel4-abi.md), as guaranteed by
        // the caller.
        let extra = unsafe { core::slice::from_raw_parts(extra_start, info.extra_len as usize) };
        BootInfoRef { info, extra }
    }

    /// For tests and tools: a BootInfo and extra bytes held elsewhere.
    pub fn new(info: &'static BootInfo, extra: &'static [u8]) -> Self {
        BootInfoRef { info, extra }
    }

    pub fn raw(&self) -> &'static BootInfo {
        self.info
    }

    /// The empty slots of the initial CNode.
    pub fn empty(&self) -> SlotRegion {
        self.info.empty
    }

    /// The IPC buffer address of the initial thread.
    pub fn ipc_buffer(&self) -> u64 {
        self.info.ipc_buffer
    }

    /// The SchedControl capability of core `node` (one core here: node 0).
    pub fn sched_control(&self, node: u64) -> Option<Cap<cap_type::SchedControl>> {
        let r = self.info.sched_control;
        (node < r.len()).then(|| Cap::from_bits(r.start + node))
    }

    /// Each untyped capability with its description.
    pub fn untyped(&self) -> impl Iterator<Item = (Cap<cap_type::Untyped>, UntypedDesc)> + 'static {
        let r = self.info.untyped;
        let list = &self.info.untyped_list;
        (r.start..r.end)
            .zip(list.iter())
            .map(|(slot, d)| (Cap::from_bits(slot), *d))
    }

    /// Slots of the frames of the root task's own image.
    pub fn user_image_frames(&self) -> impl Iterator<Item = Cap<cap_type::SmallPage>> {
        let r = self.info.user_image_frames;
        (r.start..r.end).map(Cap::from_bits)
    }

    /// The empty slots as capability pointers.
    pub fn empty_slots(&self) -> impl Iterator<Item = CPtr> {
        let r = self.info.empty;
        (r.start..r.end).map(CPtr::from_bits)
    }

    /// The extra BootInfo regions as `(id, body)` pairs.
    pub fn extra_regions(&self) -> ExtraRegions {
        ExtraRegions { rest: self.extra }
    }

    /// The flattened device tree, if the kernel was given one.
    pub fn fdt(&self) -> Option<&'static [u8]> {
        self.extra_regions()
            .find(|(id, _)| *id == EXTRA_FDT)
            .map(|(_, body)| body)
    }
}

/// Iterator over the extra BootInfo regions (stops at a malformed header).
#[derive(Clone, Debug)]
pub struct ExtraRegions {
    rest: &'static [u8],
}

const HEADER_LEN: usize = core::mem::size_of::<BootInfoHeader>();

impl Iterator for ExtraRegions {
    type Item = (u64, &'static [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let word = |b: &[u8], at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let id = word(self.rest, 0)?;
        let len = usize::try_from(word(self.rest, 8)?).ok()?;
        if len < HEADER_LEN || len > self.rest.len() {
            self.rest = &[];
            return None;
        }
        let body = &self.rest[HEADER_LEN..len];
        self.rest = &self.rest[len..];
        Some((id, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_abi::bootinfo::MAX_UNTYPED_CAPS;
    use std::boxed::Box;
    use std::vec::Vec;

    fn info() -> &'static BootInfo {
        let mut bi = BootInfo {
            extra_len: 0,
            node_id: 0,
            num_nodes: 1,
            num_io_pt_levels: 0,
            ipc_buffer: 0x20_1000,
            empty: SlotRegion {
                start: 40,
                end: 1 << 17,
            },
            shared_frames: SlotRegion::default(),
            user_image_frames: SlotRegion { start: 16, end: 20 },
            user_image_paging: SlotRegion::default(),
            io_space_caps: SlotRegion::default(),
            extra_bi_pages: SlotRegion::default(),
            init_thread_cnode_size_bits: 17,
            init_thread_domain: 0,
            sched_control: SlotRegion { start: 20, end: 21 },
            untyped: SlotRegion { start: 21, end: 23 },
            untyped_list: [UntypedDesc::default(); MAX_UNTYPED_CAPS],
        };
        bi.untyped_list[0] = UntypedDesc {
            paddr: 0x4000_0000,
            size_bits: 20,
            is_device: 0,
            padding: [0; 6],
        };
        bi.untyped_list[1] = UntypedDesc {
            paddr: 0x900_0000,
            size_bits: 12,
            is_device: 1,
            padding: [0; 6],
        };
        Box::leak(Box::new(bi))
    }

    fn region(id: u64, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&id.to_le_bytes());
        v.extend_from_slice(&((HEADER_LEN + body.len()) as u64).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn untyped_caps_pair_slots_with_descriptions() {
        let bi = BootInfoRef::new(info(), &[]);
        let u: Vec<_> = bi
            .untyped()
            .map(|(c, d)| (c.bits(), d.paddr, d.is_device))
            .collect();
        assert_eq!(u, [(21, 0x4000_0000, 0), (22, 0x900_0000, 1)]);
        assert_eq!(bi.sched_control(0).map(|c| c.bits()), Some(20));
        assert_eq!(bi.sched_control(1), None);
        assert_eq!(bi.user_image_frames().count(), 4);
    }

    #[test]
    fn extra_regions_are_walked_and_the_fdt_found() {
        let mut bytes = region(0, &[0; 8]);
        bytes.extend(region(EXTRA_FDT, b"\xd0\x0d\xfe\xed"));
        let bi = BootInfoRef::new(info(), Box::leak(bytes.into_boxed_slice()));
        assert_eq!(bi.extra_regions().count(), 2);
        assert_eq!(bi.fdt(), Some(&b"\xd0\x0d\xfe\xed"[..]));
    }

    #[test]
    fn a_bad_header_ends_the_walk() {
        let mut bytes = region(EXTRA_FDT, b"abc");
        bytes[8] = 200; // length past the end
        let bi = BootInfoRef::new(info(), Box::leak(bytes.into_boxed_slice()));
        assert_eq!(bi.extra_regions().count(), 0);
    }
}
