//! A progress bar on standard error for the long commands (`proton`,
//! `brachy`, `gamma`): the engine's [`Progress`] hook, drawn only when
//! standard error is a terminal, so logs and pipes stay clean.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use isodose::Progress;

/// Width of the bar, characters.
const WIDTH: usize = 30;

/// Draws `stage [#####-----]  50 %` on one terminal line, redrawn in place
/// and ended with a newline when a stage completes.
#[derive(Debug, Default)]
pub struct StderrBar {
    /// The last (stage, percent) drawn, so that nothing is redrawn needlessly.
    last: Mutex<Option<(String, u64)>>,
}

impl StderrBar {
    /// A bar, or `None` when standard error is not a terminal.
    pub fn for_terminal() -> Option<Self> {
        std::io::stderr().is_terminal().then(Self::default)
    }
}

impl Progress for StderrBar {
    fn report(&self, stage: &str, done: u64, total: u64) -> bool {
        let percent = (100 * done).checked_div(total).unwrap_or(100).min(100);
        let Ok(mut last) = self.last.lock() else {
            return true;
        };
        if last
            .as_ref()
            .is_some_and(|(s, p)| s == stage && *p == percent)
        {
            return true;
        }
        let filled = (percent as usize * WIDTH) / 100;
        let mut err = std::io::stderr().lock();
        // a failed write to the terminal must not stop the computation
        let _ = write!(
            err,
            "\r  {stage:<24} [{}{}] {percent:>3} %",
            "#".repeat(filled),
            "-".repeat(WIDTH - filled)
        );
        if done >= total {
            let _ = writeln!(err);
        }
        let _ = err.flush();
        *last = Some((stage.to_owned(), percent));
        true
    }
}

/// `engine` with a terminal progress bar when standard error is a terminal.
pub fn watched(engine: isodose::Engine) -> isodose::Engine {
    match StderrBar::for_terminal() {
        Some(bar) => engine.with_progress(std::sync::Arc::new(bar)),
        None => engine,
    }
}
