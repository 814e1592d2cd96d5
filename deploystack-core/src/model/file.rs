//! Published files and the content-addressed blobs behind them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sha256 digest. Blobs are stored under it, and it is the strong `ETag` of every file with
/// that content: same bytes, same hash, stored once.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Wraps a finished digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The sha256 of `data`.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(data).into())
    }

    /// The storage key of the blob with this content: `blobs/ab/abcdef…`. The two-character
    /// fan-out keeps directories small on local disks.
    pub fn blob_key(&self) -> String {
        let hex = self.to_string();
        format!("blobs/{}/{hex}", &hex[..2])
    }
}

impl FromStr for ContentHash {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("{s:?} is not a lowercase hex sha256"));
        }
        hex::decode_to_slice(s, &mut bytes).map_err(|e| format!("{s:?} is not hex: {e}"))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack: the serving path renders a hash per request (blob key, ETag), and
        // `hex::encode` builds its `String` one char at a time.
        let mut buffer = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buffer).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buffer).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One file of a published deployment: the manifest entry the server resolves requests
/// against. Paths are never joined onto a filesystem path; they are looked up here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Normalized relative path, `/`-separated, no leading slash (`css/site.css`).
    pub path: String,
    /// Content hash: the blob key and the `ETag`.
    pub sha256: ContentHash,
    /// Size in bytes.
    pub size: u64,
    /// `Content-Type` to serve it with, decided at build time.
    pub content_type: String,
    /// Precompressed copies made at deploy time, at most one per encoding; empty for files
    /// that are not worth compressing. `default` keeps manifests cached before this field
    /// existed readable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub encodings: Vec<EncodedVariant>,
}

/// A `Content-Encoding` the pipeline precompresses text with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Encoding {
    /// Brotli (`br`): the smaller of the two, understood by every current browser.
    Br,
    /// gzip: the fallback every HTTP client understands.
    Gzip,
}

impl Encoding {
    /// Every encoding the pipeline produces, in server preference order (smallest first).
    pub const ALL: [Encoding; 2] = [Encoding::Br, Encoding::Gzip];

    /// The content-coding token, as in `Content-Encoding` and `Accept-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "br" => Ok(Encoding::Br),
            "gzip" => Ok(Encoding::Gzip),
            other => Err(format!("{other:?} is not a known content encoding")),
        }
    }
}

/// One precompressed copy of a file: a content-addressed blob of its own, so identical
/// variants across deployments are stored once and the blob collector sees them like any
/// other blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodedVariant {
    /// How the bytes are encoded.
    pub encoding: Encoding,
    /// Hash of the encoded bytes: their blob key and the variant's own strong `ETag`.
    pub sha256: ContentHash,
    /// Size of the encoded bytes.
    pub size: u64,
}

/// A blob the pipeline is about to reference, with its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    /// Its content hash.
    pub sha256: ContentHash,
    /// Its size in bytes.
    pub size: u64,
}

/// One file of a deployment's source given as a manifest (content-addressed upload): where
/// it goes in the source tree and which stored blob holds its bytes. A deployment created
/// from a manifest keeps these for as long as it exists, and its blobs with them (the
/// collector never takes a blob a source file names), so it can be built again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Normalized relative path, `/`-separated (the path rules of zip entries).
    pub path: String,
    /// The sha256 of its bytes: the blob that holds them.
    pub digest: ContentHash,
    /// Its size in bytes (the blob's).
    pub size: u64,
    /// Its unix mode. Only the owner's execute bit is kept when the source is laid out for
    /// a build (`0o100755` gives an executable file, anything else `0o644`).
    pub mode: u32,
}

impl ManifestEntry {
    /// Whether the file is laid out executable.
    pub fn executable(&self) -> bool {
        self.mode & 0o100 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_keys_fan_out_by_the_first_two_hex_digits() {
        let hash = ContentHash::of(b"hello");
        let key = hash.blob_key();
        assert_eq!(
            key,
            "blobs/2c/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(key[9..].parse::<ContentHash>(), Ok(hash));
    }
}
