//! # Message transfer between threads
//!
//! What moves when a send meets a receive (seL4's `doIPCTransfer` and
//! friends): the message registers (MR0..MR3 in x2..x5, the rest in the IPC
//! buffers, up to 120 words), the badge (x0) and message info (x1), and up
//! to three capabilities named in the sender's IPC buffer. A cap to the
//! very endpoint the message travels on is not transferred but *unwrapped*:
//! the receiver gets its badge in the caps-or-badges word and a bit in the
//! message info's `caps_unwrapped`. Other caps need the grant right, are
//! derived as for a copy, and only the first one lands, in the receive slot
//! the receiver names in its IPC buffer.
//!
//! Also here: the kernel's own replies to an invocation ([`reply_from_kernel_error`]
//! and friends), the reply of a Call (`do_reply_transfer`), and
//! [`cancel_ipc`], which takes a blocked thread out of whatever it waits on.

use crate::cap::{derive, Cap, CapType, VmRights};
use crate::context::{Reg, MSG_REGISTERS};
use crate::cspace::{lookup_cap, lookup_target_slot, resolve_raw};
use crate::cte::{cte_insert, SlotRef};
use crate::error::{LookupFault, SyscallError};
use crate::fault::{self, Fault};
use crate::memory;
use crate::object::endpoint::{self, Ep};
use crate::object::notification::{self, Ntfn};
use crate::object::reply::{self, ReplyObj};
use crate::object::sched_context;
use crate::object::tcb::{self, Tcb, ThreadState};
use crate::sched;
use septa_abi::ipc_buffer::{
    CAPS_OR_BADGES_OFFSET, FAST_MESSAGE_REGISTERS, MSG_MAX_EXTRA_CAPS, MSG_MAX_LENGTH,
    RECEIVE_CNODE_OFFSET, RECEIVE_DEPTH_OFFSET, RECEIVE_INDEX_OFFSET,
};
use septa_abi::{MessageInfo, WORD_BITS};

/// Message registers in machine registers.
pub const N_MSG_REGISTERS: usize = FAST_MESSAGE_REGISTERS;

/// The message info word as the kernel reads it: a length past 120 is cut
/// to 120 (seL4's `messageInfoFromWord`).
pub fn message_info(w: u64) -> MessageInfo {
    let m = MessageInfo(w);
    if m.length() > MSG_MAX_LENGTH as u64 {
        MessageInfo((w & !0x7f) | MSG_MAX_LENGTH as u64)
    } else {
        m
    }
}

/// Where a thread's IPC buffer is in physical memory, if it has a usable
/// one: a non-device frame cap in its buffer slot, writable for a receiver
/// and at least readable for a sender (seL4's `lookupIPCBuffer`).
pub fn lookup_ipc_buffer(is_receiver: bool, t: Tcb) -> Option<u64> {
    let Cap::Frame {
        paddr,
        size,
        rights,
        is_device: false,
        ..
    } = t.slot(tcb::BUFFER).cap_expecting(CapType::Frame)
    else {
        return None;
    };
    let ok = rights == VmRights::ReadWrite || (!is_receiver && rights == VmRights::ReadOnly);
    if !ok {
        return None;
    }
    let mask = (1u64 << size.size_bits()) - 1;
    // The buffer address was checked to be 1 KiB aligned when it was set,
    // so the buffer never crosses the end of its frame.
    Some(paddr + (t.ipc_buffer() & mask))
}

/// Word `i` of an IPC buffer (word 0 is the tag, MR n is word n + 1).
pub fn buffer_word(buf: u64, i: usize) -> u64 {
    memory::read(buf + 8 * i as u64)
}

pub fn set_buffer_word(buf: u64, i: usize, v: u64) {
    memory::write(buf + 8 * i as u64, v)
}

/// Message register `i` of a thread: a machine register or a buffer word.
/// With no buffer, registers past the fast ones read as 0.
pub fn get_mr(t: Tcb, buf: Option<u64>, i: usize) -> u64 {
    if i < N_MSG_REGISTERS {
        t.reg(MSG_REGISTERS[i])
    } else {
        buf.map_or(0, |b| buffer_word(b, i + 1))
    }
}

/// Sets message register `i` of a receiver; returns the message length so
/// far (seL4's `setMR`: without a buffer, words past the fast registers are
/// dropped and the length stays at 4).
#[inline(never)]
pub fn set_mr(t: Tcb, buf: Option<u64>, i: usize, v: u64) -> usize {
    if i < N_MSG_REGISTERS {
        t.set_reg(MSG_REGISTERS[i], v);
        i + 1
    } else {
        match buf {
            Some(b) => {
                set_buffer_word(b, i + 1, v);
                i + 1
            }
            None => N_MSG_REGISTERS,
        }
    }
}

/// Copies `n` message registers; returns how many were copied (only the
/// fast ones unless both threads have a buffer).
pub fn copy_mrs(
    sender: Tcb,
    send_buf: Option<u64>,
    receiver: Tcb,
    recv_buf: Option<u64>,
    n: usize,
) -> usize {
    let mut i = 0;
    while i < n && i < N_MSG_REGISTERS {
        receiver.set_reg(MSG_REGISTERS[i], sender.reg(MSG_REGISTERS[i]));
        i += 1;
    }
    let (Some(sb), Some(rb)) = (send_buf, recv_buf) else {
        return i;
    };
    while i < n {
        set_buffer_word(rb, i + 1, buffer_word(sb, i + 1));
        i += 1;
    }
    i
}

/// The slots of the extra caps a message names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExtraCaps {
    pub slots: [Option<SlotRef>; MSG_MAX_EXTRA_CAPS],
}

impl ExtraCaps {
    pub fn count(&self) -> usize {
        self.slots.iter().take_while(|s| s.is_some()).count()
    }

    /// The slots, in order, for an [`crate::invocation::Invocation`]: the
    /// first `n` entries of the array (the rest are filler never read).
    pub fn to_array(self) -> ([SlotRef; MSG_MAX_EXTRA_CAPS], usize) {
        let n = self.count();
        let mut out = [SlotRef::new(crate::cte::SLOT_BYTES); MSG_MAX_EXTRA_CAPS];
        for (o, s) in out.iter_mut().zip(self.slots.iter()) {
            if let Some(s) = s {
                *o = *s;
            }
        }
        (out, n)
    }
}

/// Looks up the extra caps named in the sender's buffer (seL4's
/// `lookupExtraCaps`); a failed lookup is a cap fault at that address.
pub fn lookup_extra_caps(t: Tcb, buf: Option<u64>, info: MessageInfo) -> Result<ExtraCaps, Fault> {
    let mut caps = ExtraCaps::default();
    let Some(b) = buf else {
        return Ok(caps);
    };
    if info.extra_caps() == 0 {
        // The common case; spares reading the CSpace root.
        return Ok(caps);
    }
    let root = t.slot(tcb::CTABLE).raw_cap();
    for i in 0..info.extra_caps() as usize {
        let cptr = buffer_word(b, CAPS_OR_BADGES_OFFSET / 8 + i);
        match resolve_raw(root, cptr, WORD_BITS as u64) {
            Ok(r) => caps.slots[i] = Some(r.slot),
            Err(lookup) => {
                return Err(Fault::Cap {
                    address: cptr,
                    in_receive_phase: false,
                    lookup,
                })
            }
        }
    }
    Ok(caps)
}

/// The slot a receiver offers for a capability, from its buffer's receive
/// root, index and depth: must exist and be empty (seL4's
/// `getReceiveSlots`).
fn receive_slot(receiver: Tcb, buf: u64) -> Option<SlotRef> {
    let root_cptr = buffer_word(buf, RECEIVE_CNODE_OFFSET / 8);
    let index = buffer_word(buf, RECEIVE_INDEX_OFFSET / 8);
    let depth = buffer_word(buf, RECEIVE_DEPTH_OFFSET / 8);
    let cnode = lookup_cap(&receiver.cspace_root(), root_cptr).ok()?;
    let slot = lookup_target_slot(&cnode, index, depth).ok()?;
    slot.is_empty().then_some(slot)
}

/// Moves the extra caps to the receiver; returns the message info with
/// `extra_caps` and `caps_unwrapped` set (seL4's `transferCaps`).
fn transfer_caps(
    info: MessageInfo,
    caps: &ExtraCaps,
    ep: Option<Ep>,
    receiver: Tcb,
    recv_buf: Option<u64>,
) -> MessageInfo {
    let mut unwrapped = 0;
    let (Some(rb), Some(_)) = (recv_buf, caps.slots[0]) else {
        return MessageInfo::new(info.label(), 0, 0, info.length());
    };
    let mut dest = receive_slot(receiver, rb);
    let mut i = 0;
    while i < MSG_MAX_EXTRA_CAPS {
        let Some(slot) = caps.slots[i] else {
            break;
        };
        let cap = slot.cap();
        match cap {
            Cap::Endpoint { paddr, badge, .. } if Some(paddr) == ep.map(|e| e.paddr()) => {
                set_buffer_word(rb, CAPS_OR_BADGES_OFFSET / 8 + i, badge);
                unwrapped |= 1 << i;
            }
            _ => {
                let Some(d) = dest else {
                    break;
                };
                let Ok(new) = derive(slot, &cap) else {
                    break;
                };
                if new.is_null() {
                    break;
                }
                cte_insert(&new, slot, d);
                dest = None;
            }
        }
        i += 1;
    }
    MessageInfo::new(info.label(), unwrapped, i as u64, info.length())
}

/// A normal message: registers, buffer words and caps (seL4's
/// `doNormalTransfer`). The IPC buffers are looked up only when the
/// message needs them: words past the registers, or caps to grant. (A
/// short message without caps goes the same way with or without buffers.)
fn do_normal_transfer(sender: Tcb, ep: Option<Ep>, badge: u64, can_grant: bool, receiver: Tcb) {
    let tag = message_info(sender.reg(Reg::MSG_INFO));
    let (send_buf, recv_buf) =
        if tag.length() > N_MSG_REGISTERS as u64 || (can_grant && tag.extra_caps() != 0) {
            (
                lookup_ipc_buffer(false, sender),
                lookup_ipc_buffer(true, receiver),
            )
        } else {
            (None, None)
        };
    // (Without extra caps there is nothing to look up.)
    let caps = if can_grant && tag.extra_caps() != 0 {
        lookup_extra_caps(sender, send_buf, tag).unwrap_or_default()
    } else {
        ExtraCaps::default()
    };
    let sent = copy_mrs(sender, send_buf, receiver, recv_buf, tag.length() as usize);
    let tag = transfer_caps(tag, &caps, ep, receiver, recv_buf);
    let tag = MessageInfo::new(
        tag.label(),
        tag.caps_unwrapped(),
        tag.extra_caps(),
        sent as u64,
    );
    receiver.set_reg(Reg::MSG_INFO, tag.0);
    receiver.set_reg(Reg::BADGE, badge);
}

/// A fault message: the fault's words, labelled with the fault type
/// (seL4's `doFaultTransfer`).
fn do_fault_transfer(badge: u64, sender: Tcb, receiver: Tcb, recv_buf: Option<u64>) {
    let f = sender.fault();
    let sent = fault::set_mrs_fault(&f, sender, receiver, recv_buf);
    receiver.set_reg(
        Reg::MSG_INFO,
        MessageInfo::new(f.label(), 0, 0, sent as u64).0,
    );
    receiver.set_reg(Reg::BADGE, badge);
}

/// Transfers a message, or the sender's fault, to the receiver (seL4's
/// `doIPCTransfer`).
pub fn do_ipc_transfer(sender: Tcb, ep: Option<Ep>, badge: u64, can_grant: bool, receiver: Tcb) {
    if !sender.has_fault() {
        do_normal_transfer(sender, ep, badge, can_grant, receiver);
    } else {
        do_fault_transfer(badge, sender, receiver, lookup_ipc_buffer(true, receiver));
    }
}

/// A non-blocking receive found nothing: the badge register reads 0.
pub fn do_nb_recv_failed_transfer(t: Tcb) {
    t.set_reg(Reg::BADGE, 0);
}

/// Answers the caller blocked on `reply` (seL4's MCS `doReplyTransfer`):
/// the message, or for a faulted caller the fault reply that decides
/// whether it restarts; then the caller runs if its SC allows.
///
/// Out of line (see the crate header), like the two kernel replies below:
/// inlined into their callers they slowed the IPC slow path.
#[inline(never)]
pub fn do_reply_transfer(sender: Tcb, reply: ReplyObj, can_grant: bool) {
    let Some(receiver) = reply.tcb() else {
        return;
    };
    if receiver.state() != ThreadState::BlockedOnReply {
        return;
    }
    reply::remove(reply, receiver);
    if let Some(sc) = sched::sc_of(receiver) {
        if sc.is_sporadic() && Some(sc) != sched::cur_sc() {
            sched_context::refill_unblock_check(sc);
        }
    }
    // The fault is decoded only if there is one.
    let f = if receiver.has_fault() {
        receiver.fault()
    } else {
        Fault::Null
    };
    if f.is_null() {
        do_ipc_transfer(sender, None, 0, can_grant, receiver);
        sched::set_thread_state(receiver, ThreadState::Running);
    } else {
        let restart = fault::handle_fault_reply(&f, receiver, sender);
        receiver.set_fault(&Fault::Null);
        sched::set_thread_state(
            receiver,
            if restart {
                ThreadState::Restart
            } else {
                ThreadState::Inactive
            },
        );
    }
    if let Some(sc) = sched::sc_of(receiver) {
        if receiver.state().is_runnable() {
            if sc.refill_ready() && sc.refill_sufficient(0) {
                sched::possible_switch_to(receiver);
            } else if fault::valid_timeout_handler(receiver) && !f.is_timeout() {
                fault::handle_timeout(receiver, Fault::Timeout { badge: sc.badge() });
            } else {
                sched::postpone(sc);
            }
        }
    }
}

/// Takes a blocked thread out of what it waits on, forgetting its fault
/// (seL4's `cancelIPC`). The thread ends up Inactive.
pub fn cancel_ipc(t: Tcb) {
    t.set_fault(&Fault::Null);
    match t.state() {
        ThreadState::BlockedOnSend | ThreadState::BlockedOnReceive => {
            let ep = Ep::new(t.blocking_object());
            endpoint::dequeue_cold(t, ep);
            if t.state() == ThreadState::BlockedOnReceive {
                if let Some(r) = ReplyObj::from_link(t.reply_object()) {
                    reply::unlink(r, t);
                }
            }
            sched::set_thread_state(t, ThreadState::Inactive);
        }
        ThreadState::BlockedOnNotification => {
            notification::cancel_signal(t, Ntfn::new(t.blocking_object()));
        }
        ThreadState::BlockedOnReply => reply::remove_tcb(t),
        _ => {}
    }
}

/// The kernel's error reply to an invocation: label = error, details in
/// the message registers (seL4's `replyFromKernel_error`).
///
/// Out of line (see the crate header).
#[inline(never)]
pub fn reply_from_kernel_error(t: Tcb, e: &SyscallError) {
    let buf = lookup_ipc_buffer(true, t);
    t.set_reg(Reg::BADGE, 0);
    let r = e.reply();
    let mut len = 0;
    for (i, &w) in r.words().iter().enumerate() {
        len = set_mr(t, buf, i, w);
    }
    t.set_reg(
        Reg::MSG_INFO,
        MessageInfo::new(r.error as u64, 0, 0, len as u64).0,
    );
}

/// A successful reply carrying `words` (label 0; empty for most
/// invocations: seL4's `replyFromKernel_success_empty`).
///
/// Out of line (see the crate header).
#[inline(never)]
pub fn reply_from_kernel_words(t: Tcb, words: &[u64]) {
    let buf = if words.len() > N_MSG_REGISTERS {
        lookup_ipc_buffer(true, t)
    } else {
        None
    };
    t.set_reg(Reg::BADGE, 0);
    let mut len = 0;
    for (i, &w) in words.iter().enumerate() {
        len = set_mr(t, buf, i, w);
    }
    t.set_reg(Reg::MSG_INFO, MessageInfo::new(0, 0, 0, len as u64).0);
}

/// Writes a lookup failure into message registers from `offset`; returns
/// the length (seL4's `setMRs_lookup_failure`).
pub fn set_mrs_lookup_failure(t: Tcb, buf: Option<u64>, lf: &LookupFault, offset: usize) -> usize {
    let mut words = [0u64; 4];
    let n = lf.write_words(&mut words);
    let mut len = 0;
    for (i, &w) in words[..n].iter().enumerate() {
        len = set_mr(t, buf, offset + i, w);
    }
    len
}
