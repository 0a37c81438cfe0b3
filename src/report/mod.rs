//! The `whet compare` report: [`CompareResults`] holds every number a comparison produced and
//! is saved as results.json; [`render_html`] turns it into one self-contained report.html
//! (inline CSS, inline SVG plots drawn with plotters, images as PNG data URIs, no script and
//! no external reference), and [`write_report`] writes both files atomically.
//!
//! Every string that comes from user data (class names, strategy names, tokens, labels) is
//! HTML-escaped before it reaches the page.

pub mod attribution;
mod escape;
pub mod html;
pub mod plots;
pub mod results;
mod sections;
mod serde_nan;

pub use html::{render_html, write_report, REPORT_HTML, RESULTS_JSON, SECTIONS};
pub use results::{
    Attribution, AutoChoice, CompareResults, CurvePoint, PairedTest, Retention, RocCurve, SeedRun,
    StrategyResult, Sweep,
};
