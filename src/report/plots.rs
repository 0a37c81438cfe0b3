//! The report's plots, each drawn with plotters' SVG backend into a `String` that the page
//! inlines. Plot functions return `Ok(None)` when there is nothing to draw, so the page can say
//! so instead of showing an empty frame. Text in the SVGs (strategy and class names) is
//! escaped by the backend.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::escape::{lower_is_better, lr, num};
use super::results::{AutoChoice, Retention, RocCurve, StrategyResult, Sweep};
use crate::error::{Error, Result};

/// Colours of the strategies, by their position in the results (Tableau 10): the same strategy
/// has the same colour in every plot.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of strategy `i`.
pub fn strategy_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Points of the averaged ROC curve: true positive rates read at these false positive rates.
const ROC_GRID: usize = 101;

pub(super) const FONT: &str = "sans-serif";

/// Turns a plotters error into ours, naming the plot.
pub(super) fn drawing<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::arg("report plot", format!("drawing the {what}: {e}"))
}

/// A value range covering `values` with a 5% margin; `(0, 1)` when there are none.
pub(super) fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let pad = if lo.abs() > 1e-12 { lo.abs() * 0.05 } else { 0.5 };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Mean of each step's values over seeds: one averaged line from several runs.
fn mean_by_step(runs: &[Vec<(f64, f64)>]) -> Vec<(f64, f64)> {
    let mut acc: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    for run in runs {
        for &(x, y) in run {
            let e = acc.entry(x as u64).or_insert((0.0, 0));
            e.0 += y;
            e.1 += 1;
        }
    }
    acc.into_iter().map(|(x, (s, n))| (x as f64, s / n as f64)).collect()
}

/// Curves to draw: strategy index (its colour), name, and one `(step, value)` list per run.
type Lines<'a> = Vec<(usize, &'a str, Vec<Vec<(f64, f64)>>)>;

/// One panel of the learning-curve figure: every seed faint, their mean bold.
fn curve_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    y_desc: &str,
    lines: &Lines<'_>,
    legend_at: SeriesLabelPosition,
) -> Result<()> {
    let all = || lines.iter().flat_map(|(_, _, runs)| runs.iter().flatten());
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let (y0, y1) = span(all().map(|p| p.1));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 17))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..x_max, y0..y1)
        .map_err(drawing("learning curves"))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_desc)
        .light_line_style(BLACK.mix(0.06))
        .draw()
        .map_err(drawing("learning curves"))?;
    for (ci, name, runs) in lines {
        let color = strategy_color(*ci);
        if runs.len() > 1 {
            for run in runs {
                chart
                    .draw_series(LineSeries::new(run.iter().copied(), color.mix(0.3).stroke_width(1)))
                    .map_err(drawing("learning curves"))?;
            }
        }
        chart
            .draw_series(LineSeries::new(mean_by_step(runs), color.stroke_width(2)))
            .map_err(drawing("learning curves"))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 13))
        .draw()
        .map_err(drawing("learning curves"))?;
    Ok(())
}

/// Validation `metric` (left) and training loss (right) against the step, one colour per
/// strategy: each seed faint, the mean over seeds bold. `None` when no run has a curve.
pub fn learning_curves(strategies: &[StrategyResult], metric: &str) -> Result<Option<String>> {
    let pick = |f: fn(&super::results::CurvePoint) -> Option<f64>| -> Lines<'_> {
        strategies
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let runs: Vec<Vec<(f64, f64)>> = s
                    .runs
                    .iter()
                    .map(|r| {
                        r.curve
                            .iter()
                            .filter_map(|p| f(p).filter(|v| v.is_finite()).map(|v| (p.step as f64, v)))
                            .collect::<Vec<_>>()
                    })
                    .filter(|run| !run.is_empty())
                    .collect();
                (i, s.name.as_str(), runs)
            })
            .filter(|(_, _, runs)| !runs.is_empty())
            .collect()
    };
    let val = pick(|p| p.val_metric);
    let loss = pick(|p| p.train_loss);
    if val.is_empty() && loss.is_empty() {
        return Ok(None);
    }
    let (w, h) = (1100u32, 420u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing("learning curves"))?;
        let panels: Vec<(&str, String, &Lines<'_>)> = [
            ("validation", format!("validation {metric}"), &val),
            ("training loss", "train loss".to_string(), &loss),
        ]
        .into_iter()
        .filter(|(_, _, l)| !l.is_empty())
        .collect();
        let areas = if panels.len() == 2 {
            let (a, b) = root.split_horizontally(w / 2);
            vec![a, b]
        } else {
            vec![root.clone()]
        };
        for ((title, desc, lines), area) in panels.iter().zip(&areas) {
            // The legend goes where the curves are not: they fall towards the end when
            // smaller is better (losses), rise when larger is.
            let falling = *title == "training loss" || lower_is_better(metric);
            let at = if falling { SeriesLabelPosition::UpperRight } else { SeriesLabelPosition::LowerRight };
            curve_panel(area, title, desc, lines, at)?;
        }
        root.present().map_err(drawing("learning curves"))?;
    }
    Ok(Some(svg))
}

/// Row-normalised white-to-blue.
fn blue(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    RGBColor(mix(247.0, 8.0), mix(251.0, 69.0), mix(255.0, 148.0))
}

/// Viridis, from five stops: dark purple (0) to yellow (1).
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Black or white, whichever reads better on `c`.
fn ink(c: RGBColor) -> RGBColor {
    let lum = 0.299 * f64::from(c.0) + 0.587 * f64::from(c.1) + 0.114 * f64::from(c.2);
    if lum > 140.0 {
        BLACK
    } else {
        WHITE
    }
}

/// `s` cut to `n` characters, with an ellipsis when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn text_style(size: u32, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    (FONT, size).into_font().color(&color).pos(Pos::new(h, v))
}

/// One confusion matrix as a heat map: rows are true classes, columns predictions, colour
/// is the row share (so a rare class is as readable as a common one), the count is written in
/// each cell. `counts` is `[true, pred]` row-major over `classes`.
pub fn confusion_heatmap(title: &str, classes: &[String], counts: &[u64]) -> Result<String> {
    let k = classes.len();
    if k == 0 || Some(counts.len()) != k.checked_mul(k) {
        return Err(Error::arg(
            "confusion_heatmap",
            format!("{title}: {} counts for {k} classes (expected {k}²)", counts.len()),
        ));
    }
    let cell = (360 / k as u32).clamp(8, 64);
    let (left, top, bottom) = (100u32, 40u32, 46u32);
    let w = left + cell * k as u32 + 20;
    let h = top + cell * k as u32 + bottom;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w.max(260), h)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing("confusion matrix"))?;
        root.draw(&Text::new(clip(title, 40), (8, 8), text_style(16, BLACK, HPos::Left, VPos::Top)))
            .map_err(drawing("confusion matrix"))?;
        let label_chars = (cell as usize / 7).max(2);
        for t in 0..k {
            let row = counts.get(t * k..(t + 1) * k).unwrap_or(&[]);
            let total: u64 = row.iter().sum();
            let y0 = (top + cell * t as u32) as i32;
            for (p, &n) in row.iter().enumerate() {
                let x0 = (left + cell * p as u32) as i32;
                let share = if total == 0 { 0.0 } else { n as f64 / total as f64 };
                let fill = blue(share);
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell as i32, y0 + cell as i32)], fill.filled()))
                    .map_err(drawing("confusion matrix"))?;
                root.draw(&Rectangle::new(
                    [(x0, y0), (x0 + cell as i32, y0 + cell as i32)],
                    WHITE.stroke_width(1),
                ))
                .map_err(drawing("confusion matrix"))?;
                if cell >= 18 {
                    let size = (cell / 3).clamp(9, 15);
                    let c = (x0 + cell as i32 / 2, y0 + cell as i32 / 2);
                    root.draw(&Text::new(
                        n.to_string(),
                        c,
                        text_style(size, ink(fill), HPos::Center, VPos::Center),
                    ))
                    .map_err(drawing("confusion matrix"))?;
                }
            }
            if cell >= 12 {
                let name = classes.get(t).map(String::as_str).unwrap_or("");
                let at = (left as i32 - 6, y0 + cell as i32 / 2);
                root.draw(&Text::new(clip(name, 14), at, text_style(11, BLACK, HPos::Right, VPos::Center)))
                    .map_err(drawing("confusion matrix"))?;
                let at = ((left + cell * t as u32 + cell / 2) as i32, (top + cell * k as u32 + 4) as i32);
                root.draw(&Text::new(
                    clip(name, label_chars),
                    at,
                    text_style(11, BLACK, HPos::Center, VPos::Top),
                ))
                .map_err(drawing("confusion matrix"))?;
            }
        }
        let at = ((left + cell * k as u32 / 2) as i32, (h - 6) as i32);
        root.draw(&Text::new("predicted", at, text_style(12, BLACK, HPos::Center, VPos::Bottom)))
            .map_err(drawing("confusion matrix"))?;
        let at = (8, (top + cell * k as u32 / 2) as i32);
        root.draw(&Text::new("true", at, text_style(12, BLACK, HPos::Left, VPos::Center)))
            .map_err(drawing("confusion matrix"))?;
        root.present().map_err(drawing("confusion matrix"))?;
    }
    Ok(svg)
}

/// True positive rate at false positive rate `x`, linear between the curve's points.
fn tpr_at(roc: &RocCurve, x: f64) -> f64 {
    let pts: Vec<(f64, f64)> = roc
        .fpr
        .iter()
        .zip(&roc.tpr)
        .map(|(&f, &t)| (f, t))
        .filter(|(f, t)| f.is_finite() && t.is_finite())
        .collect();
    // The last point at or left of x is the top of any vertical segment there.
    match pts.iter().rposition(|p| p.0 <= x) {
        None => 0.0,
        Some(j) => match (pts.get(j), pts.get(j + 1)) {
            (Some(a), Some(b)) if b.0 > a.0 => a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0),
            (Some(a), _) => a.1,
            _ => 0.0,
        },
    }
}

/// ROC curves, one colour per strategy: each run faint, the vertical average over runs bold,
/// with the mean AUC over runs in the legend. `None` when no run has a ROC curve.
pub fn roc_curves(strategies: &[StrategyResult]) -> Result<Option<String>> {
    let with_roc: Vec<(usize, &StrategyResult, Vec<&RocCurve>)> = strategies
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (i, s, s.runs.iter().filter_map(|r| r.roc.as_ref()).filter(|c| !c.fpr.is_empty()).collect())
        })
        .filter(|(_, _, rocs): &(usize, &StrategyResult, Vec<&RocCurve>)| !rocs.is_empty())
        .collect();
    if with_roc.is_empty() {
        return Ok(None);
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (620, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing("ROC curves"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("ROC (test)", (FONT, 17))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(drawing("ROC curves"))?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .light_line_style(BLACK.mix(0.06))
            .draw()
            .map_err(drawing("ROC curves"))?;
        chart
            .draw_series(LineSeries::new([(0.0, 0.0), (1.0, 1.0)], BLACK.mix(0.3).stroke_width(1)))
            .map_err(drawing("ROC curves"))?;
        for (ci, s, rocs) in &with_roc {
            let color = strategy_color(*ci);
            if rocs.len() > 1 {
                for roc in rocs {
                    let pts = roc
                        .fpr
                        .iter()
                        .zip(&roc.tpr)
                        .map(|(&f, &t)| (f, t))
                        .filter(|(f, t)| f.is_finite() && t.is_finite());
                    chart
                        .draw_series(LineSeries::new(pts, color.mix(0.3).stroke_width(1)))
                        .map_err(drawing("ROC curves"))?;
                }
            }
            let mean = std::iter::once((0.0, 0.0)).chain((0..ROC_GRID).map(|g| {
                let x = g as f64 / (ROC_GRID - 1) as f64;
                (x, rocs.iter().map(|r| tpr_at(r, x)).sum::<f64>() / rocs.len() as f64)
            }));
            let aucs: Vec<f64> = rocs.iter().map(|r| r.auc).filter(|a| a.is_finite()).collect();
            let auc = if aucs.is_empty() { f64::NAN } else { aucs.iter().sum::<f64>() / aucs.len() as f64 };
            chart
                .draw_series(LineSeries::new(mean, color.stroke_width(2)))
                .map_err(drawing("ROC curves"))?
                .label(format!("{} (AUC {})", s.name, num(auc)))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 13))
            .draw()
            .map_err(drawing("ROC curves"))?;
        root.present().map_err(drawing("ROC curves"))?;
    }
    Ok(Some(svg))
}

/// Source-task metric before (grey) and after (blue) fine-tuning, one pair of bars per
/// retention entry, with the interval as whiskers. `None` when there are no entries.
pub fn retention_bars(retention: &[Retention]) -> Result<Option<String>> {
    if retention.is_empty() {
        return Ok(None);
    }
    let n = retention.len();
    let (lo, hi) = span(
        retention
            .iter()
            .flat_map(|r| [r.before.lo, r.before.hi, r.after.lo, r.after.hi, r.before.point, r.after.point]),
    );
    let y0 = lo.min(0.0);
    // A quarter of headroom above the tallest whisker keeps the legend off the bars.
    let y1 = hi.max(y0 + 1e-9) + 0.25 * (hi - y0).max(1e-9);
    let before = RGBColor(160, 160, 160);
    let after = RGBColor(31, 119, 180);
    let w = (140 * n as u32 + 120).clamp(420, 1100);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing("retention bars"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("source task, before and after fine-tuning", (FONT, 17))
            .margin(12)
            .x_label_area_size(46)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..n as f64, y0..y1)
            .map_err(drawing("retention bars"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("source-task metric")
            .light_line_style(BLACK.mix(0.06))
            .draw()
            .map_err(drawing("retention bars"))?;
        let bar = |i: usize, left: bool, v: f64| {
            let x = i as f64 + if left { 0.14 } else { 0.52 };
            let v = if v.is_finite() { v } else { y0 };
            Rectangle::new([(x, y0), (x + 0.34, v)], if left { before.filled() } else { after.filled() })
        };
        chart
            .draw_series(retention.iter().enumerate().map(|(i, r)| bar(i, true, r.before.point)))
            .map_err(drawing("retention bars"))?
            .label("before")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], before.filled()));
        chart
            .draw_series(retention.iter().enumerate().map(|(i, r)| bar(i, false, r.after.point)))
            .map_err(drawing("retention bars"))?
            .label("after")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], after.filled()));
        let whiskers = retention.iter().enumerate().flat_map(|(i, r)| {
            [(i as f64 + 0.31, r.before), (i as f64 + 0.69, r.after)]
                .into_iter()
                .filter(|(_, iv)| iv.lo.is_finite() && iv.hi.is_finite())
                .flat_map(|(x, iv)| {
                    [
                        PathElement::new(vec![(x, iv.lo), (x, iv.hi)], BLACK.stroke_width(1)),
                        PathElement::new(vec![(x - 0.05, iv.lo), (x + 0.05, iv.lo)], BLACK.stroke_width(1)),
                        PathElement::new(vec![(x - 0.05, iv.hi), (x + 0.05, iv.hi)], BLACK.stroke_width(1)),
                    ]
                })
        });
        chart.draw_series(whiskers).map_err(drawing("retention bars"))?;
        for (i, r) in retention.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.5, y0));
            root.draw(&Text::new(
                clip(&r.strategy, 20),
                (x, y + 8),
                text_style(13, BLACK, HPos::Center, VPos::Top),
            ))
            .map_err(drawing("retention bars"))?;
            root.draw(&Text::new(
                clip(&r.source_task, 24),
                (x, y + 25),
                text_style(11, RGBColor(90, 90, 90), HPos::Center, VPos::Top),
            ))
            .map_err(drawing("retention bars"))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 13))
            .draw()
            .map_err(drawing("retention bars"))?;
        root.present().map_err(drawing("retention bars"))?;
    }
    Ok(Some(svg))
}

/// The sweep as a heat map: rows are frozen depths, columns learning rates, the value written
/// in each cell, missing cells grey. Brighter is better whichever way the metric points. The
/// best cell has a black outline, the `--auto` choice (when it is a cell) a red one.
pub fn sensitivity_heatmap(sweep: &Sweep, auto: Option<&AutoChoice>) -> Result<String> {
    let (rows, cols) = (sweep.depths.len(), sweep.lrs.len());
    if rows.checked_mul(cols) != Some(sweep.values.len()) || rows == 0 || cols == 0 {
        return Err(Error::arg(
            "sensitivity_heatmap",
            format!("{} values for {rows} depths × {cols} learning rates", sweep.values.len()),
        ));
    }
    let lower = lower_is_better(&sweep.metric);
    let finite = || sweep.values.iter().flatten().copied().filter(|v| v.is_finite());
    let (min, max) = (finite().fold(f64::INFINITY, f64::min), finite().fold(f64::NEG_INFINITY, f64::max));
    let best = finite().fold(None, |b: Option<f64>, v| match b {
        Some(b) if (lower && b <= v) || (!lower && b >= v) => Some(b),
        _ => Some(v),
    });
    let cw = (720 / cols as u32).clamp(44, 130);
    let ch = (360 / rows as u32).clamp(26, 60);
    let (left, top, bottom) = (110u32, 44u32, 70u32);
    let w = (left + cw * cols as u32 + 20).max(360);
    let h = top + ch * rows as u32 + bottom;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing("sensitivity heat map"))?;
        let title = format!("validation {} by learning rate and frozen depth", sweep.metric);
        root.draw(&Text::new(clip(&title, 70), (8, 8), text_style(16, BLACK, HPos::Left, VPos::Top)))
            .map_err(drawing("sensitivity heat map"))?;
        let mut outlines = Vec::new();
        for (r, depth) in sweep.depths.iter().enumerate() {
            let y0 = (top + ch * r as u32) as i32;
            for (c, &rate) in sweep.lrs.iter().enumerate() {
                let x0 = (left + cw * c as u32) as i32;
                let cell = [(x0, y0), (x0 + cw as i32, y0 + ch as i32)];
                let value = sweep.values.get(r * cols + c).copied().flatten().filter(|v| v.is_finite());
                let (fill, label) = match value {
                    Some(v) => {
                        let t = if max > min { (v - min) / (max - min) } else { 0.5 };
                        (viridis(if lower { 1.0 - t } else { t }), num(v))
                    }
                    None => (RGBColor(200, 200, 200), "n/a".to_string()),
                };
                root.draw(&Rectangle::new(cell, fill.filled())).map_err(drawing("sensitivity heat map"))?;
                root.draw(&Rectangle::new(cell, WHITE.stroke_width(1)))
                    .map_err(drawing("sensitivity heat map"))?;
                let centre = (x0 + cw as i32 / 2, y0 + ch as i32 / 2);
                root.draw(&Text::new(label, centre, text_style(13, ink(fill), HPos::Center, VPos::Center)))
                    .map_err(drawing("sensitivity heat map"))?;
                if value.is_some() && value == best {
                    outlines.push(([(x0 + 2, y0 + 2), (x0 + cw as i32 - 2, y0 + ch as i32 - 2)], BLACK));
                }
                if auto
                    .is_some_and(|a| a.depth == *depth && (a.lr - rate).abs() <= 1e-9 * rate.abs().max(1e-30))
                {
                    outlines.push(([(x0 + 5, y0 + 5), (x0 + cw as i32 - 5, y0 + ch as i32 - 5)], RED));
                }
            }
            let at = (left as i32 - 8, y0 + ch as i32 / 2);
            root.draw(&Text::new(
                format!("depth {depth}"),
                at,
                text_style(12, BLACK, HPos::Right, VPos::Center),
            ))
            .map_err(drawing("sensitivity heat map"))?;
        }
        for (rect, color) in outlines {
            root.draw(&Rectangle::new(rect, color.stroke_width(3)))
                .map_err(drawing("sensitivity heat map"))?;
        }
        let grid_bottom = (top + ch * rows as u32) as i32;
        for (c, &rate) in sweep.lrs.iter().enumerate() {
            let at = ((left + cw * c as u32 + cw / 2) as i32, grid_bottom + 6);
            root.draw(&Text::new(lr(rate), at, text_style(12, BLACK, HPos::Center, VPos::Top)))
                .map_err(drawing("sensitivity heat map"))?;
        }
        let at = ((left + cw * cols as u32 / 2) as i32, grid_bottom + 26);
        root.draw(&Text::new("learning rate", at, text_style(12, BLACK, HPos::Center, VPos::Top)))
            .map_err(drawing("sensitivity heat map"))?;
        let legend = "black outline: best cell; red outline: the --auto choice; grey: no value";
        root.draw(&Text::new(
            legend,
            (8, h as i32 - 6),
            text_style(11, RGBColor(90, 90, 90), HPos::Left, VPos::Bottom),
        ))
        .map_err(drawing("sensitivity heat map"))?;
        root.present().map_err(drawing("sensitivity heat map"))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_interpolates_between_points_and_takes_the_top_of_vertical_steps() {
        let roc = RocCurve { fpr: vec![0.0, 0.0, 0.5, 1.0], tpr: vec![0.0, 0.6, 0.8, 1.0], auc: 0.0 };
        assert!((tpr_at(&roc, 0.0) - 0.6).abs() < 1e-12);
        assert!((tpr_at(&roc, 0.25) - 0.7).abs() < 1e-12);
        assert!((tpr_at(&roc, 0.75) - 0.9).abs() < 1e-12);
        assert!((tpr_at(&roc, 1.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn mean_by_step_averages_seeds_that_share_a_step() {
        let m = mean_by_step(&[vec![(0.0, 1.0), (10.0, 0.5)], vec![(0.0, 3.0), (10.0, 0.7), (20.0, 0.2)]]);
        assert_eq!(m, vec![(0.0, 2.0), (10.0, 0.6), (20.0, 0.2)]);
    }

    #[test]
    fn colour_maps_hit_their_ends() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(blue(0.0), RGBColor(247, 251, 255));
        assert_eq!(ink(RGBColor(68, 1, 84)), WHITE);
        assert_eq!(ink(RGBColor(253, 231, 37)), BLACK);
    }
}
