//! Following a deployment to its end: its build log streamed as it is written (the server's
//! followed log, server-sent events) while its status is polled, until it is `READY`,
//! `ERROR` or `CANCELED`.
//!
//! ## Why poll the status beside the stream?
//! The followed log ends only once a final status has settled for a few seconds (the worker
//! may still write a last line), which is right for `logs -f` but would add those seconds to
//! every deploy. So `deploy` polls the deployment — every [`FIRST_POLL`] at first, backing
//! off to [`MAX_POLL`] — and returns as soon as it is final; the log lines the stream has not
//! printed yet are then read once from the stored log, so none is lost or printed twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::api::Client;
use crate::exit::CliError;

/// First wait between two status polls: a static site is often READY within it.
pub const FIRST_POLL: Duration = Duration::from_millis(20);
/// Longest wait between two status polls.
pub const MAX_POLL: Duration = Duration::from_millis(500);
/// How many log lines a failure shows.
pub const TAIL_LINES: usize = 20;

/// Whether `status` is one a deployment stays in.
pub fn is_final(status: &str) -> bool {
    matches!(status, "READY" | "ERROR" | "CANCELED")
}

/// A build log line as the API shows it, as one line of text.
pub fn log_text(line: &Value) -> String {
    line["message"].as_str().unwrap_or_default().to_owned()
}

/// Where log lines go as they come: called from the thread that reads the stream.
pub type Printer = Arc<dyn Fn(&str) + Send + Sync>;

/// How a watched deployment ended.
pub struct Ended {
    /// The deployment, as the API shows it, in its final status.
    pub deployment: Value,
    /// Its last log lines (at most [`TAIL_LINES`]), read when it did not become READY.
    pub tail: Vec<String>,
}

/// What the log stream has printed, shared with the thread that reads it.
#[derive(Default)]
struct Printed {
    lines: usize,
    stopped: bool,
}

/// Wait until deployment `id` is final. With `print`, its log lines are handed to `print` as
/// they come (from another thread, one at a time), and every line is printed exactly once
/// by the time this returns.
pub fn wait(client: &Client, id: &str, print: Option<Printer>) -> Result<Ended, CliError> {
    let printed = Arc::new(Mutex::new(Printed::default()));
    if let Some(print) = &print {
        // The stream is a help, not the truth: if it fails, the status poll still ends the
        // wait and the stored log fills in what it missed.
        let printed = Arc::clone(&printed);
        let print = Arc::clone(print);
        let client = client.clone();
        let stream = format!("/api/v1/deployments/{id}/logs?follow=true");
        // On a thread of its own from the start, so opening the stream never delays the
        // status poll.
        std::thread::spawn(move || {
            let Ok(events) = client.events(&stream) else {
                return;
            };
            for event in events {
                let Ok(event) = event else { break };
                match event.event.as_str() {
                    "log" => {
                        let Ok(line) = serde_json::from_str::<Value>(&event.data) else {
                            continue;
                        };
                        let Ok(mut printed) = printed.lock() else {
                            break;
                        };
                        if printed.stopped {
                            break;
                        }
                        print(&log_text(&line));
                        printed.lines += 1;
                    }
                    "end" => break,
                    _ => {}
                }
            }
        });
    }
    let path = format!("/api/v1/deployments/{id}");
    let mut pause = FIRST_POLL;
    let deployment = loop {
        let deployment = client.get(&path)?;
        if is_final(deployment["status"].as_str().unwrap_or_default()) {
            break deployment;
        }
        std::thread::sleep(pause);
        pause = (pause * 3 / 2).min(MAX_POLL);
    };
    let ready = deployment["status"] == "READY";
    let already = match printed.lock() {
        Ok(mut printed) => {
            printed.stopped = true;
            printed.lines
        }
        Err(_) => 0,
    };
    let mut tail = Vec::new();
    if print.is_some() || !ready {
        let logs = client.get(&format!("/api/v1/deployments/{id}/logs"))?;
        let lines: Vec<String> = logs["lines"]
            .as_array()
            .map(|lines| lines.iter().map(log_text).collect())
            .unwrap_or_default();
        if let Some(print) = &print {
            for line in lines.iter().skip(already) {
                print(line);
            }
        }
        if !ready {
            tail = lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec();
        }
    }
    Ok(Ended { deployment, tail })
}
