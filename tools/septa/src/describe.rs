//! `check` and `graph`: what the tool says about a description without
//! building anything (no program image is needed).

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};
use septa_sysdesc::{Loaded, Report};

use crate::workspace::Workspace;

/// Loads and validates `file`, printing every warning; errors become one
/// report for the person at the terminal.
pub fn load(file: &Path) -> Result<Loaded> {
    match septa_sysdesc::load(file) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("{}", w.render());
            }
            Ok(loaded)
        }
        Err(report) => Err(rejected(&report)),
    }
}

fn rejected(report: &Report) -> miette::Report {
    eprint!("{}", report.render());
    let n = report.errors().count();
    miette!(
        "{n} error{} in the system description",
        if n == 1 { "" } else { "s" }
    )
}

pub fn check(file: &Path) -> Result<()> {
    let loaded = load(file)?;
    let s = &loaded.system;
    println!(
        "{}: ok ({} PDs, {} regions, {} channels, {} warnings)",
        file.display(),
        s.pds.len(),
        s.regions.len(),
        s.channels.len(),
        loaded.warnings.len()
    );
    print!("{}", septa_sysdesc::cells::explain(s));
    Ok(())
}

pub fn graph(ws: &Workspace, file: &Path, output: Option<PathBuf>) -> Result<()> {
    let loaded = load(file)?;
    let svg_path = output.unwrap_or_else(|| {
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("system");
        ws.build_dir(name).join("graph.svg")
    });
    if let Some(dir) = svg_path.parent() {
        std::fs::create_dir_all(dir).into_diagnostic()?;
    }
    let dot_path = svg_path.with_extension("dot");
    std::fs::write(&svg_path, septa_sysdesc::graph::svg(&loaded.system)).into_diagnostic()?;
    std::fs::write(&dot_path, septa_sysdesc::graph::dot(&loaded.system)).into_diagnostic()?;
    println!("{}\n{}", svg_path.display(), dot_path.display());
    Ok(())
}
