//! What the command prints, and where: results on stdout (one JSON document with `--json`,
//! text otherwise), everything else — progress, build logs, warnings, errors — on stderr, so
//! `url=$(deploystack deploy)` and `deploystack ls --json | jq` work.
//!
//! Colours only on a terminal and only without `NO_COLOR` (<https://no-color.org>), decided
//! separately for stdout and stderr; progress bars only when stderr is such a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use console::{Style, measure_text_width};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::exit::CliError;

/// The output of one command.
#[derive(Debug, Clone)]
pub struct Output {
    json: bool,
    bars: bool,
}

impl Output {
    /// Output for this process's stdout and stderr; `json` for `--json`.
    pub fn new(json: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let stdout_styled = std::io::stdout().is_terminal() && !no_color;
        let stderr_styled = std::io::stderr().is_terminal() && !no_color;
        console::set_colors_enabled(stdout_styled);
        console::set_colors_enabled_stderr(stderr_styled);
        Self {
            json,
            bars: stderr_styled,
        }
    }

    /// Whether `--json` was given: print one document with [`Output::document`] and no text
    /// on stdout.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Print `value` as the command's one JSON document.
    pub fn document(&self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (`| head`) is not worth a panic.
        let _ = writeln!(stdout, "{text}");
    }

    /// Print a line of the result on stdout (text output only).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.json {
            let _ = writeln!(std::io::stdout().lock(), "{}", text.as_ref());
        }
    }

    /// Print a line about what is happening on stderr.
    pub fn note(&self, text: impl AsRef<str>) {
        let _ = writeln!(std::io::stderr().lock(), "{}", text.as_ref());
    }

    /// Print a warning on stderr.
    pub fn warn(&self, text: impl AsRef<str>) {
        let label = Style::new()
            .yellow()
            .bold()
            .for_stderr()
            .apply_to("warning:");
        self.note(format!("{label} {}", text.as_ref()));
    }

    /// Print a success line on stderr (`✓ Ready …`).
    pub fn success(&self, text: impl AsRef<str>) {
        let mark = Style::new().green().bold().for_stderr().apply_to("✓");
        self.note(format!("{mark} {}", text.as_ref()));
    }

    /// Report `err`: its message and hint on stderr and, with `--json`, the error document on
    /// stdout.
    pub fn error(&self, err: &CliError) {
        let label = Style::new().red().bold().for_stderr().apply_to("error:");
        self.note(format!("{label} {}", err.message()));
        if let Some(hint) = err.hint() {
            let hint = Style::new().dim().for_stderr().apply_to(hint);
            self.note(format!("  {hint}"));
        }
        if self.json {
            self.document(&err.to_json());
        }
    }

    /// A progress bar on stderr for `total` units (bytes when `bytes`), labelled `label`;
    /// hidden where bars are not drawn.
    pub fn bar(&self, total: u64, label: &str, bytes: bool) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let template = if bytes {
            "{prefix:>10.bold} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}) {msg}"
        } else {
            "{prefix:>10.bold} [{bar:30}] {pos}/{len} {msg}"
        };
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// A spinner on stderr saying `message`; hidden where bars are not drawn.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if !self.bars {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            )
            .with_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }

    /// Print `rows` under `header` on stdout as aligned columns (text output only).
    pub fn table(&self, header: &[&str], rows: &[Vec<String>]) {
        if self.json {
            return;
        }
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(measure_text_width(cell));
                }
            }
        }
        let dim = Style::new().dim();
        let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
        self.line(dim.apply_to(format_row(&head, &widths)).to_string());
        for row in rows {
            self.line(format_row(row, &widths));
        }
    }
}

fn format_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        line.push_str(cell);
        if i + 1 < cells.len() {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(measure_text_width(cell)) + 2;
            line.push_str(&" ".repeat(pad));
        }
    }
    line
}

/// `status` (`READY`, `ERROR`, …) coloured for stdout.
pub fn status(status: &str) -> String {
    let style = match status {
        "READY" => Style::new().green(),
        "ERROR" => Style::new().red(),
        "CANCELED" => Style::new().dim(),
        _ => Style::new().yellow(),
    };
    style.apply_to(status).to_string()
}

/// `text` in bold, for stdout.
pub fn bold(text: &str) -> String {
    Style::new().bold().apply_to(text).to_string()
}

/// `text` in bold, for stderr.
pub fn bold_err(text: &str) -> String {
    Style::new().bold().for_stderr().apply_to(text).to_string()
}

/// The strings of a JSON array joined by `separator` (`["read", "deploy"]` → `read,deploy`);
/// empty for anything else.
pub fn joined(value: &Value, separator: &str) -> String {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(separator)
}

/// `bytes` for people: `532 B`, `1.4 KiB`, `12.0 MiB`.
pub fn bytes(bytes: u64) -> String {
    indicatif::BinaryBytes(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_padded_to_the_widest_cell_of_each_column() {
        let widths = [4, 2];
        assert_eq!(
            format_row(&["ab".into(), "c".into(), "d".into()], &widths),
            "ab    c   d"
        );
    }
}
