//! BuildStrategy conformance: what every strategy must do, whatever it builds.
//!
//! Call [`run_all`] with the strategy and a source folder it should detect (the suite copies
//! nothing; it only checks that detection leaves the folder untouched).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::build::{BuildContext, BuildError, BuildLog, BuildStrategy, SourceTree};

/// Every check, in order.
pub async fn run_all(strategy: &dyn BuildStrategy, fixture: &Path) {
    name_is_a_short_lowercase_word(strategy);
    detects_its_fixture_without_changing_it(strategy, fixture).await;
    builds_into_a_folder_it_was_given(strategy, fixture).await;
    stops_when_canceled_before_starting(strategy, fixture).await;
}

/// Names show up in logs, events and configuration: `[a-z0-9-]+`.
pub fn name_is_a_short_lowercase_word(strategy: &dyn BuildStrategy) {
    let name = strategy.name();
    assert!(
        !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')),
        "strategy name {name:?} is not a short lowercase word"
    );
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).expect("read fixture folder");
        for entry in entries {
            let path = entry.expect("fixture entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read fixture file");
                files.insert(path, bytes);
            }
        }
    }
    files
}

/// `detect` recognises the fixture, names itself, gives a reason, and writes nothing.
pub async fn detects_its_fixture_without_changing_it(strategy: &dyn BuildStrategy, fixture: &Path) {
    let before = snapshot(fixture);
    let detection = strategy
        .detect(&SourceTree::new(fixture))
        .await
        .expect("detect failed")
        .expect("the strategy did not detect its own fixture");
    assert_eq!(
        detection.strategy,
        strategy.name(),
        "detection names another strategy"
    );
    assert!(!detection.reason.is_empty(), "detection gives no reason");
    assert_eq!(snapshot(fixture), before, "detect changed the source tree");
}

fn context(fixture: &Path, work: &Path, cancel: CancellationToken) -> BuildContext {
    BuildContext {
        source: SourceTree::new(fixture),
        work_dir: work.to_path_buf(),
        log: BuildLog::new(1),
        cancel,
        settings: Default::default(),
        env: Vec::new(),
        project: None,
    }
}

/// The output folder exists and lies inside the source tree or the work folder: a strategy
/// never publishes from elsewhere on the machine.
pub async fn builds_into_a_folder_it_was_given(strategy: &dyn BuildStrategy, fixture: &Path) {
    let work = tempfile::tempdir().expect("work dir");
    let ctx = context(fixture, work.path(), CancellationToken::new());
    let output = tokio::time::timeout(Duration::from_secs(300), strategy.build(&ctx))
        .await
        .expect("the build did not finish within 300 s")
        .expect("the build of the fixture failed");
    let dir = std::fs::canonicalize(&output.dir).expect("output folder exists");
    assert!(dir.is_dir(), "output {} is not a folder", dir.display());
    let source = std::fs::canonicalize(fixture).expect("fixture path");
    let work_dir = std::fs::canonicalize(work.path()).expect("work path");
    assert!(
        dir.starts_with(&source) || dir.starts_with(&work_dir),
        "output {} is outside the source and work folders",
        dir.display()
    );
}

/// A build whose cancellation already fired stops with `Canceled`, promptly.
pub async fn stops_when_canceled_before_starting(strategy: &dyn BuildStrategy, fixture: &Path) {
    let work = tempfile::tempdir().expect("work dir");
    let cancel = CancellationToken::new();
    cancel.cancel();
    let ctx = context(fixture, work.path(), cancel);
    let result = tokio::time::timeout(Duration::from_secs(30), strategy.build(&ctx))
        .await
        .expect("a canceled build kept running for 30 s");
    assert!(
        matches!(result, Err(BuildError::Canceled)),
        "a canceled build returned {result:?}"
    );
}
