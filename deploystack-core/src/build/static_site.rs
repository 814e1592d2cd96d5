//! The static strategy: the upload already is the site, so publish it as it is.

use async_trait::async_trait;

use super::{BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree};

/// Publishes the source tree unchanged. It matches every tree, so the registry asks it last.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticStrategy;

#[async_trait]
impl BuildStrategy for StaticStrategy {
    fn name(&self) -> &str {
        "static"
    }

    async fn detect(&self, _source: &SourceTree) -> Result<Option<Detection>, BuildError> {
        Ok(Some(Detection {
            strategy: self.name().to_owned(),
            reason: "publishing the uploaded files as they are".to_owned(),
        }))
    }

    async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
        if ctx.cancel.is_cancelled() {
            return Err(BuildError::Canceled);
        }
        Ok(BuildOutput {
            dir: ctx.source.root().to_path_buf(),
        })
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_build_strategy_conformance_suite() {
        let fixture = tempfile::tempdir().unwrap();
        std::fs::write(fixture.path().join("index.html"), "<h1>hi</h1>").unwrap();
        std::fs::create_dir(fixture.path().join("css")).unwrap();
        std::fs::write(fixture.path().join("css/a.css"), "a{}").unwrap();
        crate::testing::build::run_all(&StaticStrategy, fixture.path()).await;
    }
}
