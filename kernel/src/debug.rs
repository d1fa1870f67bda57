//! # Debug system calls that read capabilities
//!
//! `seL4_DebugCapIdentify` (syscall -15) takes a capability address in x0
//! and returns in x0 the type number of the cap found there
//! ([`crate::cap::CapType`]: seL4's `capType` numbering, 0 for an empty
//! slot). A failed lookup is not an error: it reports 0, the null cap.

use crate::cap::Cap;
use crate::cspace::lookup_cap;

/// The cap type number seL4 reports for a cap.
pub fn cap_identify(cap: &Cap) -> u64 {
    cap.type_number()
}

/// `DebugCapIdentify` for a thread whose CSpace root cap is `cspace_root`.
pub fn debug_cap_identify(cspace_root: &Cap, cptr: u64) -> u64 {
    lookup_cap(cspace_root, cptr).map_or(0, |c| cap_identify(&c))
}
