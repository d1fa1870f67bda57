//! The register shapes of the seL4 aarch64 system calls.
//!
//! `svc #0` with the syscall number in x7; x0 carries the capability (or the
//! badge on return), x1 the message info, x2..x5 message registers 0..3, x6
//! the reply object (Recv, ReplyRecv, NBSendRecv) or the send destination
//! (NBSendWait), x8 the send destination of NBSendRecv. Which registers each
//! shape loads, reads back or lets the kernel clobber follows libsel4
//! 16.0.0 (`sel4_arch/syscalls.h`); x6, x7 and x8 are inputs only, the
//! kernel preserves them.
//!
//! Every asm block keeps Rust's default memory clobber: the kernel reads and
//! writes the IPC buffer behind the compiler's back, so stores to it must be
//! done before the `svc` and loads from it must happen after.
//!
//! On the host the same shapes hand a [`Regs`] set to the thread's
//! [`crate::host::HostKernel`], so tests see what the kernel would see.

/// What comes back from a receiving system call: badge (x0), message info
/// (x1) and the first four message registers (x2..x5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecvRegs {
    pub badge: u64,
    pub info: u64,
    pub mrs: [u64; 4],
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    use super::RecvRegs;
    use core::arch::asm;

    /// Send, NBSend: x0 dest, x1 info, x2..x5 MR0..3 (`None`: an empty
    /// message, whose registers the kernel does not read, so they are not
    /// loaded); nothing comes back.
    #[inline(always)]
    pub(crate) fn send(sys: i64, dest: u64, info: u64, mrs: Option<[u64; 4]>) {
        match mrs {
            // SAFETY: `svc #0` enters the kernel, which reads x0..x5 and x7
            // and (for longer messages) the IPC buffer, and clobbers at most
            // x0..x5, all declared here. It touches no stack memory of ours.
            Some(mrs) => unsafe {
                asm!(
                    "svc #0",
                    inout("x0") dest => _,
                    inout("x1") info => _,
                    inout("x2") mrs[0] => _,
                    inout("x3") mrs[1] => _,
                    inout("x4") mrs[2] => _,
                    inout("x5") mrs[3] => _,
                    in("x7") sys,
                    options(nostack),
                );
            },
            // SAFETY: as above; an empty message, so the kernel reads none
            // of x2..x5, still declared clobbered.
            None => unsafe {
                asm!(
                    "svc #0",
                    inout("x0") dest => _,
                    inout("x1") info => _,
                    lateout("x2") _,
                    lateout("x3") _,
                    lateout("x4") _,
                    lateout("x5") _,
                    in("x7") sys,
                    options(nostack),
                );
            },
        }
    }

    /// Send with no message registers (Signal): x0 dest, x1 info.
    #[inline(always)]
    pub(crate) fn send_null(sys: i64, dest: u64, info: u64) {
        // SAFETY: as `send`; the kernel reads x0, x1 and x7 and may clobber
        // x0 and x1, declared here. Message registers are not loaded because
        // the message has length zero.
        unsafe {
            asm!(
                "svc #0",
                inout("x0") dest => _,
                inout("x1") info => _,
                in("x7") sys,
                options(nostack),
            );
        }
    }

    /// Recv, NBRecv (x6 reply), Wait, NBWait (x6 ignored by the kernel).
    #[inline(always)]
    pub(crate) fn recv(sys: i64, src: u64, reply: u64) -> RecvRegs {
        let (badge, info, m0, m1, m2, m3);
        // SAFETY: the kernel reads x0, x6 and x7 and returns badge, info and
        // MR0..3 in x0..x5, all declared as outputs; it may write the IPC
        // buffer (memory clobber kept).
        unsafe {
            asm!(
                "svc #0",
                inout("x0") src => badge,
                out("x1") info,
                out("x2") m0,
                out("x3") m1,
                out("x4") m2,
                out("x5") m3,
                in("x6") reply,
                in("x7") sys,
                options(nostack),
            );
        }
        RecvRegs {
            badge,
            info,
            mrs: [m0, m1, m2, m3],
        }
    }

    /// The shapes that send a message and receive one (Call, ReplyRecv,
    /// NBSendRecv, NBSendWait): x0 `$x0`, x1 `$info`, x2..x5 MR0..3 in both
    /// directions, then the shape's further inputs (x6, x8), which the
    /// kernel preserves. An empty message (`$mrs` is `None`) does not load
    /// x2..x5: the kernel reads only the message's length of them (both
    /// kernels, fast and slow paths), so they are outputs only.
    macro_rules! send_recv {
        ($sys:expr, $x0:expr, $info:expr, $mrs:expr $(, $reg:tt = $val:expr)*) => {{
            let (badge, out_info, m0, m1, m2, m3);
            match $mrs {
                // SAFETY: the kernel reads x0..x5, x7 and the inputs given
                // (preserving them) and returns in x0..x5, all declared; it
                // may read and write the IPC buffer (memory clobber kept).
                Some(mrs) => unsafe {
                    asm!(
                        "svc #0",
                        inout("x0") $x0 => badge,
                        inout("x1") $info => out_info,
                        inout("x2") mrs[0] => m0,
                        inout("x3") mrs[1] => m1,
                        inout("x4") mrs[2] => m2,
                        inout("x5") mrs[3] => m3,
                        in("x7") $sys,
                        $(in($reg) $val,)*
                        options(nostack),
                    );
                },
                // SAFETY: as above, x2..x5 outputs only: the message is
                // empty, the kernel reads none of them.
                None => unsafe {
                    asm!(
                        "svc #0",
                        inout("x0") $x0 => badge,
                        inout("x1") $info => out_info,
                        out("x2") m0,
                        out("x3") m1,
                        out("x4") m2,
                        out("x5") m3,
                        in("x7") $sys,
                        $(in($reg) $val,)*
                        options(nostack),
                    );
                },
            }
            RecvRegs {
                badge,
                info: out_info,
                mrs: [m0, m1, m2, m3],
            }
        }};
    }

    /// Call: x0 dest, x1 info, x2..x5 MR0..3 in both directions.
    #[inline(always)]
    pub(crate) fn call(sys: i64, dest: u64, info: u64, mrs: Option<[u64; 4]>) -> RecvRegs {
        send_recv!(sys, dest, info, mrs)
    }

    /// ReplyRecv: as Call, plus the reply object in x6.
    #[inline(always)]
    pub(crate) fn reply_recv(
        sys: i64,
        src: u64,
        info: u64,
        mrs: Option<[u64; 4]>,
        reply: u64,
    ) -> RecvRegs {
        send_recv!(sys, src, info, mrs, "x6" = reply)
    }

    /// NBSendRecv and NBSendWait: x0 receive source, x1 info, x2..x5
    /// MR0..3, x6 reply object (NBSendRecv) or send destination
    /// (NBSendWait), x8 send destination (NBSendRecv) or 0.
    #[inline(always)]
    pub(crate) fn nb_send_recv(
        sys: i64,
        src: u64,
        info: u64,
        mrs: Option<[u64; 4]>,
        x6: u64,
        x8: u64,
    ) -> RecvRegs {
        send_recv!(sys, src, info, mrs, "x6" = x6, "x8" = x8)
    }

    /// Yield, DebugHalt, DebugSnapshot: only x7.
    #[inline(always)]
    pub(crate) fn null(sys: i64) {
        // SAFETY: the kernel reads x7 only. libsel4 declares no clobbers for
        // these calls; x0..x5 are declared clobbered anyway so that a kernel
        // which writes its usual return registers cannot corrupt our state.
        unsafe {
            asm!(
                "svc #0",
                in("x7") sys,
                lateout("x0") _,
                lateout("x1") _,
                lateout("x2") _,
                lateout("x3") _,
                lateout("x4") _,
                lateout("x5") _,
                options(nostack),
            );
        }
    }

    /// The debug calls that take one word in x0 and may return one in x0
    /// (DebugPutChar, DebugDumpScheduler, DebugCapIdentify,
    /// DebugNameThread): [`benchmark`] with x1 zero.
    #[inline(always)]
    pub(crate) fn debug(sys: i64, x0: u64) -> u64 {
        benchmark(sys, x0, 0)
    }

    /// The benchmark calls, and the debug calls: x0 and x1 in, x0 out.
    /// libsel4 routes them through its send-receive shape (its
    /// `seL4_BenchmarkFlushL1Caches` passes the cache type in x1), so x1..x5
    /// count as clobbered.
    #[inline(always)]
    pub(crate) fn benchmark(sys: i64, x0: u64, x1: u64) -> u64 {
        let out;
        // SAFETY: the kernel reads x0, x1 and x7 (and the IPC buffer for
        // DebugNameThread) and writes at most x0..x5 and the IPC buffer's
        // message words (BenchmarkGetThreadUtilisation), all declared or
        // this thread's.
        unsafe {
            asm!(
                "svc #0",
                inout("x0") x0 => out,
                inout("x1") x1 => _,
                lateout("x2") _,
                lateout("x3") _,
                lateout("x4") _,
                lateout("x5") _,
                in("x7") sys,
                options(nostack),
            );
        }
        out
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp {
    //! Host stand-ins: the same register loads, handed to the thread's
    //! host kernel instead of `svc`.
    use super::RecvRegs;
    use crate::host::{self, Regs};

    fn enter(mut regs: Regs) -> Regs {
        host::syscall(&mut regs);
        regs
    }

    fn recv_regs(r: &Regs) -> RecvRegs {
        RecvRegs {
            badge: r.x[0],
            info: r.x[1],
            mrs: [r.x[2], r.x[3], r.x[4], r.x[5]],
        }
    }

    fn regs(sys: i64, x0: u64, x1: u64, mrs: [u64; 4], x6: u64, x8: u64) -> Regs {
        Regs {
            x: [x0, x1, mrs[0], mrs[1], mrs[2], mrs[3], x6, sys as u64, x8],
        }
    }

    pub(crate) fn send(sys: i64, dest: u64, info: u64, mrs: Option<[u64; 4]>) {
        enter(regs(sys, dest, info, mrs.unwrap_or_default(), 0, 0));
    }

    pub(crate) fn send_null(sys: i64, dest: u64, info: u64) {
        enter(regs(sys, dest, info, [0; 4], 0, 0));
    }

    pub(crate) fn recv(sys: i64, src: u64, reply: u64) -> RecvRegs {
        recv_regs(&enter(regs(sys, src, 0, [0; 4], reply, 0)))
    }

    pub(crate) fn call(sys: i64, dest: u64, info: u64, mrs: Option<[u64; 4]>) -> RecvRegs {
        recv_regs(&enter(regs(sys, dest, info, mrs.unwrap_or_default(), 0, 0)))
    }

    pub(crate) fn reply_recv(
        sys: i64,
        src: u64,
        info: u64,
        mrs: Option<[u64; 4]>,
        reply: u64,
    ) -> RecvRegs {
        recv_regs(&enter(regs(
            sys,
            src,
            info,
            mrs.unwrap_or_default(),
            reply,
            0,
        )))
    }

    pub(crate) fn nb_send_recv(
        sys: i64,
        src: u64,
        info: u64,
        mrs: Option<[u64; 4]>,
        x6: u64,
        x8: u64,
    ) -> RecvRegs {
        recv_regs(&enter(regs(
            sys,
            src,
            info,
            mrs.unwrap_or_default(),
            x6,
            x8,
        )))
    }

    pub(crate) fn null(sys: i64) {
        enter(regs(sys, 0, 0, [0; 4], 0, 0));
    }

    pub(crate) fn debug(sys: i64, x0: u64) -> u64 {
        enter(regs(sys, x0, 0, [0; 4], 0, 0)).x[0]
    }

    pub(crate) fn benchmark(sys: i64, x0: u64, x1: u64) -> u64 {
        enter(regs(sys, x0, x1, [0; 4], 0, 0)).x[0]
    }
}

pub(crate) use imp::*;
