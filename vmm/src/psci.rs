//! The guest's firmware calls: PSCI 1.0 (Arm DEN 0022) and the SMC Calling
//! Convention's own queries (Arm DEN 0028), made with `hvc` (the device
//! tree's conduit) or `smc`.
//!
//! [`decode`] turns a call (x0 = function id, x1..x3 = arguments) into a
//! [`Call`]; the VMM carries it out. A function id this VMM does not
//! implement is answered [`NOT_SUPPORTED`] (SMCCC's "unknown function"),
//! whatever else the registers hold: a guest probing for firmware services
//! (KVM's vendor calls, TRNG, errata workarounds) gets a clean no.

/// PSCI and SMCCC return values (x0).
pub const SUCCESS: u64 = 0;
pub const NOT_SUPPORTED: u64 = -1i64 as u64;
pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
pub const DENIED: u64 = -3i64 as u64;
pub const ALREADY_ON: u64 = -4i64 as u64;
pub const INTERNAL_FAILURE: u64 = -6i64 as u64;
pub const INVALID_ADDRESS: u64 = -9i64 as u64;

/// PSCI 1.0 (the device tree says `arm,psci-1.0`).
pub const PSCI_VERSION_1_0: u64 = 0x0001_0000;
/// SMCCC 1.1: `SMCCC_VERSION` and `SMCCC_ARCH_FEATURES` exist.
pub const SMCCC_VERSION_1_1: u64 = 0x0001_0001;
/// MIGRATE_INFO_TYPE: no Trusted OS that would need migrating.
pub const MIGRATE_NONE: u64 = 2;

/// AFFINITY_INFO answers.
pub const AFFINITY_ON: u64 = 0;
pub const AFFINITY_OFF: u64 = 1;
pub const AFFINITY_ON_PENDING: u64 = 2;

/// Function ids (the 64-bit calling convention has bit 30 set).
pub mod fid {
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    pub const CPU_SUSPEND: u32 = 0x8400_0001;
    pub const CPU_OFF: u32 = 0x8400_0002;
    pub const CPU_ON: u32 = 0x8400_0003;
    pub const AFFINITY_INFO: u32 = 0x8400_0004;
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    pub const PSCI_FEATURES: u32 = 0x8400_000a;
    /// The SMC64 form of a 32-bit id that has one.
    pub const SMC64: u32 = 0x4000_0000;
}

/// A decoded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// Answer with this value in x0 and change nothing else.
    Value(u64),
    /// CPU_SUSPEND: the guest may wait for an interrupt; returning at once
    /// is allowed (a standby state woken straight away).
    Suspend,
    CpuOff,
    CpuOn {
        target: u64,
        entry: u64,
        context: u64,
    },
    AffinityInfo {
        target: u64,
    },
    SystemOff,
    SystemReset,
    /// An id outside PSCI and the SMCCC queries: answered NOT_SUPPORTED.
    Unknown(u64),
}

/// The ids of PSCI functions that have an SMC64 form, in their 32-bit
/// spelling.
const HAS_SMC64: [u32; 3] = [fid::CPU_SUSPEND, fid::CPU_ON, fid::AFFINITY_INFO];

/// The 32-bit spelling of `x0` if it names a function that exists in that
/// calling convention, as the guest called it.
fn normalise(x0: u64) -> Option<u32> {
    // SMCCC: only w0 carries the id; a 64-bit value with upper bits set is
    // not a valid id.
    let id = u32::try_from(x0).ok()?;
    if id & fid::SMC64 != 0 {
        let base = id & !fid::SMC64;
        HAS_SMC64.contains(&base).then_some(base)
    } else {
        Some(id)
    }
}

/// Is `id` (any spelling) a function this VMM implements?
fn supported(id: u64) -> bool {
    matches!(
        normalise(id),
        Some(
            fid::SMCCC_VERSION
                | fid::SMCCC_ARCH_FEATURES
                | fid::PSCI_VERSION
                | fid::CPU_SUSPEND
                | fid::CPU_OFF
                | fid::CPU_ON
                | fid::AFFINITY_INFO
                | fid::MIGRATE_INFO_TYPE
                | fid::SYSTEM_OFF
                | fid::SYSTEM_RESET
                | fid::PSCI_FEATURES
        )
    )
}

/// Decodes a call from its registers.
pub fn decode(x: [u64; 4]) -> Call {
    let Some(id) = normalise(x[0]) else {
        return Call::Unknown(x[0]);
    };
    match id {
        fid::SMCCC_VERSION => Call::Value(SMCCC_VERSION_1_1),
        // SMCCC_ARCH_FEATURES says whether an Arm architecture service is
        // there; of those, only the version call itself is (no errata
        // workarounds: the VMM has none to offer).
        fid::SMCCC_ARCH_FEATURES => Call::Value(match normalise(x[1]) {
            Some(fid::SMCCC_VERSION) => SUCCESS,
            _ => NOT_SUPPORTED,
        }),
        fid::PSCI_VERSION => Call::Value(PSCI_VERSION_1_0),
        fid::CPU_SUSPEND => Call::Suspend,
        fid::CPU_OFF => Call::CpuOff,
        fid::CPU_ON => Call::CpuOn {
            target: x[1],
            entry: x[2],
            context: x[3],
        },
        fid::AFFINITY_INFO => {
            // Only level 0 (one core per cluster here, and PSCI 1.0 lets a
            // caller ask about higher levels only if it says so).
            if x[2] != 0 {
                Call::Value(INVALID_PARAMETERS)
            } else {
                Call::AffinityInfo { target: x[1] }
            }
        }
        fid::MIGRATE_INFO_TYPE => Call::Value(MIGRATE_NONE),
        fid::SYSTEM_OFF => Call::SystemOff,
        fid::SYSTEM_RESET => Call::SystemReset,
        // PSCI_FEATURES: 0 for what is implemented (for CPU_SUSPEND: the
        // original power state format, no OS-initiated mode).
        fid::PSCI_FEATURES => Call::Value(if supported(x[1]) {
            SUCCESS
        } else {
            NOT_SUPPORTED
        }),
        _ => Call::Unknown(x[0]),
    }
}

/// MPIDR affinity fields of a PSCI target (Aff3 and Aff2..Aff0; the rest
/// must be zero).
pub fn target_index(mpidr: u64) -> Option<u64> {
    const AFF: u64 = 0xff_00ff_ffff;
    if mpidr & !AFF != 0 || mpidr & 0xff_00ff_ff00 != 0 {
        return None;
    }
    Some(mpidr & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(x0: u64, x1: u64, x2: u64, x3: u64) -> Call {
        decode([x0, x1, x2, x3])
    }

    #[test]
    fn versions_and_features() {
        assert_eq!(call(0x8400_0000, 0, 0, 0), Call::Value(PSCI_VERSION_1_0));
        assert_eq!(call(0x8000_0000, 0, 0, 0), Call::Value(SMCCC_VERSION_1_1));
        // PSCI_FEATURES of what exists, in either calling convention.
        for f in [0x8400_0000, 0xc400_0003, 0x8400_0009, 0x8000_0000] {
            assert_eq!(call(0x8400_000a, f, 0, 0), Call::Value(SUCCESS), "{f:#x}");
        }
        // ...and of what does not: SYSTEM_RESET2, an SMC64 form of a
        // function without one, an id with upper bits set.
        for f in [0x8400_0012, 0xc400_0009, 0x1_8400_0000, 0x1234] {
            assert_eq!(
                call(0x8400_000a, f, 0, 0),
                Call::Value(NOT_SUPPORTED),
                "{f:#x}"
            );
        }
        // SMCCC_ARCH_FEATURES: no errata workarounds.
        assert_eq!(
            call(0x8000_0001, 0x8000_8000, 0, 0),
            Call::Value(NOT_SUPPORTED)
        );
        assert_eq!(call(0x8000_0001, 0x8000_0000, 0, 0), Call::Value(SUCCESS));
    }

    #[test]
    fn power_calls_carry_their_arguments() {
        assert_eq!(
            call(0xc400_0003, 1, 0x4008_0000, 7),
            Call::CpuOn {
                target: 1,
                entry: 0x4008_0000,
                context: 7
            }
        );
        assert_eq!(
            call(0x8400_0003, 1, 0x4008_0000, 7),
            Call::CpuOn {
                target: 1,
                entry: 0x4008_0000,
                context: 7
            }
        );
        assert_eq!(call(0x8400_0002, 0, 0, 0), Call::CpuOff);
        assert_eq!(call(0x8400_0008, 0, 0, 0), Call::SystemOff);
        assert_eq!(call(0x8400_0009, 0, 0, 0), Call::SystemReset);
        assert_eq!(call(0xc400_0001, 0, 0, 0), Call::Suspend);
        assert_eq!(call(0xc400_0004, 2, 0, 0), Call::AffinityInfo { target: 2 });
        assert_eq!(call(0xc400_0004, 2, 1, 0), Call::Value(INVALID_PARAMETERS));
        assert_eq!(call(0x8400_0006, 0, 0, 0), Call::Value(MIGRATE_NONE));
    }

    #[test]
    fn anything_else_is_unknown() {
        for x0 in [
            0,
            0x8600_ff01,           // vendor hypervisor service UID (KVM's probe)
            0x8400_0050,           // TRNG_VERSION
            0xc400_0008,           // SYSTEM_OFF has no SMC64 form
            0xdead_beef_8400_0000, // upper bits set
            u64::MAX,
        ] {
            assert_eq!(call(x0, 1, 2, 3), Call::Unknown(x0), "{x0:#x}");
        }
    }

    #[test]
    fn targets_are_level_zero_affinities() {
        assert_eq!(target_index(0), Some(0));
        assert_eq!(target_index(3), Some(3));
        assert_eq!(target_index(0x100), None);
        assert_eq!(target_index(0x8000_0000), None);
    }
}
