//! The batch's outputs: `results.csv` and `results.json` (one row per experiment),
//! `results.md` (grouped over seeds: mean and standard deviation, the notes' reference beside
//! them) and plots in PNG and SVG: learning curves per experiment, test accuracy per group
//! against its reference, and accuracy against each swept value.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use zoo::train::EpochRecord;

use crate::common::{stem, References};

/// One row of the results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    pub config: String,
    pub model: String,
    /// The dataset the experiment ran on (for the reference accuracy beside it).
    pub dataset: String,
    pub backend: String,
    pub seed: u64,
    pub overrides: String,
    pub params: Option<u64>,
    pub macs: Option<u64>,
    pub epochs: Option<u64>,
    pub seconds_per_epoch: Option<f64>,
    pub train_samples_per_second: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub test_top5: Option<f64>,
    pub status: String,
    pub error: String,
    pub run_dir: String,
    /// The run's epochs, for its learning curves (not written to the tables).
    #[serde(skip)]
    pub history: Vec<EpochRecord>,
}

/// Draws the same figure, `draw(area)`, to `<stem>.png` and `<stem>.svg`.
macro_rules! png_and_svg {
    ($stem:expr, $size:expr, |$area:ident| $draw:expr) => {{
        let png = $stem.with_extension("png");
        let $area = BitMapBackend::new(&png, $size).into_drawing_area();
        $draw.with_context(|| format!("cannot draw {}", png.display()))?;
        let svg = $stem.with_extension("svg");
        let $area = SVGBackend::new(&svg, $size).into_drawing_area();
        $draw.with_context(|| format!("cannot draw {}", svg.display()))?;
    }};
}

/// Rows that share config, backend and overrides: the same experiment over seeds.
struct Group<'a> {
    name: String,
    stem: String,
    rows: Vec<&'a Row>,
}

impl Group<'_> {
    fn accuracies(&self) -> Vec<f64> {
        self.rows.iter().filter_map(|r| r.test_accuracy).collect()
    }

    fn mean_std(&self) -> Option<(f64, f64)> {
        let a = self.accuracies();
        if a.is_empty() {
            return None;
        }
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let var = if a.len() > 1 {
            a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (a.len() - 1) as f64
        } else {
            0.0
        };
        Some((mean, var.sqrt()))
    }
}

fn groups(rows: &[Row]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> = Vec::new();
    for r in rows {
        let name = format!("{} {} {}", stem(&r.config), r.backend, r.overrides)
            .trim()
            .to_string();
        match groups.iter_mut().find(|g| g.name == name) {
            Some(g) => g.rows.push(r),
            None => groups.push(Group {
                name,
                stem: stem(&r.config),
                rows: vec![r],
            }),
        }
    }
    groups
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

pub fn write(
    root: &Path,
    out: &Path,
    rows: &[Row],
    swept: &[String],
    log_scale: bool,
) -> Result<()> {
    let mut csv = String::from("config,model,backend,seed,overrides,params,macs,epochs,seconds_per_epoch,train_samples_per_second,test_accuracy,test_top5,status,error,run_dir\n");
    for r in rows {
        let fields = [
            r.config.clone(),
            r.model.clone(),
            r.backend.clone(),
            r.seed.to_string(),
            r.overrides.clone(),
            opt(r.params),
            opt(r.macs),
            opt(r.epochs),
            opt(r.seconds_per_epoch),
            opt(r.train_samples_per_second),
            opt(r.test_accuracy),
            opt(r.test_top5),
            r.status.clone(),
            r.error.clone(),
            r.run_dir.clone(),
        ];
        csv += &fields
            .iter()
            .map(|f| csv_field(f))
            .collect::<Vec<_>>()
            .join(",");
        csv.push('\n');
    }
    zoo::fsutil::write_atomic(&out.join("results.csv"), csv.as_bytes())?;
    zoo::fsutil::write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(rows)?.as_bytes(),
    )?;

    let references = References::load(root)?;
    let groups = groups(rows);
    let mut md = String::from("| experiment | model | seeds | test accuracy (mean ± std) | seconds / epoch | reference |\n|---|---|---:|---:|---:|---|\n");
    for g in &groups {
        let ok = g.accuracies().len();
        let failed = g.rows.len() - ok;
        let accuracy = g
            .mean_std()
            .map_or("-".into(), |(m, s)| format!("{m:.4} ± {s:.4}"));
        let seconds: Vec<f64> = g.rows.iter().filter_map(|r| r.seconds_per_epoch).collect();
        let seconds = if seconds.is_empty() {
            "-".into()
        } else {
            format!("{:.2}", seconds.iter().sum::<f64>() / seconds.len() as f64)
        };
        let found = references.get(&g.rows[0].dataset, &g.stem);
        let reference = match (found.accuracy, found.source.is_empty()) {
            (Some(a), _) => format!("{a:.4} ({})", found.source),
            (None, false) => found.source.clone(),
            (None, true) => "-".into(),
        };
        let seeds = if failed > 0 {
            format!("{ok} ({failed} failed)")
        } else {
            ok.to_string()
        };
        md += &format!(
            "| {} | {} | {seeds} | {accuracy} | {seconds} | {reference} |\n",
            g.name, g.rows[0].model
        );
    }
    zoo::fsutil::write_atomic(&out.join("results.md"), md.as_bytes())?;

    let plots = out.join("plots");
    std::fs::create_dir_all(&plots)?;
    for r in rows.iter().filter(|r| r.status == "ok") {
        let name = Path::new(&r.run_dir)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !r.history.is_empty() {
            let title = format!(
                "{} {} seed {} {}",
                stem(&r.config),
                r.backend,
                r.seed,
                r.overrides
            );
            png_and_svg!(plots.join(format!("curves-{name}")), (1000, 400), |area| {
                curves(area, &title, &r.history)
            });
        }
    }
    let bars: Vec<(String, f64, f64, Option<f64>)> = groups
        .iter()
        .filter_map(|g| {
            g.mean_std().map(|(m, s)| {
                (
                    g.name.clone(),
                    m,
                    s,
                    references.get(&g.rows[0].dataset, &g.stem).accuracy,
                )
            })
        })
        .collect();
    if !bars.is_empty() {
        png_and_svg!(
            plots.join("accuracy"),
            (1000, 120 + 40 * bars.len() as u32),
            |area| comparison(area, &bars)
        );
    }
    for key in swept {
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| {
                let value = r
                    .overrides
                    .split(' ')
                    .find_map(|o| o.strip_prefix(&format!("{key}=")))?;
                Some((
                    value.trim_matches('"').parse::<f64>().ok()?,
                    r.test_accuracy?,
                ))
            })
            .collect();
        if points.len() > 1 {
            png_and_svg!(
                plots.join(format!("sweep-{}", key.replace('.', "-"))),
                (800, 500),
                |area| sweep(area, key, &points, log_scale)
            );
        }
    }
    Ok(())
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("{e}")
}

/// Training and validation loss (left) and accuracy (right) per epoch.
fn curves<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    title: &str,
    history: &[EpochRecord],
) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    let series = |value: fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|h| (h.epoch as f64, value(h))).collect()
    };
    let epochs = history.len().max(1) as f64;
    let area = area.titled(title, ("sans-serif", 20)).map_err(err)?;
    let panels = area.split_evenly((1, 2));
    let loss: [fn(&EpochRecord) -> f64; 2] = [|h| h.train_loss, |h| h.val_loss];
    let accuracy: [fn(&EpochRecord) -> f64; 2] = [|h| h.train_accuracy, |h| h.val_accuracy];
    for (panel, (what, [train, val])) in panels.iter().zip([("loss", loss), ("accuracy", accuracy)])
    {
        let (train, val) = (series(train), series(val));
        let values: Vec<f64> = train.iter().chain(&val).map(|p| p.1).collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.1).max(1e-3);
        let mut chart = ChartBuilder::on(panel)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.5..epochs + 0.5, (lo - pad)..(hi + pad))
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(history.len().min(20) + 1)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc("epoch")
            .y_desc(what)
            .draw()
            .map_err(err)?;
        for (points, label, color) in [(train, "train", BLUE), (val, "validation", RED)] {
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(err)?;
    }
    area.present().map_err(err)
}

/// Test accuracy per experiment group (bar: mean, whisker: std) and its reference (black tick).
fn comparison<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    bars: &[(String, f64, f64, Option<f64>)],
) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    let lo = bars
        .iter()
        .flat_map(|b| [b.1 - b.2, b.3.unwrap_or(1.0)])
        .fold(1.0f64, f64::min);
    let lo = (lo - 0.05).max(0.0);
    // The right end of each row's marks; labels go beyond the furthest, so leave room there.
    let right = |b: &(String, f64, f64, Option<f64>)| (b.1 + b.2).max(b.3.unwrap_or(0.0));
    let furthest = bars.iter().map(right).fold(lo, f64::max);
    let hi = (furthest + (furthest - lo) * 1.2).min(1.05);
    let n = bars.len();
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "test accuracy (bars) and the notes' reference (black ticks)",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(10)
        .build_cartesian_2d(lo..hi, 0.0..n as f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("test accuracy")
        .draw()
        .map_err(err)?;
    for (i, bar) in bars.iter().enumerate() {
        let (name, mean, std, reference) = bar;
        let y = (n - 1 - i) as f64;
        chart
            .draw_series([Rectangle::new(
                [(lo, y + 0.2), (*mean, y + 0.8)],
                BLUE.mix(0.35).filled(),
            )])
            .map_err(err)?;
        let label = format!("{name}: {mean:.4}");
        chart
            .draw_series([Text::new(
                label,
                (right(bar) + (hi - lo) * 0.01, y + 0.62),
                ("sans-serif", 16).into_font(),
            )])
            .map_err(err)?;
        chart
            .draw_series([PathElement::new(
                vec![(mean - std, y + 0.5), (mean + std, y + 0.5)],
                BLACK.stroke_width(2),
            )])
            .map_err(err)?;
        if let Some(r) = reference {
            chart
                .draw_series([PathElement::new(
                    vec![(*r, y + 0.1), (*r, y + 0.9)],
                    BLACK.stroke_width(3),
                )])
                .map_err(err)?;
        }
    }
    area.present().map_err(err)
}

/// Test accuracy of every experiment against one swept value.
fn sweep<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    key: &str,
    points: &[(f64, f64)],
    log_scale: bool,
) -> Result<()> {
    area.fill(&WHITE).map_err(err)?;
    let (xlo, xhi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (ylo, yhi) = points.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    let ypad = ((yhi - ylo) * 0.1).max(0.005);
    let y = (ylo - ypad)..(yhi + ypad);
    if log_scale && xlo > 0.0 {
        scatter(&area, key, (xlo * 0.8..xhi * 1.25).log_scale(), y, points)?;
    } else {
        let xpad = ((xhi - xlo) * 0.1).max(1e-9);
        scatter(&area, key, (xlo - xpad)..(xhi + xpad), y, points)?;
    }
    area.present().map_err(err)
}

/// Points of (swept value, test accuracy) on an x axis of any scale.
fn scatter<DB: DrawingBackend, X>(
    area: &DrawingArea<DB, Shift>,
    key: &str,
    x: X,
    y: std::ops::Range<f64>,
    points: &[(f64, f64)],
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(format!("test accuracy against {key}"), ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(key)
        .y_desc("test accuracy")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 5, BLUE.filled())))
        .map_err(err)?;
    Ok(())
}
