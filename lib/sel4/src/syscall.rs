//! The seL4 MCS system calls.
//!
//! Each call comes in two flavours, as in libsel4:
//! - the plain one keeps the whole message in the IPC buffer: message
//!   registers 0..3 are loaded from the buffer into x2..x5 before the call
//!   and stored back after it, so [`crate::ipc_buffer::get_mr`] sees the
//!   received message;
//! - the `_with_mrs` one passes MR0..MR3 by value and leaves the buffer
//!   alone (MR4 and up still travel in the buffer), which is what the
//!   invocation layer and hot paths use.
//!
//! Receive calls return `(info, badge)`.

use septa_abi::{syscall as nr, MessageInfo, CONFIG};

use crate::arch::{self, RecvRegs};
use crate::cap::{cap_type, CPtr, Cap};
use crate::ipc_buffer::{self, Registered};
use crate::Badge;

/// Message registers passed in machine registers.
pub const FAST_MRS: usize = septa_abi::ipc_buffer::FAST_MESSAGE_REGISTERS;

/// The message registers to load for `info`'s message: `None` for an
/// empty one (its registers are not loaded at all: the kernel reads only
/// the message's length of them).
#[inline]
fn load_mrs(info: MessageInfo) -> Option<[u64; FAST_MRS]> {
    load_mrs_in(None, info)
}

/// As `load_mrs`, from `buf` if given (else the registered buffer).
#[inline]
fn load_mrs_in(buf: Option<Registered>, info: MessageInfo) -> Option<[u64; FAST_MRS]> {
    let n = info.length() as usize;
    (n != 0).then(|| buf.unwrap_or_else(Registered::expect_current).first_mrs(n))
}

#[inline]
fn store_mrs(r: &RecvRegs) -> (MessageInfo, Badge) {
    store_mrs_in(Registered::expect_current(), r)
}

#[inline]
fn store_mrs_in(buf: Registered, r: &RecvRegs) -> (MessageInfo, Badge) {
    buf.set_first_mrs(&r.mrs);
    (MessageInfo(r.info), r.badge)
}

/// Call: send on `dest` and wait for the reply (an invocation if `dest` is
/// not an endpoint).
#[inline]
pub fn call(dest: CPtr, info: MessageInfo) -> MessageInfo {
    let r = arch::call(nr::CALL, dest.bits(), info.0, load_mrs(info));
    store_mrs(&r).0
}

/// [`call`] through `buf` (see [`recv_in`]).
#[inline]
pub fn call_in(buf: Registered, dest: CPtr, info: MessageInfo) -> MessageInfo {
    let r = arch::call(nr::CALL, dest.bits(), info.0, load_mrs_in(Some(buf), info));
    store_mrs_in(buf, &r).0
}

/// Call with MR0..MR3 by value; returns the reply info and its MR0..MR3.
pub fn call_with_mrs(
    dest: CPtr,
    info: MessageInfo,
    mrs: [u64; FAST_MRS],
) -> (MessageInfo, [u64; FAST_MRS]) {
    let r = arch::call(nr::CALL, dest.bits(), info.0, Some(mrs));
    (MessageInfo(r.info), r.mrs)
}

/// ReplyRecv: reply through `reply`, then receive on `src` with `reply`.
#[inline]
pub fn reply_recv(
    src: CPtr,
    info: MessageInfo,
    reply: Cap<cap_type::Reply>,
) -> (MessageInfo, Badge) {
    let r = arch::reply_recv(
        nr::REPLY_RECV,
        src.bits(),
        info.0,
        load_mrs(info),
        reply.bits(),
    );
    store_mrs(&r)
}

/// ReplyRecv with MR0..MR3 by value both ways.
pub fn reply_recv_with_mrs(
    src: CPtr,
    info: MessageInfo,
    mrs: [u64; FAST_MRS],
    reply: Cap<cap_type::Reply>,
) -> (MessageInfo, Badge, [u64; FAST_MRS]) {
    let r = arch::reply_recv(nr::REPLY_RECV, src.bits(), info.0, Some(mrs), reply.bits());
    (MessageInfo(r.info), r.badge, r.mrs)
}

/// NBSendRecv: a non-blocking send on `dest`, then receive on `src`.
#[inline]
pub fn nb_send_recv(
    dest: CPtr,
    info: MessageInfo,
    src: CPtr,
    reply: Cap<cap_type::Reply>,
) -> (MessageInfo, Badge) {
    let r = arch::nb_send_recv(
        nr::NB_SEND_RECV,
        src.bits(),
        info.0,
        load_mrs(info),
        reply.bits(),
        dest.bits(),
    );
    store_mrs(&r)
}

/// NBSendRecv with MR0..MR3 by value both ways.
pub fn nb_send_recv_with_mrs(
    dest: CPtr,
    info: MessageInfo,
    mrs: [u64; FAST_MRS],
    src: CPtr,
    reply: Cap<cap_type::Reply>,
) -> (MessageInfo, Badge, [u64; FAST_MRS]) {
    let r = arch::nb_send_recv(
        nr::NB_SEND_RECV,
        src.bits(),
        info.0,
        Some(mrs),
        reply.bits(),
        dest.bits(),
    );
    (MessageInfo(r.info), r.badge, r.mrs)
}

/// NBSendWait: a non-blocking send on `dest`, then wait on `src` (no reply
/// object: the destination travels in x6, x8 is zero).
pub fn nb_send_wait(dest: CPtr, info: MessageInfo, src: CPtr) -> (MessageInfo, Badge) {
    let r = arch::nb_send_recv(
        nr::NB_SEND_WAIT,
        src.bits(),
        info.0,
        load_mrs(info),
        dest.bits(),
        0,
    );
    store_mrs(&r)
}

/// Send: blocking send on `dest` (or a one-way invocation).
pub fn send(dest: CPtr, info: MessageInfo) {
    arch::send(nr::SEND, dest.bits(), info.0, load_mrs(info));
}

/// Send with MR0..MR3 by value.
pub fn send_with_mrs(dest: CPtr, info: MessageInfo, mrs: [u64; FAST_MRS]) {
    arch::send(nr::SEND, dest.bits(), info.0, Some(mrs));
}

/// NBSend: send on `dest` only if a receiver is waiting.
pub fn nb_send(dest: CPtr, info: MessageInfo) {
    arch::send(nr::NB_SEND, dest.bits(), info.0, load_mrs(info));
}

/// NBSend with MR0..MR3 by value.
pub fn nb_send_with_mrs(dest: CPtr, info: MessageInfo, mrs: [u64; FAST_MRS]) {
    arch::send(nr::NB_SEND, dest.bits(), info.0, Some(mrs));
}

/// Signal a notification (a Send of an empty message).
pub fn signal(dest: CPtr) {
    arch::send_null(nr::SEND, dest.bits(), MessageInfo::new(0, 0, 0, 0).0);
}

/// Recv: block on `src`; a caller's reply capability goes to `reply`.
#[inline]
pub fn recv(src: CPtr, reply: Cap<cap_type::Reply>) -> (MessageInfo, Badge) {
    store_mrs(&arch::recv(nr::RECV, src.bits(), reply.bits()))
}

/// The event loop's three receives, with the IPC buffer looked up once by
/// the caller (`buf`) rather than before every call: otherwise as
/// [`recv`], [`reply_recv`] and [`nb_send_recv`].
#[inline]
pub fn recv_in(buf: Registered, src: CPtr, reply: Cap<cap_type::Reply>) -> (MessageInfo, Badge) {
    store_mrs_in(buf, &arch::recv(nr::RECV, src.bits(), reply.bits()))
}

/// [`reply_recv`] through `buf` (see [`recv_in`]).
#[inline]
pub fn reply_recv_in(
    buf: Registered,
    src: CPtr,
    info: MessageInfo,
    reply: Cap<cap_type::Reply>,
) -> (MessageInfo, Badge) {
    let r = arch::reply_recv(
        nr::REPLY_RECV,
        src.bits(),
        info.0,
        load_mrs_in(Some(buf), info),
        reply.bits(),
    );
    store_mrs_in(buf, &r)
}

/// [`nb_send_recv`] through `buf` (see [`recv_in`]).
#[inline]
pub fn nb_send_recv_in(
    buf: Registered,
    dest: CPtr,
    info: MessageInfo,
    src: CPtr,
    reply: Cap<cap_type::Reply>,
) -> (MessageInfo, Badge) {
    let r = arch::nb_send_recv(
        nr::NB_SEND_RECV,
        src.bits(),
        info.0,
        load_mrs_in(Some(buf), info),
        reply.bits(),
        dest.bits(),
    );
    store_mrs_in(buf, &r)
}

/// Recv with the received MR0..MR3 returned by value, buffer untouched.
pub fn recv_with_mrs(
    src: CPtr,
    reply: Cap<cap_type::Reply>,
) -> (MessageInfo, Badge, [u64; FAST_MRS]) {
    let r = arch::recv(nr::RECV, src.bits(), reply.bits());
    (MessageInfo(r.info), r.badge, r.mrs)
}

/// NBRecv: receive on `src` if something is pending.
pub fn nb_recv(src: CPtr, reply: Cap<cap_type::Reply>) -> (MessageInfo, Badge) {
    store_mrs(&arch::recv(nr::NB_RECV, src.bits(), reply.bits()))
}

/// Wait: block on `src` without a reply object (notifications, or
/// endpoints when no reply is expected).
pub fn wait(src: CPtr) -> (MessageInfo, Badge) {
    store_mrs(&arch::recv(nr::WAIT, src.bits(), 0))
}

/// NBWait: poll `src`.
pub fn nb_wait(src: CPtr) -> (MessageInfo, Badge) {
    store_mrs(&arch::recv(nr::NB_WAIT, src.bits(), 0))
}

/// `seL4_Poll` of MCS: NBWait.
pub fn poll(src: CPtr) -> (MessageInfo, Badge) {
    nb_wait(src)
}

/// Yield: give up the rest of the time slice (MCS: of the budget).
pub fn yield_now() {
    arch::null(nr::YIELD);
}

// The debug calls exist only in some configurations (`septa_abi::Config`):
// DebugPutChar and DebugDumpScheduler with printing, the others in the
// debug build. Elsewhere the kernel answers them with an UnknownSyscall
// fault, so here, as in libsel4 and libmicrokit, they do nothing.

/// DebugPutChar: one byte to the kernel's console (nothing without
/// printing).
pub fn debug_put_char(c: u8) {
    if CONFIG.printing() {
        arch::debug(nr::DEBUG_PUT_CHAR, u64::from(c));
    }
}

/// DebugPutChar for each byte of `s`.
pub fn debug_put_str(s: &str) {
    s.bytes().for_each(debug_put_char);
}

/// DebugDumpScheduler: the kernel prints its thread table (nothing
/// without printing).
pub fn debug_dump_scheduler() {
    if CONFIG.printing() {
        arch::debug(nr::DEBUG_DUMP_SCHEDULER, 0);
    }
}

/// DebugHalt: stop the machine (debug build only).
pub fn debug_halt() {
    if CONFIG.debug_build() {
        arch::null(nr::DEBUG_HALT);
    }
}

/// DebugSnapshot: ask the kernel for a capDL snapshot (debug build only).
pub fn debug_snapshot() {
    if CONFIG.debug_build() {
        arch::null(nr::DEBUG_SNAPSHOT);
    }
}

/// DebugCapIdentify: the kernel's type tag of the cap at `cap` (0 = null);
/// `None` outside the debug build, which lacks the call.
pub fn debug_cap_identify(cap: CPtr) -> Option<u32> {
    // libsel4 returns the low 32 bits of x0.
    CONFIG
        .debug_build()
        .then(|| arch::debug(nr::DEBUG_CAP_IDENTIFY, cap.bits()) as u32)
}

/// DebugNameThread: give the thread of `tcb` a name for kernel messages
/// (debug build only). The name goes NUL-terminated into the IPC buffer's
/// message area.
pub fn debug_name_thread(tcb: Cap<cap_type::Tcb>, name: &str) {
    if CONFIG.debug_build() {
        ipc_buffer::set_msg_string(name.as_bytes());
        arch::debug(nr::DEBUG_NAME_THREAD, tcb.bits());
    }
}

// The benchmark configuration's calls (`KernelBenchmarks=track_utilisation`).
// Elsewhere the kernel answers them with an UnknownSyscall fault, so here
// they do nothing and say so.

/// Which level-1 caches [`benchmark_flush_l1_caches`] flushes (seL4's
/// `seL4_ARM_CacheType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum CacheType {
    Instruction = 1,
    Data = 2,
    Both = 3,
}

/// BenchmarkFlushCaches: clean and invalidate every cache. False outside
/// the benchmark configuration.
pub fn benchmark_flush_caches() -> bool {
    CONFIG
        .track_utilisation()
        .then(|| arch::benchmark(nr::BENCHMARK_FLUSH_CACHES, 0, 0))
        .is_some()
}

/// BenchmarkFlushCaches for the level-1 caches of `kind` only. False
/// outside the benchmark configuration.
pub fn benchmark_flush_l1_caches(kind: CacheType) -> bool {
    CONFIG
        .track_utilisation()
        .then(|| arch::benchmark(nr::BENCHMARK_FLUSH_CACHES, 1, kind as u64))
        .is_some()
}

/// BenchmarkResetLog: start utilisation counting from now; the kernel's
/// error code (0), or `None` outside the benchmark configuration.
pub fn benchmark_reset_log() -> Option<u64> {
    CONFIG
        .track_utilisation()
        .then(|| arch::benchmark(nr::BENCHMARK_RESET_LOG, 0, 0))
}

/// BenchmarkFinalizeLog: stop counting. False outside the benchmark
/// configuration.
pub fn benchmark_finalize_log() -> bool {
    CONFIG
        .track_utilisation()
        .then(|| arch::benchmark(nr::BENCHMARK_FINALIZE_LOG, 0, 0))
        .is_some()
}

/// BenchmarkNullSyscall: into the kernel and straight back. False outside
/// the benchmark configuration.
pub fn benchmark_null_syscall() -> bool {
    CONFIG
        .track_utilisation()
        .then(|| arch::benchmark(nr::BENCHMARK_NULL_SYSCALL, 0, 0))
        .is_some()
}

/// BenchmarkGetThreadUtilisation: the counters of the thread of `tcb`, the
/// idle thread's and the totals, indexed by
/// `septa_abi::benchmark_utilisation` (they come in the IPC buffer's
/// message words). `None` outside the benchmark configuration; if `tcb`
/// is not a TCB cap the kernel writes nothing, and what the buffer held is
/// returned.
pub fn benchmark_get_thread_utilisation(
    tcb: Cap<cap_type::Tcb>,
) -> Option<[u64; septa_abi::benchmark_utilisation::WORDS]> {
    CONFIG.track_utilisation().then(|| {
        arch::benchmark(nr::BENCHMARK_GET_THREAD_UTILISATION, tcb.bits(), 0);
        core::array::from_fn(ipc_buffer::get_mr)
    })
}

/// BenchmarkResetThreadUtilisation: zero the counters of the thread of
/// `tcb`. False outside the benchmark configuration.
pub fn benchmark_reset_thread_utilisation(tcb: Cap<cap_type::Tcb>) -> bool {
    CONFIG
        .track_utilisation()
        .then(|| arch::benchmark(nr::BENCHMARK_RESET_THREAD_UTILISATION, tcb.bits(), 0))
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{self, HostKernel, Regs};
    use std::boxed::Box;
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::vec::Vec;

    /// Records every syscall's registers and answers with fixed outputs.
    struct Recorder {
        seen: Rc<RefCell<Vec<Regs>>>,
        answer: [u64; 6],
    }

    impl HostKernel for Recorder {
        fn syscall(&mut self, regs: &mut Regs) {
            self.seen.borrow_mut().push(*regs);
            regs.x[..6].copy_from_slice(&self.answer);
        }
    }

    fn recorder(answer: [u64; 6]) -> Rc<RefCell<Vec<Regs>>> {
        let seen = Rc::new(RefCell::new(Vec::new()));
        host::set_kernel(Box::new(Recorder {
            seen: seen.clone(),
            answer,
        }));
        host::install_ipc_buffer();
        seen
    }

    fn reply() -> Cap<cap_type::Reply> {
        Cap::from_bits(4)
    }

    #[test]
    fn call_loads_mrs_from_the_buffer_and_stores_the_reply_back() {
        let seen = recorder([0, MessageInfo::new(5, 0, 0, 2).0, 70, 71, 72, 73]);
        ipc_buffer::set_mr(0, 10);
        ipc_buffer::set_mr(1, 11);
        ipc_buffer::set_mr(2, 99); // beyond the length: not loaded
        let info = call(CPtr::from_bits(0x4a), MessageInfo::new(1, 0, 0, 2));
        let r = seen.borrow()[0];
        assert_eq!(r.syscall(), -1);
        assert_eq!(r.x[0], 0x4a);
        assert_eq!(MessageInfo(r.x[1]).length(), 2);
        assert_eq!(&r.x[2..6], &[10, 11, 0, 0]);
        assert_eq!(info.label(), 5);
        assert_eq!((ipc_buffer::get_mr(0), ipc_buffer::get_mr(3)), (70, 73));
    }

    #[test]
    fn reply_recv_puts_the_reply_object_in_x6() {
        let seen = recorder([0xb, 0, 0, 0, 0, 0]);
        let (_, badge, _) = reply_recv_with_mrs(
            CPtr::from_bits(1),
            MessageInfo::new(0, 0, 0, 1),
            [5, 0, 0, 0],
            reply(),
        );
        let r = seen.borrow()[0];
        assert_eq!((r.syscall(), r.x[0], r.x[2], r.x[6]), (-2, 1, 5, 4));
        assert_eq!(badge, 0xb);
    }

    #[test]
    fn nb_send_recv_sends_to_x8_and_nb_send_wait_to_x6() {
        let seen = recorder([0; 6]);
        nb_send_recv(
            CPtr::from_bits(10),
            MessageInfo::default(),
            CPtr::from_bits(1),
            reply(),
        );
        nb_send_wait(
            CPtr::from_bits(11),
            MessageInfo::default(),
            CPtr::from_bits(1),
        );
        let s = seen.borrow();
        assert_eq!(
            (s[0].syscall(), s[0].x[0], s[0].x[6], s[0].x[8]),
            (-3, 1, 4, 10)
        );
        assert_eq!(
            (s[1].syscall(), s[1].x[0], s[1].x[6], s[1].x[8]),
            (-4, 1, 11, 0)
        );
    }

    #[test]
    fn receives_use_their_numbers_and_return_the_badge() {
        let seen = recorder([1 << 63 | 3, MessageInfo::new(9, 0, 0, 0).0, 0, 0, 0, 0]);
        let (info, badge) = recv(CPtr::from_bits(1), reply());
        assert_eq!((info.label(), badge), (9, 1 << 63 | 3));
        nb_recv(CPtr::from_bits(1), reply());
        wait(CPtr::from_bits(12));
        poll(CPtr::from_bits(12));
        let s = seen.borrow();
        let got: Vec<(i64, u64, u64)> = s.iter().map(|r| (r.syscall(), r.x[0], r.x[6])).collect();
        assert_eq!(got, [(-7, 1, 4), (-8, 1, 4), (-9, 12, 0), (-10, 12, 0)]);
    }

    #[test]
    fn sends_signal_yield_and_debug_calls_use_their_numbers() {
        let seen = recorder([42, 0, 0, 0, 0, 0]);
        send(CPtr::from_bits(2), MessageInfo::default());
        nb_send_with_mrs(
            CPtr::from_bits(3),
            MessageInfo::new(0, 0, 0, 1),
            [8, 0, 0, 0],
        );
        signal(CPtr::from_bits(10));
        yield_now();
        debug_put_char(b'A');
        debug_dump_scheduler();
        debug_halt();
        let tag = debug_cap_identify(CPtr::from_bits(6));
        debug_snapshot();
        debug_name_thread(Cap::from_bits(6), "pd");
        let s = seen.borrow();
        let got: Vec<(i64, u64)> = s.iter().map(|r| (r.syscall(), r.x[0])).collect();
        let mut want = std::vec![(-5, 2), (-6, 3), (-5, 10), (-11, 0)];
        // The debug calls only where the configuration has them.
        if CONFIG.printing() {
            want.extend([(-12, 65), (-13, 0)]);
        }
        if CONFIG.debug_build() {
            want.extend([(-14, 0), (-15, 6), (-16, 0), (-17, 6)]);
            assert_eq!(tag, Some(42));
        } else {
            assert_eq!(tag, None);
        }
        assert_eq!(got, want);
        assert_eq!(s[1].x[2], 8);
        assert_eq!(s[2].x[1], 0, "a signal is an empty message");
    }

    #[test]
    fn benchmark_calls_only_in_the_benchmark_configuration() {
        let seen = recorder([0, 0, 0, 0, 0, 0]);
        let on = CONFIG.track_utilisation();
        assert_eq!(benchmark_reset_log(), on.then_some(0));
        assert_eq!(benchmark_null_syscall(), on);
        assert_eq!(benchmark_flush_caches(), on);
        assert_eq!(benchmark_flush_l1_caches(CacheType::Data), on);
        assert_eq!(benchmark_finalize_log(), on);
        ipc_buffer::set_mr(3, 77);
        let u = benchmark_get_thread_utilisation(Cap::from_bits(9));
        assert_eq!(u.map(|u| u[3]), on.then_some(77));
        assert_eq!(benchmark_reset_thread_utilisation(Cap::from_bits(9)), on);
        let s = seen.borrow();
        let got: Vec<(i64, u64, u64)> = s.iter().map(|r| (r.syscall(), r.x[0], r.x[1])).collect();
        let want = if on {
            std::vec![
                (-22, 0, 0),
                (-25, 0, 0),
                (-21, 0, 0),
                (-21, 1, 2),
                (-23, 0, 0),
                (-26, 9, 0),
                (-27, 9, 0)
            ]
        } else {
            std::vec![]
        };
        assert_eq!(got, want);
    }
}
