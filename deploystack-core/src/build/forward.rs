//! `Arc<B>` and `Box<B>` are build strategies when `B` is: every call goes to the one
//! inside.
//!
//! # Why?
//! The registry and [`Services::with_strategy`](crate::Services::with_strategy) hold
//! `Arc<dyn BuildStrategy>`; a decorator generic over its inner strategy (timing, logging,
//! a fallback) can then wrap one as it is.

use std::sync::Arc;

use async_trait::async_trait;

use super::{BuildContext, BuildError, BuildOutput, BuildStrategy, Detection, SourceTree};

/// `impl BuildStrategy for $wrapper<B>`, each method calling `B`'s.
macro_rules! forward_strategy {
    ($wrapper:ident) => {
        #[async_trait]
        impl<B: BuildStrategy + ?Sized> BuildStrategy for $wrapper<B> {
            fn name(&self) -> &str {
                (**self).name()
            }

            async fn detect(&self, source: &SourceTree) -> Result<Option<Detection>, BuildError> {
                (**self).detect(source).await
            }

            async fn build(&self, ctx: &BuildContext) -> Result<BuildOutput, BuildError> {
                (**self).build(ctx).await
            }
        }
    };
}

forward_strategy!(Arc);
forward_strategy!(Box);

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::build::StaticStrategy;

    #[tokio::test]
    async fn a_strategy_behind_arc_or_box_passes_the_build_suite() {
        let fixture = tempfile::tempdir().unwrap();
        std::fs::write(fixture.path().join("index.html"), "<h1>hi</h1>").unwrap();
        let shared: Arc<dyn BuildStrategy> = Arc::new(StaticStrategy);
        crate::testing::build::run_all(&shared, fixture.path()).await;
        assert_eq!(shared.name(), StaticStrategy.name());
        let boxed: Box<dyn BuildStrategy> = Box::new(StaticStrategy);
        crate::testing::build::run_all(&boxed, fixture.path()).await;
    }
}
