//! The domain model: plain data that every port speaks.
//!
//! Nothing here does I/O. Types are small, `Clone`, serde-serializable and validated at
//! construction, so an adapter never has to re-check what a value means.

mod build;
mod change;
mod deployment;
mod domain;
mod env;
mod file;
mod ids;
#[cfg(feature = "openapi")]
mod openapi;
mod project;
mod protection;
mod token;

pub use build::{BuildSettings, EnvVar};
pub use change::{Change, ChangeAction, ChangeKind};
pub use deployment::{
    Deployment, DeploymentError, DeploymentStatus, LogLine, LogStream, NewDeployment, Page,
    PageRequest, StoredLogLine, Target, is_manifest_source, manifest_source_key,
};
pub use domain::{Domain, NewDomain};
pub use env::{
    EnvTarget, EnvVarId, EnvVarType, EnvVarUpdate, NewEnvVar, ResealCounts, ResealReport,
    SealedEnvVar,
};
pub use file::{BlobRef, ContentHash, EncodedVariant, Encoding, FileEntry, ManifestEntry};
pub use ids::{DeploymentId, InvalidId, ProjectName};
pub use project::{
    InvalidProject, MAX_RETENTION_DAYS, NewProject, Production, ProductionChange, ProductionReason,
    Project, ProjectUpdate, Retention,
};
pub use protection::{Protection, ProtectionMode, ProtectionRequest};
pub use token::{
    ApiToken, MAX_TOKEN_NAME, NewToken, Scope, TOKEN_PREFIX, TokenHash, TokenId, TokenSecret,
};
