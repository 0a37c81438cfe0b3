//! The `whet compare` report: [`CompareResults`] holds every number a comparison produced and
//! is saved as results.json; [`render_html`] turns it into one self-contained report.html
//! (inline CSS, inline SVG plots drawn with plotters, images as PNG data URIs, no script and
//! no external reference), and [`write_report`] writes both files atomically.
//!
//! Every string that comes from user data (class names, strategy names, tokens, labels) is
//! HTML-escaped before it reaches the page.

//!
//! The page and its plots come with the `report` feature (part of `cli`); without it
//! [`write_report`] writes results.json alone.

// Without the page, the escaping and image helpers only serve their own tests.
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub mod attribution;
#[cfg_attr(not(feature = "report"), allow(dead_code))]
mod escape;
pub mod html;
#[cfg(feature = "report")]
pub mod lr_plot;
#[cfg(feature = "report")]
pub mod plots;
pub mod results;
#[cfg(feature = "report")]
mod sections;
mod serde_nan;

#[cfg(feature = "report")]
pub use html::{render_html, SECTIONS};
pub use html::{write_report, REPORT_HTML, RESULTS_JSON};
pub use results::{
    Attribution, AutoChoice, CompareResults, CurvePoint, PairedTest, Retention, RocCurve, SeedRun,
    StrategyResult, Sweep,
};
