//! Packing: the loader's flat binary, then the payload (header, kernel ELF,
//! root task ELF, extra blob), as one image QEMU loads at the loader's
//! address. [`build_system`] runs the whole pipeline that leads here;
//! [`compose`] is its part between the program images and the blob, which
//! needs no cargo (host tests run it on real descriptions).

use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use septa_abi::Config;
use septa_image::{Header, Part, ALIGN, VERSION};

use septa_sysdesc::{Program, System};

use crate::elf::ElfImage;
use crate::workspace::Workspace;
use crate::{alloc, cargo, patch, report, spec};

/// The board facts the loader needs, taken from the board profile.
pub struct Board {
    pub uart_base: u64,
    pub dtb_hint: u64,
    pub ram_base: u64,
    pub ram_size: u64,
}

impl Board {
    /// RAM from the profile's `[ram]`; the loader prints on the profile's
    /// PL011 (none: it stays silent) and looks for the device tree at the
    /// start of RAM, where QEMU leaves it for an image that is not a Linux
    /// kernel.
    pub fn from_profile(b: &septa_sysdesc::Board) -> Board {
        Board {
            uart_base: b
                .devices
                .iter()
                .find(|d| d.compatible == "arm,pl011")
                .map_or(0, |d| d.range.base),
            dtb_hint: b.ram.base,
            ram_base: b.ram.base,
            ram_size: b.ram.size,
        }
    }
}

/// A packed image and where QEMU must put it.
pub struct Image {
    pub path: PathBuf,
    pub load_addr: u64,
    /// The kernel configuration everything in it was built for.
    pub config: Config,
    /// What QEMU must emulate for it: the board and the system's devices.
    pub machine: crate::qemu::Machine,
}

/// The name of a system's build folder: the description's file name, or
/// its folder's name for the usual `NAME/system.toml`.
pub(crate) fn system_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("system");
    let parent = file
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str());
    match (stem, parent) {
        ("system", Some(dir)) if !dir.is_empty() => dir.to_string(),
        _ => stem.to_string(),
    }
}

/// The physical span of a kernel ELF's loadable segments, page-aligned.
fn kernel_span(elf: &[u8]) -> Result<(u64, u64)> {
    let file = object::File::parse(elf)
        .into_diagnostic()
        .wrap_err("the kernel is not an ELF file")?;
    let mut lo = u64::MAX;
    let mut hi = 0;
    let object::File::Elf64(e) = &file else {
        return Err(miette!("the kernel is not a 64-bit ELF file"));
    };
    let endian = e.endian();
    use object::read::elf::ProgramHeader;
    for ph in e.elf_program_headers() {
        if ph.p_type(endian) != object::elf::PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        lo = lo.min(ph.p_paddr(endian));
        hi = hi.max(ph.p_paddr(endian) + ph.p_memsz(endian));
    }
    if lo > hi {
        return Err(miette!("the kernel has no loadable segment"));
    }
    Ok((lo & !(ALIGN - 1), hi.next_multiple_of(ALIGN)))
}

/// Where a given kernel ELF manages RAM from: the lowest start of seL4's
/// `avail_p_regs` (the RAM its build knows, from the device tree less
/// what lies below its physical base), else the lowest physical address
/// it loads at. `None` if neither says.
fn kernel_ram_base(elf: &[u8]) -> Result<Option<u64>> {
    let file = object::File::parse(elf)
        .into_diagnostic()
        .wrap_err("the kernel is not an ELF file")?;
    if let Some(sym) = file.symbols().find(|s| s.name() == Ok("avail_p_regs")) {
        let section = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok());
        if let Some(data) = section.and_then(|sec| {
            let off = usize::try_from(sym.address().checked_sub(sec.address())?).ok()?;
            let len = usize::try_from(sym.size()).ok()?;
            sec.data().ok()?.get(off..off.checked_add(len)?)
        }) {
            // p_region_t: { start, end }, 64-bit little-endian words.
            let starts = data
                .chunks_exact(16)
                .map(|r| u64::from_le_bytes(r[..8].try_into().expect("eight bytes")));
            if let Some(lo) = starts.min() {
                return Ok(Some(lo));
            }
        }
    }
    Ok(kernel_span(elf).ok().map(|(lo, _)| lo))
}

/// The virtual span of an ELF's loadable segments, in bytes.
fn image_span(img: &ElfImage) -> u64 {
    let lo = img.segments.iter().map(|s| s.vaddr).min().unwrap_or(0) & !(ALIGN - 1);
    let hi = img.segments.iter().map(|s| s.end()).max().unwrap_or(0);
    hi.next_multiple_of(ALIGN) - lo
}

/// The front end's code for a description without protection domains.
const NO_PD: &str = "septa::system::no_pd";

/// Builds every component of the system described by `file` and packs
/// them: the pipeline front end, cargo, images, addresses, patches, spec,
/// allocation check, image, report. `for_test`: the image is for `septa
/// test` (the initializer then reports on the harness's protocol too).
///
/// Two kinds of system are packed without realising a description, on the
/// board it names: one that names its own root task ([`ROOT_TASK_FILE`]),
/// and one whose only fault is that it has no protection domains (the boot
/// smoke test), whose image boots the initializer alone with an empty spec.
///
/// The kernel configuration is `choice.flag`, else the description's, else
/// that of the `--kernel` ELF, else `choice.default` (`crate::config`).
pub fn build_system(
    ws: &Workspace,
    file: &Path,
    kernel_override: Option<&Path>,
    for_test: bool,
    choice: ConfigChoice,
) -> Result<Image> {
    if !file.is_file() {
        return Err(miette!("no system description at {}", file.display()));
    }
    let name = system_name(file);
    let described = septa_sysdesc::described_config(file).map_err(|r| miette!("{}", r.render()))?;
    let config = crate::config::resolve(choice.flag, described, kernel_override, choice.default)?;
    if let Some(root) = root_task(file)? {
        return build_alone(
            ws,
            &name,
            file,
            kernel_override,
            Alone::RootTask(root),
            config,
        );
    }
    // The board as the kernel sees it: a given seL4 ELF may manage RAM only
    // from above the start of the board's RAM.
    let kernel_ram = match kernel_override {
        Some(k) => kernel_ram_base(&read(k)?)?,
        None => None,
    };
    let sys = match septa_sysdesc::load_for_kernel(file, kernel_ram) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprint!("{}", w.render());
            }
            loaded.system
        }
        Err(r) if r.errors().all(|d| d.code() == NO_PD) => {
            eprintln!(
                "   note: {} has no protection domains: the image boots the initializer alone",
                file.display()
            );
            let alone = Alone::Initializer { for_test };
            return build_alone(ws, &name, file, kernel_override, alone, config);
        }
        Err(r) => return Err(miette!("{}", r.render())),
    };
    let base = file.parent().unwrap_or(Path::new("."));

    // Cross builds: loader and kernel, then the initializer and every PD
    // crate in one cargo run.
    let (loader, kernel) = loader_and_kernel(ws, kernel_override, config)?;
    // A crate of the workspace, or (as Microkit's --search-path finds a
    // program in a build folder) a `NAME.elf` that is not beside the
    // description but is the program of the workspace's crate NAME.
    let programs: Vec<Option<String>> = sys
        .pds
        .iter()
        .map(|pd| match &pd.program {
            Program::Crate(c) => Some(c.clone()),
            Program::Elf(p) => crate::workspace::crate_for_elf(ws, base, p),
        })
        .collect();
    let mut crates: Vec<&str> = vec!["septa-initializer"];
    for c in programs.iter().flatten() {
        if !crates.contains(&c.as_str()) {
            crates.push(c);
        }
    }
    let user_built = cargo::build(ws, cargo::USER, &crates, config)?;
    let initializer = user_built[0].clone();
    let path_of = |i: usize, pd: &septa_sysdesc::Pd| match (&programs[i], &pd.program) {
        (Some(c), _) => user_built[crates.iter().position(|x| x == c).expect("built")].clone(),
        (None, Program::Elf(p)) => base.join(p),
        (None, Program::Crate(c)) => PathBuf::from(c),
    };
    let (mut images, symbol_images) = read_programs(&sys, base, path_of)?;

    let kernel_elf = kernel_image(&kernel, sys.user_errors)?;
    let init_img = ElfImage::read(&initializer).map_err(|e| miette!("{e}"))?;
    let composed = compose(
        &sys,
        base,
        Boot {
            kernel: kernel_span(&kernel_elf)?,
            initializer: image_span(&init_img),
        },
        &mut images,
        &symbol_images,
        for_test,
        config,
    )?;

    let dir = ws.build_dir(&name);
    std::fs::create_dir_all(&dir).into_diagnostic()?;
    let out = dir.join("septa.img");
    let board = Board::from_profile(&sys.board);
    let load_addr = pack(
        &loader,
        &kernel_elf,
        &initializer,
        &composed.blob,
        &board,
        &out,
    )?;
    let image_len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let ram_note = match kernel_ram {
        Some(b) if sys.board.ram.base == b => {
            format!(", RAM from {b:#x} (below it device memory, as this kernel sees it)")
        }
        _ => String::new(),
    };
    let kernel_line = format!(
        "{}{}{ram_note}",
        kernel.display(),
        user_errors_note(sys.user_errors)
    );
    let text = composed.report(&sys, &kernel_line, image_len);
    std::fs::write(dir.join(REPORT_FILE), text).into_diagnostic()?;
    // Test systems get fresh disks, unless the test keeps them.
    let keep = base.join(crate::disk::KEEP_FILE).is_file();
    let place = if for_test && !keep {
        crate::disk::Place::Fresh
    } else {
        crate::disk::Place::Described
    };
    let disks = crate::disk::prepare(&sys, base, &dir, place)?;
    Ok(Image {
        path: out,
        load_addr,
        config,
        machine: crate::qemu::Machine::for_system(&sys, base, &dir, &disks),
    })
}

/// How a command chooses the kernel configuration: its `--config` flag, and
/// its default when neither the flag nor the description names one.
#[derive(Clone, Copy, Debug)]
pub struct ConfigChoice {
    pub flag: Option<Config>,
    pub default: Config,
}

/// The loader and the kernel: both cross-built, or the loader built and
/// the kernel given.
fn loader_and_kernel(
    ws: &Workspace,
    kernel_override: Option<&Path>,
    config: Config,
) -> Result<(PathBuf, PathBuf)> {
    let mut soft = vec!["septa-loader"];
    if kernel_override.is_none() {
        soft.push("septa-kernel");
    }
    let mut built = cargo::build(ws, cargo::SOFTFLOAT, &soft, config)?.into_iter();
    let loader = built.next().expect("the loader was built");
    let kernel = match kernel_override {
        Some(k) => k.to_path_buf(),
        None => built.next().expect("the kernel was built"),
    };
    Ok((loader, kernel))
}

/// Every PD's program image, and its `symbols` image if the description
/// gives one; `path_of` says where a PD's program is.
fn read_programs(
    sys: &System,
    base: &Path,
    path_of: impl Fn(usize, &septa_sysdesc::Pd) -> PathBuf,
) -> Result<(Vec<ElfImage>, Vec<Option<ElfImage>>)> {
    let read = |pd: &septa_sysdesc::Pd, path: &Path| {
        ElfImage::read(path).map_err(|e| miette!("PD `{}`: {e}", pd.name))
    };
    let mut images = Vec::with_capacity(sys.pds.len());
    let mut symbol_images = Vec::with_capacity(sys.pds.len());
    for (i, pd) in sys.pds.iter().enumerate() {
        images.push(read(pd, &path_of(i, pd))?);
        symbol_images.push(match &pd.symbols {
            Some(p) => Some(read(pd, &base.join(p))?),
            None => None,
        });
    }
    Ok((images, symbol_images))
}

/// What the loader puts in RAM besides the spec blob: the kernel's physical
/// span and the initializer's size.
#[derive(Clone, Copy, Debug)]
pub struct Boot {
    pub kernel: (u64, u64),
    pub initializer: u64,
}

/// What the stages between the program images and the image file make.
pub struct Composed {
    pub built: spec::Built,
    /// Per PD: its program's path and the patches written into it.
    pub programs: Vec<(String, Vec<patch::Write>)>,
    pub fit: alloc::Fit,
    /// The spec and its data area as the initializer reads them.
    pub blob: Vec<u8>,
}

impl Composed {
    /// `report.txt` for this system, packed with `kernel` into an image of
    /// `image_len` bytes.
    pub fn report(&self, sys: &System, kernel: &str, image_len: u64) -> String {
        report::render(&report::Inputs {
            system: sys,
            built: &self.built,
            programs: &self.programs,
            fit: &self.fit,
            kernel,
            image_len,
        })
    }
}

/// The stages of the pipeline that need no cargo and write no file, from
/// the validated model and each PD's program image (with its `symbols`
/// image, if any) to the spec blob: addresses of the regions a setvar
/// needs, patches, the spec, the allocation check. `base` is the
/// description's folder (prefill files are read from it). The images come
/// back patched.
pub fn compose(
    sys: &System,
    base: &Path,
    boot: Boot,
    images: &mut [ElfImage],
    symbol_images: &[Option<ElfImage>],
    for_test: bool,
    config: Config,
) -> Result<Composed> {
    // Addresses of regions a setvar needs, from a first estimate of the
    // free memory (the blob's size only moves its lower end).
    let mut footprint = alloc::Footprint {
        kernel: boot.kernel,
        user_len: boot.initializer,
    };
    let mut free = alloc::free_ram(&sys.board, &footprint);
    let paddrs = alloc::region_paddrs(sys, &mut free).map_err(|e| miette!("{e}"))?;

    // Patches, into images laid out as PDs.
    let mut programs = Vec::with_capacity(sys.pds.len());
    for (i, pd) in sys.pds.iter().enumerate() {
        images[i]
            .check_pd_layout()
            .map_err(|e| miette!("PD `{}`: {e}", pd.name))?;
        let writes = patch::writes_for(sys, i, &paddrs).map_err(|e| miette!("{e}"))?;
        patch::apply(&pd.name, &mut images[i], symbol_images[i].as_ref(), &writes)
            .map_err(|e| miette!("{e}"))?;
        programs.push((images[i].path.display().to_string(), writes));
    }

    // The spec, its blob, and the check that it fits.
    let progs: Vec<spec::Program> = images.iter().map(|image| spec::Program { image }).collect();
    let built = spec::build(sys, &progs, &paddrs, base).map_err(|e| miette!("{e}"))?;
    let mut the_spec = built.spec();
    the_spec.test_harness = for_test;
    the_spec
        .check()
        .map_err(|e| miette!("internal error: the spec is inconsistent: {e}"))?;
    let blob = septa_spec::encode_blob(&the_spec, &built.data);
    footprint.user_len = boot.initializer + blob.len() as u64;
    let free = alloc::free_ram(&sys.board, &footprint);
    let fit = alloc::check(&the_spec, &sys.board, &free, config).map_err(|e| miette!("{e}"))?;
    Ok(Composed {
        built,
        programs,
        fit,
        blob,
    })
}

/// The report's name in a system's build folder, beside the image.
pub const REPORT_FILE: &str = "report.txt";

/// The file beside a system description that names its own root task: one
/// line, the package name of a root-task crate of the workspace. Such a
/// system (the kernel conformance suite, `tests/systems/conformance`) is not
/// realised by the initializer; of its description only the board is read.
pub const ROOT_TASK_FILE: &str = "root-task";

/// The root task named beside `file`, if any.
pub fn root_task(file: &Path) -> Result<Option<String>> {
    let Some(p) = file.parent().map(|d| d.join(ROOT_TASK_FILE)) else {
        return Ok(None);
    };
    if !p.is_file() {
        return Ok(None);
    }
    let text = read(&p)?;
    let name = String::from_utf8_lossy(&text).trim().to_string();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(miette!(
            "{} must hold one package name, found {:?}",
            p.display(),
            String::from_utf8_lossy(&text)
        ));
    }
    Ok(Some(name))
}

/// What runs alone, without a realised description.
enum Alone {
    /// The crate named in [`ROOT_TASK_FILE`], as the root task.
    RootTask(String),
    /// The initializer, with an empty spec.
    Initializer { for_test: bool },
}

/// The image of a system that packs no realised description: loader,
/// kernel and one root task, for the board the description at `file` names.
fn build_alone(
    ws: &Workspace,
    name: &str,
    file: &Path,
    kernel_override: Option<&Path>,
    alone: Alone,
    config: Config,
) -> Result<Image> {
    let profile = septa_sysdesc::load_board(file).map_err(|r| miette!("{}", r.render()))?;
    let (loader, kernel) = loader_and_kernel(ws, kernel_override, config)?;
    let (root, blob, what) = match &alone {
        Alone::RootTask(root) => (
            root.as_str(),
            vec![],
            format!("root task: {root} (named in {ROOT_TASK_FILE}; no spec)"),
        ),
        Alone::Initializer { for_test } => {
            let spec = septa_spec::Spec {
                test_harness: *for_test,
                ..Default::default()
            };
            (
                "septa-initializer",
                septa_spec::encode_blob(&spec, &[]),
                "no protection domains: the initializer runs alone".to_string(),
            )
        }
    };
    let user = cargo::build(ws, cargo::USER, &[root], config)?.remove(0);
    let dir = ws.build_dir(name);
    std::fs::create_dir_all(&dir).into_diagnostic()?;
    let out = dir.join("septa.img");
    let board = Board::from_profile(&profile);
    let user_errors = septa_sysdesc::described_user_errors(file);
    let kernel_elf = kernel_image(&kernel, user_errors)?;
    let load_addr = pack(&loader, &kernel_elf, &user, &blob, &board, &out)?;
    std::fs::write(
        dir.join(REPORT_FILE),
        format!(
            "Septa build report\n==================\nkernel: {} ({} configuration){}\n{what}\n",
            kernel.display(),
            config.name(),
            user_errors_note(user_errors)
        ),
    )
    .into_diagnostic()?;
    Ok(Image {
        path: out,
        load_addr,
        config,
        machine: crate::qemu::Machine::bare(&profile, &dir),
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
    kernel: &[u8],
    user: &Path,
    extra: &[u8],
    board: &Board,
    out: &Path,
) -> Result<u64> {
    let loader_elf = read(loader)?;
    let (mut image, base) = flatten_loader(&loader_elf)?;
    let kernel = strip(kernel).wrap_err("the kernel ELF")?;
    let user = strip(&read(user)?).wrap_err("the root task ELF")?;

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

/// `elf` cut after the last byte a program header refers to, without
/// section headers: what the loader reads (ELF header, program headers,
/// segment contents) and nothing else. Debug information, symbols and
/// section headers were most of the image (6 MiB of the 6.2 MiB of a
/// two-PD system); the files in `target/` keep them for debuggers.
/// The symbol of Septa's kernel that says whether it prints failed
/// invocations (`kernel/src/user_error.rs`).
const USER_ERRORS_SYMBOL: &str = "SEPTA_USER_ERRORS";

/// The kernel ELF at `path`, with `[system] user_errors = false` written
/// into Septa's kernel. A kernel without the symbol (real seL4, which
/// always prints its user errors when it prints at all) is left alone.
fn kernel_image(path: &Path, user_errors: Option<bool>) -> Result<Vec<u8>> {
    let mut elf = read(path)?;
    if user_errors == Some(false) {
        patch_byte(&mut elf, USER_ERRORS_SYMBOL, 0)?;
    }
    Ok(elf)
}

/// What the report adds to the kernel's line about user errors.
fn user_errors_note(user_errors: Option<bool>) -> &'static str {
    match user_errors {
        Some(false) => ", failed invocations not reported",
        _ => "",
    }
}

/// Writes `value` into the first byte of the data of `symbol` in the ELF
/// file `elf`; false if there is no such symbol.
fn patch_byte(elf: &mut [u8], symbol: &str, value: u8) -> Result<bool> {
    let offset = {
        let file = object::File::parse(&*elf).into_diagnostic()?;
        let Some(sym) = file.symbols().find(|s| s.name() == Ok(symbol)) else {
            return Ok(false);
        };
        let section = sym
            .section_index()
            .and_then(|i| file.section_by_index(i).ok())
            .ok_or_else(|| miette!("`{symbol}` is in no section"))?;
        let (start, _) = section
            .file_range()
            .ok_or_else(|| miette!("`{symbol}` is in a section without file data"))?;
        start + (sym.address() - section.address())
    };
    let byte = usize::try_from(offset)
        .ok()
        .and_then(|o| elf.get_mut(o))
        .ok_or_else(|| miette!("`{symbol}` lies past the end of the file"))?;
    *byte = value;
    Ok(true)
}

fn strip(elf: &[u8]) -> Result<Vec<u8>> {
    use object::read::elf::{FileHeader, ProgramHeader};
    let header = object::elf::FileHeader64::<object::Endianness>::parse(elf)
        .into_diagnostic()
        .wrap_err("not an ELF64 file")?;
    let endian = header.endian().into_diagnostic()?;
    let phdrs = header.program_headers(endian, elf).into_diagnostic()?;
    let phoff = header.e_phoff.get(endian);
    let table_end = phoff.saturating_add(
        u64::from(header.e_phentsize.get(endian)) * u64::from(header.e_phnum.get(endian)),
    );
    let mut end = table_end.max(std::mem::size_of_val(header) as u64);
    for p in phdrs {
        let (offset, size) = (p.p_offset(endian), p.p_filesz(endian));
        end = end.max(offset.saturating_add(size));
    }
    let end = usize::try_from(end)
        .ok()
        .filter(|e| *e <= elf.len())
        .ok_or_else(|| miette!("a program header points past the end of the file"))?;
    let mut out = elf[..end].to_vec();
    // e_shoff (u64 at 40), e_shnum (u16 at 60), e_shstrndx (u16 at 62):
    // no section headers any more.
    out[40..48].fill(0);
    out[60..64].fill(0);
    Ok(out)
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
    fn the_loader_gets_its_board_facts_from_the_profile() {
        let mut profile = septa_sysdesc::Board::qemu_virt();
        let b = Board::from_profile(&profile);
        assert_eq!(
            (b.uart_base, b.ram_base, b.ram_size, b.dtb_hint),
            (0x0900_0000, 0x4000_0000, 2 << 30, 0x4000_0000)
        );
        profile.ram.size = 1 << 30;
        profile.devices.retain(|d| d.compatible != "arm,pl011");
        let b = Board::from_profile(&profile);
        assert_eq!((b.uart_base, b.ram_size), (0, 1 << 30));
    }
    use crate::testkit;

    /// The differences between two specs, list by list and entry by entry,
    /// so that a failure says what differs (at most `MAX` lines).
    fn spec_diff(a: &septa_spec::Spec, b: &septa_spec::Spec) -> Vec<String> {
        const MAX: usize = 20;
        fn list<T: std::fmt::Debug + PartialEq>(
            out: &mut Vec<String>,
            what: &str,
            a: &[T],
            b: &[T],
        ) {
            if a.len() != b.len() {
                out.push(format!(
                    "{what}: {} entries from .system, {} from system.toml",
                    a.len(),
                    b.len()
                ));
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate().filter(|(_, (x, y))| x != y) {
                out.push(format!(
                    "{what}[{i}]:\n  .system:     {x:?}\n  system.toml: {y:?}"
                ));
            }
        }
        let mut out = vec![];
        list(&mut out, "objects", &a.objects, &b.objects);
        list(&mut out, "slots", &a.slots, &b.slots);
        list(&mut out, "mappings", &a.mappings, &b.mappings);
        list(&mut out, "threads", &a.threads, &b.threads);
        list(&mut out, "irqs", &a.irqs, &b.irqs);
        list(&mut out, "pds", &a.pds, &b.pds);
        if a.root != b.root {
            out.push(format!("root: {:?} vs {:?}", a.root, b.root));
        }
        out.truncate(MAX);
        out
    }

    /// The spec blob of `file`, as the build's spec stage makes it.
    fn blob_of(file: &Path) -> Vec<u8> {
        testkit::compose(file).1.blob
    }

    const PAIRS: &str = "tests/sysdesc/same-spec";

    #[test]
    fn equivalent_descriptions_give_the_same_spec() {
        let root = testkit::repo().join(PAIRS);
        let mut pairs: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        pairs.sort();
        assert!(pairs.len() >= 2, "{pairs:?}");
        for dir in &pairs {
            let xml = blob_of(&dir.join("system.system"));
            let toml = blob_of(&dir.join("system.toml"));
            let (a, data_a) = septa_spec::decode_blob(&xml).unwrap();
            let (b, data_b) = septa_spec::decode_blob(&toml).unwrap();
            let diff = spec_diff(&a, &b);
            assert!(
                diff.is_empty(),
                "{}: the specs differ:\n{}",
                dir.display(),
                diff.join("\n")
            );
            assert!(data_a == data_b, "{}: the data areas differ", dir.display());
            assert!(xml == toml, "{}: the blobs differ", dir.display());
            // Not an empty comparison: every PD is in it.
            assert_eq!(a.pds.len(), 4, "{}", dir.display());
        }
    }

    #[test]
    fn a_change_of_meaning_changes_the_spec() {
        // The comparison above can fail: one setvar'd address moved in the
        // TOML gives another blob (the patched image differs).
        let dir = testkit::repo().join(PAIRS).join("calls");
        let text = std::fs::read_to_string(dir.join("system.toml")).unwrap();
        let moved = text.replace("vaddr = 0x1000_0000", "vaddr = 0x1100_0000");
        assert_ne!(text, moved);
        // No prefill in `calls`, so the file may live anywhere.
        let tmp = std::env::temp_dir().join(format!("septa-moved-{}.toml", std::process::id()));
        std::fs::write(&tmp, moved).unwrap();
        let changed = blob_of(&tmp);
        std::fs::remove_file(&tmp).unwrap();
        let xml = blob_of(&dir.join("system.system"));
        assert_ne!(xml, changed);
        let (a, _) = septa_spec::decode_blob(&xml).unwrap();
        let (b, _) = septa_spec::decode_blob(&changed).unwrap();
        let diff = spec_diff(&a, &b);
        assert!(diff.iter().any(|d| d.starts_with("mappings[")), "{diff:?}");
    }

    #[test]
    fn a_program_not_linked_as_a_pd_is_refused_by_name() {
        let file = testkit::repo().join("tests/systems/hello/system.toml");
        let sys = testkit::load(&file);
        let mut imgs = testkit::images(&sys);
        let none = vec![None; imgs.len()];
        let base = file.parent().unwrap();
        assert!(compose(
            &sys,
            base,
            testkit::BOOT,
            &mut imgs.clone(),
            &none,
            true,
            Config::Debug
        )
        .is_ok());
        imgs[0].entry += 0x1000;
        let err = compose(
            &sys,
            base,
            testkit::BOOT,
            &mut imgs,
            &none,
            true,
            Config::Debug,
        )
        .err()
        .expect("refused");
        let text = format!("{err}");
        assert!(
            text.starts_with(&format!("PD `{}`: ", sys.pds[0].name)),
            "{text}"
        );
        assert!(text.contains("not linked as a protection domain"), "{text}");
    }

    /// An aarch64 ELF relocatable with `symbol` at offset 4 of a `.data`
    /// section of eight bytes of 7.
    fn elf_with(symbol: &str) -> Vec<u8> {
        elf_with_data(symbol, &[7; 8], 4, 1)
    }

    /// An aarch64 ELF relocatable whose `.data` is `data`, with `symbol` at
    /// `offset`, `size` bytes.
    fn elf_with_data(symbol: &str, data: &[u8], offset: u64, size: u64) -> Vec<u8> {
        use object::write::{Object as W, Symbol, SymbolSection};
        let mut o = W::new(
            object::BinaryFormat::Elf,
            object::Architecture::Aarch64,
            object::Endianness::Little,
        );
        let s = o.add_section(Vec::new(), b".data".to_vec(), object::SectionKind::Data);
        o.append_section_data(s, data, 8);
        o.add_symbol(Symbol {
            name: symbol.as_bytes().to_vec(),
            value: offset,
            size,
            kind: object::SymbolKind::Data,
            scope: object::SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(s),
            flags: object::SymbolFlags::None,
        });
        o.write().unwrap()
    }

    /// The bytes of `.data` in `elf`.
    fn data(elf: &[u8]) -> Vec<u8> {
        let file = object::File::parse(elf).unwrap();
        file.section_by_name(".data")
            .unwrap()
            .data()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_kernel_byte_is_patched_by_symbol_and_a_missing_symbol_is_no_error() {
        let mut elf = elf_with(USER_ERRORS_SYMBOL);
        assert!(patch_byte(&mut elf, USER_ERRORS_SYMBOL, 0).unwrap());
        assert_eq!(data(&elf), [7, 7, 7, 7, 0, 7, 7, 7]);
        let mut other = elf_with("something_else");
        let before = other.clone();
        assert!(!patch_byte(&mut other, USER_ERRORS_SYMBOL, 0).unwrap());
        assert!(other == before, "nothing changed");
    }

    #[test]
    fn a_kernel_says_where_its_ram_starts_in_its_avail_p_regs() {
        // Two p_region_t, seL4's qemu-arm-virt one second.
        let mut regs = Vec::new();
        for (start, end) in [(0x8000_0000u64, 0xc000_0000u64), (0x6000_0000, 0x7000_0000)] {
            regs.extend_from_slice(&start.to_le_bytes());
            regs.extend_from_slice(&end.to_le_bytes());
        }
        let mut data = vec![0u8; 8];
        data.extend_from_slice(&regs);
        let elf = elf_with_data("avail_p_regs", &data, 8, 32);
        assert_eq!(kernel_ram_base(&elf).unwrap(), Some(0x6000_0000));
        // Without the symbol (and without segments): nothing to say.
        assert_eq!(kernel_ram_base(&elf_with("other")).unwrap(), None);
    }

    #[test]
    fn stripping_keeps_every_loadable_byte_and_drops_sections() {
        // The tool's own binary is an ELF with sections and debug data;
        // any ELF64 will do to check the cut.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if exe.get(..4) != Some(b"\x7fELF") {
            return;
        }
        let stripped = strip(&exe).unwrap();
        assert!(stripped.len() < exe.len());
        let before = object::File::parse(&*exe).unwrap();
        let after = object::File::parse(&*stripped).unwrap();
        assert_eq!(after.sections().count(), 0);
        assert_eq!(before.entry(), after.entry());
        // Every segment keeps its place and bytes, except the section
        // header fields of the ELF header that the first one may cover.
        let loads = |f: &object::File, file: &[u8]| {
            f.segments()
                .map(|s| {
                    let (offset, len) = s.file_range();
                    let mut bytes = file[offset as usize..(offset + len) as usize].to_vec();
                    for i in (40..48).chain(60..64) {
                        if let Some(b) = (i as u64).checked_sub(offset) {
                            if let Some(b) = bytes.get_mut(b as usize) {
                                *b = 0;
                            }
                        }
                    }
                    (s.address(), s.size(), bytes)
                })
                .collect::<Vec<_>>()
        };
        let (b, a) = (loads(&before, &exe), loads(&after, &stripped));
        assert_eq!(b.len(), a.len());
        for (x, y) in b.iter().zip(&a) {
            assert!(x == y, "segment at {:#x} changed", x.0);
        }
        // A program header pointing past the end is an error, not a panic.
        assert!(strip(&exe[..64]).is_err());
    }

    #[test]
    fn a_root_task_file_names_the_root_task() {
        let dir = std::env::temp_dir().join(format!("septa-pack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("system.toml");
        assert_eq!(root_task(&file).unwrap(), None);
        std::fs::write(dir.join(ROOT_TASK_FILE), "septa-conformance\n").unwrap();
        assert_eq!(
            root_task(&file).unwrap().as_deref(),
            Some("septa-conformance")
        );
        std::fs::write(dir.join(ROOT_TASK_FILE), "two words\n").unwrap();
        assert!(root_task(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
