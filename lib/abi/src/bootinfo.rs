//! BootInfo: what the kernel tells the initial thread about its world.

/// Number of entries in `BootInfo::untyped_list`.
pub const MAX_UNTYPED_CAPS: usize = 230;
/// Size in bytes of `BootInfo` (checked below).
pub const BOOT_INFO_SIZE: usize = 3864;
/// Extra BootInfo region header id of a flattened device tree.
pub const EXTRA_FDT: u64 = 6;
/// Extra BootInfo region header id of padding.
pub const EXTRA_PADDING: u64 = 0;

/// A range of slots in the initial CNode, `end` exclusive.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotRegion {
    pub start: u64,
    pub end: u64,
}

impl SlotRegion {
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// One untyped capability handed to the initial thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UntypedDesc {
    pub paddr: u64,
    pub size_bits: u8,
    pub is_device: u8,
    pub padding: [u8; 6],
}

/// `seL4_BootInfo` for this configuration (MCS, one node).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    pub extra_len: u64,
    pub node_id: u64,
    pub num_nodes: u64,
    pub num_io_pt_levels: u64,
    pub ipc_buffer: u64,
    pub empty: SlotRegion,
    pub shared_frames: SlotRegion,
    pub user_image_frames: SlotRegion,
    pub user_image_paging: SlotRegion,
    pub io_space_caps: SlotRegion,
    pub extra_bi_pages: SlotRegion,
    pub init_thread_cnode_size_bits: u64,
    pub init_thread_domain: u64,
    pub sched_control: SlotRegion,
    pub untyped: SlotRegion,
    pub untyped_list: [UntypedDesc; MAX_UNTYPED_CAPS],
}

/// Header of one region in the extra BootInfo area; `len` includes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BootInfoHeader {
    pub id: u64,
    pub len: u64,
}

const _: () = assert!(core::mem::size_of::<BootInfo>() == BOOT_INFO_SIZE);
const _: () = assert!(core::mem::offset_of!(BootInfo, sched_control) == 152);
const _: () = assert!(core::mem::offset_of!(BootInfo, untyped) == 168);
const _: () = assert!(core::mem::offset_of!(BootInfo, untyped_list) == 184);
