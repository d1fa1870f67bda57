//! What a probe does over the network: HTTP requests, TCP and UDP echo
//! through the ports the system's user network forwards, and raw frames
//! injected into the system's network card.
//!
//! The harness chooses the host ports of every `[[forward]]` afresh for
//! each run (free ports of the host's loopback, so systems booted side by
//! side never clash) and tells the probe through [`NetEnv`], which maps a
//! guest port to the host port forwarding to it. For injection, the
//! harness has QEMU read frames from a UDP socket and put them on the
//! card's wire past the user network (`filter-redirector`), and send back
//! every frame the card sends (`filter-mirror`), each a 4-byte big-endian
//! length and the frame.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use septa_sysdesc::Proto;

/// Where the probe reaches the system from the host.
#[derive(Debug, Clone, Default)]
pub struct NetEnv {
    /// (protocol, guest port) to host port on 127.0.0.1.
    pub forwards: HashMap<(Proto, u16), u16>,
    /// Frame injection: QEMU's port that reads frames, and ours, where the
    /// card's frames come back.
    pub inject: Option<(SocketAddr, SocketAddr)>,
    /// The system's build folder (where `dashboard` saves its screenshot).
    pub dir: std::path::PathBuf,
}

/// Figures a probe measured (`tcp-send`'s rate), for `septa bench`.
pub static FIGURES: std::sync::Mutex<Vec<(String, f64)>> = std::sync::Mutex::new(Vec::new());

/// A free port of the host's loopback for `proto`, as the kernel picks
/// one (the socket is closed again: QEMU binds it next).
pub fn free_port(proto: Proto) -> std::io::Result<u16> {
    match proto {
        Proto::Tcp => Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()),
        Proto::Udp => Ok(UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()),
    }
}

impl NetEnv {
    fn host(&self, proto: Proto, guest: u16) -> Result<SocketAddr, String> {
        self.forwards
            .get(&(proto, guest))
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .ok_or_else(|| format!("the system forwards no host port to {proto}/{guest}"))
    }
}

fn left(deadline: Instant) -> Result<Duration, String> {
    let l = deadline.saturating_duration_since(Instant::now());
    if l.is_zero() {
        Err("the time ran out".into())
    } else {
        Ok(l)
    }
}

/// `GET path` on the forwarded guest `port`: the whole response (the
/// connection is retried until the deadline: the stack may still be
/// asking DHCP for its address).
pub fn http_get(env: &NetEnv, port: u16, path: &str, deadline: Instant) -> Result<String, String> {
    let addr = env.host(Proto::Tcp, port)?;
    let mut last = String::new();
    while let Ok(l) = left(deadline) {
        let attempt = (|| -> std::io::Result<Vec<u8>> {
            let mut s = TcpStream::connect_timeout(&addr, l)?;
            s.set_read_timeout(Some(l))?;
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            )?;
            let mut out = Vec::new();
            s.read_to_end(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(bytes) if !bytes.is_empty() => {
                return Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            // QEMU accepts on the host side before the guest answers; an
            // empty reply means the guest was not listening yet.
            Ok(_) => last = "an empty reply".into(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100).min(l));
    }
    Err(format!("no answer within the limit (last: {last})"))
}

/// One request on the forwarded guest `port`: `head` as written, then
/// `body`; with `cut` the sending side is closed after it. Returns the
/// whole response (the server closes the connection after it).
pub fn http_request(
    env: &NetEnv,
    port: u16,
    head: &[u8],
    body: &[u8],
    cut: bool,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let addr = env.host(Proto::Tcp, port)?;
    let l = left(deadline)?;
    let mut s = TcpStream::connect_timeout(&addr, l).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(l)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(l)).map_err(|e| e.to_string())?;
    s.write_all(head)
        .map_err(|e| format!("sending the head: {e}"))?;
    // The server may answer before the body (a refusal) and stop reading:
    // what it would not take is no failure of the probe's.
    let _ = s.write_all(body);
    if cut {
        s.shutdown(std::net::Shutdown::Write)
            .map_err(|e| format!("closing the sending side: {e}"))?;
    }
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => {
            return Err(format!(
                "reading the response: {e} (after {} bytes)",
                out.len()
            ))
        }
    }
    if out.is_empty() {
        return Err("the server closed the connection without an answer".into());
    }
    Ok(out)
}

/// Checks that the final response in `r` (after any `100 Continue`) has
/// exactly `want` as its body, and says so in its `Content-Length`.
pub fn check_body(r: &[u8], want: &[u8]) -> Result<(), String> {
    let mut rest = r;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("the response has no complete head")?;
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let body = &rest[end + 4..];
        if head.starts_with("HTTP/1.1 100 ") {
            rest = body;
            continue;
        }
        let length = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        });
        if length != Some(want.len()) {
            return Err(format!(
                "Content-Length {length:?} where the value has {} bytes",
                want.len()
            ));
        }
        if body.len() != want.len() {
            return Err(format!(
                "the body has {} bytes, the value {}",
                body.len(),
                want.len()
            ));
        }
        if let Some(at) = body.iter().zip(want).position(|(a, b)| a != b) {
            return Err(format!(
                "the body differs from the value put from byte {at} on"
            ));
        }
        return Ok(());
    }
}

/// FNV-1a, 64 bits: a hash to compare streams with.
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let w = self.next().to_le_bytes();
            c.copy_from_slice(&w[..c.len()]);
        }
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Sends `size` pseudo-random bytes to the echo server on the forwarded
/// guest `port` while reading its echo; compares the hashes. Returns a
/// summary (bytes, seconds, MB/s).
pub fn tcp_echo(env: &NetEnv, port: u16, size: u64, deadline: Instant) -> Result<String, String> {
    let addr = env.host(Proto::Tcp, port)?;
    let l = left(deadline)?;
    let s = TcpStream::connect_timeout(&addr, l).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(l)).map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let start = Instant::now();
    let writer = std::thread::spawn(move || -> Result<u64, String> {
        let mut rng = Rng(0x5eed_5e97a);
        let mut buf = vec![0u8; 64 * 1024];
        let (mut sent, mut h) = (0u64, FNV_START);
        while sent < size {
            let n = (size - sent).min(buf.len() as u64) as usize;
            rng.fill(&mut buf[..n]);
            w.write_all(&buf[..n]).map_err(|e| format!("send: {e}"))?;
            h = fnv(h, &buf[..n]);
            sent += n as u64;
        }
        let _ = w.shutdown(std::net::Shutdown::Write);
        Ok(h)
    });
    let mut r = s;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut got, mut h) = (0u64, FNV_START);
    let read_err = loop {
        if Instant::now() > deadline {
            break Some("the time ran out".to_string());
        }
        match r.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => {
                h = fnv(h, &buf[..n]);
                got += n as u64;
                if got > size {
                    break Some(format!("{got} bytes came back for {size} sent"));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Some(format!("receive: {e}")),
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let sent_hash = writer
        .join()
        .map_err(|_| "the sender panicked".to_string())??;
    if let Some(e) = read_err {
        return Err(format!("{e} after {got} of {size} bytes"));
    }
    if got != size {
        return Err(format!("{got} bytes came back for {size} sent"));
    }
    if h != sent_hash {
        return Err(format!(
            "the echo's hash {h:016x} is not the sent bytes' {sent_hash:016x}"
        ));
    }
    Ok(format!(
        "{size} bytes echoed in {secs:.2} s ({:.2} MB/s), hash {h:016x}",
        size as f64 / secs / 1e6
    ))
}

/// Sends `size` pseudo-random bytes to the forwarded guest `port`, closes
/// its side, and waits for the guest to close: the wall-clock rate of
/// the whole transfer (recorded as the figure `wall-mb-per-s`).
pub fn tcp_send(env: &NetEnv, port: u16, size: u64, deadline: Instant) -> Result<String, String> {
    let addr = env.host(Proto::Tcp, port)?;
    let secs = tcp_send_to(addr, size, deadline)?;
    let rate = size as f64 / secs / 1e6;
    if let Ok(mut f) = FIGURES.lock() {
        f.push(("wall-mb-per-s".into(), rate));
    }
    Ok(format!("{size} bytes sent in {secs:.2} s ({rate:.2} MB/s)"))
}

/// Sends `size` pseudo-random bytes to `addr`, closes its side, and waits
/// for the far end to close: the wall-clock seconds from the connection to
/// that close. (Also the yardstick's transfer to a guest on bare QEMU.)
pub fn tcp_send_to(addr: SocketAddr, size: u64, deadline: Instant) -> Result<f64, String> {
    let l = left(deadline)?;
    let mut s = TcpStream::connect_timeout(&addr, l).map_err(|e| format!("connect: {e}"))?;
    let start = Instant::now();
    let mut rng = Rng(0xb01c_b01c);
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < size {
        let n = (size - sent).min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        s.write_all(&buf[..n])
            .map_err(|e| format!("send after {sent} bytes: {e}"))?;
        sent += n as u64;
    }
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(left(deadline)?))
        .map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .map_err(|e| format!("waiting for the guest to close: {e}"))?;
    Ok(start.elapsed().as_secs_f64())
}

/// Sends `count` datagrams of varied sizes to the forwarded guest UDP
/// `port`, each until its echo comes back (a few tries: UDP may lose).
pub fn udp_echo(env: &NetEnv, port: u16, count: u32, deadline: Instant) -> Result<String, String> {
    let addr = env.host(Proto::Udp, port)?;
    let s = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    s.connect(addr).map_err(|e| e.to_string())?;
    let mut rng = Rng(0xdead_beef);
    let mut lost = 0;
    for i in 0..count {
        let len = 1 + (rng.below(1400)) as usize;
        let mut msg = vec![0u8; len];
        rng.fill(&mut msg);
        msg[..4.min(len)].copy_from_slice(&i.to_le_bytes()[..4.min(len)]);
        let mut ok = false;
        for _ in 0..10 {
            s.send(&msg).map_err(|e| format!("send: {e}"))?;
            let wait = left(deadline)?.min(Duration::from_millis(500));
            s.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
            let mut buf = [0u8; 2048];
            let until = Instant::now() + wait;
            while Instant::now() < until {
                match s.recv(&mut buf) {
                    Ok(n) if buf[..n] == msg[..] => {
                        ok = true;
                        break;
                    }
                    // An echo of an earlier try.
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            if ok {
                break;
            }
            lost += 1;
        }
        if !ok {
            return Err(format!("datagram {i} ({len} bytes) never came back"));
        }
    }
    Ok(format!("{count} datagrams echoed ({lost} resent)"))
}

/// The first connection to the non-blocking listener `l` before
/// `deadline`, made blocking.
fn accept(l: &TcpListener, deadline: Instant) -> Result<TcpStream, String> {
    let s = loop {
        match l.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                left(deadline).map_err(|_| "no connection came".to_string())?;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    };
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Accepts one connection on the host's 127.0.0.1:`port` and reads from
/// it until `want` has arrived.
pub fn tcp_accept(port: u16, want: &[u8], deadline: Instant) -> Result<(), String> {
    let l = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("bind: {e}"))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut s = accept(&l, deadline)?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(want.len()).any(|w| w == want) {
        s.set_read_timeout(Some(left(deadline)?))
            .map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => {
                return Err(format!(
                    "the connection closed after {:?}",
                    String::from_utf8_lossy(&got)
                ))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
    Ok(())
}

/// The generator's seed for [`serve`]'s bytes: their SHA-256 is fixed
/// (16 MiB: `57a78019…`, in `tests/systems/vm-net/probe`).
pub const SERVE_SEED: u64 = 0x5e97_a000_0000_0016;

/// Listens on the host's 127.0.0.1:`port` (the system reaches it as
/// 10.0.2.2:`port`) and, in the background, answers one HTTP GET with
/// `size` pseudo-random bytes ([`SERVE_SEED`]), before `deadline`. Returns
/// once it listens; the server says on the harness's output what it sent.
pub fn serve(port: u16, size: u64, deadline: Instant) -> Result<(), String> {
    let l = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("bind: {e}"))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        let r = (|| -> Result<String, String> {
            let mut s = accept(&l, deadline)?;
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                s.set_read_timeout(Some(left(deadline)?))
                    .map_err(|e| e.to_string())?;
                match s.read(&mut buf) {
                    Ok(0) => return Err("the request ended early".into()),
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                    Err(e) => return Err(format!("receive: {e}")),
                }
            }
            let start = Instant::now();
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
            );
            s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
            let mut rng = Rng(SERVE_SEED);
            let mut chunk = vec![0u8; 64 << 10];
            let mut sent = 0u64;
            while sent < size {
                let n = (size - sent).min(chunk.len() as u64) as usize;
                rng.fill(&mut chunk[..n]);
                s.write_all(&chunk[..n]).map_err(|e| format!("send: {e}"))?;
                sent += n as u64;
            }
            let secs = start.elapsed().as_secs_f64();
            Ok(format!(
                "served {sent} bytes in {secs:.2} s ({:.1} MB/s)",
                sent as f64 / secs.max(1e-9) / 1e6
            ))
        })();
        match r {
            Ok(m) => println!("   probe: tcp/{port}: {m}"),
            Err(e) => println!("   probe: tcp/{port}: serving failed: {e}"),
        }
    });
    Ok(())
}

/// A number after `"key":` in a JSON text.
pub fn json_number(text: &str, key: &str) -> Option<u64> {
    let at = text.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// The fake host the fuzzer speaks as when it checks that the stack still
/// answers (it never sends fuzz as this host).
const PROBE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
/// Frames sent between two checks: the card's receive ring holds 256.
const BURST: u32 = 64;
/// Bytes sent between two checks, at most: QEMU's socket must hold a whole
/// burst until it reads it (its receive buffer is the host's default, some
/// 200 KiB with the kernel's overhead); a datagram lost there would cut
/// the length-prefixed stream and garble every frame after it.
const BURST_BYTES: usize = 48 << 10;

/// The Internet checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ether(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 packet with a correct header checksum (and `options`).
fn ipv4(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    options: &[u8],
    flags_frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let ihl = 5 + options.len() / 4;
    let total = ihl * 4 + payload.len();
    let mut h = vec![0u8; ihl * 4];
    h[0] = 0x40 | ihl as u8;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    h[6..8].copy_from_slice(&flags_frag.to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    h[20..].copy_from_slice(options);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// A TCP or UDP segment with its pseudo-header checksum at `at`.
fn l4(src: [u8; 4], dst: [u8; 4], proto: u8, mut seg: Vec<u8>, at: usize) -> Vec<u8> {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&(seg.len() as u16).to_be_bytes());
    pseudo.extend_from_slice(&seg);
    let c = checksum(&pseudo);
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
    seg
}

fn icmp_echo(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(payload);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa);
    a
}

/// What a fuzz frame is, for the accounting.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fate {
    /// The stack sees it and must drop it (bad checksum, fragment).
    Dropped,
    /// The stack sees it (whatever it makes of it).
    Seen,
    /// It may never reach the stack (another MAC, a size the card
    /// refuses).
    Unknown,
}

/// The `i`th fuzz frame for a stack at `mac`/`ip`.
pub fn fuzz_frame(rng: &mut Rng, mac: [u8; 6], ip: [u8; 4]) -> (Vec<u8>, Fate) {
    let src_mac = [
        0x02,
        0x66,
        rng.next() as u8,
        rng.next() as u8,
        rng.next() as u8,
        1,
    ];
    // IP packets claim to come from the user network's gateway: whatever
    // the stack answers goes to QEMU's user network, which knows that
    // address (answers to made-up hosts would have it ask the wire for
    // each, a storm of its own). ARP floods speak for made-up hosts of the
    // subnet, never the gateway, the DNS server, the stack or the probe.
    let src_ip = [10, 0, 2, 2];
    let arp_ip = [10, 0, 2, 100 + rng.below(150) as u8];
    let junk = |n: usize, rng: &mut Rng| {
        let mut v = vec![0u8; n];
        rng.fill(&mut v);
        v
    };
    let tcp = |rng: &mut Rng, flags: u8, port: u16| {
        let mut seg = vec![0u8; 20];
        seg[0..2].copy_from_slice(&(1024 + rng.below(60000) as u16).to_be_bytes());
        seg[2..4].copy_from_slice(&port.to_be_bytes());
        seg[4..8].copy_from_slice(&(rng.next() as u32).to_be_bytes());
        seg[8..12].copy_from_slice(&(rng.next() as u32).to_be_bytes());
        seg[12] = 5 << 4;
        seg[13] = flags;
        seg[14..16].copy_from_slice(&(rng.next() as u16).to_be_bytes());
        seg
    };
    match rng.below(10) {
        // Random bytes of any length, to us (but not none: a frame of no
        // bytes is no frame, and QEMU's card would hold it at the head of
        // its queue for ever, taking it for a card that cannot receive).
        0 => {
            let n = 1 + rng.below(1600) as usize;
            let mut f = junk(n, rng);
            let fate = if (14..=1514).contains(&n) {
                f[..6].copy_from_slice(&mac);
                Fate::Seen
            } else {
                Fate::Unknown
            };
            (f, fate)
        }
        // A good UDP datagram, truncated anywhere.
        1 => {
            let seg = l4(
                src_ip,
                ip,
                17,
                [&[0x30, 0x39, 0, 7, 0, 28, 0, 0][..], &junk(20, rng)].concat(),
                6,
            );
            let f = ether(mac, src_mac, 0x0800, &ipv4(src_ip, ip, 17, &[], 0, &seg));
            let cut = 14 + rng.below(f.len() as u64 - 14) as usize;
            (f[..cut].to_vec(), Fate::Seen)
        }
        // A bad IPv4 header checksum.
        2 => {
            let seg = l4(
                src_ip,
                ip,
                17,
                [&[0x30, 0x39, 0, 7, 0, 18, 0, 0][..], &junk(10, rng)].concat(),
                6,
            );
            let mut p = ipv4(src_ip, ip, 17, &[], 0, &seg);
            p[10] ^= 0x5a;
            (ether(mac, src_mac, 0x0800, &p), Fate::Dropped)
        }
        // Bogus IP options in front of a TCP segment.
        3 => {
            let words = 1 + rng.below(10) as usize;
            let opts = junk(words * 4, rng);
            let flags = rng.next() as u8;
            let seg = l4(src_ip, ip, 6, tcp(rng, flags, 80), 16);
            (
                ether(mac, src_mac, 0x0800, &ipv4(src_ip, ip, 6, &opts, 0, &seg)),
                Fate::Seen,
            )
        }
        // TCP flag storms at the HTTP port and others.
        4 | 5 => {
            let flags = rng.next() as u8;
            let port = if rng.below(2) == 0 {
                80
            } else {
                rng.next() as u16
            };
            let seg = l4(src_ip, ip, 6, tcp(rng, flags, port), 16);
            (
                ether(mac, src_mac, 0x0800, &ipv4(src_ip, ip, 6, &[], 0, &seg)),
                Fate::Seen,
            )
        }
        // Fragments.
        6 => {
            let frag = 0x2000 | (rng.below(100) as u16);
            let p = ipv4(
                src_ip,
                ip,
                17,
                &[],
                frag,
                &junk(8 + rng.below(200) as usize, rng),
            );
            (ether(mac, src_mac, 0x0800, &p), Fate::Dropped)
        }
        // ARP floods: requests and replies from made-up hosts.
        7 => {
            let op = 1 + rng.below(2) as u16;
            let target = if rng.below(2) == 0 { ip } else { arp_ip };
            let a = arp(op, src_mac, arp_ip, [0; 6], target);
            (ether([0xff; 6], src_mac, 0x0806, &a), Fate::Seen)
        }
        // Oversized frames.
        8 => {
            let n = 1515 + rng.below(8000) as usize;
            let mut f = junk(n, rng);
            f[..6].copy_from_slice(&mac);
            (f, Fate::Unknown)
        }
        // Broadcast garbage with any ethertype, and ICMP with a bad sum.
        _ => {
            if rng.below(2) == 0 {
                let et = rng.next() as u16;
                let n = rng.below(1400) as usize;
                (ether([0xff; 6], src_mac, et, &junk(n, rng)), Fate::Seen)
            } else {
                let mut m = icmp_echo(7, 7, &junk(32, rng));
                m[2] ^= 0xff;
                (
                    ether(mac, src_mac, 0x0800, &ipv4(src_ip, ip, 1, &[], 0, &m)),
                    Fate::Seen,
                )
            }
        }
    }
}

/// What a fuzz run did.
#[derive(Debug, Default)]
pub struct FuzzReport {
    pub sent: u64,
    pub seen: u64,
    pub dropped: u64,
}

/// Injects `count` fuzz frames, in bursts, each burst followed by a ping
/// from the probe's own fake host that must be answered before the next:
/// so the stack is shown alive all along, and no frame is lost to a full
/// ring.
pub fn fuzz(
    env: &NetEnv,
    mac: [u8; 6],
    ip: [u8; 4],
    count: u64,
    deadline: Instant,
) -> Result<FuzzReport, String> {
    let (qemu, ours) = env
        .inject
        .ok_or("the system has no injection port (the harness adds one for a `fuzz` step)")?;
    let s = UdpSocket::bind(ours).map_err(|e| format!("bind {ours}: {e}"))?;
    // Each frame goes as its 4-byte big-endian length and its bytes (the
    // redirector's framing), a stream QEMU's UDP chardev reads at most
    // 4,096 bytes of a datagram at a time: so in datagrams no longer.
    let send = |f: &[u8]| -> Result<(), String> {
        let mut d = (f.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(f);
        for chunk in d.chunks(4096) {
            s.send_to(chunk, qemu).map_err(|e| format!("send: {e}"))?;
        }
        Ok(())
    };
    // The mirror's stream: lengths and frames, in datagrams of their own.
    let mut stream: Vec<u8> = Vec::new();
    let me = [ip[0], ip[1], ip[2], 99];
    let mut rng = Rng(0xf022_f022);
    let mut r = FuzzReport::default();
    let mut seq: u16 = 0;
    let mut buf = vec![0u8; 16384];
    while r.sent < count {
        let mut bytes = 0;
        for _ in 0..BURST.min((count - r.sent) as u32) {
            if bytes >= BURST_BYTES {
                break;
            }
            let (f, fate) = fuzz_frame(&mut rng, mac, ip);
            bytes += f.len() + 4;
            send(&f)?;
            r.sent += 1;
            match fate {
                Fate::Dropped => {
                    r.dropped += 1;
                    r.seen += 1
                }
                Fate::Seen => r.seen += 1,
                Fate::Unknown => {}
            }
        }
        // Alive? Introduce the probe's host, then ping it; again every
        // half second (the flood may have pushed the probe's host out of
        // the stack's ARP cache, and a reply waiting for ARP is dropped).
        seq = seq.wrapping_add(1);
        let hello = ether(mac, PROBE_MAC, 0x0806, &arp(1, PROBE_MAC, me, [0; 6], ip));
        let ping = icmp_echo(0x5e97, seq, b"septa fuzz probe");
        let ping = ether(mac, PROBE_MAC, 0x0800, &ipv4(me, ip, 1, &[], 0, &ping));
        let until = Instant::now() + Duration::from_secs(10);
        let mut again = Instant::now();
        let mut answered = false;
        let mut recent: Vec<Vec<u8>> = Vec::new();
        while !answered {
            let now = Instant::now();
            if now >= again {
                send(&hello)?;
                send(&ping)?;
                again = now + Duration::from_millis(500);
            }
            if now > until || now > deadline {
                let tail: Vec<String> = recent
                    .iter()
                    .map(|f: &Vec<u8>| f.iter().take(48).map(|b| format!("{b:02x}")).collect())
                    .collect();
                return Err(format!(
                    "the stack stopped answering pings after {} frames (last frames from the card: {})",
                    r.sent,
                    tail.join(" | ")
                ));
            }
            let wait = again
                .min(until)
                .min(deadline)
                .saturating_duration_since(now);
            s.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
                .map_err(|e| e.to_string())?;
            let Ok(n) = s.recv(&mut buf) else { continue };
            stream.extend_from_slice(&buf[..n]);
            if stream.len() < 4 {
                continue;
            }
            let len = u32::from_be_bytes([stream[0], stream[1], stream[2], stream[3]]) as usize;
            if stream.len() < 4 + len {
                continue;
            }
            let frame: Vec<u8> = stream.drain(..4 + len).skip(4).collect();
            let (f, n) = (&frame[..], len);
            if recent.len() == 6 {
                recent.remove(0);
            }
            recent.push(f.to_vec());
            // An echo reply to the probe host with this sequence number.
            if n >= 42
                && f[..6] == PROBE_MAC
                && f[12..14] == [0x08, 0x00]
                && f[23] == 1
                && f[34] == 0
                && f[40..42] == seq.to_be_bytes()
            {
                answered = true;
            }
            // The stack asking who the probe host is.
            if n >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1] && f[38..42] == me {
                let reply = arp(2, PROBE_MAC, me, mac, ip);
                send(&ether(mac, PROBE_MAC, 0x0806, &reply))?;
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_checked_byte_for_byte_after_any_interim_answer() {
        let ok = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(check_body(ok, b"abc"), Ok(()));
        assert!(check_body(ok, b"abd").unwrap_err().contains("from byte 2"));
        assert!(check_body(ok, b"abcd").is_err());
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab";
        assert!(check_body(short, b"abc").is_err());
        assert!(check_body(b"HTTP/1.1 200 OK\r\n", b"").is_err());
    }

    #[test]
    fn checksums_verify_to_zero_and_frames_vary() {
        let p = ipv4([10, 0, 2, 2], [10, 0, 2, 15], 17, &[], 0, b"abc");
        assert_eq!(checksum(&p[..20]), 0);
        let mut rng = Rng(1);
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..1000 {
            let (f, fate) = fuzz_frame(&mut rng, [0x52, 0x54, 0, 0x12, 0x34, 0x56], [10, 0, 2, 15]);
            kinds.insert(format!("{fate:?}"));
            assert!(f.len() < 10_000);
        }
        assert_eq!(kinds.len(), 3);
        assert_eq!(
            json_number("{\"a\":12,\"rx_dropped\":345}", "rx_dropped"),
            Some(345)
        );
        assert_eq!(fnv(FNV_START, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

/// The browser `dashboard` runs: `$SEPTA_CHROMIUM`, else `chromium`.
fn chromium() -> String {
    std::env::var("SEPTA_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// `path` on the forwarded guest `port`, loaded in headless Chromium with
/// its scripts run for a few seconds of virtual time, twice, a second and
/// a half apart, then once more for the screenshot (`dashboard.png` in
/// the system's build folder), all in one browser profile. Every PD of
/// `names` must be a row of the second rendered page (`data-pd`) with a
/// CPU time (`data-cpu-us`) above 0, and its chart must have changed
/// since the first: the page shows a later refresh of the statistics
/// (`data-refresh`) and the PD's chart draws more samples than it did
/// (`data-samples`, at least 2: a line).
pub fn dashboard(
    env: &NetEnv,
    port: u16,
    path: &str,
    names: &[String],
    deadline: Instant,
) -> Result<(), String> {
    let addr = env.host(Proto::Tcp, port)?;
    // The page is served once the stack has an address.
    http_get(env, port, path, deadline)?;
    let url = format!("http://{addr}{path}");
    let profile = env.dir.join("chromium-profile");
    let _ = std::fs::remove_dir_all(&profile);
    let shot = env.dir.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let run = |extra: &[&str]| -> Result<std::process::Output, String> {
        let mut c = std::process::Command::new(chromium());
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--window-size=1000,900",
            "--virtual-time-budget=4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url);
        c.output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "no headless browser: `{}` is not installed (Debian: apt install chromium; or set SEPTA_CHROMIUM); the dashboard test needs one",
                    chromium()
                )
            } else {
                format!("cannot run {}: {e}", chromium())
            }
        })
    };
    let dump = || -> Result<String, String> {
        let dom = run(&["--dump-dom"])?;
        if !dom.status.success() {
            return Err(format!(
                "the browser failed: {}",
                String::from_utf8_lossy(&dom.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&dom.stdout).into_owned())
    };
    let pages = dump().and_then(|first| {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        Ok((first, dump()?))
    });
    let shot_arg = format!("--screenshot={}", shot.display());
    let taken = match &pages {
        Ok(_) => run(&[shot_arg.as_str()]).map(|_| ()),
        Err(_) => Ok(()),
    };
    let _ = std::fs::remove_dir_all(&profile);
    let (first, page) = pages?;
    taken?;
    let before = dashboard_rows(&first);
    let rows = dashboard_rows(&page);
    let (r0, r1) = (dashboard_refresh(&first), dashboard_refresh(&page));
    let mut bad = Vec::new();
    if r0.is_none() || r1 <= r0 {
        bad.push(format!(
            "the page showed refresh {r0:?} at the first load and {r1:?} at the second: it did not update"
        ));
    }
    for n in names {
        match rows.iter().find(|r| &r.pd == n) {
            Some(r) if r.cpu_us == 0 => bad.push(format!("{n} shows no CPU time")),
            Some(r) => {
                let was = before.iter().find(|b| &b.pd == n).map_or(0, |b| b.samples);
                if r.samples < 2 || r.samples <= was {
                    bad.push(format!(
                        "{n}'s chart drew {was} samples at the first load and {} at the second: it did not change",
                        r.samples
                    ));
                }
            }
            None => bad.push(format!("{n} is not shown")),
        }
    }
    if !shot.is_file() {
        bad.push(format!("no screenshot at {}", shot.display()));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{} (the page showed {rows:?})", bad.join("; ")))
    }
}

/// A PD's row of a rendered dashboard.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    pd: String,
    cpu_us: u64,
    /// The samples its chart draws (`data-samples` of the row's SVG).
    samples: u64,
}

/// The refresh of the statistics a rendered dashboard shows.
fn dashboard_refresh(page: &str) -> Option<u64> {
    let at = page.find("data-refresh=\"")? + "data-refresh=\"".len();
    page[at..].split('"').next()?.parse().ok()
}

/// The PD rows of a rendered dashboard: `data-pd` and `data-cpu-us` of
/// each `<tr>`, and `data-samples` of the chart inside it.
fn dashboard_rows(page: &str) -> Vec<Row> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
        Some(tag[at..].split('"').next()?.to_string())
    };
    page.split("<tr")
        .skip(1)
        .filter_map(|t| {
            let tag = t.split('>').next()?;
            let pd = attr(tag, "data-pd")?;
            let number = |s: Option<String>| s.and_then(|c| c.parse().ok()).unwrap_or(0);
            Some(Row {
                pd,
                cpu_us: number(attr(tag, "data-cpu-us")),
                samples: number(attr(t, "data-samples")),
            })
        })
        .collect()
}

#[cfg(test)]
mod dashboard_tests {
    #[test]
    fn rows_come_from_the_rendered_table() {
        let page = r#"<table><tr><th>PD</th></tr><tbody id="t" data-refresh="12"><tr data-pd="web" data-kind="cell" data-cpu-us="1500"><td>web</td><td><svg class="spark" width="160" height="28" data-samples="3"></svg></td></tr><tr data-pd="idle" data-kind="cell" data-cpu-us="0"></tr></tbody></table>"#;
        let row = |pd: &str, cpu_us, samples| super::Row {
            pd: pd.into(),
            cpu_us,
            samples,
        };
        assert_eq!(
            super::dashboard_rows(page),
            [row("web", 1500, 3), row("idle", 0, 0)]
        );
        assert_eq!(super::dashboard_refresh(page), Some(12));
        assert_eq!(super::dashboard_refresh("<p>none</p>"), None);
    }
}
