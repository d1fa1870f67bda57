//! Hardware-dependent code. One architecture today.
pub(crate) mod aarch64;
