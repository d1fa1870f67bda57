//! # test-vmm-crash: a VMM that faults when its guest asks it to
//!
//! The production VMM (`vmm`) never crashes on guest input. This test
//! binary is the same VMM with one hook: a 32-bit write of [`CUE`] to the
//! unmapped guest-physical address [`CUE_GPA`] (where no device is) makes
//! it panic, as a bug in the VMM would. The monitor then applies the PD's
//! restart policy, and the restarted VMM must boot its guest afresh
//! (tests/systems/vm-restart; the guest gives the cue with busybox
//! `devmem`).
#![cfg_attr(target_os = "none", no_std, no_main)]

/// Where the cue is written: nothing is mapped or emulated there.
const CUE_GPA: u64 = 0x0c00_0000;
const CUE: u64 = 0xdead_fa17;

struct CrashOnCue;

impl vmm::Hooks for CrashOnCue {
    fn unhandled_mmio(&mut self, gpa: u64, write: bool, value: u64) {
        if gpa == CUE_GPA && write && value == CUE {
            panic!("the guest gave the test cue: faulting on purpose");
        }
    }
}

septa_runtime::protection_domain!(|| vmm::pd::init(CrashOnCue));
