//! Secret values out of log lines.
//!
//! Build output reaches the log line by line: the sandbox's reader joins whatever chunks a
//! pipe delivers up to each newline before a line is masked, so a value a build prints in
//! several writes is still whole when [`Masker::mask`] sees it. What a line-based masker
//! cannot see is a value spread over several *lines*: a multi-line value (a PEM key) is
//! therefore masked line by line as well as whole, so each of its lines disappears wherever
//! it is printed. A value printed transformed (base64, URL-encoded, reversed) is not found;
//! no masker can promise that, which is why `sensitive` values are also never sent back.
//!
//! # Why merge overlapping matches?
//! Replacing values one after the other leaks: with `abcd` and `cdef` masked, `abcdef` would
//! become `***ef` (half of the second value). [`Masker::mask`] finds every occurrence of
//! every value first, overlapping ones included, and replaces each merged run once, so no
//! character of any occurrence survives.

use std::borrow::Cow;
use std::fmt;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Replaces every occurrence of its values in a line with [`MASK`]. `Debug` shows only how
/// many values it holds.
#[derive(Clone, Default)]
pub struct Masker {
    /// Distinct values, longest first (the order only makes `Debug` and tests stable).
    values: Vec<String>,
}

impl Masker {
    /// Values shorter than this many characters are not masked: `1`, `true` or `dev` would
    /// blank out ordinary words of every line, hiding the log without hiding the secret
    /// (a value that short is guessed faster than it is read).
    pub const MIN_CHARS: usize = 4;

    /// A masker for `values`.
    pub fn new<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Self {
        let mut masker = Self::default();
        masker.extend(values);
        masker
    }

    /// Mask `value` from now on; returns whether it will be (`false` when it is shorter than
    /// [`Self::MIN_CHARS`]). A multi-line value is masked whole and line by line.
    pub fn add(&mut self, value: &str) -> bool {
        let mut added = self.push(value);
        if value.contains('\n') {
            for line in value.split('\n') {
                added |= self.push(line.trim_end_matches('\r'));
            }
        }
        added
    }

    /// [`add`](Self::add) each of `values`.
    pub fn extend<S: AsRef<str>>(&mut self, values: impl IntoIterator<Item = S>) {
        for value in values {
            self.add(value.as_ref());
        }
    }

    /// How many values are masked.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is masked.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every occurrence of every value replaced by [`MASK`]; overlapping or
    /// adjacent occurrences become one [`MASK`]. Borrowed when nothing matched.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for value in &self.values {
            let mut from = 0;
            while let Some(at) = text[from..].find(value.as_str()) {
                let start = from + at;
                spans.push((start, start + value.len()));
                // On by one character, not by the value: overlapping occurrences count too.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable();
        let mut masked = String::with_capacity(text.len());
        let mut copied = 0;
        let mut spans = spans.into_iter().peekable();
        while let Some((start, mut end)) = spans.next() {
            while let Some(&(next_start, next_end)) = spans.peek() {
                if next_start > end {
                    break;
                }
                end = end.max(next_end);
                spans.next();
            }
            masked.push_str(&text[copied..start]);
            masked.push_str(MASK);
            copied = end;
        }
        masked.push_str(&text[copied..]);
        Cow::Owned(masked)
    }

    fn push(&mut self, value: &str) -> bool {
        if value.chars().count() < Self::MIN_CHARS {
            return false;
        }
        if !self.values.iter().any(|known| known == value) {
            self.values.push(value.to_owned());
            self.values
                .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        }
        true
    }
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} masked values>", self.values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_occurrence_is_masked_and_short_values_are_not() {
        let masker = Masker::new(["hunter22", "", "ab", "abc"]);
        assert_eq!(masker.len(), 1);
        assert_eq!(
            masker.mask("pass=hunter22 again hunter22"),
            "pass=*** again ***"
        );
        assert!(matches!(masker.mask("nothing here abc"), Cow::Borrowed(_)));
        assert_eq!(format!("{masker:?}"), "<1 masked values>");
        assert!(!Masker::default().add("123"));
        assert!(Masker::new(["x"]).is_empty());
    }

    #[test]
    fn overlapping_and_nested_values_leave_nothing_behind() {
        let masker = Masker::new(["abcd", "cdef"]);
        assert_eq!(masker.mask("xabcdefx"), "x***x");
        let masker = Masker::new(["token", "secret-token-1"]);
        assert_eq!(
            masker.mask("a secret-token-1 and a token"),
            "a *** and a ***"
        );
        let masker = Masker::new(["aaaa"]);
        assert_eq!(masker.mask("aaaaaaa!"), "***!");
        let masker = Masker::new(["pässwörd"]);
        assert_eq!(masker.mask("é pässwörd é"), "é *** é");
    }

    #[test]
    fn a_multi_line_value_is_masked_line_by_line() {
        let pem = "-----BEGIN KEY-----\r\nMIIBOgIBAAJBAK\nx\n-----END KEY-----";
        let masker = Masker::new([pem]);
        assert_eq!(masker.mask("MIIBOgIBAAJBAK"), "***");
        assert_eq!(masker.mask("-----END KEY-----"), "***");
        assert_eq!(masker.mask(&format!("key: {pem}")), "key: ***");
        assert_eq!(masker.mask("x marks"), "x marks");
    }

    proptest! {
        #[test]
        fn no_value_survives_masking(
            values in proptest::collection::vec("[a-z0-9]{4,10}", 1..4),
            pieces in proptest::collection::vec("[a-z0-9 =:]{0,12}", 1..5),
            picks in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            // A line of random text with values dropped in between the pieces.
            let mut line = String::new();
            for (n, piece) in pieces.iter().enumerate() {
                line.push_str(piece);
                if let Some(pick) = picks.get(n) {
                    line.push_str(pick.get::<String>(&values));
                }
            }
            let masker = Masker::new(&values);
            let masked = masker.mask(&line);
            for value in &values {
                prop_assert!(!masked.contains(value.as_str()), "{value} in {masked}");
            }
            // Masking again changes nothing, and text between values is kept.
            prop_assert_eq!(masker.mask(&masked), masked.clone());
            if !values.iter().any(|v| line.contains(v.as_str())) {
                prop_assert_eq!(masked, Cow::Borrowed(line.as_str()));
            }
        }
    }
}
