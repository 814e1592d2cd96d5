//! S3-compatible storage (feature `s3`): AWS S3, MinIO, Ceph RGW, moto — anything that speaks
//! the S3 API — through `object_store`'s `AmazonS3`.
//!
//! [`S3Storage`] is a thin wrapper around [`ObjectStoreStorage`], which already gives every
//! `object_store` backend the [`Storage`] contract: atomic puts, multipart uploads for large
//! files (S3 refuses single puts past 5 GiB and retries them whole), streamed and ranged reads.
//! What this module adds is the part that is S3's own: reading the URL and the settings,
//! and refusing to start against a store that cannot work.
//!
//! # Addressing
//! `DEPLOYSTACK_STORAGE_URL=s3://<bucket>/<optional prefix>`. Every key lives under the
//! prefix (`s3://sites/prod` stores `blobs/ab/ab…` as `prod/blobs/ab/ab…`), so several
//! installations, or test runs, can share one bucket without seeing each other's objects.
//! The URL holds no options and no credentials: those are settings, below.
//!
//! # Settings
//! Endpoint, region and credentials come from [`S3Settings`] (`[s3]` in the file, or the
//! standard `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_ALLOW_HTTP`). Unset values keep `object_store`'s defaults: AWS's endpoint for the
//! region, `us-east-1`, and the EC2 instance profile for credentials. No other `AWS_*`
//! variable is read, so the configuration is the whole story.
//!
//! A custom endpoint gets path-style requests (`http://host:9000/<bucket>/<key>`): MinIO, moto
//! and most self-hosted stores do not serve a DNS name per bucket.
//!
//! # Why check the bucket at connect?
//! A wrong endpoint, bad credentials or a missing bucket would otherwise surface at the first
//! upload, as an error a user sees minutes after a "successful" start. [`S3Storage::connect`]
//! lists the prefix once and fails with the reason. That check uses a separate client with
//! few retries: the store itself retries for minutes, which is right for a running server
//! riding out a blip but would make a misconfigured start hang.
//!
//! # Retries
//! Every request is retried by `object_store` (exponential backoff with jitter) within the
//! bounds of a [`RetryPolicy`] — `retry_max_attempts` and `retry_max_secs` when built by
//! `Services::from_config` — rather than `object_store`'s default of up to three minutes,
//! so a store that went away fails a call within seconds and the circuit breaker in front
//! (`crate::breaker`) can notice.
//!
//! # Why is the secret never printed?
//! `Debug` shows the URL and the endpoint only. `object_store`'s own builder derives `Debug`
//! with the secret in it, so this module never formats one.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, RetryConfig};

use super::object_store::object_path;
use super::{ObjectInfo, ObjectStoreStorage, ObjectStream, Storage, StorageError};
use crate::breaker::RetryPolicy;
use crate::config::S3Settings;

/// The shape every error about the URL repeats, so the fix is in the message.
const URL_SHAPE: &str = "s3://<bucket>/<optional prefix>";

/// Longest the start-up check may take, whatever the endpoint does (a firewall that drops
/// packets makes every attempt wait for its connect timeout).
const PROBE_DEADLINE: Duration = Duration::from_secs(20);

/// Where objects live: a bucket and an optional key prefix, read from
/// `s3://<bucket>/<optional prefix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket, checked against S3's naming rules.
    bucket: String,
    /// Prefix of every key, without leading or trailing `/`; `None` for the bucket's root.
    prefix: Option<String>,
}

impl S3Url {
    /// Read `s3://<bucket>/<optional prefix>`. Refuses, with the reason, a URL without a
    /// bucket, a bucket name S3 would reject, a prefix that is not a clean relative path,
    /// and options or credentials in the URL (they belong in the settings).
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        let invalid = |reason: &str| {
            StorageError::InvalidConfig(format!(
                "invalid S3 URL {url:?}: {reason} (expected {URL_SHAPE})"
            ))
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("it does not start with s3://"))?;
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') {
            // Not echoed: what precedes the `@` is probably a secret.
            return Err(StorageError::InvalidConfig(
                "an S3 URL must not hold credentials: set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or `[s3]` in the configuration file"
                    .to_owned(),
            ));
        }
        if rest.contains(['?', '#']) {
            return Err(invalid(
                "it takes no query or fragment; endpoint, region and credentials are set in \
                 `[s3]` or the AWS_* variables",
            ));
        }
        if bucket.is_empty() {
            return Err(invalid("it names no bucket"));
        }
        check_bucket_name(bucket).map_err(invalid)?;
        let prefix = path.trim_end_matches('/');
        let prefix = if prefix.is_empty() {
            None
        } else {
            object_path(prefix).map_err(|_| {
                invalid("the prefix must be a relative path without empty, `.` or `..` segments")
            })?;
            Some(prefix.to_owned())
        };
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix,
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix every key is stored under, if any (no leading or trailing `/`).
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.prefix {
            Some(prefix) => write!(f, "s3://{}/{}", self.bucket, prefix),
            None => write!(f, "s3://{}", self.bucket),
        }
    }
}

/// S3's bucket naming rules, checked here so a typo is a start-up error that says what is
/// wrong rather than an opaque 400 from the first request.
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html>
fn check_bucket_name(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("bucket names are 3 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err("bucket names hold only lowercase letters, digits, dots and hyphens");
    }
    let alphanumeric = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alphanumeric(name.bytes().next()) || !alphanumeric(name.bytes().last()) {
        return Err("bucket names start and end with a letter or a digit");
    }
    if name.contains("..") {
        return Err("bucket names have no two dots in a row");
    }
    if name.parse::<Ipv4Addr>().is_ok() {
        return Err("bucket names are not IP addresses");
    }
    let reserved_start = ["xn--", "sthree-"].iter().any(|p| name.starts_with(p));
    let reserved_end = ["-s3alias", "--ol-s3"].iter().any(|s| name.ends_with(s));
    if reserved_start || reserved_end {
        return Err(
            "S3 reserves bucket names starting xn-- or sthree-, or ending -s3alias or --ol-s3",
        );
    }
    Ok(())
}

/// [`Storage`] in an S3-compatible bucket, under an optional prefix. See the module docs.
#[derive(Debug, Clone)]
pub struct S3Storage(ObjectStoreStorage);

impl S3Storage {
    /// Parse `url` (`s3://<bucket>/<optional prefix>`) and [`connect`](Self::connect).
    pub async fn from_url(url: &str, settings: &S3Settings) -> Result<Self, StorageError> {
        Self::connect(&S3Url::parse(url)?, settings).await
    }

    /// Open the bucket of `url` with `settings`, and check once that it answers: an
    /// unreachable endpoint or refused credentials are [`StorageError::Unavailable`], a
    /// missing bucket or inconsistent settings [`StorageError::InvalidConfig`].
    pub async fn connect(url: &S3Url, settings: &S3Settings) -> Result<Self, StorageError> {
        Self::connect_with_retry(url, settings, &RetryPolicy::default()).await
    }

    /// [`connect`](Self::connect), with every later request retried under `retry` (bounded
    /// exponential backoff with jitter, `object_store`'s) instead of the default policy.
    pub async fn connect_with_retry(
        url: &S3Url,
        settings: &S3Settings,
        retry: &RetryPolicy,
    ) -> Result<Self, StorageError> {
        let builder = builder(url, settings)?.with_retry(retry.object_store());
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| "AWS".to_owned());

        // Few, quick retries: enough to ride out a server that is still starting, short
        // enough that a wrong endpoint fails the start in seconds.
        let probe = builder.clone().with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
        });
        check_bucket(&*scoped(probe, url)?, url, &endpoint).await?;

        let store = scoped(builder, url)?;
        let description = format!("{url} at {endpoint}");
        Ok(Self(ObjectStoreStorage::from_store(store, description)))
    }
}

/// The `object_store` builder for `url` and `settings`, after the checks that give a clearer
/// message than the request that would otherwise fail.
fn builder(url: &S3Url, settings: &S3Settings) -> Result<AmazonS3Builder, StorageError> {
    let mut builder = AmazonS3Builder::new().with_bucket_name(url.bucket());
    if let Some(endpoint) = &settings.endpoint {
        let plain_http = endpoint.starts_with("http://");
        if !plain_http && !endpoint.starts_with("https://") {
            return Err(StorageError::InvalidConfig(format!(
                "the S3 endpoint {endpoint:?} (AWS_ENDPOINT_URL) is not an http:// or https:// URL"
            )));
        }
        if plain_http && settings.allow_http != Some(true) {
            return Err(StorageError::InvalidConfig(format!(
                "the S3 endpoint {endpoint:?} is plain http: set AWS_ALLOW_HTTP=true \
                 (or `allow_http = true` in `[s3]`) to allow it"
            )));
        }
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    match (&settings.access_key_id, &settings.secret_access_key) {
        (Some(id), Some(secret)) => {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        (None, None) => {}
        _ => {
            return Err(StorageError::InvalidConfig(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together, but only one is set"
                    .to_owned(),
            ));
        }
    }
    if let Some(allow_http) = settings.allow_http {
        builder = builder.with_allow_http(allow_http);
    }
    Ok(builder)
}

/// Build the store, confined to the URL's prefix.
fn scoped(builder: AmazonS3Builder, url: &S3Url) -> Result<Arc<dyn ObjectStore>, StorageError> {
    // The error says which setting is missing or malformed; it never holds the secret.
    let store = builder
        .build()
        .map_err(|err| StorageError::InvalidConfig(format!("S3 settings: {err}")))?;
    Ok(match url.prefix() {
        Some(prefix) => Arc::new(PrefixStore::new(store, object_path(prefix)?)),
        None => Arc::new(store),
    })
}

/// One listing of a folder nobody writes (the one `ping` lists): the cheapest request that
/// needs the endpoint, the credentials and the bucket to be right, and no object to exist.
async fn check_bucket(
    store: &dyn ObjectStore,
    url: &S3Url,
    endpoint: &str,
) -> Result<(), StorageError> {
    let listing = tokio::time::timeout(
        PROBE_DEADLINE,
        store.list_with_delimiter(Some(&ObjectPath::from("health"))),
    )
    .await;
    match listing {
        Ok(Ok(_)) => Ok(()),
        // `object_store` reports a listing's 404 as a generic error; `NoSuchBucket` is the
        // error code S3 documents for it, and the only 404 a listing can get.
        Ok(Err(err)) if is_missing_bucket(&err) => Err(StorageError::InvalidConfig(format!(
            "bucket {:?} does not exist at {endpoint}: create it, or fix the bucket in the \
             storage URL",
            url.bucket()
        ))),
        Ok(Err(err)) => Err(StorageError::Unavailable(format!(
            "cannot use {url} at {endpoint}: {}",
            with_causes(&err)
        ))),
        Err(_) => Err(StorageError::Unavailable(format!(
            "{endpoint} did not answer within {} s while opening {url}",
            PROBE_DEADLINE.as_secs()
        ))),
    }
}

/// The error and what caused it: `object_store`'s message stops at "error sending request",
/// and the reason worth reading (connection refused, no such host, a bad certificate) is
/// further down the chain.
fn with_causes(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = inner.source();
    }
    message
}

fn is_missing_bucket(err: &object_store::Error) -> bool {
    matches!(err, object_store::Error::NotFound { .. }) || err.to_string().contains("NoSuchBucket")
}

#[async_trait]
impl Storage for S3Storage {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.0.put(key, data).await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        self.0.put_file(key, path).await
    }

    async fn get(&self, key: &str) -> Result<ObjectStream, StorageError> {
        self.0.get(key).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        self.0.get_range(key, range).await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StorageError> {
        self.0.head(key).await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.0.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        self.0.list(prefix).await
    }

    async fn ping(&self) -> Result<(), StorageError> {
        self.0.ping().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        S3Url::parse(url).unwrap_err().to_string()
    }

    #[test]
    fn a_url_is_a_bucket_and_an_optional_prefix() {
        let root = S3Url::parse("s3://sites").unwrap();
        assert_eq!((root.bucket(), root.prefix()), ("sites", None));
        assert_eq!(S3Url::parse("s3://sites/").unwrap(), root);
        let nested = S3Url::parse("s3://my.sites-2/prod/eu/").unwrap();
        assert_eq!(nested.bucket(), "my.sites-2");
        assert_eq!(nested.prefix(), Some("prod/eu"));
        assert_eq!(nested.to_string(), "s3://my.sites-2/prod/eu");
    }

    #[test]
    fn a_url_without_a_bucket_says_so() {
        for url in ["s3://", "s3:///x", "s3:///"] {
            let reason = reason(url);
            assert!(reason.contains("names no bucket"), "{url}: {reason}");
            assert!(reason.contains(URL_SHAPE), "{url}: {reason}");
        }
        assert!(reason("file:///x").contains("does not start with s3://"));
    }

    #[test]
    fn bucket_names_s3_would_reject_are_refused_with_the_rule() {
        for (url, rule) in [
            ("s3://ab", "3 to 63"),
            (&format!("s3://{}", "a".repeat(64)), "3 to 63"),
            ("s3://My_Bucket", "lowercase letters"),
            ("s3://host:9000/x", "lowercase letters"),
            ("s3://-sites", "start and end"),
            ("s3://sites.", "start and end"),
            ("s3://my..sites", "two dots"),
            ("s3://192.168.1.10", "IP addresses"),
            ("s3://xn--sites", "S3 reserves"),
            ("s3://sites-s3alias", "S3 reserves"),
        ] {
            let reason = reason(url);
            assert!(reason.contains(rule), "{url}: {reason}");
        }
    }

    #[test]
    fn prefixes_options_and_credentials_are_checked() {
        assert!(reason("s3://sites/a//b").contains("prefix"));
        assert!(reason("s3://sites/a/../b").contains("prefix"));
        assert!(reason("s3://sites/p?region=eu-west-1").contains("no query"));
        let secret = reason("s3://AKIA:hunter2@sites/p");
        assert!(secret.contains("must not hold credentials"), "{secret}");
        assert!(!secret.contains("hunter2"), "{secret}");
    }

    #[test]
    fn inconsistent_settings_are_refused_before_any_request() {
        let url = S3Url::parse("s3://sites").unwrap();
        let plain = S3Settings {
            endpoint: Some("http://127.0.0.1:9000".into()),
            ..S3Settings::default()
        };
        let err = builder(&url, &plain).map(drop).unwrap_err().to_string();
        assert!(err.contains("AWS_ALLOW_HTTP"), "{err}");
        let schemeless = S3Settings {
            endpoint: Some("127.0.0.1:9000".into()),
            ..S3Settings::default()
        };
        let err = builder(&url, &schemeless)
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not an http:// or https:// URL"), "{err}");
        let half = S3Settings {
            secret_access_key: Some("hunter2".into()),
            ..S3Settings::default()
        };
        let err = builder(&url, &half).map(drop).unwrap_err().to_string();
        assert!(err.contains("go together"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
