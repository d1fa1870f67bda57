//! # The ready queues and the release queue
//!
//! One queue per domain and priority, with a two-level bitmap per domain to
//! find the highest non-empty one in two steps (seL4's `ksReadyQueues` and
//! `ksReadyQueuesL1Bitmap`/`L2Bitmap`); only the current domain's are ever
//! chosen from. And the release queue of threads whose head refill is not
//! yet due, ordered by release time.

use super::*;

// ---------------------------------------------------------------------------
// Ready queues.

/// Where a thread's ready queue is: its domain and priority.
#[derive(Clone, Copy)]
struct Slot {
    dom: usize,
    prio: usize,
}

impl Slot {
    fn of(t: Tcb) -> Slot {
        Slot {
            dom: (t.domain() as usize).min(NUM_DOMAINS as usize - 1),
            prio: (t.priority() as usize).min(NUM_PRIORITIES - 1),
        }
    }

    fn queue(self) -> usize {
        self.dom * NUM_PRIORITIES + self.prio
    }
}

fn add_to_bitmap(s: &SchedState, q: Slot) {
    let l1 = q.prio >> 6;
    let l2 = q.dom * L2_WORDS + l1;
    s.l1_bitmap[q.dom].set(s.l1_bitmap[q.dom].get() | 1 << l1);
    s.l2_bitmap[l2].set(s.l2_bitmap[l2].get() | 1 << (q.prio & 63));
}

fn remove_from_bitmap(s: &SchedState, q: Slot) {
    let l1 = q.prio >> 6;
    let i = q.dom * L2_WORDS + l1;
    let l2 = s.l2_bitmap[i].get() & !(1 << (q.prio & 63));
    s.l2_bitmap[i].set(l2);
    if l2 == 0 {
        s.l1_bitmap[q.dom].set(s.l1_bitmap[q.dom].get() & !(1 << l1));
    }
}

/// The highest priority with a ready thread in the current domain.
#[inline(always)]
pub(super) fn highest_prio(s: &SchedState) -> Option<u64> {
    let dom = (s.cur_domain.get() as usize).min(NUM_DOMAINS as usize - 1);
    let l1_bitmap = s.l1_bitmap[dom].get();
    if l1_bitmap == 0 {
        return None;
    }
    let l1 = 63 - l1_bitmap.leading_zeros() as usize;
    let l2 = 63 - s.l2_bitmap[dom * L2_WORDS + l1].get().leading_zeros() as u64;
    Some(((l1 as u64) << 6) | l2)
}

/// The highest priority with a ready thread in the current domain.
pub fn highest_ready_prio() -> Option<u64> {
    with(highest_prio)
}

/// No ready thread of the current domain outranks `prio` (seL4's
/// `isHighestPrio`).
pub fn is_highest_prio(prio: u64) -> bool {
    with(|s| highest_prio(s).is_none_or(|h| prio >= h))
}

/// Puts a schedulable thread at the head of its ready queue (seL4's
/// `tcbSchedEnqueue`).
pub fn tcb_sched_enqueue(t: Tcb) {
    if t.is_queued() {
        return;
    }
    let p = Slot::of(t);
    with(|s| {
        let q = s.ready[p.queue()].get();
        if q.is_empty() {
            add_to_bitmap(s, p);
        }
        s.ready[p.queue()].set(q.prepend(t));
    });
    t.set_queued(true);
}

/// Puts a schedulable thread at the end of its ready queue (seL4's
/// `tcbSchedAppend`). Written out beside [`tcb_sched_enqueue`] rather than
/// sharing a function with a head-or-end flag, which the compiler then
/// inlines differently: 42 instructions more per notify-rt and ppc-active
/// round trip (`cargo septa bench`).
pub fn tcb_sched_append(t: Tcb) {
    if t.is_queued() {
        return;
    }
    let p = Slot::of(t);
    with(|s| {
        let q = s.ready[p.queue()].get();
        if q.is_empty() {
            add_to_bitmap(s, p);
        }
        s.ready[p.queue()].set(q.append(t));
    });
    t.set_queued(true);
}

/// Takes a thread off its ready queue, if it is on one (seL4's
/// `tcbSchedDequeue`).
pub fn tcb_sched_dequeue(t: Tcb) {
    if !t.is_queued() {
        return;
    }
    let p = Slot::of(t);
    with(|s| {
        let q = s.ready[p.queue()].get().remove(t);
        s.ready[p.queue()].set(q);
        if q.is_empty() {
            remove_from_bitmap(s, p);
        }
    });
    t.set_queued(false);
}

/// The current domain's ready queue of a priority.
pub fn ready_queue(prio: u64) -> TcbQueue {
    with(|s| {
        let p = Slot {
            dom: (s.cur_domain.get() as usize).min(NUM_DOMAINS as usize - 1),
            prio: (prio as usize).min(NUM_PRIORITIES - 1),
        };
        s.ready[p.queue()].get()
    })
}

// ---------------------------------------------------------------------------
// The release queue: threads whose head refill is not yet due, ordered by
// its release time.

pub(super) fn ready_time(t: Tcb) -> u64 {
    sc_of(t).map_or(0, |sc| sc.head().time)
}

/// Takes a thread off the release queue, if it is on it (seL4's
/// `tcbReleaseRemove`).
pub fn tcb_release_remove(t: Tcb) {
    if !t.in_release_queue() {
        return;
    }
    with(|s| {
        let q = s.release_queue.get();
        if q.head == Some(t) {
            s.reprogram.set(true);
        }
        s.release_queue.set(q.remove(t));
    });
    t.set_in_release_queue(false);
}

/// Puts a thread into the release queue by its head refill's time (seL4's
/// `tcbReleaseEnqueue`).
pub fn tcb_release_enqueue(t: Tcb) {
    debug_assert!(!t.in_release_queue() && !t.is_queued());
    let new_time = ready_time(t);
    let q = with(|s| s.release_queue.get());
    let nq = match (q.head, q.end) {
        (Some(h), Some(e)) if new_time >= ready_time(h) => {
            if ready_time(e) <= new_time {
                q.append(t)
            } else {
                let mut after = h;
                while new_time >= ready_time(after) {
                    after = after.sched_next().expect("the end is later");
                }
                q.insert_before(t, after)
            }
        }
        _ => q.prepend(t),
    };
    with(|s| {
        if nq.head != s.release_queue.get().head {
            s.reprogram.set(true);
        }
        s.release_queue.set(nq);
    });
    t.set_in_release_queue(true);
}

/// Parks the thread of `sc` in the release queue until its refill is due
/// (seL4's `postpone`).
pub fn postpone(sc: Sc) {
    let Some(t) = Tcb::from_link(sc.tcb()) else {
        return;
    };
    tcb_sched_dequeue(t);
    tcb_release_enqueue(t);
    set_reprogram();
}

/// Releases every thread whose refill has come due (seL4's `awaken`).
pub fn awaken() {
    loop {
        let head = with(|s| s.release_queue.get().head);
        let Some(t) = head else {
            return;
        };
        if !sc_of(t).is_some_and(|sc| sc.refill_ready()) {
            return;
        }
        tcb_release_remove(t);
        possible_switch_to(t);
    }
}
