//! The static strategy: the upload already is the site, so publish it as it is.
//!
//! It is the `static` preset run with the default settings (sandbox `auto`, no dependency
//! cache): it publishes the upload as it is, from `public/` when that folder exists and the
//! root has no `index.html`; a package.json `build` script (or a build command setting) is
//! run first.

use async_trait::async_trait;

use super::presets::STATIC;
use super::{
    BuildConfig, BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, PresetStrategy,
    SourceTree,
};

/// The `static` preset. It matches every tree, so the registry asks it last.
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
        PresetStrategy::new(&STATIC, &BuildConfig::default())
            .build(ctx)
            .await
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
