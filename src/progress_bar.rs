//! Progress bars on standard error for the long commands (`proton`,
//! `brachy`, `gamma`, `check`): the engine's [`Progress`] hook drawn by
//! `indicatif` (a bar per stage with its count and ETA), attached only when
//! standard error is a terminal, so logs and pipes stay clean.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use isodose::Progress;

/// `stage  [#####>-----] done/total  50 % ETA 3s`, the bar filling the
/// terminal's width.
const TEMPLATE: &str = "  {prefix:<20} [{wide_bar}] {pos}/{len} {percent:>3} % ETA {eta}";

/// One `indicatif` bar per stage: a new stage finishes the previous bar and
/// starts its own.
#[derive(Debug)]
pub struct StderrBar {
    /// Where the bars are drawn (standard error, or hidden in tests).
    target: fn() -> ProgressDrawTarget,
    /// The current stage's name and bar.
    current: Mutex<Option<(String, ProgressBar)>>,
}

impl StderrBar {
    /// Bars drawn by `target` (a fresh draw target per stage).
    fn with_target(target: fn() -> ProgressDrawTarget) -> Self {
        Self {
            target,
            current: Mutex::new(None),
        }
    }

    /// Bars on standard error, or `None` when it is not a terminal.
    pub fn for_terminal() -> Option<Self> {
        std::io::stderr()
            .is_terminal()
            .then(|| Self::with_target(ProgressDrawTarget::stderr))
    }

    fn new_bar(&self, stage: &str, total: u64) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(total), (self.target)());
        // the template is a constant: a parse error is a programming error,
        // and the default style still shows the bar
        if let Ok(style) = ProgressStyle::with_template(TEMPLATE) {
            bar.set_style(style.progress_chars("#>-"));
        }
        bar.set_prefix(stage.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

impl Progress for StderrBar {
    fn report(&self, stage: &str, done: u64, total: u64) -> bool {
        // a poisoned lock must not stop the computation: no bar then
        let Ok(mut current) = self.current.lock() else {
            return true;
        };
        match current.as_ref() {
            // the same stage, still running (a stage that finished and is
            // reported again, e.g. one gamma per criterion, gets a new bar)
            Some((s, bar)) if s == stage && !bar.is_finished() && done >= bar.position() => {
                if bar.length() != Some(total) {
                    bar.set_length(total);
                }
            }
            _ => {
                if let Some((_, old)) = current.take() {
                    // a stage left before its end keeps its last count
                    old.abandon();
                }
                *current = Some((stage.to_owned(), self.new_bar(stage, total)));
            }
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_position(done.min(total));
            if done >= total {
                bar.finish();
            }
        }
        true
    }
}

impl Drop for StderrBar {
    fn drop(&mut self) {
        if let Ok(mut current) = self.current.lock()
            && let Some((_, bar)) = current.take()
        {
            bar.abandon();
        }
    }
}

/// `engine` with terminal progress bars when standard error is a terminal.
pub fn watched(engine: isodose::Engine) -> isodose::Engine {
    match StderrBar::for_terminal() {
        Some(bar) => engine.with_progress(std::sync::Arc::new(bar)),
        None => engine,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(bar: &StderrBar) -> Option<(String, u64, Option<u64>, bool)> {
        let current = bar.current.lock().unwrap();
        current
            .as_ref()
            .map(|(stage, b)| (stage.clone(), b.position(), b.length(), b.is_finished()))
    }

    #[test]
    fn a_bar_per_stage_follows_the_engine_reports() {
        let bar = StderrBar::with_target(ProgressDrawTarget::hidden);
        assert!(bar.report("proton dose", 0, 40));
        assert!(bar.report("proton dose", 25, 40));
        assert_eq!(
            state(&bar),
            Some(("proton dose".into(), 25, Some(40), false))
        );
        // a count past the total is shown as the total, and finishes it
        assert!(bar.report("proton dose", 41, 40));
        assert_eq!(
            state(&bar),
            Some(("proton dose".into(), 40, Some(40), true))
        );
        // the next stage gets its own bar; a changed total is followed
        assert!(bar.report("dij: counting", 3, 10));
        assert!(bar.report("dij: counting", 4, 12));
        assert_eq!(
            state(&bar),
            Some(("dij: counting".into(), 4, Some(12), false))
        );
        // a stage with no work is complete at once
        assert!(bar.report("gamma", 0, 0));
        assert_eq!(state(&bar), Some(("gamma".into(), 0, Some(0), true)));
        // the same stage again (a second gamma): a new, running bar
        assert!(bar.report("gamma", 0, 8));
        assert!(bar.report("gamma", 3, 8));
        assert_eq!(state(&bar), Some(("gamma".into(), 3, Some(8), false)));
        // a count that goes back starts a new bar too
        assert!(bar.report("gamma", 1, 8));
        assert_eq!(state(&bar), Some(("gamma".into(), 1, Some(8), false)));
    }
}
