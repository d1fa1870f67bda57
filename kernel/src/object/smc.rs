//! # The SMC cap: calls to secure firmware (`ARMSMCCall`)
//!
//! The message is the eight argument registers x0..x7 of the SMC calling
//! convention; the reply is the eight result registers. A badged SMC cap
//! only allows the function id equal to its badge (seL4's
//! `decodeARMSMCInvocation`). The call itself goes through
//! [`crate::machine::smc_call`], which on QEMU `virt` forwards only PSCI
//! calls (there is no secure world to take the others).

use crate::cap::Cap;
use crate::error::{Exception, SyscallError};
use crate::invocation::{Invocation, ReplyWords};
use crate::machine;
use septa_abi::Label;

/// Argument and result registers of an SMC call.
pub const NUM_SMC_REGS: usize = 8;

pub fn decode_invocation(
    inv: &Invocation,
    cap: &Cap,
    reply: &mut ReplyWords,
) -> Result<(), Exception> {
    let Cap::Smc { badge } = *cap else {
        return Err(SyscallError::IllegalOperation.into());
    };
    if inv.label != Label::ArmSmcCall.number() {
        return Err(SyscallError::IllegalOperation.into());
    }
    if inv.length() < NUM_SMC_REGS {
        return Err(SyscallError::TruncatedMessage.into());
    }
    let function = inv.arg(0);
    if badge != 0 && badge != function {
        return Err(SyscallError::IllegalOperation.into());
    }
    let mut args = [0u64; NUM_SMC_REGS];
    for (i, a) in args.iter_mut().enumerate() {
        *a = inv.arg(i);
    }
    for r in machine::smc_call(args) {
        reply.push(r);
    }
    Ok(())
}
