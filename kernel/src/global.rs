//! Kernel globals, one per owning module.
//!
//! The kernel runs on one core with interrupts masked, so a global needs no
//! lock, only protection against a nested borrow (a kernel bug, caught by
//! `RefCell`). On the host each test thread gets its own copy, as it gets
//! its own memory window, so tests run in parallel without sharing state.
//!
//! Declare with `kernel_global!(pub static NAME: Type = init;)` and use with
//! `NAME.with(|g| g.borrow_mut().field = ...)` on either side.
//!
//! Globals on the hot paths are instead made of `Cell`s and declared with
//! `kernel_cells!(pub static NAME: Type = init;)`: `NAME.with(|g|
//! g.field.set(...))` hands out a shared reference, so there is no borrow
//! to track and nothing to go wrong when one function using the global
//! calls another (a `Cell` never gives out a reference into itself).

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub struct Global<T>(core::cell::RefCell<T>);

// SAFETY: one core, and the kernel never runs with interrupts enabled, so a
// global is only ever reached from one flow of control at a time.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
unsafe impl<T> Sync for Global<T> {}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(core::cell::RefCell::new(v))
    }
    pub fn with<R>(&'static self, f: impl FnOnce(&core::cell::RefCell<T>) -> R) -> R {
        f(&self.0)
    }
}

/// A global of `Cell`s (see the module header).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub struct Cells<T>(T);

// SAFETY: as for `Global`: one core, interrupts masked in the kernel, so
// the cells are only ever reached from one flow of control at a time.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
unsafe impl<T> Sync for Cells<T> {}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
impl<T> Cells<T> {
    pub const fn new(v: T) -> Self {
        Cells(v)
    }
    #[inline(always)]
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0)
    }
}

#[macro_export]
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
macro_rules! kernel_cells {
    ($(#[$m:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;) => {
        $(#[$m])* $vis static $name: $crate::global::Cells<$ty> = $crate::global::Cells::new($init);
    };
}

#[macro_export]
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
macro_rules! kernel_cells {
    ($(#[$m:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;) => {
        std::thread_local! { $(#[$m])* $vis static $name: $ty = const { $init }; }
    };
}

#[macro_export]
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
macro_rules! kernel_global {
    ($(#[$m:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;) => {
        $(#[$m])* $vis static $name: $crate::global::Global<$ty> = $crate::global::Global::new($init);
    };
}

#[macro_export]
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
macro_rules! kernel_global {
    ($(#[$m:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;) => {
        std::thread_local! { $(#[$m])* $vis static $name: core::cell::RefCell<$ty> = const { core::cell::RefCell::new($init) }; }
    };
}

#[cfg(test)]
mod tests {
    crate::kernel_global!(
        static COUNTER: u64 = 5;
    );

    crate::kernel_cells!(
        static CELLS: core::cell::Cell<u64> = core::cell::Cell::new(5);
    );

    #[test]
    fn a_global_of_cells_is_read_and_written_through_with() {
        CELLS.with(|c| c.set(c.get() + 1));
        // Nested uses are fine: nothing is borrowed.
        CELLS.with(|a| CELLS.with(|b| b.set(a.get() + 1)));
        assert_eq!(CELLS.with(|c| c.get()), 7);
    }

    #[test]
    fn a_global_is_read_and_written_through_with() {
        COUNTER.with(|c| *c.borrow_mut() += 1);
        assert_eq!(COUNTER.with(|c| *c.borrow()), 6);
    }
}
