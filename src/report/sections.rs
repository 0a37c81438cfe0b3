//! The body of each report section, as HTML. Each function returns the section's content
//! (the `<section>` and `<h2>` around it are added by [`render_html`](super::render_html)),
//! and says in one line when there is nothing to show.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::attribution::{blend_heat, png_data_uri, token_spans};
use super::escape::{
    bytes, count, duration, escape, interval, lower_is_better, lr, num, p_relation, p_value, signed_interval,
};
use super::plots;
use super::results::{Attribution, CompareResults, StrategyResult};
use crate::error::Result;

/// Classes named in the summary; more are counted, not listed.
const MAX_CLASSES_NAMED: usize = 12;

/// The paragraph that stands for a section without data.
fn empty(what: &str) -> String {
    format!("<p class=\"empty\">{}</p>\n", escape(what))
}

/// The strategy with the best point value of `metric`, and the runner-up.
fn ranked<'a>(r: &'a CompareResults, metric: &str) -> Vec<(&'a StrategyResult, f64)> {
    let mut scored: Vec<(&StrategyResult, f64)> = r
        .strategies
        .iter()
        .filter_map(|s| s.metrics.get(metric).map(|i| (s, i.point)))
        .filter(|(_, v)| v.is_finite())
        .collect();
    let lower = lower_is_better(metric);
    scored.sort_by(|a, b| if lower { a.1.total_cmp(&b.1) } else { b.1.total_cmp(&a.1) });
    scored
}

/// What was compared, where, the winner and its margin, and the `--auto` choice.
pub(crate) fn summary(r: &CompareResults) -> String {
    let mut h = String::new();
    let names: Vec<String> = r.strategies.iter().map(|s| format!("<b>{}</b>", escape(&s.name))).collect();
    let runs: usize = r.strategies.iter().map(|s| s.runs.len()).sum();
    // Name the classes when they fit on a line; a 1000-class task just gets its count.
    let mut classes: Vec<String> = r.classes.iter().take(MAX_CLASSES_NAMED).map(|c| escape(c)).collect();
    if r.classes.len() > MAX_CLASSES_NAMED {
        classes.push("…".to_string());
    }
    let _ = writeln!(
        h,
        "<p>{} strategies ({}) fine-tuning <b>{}</b> on <b>{}</b> ({}), {} runs in all; {} classes ({}). \
         Strategies are ranked by <b>{}</b> on the pooled test items (95% bootstrap intervals).</p>",
        r.strategies.len(),
        names.join(", "),
        escape(&r.model),
        escape(&r.data),
        escape(&r.task),
        runs,
        r.classes.len(),
        classes.join(", "),
        escape(&r.primary_metric),
    );
    let ranking = ranked(r, &r.primary_metric);
    match ranking.as_slice() {
        [] => h.push_str(&empty(&format!("No strategy has a value for {}.", r.primary_metric))),
        [(best, v), rest @ ..] => {
            let iv = best.metrics.get(&r.primary_metric).map(interval).unwrap_or_else(|| num(*v));
            let _ = write!(
                h,
                "<p class=\"best\">Best: <b>{}</b> with {} {}",
                escape(&best.name),
                escape(&r.primary_metric),
                iv
            );
            if let Some((second, w)) = rest.first() {
                let _ = write!(
                    h,
                    ", {} ahead of <b>{}</b> ({})",
                    num((v - w).abs()),
                    escape(&second.name),
                    num(*w)
                );
            }
            h.push_str(".</p>\n");
            if let Some(t) = &best.vs_reference {
                let _ = writeln!(
                    h,
                    "<p>Against {}: {} difference {} (paired bootstrap p {}, McNemar p {}).</p>",
                    escape(&t.reference),
                    escape(&t.metric),
                    signed_interval(&t.diff),
                    escape(&p_relation(t.paired_p)),
                    escape(&p_relation(t.mcnemar_p))
                );
            }
        }
    }
    if let Some(a) = &r.auto {
        let _ = writeln!(
            h,
            "<p class=\"auto\"><b>--auto</b> chose frozen depth <b>{}</b> at learning rate <b>{}</b>: {}</p>",
            a.depth,
            lr(a.lr),
            escape(&a.reason)
        );
    }
    if r.environment.is_empty() {
        h.push_str(&empty("No environment was recorded."));
    } else {
        h.push_str("<table class=\"env\">\n");
        for (k, v) in &r.environment {
            let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
        }
        h.push_str("</table>\n");
    }
    h
}

/// Every strategy × every metric; then, in a second table so neither needs a scroll bar, the
/// paired test against the reference and what each strategy cost.
pub(crate) fn metrics_table(r: &CompareResults) -> String {
    if r.strategies.is_empty() {
        return empty("No strategies were run.");
    }
    let mut keys: Vec<&str> = Vec::new();
    if r.strategies.iter().any(|s| s.metrics.contains_key(&r.primary_metric)) {
        keys.push(&r.primary_metric);
    }
    let others: BTreeSet<&str> =
        r.strategies.iter().flat_map(|s| s.metrics.keys().map(String::as_str)).collect();
    keys.extend(others.into_iter().filter(|k| *k != r.primary_metric));
    let best: Vec<Option<f64>> = keys.iter().map(|k| ranked(r, k).first().map(|(_, v)| *v)).collect();
    let mut h = String::from("<div class=\"scroll\"><table class=\"metrics\">\n<thead><tr><th>strategy</th>");
    for k in &keys {
        let _ = write!(h, "<th>{}</th>", escape(k));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for s in &r.strategies {
        let _ = write!(h, "<tr><th title=\"{}\">{}</th>", escape(&s.description), escape(&s.name));
        for (k, b) in keys.iter().zip(&best) {
            match s.metrics.get(*k) {
                Some(i) if Some(i.point) == *b => {
                    let _ = write!(h, "<td class=\"top\">{}</td>", interval(i));
                }
                Some(i) => {
                    let _ = write!(h, "<td>{}</td>", interval(i));
                }
                None => h.push_str("<td class=\"na\">—</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str(
        "</tbody></table></div>\n<p class=\"note\">Each cell: point estimate [95% interval] over the \
         pooled test items; bold: best in its column.</p>\n",
    );

    let reference = r.strategies.iter().find_map(|s| s.vs_reference.as_ref().map(|t| t.reference.clone()));
    let vs = reference.map(|n| format!("vs {}", escape(&n))).unwrap_or_else(|| "vs reference".to_string());
    let _ = writeln!(
        h,
        "<div class=\"scroll\"><table class=\"costs\">\n<thead><tr><th>strategy</th><th>difference {vs}</th>\
         <th>paired bootstrap p</th><th>McNemar p</th><th>train time</th><th>peak memory</th>\
         <th>trainable params</th></tr></thead>\n<tbody>"
    );
    for s in &r.strategies {
        let _ = write!(h, "<tr><th>{}</th>", escape(&s.name));
        match &s.vs_reference {
            Some(t) => {
                // The metric is named in the cell only when it is not the primary one.
                let named = if t.metric == r.primary_metric {
                    String::new()
                } else {
                    format!("{} ", escape(&t.metric))
                };
                let _ = write!(
                    h,
                    "<td>{named}{}</td><td>{}</td><td>{}</td>",
                    signed_interval(&t.diff),
                    escape(&p_value(t.paired_p)),
                    escape(&p_value(t.mcnemar_p))
                );
            }
            None => {
                h.push_str("<td class=\"na\">reference</td><td class=\"na\">—</td><td class=\"na\">—</td>")
            }
        }
        let _ = writeln!(
            h,
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            duration(s.train_secs),
            bytes(s.peak_bytes),
            count(s.trainable_params)
        );
    }
    let _ = writeln!(
        h,
        "</tbody></table></div>\n<p class=\"note\">Differences are paired on the same test items: this \
         strategy minus the reference, in {}, with a 95% paired-bootstrap interval.</p>",
        escape(&r.primary_metric)
    );
    h
}

/// Learning curves of every strategy in one figure.
pub(crate) fn curves(r: &CompareResults) -> Result<String> {
    Ok(match plots::learning_curves(&r.strategies, &r.primary_metric)? {
        Some(svg) => format!(
            "<figure>{svg}<figcaption>Faint lines: single seeds; bold: their mean at each step.</figcaption></figure>\n"
        ),
        None => empty("No learning curves were recorded."),
    })
}

/// One confusion heat map per strategy, counts summed over its runs.
pub(crate) fn confusion(r: &CompareResults) -> Result<String> {
    let k = r.classes.len();
    let mut h = String::new();
    for s in &r.strategies {
        let mats: Vec<&Vec<u64>> = s.runs.iter().filter_map(|run| run.confusion.as_ref()).collect();
        if mats.is_empty() || k == 0 {
            continue;
        }
        let mut sum = vec![0u64; k * k];
        for m in &mats {
            for (acc, &n) in sum.iter_mut().zip(m.iter()) {
                *acc = acc.saturating_add(n);
            }
        }
        let title = if mats.len() > 1 { format!("{} ({} runs)", s.name, mats.len()) } else { s.name.clone() };
        h.push_str(&format!(
            "<figure class=\"small\">{}</figure>\n",
            plots::confusion_heatmap(&title, &r.classes, &sum)?
        ));
    }
    Ok(if h.is_empty() {
        empty("No confusion matrices were recorded.")
    } else {
        format!(
            "<div class=\"row\">{h}</div>\n<p class=\"note\">Rows: true class; columns: predicted. Colour: share of \
             the row; numbers: test items, summed over runs.</p>\n"
        )
    })
}

/// ROC curves: the positive class of a binary task, micro-averaged one-vs-rest otherwise.
pub(crate) fn roc(r: &CompareResults) -> Result<String> {
    let kind = if r.classes.len() > 2 {
        " Multi-class: micro-averaged one-vs-rest (every item × class pair scored by its probability)."
    } else {
        ""
    };
    Ok(match plots::roc_curves(&r.strategies)? {
        Some(svg) => format!(
            "<figure>{svg}<figcaption>Faint lines: single runs; bold: their vertical average. AUC: mean over \
             runs.{kind}</figcaption></figure>\n"
        ),
        None => empty("No ROC curves were recorded."),
    })
}

/// Source-task retention bars and their numbers.
pub(crate) fn retention(r: &CompareResults) -> Result<String> {
    let Some(svg) = plots::retention_bars(&r.retention)? else {
        return Ok(empty("Retention of the source task was not measured."));
    };
    let mut h = format!("<figure>{svg}</figure>\n<table class=\"metrics\"><thead><tr><th>strategy</th>\
                         <th>source task</th><th>before</th><th>after</th><th>change</th></tr></thead><tbody>\n");
    for x in &r.retention {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&x.strategy),
            escape(&x.source_task),
            interval(&x.before),
            interval(&x.after),
            {
                let d = x.after.point - x.before.point;
                if d.is_finite() && d >= 0.0 {
                    format!("+{}", num(d))
                } else {
                    num(d)
                }
            }
        );
    }
    h.push_str("</tbody></table>\n");
    Ok(h)
}

/// The learning rate × frozen depth heat map.
pub(crate) fn sensitivity(r: &CompareResults) -> Result<String> {
    let Some(sweep) = &r.sweep else {
        return Ok(empty("No learning-rate × frozen-depth sweep was run."));
    };
    let missing = sweep.values.iter().filter(|v| v.is_none_or(|x| !x.is_finite())).count();
    let mut h = format!("<figure>{}</figure>\n", plots::sensitivity_heatmap(sweep, r.auto.as_ref())?);
    let _ = writeln!(
        h,
        "<p class=\"note\">{} of {} cells have a value. Frozen depth: blocks frozen from the input side.</p>",
        sweep.values.len() - missing,
        sweep.values.len()
    );
    Ok(h)
}

/// Saliency over images and tokens.
pub(crate) fn attributions(r: &CompareResults) -> Result<String> {
    if r.attributions.is_empty() {
        return Ok(empty("No attributions were computed."));
    }
    let mut h = String::from("<div class=\"row\">\n");
    for a in &r.attributions {
        match a {
            Attribution::Image { title, label, width, height, rgb, heat } => {
                let photo = png_data_uri(*width, *height, rgb.clone())?;
                let overlay = png_data_uri(*width, *height, blend_heat(*width, *height, rgb, heat)?)?;
                // Small inputs (CIFAR-sized) are scaled up with square pixels so the map stays legible.
                let shown = (*width).clamp(192, 320);
                let _ = writeln!(
                    h,
                    "<div class=\"card\"><h3>{t}</h3><p class=\"label\">{l}</p><div class=\"pair\">\
                     <figure><img src=\"{photo}\" width=\"{shown}\" alt=\"{t}: input\"><figcaption>input</figcaption></figure>\
                     <figure><img src=\"{overlay}\" width=\"{shown}\" alt=\"{t}: saliency\"><figcaption>saliency \
                     overlay</figcaption></figure></div></div>",
                    t = escape(title),
                    l = escape(label),
                );
            }
            Attribution::Text { title, label, tokens, scores } => {
                let _ = writeln!(
                    h,
                    "<div class=\"card text\"><h3>{}</h3><p class=\"label\">{}</p><p class=\"tokens\">{}</p>\
                     <p class=\"note\">red: pushed towards the prediction; blue: against it.</p></div>",
                    escape(title),
                    escape(label),
                    token_spans(tokens, scores)
                );
            }
        }
    }
    h.push_str("</div>\n");
    Ok(h)
}
