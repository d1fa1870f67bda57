//! # test-kv: clients that check what the key-value cell keeps
//!
//! One program, its role told by its PD's name:
//!
//! - `app` (tests/systems/kv-basic, booted twice on one disk): on the first
//!   boot every operation and its limits (put, get, overwrite, delete,
//!   64 KiB values, key lengths, listing in order and after a cursor,
//!   status) and a set of keys left for the second boot; on the second,
//!   those keys read back as they were left.
//! - `storm` (tests/systems/kv-powercut and kv-corrupt): reads back and
//!   prints every key it finds, then puts and deletes (`storm_ops` of
//!   them, or without end when 0), printing each operation before it calls
//!   and once it returns. The host cuts the power under it, or damages the
//!   disk between boots, and judges each boot's read-back against what was
//!   acknowledged (`tools/septa/src/session/kv.rs`): this program judges
//!   nothing itself, it only reports what the store returns, byte-checked.
//!
//! Values describe themselves: [`value`] makes the bytes of (key,
//! version, length), and its first 16 bytes say which, so a reader
//! checks every byte of whatever it gets without a list of what to expect.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_code)]

use septa_kv_protocol::{KvClient, KvError, Status, MAX_KEY, MAX_VALUE, VALUE_AT};
use septa_runtime::{println, protection_domain, setvar, ChannelSet, Handler};
use septa_test_report as report;

fn verdict(case: &str, ok: bool, why: &dyn core::fmt::Display) {
    if ok {
        println!("{}", report::ok(case));
    } else {
        println!("{}", report::fail(case, why));
    }
}

/// Byte `i` of the value of (`key`, `version`, `len`): a header of the
/// three, then a pattern of all of them.
fn byte(key: u32, version: u32, len: usize, i: usize) -> u8 {
    if i < 16 {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&key.to_le_bytes());
        h[4..8].copy_from_slice(&version.to_le_bytes());
        h[8..16].copy_from_slice(&(len as u64).to_le_bytes());
        return h[i];
    }
    let x = (i as u64)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(u64::from(key) << 32 | u64::from(version));
    (x >> 29) as u8
}

/// Writes the value of (`key`, `version`, `len`) into the client's buffer.
fn value(kv: &KvClient, key: u32, version: u32, len: usize) {
    let mut chunk = [0u8; 512];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(chunk.len());
        for (j, b) in chunk[..n].iter_mut().enumerate() {
            *b = byte(key, version, len, at + j);
        }
        let _ = kv.buffer().write(VALUE_AT + at, &chunk[..n]);
        at += n;
    }
}

/// What the `len` bytes at the buffer's value say they are, if every byte
/// agrees: (key, version).
fn described(kv: &KvClient, len: usize) -> Option<(u32, u32)> {
    if len < 16 {
        return None;
    }
    let mut h = [0u8; 16];
    let _ = kv.buffer().read(VALUE_AT, &mut h);
    let key = u32::from_le_bytes(h[..4].try_into().unwrap());
    let version = u32::from_le_bytes(h[4..8].try_into().unwrap());
    if u64::from_le_bytes(h[8..16].try_into().unwrap()) != len as u64 {
        return None;
    }
    holds(kv, key, version, len).then_some((key, version))
}

/// Whether the buffer's value is exactly that of (`key`, `version`, `len`)
/// (short values cannot describe themselves).
fn holds(kv: &KvClient, key: u32, version: u32, len: usize) -> bool {
    let mut chunk = [0u8; 512];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(chunk.len());
        let _ = kv.buffer().read(VALUE_AT + at, &mut chunk[..n]);
        if chunk[..n]
            .iter()
            .enumerate()
            .any(|(j, &b)| b != byte(key, version, len, at + j))
        {
            return false;
        }
        at += n;
    }
    true
}

/// Key `k` as text: `key-NNNN`.
fn key_name(k: u32) -> [u8; 8] {
    let mut n = *b"key-0000";
    let mut v = k;
    for d in n[4..].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    n
}

fn status(r: Result<impl Sized, KvError>) -> Status {
    match r {
        Ok(_) => Status::Ok,
        Err(KvError::Status(s)) => s,
        Err(e) => panic!("the call failed: {e}"),
    }
}

/// The keys the first boot leaves for the second: (key, version, length).
const LEFT: [(u32, u32, usize); 4] = [(1, 7, 10), (2, 3, 4000), (3, 9, MAX_VALUE), (4, 1, 0)];

fn app() {
    let kv = KvClient::from_setvars().expect("wired to the store");
    let mut boot = [0u8; 8];
    let second = kv.get(b"boot", &mut boot).is_ok();
    if second {
        second_boot(&kv);
    } else {
        first_boot(&kv);
        let _ = kv.put(b"boot", &1u64.to_le_bytes());
    }
}

fn first_boot(kv: &KvClient) {
    let mut out = [0u8; 64];
    let put = kv.put(b"greeting", b"hello, septa");
    let n = kv.get(b"greeting", &mut out);
    verdict(
        "put-get",
        put.is_ok() && n == Ok(12) && &out[..12] == b"hello, septa",
        &format_args!("put {put:?}, get {n:?}"),
    );
    let put = kv.put(b"greeting", b"hola");
    let n = kv.get(b"greeting", &mut out);
    verdict(
        "overwrite",
        put.is_ok() && n == Ok(4) && &out[..4] == b"hola",
        &format_args!("put {put:?}, get {n:?}"),
    );
    let del = kv.delete(b"greeting");
    let gone = status(kv.get(b"greeting", &mut out));
    let again = status(kv.delete(b"greeting"));
    verdict(
        "delete",
        del.is_ok() && gone == Status::NotFound && again == Status::NotFound,
        &format_args!("delete {del:?}, get {gone:?}, delete again {again:?}"),
    );

    value(kv, 99, 1, MAX_VALUE);
    let put = status(kv.put_in_place(b"big", MAX_VALUE));
    let back = kv.get_in_place(b"big");
    let whole = back.is_ok_and(|n| n == MAX_VALUE) && described(kv, MAX_VALUE) == Some((99, 1));
    let over = status(kv.put_in_place(b"big", MAX_VALUE + 1));
    verdict(
        "value-64k",
        put == Status::Ok && whole && over == Status::ValueLength,
        &format_args!("put {put:?}, read back whole {whole}, one byte more {over:?}"),
    );

    let long = [b'k'; MAX_KEY + 1];
    let at_max = status(kv.put(&long[..MAX_KEY], b"x"));
    let too_long = status(kv.put(&long, b"x"));
    let empty = status(kv.put(b"", b"x"));
    verdict(
        "key-lengths",
        at_max == Status::Ok && too_long == Status::KeyLength && empty == Status::KeyLength,
        &format_args!("{MAX_KEY} bytes {at_max:?}, one more {too_long:?}, empty {empty:?}"),
    );
    let _ = kv.delete(&long[..MAX_KEY]);
    let _ = kv.delete(b"big");

    // 150 keys, put in a scrambled order, listed in order.
    let mut ok = true;
    for i in 0..150u32 {
        let k = (i * 97) % 150;
        ok &= kv.put(&key_name(k), &k.to_le_bytes()).is_ok();
    }
    let (mut seen, mut order) = (0u32, true);
    let listed = kv.list(b"", |k| {
        order &= k == key_name(seen) || (!k.starts_with(b"key-") && seen == 150);
        if k.starts_with(b"key-") {
            seen += 1;
        }
    });
    let mut after = 0;
    let _ = kv.list(&key_name(139), |k| {
        after += usize::from(k.starts_with(b"key-"))
    });
    verdict(
        "list",
        ok && listed.is_ok() && order && seen == 150 && after == 10,
        &format_args!("puts ok {ok}, in order {order}, {seen} listed, {after} after key-0139"),
    );
    let st = kv.status();
    verdict(
        "status",
        st.is_ok_and(|s| s[0] == 150 && s[3] <= s[2] && s[2] <= s[1]),
        &format_args!("{st:?}"),
    );
    for i in 0..150u32 {
        let _ = kv.delete(&key_name(i));
    }

    // Left for the second boot.
    let mut ok = true;
    for (k, v, len) in LEFT {
        value(kv, k, v, len);
        ok &= kv.put_in_place(&key_name(k), len).is_ok();
    }
    verdict("left-for-reboot", ok, &"a put failed");
}

fn second_boot(kv: &KvClient) {
    let mut all = true;
    for (k, v, len) in LEFT {
        let n = kv.get_in_place(&key_name(k));
        let good = n == Ok(len) && holds(kv, k, v, len);
        if !good {
            println!("test-kv: key-{k:04} after the reboot: {n:?}");
        }
        all &= good;
    }
    let mut keys = 0;
    let _ = kv.list(b"", |_| keys += 1);
    verdict(
        "after-reboot",
        all && keys == LEFT.len() + 1,
        &format_args!("values as left: {all}; {keys} keys"),
    );
}

setvar! {
    /// Operations the storm makes before it says `done`; 0: without end.
    static STORM_OPS = "storm_ops";
}

/// Keys the storm uses: few, so that every key is overwritten often and
/// the log wraps and is compacted many times over.
const STORM_KEYS: u64 = 24;

/// xorshift64*: the storm's choices, seeded by the store's mount count so
/// each boot makes different ones (and the host needs none of them: it
/// reads what was done from the console).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The storm's protocol with the host (one console line each; the host's
/// parser is `tools/septa/src/session/kv.rs`):
///
/// ```text
/// storm: found key-0007 v=VERSION len=LEN       a value whose every byte checks
/// storm: found key-0007 torn len=LEN            a value that does not
/// storm: found key-0007 error=STATUS            a get that failed
/// storm: read back N keys (mount M)
/// storm: put key-0007 v=VERSION len=LEN         about to call
/// storm: del key-0007                           about to call
/// storm: acked                                  the call returned Ok
/// storm: refused STATUS                         it returned an error
/// ```
///
/// A version is (mount count << 20) | operation number: unique across
/// boots, since the mount count rises at every start of the store.
fn storm() {
    let kv = KvClient::from_setvars().expect("wired to the store");
    let mount = match kv.status() {
        Ok(s) => s[4],
        Err(e) => {
            // A refused store: the host judges that from the kv PD's lines.
            println!("storm: the store is unavailable: {e}");
            return;
        }
    };
    // Read back every key (the list first: a get overwrites the buffer).
    let mut keys = [[0u8; 8]; STORM_KEYS as usize];
    let mut n = 0;
    let _ = kv.list(b"", |k| {
        if n < keys.len() && k.len() == 8 {
            keys[n].copy_from_slice(k);
            n += 1;
        } else {
            println!("storm: found a foreign key {k:02x?}");
        }
    });
    let mut present = [false; STORM_KEYS as usize];
    for k in &keys[..n] {
        let name = core::str::from_utf8(k).unwrap_or("?");
        match kv.get_in_place(k) {
            Ok(len) => match described(&kv, len) {
                Some((key, version)) if key_name(key) == *k => {
                    println!("storm: found {name} v={version} len={len}");
                    if let Some(p) = present.get_mut(key as usize) {
                        *p = true;
                    }
                }
                _ => println!("storm: found {name} torn len={len}"),
            },
            Err(e) => println!("storm: found {name} error={:?}", status(Err::<(), _>(e))),
        }
    }
    println!("storm: read back {n} keys (mount {mount})");
    let ops = STORM_OPS.get();
    let mut rng = Rng(mount.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut i = 0u64;
    while ops == 0 || i < ops {
        i += 1;
        let r = rng.next();
        let key = (r % STORM_KEYS) as u32;
        let name = key_name(key);
        let name_text = core::str::from_utf8(&name).unwrap_or("?");
        let delete = present[key as usize] && (r >> 8).is_multiple_of(5);
        let result = if delete {
            println!("storm: del {name_text}");
            kv.delete(&name)
        } else {
            // Mostly small values, one in six up to the largest.
            let len = if (r >> 16).is_multiple_of(6) {
                16 + ((r >> 24) as usize) % (MAX_VALUE - 15)
            } else {
                16 + ((r >> 24) as usize) % 3000
            };
            let version = (mount << 20 | i) as u32;
            value(&kv, key, version, len);
            println!("storm: put {name_text} v={version} len={len}");
            kv.put_in_place(&name, len)
        };
        match result {
            Ok(()) => {
                present[key as usize] = !delete;
                println!("storm: acked");
            }
            Err(e) => println!("storm: refused {:?}", status(Err::<(), _>(e))),
        }
    }
}

/// What a role leaves behind once it has said everything.
struct Finished;

impl Handler for Finished {
    fn notified(&mut self, _: ChannelSet) {}
}

fn init() -> Finished {
    match septa_runtime::pd_name().as_str() {
        "app" => app(),
        "storm" => storm(),
        other => panic!("no key-value test role for PD {other:?}"),
    }
    println!("{}", report::DONE);
    Finished
}

protection_domain!(init);
