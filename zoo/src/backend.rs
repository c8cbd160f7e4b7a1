//! The `--backend` flag: which Burn device runs the work, and `zoo backends`: what each
//! compiled backend sees on this machine.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use burn::prelude::*;
use burn::tensor::DeviceKind;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (the default; the faster of the two CPU backends in zoo's
    /// benchmarks).
    Flex,
    /// The ndarray CPU backend.
    Ndarray,
    /// GPU through wgpu (Vulkan, Metal, DX12; Mesa's lavapipe on machines without a GPU).
    Wgpu,
    /// NVIDIA GPUs through CUDA: not in this build of zoo (on an NVIDIA GPU, use wgpu).
    Cuda,
}

/// Why `--backend cuda` is refused. (zoo is built without Burn 0.22.1's `cuda` feature: it
/// compiles cubecl-llvm, whose build script downloads an LLVM bundle at build time.)
pub const CUDA_NOT_BUILT: &str =
    "this build of zoo has no CUDA backend; on an NVIDIA GPU, use --backend wgpu";

#[derive(Debug, thiserror::Error)]
#[error("--backend {backend}: {reason}")]
pub struct BackendError {
    pub backend: Backend,
    pub reason: String,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Flex,
        Backend::Ndarray,
        Backend::Wgpu,
        Backend::Cuda,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Ndarray => "ndarray",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        }
    }

    /// Whether this build can run on the backend, and if not, why.
    pub fn available(self) -> Result<(), BackendError> {
        match self {
            Backend::Cuda => Err(BackendError {
                backend: self,
                reason: CUDA_NOT_BUILT.into(),
            }),
            _ => Ok(()),
        }
    }

    /// The device, without autodiff. Callers check `available` first (the CLI does, in
    /// `make_default`).
    pub fn device(self) -> Device {
        self.devices(1).remove(0)
    }

    /// `count` devices for data-parallel training: the GPUs 0..count for wgpu (one: wgpu's
    /// default adapter), and `count` replicas of the one device for the CPU backends (they
    /// share its cores; useful to check data-parallel training against one device).
    pub fn devices(self, count: usize) -> Vec<Device> {
        (0..count.max(1))
            .map(|index| match self {
                Backend::Flex => Device::flex(),
                #[allow(deprecated)]
                Backend::Ndarray => Device::ndarray(),
                Backend::Wgpu if count <= 1 => Device::wgpu(DeviceKind::DefaultDevice),
                Backend::Wgpu => Device::wgpu(DeviceKind::DiscreteGpu(index)),
                Backend::Cuda => panic!("{CUDA_NOT_BUILT}"),
            })
            .collect()
    }

    /// Checks the backend, then makes it Burn's default device too, for the few Burn paths
    /// that pick `Device::default()` on their own (loading optimizer state); call before any
    /// thread starts.
    pub fn make_default(self) -> Result<(), BackendError> {
        self.available()?;
        std::env::set_var("BURN_DEVICE", self.name());
        Ok(())
    }

    /// What this backend sees here: one line per device, or why it sees none.
    pub fn describe_devices(self) -> Result<Vec<String>, String> {
        match self {
            Backend::Flex => {
                let threads = rayon::current_num_threads();
                let plural = if threads == 1 { "" } else { "s" };
                Ok(vec![format!(
                    "cpu: {threads} thread{plural} (--threads N sets how many)"
                )])
            }
            Backend::Ndarray => Ok(vec!["cpu".into()]),
            Backend::Wgpu => wgpu_adapters(),
            Backend::Cuda => Err(CUDA_NOT_BUILT.into()),
        }
    }
}

/// The adapters wgpu finds (name, type, graphics API), as `Device::wgpu` would choose among.
fn wgpu_adapters() -> Result<Vec<String>, String> {
    let instance = wgpu::Instance::default();
    let adapters = ready(instance.enumerate_adapters(wgpu::Backends::all()))
        .ok_or("wgpu did not list its adapters")?;
    if adapters.is_empty() {
        return Err("no adapter found (no GPU driver; on a CPU machine install mesa-vulkan-drivers for lavapipe)".into());
    }
    let index_of_type = |i: usize, kind: wgpu::DeviceType| {
        adapters[..i]
            .iter()
            .filter(|a| a.get_info().device_type == kind)
            .count()
    };
    Ok(adapters
        .iter()
        .enumerate()
        .map(|(i, adapter)| {
            let info = adapter.get_info();
            format!(
                "{} ({:?} {}, {:?})",
                info.name,
                info.device_type,
                index_of_type(i, info.device_type),
                info.backend
            )
        })
        .collect())
}

/// The value of a future that is ready at its first poll (wgpu's native calls are).
fn ready<T>(future: impl Future<Output = T>) -> Option<T> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
