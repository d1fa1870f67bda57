//! (in progress)
use crate::Case;
use septa_abi::Label;
pub const LABELS: &[Label] = &[];
pub const CASES: &[Case] = &[];
