//! # What the system-call layer hands to an object's invocation decoder
//!
//! The system-call layer (not this module) looks up the invoked cap and the
//! extra caps named in the IPC buffer, faulting the caller if any lookup
//! fails, and gathers the message words from registers and the IPC buffer.
//! It then calls a decoder such as `cnode::decode_cnode_invocation` with an
//! [`Invocation`]. Decoders read arguments with [`Invocation::arg`] after
//! checking the length, exactly where seL4 reports TruncatedMessage.
//!
//! Outcome contract for the caller, as in seL4's `handleInvocation`:
//! - `Ok(..)`: the operation happened; reply with an empty message (label 0)
//!   if the caller used Call.
//! - `Err(Exception::Syscall(e))`: nothing happened; reply with `e.reply()`
//!   if the caller used Call.
//! - `Err(Exception::Preempted)`: partial progress is kept; leave the caller
//!   in the Restart state so it re-executes the same call when it runs again.
//!
//! In MCS, seL4 refuses CNode (and TCB, domain, scheduling) invocations in
//! the first phase of a combined send-receive call with InvalidCapability
//! 0; that check belongs to the caller, before the decoder.

use crate::cte::SlotRef;

/// One invocation as the decoder sees it.
#[derive(Clone, Copy, Debug)]
pub struct Invocation<'a> {
    /// The label of the message info word.
    pub label: u64,
    /// MR0 .. MR(length-1): the message length is `args.len()` (already
    /// truncated to the fast registers if the caller has no IPC buffer).
    pub args: &'a [u64],
    /// The slots of the extra caps that were looked up, in order (at most
    /// three). The decoder reads the caps from these slots itself.
    pub extra_caps: &'a [SlotRef],
}

impl<'a> Invocation<'a> {
    pub fn new(label: u64, args: &'a [u64], extra_caps: &'a [SlotRef]) -> Self {
        Invocation {
            label,
            args,
            extra_caps,
        }
    }

    /// Message length in words.
    pub fn length(&self) -> usize {
        self.args.len()
    }

    /// Message register `i`; the decoder has checked the length first, and
    /// a missing word reads as 0 rather than panicking.
    pub fn arg(&self, i: usize) -> u64 {
        self.args.get(i).copied().unwrap_or(0)
    }

    /// The slot of extra cap `i`, if the message carried one.
    pub fn extra_cap(&self, i: usize) -> Option<SlotRef> {
        self.extra_caps.get(i).copied()
    }
}

/// Most words an invocation's reply carries (TCB ReadRegisters: 36).
pub const REPLY_MAX_WORDS: usize = 64;

/// The message registers of a successful invocation's reply (label 0),
/// for the invocations that return data (TCB ReadRegisters, Page
/// GetAddress, SchedContext Consumed, ...). Decoders that return nothing
/// leave it empty; the system-call layer copies `words()` to the caller.
///
/// The words are left uninitialised until pushed: the buffer is made on
/// every invocation, and zeroing its 512 bytes cost more than most
/// decoders.
#[derive(Clone, Copy)]
pub struct ReplyWords {
    len: usize,
    words: [core::mem::MaybeUninit<u64>; REPLY_MAX_WORDS],
}

impl Default for ReplyWords {
    fn default() -> Self {
        ReplyWords {
            len: 0,
            words: [core::mem::MaybeUninit::uninit(); REPLY_MAX_WORDS],
        }
    }
}

impl core::fmt::Debug for ReplyWords {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(self.words()).finish()
    }
}

impl ReplyWords {
    /// Appends a word (words past `REPLY_MAX_WORDS` are a kernel bug).
    #[inline(never)]
    pub fn push(&mut self, w: u64) {
        debug_assert!(
            self.len < REPLY_MAX_WORDS,
            "reply longer than REPLY_MAX_WORDS"
        );
        if let Some(slot) = self.words.get_mut(self.len) {
            slot.write(w);
            self.len += 1;
        }
    }

    pub fn words(&self) -> &[u64] {
        // SAFETY: `push` initialised every word below `len` (and `len`
        // never exceeds the array); `MaybeUninit<u64>` has `u64`'s layout.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast::<u64>(), self.len) }
    }
}
