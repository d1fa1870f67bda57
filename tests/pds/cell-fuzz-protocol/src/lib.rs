//! # test-cell-fuzz-protocol
//!
//! The judge of `tests/systems/cell-fuzz` (a PD above the cells) takes two
//! calls, each with a 64-bit magic word in MR0 so that none of the
//! fuzzing cell's random calls passes for them by chance:
//!
//! | label | from | MR0 | then |
//! |---|---|---|---|
//! | [`FUZZ_DONE`] | the fuzzing cell | [`FUZZ_MAGIC`] | MR1 operations made, MR2 times started |
//! | [`VERDICT`] | the bystander | [`VERDICT_MAGIC`] | MR1 0 if its state is intact, else what broke; MR2 timer ticks seen |
//!
//! The judge notifies the bystander once the fuzzing is done, and prints
//! `done` after the bystander's verdict.
#![no_std]
#![forbid(unsafe_code)]

pub const FUZZ_DONE: u64 = 0xf022_d04e;
pub const VERDICT: u64 = 0x7e4d_1c70;
pub const FUZZ_MAGIC: u64 = 0x5e97_a0f2_2c0d_e11a;
pub const VERDICT_MAGIC: u64 = 0x1b57_a4de_4c0d_e11b;
/// Reply labels.
pub const OK: u64 = 0;
pub const REFUSED: u64 = 1;

/// What the bystander found (MR1 of its verdict).
pub const INTACT: u64 = 0;
pub const HEAP_CHANGED: u64 = 1;
pub const TICKS_LATE: u64 = 2;
