//! Training images/s of three of zoo's Fashion-MNIST networks built from Burn's own modules on
//! flex (Adam, batch 64, random 28x28 inputs): the same source against two Burn versions.
//! Each network runs twice; the first round includes the thread pool's warm-up.
use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, Lstm, LstmConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::{relu, tanh};
use burn::tensor::Distribution;

#[derive(Module, Debug)]
struct Mlp { l1: Linear, l2: Linear, l3: Linear, drop: Dropout }
impl Mlp {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = x.flatten(1, 3);
        let x = self.drop.forward(relu(self.l1.forward(x)));
        let x = self.drop.forward(relu(self.l2.forward(x)));
        self.l3.forward(x)
    }
}

#[derive(Module, Debug)]
struct LeNet { c1: Conv2d, c2: Conv2d, p: AvgPool2d, f1: Linear, f2: Linear, f3: Linear }
impl LeNet {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.p.forward(tanh(self.c1.forward(x)));
        let x = self.p.forward(tanh(self.c2.forward(x))).flatten(1, 3);
        self.f3.forward(tanh(self.f2.forward(tanh(self.f1.forward(x)))))
    }
}

#[derive(Module, Debug)]
struct Rows { lstm: Lstm, head: Linear }
impl Rows {
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, _, h, w] = x.dims();
        let out = self.lstm.forward(x.reshape([b, h, w]), None).0;
        self.head.forward(out.narrow(1, h - 1, 1).reshape([b, 128]))
    }
}

fn time<M: Module>(name: &str, model: M, forward: impl Fn(&M, Tensor<4>) -> Tensor<2>, device: &Device) {
    let ad = device.clone().autodiff();
    let mut model = model.fork(device).train();
    let mut optim = AdamConfig::new().init();
    let (batch, warmup, steps) = (64, 5, 50);
    let x = Tensor::<4>::random([batch, 1, 28, 28], Distribution::Normal(0.0, 1.0), &ad);
    let y = Tensor::<1, Int>::from_data(TensorData::new((0..batch as i64).map(|i| i % 10).collect::<Vec<_>>(), [batch]), &ad);
    let ce = CrossEntropyLossConfig::new().init(&ad);
    let mut started = Instant::now();
    for i in 0..warmup + steps {
        if i == warmup {
            started = Instant::now();
        }
        let loss = ce.forward(forward(&model, x.clone()), y.clone());
        let _ = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    println!("{name}: {:.0} training images/s", (steps * batch) as f64 / started.elapsed().as_secs_f64());
}

fn main() {
    let device = Device::flex();
    let mlp = Mlp {
        l1: LinearConfig::new(784, 256).init(&device),
        l2: LinearConfig::new(256, 128).init(&device),
        l3: LinearConfig::new(128, 10).init(&device),
        drop: DropoutConfig::new(0.2).init(),
    };
    let lenet = LeNet {
        c1: Conv2dConfig::new([1, 6], [5, 5]).with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2)).init(&device),
        c2: Conv2dConfig::new([6, 16], [5, 5]).init(&device),
        p: AvgPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
        f1: LinearConfig::new(400, 120).init(&device),
        f2: LinearConfig::new(120, 84).init(&device),
        f3: LinearConfig::new(84, 10).init(&device),
    };
    let rows = Rows { lstm: LstmConfig::new(28, 128, true).init(&device), head: LinearConfig::new(128, 10).init(&device) };
    for _ in 0..2 {
        time("mlp", mlp.clone(), |m, x| m.forward(x), &device);
        time("lenet5-classic", lenet.clone(), |m, x| m.forward(x), &device);
        time("lstm", rows.clone(), |m, x| m.forward(x), &device);
    }
}
