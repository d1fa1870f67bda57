//! `cargo run -p septa-sysdesc --example check -- FILE`: load a description
//! and print its diagnostics (graphical, then one-line) or the model as JSON.
use std::path::Path;

fn main() {
    let path = std::env::args().nth(1).expect("usage: check FILE");
    match septa_sysdesc::load(Path::new(&path)) {
        Ok(l) => {
            for w in &l.warnings {
                eprint!("{}", w.render());
            }
            println!(
                "{:#?}",
                l.system.pds.iter().map(|p| &p.name).collect::<Vec<_>>()
            );
        }
        Err(r) => {
            eprint!("{}", r.render());
            eprint!("{}", r.one_line());
            std::process::exit(1);
        }
    }
}
