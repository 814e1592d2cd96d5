//! The factory that picks a build strategy for a source tree.

use std::sync::Arc;

use super::{
    BuildConfig, BuildError, BuildStrategy, Detection, PresetStrategy, SourceTree, StaticStrategy,
};
use crate::model::BuildSettings;

/// Strategies in the order they are asked; the first that detects the tree builds it.
/// The static strategy always comes last, so every tree has a strategy.
///
/// The default registry holds one [`PresetStrategy`] per preset in the documented order
/// (see [`presets::PRESETS`](super::presets::PRESETS)); each detects its tree only when its
/// preset wins Vercel's algorithm over all presets, so asking them in order is the same as
/// running that algorithm once.
#[derive(Clone)]
pub struct StrategyRegistry {
    strategies: Vec<Arc<dyn BuildStrategy>>,
}

impl std::fmt::Debug for StrategyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.strategies.iter().map(|s| s.name().to_owned()))
            .finish()
    }
}

impl Default for StrategyRegistry {
    /// Every preset, run with the default [`BuildConfig`] (sandbox `auto`, no cache).
    fn default() -> Self {
        Self::with_config(&BuildConfig::default())
    }
}

/// What [`StrategyRegistry::select`] chose.
#[derive(Clone)]
pub struct Selection {
    /// The strategy that builds the project.
    pub strategy: Arc<dyn BuildStrategy>,
    /// Why (or "framework set in the deployment's settings").
    pub detection: Detection,
    /// The project folder: the upload, or its `root_directory`.
    pub source: SourceTree,
}

impl std::fmt::Debug for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection")
            .field("strategy", &self.strategy.name())
            .field("detection", &self.detection)
            .field("source", &self.source)
            .finish()
    }
}

impl StrategyRegistry {
    /// A registry with only the static strategy, which publishes uploads as they are
    /// (or runs package.json's build script when there is one).
    pub fn new() -> Self {
        Self {
            strategies: vec![Arc::new(StaticStrategy)],
        }
    }

    /// Every preset in detection order, `static` last, running builds as `config` says.
    pub fn with_config(config: &BuildConfig) -> Self {
        Self {
            strategies: PresetStrategy::all(config)
                .into_iter()
                .map(|s| Arc::new(s) as Arc<dyn BuildStrategy>)
                .collect(),
        }
    }

    /// Ask `strategy` before every strategy registered so far (user strategies win over the
    /// built-in ones, and the static fallback stays last).
    pub fn register(&mut self, strategy: Arc<dyn BuildStrategy>) -> &mut Self {
        self.strategies.insert(0, strategy);
        self
    }

    /// Names of the strategies in the order they are asked.
    pub fn names(&self) -> Vec<String> {
        self.strategies
            .iter()
            .map(|s| s.name().to_owned())
            .collect()
    }

    /// The strategy that builds `source` with `settings`: the project folder is
    /// `settings.root_directory` inside the upload (`invalid_root_directory`,
    /// `root_directory_missing`); `settings.framework` names the strategy
    /// (`unknown_framework` lists the valid names); otherwise the first strategy that detects
    /// the project folder.
    pub async fn select(
        &self,
        source: &SourceTree,
        settings: &BuildSettings,
    ) -> Result<Selection, BuildError> {
        let source = source.within(settings.root_directory.as_deref())?;
        if let Some(name) = settings.framework.as_deref().filter(|n| !n.is_empty()) {
            let Some(strategy) = self.strategies.iter().find(|s| s.name() == name) else {
                return Err(BuildError::Failed {
                    code: "unknown_framework".into(),
                    message: format!(
                        "unknown framework {name:?}; valid names: {}",
                        self.names().join(", ")
                    ),
                });
            };
            return Ok(Selection {
                strategy: Arc::clone(strategy),
                detection: Detection {
                    strategy: name.to_owned(),
                    reason: "framework set in the deployment's settings".to_owned(),
                },
                source,
            });
        }
        for strategy in &self.strategies {
            if let Some(detection) = strategy.detect(&source).await? {
                return Ok(Selection {
                    strategy: Arc::clone(strategy),
                    detection,
                    source,
                });
            }
        }
        Err(BuildError::Failed {
            code: "no_strategy".into(),
            message: "no build strategy recognised this project".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{BuildContext, BuildOutput};
    use async_trait::async_trait;

    struct MarkdownOnly;

    #[async_trait]
    impl BuildStrategy for MarkdownOnly {
        fn name(&self) -> &str {
            "markdown"
        }
        async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
            Ok(source.has_file("README.md").then(|| Detection {
                strategy: "markdown".into(),
                reason: "README.md found".into(),
            }))
        }
        async fn build(&self, _ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
            Err(BuildError::Unavailable("not in this test".into()))
        }
    }

    #[tokio::test]
    async fn registered_strategies_come_before_the_static_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = StrategyRegistry::new();
        registry.register(Arc::new(MarkdownOnly));
        assert_eq!(registry.names(), ["markdown", "static"]);

        let tree = SourceTree::new(dir.path());
        let settings = BuildSettings::default();
        let chosen = registry.select(&tree, &settings).await.unwrap();
        assert_eq!(chosen.strategy.name(), "static");

        std::fs::write(dir.path().join("README.md"), "# hi").unwrap();
        let chosen = registry.select(&tree, &settings).await.unwrap();
        assert_eq!(chosen.strategy.name(), "markdown");
        assert_eq!(chosen.detection.reason, "README.md found");
    }

    #[tokio::test]
    async fn the_default_registry_asks_presets_in_order_then_static_and_user_strategies_first() {
        let mut registry = StrategyRegistry::default();
        let names = registry.names();
        assert_eq!(names, crate::build::presets::names());
        registry.register(Arc::new(MarkdownOnly));
        assert_eq!(registry.names()[0], "markdown");
        assert_eq!(registry.names().last().map(String::as_str), Some("static"));
    }

    #[tokio::test]
    async fn a_framework_setting_picks_by_name_and_unknown_names_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        let registry = StrategyRegistry::default();
        let tree = SourceTree::new(dir.path());
        let settings = BuildSettings {
            framework: Some("vite".into()),
            ..BuildSettings::default()
        };
        let chosen = registry.select(&tree, &settings).await.unwrap();
        assert_eq!(chosen.strategy.name(), "vite");
        assert_eq!(
            chosen.detection.reason,
            "framework set in the deployment's settings"
        );

        let settings = BuildSettings {
            framework: Some("rails".into()),
            ..BuildSettings::default()
        };
        match registry.select(&tree, &settings).await {
            Err(BuildError::Failed { code, message }) => {
                assert_eq!(code, "unknown_framework");
                assert!(
                    message.contains("vite") && message.contains("nextjs"),
                    "{message}"
                );
            }
            other => panic!("expected unknown_framework, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_root_directory_must_be_a_plain_relative_folder_of_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("apps/web")).unwrap();
        std::fs::write(
            dir.path().join("apps/web/package.json"),
            r#"{"devDependencies":{"vite":"5"}}"#,
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("apps/link")).unwrap();
        let registry = StrategyRegistry::default();
        let tree = SourceTree::new(dir.path());
        let settings = |root: &str| BuildSettings {
            root_directory: Some(root.into()),
            ..BuildSettings::default()
        };
        let chosen = registry.select(&tree, &settings("apps/web")).await.unwrap();
        assert_eq!(chosen.strategy.name(), "vite");
        assert_eq!(chosen.source.root(), dir.path().join("apps/web"));
        for (root, code) in [
            ("/apps/web", "invalid_root_directory"),
            ("apps/../..", "invalid_root_directory"),
            ("apps/missing", "root_directory_missing"),
            ("apps/link", "root_directory_missing"),
            ("apps/web/package.json", "root_directory_missing"),
        ] {
            match registry.select(&tree, &settings(root)).await {
                Err(BuildError::Failed { code: got, .. }) => assert_eq!(got, code, "{root}"),
                other => panic!("{root}: expected {code}, got {other:?}"),
            }
        }
    }
}
