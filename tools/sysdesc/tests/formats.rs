//! The two formats mean the same thing: a Microkit `.system` file and a
//! `system.toml` written to say the same give equal models.

use std::path::{Path, PathBuf};

use septa_sysdesc::{load, parse_str_in, Format, Program};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sysdesc/equivalent")
}

#[test]
fn system_file_and_toml_give_equal_models() {
    let xml = load(&dir().join("system.system")).unwrap_or_else(|r| panic!("{}", r.one_line()));
    let toml = load(&dir().join("system.toml")).unwrap_or_else(|r| panic!("{}", r.one_line()));
    assert!(xml.warnings.is_empty(), "{:?}", xml.warnings);
    assert!(toml.warnings.is_empty(), "{:?}", toml.warnings);
    // Field by field first, for a readable failure...
    let (a, b) = (&xml.system, &toml.system);
    assert_eq!(a.pds.len(), 4);
    for (p, q) in a.pds.iter().zip(&b.pds) {
        assert_eq!(p, q, "PD {}", p.name);
    }
    assert_eq!(a.regions, b.regions);
    assert_eq!(a.channels, b.channels);
    assert_eq!(a.domains, b.domains);
    // ...then the whole model, and its serialised form.
    assert_eq!(a, b);
    assert_eq!(
        serde_json::to_string(a).unwrap(),
        serde_json::to_string(b).unwrap()
    );
    // The flattening puts the child after its parent and names it.
    let helper = &a.pds[3];
    assert_eq!(helper.name, "helper");
    assert_eq!(helper.parent, Some(2));
    assert_eq!(helper.child_id, Some(1));
    assert_eq!(helper.program, Program::Elf("helper.elf".into()));
    // Microkit raises the page size of a region when it can: 256 MiB at
    // 2 MiB-aligned addresses, given explicitly here; `shared` stays 4 KiB.
    assert_eq!(a.region("shared").unwrap().page_size, 4096);
    // `shared` is named by a setvar, so it needs a contiguous address.
    assert!(a.needs_phys("shared") && a.needs_phys("uart") && !a.needs_phys("blob"));
    // The prefill file sets the size, rounded up to a page.
    assert_eq!(a.region("blob").unwrap().size, 8192);
}

#[test]
fn a_different_value_gives_a_different_model() {
    let base = dir();
    let text = std::fs::read_to_string(base.join("system.toml")).unwrap();
    let changed = text.replace("priority = 120", "priority = 121");
    assert_ne!(text, changed);
    let a = parse_str_in("a.toml", &text, Format::Toml, &base).unwrap();
    let b = parse_str_in("b.toml", &changed, Format::Toml, &base).unwrap();
    assert_ne!(a.system, b.system);
}

#[test]
fn where_a_thing_was_written_does_not_matter() {
    let base = dir();
    let text = std::fs::read_to_string(base.join("system.toml")).unwrap();
    let moved = format!("# a comment that shifts every span\n\n{text}");
    let a = parse_str_in("a.toml", &text, Format::Toml, &base).unwrap();
    let b = parse_str_in("b.toml", &moved, Format::Toml, &base).unwrap();
    assert_eq!(a.system, b.system);
}
