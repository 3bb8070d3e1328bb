//! Delivery accounting: which messages each receiver got, in what order, and how late.
//!
//! Every sender numbers its messages 0, 1, 2, … within a step. A flow is one
//! (receiver, sender) pair; for each flow the tracker keeps the highest sequence number
//! seen and the numbers skipped below it, so an in-order delivery costs O(1) and a late
//! one is distinguished from a duplicate without storing every number seen.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::HashSet;

/// Highest latency the histogram records, in microseconds; later deliveries are clamped.
const MAX_LATENCY_US: u64 = 120_000_000;

/// Classification of one receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The next number of its flow, or a jump ahead past a gap.
    InOrder,
    /// A number skipped earlier that arrived after a higher one.
    OutOfOrder,
    /// A number this receiver already had from this sender.
    Duplicate,
    /// A receiver or sender outside the tracker's flows; not counted.
    Ignored,
}

#[derive(Default, Clone)]
struct Flow {
    /// One past the highest sequence number received so far.
    next: u64,
    /// Numbers below `next` not received yet.
    missing: HashSet<u64>,
}

/// Counts of one step, as reported.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Accounting for one step of a scenario.
pub struct Tracker {
    senders: usize,
    flows: Vec<Flow>,
    expected: u64,
    received: u64,
    duplicated: u64,
    out_of_order: u64,
    latency: Histogram<u64>,
}

impl Tracker {
    /// Creates a tracker for `receivers` × `senders` flows.
    pub fn new(receivers: usize, senders: usize) -> Self {
        Self {
            senders,
            flows: vec![Flow::default(); receivers * senders],
            expected: 0,
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("histogram bounds are valid"),
        }
    }

    /// Records that one message was sent and should reach `fanout` receivers.
    pub fn sent(&mut self, fanout: u64) {
        self.expected += fanout;
    }

    /// Records one receipt of message `seq` from `sender` at `receiver`, `latency_us`
    /// after it was sent. Receipts outside the tracker's flows are ignored.
    pub fn record(&mut self, receiver: usize, sender: usize, seq: u64, latency_us: u64) -> Receipt {
        if sender >= self.senders {
            return Receipt::Ignored;
        }
        let Some(flow) = self.flows.get_mut(receiver * self.senders + sender) else {
            return Receipt::Ignored;
        };
        let receipt = if seq >= flow.next {
            // Bounded by the number of messages a sender sends in one step.
            flow.missing.extend(flow.next..seq);
            flow.next = seq + 1;
            Receipt::InOrder
        } else if flow.missing.remove(&seq) {
            Receipt::OutOfOrder
        } else {
            Receipt::Duplicate
        };
        match receipt {
            Receipt::Duplicate => self.duplicated += 1,
            Receipt::OutOfOrder => {
                self.out_of_order += 1;
                self.received += 1;
            }
            Receipt::InOrder => self.received += 1,
            Receipt::Ignored => {}
        }
        if matches!(receipt, Receipt::InOrder | Receipt::OutOfOrder) {
            self.latency.saturating_record(latency_us.max(1));
        }
        receipt
    }

    /// Distinct deliveries so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Deliveries owed so far.
    pub fn expected(&self) -> u64 {
        self.expected
    }

    /// Returns the step's counts and latency percentiles.
    pub fn summary(&self) -> Summary {
        let quantile = |q: f64| {
            if self.latency.is_empty() {
                0
            } else {
                self.latency.value_at_quantile(q)
            }
        };
        Summary {
            expected: self.expected,
            received: self.received,
            lost: self.expected.saturating_sub(self.received),
            duplicated: self.duplicated,
            out_of_order: self.out_of_order,
            p50_us: quantile(0.50),
            p90_us: quantile(0.90),
            p99_us: quantile(0.99),
            max_us: if self.latency.is_empty() {
                0
            } else {
                self.latency.max()
            },
        }
    }
}

/// Returns the run whose `key` is the median of `runs`: the middle one by `key`, or the lower
/// of the two middle ones when the count is even. NaN keys sort last.
///
/// # Panics
///
/// If `runs` is empty.
pub fn median_by<T>(runs: &[T], key: impl Fn(&T) -> f64) -> &T {
    assert!(!runs.is_empty(), "the median of no runs");
    let mut order: Vec<&T> = runs.iter().collect();
    order.sort_by(|a, b| key(a).total_cmp(&key(b)));
    order[(order.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_by_sorts_before_picking() {
        let runs = [(0, 9.0), (1, 3.0), (2, 5.0)];
        assert_eq!(median_by(&runs, |r| r.1).0, 2);
        let even = [(0, 4.0), (1, 1.0), (2, 3.0), (3, 2.0)];
        assert_eq!(median_by(&even, |r| r.1).0, 3);
        assert_eq!(median_by(&[(7, 1.0)], |r| r.1).0, 7);
    }

    #[test]
    fn in_order_deliveries_lose_nothing() {
        let mut t = Tracker::new(2, 1);
        for seq in 0..3 {
            t.sent(2);
            for receiver in 0..2 {
                assert_eq!(t.record(receiver, 0, seq, 100), Receipt::InOrder);
            }
        }
        let s = t.summary();
        assert_eq!(s.expected, 6);
        assert_eq!(s.received, 6);
        assert_eq!(s.lost, 0);
        assert_eq!(s.duplicated, 0);
        assert_eq!(s.out_of_order, 0);
    }

    #[test]
    fn missing_delivery_counts_as_lost() {
        let mut t = Tracker::new(2, 1);
        t.sent(2);
        t.sent(2);
        t.record(0, 0, 0, 10);
        t.record(0, 0, 1, 10);
        t.record(1, 0, 1, 10);
        let s = t.summary();
        assert_eq!(s.expected, 4);
        assert_eq!(s.received, 3);
        assert_eq!(s.lost, 1);
        assert_eq!(s.expected, s.received + s.lost);
    }

    #[test]
    fn repeated_delivery_is_duplicate() {
        let mut t = Tracker::new(1, 1);
        t.sent(1);
        t.sent(1);
        assert_eq!(t.record(0, 0, 0, 10), Receipt::InOrder);
        assert_eq!(t.record(0, 0, 1, 10), Receipt::InOrder);
        assert_eq!(t.record(0, 0, 0, 10), Receipt::Duplicate);
        assert_eq!(t.record(0, 0, 1, 10), Receipt::Duplicate);
        let s = t.summary();
        assert_eq!(s.received, 2);
        assert_eq!(s.duplicated, 2);
        assert_eq!(s.lost, 0);
    }

    #[test]
    fn late_delivery_is_out_of_order() {
        let mut t = Tracker::new(1, 1);
        for _ in 0..3 {
            t.sent(1);
        }
        assert_eq!(t.record(0, 0, 0, 10), Receipt::InOrder);
        assert_eq!(t.record(0, 0, 2, 10), Receipt::InOrder);
        assert_eq!(t.record(0, 0, 1, 10), Receipt::OutOfOrder);
        // A late one that arrives twice is a duplicate the second time.
        assert_eq!(t.record(0, 0, 1, 10), Receipt::Duplicate);
        let s = t.summary();
        assert_eq!(s.received, 3);
        assert_eq!(s.out_of_order, 1);
        assert_eq!(s.duplicated, 1);
        assert_eq!(s.lost, 0);
    }

    #[test]
    fn flows_are_independent() {
        let mut t = Tracker::new(2, 2);
        assert_eq!(t.record(0, 0, 0, 10), Receipt::InOrder);
        assert_eq!(t.record(0, 1, 0, 10), Receipt::InOrder);
        assert_eq!(t.record(1, 0, 0, 10), Receipt::InOrder);
        assert_eq!(t.record(1, 1, 0, 10), Receipt::InOrder);
        assert_eq!(t.summary().duplicated, 0);
    }

    #[test]
    fn unknown_flow_is_not_counted() {
        let mut t = Tracker::new(1, 1);
        assert_eq!(t.record(5, 0, 0, 10), Receipt::Ignored);
        assert_eq!(t.record(0, 3, 0, 10), Receipt::Ignored);
        assert_eq!(t.summary().received, 0);
    }

    #[test]
    fn latency_percentiles() {
        let mut t = Tracker::new(1, 1);
        for seq in 0..100 {
            t.sent(1);
            t.record(0, 0, seq, (seq + 1) * 1000);
        }
        let s = t.summary();
        // The histogram keeps three significant digits.
        assert!((49_900..=50_100).contains(&s.p50_us), "p50 {}", s.p50_us);
        assert!((89_900..=90_100).contains(&s.p90_us), "p90 {}", s.p90_us);
        assert!((98_900..=99_100).contains(&s.p99_us), "p99 {}", s.p99_us);
        assert!((99_900..=100_100).contains(&s.max_us), "max {}", s.max_us);
    }

    #[test]
    fn duplicates_do_not_skew_latency() {
        let mut t = Tracker::new(1, 1);
        t.sent(1);
        t.record(0, 0, 0, 1_000);
        for _ in 0..10 {
            t.record(0, 0, 0, 5_000_000);
        }
        assert!(t.summary().max_us < 2_000);
    }

    #[test]
    fn empty_step_reports_zeros() {
        let s = Tracker::new(3, 2).summary();
        assert_eq!(s, Summary::default());
    }
}
