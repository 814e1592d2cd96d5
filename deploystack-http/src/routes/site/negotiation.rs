//! `Accept-Encoding` (RFC 9110 §12.5.3): which precompressed variant of a file to send.
//!
//! The variants were made at deploy time, so negotiation only picks among stored bytes; it
//! never compresses. The rules:
//! - each listed coding carries a weight, `q=1` unless given; `q=0` means "not acceptable";
//! - a coding that is not listed takes the weight of `*` if present, else is not acceptable;
//! - `identity` (the file as deployed) is acceptable unless refused by `identity;q=0`, or by
//!   `*;q=0` without an `identity` entry of its own;
//! - the acceptable variant with the highest weight wins; at equal weight the server's order
//!   decides (brotli before gzip, both before identity, since they are the same bytes made
//!   smaller);
//! - without an `Accept-Encoding` field the file is sent as deployed: a client that says
//!   nothing may not be able to decode anything, whatever the RFC allows in theory;
//! - when nothing acceptable is left (every coding refused), the file is sent as deployed
//!   rather than refused with 406: a readable answer beats none, as most servers do.

use axum::http::{HeaderMap, header};
use deploystack_core::model::Encoding;

/// A weight in thousandths (`q=0.5` is 500), so weights compare exactly.
type Weight = u16;

/// The weight of every listed coding that has one, from every `Accept-Encoding` field.
struct Accepted {
    /// `(coding, weight)`, codings lowercased, in the order the client sent them.
    codings: Vec<(String, Weight)>,
}

impl Accepted {
    fn parse(headers: &HeaderMap) -> Option<Self> {
        let mut fields = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
        fields.peek()?;
        let mut codings = Vec::new();
        for field in fields {
            // A field that is not visible ASCII is ignored, like an unknown coding.
            let Ok(field) = field.to_str() else { continue };
            for item in field.split(',') {
                if let Some(coding) = parse_item(item) {
                    codings.push(coding);
                }
            }
        }
        Some(Self { codings })
    }

    /// The weight the client gives `coding` itself, if it lists it. When a coding is listed
    /// twice, the first entry counts.
    fn listed(&self, coding: &str) -> Option<Weight> {
        self.codings
            .iter()
            .find(|(name, _)| name == coding)
            .map(|(_, weight)| *weight)
    }

    fn weight(&self, encoding: Encoding) -> Weight {
        let own = match encoding {
            // `x-gzip` is the old name; RFC 9110 §8.4.1.3 asks to treat it as gzip.
            Encoding::Gzip => self.listed("gzip").or_else(|| self.listed("x-gzip")),
            other => self.listed(other.as_str()),
        };
        own.or_else(|| self.listed("*")).unwrap_or(0)
    }

    fn identity_weight(&self) -> Weight {
        self.listed("identity")
            .or_else(|| self.listed("*"))
            // Identity is acceptable unless refused, though it ranks last among equals.
            .unwrap_or(1)
    }
}

/// One list item: `coding` or `coding;q=0.8`. `None` for a malformed item, which is skipped.
fn parse_item(item: &str) -> Option<(String, Weight)> {
    let mut parts = item.split(';');
    let coding = parts.next()?.trim();
    if coding.is_empty() || !coding.bytes().all(is_token_byte) {
        return None;
    }
    let mut weight = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            weight = parse_weight(value.trim())?;
        }
    }
    Some((coding.to_ascii_lowercase(), weight))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_weight(value: &str) -> Option<Weight> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += Weight::from(digit - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The encoding to send among `available` (the file's variants), or `None` for the file as
/// deployed. `available` is in the server's preference order.
pub(super) fn choose(request: &HeaderMap, available: &[Encoding]) -> Option<Encoding> {
    let accepted = Accepted::parse(request)?;
    let mut best: Option<(Encoding, Weight)> = None;
    for &encoding in available {
        let weight = accepted.weight(encoding);
        // Strictly greater: at equal weight the earlier (preferred) encoding stays.
        if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
            best = Some((encoding, weight));
        }
    }
    let (encoding, weight) = best?;
    (weight >= accepted.identity_weight()).then_some(encoding)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    const BOTH: [Encoding; 2] = [Encoding::Br, Encoding::Gzip];

    fn pick(accept: &str) -> Option<Encoding> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).unwrap(),
        );
        choose(&headers, &BOTH)
    }

    #[test]
    fn browsers_get_brotli_and_older_clients_gzip() {
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Encoding::Br));
        assert_eq!(pick("br, gzip"), Some(Encoding::Br));
        assert_eq!(pick("gzip"), Some(Encoding::Gzip));
        assert_eq!(pick("x-gzip"), Some(Encoding::Gzip));
        assert_eq!(pick("GZIP;Q=0.5"), Some(Encoding::Gzip));
        assert_eq!(pick("deflate"), None);
        assert_eq!(pick(""), None);
        assert_eq!(choose(&HeaderMap::new(), &BOTH), None);
    }

    #[test]
    fn weights_decide_and_zero_refuses() {
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some(Encoding::Gzip));
        assert_eq!(pick("br;q=0, gzip"), Some(Encoding::Gzip));
        assert_eq!(pick("br;q=0, gzip;q=0"), None);
        assert_eq!(pick("*"), Some(Encoding::Br));
        assert_eq!(pick("*;q=0.5, br;q=0"), Some(Encoding::Gzip));
        assert_eq!(pick("*;q=0"), None);
        assert_eq!(pick("identity;q=1, gzip;q=0.5"), None);
        assert_eq!(pick("identity;q=0.5, gzip;q=0.5"), Some(Encoding::Gzip));
        assert_eq!(pick("identity;q=0, gzip;q=0.001"), Some(Encoding::Gzip));
        // The first of two entries for one coding counts.
        assert_eq!(pick("br;q=0, br, gzip"), Some(Encoding::Gzip));
    }

    #[test]
    fn malformed_items_are_skipped() {
        assert_eq!(pick("br;q=2, gzip"), Some(Encoding::Gzip));
        assert_eq!(pick("br;q=0.1234, gzip;q=0.5"), Some(Encoding::Gzip));
        assert_eq!(pick("br;q, gzip"), Some(Encoding::Gzip));
        assert_eq!(pick("b r, gzip;q=1.0"), Some(Encoding::Gzip));
        assert_eq!(pick(",,, ;q=1"), None);
    }

    #[test]
    fn only_available_variants_are_chosen() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(choose(&headers, &[Encoding::Gzip]), None);
        assert_eq!(choose(&headers, &[]), None);
    }

    #[test]
    fn weights_parse_to_thousandths() {
        assert_eq!(parse_weight("1"), Some(1000));
        assert_eq!(parse_weight("1.000"), Some(1000));
        assert_eq!(parse_weight("0.25"), Some(250));
        assert_eq!(parse_weight("0."), Some(0));
        assert_eq!(parse_weight("1.5"), None);
        assert_eq!(parse_weight("-0"), None);
        assert_eq!(parse_weight("0.x"), None);
    }

    proptest! {
        /// Whatever a client sends: no panic, only an offered variant, never a refused one.
        #[test]
        fn never_picks_a_refused_or_missing_variant(
            items in proptest::collection::vec(
                (
                    prop_oneof![
                        Just("br"), Just("gzip"), Just("x-gzip"), Just("identity"),
                        Just("*"), Just("deflate"), Just("zstd"), Just("BR"),
                    ],
                    proptest::option::of(prop_oneof![
                        Just("0"), Just("0.0"), Just("0.5"), Just("1"), Just("0.001"),
                        Just("2"), Just("zz"),
                    ]),
                ),
                0..6,
            ),
            offered in proptest::sample::subsequence(BOTH.to_vec(), 0..=2),
        ) {
            let accept = items
                .iter()
                .map(|(coding, q)| match q {
                    Some(q) => format!("{coding};q={q}"),
                    None => (*coding).to_owned(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(&accept).unwrap());
            if let Some(chosen) = choose(&headers, &offered) {
                prop_assert!(offered.contains(&chosen));
                let accepted = Accepted::parse(&headers).unwrap();
                prop_assert!(accepted.weight(chosen) > 0, "{accept} picked {chosen}");
            }
        }

        /// Arbitrary header text never panics the parser.
        #[test]
        fn arbitrary_fields_do_not_panic(field in "[ -~]{0,64}") {
            if let Ok(value) = HeaderValue::from_str(&field) {
                let mut headers = HeaderMap::new();
                headers.insert(header::ACCEPT_ENCODING, value);
                let _ = choose(&headers, &BOTH);
            }
        }
    }
}
