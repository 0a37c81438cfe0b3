//! Reverse-mode autodiff.
//!
//! Each recorded op leaves a [`Node`] on its output: the op's [`Backward`] rule with the
//! tensors it saved, and one [`Edge`] per input that needs a gradient. There is no global tape:
//! the graph is the set of nodes reachable from the loss, and it is freed with the tensors.
//! `backward` orders the reachable nodes topologically (by depth-first search), runs each rule
//! once with gradient recording off, and accumulates gradients for inputs that are used more
//! than once. A rule's saved state is taken when it runs, so a second `backward` through the
//! same nodes is a typed [`Error::GraphConsumed`].
//!
//! An op whose inputs need no gradient records nothing and saves nothing; that is how frozen
//! parameters cost neither memory nor time.

pub mod checkpoint;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorId};

/// The gradient rule of one op, with whatever it saved from the forward pass.
pub trait Backward: Send + Sync {
    /// Gradients w.r.t. each input given the gradient of the output; `None` for inputs that
    /// need none (the `needs` flags the rule was built with say which).
    fn backward(&self, grad_out: &Tensor) -> Result<Vec<Option<Tensor>>>;
    /// Bytes this rule keeps alive for backward (counted by tests).
    fn saved_bytes(&self) -> u64;
}

/// An input of a recorded op that needs a gradient.
pub(crate) struct Edge {
    pub id: TensorId,
    pub shape: Vec<usize>,
    pub node: Option<Arc<Node>>,
}

/// One recorded op.
pub struct Node {
    pub(crate) id: u64,
    pub(crate) op: &'static str,
    /// Id of the tensor this op produced: its gradient is keyed by it.
    pub(crate) out_id: TensorId,
    /// One entry per op input; `None` where that input needs no gradient.
    pub(crate) edges: Vec<Option<Edge>>,
    pub(crate) rule: Mutex<Option<Box<dyn Backward>>>,
}

/// Which inputs of an op need gradients (true where the input requires grad).
pub type Needs = Vec<bool>;

/// Attach a backward rule to `out` if recording is on and any input requires grad; otherwise
/// return `out` untouched without calling `rule` (so nothing is saved).
pub(crate) fn record<F>(op: &'static str, out: Tensor, inputs: &[&Tensor], rule: F) -> Result<Tensor>
where
    F: FnOnce(&Needs) -> Result<Box<dyn Backward>>,
{
    let engine = out.engine().clone();
    let needs: Needs = inputs.iter().map(|t| t.requires_grad()).collect();
    if !engine.grad_enabled() || !needs.iter().any(|&n| n) {
        return Ok(out);
    }
    let rule = rule(&needs)?;
    engine.0.nodes_recorded.fetch_add(1, Ordering::Relaxed);
    engine.0.saved_bytes.fetch_add(rule.saved_bytes(), Ordering::Relaxed);
    let edges = inputs
        .iter()
        .map(|t| {
            t.requires_grad().then(|| Edge { id: t.id(), shape: t.shape().to_vec(), node: t.node().cloned() })
        })
        .collect();
    let node =
        Arc::new(Node { id: engine.next_id(), op, out_id: out.id(), edges, rule: Mutex::new(Some(rule)) });
    Ok(out.with_node(node))
}

/// Bytes of the tensors a rule saves (helper for `Backward::saved_bytes`).
pub fn bytes_of(ts: &[Option<&Tensor>]) -> u64 {
    ts.iter().flatten().map(|t| t.nbytes()).sum()
}

/// Gradients of leaves, by tensor.
#[derive(Default)]
pub struct GradStore {
    grads: HashMap<TensorId, Tensor>,
}

impl GradStore {
    /// The gradient of `t`, if `t` is a leaf that requires grad and the loss depends on it.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.grads.get(&t.id())
    }
    /// Remove and return the gradient of `t`.
    pub fn take(&mut self, t: &Tensor) -> Option<Tensor> {
        self.grads.remove(&t.id())
    }
    pub fn len(&self) -> usize {
        self.grads.len()
    }
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }
}

/// Nodes reachable from `root`, children before parents (inputs before the ops that use them).
fn topo_order(root: &Arc<Node>) -> Vec<Arc<Node>> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    // Iterative post-order DFS: deep graphs (hundreds of layers) must not overflow the stack.
    let mut stack: Vec<(Arc<Node>, usize)> = vec![(root.clone(), 0)];
    seen.insert(root.id);
    while let Some((node, next)) = stack.pop() {
        let child = node
            .edges
            .iter()
            .skip(next)
            .enumerate()
            .find_map(|(i, e)| e.as_ref().and_then(|e| e.node.clone()).map(|n| (next + i, n)));
        match child {
            Some((i, c)) => {
                stack.push((node, i + 1));
                if seen.insert(c.id) {
                    stack.push((c, 0));
                }
            }
            None => order.push(node),
        }
    }
    order
}

/// Number of nodes reachable from `t` (used by tests of freezing and `no_grad`).
pub fn count_nodes(t: &Tensor) -> usize {
    t.node().map(|n| topo_order(n).len()).unwrap_or(0)
}

/// Called during [`Tensor::backward_with`] with the leaf gradients so far and the leaves whose
/// gradients just became final.
pub type OnFinal<'a> = &'a mut dyn FnMut(&GradStore, &[TensorId]) -> Result<()>;

impl Tensor {
    /// Gradients of this scalar with respect to every leaf that requires grad.
    pub fn backward(&self) -> Result<GradStore> {
        self.backward_inner(None)
    }

    /// [`Tensor::backward`], telling `on_final` which leaves' gradients are final as soon as
    /// the last node that adds to them has run: a data-parallel step starts moving the last
    /// layers' gradients off the device while the first layers' backward is still computing.
    /// Every leaf that requires grad and is reachable is reported once.
    pub fn backward_with(&self, on_final: OnFinal<'_>) -> Result<GradStore> {
        self.backward_inner(Some(on_final))
    }

    fn backward_inner(&self, mut on_final: Option<OnFinal<'_>>) -> Result<GradStore> {
        if self.numel() != 1 {
            return Err(Error::Backward(format!(
                "backward needs a scalar (one element), got shape {:?}",
                self.shape()
            )));
        }
        let Some(root) = self.node().cloned() else {
            return Err(Error::Backward(
                "this tensor was not produced by a recorded op (no input requires grad, or it was made under no_grad)"
                    .into(),
            ));
        };
        let engine = self.engine().clone();
        let _no_grad = engine.no_grad();
        let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
        grads.insert(self.id(), Tensor::full(&engine, self.shape(), 1.0)?);
        let mut leaves = GradStore::default();
        let order = topo_order(&root);
        let mut uses = match on_final {
            Some(_) => leaf_uses(&order),
            None => HashMap::new(),
        };
        for node in order.iter().rev() {
            let rule = node
                .rule
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .ok_or(Error::GraphConsumed { op: node.op })?;
            if let Some(g) = grads.remove(&node.out_id) {
                let input_grads = rule.backward(&g)?;
                drop(rule);
                for (edge, grad) in node.edges.iter().zip(input_grads) {
                    let (Some(edge), Some(grad)) = (edge, grad) else {
                        continue;
                    };
                    if grad.shape() != edge.shape.as_slice() {
                        return Err(Error::Backward(format!(
                            "internal: '{}' produced a gradient of shape {:?} for an input of shape {:?}",
                            node.op,
                            grad.shape(),
                            edge.shape
                        )));
                    }
                    let slot = if edge.node.is_some() { &mut grads } else { &mut leaves.grads };
                    accumulate(slot, edge.id, grad)?;
                }
            }
            if let Some(f) = on_final.as_mut() {
                let done = finished_leaves(node, &mut uses);
                if !done.is_empty() {
                    f(&leaves, &done)?;
                }
            }
        }
        Ok(leaves)
    }
}

/// How many recorded uses each leaf has among `order`'s nodes.
fn leaf_uses(order: &[Arc<Node>]) -> HashMap<TensorId, usize> {
    let mut uses = HashMap::new();
    for e in order.iter().flat_map(|n| n.edges.iter().flatten()).filter(|e| e.node.is_none()) {
        *uses.entry(e.id).or_insert(0) += 1;
    }
    uses
}

/// The leaves `node` was the last user of (its backward ran, or had no gradient to pass on).
fn finished_leaves(node: &Node, uses: &mut HashMap<TensorId, usize>) -> Vec<TensorId> {
    let mut done = Vec::new();
    for e in node.edges.iter().flatten().filter(|e| e.node.is_none()) {
        if let Some(n) = uses.get_mut(&e.id) {
            *n -= 1;
            if *n == 0 {
                uses.remove(&e.id);
                done.push(e.id);
            }
        }
    }
    done
}

fn accumulate(map: &mut HashMap<TensorId, Tensor>, id: TensorId, grad: Tensor) -> Result<()> {
    match map.remove(&id) {
        Some(prev) => {
            let sum = prev.add(&grad)?;
            map.insert(id, sum);
        }
        None => {
            map.insert(id, grad);
        }
    }
    Ok(())
}
