//! The VMM PD's entry: the library's VMM with no test hooks.
#![cfg_attr(target_os = "none", no_std, no_main)]

septa_runtime::protection_domain!(|| vmm::pd::init(vmm::NoHooks));
