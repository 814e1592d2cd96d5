//! The express lane: HTTP/1.1 requests without a body (`GET`, `HEAD`, `OPTIONS`) are read,
//! answered and written here; every other request goes to hyper, with the connection.
//!
//! ## Why not hyper for everything?
//! For a small page, hyper and the handler spent several times nginx's user time per request
//! (`benches/serving_vs_nginx.sh`, figures in `benches/RESULTS.md`): parsing into a header
//! map, building a response header map, serialising it, and the allocations in between. A
//! visitor of a static site sends nothing but bodiless requests, and for a warm file the
//! answer's head never changes (`deploystack_core::services::serving::RenderedHeads`), so
//! the lane writes those bytes, a `Date` line and the body in one `writev`.
//!
//! ## What stays with hyper
//! The lane answers only what it fully understands: a complete HTTP/1.1 head whose method
//! carries no body, without `Content-Length`, `Transfer-Encoding`, `Expect` or `Upgrade`,
//! with valid names, values and target. Anything else — uploads and every other request
//! with a body, HTTP/1.0, a head over `max_header_bytes` (hyper answers 431), a malformed
//! one (hyper answers 400) — hands the connection to hyper together with the bytes read so
//! far, and hyper serves it from there to its end. Both answer through the same
//! [`App::handle`], so a request gets the same response on either path.
//!
//! ## Limits, as hyper applies them
//! Waiting for a request head (the first, or the next on a keep-alive connection) is bounded
//! by `header_read_timeout_secs`: a slow or idle client is closed. Pipelined requests are
//! answered in order. Once the server stops, an idle connection closes at once and a busy
//! one after its current response.
//!
//! ## Moving between serve threads
//! Every [`PLACEMENT_CHECK_EVERY`] answers, when nothing of the next request has been read
//! yet, the lane asks the caller whether the connection should be served elsewhere (the
//! serve loop checks that it is still on its client's core, `server/cores.rs`), and if so
//! returns it as [`Outcome::Move`]: whatever the client sent since stays in the socket and
//! goes with it.

use std::io::{ErrorKind, IoSlice};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dispatch::App;
use crate::sendfile::{self, BlobFile, FileBacked};

/// Marks a request that arrived through the express lane: handlers may answer it with a
/// [`Rendered`] response, which only this lane knows how to write.
#[derive(Clone, Copy, Debug)]
pub struct Express;

/// A response whose head was rendered earlier: the lane writes `head`, then `Date`, then
/// `body` (from its file when there is one). Its own status and header map are empty.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// Status line and header fields, as `RenderedHead::head`.
    pub head: Bytes,
    /// The whole body, unless it is sent from `file`.
    pub body: Bytes,
    /// The file the body is sent from with `sendfile`, instead of `body`.
    pub file: Option<BlobFile>,
}

/// What the lane needs to know about the server's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `header_read_timeout_secs`.
    pub header_read_timeout: Duration,
    /// `max_header_bytes`.
    pub max_header_bytes: usize,
}

/// How a connection left the lane.
pub enum Outcome {
    /// It is finished; drop it.
    Closed,
    /// hyper serves it from here; these bytes were read from it and not answered yet.
    Handoff(Bytes),
    /// It is between requests, nothing of the next one read, and `should_move` said it
    /// belongs on another thread.
    Move,
}

/// How many answers pass between two questions whether a connection should move: each
/// costs a system call (`SO_INCOMING_CPU`), and a client changes cores rarely.
pub const PLACEMENT_CHECK_EVERY: u32 = 64;

/// Most requests of one connection answered in a row while others may be waiting: each one
/// more lets a waiting connection wait another answer's time (31 of them on a serve thread
/// with 32 connections), and each one fewer costs a turn through the scheduler. On the
/// benchmark VM 1, 2 and 16 gave the same throughput, 1 the lowest p99 latency (like
/// nginx, which serves each ready connection once per turn of its event loop); with the
/// scheduler's default budget (128) the p99 latency was twice nginx's.
const MAX_STREAK: u32 = 1;

/// Most header fields a request may have and still take the lane.
const MAX_HEADERS: usize = 48;

/// Serve `tcp` until it closes, carries a request for hyper, or `should_move` (asked between
/// requests, see [`PLACEMENT_CHECK_EVERY`]) says it belongs elsewhere.
pub async fn serve(
    tcp: &TcpStream,
    app: &App,
    limits: Limits,
    stop: &CancellationToken,
    sent_from_files: &AtomicU64,
    mut should_move: impl FnMut(&TcpStream) -> bool,
) -> Outcome {
    let mut stopped = pin!(stop.cancelled());
    let mut input = BytesMut::with_capacity(4096);
    let mut output = Vec::with_capacity(1024);
    // Requests answered since this connection last waited or yielded.
    let mut streak = 0;
    // Requests answered since `should_move` was last asked.
    let mut answered = 0;
    loop {
        if stop.is_cancelled() {
            return Outcome::Closed;
        }
        // One head, read within the header timeout from the moment we start waiting.
        let mut deadline = None;
        let request = loop {
            if !input.is_empty() {
                match parse(&mut input, limits.max_header_bytes) {
                    Parsed::Request(request) => break request,
                    Parsed::Partial => {}
                    Parsed::ForHyper => return Outcome::Handoff(input.freeze()),
                }
            }
            if input.capacity() - input.len() < 1024 {
                input.reserve(4096);
            }
            match tcp.try_read_buf(&mut input) {
                Ok(0) => return Outcome::Closed,
                Ok(_) => continue,
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Outcome::Closed,
            }
            streak = 0;
            let deadline =
                *deadline.get_or_insert_with(|| Instant::now() + limits.header_read_timeout);
            tokio::select! {
                biased;
                () = stopped.as_mut() => return Outcome::Closed,
                ready = tokio::time::timeout_at(deadline, tcp.readable()) => match ready {
                    Ok(Ok(())) => {}
                    // The head did not arrive in time (slowloris, or an idle keep-alive).
                    Ok(Err(_)) | Err(_) => return Outcome::Closed,
                },
            }
        };
        let head_only = request.method() == Method::HEAD;
        let close = wants_close(request.headers());
        let response = app.handle(request).await;
        match write_response(tcp, response, head_only, close, &mut output).await {
            Ok(Written {
                keep_alive,
                from_file,
            }) => {
                sent_from_files.fetch_add(from_file, Ordering::Relaxed);
                if !keep_alive {
                    return Outcome::Closed;
                }
            }
            Err(_) => return Outcome::Closed,
        }
        // Unread bytes stay in the socket and go with it; read ones would be lost.
        answered += 1;
        if answered >= PLACEMENT_CHECK_EVERY && input.is_empty() {
            answered = 0;
            if should_move(tcp) {
                return Outcome::Move;
            }
        }
        // On loopback the client's next request is often in already; without a turn for the
        // thread's other connections, this one would be served again and again.
        streak += 1;
        if streak >= MAX_STREAK {
            streak = 0;
            tokio::task::yield_now().await;
        }
    }
}

// Returned once per request and taken apart at once: boxing the request would cost an
// allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Request(Request<Body>),
    Partial,
    ForHyper,
}

/// Take one request head off the front of `input`, if it is complete and the lane's.
fn parse(input: &mut BytesMut, max_header_bytes: usize) -> Parsed {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Request::new(&mut fields);
    let length = match head.parse(input) {
        Ok(httparse::Status::Complete(length)) if length <= max_header_bytes => length,
        Ok(httparse::Status::Partial) if input.len() <= max_header_bytes => return Parsed::Partial,
        _ => return Parsed::ForHyper,
    };
    if head.version != Some(1) {
        return Parsed::ForHyper;
    }
    let method = match head.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        Some("OPTIONS") => Method::OPTIONS,
        _ => return Parsed::ForHyper,
    };
    let base = input.as_ptr() as usize;
    let span = |part: &[u8]| {
        let start = part.as_ptr() as usize - base;
        start..start + part.len()
    };
    let target = span(head.path.unwrap_or_default().as_bytes());
    let mut spans = Vec::with_capacity(head.headers.len());
    for field in head.headers.iter() {
        let Ok(name) = HeaderName::from_bytes(field.name.as_bytes()) else {
            return Parsed::ForHyper;
        };
        // Anything that announces a body or a protocol change is hyper's to handle.
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::EXPECT
            || name == header::UPGRADE
        {
            return Parsed::ForHyper;
        }
        spans.push((name, span(field.value)));
    }
    // The head as shared bytes: the target and the values become views of it, not copies.
    let bytes = input.split_to(length).freeze();
    let Ok(uri) = Uri::from_maybe_shared(bytes.slice(target)) else {
        return Parsed::ForHyper;
    };
    let mut headers = HeaderMap::with_capacity(spans.len());
    for (name, value) in spans {
        let Ok(value) = HeaderValue::from_maybe_shared(bytes.slice(value)) else {
            return Parsed::ForHyper;
        };
        headers.append(name, value);
    }
    if headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|value| has_token(value, "upgrade"))
    {
        return Parsed::ForHyper;
    }
    let mut request = Request::new(Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    request.extensions_mut().insert(Express);
    Parsed::Request(request)
}

fn wants_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|value| has_token(value, "close"))
}

/// Whether the comma-separated `value` lists `token` (ASCII case-insensitive).
fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .as_bytes()
        .split(|&byte| byte == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

struct Written {
    keep_alive: bool,
    from_file: u64,
}

/// Write `response` as HTTP/1.1: the head hyper would write (`Date` added, a length or
/// chunked framing), then the body unless the request was `HEAD` or the status has none.
async fn write_response(
    tcp: &TcpStream,
    response: Response<Body>,
    head_only: bool,
    close: bool,
    output: &mut Vec<u8>,
) -> std::io::Result<Written> {
    let (parts, body) = response.into_parts();
    output.clear();
    if let Some(rendered) = parts.extensions.get::<Rendered>() {
        output.extend_from_slice(&rendered.head);
        finish_head(output, close);
        if head_only {
            write_all(tcp, &mut [IoSlice::new(output)]).await?;
            return Ok(Written {
                keep_alive: !close,
                from_file: 0,
            });
        }
        let from_file = match &rendered.file {
            Some(file) => {
                sendfile::write_head_and_file(tcp, output, file).await?;
                file.len() as u64
            }
            None => {
                write_all(
                    tcp,
                    &mut [IoSlice::new(output), IoSlice::new(&rendered.body)],
                )
                .await?;
                0
            }
        };
        return Ok(Written {
            keep_alive: !close,
            from_file,
        });
    }

    let status = parts.status;
    let headers = &parts.headers;
    status_line(output, status);
    for (name, value) in headers {
        field(output, name.as_str().as_bytes(), value.as_bytes());
    }
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let exact = body.size_hint().exact();
    let framing = if bodiless {
        Framing::None
    } else if let Some(length) = declared {
        Framing::Length(length)
    } else if let Some(length) = exact {
        if !(head_only && length == 0) {
            let digits = itoa_u64(length);
            field(output, b"content-length", digits.as_bytes());
        }
        Framing::Length(length)
    } else if head_only {
        Framing::None
    } else {
        field(output, b"transfer-encoding", b"chunked");
        Framing::Chunked
    };
    let close = close || wants_close(headers);
    finish_head(output, close);
    if head_only || bodiless {
        write_all(tcp, &mut [IoSlice::new(output)]).await?;
        return Ok(Written {
            keep_alive: !close,
            from_file: 0,
        });
    }
    let file = parts.extensions.get::<FileBacked>();
    write_body(tcp, body, framing, file, output, close).await
}

/// How the body's end is marked.
#[derive(Clone, Copy)]
enum Framing {
    None,
    Length(u64),
    Chunked,
}

async fn write_body(
    tcp: &TcpStream,
    mut body: Body,
    framing: Framing,
    file: Option<&FileBacked>,
    head: &[u8],
    close: bool,
) -> std::io::Result<Written> {
    let mut head = Some(head);
    let mut written: u64 = 0;
    let mut from_file = 0;
    let mut failed = false;
    loop {
        // A frame that is not ready at once (a log stream waiting for its next line) must not
        // hold back what is written already: the head goes out first, as hyper sends it.
        let mut next = pin!(body.frame());
        let frame = match std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if let Some(pending_head) = head.take() {
                    write_all(tcp, &mut [IoSlice::new(pending_head)]).await?;
                }
                next.await
            }
        };
        let Some(frame) = frame else {
            break;
        };
        let Ok(frame) = frame else {
            // A storage failure mid-body: the response cannot be completed, so the
            // connection ends and the client sees a short body.
            failed = true;
            break;
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not sent
        };
        if data.is_empty() {
            continue;
        }
        let pending_head = head.take().unwrap_or_default();
        match framing {
            Framing::Chunked => {
                let size = format!("{:x}\r\n", data.len());
                write_all(
                    tcp,
                    &mut [
                        IoSlice::new(pending_head),
                        IoSlice::new(size.as_bytes()),
                        IoSlice::new(&data),
                        IoSlice::new(b"\r\n"),
                    ],
                )
                .await?;
            }
            _ => match file.filter(|file| file.is(&data) && written == 0) {
                Some(file) => {
                    sendfile::write_head_and_file(tcp, pending_head, file.file()).await?;
                    from_file += data.len() as u64;
                }
                None => {
                    write_all(tcp, &mut [IoSlice::new(pending_head), IoSlice::new(&data)]).await?;
                }
            },
        }
        written += data.len() as u64;
    }
    let mut tail: &[u8] = &[];
    if let Framing::Chunked = framing
        && !failed
    {
        tail = b"0\r\n\r\n";
    }
    let pending_head = head.take().unwrap_or_default();
    if !pending_head.is_empty() || !tail.is_empty() {
        write_all(tcp, &mut [IoSlice::new(pending_head), IoSlice::new(tail)]).await?;
    }
    // A body that is shorter or longer than it said leaves the framing broken: close.
    let complete = match framing {
        Framing::Length(length) => written == length,
        Framing::Chunked | Framing::None => true,
    };
    Ok(Written {
        keep_alive: !close && !failed && complete,
        from_file,
    })
}

fn status_line(output: &mut Vec<u8>, status: StatusCode) {
    output.extend_from_slice(b"HTTP/1.1 ");
    output.extend_from_slice(status.as_str().as_bytes());
    output.push(b' ');
    output.extend_from_slice(
        status
            .canonical_reason()
            .unwrap_or("<unknown status code>")
            .as_bytes(),
    );
    output.extend_from_slice(b"\r\n");
}

fn field(output: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    output.extend_from_slice(name);
    output.extend_from_slice(b": ");
    output.extend_from_slice(value);
    output.extend_from_slice(b"\r\n");
}

/// `Date`, `Connection: close` when the connection ends after this response, and the
/// empty line.
fn finish_head(output: &mut Vec<u8>, close: bool) {
    output.extend_from_slice(b"date: ");
    date::push(output);
    output.extend_from_slice(b"\r\n");
    if close {
        output.extend_from_slice(b"connection: close\r\n");
    }
    output.extend_from_slice(b"\r\n");
}

/// The head of a response as [`serve`] writes it, without `Date`, `Connection` and the
/// final empty line: what a handler keeps to answer the same request again with
/// [`Rendered`]. `body_length` is the body's length, written as `Content-Length` when the
/// headers do not say it already (as for a body of known size).
pub fn render_head(status: StatusCode, headers: &HeaderMap, body_length: u64) -> Bytes {
    let mut output = Vec::with_capacity(512);
    status_line(&mut output, status);
    for (name, value) in headers {
        field(&mut output, name.as_str().as_bytes(), value.as_bytes());
    }
    if !headers.contains_key(header::CONTENT_LENGTH) {
        field(
            &mut output,
            b"content-length",
            itoa_u64(body_length).as_bytes(),
        );
    }
    Bytes::from(output)
}

/// Write every byte of `slices`, waiting for the socket as needed.
async fn write_all(tcp: &TcpStream, slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    let mut slices = &mut slices[..];
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match tcp.try_write_vectored(slices) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(err) if err.kind() == ErrorKind::WouldBlock => tcp.writable().await?,
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Decimal digits of `value` without an allocation.
fn itoa_u64(value: u64) -> Digits {
    let mut digits = Digits {
        bytes: [0; 20],
        start: 20,
    };
    let mut rest = value;
    loop {
        digits.start -= 1;
        digits.bytes[digits.start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            return digits;
        }
    }
}

struct Digits {
    bytes: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// The `Date` value, formatted once a second per thread, as hyper does.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    thread_local! {
        static NOW: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }

    pub(super) fn push(output: &mut Vec<u8>) {
        let now = SystemTime::now();
        let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        NOW.with_borrow_mut(|(at, text)| {
            if *at != second || text.is_empty() {
                *at = second;
                *text = httpdate::fmt_http_date(now);
            }
            output.extend_from_slice(text.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Parsed {
        parse(&mut BytesMut::from(raw), 8192)
    }

    #[test]
    fn bodiless_requests_take_the_lane() {
        let Parsed::Request(request) =
            parsed("GET /a/b?c=d HTTP/1.1\r\nHost: x.localhost\r\nAccept: */*\r\n\r\n")
        else {
            panic!("not taken");
        };
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri(), "/a/b?c=d");
        assert_eq!(request.headers()["host"], "x.localhost");
        assert!(request.extensions().get::<Express>().is_some());
        assert!(matches!(
            parsed("HEAD / HTTP/1.1\r\nHost: a\r\n"),
            Parsed::Partial
        ));
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        for raw in [
            "POST /deploy HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            "GET /\u{7f} HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(matches!(parsed(raw), Parsed::ForHyper), "{raw:?}");
        }
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect();
        assert!(matches!(
            parsed(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
            Parsed::ForHyper
        ));
        // Over the header budget, whether complete or not: hyper answers 431.
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000));
        assert!(matches!(parsed(&big), Parsed::ForHyper));
        assert!(matches!(parsed(&big[..8500]), Parsed::ForHyper));
    }

    #[test]
    fn pipelined_requests_are_taken_one_at_a_time() {
        let mut input =
            BytesMut::from("GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
        let Parsed::Request(first) = parse(&mut input, 8192) else {
            panic!()
        };
        assert_eq!(first.uri(), "/1");
        let Parsed::Request(second) = parse(&mut input, 8192) else {
            panic!()
        };
        assert_eq!(second.uri(), "/2");
        assert!(input.is_empty());
    }

    #[test]
    fn connection_tokens_are_read_as_a_list() {
        let value = HeaderValue::from_static("keep-alive, Close");
        assert!(has_token(&value, "close"));
        assert!(!has_token(&HeaderValue::from_static("closed"), "close"));
    }

    #[test]
    fn lengths_are_rendered_in_decimal() {
        for value in [0, 7, 10, 2009, u64::MAX] {
            assert_eq!(itoa_u64(value).as_bytes(), value.to_string().as_bytes());
        }
    }

    #[test]
    fn a_rendered_head_is_the_status_line_and_the_fields() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(5u64));
        headers.insert(header::ETAG, HeaderValue::from_static("\"x\""));
        let head = render_head(StatusCode::NOT_FOUND, &headers, 5);
        assert_eq!(
            &head[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 5\r\netag: \"x\"\r\n"
        );
        headers.remove(header::CONTENT_LENGTH);
        let head = render_head(StatusCode::OK, &headers, 7);
        assert_eq!(
            &head[..],
            b"HTTP/1.1 200 OK\r\netag: \"x\"\r\ncontent-length: 7\r\n"
        );
    }
}
