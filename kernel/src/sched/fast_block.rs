//! # What the Recv fast path asks of the scheduler (`crate::fastpath::recv`)
//!
//! The current thread blocks, so the slow path's [`schedule`] has a new
//! thread to choose (the action is ChooseNew once the thread is no longer
//! schedulable): it releases what is due (`awaken`), checks the domain's
//! time, leaves the blocked thread out of the ready queues, and
//! `choose_thread` switches to the head of the highest non-empty ready
//! queue of the domain, or idles. These two functions are that, for the
//! case where it is all that happens.

use super::*;

/// The thread [`schedule`] would switch to once the current thread has
/// blocked in a system call, if the rest of it would do nothing: the
/// scheduler had nothing pending (the action is ResumeCurrent until the
/// block makes it ChooseNew), no release is due (`awaken` would find
/// nothing), the domain has time left (neither the entry's budget check
/// nor `check_domain_time` nor `schedule_choose_new_thread` acts on it),
/// and a ready thread is there (else the idle thread runs: left to the
/// slow path). Call after [`fast_budget`], which reads the clock, and
/// before the block, with the current thread in no queue.
#[inline(always)]
pub fn fast_block_choice() -> Option<Tcb> {
    with(
        #[inline(always)]
        |s| {
            if s.action.get() != Action::ResumeCurrent
                || s.domain_time.get() == 0
                || !no_release_due(s)
            {
                return None;
            }
            let prio = highest_prio(s)?;
            let dom = (s.cur_domain.get() as usize).min(NUM_DOMAINS as usize - 1);
            s.ready[dom * NUM_PRIORITIES + prio as usize].get().head
        },
    )
}

/// The end of the Recv fast path, the current thread now blocked: what
/// [`schedule`] does with ChooseNew after `choose_thread` found `t` at the
/// head of its ready queue, its address space `root` ready
/// (`switch_to_thread` as the other fast paths write it out, then `t` off
/// the head of its queue; the action stays ResumeCurrent; the scheduling
/// context switch with the time commit; the timer), then
/// [`activate_thread`], whose common case (a Running thread with no
/// YieldTo) does nothing.
#[inline(always)]
pub fn fast_block_switch(t: Tcb, root: vspace::ReadyRoot) {
    fast_switch_to(t, root);
    ready_pop_head(t);
    fast_switch_sc(Sc::from_link(t.sched_context()));
    if t.yield_to() != 0 || t.state() != ThreadState::Running {
        activate_thread();
    }
}

/// Takes `t`, the head of its ready queue, off it: [`tcb_sched_dequeue`]
/// for the head, spelled out (its successor, if any, becomes the head;
/// an emptied queue leaves the bitmap).
#[inline(always)]
fn ready_pop_head(t: Tcb) {
    let dom = (t.domain() as usize).min(NUM_DOMAINS as usize - 1);
    let prio = (t.priority() as usize).min(NUM_PRIORITIES - 1);
    let next = t.sched_next();
    if let Some(n) = next {
        n.set_sched_prev(None);
        t.set_sched_next(None);
    }
    t.set_queued(false);
    with(
        #[inline(always)]
        |s| {
            let i = dom * NUM_PRIORITIES + prio;
            match next {
                Some(n) => s.ready[i].set(TcbQueue {
                    head: Some(n),
                    end: s.ready[i].get().end,
                }),
                None => {
                    s.ready[i].set(TcbQueue::EMPTY);
                    let l1 = prio >> 6;
                    let w = dom * L2_WORDS + l1;
                    let l2 = s.l2_bitmap[w].get() & !(1 << (prio & 63));
                    s.l2_bitmap[w].set(l2);
                    if l2 == 0 {
                        s.l1_bitmap[dom].set(s.l1_bitmap[dom].get() & !(1 << l1));
                    }
                }
            }
        },
    );
}
