//! The ownership graph and the cascade decision, without I/O.
//!
//! Nodes are the objects that currently exist; an edge goes from an owner to each of its
//! dependents (objects listing it in `metadata.owners`). Owners are plain keys: an owner
//! that does not exist (a dangling reference) simply has dependents and no node.
//!
//! The dependents of a key are derived from the owners of existing objects only, so a
//! removed object disappears from every dependents list at once, whatever it still owns
//! (upstream kept such nodes forever and later failed on them).
//!
//! [`Graph::decide`] tells what to do with an object in cascade deletion. Diamonds (an
//! object reachable along several paths) are ordinary DAGs here. Cycles are handled as
//! units: the members of one strongly connected component cannot wait for each other, so
//! a member may drop its finalizer once every member is marked deleted and nothing
//! outside the cycle depends on any member any more. Nothing is ever dropped from the
//! graph because of a cycle (upstream's bug).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;

/// The deletion state of an object, as far as the collector cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeState {
    /// `metadata.deleted` is set.
    pub deleted: bool,
    /// In cascade deletion: deleted, and `cascade_deletion` is the last finalizer (the
    /// collector's turn).
    pub cascading: bool,
}

#[derive(Debug, Clone)]
struct Node<K> {
    owners: Vec<K>,
    state: NodeState,
}

/// What to do with an object, from [`Graph::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<K> {
    /// The object is unknown or not in cascade deletion: nothing to do.
    Ignore,
    /// `DELETE` these objects (none is marked deleted yet: direct dependents, the other
    /// members of the object's cycle and what those own), then wait for them.
    Delete(Vec<K>),
    /// These dependents still exist, all already marked deleted: wait until they are gone.
    Wait(Vec<K>),
    /// Nothing depends on the object any more: remove its `cascade_deletion` finalizer.
    Release,
}

/// The ownership graph of the existing objects.
#[derive(Debug, Clone)]
pub struct Graph<K> {
    nodes: HashMap<K, Node<K>>,
    /// Owner key → the existing objects naming it as an owner.
    dependents: HashMap<K, BTreeSet<K>>,
}

impl<K> Default for Graph<K> {
    fn default() -> Self {
        Graph {
            nodes: HashMap::new(),
            dependents: HashMap::new(),
        }
    }
}

/// What [`Graph::upsert`] replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Previous<K> {
    /// The owners the object had.
    pub owners: Vec<K>,
    /// The state it had.
    pub state: NodeState,
}

impl<K: Clone + Eq + Hash + Ord> Graph<K> {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of existing objects.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no object exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Whether the object exists.
    pub fn contains(&self, id: &K) -> bool {
        self.nodes.contains_key(id)
    }

    /// Add or replace an object with its owners (duplicates and self-references are
    /// kept as given, minus duplicates) and state. Returns what it replaced.
    pub fn upsert(
        &mut self,
        id: K,
        owners: impl IntoIterator<Item = K>,
        state: NodeState,
    ) -> Option<Previous<K>> {
        let mut unique = Vec::new();
        let mut seen = HashSet::new();
        for owner in owners {
            if seen.insert(owner.clone()) {
                unique.push(owner);
            }
        }
        let previous = self.unlink(&id);
        for owner in &unique {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(id.clone());
        }
        self.nodes.insert(
            id,
            Node {
                owners: unique,
                state,
            },
        );
        previous
    }

    /// Remove an object (it is gone from storage). Returns its owners and state.
    /// Objects it owned keep their reference; they no longer count as its dependents'
    /// dependents of anything, and stay in the graph.
    pub fn remove(&mut self, id: &K) -> Option<Previous<K>> {
        self.unlink(id)
    }

    fn unlink(&mut self, id: &K) -> Option<Previous<K>> {
        let node = self.nodes.remove(id)?;
        for owner in &node.owners {
            if let Some(set) = self.dependents.get_mut(owner) {
                set.remove(id);
                if set.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        Some(Previous {
            owners: node.owners,
            state: node.state,
        })
    }

    /// The state of an existing object.
    pub fn state(&self, id: &K) -> Option<NodeState> {
        self.nodes.get(id).map(|n| n.state)
    }

    /// The owners of an existing object (empty for unknown objects).
    pub fn owners(&self, id: &K) -> &[K] {
        self.nodes
            .get(id)
            .map(|n| n.owners.as_slice())
            .unwrap_or(&[])
    }

    /// The existing objects that name `id` as an owner, in key order.
    pub fn dependents(&self, id: &K) -> impl Iterator<Item = &K> {
        self.dependents.get(id).into_iter().flatten()
    }

    /// The objects in cascade deletion, in key order.
    pub fn cascading(&self) -> Vec<K> {
        let mut ids: Vec<K> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.state.cascading)
            .map(|(k, _)| k.clone())
            .collect();
        ids.sort();
        ids
    }

    /// The strongly connected component of `id`: `id` and every object that both
    /// depends on it (transitively) and owns it (transitively). `{id}` outside cycles;
    /// empty for unknown objects.
    pub fn cycle_of(&self, id: &K) -> BTreeSet<K> {
        if !self.nodes.contains_key(id) {
            return BTreeSet::new();
        }
        // Everything `id` depends on, transitively: usually a short chain of owners
        // (iterative, no recursion).
        let mut ancestors: HashSet<&K> = HashSet::new();
        let mut queue: VecDeque<&K> = VecDeque::new();
        ancestors.insert(id);
        queue.push_back(id);
        while let Some(k) = queue.pop_front() {
            for owner in self.owners(k) {
                if self.nodes.contains_key(owner) && ancestors.insert(owner) {
                    queue.push_back(owner);
                }
            }
        }
        // Of those, the ones depending on `id`. Every node on a path from `id` to an
        // ancestor is itself an ancestor, so the walk never leaves `ancestors`.
        let mut component: BTreeSet<K> = BTreeSet::new();
        let mut queue: VecDeque<&K> = VecDeque::new();
        component.insert(id.clone());
        queue.push_back(id);
        while let Some(k) = queue.pop_front() {
            for dependent in self.dependents(k) {
                if ancestors.contains(dependent) && !component.contains(dependent) {
                    component.insert(dependent.clone());
                    queue.push_back(dependent);
                }
            }
        }
        component
    }

    /// What the collector does with `id`.
    ///
    /// For an object in cascade deletion, with `C` its cycle ([`Graph::cycle_of`]):
    /// * members of `C` and dependents of members outside `C` that are not marked
    ///   deleted yet → [`Decision::Delete`];
    /// * otherwise, dependents of members outside `C` that still exist →
    ///   [`Decision::Wait`];
    /// * otherwise → [`Decision::Release`].
    ///
    /// So an object is released only after everything depending on it, transitively,
    /// is gone, except the members of its own cycle, which are all marked deleted.
    pub fn decide(&self, id: &K) -> Decision<K> {
        match self.nodes.get(id) {
            Some(node) if node.state.cascading => {}
            _ => return Decision::Ignore,
        }
        let cycle = self.cycle_of(id);
        let mut to_delete = BTreeSet::new();
        let mut blocking = BTreeSet::new();
        for member in &cycle {
            if member != id && !self.is_deleted(member) {
                to_delete.insert(member.clone());
            }
            for dependent in self.dependents(member) {
                if cycle.contains(dependent) {
                    continue;
                }
                blocking.insert(dependent.clone());
                if !self.is_deleted(dependent) {
                    to_delete.insert(dependent.clone());
                }
            }
        }
        if !to_delete.is_empty() {
            Decision::Delete(to_delete.into_iter().collect())
        } else if !blocking.is_empty() {
            Decision::Wait(blocking.into_iter().collect())
        } else {
            Decision::Release
        }
    }

    fn is_deleted(&self, id: &K) -> bool {
        self.nodes.get(id).is_some_and(|n| n.state.deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const LIVE: NodeState = NodeState {
        deleted: false,
        cascading: false,
    };
    const CASCADING: NodeState = NodeState {
        deleted: true,
        cascading: true,
    };
    const DELETED: NodeState = NodeState {
        deleted: true,
        cascading: false,
    };

    fn graph(
        edges: &[(&'static str, &'static str)],
        nodes: &[&'static str],
    ) -> Graph<&'static str> {
        let mut g = Graph::new();
        for n in nodes {
            let owners: Vec<&str> = edges
                .iter()
                .filter(|(_, d)| d == n)
                .map(|(o, _)| *o)
                .collect();
            g.upsert(*n, owners, LIVE);
        }
        g
    }

    fn set_state(g: &mut Graph<&'static str>, id: &'static str, state: NodeState) {
        let owners = g.owners(&id).to_vec();
        g.upsert(id, owners, state);
    }

    #[test]
    fn chain_is_deleted_bottom_up() {
        // cloud → cluster → app
        let mut g = graph(
            &[("cloud", "cluster"), ("cluster", "app")],
            &["cloud", "cluster", "app"],
        );
        assert_eq!(g.decide(&"cloud"), Decision::Ignore);
        set_state(&mut g, "cloud", CASCADING);
        assert_eq!(g.decide(&"cloud"), Decision::Delete(vec!["cluster"]));
        set_state(&mut g, "cluster", CASCADING);
        assert_eq!(g.decide(&"cloud"), Decision::Wait(vec!["cluster"]));
        assert_eq!(g.decide(&"cluster"), Decision::Delete(vec!["app"]));
        set_state(&mut g, "app", CASCADING);
        assert_eq!(g.decide(&"cluster"), Decision::Wait(vec!["app"]));
        assert_eq!(g.decide(&"app"), Decision::Release);
        // The app's own finalizer keeps it (released, still deleted): owners wait.
        set_state(&mut g, "app", DELETED);
        assert_eq!(g.decide(&"app"), Decision::Ignore);
        assert_eq!(g.decide(&"cluster"), Decision::Wait(vec!["app"]));
        g.remove(&"app");
        assert_eq!(g.decide(&"cluster"), Decision::Release);
        g.remove(&"cluster");
        assert_eq!(g.decide(&"cloud"), Decision::Release);
    }

    #[test]
    fn diamond_is_not_a_cycle() {
        // cloud → k1, k2 → app (app owned by both clusters)
        let mut g = graph(
            &[
                ("cloud", "k1"),
                ("cloud", "k2"),
                ("k1", "app"),
                ("k2", "app"),
            ],
            &["cloud", "k1", "k2", "app"],
        );
        for n in ["cloud", "k1", "k2", "app"] {
            assert_eq!(g.cycle_of(&n), BTreeSet::from([n]), "{n}");
        }
        set_state(&mut g, "cloud", CASCADING);
        assert_eq!(g.decide(&"cloud"), Decision::Delete(vec!["k1", "k2"]));
        set_state(&mut g, "k1", CASCADING);
        set_state(&mut g, "k2", CASCADING);
        assert_eq!(g.decide(&"k1"), Decision::Delete(vec!["app"]));
        assert_eq!(g.decide(&"k2"), Decision::Delete(vec!["app"]));
        set_state(&mut g, "app", CASCADING);
        assert_eq!(g.decide(&"k2"), Decision::Wait(vec!["app"]));
        assert_eq!(g.decide(&"app"), Decision::Release);
        g.remove(&"app");
        assert_eq!(g.len(), 3);
        assert_eq!(g.decide(&"k1"), Decision::Release);
    }

    #[test]
    fn two_cycle_is_deleted_as_a_unit() {
        // a owns b, b owns a; b also owns c (outside the cycle).
        let mut g = graph(&[("a", "b"), ("b", "a"), ("b", "c")], &["a", "b", "c"]);
        assert_eq!(g.cycle_of(&"a"), BTreeSet::from(["a", "b"]));
        assert_eq!(g.cycle_of(&"c"), BTreeSet::from(["c"]));
        set_state(&mut g, "a", CASCADING);
        // a deletes its cycle partner and what the cycle owns.
        assert_eq!(g.decide(&"a"), Decision::Delete(vec!["b", "c"]));
        set_state(&mut g, "b", CASCADING);
        set_state(&mut g, "c", CASCADING);
        assert_eq!(g.decide(&"a"), Decision::Wait(vec!["c"]));
        assert_eq!(g.decide(&"b"), Decision::Wait(vec!["c"]));
        assert_eq!(g.decide(&"c"), Decision::Release);
        g.remove(&"c");
        assert_eq!(g.decide(&"a"), Decision::Release);
        assert_eq!(g.decide(&"b"), Decision::Release);
        g.remove(&"a");
        assert_eq!(g.cycle_of(&"b"), BTreeSet::from(["b"]));
        assert_eq!(g.decide(&"b"), Decision::Release);
    }

    #[test]
    fn self_owner_and_dangling_owner() {
        let mut g = Graph::new();
        g.upsert("a", ["a", "ghost", "a"], CASCADING);
        assert_eq!(g.owners(&"a"), &["a", "ghost"]);
        assert_eq!(g.decide(&"a"), Decision::Release);
        assert_eq!(g.dependents(&"ghost").collect::<Vec<_>>(), vec![&"a"]);
        assert!(!g.contains(&"ghost"));
        assert_eq!(g.decide(&"ghost"), Decision::Ignore);
        g.remove(&"a");
        assert_eq!(g.dependents(&"ghost").count(), 0);
        assert!(g.is_empty());
    }

    #[test]
    fn removed_owner_with_dependents_leaves_no_trace() {
        let mut g = graph(&[("a", "b")], &["a", "b"]);
        let prev = g.remove(&"a").unwrap();
        assert!(prev.owners.is_empty());
        assert!(!g.contains(&"a"));
        // b still names a; a re-created a is its owner again.
        g.upsert("a", [], CASCADING);
        assert_eq!(g.decide(&"a"), Decision::Delete(vec!["b"]));
        assert_eq!(g.cascading(), vec!["a"]);
    }

    #[test]
    fn upsert_replaces_owners() {
        let mut g = graph(&[("a", "c")], &["a", "b", "c"]);
        let prev = g.upsert("c", ["b"], LIVE).unwrap();
        assert_eq!(prev.owners, vec!["a"]);
        assert_eq!(g.dependents(&"a").count(), 0);
        assert_eq!(g.dependents(&"b").collect::<Vec<_>>(), vec![&"c"]);
    }

    // ---- properties -------------------------------------------------------------

    /// Naive reachability (owner → dependent) over the current objects.
    fn reachable(edges: &BTreeMap<u32, BTreeSet<u32>>, from: u32) -> BTreeSet<u32> {
        let mut seen = BTreeSet::from([from]);
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            for d in edges.get(&n).into_iter().flatten() {
                if seen.insert(*d) {
                    stack.push(*d);
                }
            }
        }
        seen
    }

    #[derive(Debug, Clone)]
    struct Obj {
        owners: Vec<u32>,
        deleted: bool,
        finalizers: Vec<&'static str>,
    }

    /// The API and the other controllers, simulated: objects with finalizers, DELETE
    /// marking, removal once the finalizers are gone; the collector acting through
    /// [`Graph::decide`] on a graph fed from the objects.
    struct Sim {
        objects: BTreeMap<u32, Obj>,
        graph: Graph<u32>,
        removed: Vec<u32>,
    }

    impl Sim {
        fn new(n: u32, edges: &[(u32, u32)], extra: &[bool]) -> Sim {
            let mut sim = Sim {
                objects: BTreeMap::new(),
                graph: Graph::new(),
                removed: Vec::new(),
            };
            for id in 0..n {
                let owners = edges
                    .iter()
                    .filter(|(_, d)| *d == id)
                    .map(|(o, _)| *o)
                    .collect();
                let finalizers = if extra.get(id as usize).copied().unwrap_or(false) {
                    vec!["other"]
                } else {
                    vec![]
                };
                sim.objects.insert(
                    id,
                    Obj {
                        owners,
                        deleted: false,
                        finalizers,
                    },
                );
                sim.sync(id);
            }
            sim
        }

        fn sync(&mut self, id: u32) {
            match self.objects.get(&id) {
                Some(o) => {
                    let state = NodeState {
                        deleted: o.deleted,
                        cascading: o.deleted && o.finalizers.last() == Some(&"cascade_deletion"),
                    };
                    self.graph.upsert(id, o.owners.clone(), state);
                }
                None => {
                    self.graph.remove(&id);
                }
            }
        }

        fn edges(&self) -> BTreeMap<u32, BTreeSet<u32>> {
            let mut edges: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
            for (id, o) in &self.objects {
                for owner in &o.owners {
                    if self.objects.contains_key(owner) {
                        edges.entry(*owner).or_default().insert(*id);
                    }
                }
            }
            edges
        }

        /// DELETE: mark and append `cascade_deletion`; no-op when already deleted.
        fn api_delete(&mut self, id: u32) {
            if let Some(o) = self.objects.get_mut(&id)
                && !o.deleted
            {
                o.deleted = true;
                o.finalizers.push("cascade_deletion");
                self.sync(id);
            }
        }

        fn pop_finalizer(&mut self, id: u32, expected: &str) {
            let o = self.objects.get_mut(&id).unwrap();
            assert_eq!(o.finalizers.pop(), Some(expected));
            if o.finalizers.is_empty() {
                self.objects.remove(&id);
                self.removed.push(id);
            }
            self.sync(id);
        }

        /// The actions that would change something now.
        fn productive(&self) -> Vec<(u32, bool)> {
            let mut actions = Vec::new();
            for (id, o) in &self.objects {
                if !matches!(self.graph.decide(id), Decision::Ignore | Decision::Wait(_)) {
                    actions.push((*id, true));
                }
                if o.deleted && o.finalizers.last() == Some(&"other") {
                    actions.push((*id, false));
                }
            }
            actions
        }

        /// Run to the fixed point, choosing among productive actions with `choices`.
        fn run(&mut self, choices: &[usize]) -> usize {
            let mut steps = 0;
            loop {
                let actions = self.productive();
                if actions.is_empty() {
                    return steps;
                }
                let choice = choices.get(steps).copied().unwrap_or(steps);
                let (id, gc) = actions[choice % actions.len()];
                steps += 1;
                if !gc {
                    self.pop_finalizer(id, "other");
                    continue;
                }
                match self.graph.decide(&id) {
                    Decision::Delete(targets) => {
                        assert!(!targets.is_empty());
                        for t in targets {
                            assert!(!self.objects[&t].deleted, "{t} deleted twice");
                            self.api_delete(t);
                        }
                    }
                    Decision::Release => {
                        // At release time, everything still depending on the object is in
                        // its cycle (checked with naive reachability).
                        let edges = self.edges();
                        let down = reachable(&edges, id);
                        for d in &down {
                            let back = reachable(&edges, *d);
                            assert!(
                                back.contains(&id),
                                "{id} released while {d} still depends on it"
                            );
                            assert!(self.objects[d].deleted, "{d} not deleted");
                        }
                        self.pop_finalizer(id, "cascade_deletion");
                    }
                    other => unreachable!("{other:?}"),
                }
            }
        }
    }

    fn check(
        n: u32,
        edges: Vec<(u32, u32)>,
        extra: Vec<bool>,
        roots: Vec<u32>,
        choices: Vec<usize>,
    ) {
        let mut sim = Sim::new(n, &edges, &extra);
        let initial = sim.edges();
        let mut expected = BTreeSet::new();
        for r in &roots {
            expected.extend(reachable(&initial, *r));
        }
        for r in &roots {
            sim.api_delete(*r);
        }
        let steps = sim.run(&choices);
        // Terminates: every productive step marks, releases or removes something.
        assert!(steps <= 3 * n as usize, "{steps} steps for {n} objects");
        // Everything depending on a deleted root, transitively, is gone; nothing else
        // was even marked.
        let removed: BTreeSet<u32> = sim.removed.iter().copied().collect();
        assert_eq!(removed.len(), sim.removed.len(), "removed twice");
        assert_eq!(removed, expected);
        for (id, o) in &sim.objects {
            assert!(!o.deleted, "{id} marked deleted but not a dependent");
        }
        assert!(sim.graph.cascading().is_empty());
        assert_eq!(sim.graph.len(), n as usize - removed.len());
        // Bottom-up: a dependent outside the owner's cycle goes first.
        let position: BTreeMap<u32, usize> = sim
            .removed
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i))
            .collect();
        for x in &sim.removed {
            for y in reachable(&initial, *x) {
                if !reachable(&initial, y).contains(x) && is_dag_path(&initial, *x, y) {
                    assert!(
                        position[&y] < position[x],
                        "{x} removed before its dependent {y}"
                    );
                }
            }
        }
    }

    /// Whether `y` is reachable from `x` through nodes none of which lies on a cycle
    /// (then no cycle member can disappear early and cut the path).
    fn is_dag_path(edges: &BTreeMap<u32, BTreeSet<u32>>, x: u32, y: u32) -> bool {
        let on_cycle = |n: u32| {
            edges
                .get(&n)
                .into_iter()
                .flatten()
                .any(|d| reachable(edges, *d).contains(&n))
        };
        if on_cycle(x) {
            return false;
        }
        let mut seen = BTreeSet::from([x]);
        let mut stack = vec![x];
        while let Some(n) = stack.pop() {
            for d in edges.get(&n).into_iter().flatten() {
                if on_cycle(*d) {
                    continue;
                }
                if *d == y {
                    return true;
                }
                if seen.insert(*d) {
                    stack.push(*d);
                }
            }
        }
        false
    }

    fn dag() -> impl Strategy<Value = (u32, Vec<(u32, u32)>)> {
        (1u32..14).prop_flat_map(|n| {
            let edges =
                proptest::collection::vec((0..n, 0..n), 0..(3 * n as usize)).prop_map(|pairs| {
                    pairs
                        .into_iter()
                        .filter(|(a, b)| a != b)
                        .map(|(a, b)| (a.min(b), a.max(b)))
                        .collect::<Vec<_>>()
                });
            (Just(n), edges)
        })
    }

    fn any_graph() -> impl Strategy<Value = (u32, Vec<(u32, u32)>)> {
        (1u32..14).prop_flat_map(|n| {
            (
                Just(n),
                proptest::collection::vec((0..n, 0..n), 0..(3 * n as usize)),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn dags_are_deleted_completely_and_bottom_up(
            (n, edges) in dag(),
            extra in proptest::collection::vec(any::<bool>(), 14),
            roots in proptest::collection::vec(0u32..14, 1..3),
            choices in proptest::collection::vec(any::<usize>(), 0..64),
        ) {
            let roots = roots.into_iter().map(|r| r % n).collect();
            check(n, edges, extra, roots, choices);
        }

        #[test]
        fn cycles_terminate_and_drop_nothing(
            (n, edges) in any_graph(),
            extra in proptest::collection::vec(any::<bool>(), 14),
            roots in proptest::collection::vec(0u32..14, 1..3),
            choices in proptest::collection::vec(any::<usize>(), 0..64),
        ) {
            let roots = roots.into_iter().map(|r| r % n).collect();
            check(n, edges, extra, roots, choices);
        }

        /// The dependents index always equals a recomputation from the owners, whatever
        /// sequence of upserts and removals built the graph.
        #[test]
        fn dependents_index_is_consistent(
            ops in proptest::collection::vec(
                (0u32..8, proptest::collection::vec(0u32..10, 0..4), any::<bool>()),
                0..60,
            ),
        ) {
            let mut g = Graph::new();
            let mut owners_of: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
            for (id, owners, remove) in ops {
                if remove {
                    g.remove(&id);
                    owners_of.remove(&id);
                } else {
                    g.upsert(id, owners.clone(), LIVE);
                    owners_of.insert(id, owners);
                }
            }
            for key in 0u32..10 {
                let expected: BTreeSet<u32> = owners_of
                    .iter()
                    .filter(|(_, o)| o.contains(&key))
                    .map(|(id, _)| *id)
                    .collect();
                let actual: BTreeSet<u32> = g.dependents(&key).copied().collect();
                prop_assert_eq!(actual, expected);
            }
            prop_assert_eq!(g.len(), owners_of.len());
            // The cycle of a node: the nodes reachable from it that reach it back.
            let mut edges: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
            for (id, owners) in &owners_of {
                for o in owners {
                    if owners_of.contains_key(o) {
                        edges.entry(*o).or_default().insert(*id);
                    }
                }
            }
            for id in owners_of.keys() {
                let expected: BTreeSet<u32> = reachable(&edges, *id)
                    .into_iter()
                    .filter(|d| reachable(&edges, *d).contains(id))
                    .collect();
                prop_assert_eq!(g.cycle_of(id), expected);
            }
        }
    }
}
