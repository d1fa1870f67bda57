//! Property test: random sequences of Retype, Copy, Mint, Move, Mutate,
//! Delete and Revoke, run through the real decoders and, side by side,
//! through a simple model that keeps the derivation tree as explicit parent
//! links. After every step the kernel must agree with the model on
//!
//! - the outcome (success, or the exact error with its details);
//! - which slots hold which caps, badges and untyped watermarks;
//! - the tree: the descendants the kernel's list gives each cap (the run of
//!   following caps it parents) are exactly the model's descendants, so
//!   parents precede children and revoke leaves no descendant behind;
//! - the final-cap rule: a cap is final exactly when no other cap names its
//!   object;
//! - and the list stays well formed, while retyped memory is always zero
//!   (checked inside Retype in debug builds; objects are scribbled over
//!   after creation so that reuse without clearing would be caught).

use super::*;
use crate::cte::{is_final_capability, is_mdb_parent_of};
use crate::error::LookupFault;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Slots the operations pick from (the boot caps live in 1..=3).
const SLOTS: u64 = 16;

#[derive(Clone, Debug)]
enum Op {
    Retype {
        ut: u64,
        kind: u8,
        size: u64,
        offset: u64,
        count: u64,
    },
    Copy {
        dest: u64,
        src: u64,
    },
    Mint {
        dest: u64,
        src: u64,
        data: u64,
    },
    Move {
        dest: u64,
        src: u64,
    },
    Mutate {
        dest: u64,
        src: u64,
        data: u64,
    },
    Delete {
        slot: u64,
    },
    Revoke {
        slot: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let s = || 0..SLOTS;
    // Sources are drawn mostly from where Retype puts objects.
    let hot = || prop_oneof![3 => 4..8u64, 1 => 0..SLOTS];
    prop_oneof![
        // Mostly endpoints and notifications from the RAM untyped, into
        // slots past the boot caps, so that badges and copies meet often.
        4 => (
            prop_oneof![4 => Just(UT), 1 => Just(DEV_UT), 1 => s()],
            prop_oneof![4 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8), 1 => Just(4u8)],
            0u64..8,
            4..8u64,
            1u64..4,
        )
            .prop_map(|(ut, kind, size, offset, count)| Op::Retype { ut, kind, size, offset, count }),
        3 => (s(), hot()).prop_map(|(dest, src)| Op::Copy { dest, src }),
        4 => (s(), hot(), 0u64..3).prop_map(|(dest, src, data)| Op::Mint { dest, src, data }),
        1 => (s(), hot()).prop_map(|(dest, src)| Op::Move { dest, src }),
        1 => (s(), hot(), 0u64..4).prop_map(|(dest, src, data)| Op::Mutate { dest, src, data }),
        2 => s().prop_map(|slot| Op::Delete { slot }),
        2 => prop_oneof![Just(UT), s()].prop_map(|slot| Op::Revoke { slot }),
    ]
}

/// What a model cap names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Obj {
    Untyped {
        base: u64,
        bits: u8,
        device: bool,
        watermark: u64,
    },
    Endpoint(u64),
    Notification(u64),
    CNode {
        paddr: u64,
        radix: u8,
    },
    Tcb(u64),
    IrqControl,
}

#[derive(Clone, Copy, Debug)]
struct MCap {
    obj: Obj,
    badge: u64,
    revocable: bool,
    parent: Option<u64>,
}

/// Caps by id; slots map to ids. Ids survive moves, so parent links do.
#[derive(Default)]
struct Model {
    caps: BTreeMap<u64, MCap>,
    slots: BTreeMap<u64, u64>,
    next_id: u64,
}

type Outcome = Result<(), SyscallError>;

impl Model {
    fn new(fx: &Fixture) -> Model {
        let mut m = Model::default();
        let ut = |base, bits, device| Obj::Untyped {
            base,
            bits,
            device,
            watermark: 1 << bits,
        };
        m.add(UT, ut(fx.ut_base, fx.ut_bits, false), 0, true, None);
        m.add(DEV_UT, ut(fx.dev_base, fx.dev_bits, true), 0, true, None);
        m.add(IRQ, Obj::IrqControl, 0, true, None);
        m
    }

    fn add(&mut self, slot: u64, obj: Obj, badge: u64, revocable: bool, parent: Option<u64>) {
        let id = self.next_id;
        self.next_id += 1;
        self.caps.insert(
            id,
            MCap {
                obj,
                badge,
                revocable,
                parent,
            },
        );
        self.slots.insert(slot, id);
    }

    fn at(&self, slot: u64) -> Option<(u64, MCap)> {
        self.slots.get(&slot).map(|&id| (id, self.caps[&id]))
    }

    fn children(&self, id: u64) -> Vec<u64> {
        self.caps
            .iter()
            .filter(|(_, c)| c.parent == Some(id))
            .map(|(&i, _)| i)
            .collect()
    }

    fn descendants(&self, id: u64) -> Vec<u64> {
        let mut out = vec![];
        let mut todo = self.children(id);
        while let Some(c) = todo.pop() {
            todo.extend(self.children(c));
            out.push(c);
        }
        out
    }

    fn slot_of(&self, id: u64) -> u64 {
        *self
            .slots
            .iter()
            .find(|(_, &i)| i == id)
            .expect("cap in a slot")
            .0
    }

    fn remove(&mut self, id: u64) {
        let parent = self.caps[&id].parent;
        for c in self.children(id) {
            self.caps.get_mut(&c).unwrap().parent = parent;
        }
        self.caps.remove(&id);
        let slot = self.slot_of(id);
        self.slots.remove(&slot);
    }

    fn same_object(a: &Obj, b: &Obj) -> bool {
        !matches!(a, Obj::Untyped { .. } | Obj::IrqControl)
            && match (a, b) {
                (Obj::Endpoint(p), Obj::Endpoint(q))
                | (Obj::Notification(p), Obj::Notification(q))
                | (Obj::Tcb(p), Obj::Tcb(q)) => p == q,
                (Obj::CNode { paddr: p, radix: r }, Obj::CNode { paddr: q, radix: s }) => {
                    p == q && r == s
                }
                _ => false,
            }
    }

    fn missing_source() -> SyscallError {
        SyscallError::FailedLookup {
            source: true,
            fault: LookupFault::MissingCapability { bits_left: D },
        }
    }

    /// Copy or Mint (`mint_data` given): the model's outcome.
    fn copy(&mut self, dest: u64, src: u64, mint_data: Option<u64>) -> Outcome {
        if self.slots.contains_key(&dest) {
            return Err(SyscallError::DeleteFirst);
        }
        let Some((sid, s)) = self.at(src) else {
            return Err(Self::missing_source());
        };
        let mut new = MCap {
            parent: if s.revocable { Some(sid) } else { s.parent },
            ..s
        };
        match (s.obj, mint_data) {
            (Obj::IrqControl, _) => return Err(SyscallError::IllegalOperation),
            (Obj::Endpoint(_) | Obj::Notification(_), Some(badge)) => {
                if s.badge != 0 {
                    return Err(SyscallError::IllegalOperation);
                }
                new.badge = badge;
                new.revocable = badge != 0;
            }
            (
                Obj::Untyped {
                    base,
                    bits,
                    device,
                    watermark,
                },
                _,
            ) => {
                if !self.children(sid).is_empty() {
                    return Err(SyscallError::RevokeFirst);
                }
                new.revocable = true;
                new.obj = Obj::Untyped {
                    base,
                    bits,
                    device,
                    watermark,
                };
                // The source can no longer hand out this range.
                self.caps.get_mut(&sid).unwrap().obj = Obj::Untyped {
                    base,
                    bits,
                    device,
                    watermark: 1 << bits,
                };
            }
            _ => new.revocable = false,
        }
        self.add(dest, new.obj, new.badge, new.revocable, new.parent);
        Ok(())
    }

    fn mv(&mut self, dest: u64, src: u64, mutate: bool) -> Outcome {
        if self.slots.contains_key(&dest) {
            return Err(SyscallError::DeleteFirst);
        }
        let Some((sid, s)) = self.at(src) else {
            return Err(Self::missing_source());
        };
        if mutate && matches!(s.obj, Obj::Endpoint(_) | Obj::Notification(_)) {
            return Err(SyscallError::IllegalOperation);
        }
        self.slots.remove(&src);
        self.slots.insert(dest, sid);
        Ok(())
    }

    fn delete(&mut self, slot: u64) -> Outcome {
        if let Some((id, _)) = self.at(slot) {
            self.remove(id);
        }
        Ok(())
    }

    fn revoke(&mut self, slot: u64) -> Outcome {
        if let Some((id, _)) = self.at(slot) {
            for d in self.descendants(id) {
                self.remove(d);
            }
        }
        Ok(())
    }

    /// Retype; `None` if the slot holds no untyped (the op is skipped).
    fn retype(
        &mut self,
        ut: u64,
        kind: u8,
        size: u64,
        offset: u64,
        count: u64,
    ) -> Option<(Outcome, ObjectType, u64)> {
        let (uid, u) = self.at(ut)?;
        let Obj::Untyped {
            base,
            bits,
            device,
            watermark,
        } = u.obj
        else {
            return None;
        };
        let (ty, user_size) = match kind {
            0 => (ObjectType::Endpoint, 0),
            1 => (ObjectType::Notification, 0),
            2 => (ObjectType::CNode, 1 + size % 3),
            3 => (ObjectType::Untyped, 4 + size),
            _ => (ObjectType::Tcb, 0),
        };
        let obj_bits = crate::untyped::object_size_bits(ty, user_size);
        let outcome = (|| {
            if (offset..offset + count).any(|i| self.slots.contains_key(&i)) {
                return Err(SyscallError::DeleteFirst);
            }
            let start = if self.children(uid).is_empty() {
                0
            } else {
                watermark
            };
            let free = (1u64 << bits) - start;
            if (free >> obj_bits) < count {
                return Err(SyscallError::NotEnoughMemory { available: free });
            }
            if device && ty != ObjectType::Untyped {
                return Err(SyscallError::InvalidArgument { index: 1 });
            }
            let first = (base + start).next_multiple_of(1 << obj_bits);
            let end = first + (count << obj_bits);
            self.caps.get_mut(&uid).unwrap().obj = Obj::Untyped {
                base,
                bits,
                device,
                watermark: end - base,
            };
            for i in 0..count {
                let p = first + (i << obj_bits);
                let obj = match ty {
                    ObjectType::Endpoint => Obj::Endpoint(p),
                    ObjectType::Notification => Obj::Notification(p),
                    ObjectType::CNode => Obj::CNode {
                        paddr: p,
                        radix: user_size as u8,
                    },
                    ObjectType::Untyped => Obj::Untyped {
                        base: p,
                        bits: user_size as u8,
                        device,
                        watermark: 0,
                    },
                    _ => Obj::Tcb(p),
                };
                self.add(offset + i, obj, 0, true, Some(uid));
            }
            Ok(())
        })();
        Some((outcome, ty, user_size))
    }
}

fn syscall_result<T>(r: Result<T, Exception>) -> Outcome {
    match r {
        Ok(_) => Ok(()),
        Err(Exception::Syscall(e)) => Err(e),
        Err(Exception::Preempted) => panic!("preempted without a preemption check"),
    }
}

fn cap_matches(actual: &Cap, m: &MCap) -> bool {
    match (*actual, m.obj) {
        (
            Cap::Untyped {
                paddr,
                size_bits,
                free_index,
                is_device,
            },
            Obj::Untyped {
                base,
                bits,
                device,
                watermark,
            },
        ) => (paddr, size_bits, free_index, is_device) == (base, bits, watermark, device),
        (Cap::Endpoint { paddr, badge, .. }, Obj::Endpoint(p))
        | (Cap::Notification { paddr, badge, .. }, Obj::Notification(p)) => {
            paddr == p && badge == m.badge
        }
        (Cap::CNode { paddr, radix, .. }, Obj::CNode { paddr: p, radix: r }) => {
            paddr == p && radix == r
        }
        (Cap::Tcb { paddr }, Obj::Tcb(p)) => paddr == p,
        (Cap::IrqControl, Obj::IrqControl) => true,
        _ => false,
    }
}

/// The kernel's descendants of the cap in `slot`: the run of following
/// caps it parents.
fn kernel_descendants(slot: SlotRef) -> BTreeSet<SlotRef> {
    let mut out = BTreeSet::new();
    let mut cur = slot.mdb().next;
    while let Some(n) = cur {
        if !is_mdb_parent_of(slot, n) {
            break;
        }
        out.insert(n);
        cur = n.mdb().next;
    }
    out
}

fn check_agreement(fx: &Fixture, m: &Model) -> Result<(), TestCaseError> {
    check_links(fx);
    let occupied: BTreeSet<u64> = fx.occupied();
    let expected: BTreeSet<u64> = m.slots.keys().copied().collect();
    prop_assert_eq!(&occupied, &expected);
    for (&slot, &id) in &m.slots {
        let mc = m.caps[&id];
        let actual = fx.cap(slot);
        prop_assert!(
            cap_matches(&actual, &mc),
            "slot {}: kernel {:?}, model {:?}",
            slot,
            actual,
            mc
        );
        let want: BTreeSet<SlotRef> = m
            .descendants(id)
            .into_iter()
            .map(|d| fx.slot(m.slot_of(d)))
            .collect();
        prop_assert_eq!(
            kernel_descendants(fx.slot(slot)),
            want,
            "descendants of slot {}",
            slot
        );
        let shared = m
            .caps
            .iter()
            .any(|(&o, oc)| o != id && Model::same_object(&mc.obj, &oc.obj));
        prop_assert_eq!(
            is_final_capability(fx.slot(slot)),
            !shared,
            "final rule at slot {}",
            slot
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_kernel_tree_agrees_with_a_parent_link_model(ops in proptest::collection::vec(op(), 1..40)) {
        let fx = Fixture::new(21);
        let mut m = Model::new(&fx);
        for op in ops {
            let all = CapRights::ALL.0;
            let (got, want) = match op {
                Op::Retype { ut, kind, size, offset, count } => {
                    let Some((want, ty, user_size)) = m.retype(ut, kind, size, offset, count) else { continue };
                    let r = fx.retype(ut, ty, user_size, offset, count);
                    if let Ok(new) = &r {
                        if !new.is_device && matches!(ty, ObjectType::Endpoint | ObjectType::Notification) {
                            // Use the objects, so that reuse without a reset shows.
                            // The low bits stay 0: an idle endpoint or
                            // notification, which finalises without waking
                            // anyone.
                            for p in new.paddrs() {
                                memory::write::<u64>(p, 0x5a5a_5a58);
                            }
                        }
                    }
                    (syscall_result(r), want)
                }
                Op::Copy { dest, src } => (syscall_result(fx.copy(dest, src, CapRights::ALL)), m.copy(dest, src, None)),
                Op::Mint { dest, src, data } => {
                    (syscall_result(fx.cnode(Label::CNodeMint, &[dest, D, src, D, all, data], 1)), m.copy(dest, src, Some(data)))
                }
                Op::Move { dest, src } => (syscall_result(fx.mv(dest, src)), m.mv(dest, src, false)),
                Op::Mutate { dest, src, data } => (syscall_result(fx.mutate(dest, src, data)), m.mv(dest, src, true)),
                Op::Delete { slot } => (syscall_result(fx.delete(slot)), m.delete(slot)),
                Op::Revoke { slot } => (syscall_result(fx.revoke(slot)), m.revoke(slot)),
            };
            prop_assert_eq!(got, want, "outcome of {:?}", op);
            check_agreement(&fx, &m)?;
        }
    }
}

/// A word that is often a small, meaningful value and sometimes anything.
fn word() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..20, 1 => Just(D), 1 => 60u64..70, 1 => any::<u64>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever a thread sends, the decoders answer with success or an
    /// error and leave the derivation list well formed; they never panic.
    #[test]
    fn arbitrary_invocations_never_panic(
        calls in proptest::collection::vec(
            (any::<bool>(), prop_oneof![3 => 0u64..30, 1 => any::<u64>()],
             proptest::collection::vec(word(), 0..9), 0usize..3, 0u64..SLOTS),
            1..30)
    ) {
        let fx = Fixture::new(21);
        for (untyped, label, args, n_extra, target) in calls {
            let extra = [fx.root_slot, fx.slot(target), fx.root_slot];
            let inv = Invocation::new(label, &args, &extra[..n_extra]);
            if untyped {
                let slot = fx.slot(target % 3 + 1);
                if let c @ Cap::Untyped { .. } = slot.cap() {
                    let _ = decode_untyped_invocation(&inv, slot, &c);
                }
            } else {
                let _ = decode_cnode_invocation(&inv, &fx.root_cap());
            }
            check_links(&fx);
        }
    }
}
