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

    /// These settings over `base`, field by field: what `self` sets wins, what it leaves out
    /// comes from `base`. An upload's fields over its project's settings.
    pub fn over(&self, base: &BuildSettings) -> BuildSettings {
        let pick = |mine: &Option<String>, theirs: &Option<String>| mine.clone().or(theirs.clone());
        BuildSettings {
            framework: pick(&self.framework, &base.framework),
            root_directory: pick(&self.root_directory, &base.root_directory),
            install_command: pick(&self.install_command, &base.install_command),
            build_command: pick(&self.build_command, &base.build_command),
            output_directory: pick(&self.output_directory, &base.output_directory),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_fields_win_over_project_settings_field_by_field() {
        let project = BuildSettings {
            build_command: Some("npm run build:project".into()),
            output_directory: Some("public".into()),
            ..BuildSettings::default()
        };
        let upload = BuildSettings {
            build_command: Some("npm run build:upload".into()),
            ..BuildSettings::default()
        };
        let merged = upload.over(&project);
        assert_eq!(
            merged.build_command.as_deref(),
            Some("npm run build:upload")
        );
        assert_eq!(merged.output_directory.as_deref(), Some("public"));
        assert_eq!(
            merged.framework, None,
            "unset in both: left to vercel.json and detection"
        );
    }
}
