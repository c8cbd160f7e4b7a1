//! The `--backend` flag: which Burn device runs the work.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (the default: measured fastest on CPU here).
    Flex,
    /// The ndarray CPU backend.
    Ndarray,
    /// GPU through wgpu (Vulkan, Metal, DX12; Mesa's lavapipe on machines without a GPU).
    Wgpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
        }
    }

    /// The device, without autodiff.
    pub fn device(self) -> Device {
        match self {
            Backend::Flex => Device::flex(),
            #[allow(deprecated)]
            Backend::Ndarray => Device::ndarray(),
            Backend::Wgpu => Device::wgpu(Default::default()),
        }
    }

    /// Makes this backend Burn's default device too, for the few Burn paths that pick
    /// `Device::default()` on their own (loading optimizer state); call before any thread starts.
    pub fn make_default(self) {
        std::env::set_var("BURN_DEVICE", self.name());
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
