//! What a case says when it fails, and the lines the harness reads.
//!
//! A case returns [`Outcome`]: `Ok(())` or a [`Failure`] that carries the
//! source line of the failed check and a short message, formatted into a
//! fixed buffer (the suite has no heap). The check macros build the usual
//! message, `expected X got Y`, from the two values' `Debug` forms.
//!
//! The result lines are the harness's protocol, printed with the crate
//! `septa-test-report`: `[septa-test] ok CASE`, `[septa-test] FAIL CASE:
//! why`, and at the very end `[septa-test] done`, after a summary line
//! `N passed, M failed`.

use core::fmt::{self, Write};

/// The prefix of the suite's own progress lines (not parsed by the harness,
/// but they name a case before it runs, so a crash is attributed).
pub const PROGRESS: &str = "[conformance]";

/// Longest failure message kept; longer ones are cut (and end in `...`).
const MSG_CAP: usize = 200;

/// Why a case failed, or why it does not apply to this configuration.
#[derive(Clone)]
pub struct Failure {
    line: u32,
    len: usize,
    msg: [u8; MSG_CAP],
    not_applicable: bool,
}

/// The result of one case.
pub type Outcome = Result<(), Failure>;

impl Failure {
    /// A failure at source line `line` with a formatted message.
    pub fn new(line: u32, args: fmt::Arguments<'_>) -> Failure {
        let mut f = Failure {
            line,
            len: 0,
            msg: [0; MSG_CAP],
            not_applicable: false,
        };
        // Writing into the fixed buffer cannot fail; it truncates instead.
        let _ = f.write_fmt(args);
        f
    }

    /// Not a failure: the case needs what this kernel configuration lacks
    /// (`why`), and did not run.
    pub fn not_applicable(line: u32, args: fmt::Arguments<'_>) -> Failure {
        Failure {
            not_applicable: true,
            ..Failure::new(line, args)
        }
    }

    /// Whether the case did not apply rather than fail.
    pub fn is_not_applicable(&self) -> bool {
        self.not_applicable
    }

    /// The message without the line number.
    pub fn message(&self) -> &str {
        // Only whole UTF-8 sequences are ever stored (see `write_str`).
        core::str::from_utf8(&self.msg[..self.len]).unwrap_or("(unprintable)")
    }

    pub fn line(&self) -> u32 {
        self.line
    }
}

impl Write for Failure {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const ELLIPSIS: &str = "...";
        for ch in s.chars() {
            let mut buf = [0; 4];
            let bytes = ch.encode_utf8(&mut buf).as_bytes();
            if self.len + bytes.len() > MSG_CAP - ELLIPSIS.len() {
                if !self.message().ends_with(ELLIPSIS) {
                    self.msg[self.len..self.len + ELLIPSIS.len()]
                        .copy_from_slice(ELLIPSIS.as_bytes());
                    self.len += ELLIPSIS.len();
                }
                return Ok(());
            }
            self.msg[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (line {})", self.message(), self.line)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (conformance line {})", self.message(), self.line)
    }
}

/// Fails the case with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::report::Failure::new(line!(), format_args!($($arg)*)))
    };
}

/// Ends the case as not applicable unless the kernel configuration has
/// what it needs (`cond`, a `septa_abi::CONFIG` query), saying what that is.
#[macro_export]
macro_rules! needs {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            return Err($crate::report::Failure::not_applicable(line!(), format_args!($($arg)*)));
        }
    };
}

/// Fails the case unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::fail!($($arg)*);
        }
    };
}

/// Fails the case with `expected X got Y` unless `got == expected`.
#[macro_export]
macro_rules! check_eq {
    ($got:expr, $expected:expr) => {
        match (&$got, &$expected) {
            (got, expected) => {
                if got != expected {
                    $crate::fail!("expected {:?} got {:?}", expected, got);
                }
            }
        }
    };
    ($got:expr, $expected:expr, $what:expr) => {
        match (&$got, &$expected) {
            (got, expected) => {
                if got != expected {
                    $crate::fail!("{:?}: expected {:?} got {:?}", $what, expected, got);
                }
            }
        }
    };
}

/// Unwraps a step that must succeed (setup or a success path), failing the
/// case with `STEP: expected success got ERROR` otherwise.
#[macro_export]
macro_rules! ok {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => $crate::fail!("{}: expected success got {:?}", stringify!($e), e),
        }
    };
}

/// Checks that an invocation failed with exactly this error (details too).
#[macro_export]
macro_rules! check_err {
    ($e:expr, $expected:expr) => {
        match $e {
            Ok(_) => $crate::fail!("{}: expected {:?} got success", stringify!($e), $expected),
            Err(got) => {
                if got != $expected {
                    $crate::fail!("expected {:?} got {:?}", $expected, got);
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use septa_sel4::Error;
    use std::format;

    fn failing_eq() -> Outcome {
        check_eq!(1 + 1, 3);
        Ok(())
    }

    fn failing_err() -> Outcome {
        let r: Result<(), Error> = Err(Error::RangeError { min: 0, max: 254 });
        check_err!(r, Error::RangeError { min: 0, max: 255 });
        Ok(())
    }

    fn passing() -> Outcome {
        check!(true, "never");
        check_eq!(2, 2);
        let r: Result<(), Error> = Err(Error::IllegalOperation);
        check_err!(r, Error::IllegalOperation);
        Ok(())
    }

    #[test]
    fn checks_report_expected_and_got() {
        let f = failing_eq().unwrap_err();
        assert_eq!(f.message(), "expected 3 got 2");
        let f = failing_err().unwrap_err();
        assert_eq!(
            f.message(),
            "expected RangeError { min: 0, max: 255 } got RangeError { min: 0, max: 254 }"
        );
        assert!(passing().is_ok());
    }

    #[test]
    fn long_messages_are_cut_with_an_ellipsis() {
        let long = "x".repeat(500);
        let f = Failure::new(7, format_args!("{long}"));
        assert_eq!(f.message().len(), MSG_CAP);
        assert!(f.message().ends_with("..."));
        assert_eq!(format!("{f:?}"), format!("{} (line 7)", f.message()));
    }
}
