//! The few system calls the initializer makes today, and a console on
//! DebugPutChar. Numbers come from `septa-abi`.

use core::fmt::{self, Write};

use septa_abi::{syscall, MessageInfo};

pub fn put_char(c: u8) {
    // SAFETY: DebugPutChar takes the byte in x0 and returns nothing; the
    // kernel preserves every other register across the call.
    unsafe {
        core::arch::asm!("svc #0", in("x0") c as u64, in("x7") syscall::DEBUG_PUT_CHAR, options(nostack));
    }
}

/// The console: DebugPutChar, one byte at a time.
pub struct Debug;

impl Write for Debug {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(put_char);
        Ok(())
    }
}

/// The kernel's internal type tag of the cap at `cptr` (0 for an empty
/// slot or a failed lookup), from the debug call DebugCapIdentify.
pub fn cap_identify(cptr: u64) -> u64 {
    let mut x0 = cptr;
    // SAFETY: DebugCapIdentify reads the cap pointer in x0 and writes the
    // type back to x0; it touches no memory of ours and no other register.
    unsafe {
        core::arch::asm!("svc #0", inout("x0") x0, in("x7") syscall::DEBUG_CAP_IDENTIFY, options(nostack));
    }
    x0
}

/// A Call on `cap` with `info` and up to four message registers; returns
/// the reply's message info and its first four message registers.
pub fn call(cap: u64, info: MessageInfo, mrs: [u64; 4]) -> (MessageInfo, [u64; 4]) {
    let (mut x0, mut x1, mut x2, mut x3, mut x4, mut x5) =
        (cap, info.0, mrs[0], mrs[1], mrs[2], mrs[3]);
    // SAFETY: Call takes the cap in x0, the message info in x1 and MR0..MR3
    // in x2..x5, and returns badge, info and MR0..MR3 in the same registers.
    // Longer messages would go through the IPC buffer, which this caller
    // never asks for (its messages and the replies it reads fit in four
    // registers); the kernel preserves every other register.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inout("x0") x0,
            inout("x1") x1,
            inout("x2") x2,
            inout("x3") x3,
            inout("x4") x4,
            inout("x5") x5,
            in("x7") syscall::CALL,
            options(nostack),
        );
    }
    let _badge = x0;
    (MessageInfo(x1), [x2, x3, x4, x5])
}
