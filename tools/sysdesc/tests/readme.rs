//! The README's examples are part of the test suite: every ```toml block that
//! starts with `[system]` must load without errors or warnings.

use septa_sysdesc::{parse_str, Format};

#[test]
fn readme_examples_load() {
    let readme = include_str!("../README.md");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .filter(|b| b.starts_with("[system]"))
        .collect();
    assert!(blocks.len() >= 2, "found {} examples", blocks.len());
    for (i, b) in blocks.iter().enumerate() {
        let name = format!("README.md example {i}");
        match parse_str(&name, b, Format::Toml) {
            Ok(l) => assert!(
                l.warnings.is_empty(),
                "{}",
                l.warnings.iter().map(|w| w.one_line()).collect::<String>()
            ),
            Err(r) => panic!("{}", r.one_line()),
        }
    }
}
