//! zoo's own kernels, where Burn 0.22's CPU ops are the bottleneck (issue 13): the LSTM and
//! GRU recurrences and the convolution as single ops with hand-written backward passes on
//! Flex, dropout, and vectorized exp / sigmoid / tanh. Each has a Burn-ops reference beside
//! it that the tests compare with, and which other backends run, so that each can go upstream
//! to Burn later.

pub mod activation;
pub mod conv;
pub mod dropout;
mod flex;
mod flex_conv;
mod flex_recurrent;
pub mod math;
mod matmul;
pub mod recurrent;

pub use activation::{sigmoid, tanh};
pub use conv::conv2d;
pub use dropout::dropout;
pub use recurrent::{gru, lstm, project, rnn};

#[cfg(test)]
mod tests;
