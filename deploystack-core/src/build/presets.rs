//! Framework presets as data: which files and packages identify a framework, and how it is
//! built by default.
//!
//! Why a table and not one type per framework: detection rules, default commands and output
//! folders are facts about other people's tools. Keeping them in one table makes them easy to
//! review against the frameworks' documentation, easy to document (`docs/builds.md` mirrors
//! this table) and cheap to extend; the code that runs a preset ([`PresetStrategy`]) is the
//! same for all of them.
//!
//! # Detection (Vercel's algorithm)
//! Every preset is evaluated against the source tree. A preset matches when all of its
//! `every` detectors match and, if it has `some` detectors, at least one of them does. Matches
//! named in another match's `supersedes` are dropped (SvelteKit projects also depend on Vite),
//! and the first remaining match in [`PRESETS`] order wins. `static` has no detectors and comes
//! last, so every tree has a preset.
//!
//! [`PresetStrategy`]: super::PresetStrategy

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

/// One way of recognising a framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detector {
    /// `package.json` lists the package in `dependencies` or `devDependencies`.
    Package(&'static str),
    /// A regular file exists at this path (relative to the project root).
    File(&'static str),
    /// A regular file exists at this path and contains the text.
    FileContains(&'static str, &'static str),
}

/// A framework: how to recognise it and how to build it by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Short lowercase name used in logs, events and `settings.framework` (`vite`).
    pub name: &'static str,
    /// Name for people (`Vite`).
    pub display: &'static str,
    /// Detectors that must all match.
    pub every: &'static [Detector],
    /// Detectors of which at least one must match (ignored when empty).
    pub some: &'static [Detector],
    /// Presets this one wins over when both match.
    pub supersedes: &'static [&'static str],
    /// package.json scripts tried, in order, before the default command (`build` for most).
    pub scripts: &'static [&'static str],
    /// The default build command; `None` publishes without building.
    pub build_command: Option<&'static str>,
    /// The default output folder, relative to the project root.
    pub output_directory: &'static str,
    /// Whether the build needs `node_modules` (an install step runs first).
    pub node: bool,
    /// A program that must be on the build's `PATH` (Hugo, Jekyll, MkDocs).
    pub tool: Option<&'static str>,
}

const BUILD: &[&str] = &["build"];

const fn node(
    name: &'static str,
    display: &'static str,
    some: &'static [Detector],
    supersedes: &'static [&'static str],
    build_command: &'static str,
    output_directory: &'static str,
) -> Preset {
    Preset {
        name,
        display,
        every: &[],
        some,
        supersedes,
        scripts: BUILD,
        build_command: Some(build_command),
        output_directory,
        node: true,
        tool: None,
    }
}

const fn tool(
    name: &'static str,
    display: &'static str,
    some: &'static [Detector],
    tool: &'static str,
    build_command: &'static str,
    output_directory: &'static str,
) -> Preset {
    Preset {
        name,
        display,
        every: &[],
        some,
        supersedes: &[],
        scripts: &[],
        build_command: Some(build_command),
        output_directory,
        node: false,
        tool: Some(tool),
    }
}

/// The static preset: no framework. Publishes the upload as it is (or runs package.json's
/// `build` script when there is one), from `public/` when that folder exists and the root has
/// no `index.html`, else from the root.
pub const STATIC: Preset = Preset {
    name: "static",
    display: "Static files",
    every: &[],
    some: &[],
    supersedes: &[],
    scripts: BUILD,
    build_command: None,
    output_directory: ".",
    node: true,
    tool: None,
};

use Detector::{File, FileContains, Package};

/// Every preset in detection order; the first remaining match wins, `static` is last.
pub const PRESETS: &[Preset] = &[
    node(
        "nextjs",
        "Next.js (static export)",
        &[Package("next")],
        &[],
        "next build",
        "out",
    ),
    node(
        "gatsby",
        "Gatsby",
        &[Package("gatsby")],
        &[],
        "gatsby build",
        "public",
    ),
    node(
        "astro",
        "Astro",
        &[Package("astro")],
        &["vite"],
        "astro build",
        "dist",
    ),
    node(
        "eleventy",
        "Eleventy",
        &[Package("@11ty/eleventy")],
        &[],
        "npx @11ty/eleventy",
        "_site",
    ),
    node(
        "docusaurus",
        "Docusaurus",
        &[Package("@docusaurus/core")],
        &[],
        "docusaurus build",
        "build",
    ),
    node(
        "vue-cli",
        "Vue CLI",
        &[Package("@vue/cli-service")],
        &[],
        "vue-cli-service build",
        "dist",
    ),
    node(
        "sveltekit",
        "SvelteKit (static adapter)",
        &[Package("@sveltejs/kit")],
        &["vite"],
        "vite build",
        "build",
    ),
    node(
        "create-react-app",
        "Create React App",
        &[Package("react-scripts"), Package("react-dev-utils")],
        &[],
        "react-scripts build",
        "build",
    ),
    Preset {
        // `nuxt build` makes a server; the static site comes from `nuxt generate`.
        scripts: &["generate"],
        ..node(
            "nuxt",
            "Nuxt (generate)",
            &[
                Package("nuxt"),
                Package("nuxt3"),
                Package("nuxt-edge"),
                Package("nuxt-nightly"),
            ],
            &["vite", "vue-cli"],
            "nuxt generate",
            ".output/public",
        )
    },
    node(
        "vitepress",
        "VitePress",
        &[Package("vitepress")],
        &["vite"],
        "vitepress build docs",
        "docs/.vitepress/dist",
    ),
    node(
        "vite",
        "Vite",
        &[Package("vite")],
        &[],
        "vite build",
        "dist",
    ),
    tool(
        "hugo",
        "Hugo",
        &[
            File("hugo.toml"),
            File("hugo.yaml"),
            File("hugo.json"),
            FileContains("config.toml", "baseURL"),
            FileContains("config.yaml", "baseURL"),
            FileContains("config.json", "baseURL"),
        ],
        "hugo",
        "hugo --gc",
        "public",
    ),
    tool(
        "jekyll",
        "Jekyll",
        &[File("_config.yml"), File("_config.yaml")],
        "jekyll",
        "jekyll build",
        "_site",
    ),
    tool(
        "mkdocs",
        "MkDocs",
        &[File("mkdocs.yml"), File("mkdocs.yaml")],
        "mkdocs",
        "mkdocs build",
        "site",
    ),
    STATIC,
];

/// The preset called `name`.
pub fn by_name(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The names of every preset, in detection order.
pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// What detection and the build read from a `package.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageJson {
    /// `scripts`.
    pub scripts: BTreeMap<String, String>,
    /// The names in `dependencies` and `devDependencies`.
    pub packages: BTreeSet<String>,
}

impl PackageJson {
    /// Parse the text of a package.json.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            scripts: BTreeMap<String, serde_json::Value>,
            #[serde(default)]
            dependencies: BTreeMap<String, serde_json::Value>,
            #[serde(default, rename = "devDependencies")]
            dev_dependencies: BTreeMap<String, serde_json::Value>,
        }
        let raw: Raw = serde_json::from_str(text)?;
        Ok(Self {
            scripts: raw
                .scripts
                .into_iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                .collect(),
            packages: raw
                .dependencies
                .into_keys()
                .chain(raw.dev_dependencies.into_keys())
                .collect(),
        })
    }

    /// Read `<root>/package.json`: `Ok(None)` when there is none (or it is not a regular file).
    pub fn read(root: &Path) -> Result<Option<Self>, String> {
        let path = root.join("package.json");
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        Self::parse(&text).map(Some).map_err(|e| e.to_string())
    }
}

/// The outcome of detection: the winning preset and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The winner.
    pub preset: &'static Preset,
    /// Why it matched, for the build log (`package.json depends on vite`).
    pub reason: String,
}

fn is_file(root: &Path, relative: &str) -> bool {
    std::fs::symlink_metadata(root.join(relative)).is_ok_and(|m| m.is_file())
}

/// Largest file a content detector reads; config files are small.
const MAX_DETECTOR_READ: u64 = 256 * 1024;

fn read_small(root: &Path, relative: &str) -> Option<String> {
    use std::io::Read;
    if !is_file(root, relative) {
        return None;
    }
    let file = std::fs::File::open(root.join(relative)).ok()?;
    let mut text = String::new();
    file.take(MAX_DETECTOR_READ)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

fn matches(detector: &Detector, root: &Path, package: Option<&PackageJson>) -> Option<String> {
    match *detector {
        Detector::Package(name) => package
            .is_some_and(|p| p.packages.contains(name))
            .then(|| format!("package.json depends on {name}")),
        Detector::File(path) => is_file(root, path).then(|| format!("found {path}")),
        Detector::FileContains(path, text) => read_small(root, path)
            .is_some_and(|content| content.contains(text))
            .then(|| format!("{path} mentions {text}")),
    }
}

fn evaluate(preset: &Preset, root: &Path, package: Option<&PackageJson>) -> Option<String> {
    let mut reasons = Vec::new();
    for detector in preset.every {
        reasons.push(matches(detector, root, package)?);
    }
    if !preset.some.is_empty() {
        reasons.push(preset.some.iter().find_map(|d| matches(d, root, package))?);
    }
    Some(reasons.join(", "))
}

/// Detect the preset of the project at `root` (see the module docs for the rules).
pub fn detect(root: &Path) -> Detected {
    let package = PackageJson::read(root).ok().flatten();
    let found: Vec<(&'static Preset, String)> = PRESETS
        .iter()
        .filter(|p| p.name != STATIC.name)
        .filter_map(|p| evaluate(p, root, package.as_ref()).map(|reason| (p, reason)))
        .collect();
    let superseded: BTreeSet<&str> = found
        .iter()
        .flat_map(|(p, _)| p.supersedes.iter().copied())
        .collect();
    if let Some((preset, reason)) = found
        .into_iter()
        .find(|(p, _)| !superseded.contains(p.name))
    {
        return Detected { preset, reason };
    }
    let reason = match &package {
        None => "no package.json and no framework config file",
        Some(p) if p.scripts.contains_key("build") => {
            "no framework recognised; running package.json's build script"
        }
        Some(_) => "no framework recognised and no build script",
    };
    Detected {
        preset: &PRESETS[PRESETS.len() - 1],
        reason: reason.to_owned(),
    }
}

/// Whether a Next.js config enables static export (`output: 'export'`, with either quote).
pub fn next_config_exports(text: &str) -> bool {
    let mut rest = text;
    while let Some(at) = rest.find("output") {
        rest = &rest[at + "output".len()..];
        let after = rest.trim_start_matches(['"', '\'']).trim_start();
        let Some(after) = after.strip_prefix(':') else {
            continue;
        };
        let after = after.trim_start();
        for quote in ['\'', '"', '`'] {
            if after
                .strip_prefix(quote)
                .and_then(|a| a.strip_prefix("export"))
                .is_some_and(|a| a.starts_with(quote))
            {
                return true;
            }
        }
    }
    false
}

/// The Next.js config files, in the order Next reads them.
pub const NEXT_CONFIG_FILES: &[&str] = &[
    "next.config.js",
    "next.config.mjs",
    "next.config.ts",
    "next.config.cjs",
    "next.config.mts",
];

/// Whether the Next.js project at `root` is configured for static export.
pub fn next_project_exports(root: &Path) -> bool {
    NEXT_CONFIG_FILES
        .iter()
        .filter_map(|f| read_small(root, f))
        .any(|text| next_config_exports(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn names_are_unique_and_static_is_last() {
        let names = names();
        let unique: BTreeSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        assert_eq!(names.last(), Some(&"static"));
        for preset in PRESETS {
            for s in preset.supersedes {
                assert!(
                    by_name(s).is_some(),
                    "{} supersedes unknown {s}",
                    preset.name
                );
            }
        }
    }

    #[test]
    fn superseded_matches_are_dropped() {
        let dir = tree(&[(
            "package.json",
            r#"{"devDependencies":{"vite":"5","@sveltejs/kit":"2"}}"#,
        )]);
        let found = detect(dir.path());
        assert_eq!(found.preset.name, "sveltekit");
        assert_eq!(found.reason, "package.json depends on @sveltejs/kit");
    }

    #[test]
    fn without_a_framework_the_static_preset_explains_why() {
        let dir = tree(&[("index.html", "hi")]);
        let found = detect(dir.path());
        assert_eq!(found.preset.name, "static");
        assert!(found.reason.contains("no package.json"), "{}", found.reason);

        let dir = tree(&[("package.json", r#"{"scripts":{"build":"node b.js"}}"#)]);
        assert!(detect(dir.path()).reason.contains("build script"));
    }

    #[test]
    fn hugo_needs_base_url_in_a_generic_config() {
        let dir = tree(&[("config.toml", "title = 'x'")]);
        assert_eq!(detect(dir.path()).preset.name, "static");
        let dir = tree(&[("config.toml", "baseURL = 'https://x/'")]);
        assert_eq!(detect(dir.path()).preset.name, "hugo");
    }

    #[test]
    fn next_static_export_is_recognised_in_every_spelling() {
        for text in [
            "module.exports = { output: 'export' }",
            "export default {output:\"export\", images: {}}",
            "const c = { reactStrictMode: true,\n  output : `export` };",
            "{ \"output\": \"export\" }",
        ] {
            assert!(next_config_exports(text), "{text}");
        }
        for text in [
            "module.exports = {}",
            "module.exports = { output: 'standalone' }",
            "// output: exports\nmodule.exports = { outputFileTracing: 'export' }",
        ] {
            assert!(!next_config_exports(text), "{text}");
        }
    }

    #[test]
    fn a_broken_package_json_detects_nothing_from_it() {
        let dir = tree(&[("package.json", "{ not json")]);
        assert_eq!(detect(dir.path()).preset.name, "static");
        assert!(PackageJson::read(dir.path()).is_err());
    }
}
