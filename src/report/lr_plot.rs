//! The plot of `whet lr-find`: loss against the learning rate on a log axis, the raw losses
//! faint, the smoothed curve bold, and the two suggestions marked.

use plotters::prelude::*;

use super::plots::{drawing, span, FONT};
use crate::error::Result;
use crate::train::lr_finder::LrReport;

/// An SVG document of `r`.
pub fn lr_finder_svg(r: &LrReport) -> Result<String> {
    let what = "learning-rate range test";
    let points = |ys: &[f64]| -> Vec<(f64, f64)> {
        r.lrs.iter().zip(ys).filter(|(_, y)| y.is_finite()).map(|(&x, &y)| (x, y)).collect()
    };
    let (raw, smooth) = (points(&r.losses), points(&r.smoothed));
    let lo = r.lrs.first().copied().unwrap_or(1e-7);
    let hi = r.lrs.last().copied().filter(|&h| h > lo).unwrap_or(lo * 10.0);
    // The raw losses' late spikes would flatten the curve that matters: the range is the
    // smoothed loss's.
    let (y0, y1) = span(smooth.iter().map(|p| p.1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 450)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing(what))?;
        let mut chart = ChartBuilder::on(&root)
            .caption("learning-rate range test", (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((lo..hi).log_scale(), y0..y1)
            .map_err(drawing(what))?;
        chart
            .configure_mesh()
            .x_desc("learning rate")
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .y_desc("training loss")
            .light_line_style(BLACK.mix(0.06))
            .draw()
            .map_err(drawing(what))?;
        let clipped = raw.iter().map(|&(x, y)| (x, y.clamp(y0, y1)));
        chart.draw_series(LineSeries::new(clipped, BLUE.mix(0.25))).map_err(drawing(what))?;
        chart
            .draw_series(LineSeries::new(smooth.iter().copied(), BLUE.stroke_width(2)))
            .map_err(drawing(what))?
            .label("smoothed loss")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLUE.stroke_width(2)));
        for (lr, name, color) in
            [(r.steepest, "steepest descent", RED), (r.min_over_10, "minimum / 10", GREEN)]
        {
            let label = format!("{name}: {lr:.2e}");
            chart
                .draw_series(LineSeries::new([(lr, y0), (lr, y1)], color.stroke_width(1)))
                .map_err(drawing(what))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(1)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 13))
            .draw()
            .map_err(drawing(what))?;
        root.present().map_err(drawing(what))?;
    }
    Ok(svg)
}
