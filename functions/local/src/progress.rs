//! Progress on long work (`hookline dlq replay`, the `hookline-bench` phases): shown on a
//! terminal, hidden with `--json` or when stderr is not a terminal, so logs and pipes stay
//! clean.

use std::borrow::Cow;
use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Makes progress bars, or hidden ones.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    shown: bool,
}

impl Progress {
    /// Shown on a terminal unless `json`.
    pub fn new(json: bool) -> Self {
        Self {
            shown: !json && std::io::stderr().is_terminal(),
        }
    }

    /// A bar counting to `len`.
    pub fn bar(&self, len: u64, message: impl Into<Cow<'static, str>>) -> ProgressBar {
        if !self.shown {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len).with_message(message);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:<28} [{bar:30}] {human_pos}/{human_len} {per_sec} {elapsed}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A counter of unknown length.
    pub fn counter(&self, message: impl Into<Cow<'static, str>>) -> ProgressBar {
        if !self.shown {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner().with_message(message);
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {human_pos} {elapsed}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}
