//! Message registers and message info, libmicrokit style.

use septa_abi::MessageInfo;
use septa_sel4::ipc_buffer;

/// A message info with `label` and `count` message registers
/// (`microkit_msginfo_new`).
pub fn msginfo_new(label: u64, count: u64) -> MessageInfo {
    MessageInfo::new(label, 0, 0, count)
}

/// Sets message register `mr` (0..120) of the next message sent.
pub fn mr_set(mr: usize, value: u64) {
    ipc_buffer::set_mr(mr, value)
}

/// Message register `mr` (0..120) of the last message received.
pub fn mr_get(mr: usize) -> u64 {
    ipc_buffer::get_mr(mr)
}
