//! Sampling: repetition penalty, temperature, top-k, top-p, min-p, seeded randomness, and an
//! optional constraint on which tokens are allowed (for JSON output).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Sampling parameters of one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1: all).
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely (0: none).
    pub min_p: f32,
    /// Penalty (> 1 discourages) for tokens among the last `repeat_last_n` (1: off).
    pub repetition_penalty: f32,
    /// OpenAI's frequency penalty: subtracted once per occurrence in the window.
    pub frequency_penalty: f32,
    /// OpenAI's presence penalty: subtracted once if the token occurs in the window.
    pub presence_penalty: f32,
    /// Window of the repetition penalty.
    pub repeat_last_n: usize,
    /// Seed of the random generator.
    pub seed: u64,
    /// Never end at an end-of-generation token (benchmarks that need exactly `max_tokens`).
    pub ignore_eos: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            repeat_last_n: 64,
            seed: 0,
            ignore_eos: false,
        }
    }
}

/// A sampler with its own random generator.
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

impl Sampler {
    /// A sampler for `params`.
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    /// Choose the next token. `history` feeds the repetition penalty; `allowed`, when given,
    /// restricts the choice (the most likely allowed tokens are considered first).
    pub fn sample(
        &mut self,
        logits: &mut [f32],
        history: &[u32],
        allowed: Option<&mut dyn FnMut(u32) -> bool>,
    ) -> Option<u32> {
        let p = &self.params;
        if p.repetition_penalty != 1.0 || p.frequency_penalty != 0.0 || p.presence_penalty != 0.0 {
            let start = history.len().saturating_sub(p.repeat_last_n);
            let mut counts: std::collections::HashMap<u32, f32> = std::collections::HashMap::new();
            for &t in &history[start..] {
                *counts.entry(t).or_default() += 1.0;
            }
            for (t, n) in counts {
                if let Some(l) = logits.get_mut(t as usize) {
                    if p.repetition_penalty != 1.0 {
                        *l = if *l > 0.0 { *l / p.repetition_penalty } else { *l * p.repetition_penalty };
                    }
                    *l -= n * p.frequency_penalty + p.presence_penalty;
                }
            }
        }
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        // Candidates in decreasing logit order: fully sorted only when needed.
        let keep = if p.temperature <= 0.0 {
            1
        } else if p.top_k > 0 {
            p.top_k
        } else {
            order.len()
        };
        let mut candidates: Vec<u32> = match allowed {
            None => {
                if keep < order.len() {
                    order.select_nth_unstable_by(keep - 1, by_logit);
                    order.truncate(keep);
                }
                order.sort_unstable_by(by_logit);
                order
            }
            Some(allowed) => {
                order.sort_unstable_by(by_logit);
                let mut out = Vec::with_capacity(keep);
                for t in order {
                    if allowed(t) {
                        out.push(t);
                        if out.len() == keep {
                            break;
                        }
                    }
                }
                out
            }
        };
        if candidates.is_empty() {
            return None;
        }
        if p.temperature <= 0.0 {
            return Some(candidates[0]);
        }
        let max = logits[candidates[0] as usize];
        let mut probs: Vec<f32> =
            candidates.iter().map(|&t| ((logits[t as usize] - max) / p.temperature).exp()).collect();
        let sum: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= sum);
        if p.top_p < 1.0 {
            let mut cumulative = 0.0;
            let mut cut = probs.len();
            for (i, x) in probs.iter().enumerate() {
                cumulative += x;
                if cumulative >= p.top_p {
                    cut = i + 1;
                    break;
                }
            }
            probs.truncate(cut);
            candidates.truncate(cut);
        }
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p;
            let cut = probs.iter().take_while(|&&x| x >= floor).count().max(1);
            probs.truncate(cut);
            candidates.truncate(cut);
        }
        let total: f32 = probs.iter().sum();
        let mut r = self.rng.random::<f32>() * total;
        for (t, x) in candidates.iter().zip(&probs) {
            if r < *x {
                return Some(*t);
            }
            r -= x;
        }
        candidates.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams { temperature, top_k: 0, top_p: 1.0, min_p: 0.0, seed: 7, ..SamplingParams::default() }
    }

    #[test]
    fn greedy_takes_the_argmax_and_respects_constraints() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], None), Some(1));
        let mut only_even = |t: u32| t.is_multiple_of(2);
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[], Some(&mut only_even)), Some(2));
        let mut none = |_: u32| false;
        assert_eq!(s.sample(&mut [0.1, 3.0], &[], Some(&mut none)), None);
    }

    #[test]
    fn same_seed_same_choices_and_top_k_one_is_greedy() {
        let logits = vec![1.0, 1.1, 0.9, 1.05];
        let run = |seed| {
            let mut s = Sampler::new(SamplingParams { seed, ..params(1.0) });
            (0..50).map(|_| s.sample(&mut logits.clone(), &[], None).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let mut s = Sampler::new(SamplingParams { top_k: 1, ..params(1.0) });
        assert!((0..20).all(|_| s.sample(&mut logits.clone(), &[], None) == Some(1)));
    }

    #[test]
    fn min_p_and_top_p_cut_the_tail() {
        let logits = vec![5.0, 0.0, 0.0, 0.0];
        let mut s = Sampler::new(SamplingParams { min_p: 0.5, ..params(1.0) });
        assert!((0..50).all(|_| s.sample(&mut logits.clone(), &[], None) == Some(0)));
        let mut s = Sampler::new(SamplingParams { top_p: 0.5, ..params(1.0) });
        assert!((0..50).all(|_| s.sample(&mut logits.clone(), &[], None) == Some(0)));
    }

    #[test]
    fn repetition_penalty_discourages_recent_tokens() {
        let mut s = Sampler::new(SamplingParams { repetition_penalty: 10.0, ..params(0.0) });
        assert_eq!(s.sample(&mut [2.0, 1.5], &[0], None), Some(1));
    }
}
