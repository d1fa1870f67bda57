//! HTTP/1.1, as much as a status server needs: a request's line and
//! headers read whole (or refused), a response written whole, the
//! connection closed after it. Portable and host-tested.

use core::fmt::Write as _;

/// The longest request accepted (line and headers).
pub const MAX_REQUEST: usize = 2048;
/// The longest response.
pub const MAX_RESPONSE: usize = 4096;

pub type Response = heapless::Vec<u8, MAX_RESPONSE>;

/// What a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Get(&'a str),
    /// A method other than GET or HEAD.
    Other,
    /// Not HTTP.
    Bad,
}

/// The request in `buf`, once its headers are complete; `None` while
/// more is due.
pub fn parse(buf: &[u8]) -> Option<Request<'_>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = core::str::from_utf8(&buf[..end]).ok();
    let Some(line) = head.and_then(|h| h.lines().next()) else {
        return Some(Request::Bad);
    };
    let mut words = line.split(' ');
    let (Some(method), Some(path), Some(version)) = (words.next(), words.next(), words.next())
    else {
        return Some(Request::Bad);
    };
    if !version.starts_with("HTTP/1.") || !path.starts_with('/') {
        return Some(Request::Bad);
    }
    Some(match method {
        "GET" | "HEAD" => Request::Get(path),
        _ => Request::Other,
    })
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
}

fn respond(code: &str, kind: &str, body: &[u8]) -> Response {
    let mut r = Response::new();
    let mut head: heapless::String<256> = heapless::String::new();
    let _ = write!(
        head,
        "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\nServer: septa\r\n\r\n",
        body.len()
    );
    let _ = r.extend_from_slice(head.as_bytes());
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
        Request::Get(_) => respond("404 Not Found", "text/plain", b"not found\n"),
        Request::Other => respond("405 Method Not Allowed", "text/plain", b"GET only\n"),
        Request::Bad => respond("400 Bad Request", "text/plain", b"bad request\n"),
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
        }
    }

    #[test]
    fn requests_parse_once_whole() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        assert_eq!(
            parse(b"GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Request::Get("/api/status"))
        );
        assert_eq!(parse(b"POST / HTTP/1.1\r\n\r\n"), Some(Request::Other));
        assert_eq!(parse(b"GET nope\r\n\r\n"), Some(Request::Bad));
        assert_eq!(parse(b"\xff\xfe\r\n\r\n"), Some(Request::Bad));
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
