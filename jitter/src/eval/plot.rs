//! PNG plot of network delay against each buffer's playout delay over
//! time (plotters, bitmap backend). Labels use DejaVu Sans when the system
//! has it; without a font the plot is drawn without text.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::{EvalError, EvalReport};

/// Fonts tried for labels, in order.
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn font() -> bool {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

fn err(e: impl std::fmt::Display) -> EvalError {
    EvalError::Input(format!("plot: {e}"))
}

/// Draws the plot for the buffers named in `show`.
pub fn plot(path: &Path, title: &str, report: &EvalReport, show: &[&str]) -> Result<(), EvalError> {
    let labels = font();
    let root = BitMapBackend::new(path, (1400, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let end_s = report
        .frames
        .last()
        .map_or(1.0, |f| f.send_ms / 1000.0)
        .max(1.0);
    let mut delays: Vec<f64> = report
        .frames
        .iter()
        .zip(&report.arrivals)
        .filter_map(|(f, a)| a.map(|a| a - f.send_ms))
        .collect();
    delays.sort_by(f64::total_cmp);
    // Clip the y axis at the 99.5th percentile so a single outage does not
    // flatten everything else.
    let top = delays
        .get((delays.len() as f64 * 0.995) as usize)
        .copied()
        .unwrap_or(200.0)
        .max(250.0)
        * 1.1;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if labels {
        builder
            .caption(title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let mut chart = builder
        .build_cartesian_2d(0.0..end_s, 0.0..top)
        .map_err(err)?;
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc("send time (s)").y_desc("delay (ms)");
    } else {
        mesh.disable_x_mesh()
            .disable_y_mesh()
            .x_labels(0)
            .y_labels(0);
    }
    mesh.draw().map_err(err)?;
    let net = report
        .frames
        .iter()
        .zip(&report.arrivals)
        .filter_map(|(f, a)| a.map(|a| (f.send_ms / 1000.0, (a - f.send_ms).min(top))));
    let series = chart
        .draw_series(net.map(|p| Circle::new(p, 1, RGBColor(150, 150, 150).filled())))
        .map_err(err)?;
    if labels {
        series
            .label("network delay")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, RGBColor(150, 150, 150).filled()));
    }
    let colours = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, name) in show.iter().enumerate() {
        let Some((run, _)) = report.buffers.iter().find(|(r, _)| r.name == *name) else {
            continue;
        };
        let colour = colours[i % colours.len()];
        let mut pts: Vec<(f64, f64)> = report
            .frames
            .iter()
            .filter_map(|f| {
                run.playout_ms
                    .get(&f.frame)
                    .map(|t| (f.send_ms / 1000.0, (t - f.send_ms).min(top)))
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let series = chart
            .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
            .map_err(err)?;
        if labels {
            series.label(*name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        }
    }
    if labels {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
