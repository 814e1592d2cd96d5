//! Projects: a name that stays while its deployments come and go, the build settings its
//! deployments inherit, and which deployment is its production.
//!
//! # Why production is a pointer with a history
//! Moving production is changing one field; the files never move. That makes a promote or a
//! rollback instant and atomic, and the history of assignments is what a rollback goes back
//! along and what an operator reads after an incident. `pinned` is Vercel's rule: after a
//! rollback, new production deployments build and become READY but do not take production
//! until someone promotes again, so a rollback cannot be undone by the next push by accident.
//!
//! The document leaves room for what comes later (environment variables, custom domains):
//! they will be fields of their own, never folded into `build_settings`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{BuildSettings, DeploymentId, ProjectName, Protection};

/// A project as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Project {
    /// Its unique, DNS-safe name: also its host, `<name>.<base-domain>`.
    pub name: ProjectName,
    /// Overrides of detection every deployment of the project inherits (upload fields win).
    pub build_settings: BuildSettings,
    /// How long preview deployments are kept.
    pub retention: Retention,
    /// The deployment its host serves; `None` until one is assigned.
    pub production: Option<Production>,
    /// Which of its addresses ask visitors for a password (`super::protection`). Never
    /// serialized: it holds hashes, and the API shows only the mode and `password_set`.
    #[serde(skip)]
    pub protection: Protection,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its settings or its production last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Which deployment a project serves as production.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Production {
    /// The deployment served at the project's host.
    pub deployment_id: DeploymentId,
    /// When it became production.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Set by a rollback: new production deployments do not take over until a promote.
    pub pinned: bool,
}

/// What to keep of a project's preview deployments. Production, and every deployment that
/// was ever production, is always kept. Both unset: keep everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep at most this many of the newest previews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_previews: Option<u32>,
    /// Delete previews older than this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<u32>,
}

/// The largest `max_age_days` accepted: 100 years, far beyond any real policy, and small
/// enough that the cutoff is always a valid timestamp.
pub const MAX_RETENTION_DAYS: u32 = 36_500;

impl Retention {
    /// Check the values; the error names the field.
    pub fn validate(&self) -> Result<(), InvalidProject> {
        if self.keep_previews == Some(0) {
            return Err(InvalidProject {
                field: "retention.keep_previews",
                message: "must be at least 1 (leave it out to keep every preview)",
            });
        }
        if let Some(days) = self.max_age_days
            && !(1..=MAX_RETENTION_DAYS).contains(&days)
        {
            return Err(InvalidProject {
                field: "retention.max_age_days",
                message: "must be between 1 and 36500 days (leave it out to keep previews forever)",
            });
        }
        Ok(())
    }
}

/// A project setting that is out of range, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidProject {
    /// The field, as the API spells it (`retention.keep_previews`).
    pub field: &'static str,
    /// What is wrong with it.
    pub message: &'static str,
}

/// What creating a project takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProject {
    /// Its name.
    pub name: ProjectName,
    /// Its build settings.
    pub build_settings: BuildSettings,
    /// Its retention policy.
    pub retention: Retention,
}

/// A partial update: `None` keeps what is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectUpdate {
    /// New build settings, replacing the old ones whole.
    pub build_settings: Option<BuildSettings>,
    /// A new retention policy, replacing the old one whole.
    pub retention: Option<Retention>,
    /// New protection, replacing the old one whole (mode and both hashes).
    pub protection: Option<Protection>,
}

/// Why production moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ProductionReason {
    /// A production deployment became READY.
    Deploy,
    /// Someone promoted a deployment; unpins.
    Promote,
    /// Someone rolled back; pins.
    Rollback,
}

impl ProductionReason {
    /// The lowercase name used in storage and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Promote => "promote",
            Self::Rollback => "rollback",
        }
    }

    /// Whether production stays pinned after a move for this reason.
    pub fn pins(self) -> bool {
        self == Self::Rollback
    }
}

impl FromStr for ProductionReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "deploy" => Ok(Self::Deploy),
            "promote" => Ok(Self::Promote),
            "rollback" => Ok(Self::Rollback),
            other => Err(format!("unknown production reason {other:?}")),
        }
    }
}

impl fmt::Display for ProductionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One assignment of production, as the history keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductionChange {
    /// Production before (`None`: the project had none).
    pub from: Option<DeploymentId>,
    /// Production after.
    pub to: DeploymentId,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// Why.
    pub reason: ProductionReason,
    /// Who: the API caller that promoted or rolled back; `None` for a move a deploy made.
    pub by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_checks_name_the_field() {
        assert!(Retention::default().validate().is_ok());
        let ok = Retention {
            keep_previews: Some(5),
            max_age_days: Some(30),
        };
        assert!(ok.validate().is_ok());
        let zero = Retention {
            keep_previews: Some(0),
            ..Retention::default()
        };
        assert_eq!(
            zero.validate().map_err(|e| e.field),
            Err("retention.keep_previews")
        );
        let long = Retention {
            max_age_days: Some(MAX_RETENTION_DAYS + 1),
            ..Retention::default()
        };
        assert_eq!(
            long.validate().map_err(|e| e.field),
            Err("retention.max_age_days")
        );
    }

    #[test]
    fn reasons_round_trip_and_only_rollback_pins() {
        for reason in [
            ProductionReason::Deploy,
            ProductionReason::Promote,
            ProductionReason::Rollback,
        ] {
            assert_eq!(reason.as_str().parse(), Ok(reason));
            assert_eq!(reason.pins(), reason == ProductionReason::Rollback);
        }
    }
}
