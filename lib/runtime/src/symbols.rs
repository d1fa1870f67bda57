//! Variables the system tool writes into the PD image before boot.
//!
//! The tool (Septa's, or Microkit 2.3.0's) finds each one by its symbol name
//! in the ELF file and overwrites its bytes in the loadable segment. They
//! are exactly libmicrokit's, with the same names, sizes and meaning, so the
//! same tool patches a libmicrokit program and a Septa one:
//!
//! | symbol | type (size) | written by the tool as |
//! |---|---|---|
//! | `microkit_name` | `[u8; 64]` | the PD's name, NUL-padded (truncated to 64 bytes) |
//! | `microkit_passive` | `bool` (1; read as `u8`, non-zero = true) | 1 if the PD is passive |
//! | `microkit_irqs` | `u64` (8) | bit n set: channel n is an IRQ of this PD |
//! | `microkit_notifications` | `u64` (8) | bit n set: channel n may be notified |
//! | `microkit_pps` | `u64` (8) | bit n set: channel n may be PP-called |
//! | `microkit_ioports` | `u64` (8) | bit n set: I/O port n (x86 only; zero here) |
//! | each `setvar` symbol | `u64` (8) | a vaddr, paddr, size, id or number from the system file |
//! | each `NAME[INDEX]` setvar (Septa's) | `[u64; N]` ([`SetvarArray`]) | element INDEX, as above |
//! | each text setvar (Septa's) | `[[u8; 64]; N]` ([`SetvarTexts`]) | element INDEX, NUL-padded |
//!
//! All live in the section `.data.patched` (little-endian, initial value
//! zero), which the runtime's linker script keeps (`KEEP`) inside the
//! writable data segment, so they stay in the image even if nothing reads
//! them and they are file-backed (not `.bss`). The program never writes
//! them; it reads them with volatile loads, so the compiler cannot fold the
//! zero it sees at build time.

use core::cell::UnsafeCell;

use septa_abi::microkit::PD_NAME_LENGTH;

/// A value patched into the image by the system tool, read-only at run
/// time. Same size and layout as `T`.
#[repr(transparent)]
pub struct Patched<T: Copy>(UnsafeCell<T>);

// SAFETY: the program never writes a `Patched` (there is no method that
// does, except the host-only test setter, which the host's tests serialise);
// the tool wrote it before the program started, so concurrent reads are
// reads of immutable data.
unsafe impl<T: Copy> Sync for Patched<T> {}

impl<T: Copy> Patched<T> {
    /// The build-time placeholder; the tool replaces it.
    pub const fn new(placeholder: T) -> Self {
        Patched(UnsafeCell::new(placeholder))
    }

    /// The value the tool wrote.
    pub fn get(&self) -> T {
        // SAFETY: the pointer comes from a live static, is aligned and
        // valid; a volatile read keeps the compiler from assuming the
        // build-time placeholder. Nothing writes it concurrently (see the
        // `Sync` argument).
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }

    /// Host tests play the tool.
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    pub fn set_for_test(&self, value: T) {
        // SAFETY: host only; the tests that patch values hold a lock that
        // keeps every other test that reads them out.
        unsafe { core::ptr::write_volatile(self.0.get(), value) }
    }
}

impl<const N: usize> Patched<[u8; N]> {
    /// Byte `i` of a patched byte array (0 past its end), read alone: a
    /// large array is decoded without a copy of it on the stack.
    pub fn byte(&self, i: usize) -> u8 {
        if i >= N {
            return 0;
        }
        // SAFETY: `i < N`, so the byte lies inside the live static; a
        // volatile read keeps the build-time placeholder from being
        // assumed, and nothing writes the static at run time (see the
        // `Sync` argument).
        unsafe { core::ptr::read_volatile((self.0.get() as *const u8).add(i)) }
    }
}

/// A `setvar` variable: one 64-bit word patched by the tool (the tool
/// refuses a symbol whose size is not 8 bytes). Declare with [`setvar!`].
#[repr(transparent)]
pub struct Setvar(Patched<u64>);

impl Setvar {
    #[doc(hidden)]
    pub const fn new() -> Self {
        Setvar(Patched::new(0))
    }

    /// The value the tool wrote.
    pub fn get(&self) -> u64 {
        self.0.get()
    }

    /// The value as an address in this PD (for `vaddr` setvars).
    pub fn addr(&self) -> usize {
        self.get() as usize
    }

    /// The value as a pointer (for `vaddr` setvars of a mapped region).
    pub fn as_ptr<T>(&self) -> *mut T {
        self.addr() as *mut T
    }

    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    pub fn set_for_test(&self, value: u64) {
        self.0.set_for_test(value)
    }
}

impl<T: Copy, const N: usize> Patched<[T; N]> {
    /// Element `i` of a patched array, or `None` past its end (read alone,
    /// not the whole array).
    fn element(&self, i: usize) -> Option<T> {
        if i >= N {
            return None;
        }
        // SAFETY: `i < N`, so the element lies inside the live static
        // array, aligned for `T`; volatile for the reason `get` gives, and
        // nothing writes it concurrently (see the `Sync` argument).
        Some(unsafe { core::ptr::read_volatile(self.0.get().cast::<T>().add(i)) })
    }
}

/// An array of `setvar` words, each patched by the tool as `NAME[INDEX]`
/// (a `system.toml` addition: one symbol per client of a virtualiser, say).
/// Elements the description leaves alone read 0. Declare with
/// [`setvar_array!`].
#[repr(transparent)]
pub struct SetvarArray<const N: usize>(Patched<[u64; N]>);

impl<const N: usize> SetvarArray<N> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        SetvarArray(Patched::new([0; N]))
    }

    /// Element `i` (0 past the end).
    pub fn get(&self, i: usize) -> u64 {
        self.0.element(i).unwrap_or(0)
    }

    /// How many elements there are.
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        N == 0
    }

    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    pub fn set_for_test(&self, i: usize, value: u64) {
        let mut all = self.0.get();
        all[i] = value;
        self.0.set_for_test(all)
    }
}

/// Bytes of one patched text (the tool's `SetValue::TEXT_ELEMENT`).
pub const TEXT_LENGTH: usize = PD_NAME_LENGTH;

/// An array of texts the tool patches (`{ symbol = "NAME[INDEX]", text =
/// "..." }`), each NUL-padded in [`TEXT_LENGTH`] bytes; the PD's own name
/// (`microkit_name`) is one such text. Declare with [`setvar_text!`].
#[repr(transparent)]
pub struct SetvarTexts<const N: usize>(Patched<[[u8; TEXT_LENGTH]; N]>);

impl<const N: usize> SetvarTexts<N> {
    #[doc(hidden)]
    pub const fn new() -> Self {
        SetvarTexts(Patched::new([[0; TEXT_LENGTH]; N]))
    }

    /// Text `i` ("" past the end or where the description wrote none).
    pub fn get(&self, i: usize) -> Text {
        Text(self.0.element(i).unwrap_or([0; TEXT_LENGTH]))
    }

    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    pub fn set_for_test(&self, i: usize, text: &str) {
        let mut all = self.0.get();
        all[i] = [0; TEXT_LENGTH];
        all[i][..text.len()].copy_from_slice(text.as_bytes());
        self.0.set_for_test(all)
    }
}

/// Declares arrays of `setvar` words ([`SetvarArray`]), patched element by
/// element (`NAME[INDEX]` in the system description).
///
/// ```
/// septa_runtime::setvar_array! {
///     /// Where each client's queues are mapped.
///     static CLIENT_QUEUES: [16] = "client_queues";
/// }
/// let first = CLIENT_QUEUES.get(0);
/// # let _ = first;
/// ```
#[macro_export]
macro_rules! setvar_array {
    ($($(#[$meta:meta])* $vis:vis static $name:ident: [$n:expr] = $symbol:literal;)+) => {$(
        $(#[$meta])*
        #[export_name = $symbol]
        #[used]
        #[cfg_attr(all(target_arch = "aarch64", target_os = "none"), link_section = ".data.patched")]
        $vis static $name: $crate::SetvarArray<{ $n }> = $crate::SetvarArray::new();
    )+};
}

/// Declares arrays of patched texts ([`SetvarTexts`]).
///
/// ```
/// septa_runtime::setvar_text! {
///     /// Each client's name.
///     static CLIENT_NAMES: [16] = "client_names";
/// }
/// println!("{}", CLIENT_NAMES.get(2));
/// ```
#[macro_export]
macro_rules! setvar_text {
    ($($(#[$meta:meta])* $vis:vis static $name:ident: [$n:expr] = $symbol:literal;)+) => {$(
        $(#[$meta])*
        #[export_name = $symbol]
        #[used]
        #[cfg_attr(all(target_arch = "aarch64", target_os = "none"), link_section = ".data.patched")]
        $vis static $name: $crate::SetvarTexts<{ $n }> = $crate::SetvarTexts::new();
    )+};
}

/// Declares `setvar` variables: statics the system tool patches by symbol
/// name (the `symbol` of a `setvar` in the system description).
///
/// ```
/// septa_runtime::setvar! {
///     /// Where the receive ring is mapped.
///     pub static RX_RING = "rx_ring_vaddr";
///     static RX_RING_SIZE = "rx_ring_size";
/// }
/// let ring: *mut u8 = RX_RING.as_ptr();
/// # let _ = (ring, RX_RING_SIZE.get());
/// ```
///
/// Each becomes a `#[no_mangle]`-style 8-byte static named by the string,
/// in section `.data.patched`, marked `#[used]` so the compiler keeps it
/// even if unread.
#[macro_export]
macro_rules! setvar {
    ($($(#[$meta:meta])* $vis:vis static $name:ident = $symbol:literal;)+) => {$(
        $(#[$meta])*
        #[export_name = $symbol]
        #[used]
        #[cfg_attr(all(target_arch = "aarch64", target_os = "none"), link_section = ".data.patched")]
        $vis static $name: $crate::Setvar = $crate::Setvar::new();
    )+};
}

/// Declares statics the system tool patches with bytes of their exact
/// size, by symbol name: configuration a subsystem's expansion computes
/// (a serial virtualiser's labels, say), as sDDF's tools write config
/// structures into its PDs' images.
///
/// ```
/// septa_runtime::patched! {
///     /// Labels, all zero unless the tool wrote them.
///     static LABELS: [u8; 16] = "my_labels", [0; 16];
/// }
/// let labels: [u8; 16] = LABELS.get();
/// # let _ = labels;
/// ```
#[macro_export]
macro_rules! patched {
    ($($(#[$meta:meta])* $vis:vis static $name:ident: $ty:ty = $symbol:literal, $init:expr;)+) => {$(
        $(#[$meta])*
        #[export_name = $symbol]
        #[used]
        #[cfg_attr(all(target_arch = "aarch64", target_os = "none"), link_section = ".data.patched")]
        $vis static $name: $crate::symbols::Patched<$ty> = $crate::symbols::Patched::new($init);
    )+};
}

/// The PD's name, NUL-padded.
#[no_mangle]
#[used]
#[cfg_attr(
    all(target_arch = "aarch64", target_os = "none"),
    link_section = ".data.patched"
)]
#[allow(non_upper_case_globals)]
pub static microkit_name: Patched<[u8; PD_NAME_LENGTH]> = Patched::new([0; PD_NAME_LENGTH]);

/// Whether the PD is passive (gives up its scheduling context after init).
#[no_mangle]
#[used]
#[cfg_attr(
    all(target_arch = "aarch64", target_os = "none"),
    link_section = ".data.patched"
)]
#[allow(non_upper_case_globals)]
pub static microkit_passive: Patched<u8> = Patched::new(0);

/// Channels that are IRQs of this PD.
#[no_mangle]
#[used]
#[cfg_attr(
    all(target_arch = "aarch64", target_os = "none"),
    link_section = ".data.patched"
)]
#[allow(non_upper_case_globals)]
pub static microkit_irqs: Patched<u64> = Patched::new(0);

/// Channels this PD may notify.
#[no_mangle]
#[used]
#[cfg_attr(
    all(target_arch = "aarch64", target_os = "none"),
    link_section = ".data.patched"
)]
#[allow(non_upper_case_globals)]
pub static microkit_notifications: Patched<u64> = Patched::new(0);

/// Channels this PD may call (protected procedure calls).
#[no_mangle]
#[used]
#[cfg_attr(
    all(target_arch = "aarch64", target_os = "none"),
    link_section = ".data.patched"
)]
#[allow(non_upper_case_globals)]
pub static microkit_pps: Patched<u64> = Patched::new(0);

/// I/O ports of this PD (x86 only; always zero on aarch64, kept so the
/// tool finds every symbol it writes).
#[no_mangle]
#[used]
#[cfg_attr(
    all(target_arch = "aarch64", target_os = "none"),
    link_section = ".data.patched"
)]
#[allow(non_upper_case_globals)]
pub static microkit_ioports: Patched<u64> = Patched::new(0);

/// The PD's name as the tool wrote it ("?" if not valid UTF-8, "" before
/// the tool ran).
pub fn pd_name() -> PdName {
    Text(microkit_name.get())
}

/// The PD's name: a patched [`Text`].
pub type PdName = Text;

/// A patched text (a PD name, a client's name), held by value: the
/// patched bytes are read once.
#[derive(Clone, Copy)]
pub struct Text([u8; PD_NAME_LENGTH]);

impl Text {
    pub fn as_str(&self) -> &str {
        let len = self
            .0
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(PD_NAME_LENGTH);
        core::str::from_utf8(&self.0[..len]).unwrap_or("?")
    }
}

impl core::fmt::Display for Text {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for Text {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Whether the tool marked this PD passive.
pub fn is_passive() -> bool {
    microkit_passive.get() != 0
}

/// Reads every patched symbol once, so that a linker that drops unused
/// sections still sees them referenced (the linker script's `KEEP` is the
/// first line of defence; this is the second).
pub(crate) fn touch_all() -> u64 {
    microkit_irqs.get()
        ^ microkit_notifications.get()
        ^ microkit_pps.get()
        ^ microkit_ioports.get()
        ^ u64::from(microkit_passive.get())
        ^ u64::from(microkit_name.get()[0])
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::{Mutex, MutexGuard};

    static LOCK: Mutex<()> = Mutex::new(());

    /// Serialises the tests that patch the global symbols.
    pub fn lock() -> MutexGuard<'static, ()> {
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Plays the tool: patches name and masks.
    pub fn patch(name: &str, irqs: u64, notifications: u64, pps: u64) {
        let mut n = [0u8; super::PD_NAME_LENGTH];
        n[..name.len()].copy_from_slice(name.as_bytes());
        super::microkit_name.set_for_test(n);
        super::microkit_irqs.set_for_test(irqs);
        super::microkit_notifications.set_for_test(notifications);
        super::microkit_pps.set_for_test(pps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_have_the_sizes_the_tool_writes() {
        assert_eq!(core::mem::size_of_val(&microkit_name), 64);
        assert_eq!(core::mem::size_of_val(&microkit_passive), 1);
        assert_eq!(core::mem::size_of_val(&microkit_irqs), 8);
        assert_eq!(core::mem::size_of_val(&microkit_notifications), 8);
        assert_eq!(core::mem::size_of_val(&microkit_pps), 8);
        assert_eq!(core::mem::size_of_val(&microkit_ioports), 8);
        assert_eq!(core::mem::size_of::<Setvar>(), 8);
    }

    #[test]
    fn the_name_stops_at_the_first_nul() {
        let _g = test_support::lock();
        test_support::patch("serial", 0, 0, 0);
        assert_eq!(pd_name().as_str(), "serial");
        let full = [b'a'; PD_NAME_LENGTH];
        microkit_name.set_for_test(full);
        assert_eq!(pd_name().as_str().len(), PD_NAME_LENGTH);
    }

    crate::setvar! {
        static TEST_VAR = "septa_runtime_test_var";
    }

    #[test]
    fn setvars_read_what_the_tool_wrote() {
        assert_eq!(TEST_VAR.get(), 0);
        TEST_VAR.set_for_test(0x3000_0000);
        assert_eq!(TEST_VAR.addr(), 0x3000_0000);
        assert_eq!(TEST_VAR.as_ptr::<u32>() as usize, 0x3000_0000);
    }
}
