//! Deploy-time precompression: brotli and gzip copies of text assets, made once per content.
//!
//! # Why at deploy time?
//! A published file never changes, so compressing it per request would repeat the same work
//! for every visitor and cost CPU on the hot path. Compressing once while building lets us use
//! slow, small settings (brotli quality 10, gzip level 9) and serve the result with
//! a plain read, ranges and strong ETags included.
//!
//! # What is compressed
//! Only types that shrink: text, JavaScript, JSON, XML, SVG, WebAssembly and uncompressed font
//! formats (TTF, OTF, EOT). Images, audio, video, archives and WOFF/WOFF2 fonts are already
//! compressed; compressing them again wastes time and often makes them larger. Files under
//! [`MIN_SIZE`] gain too little to be worth a second and third blob, and a variant is kept only
//! when it is at most [`MAX_RATIO`] of the original — otherwise the identity bytes are served.
//!
//! # Why variants are blobs of their own
//! Each variant is stored under its own sha256 like any file, so identical variants across
//! deployments share one blob, and the blob collector's "is it referenced?" question covers
//! them through the manifest's encodings (see the repository adapters).

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model::{ContentHash, EncodedVariant, Encoding};

/// Files smaller than this are served as they are: a response this small fits in a couple of
/// packets either way, and each variant costs a blob and a manifest row.
pub const MIN_SIZE: u64 = 1024;

/// A variant is kept only if it is at most this fraction of the original: a few percent saved
/// is not worth a second representation, a second ETag and `Vary` on every response.
pub const MAX_RATIO: f64 = 0.9;

/// Brotli quality. Compression happens once per content, at deploy time, and decompression
/// speed in the browser is the same at every quality, so a high one pays. Not the maximum:
/// measured on 1,000 real JS/CSS/HTML/JSON/SVG files (25 MB, one core), quality 11 took 50 s
/// for 19.4 % of the original, 10 took 22 s for 20.0 %, and 5 took 1 s for 22.4 % (7 to 9
/// were slower than 10 and no smaller). 11 would more than double the deploy time of a large
/// site for 3 % fewer bytes.
const BROTLI_QUALITY: i32 = 10;

/// Brotli window (log2 bytes): 4 MiB, what the browsers' decoders accept by default.
const BROTLI_WINDOW: i32 = 22;

/// Whether a file served with `content_type` is worth precompressing. `content_type` is what
/// the pipeline decided (`text/css; charset=utf-8`); parameters are ignored.
pub fn is_compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence.starts_with("text/") {
        return true;
    }
    if essence.ends_with("+json") || essence.ends_with("+xml") {
        // Web manifests, feeds, SVG (`image/svg+xml`) and friends are text.
        return true;
    }
    matches!(
        essence.as_str(),
        "application/javascript"
            | "application/x-javascript"
            | "application/ecmascript"
            | "application/json"
            | "application/ld+json"
            | "application/xml"
            | "application/wasm"
            | "application/x-font-ttf"
            | "application/x-font-opentype"
            | "application/vnd.ms-fontobject"
            | "font/ttf"
            | "font/otf"
            | "font/collection"
    )
}

/// Whether a file of this type and size should get variants at all.
pub fn wants_variants(content_type: &str, size: u64) -> bool {
    size >= MIN_SIZE && is_compressible(content_type)
}

/// A variant written to a local file, ready to be stored as a blob.
#[derive(Debug, Clone)]
pub struct LocalVariant {
    /// What the manifest records about it.
    pub variant: EncodedVariant,
    /// Where its bytes are, until they are stored.
    pub local: PathBuf,
}

/// Compress `source` (of `size` bytes) with every encoding, writing the variants into
/// `out_dir` under names derived from `hash` (the source's content hash, so two files with
/// the same content can share the work). Returns the variants worth keeping, in
/// [`Encoding::ALL`] order; blocking I/O and CPU, so call it on the blocking pool.
pub fn compress_file(
    source: &Path,
    hash: &ContentHash,
    size: u64,
    out_dir: &Path,
) -> std::io::Result<Vec<LocalVariant>> {
    let mut kept = Vec::with_capacity(Encoding::ALL.len());
    for encoding in Encoding::ALL {
        let local = out_dir.join(format!("{hash}.{encoding}"));
        let (sha256, encoded) = compress_to(source, &local, encoding, size)?;
        if (encoded as f64) <= (size as f64) * MAX_RATIO {
            kept.push(LocalVariant {
                variant: EncodedVariant {
                    encoding,
                    sha256,
                    size: encoded,
                },
                local,
            });
        } else {
            std::fs::remove_file(&local)?;
        }
    }
    Ok(kept)
}

/// Write `source` encoded with `encoding` to `target`; the encoded bytes' hash and length.
fn compress_to(
    source: &Path,
    target: &Path,
    encoding: Encoding,
    size: u64,
) -> std::io::Result<(ContentHash, u64)> {
    let mut input = BufReader::with_capacity(64 * 1024, std::fs::File::open(source)?);
    let mut output = HashingWriter::new(BufWriter::new(std::fs::File::create(target)?));
    match encoding {
        Encoding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY,
                lgwin: BROTLI_WINDOW,
                // Lets the encoder size its tables for this file instead of the worst case.
                size_hint: usize::try_from(size).unwrap_or(usize::MAX),
                ..Default::default()
            };
            brotli::enc::BrotliCompress(&mut input, &mut output, &params)?;
        }
        Encoding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(&mut output, flate2::Compression::best());
            std::io::copy(&mut input, &mut encoder)?;
            encoder.finish()?;
        }
    }
    let (hash, written, mut file) = output.finish();
    file.flush()?;
    Ok((hash, written))
}

/// Hashes and counts what passes through, so a variant's blob key is known without reading
/// the file back.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    fn finish(self) -> (ContentHash, u64, W) {
        (
            ContentHash::from_bytes(self.hasher.finalize().into()),
            self.written,
            self.inner,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn text_is_compressible_and_compressed_formats_are_not() {
        for yes in [
            "text/html; charset=utf-8",
            "text/css; charset=utf-8",
            "application/javascript; charset=utf-8",
            "application/json",
            "image/svg+xml",
            "application/manifest+json; charset=utf-8",
            "application/wasm",
            "font/ttf",
            "font/otf",
        ] {
            assert!(is_compressible(yes), "{yes}");
        }
        for no in [
            "image/png",
            "image/jpeg",
            "image/webp",
            "video/mp4",
            "audio/mpeg",
            "application/zip",
            "application/gzip",
            "font/woff",
            "font/woff2",
            "application/octet-stream",
            "application/pdf",
        ] {
            assert!(!is_compressible(no), "{no}");
        }
        assert!(!wants_variants("text/css", MIN_SIZE - 1));
        assert!(wants_variants("text/css", MIN_SIZE));
    }

    #[test]
    fn variants_decode_to_the_original_and_are_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let text: Vec<u8> = (0..2000)
            .flat_map(|i| format!("body .item-{i} {{ color: red; }}\n").into_bytes())
            .collect();
        let source = dir.path().join("site.css");
        std::fs::write(&source, &text).unwrap();
        let hash = ContentHash::of(&text);
        let variants = compress_file(&source, &hash, text.len() as u64, dir.path()).unwrap();
        let encodings: Vec<_> = variants.iter().map(|v| v.variant.encoding).collect();
        assert_eq!(encodings, [Encoding::Br, Encoding::Gzip]);
        for v in &variants {
            let bytes = std::fs::read(&v.local).unwrap();
            assert_eq!(ContentHash::of(&bytes), v.variant.sha256);
            assert_eq!(bytes.len() as u64, v.variant.size);
            let mut decoded = Vec::new();
            match v.variant.encoding {
                Encoding::Br => {
                    brotli::Decompressor::new(&bytes[..], 4096)
                        .read_to_end(&mut decoded)
                        .unwrap();
                }
                Encoding::Gzip => {
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_end(&mut decoded)
                        .unwrap();
                }
            }
            assert_eq!(decoded, text);
        }
    }

    #[test]
    fn incompressible_bytes_get_no_variant() {
        let dir = tempfile::tempdir().unwrap();
        // A pseudo-random stream: compressing it cannot save 10%.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..8192)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let source = dir.path().join("noise.js");
        std::fs::write(&source, &noise).unwrap();
        let variants = compress_file(
            &source,
            &ContentHash::of(&noise),
            noise.len() as u64,
            dir.path(),
        )
        .unwrap();
        assert!(variants.is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
