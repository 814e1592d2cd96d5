//! The server's HTTP API, as the commands call it: JSON in, JSON out, the token on every
//! request, errors turned into [`CliError`]s that say what to do ([`errors`]), blobs sent
//! as raw bodies, and the followed build log read as server-sent events ([`sse`]).
//!
//! Requests answered 429 or 503 with `Retry-After` are tried again, at most
//! [`MAX_RETRIES`] times and never waiting more than [`MAX_RETRY_WAIT`]: a CI job that hits
//! the rate limit slows down instead of failing.

pub mod errors;
pub mod sse;

use std::io::{BufReader, Read};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use ureq::tls::{RootCerts, TlsConfig};

use crate::config::Settings;
use crate::exit::{CliError, Kind};

/// How often a request answered 429 or 503 is tried again.
pub const MAX_RETRIES: u32 = 3;
/// Longest wait before trying again, whatever `Retry-After` says.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
/// Longest wait for a TCP connection (and TLS handshake) to the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JSON answer read (a long build log is the largest).
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;
/// Idle connections kept per host: one per parallel upload, so none is reopened.
const IDLE_CONNECTIONS: usize = 16;

/// A request body.
enum Body<'a> {
    None,
    Json(&'a Value),
    Reader {
        length: u64,
        reader: &'a mut dyn Read,
    },
    Bytes {
        content_type: &'a str,
        bytes: &'a [u8],
    },
}

/// A client of one server, with one token (or none); clones share connections.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    settings: Settings,
}

impl Client {
    /// A client for the server and token of `settings`.
    pub fn new(settings: &Settings) -> Self {
        let config = ureq::Agent::config_builder()
            // Error answers are read like any other: they carry the API's JSON error.
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .max_idle_connections_per_host(IDLE_CONNECTIONS)
            .user_agent(format!("deploystack-cli/{}", env!("CARGO_PKG_VERSION")))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(RootCerts::PlatformVerifier)
                    .build(),
            )
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
            base: settings.url.clone(),
            settings: settings.clone(),
        }
    }

    /// The server's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The settings the client was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// `GET path`, as JSON.
    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        self.json("GET", path, Body::None)
    }

    /// `GET path`, read as `T`.
    pub fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let value = self.get(path)?;
        decode(&self.base, path, value)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.json("POST", path, Body::Json(body))
    }

    /// `PATCH path` with a JSON body.
    pub fn patch(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.json("PATCH", path, Body::Json(body))
    }

    /// `POST path` without a body.
    pub fn post_empty(&self, path: &str) -> Result<Value, CliError> {
        self.json("POST", path, Body::None)
    }

    /// `DELETE path`; `Value::Null` for a 204.
    pub fn delete(&self, path: &str) -> Result<Value, CliError> {
        self.json("DELETE", path, Body::None)
    }

    /// `PUT path` with `length` bytes read from `reader` as the raw body.
    pub fn put_raw(
        &self,
        path: &str,
        length: u64,
        reader: &mut dyn Read,
    ) -> Result<Value, CliError> {
        self.json("PUT", path, Body::Reader { length, reader })
    }

    /// `POST path` with `bytes` of `content_type` as the body.
    pub fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Value, CliError> {
        self.json(
            "POST",
            path,
            Body::Bytes {
                content_type,
                bytes,
            },
        )
    }

    /// `GET path` as a stream of server-sent events.
    pub fn events(
        &self,
        path: &str,
    ) -> Result<sse::Events<BufReader<ureq::BodyReader<'static>>>, CliError> {
        let mut response = self.send("GET", path, Body::None, Some("text/event-stream"))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = read_text(&mut response).unwrap_or_default();
            return Err(errors::from_answer(&self.context(), status, &text));
        }
        Ok(sse::Events::new(BufReader::new(
            response.into_body().into_reader(),
        )))
    }

    fn json(&self, method: &str, path: &str, body: Body<'_>) -> Result<Value, CliError> {
        let mut response = self.send(method, path, body, Some("application/json"))?;
        let status = response.status().as_u16();
        let text = read_text(&mut response).map_err(|err| self.unreachable(&err))?;
        if status >= 400 {
            return Err(errors::from_answer(&self.context(), status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|_| {
            CliError::new(
                Kind::Api,
                format!(
                    "the server at {} answered {method} {path} with something that is not JSON",
                    self.base
                ),
            )
            .with_hint("check the address: --url, DEPLOYSTACK_URL or `deploystack login`")
        })
    }

    /// Send a request, trying again after 429 and 503 (bodies that can be sent again only).
    fn send(
        &self,
        method: &str,
        path: &str,
        mut body: Body<'_>,
        accept: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, CliError> {
        let url = format!("{}{path}", self.base);
        let mut tries = 0;
        loop {
            let mut request = ureq::http::Request::builder().method(method).uri(&url);
            if let Some(token) = &self.settings.token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            if let Some(accept) = accept {
                request = request.header("accept", accept);
            }
            let result = match &mut body {
                Body::None => request
                    .body(())
                    .map_err(|err| self.bad_request(&url, err))
                    .and_then(|r| self.agent.run(r).map_err(|err| self.unreachable(&err))),
                Body::Json(value) => {
                    let bytes = serde_json::to_vec(value)
                        .map_err(|err| CliError::new(Kind::Usage, err.to_string()))?;
                    request
                        .header("content-type", "application/json")
                        .body(bytes)
                        .map_err(|err| self.bad_request(&url, err))
                        .and_then(|r| self.agent.run(r).map_err(|err| self.unreachable(&err)))
                }
                Body::Bytes {
                    content_type,
                    bytes,
                } => request
                    .header("content-type", *content_type)
                    .body(bytes.to_vec())
                    .map_err(|err| self.bad_request(&url, err))
                    .and_then(|r| self.agent.run(r).map_err(|err| self.unreachable(&err))),
                Body::Reader { length, reader } => {
                    let request = request
                        .header("content-type", "application/octet-stream")
                        .header("content-length", *length)
                        .body(())
                        .map_err(|err| self.bad_request(&url, err))?;
                    let (parts, ()) = request.into_parts();
                    let request = ureq::http::Request::from_parts(
                        parts,
                        ureq::SendBody::from_reader(&mut **reader),
                    );
                    return self
                        .agent
                        .run(request)
                        .map_err(|err| self.unreachable(&err));
                }
            };
            let response = result?;
            let status = response.status().as_u16();
            if matches!(status, 429 | 503)
                && tries < MAX_RETRIES
                && let Some(wait) = retry_after(&response)
            {
                tries += 1;
                std::thread::sleep(wait.min(MAX_RETRY_WAIT));
                continue;
            }
            return Ok(response);
        }
    }

    fn context(&self) -> errors::Context<'_> {
        errors::Context {
            base: &self.base,
            token: self
                .settings
                .token
                .as_ref()
                .map(|_| self.settings.token_origin),
        }
    }

    fn unreachable(&self, err: &ureq::Error) -> CliError {
        errors::unreachable(&self.base, err)
    }

    fn bad_request(&self, url: &str, err: impl std::fmt::Display) -> CliError {
        CliError::usage(format!("cannot make a request to {url}: {err}"))
            .with_hint("check the server address: --url, DEPLOYSTACK_URL or `deploystack login`")
    }
}

/// `value` (the answer to `path`) read as `T`.
pub fn decode<T: DeserializeOwned>(base: &str, path: &str, value: Value) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|err| {
        CliError::new(
            Kind::Api,
            format!("the answer of {base}{path} is not what this command expects: {err}"),
        )
        .with_hint("is the server as new as this command?")
    })
}

fn read_text(response: &mut ureq::http::Response<ureq::Body>) -> Result<String, ureq::Error> {
    response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .lossy_utf8(true)
        .read_to_string()
}

fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let seconds: u64 = response
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}
