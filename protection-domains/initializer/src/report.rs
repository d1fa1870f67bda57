//! What the kernel handed the root task, printed on the console: a one-line
//! summary on every boot, and in full when the initializer is built with
//! `SEPTA_BOOTINFO_DUMP=1`. The full report is how docs/real-sel4.md was
//! written: run it on a real seL4 16.0.0 and on Septa's kernel and compare.
//! Every line of the full report starts with `bootinfo:` so the two logs
//! can be diffed with `grep '^bootinfo:'`.

use core::fmt::Write;

use septa_abi::bootinfo::{BootInfo, BootInfoHeader, SlotRegion, EXTRA_FDT};
use septa_abi::{init_cap, Label, MessageInfo, PAGE_BITS};

use crate::sys::{self, Debug};

/// The BootInfo frame is one page (seL4_BootInfoFrameBits is the page size
/// on aarch64); the extra BootInfo region starts on the page after it.
const BOOT_INFO_FRAME_SIZE: u64 = 1 << PAGE_BITS;
/// The first slots the report identifies: every fixed initial cap and a
/// few of the slots the kernel fills after them.
const IDENTIFY_SLOTS: u64 = 21;
/// A flattened device tree starts with this big-endian word.
const FDT_MAGIC: u32 = 0xd00d_feed;

macro_rules! say {
    ($($t:tt)*) => { let _ = writeln!(Debug, $($t)*); };
}

/// Untyped memory counted by kind.
struct UntypedTotals {
    ram_caps: u64,
    ram_bytes: u64,
    device_caps: u64,
    device_bytes: u64,
}

fn untyped_totals(bi: &BootInfo) -> UntypedTotals {
    let mut t = UntypedTotals {
        ram_caps: 0,
        ram_bytes: 0,
        device_caps: 0,
        device_bytes: 0,
    };
    for u in untypeds(bi) {
        let bytes = 1u64 << u.size_bits;
        if u.is_device != 0 {
            t.device_caps += 1;
            t.device_bytes += bytes;
        } else {
            t.ram_caps += 1;
            t.ram_bytes += bytes;
        }
    }
    t
}

/// The described untypeds: as many list entries as the untyped slot region
/// names, never more than the list holds.
fn untypeds(bi: &BootInfo) -> &[septa_abi::bootinfo::UntypedDesc] {
    let n = (bi.untyped.len() as usize).min(bi.untyped_list.len());
    &bi.untyped_list[..n]
}

/// One line: the facts a reader checks first on any kernel.
pub fn summary(bi: &BootInfo) {
    let t = untyped_totals(bi);
    say!(
        "initializer: empty slots {}..{}, {} untyped ({} RAM, {} KiB; {} device), {} image frames, extra BootInfo {} bytes",
        bi.empty.start,
        bi.empty.end,
        bi.untyped.len(),
        t.ram_caps,
        t.ram_bytes >> 10,
        t.device_caps,
        bi.user_image_frames.len(),
        bi.extra_len
    );
}

fn region(name: &str, r: SlotRegion) {
    say!(
        "bootinfo: {name} slots [{}..{}) ({} caps)",
        r.start,
        r.end,
        r.len()
    );
}

/// Everything: BootInfo fields, untyped list, extra headers, initial caps,
/// the initial scheduling context and the registers at entry.
pub fn full(bi: &BootInfo, bi_addr: u64, entry_sp: u64, entry_regs_or: u64) {
    say!(
        "bootinfo: BootInfo at {bi_addr:#x}, IPC buffer at {:#x}",
        bi.ipc_buffer
    );
    say!("bootinfo: entry SP {entry_sp:#x}, x1..x30 ORed {entry_regs_or:#x}");
    say!(
        "bootinfo: extraLen {} nodeID {} numNodes {} numIOPTLevels {} initThreadCNodeSizeBits {} initThreadDomain {}",
        bi.extra_len,
        bi.node_id,
        bi.num_nodes,
        bi.num_io_pt_levels,
        bi.init_thread_cnode_size_bits,
        bi.init_thread_domain
    );
    region("empty", bi.empty);
    region("sharedFrames", bi.shared_frames);
    region("userImageFrames", bi.user_image_frames);
    region("userImagePaging", bi.user_image_paging);
    region("ioSpaceCaps", bi.io_space_caps);
    region("extraBIPages", bi.extra_bi_pages);
    region("schedcontrol", bi.sched_control);
    region("untyped", bi.untyped);

    let t = untyped_totals(bi);
    say!(
        "bootinfo: untyped RAM {} caps {} bytes, device {} caps {} bytes",
        t.ram_caps,
        t.ram_bytes,
        t.device_caps,
        t.device_bytes
    );
    for (i, u) in untypeds(bi).iter().enumerate() {
        say!(
            "bootinfo: untyped[{i}] slot {} paddr {:#x} sizeBits {} {}",
            bi.untyped.start + i as u64,
            u.paddr,
            u.size_bits,
            if u.is_device != 0 { "device" } else { "ram" }
        );
    }

    extra_headers(bi, bi_addr);

    for slot in 0..IDENTIFY_SLOTS {
        say!("bootinfo: cap slot {slot} type {}", sys::cap_identify(slot));
    }
    for (name, r) in [
        ("userImageFrames", bi.user_image_frames),
        ("userImagePaging", bi.user_image_paging),
        ("extraBIPages", bi.extra_bi_pages),
        ("schedcontrol", bi.sched_control),
        ("untyped", bi.untyped),
        ("empty", bi.empty),
    ] {
        if !r.is_empty() {
            say!(
                "bootinfo: cap first of {name} (slot {}) type {}",
                r.start,
                sys::cap_identify(r.start)
            );
        }
    }

    let (info, mrs) = sys::call(
        init_cap::SCHED_CONTEXT,
        MessageInfo::new(Label::SchedContextConsumed as u64, 0, 0, 0),
        [0; 4],
    );
    say!(
        "bootinfo: SchedContextConsumed on the initial SC: label {} length {} consumed {} us",
        info.label(),
        info.length(),
        mrs[0]
    );
}

/// Walks the extra BootInfo region: `extra_len` bytes of {id, len} headers,
/// each followed by its payload, from the page after the BootInfo frame.
fn extra_headers(bi: &BootInfo, bi_addr: u64) {
    let base = bi_addr + BOOT_INFO_FRAME_SIZE;
    let header_len = core::mem::size_of::<BootInfoHeader>() as u64;
    let mut off = 0;
    while off + header_len <= bi.extra_len {
        // SAFETY: the kernel maps the extra region, `extra_len` bytes, right
        // after the BootInfo frame; the loop keeps the header inside it.
        let h = unsafe { core::ptr::read((base + off) as *const BootInfoHeader) };
        let mut note = "";
        if h.id == EXTRA_FDT && h.len >= header_len + 4 {
            // SAFETY: an FDT region is at least a header and a word long
            // (checked just above) and lies inside the mapped extra region.
            let magic = unsafe { core::ptr::read((base + off + header_len) as *const u32) };
            note = if u32::from_be(magic) == FDT_MAGIC {
                " (FDT, magic ok)"
            } else {
                " (FDT, bad magic)"
            };
        }
        say!(
            "bootinfo: extra header at +{off:#x}: id {} len {}{note}",
            h.id,
            h.len
        );
        if h.len == 0 {
            break;
        }
        off += h.len;
    }
}
