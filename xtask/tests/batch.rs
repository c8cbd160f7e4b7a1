//! A batch interrupted midway and run again: finished experiments are not re-run, and the
//! tables and plots cover every experiment.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

mod common;
use common::{write_config, write_dataset, zoo_bin};

fn batch(dir: &Path, configs: &Path, zoo: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.arg("batch")
        .arg(configs)
        .args(["--seeds", "0,1", "--set", "train.lr=0.01,0.05", "--out"])
        .arg(dir.join("results"))
        .env("ZOO_BIN", zoo)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

fn finished(results: &Path) -> Vec<(PathBuf, SystemTime)> {
    let runs = results.join("runs");
    let Ok(entries) = std::fs::read_dir(&runs) else {
        return Vec::new();
    };
    let mut done: Vec<(PathBuf, SystemTime)> = entries
        .flatten()
        .map(|e| e.path().join("metrics.json"))
        .filter(|m| m.exists())
        .map(|m| {
            let t = std::fs::metadata(&m).unwrap().modified().unwrap();
            (m, t)
        })
        .collect();
    done.sort();
    done
}

#[test]
fn interrupted_batch_resumes_without_rerunning_finished_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write_dataset(&data, 400);
    let configs = dir.path().join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    write_config(&configs, "softmax", "kind = \"softmax\"", &data, 2);
    write_config(&configs, "mlp", "kind = \"mlp\"\nhidden = [16]", &data, 2);
    let results = dir.path().join("results");
    let zoo = zoo_bin();

    // Stop the batch (2 configs x 2 learning rates x 2 seeds) once three experiments are done.
    let mut child = batch(dir.path(), &configs, &zoo)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while finished(&results).len() < 3 && Instant::now() < deadline {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the batch ended before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Let a `zoo train` the batch had started finish or die on its own.
    std::thread::sleep(Duration::from_millis(1500));
    let before = finished(&results);
    assert!(
        before.len() >= 3 && before.len() < 8,
        "interrupted after {} experiments",
        before.len()
    );
    assert!(
        !results.join("results.csv").exists(),
        "the tables are written at the end"
    );

    let out = batch(dir.path(), &configs, &zoo).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = finished(&results);
    assert_eq!(after.len(), 8);
    for (metrics, modified) in &before {
        let now = after
            .iter()
            .find(|(m, _)| m == metrics)
            .expect("still there")
            .1;
        assert_eq!(&now, modified, "{} was run again", metrics.display());
    }

    let csv = std::fs::read_to_string(results.join("results.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 8, "{csv}");
    assert!(rows.iter().all(|r| r.contains(",ok,")), "{csv}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 8);
    let md = std::fs::read_to_string(results.join("results.md")).unwrap();
    assert_eq!(
        md.lines()
            .filter(|l| l.starts_with("| mlp") || l.starts_with("| softmax"))
            .count(),
        4,
        "{md}"
    );
    assert!(md.contains(" ± "), "{md}");
    for plot in [
        "accuracy.png",
        "accuracy.svg",
        "sweep-train-lr.png",
        "sweep-train-lr.svg",
    ] {
        let bytes = std::fs::read(results.join("plots").join(plot)).unwrap();
        assert!(bytes.len() > 1000, "{plot}");
    }
    let png = std::fs::read(results.join("plots/accuracy.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let curves = std::fs::read_dir(results.join("plots"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("curves-"))
        .count();
    assert_eq!(
        curves, 16,
        "a PNG and an SVG of learning curves per experiment"
    );

    // A changed config gets a new run directory; the old results stay.
    let out = batch(dir.path(), &configs, &zoo)
        .args(["--set", "train.epochs=1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(finished(&results).len(), 16);
}
