//! The PMU cycle counter, the benchmark configuration's clock for
//! utilisation tracking (`crate::benchmark`; the boot code enables it).

/// PMCCNTR_EL0.
#[inline(always)]
pub fn cycles() -> u64 {
    super::sysreg::read_sysreg!("pmccntr_el0")
}
