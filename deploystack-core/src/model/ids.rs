//! Identifiers. A deployment id is 128 random bits rendered as 32 lowercase hex characters:
//! unguessable (previews can be unlisted) and short enough to be one DNS label, so the same id
//! works in `/<id>/` and in `<id>.<base-domain>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The id of a deployment: 16 random bytes, shown as 32 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId([u8; 16]);

/// A string that is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub(super) &'static str);

impl DeploymentId {
    /// A fresh id from the operating system's random number generator.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl FromStr for DeploymentId {
    type Err = InvalidId;

    /// Accepts exactly 32 lowercase hex characters: one spelling per id, so an id can be
    /// compared as a string everywhere (URLs, host names, database keys).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Decoded by hand: every site request parses an id, and this is a few times cheaper
        // than a generic hex decoder.
        let invalid = || InvalidId("a deployment id is 32 lowercase hexadecimal characters");
        let digits = s.as_bytes();
        if digits.len() != 32 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = lowercase_hex_digit(pair[0]).ok_or_else(invalid)?;
            let low = lowercase_hex_digit(pair[1]).ok_or_else(invalid)?;
            *byte = (high << 4) | low;
        }
        Ok(Self(bytes))
    }
}

/// The value of one lowercase hexadecimal digit.
fn lowercase_hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack, as `ContentHash` does: ids are rendered on hot paths too.
        let mut buffer = [0u8; 32];
        hex::encode_to_slice(self.0, &mut buffer).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buffer).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeploymentId({self})")
    }
}

impl Serialize for DeploymentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeploymentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A project's name: a DNS-safe slug (`[a-z0-9-]`, 1–63 characters, no leading or trailing
/// hyphen), so it can become a host name label later.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
#[serde(transparent)]
pub struct ProjectName(String);

impl ProjectName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ProjectName {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
            && !s.starts_with('-')
            && !s.ends_with('-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId(
                "a project name is 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'",
            ))
        }
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProjectName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn deployment_id_round_trips_as_32_lowercase_hex() {
        let id = DeploymentId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(text.parse::<DeploymentId>(), Ok(id));
    }

    #[test]
    fn deployment_id_rejects_other_spellings() {
        for bad in [
            "",
            "abc",
            &"A".repeat(32),
            &"g".repeat(32),
            &"0".repeat(33),
            &"é".repeat(16),
            &format!("{}-", "0".repeat(31)),
        ] {
            assert!(bad.parse::<DeploymentId>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn project_names_are_dns_labels() {
        assert!("my-site-2".parse::<ProjectName>().is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", &"a".repeat(64)] {
            assert!(bad.parse::<ProjectName>().is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn any_accepted_id_prints_back_identically(s in "[0-9a-fA-F]{30,34}") {
            if let Ok(id) = s.parse::<DeploymentId>() {
                prop_assert_eq!(id.to_string(), s);
            }
        }
    }
}
