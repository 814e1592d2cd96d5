//! The row-mapping layer both SQL adapters share: how a row becomes a model value, how a
//! listing becomes a [`Page`], how a sqlx error becomes a [`RepositoryError`].
//!
//! # Why one layer?
//! The SQLite and PostgreSQL adapters differ in their SQL text (placeholders, `json_each`
//! against `unnest`, their clocks) and in how they store timestamps (unix milliseconds against
//! `timestamptz`), but a deployment is the same deployment in both. Keeping one mapping per
//! aggregate means a new column is read in one place, and both engines cannot drift apart.
//! Each engine only says how it reads a text, an integer and a timestamp column
//! ([`Columns`]); everything built from those is here.

use std::str::FromStr;

use time::OffsetDateTime;

use super::RepositoryError;
use crate::model::{
    BuildSettings, Deployment, DeploymentError, DeploymentId, EncodedVariant, EnvTarget, EnvVar,
    FileEntry, LogLine, Page, PageRequest, Production, ProductionChange, Project, ProjectName,
    ResealCounts, SealedEnvVar, StoredLogLine,
};
use crate::secrets::Keyring;

/// How one engine reads the three kinds of column the model is stored in.
pub(super) trait Columns {
    /// A text column (NULL: `None`).
    fn text(&self, column: &str) -> Result<Option<String>, RepositoryError>;
    /// An integer column (NULL: `None`).
    fn int(&self, column: &str) -> Result<Option<i64>, RepositoryError>;
    /// A timestamp column (NULL: `None`), in whatever form the engine stores it.
    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, RepositoryError>;
    /// A binary column (NULL: `None`).
    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, RepositoryError>;
    /// A boolean column (NULL: `None`); SQLite stores it as an integer.
    fn flag(&self, column: &str) -> Result<Option<bool>, RepositoryError> {
        Ok(self.int(column)?.map(|v| v != 0))
    }
}

/// Most items a listing returns at once, whatever the caller asks.
pub(super) const MAX_PAGE: u32 = 100;

/// Most production history rows returned at once.
pub(super) const MAX_HISTORY: u32 = 1_000;

/// The page size of a listing request, within bounds.
pub(super) fn page_limit(page: &PageRequest) -> u32 {
    page.limit.clamp(1, MAX_PAGE)
}

/// A column that must not be NULL.
fn required<T>(value: Option<T>, column: &str) -> Result<T, RepositoryError> {
    value.ok_or_else(|| RepositoryError::Corrupt(format!("column {column} is NULL")))
}

/// A required text column.
pub(super) fn text(row: &impl Columns, column: &str) -> Result<String, RepositoryError> {
    required(row.text(column)?, column)
}

/// A required integer column.
pub(super) fn int(row: &impl Columns, column: &str) -> Result<i64, RepositoryError> {
    required(row.int(column)?, column)
}

/// A required timestamp column.
pub(super) fn time(row: &impl Columns, column: &str) -> Result<OffsetDateTime, RepositoryError> {
    required(row.time(column)?, column)
}

/// A required boolean column.
pub(super) fn flag(row: &impl Columns, column: &str) -> Result<bool, RepositoryError> {
    required(row.flag(column)?, column)
}

/// A required text column parsed into a model type.
pub(super) fn parse<T>(row: &impl Columns, column: &str) -> Result<T, RepositoryError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    parse_text(&text(row, column)?, column)
}

/// An optional text column parsed into a model type.
pub(super) fn parse_optional<T>(
    row: &impl Columns,
    column: &str,
) -> Result<Option<T>, RepositoryError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    row.text(column)?
        .map(|text| parse_text(&text, column))
        .transpose()
}

fn parse_text<T>(text: &str, column: &str) -> Result<T, RepositoryError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| RepositoryError::Corrupt(format!("column {column}: {e}")))
}

/// A size column: never negative.
fn size(row: &impl Columns, column: &str) -> Result<u64, RepositoryError> {
    let value = int(row, column)?;
    u64::try_from(value)
        .map_err(|_| RepositoryError::Corrupt(format!("column {column}: negative size {value}")))
}

/// A deployment from a row holding every column of `deployments`.
pub(super) fn deployment(row: &impl Columns) -> Result<Deployment, RepositoryError> {
    let error = match (row.text("error_code")?, row.text("error_message")?) {
        (Some(code), Some(message)) => Some(DeploymentError { code, message }),
        _ => None,
    };
    Ok(Deployment {
        id: parse(row, "id")?,
        project: parse_optional(row, "project")?,
        target: parse(row, "target")?,
        status: parse(row, "status")?,
        source_key: text(row, "source_key")?,
        attempt: int(row, "attempt")?,
        lease_owner: row.text("lease_owner")?,
        lease_expires_at: row.time("lease_expires_at")?,
        error,
        file_count: int(row, "file_count")?,
        total_bytes: int(row, "total_bytes")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        ready_at: row.time("ready_at")?,
        deleted_at: row.time("deleted_at")?,
        routing: routing_from_json(row.text("routing")?)?,
        settings: settings_from_json(&text(row, "build_settings")?)?,
        env: env_from_json(&text(row, "build_env")?)?,
        created_by: row.text("created_by")?,
    })
}

/// A project from a row holding every column of `projects`.
pub(super) fn project(row: &impl Columns) -> Result<Project, RepositoryError> {
    let production = match (
        parse_optional::<DeploymentId>(row, "production_deployment")?,
        row.time("production_since")?,
    ) {
        (Some(deployment_id), Some(since)) => Some(Production {
            deployment_id,
            since,
            pinned: flag(row, "production_pinned")?,
        }),
        _ => None,
    };
    Ok(Project {
        name: parse(row, "name")?,
        build_settings: settings_from_json(&text(row, "build_settings")?)?,
        retention: from_json(&text(row, "retention")?, "retention")?,
        production,
        protection: crate::model::Protection {
            mode: parse(row, "protection_mode")?,
            password_hash: row.text("protection_password")?,
            bypass_hash: row.text("protection_bypass")?,
        },
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// A domain from a row holding every column of `domains`.
pub(super) fn domain(row: &impl Columns) -> Result<crate::model::Domain, RepositoryError> {
    let redirect_status = row
        .int("redirect_status")?
        .map(|code| {
            u16::try_from(code)
                .ok()
                .and_then(|code| crate::domains::RedirectStatus::try_from(code).ok())
                .ok_or_else(|| RepositoryError::Corrupt(format!("column redirect_status: {code}")))
        })
        .transpose()?;
    let attempts = int(row, "check_attempts")?;
    Ok(crate::model::Domain {
        name: parse(row, "name")?,
        project: parse(row, "project")?,
        redirect: parse_optional(row, "redirect")?,
        redirect_status,
        token: crate::domains::VerificationToken::parse(&text(row, "token")?)
            .map_err(|e| RepositoryError::Corrupt(format!("column token: {e}")))?,
        verified_at: row.time("verified_at")?,
        check_attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_check_at: row.time("next_check_at")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// A unique violation on a domain insert: the name is taken, by this project or another
/// (which one is not said: project names are not everyone's to read).
pub(super) fn domain_taken(
    error: RepositoryError,
    name: &crate::domains::DomainName,
) -> RepositoryError {
    match error {
        RepositoryError::Conflict(_) => {
            RepositoryError::Conflict(format!("the domain {name} is already in use"))
        }
        other => other,
    }
}

/// One history row (`from_deployment, to_deployment, at, reason, actor`).
pub(super) fn production_change(row: &impl Columns) -> Result<ProductionChange, RepositoryError> {
    Ok(ProductionChange {
        from: parse_optional(row, "from_deployment")?,
        to: parse(row, "to_deployment")?,
        at: time(row, "at")?,
        reason: parse(row, "reason")?,
        by: row.text("actor")?,
    })
}

/// A project listing's cursor is the last name of the page before.
pub(super) fn decode_name_cursor(cursor: &str) -> Result<ProjectName, RepositoryError> {
    cursor
        .parse()
        .map_err(|_| RepositoryError::Conflict("invalid cursor".into()))
}

/// A unique violation on insert means the name is taken: say which.
pub(super) fn name_taken(error: RepositoryError, name: &ProjectName) -> RepositoryError {
    match error {
        RepositoryError::Conflict(_) => {
            RepositoryError::Conflict(format!("a project named {name} already exists"))
        }
        other => other,
    }
}

/// A log line from a row of `build_logs` (`attempt, at, stream, message`).
pub(super) fn log_line(row: &impl Columns) -> Result<LogLine, RepositoryError> {
    Ok(LogLine {
        attempt: int(row, "attempt")?,
        at: time(row, "at")?,
        stream: parse(row, "stream")?,
        message: text(row, "message")?,
    })
}

/// A log line with its sequence number (the row's `id`).
pub(super) fn stored_log_line(row: &impl Columns) -> Result<StoredLogLine, RepositoryError> {
    Ok(StoredLogLine {
        seq: int(row, "id")?,
        line: log_line(row)?,
    })
}

/// Files from rows of a file joined with its variants (`path, sha256, size, content_type,
/// encoding, encoded_sha256, encoded_size`), ordered by path: adjacent rows of one path are
/// one file, a row with a NULL `encoding` a file without variants.
pub(super) fn files<R: Columns>(rows: &[R]) -> Result<Vec<FileEntry>, RepositoryError> {
    let mut files: Vec<FileEntry> = Vec::new();
    for row in rows {
        let path = text(row, "path")?;
        let same = files.last().is_some_and(|last| last.path == path);
        if !same {
            files.push(FileEntry {
                path,
                sha256: parse(row, "sha256")?,
                size: size(row, "size")?,
                content_type: text(row, "content_type")?,
                encodings: Vec::new(),
            });
        }
        if row.text("encoding")?.is_some()
            && let Some(file) = files.last_mut()
        {
            file.encodings
                .push(variant(row, "encoded_sha256", "encoded_size")?);
        }
    }
    Ok(files)
}

/// A source file from a `source_files` row (`path, sha256, size, mode`).
pub(super) fn source_file(
    row: &impl Columns,
) -> Result<crate::model::ManifestEntry, RepositoryError> {
    let mode = int(row, "mode")?;
    Ok(crate::model::ManifestEntry {
        path: text(row, "path")?,
        digest: parse(row, "sha256")?,
        size: size(row, "size")?,
        mode: u32::try_from(mode).map_err(|_| {
            RepositoryError::Corrupt(format!("source file mode {mode} out of range"))
        })?,
    })
}

/// The variant in `row`'s `encoding` column and the given hash and size columns.
pub(super) fn variant(
    row: &impl Columns,
    sha256: &str,
    size_column: &str,
) -> Result<EncodedVariant, RepositoryError> {
    Ok(EncodedVariant {
        encoding: parse(row, "encoding")?,
        sha256: parse(row, sha256)?,
        size: size(row, size_column)?,
    })
}

/// One page of a listing fetched with `LIMIT limit + 1`: the extra row only says there is a
/// next page, whose cursor `cursor_of` makes from the last item kept.
pub(super) fn page<T>(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

/// A listing cursor: the sort key of the last item, `<timestamp in the engine's units>.<key>`.
pub(super) fn encode_cursor(at: i128, key: &str) -> String {
    format!("{at}.{key}")
}

/// The timestamp and key of a cursor; `Conflict` for anything a listing never handed out.
pub(super) fn decode_cursor<K: FromStr>(cursor: &str) -> Result<(i64, K), RepositoryError> {
    let invalid = || RepositoryError::Conflict("invalid cursor".into());
    let (at, key) = cursor.split_once('.').ok_or_else(invalid)?;
    Ok((
        at.parse().map_err(|_| invalid())?,
        key.parse().map_err(|_| invalid())?,
    ))
}

/// Map a sqlx error. `engine` names the engine in logs; `by_code` recognises the engine's own
/// codes for corruption and a full disk (anything it leaves is worth retrying).
pub(super) fn map_error(
    error: sqlx::Error,
    engine: &str,
    by_code: impl FnOnce(&dyn sqlx::error::DatabaseError) -> Option<RepositoryError>,
) -> RepositoryError {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Database(e) => match e.kind() {
            ErrorKind::UniqueViolation => {
                tracing::debug!(error = %e, engine, "unique violation");
                RepositoryError::Conflict("it already exists".into())
            }
            // Rows that point at a deployment (logs, files, builds) need it to exist.
            ErrorKind::ForeignKeyViolation => RepositoryError::NotFound,
            // Lost connections, a server shutting down, a deadlock, a busy file, a statement
            // timeout: worth retrying, unless the engine's code says otherwise.
            _ => by_code(e.as_ref()).unwrap_or_else(|| RepositoryError::Unavailable(e.to_string())),
        },
        e @ (sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => RepositoryError::Corrupt(e.to_string()),
        e => RepositoryError::Unavailable(e.to_string()),
    }
}

/// A size for an integer column.
pub(super) fn size_to_db(size: u64) -> Result<i64, RepositoryError> {
    i64::try_from(size).map_err(|_| RepositoryError::Conflict(format!("size {size} is too large")))
}

/// The `routing` column's text: the compiled configuration as JSON, or NULL.
pub(super) fn routing_to_json(
    routing: Option<&crate::routing::RoutingConfig>,
) -> Result<Option<String>, RepositoryError> {
    routing
        .map(|config| to_json(config, "the routing configuration"))
        .transpose()
}

/// The routing configuration back from the `routing` column.
fn routing_from_json(
    text: Option<String>,
) -> Result<Option<std::sync::Arc<crate::routing::RoutingConfig>>, RepositoryError> {
    text.map(|text| from_json(&text, "routing")).transpose()
}

/// The `build_settings` column's text.
pub(super) fn settings_to_json(settings: &BuildSettings) -> Result<String, RepositoryError> {
    to_json(settings, "the build settings")
}

/// The build settings back from a `build_settings` column.
pub(super) fn settings_from_json(text: &str) -> Result<BuildSettings, RepositoryError> {
    from_json(text, "build_settings")
}

/// The `build_env` column's text: every variable, values included.
pub(super) fn env_to_json(env: &[EnvVar]) -> Result<String, RepositoryError> {
    to_json(env, "the environment variables")
}

pub(super) fn env_from_json(text: &str) -> Result<Vec<EnvVar>, RepositoryError> {
    from_json(text, "build_env")
}

/// A value as the JSON text of a column or a parameter.
pub(super) fn to_json<T: serde::Serialize + ?Sized>(
    value: &T,
    what: &str,
) -> Result<String, RepositoryError> {
    serde_json::to_string(value)
        .map_err(|e| RepositoryError::Unavailable(format!("could not encode {what}: {e}")))
}

/// A value back from the JSON text of `column`.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    column: &str,
) -> Result<T, RepositoryError> {
    serde_json::from_str(text)
        .map_err(|e| RepositoryError::Corrupt(format!("column {column}: {e}")))
}

/// What an idempotency key's row says (columns `fingerprint, status, headers, body`): still
/// reserved (no fingerprint yet), or completed with the kept answer.
pub(super) fn idempotency_state(row: &impl Columns) -> Result<super::Reservation, RepositoryError> {
    let Some(fingerprint) = row.text("fingerprint")? else {
        return Ok(super::Reservation::InProgress);
    };
    Ok(super::Reservation::Completed {
        fingerprint: fingerprint
            .parse()
            .map_err(|e| RepositoryError::Corrupt(format!("column fingerprint: {e}")))?,
        answer: super::StoredAnswer {
            status: u16::try_from(int(row, "status")?)
                .map_err(|e| RepositoryError::Corrupt(format!("column status: {e}")))?,
            headers: serde_json::from_str(&text(row, "headers")?)
                .map_err(|e| RepositoryError::Corrupt(format!("column headers: {e}")))?,
            body: required(row.bytes("body")?, "body")?,
        },
    })
}

/// A project variable from a row of `env_vars` (`id, project, key, value, targets, type,
/// created_at, updated_at`).
pub(super) fn env_var(row: &impl Columns) -> Result<SealedEnvVar, RepositoryError> {
    Ok(SealedEnvVar {
        id: parse(row, "id")?,
        project: parse(row, "project")?,
        key: text(row, "key")?,
        sealed_value: text(row, "value")?,
        targets: from_json(&text(row, "targets")?, "targets")?,
        kind: parse(row, "type")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
    })
}

/// The `targets` column's text.
pub(super) fn targets_to_json(targets: &[EnvTarget]) -> Result<String, RepositoryError> {
    to_json(targets, "the variable's targets")
}

/// `Conflict` when `targets` shares a target with one of `others` (the `targets` columns of
/// the project's other variables with the same `key`).
pub(super) fn check_targets_free(
    key: &str,
    targets: &[EnvTarget],
    others: &[impl Columns],
) -> Result<(), RepositoryError> {
    for other in others {
        let taken: Vec<EnvTarget> = from_json(&text(other, "targets")?, "targets")?;
        if let Some(target) = targets.iter().find(|t| taken.contains(t)) {
            return Err(RepositoryError::Conflict(format!(
                "{key} already has a variable for target {target}"
            )));
        }
    }
    Ok(())
}

/// One value of `env_vars` moved to the current key: `Some(new)` to write, `None` when it is
/// already current. A failure is logged (never the value) and counted.
pub(super) fn reseal_env_value(
    keyring: &Keyring,
    id: &str,
    sealed: &str,
    counts: &mut ResealCounts,
) -> Option<String> {
    match keyring.reseal(sealed) {
        Ok(None) => {
            counts.current += 1;
            None
        }
        Ok(Some(resealed)) => Some(resealed),
        Err(err) => {
            tracing::error!(env_var = id, error = %err, "cannot re-encrypt a variable");
            counts.failed += 1;
            None
        }
    }
}

/// A `build_env` column moved to the current key: `Some(new text)` when a value changed.
/// A value that is not sealed at all was written before sealing existed: it is sealed now.
/// Counts each value (resealed ones are counted by the caller once the row is written, as
/// `pending`).
pub(super) fn reseal_build_env(
    keyring: &Keyring,
    deployment: &str,
    text: &str,
    counts: &mut ResealCounts,
    pending: &mut u64,
) -> Result<Option<String>, RepositoryError> {
    let mut env = env_from_json(text)?;
    let mut changed = 0;
    for var in &mut env {
        let moved = if Keyring::is_sealed(&var.value) {
            keyring.reseal(&var.value)
        } else {
            keyring.seal(&var.value).map(Some)
        };
        match moved {
            Ok(None) => counts.current += 1,
            Ok(Some(resealed)) => {
                var.value = resealed;
                changed += 1;
            }
            Err(err) => {
                tracing::error!(
                    deployment,
                    variable = %var.name,
                    error = %err,
                    "cannot re-encrypt an upload-time variable"
                );
                counts.failed += 1;
            }
        }
    }
    *pending = changed;
    if changed == 0 {
        return Ok(None);
    }
    env_to_json(&env).map(Some)
}

/// Count `values` resealed when the compare-and-set of `reseal_all` wrote its row; a row
/// changed meanwhile was written under the current key by its writer, so its values count
/// as current.
pub(super) fn count_written(counts: &mut ResealCounts, written: u64, values: u64) {
    if written > 0 {
        counts.resealed += values;
    } else {
        counts.current += values;
    }
}

/// A token from a row holding every column of `api_tokens`.
pub(super) fn token(row: &impl Columns) -> Result<crate::model::ApiToken, RepositoryError> {
    Ok(crate::model::ApiToken {
        id: parse(row, "id")?,
        name: text(row, "name")?,
        scopes: from_json(&text(row, "scopes")?, "scopes")?,
        projects: row
            .text("projects")?
            .map(|text| from_json(&text, "projects"))
            .transpose()?,
        hash: parse(row, "hash")?,
        created_at: time(row, "created_at")?,
        expires_at: row.time("expires_at")?,
        last_used_at: row.time("last_used_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let id = DeploymentId::random();
        assert_eq!(
            decode_cursor::<DeploymentId>(&encode_cursor(1_700_000_000_123, &id.to_string())).ok(),
            Some((1_700_000_000_123, id))
        );
        for bad in [
            "",
            ".",
            "12",
            "x.y",
            &format!("12.{id}x"),
            &format!("a.{id}"),
        ] {
            assert!(
                matches!(
                    decode_cursor::<DeploymentId>(bad),
                    Err(RepositoryError::Conflict(_))
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn a_page_keeps_limit_items_and_a_cursor_only_when_more_follow() {
        let page_of = |n: u32| page((0..n).collect::<Vec<u32>>(), 3, |last| last.to_string());
        assert_eq!(page_of(4).items, vec![0, 1, 2]);
        assert_eq!(page_of(4).next_cursor.as_deref(), Some("2"));
        assert_eq!(page_of(3).next_cursor, None);
        assert_eq!(page_of(0).items, Vec::<u32>::new());
    }
}
