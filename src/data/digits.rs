//! The UCI optical digits (8x8 images, 10 classes, 1797 samples) as scikit-learn ships them:
//! `sklearn/datasets/data/digits.csv.gz`, one sample per line, 64 pixel values in 0..=16 then
//! the label. `make assets` fetches it from the scikit-learn wheel on PyPI.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// Pixels (N x 64, scaled to [0, 1]) and labels (N).
#[derive(Debug, Clone)]
pub struct Digits {
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
}

impl Digits {
    pub const FEATURES: usize = 64;
    pub const CLASSES: usize = 10;

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Read `digits.csv.gz` (or an uncompressed `.csv`); every malformed line is an error
    /// naming the file and the 1-based line.
    pub fn load(path: impl AsRef<Path>) -> Result<Digits> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        Self::parse(BufReader::new(reader), &path.display().to_string())
    }

    /// Parse CSV lines; `name` is used in errors.
    pub fn parse(reader: impl BufRead, name: &str) -> Result<Digits> {
        let fail = |line: usize, message: String| Error::Format {
            path: name.to_string(),
            line: Some(line),
            message,
        };
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let n = i + 1;
            let line = line.map_err(|e| fail(n, format!("unreadable: {e}")))?;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split(',').collect();
            if fields.len() != Self::FEATURES + 1 {
                return Err(fail(
                    n,
                    format!("expected {} fields, found {}", Self::FEATURES + 1, fields.len()),
                ));
            }
            for (j, f) in fields[..Self::FEATURES].iter().enumerate() {
                let v: f32 =
                    f.trim().parse().map_err(|_| fail(n, format!("pixel {j} is not a number: '{f}'")))?;
                if !(0.0..=16.0).contains(&v) {
                    return Err(fail(n, format!("pixel {j} = {v} is outside 0..=16")));
                }
                pixels.push(v / 16.0);
            }
            let label_text = fields[Self::FEATURES].trim();
            let label: f32 =
                label_text.parse().map_err(|_| fail(n, format!("label is not a number: '{label_text}'")))?;
            if label.fract() != 0.0 || !(0.0..Self::CLASSES as f32).contains(&label) {
                return Err(fail(n, format!("label {label} is not a class in 0..{}", Self::CLASSES)));
            }
            labels.push(label as u32);
        }
        if labels.is_empty() {
            return Err(Error::Format { path: name.to_string(), line: None, message: "no samples".into() });
        }
        Ok(Digits { pixels, labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(label: &str) -> String {
        let mut f = vec!["3"; 64];
        f.push(label);
        f.join(",")
    }

    #[test]
    fn parses_and_scales() {
        let text = format!("{}\n{}\n", row("7"), row("0"));
        let d = Digits::parse(text.as_bytes(), "mem").unwrap();
        assert_eq!(d.labels, vec![7, 0]);
        assert_eq!(d.pixels.len(), 128);
        assert!((d.pixels[0] - 3.0 / 16.0).abs() < 1e-7);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let text = format!("{}\n1,2,3\n", row("1"));
        let e = Digits::parse(text.as_bytes(), "digits.csv").unwrap_err().to_string();
        assert!(e.starts_with("digits.csv:2:") && e.contains("expected 65 fields"), "{e}");
        let text = row("12");
        let e = Digits::parse(text.as_bytes(), "d").unwrap_err().to_string();
        assert!(e.contains("d:1") && e.contains("not a class"), "{e}");
        let text = row("x");
        assert!(Digits::parse(text.as_bytes(), "d").is_err());
    }
}
