//! A config value that fails validation, before `config` locates it in a file: the key inside
//! its section and what was expected. The checks every section shares live here too.

/// A validation failure: `key` is relative to the section that checks it (`momentum` in
/// `[train]`), unless `section` says which other section the value came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    /// Set when the cause is in another section than the one being checked: a model whose
    /// input (from `[data]`) is too small or has the wrong number of classes.
    pub section: Option<&'static str>,
    pub key: String,
    pub message: String,
}

impl Invalid {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            section: None,
            key: key.into(),
            message: message.into(),
        }
    }

    /// A problem with what `[data]` hands the model, located at `data.<key>`.
    pub fn data(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            section: Some("data"),
            ..Self::new(key, message)
        }
    }

    /// The same failure one table further down, e.g. `crop_padding` -> `augment.crop_padding`.
    pub fn within(self, table: &str) -> Self {
        Self {
            key: format!("{table}.{}", self.key),
            ..self
        }
    }
}

/// A count that must be at least 1.
pub fn positive(key: &str, value: usize) -> Result<(), Invalid> {
    if value == 0 {
        return Err(Invalid::new(key, "expected a positive integer, got 0"));
    }
    Ok(())
}

/// A coefficient in [0, 1): momentum, betas, smoothing constants.
pub fn unit_interval(key: &str, value: f64) -> Result<(), Invalid> {
    below_one(key, value, "a number")
}

/// A dropout probability in [0, 1).
pub fn probability(key: &str, p: f64) -> Result<(), Invalid> {
    below_one(key, p, "a probability")
}

fn below_one(key: &str, value: f64, what: &str) -> Result<(), Invalid> {
    if !(0.0..1.0).contains(&value) {
        return Err(Invalid::new(
            key,
            format!("expected {what} in [0, 1), got {value}"),
        ));
    }
    Ok(())
}

/// A positive, finite number (learning rates, margins).
pub fn positive_number(key: &str, value: f64) -> Result<(), Invalid> {
    if !(value > 0.0 && value.is_finite()) {
        return Err(Invalid::new(
            key,
            format!("expected a positive number, got {value}"),
        ));
    }
    Ok(())
}
