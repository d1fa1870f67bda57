//! # test-hello: the smallest test PD
//!
//! Prints a greeting with its name (patched in by the tool), then the
//! harness's result lines. Owns nothing; touches no capability.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::{println, protection_domain, NullHandler};
use septa_test_report as report;

fn init() -> NullHandler {
    let name = septa_runtime::pd_name();
    println!("hello from PD {name}");
    if name.as_str() == "hello" {
        println!("{}", report::ok("hello"));
    } else {
        println!(
            "{}",
            report::fail("hello", &format_args!("the tool patched the name {name:?}"))
        );
    }
    println!("{}", report::DONE);
    NullHandler
}

protection_domain!(init);
