//! The head: rows acknowledged since the last flush, summed per key in
//! memory (their durable copy is the write-ahead log).

use rustc_hash::FxHashMap as HashMap;

use crate::model::{Batch, DeployEvent, DeployFact, RequestAgg, RequestKey, SampleKey, StackNode, Weight};

/// Rows of one service not yet in Parquet.
#[derive(Debug, Default, Clone)]
pub struct Head {
    /// Sample rows.
    pub samples: HashMap<SampleKey, Weight>,
    /// Request rows.
    pub requests: HashMap<RequestKey, RequestAgg>,
    /// Stack nodes first seen since the last flush.
    pub stacks: Vec<StackNode>,
    /// Deploy events.
    pub deploys: Vec<DeployEvent>,
    /// Facts about deploys the service did not hold yet.
    pub facts: Vec<DeployFact>,
}

impl Head {
    /// Adds a batch; `new_stacks` and `new_facts` are the batch's nodes
    /// and facts the service did not hold yet.
    pub fn apply(&mut self, batch: Batch, new_stacks: Vec<StackNode>, new_facts: Vec<DeployFact>) {
        self.samples.reserve(batch.samples.len());
        for (key, weight) in batch.samples {
            self.samples.entry(key).or_default().add(weight);
        }
        for (key, agg) in batch.requests {
            self.requests.entry(key).or_default().add(&agg);
        }
        self.stacks.extend(new_stacks);
        self.deploys.extend(batch.deploys);
        self.facts.extend(new_facts);
    }

    /// Adds another head (a flush that failed goes back in).
    pub fn absorb(&mut self, other: Head) {
        for (key, weight) in other.samples {
            self.samples.entry(key).or_default().add(weight);
        }
        for (key, agg) in other.requests {
            self.requests.entry(key).or_default().add(&agg);
        }
        self.stacks.extend(other.stacks);
        self.deploys.extend(other.deploys);
        self.facts.extend(other.facts);
    }

    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
            && self.requests.is_empty()
            && self.stacks.is_empty()
            && self.deploys.is_empty()
            && self.facts.is_empty()
    }
}
