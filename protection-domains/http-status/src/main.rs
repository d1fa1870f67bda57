//! # http-status: the system's status over HTTP
//!
//! A cell of the network stack (`[net]`, allowed to listen on tcp/80)
//! that serves a status page at `/` and JSON at `/api/status`: the
//! system's PDs, the stack's uptime and address, frames and bytes through
//! it; and, where `[stats] http` exports the statistics table to it
//! (read-only), a live dashboard at `/cells` and its data at
//! `/api/cells`: every PD's CPU time, budget, faults, restarts, overruns
//! and state; and, where it is a client of the key-value cell (a cell
//! given `{ kind = "kv", namespace, quota }`), the key-value store's REST
//! API under `/kv` ([`kv`]: list, get, put, delete), confined by the store
//! to its namespace and quota. One request per connection, answered
//! whole, then closed; up to [`MAX_CONNECTIONS`] at once, a slow client
//! holding only its own.
//!
//! A request's head is read whole (at most [`http::MAX_REQUEST`] bytes),
//! then its body, however many segments it comes in, into the
//! connection's own buffer ([`BUF`], in a static: a body is at most the
//! store's largest value). Only a whole body is stored: one that ends
//! early, is longer than the store takes or has no `Content-Length` is
//! refused with nothing written. A put is answered once the store's reply
//! says the value is durable. A refusal sent before the body was read is
//! followed by reading (and dropping) what the client still sends of it,
//! up to [`DRAIN_MAX`], so that the client reads the answer rather than a
//! reset.
//!
//! One `unsafe` block: the window on the exported table, at the address
//! the tool patched. Everything below the socket calls is the runtime's
//! and `septa-net-client`'s, below the store's calls
//! `septa-kv-protocol`'s. Owns: its connections. Must not: anything
//! else; the table it can only read (the monitor writes it); the store's
//! keys outside its namespace it cannot name (the store adds the prefix).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

mod http;
mod kv;

use http::{Length, Method};
use kv::Route;
use septa_cells::counters;
use septa_cells::stats::HEADER;
use septa_kv_protocol::{KvClient, KvError, MAX_VALUE, VALUE_AT};
use septa_net_client::{Listener, Net, Read, Stream};
use septa_queue::Shared;
use septa_runtime::{println, protection_domain, setvar, ChannelSet, Handler};

setvar! {
    static TABLE = "septa_stats_table";
    static TABLE_SIZE = "septa_stats_table_size";
}

septa_runtime::setvar_array! {
    // `septa_cells::counters::READER_VADDR_SYMBOL` and `READER_SIZE_SYMBOL`.
    static COUNTERS: [counters::MAX_SERVERS] = "septa_server_counters";
    static COUNTERS_SIZE: [counters::MAX_SERVERS] = "septa_server_counters_size";
}

/// The servers' counter pages `[stats]` exports here, read-only.
fn counter_pages() -> heapless::Vec<Shared, { counters::MAX_SERVERS }> {
    let mut out = heapless::Vec::new();
    for i in 0..counters::MAX_SERVERS {
        let (vaddr, size) = (COUNTERS.get(i), COUNTERS_SIZE.get(i) as usize);
        if vaddr == 0 || size < counters::PAGE {
            continue;
        }
        #[allow(unsafe_code)]
        // SAFETY: the tool maps each server's counters page read-only at
        // the patched address with the patched size for the PD's whole
        // life; `Shared` only reads it here (volatile, bounds-checked).
        let page = unsafe { Shared::new(vaddr as *mut u8, counters::PAGE) };
        if let Some(p) = page {
            let _ = out.push(p);
        }
    }
    out
}

/// Rows of counters shown at most (the servers' clients, then a row per
/// PD of its own IPC counts).
const MAX_COUNTED: usize = 96;

/// Every server's counters, each page copied whole between two reads of
/// its sequence count that agree (its server outranks this PD and may
/// write it meanwhile: then it is copied again, a few times at most).
fn read_counters(pages: &[Shared], out: &mut heapless::Vec<http::Counted, MAX_COUNTED>) {
    let mut copy = [0u8; counters::PAGE];
    for p in pages {
        for _ in 0..4 {
            let _ = p.read(0, &mut copy);
            let mut again = [0u8; 8];
            let _ = p.read(counters::SEQ_AT, &mut again);
            if counters::seq(&copy) != Some(u64::from_le_bytes(again)) {
                continue;
            }
            if let Ok(page) = counters::Page::read(&copy) {
                let server = counters::Entry::named(page.server());
                for entry in page.entries() {
                    let _ = out.push(http::Counted {
                        server,
                        kind: page.kind,
                        entry,
                    });
                }
            }
            break;
        }
    }
}

/// The largest table copied (a page: the region `[stats]` makes).
const TABLE_MAX: usize = 4096;

/// The exported statistics table, if `[stats]` maps it here.
fn table() -> Option<Shared> {
    let (vaddr, size) = (TABLE.get(), TABLE_SIZE.get() as usize);
    if vaddr == 0 || size < HEADER {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: the tool maps the statistics table read-only at the patched
    // address with the patched size for the PD's whole life; `Shared`
    // only reads it (volatile, bounds-checked), never writes.
    unsafe {
        Shared::new(vaddr as *mut u8, size.min(TABLE_MAX))
    }
}

/// A copy of the table. The monitor writes it whole at priority 255 on
/// the one CPU, so a copy never sees half a refresh (with more CPUs this
/// would need a sequence count in the header).
fn copy_table(t: &Shared, out: &mut [u8; TABLE_MAX]) -> usize {
    let len = t.len().min(TABLE_MAX);
    let _ = t.read(0, &mut out[..len]);
    len
}

/// The port it serves.
const PORT: u16 = 80;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 4;
/// Room before a response's body for its head.
const HEAD_ROOM: usize = 512;
/// A connection's buffer: a body coming in (the store's largest value),
/// then the response going out (a head and a value, or the list of keys:
/// at most 1,024 keys of up to 64 bytes, quoted).
const BUF: usize = HEAD_ROOM + MAX_VALUE + 8192;
/// The most of an unwanted body read and dropped after an early answer.
const DRAIN_MAX: u64 = 1 << 20;

/// Every connection's buffer (too large for the stack).
static BUFFERS: spin::Mutex<[[u8; BUF]; MAX_CONNECTIONS]> =
    spin::Mutex::new([[0; BUF]; MAX_CONNECTIONS]);

/// The interim answer to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where a connection is.
enum Phase {
    /// Reading the request's head.
    Head,
    /// Reading a put's body into the buffer: `got` of `need` bytes.
    Body {
        key: heapless::Vec<u8, { septa_kv_protocol::MAX_KEY }>,
        need: usize,
        got: usize,
    },
    /// Sending `buf[start..end]`, then reading and dropping up to `drain`
    /// bytes of a body not wanted (or until the client closes).
    Reply {
        start: usize,
        end: usize,
        drain: u64,
    },
}

struct Conn {
    stream: Stream,
    request: heapless::Vec<u8, { http::MAX_REQUEST }>,
    buf: &'static mut [u8; BUF],
    phase: Phase,
    /// Bytes of the interim `100 Continue` sent.
    interim: usize,
    wants_interim: bool,
    eof: bool,
}

struct Server {
    net: Net,
    listener: Listener,
    conns: heapless::Vec<Conn, MAX_CONNECTIONS>,
    free: heapless::Vec<&'static mut [u8; BUF], MAX_CONNECTIONS>,
    requests: u64,
    table: Option<Shared>,
    counter_pages: heapless::Vec<Shared, { counters::MAX_SERVERS }>,
    store: Option<KvClient>,
}

/// Writes a response with `body` into `buf`; returns its phase.
fn reply(buf: &mut [u8; BUF], code: &str, kind: &str, body: &[u8], drain: u64) -> Phase {
    reply_in_place(buf, code, kind, "", body.len(), Some(body), drain)
}

/// A response whose body of `len` bytes is at `buf[HEAD_ROOM..]` already
/// (or is `body`, copied there; a HEAD request's is not sent).
fn reply_in_place(
    buf: &mut [u8; BUF],
    code: &str,
    kind: &str,
    extra: &str,
    len: usize,
    body: Option<&[u8]>,
    drain: u64,
) -> Phase {
    let len = len.min(BUF - HEAD_ROOM);
    if let Some(b) = body {
        buf[HEAD_ROOM..HEAD_ROOM + len].copy_from_slice(&b[..len]);
    }
    let head = http::head(code, kind, len, extra);
    let start = HEAD_ROOM - head.len();
    buf[start..HEAD_ROOM].copy_from_slice(head.as_bytes());
    Phase::Reply {
        start,
        end: HEAD_ROOM + len,
        drain,
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

/// The store's refusal `e` as a response.
fn refusal(store: Option<&KvClient>, buf: &mut [u8; BUF], e: KvError, drain: u64) -> Phase {
    let usage = match (e, store) {
        (KvError::Status(septa_kv_protocol::Status::Quota), Some(s)) => {
            s.status().ok().map(|w| (w[1], w[2]))
        }
        _ => None,
    };
    let (code, text) = kv::failure(e, usage);
    reply(buf, code, TEXT, text.as_bytes(), drain)
}

impl Server {
    fn status_response(&mut self, req: http::Request<'_>) -> http::Response {
        let stats = self.net.stats().unwrap_or_default();
        let info = self.net.info().ok();
        let ip = info.and_then(|i| i.ip).unwrap_or([0; 4]);
        let mac = info.map_or([0; 6], |i| i.mac);
        let names = septa_net_client::system_pds();
        let pds: heapless::Vec<&str, 32> = names.iter().collect();
        self.requests += 1;
        let mut copy = [0u8; TABLE_MAX];
        let len = self.table.as_ref().map(|t| copy_table(t, &mut copy));
        let table = len.map(|n| &copy[..n]);
        let mut counted = heapless::Vec::new();
        if table.is_some() {
            read_counters(&self.counter_pages, &mut counted);
        }
        http::answer(
            req,
            &http::Status {
                pds: &pds,
                uptime_ms: stats.uptime_ns / 1_000_000,
                address: ip,
                mac,
                rx_frames: stats.rx_frames,
                rx_bytes: stats.rx_bytes,
                tx_frames: stats.tx_frames,
                tx_bytes: stats.tx_bytes,
                rx_dropped: stats.rx_dropped,
                requests: self.requests,
                table,
                counters: &counted,
            },
        )
    }

    /// Answers a request whose head is `h` (and `early` bytes of body
    /// read with it) under `/kv`.
    fn kv_request(&mut self, i: usize, h: &http::Head<'_>, route: Route<'_>, early: &[u8]) {
        let body = match h.length {
            Length::Bytes(n) => n,
            _ => 0,
        };
        let drain = body.saturating_sub(early.len() as u64).min(DRAIN_MAX);
        let buf = &mut *self.conns[i].buf;
        const ALLOW_KEY: &str = "Allow: GET, HEAD, PUT, DELETE\r\n";
        const ALLOW_LIST: &str = "Allow: GET, HEAD\r\n";
        let phase = match (h.method, route) {
            (Method::Other, Route::Key(_))
            | (Method::Put | Method::Delete | Method::Other, Route::List) => {
                let allow = if matches!(route, Route::List) {
                    ALLOW_LIST
                } else {
                    ALLOW_KEY
                };
                let text = b"method not allowed here\n";
                reply_in_place(
                    buf,
                    "405 Method Not Allowed",
                    TEXT,
                    allow,
                    text.len(),
                    Some(text),
                    drain,
                )
            }
            (_, Route::Key(k)) if kv::key_error(k).is_some() => {
                let why = kv::key_error(k).unwrap_or_default();
                reply(buf, "400 Bad Request", TEXT, why.as_bytes(), drain)
            }
            (Method::Put, _) if !matches!(h.length, Length::Bytes(_)) => {
                let (code, why): (&str, &[u8]) = match h.length {
                    Length::None => ("411 Length Required", b"a put needs a Content-Length\n"),
                    Length::Chunked => (
                        "411 Length Required",
                        b"chunked bodies are not taken: send a Content-Length\n",
                    ),
                    _ => (
                        "400 Bad Request",
                        b"the Content-Length is not one decimal number\n",
                    ),
                };
                reply(buf, code, TEXT, why, 0)
            }
            _ if self.store.is_none() => reply(
                buf,
                "503 Service Unavailable",
                TEXT,
                b"this HTTP cell was given no key-value service\n",
                drain,
            ),
            (Method::Put, Route::Key(_)) if body > MAX_VALUE as u64 => {
                let text =
                    b"the value is longer than the store's 65536 bytes; nothing was stored\n";
                reply(buf, "413 Content Too Large", TEXT, text, drain)
            }
            (Method::Put, Route::Key(k)) => {
                let need = body as usize;
                let got = early.len().min(need);
                buf[..got].copy_from_slice(&early[..got]);
                let mut key = heapless::Vec::new();
                let _ = key.extend_from_slice(k);
                let c = &mut self.conns[i];
                c.wants_interim = h.expect_continue && got < need;
                c.phase = Phase::Body { key, need, got };
                return;
            }
            (Method::Delete, Route::Key(k)) => {
                let store = self.store.as_ref().expect("checked above");
                match store.delete(k) {
                    Ok(()) => reply(buf, "200 OK", TEXT, b"deleted\n", drain),
                    Err(e) => refusal(self.store.as_ref(), buf, e, drain),
                }
            }
            (_, Route::Key(k)) => {
                let store = self.store.as_ref().expect("checked above");
                match store.get_in_place(k) {
                    Ok(n) => {
                        let n = n.min(MAX_VALUE);
                        let _ = store
                            .buffer()
                            .read(VALUE_AT, &mut buf[HEAD_ROOM..HEAD_ROOM + n]);
                        let mut ph = reply_in_place(
                            buf,
                            "200 OK",
                            "application/octet-stream",
                            "",
                            n,
                            None,
                            drain,
                        );
                        if h.method == Method::Head {
                            if let Phase::Reply { end, .. } = &mut ph {
                                *end = HEAD_ROOM;
                            }
                        }
                        ph
                    }
                    Err(e) => refusal(self.store.as_ref(), buf, e, drain),
                }
            }
            (_, Route::List) => self.list(i, h.method == Method::Head, drain),
        };
        self.conns[i].phase = phase;
    }

    /// `GET /kv/`: the cell's keys and usage as JSON.
    fn list(&mut self, i: usize, head_only: bool, drain: u64) -> Phase {
        let store = self.store.as_ref().expect("checked by the caller");
        let buf = &mut *self.conns[i].buf;
        let mut out = Out {
            buf: &mut buf[HEAD_ROOM..],
            at: 0,
            full: false,
        };
        out.put(b"{\"keys\":[");
        let mut count = 0u64;
        let listed = store.list(&[], |k| {
            if count > 0 {
                out.put(b",");
            }
            out.string(k);
            count += 1;
        });
        let usage = store.status();
        let (n, full) = (out.at, out.full);
        match (listed, usage) {
            (Err(e), _) | (_, Err(e)) => refusal(self.store.as_ref(), buf, e, drain),
            (Ok(()), Ok(w)) => {
                let mut tail: heapless::String<128> = heapless::String::new();
                let _ = core::fmt::Write::write_fmt(
                    &mut tail,
                    format_args!(
                        "],\"count\":{count},\"bytes\":{},\"quota\":{}}}\n",
                        w[1], w[2]
                    ),
                );
                let mut out = Out {
                    buf: &mut buf[HEAD_ROOM..],
                    at: n,
                    full,
                };
                out.put(tail.as_bytes());
                if out.full {
                    return reply(
                        buf,
                        "500 Internal Server Error",
                        TEXT,
                        b"too many keys to list\n",
                        drain,
                    );
                }
                let len = out.at;
                let mut ph =
                    reply_in_place(buf, "200 OK", "application/json", "", len, None, drain);
                if head_only {
                    if let Phase::Reply { end, .. } = &mut ph {
                        *end = HEAD_ROOM;
                    }
                }
                ph
            }
        }
    }

    /// The put whose body is whole in connection `i`'s buffer.
    fn put(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Phase::Body { key, need, .. } = &c.phase else {
            return;
        };
        let (key, need) = (key.clone(), *need);
        let store = self.store.as_ref().expect("checked before the body");
        // The one shared buffer: filled and handed over in one go, the
        // PD being single-threaded.
        let _ = store.buffer().write(VALUE_AT, &c.buf[..need]);
        let r = store.put_in_place(&key, need);
        let buf = &mut *self.conns[i].buf;
        let phase = match r {
            Ok(()) => {
                let mut t: heapless::String<64> = heapless::String::new();
                let _ = core::fmt::Write::write_fmt(&mut t, format_args!("stored {need} bytes\n"));
                reply(buf, "200 OK", TEXT, t.as_bytes(), 0)
            }
            Err(e) => refusal(self.store.as_ref(), buf, e, 0),
        };
        self.conns[i].phase = phase;
    }

    /// Reads connection `i`'s head; answers it once whole. `false` if the
    /// connection is to be closed.
    fn read_head(&mut self, i: usize) -> bool {
        let c = &mut self.conns[i];
        let mut chunk = [0u8; 512];
        loop {
            let room = c.request.capacity() - c.request.len();
            if room == 0 {
                break;
            }
            let n = room.min(chunk.len());
            match c.stream.recv(&mut chunk[..n]) {
                Ok(Read::Data(n)) => {
                    let _ = c.request.extend_from_slice(&chunk[..n]);
                    if http::parse_head(&c.request).is_some() {
                        break;
                    }
                }
                Ok(Read::WouldBlock) => break,
                Ok(Read::Eof) | Err(_) => return false,
            }
        }
        // The head borrows the connection's buffer: copy it out.
        let copy = c.request.clone();
        let head = match http::parse_head(&copy) {
            None if c.request.is_full() => {
                let text = b"the request's line and headers are longer than 2048 bytes\n";
                c.phase = reply(c.buf, "431 Request Header Fields Too Large", TEXT, text, 0);
                return true;
            }
            None => return true,
            Some(Err(())) => {
                c.phase = reply(c.buf, "400 Bad Request", TEXT, b"bad request\n", 0);
                return true;
            }
            Some(Ok(h)) => h,
        };
        let early = &copy[head.size..];
        match kv::route(head.path) {
            Some(route) => self.kv_request(i, &head, route, early),
            None => {
                let r = self.status_response(head.request());
                let drain = match head.length {
                    Length::Bytes(n) => n.saturating_sub(early.len() as u64).min(DRAIN_MAX),
                    _ => 0,
                };
                let c = &mut self.conns[i];
                let n = r.len().min(BUF);
                c.buf[..n].copy_from_slice(&r[..n]);
                c.phase = Phase::Reply {
                    start: 0,
                    end: n,
                    drain,
                };
            }
        }
        true
    }

    /// Moves connection `i` on; `false` once it is done.
    fn serve(&mut self, i: usize) -> bool {
        if matches!(self.conns[i].phase, Phase::Head) && !self.read_head(i) {
            return false;
        }
        if let Phase::Body { .. } = self.conns[i].phase {
            let c = &mut self.conns[i];
            while c.wants_interim && c.interim < CONTINUE.len() {
                match c.stream.send(&CONTINUE[c.interim..]) {
                    Ok(0) => return true,
                    Ok(n) => c.interim += n,
                    Err(_) => return false,
                }
            }
            let Phase::Body { need, got, .. } = &mut c.phase else {
                unreachable!("matched above")
            };
            while *got < *need {
                match c.stream.recv(&mut c.buf[*got..*need]) {
                    Ok(Read::Data(n)) => *got += n,
                    Ok(Read::WouldBlock) => return true,
                    Ok(Read::Eof) => break,
                    Err(_) => return false,
                }
            }
            if *got < *need {
                // The client closed before the whole body: nothing stored.
                let mut t: heapless::String<128> = heapless::String::new();
                let _ = core::fmt::Write::write_fmt(
                    &mut t,
                    format_args!(
                        "the body ended after {got} of its {need} bytes; nothing was stored\n"
                    ),
                );
                c.eof = true;
                c.phase = reply(c.buf, "400 Bad Request", TEXT, t.as_bytes(), 0);
            } else {
                self.put(i);
            }
        }
        let c = &mut self.conns[i];
        let Phase::Reply { start, end, drain } = &mut c.phase else {
            return true;
        };
        while *start < *end {
            match c.stream.send(&c.buf[*start..*end]) {
                Ok(0) => return true,
                Ok(n) => *start += n,
                Err(_) => return false,
            }
        }
        let mut scratch = [0u8; 512];
        while *drain > 0 && !c.eof {
            let n = (*drain).min(scratch.len() as u64) as usize;
            match c.stream.recv(&mut scratch[..n]) {
                Ok(Read::Data(n)) => *drain -= n as u64,
                Ok(Read::WouldBlock) => return true,
                Ok(Read::Eof) | Err(_) => c.eof = true,
            }
        }
        false
    }

    fn run(&mut self) {
        while !self.conns.is_full() {
            match self.listener.accept() {
                Ok(Some(stream)) => {
                    let Some(buf) = self.free.pop() else {
                        stream.close();
                        break;
                    };
                    let _ = self.conns.push(Conn {
                        stream,
                        request: heapless::Vec::new(),
                        buf,
                        phase: Phase::Head,
                        interim: 0,
                        wants_interim: false,
                        eof: false,
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    println!("http: accept failed: {e}");
                    break;
                }
            }
        }
        let mut i = 0;
        while i < self.conns.len() {
            if self.serve(i) {
                i += 1;
            } else {
                let c = self.conns.swap_remove(i);
                c.stream.close();
                let _ = self.free.push(c.buf);
            }
        }
    }
}

/// A bounded writer into a response's body.
struct Out<'a> {
    buf: &'a mut [u8],
    at: usize,
    full: bool,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) {
        match self.buf.get_mut(self.at..self.at + bytes.len()) {
            Some(d) => {
                d.copy_from_slice(bytes);
                self.at += bytes.len();
            }
            None => self.full = true,
        }
    }

    fn string(&mut self, s: &[u8]) {
        match kv::json_string(self.buf, self.at, s) {
            Some(end) => self.at = end,
            None => self.full = true,
        }
    }
}

impl Handler for Server {
    fn notified(&mut self, channels: ChannelSet) {
        if channels.contains(self.net.channel()) {
            self.run();
        }
    }
}

fn init() -> Server {
    let net = Net::get().expect("http: this PD is not a cell of [net]");
    let listener = match net.listen(PORT) {
        Ok(l) => l,
        Err(e) => panic!("http: cannot listen on tcp/{PORT}: {e}"),
    };
    let store = KvClient::from_setvars();
    println!(
        "http: serving the system's status on tcp/{PORT}{}",
        if store.is_some() {
            ", and the key-value store at /kv/"
        } else {
            ""
        }
    );
    let buffers = spin::MutexGuard::leak(BUFFERS.lock());
    let mut free = heapless::Vec::new();
    for b in buffers.iter_mut() {
        let _ = free.push(b);
    }
    Server {
        net,
        listener,
        conns: heapless::Vec::new(),
        free,
        requests: 0,
        table: table(),
        counter_pages: counter_pages(),
        store,
    }
}

protection_domain!(init);
