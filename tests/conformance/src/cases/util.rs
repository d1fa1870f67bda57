//! Helpers the cases share: rights, raw messages, letting threads run,
//! receiving faults.

use septa_abi::{CapRights, Label, MessageInfo};
use septa_sel4::cap::cap_type::*;
use septa_sel4::fault::Fault;
use septa_sel4::invocation::Invocation;
use septa_sel4::{ipc_buffer, syscall, Badge, CPtr, Cap, Error};

use crate::env::Cx;
use crate::ok;
use crate::report::Outcome;

pub const NONE: CapRights = CapRights::NONE;
pub const ALL: CapRights = CapRights::ALL;
pub const READ: CapRights = CapRights::new(false, false, true, false);
pub const WRITE: CapRights = CapRights::new(false, false, false, true);
pub const RW: CapRights = CapRights::new(false, false, true, true);
/// Write and Grant: what a fault handler capability needs (or GrantReply).
pub const WRITE_GRANT: CapRights = CapRights::new(false, true, false, true);
/// Write and GrantReply.
pub const WRITE_GRANT_REPLY: CapRights = CapRights::new(true, false, false, true);
/// Read, Write and GrantReply, no Grant.
pub const RW_GRANT_REPLY: CapRights = CapRights::new(true, false, true, true);

/// An invocation of `label` with these words and no caps.
pub fn raw(label: Label, words: &[u64]) -> Invocation {
    words
        .iter()
        .fold(Invocation::new(label), |inv, w| inv.word(*w))
}

/// Lets every other runnable thread run until it blocks: the root drops to
/// the lowest priority and comes back when nothing else wants the core.
pub fn settle(cx: &Cx) -> Outcome {
    let max = septa_abi::kernel_config::MAX_PRIORITY;
    ok!(cx.root_tcb().set_priority(cx.root_tcb(), 0));
    ok!(cx.root_tcb().set_priority(cx.root_tcb(), max));
    Ok(())
}

/// Puts `words` in the message registers (buffer) for a plain syscall.
pub fn load_words(words: &[u64]) {
    for (i, w) in words.iter().enumerate() {
        ipc_buffer::set_mr(i, *w);
    }
}

/// The message info of a message of `words.len()` words with `label`.
pub fn info(label: u64, len: usize) -> MessageInfo {
    MessageInfo::new(label, 0, 0, len as u64)
}

/// Sends `label` and `words` on `dest` (blocking Send; also a reply when
/// `dest` is a reply object).
pub fn send_words(dest: CPtr, label: u64, words: &[u64]) {
    load_words(words);
    syscall::send(dest, info(label, words.len()));
}

/// Calls `dest` with `label` and up to 120 `words` (all through the IPC
/// buffer, so longer than any built invocation may be) and decodes an error
/// reply.
pub fn call_words(dest: CPtr, label: Label, words: &[u64]) -> Result<MessageInfo, Error> {
    load_words(words);
    let reply = syscall::call(dest, info(label.number(), words.len()));
    match Error::decode(reply.label(), ipc_buffer::get_mr) {
        None => Ok(reply),
        Some(e) => Err(e),
    }
}

/// Message register `i` of the last message received.
pub fn mr(i: usize) -> u64 {
    ipc_buffer::get_mr(i)
}

/// Receives a fault message on `ep`: the decoded fault and the badge.
pub fn recv_fault(ep: Cap<Endpoint>, reply: Cap<Reply>) -> (Fault, Badge) {
    let (info, badge) = syscall::recv(ep.cptr(), reply);
    (Fault::from_ipc_buffer(info), badge)
}

/// Replies to a fault (or a call) with `label` and `words`.
pub fn reply(reply: Cap<Reply>, label: u64, words: &[u64]) {
    send_words(reply.cptr(), label, words);
}
