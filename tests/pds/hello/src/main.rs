//! # test-hello: the smallest test PD
//!
//! Prints a greeting with its name (patched in by the tool), then the
//! harness's result lines. Owns nothing; touches no capability.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_runtime::{println, protection_domain, NullHandler};

fn init() -> NullHandler {
    let name = septa_runtime::pd_name();
    println!("hello from PD {name}");
    if name.as_str() == "hello" {
        println!("[septa-test] ok hello");
    } else {
        println!("[septa-test] FAIL hello: the tool patched the name {name:?}");
    }
    println!("[septa-test] done");
    NullHandler
}

protection_domain!(init);
