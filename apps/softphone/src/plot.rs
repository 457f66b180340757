//! PNG plot of a call's jitter-buffer delay over time against the network
//! delay the received packets met (plotters, bitmap backend). Labels use
//! DejaVu Sans when the system has it; without it the plot has no text.

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use std::path::Path;

/// Fonts tried for labels, in order.
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

fn font() -> bool {
    FONTS.iter().any(|path| {
        std::fs::read(path).is_ok_and(|bytes| {
            // plotters keeps registered fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
        })
    })
}

/// Draws `buffer` (s, ms) as a line over `network` (s, ms) as dots.
pub fn delay_plot(
    path: &Path,
    title: &str,
    network: &[(f64, f64)],
    buffer: &[(f64, f64)],
) -> anyhow::Result<()> {
    let e = |e: &dyn std::fmt::Display| anyhow::anyhow!("plot: {e}");
    let labels = font();
    let root = BitMapBackend::new(path, (1200, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let all = || network.iter().chain(buffer);
    let end = all().map(|p| p.0).fold(1.0, f64::max);
    let start = all().map(|p| p.0).fold(end, f64::min);
    let top = all().map(|p| p.1).fold(100.0, f64::max) * 1.1;
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if labels {
        b.caption(title, ("sans-serif", 22))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let mut chart = b
        .build_cartesian_2d(start..end, 0.0..top)
        .map_err(|x| e(&x))?;
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc("call time (s)").y_desc("delay (ms)");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|x| e(&x))?;
    let grey = RGBColor(150, 150, 150);
    let s = chart
        .draw_series(network.iter().map(|&p| Circle::new(p, 1, grey.filled())))
        .map_err(|x| e(&x))?;
    if labels {
        s.label("Bob's downlink hop delay (Alice's uplink adds to it)")
            .legend(move |(x, y)| Circle::new((x + 10, y), 3, grey.filled()));
    }
    let s = chart
        .draw_series(LineSeries::new(
            buffer.iter().copied(),
            BLUE.stroke_width(2),
        ))
        .map_err(|x| e(&x))?;
    if labels {
        s.label("jitter buffer delay")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
