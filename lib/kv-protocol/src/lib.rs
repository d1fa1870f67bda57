//! # septa-kv-protocol: what a key-value client and the store say
//!
//! The key-value cell (`protection-domains/kv`) serves its clients with
//! protected procedure calls. Each client shares one buffer with the
//! store (a region both map): the key at [`KEY_AT`], the value at
//! [`VALUE_AT`]. The call's label is the operation, its message registers
//! the lengths; the reply's label is a [`Status`].
//!
//! | call | request | reply (label [`Status::Ok`]) |
//! |---|---|---|
//! | [`PUT`] | MR0 key length, MR1 value length; key and value in the buffer | none: the value is durable when the call returns |
//! | [`GET`] | MR0 key length; the key in the buffer | MR0 value length; the value in the buffer |
//! | [`DELETE`] | MR0 key length; the key in the buffer | none: durable when the call returns |
//! | [`LIST`] | MR0 length of the key to list after (0: from the first); it in the buffer | MR0 keys returned, MR1 1 if there are more; at [`VALUE_AT`] each key as a length byte and its bytes |
//! | [`STATUS`] | none | MR0 keys, MR1 log blocks, MR2 used, MR3 live, MR4 mount count (rises at every start of the store) |
//!
//! Keys are 1..=[`MAX_KEY`] bytes, values at most [`MAX_VALUE`]. The store
//! reads the request's bytes once, into its own memory, before it uses
//! them: a client changing its buffer during the call gets what it wrote
//! at some instant, checked and stored whole, never a torn value.
//!
//! ## Wiring
//!
//! A client maps its buffer with `setvar_vaddr = "kv_buffer"`,
//! `setvar_size = "kv_buffer_size"`, and calls the store on a channel whose
//! end has `pp = true` and `setvar_id = "kv_channel"`. The store maps the
//! same region with `setvar_vaddr = "kv_client_buffer[CH]"`,
//! `setvar_size = "kv_client_buffer_size[CH]"` where CH is its end of that
//! channel, and may name the client with `{ symbol =
//! "kv_client_name[CH]", text = "..." }`.
//!
//! Owns: the labels, the layout and both ends' handles. `unsafe`: only to
//! turn patched addresses of mapped buffers into [`Shared`] windows.
#![no_std]
#![deny(unsafe_code)]

use core::fmt;

use septa_queue::Shared;
use septa_runtime::{
    mr_get, mr_set, msginfo_new, setvar, setvar_array, setvar_text, Channel, ChannelError,
    MessageInfo, Text,
};

/// Operations (call labels).
pub const PUT: u64 = 1;
pub const GET: u64 = 2;
pub const DELETE: u64 = 3;
pub const LIST: u64 = 4;
pub const STATUS: u64 = 5;

/// The longest key and value.
pub const MAX_KEY: usize = 64;
pub const MAX_VALUE: usize = 64 << 10;
/// Where the key and the value sit in the buffer.
pub const KEY_AT: usize = 0;
pub const VALUE_AT: usize = 4096;
/// The smallest buffer: a largest value after its page of key.
pub const BUFFER_BYTES: usize = VALUE_AT + MAX_VALUE;
/// Channel ids a store can serve clients on.
pub const MAX_CHANNELS: usize = 62;

/// How an operation ended (the reply's label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    NotFound,
    /// The key is empty or longer than [`MAX_KEY`].
    KeyLength,
    /// The value is longer than [`MAX_VALUE`] (or the client's buffer).
    ValueLength,
    /// No room: the store holds as much as it can.
    Full,
    /// The value's record failed its checksum when read: damage, reported
    /// by the store.
    Corrupt,
    /// The store refused its disk at start (foreign or ruined), or has no
    /// disk: nothing can be stored.
    Unavailable,
    /// The disk failed the operation; it was not done.
    Io,
    /// An unknown label, or a channel with no buffer.
    BadRequest,
    /// The put would take the client's namespace past its quota (a cell's
    /// `kv` service); nothing was written.
    Quota,
    /// Any other reply label.
    Other(u64),
}

impl Status {
    pub fn label(self) -> u64 {
        match self {
            Status::Ok => 0,
            Status::NotFound => 1,
            Status::KeyLength => 2,
            Status::ValueLength => 3,
            Status::Full => 4,
            Status::Corrupt => 5,
            Status::Unavailable => 6,
            Status::Io => 7,
            Status::BadRequest => 8,
            Status::Quota => 9,
            Status::Other(l) => l,
        }
    }

    pub fn from_label(l: u64) -> Status {
        match l {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::KeyLength,
            3 => Status::ValueLength,
            4 => Status::Full,
            5 => Status::Corrupt,
            6 => Status::Unavailable,
            7 => Status::Io,
            8 => Status::BadRequest,
            9 => Status::Quota,
            l => Status::Other(l),
        }
    }

    /// The reply of this status with `n` message registers set.
    pub fn reply(self, n: u64) -> MessageInfo {
        msginfo_new(self.label(), n)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why a call failed: the store's status, or the call itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvError {
    Status(Status),
    Call(ChannelError),
    /// The value does not fit the buffer the caller gave.
    Buffer {
        need: usize,
    },
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::Status(s) => write!(f, "the store answered {s}"),
            KvError::Call(e) => write!(f, "the call failed: {e}"),
            KvError::Buffer { need } => write!(f, "the value needs {need} bytes"),
        }
    }
}

setvar! {
    static BUFFER = "kv_buffer";
    static BUFFER_SIZE = "kv_buffer_size";
    static CHANNEL = "kv_channel";
}

setvar! {
    // `septa_cells::counters::VADDR_SYMBOL` and `SIZE_SYMBOL`.
    static COUNTERS = "septa_counters";
    static COUNTERS_SIZE = "septa_counters_size";
}

setvar_array! {
    static CLIENT_BUFFER: [MAX_CHANNELS] = "kv_client_buffer";
    static CLIENT_BUFFER_SIZE: [MAX_CHANNELS] = "kv_client_buffer_size";
    // `septa_cells::kv::QUOTA_SYMBOL`.
    static CLIENT_QUOTA: [MAX_CHANNELS] = "kv_client_quota";
}

setvar_text! {
    static CLIENT_NAME: [MAX_CHANNELS] = "kv_client_name";
    // `septa_cells::kv::NAMESPACE_SYMBOL`.
    static CLIENT_NAMESPACE: [MAX_CHANNELS] = "kv_client_namespace";
}

// The tool sizes a cell's buffer and names the symbols by `septa-cells`.
const _: () = assert!(BUFFER_BYTES == septa_cells::kv::BUFFER_BYTES);
const _: () = assert!(
    septa_cells::kv::MAX_NAMESPACE + 2 <= MAX_KEY,
    "a namespaced key has room for its prefix and one byte"
);

/// A window of `len` bytes at the patched address `vaddr`, if wired.
fn window(vaddr: u64, len: u64) -> Option<Shared> {
    if vaddr == 0 || (len as usize) < BUFFER_BYTES {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: the tool patched `vaddr` and `len` from a read-write map of
    // this PD in the system description, which lasts the PD's life; this
    // crate touches it only through `Shared`.
    unsafe {
        Shared::new(vaddr as *mut u8, len as usize)
    }
}

/// A client's handle on the store.
pub struct KvClient {
    buffer: Shared,
    channel: Channel,
}

impl KvClient {
    /// The store this PD was wired to (`kv_buffer`, `kv_buffer_size`,
    /// `kv_channel`); `None` if the buffer is missing or too small.
    pub fn from_setvars() -> Option<KvClient> {
        Some(KvClient {
            buffer: window(BUFFER.get(), BUFFER_SIZE.get())?,
            channel: Channel::new(CHANNEL.get() as u8),
        })
    }

    /// The shared buffer (to fill a value in place: [`put_in_place`](Self::put_in_place)).
    pub fn buffer(&self) -> &Shared {
        &self.buffer
    }

    fn call(&self, op: u64, words: &[u64]) -> Result<(), KvError> {
        for (i, w) in words.iter().enumerate() {
            mr_set(i, *w);
        }
        let reply = self
            .channel
            .pp_call(msginfo_new(op, words.len() as u64))
            .map_err(KvError::Call)?;
        match Status::from_label(reply.label()) {
            Status::Ok => Ok(()),
            s => Err(KvError::Status(s)),
        }
    }

    fn key(&self, key: &[u8]) -> Result<u64, KvError> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(KvError::Status(Status::KeyLength));
        }
        let _ = self.buffer.write(KEY_AT, key);
        Ok(key.len() as u64)
    }

    /// Stores `value` under `key`; returns once it is durable.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), KvError> {
        if value.len() > MAX_VALUE {
            return Err(KvError::Status(Status::ValueLength));
        }
        let _ = self.buffer.write(VALUE_AT, value);
        self.put_in_place(key, value.len())
    }

    /// Stores the `len` bytes the caller wrote at [`VALUE_AT`] of the buffer.
    pub fn put_in_place(&self, key: &[u8], len: usize) -> Result<(), KvError> {
        let k = self.key(key)?;
        self.call(PUT, &[k, len as u64])
    }

    /// Copies `key`'s value into `out`; returns its length.
    pub fn get(&self, key: &[u8], out: &mut [u8]) -> Result<usize, KvError> {
        let n = self.get_in_place(key)?;
        if n > out.len() {
            return Err(KvError::Buffer { need: n });
        }
        let _ = self.buffer.read(VALUE_AT, &mut out[..n]);
        Ok(n)
    }

    /// Fetches `key`'s value into the buffer at [`VALUE_AT`]; returns its
    /// length.
    pub fn get_in_place(&self, key: &[u8]) -> Result<usize, KvError> {
        let k = self.key(key)?;
        self.call(GET, &[k])?;
        Ok((mr_get(0) as usize).min(MAX_VALUE))
    }

    /// Removes `key`; returns once durable.
    pub fn delete(&self, key: &[u8]) -> Result<(), KvError> {
        let k = self.key(key)?;
        self.call(DELETE, &[k])
    }

    /// Hands each key after `after` (all if empty) to `f`, in order, one
    /// call per bufferful.
    pub fn list(&self, after: &[u8], mut f: impl FnMut(&[u8])) -> Result<(), KvError> {
        let mut cursor = [0u8; MAX_KEY];
        let mut len = after.len().min(MAX_KEY);
        cursor[..len].copy_from_slice(&after[..len]);
        loop {
            let _ = self.buffer.write(KEY_AT, &cursor[..len]);
            self.call(LIST, &[len as u64])?;
            let (count, more) = (mr_get(0), mr_get(1) != 0);
            let mut at = VALUE_AT;
            for _ in 0..count {
                let mut l = [0u8; 1];
                let _ = self.buffer.read(at, &mut l);
                let n = (l[0] as usize).min(MAX_KEY);
                let mut key = [0u8; MAX_KEY];
                let _ = self.buffer.read(at + 1, &mut key[..n]);
                f(&key[..n]);
                cursor[..n].copy_from_slice(&key[..n]);
                len = n;
                at += 1 + n;
            }
            if !more || count == 0 {
                return Ok(());
            }
        }
    }

    /// (keys, log blocks, used blocks, live blocks, mount count).
    pub fn status(&self) -> Result<[u64; 5], KvError> {
        self.call(STATUS, &[])?;
        Ok([mr_get(0), mr_get(1), mr_get(2), mr_get(3), mr_get(4)])
    }
}

/// The store's side: the buffer of each channel the description wired.
pub struct Buffers;

impl Buffers {
    /// The buffer of the client on channel `ch`, if wired.
    pub fn of(ch: Channel) -> Option<Shared> {
        let i = ch.id() as usize;
        window(CLIENT_BUFFER.get(i), CLIENT_BUFFER_SIZE.get(i))
    }

    /// The name the description gives the client on channel `ch` ("" if
    /// none).
    pub fn name(ch: Channel) -> Text {
        CLIENT_NAME.get(ch.id() as usize)
    }

    /// The page the store's per-client counters go to
    /// (`septa_cells::counters`), if `[stats]` exports them.
    pub fn counters_page() -> Option<Shared> {
        let (vaddr, len) = (COUNTERS.get(), COUNTERS_SIZE.get());
        if vaddr == 0 || (len as usize) < septa_cells::counters::PAGE {
            return None;
        }
        #[allow(unsafe_code)]
        // SAFETY: the tool patched `vaddr` and `len` from a read-write map
        // of this PD (`[stats]`'s counters region), which lasts the PD's
        // life; the store touches it only through `Shared`.
        unsafe {
            Shared::new(vaddr as *mut u8, len as usize)
        }
    }

    /// The namespace and quota of the client on channel `ch`, if it is a
    /// cell given a `kv` service (`septa_cells::kv`); `None` for a PD
    /// client, which sees the whole store.
    pub fn namespace(ch: Channel) -> Option<(Text, u64)> {
        let i = ch.id() as usize;
        let ns = CLIENT_NAMESPACE.get(i);
        (!ns.as_str().is_empty()).then(|| (ns, CLIENT_QUOTA.get(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_their_labels() {
        for l in 0..12 {
            assert_eq!(Status::from_label(l).label(), l);
        }
        assert_eq!(Status::from_label(3), Status::ValueLength);
    }

    #[test]
    fn the_buffer_holds_a_largest_value_after_its_key() {
        const { assert!(KEY_AT + MAX_KEY <= VALUE_AT) };
        assert_eq!(BUFFER_BYTES, 69_632);
        // 1 + 64 bytes a listed key: a listing of one key always fits.
        const { assert!(VALUE_AT + 1 + MAX_KEY <= BUFFER_BYTES) };
    }
}
