//! The IPC buffer of the current thread.
//!
//! seL4 reads message registers 4 and up, extra capabilities and the receive
//! path from a per-thread page-resident structure, the IPC buffer, whose
//! address the kernel learned from `TCB_Configure`/`TCB_SetIPCBuffer`. User
//! code must know the same address. libsel4 keeps it in a thread-local
//! `__sel4_ipc_buffer`; a protection domain has exactly one thread, so here it
//! is a global written once at start ([`set_ipc_buffer`]) by the runtime (or a
//! root task) before the first system call that needs it. On the host the
//! pointer is per thread, so parallel tests do not share a buffer.
//!
//! Access is through small functions that read or write one word through a
//! raw pointer. No reference to the buffer is ever handed out: the kernel
//! writes it during system calls, and a live `&mut` across one would be a
//! lie.

use septa_abi::ipc_buffer as layout;

use crate::cap::{cap_type, CPtr, Cap};

/// `seL4_IPCBuffer`, 1 KiB, 1 KiB aligned.
#[repr(C, align(1024))]
#[derive(Clone, Copy, Debug)]
pub struct IpcBuffer {
    pub tag: u64,
    pub msg: [u64; layout::MSG_MAX_LENGTH],
    pub user_data: u64,
    pub caps_or_badges: [u64; layout::MSG_MAX_EXTRA_CAPS],
    pub receive_cnode: u64,
    pub receive_index: u64,
    pub receive_depth: u64,
}

const _: () = assert!(core::mem::size_of::<IpcBuffer>() == layout::SIZE);
const _: () = assert!(core::mem::offset_of!(IpcBuffer, tag) == layout::TAG_OFFSET);
const _: () = assert!(core::mem::offset_of!(IpcBuffer, msg) == layout::MSG_OFFSET);
const _: () = assert!(core::mem::offset_of!(IpcBuffer, user_data) == layout::USER_DATA_OFFSET);
const _: () =
    assert!(core::mem::offset_of!(IpcBuffer, caps_or_badges) == layout::CAPS_OR_BADGES_OFFSET);
const _: () =
    assert!(core::mem::offset_of!(IpcBuffer, receive_cnode) == layout::RECEIVE_CNODE_OFFSET);
const _: () =
    assert!(core::mem::offset_of!(IpcBuffer, receive_index) == layout::RECEIVE_INDEX_OFFSET);
const _: () =
    assert!(core::mem::offset_of!(IpcBuffer, receive_depth) == layout::RECEIVE_DEPTH_OFFSET);

impl IpcBuffer {
    /// An all-zero buffer (for tests and static storage).
    pub const fn zeroed() -> Self {
        IpcBuffer {
            tag: 0,
            msg: [0; layout::MSG_MAX_LENGTH],
            user_data: 0,
            caps_or_badges: [0; layout::MSG_MAX_EXTRA_CAPS],
            receive_cnode: 0,
            receive_index: 0,
            receive_depth: 0,
        }
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod slot {
    use super::IpcBuffer;
    use core::sync::atomic::{AtomicPtr, Ordering};

    // One thread per address space: Relaxed is enough, the atomic only
    // spares us a `static mut`.
    static IPC_BUFFER: AtomicPtr<IpcBuffer> = AtomicPtr::new(core::ptr::null_mut());

    #[inline]
    pub(super) fn get() -> *mut IpcBuffer {
        IPC_BUFFER.load(Ordering::Relaxed)
    }
    pub(super) fn set(p: *mut IpcBuffer) {
        IPC_BUFFER.store(p, Ordering::Relaxed)
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod slot {
    use super::IpcBuffer;
    use core::cell::Cell;

    std::thread_local! {
        static IPC_BUFFER: Cell<*mut IpcBuffer> = const { Cell::new(core::ptr::null_mut()) };
    }

    #[inline]
    pub(super) fn get() -> *mut IpcBuffer {
        IPC_BUFFER.with(|c| c.get())
    }
    pub(super) fn set(p: *mut IpcBuffer) {
        IPC_BUFFER.with(|c| c.set(p))
    }
}

/// Records where the current thread's IPC buffer is mapped.
///
/// # Safety
/// `buffer` must point to this thread's IPC buffer (the frame and address
/// given to the kernel), mapped read-write for the rest of the program, and
/// no Rust reference to it may be used while the functions of this module
/// or a system call run.
pub unsafe fn set_ipc_buffer(buffer: *mut IpcBuffer) {
    slot::set(buffer)
}

/// The recorded IPC buffer address, if one was set.
#[inline]
pub fn ipc_buffer_ptr() -> Option<*mut IpcBuffer> {
    let p = slot::get();
    (!p.is_null()).then_some(p)
}

#[inline]
fn buffer() -> *mut IpcBuffer {
    ipc_buffer_ptr().expect("septa-sel4: IPC buffer used before set_ipc_buffer")
}

// Every accessor below does the same thing: bounds-check an index, then read
// or write one word of the buffer through the raw pointer. The SAFETY
// argument is the contract of `set_ipc_buffer` (valid, mapped, exclusive to
// this thread, no live references) plus the bounds check.

/// The registered IPC buffer, looked up (and checked) once: a loop that
/// makes a system call every round keeps it in a register instead of
/// reading and checking the global before every call (the event loop).
/// It stays the buffer that was registered when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registered(*mut IpcBuffer);

impl Registered {
    /// The buffer registered now, if one was.
    #[inline]
    pub fn current() -> Option<Self> {
        ipc_buffer_ptr().map(Registered)
    }

    /// The buffer at `buffer`, without looking at what was registered.
    ///
    /// # Safety
    /// `buffer` must be non-null and satisfy [`set_ipc_buffer`]'s contract
    /// (this thread's IPC buffer, mapped read-write for the rest of the
    /// program, no references to it), and be registered with
    /// [`set_ipc_buffer`] before any system call made through the handle
    /// reads a message register that is not passed in a machine register.
    /// A runtime that maps the buffer at a fixed address before its first
    /// instruction and registers that address first thing can make the
    /// handle a constant.
    #[inline]
    pub const unsafe fn from_raw(buffer: *mut IpcBuffer) -> Self {
        Registered(buffer)
    }

    /// The buffer registered now; panics if none was.
    #[inline]
    pub(crate) fn expect_current() -> Self {
        Registered(buffer())
    }

    /// MR0..MR3 as stored in the buffer (what the system-call stubs load
    /// before a call) for a message of `n` words: the first `n` (at most
    /// four), zeros after them; the buffer is untouched if `n` is 0.
    ///
    /// Word by word, so that the compiler keeps it in general registers: a
    /// PD's first SIMD instruction after a switch traps to the kernel,
    /// which switches the FPU lazily (about 190 instructions).
    #[inline]
    pub(crate) fn first_mrs(self, n: usize) -> [u64; layout::FAST_MESSAGE_REGISTERS] {
        if n == 0 {
            return [0; layout::FAST_MESSAGE_REGISTERS];
        }
        // SAFETY: a `Registered` holds a non-null address given to
        // `set_ipc_buffer`, whose caller promised it is this thread's IPC
        // buffer, mapped for the rest of the program with no references to
        // it; words 0..4 lie inside `msg`.
        unsafe {
            let m = (&raw const (*self.0).msg).cast::<u64>();
            match n {
                1 => [m.read(), 0, 0, 0],
                2 => [m.read(), m.add(1).read(), 0, 0],
                3 => [m.read(), m.add(1).read(), m.add(2).read(), 0],
                _ => [m.read(), m.add(1).read(), m.add(2).read(), m.add(3).read()],
            }
        }
    }

    /// Stores MR0..MR3 into the buffer (what the system-call stubs do after
    /// a receive), word by word as in [`first_mrs`](Self::first_mrs).
    #[inline]
    pub(crate) fn set_first_mrs(self, mrs: &[u64; layout::FAST_MESSAGE_REGISTERS]) {
        // SAFETY: as in `first_mrs`; nothing else refers to the four words
        // during the writes (one thread).
        unsafe {
            let m = (&raw mut (*self.0).msg).cast::<u64>();
            m.write(mrs[0]);
            m.add(1).write(mrs[1]);
            m.add(2).write(mrs[2]);
            m.add(3).write(mrs[3]);
        }
    }
}

/// Message register `i` (0..120) as stored in the buffer. After a system
/// call the stubs of [`crate::syscall`] have already copied MR0..MR3 from
/// the registers into the buffer, as libsel4's `seL4_GetMR` expects.
pub fn get_mr(i: usize) -> u64 {
    assert!(
        i < layout::MSG_MAX_LENGTH,
        "message register {i} out of range"
    );
    let p = buffer();
    // SAFETY: see the block comment above; `i` is in bounds.
    unsafe { (&raw const (*p).msg).cast::<u64>().add(i).read() }
}

/// Sets message register `i` (0..120) in the buffer.
pub fn set_mr(i: usize, value: u64) {
    assert!(
        i < layout::MSG_MAX_LENGTH,
        "message register {i} out of range"
    );
    let p = buffer();
    // SAFETY: see the block comment above; `i` is in bounds.
    unsafe { (&raw mut (*p).msg).cast::<u64>().add(i).write(value) }
}

/// The `i`th (0..3) received capability badge, or the unwrapped-cap word.
pub fn get_cap_or_badge(i: usize) -> u64 {
    assert!(i < layout::MSG_MAX_EXTRA_CAPS, "extra cap {i} out of range");
    let p = buffer();
    // SAFETY: see the block comment above; `i` is in bounds.
    unsafe { (&raw const (*p).caps_or_badges).cast::<u64>().add(i).read() }
}

/// Names the `i`th (0..3) extra capability to send.
pub fn set_cap(i: usize, cap: CPtr) {
    assert!(i < layout::MSG_MAX_EXTRA_CAPS, "extra cap {i} out of range");
    let p = buffer();
    // SAFETY: see the block comment above; `i` is in bounds.
    unsafe {
        (&raw mut (*p).caps_or_badges)
            .cast::<u64>()
            .add(i)
            .write(cap.bits())
    }
}

/// Where a received capability is to be stored: slot `index` at `depth`
/// bits in the CSpace rooted at `root`.
pub fn set_receive_path(root: Cap<cap_type::CNode>, index: CPtr, depth: u8) {
    let p = buffer();
    // SAFETY: see the block comment above; three in-bounds field writes.
    unsafe {
        (&raw mut (*p).receive_cnode).write(root.bits());
        (&raw mut (*p).receive_index).write(index.bits());
        (&raw mut (*p).receive_depth).write(u64::from(depth));
    }
}

/// The receive path as `(root, index, depth)` words.
pub fn get_receive_path() -> (u64, u64, u64) {
    let p = buffer();
    // SAFETY: see the block comment above; three in-bounds field reads.
    unsafe {
        (
            (&raw const (*p).receive_cnode).read(),
            (&raw const (*p).receive_index).read(),
            (&raw const (*p).receive_depth).read(),
        )
    }
}

/// The user data word (unused by the kernel; free for the thread).
pub fn get_user_data() -> u64 {
    let p = buffer();
    // SAFETY: see the block comment above.
    unsafe { (&raw const (*p).user_data).read() }
}

/// Sets the user data word.
pub fn set_user_data(value: u64) {
    let p = buffer();
    // SAFETY: see the block comment above.
    unsafe { (&raw mut (*p).user_data).write(value) }
}

/// Copies `bytes` into the message area as a NUL-terminated string (what
/// `DebugNameThread` reads), truncating to fit.
pub(crate) fn set_msg_string(bytes: &[u8]) {
    let cap = layout::MSG_MAX_LENGTH * 8 - 1;
    let n = bytes.len().min(cap);
    let p = buffer();
    // SAFETY: see the block comment above; `n + 1 <= 960` bytes are written
    // inside `msg`, which is 960 bytes long.
    unsafe {
        let dst = (&raw mut (*p).msg).cast::<u8>();
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, n);
        dst.add(n).write(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_reach_the_fields_at_their_abi_offsets() {
        crate::host::install_ipc_buffer();
        set_mr(0, 11);
        set_mr(119, 22);
        set_cap(2, CPtr::from_bits(0x33));
        set_receive_path(Cap::from_bits(4), CPtr::from_bits(0x55), 17);
        set_user_data(66);
        let raw = ipc_buffer_ptr().unwrap().cast::<u64>();
        let word = |off: usize| {
            // SAFETY: the installed test buffer is 1024 bytes and `off` is a
            // word offset inside it.
            unsafe { raw.add(off / 8).read() }
        };
        assert_eq!(word(layout::MSG_OFFSET), 11);
        assert_eq!(word(layout::MSG_OFFSET + 119 * 8), 22);
        assert_eq!(word(layout::CAPS_OR_BADGES_OFFSET + 16), 0x33);
        assert_eq!(word(layout::RECEIVE_CNODE_OFFSET), 4);
        assert_eq!(word(layout::RECEIVE_INDEX_OFFSET), 0x55);
        assert_eq!(word(layout::RECEIVE_DEPTH_OFFSET), 17);
        assert_eq!(word(layout::USER_DATA_OFFSET), 66);
        assert_eq!(
            (get_mr(0), get_mr(119), get_cap_or_badge(2)),
            (11, 22, 0x33)
        );
        assert_eq!(get_receive_path(), (4, 0x55, 17));
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn message_register_past_the_end_is_refused() {
        crate::host::install_ipc_buffer();
        set_mr(layout::MSG_MAX_LENGTH, 1);
    }

    #[test]
    fn thread_names_are_nul_terminated_and_truncated() {
        crate::host::install_ipc_buffer();
        set_msg_string(b"serial");
        let raw = ipc_buffer_ptr().unwrap().cast::<u8>();
        // SAFETY: reading 7 bytes of the 1024-byte test buffer.
        let got = unsafe { core::slice::from_raw_parts(raw.add(layout::MSG_OFFSET), 7) };
        assert_eq!(got, b"serial\0");
        let long = [b'x'; 2000];
        set_msg_string(&long);
        // SAFETY: the last byte of the message area.
        let last = unsafe { raw.add(layout::MSG_OFFSET + 959).read() };
        assert_eq!(last, 0);
    }
}
