//! `cargo run -p septa-sysdesc --example check -- FILE [dot|svg]`: load a
//! description and print its diagnostics (graphical, then one-line), or the
//! names of its PDs, or its graph.
use std::path::Path;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: check FILE [dot|svg]");
    match septa_sysdesc::load(Path::new(&path)) {
        Ok(l) => {
            for w in &l.warnings {
                eprint!("{}", w.render());
            }
            match std::env::args().nth(2).as_deref() {
                Some("dot") => print!("{}", septa_sysdesc::graph::dot(&l.system)),
                Some("svg") => print!("{}", septa_sysdesc::graph::svg(&l.system)),
                _ => {
                    let names: Vec<&str> = l.system.pds.iter().map(|p| p.name.as_str()).collect();
                    println!("{names:?}");
                }
            }
        }
        Err(r) => {
            eprint!("{}", r.render());
            eprint!("{}", r.one_line());
            std::process::exit(1);
        }
    }
}
