//! Which names a reference can see from where it stands, and what depending on them means.
//!
//! Scopes nest like the document: the top-level steps form frame 0; a construct's body
//! forms a new frame whose *owner* is the construct, and which may bind names (`item`,
//! `index`, `iteration`, `previous`). A reference from frame `k` to a step of frame
//! `j < k` is a dependency of the frame-`j` step that (transitively) contains it: the
//! construct cannot start its body before the step it reads has finished.

use std::collections::{BTreeSet, HashMap};

use crate::catalogue::close;

/// Names every template may read: the run's input, the run itself, and the step being
/// run (`{step.idempotency_key}`, `{step.attempt}`, `{step.path}`, `{step.run_id}`).
pub(super) const BUILTINS: [&str; 3] = ["input", "workflow", "step"];

/// One level of nesting.
#[derive(Debug, Default)]
pub(super) struct Frame {
    /// Step ids declared in this body.
    pub siblings: BTreeSet<String>,
    /// Names bound by the owner for its body.
    pub bindings: Vec<String>,
    /// The construct whose body this is (`None` for the top level).
    pub owner: Option<String>,
}

/// What a reference root resolved to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Target {
    /// `input`, `workflow` or a bound name: no dependency.
    Free,
    /// A step in frame `level`; the dependency belongs to whichever step of that frame
    /// contains the reference.
    Step {
        /// Frame of the referenced step.
        level: usize,
        /// The referenced step.
        id: String,
    },
}

/// Where every step id lives: its frame's owners, outermost first.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Id to enclosing construct ids.
    pub enclosing: HashMap<String, Vec<String>>,
    /// "Did you mean" hints left to give: each costs an edit distance to every name, so
    /// a document of thousands of unknown references gets hints for the first few only
    /// (and validation stays linear in its size).
    pub hints: std::cell::Cell<usize>,
}

/// How many unknown names of one document get a "did you mean".
pub(super) const HINTS: usize = 20;

/// A stack of frames from the top level to where a reference stands.
#[derive(Debug, Default)]
pub(super) struct Frames {
    /// Outermost first.
    pub stack: Vec<Frame>,
}

impl Frames {
    /// The current depth.
    pub(super) fn level(&self) -> usize {
        self.stack.len().saturating_sub(1)
    }

    /// Resolves a reference root; the error says why it is not visible.
    pub(super) fn resolve(&self, root: &str, index: &Index) -> Result<Target, (super::Code, String)> {
        if BUILTINS.contains(&root) {
            return Ok(Target::Free);
        }
        for (level, frame) in self.stack.iter().enumerate().rev() {
            if frame.bindings.iter().any(|b| b == root) {
                return Ok(Target::Free);
            }
            if frame.siblings.contains(root) {
                // The step of `level` that contains us is the owner of the next frame.
                if let Some(owner) = self.stack.get(level + 1).and_then(|f| f.owner.as_deref())
                    && owner == root
                {
                    return Err((
                        super::Code::Cycle,
                        format!("a step inside `{root}` cannot read `{root}` itself, which finishes only after it"),
                    ));
                }
                return Ok(Target::Step { level, id: root.to_owned() });
            }
        }
        if let Some(enclosing) = index.enclosing.get(root) {
            let inner = enclosing.last().map(String::as_str).unwrap_or("?");
            return Err((
                super::Code::NotUpstream,
                format!(
                    "`{root}` is inside `{inner}` and visible only to steps inside it; read `{inner}`'s output instead"
                ),
            ));
        }
        if index.hints.get() == 0 {
            return Err((super::Code::UnknownReference, format!("`{root}` is not a step, `input` or a bound name")));
        }
        index.hints.set(index.hints.get() - 1);
        let mut known: Vec<&str> = index.enclosing.keys().map(String::as_str).collect();
        known.extend(BUILTINS);
        for frame in &self.stack {
            known.extend(frame.bindings.iter().map(String::as_str));
        }
        let mut near: Vec<(usize, &str)> = known.into_iter().filter_map(|k| Some((close(root, k, 1)?, k))).collect();
        near.sort();
        let hint = match near.first() {
            Some((_, k)) => format!("; did you mean `{k}`?"),
            None => String::new(),
        };
        Err((super::Code::UnknownReference, format!("`{root}` is not a step, `input` or a bound name{hint}")))
    }
}
