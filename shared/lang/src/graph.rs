//! Graph algorithms over step dependencies: cycles, levels, longest paths, and the
//! largest set of steps that can run at once.
//!
//! Nodes are indices `0..n`; `deps[i]` lists the nodes `i` waits for. Edges point from a
//! dependency to its dependent, the direction data flows.

use std::collections::BTreeSet;

/// Finds cycles among `nodes`, one per strongly connected component, each as a path in
/// flow direction that starts and ends at the same node (`["a", "c", "a"]`), starting at
/// the component's first node in `nodes` order.
pub fn find_cycles<'a, F>(nodes: &[&'a str], deps_of: F) -> Vec<Vec<String>>
where
    F: Fn(&str) -> BTreeSet<&'a str>,
{
    let index = |id: &str| nodes.iter().position(|n| *n == id);
    let deps: Vec<Vec<usize>> = nodes.iter().map(|n| deps_of(n).into_iter().filter_map(index).collect()).collect();
    let mut out = Vec::new();
    for component in strongly_connected(&deps) {
        let Some(&start) = component.iter().min() else {
            continue;
        };
        let is_cycle = component.len() > 1 || deps[start].contains(&start);
        if !is_cycle {
            continue;
        }
        // Walk dependencies backwards inside the component from `start` until we return;
        // reversing that walk gives the cycle in flow direction.
        let members: BTreeSet<usize> = component.iter().copied().collect();
        if let Some(back) = path_back_to(start, &deps, &members) {
            // `back` is [start, x1, ..., xk]: start waits for x1 ... xk waits for start,
            // so data flows start -> xk -> ... -> x1 -> start.
            let mut cycle = vec![nodes[start].to_owned()];
            cycle.extend(back.iter().skip(1).rev().map(|&i| nodes[i].to_owned()));
            cycle.push(nodes[start].to_owned());
            out.push(cycle);
        }
    }
    out.sort();
    out
}

/// Breadth-first search from `start` along dependencies within `members` back to
/// `start`; returns `[start, x1, ..., xk]` where each waits for the next and `xk` waits
/// for `start`.
fn path_back_to(start: usize, deps: &[Vec<usize>], members: &BTreeSet<usize>) -> Option<Vec<usize>> {
    let mut parent: Vec<Option<usize>> = vec![None; deps.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    let mut seen = BTreeSet::from([start]);
    while let Some(node) = queue.pop_front() {
        for &d in &deps[node] {
            if !members.contains(&d) {
                continue;
            }
            if d == start {
                let mut path = vec![node];
                let mut cur = node;
                while let Some(p) = parent[cur] {
                    path.push(p);
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            if seen.insert(d) {
                parent[d] = Some(node);
                queue.push_back(d);
            }
        }
    }
    None
}

/// Tarjan's algorithm, iterative (deep chains must not overflow the stack).
fn strongly_connected(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = deps[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(component);
            }
        }
    }
    out
}

/// Orders an acyclic graph: each node after its dependencies, ties in index order.
/// Returns `None` if there is a cycle.
pub fn topological(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = deps.len();
    let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            remaining[j] -= 1;
            if remaining[j] == 0 {
                ready.insert(j);
            }
        }
    }
    (order.len() == n).then_some(order)
}

/// Level of each node: 0 without dependencies, else one more than its deepest dependency.
pub fn levels(deps: &[Vec<usize>], order: &[usize]) -> Vec<usize> {
    let mut level = vec![0; deps.len()];
    for &i in order {
        level[i] = deps[i].iter().map(|&d| level[d] + 1).max().unwrap_or(0);
    }
    level
}

/// The heaviest path through the graph, by node weights: (nodes in flow order, total).
pub fn longest_path(deps: &[Vec<usize>], order: &[usize], weight: &[f64]) -> (Vec<usize>, f64) {
    let n = deps.len();
    let mut best = vec![0.0f64; n];
    let mut hops = vec![0usize; n];
    let mut via: Vec<Option<usize>> = vec![None; n];
    // Ties go to the path with more steps, then to the earlier node.
    let better = |best: &[f64], hops: &[usize], a: usize, b: usize| {
        best[a].total_cmp(&best[b]).then(hops[a].cmp(&hops[b])).then(b.cmp(&a))
    };
    for &i in order {
        let from = deps[i].iter().copied().max_by(|&a, &b| better(&best, &hops, a, b));
        best[i] = weight[i] + from.map_or(0.0, |d| best[d]);
        hops[i] = 1 + from.map_or(0, |d| hops[d]);
        via[i] = from;
    }
    let Some(end) = (0..n).max_by(|&a, &b| better(&best, &hops, a, b)) else {
        return (Vec::new(), 0.0);
    };
    let mut path = vec![end];
    let mut cur = end;
    while let Some(p) = via[cur] {
        path.push(p);
        cur = p;
    }
    path.reverse();
    (path, best[end])
}

/// The largest set of nodes no two of which are ordered by the dependencies: the most
/// steps that can ever run at once. By Dilworth's theorem its size is `n` minus a
/// maximum matching in the bipartite graph of the transitive closure.
pub fn max_antichain(deps: &[Vec<usize>], order: &[usize]) -> Vec<usize> {
    let n = deps.len();
    // reach[i] = every node i transitively depends on.
    let mut reach: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for &i in order {
        let mut set = BTreeSet::new();
        for &d in &deps[i] {
            set.insert(d);
            set.extend(reach[d].iter().copied());
        }
        reach[i] = set;
    }
    // Bipartite edges left u -> right v when u precedes v (v depends on u).
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (v, r) in reach.iter().enumerate() {
        for &u in r {
            succ[u].push(v);
        }
    }
    let mut match_right: Vec<Option<usize>> = vec![None; n];
    for u in 0..n {
        let mut seen = vec![false; n];
        augment(u, &succ, &mut match_right, &mut seen);
    }
    let mut match_left: Vec<Option<usize>> = vec![None; n];
    for (v, u) in match_right.iter().enumerate() {
        if let Some(u) = u {
            match_left[*u] = Some(v);
        }
    }
    // König: from unmatched left vertices, alternate along non-matching then matching
    // edges. Antichain = nodes whose left copy is reached and right copy is not.
    let mut left_seen = vec![false; n];
    let mut right_seen = vec![false; n];
    let mut stack: Vec<usize> = (0..n).filter(|&u| match_left[u].is_none()).collect();
    for &u in &stack {
        left_seen[u] = true;
    }
    while let Some(u) = stack.pop() {
        for &v in &succ[u] {
            if !right_seen[v] {
                right_seen[v] = true;
                if let Some(w) = match_right[v]
                    && !left_seen[w]
                {
                    left_seen[w] = true;
                    stack.push(w);
                }
            }
        }
    }
    (0..n).filter(|&i| left_seen[i] && !right_seen[i]).collect()
}

fn augment(u: usize, succ: &[Vec<usize>], match_right: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &v in &succ[u] {
        if seen[v] {
            continue;
        }
        seen[v] = true;
        if match_right[v].is_none_or(|w| augment(w, succ, match_right, seen)) {
            match_right[v] = Some(u);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps_map<'a>(edges: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> BTreeSet<&'a str> {
        move |id| edges.iter().filter(|(to, _)| *to == id).map(|(_, from)| *from).collect()
    }

    #[test]
    fn cycles_are_paths_in_flow_direction() {
        // c depends on a, a depends on c: a -> c -> a.
        let edges = [("c", "a"), ("a", "c"), ("b", "a")];
        let cycles = find_cycles(&["a", "b", "c"], deps_map(&edges));
        assert_eq!(cycles, vec![vec!["a", "c", "a"]]);
        let self_loop = [("x", "x")];
        assert_eq!(find_cycles(&["x"], deps_map(&self_loop)), vec![vec!["x", "x"]]);
        let two = [("b", "a"), ("a", "b"), ("d", "c"), ("c", "d"), ("e", "e")];
        assert_eq!(find_cycles(&["a", "b", "c", "d", "e"], deps_map(&two)).len(), 3);
    }

    #[test]
    fn levels_paths_and_antichains() {
        // a-to-e: c <- a, d <- b, e <- c, d
        let deps = vec![vec![], vec![], vec![0], vec![1], vec![2, 3]];
        let order = topological(&deps).expect("acyclic");
        assert_eq!(levels(&deps, &order), [0, 0, 1, 1, 2]);
        let (path, len) = longest_path(&deps, &order, &[1.0; 5]);
        assert_eq!(path, [0, 2, 4]);
        assert_eq!(len, 3.0);
        assert_eq!(max_antichain(&deps, &order).len(), 2);
        // A star: one root, four leaves: four at once.
        let star = vec![vec![], vec![0], vec![0], vec![0], vec![0]];
        let order = topological(&star).expect("acyclic");
        assert_eq!(max_antichain(&star, &order), [1, 2, 3, 4]);
        assert!(topological(&[vec![1], vec![0]]).is_none());
    }

    #[test]
    fn deep_chains_do_not_overflow() {
        let deps: Vec<Vec<usize>> = (0..50_000).map(|i| if i == 0 { vec![] } else { vec![i - 1] }).collect();
        let nodes: Vec<String> = (0..50_000).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
        assert!(find_cycles(&refs, |_| BTreeSet::new()).is_empty());
        assert!(strongly_connected(&deps).iter().all(|c| c.len() == 1));
    }
}
