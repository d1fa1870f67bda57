//! HTTP/1.1, as much as a status server needs: a request's line and
//! headers read whole (or refused), a response written whole, the
//! connection closed after it. Portable and host-tested.

use core::fmt::Write as _;

use septa_cells::counters::{Entry, Kind};

/// The longest request accepted (line and headers).
pub const MAX_REQUEST: usize = 2048;
/// The longest response.
pub const MAX_RESPONSE: usize = 16384;

pub type Response = heapless::Vec<u8, MAX_RESPONSE>;

/// What a request asked for (of the status pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Get(&'a str),
    /// A method other than GET or HEAD.
    Other,
}

/// A request's method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    Delete,
    Other,
}

/// What the head says of the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// No `Content-Length` (and no `Transfer-Encoding`): no body.
    None,
    /// `Content-Length`, read.
    Bytes(u64),
    /// `Transfer-Encoding` (chunked): not accepted here.
    Chunked,
    /// A `Content-Length` that is not one decimal number, given twice, or
    /// beside a `Transfer-Encoding`.
    Bad,
}

/// A request's line and headers, read whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head<'a> {
    pub method: Method,
    pub path: &'a str,
    pub length: Length,
    /// `Expect: 100-continue`: the client waits for an interim answer
    /// before it sends the body.
    pub expect_continue: bool,
    /// Bytes of the head, its blank line included: the body starts there.
    pub size: usize,
}

impl<'a> Head<'a> {
    /// The request as the status pages see it.
    pub fn request(&self) -> Request<'a> {
        match self.method {
            Method::Get | Method::Head => Request::Get(self.path),
            _ => Request::Other,
        }
    }
}

/// The longest `Content-Length` read (digits); longer is [`Length::Bad`].
const LENGTH_DIGITS: usize = 18;

/// The request head in `buf`, once its blank line has arrived: `None`
/// while more is due, `Some(Err(()))` if it is not HTTP/1.x.
pub fn parse_head(buf: &[u8]) -> Option<Result<Head<'_>, ()>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some(head_of(&buf[..end]).map(|mut h| {
        h.size = end + 4;
        h
    }))
}

fn head_of(bytes: &[u8]) -> Result<Head<'_>, ()> {
    let text = core::str::from_utf8(bytes).map_err(|_| ())?;
    let mut lines = text.split("\r\n");
    let line = lines.next().ok_or(())?;
    let mut words = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(());
    };
    if !version.starts_with("HTTP/1.") || !path.starts_with('/') {
        return Err(());
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => Method::Other,
        _ => return Err(()),
    };
    let (mut length, mut chunked, mut expect_continue) = (Length::None, false, false);
    for l in lines {
        let (name, value) = l.split_once(':').ok_or(())?;
        if name.is_empty() || name.contains(' ') {
            return Err(());
        }
        let value = value.trim_matches(|c| c == ' ' || c == '\t');
        if name.eq_ignore_ascii_case("content-length") {
            length = match length {
                Length::None
                    if (1..=LENGTH_DIGITS).contains(&value.len())
                        && value.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    value.parse().map_or(Length::Bad, Length::Bytes)
                }
                _ => Length::Bad,
            };
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    let length = match (length, chunked) {
        (Length::None, true) => Length::Chunked,
        (_, true) => Length::Bad,
        (l, false) => l,
    };
    Ok(Head {
        method,
        path,
        length,
        expect_continue,
        size: 0,
    })
}

/// A response's head (`extra`: more header lines, each ending in CRLF).
pub fn head(code: &str, kind: &str, len: usize, extra: &str) -> heapless::String<320> {
    let mut h = heapless::String::new();
    let _ = write!(
        h,
        "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {len}\r\n{extra}Connection: close\r\nServer: septa\r\n\r\n"
    );
    h
}

/// What the status shows.
pub struct Status<'a> {
    pub pds: &'a [&'a str],
    pub uptime_ms: u64,
    pub address: [u8; 4],
    pub mac: [u8; 6],
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub requests: u64,
    /// The statistics table (`septa_cells::stats`), if `[stats]` exports
    /// it to this PD.
    pub table: Option<&'a [u8]>,
    /// The servers' per-client counters `[stats]` exports with it.
    pub counters: &'a [Counted],
}

/// One client's counters at one server (`septa_cells::counters`).
#[derive(Clone, Copy, Debug)]
pub struct Counted {
    /// The server's name, as an entry's name.
    pub server: Entry,
    pub kind: Kind,
    pub entry: Entry,
}

/// The dashboard: a page that asks for `/api/cells` each second and
/// shows every PD's counters with a chart of its CPU use (per cent of a
/// CPU between two refreshes of the table, which come a second apart; the
/// first point the average since the stack started): an inline SVG
/// sparkline per PD (scaled to its highest point, 5% at least), redrawn
/// at each refresh, its history kept in the browser's local storage so
/// that a reload goes on drawing it; then each
/// server's counters per client (sockets, key-value requests, block
/// requests, refusals, bytes). Plain JS, no external asset. Each PD's row
/// carries its name, kind and CPU time as data attributes and its chart
/// the samples it draws, and the table the refresh it shows, which the
/// `cells-dashboard` test reads from the pages a browser rendered.
const DASHBOARD: &str = r##"<!doctype html>
<html><head><meta charset="utf-8"><title>Septa cells</title>
<style>body{font:14px sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1em}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}td:first-child{text-align:left}svg.spark{background:#f4f6fa;vertical-align:middle}</style>
</head><body><h1>Septa: cells and PDs</h1><p id="s">waiting for statistics...</p>
<table><thead><tr><th>PD</th><th>kind</th><th>CPU ms</th><th>CPU %</th><th>CPU % over time</th><th>budget</th><th>faults</th><th>restarts</th><th>overruns</th><th>state</th></tr></thead><tbody id="t"></tbody></table>
<h2>Servers, per client; every PD's own IPC</h2><div id="v"></div>
<script>
const N=60,K='septa-cells';let S=null;try{S=JSON.parse(localStorage.getItem(K))}catch(e){}if(!S||!S.H)S={last:null,H:{}};
function spark(h){const w=160,ht=28,m=Math.max(5,...h),p=h.map((v,k)=>(h.length>1?k*w/(h.length-1):w).toFixed(1)+','+(ht-2-v*(ht-4)/m).toFixed(1)).join(' ');
return '<svg class="spark" width="'+w+'" height="'+ht+'" data-samples="'+h.length+'"><title>up to '+m.toFixed(1)+'%</title><polyline fill="none" stroke="#36c" stroke-width="1.5" points="'+p+'"/>'+(h.length?'<circle r="2" fill="#c33" cx="'+p.split(' ').pop().replace(',','" cy="')+'"/>':'')+'</svg>'}
function cell(tr,v,html){const td=document.createElement('td');if(html)td.innerHTML=v;else td.textContent=v;tr.appendChild(td)}
function servers(d){const v=document.getElementById('v');v.textContent='';const by={};for(const c of d.servers||[]){const g=c.kind==='ipc'?'every PD':c.server;(by[g]=by[g]||[]).push(c)}
for(const n in by){const rows=by[n],f=Object.keys(rows[0]).filter(k=>!['server','kind','client'].includes(k)),tb=document.createElement('table');
const h=document.createElement('tr');for(const x of [n+' ('+rows[0].kind+')',...f]){const th=document.createElement('th');th.textContent=x;h.appendChild(th)}tb.appendChild(h);
for(const c of rows){const tr=document.createElement('tr');tr.dataset.server=n;tr.dataset.client=c.client;cell(tr,c.client);for(const k of f)cell(tr,c[k]);tb.appendChild(tr)}v.appendChild(tb)}}
async function tick(){try{const r=await fetch('/api/cells',{cache:'no-store'}),d=await r.json(),t=document.getElementById('t');let L=S.last;
if(L&&d.refresh<L.refresh){S={last:null,H:{}};L=null}if(L&&d.refresh==L.refresh)return;t.textContent='';
const dr=L?d.refresh-L.refresh:0,cpu={};
for(const p of d.pds){const prev=L?L.cpu[p.name]:undefined,pc=prev!==undefined&&dr>0?Math.min(100,(p.cpu_us-prev)/(1e4*dr)):Math.min(100,p.cpu_us/(10*Math.max(1,d.uptime_ms)));
const h=S.H[p.name]=S.H[p.name]||[];h.push(+pc.toFixed(2));if(h.length>N)h.shift();cpu[p.name]=p.cpu_us;
const tr=document.createElement('tr');tr.dataset.pd=p.name;tr.dataset.kind=p.cell?'cell':'pd';tr.dataset.cpuUs=p.cpu_us;
cell(tr,p.name);cell(tr,p.cell?'cell':'pd');cell(tr,(p.cpu_us/1000).toFixed(1));cell(tr,pc.toFixed(1));cell(tr,spark(h),1);
for(const v of [p.budget_us+'/'+p.period_us+' us',p.faults,p.restarts,p.overruns,p.state])cell(tr,v);t.appendChild(tr)}
t.dataset.refresh=d.refresh;S.last={refresh:d.refresh,cpu};try{localStorage.setItem(K,JSON.stringify(S))}catch(e){}servers(d);
document.getElementById('s').textContent='refresh '+d.refresh+', '+d.pds.length+' PDs, up '+(d.uptime_ms/1000).toFixed(1)+' s'}
catch(e){document.getElementById('s').textContent='no statistics: '+e}}
tick();setInterval(tick,1000);
</script></body></html>
"##;

fn respond(code: &str, kind: &str, body: &[u8]) -> Response {
    let mut r = Response::new();
    let _ = r.extend_from_slice(head(code, kind, body.len(), "").as_bytes());
    let _ = r.extend_from_slice(body);
    r
}

/// The response to `req`.
pub fn answer(req: Request<'_>, s: &Status<'_>) -> Response {
    let mut body: heapless::String<{ MAX_RESPONSE - 256 }> = heapless::String::new();
    match req {
        Request::Get("/api/status") => {
            let m = s.mac;
            let _ = write!(
                body,
                "{{\"system\":\"septa\",\"uptime_ms\":{},\"address\":\"{}.{}.{}.{}\",\"mac\":\"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\",\"pds\":[",
                s.uptime_ms, s.address[0], s.address[1], s.address[2], s.address[3],
                m[0], m[1], m[2], m[3], m[4], m[5]
            );
            for (i, p) in s.pds.iter().enumerate() {
                let _ = write!(body, "{}\"{p}\"", if i > 0 { "," } else { "" });
            }
            let _ = writeln!(
                body,
                "],\"net\":{{\"rx_frames\":{},\"rx_bytes\":{},\"tx_frames\":{},\"tx_bytes\":{},\"rx_dropped\":{}}},\"requests\":{}}}",
                s.rx_frames, s.rx_bytes, s.tx_frames, s.tx_bytes, s.rx_dropped, s.requests
            );
            respond("200 OK", "application/json", body.as_bytes())
        }
        Request::Get("/") => {
            let _ = write!(
                body,
                "<!doctype html>\n<html><head><title>Septa</title></head><body>\n<h1>Septa is running</h1>\n<p>Up {}.{:03} s at {}.{}.{}.{}; {} requests served.</p>\n<h2>Protection domains</h2>\n<ul>\n",
                s.uptime_ms / 1000, s.uptime_ms % 1000,
                s.address[0], s.address[1], s.address[2], s.address[3], s.requests
            );
            for p in s.pds {
                let _ = writeln!(body, "<li>{p}</li>");
            }
            let _ = write!(
                body,
                "</ul>\n<h2>Network</h2>\n<p>{} frames ({} bytes) in, {} frames ({} bytes) out, {} dropped.</p>\n<p><a href=\"/api/status\">/api/status</a></p>\n</body></html>\n",
                s.rx_frames, s.rx_bytes, s.tx_frames, s.tx_bytes, s.rx_dropped
            );
            respond("200 OK", "text/html; charset=utf-8", body.as_bytes())
        }
        Request::Get("/cells") => {
            respond("200 OK", "text/html; charset=utf-8", DASHBOARD.as_bytes())
        }
        Request::Get("/api/cells") => {
            let Some(table) = s.table.map(septa_cells::stats::Table::read) else {
                return respond(
                    "404 Not Found",
                    "text/plain",
                    b"no statistics: [stats] does not export them here\n",
                );
            };
            let Ok(table) = table else {
                return respond(
                    "503 Service Unavailable",
                    "text/plain",
                    b"statistics not ready\n",
                );
            };
            let _ = write!(
                body,
                "{{\"refresh\":{},\"uptime_ms\":{},\"pds\":[",
                table.refreshes, s.uptime_ms
            );
            for (i, e) in table.entries().enumerate() {
                let _ = write!(
                    body,
                    "{}{{\"name\":\"{}\",\"cell\":{},\"cpu_us\":{},\"budget_us\":{},\"period_us\":{},\"faults\":{},\"restarts\":{},\"overruns\":{},\"state\":\"{}\"}}",
                    if i > 0 { "," } else { "" },
                    e.name(),
                    e.cell,
                    e.cpu_us,
                    e.budget_us,
                    e.period_us,
                    e.faults,
                    e.restarts,
                    e.overruns,
                    e.state.name()
                );
            }
            let _ = write!(body, "],\"servers\":[");
            for (i, c) in s.counters.iter().enumerate() {
                let _ = write!(
                    body,
                    "{}{{\"server\":\"{}\",\"kind\":\"{}\",\"client\":\"{}\"",
                    if i > 0 { "," } else { "" },
                    c.server.name(),
                    c.kind.name(),
                    c.entry.name()
                );
                for (f, v) in c.kind.fields().iter().zip(c.entry.values) {
                    let _ = write!(body, ",\"{f}\":{v}");
                }
                let _ = write!(body, "}}");
            }
            let _ = writeln!(body, "]}}");
            respond("200 OK", "application/json", body.as_bytes())
        }
        Request::Get(_) => respond("404 Not Found", "text/plain", b"not found\n"),
        Request::Other => respond("405 Method Not Allowed", "text/plain", b"GET only\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status<'static> {
        Status {
            pds: &["http", "net_stack"],
            uptime_ms: 1234,
            address: [10, 0, 2, 15],
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            rx_frames: 5,
            rx_bytes: 600,
            tx_frames: 4,
            tx_bytes: 500,
            rx_dropped: 1,
            requests: 2,
            table: None,
            counters: &[],
        }
    }

    #[test]
    fn the_dashboard_is_a_page_and_json_from_the_table() {
        use septa_cells::stats::{write, Entry, ENTRY, HEADER};
        let mut bytes = [0u8; HEADER + 3 * ENTRY];
        let mut web = Entry::named("web");
        web.cell = true;
        web.cpu_us = 1500;
        write(&mut bytes, 7, &[web, Entry::named("net_stack")]);
        let mut s = status();
        s.table = Some(&bytes);
        let mut client = septa_cells::counters::Entry::named("web");
        client.values = [1, 2, 3, 4, 5, 6];
        let counted = [Counted {
            server: septa_cells::counters::Entry::named("net_stack"),
            kind: Kind::Net,
            entry: client,
        }];
        s.counters = &counted;
        let r = answer(Request::Get("/api/cells"), &s);
        let text = core::str::from_utf8(&r).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.contains("\"refresh\":7"), "{text}");
        assert!(
            text.contains("{\"name\":\"web\",\"cell\":true,\"cpu_us\":1500,"),
            "{text}"
        );
        assert!(
            text.contains("\"name\":\"net_stack\",\"cell\":false"),
            "{text}"
        );
        assert!(
            text.contains("\"servers\":[{\"server\":\"net_stack\",\"kind\":\"net\",\"client\":\"web\",\"opened\":1,\"refused\":2,\"denied\":3,\"tx_bytes\":4,\"rx_bytes\":5,\"accepted\":6}]}"),
            "{text}"
        );
        let r = answer(Request::Get("/cells"), &s);
        let text = core::str::from_utf8(&r).unwrap();
        assert!(text.contains("fetch('/api/cells'"));
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "no external asset"
        );
        // Without the export: said so, not an empty table.
        let r = answer(Request::Get("/api/cells"), &status());
        assert!(r.starts_with(b"HTTP/1.1 404"));
    }

    #[test]
    fn requests_parse_once_whole() {
        let parse = |b| parse_head(b).map(|h| h.map(|h| h.request()));
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            parse(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Ok(Request::Get("/api/status")))
        );
        assert_eq!(parse(b"POST / HTTP/1.1\r\n\r\n"), Some(Ok(Request::Other)));
        assert_eq!(parse(b"GET nope\r\n\r\n"), Some(Err(())));
        assert_eq!(parse(b"\xff\xfe\r\n\r\n"), Some(Err(())));
    }

    #[test]
    fn heads_say_what_the_body_is() {
        let h = parse_head(b"PUT /kv/a HTTP/1.1\r\nHost: x\r\ncontent-length:  12 \r\nExpect: 100-continue\r\n\r\nbody")
            .unwrap()
            .unwrap();
        assert_eq!(h.method, Method::Put);
        assert_eq!(h.path, "/kv/a");
        assert_eq!(h.length, Length::Bytes(12));
        assert!(h.expect_continue);
        assert_eq!(h.size, 75);
        let len = |text: &[u8]| parse_head(text).unwrap().unwrap().length;
        assert_eq!(len(b"PUT / HTTP/1.1\r\n\r\n"), Length::None);
        assert_eq!(
            len(b"PUT / HTTP/1.1\r\nContent-Length: x1\r\n\r\n"),
            Length::Bad
        );
        assert_eq!(
            len(b"PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Length::Bad
        );
        assert_eq!(
            len(b"PUT / HTTP/1.1\r\nContent-Length: \r\n\r\n"),
            Length::Bad
        );
        assert_eq!(
            len(b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            Length::Bad
        );
        assert_eq!(
            len(b"PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Length::Bad
        );
        assert_eq!(
            len(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Length::Chunked
        );
        assert_eq!(
            len(b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            Length::Bad
        );
        assert_eq!(
            parse_head(b"PATCH /kv/a HTTP/1.1\r\n\r\n")
                .unwrap()
                .unwrap()
                .method,
            Method::Other
        );
        assert!(parse_head(b"GET / HTTP/1.1\r\nno colon\r\n\r\n")
            .unwrap()
            .is_err());
        assert!(parse_head(b"GET  / HTTP/1.1\r\n\r\n").unwrap().is_err());
        assert!(parse_head(b"get / HTTP/1.1\r\n\r\n").unwrap().is_err());
    }

    #[test]
    fn the_status_is_json_and_html() {
        let r = answer(Request::Get("/api/status"), &status());
        let text = core::str::from_utf8(&r).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("\"pds\":[\"http\",\"net_stack\"]"));
        assert!(body.contains("\"uptime_ms\":1234"));
        assert!(body.contains("\"address\":\"10.0.2.15\""));
        assert!(body.contains("\"mac\":\"52:54:00:12:34:56\""));
        let r = answer(Request::Get("/"), &status());
        let text = core::str::from_utf8(&r).unwrap();
        assert!(text.contains("<h1>Septa is running</h1>"));
        assert!(text.contains("<li>net_stack</li>"));
        let r = answer(Request::Get("/x"), &status());
        assert!(r.starts_with(b"HTTP/1.1 404"));
    }
}
