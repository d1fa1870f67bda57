//! Disk images: the backing files of a system's virtio block devices.
//!
//! A `[[virtio]]` block device with a `size` has an image the tool looks
//! after: when the file is missing the tool makes it, a sparse file of that
//! size, and writes the partition table its `[blk.DEVICE]` section lays
//! out (septa-partition: GPT with both copies, or MBR); an image that
//! exists is kept, whatever it holds, and checked: if its table does not
//! hold the partitions the description names, the tool says so (the
//! virtualiser will refuse the clients whose partitions it cannot find)
//! and boots it anyway, since what a disk holds is the system's business.
//! A device without `size` uses its file as it is.
//!
//! `septa build` and `run` use the image the description names (relative
//! to its folder), so it lives on between runs. Test systems get a fresh
//! one in their build folder for every run (`DEVICE.img`), unless the
//! test's folder holds a file `keep-disk`.
//!
//! Input: the validated `System`. Output: the image of each block device,
//! made or checked.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result, WrapErr};
use septa_partition::{gpt, mbr, read, NewPartition, Window, HEAD_BYTES, SECTOR, TAIL_BYTES};
use septa_sysdesc::{BlkDisk, PartitionTable, System, Virtio, VirtioKind};

/// A test's folder holds this file when its disks must outlive a run.
pub const KEEP_FILE: &str = "keep-disk";

/// Where the images of a build live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Where the description says, kept between runs.
    Described,
    /// In the build folder, made afresh.
    Fresh,
}

/// The image of block device `v`.
pub fn image_path(v: &Virtio, base: &Path, dir: &Path, place: Place) -> PathBuf {
    match (place, v.size, &v.file) {
        (Place::Fresh, Some(_), _) | (_, _, None) => dir.join(format!("{}.img", v.name)),
        (_, _, Some(f)) => base.join(f),
    }
}

/// Makes or checks the image of every block device of `sys`; returns each
/// device's image. Problems with an image that exists are printed.
pub fn prepare(
    sys: &System,
    base: &Path,
    dir: &Path,
    place: Place,
) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for v in sys.virtio.iter().filter(|v| v.kind == VirtioKind::Blk) {
        let path = image_path(v, base, dir, place);
        let layout = sys.blk.iter().find(|b| b.device == v.name);
        if let Some(size) = v.size {
            if place == Place::Fresh && path.exists() {
                std::fs::remove_file(&path)
                    .into_diagnostic()
                    .wrap_err_with(|| format!("removing the old image {}", path.display()))?;
            }
            if path.exists() {
                for problem in check(&path, layout)? {
                    eprintln!("   warning: disk image {}: {problem}", path.display());
                }
            } else {
                make(&path, size, layout)?;
            }
        }
        out.push((v.name.clone(), path));
    }
    Ok(out)
}

/// The partitions of `d` as the table writers take them.
fn new_partitions(d: &BlkDisk) -> Vec<NewPartition<'_>> {
    d.partitions
        .iter()
        .map(|p| NewPartition {
            name: &p.name,
            first: p.first_sector,
            sectors: p.sectors,
        })
        .collect()
}

/// A GUID for the disk at `path`: the same image path and device name give
/// the same one (images are reproducible), with RFC 4122's variant and
/// version bits set.
fn guid(path: &Path, device: &str) -> [u8; 16] {
    let fnv = |seed: u64| {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
        for b in path
            .as_os_str()
            .as_encoded_bytes()
            .iter()
            .chain(device.as_bytes())
        {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let mut g = [0u8; 16];
    g[..8].copy_from_slice(&fnv(1).to_le_bytes());
    g[8..].copy_from_slice(&fnv(2).to_le_bytes());
    g[7] = (g[7] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    g
}

/// Makes a sparse image of `size` bytes at `path`, partitioned as `layout`
/// says.
pub fn make(path: &Path, size: u64, layout: Option<&BlkDisk>) -> Result<()> {
    let what = || format!("making the disk image {}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .into_diagnostic()
            .wrap_err_with(what)?;
    }
    let mut f = File::create(path).into_diagnostic().wrap_err_with(what)?;
    f.set_len(size).into_diagnostic().wrap_err_with(what)?;
    let Some(d) = layout else {
        return Ok(());
    };
    let sectors = size / SECTOR;
    let parts = new_partitions(d);
    let problem = |e: septa_partition::WriteError| miette!("{}: {e}", what());
    match d.table {
        PartitionTable::Gpt => {
            let mut head = vec![0u8; (gpt::HEAD_SECTORS * SECTOR) as usize];
            let mut tail = vec![0u8; (gpt::TAIL_SECTORS * SECTOR) as usize];
            gpt::write(sectors, guid(path, &d.device), &parts, &mut head, &mut tail)
                .map_err(problem)?;
            write_at(&mut f, 0, &head).wrap_err_with(what)?;
            write_at(&mut f, size - tail.len() as u64, &tail).wrap_err_with(what)?;
        }
        PartitionTable::Mbr => {
            let mut lba0 = [0u8; SECTOR as usize];
            mbr::write(sectors, &parts, &mut lba0).map_err(problem)?;
            write_at(&mut f, 0, &lba0).wrap_err_with(what)?;
        }
    }
    f.sync_all().into_diagnostic().wrap_err_with(what)
}

fn write_at(f: &mut File, at: u64, bytes: &[u8]) -> Result<()> {
    f.seek(SeekFrom::Start(at)).into_diagnostic()?;
    f.write_all(bytes).into_diagnostic()
}

/// The bytes of an image where partition tables live: its first and last
/// [`HEAD_BYTES`] (or all of a smaller image).
pub struct Ends {
    head: Vec<u8>,
    tail: Vec<u8>,
    len: u64,
}

impl Ends {
    pub fn read(path: &Path) -> Result<Ends> {
        let mut f = OpenOptions::new()
            .read(true)
            .open(path)
            .into_diagnostic()
            .wrap_err_with(|| format!("opening the disk image {}", path.display()))?;
        let len = f.metadata().into_diagnostic()?.len();
        let n = (len as usize).min(HEAD_BYTES).min(TAIL_BYTES);
        let mut head = vec![0u8; n];
        let mut tail = vec![0u8; n];
        f.read_exact(&mut head).into_diagnostic()?;
        f.seek(SeekFrom::Start(len - n as u64)).into_diagnostic()?;
        f.read_exact(&mut tail).into_diagnostic()?;
        Ok(Ends { head, tail, len })
    }

    /// The window the table readers take.
    pub fn window(&self) -> Window<'_> {
        Window {
            head: &self.head,
            tail: &self.tail,
            sectors: self.len / SECTOR,
        }
    }
}

/// What is wrong with the image at `path` for `layout`: nothing when its
/// table holds every declared partition where the description puts it.
pub fn check(path: &Path, layout: Option<&BlkDisk>) -> Result<Vec<String>> {
    let Some(d) = layout else {
        return Ok(Vec::new());
    };
    let ends = Ends::read(path)?;
    let w = ends.window();
    let mut problems = Vec::new();
    let table = match read(&w) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{e}"));
            return Ok(problems);
        }
    };
    let want = match d.table {
        PartitionTable::Gpt => septa_partition::Scheme::Gpt,
        PartitionTable::Mbr => septa_partition::Scheme::Mbr,
    };
    if table.scheme != want {
        problems.push(format!("it has an {} table, not {want}", table.scheme));
    }
    if table.notes.any() {
        problems.push(format!("its table is damaged: {:?}", table.notes));
    }
    for p in &d.partitions {
        match table.partition(p.index) {
            Ok(q) if q.first == p.first_sector && q.sectors == p.sectors => {
                if want == septa_partition::Scheme::Gpt && !q.name.is(&p.name) {
                    problems.push(format!(
                        "partition {} is named `{}`, not `{}`",
                        p.index, q.name, p.name
                    ));
                }
            }
            Ok(q) => problems.push(format!(
                "partition {} `{}` is sectors {}+{} there, sectors {}+{} in the description",
                p.index, p.name, q.first, q.sectors, p.first_sector, p.sectors
            )),
            Err(e) => problems.push(format!("partition {} `{}`: {e}", p.index, p.name)),
        }
    }
    if !problems.is_empty() {
        problems.push("remove the image to have the tool make it afresh".into());
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn system(table: &str) -> System {
        let text = format!(
            r#"
[system]
board = "qemu-virt"
[pd.a]
program = "a"
[pd.b]
program = "b"
[[virtio]]
name = "disk"
kind = "blk"
file = "disk.img"
size = "8 MiB"
[blk.disk]
table = "{table}"
partitions = [
    {{ name = "one", size = "1 MiB", client = "a" }},
    {{ name = "two", size = "3 MiB", client = "b" }},
]
"#
        );
        septa_sysdesc::parse_str("d.toml", &text, septa_sysdesc::Format::Toml)
            .map_err(|r| r.render())
            .unwrap()
            .system
    }

    fn scratch(name: &str) -> crate::testkit::Scratch {
        crate::testkit::Scratch::new(&format!("disk-{name}"))
    }

    #[test]
    fn images_are_made_partitioned_and_then_kept() {
        for table in ["gpt", "mbr"] {
            let s = system(table);
            let dir = scratch(table);
            let out = prepare(&s, &dir, &dir.join("build"), Place::Described).unwrap();
            let path = &out[0].1;
            assert_eq!(path, &dir.join("disk.img"));
            assert_eq!(std::fs::metadata(path).unwrap().len(), 8 << 20);
            assert!(check(path, s.blk.first()).unwrap().is_empty());
            // Kept: what the guest wrote survives the next prepare.
            let mut f = OpenOptions::new().write(true).open(path).unwrap();
            write_at(&mut f, 3 << 20, b"guest data").unwrap();
            drop(f);
            prepare(&s, &dir, &dir.join("build"), Place::Described).unwrap();
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(&bytes[3 << 20..(3 << 20) + 10], b"guest data");
            // A test's image is fresh each time, in the build folder.
            let fresh = prepare(&s, &dir, &dir.join("build"), Place::Fresh).unwrap();
            assert_eq!(fresh[0].1, dir.join("build/disk.img"));
            let mut f = OpenOptions::new().write(true).open(&fresh[0].1).unwrap();
            write_at(&mut f, 3 << 20, b"guest data").unwrap();
            drop(f);
            let again = prepare(&s, &dir, &dir.join("build"), Place::Fresh).unwrap();
            let bytes = std::fs::read(&again[0].1).unwrap();
            assert!(bytes[3 << 20..(3 << 20) + 10].iter().all(|&b| b == 0));
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn an_image_that_does_not_match_is_named_not_refused() {
        let s = system("gpt");
        let dir = scratch("mismatch");
        let path = dir.join("disk.img");
        make(&path, 8 << 20, None).unwrap();
        let problems = check(&path, s.blk.first()).unwrap();
        assert!(problems[0].contains("no partition table"), "{problems:?}");
        // Laid out by another description: partition 2 moved.
        let other = system("gpt");
        let mut moved = other.blk[0].clone();
        moved.partitions[1].first_sector += 2048;
        std::fs::remove_file(&path).unwrap();
        make(&path, 8 << 20, Some(&moved)).unwrap();
        let problems = check(&path, s.blk.first()).unwrap();
        assert!(
            problems.iter().any(|p| p.contains("partition 2 `two`")),
            "{problems:?}"
        );
        assert!(
            prepare(&s, &dir, &dir, Place::Described).is_ok(),
            "kept and booted"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
