//! A custom domain's name, validated and in one normal form.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::verification::RECORD_PREFIX;

/// Longest DNS label in bytes (RFC 1035).
pub const MAX_LABEL_BYTES: usize = 63;

/// Longest custom domain in bytes, as ASCII: DNS allows 253, less `_deploystack.` so that the
/// domain's verification record still fits.
pub const MAX_DOMAIN_BYTES: usize = 253 - RECORD_PREFIX.len() - 1;

/// A custom domain: ASCII (internationalised labels in punycode, `xn--…`), lowercase, without
/// a trailing dot, at least two labels of 1–63 letters, digits or inner hyphens, at most
/// [`MAX_DOMAIN_BYTES`] long. `bücher.example` and `XN--BCHER-KVA.Example.` are one name,
/// `xn--bcher-kva.example`. Wildcards and IP addresses are refused.
///
/// Serialises as its string; deserialising validates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

/// Why a name is not a usable custom domain. The message names the name and, where one is at
/// fault, the label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid domain name {name:?}: {problem}")]
pub struct InvalidDomain {
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub problem: DomainProblem,
}

/// What is wrong with a domain name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainProblem {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// A URL rather than a name.
    #[error("it is a URL; give only the host name, e.g. www.example.com")]
    Url,
    /// Characters that belong to a URL around the name (port, path, user).
    #[error("{0:?} is not allowed; give only the host name, without port, path or user")]
    UrlPart(char),
    /// Spaces around or inside the name.
    #[error("it contains white space")]
    Whitespace,
    /// An IP address.
    #[error("it is an IP address; a custom domain is a DNS name")]
    IpAddress,
    /// `*.example.com`.
    #[error("wildcard domains are not supported; add each name (www.example.com, …)")]
    Wildcard,
    /// IDNA processing refused it (disallowed code points, bad punycode, mixed directions).
    #[error("it is not a valid internationalised domain name (IDNA)")]
    Idna,
    /// Two dots in a row, or a dot at the start.
    #[error("it has an empty label (two dots in a row, or a dot at the start)")]
    EmptyLabel,
    /// A single label such as `localhost`.
    #[error("it needs at least two labels, e.g. example.com")]
    SingleLabel,
    /// A label over 63 bytes (as ASCII).
    #[error("label {label:?} is {bytes} bytes long; a label is at most {MAX_LABEL_BYTES}")]
    LabelTooLong {
        /// The label, as ASCII.
        label: String,
        /// Its length.
        bytes: usize,
    },
    /// The whole name is too long (as ASCII).
    #[error(
        "it is {bytes} bytes long as ASCII; at most {MAX_DOMAIN_BYTES}, so that its \
         verification record _deploystack.<name> fits DNS's 253"
    )]
    TooLong {
        /// Its length.
        bytes: usize,
    },
    /// A character other than a letter, digit or hyphen.
    #[error("label {label:?} contains {character:?}; labels are letters, digits and hyphens")]
    Character {
        /// The label, as ASCII.
        label: String,
        /// The first character at fault.
        character: char,
    },
    /// A hyphen at the start or end of a label.
    #[error("label {label:?} starts or ends with a hyphen")]
    Hyphen {
        /// The label.
        label: String,
    },
    /// An all-numeric top-level label, which no registry assigns (and which makes the name
    /// look like an address).
    #[error("the top-level label {label:?} is all digits")]
    NumericTopLevel {
        /// The label.
        label: String,
    },
}

impl InvalidDomain {
    /// The stable machine-readable code of every invalid name, for the API's error body.
    pub fn code(&self) -> &'static str {
        "invalid_domain"
    }
}

impl DomainName {
    /// Validate and normalise a name as a user typed it: IDNA mapping (case folding, full-width
    /// characters) and punycode, lowercase, one trailing dot dropped.
    pub fn parse(raw: &str) -> Result<Self, InvalidDomain> {
        let fail = |problem| InvalidDomain {
            name: raw.to_owned(),
            problem,
        };
        check_shape(raw).map_err(fail)?;
        let name = raw.strip_suffix('.').unwrap_or(raw);
        // The empty deny list lets IDNA map and encode, and leaves the ASCII rules to
        // `check_ascii`, whose messages name the label and the character at fault.
        let ascii = idna::domain_to_ascii_cow(name.as_bytes(), idna::AsciiDenyList::EMPTY)
            .map_err(|_| fail(DomainProblem::Idna))?;
        check_ascii(&ascii).map_err(fail)?;
        Ok(Self(ascii.into_owned()))
    }

    /// The name, ASCII and lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name for people: punycode labels decoded (`bücher.example`).
    pub fn to_unicode(&self) -> String {
        idna::domain_to_unicode(&self.0).0
    }

    /// Whether `self` is `other` or a subdomain of it.
    pub fn is_within(&self, other: &DomainName) -> bool {
        self.0 == other.0
            || self
                .0
                .strip_suffix(other.0.as_str())
                .is_some_and(|front| front.ends_with('.'))
    }
}

/// What can be said about the raw text before IDNA: the mistakes people make when they paste
/// a URL or an address, each with its own message.
fn check_shape(raw: &str) -> Result<(), DomainProblem> {
    if raw.is_empty() || raw == "." {
        return Err(DomainProblem::Empty);
    }
    if raw.chars().any(char::is_whitespace) {
        return Err(DomainProblem::Whitespace);
    }
    if raw.contains("://") {
        return Err(DomainProblem::Url);
    }
    let bare = raw.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<IpAddr>().is_ok() {
        return Err(DomainProblem::IpAddress);
    }
    if let Some(character) = raw
        .chars()
        .find(|c| matches!(c, ':' | '/' | '@' | '?' | '#'))
    {
        return Err(DomainProblem::UrlPart(character));
    }
    if raw.contains('*') {
        return Err(DomainProblem::Wildcard);
    }
    Ok(())
}

/// The DNS rules over the ASCII form: labels, characters, lengths.
fn check_ascii(ascii: &str) -> Result<(), DomainProblem> {
    if ascii.is_empty() {
        return Err(DomainProblem::Empty);
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(DomainProblem::EmptyLabel);
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(DomainProblem::LabelTooLong {
                label: (*label).to_owned(),
                bytes: label.len(),
            });
        }
        if let Some(character) = label
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(DomainProblem::Character {
                label: (*label).to_owned(),
                character,
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(DomainProblem::Hyphen {
                label: (*label).to_owned(),
            });
        }
    }
    if labels.len() < 2 {
        return Err(DomainProblem::SingleLabel);
    }
    if ascii.len() > MAX_DOMAIN_BYTES {
        return Err(DomainProblem::TooLong { bytes: ascii.len() });
    }
    if let Some(top) = labels
        .last()
        .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(DomainProblem::NumericTopLevel {
            label: (*top).to_owned(),
        });
    }
    Ok(())
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = InvalidDomain;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

impl TryFrom<String> for DomainName {
    type Error = InvalidDomain;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        Self::parse(&raw)
    }
}

impl From<DomainName> for String {
    fn from(name: DomainName) -> Self {
        name.0
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn problem(raw: &str) -> DomainProblem {
        DomainName::parse(raw).unwrap_err().problem
    }

    #[test]
    fn names_are_normalised_to_lowercase_ascii_without_the_trailing_dot() {
        for (raw, normal) in [
            ("example.com", "example.com"),
            ("WWW.Example.COM.", "www.example.com"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
            ("ＥＸＡＭＰＬＥ。com", "example.com"),
            ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
            ("a-b.c0.io", "a-b.c0.io"),
            ("123.example", "123.example"),
        ] {
            let name = DomainName::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(name.as_str(), normal, "{raw}");
            assert_eq!(
                DomainName::parse(name.as_str()).unwrap(),
                name,
                "idempotent"
            );
        }
        assert_eq!(
            DomainName::parse("xn--bcher-kva.example")
                .unwrap()
                .to_unicode(),
            "bücher.example"
        );
    }

    #[test]
    fn each_mistake_gets_its_own_message() {
        assert_eq!(problem(""), DomainProblem::Empty);
        assert_eq!(problem("."), DomainProblem::Empty);
        assert_eq!(problem(" example.com"), DomainProblem::Whitespace);
        assert_eq!(problem("https://example.com/"), DomainProblem::Url);
        assert_eq!(problem("example.com:443"), DomainProblem::UrlPart(':'));
        assert_eq!(problem("example.com/blog"), DomainProblem::UrlPart('/'));
        assert_eq!(problem("1.2.3.4"), DomainProblem::IpAddress);
        assert_eq!(problem("[::1]"), DomainProblem::IpAddress);
        assert_eq!(problem("*.example.com"), DomainProblem::Wildcard);
        assert_eq!(problem("example..com"), DomainProblem::EmptyLabel);
        assert_eq!(problem(".example.com"), DomainProblem::EmptyLabel);
        assert_eq!(problem("example.com.."), DomainProblem::EmptyLabel);
        assert_eq!(problem("localhost"), DomainProblem::SingleLabel);
        assert_eq!(
            problem("1.2.3"),
            DomainProblem::NumericTopLevel { label: "3".into() }
        );
        assert_eq!(
            problem("-a.example"),
            DomainProblem::Hyphen { label: "-a".into() }
        );
        assert_eq!(
            problem("my_site.example"),
            DomainProblem::Character {
                label: "my_site".into(),
                character: '_'
            }
        );
        assert!(matches!(
            problem(&format!("{}.example", "a".repeat(64))),
            DomainProblem::LabelTooLong { bytes: 64, .. }
        ));
        let long = format!("{}.example", vec!["a".repeat(60); 4].join("."));
        assert!(matches!(problem(&long), DomainProblem::TooLong { .. }));
        assert_eq!(problem("xn--zz.example"), DomainProblem::Idna);

        let err = DomainName::parse("my_site.example")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"my_site.example\"") && err.contains("'_'"),
            "{err}"
        );
    }

    #[test]
    fn names_round_trip_through_serde_and_check_on_the_way_in() {
        let name: DomainName = serde_json::from_str("\"WWW.Example.com\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"www.example.com\"");
        let err = serde_json::from_str::<DomainName>("\"*.example.com\"").unwrap_err();
        assert!(err.to_string().contains("wildcard"), "{err}");
    }

    #[test]
    fn within_follows_label_boundaries() {
        let apex = DomainName::parse("example.com").unwrap();
        assert!(
            DomainName::parse("www.example.com")
                .unwrap()
                .is_within(&apex)
        );
        assert!(apex.is_within(&apex));
        assert!(
            !DomainName::parse("badexample.com")
                .unwrap()
                .is_within(&apex)
        );
    }

    proptest! {
        #[test]
        fn whatever_parses_is_already_normal(raw in "[a-zA-Z0-9.\\-_ü*:]{0,40}") {
            if let Ok(name) = DomainName::parse(&raw) {
                let s = name.as_str();
                prop_assert_eq!(DomainName::parse(s).unwrap(), name.clone());
                prop_assert!(s.len() <= MAX_DOMAIN_BYTES && !s.ends_with('.'));
                prop_assert!(s.split('.').count() >= 2);
                prop_assert!(s.split('.').all(|l| (1..=MAX_LABEL_BYTES).contains(&l.len())));
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'));
            }
        }
    }
}
