//! # http-status: the system's status over HTTP
//!
//! A cell of the network stack (`[net]`, allowed to listen on tcp/80)
//! that serves a status page at `/` and JSON at `/api/status`: the
//! system's PDs, the stack's uptime and address, frames and bytes through
//! it; and, where `[stats] http` exports the statistics table to it
//! (read-only), a live dashboard at `/cells` and its data at
//! `/api/cells`: every PD's CPU time, budget, faults, restarts, overruns
//! and state. One request per connection, answered whole, then closed; up
//! to [`MAX_CONNECTIONS`] at once, a slow client holding only its own.
//!
//! One `unsafe` block: the window on the exported table, at the address
//! the tool patched. Everything below the socket calls is the runtime's
//! and `septa-net-client`'s. Owns: its connections. Must not: anything
//! else; the table it can only read (the monitor writes it).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_code)]

mod http;

use septa_cells::stats::HEADER;
use septa_net_client::{Listener, Net, Read, Stream};
use septa_queue::Shared;
use septa_runtime::{println, protection_domain, setvar, ChannelSet, Handler};

setvar! {
    static TABLE = "septa_stats_table";
    static TABLE_SIZE = "septa_stats_table_size";
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

struct Conn {
    stream: Stream,
    request: heapless::Vec<u8, { http::MAX_REQUEST }>,
    response: Option<http::Response>,
    sent: usize,
}

struct Server {
    net: Net,
    listener: Listener,
    conns: heapless::Vec<Conn, MAX_CONNECTIONS>,
    requests: u64,
    table: Option<Shared>,
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
            },
        )
    }

    /// Moves connection `i` on; `false` once it is done.
    fn serve(&mut self, i: usize) -> bool {
        let c = &mut self.conns[i];
        if c.response.is_none() {
            let mut buf = [0u8; 512];
            loop {
                match c.stream.recv(&mut buf) {
                    Ok(Read::Data(n)) => {
                        if c.request.extend_from_slice(&buf[..n]).is_err() {
                            // Too long: answered as bad.
                            c.request.clear();
                            let _ = c.request.extend_from_slice(b"BAD\r\n\r\n");
                            break;
                        }
                    }
                    Ok(Read::WouldBlock) => break,
                    Ok(Read::Eof) | Err(_) => return false,
                }
            }
            if http::parse(&c.request).is_none() {
                return true;
            }
            // The request borrows the connection's buffer: copy it out.
            let copy = c.request.clone();
            let req = http::parse(&copy).unwrap_or(http::Request::Bad);
            let r = self.status_response(req);
            self.conns[i].response = Some(r);
        }
        let c = &mut self.conns[i];
        let r = c.response.as_ref().expect("set above");
        while c.sent < r.len() {
            match c.stream.send(&r[c.sent..]) {
                Ok(0) => return true,
                Ok(n) => c.sent += n,
                Err(_) => return false,
            }
        }
        false
    }

    fn run(&mut self) {
        while !self.conns.is_full() {
            match self.listener.accept() {
                Ok(Some(stream)) => {
                    let _ = self.conns.push(Conn {
                        stream,
                        request: heapless::Vec::new(),
                        response: None,
                        sent: 0,
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
            }
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
    println!("http: serving the system's status on tcp/{PORT}");
    Server {
        net,
        listener,
        conns: heapless::Vec::new(),
        requests: 0,
        table: table(),
    }
}

protection_domain!(init);
