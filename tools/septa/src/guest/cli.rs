//! `cargo septa guest` and `cargo septa dtb`: a VM's guest prepared in
//! its build folder, described, and booted on bare QEMU on request.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result, WrapErr};

use super::{bare, dtb, prepare, write, Artefacts, Options, INIT_MARKER};
use crate::workspace::Workspace;

/// The guest of the description `file`'s VM `vm`, prepared in its build
/// folder `build/SYSTEM/guest-VM/`.
pub fn prepare_file(
    ws: &Workspace,
    file: &Path,
    vm: Option<&str>,
    opts: Options,
) -> Result<Artefacts> {
    let loaded = crate::describe::load(file)?;
    let system = &loaded.system;
    let vm = super::find_vm(system, vm)?;
    let out = ws
        .build_dir(&crate::pack::system_name(file))
        .join(format!("guest-{}", vm.name));
    let base = file.parent().unwrap_or(Path::new("."));
    prepare(ws, system, vm, base, &out, opts)
}

/// `cargo septa guest`: prepare, say what it is, and boot it on bare QEMU
/// if asked.
pub fn guest(
    ws: &Workspace,
    file: &Path,
    vm: Option<&str>,
    opts: Options,
    boot: Option<bare::Options>,
) -> Result<()> {
    let a = prepare_file(ws, file, vm, opts)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    for (name, version, bytes) in &a.packages {
        println!("package  {name} {version} ({bytes} bytes)");
    }
    if let Some(r) = &a.release {
        println!("release  {r}");
    }
    let p = &a.placement;
    println!(
        "kernel   {} ({} bytes; text_offset {:#x}, image_size {:#x}, {} pages) at {:#x}",
        a.kernel.display(),
        size(&a.kernel),
        a.header.text_offset,
        a.header.image_size,
        a.header.page_size,
        p.kernel
    );
    println!(
        "dtb      {} ({} bytes) at {:#x}",
        a.dtb.display(),
        size(&a.dtb),
        p.dtb
    );
    println!(
        "initrd   {} ({} bytes) at {:#x}..{:#x}",
        a.initrd.display(),
        size(&a.initrd),
        p.initrd,
        p.initrd_end
    );
    println!(
        "network  {}",
        if a.network {
            "used (apt)"
        } else {
            "not used: all from the cache"
        }
    );
    if let Some(opts) = boot {
        let b = bare::boot(&a, &opts)?;
        println!(
            "bare QEMU: `{INIT_MARKER}` after {:.3} s (wall)",
            b.to_marker.as_secs_f64()
        );
        if let Some(ns) = b.guest_ns_at_marker {
            println!(
                "bare QEMU: guest clock at the marker {ns} ns{}",
                if opts.icount {
                    " (under -icount shift=0: virtual ns)"
                } else {
                    ""
                }
            );
        }
        for (cmd, out) in opts.commands.iter().zip(&b.outputs) {
            println!("$ {cmd}");
            for l in out {
                println!("{l}");
            }
        }
    }
    Ok(())
}

/// `cargo septa dtb`: the guest's device tree, and its source if `dtc` is
/// installed.
pub fn dtb(
    ws: &Workspace,
    file: &Path,
    vm: Option<&str>,
    output: Option<PathBuf>,
    opts: Options,
) -> Result<()> {
    let a = prepare_file(ws, file, vm, opts)?;
    let dtb = match output {
        Some(o) => {
            std::fs::copy(&a.dtb, &o)
                .into_diagnostic()
                .wrap_err_with(|| format!("writing {}", o.display()))?;
            o
        }
        None => a.dtb.clone(),
    };
    eprintln!("dtb: {}", dtb.display());
    match dtb::to_dts(&dtb) {
        Some(Ok(dts)) => {
            let path = dtb.with_extension("dts");
            write(&path, dts.as_bytes())?;
            eprintln!("dts: {}", path.display());
            print!("{dts}");
        }
        Some(Err(e)) => return Err(miette!("dtc cannot read {}: {e}", dtb.display())),
        None => eprintln!("(install device-tree-compiler to see it as source)"),
    }
    Ok(())
}
