//! Score formulas and selection of the best candidate.

use std::hash::{BuildHasher, Hasher};

use crate::metrics::MetricValue;

/// Default stickiness weight of the current cluster.
pub const DEFAULT_STICKINESS: f64 = 0.1;

/// `(Σ v_i·w_i, Σ w_i)` over fetched metrics.
fn weighted_sums(metrics: &[MetricValue]) -> (f64, f64) {
    metrics.iter().fold((0.0, 0.0), |(vw, w), m| {
        (vw + m.value * m.weight, w + m.weight)
    })
}

/// `numerator / denominator`, or 0 when the denominator is 0 (all weights 0).
fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator == 0.0 {
        0.0
    } else {
        numerator / denominator
    }
}

/// Score of a cluster: with metrics `(Σ v_i·w_i + s_v·s_w) / (Σ w_i + s_w)`, without
/// metrics `s_w × s_v`, where `(s_w, s_v) = (stickiness, 1)` for the cluster the
/// application is currently scheduled to and `(0, 0)` otherwise.
pub fn cluster_score(metrics: Option<&[MetricValue]>, is_current: bool, stickiness: f64) -> f64 {
    let (s_w, s_v) = if is_current {
        (stickiness, 1.0)
    } else {
        (0.0, 0.0)
    };
    match metrics {
        Some(metrics) if !metrics.is_empty() => {
            let (vw, w) = weighted_sums(metrics);
            ratio(vw + s_v * s_w, w + s_w)
        }
        _ => s_w * s_v,
    }
}

/// Score of a cloud or project: the weighted mean `Σ v_i·w_i / Σ w_i`, or 0 without
/// metrics.
pub fn weighted_mean(metrics: Option<&[MetricValue]>) -> f64 {
    match metrics {
        Some(metrics) if !metrics.is_empty() => {
            let (vw, w) = weighted_sums(metrics);
            ratio(vw, w)
        }
        _ => 0.0,
    }
}

/// A candidate with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored<T> {
    /// The candidate.
    pub candidate: T,
    /// Its score.
    pub score: f64,
}

/// Picks one of `n > 0` equally good candidates (random in production, injected in
/// tests).
pub trait Chooser: Send + Sync {
    /// An index in `0..n`.
    fn choose(&self, n: usize) -> usize;
}

impl<F: Fn(usize) -> usize + Send + Sync> Chooser for F {
    fn choose(&self, n: usize) -> usize {
        self(n)
    }
}

/// Uniform random choice, seeded from the standard library's per-process random keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomChooser;

impl Chooser for RandomChooser {
    fn choose(&self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default(),
        );
        (hasher.finish() % n as u64) as usize
    }
}

/// The candidate with the maximal score. Among candidates with exactly that score,
/// preferred ones (clusters over clouds) are kept if there are any, and `chooser` picks
/// among the rest. `None` for an empty list (upstream crashes).
pub fn select_best<T: Clone>(
    scored: &[Scored<T>],
    preferred: impl Fn(&T) -> bool,
    chooser: &dyn Chooser,
) -> Option<T> {
    let max = scored.iter().map(|s| s.score).max_by(f64::total_cmp)?;
    let best: Vec<&T> = scored
        .iter()
        .filter(|s| s.score.total_cmp(&max).is_eq())
        .map(|s| &s.candidate)
        .collect();
    let favourites: Vec<&T> = best.iter().copied().filter(|c| preferred(c)).collect();
    let pool = if favourites.is_empty() {
        best
    } else {
        favourites
    };
    let index = chooser.choose(pool.len()).min(pool.len() - 1);
    Some(pool[index].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(value: f64, weight: f64) -> MetricValue {
        MetricValue {
            name: format!("m{value}{weight}"),
            weight,
            value,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn cluster_score_table() {
        let one = [m(0.75, 1.0)];
        let two = [m(0.5, 1.0), m(1.0, 3.0)];
        let zero_weight = [m(0.5, 0.0)];
        let cases: [(Option<&[MetricValue]>, bool, f64, f64); 9] = [
            // Pinned upstream example: (0.75 + 0.1) / 1.1 for the current cluster.
            (Some(&one), true, 0.1, 0.85 / 1.1),
            (Some(&one), false, 0.1, 0.75),
            (Some(&two), false, 0.1, 3.5 / 4.0),
            (Some(&two), true, 0.1, 3.6 / 4.1),
            (None, true, 0.1, 0.1),
            (None, false, 0.1, 0.0),
            (Some(&[]), true, 0.1, 0.1),
            (Some(&zero_weight), false, 0.1, 0.0),
            (Some(&zero_weight), true, 0.1, 1.0),
        ];
        for (metrics, current, stickiness, expected) in cases {
            let got = cluster_score(metrics, current, stickiness);
            assert!(
                close(got, expected),
                "{metrics:?} {current}: {got} != {expected}"
            );
        }
        assert!(close(cluster_score(Some(&one), true, 0.1), 0.772_727_272_7));
    }

    #[test]
    fn weighted_mean_table() {
        let cases: [(Option<&[MetricValue]>, f64); 4] = [
            (Some(&[m(0.5, 1.0), m(1.0, 3.0)]), 0.875),
            (Some(&[m(0.2, 2.0)]), 0.2),
            (None, 0.0),
            (Some(&[m(0.2, 0.0)]), 0.0),
        ];
        for (metrics, expected) in cases {
            assert!(close(weighted_mean(metrics), expected), "{metrics:?}");
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum C {
        Cluster(&'static str),
        Cloud(&'static str),
    }

    fn s(candidate: C, score: f64) -> Scored<C> {
        Scored { candidate, score }
    }

    #[test]
    fn selection_table() {
        let is_cluster = |c: &C| matches!(c, C::Cluster(_));
        let first = |_: usize| 0;
        let last = |n: usize| n - 1;
        type Case<'a> = (Vec<Scored<C>>, &'a dyn Chooser, Option<C>);
        let cases: [Case; 7] = [
            (vec![], &first, None),
            (
                vec![s(C::Cluster("a"), 0.2), s(C::Cluster("b"), 0.7)],
                &first,
                Some(C::Cluster("b")),
            ),
            // Clusters preferred over clouds at equal score, whatever the chooser says.
            (
                vec![s(C::Cloud("x"), 0.5), s(C::Cluster("a"), 0.5)],
                &first,
                Some(C::Cluster("a")),
            ),
            (
                vec![s(C::Cluster("a"), 0.5), s(C::Cloud("x"), 0.5)],
                &last,
                Some(C::Cluster("a")),
            ),
            // A strictly better cloud wins.
            (
                vec![s(C::Cluster("a"), 0.5), s(C::Cloud("x"), 0.6)],
                &first,
                Some(C::Cloud("x")),
            ),
            // Random pick among equal clusters.
            (
                vec![
                    s(C::Cluster("a"), 0.5),
                    s(C::Cluster("b"), 0.5),
                    s(C::Cluster("c"), 0.1),
                ],
                &last,
                Some(C::Cluster("b")),
            ),
            // A chooser answering out of range is clamped.
            (
                vec![s(C::Cluster("a"), 0.5)],
                &|_: usize| 7,
                Some(C::Cluster("a")),
            ),
        ];
        for (i, (scored, chooser, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                select_best(&scored, is_cluster, chooser),
                expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn random_chooser_stays_in_range_and_varies() {
        let mut seen = [false; 3];
        for _ in 0..300 {
            let i = RandomChooser.choose(3);
            assert!(i < 3);
            seen[i] = true;
        }
        assert_eq!(seen, [true; 3]);
        assert_eq!(RandomChooser.choose(1), 0);
        assert_eq!(RandomChooser.choose(0), 0);
    }
}
