//! Hardware-dependent code. One architecture today.
pub mod aarch64;
