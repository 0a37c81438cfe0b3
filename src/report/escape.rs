//! Turning values into page text: HTML escaping for anything from user data, and the number
//! formats the report uses everywhere (so a table and a plot print a value the same way).

use crate::eval::Interval;

/// Escapes `s` for HTML text and for quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A metric value: 4 significant decimals in the usual [0, 1] range, fewer for big values;
/// "n/a" when undefined.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        "n/a".to_string()
    } else if x.abs() >= 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// `point [lo, hi]`.
pub(crate) fn interval(i: &Interval) -> String {
    format!("{} [{}, {}]", num(i.point), num(i.lo), num(i.hi))
}

/// A signed difference `+0.0123 [−0.0040, +0.0290]`.
pub(crate) fn signed_interval(i: &Interval) -> String {
    let s = |x: f64| if x.is_finite() && x >= 0.0 { format!("+{}", num(x)) } else { num(x) };
    format!("{} [{}, {}]", s(i.point), s(i.lo), s(i.hi))
}

/// A p-value: three decimals, "< 0.001" below that.
pub(crate) fn p_value(p: f64) -> String {
    if !p.is_finite() {
        "n/a".to_string()
    } else if p < 0.001 {
        "< 0.001".to_string()
    } else {
        format!("{p:.3}")
    }
}

/// A p-value after "p" in a sentence: "= 0.040" or "< 0.001".
pub(crate) fn p_relation(p: f64) -> String {
    let v = p_value(p);
    if v.starts_with('<') {
        v
    } else {
        format!("= {v}")
    }
}

/// Bytes in binary units.
pub(crate) fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    match (unit, UNITS.get(unit)) {
        (0, _) => format!("{b} B"),
        (_, Some(u)) => format!("{v:.1} {u}"),
        (_, None) => format!("{b} B"),
    }
}

/// Seconds as "42.0 s" or "12 min 5 s" or "2 h 3 min".
pub(crate) fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "n/a".to_string();
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    }
}

/// A count with thin groups of three digits: 1 234 567.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// A learning rate as the short scientific form people write: 1e-4, 3e-5, 2.5e-5.
pub(crate) fn lr(x: f64) -> String {
    if x.is_finite() && x != 0.0 {
        format!("{x:e}")
    } else {
        num(x)
    }
}

/// Whether a smaller value of `metric` is better (losses and errors), judged by its name.
pub(crate) fn lower_is_better(metric: &str) -> bool {
    let m = metric.to_ascii_lowercase();
    ["loss", "error", "brier", "ece", "mse", "mae", "rmse", "perplexity"].iter().any(|w| m.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }

    #[test]
    fn formats_numbers() {
        assert_eq!(num(0.91234), "0.9123");
        assert_eq!(num(f64::NAN), "n/a");
        assert_eq!(p_value(0.0004), "< 0.001");
        assert_eq!(p_value(0.0456), "0.046");
        assert_eq!(p_relation(0.0004), "< 0.001");
        assert_eq!(p_relation(0.0456), "= 0.046");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(duration(754.4), "12 min 34 s");
        assert_eq!(count(1234567), "1\u{202f}234\u{202f}567");
        assert_eq!(count(999), "999");
        assert_eq!(lr(3e-5), "3e-5");
        assert_eq!(lr(2.5e-5), "2.5e-5");
        let i = Interval { point: 0.01, lo: -0.02, hi: 0.04, level: 0.95 };
        assert_eq!(signed_interval(&i), "+0.0100 [-0.0200, +0.0400]");
        assert!(lower_is_better("log_loss") && !lower_is_better("accuracy"));
    }
}
