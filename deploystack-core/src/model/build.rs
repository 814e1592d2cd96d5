//! What a deployment asks of its build: overrides of detection and its environment.
//!
//! Both travel with the deployment from the upload to the worker. Every field is optional:
//! an empty [`BuildSettings`] means "detect everything", as Vercel and Netlify do.

use serde::{Deserialize, Serialize};

/// Overrides of what framework detection would choose. `None` means "detect".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BuildSettings {
    /// A preset name (`vite`, `nextjs`, …, or `static`) instead of detection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// The folder inside the upload that holds the project (a monorepo's `apps/web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_directory: Option<String>,
    /// The command that installs dependencies (default: from the lockfile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_command: Option<String>,
    /// The command that builds the site (default: package.json's `build`, then the preset's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_command: Option<String>,
    /// The folder the build writes the site to (default: the preset's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_directory: Option<String>,
}

impl BuildSettings {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// One environment variable given to the build. Builds see only these, never the platform's
/// own environment.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// Its name (`[A-Za-z_][A-Za-z0-9_]*`).
    pub name: String,
    /// Its value.
    pub value: String,
    /// A sensitive value is write-only: it is masked in build logs and never shown by the API.
    #[serde(default)]
    pub sensitive: bool,
}

impl std::fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.sensitive {
            "<redacted>"
        } else {
            &self.value
        };
        f.debug_struct("EnvVar")
            .field("name", &self.name)
            .field("value", &value)
            .field("sensitive", &self.sensitive)
            .finish()
    }
}
