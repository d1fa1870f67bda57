//! # kv: the key-value cell
//!
//! A workload PD that keeps keys and values on a block partition and
//! serves them to its clients over protected procedure calls
//! (`septa-kv-protocol`: put, get, delete, list, status). The store is
//! `septa-kv-store`'s log (its header states the on-disk format and why it
//! is crash-consistent); this PD is the glue:
//!
//! - **Its disk** is the partition a `[blk]` section gives it
//!   (`septa-block-protocol`). Each disk operation is sent to the
//!   virtualiser and waited for on the PD's own notification
//!   ([`OwnNotification`], from a `notification` cap in slot 1), inside the
//!   protected call: the caller stays blocked until its put is on the disk
//!   and flushed, while other callers queue on the endpoint.
//! - **At start** it recovers the store and logs what recovery found: how
//!   many records and keys, how the log ended (a torn record at the end is
//!   the trace of a power cut, and is reported as the checksum failure it
//!   is), damage and what it cost. A blank partition is formatted; a
//!   foreign or ruined one is **refused**: every call is answered
//!   [`Status::Unavailable`] and nothing is written to the disk.
//! - **Each call** is checked: a channel without a buffer, an unknown
//!   label, lengths out of range get an error status, never a fault. The
//!   request's key and value are copied from the client's buffer once,
//!   into the store's own record (its checksum is taken there), so a client
//!   writing its buffer meanwhile stores some whole value, never a torn one.
//!
//! Owns: its partition's contents. Must not: touch anything but its
//! partition and its clients' buffers; it has no `unsafe` (the runtime,
//! the protocols and `spin` hold what little there is).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use core::fmt;

use septa_block_protocol::{Connection, RequestCode, Status as BlkStatus, TRANSFER_SIZE};
use septa_cells::counters::{Counters, Kind};
use septa_cells::kv;
use septa_kv_protocol::{
    Buffers, Status, DELETE, GET, KEY_AT, LIST, MAX_CHANNELS, MAX_KEY, MAX_VALUE, PUT, STATUS,
    VALUE_AT,
};
use septa_kv_store::{Disk, End, Error, OpenError, Recovery, State, Store};
use septa_queue::Shared;
use septa_runtime::{
    mr_get, mr_set, println, protection_domain, Channel, ChannelSet, Handler, MessageInfo,
    OwnNotification,
};

/// The store's memory, in a static (it is too large for the stack).
static STATE: spin::Mutex<State> = spin::Mutex::new(State::new());

/// Where the description puts the PD's own notification.
const WAIT_SLOT: u64 = 1;

/// Seed of a new store's id (mixed with what the partition held).
const SEED: u64 = 0x5e97_a4b5_0000_0001;

/// Why a disk operation failed.
#[derive(Clone, Copy, Debug)]
enum DiskError {
    /// The virtualiser or driver answered with this status.
    Status(BlkStatus),
    /// A request would not fit the queue.
    Queue,
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::Status(s) => write!(f, "the disk answered {s:?}"),
            DiskError::Queue => f.write_str("the request queue is full"),
        }
    }
}

/// The partition, through the block connection, one request at a time.
struct BlockDisk {
    c: Connection,
    wait: OwnNotification,
    blocks: u64,
    /// Blocks the data region holds (a request's most).
    chunk: u64,
    next: u32,
}

impl BlockDisk {
    /// One request, waited for.
    fn request(&mut self, code: RequestCode, block: u64, count: u16) -> Result<(), DiskError> {
        self.next = self.next.wrapping_add(1);
        let id = self.next;
        self.c
            .stage(code, 0, block, count, id)
            .map_err(|_| DiskError::Queue)?;
        let wait = self.wait;
        let mut status = BlkStatus::Unspecified;
        let ok = self.c.complete(
            1,
            || {
                wait.wait();
            },
            |r| {
                if r.id == id {
                    status = r.status;
                }
            },
        );
        match (ok, status) {
            (Ok(()), BlkStatus::Ok) => Ok(()),
            (Ok(()), s) => Err(DiskError::Status(s)),
            (Err(_), _) => Err(DiskError::Status(BlkStatus::Unspecified)),
        }
    }
}

impl Disk for BlockDisk {
    type Error = DiskError;

    fn blocks(&self) -> u64 {
        self.blocks
    }

    fn read(&mut self, block: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let bs = TRANSFER_SIZE as usize;
        for (i, piece) in buf.chunks_mut(self.chunk as usize * bs).enumerate() {
            let at = block + (i as u64) * self.chunk;
            self.request(RequestCode::Read, at, (piece.len() / bs) as u16)?;
            let _ = self.c.data().read(0, piece);
        }
        Ok(())
    }

    fn write(&mut self, block: u64, buf: &[u8]) -> Result<(), DiskError> {
        let bs = TRANSFER_SIZE as usize;
        for (i, piece) in buf.chunks(self.chunk as usize * bs).enumerate() {
            let at = block + (i as u64) * self.chunk;
            let _ = self.c.data().write(0, piece);
            self.request(RequestCode::Write, at, (piece.len() / bs) as u16)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        self.request(RequestCode::Flush, 0, 0)
    }
}

struct Kv {
    /// The store, or why there is none.
    store: Result<Store<'static, BlockDisk>, &'static str>,
    /// Puts refused for a quota, per channel (counted for the log, which
    /// says so at each power of two, not at each).
    refused: [u64; MAX_CHANNELS],
    /// Each client's counters (by the channel its calls come on), the
    /// page `[stats]` exports them in, and each channel's entry.
    counters: Counters<MAX_COUNTED>,
    page: Option<Shared>,
    entry: [Option<u8>; MAX_CHANNELS],
}

/// Clients counted (the page holds more; a store has a few).
const MAX_COUNTED: usize = 32;
/// The counters' fields (`septa_cells::counters::Kind::Kv`).
const GETS: usize = 0;
const PUTS: usize = 1;
const DELETES: usize = 2;
const REFUSED: usize = 3;
const QUOTA_REFUSED: usize = 4;
const BYTES: usize = 5;

/// Keys in namespace `ns` and what they charge against its quota (the
/// keys sort together, after `ns/`).
fn usage(store: &Store<'static, BlockDisk>, ns: &[u8]) -> (u64, u64) {
    let mut start = [0u8; MAX_KEY];
    let n = ns.len().min(MAX_KEY - 1);
    start[..n].copy_from_slice(&ns[..n]);
    start[n] = kv::SEPARATOR;
    let (mut keys, mut bytes) = (0u64, 0u64);
    store.list(&start[..n + 1], |k| match kv::strip(ns, k) {
        Some(own) => {
            keys += 1;
            bytes += kv::charge(own.len(), store.len_of(k).unwrap_or(0));
            true
        }
        None => false,
    });
    (keys, bytes)
}

fn status_of(e: Error<DiskError>) -> Status {
    match e {
        Error::Disk(_) => Status::Io,
        Error::Key => Status::KeyLength,
        Error::Value => Status::ValueLength,
        Error::NotFound => Status::NotFound,
        Error::Full | Error::TooManyKeys => Status::Full,
        Error::Corrupt { .. } => Status::Corrupt,
    }
}

impl Kv {
    fn serve(&mut self, ch: Channel, label: u64) -> Result<u64, Status> {
        let buf = Buffers::of(ch).ok_or(Status::BadRequest)?;
        let store = self.store.as_mut().map_err(|_| Status::Unavailable)?;
        let key_len = mr_get(0) as usize;
        let mut key = [0u8; MAX_KEY];
        let with_key = matches!(label, PUT | GET | DELETE);
        if with_key && !(1..=MAX_KEY).contains(&key_len) {
            return Err(Status::KeyLength);
        }
        if label == LIST && key_len > MAX_KEY {
            return Err(Status::KeyLength);
        }
        let key = &mut key[..key_len.min(MAX_KEY)];
        let _ = buf.read(KEY_AT, key);
        // A cell's keys live under its namespace: it names them without
        // the prefix, and cannot name another's.
        let ns = Buffers::namespace(ch);
        let mut full = [0u8; MAX_KEY];
        let key: &[u8] = match &ns {
            None => key,
            Some(_) if !with_key && (label != LIST || key.is_empty()) => key,
            Some((n, _)) => {
                kv::stored_key(n.as_str().as_bytes(), key, &mut full).ok_or(Status::KeyLength)?
            }
        };
        let failed = |op: &str, e: Error<DiskError>| {
            if let Error::Corrupt { .. } | Error::Disk(_) = e {
                println!(
                    "kv: {op} of {:?} for `{}`: {e}",
                    Key(key),
                    Buffers::name(ch)
                );
            }
            status_of(e)
        };
        match label {
            PUT => {
                let len = mr_get(1) as usize;
                if len > MAX_VALUE || VALUE_AT + len > buf.len() {
                    return Err(Status::ValueLength);
                }
                if let Some((n, quota)) = &ns {
                    let n = n.as_str().as_bytes();
                    let own = kv::strip(n, key).map_or(0, <[u8]>::len);
                    let replaced = store.len_of(key).map_or(0, |v| kv::charge(own, v));
                    let after = usage(store, n).1 - replaced + kv::charge(own, len);
                    if after > *quota {
                        let refused = &mut self.refused[usize::from(ch.id()) % MAX_CHANNELS];
                        *refused += 1;
                        if refused.is_power_of_two() {
                            println!(
                                "kv: `{}` is at its quota of {quota} bytes: {refused} puts refused",
                                Buffers::name(ch),
                            );
                        }
                        return Err(Status::Quota);
                    }
                }
                store
                    .put_with(key, len, |at, piece| {
                        let _ = buf.read(VALUE_AT + at, piece);
                    })
                    .map_err(|e| failed("put", e))?;
                Ok(0)
            }
            GET => {
                let len = store.len_of(key).ok_or(Status::NotFound)?;
                if VALUE_AT + len > buf.len() {
                    return Err(Status::ValueLength);
                }
                let n = store
                    .get_with(key, |at, piece| {
                        let _ = buf.write(VALUE_AT + at, piece);
                    })
                    .map_err(|e| failed("get", e))?;
                mr_set(0, n as u64);
                Ok(1)
            }
            DELETE => {
                store.delete(key).map_err(|e| failed("delete", e))?;
                Ok(0)
            }
            LIST => {
                let (mut at, mut count, mut more) = (VALUE_AT, 0u64, false);
                // A cell lists its namespace from after its key (or from
                // its start), and sees its keys without the prefix.
                let mut start = [0u8; MAX_KEY + 1];
                let (after, n) = match &ns {
                    None => (key, None),
                    Some((n, _)) if key.is_empty() => {
                        let n = n.as_str().as_bytes();
                        start[..n.len()].copy_from_slice(n);
                        start[n.len()] = kv::SEPARATOR;
                        (&start[..n.len() + 1], Some(n))
                    }
                    Some((n, _)) => (key, Some(n.as_str().as_bytes())),
                };
                store.list(after, |k| {
                    let k = match n {
                        None => k,
                        Some(n) => match kv::strip(n, k) {
                            Some(k) => k,
                            None => return false,
                        },
                    };
                    if at + 1 + k.len() > buf.len() {
                        more = true;
                        return false;
                    }
                    let _ = buf.write(at, &[k.len() as u8]);
                    let _ = buf.write(at + 1, k);
                    at += 1 + k.len();
                    count += 1;
                    true
                });
                mr_set(0, count);
                mr_set(1, u64::from(more));
                Ok(2)
            }
            STATUS if ns.is_some() => {
                // A cell learns of its own namespace only: its keys, the
                // bytes they take, its quota.
                let (n, quota) = ns
                    .as_ref()
                    .map(|(n, q)| (n.as_str().as_bytes(), *q))
                    .unwrap_or_default();
                let (keys, bytes) = usage(store, n);
                let words = [keys, bytes, quota];
                for (i, v) in words.into_iter().enumerate() {
                    mr_set(i, v);
                }
                Ok(words.len() as u64)
            }
            STATUS => {
                let u = store.usage();
                let words = [
                    u.keys as u64,
                    u.log_blocks,
                    u.used_blocks,
                    u.live_blocks,
                    u.mount,
                ];
                for (i, v) in words.into_iter().enumerate() {
                    mr_set(i, v);
                }
                Ok(words.len() as u64)
            }
            _ => Err(Status::BadRequest),
        }
    }
}

impl Kv {
    /// A fresh PD with counters for every wired client.
    fn new(store: Result<Store<'static, BlockDisk>, &'static str>) -> Kv {
        let mut counters = Counters::new(Kind::Kv);
        let mut entry = [None; MAX_CHANNELS];
        for (id, e) in entry.iter_mut().enumerate() {
            let ch = Channel::new(id as u8);
            if Buffers::of(ch).is_some() {
                *e = counters.add(Buffers::name(ch).as_str()).map(|i| i as u8);
            }
        }
        let mut kv = Kv {
            store,
            refused: [0; MAX_CHANNELS],
            counters,
            page: Buffers::counters_page(),
            entry,
        };
        for id in 0..MAX_CHANNELS {
            kv.count_bytes(Channel::new(id as u8));
        }
        kv.publish();
        kv
    }

    /// What the namespace of the client on `ch` holds, into its counters
    /// (a walk of its keys: only where the counters are exported).
    fn count_bytes(&mut self, ch: Channel) {
        if self.page.is_none() {
            return;
        }
        let (Some(Some(i)), Some((n, _)), Ok(store)) = (
            self.entry.get(usize::from(ch.id())),
            Buffers::namespace(ch),
            self.store.as_ref(),
        ) else {
            return;
        };
        let bytes = usage(store, n.as_str().as_bytes()).1;
        self.counters.set(usize::from(*i), BYTES, bytes);
    }

    /// Counts the answer `r` to `label` from `ch`.
    fn count(&mut self, ch: Channel, label: u64, r: &Result<u64, Status>) {
        let Some(Some(i)) = self.entry.get(usize::from(ch.id())) else {
            return;
        };
        let i = usize::from(*i);
        let field = match (r, label) {
            (Ok(_), GET) => GETS,
            (Ok(_), PUT) => PUTS,
            (Ok(_), DELETE) => DELETES,
            (Ok(_), _) | (Err(Status::NotFound), _) => return,
            (Err(Status::Quota), _) => {
                self.counters.add_to(i, QUOTA_REFUSED, 1);
                REFUSED
            }
            (Err(_), _) => REFUSED,
        };
        self.counters.add_to(i, field, 1);
        if r.is_ok() && matches!(label, PUT | DELETE) {
            self.count_bytes(ch);
        }
    }

    fn publish(&mut self) {
        let Some(page) = &self.page else { return };
        let name = septa_runtime::pd_name();
        self.counters.publish(name.as_str(), |at, bytes| {
            let _ = page.write(at, bytes);
        });
    }
}

impl Handler for Kv {
    fn protected(&mut self, ch: Channel, msg: MessageInfo) -> MessageInfo {
        let r = self.serve(ch, msg.label());
        self.count(ch, msg.label(), &r);
        self.publish();
        match r {
            Ok(n) => Status::Ok.reply(n),
            Err(s) => s.reply(0),
        }
    }

    /// Responses arrive while a call waits for them; a notification left
    /// over from the last one needs nothing.
    fn notified(&mut self, _: ChannelSet) {}
}

/// A key as text where it is, bytes otherwise.
struct Key<'a>(&'a [u8]);

impl fmt::Debug for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.0) {
            Ok(s) => write!(f, "{s:?}"),
            Err(_) => write!(f, "{:02x?}", self.0),
        }
    }
}

/// One line per fact recovery found.
fn report(r: &Recovery, blocks: u64) {
    if r.formatted {
        println!("kv: the partition ({blocks} blocks) was blank: formatted a new store");
    }
    if let Some((copy, e)) = r.super_damaged {
        println!("kv: superblock copy {copy} is unusable ({e:?}); the other one was used");
    }
    println!(
        "kv: recovered {} records, {} keys (sequence {}..{}), mount {}",
        r.records, r.keys, r.head_seq, r.next_seq, r.mount
    );
    match r.end {
        End::Clean => {}
        End::TornHeader { block } => println!(
            "kv: checksum failure: the record header at log block {block} is torn; the log ends before it"
        ),
        End::TornRecord { block, seq } => println!(
            "kv: checksum failure: record {seq} at log block {block} is torn; the log ends before it"
        ),
        End::Unrecognised { block } => println!(
            "kv: checksum failure: log block {block}, where the next record goes, is neither blank nor an older record (damage or foreign data); the log ends before it"
        ),
    }
    if r.lost > 0 {
        println!(
            "kv: DAMAGE: {} intact records follow the damaged one: they are lost (the store goes on from the last consistent state)",
            r.lost
        );
    }
    println!("kv: {} checksum failure(s) at start", r.checksum_failures());
}

fn init() -> Kv {
    let wait = OwnNotification::in_slot(WAIT_SLOT).expect("slot 1 is an extra-cap slot");
    let c = match Connection::from_setvars() {
        Ok(c) => c,
        Err(e) => {
            println!("kv: no disk: {e}; every call is refused");
            return Kv::new(Err("no disk"));
        }
    };
    let info = loop {
        match c.info() {
            Some(i) => break i,
            None => {
                wait.wait();
            }
        }
    };
    if info.capacity == 0 {
        println!("kv: the virtualiser gives this cell no partition; every call is refused");
        return Kv::new(Err("no partition"));
    }
    let chunk = (c.data().len() / TRANSFER_SIZE as usize) as u64;
    let disk = BlockDisk {
        c,
        wait,
        blocks: info.capacity,
        chunk: chunk.min(u64::from(u16::MAX)),
        next: 0,
    };
    let state = spin::MutexGuard::leak(STATE.lock());
    match Store::open(state, disk, SEED) {
        Ok((store, rec)) => {
            report(&rec, info.capacity);
            Kv::new(Ok(store))
        }
        Err(e) => {
            match e {
                OpenError::Foreign { .. } | OpenError::Geometry { .. } | OpenError::TooManyKeys => {
                    println!("kv: REFUSED: the partition holds no store of this cell: {e}; nothing will be written to it, every call is refused");
                }
                OpenError::Disk(_) | OpenError::TooSmall { .. } => {
                    println!("kv: REFUSED: {e}; every call is refused");
                }
            }
            Kv::new(Err("refused"))
        }
    }
}

protection_domain!(init);
