//! Cases that must fail, to show the suite's own machinery at work: a hung
//! case, a case that crashes the root task, a panic in the root and in a
//! thread. They are compiled in only when the build environment has
//! `SEPTA_CONFORMANCE_SELFTEST` set, e.g.
//!
//! ```text
//! SEPTA_CONFORMANCE_SELFTEST=1 cargo septa test conformance --kernel PATH
//! ```
//!
//! and then each must be reported as a failure (timeout, crash, panic)
//! while every other case still runs and passes.

use crate::cases::instr;
use crate::env::Cx;
use crate::report::Outcome;
use crate::thread::{self, Spawn};
use crate::Case;

/// The self-test cases, or none.
pub const CASES: &[Case] = if option_env!("SEPTA_CONFORMANCE_SELFTEST").is_some() {
    ALL
} else {
    &[]
};

const ALL: &[Case] = &[
    Case {
        name: "selftest/hang",
        run: hang,
    },
    Case {
        name: "selftest/blocked-forever",
        run: blocked,
    },
    Case {
        name: "selftest/crash",
        run: crash,
    },
    Case {
        name: "selftest/panic",
        run: panic,
    },
    Case {
        name: "selftest/thread-panics",
        run: thread_panics,
    },
];

fn hang(_: &mut Cx) -> Outcome {
    loop {
        core::hint::spin_loop();
    }
}

fn blocked(cx: &mut Cx) -> Outcome {
    let n = cx.notification()?;
    n.wait();
    Ok(())
}

fn crash(_: &mut Cx) -> Outcome {
    instr::udf();
    Ok(())
}

fn out_of_bounds() -> u8 {
    let v = [1u8];
    v[core::hint::black_box(5)]
}

fn panic(_: &mut Cx) -> Outcome {
    out_of_bounds();
    Ok(())
}

fn thread_panics(cx: &mut Cx) -> Outcome {
    fn body(_: u64) {
        out_of_bounds();
    }
    thread::spawn(cx, Spawn::new(body, 0))?.join()
}
