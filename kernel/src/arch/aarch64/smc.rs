//! SMC calls on behalf of the SMC cap's invocation (`seL4_ARM_SMC_Call`).

/// SMC Calling Convention: function ids of PSCI (32- and 64-bit ranges).
const PSCI_RANGES: [(u64, u64); 2] = [(0x8400_0000, 0x8400_001f), (0xc400_0000, 0xc400_001f)];
/// SMCCC's "not supported" result.
const SMCCC_NOT_SUPPORTED: u64 = u64::MAX;

/// Makes an SMC call with x0..x7 = `args`; returns x0..x7. QEMU `virt`
/// without a secure world answers only PSCI calls (any other `smc` would
/// be undefined at EL2), so others get SMCCC's "not supported".
pub fn smc_call(args: [u64; 8]) -> [u64; 8] {
    let f = args[0] & 0xffff_ffff;
    if !PSCI_RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&f)) {
        let mut r = args;
        r[0] = SMCCC_NOT_SUPPORTED;
        return r;
    }
    let mut r = args;
    // SAFETY: a PSCI call to the firmware (QEMU) through the SMC conduit;
    // it only reads and writes x0..x7 (x8..x17 may be clobbered by SMCCC).
    unsafe {
        core::arch::asm!(
            "smc #0",
            inout("x0") r[0],
            inout("x1") r[1],
            inout("x2") r[2],
            inout("x3") r[3],
            inout("x4") r[4],
            inout("x5") r[5],
            inout("x6") r[6],
            inout("x7") r[7],
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    r
}
