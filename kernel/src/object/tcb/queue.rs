//! Doubly-linked queues of threads through their `sched_next`/`sched_prev`
//! links: the ready queues, the release queue and the wait queues of
//! endpoints and notifications (seL4's `tcb_queue_t` and its helpers).
//!
//! A queue is a (head, end) pair kept by its owner (a kernel global or an
//! object's words); the functions take and return it by value, as seL4's
//! do, and update the threads' links in place.

use super::Tcb;

/// The two ends of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcbQueue {
    pub head: Option<Tcb>,
    pub end: Option<Tcb>,
}

impl TcbQueue {
    pub const EMPTY: TcbQueue = TcbQueue {
        head: None,
        end: None,
    };

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Puts `t` first.
    #[inline]
    pub fn prepend(mut self, t: Tcb) -> TcbQueue {
        match self.head {
            None => self.end = Some(t),
            Some(h) => {
                t.set_sched_next(Some(h));
                h.set_sched_prev(Some(t));
            }
        }
        self.head = Some(t);
        self
    }

    /// Puts `t` last.
    #[inline]
    pub fn append(mut self, t: Tcb) -> TcbQueue {
        match self.end {
            None => self.head = Some(t),
            Some(e) => {
                t.set_sched_prev(Some(e));
                e.set_sched_next(Some(t));
            }
        }
        self.end = Some(t);
        self
    }

    /// Takes `t` out and clears its links.
    #[inline]
    pub fn remove(mut self, t: Tcb) -> TcbQueue {
        let (before, after) = (t.sched_prev(), t.sched_next());
        match before {
            Some(b) => b.set_sched_next(after),
            None => self.head = after,
        }
        match after {
            Some(a) => a.set_sched_prev(before),
            None => self.end = before,
        }
        t.set_sched_prev(None);
        t.set_sched_next(None);
        self
    }

    /// Inserts `t` right before `after`, which is in the queue and not its
    /// head.
    pub fn insert_before(self, t: Tcb, after: Tcb) -> TcbQueue {
        let before = after.sched_prev();
        debug_assert!(before.is_some(), "insert_before the head");
        t.set_sched_prev(before);
        t.set_sched_next(Some(after));
        after.set_sched_prev(Some(t));
        if let Some(b) = before {
            b.set_sched_next(Some(t));
        }
        self
    }

    /// Inserts `t` by priority: after every thread of higher or equal
    /// priority, before the first of lower (seL4's `tcbAppend`, the order
    /// of endpoint and notification queues).
    #[inline]
    pub fn insert_by_priority(self, t: Tcb) -> TcbQueue {
        let prio = t.priority();
        match (self.head, self.end) {
            (Some(h), Some(e)) if prio <= h.priority() => {
                if e.priority() >= prio {
                    return self.append(t);
                }
                // Walk back from the end to the last thread of higher or
                // equal priority (the head is one); `t` goes right after it.
                let mut before = e;
                while before.priority() < prio {
                    before = before.sched_prev().expect("the head outranks t");
                }
                let after = before.sched_next().expect("the end ranks below t");
                self.insert_before(t, after)
            }
            _ => self.prepend(t),
        }
    }

    /// The threads from head to end (tests).
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = Tcb> {
        let mut cur = self.head;
        core::iter::from_fn(move || {
            let t = cur?;
            cur = t.sched_next();
            Some(t)
        })
    }
}
