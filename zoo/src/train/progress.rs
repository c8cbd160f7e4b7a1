//! Training progress on stderr.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use super::history::EpochRecord;

/// Progress on stderr: a live bar when stderr is a terminal, otherwise one line per epoch.
pub struct Progress {
    live: bool,
    last_draw: Instant,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            live: std::io::stderr().is_terminal(),
            last_draw: Instant::now(),
        }
    }

    pub fn batch(
        &mut self,
        epoch: usize,
        epochs: usize,
        seen: usize,
        total: usize,
        loss: f64,
        accuracy: f64,
    ) {
        if !self.live || (self.last_draw.elapsed().as_millis() < 100 && seen < total) {
            return;
        }
        self.last_draw = Instant::now();
        let width = 30;
        let filled = width * seen / total.max(1);
        eprint!(
            "\r\x1b[2Kepoch {epoch}/{epochs} [{}{}] {seen}/{total}  loss {loss:.4}  acc {accuracy:.4}",
            "=".repeat(filled),
            " ".repeat(width - filled)
        );
        let _ = std::io::stderr().flush();
    }

    pub fn epoch(&mut self, r: &EpochRecord, epochs: usize) {
        if self.live {
            eprint!("\r\x1b[2K");
        }
        eprintln!(
            "epoch {}/{epochs}  lr {:.2e}  train loss {:.4} acc {:.4}  val loss {:.4} acc {:.4} top-5 {:.4}  {:.1}s  {:.0} samples/s",
            r.epoch, r.lr, r.train_loss, r.train_accuracy, r.val_loss, r.val_accuracy, r.val_top5, r.seconds, r.train_samples_per_second
        );
    }
}
