//! One change a desired-state apply (`PUT /api/v1/projects/{name}`) made, so the caller can
//! see what moved — and see nothing when the same document is applied twice.
//!
//! Each part of a project (its settings, its variables, its domains) reports its own changes
//! as it is brought in line with the document; the list is the concatenation, in the order
//! applied.

use serde::Serialize;

/// What happened to the thing named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// It did not exist and was created.
    Created,
    /// It existed and differed; it was changed.
    Updated,
    /// It existed and the document no longer lists it; it was removed.
    Deleted,
}

/// What kind of thing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// The project itself (created by the document).
    Project,
    /// Its build settings.
    BuildSettings,
    /// Its retention policy.
    Retention,
    /// An environment variable; `name` is `KEY` and its targets, e.g. `API_URL (production)`.
    Env,
    /// A custom domain; `name` is the domain.
    Domain,
    /// Its protection (mode or password); `name` is the project's name.
    Protection,
}

/// One change made by a desired-state apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    /// What happened.
    pub action: ChangeAction,
    /// To what kind of thing.
    pub kind: ChangeKind,
    /// Which one: the project's name, a variable's key, a domain's name.
    pub name: String,
}

impl Change {
    /// A change of `kind` named `name`.
    pub fn new(action: ChangeAction, kind: ChangeKind, name: impl Into<String>) -> Self {
        Self {
            action,
            kind,
            name: name.into(),
        }
    }
}
