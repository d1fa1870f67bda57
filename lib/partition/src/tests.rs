extern crate std;

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// A disk in memory, as a reader sees it.
struct Disk {
    bytes: Vec<u8>,
}

impl Disk {
    fn blank(sectors: u64) -> Disk {
        Disk {
            bytes: vec![0; (sectors * SECTOR) as usize],
        }
    }

    fn sectors(&self) -> u64 {
        self.bytes.len() as u64 / SECTOR
    }

    fn gpt(sectors: u64, parts: &[NewPartition<'_>]) -> Disk {
        let mut d = Disk::blank(sectors);
        let n = d.bytes.len();
        let (head, rest) = d.bytes.split_at_mut(HEAD_BYTES.min(n / 2));
        let tail_len = (gpt::TAIL_SECTORS * SECTOR) as usize;
        let at = rest.len() - tail_len;
        let tail = &mut rest[at..];
        gpt::write(sectors, [7; 16], parts, head, tail).unwrap();
        d
    }

    fn window(&self) -> Window<'_> {
        let n = self.bytes.len();
        Window {
            head: &self.bytes[..HEAD_BYTES.min(n)],
            tail: &self.bytes[n - TAIL_BYTES.min(n)..],
            sectors: self.sectors(),
        }
    }

    fn flip(&mut self, byte: u64) {
        self.bytes[byte as usize] ^= 0x40;
    }
}

const MIB: u64 = 2048; // sectors

fn two() -> [NewPartition<'static>; 2] {
    [
        NewPartition {
            name: "store",
            first: MIB,
            sectors: 4 * MIB,
        },
        NewPartition {
            name: "scratch",
            first: 5 * MIB,
            sectors: 2 * MIB,
        },
    ]
}

#[test]
fn a_written_gpt_reads_back() {
    let d = Disk::gpt(8 * MIB, &two());
    let t = read(&d.window()).unwrap();
    assert_eq!(t.scheme, Scheme::Gpt);
    assert!(!t.notes.any(), "{:?}", t.notes);
    assert_eq!(t.count(), 128);
    let p = t.partition(1).unwrap();
    assert_eq!((p.index, p.first, p.sectors), (1, MIB, 4 * MIB));
    assert!(p.name.is("store") && !p.name.is("stor"));
    assert_eq!(std::format!("{}", t.partition(2).unwrap().name), "scratch");
    assert_eq!(t.partition(3), Err(PartitionError::Empty));
    assert_eq!(t.partition(0), Err(PartitionError::NoEntry { count: 128 }));
    assert_eq!(
        t.partition(129),
        Err(PartitionError::NoEntry { count: 128 })
    );
    assert_eq!(t.partitions().count(), 2);
    assert_eq!(t.usable(), (34, 8 * MIB - 34));
    // The protective MBR says GPT.
    let e = mbr::parse(&d.bytes[..512]).unwrap();
    assert_eq!((e[0].kind, e[0].first), (mbr::PROTECTIVE, 1));
}

#[test]
fn a_damaged_primary_is_read_from_the_backup_and_reported() {
    for at in [512 + 3, 512 + 40, 2 * 512 + 40] {
        let mut d = Disk::gpt(8 * MIB, &two());
        d.flip(at);
        let t = read(&d.window()).unwrap();
        assert!(t.notes.primary.is_some(), "byte {at}: {:?}", t.notes);
        assert_eq!(t.notes.backup, None);
        assert_eq!(t.partition(2).unwrap().first, 5 * MIB);
    }
    // A damaged backup is only reported.
    let mut d = Disk::gpt(8 * MIB, &two());
    let last = (8 * MIB - 1) * SECTOR;
    d.flip(last + 20);
    let t = read(&d.window()).unwrap();
    assert!(matches!(
        t.notes.backup,
        Some(gpt::HeaderError::HeaderCrc { .. })
    ));
    assert_eq!(t.notes.primary, None);
}

#[test]
fn both_headers_damaged_is_an_error_naming_both() {
    let mut d = Disk::gpt(8 * MIB, &two());
    d.flip(512 + 16);
    d.flip((8 * MIB - 33) * SECTOR + 40);
    match read(&d.window()) {
        Err(TableError::Gpt { primary, backup }) => {
            assert!(matches!(primary, gpt::HeaderError::HeaderCrc { .. }));
            assert!(matches!(backup, gpt::HeaderError::ArrayCrc { .. }));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn disagreeing_copies_are_reported() {
    let mut d = Disk::gpt(8 * MIB, &two());
    let other = Disk::gpt(8 * MIB, &two()[..1]);
    let tail = (gpt::TAIL_SECTORS * SECTOR) as usize;
    let n = d.bytes.len();
    d.bytes[n - tail..].copy_from_slice(&other.bytes[n - tail..]);
    let t = read(&d.window()).unwrap();
    assert!(t.notes.mismatch);
}

#[test]
fn a_blank_or_foreign_disk_has_no_table() {
    assert_eq!(
        read(&Disk::blank(MIB).window()).unwrap_err(),
        TableError::NoTable
    );
    let mut d = Disk::blank(MIB);
    d.bytes[..16].copy_from_slice(b"not a disk label");
    assert_eq!(read(&d.window()).unwrap_err(), TableError::NoTable);
    let w = Window {
        head: &[],
        tail: &[],
        sectors: 0,
    };
    assert_eq!(read(&w).unwrap_err(), TableError::Window);
}

#[test]
fn an_mbr_reads_back() {
    let mut d = Disk::blank(8 * MIB);
    mbr::write(8 * MIB, &two(), &mut d.bytes[..512]).unwrap();
    let t = read(&d.window()).unwrap();
    assert_eq!(t.scheme, Scheme::Mbr);
    assert_eq!(t.count(), 4);
    let p = t.partition(2).unwrap();
    assert_eq!(
        (p.first, p.sectors, p.name),
        (5 * MIB, 2 * MIB, Name::EMPTY)
    );
    assert_eq!(t.partition(3), Err(PartitionError::Empty));
    // An extended entry is not followed.
    d.bytes[446 + 16 * 2 + 4] = 0x05;
    d.bytes[446 + 16 * 2 + 12] = 1;
    let t = read(&d.window()).unwrap();
    assert_eq!(t.partition(3), Err(PartitionError::Extended));
}

#[test]
fn bad_entries_are_refused_one_by_one() {
    // Entries are written as the test says, then the checksums fixed, so
    // that only the entries are wrong.
    let mut d = Disk::gpt(8 * MIB, &two());
    let entry = 2 * 512;
    let set = |d: &mut Disk, i: usize, first: u64, last: u64| {
        let e = entry + i * 128;
        d.bytes[e + 32..e + 40].copy_from_slice(&first.to_le_bytes());
        d.bytes[e + 40..e + 48].copy_from_slice(&last.to_le_bytes());
    };
    // Entry 2 now overlaps entry 1; entry 3 ends before it starts; entry 4
    // runs past the usable area.
    set(&mut d, 1, 4 * MIB, 6 * MIB);
    d.bytes[entry + 2 * 128] = 1;
    set(&mut d, 2, 7 * MIB, 7 * MIB - 5);
    d.bytes[entry + 3 * 128] = 1;
    set(&mut d, 3, 7 * MIB, 8 * MIB);
    refresh_primary(&mut d);
    let t = read(&d.window()).unwrap();
    assert_eq!(t.partition(1), Err(PartitionError::Overlap { other: 2 }));
    assert_eq!(t.partition(2), Err(PartitionError::Overlap { other: 1 }));
    assert!(matches!(
        t.partition(3),
        Err(PartitionError::Reversed { .. })
    ));
    assert!(matches!(
        t.partition(4),
        Err(PartitionError::OutOfBounds { .. })
    ));
}

/// Recomputes the primary array's and header's checksums.
fn refresh_primary(d: &mut Disk) {
    let array = septa_crc32::crc32(&d.bytes[1024..1024 + 128 * 128]);
    d.bytes[512 + 88..512 + 92].copy_from_slice(&array.to_le_bytes());
    d.bytes[512 + 16..512 + 20].fill(0);
    let h = septa_crc32::crc32(&d.bytes[512..512 + 92]);
    d.bytes[512 + 16..512 + 20].copy_from_slice(&h.to_le_bytes());
}

#[test]
fn the_writers_refuse_what_they_cannot_write() {
    let mut head = vec![0u8; HEAD_BYTES];
    let mut tail = vec![0u8; TAIL_BYTES];
    let p = |first, sectors| NewPartition {
        name: "p",
        first,
        sectors,
    };
    assert_eq!(
        gpt::write(MIB, [0; 16], &[p(20, 10)], &mut head, &mut tail),
        Err(WriteError::Placement { index: 1 })
    );
    assert_eq!(
        gpt::write(
            MIB,
            [0; 16],
            &[p(100, 10), p(105, 10)],
            &mut head,
            &mut tail
        ),
        Err(WriteError::Placement { index: 2 })
    );
    assert_eq!(
        gpt::write(MIB, [0; 16], &[p(100, MIB)], &mut head, &mut tail),
        Err(WriteError::Placement { index: 1 })
    );
    let long = NewPartition {
        name: "a name of more than thirty-six characters",
        first: 100,
        sectors: 1,
    };
    assert_eq!(
        gpt::write(MIB, [0; 16], &[long], &mut head, &mut tail),
        Err(WriteError::Name { index: 1 })
    );
    assert_eq!(
        gpt::write(MIB, [0; 16], &[], &mut head[..100], &mut tail),
        Err(WriteError::Buffer)
    );
    assert_eq!(
        mbr::write(MIB, &[p(1, 1); 5], &mut head),
        Err(WriteError::TooMany { max: 4 })
    );
    assert_eq!(
        mbr::write(1 << 33, &[], &mut head),
        Err(WriteError::DiskSize)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random bytes in the first and last sectors never panic the reader,
    /// nor does any partition query.
    #[test]
    fn garbage_never_panics(
        head in proptest::collection::vec(any::<u8>(), 0..4096),
        tail in proptest::collection::vec(any::<u8>(), 0..2048),
        sectors in 0u64..100_000,
        gpt_sig in any::<bool>(),
        mbr_sig in any::<bool>(),
    ) {
        let mut head = head;
        if gpt_sig && head.len() >= 1024 {
            head[512..520].copy_from_slice(&gpt::SIGNATURE);
        }
        if mbr_sig && head.len() >= 512 {
            head[510] = 0x55;
            head[511] = 0xaa;
            head[446 + 4] = mbr::PROTECTIVE;
        }
        let w = Window { head: &head, tail: &tail, sectors };
        if let Ok(t) = read(&w) {
            for i in 0..=t.count().min(200) + 1 {
                let _ = t.partition(i);
            }
        }
    }

    /// Flipping any byte of a written GPT's head or tail either leaves a
    /// table whose partitions are unchanged (the flip hit padding, or the
    /// other copy took over) or is refused; never a different answer.
    #[test]
    fn one_flipped_byte_never_changes_the_partitions(at in 0u64..(34 * 512), in_tail in any::<bool>()) {
        let small = [
            NewPartition { name: "a", first: 64, sectors: 100 },
            NewPartition { name: "b", first: 200, sectors: 50 },
        ];
        let mut d = Disk::gpt(400, &small);
        let byte = if in_tail { d.bytes.len() as u64 - 33 * 512 + at.min(33 * 512 - 1) } else { at };
        d.flip(byte);
        if let Ok(t) = read(&d.window()) {
            prop_assert_eq!(t.partition(1).map(|p| (p.first, p.sectors)), Ok((64, 100)));
            prop_assert_eq!(t.partition(2).map(|p| (p.first, p.sectors)), Ok((200, 50)));
        }
    }
}

/// util-linux's libblkid, where the host has it, finds the tables this
/// crate writes (it checks GPT's checksums too).
#[test]
fn blkid_recognises_what_is_written() {
    let blkid = ["/usr/sbin/blkid", "/sbin/blkid", "/usr/bin/blkid"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(blkid) = blkid else {
        std::eprintln!("no blkid on this host: skipped");
        return;
    };
    let dir = std::env::temp_dir().join(std::format!("septa-partition-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gpt = Disk::gpt(8 * MIB, &two());
    let mut mbr = Disk::blank(8 * MIB);
    mbr::write(8 * MIB, &two(), &mut mbr.bytes[..512]).unwrap();
    for (name, disk, want) in [
        ("gpt.img", gpt, "PTTYPE=gpt"),
        ("mbr.img", mbr, "PTTYPE=dos"),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, &disk.bytes).unwrap();
        let out = std::process::Command::new(blkid)
            .args(["-p", "-o", "export"])
            .arg(&path)
            .output()
            .unwrap();
        let text = std::string::String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(want), "{name}: blkid says {text:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
