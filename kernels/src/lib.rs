//! zoo's own kernels, where Burn 0.22's CPU ops are the bottleneck (issue 13): the LSTM and
//! GRU recurrences, the convolution, batch norm, max and average pooling and local response
//! normalization as single ops with hand-written backward passes on Flex, dropout, vectorized
//! exp / sigmoid / tanh, and Adam's update in one pass. Each has a Burn-ops reference beside
//! it that the tests compare with, and which other backends run, so that each can go upstream
//! to Burn later.

pub mod activation;
pub mod batch_norm;
pub mod conv;
pub mod dropout;
mod flex;
mod flex_conv;
mod flex_recurrent;
pub mod lrn;
pub mod math;
mod matmul;
pub mod optim;
pub mod pool;
pub mod recurrent;
mod transpose;

pub use activation::{sigmoid, tanh};
pub use batch_norm::batch_norm;
pub use conv::conv2d;
pub use dropout::dropout;
pub use lrn::local_response_norm;
pub use optim::FusedAdam;
pub use pool::{avg_pool2d, max_pool2d};
pub use recurrent::{gru, lstm, project, rnn};

#[cfg(test)]
mod tests;
