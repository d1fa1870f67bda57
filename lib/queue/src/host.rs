//! Backing memory for host tests (of this crate and of the PDs built on it),
//! standing in for a region the system description maps.
#![allow(unsafe_code)]

extern crate std;

use crate::Shared;
use std::boxed::Box;
use std::vec;

/// `bytes` zeroed bytes (rounded up to a multiple of 8), 8-byte aligned, as
/// a window that lives for ever, as a PD's mapped regions do. The memory is
/// leaked on purpose: `Shared` carries no lifetime, so only memory that is
/// never freed can back it soundly.
pub fn leak(bytes: usize) -> Shared {
    let words: &'static mut [u64] = Box::leak(vec![0u64; bytes.div_ceil(8)].into_boxed_slice());
    // SAFETY: the leaked slice is never freed, is aligned and writable, and
    // nothing else refers to it: every access goes through `Shared`.
    unsafe { Shared::new(words.as_mut_ptr() as *mut u8, words.len() * 8).unwrap() }
}
