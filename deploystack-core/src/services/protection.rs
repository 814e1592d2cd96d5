//! Deployment protection (`model::protection`): checking and hashing passwords, the bypass
//! secret automation sends, the signed access tokens a login hands out, and the throttle on
//! wrong passwords. The HTTP crate turns these into the login page and the cookie.
//!
//! # Why a signed token rather than a session table?
//! Any node of a cluster must accept a visitor who logged in on another one, on the serving
//! hot path, without a database read. An access token is `<expiry>.<mac>`, where the MAC is
//! HMAC-SHA256 under a key derived from the platform key (`Keyring::derive_key`, shared by
//! every node) over the host it was issued for, its expiry and the project's current
//! password hash. So a token opens exactly one host (a cookie copied to another deployment's
//! host does not verify there), expires by itself, and every token of a project stops working
//! the moment its password changes — with nothing stored per visitor.
//!
//! # Why a fast hash for the bypass secret but argon2 for the password?
//! A password is chosen by a person and may be guessable, so it is stored with argon2id
//! (memory-hard, salted), and checking one costs tens of milliseconds — a wrong one is
//! throttled on top ([`LoginThrottle`]). The bypass secret is 256 random bits the server
//! makes: nothing about it can be guessed from a SHA-256 digest, and it is checked on
//! every request automation makes, where argon2 would cost more than serving the file.

use std::time::Duration;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::model::{InvalidProject, Protection, ProtectionMode, ProtectionRequest};

/// Fewest characters in a protection password.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Most characters in a protection password (argon2 takes any length; this bounds the work
/// a request can ask for).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// How long a login lasts: a reviewer logs in once a day at most.
pub const ACCESS_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What the bypass secret starts with, so it is recognisable in a leaked log or a config.
pub const BYPASS_PREFIX: &str = "dsp_";

/// What deriving the signing key from the platform key is labelled with.
pub const ACCESS_KEY_PURPOSE: &str = "protection access tokens";

/// Check a requested protection; the error names the field.
pub fn validate(requested: &ProtectionRequest) -> Result<(), InvalidProject> {
    match (&requested.mode, &requested.password) {
        (ProtectionMode::None, None) => Ok(()),
        (ProtectionMode::None, Some(_)) => Err(InvalidProject {
            field: "protection.password",
            message: "leave it out when the mode is none",
        }),
        (_, None) => Err(InvalidProject {
            field: "protection.password",
            message: "required when the mode is previews or all",
        }),
        (_, Some(password)) => {
            let chars = password.chars().count();
            if !(MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&chars) {
                return Err(InvalidProject {
                    field: "protection.password",
                    message: "must be 8 to 256 characters",
                });
            }
            Ok(())
        }
    }
}

/// What applying a requested protection changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Planned {
    /// The protection to store; `None`: it already matches, nothing to write.
    pub protection: Option<Protection>,
    /// A bypass secret made now (protection was just turned on): shown to the caller once,
    /// its hash stored in `protection`.
    pub bypass_secret: Option<String>,
}

/// What storing `requested` (already [`validate`]d) over `current` takes. The password is
/// compared by verifying it against the stored hash, so the same request twice plans no
/// change; a mode change with the same password keeps the hash (and so every visitor's
/// login). Turning protection on makes a bypass secret; turning it off drops both hashes.
/// Hashing and verifying run on the blocking pool: argon2 takes tens of milliseconds.
pub async fn plan(current: &Protection, requested: &ProtectionRequest) -> Planned {
    let Some(password) = requested.password.clone() else {
        if *current == Protection::default() {
            return Planned::default();
        }
        return Planned {
            protection: Some(Protection::default()),
            bypass_secret: None,
        };
    };
    let same_password = match &current.password_hash {
        Some(hash) => verify_password(hash.clone(), password.clone()).await,
        None => false,
    };
    if same_password && current.mode == requested.mode && current.bypass_hash.is_some() {
        return Planned::default();
    }
    let password_hash = if same_password {
        current.password_hash.clone()
    } else {
        hash_password(password).await
    };
    let (bypass_hash, bypass_secret) = match &current.bypass_hash {
        Some(hash) => (Some(hash.clone()), None),
        None => {
            let secret = new_bypass_secret();
            (Some(bypass_hash(&secret)), Some(secret))
        }
    };
    Planned {
        protection: Some(Protection {
            mode: requested.mode,
            password_hash,
            bypass_hash,
        }),
        bypass_secret,
    }
}

/// The argon2id hash (PHC string) of `password`, salted from the operating system's random
/// source; `None` only if that source fails.
pub async fn hash_password(password: String) -> Option<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .ok()
            .map(|hash| hash.to_string())
    })
    .await
    .ok()
    .flatten()
}

/// Whether `password` is the one `hash` was made from. A hash that does not parse matches
/// nothing.
pub async fn verify_password(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A new bypass secret: [`BYPASS_PREFIX`] and 256 random bits, hex.
pub fn new_bypass_secret() -> String {
    format!("{BYPASS_PREFIX}{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// The stored form of a bypass secret: SHA-256, hex.
pub fn bypass_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` is the secret `stored` (a [`bypass_hash`]) was made from, compared in
/// constant time.
pub fn bypass_matches(stored: &str, presented: &str) -> bool {
    constant_time_eq(stored.as_bytes(), bypass_hash(presented).as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key access tokens are signed with (see the module docs).
#[derive(Clone)]
pub struct AccessKey([u8; 32]);

impl AccessKey {
    /// The key derived from the platform keyring for [`ACCESS_KEY_PURPOSE`].
    pub fn from_keyring(keyring: &crate::secrets::Keyring) -> Self {
        Self(keyring.derive_key(ACCESS_KEY_PURPOSE))
    }

    /// A key from raw bytes (tests, embedders with a key of their own).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, host: &str, expires: i64, password_hash: &str) -> [u8; 32] {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        for part in [
            b"deploystack protection access v1".as_slice(),
            host.as_bytes(),
            expires.to_string().as_bytes(),
            password_hash.as_bytes(),
        ] {
            // Length-prefixed, so no two different tuples give the same input.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A token for `host` (lowercase, without port), valid until `expires` (unix seconds),
    /// under the project's current `password_hash`: `<expires>.<base64url(mac)>`.
    pub fn issue(&self, host: &str, expires: i64, password_hash: &str) -> String {
        let mac = self.mac(host, expires, password_hash);
        format!("{expires}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// Whether `token` was issued for `host` under `password_hash` and has not expired at
    /// `now` (unix seconds). The MAC is compared in constant time.
    pub fn verify(&self, token: &str, host: &str, now: i64, password_hash: &str) -> bool {
        let Some((expires, mac)) = token.split_once('.') else {
            return false;
        };
        let Ok(expires) = expires.parse::<i64>() else {
            return false;
        };
        if expires <= now {
            return false;
        }
        let Ok(given) = URL_SAFE_NO_PAD.decode(mac) else {
            return false;
        };
        constant_time_eq(&given, &self.mac(host, expires, password_hash))
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessKey(..)")
    }
}

/// Most wrong passwords one client may try on one host per [`THROTTLE_WINDOW`].
pub const MAX_FAILED_LOGINS: u32 = 10;

/// The window wrong passwords are counted in.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// How long a wrong password waits before its answer: guessing at one try per second per
/// connection, and [`MAX_FAILED_LOGINS`] per window per client and host, is hopeless against
/// an 8-character password.
pub const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);

/// Counts wrong passwords per (host, client address) in this process; a client over
/// [`MAX_FAILED_LOGINS`] in [`THROTTLE_WINDOW`] is refused without a check until the window
/// (which restarts at each failure) ends. Bounded: at most 100 000 pairs are remembered.
#[derive(Clone)]
pub struct LoginThrottle {
    failures: moka::sync::Cache<String, u32>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            failures: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(THROTTLE_WINDOW)
                .build(),
        }
    }
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle").finish_non_exhaustive()
    }
}

impl LoginThrottle {
    fn key(host: &str, client: &str) -> String {
        format!("{host} {client}")
    }

    /// Whether `client` may try a password on `host` now.
    pub fn allows(&self, host: &str, client: &str) -> bool {
        self.failures
            .get(&Self::key(host, client))
            .is_none_or(|count| count < MAX_FAILED_LOGINS)
    }

    /// Count a wrong password of `client` on `host`. Each failure restarts the window, so a
    /// client that keeps guessing stays refused.
    pub fn failed(&self, host: &str, client: &str) {
        // One atomic read-modify-write: wrong passwords sent at once on many connections
        // must each count (a get-then-insert would lose some, letting a client past the cap).
        self.failures
            .entry(Self::key(host, client))
            .and_upsert_with(|entry| entry.map_or(1, |e| e.into_value().saturating_add(1)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AccessKey {
        AccessKey::from_bytes([7; 32])
    }

    #[test]
    fn a_token_opens_its_host_until_it_expires() {
        let token = key().issue("a.localhost", 1_000, "$hash");
        assert!(key().verify(&token, "a.localhost", 999, "$hash"));
        assert!(
            !key().verify(&token, "a.localhost", 1_000, "$hash"),
            "expired"
        );
        assert!(
            !key().verify(&token, "b.localhost", 999, "$hash"),
            "another host"
        );
        assert!(
            !key().verify(&token, "a.localhost", 999, "$new"),
            "password changed"
        );
        assert!(
            !AccessKey::from_bytes([8; 32]).verify(&token, "a.localhost", 999, "$hash"),
            "another key"
        );
    }

    #[test]
    fn a_forged_token_is_refused() {
        let token = key().issue("a.localhost", 1_000, "$hash");
        let (_, mac) = token.split_once('.').unwrap();
        // A later expiry with the old MAC.
        assert!(!key().verify(&format!("2000.{mac}"), "a.localhost", 999, "$hash"));
        for junk in [
            "",
            ".",
            "1000",
            "1000.",
            "x.y",
            "1000.!!!",
            &format!("{token}x"),
        ] {
            assert!(!key().verify(junk, "a.localhost", 999, "$hash"), "{junk:?}");
        }
    }

    #[test]
    fn bypass_secrets_are_checked_against_their_hash() {
        let secret = new_bypass_secret();
        assert!(secret.starts_with(BYPASS_PREFIX) && secret.len() == BYPASS_PREFIX.len() + 64);
        let stored = bypass_hash(&secret);
        assert!(!stored.contains(&secret[BYPASS_PREFIX.len()..]));
        assert!(bypass_matches(&stored, &secret));
        assert!(!bypass_matches(&stored, &new_bypass_secret()));
        assert!(!bypass_matches(&stored, ""));
    }

    #[test]
    fn requests_are_validated_naming_the_field() {
        let request = |mode, password: Option<&str>| ProtectionRequest {
            mode,
            password: password.map(str::to_owned),
        };
        assert!(validate(&request(ProtectionMode::None, None)).is_ok());
        assert!(validate(&request(ProtectionMode::All, Some("long enough"))).is_ok());
        for bad in [
            request(ProtectionMode::All, None),
            request(ProtectionMode::Previews, Some("short")),
            request(ProtectionMode::None, Some("long enough")),
            request(ProtectionMode::All, Some(&"x".repeat(257))),
        ] {
            assert_eq!(
                validate(&bad).map_err(|e| e.field),
                Err("protection.password")
            );
        }
    }

    #[tokio::test]
    async fn the_same_request_twice_plans_no_change() {
        let request = ProtectionRequest {
            mode: ProtectionMode::Previews,
            password: Some("correct horse".into()),
        };
        let first = plan(&Protection::default(), &request).await;
        let stored = first.protection.expect("turned on");
        let secret = first.bypass_secret.expect("a bypass secret is made");
        assert!(bypass_matches(
            stored.bypass_hash.as_deref().unwrap(),
            &secret
        ));
        assert!(
            !stored
                .password_hash
                .as_deref()
                .unwrap()
                .contains("correct horse")
        );
        assert_eq!(plan(&stored, &request).await, Planned::default());

        // Another mode keeps the password hash (and every login) and the bypass secret.
        let all = ProtectionRequest {
            mode: ProtectionMode::All,
            ..request.clone()
        };
        let moved = plan(&stored, &all).await.protection.expect("mode changed");
        assert_eq!(moved.password_hash, stored.password_hash);
        assert_eq!(moved.bypass_hash, stored.bypass_hash);

        // Another password is a change, with a new hash.
        let other = ProtectionRequest {
            password: Some("battery staple".into()),
            ..request.clone()
        };
        let changed = plan(&stored, &other)
            .await
            .protection
            .expect("password changed");
        assert_ne!(changed.password_hash, stored.password_hash);

        // Off drops both hashes; off again is no change.
        let off = ProtectionRequest::default();
        assert_eq!(
            plan(&stored, &off).await.protection,
            Some(Protection::default())
        );
        assert_eq!(plan(&Protection::default(), &off).await, Planned::default());
    }

    #[test]
    fn failures_at_once_from_many_threads_all_count() {
        let throttle = LoginThrottle::default();
        std::thread::scope(|scope| {
            for _ in 0..MAX_FAILED_LOGINS {
                scope.spawn(|| throttle.failed("a.localhost", "127.0.0.1"));
            }
        });
        assert!(!throttle.allows("a.localhost", "127.0.0.1"));
    }

    #[test]
    fn the_throttle_refuses_after_too_many_failures() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_FAILED_LOGINS {
            assert!(throttle.allows("a.localhost", "127.0.0.1"));
            throttle.failed("a.localhost", "127.0.0.1");
        }
        assert!(!throttle.allows("a.localhost", "127.0.0.1"));
        assert!(throttle.allows("b.localhost", "127.0.0.1"), "per host");
        assert!(throttle.allows("a.localhost", "127.0.0.2"), "per client");
    }
}
