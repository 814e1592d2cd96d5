//! Warm answers: the status, headers and (small) body of the answer to a plain request for a
//! file, built once and kept with the cached resolution.
//!
//! ## Why?
//! A resolution of a `READY` deployment never changes, and neither does the answer to a
//! *plain* request for it — one without preconditions or ranges: status, validators, type,
//! length, the configured headers and the bytes are fixed by the file and the deployment, and
//! only the representation chosen by `Accept-Encoding` varies. So each representation's
//! answer is built the first time it is asked for and kept with the resolution
//! (`deploystack_core::services::serving::Attached`); a warm request clones a header map and
//! a reference-counted body instead of negotiating, formatting validators and validating
//! header values again. It lives and expires exactly as long as the resolution it belongs
//! to, and the resolution cache's budget counts it. hyper writes it like any other response.

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use deploystack_core::model::Encoding;
use deploystack_core::services::serving::Attachment;

/// Bodies up to this size are kept with their answer; larger ones are read from storage
/// (the hot-blob cache, for a warm file) per request, so the resolution cache's budget holds
/// many answers rather than a few large files.
pub(super) const KEEP_BODY_BYTES: u64 = 64 * 1024;

/// The answer to a plain `GET` or `HEAD` for one representation of a file.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    /// 200, or 404 for a site's own `404.html`.
    pub status: StatusCode,
    /// Every header of the answer, `Content-Length` included (hyper adds `Date`).
    pub headers: HeaderMap,
    /// The body, when it is at most [`KEEP_BODY_BYTES`]; otherwise it is read from storage.
    pub body: Option<Bytes>,
    /// Storage key of the body's bytes.
    pub blob_key: String,
}

impl Prepared {
    /// The answer with `body`, or without one for a `HEAD`.
    pub fn response(&self, body: Body) -> Response {
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers.clone();
        response
    }

    fn heap_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + 64)
            .sum();
        headers + self.body.as_ref().map_or(0, Bytes::len) + self.blob_key.len()
    }
}

/// The prepared answers of one resolution, one slot per representation (the file as
/// deployed and each precompressed variant), each filled by the first plain request for it.
#[derive(Debug, Default)]
pub(super) struct PreparedAnswers([OnceLock<Prepared>; 1 + Encoding::ALL.len()]);

impl PreparedAnswers {
    /// The slot of the representation with `encoding` (`None`: the file as deployed).
    pub fn slot(&self, encoding: Option<Encoding>) -> &OnceLock<Prepared> {
        // Slot 0 is the file as deployed, then one per encoding in `Encoding::ALL`'s order
        // (which lists every encoding).
        let index = encoding.map_or(0, |encoding| {
            1 + Encoding::ALL
                .iter()
                .position(|known| *known == encoding)
                .unwrap_or_default()
        });
        &self.0[index]
    }
}

impl Attachment for PreparedAnswers {
    fn heap_bytes(&self) -> usize {
        self.0
            .iter()
            .filter_map(OnceLock::get)
            .map(Prepared::heap_bytes)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderValue, header};

    #[test]
    fn slots_are_per_representation_and_counted() {
        let answers = PreparedAnswers::default();
        assert_eq!(answers.heap_bytes(), 0);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        let prepared = Prepared {
            status: StatusCode::OK,
            headers,
            body: Some(Bytes::from_static(b"<h1>hi</h1>")),
            blob_key: "blobs/ab/abcd".into(),
        };
        answers.slot(Some(Encoding::Br)).set(prepared).unwrap();
        assert!(answers.slot(None).get().is_none());
        assert!(answers.slot(Some(Encoding::Gzip)).get().is_none());
        assert!(answers.heap_bytes() >= 11 + 13);
        let response = answers
            .slot(Some(Encoding::Br))
            .get()
            .unwrap()
            .response(Body::empty());
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/html");
    }
}
