//! Server-side charts: scales, units and SVG rendering.

mod scale;
mod svg;
pub mod units;

pub use scale::{nice_ticks, query_step, time_ticks};
pub use svg::{
    ChartSeries, HeatColumn, PALETTE, TimeSeriesChart, bars, decumulate, heatmap, segments,
    time_series,
};
