//! The protection-domain ABI of seL4 Microkit 2.3.0, which Septa keeps.

/// Fixed CSpace slots of every protection domain.
pub mod slot {
    pub const INPUT: u64 = 1;
    pub const FAULT_EP: u64 = 2;
    pub const VSPACE: u64 = 3;
    pub const REPLY: u64 = 4;
    pub const MONITOR_EP: u64 = 5;
    pub const TCB: u64 = 6;
    pub const SMC: u64 = 7;
    pub const BASE_OUTPUT_NOTIFICATION: u64 = 10;
    pub const BASE_ENDPOINT: u64 = 74;
    pub const BASE_IRQ: u64 = 138;
    pub const BASE_TCB: u64 = 202;
    pub const BASE_VM_TCB: u64 = 266;
    pub const BASE_VCPU: u64 = 330;
    pub const BASE_IOPORT: u64 = 394;
    pub const BASE_USER_CAPS: u64 = 458;
}

/// Bits of a PD's root CNode (Microkit's `PD_ROOT_CAP_BITS`): slot 0 holds
/// the CNode of the fixed slots above; slots 1.. hold the description's
/// extra caps (`<cspace>`), named by CPtr `slot << (64 - PD_ROOT_CAP_BITS)`.
pub const PD_ROOT_CAP_BITS: u32 = 6;

/// The CPtr of extra-cap slot `slot` of the root CNode (libmicrokit's
/// `microkit_cspace_root_slot_to_cptr`), `None` outside 1..64.
pub const fn user_cap_cptr(slot: u64) -> Option<u64> {
    if slot == 0 || slot >= 1 << PD_ROOT_CAP_BITS {
        return None;
    }
    Some(slot << (64 - PD_ROOT_CAP_BITS))
}

/// Channel ids run 0..=MAX_CHANNEL_ID.
pub const MAX_CHANNELS: u64 = 62;
/// Bit 63 of a badge marks a protected procedure call.
pub const PPC_BADGE: u64 = 1 << 63;
/// Bit 62 of a badge marks a fault from a child PD.
pub const FAULT_BADGE: u64 = 1 << 62;
/// Mask of the channel or child id in a PPC or fault badge.
pub const BADGE_CHANNEL_MASK: u64 = 0x3f;
/// Where programs link.
pub const IMAGE_BASE: u64 = 0x20_0000;
/// The highest priority a PD may have; the monitor runs above it.
pub const MAX_PD_PRIORITY: u8 = 254;
/// Default budget and period in microseconds.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// Mask of the child id in a fault badge (libmicrokit masks with 0xff).
pub const BADGE_CHILD_MASK: u64 = 0xff;
/// Slots in each of the per-kind ranges of `slot` (notifications, PPC
/// endpoints, IRQ handlers, child TCBs, VM TCBs, vCPUs, I/O ports).
pub const SLOT_RANGE_SIZE: u64 = 64;
/// Length in bytes of the patched `microkit_name` array.
pub const PD_NAME_LENGTH: usize = 64;
/// The IPC buffer of every PD: the top page of the user address space.
pub const IPC_BUFFER_VADDR: u64 = crate::USER_TOP & !((1 << crate::PAGE_BITS) - 1);
/// Top (exclusive) of every PD's stack: one guard page below the IPC
/// buffer; the stack of `stack_size` bytes is mapped just below.
pub const STACK_TOP: u64 = IPC_BUFFER_VADDR - (1 << crate::PAGE_BITS);
/// Default stack size in bytes (Microkit: 8 KiB).
pub const DEFAULT_STACK_SIZE: u64 = 0x2000;
/// Septa's addition: the value in x0 when a PD faults because it panicked
/// (septa-runtime's panic handler executes `udf` with it there), so the
/// monitor can tell a panic from a stray undefined instruction.
pub const PANIC_MARKER: u64 = 0x5E97_A000_0BAD_F00D;
/// Septa's addition: the label of the reply a caller gets when the PD it
/// called faults before answering. The monitor sends it through the
/// faulting PD's reply object, which also returns a donated scheduling
/// context to the caller. It is the largest label (52 bits), which no
/// Microkit protocol is expected to use; septa-runtime's `pp_call` turns
/// it into an error.
pub const SERVER_FAULT_LABEL: u64 = (1 << 52) - 1;
