//! The rules a project variable must follow, checked before anything is written — the same
//! whether it comes from `POST …/env`, `PATCH`, or a desired-state document.
//!
//! Keys follow the rules of upload-time variables (`services::ingest::validate_env`): a
//! process environment name (`[A-Za-z_][A-Za-z0-9_]*`), at most 256 bytes, and not one the
//! platform sets for every build (`PATH`, `HOME`, `DEPLOYSTACK_*`). Values are at most 64 KiB
//! without NUL. Targets are a non-empty set, kept sorted so that two lists naming the same
//! targets compare equal.

use super::EnvError;
use crate::model::EnvTarget;
use crate::services::ingest::{
    MAX_ENV_NAME_BYTES, MAX_ENV_VALUE_BYTES, RESERVED_ENV_NAMES, RESERVED_ENV_PREFIX, is_env_name,
};

/// `Invalid` about `field`.
pub(super) fn invalid(field: &str, message: impl Into<String>) -> EnvError {
    EnvError::Invalid {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Check a key; `field` is how the caller's input names it (`key`, `env[2].key`).
pub(super) fn check_key(key: &str, field: &str) -> Result<(), EnvError> {
    if key.len() > MAX_ENV_NAME_BYTES {
        return Err(invalid(
            field,
            format!("variable names are at most {MAX_ENV_NAME_BYTES} bytes long"),
        ));
    }
    if !is_env_name(key) {
        let shown: String = key.chars().take(64).collect();
        return Err(invalid(
            field,
            format!(
                "{shown:?} is not a valid variable name: use letters, digits and _, not starting with a digit"
            ),
        ));
    }
    if RESERVED_ENV_NAMES.contains(&key) || key.starts_with(RESERVED_ENV_PREFIX) {
        return Err(invalid(
            field,
            format!(
                "{key} is set by the platform for every build and cannot be overridden \
                 (reserved: PATH, HOME and names starting with {RESERVED_ENV_PREFIX})"
            ),
        ));
    }
    Ok(())
}

/// Check a value (never quoted in the message).
pub(super) fn check_value(value: &str, field: &str) -> Result<(), EnvError> {
    if value.len() > MAX_ENV_VALUE_BYTES {
        return Err(invalid(
            field,
            format!("values are at most {MAX_ENV_VALUE_BYTES} bytes long"),
        ));
    }
    if value.contains('\0') {
        return Err(invalid(field, "a value cannot contain a NUL character"));
    }
    Ok(())
}

/// The targets sorted and without duplicates; `Invalid` when there are none.
pub(super) fn normalize_targets(
    targets: &[EnvTarget],
    field: &str,
) -> Result<Vec<EnvTarget>, EnvError> {
    let mut targets = targets.to_vec();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        return Err(invalid(
            field,
            "give at least one of production, preview, development",
        ));
    }
    Ok(targets)
}

/// `KEY (production, preview)`: how a change and a conflict name a variable.
pub(super) fn label(key: &str, targets: &[EnvTarget]) -> String {
    let targets: Vec<&str> = targets.iter().map(|t| t.as_str()).collect();
    format!("{key} ({})", targets.join(", "))
}

/// The first target two sets share.
pub(super) fn shared(a: &[EnvTarget], b: &[EnvTarget]) -> Option<EnvTarget> {
    a.iter().copied().find(|t| b.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_process_environment_rules() {
        for good in ["API_URL", "_x", "a1", "NEXT_PUBLIC_SITE"] {
            assert!(check_key(good, "key").is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "é", "PATH", "HOME", "DEPLOYSTACK_X"] {
            let err = check_key(bad, "key").unwrap_err();
            assert!(
                matches!(&err, EnvError::Invalid { field, .. } if field == "key"),
                "{bad}"
            );
        }
        assert!(check_key(&"A".repeat(MAX_ENV_NAME_BYTES + 1), "key").is_err());
    }

    #[test]
    fn values_are_bounded_and_never_quoted_in_errors() {
        assert!(check_value("", "value").is_ok());
        let err = check_value("secret\0tail", "value").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(check_value(&"x".repeat(MAX_ENV_VALUE_BYTES + 1), "value").is_err());
    }

    #[test]
    fn targets_are_a_sorted_non_empty_set() {
        use EnvTarget::*;
        assert_eq!(
            normalize_targets(&[Preview, Production, Preview], "targets").unwrap(),
            vec![Production, Preview]
        );
        assert!(normalize_targets(&[], "targets").is_err());
        assert_eq!(
            label("A", &[Production, Preview]),
            "A (production, preview)"
        );
    }
}
