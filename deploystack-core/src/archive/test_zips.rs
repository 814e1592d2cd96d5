//! Zips for the archive tests: well-formed ones from `zip::ZipWriter`, hostile ones from a
//! hand-rolled writer, and helpers that run inspection and extraction on them.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

use super::{ArchiveError, ArchiveLimits, ArchiveManifest, Extracted, extract, inspect};

/// A test archive on disk; the temp dir is removed on drop.
pub(super) struct TestZip {
    _dir: tempfile::TempDir,
    pub(super) path: PathBuf,
}

pub(super) fn write_zip(bytes: &[u8]) -> TestZip {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload.zip");
    std::fs::write(&path, bytes).unwrap();
    TestZip { _dir: dir, path }
}

pub(super) enum Item<'a> {
    Stored(&'a str, &'a [u8]),
    Deflated(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

/// Builds a zip in memory with `zip::ZipWriter`.
pub(super) fn build_zip(items: &[Item<'_>]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for item in items {
        match item {
            Item::Stored(name, data) => {
                writer.start_file(*name, stored).unwrap();
                writer.write_all(data).unwrap();
            }
            Item::Deflated(name, data) => {
                writer.start_file(*name, deflated).unwrap();
                writer.write_all(data).unwrap();
            }
            Item::Dir(name) => writer.add_directory(*name, stored).unwrap(),
            Item::Symlink(name, target) => writer.add_symlink(*name, *target, stored).unwrap(),
        }
    }
    writer.finish().unwrap().into_inner()
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One record for the hand-rolled writer, for archives `ZipWriter`
/// refuses to produce.
#[derive(Clone)]
pub(super) struct Raw {
    pub(super) name: Vec<u8>,
    pub(super) data: Vec<u8>,
    pub(super) method: u16,
    pub(super) flags: u16,
    pub(super) external: u32,
    /// Declared uncompressed size (default: `data.len()`).
    pub(super) size: Option<u32>,
    /// Point the central record at this earlier entry's local header
    /// instead of writing one.
    pub(super) share_local_with: Option<usize>,
}

impl Raw {
    pub(super) fn file(name: &str, data: &[u8]) -> Self {
        Self {
            name: name.as_bytes().to_vec(),
            data: data.to_vec(),
            method: 0,
            flags: 0,
            external: 0o100_644 << 16,
            size: None,
            share_local_with: None,
        }
    }
}

/// Hand-rolled zip writer (stored data as given, unix "made by").
pub(super) fn raw_zip(entries: &[Raw]) -> Vec<u8> {
    fn u16le(out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32le(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut out = Vec::new();
    let mut offsets: Vec<u32> = Vec::new();
    for e in entries {
        if let Some(j) = e.share_local_with {
            offsets.push(offsets[j]);
            continue;
        }
        offsets.push(out.len() as u32);
        out.extend_from_slice(b"PK\x03\x04");
        u16le(&mut out, 20);
        u16le(&mut out, e.flags);
        u16le(&mut out, e.method);
        u16le(&mut out, 0); // time
        u16le(&mut out, 0x21); // date: 1980-01-01
        u32le(&mut out, crc32(&e.data));
        u32le(&mut out, e.data.len() as u32);
        u32le(&mut out, e.size.unwrap_or(e.data.len() as u32));
        u16le(&mut out, e.name.len() as u16);
        u16le(&mut out, 0);
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&e.data);
    }
    let cd_start = out.len() as u32;
    for (e, offset) in entries.iter().zip(&offsets) {
        out.extend_from_slice(b"PK\x01\x02");
        u16le(&mut out, (3 << 8) | 20); // made by unix
        u16le(&mut out, 20);
        u16le(&mut out, e.flags);
        u16le(&mut out, e.method);
        u16le(&mut out, 0);
        u16le(&mut out, 0x21);
        u32le(&mut out, crc32(&e.data));
        u32le(&mut out, e.data.len() as u32);
        u32le(&mut out, e.size.unwrap_or(e.data.len() as u32));
        u16le(&mut out, e.name.len() as u16);
        u16le(&mut out, 0); // extra
        u16le(&mut out, 0); // comment
        u16le(&mut out, 0); // disk
        u16le(&mut out, 0); // internal attributes
        u32le(&mut out, e.external);
        u32le(&mut out, *offset);
        out.extend_from_slice(&e.name);
    }
    let cd_size = out.len() as u32 - cd_start;
    out.extend_from_slice(b"PK\x05\x06");
    u16le(&mut out, 0);
    u16le(&mut out, 0);
    u16le(&mut out, entries.len() as u16);
    u16le(&mut out, entries.len() as u16);
    u32le(&mut out, cd_size);
    u32le(&mut out, cd_start);
    u16le(&mut out, 0);
    out
}

pub(super) fn inspect_bytes(bytes: &[u8]) -> Result<ArchiveManifest, ArchiveError> {
    inspect_bytes_with(bytes, &ArchiveLimits::default())
}

pub(super) fn inspect_bytes_with(
    bytes: &[u8],
    limits: &ArchiveLimits,
) -> Result<ArchiveManifest, ArchiveError> {
    let zip = write_zip(bytes);
    inspect(&zip.path, limits)
}

pub(super) fn extract_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<Extracted, ArchiveError>) {
    let zip = write_zip(bytes);
    let dest = tempfile::tempdir().unwrap();
    let result = extract(&zip.path, dest.path(), &ArchiveLimits::default());
    (dest, result)
}

/// Asserts rejection with `code`, both by `inspect` and by `extract`
/// (which must then have written nothing), and returns the message.
#[track_caller]
pub(super) fn assert_rejected(bytes: &[u8], code: &str) -> String {
    let err = inspect_bytes(bytes).unwrap_err();
    assert_eq!(err.code(), code, "unexpected error: {err}");
    assert!(err.is_user_error());
    let (dest, result) = extract_bytes(bytes);
    assert_eq!(result.unwrap_err().code(), code);
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    err.to_string()
}

pub(super) fn single_raw(name: &[u8]) -> Vec<u8> {
    let mut entry = Raw::file("x", b"data");
    entry.name = name.to_vec();
    raw_zip(&[entry])
}

/// Every regular file under `dir`, as sorted relative paths.
pub(super) fn list_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
