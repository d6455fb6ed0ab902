//! Server-side charts: scales, units and SVG rendering.

mod gauge;
mod scale;
mod svg;
pub mod units;

pub use gauge::{bar_gauge, gauge, sparkline};
pub use scale::{nice_ticks, query_step, time_ticks};
pub use svg::{
    ChartSeries, HeatColumn, PALETTE, TimeSeriesChart, bars, decumulate, heatmap, segments,
    time_series, time_series_bounded,
};
