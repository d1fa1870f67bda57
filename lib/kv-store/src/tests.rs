//! The store against a model, through power cuts at every moment.
extern crate std;

use std::boxed::Box;
use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;

/// A disk in memory with a volatile write cache: writes go to a cache
/// and reach the durable image only at a flush; a power cut keeps any
/// subset of the cached writes' 512-byte sectors (in order), as a real
/// disk losing power may. After `budget` operations it loses power: every
/// call fails from then on.
struct MemDisk {
    durable: Vec<u8>,
    /// Writes since the last flush: (byte offset, bytes).
    cache: Vec<(usize, Vec<u8>)>,
    budget: Option<usize>,
    ops: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut;

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("power cut")
    }
}

impl MemDisk {
    fn new(blocks: u64) -> MemDisk {
        MemDisk::from_image(vec![0; blocks as usize * BLOCK])
    }

    fn from_image(durable: Vec<u8>) -> MemDisk {
        MemDisk {
            durable,
            cache: Vec::new(),
            budget: None,
            ops: 0,
        }
    }

    fn tick(&mut self) -> Result<(), Cut> {
        self.ops += 1;
        match self.budget {
            Some(b) if self.ops > b => Err(Cut),
            _ => Ok(()),
        }
    }

    /// The image after the power cut: the durable bytes and, of each
    /// cached write in turn, the sectors `keep` says.
    fn after_cut(&self, mut keep: impl FnMut() -> bool) -> Vec<u8> {
        let mut img = self.durable.clone();
        for (at, bytes) in &self.cache {
            for (i, sector) in bytes.chunks(512).enumerate() {
                if keep() {
                    let o = at + i * 512;
                    img[o..o + sector.len()].copy_from_slice(sector);
                }
            }
        }
        img
    }

    /// What a read sees: durable bytes under the cache.
    fn view(&self, at: usize, out: &mut [u8]) {
        out.copy_from_slice(&self.durable[at..at + out.len()]);
        for (w, bytes) in &self.cache {
            let (lo, hi) = ((*w).max(at), (w + bytes.len()).min(at + out.len()));
            if lo < hi {
                out[lo - at..hi - at].copy_from_slice(&bytes[lo - w..hi - w]);
            }
        }
    }
}

impl Disk for MemDisk {
    type Error = Cut;
    fn blocks(&self) -> u64 {
        (self.durable.len() / BLOCK) as u64
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), Cut> {
        self.tick()?;
        self.view(block as usize * BLOCK, buf);
        Ok(())
    }
    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), Cut> {
        self.tick()?;
        assert!(buf.len().is_multiple_of(BLOCK));
        self.cache.push((block as usize * BLOCK, buf.to_vec()));
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Cut> {
        self.tick()?;
        for (at, bytes) in self.cache.drain(..) {
            self.durable[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        Ok(())
    }
}

/// The store's memory (170 KiB: on the heap, one per test, lent to each
/// store the test opens in turn).
fn state() -> Box<State> {
    Box::new(State::new())
}

fn value(key: u8, version: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(31)
                .wrapping_add(version * 7 + u32::from(key)) as u8
        })
        .collect()
}

fn get(s: &mut Store<'_, MemDisk>, key: &[u8]) -> Option<Vec<u8>> {
    let mut out = vec![0u8; MAX_VALUE];
    match s.get(key, &mut out) {
        Ok(n) => Some(out[..n].to_vec()),
        Err(Error::NotFound) => None,
        Err(e) => panic!("get {key:?}: {e}"),
    }
}

#[test]
fn puts_gets_deletes_and_lists_survive_a_reopen() {
    let mut st = state();
    let (mut s, rec) = Store::open(&mut st, MemDisk::new(400), 1).unwrap();
    assert!(rec.formatted && rec.records == 0 && rec.mount == 1);
    s.put(b"alpha", b"one").unwrap();
    s.put(b"beta", &value(1, 1, MAX_VALUE)).unwrap();
    s.put(b"gamma", b"").unwrap();
    s.put(b"alpha", b"uno").unwrap();
    s.delete(b"gamma").unwrap();
    assert_eq!(s.delete(b"gamma"), Err(Error::NotFound));
    let mut keys = Vec::new();
    s.list(b"", |k| {
        keys.push(k.to_vec());
        true
    });
    assert_eq!(keys, [b"alpha".to_vec(), b"beta".to_vec()]);
    let mut after = Vec::new();
    s.list(b"alpha", |k| {
        after.push(k.to_vec());
        true
    });
    assert_eq!(after, [b"beta".to_vec()]);
    let img = s.disk().durable.clone();
    let (mut s, rec) = Store::open(&mut st, MemDisk::from_image(img), 2).unwrap();
    assert!(!rec.formatted);
    assert_eq!(
        (rec.records, rec.keys, rec.end, rec.lost, rec.mount),
        (5, 2, End::Clean, 0, 2)
    );
    assert_eq!(get(&mut s, b"alpha").unwrap(), b"uno");
    assert_eq!(get(&mut s, b"beta").unwrap(), value(1, 1, MAX_VALUE));
    assert_eq!(get(&mut s, b"gamma"), None);
}

#[test]
fn lengths_are_checked() {
    let mut st = state();
    let (mut s, _) = Store::open(&mut st, MemDisk::new(200), 1).unwrap();
    assert_eq!(s.put(b"", b"x"), Err(Error::Key));
    assert_eq!(s.put(&[b'k'; MAX_KEY + 1], b"x"), Err(Error::Key));
    assert_eq!(s.put(b"k", &vec![0; MAX_VALUE + 1]), Err(Error::Value));
    s.put(&[b'k'; MAX_KEY], &vec![9; MAX_VALUE]).unwrap();
}

#[test]
fn compaction_keeps_the_log_bounded_through_many_laps() {
    let mut st = state();
    // 100 log blocks, values of 1..6 blocks rewritten 2,000 times.
    let (mut s, _) = Store::open(&mut st, MemDisk::new(SUPER_BLOCKS + 100), 7).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..2000u32 {
        let key = [b'k', (i % 7) as u8];
        let v = value(key[1], i, (i as usize * 977) % (5 * 4096));
        s.put(&key, &v).unwrap();
        model.insert(key, v);
        if i % 13 == 0 {
            let gone = [b'k', ((i / 13) % 7) as u8];
            if model.remove(&gone).is_some() {
                s.delete(&gone).unwrap();
            }
        }
    }
    let u = s.usage();
    assert!(u.used_blocks <= u.log_blocks);
    for (k, v) in &model {
        assert_eq!(get(&mut s, k).as_ref(), Some(v));
    }
    let img = s.disk().durable.clone();
    let (mut s, rec) = Store::open(&mut st, MemDisk::from_image(img), 7).unwrap();
    assert_eq!((rec.end, rec.keys), (End::Clean, model.len()));
    for (k, v) in &model {
        assert_eq!(get(&mut s, k).as_ref(), Some(v));
    }
}

#[test]
fn a_full_store_refuses_and_keeps_working() {
    let mut st = state();
    let (mut s, _) = Store::open(&mut st, MemDisk::new(SUPER_BLOCKS + 80), 1).unwrap();
    let big = vec![1u8; MAX_VALUE];
    let mut stored = 0;
    for k in 0..10u8 {
        match s.put(&[k], &big) {
            Ok(()) => stored += 1,
            Err(Error::Full) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!((1..10).contains(&stored));
    s.put(&[0], b"small now").unwrap();
    s.put(&[100], b"fits").unwrap();
    assert_eq!(get(&mut s, &[100]).unwrap(), b"fits");
}

#[test]
fn foreign_blank_and_resized_disks() {
    let mut st = state();
    // A foreign disk: refused, and not written.
    let mut img = vec![0u8; 200 * BLOCK];
    img[..16].copy_from_slice(b"ext4? no: mine!!");
    let before = img.clone();
    let mut d = MemDisk::from_image(img);
    match Store::open(&mut st, &mut d, 1) {
        Err(OpenError::Foreign {
            first: SuperError::Foreign,
            second: SuperError::Blank,
        }) => {}
        other => panic!("{:?}", other.map(|(_, r)| r)),
    }
    assert!(
        d.cache.is_empty() && d.durable == before,
        "a refused disk is not written"
    );
    // A store made for another size.
    let (mut s, _) = Store::open(&mut st, MemDisk::new(200), 1).unwrap();
    s.put(b"k", b"v").unwrap();
    let mut img = s.disk().durable.clone();
    img.resize(300 * BLOCK, 0);
    assert!(matches!(
        Store::open(&mut st, MemDisk::from_image(img), 1),
        Err(OpenError::Geometry {
            made_for: 198,
            have: 298
        })
    ));
    assert!(matches!(
        Store::open(&mut st, MemDisk::new(10), 1),
        Err(OpenError::TooSmall { blocks: 10 })
    ));
}

impl Disk for &mut MemDisk {
    type Error = Cut;
    fn blocks(&self) -> u64 {
        (**self).blocks()
    }
    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), Cut> {
        (**self).read(block, buf)
    }
    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), Cut> {
        (**self).write(block, buf)
    }
    fn flush(&mut self) -> Result<(), Cut> {
        (**self).flush()
    }
}

#[test]
fn a_damaged_superblock_copy_is_reported_and_the_other_used() {
    let mut st = state();
    let (mut s, _) = Store::open(&mut st, MemDisk::new(200), 1).unwrap();
    s.put(b"k", b"v").unwrap();
    let mut img = s.disk().durable.clone();
    // The newer copy (mount 1's commit wrote seq 2, in slot 0) is torn.
    img[20] ^= 0xff;
    let (mut s, rec) = Store::open(&mut st, MemDisk::from_image(img), 1).unwrap();
    assert_eq!(rec.super_damaged, Some((0, SuperError::Checksum)));
    assert_eq!(rec.checksum_failures(), 1);
    assert_eq!(get(&mut s, b"k").unwrap(), b"v");
}

#[test]
fn damage_inside_the_log_is_reported_with_what_it_cost() {
    let mut st = state();
    let (mut s, _) = Store::open(&mut st, MemDisk::new(200), 1).unwrap();
    for k in 0..10u8 {
        s.put(&[k], &value(k, 0, 100)).unwrap();
    }
    let mut img = s.disk().durable.clone();
    // Record 4's payload (log block 4, one block each).
    img[(SUPER_BLOCKS as usize + 4) * BLOCK + 100] ^= 1;
    let (mut s, rec) = Store::open(&mut st, MemDisk::from_image(img), 1).unwrap();
    assert!(
        matches!(rec.end, End::TornRecord { block: 4, .. }),
        "{rec:?}"
    );
    assert_eq!(rec.lost, 5, "records 5..=9 follow the damage");
    assert_eq!(rec.keys, 4);
    for k in 0..4u8 {
        assert_eq!(get(&mut s, &[k]).unwrap(), value(k, 0, 100));
    }
    // The store goes on from the consistent prefix; the records stranded
    // after the damage never come back.
    s.put(b"new", b"after").unwrap();
    let img = s.disk().durable.clone();
    let (mut s, rec) = Store::open(&mut st, MemDisk::from_image(img), 1).unwrap();
    assert_eq!((rec.end, rec.keys), (End::Clean, 5));
    assert_eq!(get(&mut s, &[7]), None);
    assert_eq!(get(&mut s, b"new").unwrap(), b"after");
}

#[test]
fn a_destroyed_record_start_is_reported_even_as_the_last_record() {
    let mut st = state();
    let (mut s, _) = Store::open(&mut st, MemDisk::new(200), 1).unwrap();
    for k in 0..10u8 {
        s.put(&[k], &value(k, 0, 100)).unwrap();
    }
    let img = s.disk().durable.clone();
    // Random-looking bytes over the first bytes (the tag) of record 4's
    // block, then of the last record's (no checksum fails: no header).
    for (block, lost) in [(4usize, 5u64), (9, 0)] {
        let mut img = img.clone();
        let at = (SUPER_BLOCKS as usize + block) * BLOCK;
        img[at..at + 16].copy_from_slice(b"\x13\x99junk, junk!!!!");
        let (_, rec) = Store::open(&mut st, MemDisk::from_image(img), 1).unwrap();
        assert_eq!(
            rec.end,
            End::Unrecognised {
                block: block as u64
            }
        );
        assert_eq!(
            (rec.lost, rec.keys, rec.checksum_failures()),
            (lost, block, 1)
        );
    }
    // A log that ends at zeros, or at an older record, ends cleanly.
    let (_, rec) = Store::open(&mut st, MemDisk::from_image(img), 1).unwrap();
    assert_eq!(rec.end, End::Clean);
}

/// A key's state: (version, length), or absent.
type Value = Option<(u32, usize)>;
/// The operation a cut interrupted: its key and what it would have left.
type InFlight = Option<(u8, Value)>;

/// One operation of a workload.
#[derive(Clone, Debug)]
enum Op {
    Put(u8, usize),
    Delete(u8),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (0u8..12, prop_oneof![4 => 0usize..200, 4 => 0usize..9000, 1 => Just(MAX_VALUE)]).prop_map(|(k, n)| Op::Put(k, n)),
        1 => (0u8..12).prop_map(Op::Delete),
    ];
    proptest::collection::vec(op, 1..40)
}

/// Runs `ops` on a store until the disk loses power after `cut` device
/// operations; returns the image after the cut (sectors of unflushed
/// writes kept as `keep` says), what was acknowledged, and the operation
/// in flight.
fn run_until_cut(
    st: &mut State,
    image: Vec<u8>,
    ops: &[Op],
    cut: usize,
    mut keep: impl FnMut() -> bool,
    model: &mut BTreeMap<u8, (u32, usize)>,
    version: &mut u32,
) -> (Vec<u8>, InFlight) {
    let mut disk = MemDisk::from_image(image);
    disk.budget = Some(cut);
    let mut in_flight = None;
    if let Ok((mut s, rec)) = Store::open(st, &mut disk, 3) {
        assert_eq!(rec.lost, 0, "a cut never strands records");
        for op in ops {
            *version += 1;
            let (key, after) = match *op {
                Op::Put(k, n) => (k, Some((*version, n))),
                Op::Delete(k) => (k, None),
            };
            let r = match after {
                Some((v, n)) => s.put(&[key], &value(key, v, n)),
                None => match s.delete(&[key]) {
                    Err(Error::NotFound) if !model.contains_key(&key) => Ok(()),
                    r => r,
                },
            };
            match r {
                Ok(()) => {
                    match after {
                        Some(a) => model.insert(key, a),
                        None => model.remove(&key),
                    };
                }
                Err(Error::Disk(Cut)) => {
                    in_flight = Some((key, after));
                    break;
                }
                Err(Error::Full) => {}
                Err(e) => panic!("{op:?}: {e}"),
            }
        }
    }
    (disk.after_cut(&mut keep), in_flight)
}

/// Two values, briefly.
fn show(got: &Option<Vec<u8>>, want: &Option<Vec<u8>>) -> std::string::String {
    let b = |v: &Option<Vec<u8>>| {
        v.as_ref()
            .map(|v| (v.len(), v.iter().take(4).copied().collect::<Vec<u8>>()))
    };
    std::format!("got {:?}, want {:?}", b(got), b(want))
}

/// What the store must hold after a cut.
fn check_after_cut(
    st: &mut State,
    image: Vec<u8>,
    model: &mut BTreeMap<u8, (u32, usize)>,
    in_flight: InFlight,
) -> Vec<u8> {
    let (mut s, rec) = Store::open(st, MemDisk::from_image(image), 3).expect("a cut disk opens");
    assert_eq!(rec.lost, 0, "a cut never strands records: {rec:?}");
    for k in 0..12u8 {
        let got = get(&mut s, &[k]);
        let want = model.get(&k).map(|&(v, n)| value(k, v, n));
        match in_flight {
            Some((fk, after)) if fk == k => {
                let new = after.map(|(v, n)| value(k, v, n));
                assert!(
                    got == want || got == new,
                    "key {k}: in flight, got neither old nor new: {}",
                    show(&got, &want)
                );
                // What recovery says is what the store holds from now on.
                match (got == new, after) {
                    (true, Some(a)) => {
                        model.insert(k, a);
                    }
                    (true, None) => {
                        model.remove(&k);
                    }
                    _ => {}
                }
            }
            _ => assert!(
                got == want,
                "key {k}: an acknowledged operation is lost: {}",
                show(&got, &want)
            ),
        }
    }
    s.disk().durable.clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Power cuts at random moments of random workloads, each cut keeping
    /// a random subset of the unflushed sectors; five cuts in a row on the
    /// same disk, a small one so that compaction runs through them.
    #[test]
    fn every_acknowledged_operation_survives_any_cut(
        rounds in proptest::collection::vec((ops(), 0usize..400, any::<u64>()), 5),
    ) {
        let mut st = state();
        let mut image = vec![0u8; (SUPER_BLOCKS as usize + 120) * BLOCK];
        let mut model = BTreeMap::new();
        let mut version = 0;
        for (ops, cut, seed) in rounds {
            let mut rng = seed | 1;
            let keep = move || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % 3 != 0
            };
            let (img, in_flight) = run_until_cut(&mut st, image, &ops, cut, keep, &mut model, &mut version);
            image = check_after_cut(&mut st, img, &mut model, in_flight);
        }
    }

    /// Random bytes anywhere on a store's disk: opening refuses it or
    /// recovers; a value is either one that was stored, byte for byte, or
    /// a reported checksum failure. Never a panic.
    #[test]
    fn random_damage_is_refused_or_reported(
        spots in proptest::collection::vec((0usize..(SUPER_BLOCKS as usize + 100) * BLOCK, any::<u8>(), 1usize..600), 1..8),
    ) {
        let mut st = state();
        let (mut s, _) = Store::open(&mut st, MemDisk::new(SUPER_BLOCKS + 100), 5).unwrap();
        for k in 0..8u8 {
            s.put(&[k], &value(k, 1, usize::from(k) * 1500)).unwrap();
        }
        let mut img = s.disk().durable.clone();
        for (at, byte, len) in spots {
            let end = (at + len).min(img.len());
            for b in &mut img[at..end] {
                *b = byte ^ (*b).rotate_left(3);
            }
        }
        if let Ok((mut s, _)) = Store::open(&mut st, MemDisk::from_image(img), 5) {
            for k in 0..8u8 {
                let mut out = vec![0u8; MAX_VALUE];
                match s.get(&[k], &mut out) {
                    Ok(n) => prop_assert_eq!(&out[..n], &value(k, 1, usize::from(k) * 1500)[..]),
                    Err(Error::NotFound) | Err(Error::Corrupt { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}
