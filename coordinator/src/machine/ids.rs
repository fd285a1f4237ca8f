//! Indices of a run's step instances and frames, as types: an instance index cannot be
//! used for a frame, nor a position in a body for either.

use std::ops::{Index, IndexMut};

use super::Inst;
use super::frame::Frame;

/// A step instance of a run: its place in the run's instances, in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct InstId(u32);

/// A frame of a run (frame 0 holds the top-level steps), in opening order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct FrameId(u32);

impl InstId {
    /// The instance at `n`. Instances are bounded by the run's limits, far below `u32::MAX`.
    pub(super) fn at(n: usize) -> InstId {
        InstId(u32::try_from(n).expect("a run has fewer than 2^32 step instances"))
    }

    fn slot(self) -> usize {
        self.0 as usize
    }
}

impl FrameId {
    /// The top-level frame.
    pub(super) const TOP: FrameId = FrameId(0);

    /// The frame at `n`.
    pub(super) fn at(n: usize) -> FrameId {
        FrameId(u32::try_from(n).expect("a run has fewer than 2^32 frames"))
    }

    fn slot(self) -> usize {
        self.0 as usize
    }
}

impl Index<InstId> for Vec<Inst> {
    type Output = Inst;

    fn index(&self, i: InstId) -> &Inst {
        &self[i.slot()]
    }
}

impl IndexMut<InstId> for Vec<Inst> {
    fn index_mut(&mut self, i: InstId) -> &mut Inst {
        &mut self[i.slot()]
    }
}

impl Index<FrameId> for Vec<Frame> {
    type Output = Frame;

    fn index(&self, f: FrameId) -> &Frame {
        &self[f.slot()]
    }
}

impl IndexMut<FrameId> for Vec<Frame> {
    fn index_mut(&mut self, f: FrameId) -> &mut Frame {
        &mut self[f.slot()]
    }
}
