//! `PdCell`: mutable global state of the runtime.
//!
//! A protection domain has exactly one thread (one TCB, one IPC buffer, one
//! stack), and the runtime is not re-entered from interrupts (seL4 delivers
//! interrupts as notifications, through the event loop). So a global that
//! is only ever read or replaced whole (`Copy` values, no references handed
//! out) cannot be observed half-written. That is all `PdCell` offers: `get`
//! and `replace`, like `Cell`, usable in a `static`.
//!
//! [`PdRefCell`] holds state that is not `Copy` (the serial client's queue
//! handles) and lends it out for the length of a closure. Being lent is
//! recorded, so a second borrow while the first lasts (the print sink
//! reached again from inside itself, through a panic or a refused
//! notification's message) gets `None` instead of an aliasing reference.
//!
//! On the host, where tests run on several threads, both are a `Mutex`
//! instead, and need no `unsafe`.

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

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod imp_ref {
    use core::cell::{Cell, UnsafeCell};

    pub struct PdRefCell<T> {
        lent: Cell<bool>,
        value: UnsafeCell<T>,
    }

    // SAFETY: one thread per protection domain and no interrupt handlers in
    // user space (see the module comment), so the cell is never reached
    // from two threads; `with` keeps borrows of one thread exclusive.
    unsafe impl<T> Sync for PdRefCell<T> {}

    impl<T> PdRefCell<T> {
        pub const fn new(value: T) -> Self {
            PdRefCell {
                lent: Cell::new(false),
                value: UnsafeCell::new(value),
            }
        }

        /// Runs `f` on the value; `None` (and `f` not run) if the value is
        /// already lent to a caller further up this thread's stack.
        pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
            if self.lent.replace(true) {
                return None;
            }
            // SAFETY: `lent` was false, so no other reference to the value
            // exists (the only one is made here and dies before `lent` is
            // cleared), and only this thread runs.
            let r = f(unsafe { &mut *self.value.get() });
            self.lent.set(false);
            Some(r)
        }
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod imp_ref {
    use std::sync::{Mutex, TryLockError};

    pub struct PdRefCell<T>(Mutex<T>);

    impl<T> PdRefCell<T> {
        pub const fn new(value: T) -> Self {
            PdRefCell(Mutex::new(value))
        }

        pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
            match self.0.try_lock() {
                Ok(mut g) => Some(f(&mut g)),
                Err(TryLockError::Poisoned(e)) => Some(f(&mut e.into_inner())),
                Err(TryLockError::WouldBlock) => None,
            }
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
pub use imp_ref::PdRefCell;
