//! Collaborative filtering on implicit feedback: iALS (conjugate gradient), EASE (closed form)
//! and item-kNN (cosine), with fold-in of new users against trained item factors.
//!
//! The interaction matrix holds one weight `r_ui > 0` per (user, item) seen: the sum of the
//! user's time-decayed, kind-weighted events on the item. iALS (Hu, Koren, Volinsky 2008)
//! minimises `sum_ui c_ui (p_ui - x_u.y_i)^2 + reg (|x|^2 + |y|^2)` with `p_ui = [r_ui > 0]` and
//! `c_ui = 1 + alpha r_ui`, each half-step solved by a few conjugate-gradient steps warm-started
//! from the previous factors (Takács et al. 2011). EASE (Steck 2019) is `B = I - P diag(1/diag P)`
//! with `P = (X'X + reg I)^-1` and a zero diagonal. Everything is parallel with rayon.

use rayon::prelude::*;

/// A sparse user x item matrix of positive weights, by rows (users) and by columns (items).
#[derive(Debug, Clone)]
pub struct Interactions {
    /// Users.
    pub n_users: usize,
    /// Items.
    pub n_items: usize,
    /// Per user: (item, weight), items ascending.
    pub by_user: Vec<Vec<(u32, f32)>>,
    /// Per item: (user, weight), users ascending.
    pub by_item: Vec<Vec<(u32, f32)>>,
}

impl Interactions {
    /// Build from (user, item, weight) triples; repeated pairs add up, non-positive totals drop.
    pub fn new(n_users: usize, n_items: usize, triples: impl IntoIterator<Item = (u32, u32, f32)>) -> Self {
        let mut by_user: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_users];
        for (u, i, w) in triples {
            by_user[u as usize].push((i, w));
        }
        for row in &mut by_user {
            row.sort_by_key(|x| x.0);
            let mut merged: Vec<(u32, f32)> = Vec::with_capacity(row.len());
            for &(i, w) in row.iter() {
                match merged.last_mut() {
                    Some(last) if last.0 == i => last.1 += w,
                    _ => merged.push((i, w)),
                }
            }
            merged.retain(|x| x.1 > 0.0);
            *row = merged;
        }
        let mut by_item: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n_items];
        for (u, row) in by_user.iter().enumerate() {
            for &(i, w) in row {
                by_item[i as usize].push((u as u32, w));
            }
        }
        Self { n_users, n_items, by_user, by_item }
    }

    /// Number of stored pairs.
    pub fn nnz(&self) -> usize {
        self.by_user.iter().map(Vec::len).sum()
    }
}

/// iALS hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlsConfig {
    /// Latent factors.
    pub factors: usize,
    /// L2 regularisation.
    pub reg: f32,
    /// Confidence scale: `c = 1 + alpha r`.
    pub alpha: f32,
    /// Alternating iterations.
    pub iterations: usize,
    /// Conjugate-gradient steps per solve.
    pub cg_steps: usize,
    /// Seed of the initial factors.
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        Self { factors: 64, reg: 0.05, alpha: 10.0, iterations: 15, cg_steps: 3, seed: 42 }
    }
}

/// Trained factors, row-major.
#[derive(Debug, Clone)]
pub struct Factors {
    /// Factors per vector.
    pub k: usize,
    /// `n_users x k`.
    pub users: Vec<f32>,
    /// `n_items x k`.
    pub items: Vec<f32>,
}

impl Factors {
    /// User `u`'s factors.
    pub fn user(&self, u: usize) -> &[f32] {
        &self.users[u * self.k..(u + 1) * self.k]
    }
    /// Item `i`'s factors.
    pub fn item(&self, i: usize) -> &[f32] {
        &self.items[i * self.k..(i + 1) * self.k]
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Y'Y` of row-major `n x k` factors (k x k, row-major), in f64 for accuracy.
fn gram(y: &[f32], k: usize) -> Vec<f32> {
    let n = y.len() / k;
    let parts: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .fold(
            || vec![0f64; k * k],
            |mut g, r| {
                let row = &y[r * k..(r + 1) * k];
                for a in 0..k {
                    let ra = row[a] as f64;
                    for b in 0..k {
                        g[a * k + b] += ra * row[b] as f64;
                    }
                }
                g
            },
        )
        .collect();
    let mut g = vec![0f64; k * k];
    for p in parts {
        for (x, y) in g.iter_mut().zip(p) {
            *x += y;
        }
    }
    g.into_iter().map(|x| x as f32).collect()
}

/// Solve one row of one half-step: `(G + sum (c-1) y y' + reg I) x = sum c y` by `steps` CG
/// steps from `x` (in place).
fn cg_solve(x: &mut [f32], g: &[f32], other: &[f32], k: usize, row: &[(u32, f32)], c: &AlsConfig, steps: usize) {
    let (alpha, reg) = (c.alpha, c.reg);
    let apply = |v: &[f32], out: &mut [f32]| {
        for a in 0..k {
            out[a] = dot(&g[a * k..(a + 1) * k], v) + reg * v[a];
        }
        for &(j, w) in row {
            let y = &other[j as usize * k..(j as usize + 1) * k];
            let s = alpha * w * dot(y, v);
            for a in 0..k {
                out[a] += s * y[a];
            }
        }
    };
    let mut ax = vec![0f32; k];
    apply(x, &mut ax);
    let mut r = vec![0f32; k];
    for &(j, w) in row {
        let y = &other[j as usize * k..(j as usize + 1) * k];
        let c = 1.0 + alpha * w;
        for a in 0..k {
            r[a] += c * y[a];
        }
    }
    for a in 0..k {
        r[a] -= ax[a];
    }
    let mut p = r.clone();
    let mut rs = dot(&r, &r);
    let mut ap = vec![0f32; k];
    for _ in 0..steps {
        if rs < 1e-12 {
            break;
        }
        apply(&p, &mut ap);
        let step = rs / dot(&p, &ap).max(1e-20);
        for a in 0..k {
            x[a] += step * p[a];
            r[a] -= step * ap[a];
        }
        let next = dot(&r, &r);
        let beta = next / rs;
        rs = next;
        for a in 0..k {
            p[a] = r[a] + beta * p[a];
        }
    }
}

/// One half-step: update every row of `target` against `other`.
fn half_step(target: &mut [f32], other: &[f32], rows: &[Vec<(u32, f32)>], c: &AlsConfig) {
    let k = c.factors;
    let g = gram(other, k);
    target.par_chunks_mut(k).zip(rows.par_iter()).for_each(|(x, row)| {
        cg_solve(x, &g, other, k, row, c, c.cg_steps);
    });
}

/// Train iALS; `on_iteration(i, loss)` is called after each iteration with the objective.
pub fn train_als(data: &Interactions, c: &AlsConfig, mut on_iteration: impl FnMut(usize, f64)) -> Factors {
    use rand::{Rng, SeedableRng};
    let k = c.factors;
    let mut rng = rand::rngs::StdRng::seed_from_u64(c.seed);
    let scale = 0.1 / (k as f32).sqrt();
    let mut users: Vec<f32> = (0..data.n_users * k).map(|_| rng.random_range(-scale..scale)).collect();
    let mut items: Vec<f32> = (0..data.n_items * k).map(|_| rng.random_range(-scale..scale)).collect();
    for it in 0..c.iterations {
        half_step(&mut users, &items, &data.by_user, c);
        half_step(&mut items, &users, &data.by_item, c);
        let f = Factors { k, users, items };
        on_iteration(it, als_loss(data, &f, c));
        (users, items) = (f.users, f.items);
    }
    Factors { k, users, items }
}

/// The iALS objective over every (user, item) pair, computed in O(nnz k + (U + I) k^2).
pub fn als_loss(data: &Interactions, f: &Factors, c: &AlsConfig) -> f64 {
    let k = f.k;
    let g = gram(&f.items, k);
    let data_term: f64 = (0..data.n_users)
        .into_par_iter()
        .map(|u| {
            let x = f.user(u);
            // sum over all items of s^2 = x' G x
            let mut all = 0f64;
            for a in 0..k {
                all += x[a] as f64 * dot(&g[a * k..(a + 1) * k], x) as f64;
            }
            let mut seen = 0f64;
            for &(i, w) in &data.by_user[u] {
                let s = dot(x, f.item(i as usize)) as f64;
                let cw = 1.0 + (c.alpha * w) as f64;
                seen += cw * (1.0 - s).powi(2) - s * s;
            }
            all + seen
        })
        .sum();
    let norms = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
    data_term + c.reg as f64 * (norms(&f.users) + norms(&f.items))
}

/// Fold a user in: the exact least-squares user step against fixed item factors (what one
/// training half-step would give with many CG steps), for users and events newer than training.
pub fn fold_in(items: &[f32], k: usize, gram_items: &[f32], row: &[(u32, f32)], c: &AlsConfig) -> Vec<f32> {
    // A = G + sum (c-1) y y' + reg I ; b = sum c y ; solve by Cholesky (k x k).
    let mut a: Vec<f64> = gram_items.iter().map(|x| *x as f64).collect();
    let mut b = vec![0f64; k];
    for d in 0..k {
        a[d * k + d] += c.reg as f64;
    }
    for &(j, w) in row {
        let y = &items[j as usize * k..(j as usize + 1) * k];
        let extra = (c.alpha * w) as f64;
        for p in 0..k {
            b[p] += (1.0 + extra) * y[p] as f64;
            for q in 0..k {
                a[p * k + q] += extra * y[p] as f64 * y[q] as f64;
            }
        }
    }
    let l = cholesky(&a, k).expect("A is positive definite (reg > 0)");
    solve_cholesky(&l, k, &b).into_iter().map(|x| x as f32).collect()
}

/// The Gram matrix of item factors, for [`fold_in`].
pub fn item_gram(f: &Factors) -> Vec<f32> {
    gram(&f.items, f.k)
}

/// Lower Cholesky factor of a symmetric positive-definite `n x n` matrix (row-major).
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for j in 0..n {
        let mut d = a[j * n + j];
        for p in 0..j {
            d -= l[j * n + p] * l[j * n + p];
        }
        if d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        l[j * n + j] = d;
        // Rows below j: independent of each other.
        let (done, rest) = l.split_at_mut((j + 1) * n);
        let lj = &done[j * n..j * n + j];
        rest.par_chunks_mut(n).enumerate().for_each(|(r, row)| {
            let i = j + 1 + r;
            let s: f64 = a[i * n + j] - row[..j].iter().zip(lj).map(|(x, y)| x * y).sum::<f64>();
            row[j] = s / d;
        });
    }
    Some(l)
}

fn solve_cholesky(l: &[f64], n: usize, b: &[f64]) -> Vec<f64> {
    let mut y = b.to_vec();
    for i in 0..n {
        let s: f64 = (0..i).map(|p| l[i * n + p] * y[p]).sum();
        y[i] = (y[i] - s) / l[i * n + i];
    }
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|p| l[p * n + i] * y[p]).sum();
        y[i] = (y[i] - s) / l[i * n + i];
    }
    y
}

/// Inverse of a symmetric positive-definite matrix through its Cholesky factor.
pub fn spd_inverse(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let l = cholesky(a, n)?;
    // Columns of the inverse: solve L L' x = e_c, in parallel.
    let cols: Vec<Vec<f64>> = (0..n)
        .into_par_iter()
        .map(|c| {
            let mut e = vec![0f64; n];
            e[c] = 1.0;
            solve_cholesky(&l, n, &e)
        })
        .collect();
    let mut inv = vec![0f64; n * n];
    for (c, col) in cols.into_iter().enumerate() {
        for r in 0..n {
            inv[r * n + c] = col[r];
        }
    }
    Some(inv)
}

/// EASE's item-item weights (`n_items x n_items`, row-major; zero diagonal) from binary
/// interactions.
pub fn train_ease(data: &Interactions, reg: f64) -> Vec<f32> {
    let n = data.n_items;
    let mut g = vec![0f64; n * n];
    for row in &data.by_user {
        for &(i, _) in row {
            for &(j, _) in row {
                g[i as usize * n + j as usize] += 1.0;
            }
        }
    }
    for d in 0..n {
        g[d * n + d] += reg;
    }
    let p = spd_inverse(&g, n).expect("X'X + reg I is positive definite");
    let mut b = vec![0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            if i != j {
                b[i * n + j] = (-p[i * n + j] / p[j * n + j]) as f32;
            }
        }
    }
    b
}

/// Item-kNN: cosine similarity of item columns (binary), keeping each item's `k` nearest.
/// Returns, per item, its neighbours with similarities.
pub fn train_item_knn(data: &Interactions, k: usize, shrink: f32) -> Vec<Vec<(u32, f32)>> {
    let n = data.n_items;
    let counts: Vec<f32> = data.by_item.iter().map(|c| c.len() as f32).collect();
    (0..n)
        .into_par_iter()
        .map(|i| {
            let mut co = vec![0f32; n];
            for &(u, _) in &data.by_item[i] {
                for &(j, _) in &data.by_user[u as usize] {
                    co[j as usize] += 1.0;
                }
            }
            co[i] = 0.0;
            let mut sims: Vec<(u32, f32)> = co
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0.0)
                .map(|(j, c)| (j as u32, c / ((counts[i] * counts[j]).sqrt() + shrink)))
                .collect();
            sims.sort_by(|a, b| b.1.total_cmp(&a.1));
            sims.truncate(k);
            sims
        })
        .collect()
}

/// RP3beta (Paudel et al. 2016, as tuned by Dacrema et al. 2019): the probability of a
/// three-step random walk item -> user -> item on the binary interaction graph, each step's
/// transition probability raised to `alpha`, divided by the target item's popularity raised to
/// `beta` (so that popular items do not win every walk). Returns, per item, its `k` strongest
/// neighbours (the items it leads to), like [`train_item_knn`].
pub fn train_rp3beta(data: &Interactions, alpha: f32, beta: f32, k: usize) -> Vec<Vec<(u32, f32)>> {
    let n = data.n_items;
    let user_step: Vec<f32> =
        data.by_user.iter().map(|r| if r.is_empty() { 0.0 } else { (1.0 / r.len() as f32).powf(alpha) }).collect();
    let item_step: Vec<f32> =
        data.by_item.iter().map(|c| if c.is_empty() { 0.0 } else { (1.0 / c.len() as f32).powf(alpha) }).collect();
    let damp: Vec<f32> =
        data.by_item.iter().map(|c| if c.is_empty() { 0.0 } else { (c.len() as f32).powf(-beta) }).collect();
    (0..n)
        .into_par_iter()
        .map(|i| {
            let mut walk = vec![0f32; n];
            for &(u, _) in &data.by_item[i] {
                let p = item_step[i] * user_step[u as usize];
                for &(j, _) in &data.by_user[u as usize] {
                    walk[j as usize] += p;
                }
            }
            walk[i] = 0.0;
            let mut out: Vec<(u32, f32)> =
                walk.iter().enumerate().filter(|(_, w)| **w > 0.0).map(|(j, w)| (j as u32, w * damp[j])).collect();
            out.sort_by(|a, b| b.1.total_cmp(&a.1));
            out.truncate(k);
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> Interactions {
        // 6 users, 5 items, two taste groups.
        let t =
            [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 3), (3, 4), (4, 3), (4, 4), (5, 2), (5, 3)];
        Interactions::new(6, 5, t.iter().map(|&(u, i)| (u, i, 1.0)))
    }

    #[test]
    fn rp3beta_walks_within_taste_groups_and_damps_popular_items() {
        let data = toy();
        // alpha 1, beta 0: each item's walk probabilities (its own return excluded) sum to at most 1.
        let plain = train_rp3beta(&data, 1.0, 0.0, 10);
        for (i, row) in plain.iter().enumerate() {
            let total: f32 = row.iter().map(|x| x.1).sum();
            assert!(total > 0.0 && total <= 1.0 + 1e-6, "item {i}: {total}");
            assert!(row.windows(2).all(|w| w[0].1 >= w[1].1), "strongest first");
            assert!(row.iter().all(|x| x.0 as usize != i), "no self-loop");
        }
        // Item 0's walks reach item 1 (its group) before items 3 and 4 (the other group's).
        let rank = |row: &[(u32, f32)], j: u32| row.iter().position(|x| x.0 == j).unwrap_or(usize::MAX);
        assert!(rank(&plain[0], 1) < rank(&plain[0], 3).min(rank(&plain[0], 4)), "{:?}", plain[0]);
        // Item 1 (the most popular, 3 users) loses weight with beta > 0 relative to beta 0.
        let damped = train_rp3beta(&data, 1.0, 0.8, 10);
        let weight = |row: &[(u32, f32)], j: u32| row.iter().find(|x| x.0 == j).map(|x| x.1).unwrap_or(0.0);
        let share = |row: &[(u32, f32)]| weight(row, 1) / row.iter().map(|x| x.1).sum::<f32>();
        assert!(share(&damped[2]) < share(&plain[2]), "{:?} vs {:?}", damped[2], plain[2]);
        // k cuts each row.
        assert!(train_rp3beta(&data, 0.5, 0.3, 1).iter().all(|r| r.len() <= 1));
    }

    #[test]
    fn als_loss_decreases_and_matches_the_brute_force_objective() {
        let data = toy();
        let c = AlsConfig { factors: 2, reg: 0.5, alpha: 5.0, iterations: 8, cg_steps: 4, seed: 1 };
        let mut losses = vec![];
        let f = train_als(&data, &c, |_, l| losses.push(l));
        for w in losses.windows(2) {
            assert!(w[1] <= w[0] + 1e-6, "loss went up: {losses:?}");
        }
        assert!(losses.last().unwrap() < &(losses[0] * 0.9), "{losses:?}");
        // The fast objective equals the definition summed over every pair.
        let mut brute = 0f64;
        for u in 0..data.n_users {
            for i in 0..data.n_items {
                let w = data.by_user[u].iter().find(|x| x.0 == i as u32).map(|x| x.1).unwrap_or(0.0);
                let p = if w > 0.0 { 1.0 } else { 0.0 };
                let cw = 1.0 + (c.alpha * w) as f64;
                brute += cw * (p - dot(f.user(u), f.item(i)) as f64).powi(2);
            }
        }
        let norms = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
        brute += c.reg as f64 * (norms(&f.users) + norms(&f.items));
        assert!((brute - als_loss(&data, &f, &c)).abs() < 1e-6 * brute.max(1.0), "{brute}");
        // Users of the same group score their group's unseen item above the other group's.
        let s = |u: usize, i: usize| dot(f.user(u), f.item(i));
        assert!(s(0, 2) > s(0, 4), "user 0 (items 0, 1) should prefer item 2 over 4");
    }

    #[test]
    fn fold_in_equals_the_trained_user_factor() {
        let data = toy();
        // Many CG steps: each half-step is then an exact solve, as fold-in is.
        let c = AlsConfig { factors: 3, reg: 0.1, alpha: 5.0, iterations: 10, cg_steps: 50, seed: 3 };
        let f = train_als(&data, &c, |_, _| {});
        // The last user half-step used the item factors before the final item step: redo the
        // user step against the final items and compare with fold-in.
        let g = item_gram(&f);
        for u in 0..data.n_users {
            let mut x = f.user(u).to_vec();
            cg_solve(&mut x, &g, &f.items, f.k, &data.by_user[u], &c, 50);
            let folded = fold_in(&f.items, f.k, &g, &data.by_user[u], &c);
            for (a, b) in x.iter().zip(&folded) {
                assert!((a - b).abs() < 1e-4, "user {u}: {x:?} vs {folded:?}");
            }
        }
    }

    /// EASE on a hand-checked example: three users, two items, reg 1.
    #[test]
    fn ease_matches_a_hand_computed_example() {
        // Users: {0,1}, {0,1}, {0}. X'X = [[3,2],[2,2]]; + reg(1) I = [[4,2],[2,3]].
        // P = inverse = 1/8 [[3,-2],[-2,4]]. B_01 = -P_01/P_11 = (2/8)/(4/8) = 0.5;
        // B_10 = -P_10/P_00 = (2/8)/(3/8) = 2/3.
        let data = Interactions::new(3, 2, [(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.0), (2, 0, 1.0)]);
        let b = train_ease(&data, 1.0);
        assert_eq!(b[0], 0.0);
        assert_eq!(b[3], 0.0);
        assert!((b[1] - 0.5).abs() < 1e-6, "{b:?}");
        assert!((b[2] - 2.0 / 3.0).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn spd_inverse_inverts() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let inv = spd_inverse(&a, 3).unwrap();
        for r in 0..3 {
            for c in 0..3 {
                let v: f64 = (0..3).map(|p| a[r * 3 + p] * inv[p * 3 + c]).sum();
                assert!((v - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn item_knn_is_cosine() {
        let data = Interactions::new(3, 2, [(0, 0, 1.0), (0, 1, 1.0), (1, 0, 1.0), (1, 1, 1.0), (2, 0, 1.0)]);
        let nn = train_item_knn(&data, 10, 0.0);
        // co(0,1) = 2, |0| = 3, |1| = 2: cosine 2 / sqrt(6).
        assert!((nn[0][0].1 - 2.0 / 6f32.sqrt()).abs() < 1e-6);
        assert_eq!(nn[1][0].0, 0);
    }
}
