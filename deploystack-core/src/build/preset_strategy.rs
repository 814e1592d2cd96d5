//! `PresetStrategy`: builds a project the way its framework preset says, honouring the
//! deployment's settings and the project's `vercel.json`.
//!
//! Why one strategy for every preset: the steps are always the same (pick the install and
//! build commands by precedence, restore the dependency cache, install with the network,
//! build without it, check the output folder, save the cache); only the data of the preset
//! differs. See `docs/builds.md` for the rules in prose.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::cache::{self, CachedDirs, DependencyCache};
use super::presets::{self, PackageJson, Preset, STATIC};
use super::sandbox::{Sandbox, Step, Workspace, find_program};
use super::{
    BuildConfig, BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree,
    is_plain_relative, sensitive_values,
};
use crate::model::BuildSettings;

/// A JavaScript package manager, chosen by the project's lockfile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    /// npm (`package-lock.json`, and the default without a lockfile).
    Npm,
    /// pnpm (`pnpm-lock.yaml`).
    Pnpm,
    /// Yarn (`yarn.lock`).
    Yarn,
    /// Bun (`bun.lockb`, `bun.lock`).
    Bun,
}

/// Lockfiles in the order they are looked for, with their package manager.
const LOCKFILES: &[(&str, PackageManager)] = &[
    ("package-lock.json", PackageManager::Npm),
    ("pnpm-lock.yaml", PackageManager::Pnpm),
    ("yarn.lock", PackageManager::Yarn),
    ("bun.lockb", PackageManager::Bun),
    ("bun.lock", PackageManager::Bun),
];

impl PackageManager {
    /// The program's name (`npm`).
    pub fn program(self) -> &'static str {
        match self {
            Self::Npm => "npm",
            Self::Pnpm => "pnpm",
            Self::Yarn => "yarn",
            Self::Bun => "bun",
        }
    }

    /// The package manager of the project at `root` and its lockfile (npm without one).
    pub fn detect(root: &Path) -> (Self, Option<&'static str>) {
        LOCKFILES
            .iter()
            .find(|(file, _)| std::fs::symlink_metadata(root.join(file)).is_ok_and(|m| m.is_file()))
            .map_or((Self::Npm, None), |(file, pm)| (*pm, Some(*file)))
    }

    /// The command that installs exactly what the lockfile says (`npm ci`), or `npm install`
    /// without a lockfile.
    pub fn install_command(self, locked: bool) -> String {
        match (self, locked) {
            (Self::Npm, true) => "npm ci".to_owned(),
            (Self::Npm, false) => "npm install".to_owned(),
            (pm, _) => format!("{} install --frozen-lockfile", pm.program()),
        }
    }

    /// The command that runs a package.json script (`npm run build`).
    pub fn run_script(self, script: &str) -> String {
        format!("{} run {script}", self.program())
    }
}

/// The build settings of a `vercel.json` (the rest of that file is routing).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VercelBuild {
    build_command: Option<String>,
    output_directory: Option<String>,
    install_command: Option<String>,
}

fn read_vercel_json(root: &Path) -> Result<VercelBuild, BuildError> {
    let path = root.join("vercel.json");
    if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return Ok(VercelBuild::default());
    }
    let text = std::fs::read_to_string(&path)?;
    serde_json::from_str(&text).map_err(|e| BuildError::Failed {
        code: "invalid_vercel_json".into(),
        message: format!("vercel.json is not valid JSON: {e}"),
    })
}

/// What a build will run, decided before running anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// The preset being built.
    pub preset: &'static Preset,
    /// The package manager (from the lockfile), when the project has a package.json.
    pub package_manager: Option<PackageManager>,
    /// The lockfile found, if any.
    pub lockfile: Option<&'static str>,
    /// The install command; `None` skips the install step.
    pub install: Option<String>,
    /// Whether the install command was derived from the lockfile (not set by the user).
    pub install_is_default: bool,
    /// The build command; `None` publishes without building.
    pub build: Option<String>,
    /// The output folder relative to the project; `None`: the static rule (`public/` if it
    /// exists and the root has no `index.html`, else the root), decided after the build.
    pub output_directory: Option<String>,
}

/// An explicit setting: `Some("")` means "explicitly nothing".
fn explicit(value: Option<&String>) -> Option<Option<String>> {
    value.map(|v| Some(v.trim().to_owned()).filter(|v| !v.is_empty()))
}

impl BuildPlan {
    /// Decide the commands and output folder of `preset` for the project at `root`.
    ///
    /// Build command: `settings.build_command`, else vercel.json `buildCommand`, else the
    /// first of the preset's package.json scripts that exists (run by the package manager),
    /// else the preset's default. Output: `settings.output_directory`, else vercel.json
    /// `outputDirectory`, else the preset's. Install: `settings.install_command`, else
    /// vercel.json `installCommand`, else from the lockfile when a Node build will run.
    pub fn new(
        preset: &'static Preset,
        root: &Path,
        settings: &BuildSettings,
    ) -> Result<Self, BuildError> {
        let package = PackageJson::read(root).map_err(|e| BuildError::Failed {
            code: "invalid_package_json".into(),
            message: format!("package.json is not valid: {e}"),
        })?;
        let vercel = read_vercel_json(root)?;
        let (pm, lockfile) = PackageManager::detect(root);
        let package_manager = package.as_ref().map(|_| pm);

        let build = explicit(settings.build_command.as_ref())
            .or_else(|| explicit(vercel.build_command.as_ref()))
            .unwrap_or_else(|| {
                package
                    .as_ref()
                    .and_then(|p| preset.scripts.iter().find(|s| p.scripts.contains_key(**s)))
                    .map(|script| pm.run_script(script))
                    .or_else(|| preset.build_command.map(str::to_owned))
            });
        let (install, install_is_default) = match explicit(settings.install_command.as_ref())
            .or_else(|| explicit(vercel.install_command.as_ref()))
        {
            Some(install) => (install, false),
            None if package.is_some() && preset.node && build.is_some() => {
                (Some(pm.install_command(lockfile.is_some())), true)
            }
            None => (None, false),
        };
        let output_directory = settings
            .output_directory
            .clone()
            .or(vercel.output_directory)
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .map(|o| if o.is_empty() { ".".to_owned() } else { o })
            .or_else(|| (preset.name != STATIC.name).then(|| preset.output_directory.to_owned()));
        if let Some(out) = &output_directory
            && !is_plain_relative(out)
        {
            return Err(BuildError::Failed {
                code: "invalid_output_directory".into(),
                message: format!(
                    "the output directory {out:?} must be a relative path inside the project, without `..`"
                ),
            });
        }
        Ok(Self {
            preset,
            package_manager,
            lockfile,
            install,
            install_is_default,
            build,
            output_directory,
        })
    }

    /// The output folder relative to `root` (applies the static rule when none is set).
    pub fn output_dir(&self, root: &Path) -> String {
        self.output_directory.clone().unwrap_or_else(|| {
            let public = std::fs::symlink_metadata(root.join("public")).is_ok_and(|m| m.is_dir());
            let index = root.join("index.html").exists();
            if public && !index { "public" } else { "." }.to_owned()
        })
    }
}

/// What every preset strategy shares: the sandbox (probed once) and the dependency cache.
#[derive(Debug)]
struct Runner {
    sandbox: Sandbox,
    cache: Option<DependencyCache>,
}

/// Builds projects of one [`Preset`]; named after it.
#[derive(Debug, Clone)]
pub struct PresetStrategy {
    preset: &'static Preset,
    runner: Arc<Runner>,
}

impl PresetStrategy {
    /// The strategy of `preset`, running builds as `config` says.
    pub fn new(preset: &'static Preset, config: &BuildConfig) -> Self {
        Self {
            preset,
            runner: Arc::new(Runner {
                sandbox: Sandbox::new(config.sandbox),
                cache: config.cache_dir.clone().map(DependencyCache::new),
            }),
        }
    }

    /// One strategy per preset, in detection order (`static` last), sharing one sandbox and
    /// one cache.
    pub fn all(config: &BuildConfig) -> Vec<Self> {
        let first = Self::new(&presets::PRESETS[0], config);
        presets::PRESETS
            .iter()
            .map(|preset| Self {
                preset,
                runner: Arc::clone(&first.runner),
            })
            .collect()
    }

    /// Its preset.
    pub fn preset(&self) -> &'static Preset {
        self.preset
    }
}

fn failed(code: &'static str, message: impl Into<String>) -> BuildError {
    BuildError::failed(code, message)
}

#[async_trait]
impl BuildStrategy for PresetStrategy {
    fn name(&self) -> &str {
        self.preset.name
    }

    async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
        let root = source.root().to_path_buf();
        let found = tokio::task::spawn_blocking(move || presets::detect(&root))
            .await
            .map_err(|e| BuildError::Unavailable(e.to_string()))?;
        if found.preset.name == self.preset.name {
            Ok(Some(Detection {
                strategy: self.preset.name.to_owned(),
                reason: found.reason,
            }))
        } else if self.preset.name == STATIC.name {
            Ok(Some(Detection {
                strategy: STATIC.name.to_owned(),
                reason: "publishing the uploaded files as they are".to_owned(),
            }))
        } else {
            Ok(None)
        }
    }

    async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
        if ctx.cancel.is_cancelled() {
            return Err(BuildError::Canceled);
        }
        let log = &ctx.log;
        log.mask(sensitive_values(&ctx.env));
        let preset = self.preset;
        let root = ctx.source.root().to_path_buf();
        let plan = BuildPlan::new(preset, &root, &ctx.settings)?;

        if preset.name == "nextjs"
            && ctx.settings.output_directory.is_none()
            && !presets::next_project_exports(&root)
        {
            return Err(failed(
                "nextjs_not_static",
                "this Next.js project is not configured for static export; add `output: 'export'` \
                 to the object exported by next.config.js (or .mjs/.ts) so `next build` writes the site to `out/`",
            ));
        }
        if let Some(tool) = preset.tool
            && ctx.settings.build_command.is_none()
            && find_program(tool).is_none()
        {
            return Err(failed(
                "missing_tool",
                format!(
                    "this looks like a {} site, but `{tool}` is not installed on this build worker; \
                     install {tool} there or choose another framework",
                    preset.display
                ),
            ));
        }
        if plan.install_is_default
            && let Some(pm) = plan.package_manager
            && find_program(pm.program()).is_none()
        {
            return Err(failed(
                "missing_tool",
                format!(
                    "the project uses {} ({}), but `{}` is not installed on this build worker; \
                     install it there or set an install command",
                    pm.program(),
                    plan.lockfile.unwrap_or("package.json"),
                    pm.program()
                ),
            ));
        }
        log.system(format!(
            "install: {}",
            plan.install
                .as_deref()
                .unwrap_or("skipped (nothing to install)")
        ));
        log.system(format!(
            "build: {}",
            plan.build
                .as_deref()
                .unwrap_or("skipped (no build command)")
        ));

        if plan.install.is_some() || plan.build.is_some() {
            self.run_commands(ctx, &plan, &root).await?;
        }

        let output = plan.output_dir(&root);
        let dir = root.join(&output);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            return Err(failed(
                "output_missing",
                format!(
                    "the build finished but its output folder `{output}` does not exist (the {} preset \
                     publishes `{output}`); set the output directory if your build writes elsewhere",
                    preset.name
                ),
            ));
        }
        log.system(format!("output: {output}"));
        Ok(BuildOutput { dir })
    }
}

impl PresetStrategy {
    /// Restore the cache, install (with the network), build (without), save the cache.
    async fn run_commands(
        &self,
        ctx: &BuildContext,
        plan: &BuildPlan,
        root: &Path,
    ) -> Result<(), BuildError> {
        let log = &ctx.log;
        log.system(self.runner.sandbox.describe().await?);
        let ws = Workspace::new(root, &ctx.work_dir)?;
        let env: Vec<(String, String)> = ctx
            .env
            .iter()
            .map(|v| (v.name.clone(), v.value.clone()))
            .collect();
        let dirs = CachedDirs {
            node_modules: root.join("node_modules"),
            package_cache: ws.cache.clone(),
        };
        let cache = match (&self.runner.cache, &ctx.project, &plan.install) {
            (Some(cache), Some(project), Some(install)) => {
                let lock = plan.lockfile.unwrap_or("package.json");
                let bytes = std::fs::read(root.join(lock)).unwrap_or_default();
                let pm = plan.package_manager.map_or("none", PackageManager::program);
                Some((
                    cache.clone(),
                    project.clone(),
                    cache::key(&bytes, pm, install),
                ))
            }
            _ => None,
        };
        let mut hit = false;
        if let Some((cache, project, key)) = &cache {
            let (c, p, k, d) = (cache.clone(), project.clone(), key.clone(), dirs.clone());
            hit = tokio::task::spawn_blocking(move || c.restore(&p, &k, &d))
                .await
                .map_err(|e| BuildError::Unavailable(e.to_string()))?
                .unwrap_or(false);
            if hit {
                log.system(format!("build cache: restored {}", cache::short(key)));
            } else {
                log.system("build cache: miss");
            }
        }

        // On a hit node_modules is exactly what this install produced last time (same
        // lockfile, package manager and command, same path inside the sandbox), and `npm ci`
        // would delete it first: skipping the step is the fast path.
        if hit {
            log.system("install: skipped, node_modules restored from the build cache");
        } else if let Some(install) = &plan.install {
            let step = Step {
                label: "install",
                command: install.clone(),
                network: true,
                env: env.clone(),
                failure_code: "install_failed",
            };
            self.runner
                .sandbox
                .run(&ws, &step, log, &ctx.cancel)
                .await?;
        }
        if let Some(build) = &plan.build {
            let step = Step {
                label: "build",
                command: build.clone(),
                network: false,
                env,
                failure_code: "build_failed",
            };
            self.runner
                .sandbox
                .run(&ws, &step, log, &ctx.cancel)
                .await?;
        }

        if let Some((cache, project, key)) = cache {
            let short = cache::short(&key).to_owned();
            let saved = tokio::task::spawn_blocking(move || cache.save(&project, &key, &dirs))
                .await
                .map_err(|e| BuildError::Unavailable(e.to_string()))?;
            match saved {
                Ok(()) => log.system(format!("build cache: saved {short}")),
                Err(err) => log.system(format!("build cache: not saved ({err})")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::BuildLog;
    use crate::model::EnvVar;
    use tokio_util::sync::CancellationToken;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/presets")
            .join(name)
    }

    fn plan(root: &Path, settings: &BuildSettings) -> BuildPlan {
        let preset = presets::detect(root).preset;
        BuildPlan::new(preset, root, settings).unwrap()
    }

    /// A writable copy of a fixture.
    fn copy(name: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(format!("{}/.", fixture(name).display()))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        dir
    }

    /// Fixture, preset, install command, build command, output directory.
    type Row = (
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );

    #[test]
    fn every_fixture_gets_its_preset_install_build_and_output() {
        let table: &[Row] = &[
            (
                "vite-react",
                "vite",
                Some("npm ci"),
                Some("npm run build"),
                "dist",
            ),
            (
                "vite-vue",
                "vite",
                Some("pnpm install --frozen-lockfile"),
                Some("vite build"),
                "dist",
            ),
            (
                "vite-svelte",
                "vite",
                Some("yarn install --frozen-lockfile"),
                Some("yarn run build"),
                "dist",
            ),
            (
                "vite-vanilla",
                "vite",
                Some("bun install --frozen-lockfile"),
                Some("bun run build"),
                "dist",
            ),
            (
                "create-react-app",
                "create-react-app",
                Some("npm install"),
                Some("npm run build"),
                "build",
            ),
            (
                "nextjs",
                "nextjs",
                Some("npm install"),
                Some("npm run build"),
                "out",
            ),
            (
                "nextjs-server",
                "nextjs",
                Some("npm install"),
                Some("npm run build"),
                "out",
            ),
            (
                "vue-cli",
                "vue-cli",
                Some("npm install"),
                Some("npm run build"),
                "dist",
            ),
            (
                "nuxt",
                "nuxt",
                Some("npm install"),
                Some("npm run generate"),
                ".output/public",
            ),
            (
                "astro",
                "astro",
                Some("npm install"),
                Some("npm run build"),
                "dist",
            ),
            (
                "sveltekit",
                "sveltekit",
                Some("npm install"),
                Some("npm run build"),
                "build",
            ),
            (
                "docusaurus",
                "docusaurus",
                Some("npm install"),
                Some("npm run build"),
                "build",
            ),
            (
                "gatsby",
                "gatsby",
                Some("npm install"),
                Some("npm run build"),
                "public",
            ),
            (
                "vitepress",
                "vitepress",
                Some("npm install"),
                Some("vitepress build docs"),
                "docs/.vitepress/dist",
            ),
            (
                "eleventy",
                "eleventy",
                Some("npm install"),
                Some("npm run build"),
                "_site",
            ),
            ("hugo", "hugo", None, Some("hugo --gc"), "public"),
            ("jekyll", "jekyll", None, Some("jekyll build"), "_site"),
            ("mkdocs", "mkdocs", None, Some("mkdocs build"), "site"),
            ("static", "static", None, None, "."),
            ("static-public", "static", None, None, "public"),
            (
                "static-script",
                "static",
                Some("npm install"),
                Some("npm run build"),
                ".",
            ),
        ];
        for (name, preset, install, build, output) in table {
            let root = fixture(name);
            let plan = plan(&root, &BuildSettings::default());
            assert_eq!(plan.preset.name, *preset, "{name}: preset");
            assert_eq!(plan.install.as_deref(), *install, "{name}: install");
            assert_eq!(plan.build.as_deref(), *build, "{name}: build");
            assert_eq!(plan.output_dir(&root), *output, "{name}: output");
        }
        let mut fixtures: Vec<String> = std::fs::read_dir(fixture(""))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        fixtures.sort();
        assert_eq!(fixtures.len(), table.len(), "every fixture is in the table");
        for preset in presets::names() {
            assert!(
                table.iter().any(|row| row.1 == preset),
                "{preset} has no fixture"
            );
        }
    }

    #[test]
    fn settings_win_over_vercel_json_which_wins_over_scripts_and_presets() {
        let dir = copy("vite-react");
        let root = dir.path();
        assert_eq!(
            plan(root, &BuildSettings::default()).build.as_deref(),
            Some("npm run build")
        );

        std::fs::write(
            root.join("vercel.json"),
            r#"{"buildCommand":"make site","outputDirectory":"www","installCommand":"npm i","cleanUrls":true}"#,
        )
        .unwrap();
        let from_vercel = plan(root, &BuildSettings::default());
        assert_eq!(from_vercel.build.as_deref(), Some("make site"));
        assert_eq!(from_vercel.install.as_deref(), Some("npm i"));
        assert_eq!(from_vercel.output_dir(root), "www");

        let settings = BuildSettings {
            build_command: Some("vite build --mode x".into()),
            output_directory: Some("public/".into()),
            install_command: Some(String::new()),
            ..BuildSettings::default()
        };
        let from_settings = plan(root, &settings);
        assert_eq!(from_settings.build.as_deref(), Some("vite build --mode x"));
        assert_eq!(
            from_settings.install, None,
            "an empty install command skips the step"
        );
        assert_eq!(from_settings.output_dir(root), "public");

        // No script: the preset's own command.
        std::fs::remove_file(root.join("vercel.json")).unwrap();
        std::fs::write(
            root.join("package.json"),
            r#"{"devDependencies":{"vite":"5"}}"#,
        )
        .unwrap();
        assert_eq!(
            plan(root, &BuildSettings::default()).build.as_deref(),
            Some("vite build")
        );

        for bad in ["../out", "/etc", "a/../../b"] {
            let settings = BuildSettings {
                output_directory: Some(bad.into()),
                ..BuildSettings::default()
            };
            let preset = presets::by_name("vite").unwrap();
            assert!(
                matches!(
                    BuildPlan::new(preset, root, &settings),
                    Err(BuildError::Failed { code, .. }) if code == "invalid_output_directory"
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn lockfiles_choose_the_package_manager() {
        for (lockfile, pm, install) in [
            ("package-lock.json", PackageManager::Npm, "npm ci"),
            (
                "pnpm-lock.yaml",
                PackageManager::Pnpm,
                "pnpm install --frozen-lockfile",
            ),
            (
                "yarn.lock",
                PackageManager::Yarn,
                "yarn install --frozen-lockfile",
            ),
            (
                "bun.lockb",
                PackageManager::Bun,
                "bun install --frozen-lockfile",
            ),
            (
                "bun.lock",
                PackageManager::Bun,
                "bun install --frozen-lockfile",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(lockfile), "").unwrap();
            let (found, file) = PackageManager::detect(dir.path());
            assert_eq!((found, file), (pm, Some(lockfile)));
            assert_eq!(found.install_command(true), install);
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            PackageManager::detect(dir.path()),
            (PackageManager::Npm, None)
        );
        assert_eq!(PackageManager::Npm.install_command(false), "npm install");
    }

    fn context(root: &Path, work: &Path, settings: BuildSettings) -> BuildContext {
        BuildContext {
            source: SourceTree::new(root),
            work_dir: work.to_path_buf(),
            log: BuildLog::new(1),
            cancel: CancellationToken::new(),
            settings,
            env: Vec::new(),
            project: None,
        }
    }

    async fn build_error(preset: &str, root: &Path, settings: BuildSettings) -> (String, String) {
        let work = tempfile::tempdir().unwrap();
        let strategy =
            PresetStrategy::new(presets::by_name(preset).unwrap(), &BuildConfig::default());
        match strategy.build(&context(root, work.path(), settings)).await {
            Err(BuildError::Failed { code, message }) => (code.into_owned(), message),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_next_project_without_static_export_fails_with_a_hint() {
        let (code, message) = build_error(
            "nextjs",
            &fixture("nextjs-server"),
            BuildSettings::default(),
        )
        .await;
        assert_eq!(code, "nextjs_not_static");
        assert!(message.contains("output: 'export'"), "{message}");
    }

    #[tokio::test]
    async fn missing_tools_are_named() {
        for (preset, tool) in [("hugo", "hugo"), ("jekyll", "jekyll"), ("mkdocs", "mkdocs")] {
            if find_program(tool).is_some() {
                continue;
            }
            let (code, message) =
                build_error(preset, &fixture(preset), BuildSettings::default()).await;
            assert_eq!(code, "missing_tool");
            assert!(message.contains(&format!("`{tool}`")), "{message}");
        }
        if find_program("pnpm").is_none() {
            let (code, message) =
                build_error("vite", &fixture("vite-vue"), BuildSettings::default()).await;
            assert_eq!(code, "missing_tool");
            assert!(
                message.contains("pnpm") && message.contains("pnpm-lock.yaml"),
                "{message}"
            );
        }
    }

    #[tokio::test]
    async fn a_missing_output_folder_names_the_folder_and_the_preset() {
        let dir = copy("vite-vanilla");
        let settings = BuildSettings {
            install_command: Some(String::new()),
            build_command: Some("echo built".into()),
            ..BuildSettings::default()
        };
        let (code, message) = build_error("vite", dir.path(), settings).await;
        assert_eq!(code, "output_missing");
        assert!(
            message.contains("`dist`") && message.contains("vite"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_build_writes_its_steps_to_the_log_with_secrets_masked() {
        let dir = copy("static-public");
        let settings = BuildSettings {
            build_command: Some("echo token=$API_TOKEN; mkdir -p public/x".into()),
            install_command: Some(String::new()),
            ..BuildSettings::default()
        };
        let work = tempfile::tempdir().unwrap();
        let mut ctx = context(dir.path(), work.path(), settings);
        ctx.env = vec![EnvVar {
            name: "API_TOKEN".into(),
            value: "s3cr3t-value".into(),
            sensitive: true,
        }];
        let strategy = PresetStrategy::new(&STATIC, &BuildConfig::default());
        let out = strategy.build(&ctx).await.unwrap();
        assert_eq!(out.dir, dir.path().join("public"));
        let lines: Vec<String> = ctx.log.drain().into_iter().map(|l| l.message).collect();
        for expected in [
            "install: skipped",
            "build: echo token=",
            "sandbox: ",
            "token=***",
            "output: public",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(expected)),
                "{expected} in {lines:#?}"
            );
        }
        assert!(
            lines.iter().all(|l| !l.contains("s3cr3t-value")),
            "{lines:#?}"
        );
    }
}
