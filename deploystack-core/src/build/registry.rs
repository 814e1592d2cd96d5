//! The factory that picks a build strategy for a source tree.

use std::sync::Arc;

use super::{BuildError, BuildStrategy, Detection, SourceTree, StaticStrategy};

/// Strategies in the order they are asked; the first that detects the tree builds it.
/// The static strategy always comes last, so every tree has a strategy.
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
    fn default() -> Self {
        Self {
            strategies: vec![Arc::new(StaticStrategy)],
        }
    }
}

impl StrategyRegistry {
    /// A registry with only the static strategy.
    pub fn new() -> Self {
        Self::default()
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

    /// The first strategy that detects `source`, with its reason.
    pub async fn select(
        &self,
        source: &SourceTree,
    ) -> Result<(Arc<dyn BuildStrategy>, Detection), BuildError> {
        for strategy in &self.strategies {
            if let Some(detection) = strategy.detect(source).await? {
                return Ok((Arc::clone(strategy), detection));
            }
        }
        Err(BuildError::Failed {
            code: "no_strategy",
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
        let (strategy, _) = registry.select(&tree).await.unwrap();
        assert_eq!(strategy.name(), "static");

        std::fs::write(dir.path().join("README.md"), "# hi").unwrap();
        let (strategy, detection) = registry.select(&tree).await.unwrap();
        assert_eq!(strategy.name(), "markdown");
        assert_eq!(detection.reason, "README.md found");
    }
}
