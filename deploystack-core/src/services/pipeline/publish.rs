//! Publishing: store the blobs storage lacks, then publish the manifest and flip the
//! deployment to `READY` in one transaction fenced by the attempt, ack and emit.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::failure::{Failure, stop_if};
use super::output::OutputFile;
use super::{Outcome, Pipeline, UPLOAD_CONCURRENCY};
use crate::build::BuildLog;
use crate::events::{Event, emit_best_effort};
use crate::model::{BlobRef, FileEntry, LogLine, LogStream};
use crate::queue::Delivery;
use crate::repository::PublishedBuild;
use crate::routing::RoutingConfig;
use crate::services::compression::LocalVariant;

/// What a successful build hands to `publish`.
#[derive(Debug)]
pub(super) struct Built {
    pub(super) strategy: String,
    /// How long the strategy's build took, in milliseconds.
    pub(super) build_ms: u64,
    pub(super) files: Vec<FileEntry>,
    pub(super) routing: Option<RoutingConfig>,
    pub(super) new_blobs: u64,
}

impl Pipeline {
    /// Store the blobs of `files` and of the variants just `made` that storage lacks, and
    /// log how many were new. `files_stored`: the files' blobs are known to be stored (a
    /// site published from its manifest, whose source keeps them from the collector), so
    /// only the variants are checked.
    pub(super) async fn store_output(
        &self,
        files: &[OutputFile],
        files_stored: bool,
        made: Vec<LocalVariant>,
        log: &BuildLog,
        cancel: &CancellationToken,
    ) -> Result<u64, Failure> {
        let phase = Instant::now();
        let files = if files_stored { &[][..] } else { files };
        let blobs: Vec<(BlobRef, PathBuf)> = files
            .iter()
            .map(|f| {
                let blob = BlobRef {
                    sha256: f.entry.sha256,
                    size: f.entry.size,
                };
                (blob, f.local.clone())
            })
            .chain(made.into_iter().map(|v| {
                let blob = BlobRef {
                    sha256: v.variant.sha256,
                    size: v.variant.size,
                };
                (blob, v.local)
            }))
            .collect();
        let new_blobs = self.store_blobs(&blobs, cancel).await?;
        log.system(format!(
            "stored {new_blobs} new blobs in {} ms (the rest were already stored)",
            phase.elapsed().as_millis()
        ));
        Ok(new_blobs)
    }

    /// Store every blob the output needs that storage lacks; returns how many were written.
    async fn store_blobs(
        &self,
        blobs: &[(BlobRef, PathBuf)],
        cancel: &CancellationToken,
    ) -> Result<u64, Failure> {
        let mut unique: Vec<&(BlobRef, PathBuf)> = Vec::with_capacity(blobs.len());
        let mut seen = std::collections::HashSet::new();
        for blob in blobs {
            if seen.insert(blob.0.sha256) {
                unique.push(blob);
            }
        }
        let refs: Vec<BlobRef> = unique.iter().map(|(blob, _)| *blob).collect();
        // Touch first: from now on the collector spares these blobs for its grace period,
        // so one that exists now still exists when the manifest is published.
        self.services.repository.touch_blobs(&refs).await?;
        // Owned values only: the futures run concurrently and must not borrow across awaits.
        let uploads: Vec<_> = unique
            .into_iter()
            .map(|(blob, local)| {
                let storage = Arc::clone(&self.services.storage);
                let cancel = cancel.clone();
                let key = blob.sha256.blob_key();
                let local = local.clone();
                async move {
                    stop_if(&cancel)?;
                    if storage.head(&key).await?.is_some() {
                        return Ok::<bool, Failure>(false);
                    }
                    storage.put_file(&key, &local).await?;
                    Ok(true)
                }
            })
            .collect();
        let written: Vec<bool> = futures_util::stream::iter(uploads)
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(written.into_iter().filter(|w| *w).count() as u64)
    }

    pub(super) async fn publish(
        &self,
        delivery: &Delivery,
        attempt: i64,
        built: Built,
        log: &BuildLog,
        started: Instant,
    ) -> Outcome {
        let id = delivery.job.deployment_id;
        let files = built.files.len() as u64;
        let bytes: u64 = built.files.iter().map(|f| f.size).sum();
        let new_blobs = built.new_blobs;
        let build_ms = built.build_ms;
        // Every line so far is stored first; the line saying what was published is stored
        // by the publish itself, in its transaction, so a READY deployment's log is complete
        // and a fenced-out publish leaves no such line.
        self.flush_log(&id, log).await;
        let published = LogLine {
            attempt,
            at: OffsetDateTime::now_utc(),
            stream: LogStream::System,
            message: format!(
                "published {files} files ({bytes} bytes, {new_blobs} new blobs), {} ms after the claim",
                started.elapsed().as_millis()
            ),
        };
        let build = PublishedBuild {
            strategy: built.strategy,
            files: built.files,
            routing: built.routing,
            log: vec![published],
        };
        match self.services.repository.publish(&id, attempt, &build).await {
            Ok(deployment) => {
                // The log of a published deployment is stored before the ack, so a crash
                // between the two loses no line of it.
                self.flush_log(&id, log).await;
                self.ack(delivery).await;
                self.remove_source(&deployment).await;
                let events = self.services.events.as_ref();
                emit_best_effort(
                    events,
                    Event::BuildCompleted {
                        deployment_id: id,
                        attempt,
                        preset: build.strategy.clone(),
                        duration_ms: started.elapsed().as_millis() as u64,
                        build_ms,
                        files,
                        bytes,
                        new_blobs,
                    },
                )
                .await;
                emit_best_effort(events, Event::DeploymentReady { deployment_id: id }).await;
                // Announce a production move the publish made.
                crate::services::projects::published(&self.services, &id).await;
                Outcome::Ready
            }
            Err(err) => {
                let preset = Some(build.strategy);
                self.handle_failure(delivery, attempt, err.into(), log, started, preset)
                    .await
            }
        }
    }
}
