//! What the data hands a model: the shape of one example and the number of classes.

use serde::{Deserialize, Serialize};

/// For images `[channels, height, width]`; for text, the window length as `height` and the
/// vocabulary as classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub num_classes: usize,
}

impl ModelInput {
    pub fn flat_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// `[channels, height, width]`.
    pub fn map(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}
