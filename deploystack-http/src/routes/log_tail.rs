//! Reading a build log as it is written: the stored lines, then new ones as the worker
//! stores them, then the end once the build has ended. Our own followed log (server-sent
//! events, `crate::routes::deployments`) and the `vercel` CLI's event stream
//! (`crate::routes::vercel::events`) both read it through [`LogTail`] and differ only in how
//! they write a line and the end.
//!
//! # Why it polls
//! It asks the repository for "lines after N" every [`FOLLOW_POLL`] rather than listening to
//! in-process events: the builder may run on another node, and that query is one indexed
//! read.
//!
//! # When it ends
//! The deployment's status is read before its lines, so the lines read after it include
//! every line stored before it. A worker still writes a line or two after the status turns
//! final (the publish summary, or `build canceled` once it noticed a cancel), so a followed
//! log ends only when a final status is [`FINAL_SETTLE`] old and no new line came; an old
//! deployment's log ends at once.

use std::collections::VecDeque;
use std::time::Duration;

use deploystack_core::model::{Deployment, DeploymentId, StoredLogLine};
use deploystack_core::repository::RepositoryError;
use time::OffsetDateTime;

use crate::state::AppState;

/// How often a followed log asks the repository for new lines.
pub const FOLLOW_POLL: Duration = Duration::from_millis(500);
/// How long after its status turned final a followed log still waits for last lines.
pub const FINAL_SETTLE: Duration = Duration::from_secs(3);
/// Most lines read from the repository per poll.
const BATCH: u32 = 1000;

/// What a [`LogTail`] gives next.
#[derive(Debug)]
pub enum Tailed {
    /// A stored line.
    Line(StoredLogLine),
    /// There is no more: the build has ended (or, when not following, every stored line was
    /// given). Holds the deployment as last read; nothing follows it.
    End(Box<Deployment>),
}

/// Where a reader of one deployment's build log is.
#[derive(Debug)]
pub struct LogTail {
    state: AppState,
    id: DeploymentId,
    /// Sequence number of the last line read.
    after: i64,
    /// Lines read but not given yet.
    pending: VecDeque<StoredLogLine>,
    /// Whether to wait for new lines until the build ends, or end once the stored lines are
    /// given.
    follow: bool,
    /// `End` was given.
    ended: bool,
}

impl LogTail {
    /// The log of `id` from the line after sequence number `after` (0: from the start).
    pub fn new(state: AppState, id: DeploymentId, after: i64, follow: bool) -> Self {
        LogTail {
            state,
            id,
            after,
            pending: VecDeque::new(),
            follow,
            ended: false,
        }
    }

    /// The next line, or the end; `None` after the end, on shutdown, or when the repository
    /// fails (logged: a client of a followed log reconnects).
    pub async fn next(&mut self) -> Option<Tailed> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some(Tailed::Line(line));
            }
            if self.ended {
                return None;
            }
            let repository = &self.state.services.repository;
            // The status first: lines read after it include every line stored before it.
            let deployment = match repository.get_deployment(&self.id).await {
                Ok(deployment) => deployment,
                Err(err) => return self.give_up(&err),
            };
            match repository.logs_after(&self.id, self.after, BATCH).await {
                Ok(lines) if !lines.is_empty() => {
                    self.after = lines.last().map_or(self.after, |line| line.seq);
                    self.pending.extend(lines);
                    continue;
                }
                Ok(_) => {}
                Err(err) => return self.give_up(&err),
            }
            let settled = OffsetDateTime::now_utc() - deployment.updated_at >= FINAL_SETTLE;
            if !self.follow || (deployment.status.is_final() && settled) {
                self.ended = true;
                return Some(Tailed::End(Box::new(deployment)));
            }
            tokio::select! {
                () = self.state.shutdown.cancelled() => return None,
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
        }
    }

    fn give_up(&self, err: &RepositoryError) -> Option<Tailed> {
        tracing::warn!(id = %self.id, error = %err, "could not read a build log");
        None
    }
}
