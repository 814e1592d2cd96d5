//! Large files leave through `sendfile(2)` instead of being copied through our memory.
//!
//! hyper writes a response body with `writev`: the kernel copies every byte from our buffer
//! into the socket. For a 100 KB asset that copy was a third of the server's CPU time, where
//! nginx hands the kernel its page-cache pages with `sendfile` and copies nothing. The bytes
//! of a deployed file are content-addressed and immutable, and with local storage they are
//! also a plain file (`Storage::local_path`), so the two are interchangeable.
//!
//! hyper stays in charge of HTTP (framing, `Content-Length`, keep-alive); only the last step
//! changes. The site handler attaches a [`FileBacked`] to a response whose body is one buffer
//! that equals a file; [`Connection::register`] keeps it for that connection; and the
//! connection's [`Io`] recognises the buffer among the slices hyper writes (by address: the
//! registration holds the buffer, so no other allocation can share its memory) and sends the
//! same range of the file instead, after the response head with `MSG_MORE` so head and body
//! still leave in full packets. Every other write is an ordinary `writev`.

use std::fs::File;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use deploystack_core::storage::Storage;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::rt::TokioIo;
use rustix::net::{SendAncillaryBuffer, SendFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Bodies smaller than this are copied. Sending from a file takes `sendmsg` and `sendfile`
/// (and `open`, `fstat`, `close` for a file not in [`OpenFiles`]) where a copy takes one
/// `writev`; measured on the benchmark machine with a file opened per response, a 35 KB body
/// cost more CPU that way, a 100 KB one less (figures in `benches/RESULTS.md`, session 5).
pub const MIN_BYTES: usize = 64 * 1024;

/// How many files [`OpenFiles`] keeps open. Each costs a descriptor and about a kilobyte
/// of kernel memory, on top of one descriptor per connection: the descriptor limit of the
/// process must leave room for `max_connections` (default 4096) plus these.
pub const OPEN_FILES: u64 = 256;

/// The local file of a blob, opened and checked once: what [`OpenFiles`] hands out.
#[derive(Clone, Debug)]
pub struct BlobFile {
    file: Arc<File>,
    len: usize,
}

impl BlobFile {
    /// The file's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file is empty (never, for a file worth sending with `sendfile`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Open files of large blobs, kept for the next response that sends them.
///
/// Opening a blob's file per response costs `open`, `fstat` and `close`, and first turning
/// its storage key into a path (`Storage::local_path`): a tenth of the CPU time of a 100 KB
/// response on the benchmark machine. Blobs are content-addressed and never rewritten, so an
/// open file keeps showing the right bytes for as long as it is open — even after the blob
/// is deleted, when it is still the content its key names. The [`OPEN_FILES`] most recently
/// used stay open. (nginx's `open_file_cache`, off by default there, is the same idea for
/// files that may change, so it needs revalidation; ours does not.)
#[derive(Debug)]
pub struct OpenFiles {
    files: moka::sync::Cache<String, BlobFile>,
}

impl Default for OpenFiles {
    fn default() -> Self {
        Self {
            files: moka::sync::Cache::new(OPEN_FILES),
        }
    }
}

impl OpenFiles {
    /// The file of the blob under `key`, of `len` bytes, when `storage` keeps blobs in
    /// local files and the body is large enough to be worth sending from one. `None` means
    /// the body is copied as usual.
    pub fn open(&self, storage: &dyn Storage, key: &str, len: usize) -> Option<BlobFile> {
        if len < MIN_BYTES {
            return None;
        }
        if let Some(file) = self.files.get(key) {
            return (file.len == len).then_some(file);
        }
        let file = File::open(storage.local_path(key)?).ok()?;
        let same_length = file.metadata().ok()?.len() == len as u64;
        let file = same_length.then(|| BlobFile {
            file: Arc::new(file),
            len,
        })?;
        self.files.insert(key.to_owned(), file.clone());
        Some(file)
    }
}

/// A response body that is also, byte for byte, a file on this machine.
#[derive(Clone, Debug)]
pub struct FileBacked {
    bytes: Bytes,
    file: BlobFile,
}

impl FileBacked {
    /// `bytes`, the whole object under `key`, as a file when `files` can open it (see
    /// [`OpenFiles::open`]).
    pub fn open(
        files: &OpenFiles,
        storage: &dyn Storage,
        key: &str,
        bytes: &Bytes,
    ) -> Option<Self> {
        let file = files.open(storage, key, bytes.len())?;
        Some(Self {
            bytes: bytes.clone(),
            file,
        })
    }

    /// Whether `data` is exactly these bytes (the same buffer, not equal contents).
    pub fn is(&self, data: &[u8]) -> bool {
        data.as_ptr() == self.bytes.as_ptr() && data.len() == self.bytes.len()
    }

    /// The file.
    pub fn file(&self) -> &BlobFile {
        &self.file
    }

    /// Where `slice` lies in the file, if it is part of these bytes.
    fn offset_of(&self, slice: &[u8]) -> Option<u64> {
        let start = self.bytes.as_ptr() as usize;
        let at = slice.as_ptr() as usize;
        let inside = at >= start && at + slice.len() <= start + self.bytes.len();
        inside.then(|| (at - start) as u64)
    }
}

/// What a connection's service and its [`Io`] share: the file-backed body of the response
/// being written, if any, and the count of bytes sent from files (`/metrics`).
#[derive(Clone, Debug)]
pub struct Connection {
    current: Arc<Mutex<Option<FileBacked>>>,
    sent: Arc<AtomicU64>,
}

impl Connection {
    /// A connection that adds the bytes it sends from files to `sent`.
    pub fn new(sent: Arc<AtomicU64>) -> Self {
        Self {
            current: Arc::default(),
            sent,
        }
    }

    /// Send `body` from its file when hyper writes it. Replaces the previous response's.
    pub fn register(&self, body: Option<FileBacked>) {
        *self.lock() = body;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<FileBacked>> {
        // The value is replaced whole, so a panic elsewhere cannot leave it half written.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Write `head`, then the whole of `body` from its file: the express lane's way to send a
/// large body (`crate::express`), with the same system calls as [`Io`]'s.
pub async fn write_head_and_file(
    tcp: &TcpStream,
    head: &[u8],
    body: &BlobFile,
) -> std::io::Result<()> {
    let (mut head_at, mut file_at) = (0, 0);
    while file_at < body.len {
        tcp.writable().await?;
        let rest = [IoSlice::new(&head[head_at..])];
        let slices = if head_at < head.len() { &rest[..] } else { &[] };
        match tcp.try_io(Interest::WRITABLE, || {
            send(tcp, slices, &body.file, file_at as u64, body.len - file_at)
        }) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                let into_head = written.min(head.len() - head_at);
                head_at += into_head;
                file_at += written - into_head;
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// A TCP connection as hyper sees it: reads and most writes pass through; a registered body
/// is sent with `sendfile`.
pub struct Io {
    tcp: TokioIo<TcpStream>,
    /// Bytes already read from the connection (by the express lane) that hyper reads first.
    prefix: Bytes,
    connection: Connection,
}

impl Io {
    /// `tcp`, of which `prefix` was already read, sending the bodies registered on
    /// `connection` from their files.
    pub fn new(tcp: TcpStream, prefix: Bytes, connection: Connection) -> Self {
        Self {
            tcp: TokioIo::new(tcp),
            prefix,
            connection,
        }
    }

    /// Write `head` (what precedes the body in hyper's buffers) and then `len` bytes of
    /// `file` from `offset`, once the socket is writable.
    fn poll_send_file(
        &self,
        cx: &mut Context<'_>,
        head: &[IoSlice<'_>],
        file: &File,
        offset: u64,
        len: usize,
    ) -> Poll<std::io::Result<usize>> {
        let tcp = self.tcp.inner();
        loop {
            ready!(tcp.poll_write_ready(cx))?;
            // `try_io` clears the readiness when the closure would block, so the next
            // `poll_write_ready` waits for the socket to drain.
            match tcp.try_io(Interest::WRITABLE, || send(tcp, head, file, offset, len)) {
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

/// One attempt: the head with `MSG_MORE` (more follows, so it waits for the body instead of
/// leaving as a packet of its own), then the file. Returns what was written; an error after
/// some bytes went out is left for the next write to meet.
fn send(
    tcp: &TcpStream,
    head: &[IoSlice<'_>],
    file: &File,
    offset: u64,
    len: usize,
) -> std::io::Result<usize> {
    let head_len: usize = head.iter().map(|slice| slice.len()).sum();
    let mut written = 0;
    if head_len > 0 {
        written = rustix::net::sendmsg(
            tcp,
            head,
            &mut SendAncillaryBuffer::default(),
            SendFlags::MORE | SendFlags::NOSIGNAL,
        )?;
        if written < head_len {
            return Ok(written);
        }
    }
    let mut at = offset;
    match rustix::fs::sendfile(tcp, file, Some(&mut at), len) {
        Ok(sent) => Ok(written + sent),
        Err(_) if written > 0 => Ok(written),
        Err(err) => Err(err.into()),
    }
}

impl Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &*self;
        let current = this.connection.lock().clone();
        let found = current.and_then(|body| {
            let (index, offset) = bufs
                .iter()
                .enumerate()
                .find_map(|(index, slice)| Some((index, body.offset_of(slice)?)))?;
            Some((index, offset, body))
        });
        let Some((index, offset, body)) = found else {
            return Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        };
        let len = bufs[index].len();
        let result = ready!(this.poll_send_file(cx, &bufs[..index], &body.file.file, offset, len));
        if let Ok(written) = &result {
            let head_len: usize = bufs[..index].iter().map(|slice| slice.len()).sum();
            let from_file = written.saturating_sub(head_len) as u64;
            this.connection.sent.fetch_add(from_file, Ordering::Relaxed);
            if offset + from_file == body.bytes.len() as u64 {
                // Sent to its end: let the file and the buffer go now, not at the next
                // response.
                this.connection.register(None);
            }
        }
        Poll::Ready(result)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
