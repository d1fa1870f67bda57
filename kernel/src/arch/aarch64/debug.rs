//! The debug registers of the hardware debug API (debug configuration):
//! the Cortex-A53's six breakpoint and four watchpoint register pairs,
//! MDSCR_EL1 and the EL2 debug traps. The portable core decides what they
//! hold (`object::tcb::debug`); this module only reads and writes them.
//!
//! Debug exceptions of native threads are taken to EL2: HCR_EL2.TGE routes
//! them here anyway, and MDCR_EL2.TDE (with TDA, TDOSA and TDRA, which the
//! architecture wants set with it) says so explicitly, as seL4's `initHDCR`.
//! The kernel itself runs with PSTATE.D set and MDSCR_EL1.KDE clear, so it
//! never takes one.

use super::sysreg::{isb, read_sysreg, write_sysreg};

/// MDSCR_EL1: software step, and monitor debug events (breakpoints and
/// watchpoints) enabled.
const MDSCR_SS: u64 = 1 << 0;
const MDSCR_MDE: u64 = 1 << 15;
/// MDCR_EL2: trap debug exceptions, debug register, OS and ROM accesses.
const MDCR_TDE: u64 = 1 << 8;
const MDCR_TDA: u64 = 1 << 9;
const MDCR_TDOSA: u64 = 1 << 10;
const MDCR_TDRA: u64 = 1 << 11;
/// The enable bit of a control register.
const ENABLE: u64 = 1;

/// Boot (seL4's `Arch_initHardwareBreakpoints` and `initHDCR`): debug
/// events on, the OS lock off, every breakpoint and watchpoint disabled,
/// no stepping.
pub fn init() {
    let mdcr = read_sysreg!("mdcr_el2");
    write_sysreg!(
        "mdcr_el2",
        mdcr | MDCR_TDE | MDCR_TDA | MDCR_TDOSA | MDCR_TDRA
    );
    let mdscr = read_sysreg!("mdscr_el1");
    write_sysreg!("mdscr_el1", (mdscr | MDSCR_MDE) & !MDSCR_SS);
    let osdlr = read_sysreg!("osdlr_el1");
    write_sysreg!("osdlr_el1", osdlr & !1);
    write_sysreg!("oslar_el1", 0);
    for watch in [false, true] {
        for i in 0..count(watch) {
            write(watch, i, read(watch, i).0 & !ENABLE, 0);
        }
    }
    isb();
}

fn count(watch: bool) -> u64 {
    if watch {
        4
    } else {
        6
    }
}

/// Runs `$body` with `$cr` and `$vr` bound to the names of register pair
/// `$i` of breakpoints (`$watch` false) or watchpoints; `$none` for an
/// index the CPU does not have.
macro_rules! with_pair {
    ($watch:expr, $i:expr, |$cr:ident, $vr:ident| $body:expr, $none:expr) => {
        match ($watch, $i) {
            (false, 0) => with_pair!(@ "dbgbcr0_el1", "dbgbvr0_el1", $cr, $vr, $body),
            (false, 1) => with_pair!(@ "dbgbcr1_el1", "dbgbvr1_el1", $cr, $vr, $body),
            (false, 2) => with_pair!(@ "dbgbcr2_el1", "dbgbvr2_el1", $cr, $vr, $body),
            (false, 3) => with_pair!(@ "dbgbcr3_el1", "dbgbvr3_el1", $cr, $vr, $body),
            (false, 4) => with_pair!(@ "dbgbcr4_el1", "dbgbvr4_el1", $cr, $vr, $body),
            (false, 5) => with_pair!(@ "dbgbcr5_el1", "dbgbvr5_el1", $cr, $vr, $body),
            (true, 0) => with_pair!(@ "dbgwcr0_el1", "dbgwvr0_el1", $cr, $vr, $body),
            (true, 1) => with_pair!(@ "dbgwcr1_el1", "dbgwvr1_el1", $cr, $vr, $body),
            (true, 2) => with_pair!(@ "dbgwcr2_el1", "dbgwvr2_el1", $cr, $vr, $body),
            (true, 3) => with_pair!(@ "dbgwcr3_el1", "dbgwvr3_el1", $cr, $vr, $body),
            _ => $none,
        }
    };
    (@ $c:literal, $v:literal, $cr:ident, $vr:ident, $body:expr) => {{
        macro_rules! $cr {
            () => { read_sysreg!($c) };
            ($x:expr) => { write_sysreg!($c, $x) };
        }
        macro_rules! $vr {
            () => { read_sysreg!($v) };
            ($x:expr) => { write_sysreg!($v, $x) };
        }
        $body
    }};
}

/// Control and value register of breakpoint `i` or watchpoint `i`.
pub fn read(watch: bool, i: u64) -> (u64, u64) {
    with_pair!(watch, i, |cr, vr| (cr!(), vr!()), (0, 0))
}

/// Writes a register pair (value first, then control).
pub fn write(watch: bool, i: u64, c: u64, v: u64) {
    with_pair!(
        watch,
        i,
        |cr, vr| {
            vr!(v);
            cr!(c);
        },
        ()
    )
}

/// Clears the enable bit of a pair, if it is set.
pub fn disable(watch: bool, i: u64) {
    let (c, _) = read(watch, i);
    if c & ENABLE != 0 {
        write(watch, i, c & !ENABLE, 0);
    }
}

/// MDSCR_EL1.SS: whether the thread about to run steps one instruction.
pub fn single_step(on: bool) {
    let mdscr = read_sysreg!("mdscr_el1");
    let new = if on {
        mdscr | MDSCR_SS
    } else {
        mdscr & !MDSCR_SS
    };
    if new != mdscr {
        write_sysreg!("mdscr_el1", new);
    }
}

/// Whether debug exceptions and debug register accesses from EL1 and EL0
/// trap to EL2 (MDCR_EL2.TDE, TDA, TDOSA, TDRA): on for native threads,
/// off while a guest runs, which handles its own (seL4's
/// `setHDCRTrapDebugExceptionState`, called by `vcpu_enable` and
/// `vcpu_disable` in the debug configuration).
pub fn set_traps(on: bool) {
    let traps = MDCR_TDE | MDCR_TDA | MDCR_TDOSA | MDCR_TDRA;
    let mdcr = read_sysreg!("mdcr_el2");
    write_sysreg!("mdcr_el2", if on { mdcr | traps } else { mdcr & !traps });
}
