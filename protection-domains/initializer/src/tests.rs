//! Host tests: `realize` and the monitor against a kernel that records
//! every invocation and answers from a script, and frames held in memory.

use std::boxed::Box;
use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::string::String;
use std::vec;
use std::vec::Vec;

use septa_abi::bootinfo::{BootInfo, SlotRegion, UntypedDesc, MAX_UNTYPED_CAPS};
use septa_abi::{syscall as nr, Label, MessageInfo, ObjectType, TCB_REGISTER_COUNT};
use septa_sel4::bootinfo::BootInfoRef;
use septa_sel4::host::{self, HostKernel, Regs};
use septa_sel4::{ipc_buffer, CPtr, Error};
use septa_spec::*;

use crate::frames::FrameAccess;
use crate::monitor::Monitor;
use crate::realize::{realize, Realized};

/// One invocation as the kernel saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Inv {
    dest: u64,
    label: Label,
    words: Vec<u64>,
    caps: Vec<u64>,
}

#[derive(Default)]
struct Seen {
    invs: Vec<Inv>,
    console: String,
    yields: usize,
    /// Plain sends: destination and label.
    sends: Vec<(u64, u64)>,
}

/// Messages the monitor will receive: badge, label, words.
type Script = VecDeque<(u64, u64, Vec<u64>)>;

struct Fake {
    seen: Rc<RefCell<Seen>>,
    script: Script,
    /// What ReadRegisters answers.
    regs: [u64; TCB_REGISTER_COUNT],
}

impl HostKernel for Fake {
    fn syscall(&mut self, r: &mut Regs) {
        match r.syscall() {
            nr::CALL => {
                let info = MessageInfo(r.x[1]);
                let words: Vec<u64> = (0..info.length() as usize)
                    .map(|i| {
                        if i < 4 {
                            r.x[2 + i]
                        } else {
                            ipc_buffer::get_mr(i)
                        }
                    })
                    .collect();
                let caps = (0..info.extra_caps() as usize)
                    .map(ipc_buffer::get_cap_or_badge)
                    .collect();
                let label = Label::from_u64(info.label()).expect("a known label");
                self.seen.borrow_mut().invs.push(Inv {
                    dest: r.x[0],
                    label,
                    words,
                    caps,
                });
                if label == Label::TcbReadRegisters {
                    r.x[1] = MessageInfo::new(0, 0, 0, TCB_REGISTER_COUNT as u64).0;
                    for (i, w) in self.regs.iter().enumerate() {
                        if i < 4 {
                            r.x[2 + i] = *w;
                        } else {
                            ipc_buffer::set_mr(i, *w);
                        }
                    }
                } else {
                    r.x[1] = 0;
                }
            }
            nr::RECV => {
                let (badge, label, words) = self.script.pop_front().expect("a scripted message");
                r.x[0] = badge;
                r.x[1] = MessageInfo::new(label, 0, 0, words.len() as u64).0;
                for (i, w) in words.iter().enumerate() {
                    if i < 4 {
                        r.x[2 + i] = *w;
                    } else {
                        ipc_buffer::set_mr(i, *w);
                    }
                }
            }
            nr::DEBUG_PUT_CHAR => self.seen.borrow_mut().console.push(r.x[0] as u8 as char),
            nr::YIELD => self.seen.borrow_mut().yields += 1,
            // A restarted PD's thread is named again (debug configuration).
            nr::DEBUG_NAME_THREAD => {}
            nr::SEND => {
                let label = MessageInfo(r.x[1]).label();
                self.seen.borrow_mut().sends.push((r.x[0], label));
            }
            other => panic!("unexpected system call {other}"),
        }
    }
}

fn fake(script: Script, regs: [u64; TCB_REGISTER_COUNT]) -> Rc<RefCell<Seen>> {
    let seen = Rc::new(RefCell::new(Seen::default()));
    host::install_ipc_buffer();
    host::set_kernel(Box::new(Fake {
        seen: seen.clone(),
        script,
        regs,
    }));
    seen
}

/// Frames as plain memory, keyed by the slot of their capability.
#[derive(Default)]
struct Memory {
    frames: HashMap<u64, Vec<u8>>,
    accesses: Vec<u64>,
}

impl FrameAccess for Memory {
    fn with_frame(
        &mut self,
        frame: CPtr,
        size_bits: u8,
        f: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), Error> {
        self.accesses.push(frame.bits());
        let bytes = self
            .frames
            .entry(frame.bits())
            .or_insert_with(|| vec![0; 1 << size_bits]);
        f(bytes);
        Ok(())
    }
}

const FIRST_FREE: u64 = 100;
const UT_SLOT: u64 = 40;
const SCHED_CONTROL: u64 = 39;

fn bootinfo() -> BootInfoRef {
    let mut list = [UntypedDesc::default(); MAX_UNTYPED_CAPS];
    list[0] = UntypedDesc {
        paddr: 0x4000_0000,
        size_bits: 24,
        is_device: 0,
        padding: [0; 6],
    };
    list[1] = UntypedDesc {
        paddr: 0x900_0000,
        size_bits: 12,
        is_device: 1,
        padding: [0; 6],
    };
    let bi = BootInfo {
        extra_len: 0,
        node_id: 0,
        num_nodes: 1,
        num_io_pt_levels: 0,
        ipc_buffer: 0x41_0000,
        empty: SlotRegion {
            start: FIRST_FREE,
            end: 1 << 17,
        },
        shared_frames: SlotRegion::default(),
        user_image_frames: SlotRegion { start: 16, end: 30 },
        user_image_paging: SlotRegion::default(),
        io_space_caps: SlotRegion::default(),
        extra_bi_pages: SlotRegion::default(),
        init_thread_cnode_size_bits: 17,
        init_thread_domain: 0,
        sched_control: SlotRegion {
            start: SCHED_CONTROL,
            end: SCHED_CONTROL + 1,
        },
        untyped: SlotRegion {
            start: UT_SLOT,
            end: UT_SLOT + 2,
        },
        untyped_list: list,
    };
    BootInfoRef::new(Box::leak(Box::new(bi)), &[])
}

fn obj(name: &'static str, kind: ObjectKind) -> Object<'static> {
    Object {
        name,
        kind,
        paddr: None,
        fill: vec![],
    }
}

const ENTRY: u64 = 0x20_0000;
const STACK_TOP: u64 = 0xff_ffff_e000;
const TEXT: ObjId = 10;
const DATA: ObjId = 11;
const UART: ObjId = 12;

/// One PD, as the tool would describe it (smaller).
fn spec(policy: Policy, passive: bool) -> Spec<'static> {
    let frame = ObjectKind::Frame { size_bits: 12 };
    let mut text = obj("pd.a.image.0x200000", frame);
    text.fill = vec![Fill {
        offset: 8,
        len: 4,
        source: FillSource::Data { offset: 2 },
    }];
    let mut data = obj("pd.a.image.0x201000", frame);
    data.fill = vec![Fill {
        offset: 0,
        len: 2,
        source: FillSource::Data { offset: 0 },
    }];
    let mut uart = obj("region.uart.0", frame);
    uart.paddr = Some(0x900_0000);
    let objects = vec![
        obj("monitor.fault_ep", ObjectKind::Endpoint), // 0
        obj("monitor.reply", ObjectKind::Reply),       // 1
        obj("window.pt2", ObjectKind::PageTable),      // 2
        obj("window.pt3", ObjectKind::PageTable),      // 3
        obj("pd.a.tcb", ObjectKind::Tcb),              // 4
        obj("pd.a.vspace", ObjectKind::VSpace),        // 5
        obj("pd.a.sc", ObjectKind::SchedContext { size_bits: 8 }), // 6
        obj("pd.a.ntfn", ObjectKind::Notification),    // 7
        obj("pd.a.cnode", ObjectKind::CNode { radix: 9 }), // 8
        obj("pd.a.ipc", frame),                        // 9
        text,                                          // 10
        data,                                          // 11
        uart,                                          // 12
        obj("pd.a.pt2.0x0", ObjectKind::PageTable),    // 13
        obj("pd.a.pt3.0x200000", ObjectKind::PageTable), // 14
        obj("pd.a.reply", ObjectKind::Reply),          // 15
    ];
    let rx = MapAttrs {
        read: true,
        write: false,
        execute: true,
        cached: true,
    };
    let rw = MapAttrs {
        read: true,
        write: true,
        execute: false,
        cached: true,
    };
    let pt = |object, vaddr| Mapping {
        vspace: 5,
        object,
        vaddr,
        attrs: rw,
    };
    Spec {
        objects,
        slots: vec![
            Slot {
                cnode: 8,
                index: 2,
                cap: Cap::Object {
                    obj: 0,
                    rights: Rights::RWG,
                    badge: 1,
                    guard_size: 0,
                },
            },
            Slot {
                cnode: 8,
                index: 138,
                cap: Cap::IrqHandler { irq: 33 },
            },
        ],
        mappings: vec![
            pt(13, 0),
            pt(14, 0x20_0000),
            Mapping {
                vspace: 5,
                object: TEXT,
                vaddr: 0x20_0000,
                attrs: rx,
            },
            Mapping {
                vspace: 5,
                object: DATA,
                vaddr: 0x20_1000,
                attrs: rw,
            },
            Mapping {
                vspace: 5,
                object: UART,
                vaddr: 0x20_2000,
                attrs: MapAttrs {
                    cached: false,
                    ..rw
                },
            },
        ],
        threads: vec![Thread {
            tcb: 4,
            name: "a",
            cspace: 8,
            cspace_guard_size: 55,
            vspace: 5,
            ipc_buffer: 9,
            ipc_buffer_vaddr: 0xff_ffff_f000,
            priority: 100,
            max_priority: 100,
            sched_context: Some(SchedParams {
                sched_context: 6,
                budget_us: 500,
                period_us: 2000,
                badge: 0x100,
            }),
            fault_endpoint: Some((0, 1)),
            timeout_endpoint: None,
            bound_notification: Some(7),
            entry: ENTRY,
            stack_top: STACK_TOP,
            start: true,
            vcpu: None,
            fpu: true,
            domain: 0,
        }],
        irqs: vec![Irq {
            irq: 33,
            edge: false,
            notification: 7,
            badge: 1 << 0,
        }],
        pds: vec![Pd {
            name: "a",
            thread: 0,
            parent: None,
            fault_badge: 1,
            passive,
            notification: 7,
            policy,
            writable_frames: vec![DATA],
            generation: None,
            reply: 15,
            stack: (STACK_TOP - 0x2000, STACK_TOP),
            cell: false,
        }],
        root: Some(RootObjects {
            fault_endpoint: 0,
            reply: 1,
            window_tables: [2, 3],
        }),
        test_harness: false,
        domain_schedule: None,
        stats: None,
    }
}

const DATA_AREA: &[u8] = b"\x07\x09\xde\xad\xbe\xef";

fn realized(spec: &Spec<'static>) -> (Realized, Memory, Rc<RefCell<Seen>>) {
    let seen = fake(Script::new(), [0; TCB_REGISTER_COUNT]);
    let mut mem = Memory::default();
    let r = realize(spec, DATA_AREA, &bootinfo(), &mut mem).unwrap_or_else(|f| panic!("{f}"));
    (r, mem, seen)
}

fn slot(r: &Realized, id: ObjId) -> u64 {
    r.objects[id as usize].bits()
}

fn of(seen: &Rc<RefCell<Seen>>, label: Label) -> Vec<Inv> {
    seen.borrow()
        .invs
        .iter()
        .filter(|i| i.label == label)
        .cloned()
        .collect()
}

#[test]
fn every_object_is_retyped_once_device_frames_from_device_memory() {
    let s = spec(Policy::Stop, false);
    let (r, _, seen) = realized(&s);
    let retypes = of(&seen, Label::UntypedRetype);
    let made: Vec<u64> = retypes.iter().map(|i| i.words[4]).collect();
    for id in 0..s.objects.len() as ObjId {
        assert!(made.contains(&slot(&r, id)), "object {id} never made");
        assert!(slot(&r, id) >= FIRST_FREE);
    }
    // The UART frame comes from the device untyped, as a small page.
    let uart = retypes
        .iter()
        .find(|i| i.words[4] == slot(&r, UART))
        .unwrap();
    assert_eq!(uart.dest, UT_SLOT + 1);
    assert_eq!(uart.words[0], ObjectType::SmallPage as u64);
    // The CNode is made with its radix, the scheduling context with its size.
    let cn = retypes.iter().find(|i| i.words[4] == slot(&r, 8)).unwrap();
    assert_eq!((cn.words[0], cn.words[1]), (ObjectType::CNode as u64, 9));
    let sc = retypes.iter().find(|i| i.words[4] == slot(&r, 6)).unwrap();
    assert_eq!(
        (sc.words[0], sc.words[1]),
        (ObjectType::SchedContext as u64, 8)
    );
}

#[test]
fn frames_are_filled_and_mapped_through_copies() {
    let s = spec(Policy::Stop, false);
    let (r, mem, seen) = realized(&s);
    let text = &mem.frames[&slot(&r, TEXT)];
    assert_eq!(&text[8..12], &DATA_AREA[2..6]);
    assert!(text[..8].iter().all(|b| *b == 0));
    assert_eq!(&mem.frames[&slot(&r, DATA)][..2], &DATA_AREA[..2]);
    // Frames without contents are not touched.
    assert!(!mem.frames.contains_key(&slot(&r, UART)));
    // The window's tables go in first, at the window's base.
    let pt_maps = of(&seen, Label::ArmPageTableMap);
    assert_eq!(pt_maps[0].dest, slot(&r, 2));
    assert_eq!(pt_maps[1].dest, slot(&r, 3));
    assert_eq!(pt_maps[0].words[0], crate::frames::WINDOW_BASE);
    // Then the PD's, top level first, into its VSpace.
    assert_eq!(pt_maps[2].dest, slot(&r, 13));
    assert_eq!(pt_maps[2].caps, vec![slot(&r, 5)]);
    assert_eq!(pt_maps[3].words[0], 0x20_0000);
    // Each frame is mapped through a fresh copy of its capability.
    let maps = of(&seen, Label::ArmPageMap);
    let copies = of(&seen, Label::CNodeCopy);
    assert_eq!(maps.len(), 3);
    for (m, c) in maps.iter().zip(&copies) {
        assert_eq!(m.dest, c.words[0], "the map goes through the copy");
        assert_ne!(m.dest, slot(&r, TEXT));
    }
    // Text: read-only, executable, cached (attributes 3); the UART:
    // uncached, never executable (attributes 4).
    assert_eq!(&maps[0].words[..], &[0x20_0000, 0b10, 3]);
    assert_eq!(&maps[2].words[..], &[0x20_2000, 0b11, 4]);
}

#[test]
fn caps_are_minted_with_badges_and_threads_configured() {
    let s = spec(Policy::Stop, false);
    let (r, _, seen) = realized(&s);
    let mints = of(&seen, Label::CNodeMint);
    // The fault endpoint into the PD's CNode slot 2 (depth = radix 9),
    // read-write-grant, badge 1.
    let fault = mints
        .iter()
        .find(|m| m.dest == slot(&r, 8) && m.words[0] == 2)
        .expect("slot 2 minted");
    assert_eq!(&fault.words[..], &[2, 9, slot(&r, 0), 64, 0b0111, 1]);
    // The IRQ: handler got with level trigger, its notification badged.
    let get = &of(&seen, Label::ArmIrqIssueIrqHandlerTrigger)[0];
    assert_eq!(&get.words[..2], &[33, 0]);
    let handler = get.words[2];
    let irq_slot = mints
        .iter()
        .find(|m| m.dest == slot(&r, 8) && m.words[0] == 138)
        .unwrap();
    assert_eq!(irq_slot.words[2], handler);
    assert_eq!(of(&seen, Label::IrqSetIrqHandler)[0].dest, handler);
    // Scheduling: the spec's budget, period and badge.
    let sc = &of(&seen, Label::SchedControlConfigureFlags)[0];
    assert_eq!(sc.dest, SCHED_CONTROL);
    assert_eq!(&sc.words[..], &[500, 2000, 0, 0x100, 0]);
    // TCB: CSpace with a guard of 55 bits, IPC buffer at its address.
    let cfg = &of(&seen, Label::TcbConfigure)[0];
    assert_eq!(cfg.dest, slot(&r, 4));
    assert_eq!(&cfg.words[..], &[55, 0, 0xff_ffff_f000]);
    assert_eq!(cfg.caps, vec![slot(&r, 8), slot(&r, 5), slot(&r, 9)]);
    let sp = &of(&seen, Label::TcbSetSchedParams)[0];
    assert_eq!(&sp.words[..], &[100, 100]);
    assert_eq!(sp.caps[1], slot(&r, 6));
    // The fault endpoint given to the TCB is a badged copy.
    let fault_copy = mints.iter().find(|m| m.words[0] == sp.caps[2]).unwrap();
    assert_eq!((fault_copy.words[2], fault_copy.words[5]), (slot(&r, 0), 1));
    let regs = &of(&seen, Label::TcbWriteRegisters)[0];
    assert_eq!(&regs.words[..], &[0, 2, ENTRY, STACK_TOP]);
    // Resume comes last of all.
    let last = seen.borrow().invs.last().cloned().unwrap();
    assert_eq!((last.label, last.dest), (Label::TcbResume, slot(&r, 4)));
    // ASID before any mapping.
    let invs = &seen.borrow().invs;
    let asid = invs
        .iter()
        .position(|i| i.label == Label::ArmAsidPoolAssign)
        .unwrap();
    let first_map = invs
        .iter()
        .position(|i| i.label == Label::ArmPageTableMap)
        .unwrap();
    assert!(asid < first_map);
}

#[test]
fn a_failure_names_the_object() {
    let mut s = spec(Policy::Stop, false);
    s.objects[12].paddr = Some(0x800_0000); // no untyped covers it
    fake(Script::new(), [0; TCB_REGISTER_COUNT]);
    let err = realize(&s, DATA_AREA, &bootinfo(), &mut Memory::default()).unwrap_err();
    let text = std::format!("{err}");
    assert!(
        text.starts_with("allocating `region.uart.0` failed"),
        "{text}"
    );
}

const VM_FAULT: u64 = septa_abi::fault::VM_FAULT;
const USER_EXCEPTION: u64 = septa_abi::fault::USER_EXCEPTION;

fn monitor_run(
    policy: Policy,
    passive: bool,
    script: Script,
    regs: [u64; TCB_REGISTER_COUNT],
) -> (
    Rc<RefCell<Seen>>,
    Realized,
    Vec<crate::monitor::PdState>,
    Memory,
    bool,
) {
    let s = spec(policy, passive);
    let (r, mut mem, _) = realized(&s);
    let n = script.len();
    let seen = fake(script, regs);
    mem.accesses.clear();
    let mut m = Monitor::new(&s, DATA_AREA, bootinfo(), &r, &mut mem);
    for _ in 0..n {
        m.step();
    }
    let (state, halted) = (m.state.clone(), m.halted);
    (seen, r, state, mem, halted)
}

#[test]
fn a_null_dereference_is_named_and_the_pd_restarted_with_fresh_memory() {
    let policy = Policy::Restart {
        limit: 1,
        backoff_us: 0,
        reset_memory: true,
    };
    let null = (1, VM_FAULT, vec![0x20_0040, 0, 0, 0x9200_0006]);
    let again = null.clone();
    let (seen, r, state, mem, _) = monitor_run(
        policy,
        false,
        Script::from([null, again]),
        [0; TCB_REGISTER_COUNT],
    );
    let console = seen.borrow().console.clone();
    assert!(
        says(
            &console,
            "monitor: PD a faulted: VM fault: read at 0x0 from pc 0x200040: translation fault (level 2): null pointer dereference"
        ),
        "{console}"
    );
    assert!(
        says(&console, "monitor: PD a restarted (1 of 1)"),
        "{console}"
    );
    assert!(says(
        &console,
        "monitor: PD a reached its restart limit (1); stopped"
    ));
    assert_eq!(state[0].restarts, 1);
    assert!(state[0].stopped);
    // The writable frame was reloaded: zeroed, then its initial bytes.
    assert_eq!(mem.accesses, vec![slot(&r, DATA)]);
    assert_eq!(&mem.frames[&slot(&r, DATA)][..2], &DATA_AREA[..2]);
    // Suspend, fresh registers (all 36: pc, sp, the rest zero), resume.
    let write = &of(&seen, Label::TcbWriteRegisters)[0];
    assert_eq!(write.words.len(), 2 + TCB_REGISTER_COUNT);
    assert_eq!(&write.words[..4], &[0, 36, ENTRY, STACK_TOP]);
    assert!(write.words[4..].iter().all(|w| *w == 0));
    let labels: Vec<Label> = seen
        .borrow()
        .invs
        .iter()
        .map(|i| i.label)
        .filter(|l| *l != Label::TcbReadRegisters)
        .collect();
    assert_eq!(
        labels,
        [
            Label::TcbSuspend,
            Label::TcbWriteRegisters,
            Label::TcbResume,
            Label::TcbSuspend
        ]
    );
}

#[test]
fn a_panic_is_told_from_other_exceptions_by_the_marker() {
    let mut regs = [0; TCB_REGISTER_COUNT];
    regs[3] = septa_abi::microkit::PANIC_MARKER; // x0 follows pc, sp, spsr
    let udf = (1, USER_EXCEPTION, vec![0x20_0100, 0, 0, 0x0200_0000, 0]);
    let (seen, _, state, _, _) = monitor_run(Policy::Stop, false, Script::from([udf]), regs);
    let console = seen.borrow().console.clone();
    assert!(
        says(&console, "monitor: PD a faulted: panicked"),
        "{console}"
    );
    assert!(says(&console, "monitor: PD a stopped (its policy is stop)"));
    assert!(state[0].stopped);
}

#[test]
fn a_passive_pd_gives_up_its_scheduling_context() {
    let (seen, r, state, _, _) =
        monitor_run(Policy::Stop, true, Script::from([(1, 0, vec![])]), [0; 36]);
    let unbind = &of(&seen, Label::SchedContextUnbindObject)[0];
    assert_eq!((unbind.dest, unbind.caps[0]), (slot(&r, 6), slot(&r, 4)));
    let bind = &of(&seen, Label::SchedContextBind)[0];
    assert_eq!((bind.dest, bind.caps[0]), (slot(&r, 6), slot(&r, 7)));
    assert!(state[0].passive_now);
    assert!(says(&seen.borrow().console, "monitor: PD a is now passive"));
}

#[test]
fn a_passive_pd_gets_its_time_back_to_restart_after_a_back_off() {
    let policy = Policy::Restart {
        limit: 5,
        backoff_us: 20_000,
        reset_memory: false,
    };
    let script = Script::from([(1, 0, vec![]), (1, VM_FAULT, vec![0x20_0000, 0x5000, 0, 0])]);
    let (seen, r, state, mem, _) = monitor_run(policy, true, script, [0; 36]);
    assert!(!state[0].passive_now);
    assert_eq!(state[0].restarts, 1);
    assert!(mem.accesses.is_empty(), "memory kept");
    let binds = of(&seen, Label::SchedContextBind);
    assert_eq!(binds[1].caps[0], slot(&r, 4), "bound to the TCB again");
    // The back-off: own scheduling context to a 20 ms period, a yield,
    // then back to a round-robin slice.
    let cfg = of(&seen, Label::SchedControlConfigureFlags);
    assert_eq!(cfg[0].words[..2], [1000, 21_000]);
    assert_eq!(cfg[0].caps, vec![septa_abi::init_cap::SCHED_CONTEXT]);
    assert_eq!(cfg[1].words[..2], [10_000, 10_000]);
    assert_eq!(seen.borrow().yields, 1);
}

#[test]
fn a_restart_publishes_the_generation() {
    let mut s = spec(
        Policy::Restart {
            limit: 5,
            backoff_us: 0,
            reset_memory: false,
        },
        false,
    );
    // Word 1 of the text frame stands in for a generation frame.
    s.pds[0].generation = Some((TEXT, 1));
    let (r, mut mem, _) = realized(&s);
    let fault = (1, VM_FAULT, vec![0, 0x10, 0, 0]);
    fake(Script::from([fault.clone(), fault]), [0; 36]);
    let mut m = Monitor::new(&s, DATA_AREA, bootinfo(), &r, &mut mem);
    m.step();
    m.step();
    drop(m);
    let word = &mem.frames[&slot(&r, TEXT)][8..16];
    assert_eq!(u64::from_le_bytes(word.try_into().unwrap()), 2);
}

#[test]
fn a_caller_waiting_on_a_faulted_pd_is_answered_through_its_reply_object() {
    let fault = || Script::from([(1, VM_FAULT, vec![0, 0x10, 0, 0])]);
    let restart = Policy::Restart {
        limit: 5,
        backoff_us: 0,
        reset_memory: false,
    };
    for policy in [Policy::Stop, restart] {
        let (seen, r, _, _, _) = monitor_run(policy, false, fault(), [0; 36]);
        assert_eq!(
            seen.borrow().sends,
            vec![(slot(&r, 15), septa_abi::microkit::SERVER_FAULT_LABEL)],
            "{policy:?}"
        );
    }
    // Halting stops the callers too: nobody to answer.
    let (seen, _, _, _, _) = monitor_run(Policy::Halt, false, fault(), [0; 36]);
    assert!(seen.borrow().sends.is_empty());
}

#[test]
fn halt_stops_everything_and_unknown_badges_are_ignored() {
    let script = Script::from([
        (9, VM_FAULT, vec![0, 0x10, 0, 0]),
        (1, VM_FAULT, vec![0, 0x10, 0, 0]),
        (1, VM_FAULT, vec![0, 0x10, 0, 0]),
    ]);
    let (seen, _, _, _, halted) = monitor_run(Policy::Halt, false, script, [0; 36]);
    let console = seen.borrow().console.clone();
    assert!(says(&console, "unknown badge 0x9"), "{console}");
    assert!(says(&console, "monitor: system halted"));
    assert!(halted);
    // After the halt the third message is ignored: one fault printed.
    if septa_abi::CONFIG.printing() {
        assert_eq!(console.matches("faulted").count(), 1);
    }
}

/// Whether the monitor said `text`, where the configuration lets it print
/// (debug); without kernel printing it prints nothing, so anything goes.
fn says(console: &str, text: &str) -> bool {
    !septa_abi::CONFIG.printing() || console.contains(text)
}

#[test]
fn the_panic_marker_is_the_runtimes() {
    assert_eq!(
        septa_abi::microkit::PANIC_MARKER,
        septa_runtime::panic::PANIC_MARKER
    );
}

#[test]
fn overruns_are_counted_and_the_statistics_written_for_their_pd_alone() {
    use septa_cells::stats;
    let mut s = spec(Policy::Stop, false);
    s.pds[0].cell = true;
    // The text frame stands in for the statistics frame; PD 0 asks.
    s.stats = Some(septa_spec::StatsExport {
        frame: TEXT,
        requester: 0,
    });
    let (r, mut mem, _) = realized(&s);
    let script = Script::from([
        (1, septa_abi::fault::TIMEOUT, vec![0x100, 1234]),
        (1, septa_abi::fault::TIMEOUT, vec![0x100, 66]),
        (1, stats::REFRESH_LABEL, vec![]),
    ]);
    let seen = fake(script, [0; 36]);
    let mut m = Monitor::new(&s, DATA_AREA, bootinfo(), &r, &mut mem);
    for _ in 0..3 {
        m.step();
    }
    let state = m.state[0];
    drop(m);
    // Each timeout: counted, its time added, the PD let run on (an empty
    // reply through the monitor's reply object), not suspended.
    assert_eq!((state.overruns, state.faults), (2, 0));
    assert!(state.cpu_us >= 1300);
    assert!(!state.stopped);
    let seen = seen.borrow();
    assert_eq!(seen.sends.len(), 3, "two timeouts and the refresh answered");
    assert!(seen.sends.iter().all(|(_, label)| *label == 0));
    assert!(!seen.invs.iter().any(|i| i.label == Label::TcbSuspend));
    assert!(seen
        .invs
        .iter()
        .any(|i| i.label == Label::SchedContextConsumed));
    let table = stats::Table::read(&mem.frames[&slot(&r, TEXT)]).unwrap();
    assert_eq!(table.refreshes, 1);
    let e: Vec<stats::Entry> = table.entries().collect();
    assert_eq!(e[0].name(), "a");
    assert_eq!((e[0].overruns, e[0].cell), (2, true));
    assert!(e[0].cpu_us >= 1300);
}

#[test]
fn a_refresh_label_from_another_pd_is_a_fault_like_any_other() {
    let mut s = spec(Policy::Stop, false);
    s.stats = None;
    let (r, mut mem, _) = realized(&s);
    let script = Script::from([(1, septa_cells::stats::REFRESH_LABEL, vec![])]);
    let seen = fake(script, [0; 36]);
    let mut m = Monitor::new(&s, DATA_AREA, bootinfo(), &r, &mut mem);
    m.step();
    assert_eq!(m.refreshes, 0);
    drop(m);
    assert!(seen
        .borrow()
        .invs
        .iter()
        .all(|i| i.label != Label::SchedContextConsumed));
}
