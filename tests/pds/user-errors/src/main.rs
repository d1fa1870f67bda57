//! # test-user-errors: a refused invocation, reported
//!
//! The PD asks its own VSpace (Microkit's VSpace slot) to clean an empty
//! range. The kernel refuses with an invalid-argument error, which the PD
//! checks; a kernel with printing (the debug configuration) also says why
//! on its console, seL4's user error (`<<seL4(CPU 0)
//! [decodeARMVSpaceRootInvocation/...]: ...>>`), which the system's
//! `expect` file checks. Owns nothing.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::septa_sel4::abi::microkit::{slot, IMAGE_BASE};
use septa_runtime::septa_sel4::{cap_type, Cap, Error};
use septa_runtime::{println, protection_domain, NullHandler};
use septa_test_report as report;

const OWN_VSPACE: Cap<cap_type::VSpace> = Cap::from_bits(slot::VSPACE);

fn init() -> NullHandler {
    // seL4 checks start < end first (`decodeARMVSpaceRootInvocation`).
    match OWN_VSPACE.clean_data(IMAGE_BASE, IMAGE_BASE) {
        Err(Error::InvalidArgument { index: 1 }) => println!("{}", report::ok("refused")),
        other => println!(
            "{}",
            report::fail("refused", &format_args!("an empty clean gave {other:?}"))
        ),
    }
    println!("{}", report::DONE);
    NullHandler
}

protection_domain!(init);
