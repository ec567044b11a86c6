//! The bench report: one [`Row`] per figure with its anchor and ratio, the whole [`Report`],
//! and its outputs: a plain-text table, JSON (through `Serialize`) and an SVG chart of the ratios
//! (drawn with plotters).
//!
//! Not for: running benchmarks (the sub-benchmark modules), facts about the machine
//! ([`mod@super::machine`]), or writing files (`crate::cli` does).

use serde::Serialize;

use super::machine::Machine;
use crate::error::{Error, Result};

/// One figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Sub-benchmark.
    pub bench: String,
    /// What was measured.
    pub metric: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The anchor it is compared with.
    pub anchor: Option<String>,
    /// The anchor's figure (same unit).
    pub anchor_value: Option<f64>,
    /// value / anchor (for latencies: anchor / value, so that above 1 is always better).
    pub ratio: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Where.
    pub machine: Machine,
    /// `--quick`.
    pub quick: bool,
    /// Seconds the run took.
    pub seconds: f64,
    /// The figures.
    pub rows: Vec<Row>,
    /// What could not run, and why.
    pub skipped: Vec<String>,
}

/// A figure without an anchor (add one with [`Row::against`]).
pub fn row(bench: &str, metric: impl Into<String>, value: f64, unit: &str) -> Row {
    Row {
        bench: bench.into(),
        metric: metric.into(),
        value,
        unit: unit.into(),
        anchor: None,
        anchor_value: None,
        ratio: None,
    }
}

impl Row {
    /// Compare with an anchor's figure (same unit); `higher_is_better` sets which way the ratio
    /// goes, so that above 1 is always better than the anchor.
    pub fn against(mut self, anchor: impl Into<String>, value: f64, higher_is_better: bool) -> Self {
        self.anchor = Some(anchor.into());
        self.anchor_value = Some(value);
        if value > 0.0 && self.value > 0.0 {
            self.ratio = Some(if higher_is_better { self.value / value } else { value / self.value });
        }
        self
    }
}

impl Report {
    /// A plain-text table.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut s = format!(
            "aisle bench{} on {} ({} of {} CPUs used; SIMD {}; built for {}; device {}), commit {}, {}\n\n",
            if self.quick { " --quick" } else { "" },
            m.cpu,
            m.threads,
            m.cpus,
            m.simd.join(" "),
            if m.built_for.is_empty() { "baseline x86-64".into() } else { m.built_for.join(" ") },
            m.device,
            m.commit,
            m.date
        );
        s.push_str(&format!(
            "{:<9} {:<62} {:>12} {:<9} {:<26} {:>10} {:>7}\n",
            "bench", "metric", "value", "unit", "anchor", "anchor", "ratio"
        ));
        for r in &self.rows {
            s.push_str(&format!(
                "{:<9} {:<62} {:>12} {:<9} {:<26} {:>10} {:>7}\n",
                r.bench,
                r.metric,
                fmt(r.value),
                r.unit,
                r.anchor.as_deref().unwrap_or("-"),
                r.anchor_value.map(fmt).unwrap_or_else(|| "-".into()),
                r.ratio.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
            ));
        }
        for k in &self.skipped {
            s.push_str(&format!("skipped: {k}\n"));
        }
        s.push_str(&format!("\n{:.0} s in all. Ratios: above 1 is better than the anchor.\n", self.seconds));
        s
    }

    /// An SVG chart of the ratios to the anchors.
    pub fn svg(&self) -> Result<String> {
        use plotters::prelude::*;
        let rows: Vec<&Row> = self.rows.iter().filter(|r| r.ratio.is_some()).collect();
        let mut out = String::new();
        {
            let height = 80 + 26 * rows.len().max(1) as u32;
            let area = SVGBackend::with_string(&mut out, (960, height)).into_drawing_area();
            area.fill(&WHITE).map_err(|e| Error::Internal(e.to_string()))?;
            let max = rows.iter().filter_map(|r| r.ratio).fold(1.2f64, f64::max) * 1.1;
            let mut chart = ChartBuilder::on(&area)
                .caption(
                    format!("aisle bench: ratio to the anchor (above 1 is better), {}", self.machine.cpu),
                    ("sans-serif", 15),
                )
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(430)
                .build_cartesian_2d(0f64..max, 0usize..rows.len().max(1))
                .map_err(|e| Error::Internal(e.to_string()))?;
            let labels: Vec<String> = rows
                .iter()
                .map(|r| format!("{}: {} ({})", r.bench, r.metric, r.anchor.as_deref().unwrap_or("")))
                .collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(rows.len().max(1))
                .y_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
                .y_label_style(("sans-serif", 11))
                .draw()
                .map_err(|e| Error::Internal(e.to_string()))?;
            chart
                .draw_series(rows.iter().enumerate().map(|(i, r)| {
                    let v = r.ratio.unwrap_or(0.0);
                    let color = if v >= 1.0 { RGBColor(46, 125, 50) } else { RGBColor(198, 40, 40) };
                    Rectangle::new([(0.0, i), (v, i + 1)], color.mix(0.7).filled())
                }))
                .map_err(|e| Error::Internal(e.to_string()))?;
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(1.0, 0), (1.0, rows.len().max(1))], BLACK)))
                .map_err(|e| Error::Internal(e.to_string()))?;
            area.present().map_err(|e| Error::Internal(e.to_string()))?;
        }
        Ok(out)
    }
}

/// A figure with as many decimals as its size needs.
fn fmt(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}
