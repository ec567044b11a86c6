//! Running an evaluation (validation grid, then one test run per model) and writing its table,
//! JSON and SVG chart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::data::{Dataset, Parts, Split, split};
use super::metrics::{Metrics, evaluate, top_k};
use super::models::{ItemItem, Scorer, TrainSet, Trained};
use crate::recommend::cf::AlsConfig;

/// One model's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Model family.
    pub model: String,
    /// The setting chosen on the validation split.
    pub chosen: serde_json::Value,
    /// Its validation NDCG@10.
    pub validation_ndcg_10: f64,
    /// Settings tried.
    pub tried: usize,
    /// Test metrics of the chosen setting, retrained on the whole training part.
    pub test: Metrics,
    /// Seconds to train the chosen setting on the whole training part.
    pub train_secs: f64,
}

/// A whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Dataset name.
    pub dataset: String,
    /// Split.
    pub split: String,
    /// Users, items, interactions.
    pub users: usize,
    /// Items.
    pub items: usize,
    /// Interactions.
    pub interactions: usize,
    /// Test users.
    pub test_users: usize,
    /// Rows, one per model.
    pub rows: Vec<Row>,
    /// Seconds for the whole run.
    pub total_secs: f64,
    /// Peak resident memory of the process (bytes), if known.
    pub peak_rss_bytes: Option<u64>,
}

/// One stage of the protocol: a training part and the interactions held out from it.
pub(super) struct Stage {
    /// The training part.
    pub(super) train: TrainSet,
    /// Held-out items per user.
    pub(super) test: HashMap<u32, Vec<u32>>,
    /// Training items per user (never recommended).
    pub(super) seen: HashMap<u32, HashSet<u32>>,
}

impl Stage {
    fn new(ds: &Dataset, parts: Parts) -> Self {
        let train = TrainSet::new(ds.n_users, ds.n_items, &parts.train);
        let mut seen: HashMap<u32, HashSet<u32>> = HashMap::new();
        for x in &parts.train {
            seen.entry(x.0).or_default().insert(x.1);
        }
        Self { train, test: parts.test, seen }
    }

    fn eval(&self, model: &Trained, vectors: Option<&[Vec<f32>]>) -> Metrics {
        let empty = Vec::new();
        self.eval_with(vectors, &|u, out| model.score(u, self.train.histories.get(&u).unwrap_or(&empty), out))
    }

    /// Metrics of any scorer on this stage's held-out items.
    pub(super) fn eval_with(&self, vectors: Option<&[Vec<f32>]>, score: &(dyn Fn(u32, &mut [f32]) + Sync)) -> Metrics {
        evaluate(self.train.n_items, &self.seen, &self.test, &self.train.popularity, vectors, score)
    }

    /// Top-`depth` rankings of a model for every test user.
    fn rankings(&self, model: &Trained, depth: usize) -> HashMap<u32, Vec<u32>> {
        let empty = Vec::new();
        let none = HashSet::new();
        self.test
            .par_iter()
            .map(|(u, _)| {
                let mut out = vec![0f32; self.train.n_items];
                model.score(*u, self.train.histories.get(u).unwrap_or(&empty), &mut out);
                (*u, top_k(&out, self.seen.get(u).unwrap_or(&none), depth))
            })
            .collect()
    }

    /// Metrics of the weighted RRF of precomputed rankings.
    fn eval_fused(&self, sources: &[HashMap<u32, Vec<u32>>], weights: &[f32], vectors: Option<&[Vec<f32>]>) -> Metrics {
        let k = crate::recommend::RRF_K as f32;
        evaluate(self.train.n_items, &self.seen, &self.test, &self.train.popularity, vectors, &|u, out| {
            for (src, w) in sources.iter().zip(weights) {
                if *w == 0.0 {
                    continue;
                }
                for (r, i) in src[&u].iter().enumerate() {
                    out[*i as usize] += w / (k + r as f32 + 1.0);
                }
            }
        })
    }
}

fn grid(quick: bool) -> Vec<(String, Vec<Scorer>)> {
    let knn: Vec<Scorer> = if quick {
        vec![Scorer::ItemKnn { k: 100, shrink: 0.0 }]
    } else {
        [50, 100, 200, 400].into_iter().flat_map(|k| [0.0, 10.0].map(|shrink| Scorer::ItemKnn { k, shrink })).collect()
    };
    // RP3beta gets as many settings as ItemKNN, around the best of a wider validation sweep on
    // ML-100K (alpha 0 to 0.8, beta 0.3 to 0.7, k 50 to 1000; validation scores only).
    let rp3: Vec<Scorer> = if quick {
        vec![Scorer::Rp3Beta { alpha: 0.1, beta: 0.6, k: 400 }]
    } else {
        let mut v = vec![];
        for alpha in [0.0f32, 0.1] {
            for beta in [0.6f32, 0.7] {
                for k in [200, 400] {
                    v.push(Scorer::Rp3Beta { alpha, beta, k });
                }
            }
        }
        v
    };
    let ease: Vec<Scorer> = if quick {
        vec![Scorer::Ease { reg: 250.0 }]
    } else {
        [50.0, 100.0, 250.0, 500.0, 1000.0].map(|reg| Scorer::Ease { reg }).to_vec()
    };
    let als: Vec<Scorer> = if quick {
        vec![Scorer::Ials(AlsConfig { factors: 64, reg: 1.0, alpha: 10.0, iterations: 10, ..AlsConfig::default() })]
    } else {
        let mut v = vec![];
        for factors in [64, 128] {
            for reg in [1.0, 10.0, 50.0] {
                for alpha in [0.5, 2.0, 10.0] {
                    v.push(Scorer::Ials(AlsConfig { factors, reg, alpha, iterations: 15, ..AlsConfig::default() }));
                }
            }
        }
        v
    };
    vec![
        ("TopPop".into(), vec![Scorer::TopPop]),
        ("ItemKNN".into(), knn),
        ("RP3beta".into(), rp3),
        ("EASE".into(), ease),
        ("iALS".into(), als),
        ("content".into(), vec![Scorer::Content]),
    ]
}

/// Evaluate every model on `ds` split by `how`: settings chosen on a validation split cut from
/// the training part, then retrained on the whole training part and scored on the test split.
pub fn run(
    ds: &Dataset,
    how: Split,
    vectors: Option<Arc<Vec<Vec<f32>>>>,
    quick: bool,
    rerank: bool,
    progress: &dyn Fn(&str),
) -> Report {
    let started = Instant::now();
    let parts = split(&ds.interactions, how);
    let valid_parts = split(&parts.train, how);
    let test = Stage::new(ds, parts);
    let valid = Stage::new(ds, valid_parts);
    let vref = vectors.as_deref().map(|v| v.as_slice());
    let mut rows = Vec::new();
    let mut best: HashMap<String, Scorer> = HashMap::new();
    for (family, settings) in grid(quick) {
        if family == "content" && vectors.is_none() {
            continue;
        }
        let mut chosen: Option<(Scorer, Metrics)> = None;
        for s in &settings {
            let m = valid.eval(&s.train(&valid.train, vectors.as_ref()), vref);
            progress(&format!(
                "validation {family} {}: NDCG@10 {:.4}",
                serde_json::to_string(s).unwrap_or_default(),
                m.ndcg_10
            ));
            if chosen.as_ref().is_none_or(|(_, b)| m.ndcg_10 > b.ndcg_10) {
                chosen = Some((s.clone(), m));
            }
        }
        let (s, vm) = chosen.expect("every grid has a setting");
        let t0 = Instant::now();
        let trained = s.train(&test.train, vectors.as_ref());
        let train_secs = t0.elapsed().as_secs_f64();
        let tm = test.eval(&trained, vref);
        progress(&format!("test {family}: NDCG@10 {:.4}, Recall@20 {:.4}", tm.ndcg_10, tm.recall_20));
        rows.push(Row {
            model: family.clone(),
            chosen: serde_json::to_value(&s).unwrap_or_default(),
            validation_ndcg_10: vm.ndcg_10,
            tried: settings.len(),
            test: tm,
            train_secs,
        });
        best.insert(family, s);
    }

    // aisle's hybrid: the server's sources fused by weighted RRF; the co_purchase item-item
    // model and the weights are chosen on validation too.
    let als = match best.get("iALS") {
        Some(Scorer::Ials(c)) => *c,
        _ => AlsConfig::default(),
    };
    let knn = match best.get("ItemKNN") {
        Some(Scorer::ItemKnn { k, shrink }) => ItemItem::Knn { k: *k, shrink: *shrink },
        _ => ItemItem::Knn { k: 100, shrink: 0.0 },
    };
    let rp3 = match best.get("RP3beta") {
        Some(Scorer::Rp3Beta { alpha, beta, k }) => ItemItem::Rp3Beta { alpha: *alpha, beta: *beta, k: *k },
        _ => ItemItem::Rp3Beta { alpha: 0.1, beta: 0.6, k: 400 },
    };
    let ease = match best.get("EASE") {
        Some(Scorer::Ease { reg }) => ItemItem::Ease { reg: *reg, k: 500 },
        _ => ItemItem::Ease { reg: 250.0, k: 500 },
    };
    let depth = 500;
    let sources = |stage: &Stage, item_item: ItemItem| -> Vec<HashMap<u32, Vec<u32>>> {
        let mut out = vec![
            stage.rankings(&Trained::Als(crate::recommend::cf::train_als(&stage.train.matrix, &als, |_, _| {})), depth),
            stage.rankings(&Trained::Knn(item_item.train(&stage.train.matrix)), depth),
        ];
        out.push(match &vectors {
            Some(v) => stage.rankings(&Trained::Content(v.clone()), depth),
            None => stage.test.keys().map(|u| (*u, vec![])).collect(),
        });
        out.push(stage.rankings(&Trained::Pop(stage.train.popularity.clone()), depth));
        out
    };
    let weight_grid: Vec<[f32; 4]> = {
        let mut g = vec![];
        for c in [0.0, 0.25, 0.5, 0.75, 1.0] {
            for co in [0.0, 0.25, 0.5, 0.75, 1.0] {
                for content in [0.0, 0.05, 0.1] {
                    for trending in [0.0, 0.05] {
                        if c + co > 0.0 {
                            g.push([c, co, content, trending]);
                        }
                    }
                }
            }
        }
        g
    };
    // Chosen by NDCG@10 + Recall@20 on validation: the two figures the comparison is about.
    let mut chosen: Option<(ItemItem, [f32; 4], f64, f64)> = None;
    for item_item in [knn, rp3, ease] {
        let srcs = sources(&valid, item_item);
        for w in &weight_grid {
            let m = valid.eval_fused(&srcs, w, None);
            let objective = m.ndcg_10 + m.recall_20;
            if chosen.as_ref().is_none_or(|c| objective > c.3) {
                chosen = Some((item_item, *w, m.ndcg_10, objective));
            }
        }
    }
    let (item_item, weights, vndcg, _) = chosen.expect("a hybrid setting");
    progress(&format!("validation hybrid: {item_item:?} weights {weights:?}: NDCG@10 {vndcg:.4}"));
    let t0 = Instant::now();
    let srcs = sources(&test, item_item);
    let train_secs = t0.elapsed().as_secs_f64();
    let tm = test.eval_fused(&srcs, &weights, vref);
    progress(&format!("test hybrid: NDCG@10 {:.4}, Recall@20 {:.4}", tm.ndcg_10, tm.recall_20));
    rows.push(Row {
        model: "aisle hybrid".into(),
        chosen: serde_json::json!({"collab": als, "co_purchase": item_item,
            "weights": {"collab": weights[0], "co_purchase": weights[1], "content": weights[2], "trending": weights[3]}}),
        validation_ndcg_10: vndcg,
        tried: weight_grid.len() * 3,
        test: tm,
        train_secs,
    });
    // The learned re-ranker over the hybrid's candidates, with its fused and random orders.
    if rerank {
        let hybrid = super::rerank::Hybrid { als, item_item, weights, vectors: vectors.as_ref() };
        match super::rerank::run(ds, &valid, &test, &hybrid, progress) {
            Ok(r) => rows.extend(r),
            Err(e) => progress(&format!("the re-ranker could not be trained: {e}")),
        }
    }
    Report {
        dataset: ds.name.clone(),
        split: how.to_string(),
        users: ds.n_users,
        items: ds.n_items,
        interactions: ds.interactions.len(),
        test_users: test.test.len(),
        rows,
        total_secs: started.elapsed().as_secs_f64(),
        peak_rss_bytes: crate::measure::peak_rss_bytes(),
    }
}

/// The report as a Markdown table.
pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "{}: {} users, {} items, {} interactions; split {}, {} test users; full ranking\n\n",
        r.dataset, r.users, r.items, r.interactions, r.split, r.test_users
    );
    s.push_str(
        "| model | NDCG@10 | Recall@20 | Recall@10 | HR@10 | MRR@20 | coverage@20 | avg pop@20 | Gini@20 | tail@20 | ILD@10 | train s |\n",
    );
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in &r.rows {
        let m = &row.test;
        s.push_str(&format!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.3} | {:.1} | {:.3} | {:.3} | {:.3} | {:.2} |\n",
            row.model,
            m.ndcg_10,
            m.recall_20,
            m.recall_10,
            m.hr_10,
            m.mrr_20,
            m.coverage_20,
            m.avg_pop_20,
            m.gini_20,
            m.long_tail_20,
            m.ild_10,
            row.train_secs
        ));
    }
    s.push_str(&format!(
        "\nwhole run {:.0} s, peak memory {} MiB\n",
        r.total_secs,
        r.peak_rss_bytes.map(|b| (b / (1024 * 1024)).to_string()).unwrap_or_else(|| "?".into())
    ));
    s
}

/// A grouped bar chart of NDCG@10 and Recall@20 per model, as SVG.
pub fn svg(r: &Report) -> crate::Result<String> {
    use plotters::prelude::*;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let err = |e: &dyn std::fmt::Display| crate::Error::Internal(format!("drawing the chart: {e}"));
    let max = r.rows.iter().flat_map(|x| [x.test.ndcg_10, x.test.recall_20]).fold(0.0f64, f64::max).max(1e-9) * 1.15;
    let groups = r.rows.len().max(1) as f64;
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, (760, 380)).into_drawing_area();
        area.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("{} ({}): NDCG@10 and Recall@20, full ranking", r.dataset, r.split), ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..groups, 0f64..max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .light_line_style(WHITE)
            .y_labels(5)
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(|e| err(&e))?;
        let ndcg = RGBColor(0x4c, 0x78, 0xa8);
        let recall = RGBColor(0xf5, 0x85, 0x18);
        // Each model a pair of bars at `g + 0.1` (NDCG@10) and `g + 0.5` (Recall@20).
        let bar = |g: usize, b: usize| g as f64 + 0.1 + b as f64 * 0.4;
        for (b, (name, color)) in [("NDCG@10", ndcg), ("Recall@20", recall)].into_iter().enumerate() {
            let value = |row: &Row| if b == 0 { row.test.ndcg_10 } else { row.test.recall_20 };
            chart
                .draw_series(
                    r.rows.iter().enumerate().map(|(g, row)| {
                        Rectangle::new([(bar(g, b), 0.0), (bar(g, b) + 0.38, value(row))], color.filled())
                    }),
                )
                .map_err(|e| err(&e))?
                .label(name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
            // The value above each bar.
            chart
                .draw_series(r.rows.iter().enumerate().map(|(g, row)| {
                    Text::new(
                        format!("{:.3}", value(row)),
                        (bar(g, b) + 0.02, value(row) + max * 0.05),
                        ("sans-serif", 10).into_font(),
                    )
                }))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| err(&e))?;
        // The model's name under its pair of bars, outside the plotting area.
        for (g, row) in r.rows.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(bar(g, 1), 0.0));
            let style = TextStyle::from(("sans-serif", 12).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
            area.draw(&Text::new(row.model.clone(), (px, py + 8), style)).map_err(|e| err(&e))?;
        }
        area.present().map_err(|e| err(&e))?;
    }
    Ok(out)
}
