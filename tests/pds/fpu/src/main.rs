//! # test-fpu: FP/SIMD state survives context switches
//!
//! PD `left` (lower priority) fills all 32 SIMD registers (both 64-bit
//! halves) and FPCR with a pattern of its own, then signals `right` with a
//! raw system call inside the same asm block: `right`, of higher priority,
//! runs at once and fills every register with a different pattern and
//! FPCR with a different rounding mode. When `left` resumes, still inside
//! its asm block, every register and FPCR must hold `left`'s values again.
//! Repeated `ROUNDS` times with a fresh pattern each round.
#![cfg_attr(target_os = "none", no_std, no_main)]

use septa_runtime::{println, protection_domain, ChannelSet, Handler};
use septa_test_report as report;

const ROUNDS: u64 = 1000;
/// FPCR rounding modes (bits 22-23): round towards zero for `left`, towards
/// plus infinity for `right`, so a leaked FPCR shows.
const FPCR_LEFT: u64 = 0b11 << 22;
const FPCR_RIGHT: u64 = 0b01 << 22;

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod regs {
    macro_rules! fill {
        ($($i:literal)*) => { concat!($("add x9, x20, #", $i, "\n", "dup v", $i, ".2d, x9\n",)*) };
    }
    macro_rules! check {
        ($($i:literal)*) => { concat!($(
            "add x10, x20, #", $i, "\n",
            "umov x9, v", $i, ".d[0]\n", "cmp x9, x10\n", "cinc x22, x22, ne\n",
            "umov x9, v", $i, ".d[1]\n", "cmp x9, x10\n", "cinc x22, x22, ne\n",
        )*) };
    }
    macro_rules! all {
        ($m:ident) => { $m!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31) };
    }

    /// Fills the registers with `base + i` and FPCR with `fpcr`, makes the
    /// system call `sysno` on `cap` if `sysno` is nonzero, then counts the
    /// registers (and FPCR) that no longer hold those values.
    pub fn fill_call_check(base: u64, fpcr: u64, cap: u64, sysno: i64) -> u64 {
        let bad: u64;
        // SAFETY: writes only SIMD registers and FPCR, declared clobbered
        // (all of them, as the C ABI clobber plus v8-v15), and restores
        // FPCR to 0 (the default rounding) before returning; the system call
        // is a signal on a notification cap this PD owns, which touches no
        // memory of ours. x20-x22 carry values across it: the kernel
        // preserves every register a signal does not return in.
        unsafe {
            core::arch::asm!(
                all!(fill),
                "msr fpcr, x21",
                "cbz x7, 1f",
                "svc #0",
                "1:",
                all!(check),
                "mrs x9, fpcr",
                "cmp x9, x21",
                "cinc x22, x22, ne",
                "msr fpcr, xzr",
                in("x20") base,
                in("x21") fpcr,
                inout("x22") 0u64 => bad,
                inout("x0") cap => _,
                inout("x1") 0u64 => _,
                inout("x7") sysno => _,
                out("x9") _, out("x10") _,
                out("v8") _, out("v9") _, out("v10") _, out("v11") _,
                out("v12") _, out("v13") _, out("v14") _, out("v15") _,
                clobber_abi("C"),
            );
        }
        bad
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod regs {
    pub fn fill_call_check(_base: u64, _fpcr: u64, _cap: u64, _sysno: i64) -> u64 {
        0
    }
}

/// The notification cap of channel 0 in this PD's CSpace (Microkit layout).
const CHANNEL0_CAP: u64 = septa_abi::microkit::slot::BASE_OUTPUT_NOTIFICATION;

struct Right;

impl Handler for Right {
    fn notified(&mut self, _channels: ChannelSet) {
        // Dirty every register with another pattern and rounding mode.
        let bad = regs::fill_call_check(0x5a5a_0000_0000_0000, FPCR_RIGHT, 0, 0);
        if bad != 0 {
            println!(
                "{}",
                report::fail(
                    "fpu",
                    &format_args!("right lost {bad} of its own registers")
                )
            );
        }
    }
}

fn init() -> Right {
    if septa_runtime::pd_name().as_str() == "left" {
        let mut lost = 0;
        for round in 0..ROUNDS {
            let base = 0xa5a5_0000_0000_0000 | (round << 16);
            lost += regs::fill_call_check(base, FPCR_LEFT, CHANNEL0_CAP, septa_abi::syscall::SEND);
        }
        if lost == 0 {
            println!("{}", report::ok("fpu"));
        } else {
            println!(
                "{}",
                report::fail(
                    "fpu",
                    &format_args!("{lost} register values lost across {ROUNDS} switches")
                )
            );
        }
        println!("{}", report::DONE);
    }
    Right
}

protection_domain!(init);
