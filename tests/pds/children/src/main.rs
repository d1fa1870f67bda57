//! # test-children: a child PD's faults go to its parent
//!
//! `parent` has one child, `child` (id 1). The child counts its starts in
//! the shared region `state`; on its first start it reads address 0. The
//! fault arrives at the parent (badge bit 62, child id 1), which restarts
//! the child at its entry (Microkit's `microkit_pd_restart`). On its second
//! start the child signals the parent, which reports.
#![cfg_attr(target_os = "none", no_std, no_main)]

use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use septa_runtime::septa_sel4::fault::Fault;
use septa_runtime::{
    println, protection_domain, setvar, Channel, ChannelSet, Child, Handler, MessageInfo,
};
use septa_test_report as report;

/// Where programs start (the runtime's `_start` is the first thing there).
const ENTRY: u64 = 0x20_0000;
/// The child's id, and the channel between the two (0 at both ends).
const CHILD: Child = Child::new(1);
const LINK: Channel = Channel::new(0);

setvar! {
    static STATE = "state_vaddr";
}

fn starts() -> &'static AtomicU64 {
    // SAFETY: the tool maps the 4 KiB region `state` read-write at STATE in
    // both PDs for their whole life; its first word is only used as this
    // counter.
    unsafe { &*STATE.as_ptr::<AtomicU64>() }
}

enum Role {
    Parent { faults: u32 },
    Child,
}

impl Handler for Role {
    fn notified(&mut self, channels: ChannelSet) {
        if let Role::Parent { faults } = self {
            let n = starts().load(Ordering::Relaxed);
            if channels.contains(LINK) && *faults == 1 && n == 2 {
                println!("parent: the child is back after {faults} fault");
                println!("{}", report::ok("children"));
            } else {
                println!(
                    "{}",
                    report::fail(
                        "children",
                        &format_args!("signal after {faults} faults, {n} starts")
                    )
                );
            }
            println!("{}", report::DONE);
        }
    }

    fn fault(&mut self, child: Child, msg: MessageInfo) -> Option<MessageInfo> {
        let Role::Parent { faults } = self else {
            return None;
        };
        *faults += 1;
        let fault = Fault::from_ipc_buffer(msg);
        match fault {
            Fault::VmFault { addr: 0, .. } if child == CHILD => {
                println!("parent: child {child} read address 0; restarting it");
            }
            other => {
                println!(
                    "{}",
                    report::fail("children", &format_args!("child {child} sent {other:?}"))
                );
                println!("{}", report::DONE);
                return None;
            }
        }
        if let Err(e) = child.restart(ENTRY) {
            println!(
                "{}",
                report::fail("children", &format_args!("restart refused: {e}"))
            );
            println!("{}", report::DONE);
        }
        None
    }
}

fn init() -> Role {
    if septa_runtime::pd_name().as_str() == "parent" {
        return Role::Parent { faults: 0 };
    }
    let start = starts().fetch_add(1, Ordering::Relaxed) + 1;
    println!("child: start {start}");
    if start == 1 {
        let null = black_box(0usize) as *const u64;
        // SAFETY: none: this is the fault under test. The address is hidden
        // from the compiler; the page at 0 is never mapped, so the load
        // faults and the parent restarts us at the entry.
        let v = unsafe { core::ptr::read_volatile(null) };
        println!(
            "{}",
            report::fail("children", &format_args!("read {v} from address 0"))
        );
    }
    let _ = LINK.notify();
    Role::Child
}

protection_domain!(init);
