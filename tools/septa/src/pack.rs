//! Packing: the loader's flat binary, then the payload (header, kernel ELF,
//! root task ELF, extra blob), as one image QEMU loads at the loader's
//! address.

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use object::{Object, ObjectSegment, ObjectSymbol};
use septa_image::{Header, Part, ALIGN, VERSION};

use crate::cargo;
use crate::workspace::Workspace;

/// The board facts the loader needs. From the QEMU `virt` memory map
/// (hw/arm/virt.c): RAM at 1 GiB, PL011 at 0x0900_0000; QEMU leaves the
/// device tree at the start of RAM for images that are not Linux kernels.
pub struct Board {
    pub uart_base: u64,
    pub dtb_hint: u64,
    pub ram_base: u64,
    pub ram_size: u64,
}

pub const QEMU_VIRT: Board = Board {
    uart_base: 0x0900_0000,
    dtb_hint: 0x4000_0000,
    ram_base: 0x4000_0000,
    ram_size: 2 << 30,
};

/// A packed image and where QEMU must put it.
pub struct Image {
    pub path: PathBuf,
    pub load_addr: u64,
}

/// The crate built as the root task when a system does not name its own.
pub const DEFAULT_ROOT_TASK: &str = "septa-initializer";

/// The file beside a system description that names another root task: one
/// line, the package name of a root-task crate of the workspace (a test
/// system such as the kernel conformance suite is its own root task).
pub const ROOT_TASK_FILE: &str = "root-task";

/// The root task of the system described by `file`: the package named in
/// the `root-task` file beside it, or the initializer.
pub fn root_task(file: &Path) -> Result<String> {
    let named = file.parent().map(|d| d.join(ROOT_TASK_FILE));
    match named {
        Some(p) if p.is_file() => {
            let text = std::fs::read_to_string(&p)
                .into_diagnostic()
                .wrap_err_with(|| format!("reading {}", p.display()))?;
            let name = text.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(miette!(
                    "{} must hold one package name, found {text:?}",
                    p.display()
                ));
            }
            Ok(name.to_string())
        }
        _ => Ok(DEFAULT_ROOT_TASK.to_string()),
    }
}

/// The name of a system's build directory: the file stem, or for a test
/// system (`.../systems/NAME/system.toml`) its directory's name, so that
/// test systems built side by side do not overwrite each other's image.
fn system_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("system");
    fn name(p: Option<&Path>) -> Option<&str> {
        p.and_then(Path::file_name).and_then(|s| s.to_str())
    }
    let dir = file.parent();
    match (name(dir), name(dir.and_then(Path::parent))) {
        (Some(test), Some("systems")) => test.to_string(),
        _ => stem.to_string(),
    }
}

/// Builds every component of the system described by `file` and packs them.
pub fn build_system(ws: &Workspace, file: &Path, kernel_override: Option<&Path>) -> Result<Image> {
    if !file.is_file() {
        return Err(miette!("no system description at {}", file.display()));
    }
    let name = system_name(file);
    let root = root_task(file)?;
    let mut soft = vec!["septa-loader"];
    if kernel_override.is_none() {
        soft.push("septa-kernel");
    }
    let built = cargo::build(ws, cargo::SOFTFLOAT, &soft)?;
    let loader = &built[0];
    let kernel = kernel_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| built[1].clone());
    let user = cargo::build(ws, cargo::USER, &[root.as_str()])?.remove(0);

    let dir = ws.build_dir(&name);
    std::fs::create_dir_all(&dir).into_diagnostic()?;
    let out = dir.join("septa.img");
    let load_addr = pack(loader, &kernel, &user, &[], &QEMU_VIRT, &out)?;
    Ok(Image {
        path: out,
        load_addr,
    })
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p)
        .into_diagnostic()
        .wrap_err_with(|| format!("reading {}", p.display()))
}

fn align(v: &mut Vec<u8>) {
    v.resize(v.len().next_multiple_of(ALIGN as usize), 0);
}

/// Writes the image to `out` and returns the address it must be loaded at.
pub fn pack(
    loader: &Path,
    kernel: &Path,
    user: &Path,
    extra: &[u8],
    board: &Board,
    out: &Path,
) -> Result<u64> {
    let loader_elf = read(loader)?;
    let (mut image, base) = flatten_loader(&loader_elf)?;
    let kernel = read(kernel)?;
    let user = read(user)?;

    let mut payload = vec![0u8; septa_image::HEADER_LEN];
    align(&mut payload);
    let place = |bytes: &[u8], payload: &mut Vec<u8>| {
        let part = Part {
            offset: payload.len() as u64,
            len: bytes.len() as u64,
        };
        payload.extend_from_slice(bytes);
        align(payload);
        part
    };
    let kernel_part = place(&kernel, &mut payload);
    let user_part = place(&user, &mut payload);
    let extra_part = place(extra, &mut payload);
    let header = Header {
        version: VERSION,
        uart_base: board.uart_base,
        dtb_hint: board.dtb_hint,
        ram_base: board.ram_base,
        ram_size: board.ram_size,
        kernel: kernel_part,
        user: user_part,
        extra: extra_part,
        total_len: payload.len() as u64,
    };
    payload[..septa_image::HEADER_LEN].copy_from_slice(&header.to_bytes());
    image.extend_from_slice(&payload);
    std::fs::write(out, &image)
        .into_diagnostic()
        .wrap_err_with(|| format!("writing {}", out.display()))?;
    Ok(base)
}

/// The loader's loadable segments as one flat binary from its lowest
/// address, padded up to `__payload_start`; and that lowest address.
fn flatten_loader(elf: &[u8]) -> Result<(Vec<u8>, u64)> {
    let file = object::File::parse(elf)
        .into_diagnostic()
        .wrap_err("the loader is not an ELF file")?;
    let segments: Vec<_> = file.segments().filter(|s| s.size() > 0).collect();
    let base = segments
        .iter()
        .map(|s| s.address())
        .min()
        .ok_or_else(|| miette!("the loader has no segments"))?;
    let payload_start = file
        .symbols()
        .find(|s| s.name() == Ok("__payload_start"))
        .map(|s| s.address())
        .ok_or_else(|| miette!("the loader has no __payload_start symbol"))?;
    let mut flat = vec![0u8; (payload_start - base) as usize];
    for s in &segments {
        let data = s.data().into_diagnostic()?;
        let at = (s.address() - base) as usize;
        if at + data.len() > flat.len() {
            return Err(miette!("a loader segment extends past __payload_start"));
        }
        flat[at..at + data.len()].copy_from_slice(data);
    }
    Ok((flat, base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_systems_build_under_their_directory_name() {
        let p = Path::new("/repo/tests/systems/conformance/system.toml");
        assert_eq!(system_name(p), "conformance");
        assert_eq!(system_name(Path::new("system.toml")), "system");
        assert_eq!(system_name(Path::new("/repo/system.toml")), "system");
        assert_eq!(system_name(Path::new("/repo/boards/virt.toml")), "virt");
    }

    #[test]
    fn a_root_task_file_names_the_root_task() {
        let dir = std::env::temp_dir().join(format!("septa-pack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("system.toml");
        assert_eq!(root_task(&file).unwrap(), DEFAULT_ROOT_TASK);
        std::fs::write(dir.join(ROOT_TASK_FILE), "septa-conformance\n").unwrap();
        assert_eq!(root_task(&file).unwrap(), "septa-conformance");
        std::fs::write(dir.join(ROOT_TASK_FILE), "two words\n").unwrap();
        assert!(root_task(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
