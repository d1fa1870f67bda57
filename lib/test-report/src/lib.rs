//! # septa-test-report: the lines a test system prints and the harness reads
//!
//! Every program that judges itself under `cargo septa test` or measures
//! under `cargo septa bench` (test PDs, bench PDs, the default system's
//! PDs, the initializer in a test image, the kernel conformance suite)
//! prints its verdicts with the writer here, and the harness
//! (`tools/septa/src/harness.rs`, `bench.rs`) reads them with the parser
//! here. One definition of the format on both sides, so a misspelt marker
//! or keyword cannot turn a failure into silence.
//!
//! ```text
//! [septa-test] ok CASE
//! [septa-test] FAIL CASE: why
//! [septa-test] done
//! [septa-bench] NAME 1234.56
//! ```
//!
//! The writer ([`ok`], [`fail`], [`DONE`], [`figure`]) gives values that
//! implement `Display`; the caller prints them with whatever console it has
//! (`septa_runtime::println!`, `septa_sel4::debug_println!`), one per line.
//! The parser ([`parse`], [`parse_figure`]) takes one console line, in which
//! the marker may follow other text (a PD's name, say).
//!
//! A line that carries the marker but is not one of the three forms is
//! [`Line::Malformed`]: the harness counts it as a failure rather than
//! skipping it.
//!
//! Owns: the format. Must not: print, allocate or depend on anything, so
//! that the kernel conformance suite (a root task with no runtime) and the
//! host tool can both use it.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

/// The prefix of every verdict line.
pub const MARK: &str = "[septa-test]";
/// The prefix of every benchmark figure.
pub const BENCH_MARK: &str = "[septa-bench]";

/// `[septa-test] ok CASE`: the case passed.
pub fn ok(case: &str) -> Verdict<'_> {
    Verdict::Ok(case)
}

/// `[septa-test] FAIL CASE: why`: the case failed, for the reason given
/// (anything printable: a `&str`, an error, `&format_args!(...)`).
pub fn fail<'a>(case: &'a str, why: &'a dyn fmt::Display) -> Verdict<'a> {
    Verdict::Fail(case, why)
}

/// `[septa-test] done`: the system has said all it will say.
pub const DONE: Verdict<'static> = Verdict::Done;

/// A verdict line to print (without its newline). One type for the three
/// forms, so a PD carries one formatting function for all its verdicts.
#[derive(Clone, Copy)]
pub enum Verdict<'a> {
    Ok(&'a str),
    Fail(&'a str, &'a dyn fmt::Display),
    Done,
}

impl fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Ok(case) => write!(f, "{MARK} ok {case}"),
            Verdict::Fail(case, why) => write!(f, "{MARK} FAIL {case}: {why}"),
            Verdict::Done => write!(f, "{MARK} done"),
        }
    }
}

/// `[septa-bench] NAME VALUE`: a measured figure, given in hundredths and
/// printed with two decimals (the PDs have no floating point to spare).
pub fn figure(name: &str, hundredths: u64) -> Figure<'_> {
    Figure { name, hundredths }
}

/// A figure line to print (without its newline).
#[derive(Clone, Copy, Debug)]
pub struct Figure<'a> {
    name: &'a str,
    hundredths: u64,
}

impl fmt::Display for Figure<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{BENCH_MARK} {} {}.{:02}",
            self.name,
            self.hundredths / 100,
            self.hundredths % 100
        )
    }
}

/// A verdict line as the harness reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Ok(&'a str),
    /// The case and the reason (empty if the line gave none).
    Fail(&'a str, &'a str),
    Done,
    /// The marker followed by something that is none of the above: what
    /// follows the marker.
    Malformed(&'a str),
}

/// Reads one console line: `None` if it carries no verdict marker.
pub fn parse(line: &str) -> Option<Line<'_>> {
    let at = line.find(MARK)?;
    let rest = line[at + MARK.len()..].trim();
    let named = |case: &str| !case.is_empty() && !case.contains(char::is_whitespace);
    Some(if rest == "done" {
        Line::Done
    } else if let Some(case) = rest.strip_prefix("ok ").map(str::trim).filter(|c| named(c)) {
        Line::Ok(case)
    } else if let Some(body) = rest.strip_prefix("FAIL ").map(str::trim) {
        match body.split_once(':') {
            Some((case, why)) if named(case) => Line::Fail(case, why.trim()),
            _ if named(body) => Line::Fail(body, ""),
            _ => Line::Malformed(rest),
        }
    } else {
        Line::Malformed(rest)
    })
}

/// Reads `[septa-bench] NAME VALUE` from one console line.
pub fn parse_figure(line: &str) -> Option<(&str, f64)> {
    let rest = line[line.find(BENCH_MARK)? + BENCH_MARK.len()..].trim();
    let (name, value) = rest.split_once(' ')?;
    Some((name, value.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn what_the_writer_writes_the_parser_reads() {
        let line = ok("ping-pong").to_string();
        assert_eq!(line, "[septa-test] ok ping-pong");
        assert_eq!(parse(&line), Some(Line::Ok("ping-pong")));

        let line = fail("faults", &format_args!("read {} from address {}", 7, 0)).to_string();
        assert_eq!(line, "[septa-test] FAIL faults: read 7 from address 0");
        assert_eq!(
            parse(&line),
            Some(Line::Fail("faults", "read 7 from address 0"))
        );

        assert_eq!(DONE.to_string(), "[septa-test] done");
        assert_eq!(parse(&DONE.to_string()), Some(Line::Done));
    }

    #[test]
    fn the_marker_may_follow_other_text_and_a_carriage_return_is_ignored() {
        assert_eq!(parse("pd1: [septa-test] ok a\r"), Some(Line::Ok("a")));
        assert_eq!(parse("[septa-test] done\r"), Some(Line::Done));
        assert_eq!(parse("booting..."), None);
        assert_eq!(parse("[conformance] run cnode/copy"), None);
    }

    #[test]
    fn a_failure_keeps_its_whole_reason() {
        assert_eq!(
            parse("[septa-test] FAIL cnode/copy: expected Ok(()) got Err(x: 3)"),
            Some(Line::Fail("cnode/copy", "expected Ok(()) got Err(x: 3)"))
        );
        // A failure without a reason is still a failure.
        assert_eq!(
            parse("[septa-test] FAIL lonely"),
            Some(Line::Fail("lonely", ""))
        );
    }

    #[test]
    fn a_misspelt_verdict_is_malformed_not_ignored() {
        for (line, rest) in [
            ("[septa-test] OK hello", "OK hello"),
            ("[septa-test] fail hello: no", "fail hello: no"),
            ("[septa-test] Done", "Done"),
            ("[septa-test] done now", "done now"),
            ("[septa-test] ok", "ok"),
            ("[septa-test] ok two words", "ok two words"),
            ("[septa-test] FAIL : why", "FAIL : why"),
            ("[septa-test]", ""),
        ] {
            assert_eq!(parse(line), Some(Line::Malformed(rest)), "{line}");
        }
    }

    #[test]
    fn figures_print_two_decimals_and_read_back() {
        let line = figure("round-trip", 103_612).to_string();
        assert_eq!(line, "[septa-bench] round-trip 1036.12");
        assert_eq!(parse_figure(&line), Some(("round-trip", 1036.12)));
        assert_eq!(
            figure("boot", 5 * 100).to_string(),
            "[septa-bench] boot 5.00"
        );
        assert_eq!(
            parse_figure("x [septa-bench] boot 1476432.00"),
            Some(("boot", 1476432.0))
        );
        assert_eq!(parse_figure("[septa-bench] boot many"), None);
        assert_eq!(parse_figure("[septa-test] ok bench"), None);
        // Verdicts and figures are told apart.
        assert_eq!(parse(&line), None);
    }
}
