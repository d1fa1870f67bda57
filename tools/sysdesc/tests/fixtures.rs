//! Runs every fixture of the repository:
//!
//! - `tests/invalid/NAME.toml` and `tests/invalid/NAME.system` must fail, and
//!   their diagnostics, in one-line form (`file:line:col: error[code]: msg`),
//!   must equal `tests/invalid/NAME.expected` line for line;
//! - `tests/sysdesc/valid/*` must load without errors, and warnings, if any,
//!   must equal a sibling `.expected` file (absent = no warnings);
//! - every diagnostic code the crate defines appears in some fixture.
//!
//! `SEPTA_BLESS=1 cargo test -p septa-sysdesc --test fixtures` writes missing
//! `.expected` files from the current output (review them before committing).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use septa_sysdesc::{parse_str_in, Format};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn descriptions(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("toml" | "system")
            )
        })
        .collect();
    v.sort();
    v
}

/// Loads a fixture under its bare file name, so expected output does not
/// depend on where the repository lives.
fn run(path: &Path) -> (bool, String) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let text = fs::read_to_string(path).unwrap();
    match parse_str_in(name, &text, Format::from_path(path), path.parent().unwrap()) {
        Ok(l) => (
            true,
            l.warnings.iter().map(|w| w.one_line() + "\n").collect(),
        ),
        Err(r) => (false, r.one_line()),
    }
}

fn compare(path: &Path, got: &str, failures: &mut Vec<String>) {
    let expected_path = path.with_extension("expected");
    match fs::read_to_string(&expected_path) {
        Ok(want) if want == got => {}
        Ok(want) => failures.push(format!(
            "{}:\n--- expected\n{want}--- got\n{got}",
            path.display()
        )),
        Err(_) if std::env::var_os("SEPTA_BLESS").is_some() => {
            fs::write(&expected_path, got).unwrap();
        }
        Err(_) if got.is_empty() => {}
        Err(_) => failures.push(format!(
            "{}: no .expected file; output was\n{got}",
            path.display()
        )),
    }
}

#[test]
fn invalid_descriptions_fail_with_their_expected_diagnostics() {
    let dir = repo().join("tests/invalid");
    let files = descriptions(&dir);
    assert!(files.len() >= 80, "only {} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let (ok, got) = run(path);
        if ok {
            failures.push(format!("{}: loaded without errors", path.display()));
            continue;
        }
        assert!(
            got.contains(": error["),
            "{}: no error line",
            path.display()
        );
        compare(path, &got, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_readme_counts_the_invalid_fixtures() {
    let count = descriptions(&repo().join("tests/invalid")).len();
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let claim = format!("({count} invalid fixtures)");
    assert!(readme.contains(&claim), "README.md must say {claim:?}");
}

#[test]
fn valid_descriptions_load() {
    let dir = repo().join("tests/sysdesc/valid");
    let mut failures = Vec::new();
    for path in descriptions(&dir) {
        let (ok, got) = run(&path);
        if !ok {
            failures.push(format!("{}: failed\n{got}", path.display()));
            continue;
        }
        compare(&path, &got, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_code_has_a_fixture() {
    let kinds = include_str!("../src/kind.rs");
    let codes: BTreeSet<String> = kinds
        .split("code(")
        .skip(1)
        .map(|s| s.split(')').next().unwrap().trim_matches('"').to_string())
        .collect();
    assert!(codes.len() > 50, "found only {} codes", codes.len());
    let mut seen = String::new();
    for dir in ["tests/invalid", "tests/sysdesc/valid"] {
        for entry in fs::read_dir(repo().join(dir)).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().and_then(|e| e.to_str()) == Some("expected") {
                seen += &fs::read_to_string(p).unwrap();
            }
        }
    }
    // Reachable only through `load` of a file that cannot be read; a unit
    // test in lib.rs provokes it.
    let exempt = ["septa::file::unreadable"];
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !exempt.contains(&c.as_str()))
        .filter(|c| !seen.contains(&format!("[{c}]")))
        .collect();
    assert!(missing.is_empty(), "codes without a fixture: {missing:?}");
}
