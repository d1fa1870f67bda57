//! `PdCell`: mutable global state of the runtime.
//!
//! A protection domain has exactly one thread (one TCB, one IPC buffer, one
//! stack), and the runtime is not re-entered from interrupts (seL4 delivers
//! interrupts as notifications, through the event loop). So a global that
//! is only ever read or replaced whole (`Copy` values, no references handed
//! out) cannot be observed half-written. That is all `PdCell` offers: `get`
//! and `replace`, like `Cell`, usable in a `static`.
//!
//! On the host, where tests run on several threads, it is a `Mutex` instead,
//! and needs no `unsafe`.

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp {
    use core::cell::UnsafeCell;

    pub struct PdCell<T: Copy>(UnsafeCell<T>);

    // SAFETY: see the module comment: one thread per protection domain, no
    // interrupt handlers in user space, and only whole-value reads and
    // writes of `Copy` data, so no data race and no aliasing reference can
    // exist.
    unsafe impl<T: Copy> Sync for PdCell<T> {}

    impl<T: Copy> PdCell<T> {
        pub const fn new(value: T) -> Self {
            PdCell(UnsafeCell::new(value))
        }

        pub fn get(&self) -> T {
            // SAFETY: single thread, no reference to the contents is ever
            // created, so this read cannot overlap a write.
            unsafe { self.0.get().read() }
        }

        /// Replaces the value and returns the old one.
        pub fn replace(&self, value: T) -> T {
            // SAFETY: as in `get`; the read and the write are both whole
            // values and nothing can run between them on this thread.
            unsafe { self.0.get().replace(value) }
        }
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp {
    use std::sync::Mutex;

    pub struct PdCell<T: Copy>(Mutex<T>);

    impl<T: Copy> PdCell<T> {
        pub const fn new(value: T) -> Self {
            PdCell(Mutex::new(value))
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub fn get(&self) -> T {
            *self.lock()
        }

        pub fn replace(&self, value: T) -> T {
            core::mem::replace(&mut *self.lock(), value)
        }
    }
}

pub use imp::PdCell;
