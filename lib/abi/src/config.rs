//! # The three kernel configurations
//!
//! Septa's kernel offers exactly Microkit 2.3.0's three configurations of
//! seL4 16.0.0 for `qemu_virt_aarch64` (its `build_sdk.py`), which share
//! the common options of `docs/real-sel4.md`'s table (hyp, MCS, 16 domains
//! with 100 schedule entries, the physical counter and timer exported, ...)
//! and differ in:
//!
//! | | release | debug | benchmark |
//! |---|---|---|---|
//! | `KernelDebugBuild` | off | on | off |
//! | `KernelPrinting` | off | on | off |
//! | `HardwareDebugAPI` | off | on | off |
//! | `KernelBenchmarks` | none | none | `track_utilisation` |
//! | `KernelSignalFastpath` | off | off | on |
//! | `KernelArmExportPMUUser` | off | off | on |
//!
//! What user level can observe of the difference is here, once: which
//! system calls exist, how the invocation labels are numbered, how big a
//! TCB is, the user SPSR, whether the PMU is exported.
//!
//! A build of this crate describes one configuration, [`CONFIG`], chosen by
//! its cargo features (`debug`, `benchmark`; neither is release): the
//! kernel and every program built for the target ask [`CONFIG`]. Host code
//! (the tool) that must reason about any configuration uses [`Config`]'s
//! methods with the configuration it was told.

use crate::Label;

/// One of the three configurations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Config {
    Release,
    Debug,
    Benchmark,
}

#[cfg(all(feature = "debug", feature = "benchmark"))]
compile_error!(
    "septa-abi: choose one configuration: the features `debug` and `benchmark` exclude each other"
);

/// The configuration this build describes (cargo features of this crate).
pub const CONFIG: Config = if cfg!(feature = "debug") {
    Config::Debug
} else if cfg!(feature = "benchmark") {
    Config::Benchmark
} else {
    Config::Release
};

/// How many TCB methods the hardware debug API adds (after
/// `TCBUnbindNotification`): SetBreakpoint, GetBreakpoint,
/// UnsetBreakpoint and ConfigureSingleStepping.
const HARDWARE_DEBUG_METHODS: u64 = 4;

impl Config {
    /// Every configuration, in Microkit's order.
    pub const ALL: [Config; 3] = [Config::Release, Config::Debug, Config::Benchmark];

    /// The name Microkit gives it (and Septa's tool takes).
    pub const fn name(self) -> &'static str {
        match self {
            Config::Release => "release",
            Config::Debug => "debug",
            Config::Benchmark => "benchmark",
        }
    }

    /// The configuration called `name`.
    pub fn from_name(name: &str) -> Option<Config> {
        Config::ALL.into_iter().find(|c| c.name() == name)
    }

    /// `KernelDebugBuild`: DebugHalt, DebugCapIdentify, DebugSnapshot and
    /// DebugNameThread exist; user threads run with SError unmasked.
    pub const fn debug_build(self) -> bool {
        matches!(self, Config::Debug)
    }

    /// `KernelPrinting`: DebugPutChar and DebugDumpScheduler exist, and the
    /// kernel prints (faults without a handler, failed invocations).
    pub const fn printing(self) -> bool {
        matches!(self, Config::Debug)
    }

    /// `HardwareDebugAPI`: the four TCB methods of breakpoints, watchpoints
    /// and single stepping, debug exceptions as faults, and 4 KiB TCBs.
    pub const fn hardware_debug_api(self) -> bool {
        matches!(self, Config::Debug)
    }

    /// `KernelBenchmarks` = `track_utilisation`: the utilisation benchmark
    /// system calls.
    pub const fn track_utilisation(self) -> bool {
        matches!(self, Config::Benchmark)
    }

    /// `KernelSignalFastpath`: Send on a notification takes a fast path.
    pub const fn signal_fastpath(self) -> bool {
        matches!(self, Config::Benchmark)
    }

    /// `KernelArmExportPMUUser`: EL0 may use the PMU.
    pub const fn export_pmu(self) -> bool {
        matches!(self, Config::Benchmark)
    }

    /// `seL4_TCBBits`: 12 with the hardware debug API (the TCB holds the
    /// breakpoint state), 11 otherwise.
    pub const fn tcb_size_bits(self) -> u32 {
        if self.hardware_debug_api() {
            12
        } else {
            11
        }
    }

    /// `PSTATE_USER`: EL0t with FIQs masked, and in builds other than
    /// debug SError masked too.
    pub const fn pstate_user(self) -> u64 {
        const FIQ_MASKED: u64 = 1 << 6;
        const SERROR_MASKED: u64 = 1 << 8;
        if self.debug_build() {
            FIQ_MASKED
        } else {
            FIQ_MASKED | SERROR_MASKED
        }
    }

    /// Whether the configuration has the method `l`.
    pub const fn has_label(self, l: Label) -> bool {
        !l.is_hardware_debug() || self.hardware_debug_api()
    }

    /// The label of method `l` in this configuration: the interface files'
    /// order with the methods whose condition is false left out (no gap);
    /// `None` if the configuration lacks the method.
    pub const fn label_number(self, l: Label) -> Option<u64> {
        if !self.has_label(l) {
            return None;
        }
        let i = l as u64;
        if self.hardware_debug_api() || i < Label::TcbSetBreakpoint as u64 {
            Some(i)
        } else {
            Some(i - HARDWARE_DEBUG_METHODS)
        }
    }

    /// The method with label `n` in this configuration.
    pub fn label(self, n: u64) -> Option<Label> {
        let i = if self.hardware_debug_api() || n < Label::TcbSetBreakpoint as u64 {
            n
        } else {
            n.checked_add(HARDWARE_DEBUG_METHODS)?
        };
        Label::ALL
            .get(usize::try_from(i).ok()?)
            .copied()
            .filter(|&l| self.has_label(l))
    }

    /// The highest label of this configuration.
    pub const fn last_label(self) -> u64 {
        match self.label_number(Label::ArmIrqIssueSgiSignal) {
            Some(n) => n,
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_configuration_numbers_its_labels_without_gaps() {
        for c in Config::ALL {
            for n in 0..=c.last_label() {
                let l = c.label(n).unwrap();
                assert_eq!(c.label_number(l), Some(n), "{c:?} label {n}");
            }
            assert_eq!(c.label(c.last_label() + 1), None);
        }
    }

    #[test]
    fn the_hardware_debug_api_shifts_labels_from_16_by_four() {
        use Label::*;
        // The numbers the issue names: IRQ ack 27 -> 31, SMC call 43 -> 47.
        for (l, release, debug) in [
            (TcbUnbindNotification, 15, 15),
            (TcbSetBreakpoint, 0, 16),
            (TcbConfigureSingleStepping, 0, 19),
            (TcbSetTlsBase, 16, 20),
            (IrqAckIrq, 27, 31),
            (ArmSmcCall, 43, 47),
            (ArmIrqIssueSgiSignal, 61, 65),
        ] {
            if release != 0 {
                assert_eq!(Config::Release.label_number(l), Some(release));
                assert_eq!(Config::Benchmark.label_number(l), Some(release));
            } else {
                assert_eq!(Config::Release.label_number(l), None);
            }
            assert_eq!(Config::Debug.label_number(l), Some(debug));
        }
    }

    #[test]
    fn names_round_trip() {
        for c in Config::ALL {
            assert_eq!(Config::from_name(c.name()), Some(c));
        }
        assert_eq!(Config::from_name("legacy"), None);
    }
}
