//! Septa's kernel (placeholder while the skeleton lands).
#![cfg_attr(not(test), no_std)]
