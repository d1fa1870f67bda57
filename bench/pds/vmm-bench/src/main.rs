//! # bench-vmm: the VMM, counting what loading its guest costs
//!
//! The production VMM with two hooks that read the PMU cycle counter
//! (instructions under `-icount shift=0`, kernel included) when a boot
//! begins and when vCPU 0 is about to start, and print the difference of
//! the first boot as the figure `vmm-load`. It must read the counter
//! before the guest runs: a Linux guest clears PMUSERENR_EL0 at start-up,
//! and neither kernel restores it for native threads, so EL0 cannot read
//! the PMU afterwards. The rest of the guest's boot is timed by the guest
//! itself (its kernel log's timestamp of the init marker:
//! tools/septa/src/bench.rs).
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::println;
use septa_test_report as report;

struct CountLoad {
    started: Option<u64>,
    reported: bool,
}

impl vmm::Hooks for CountLoad {
    fn boot_started(&mut self) {
        if !self.reported {
            septa_pmu::count_kernel_too();
            self.started = Some(septa_pmu::cycles());
        }
    }

    fn guest_starting(&mut self) {
        if let (Some(start), false) = (self.started, self.reported) {
            let n = septa_pmu::cycles().wrapping_sub(start);
            println!("{}", report::figure("vmm-load", n * 100));
            self.reported = true;
        }
    }
}

septa_runtime::protection_domain!(|| vmm::pd::init(CountLoad {
    started: None,
    reported: false,
}));
