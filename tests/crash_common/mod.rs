//! Shared by the crash explorations (`crash_wal.rs`, `crash_lifecycle.rs`).

use durability_std::crash::{Choice, CrashDirectory, CrashPlan, PendingKind};

/// Whether `plan` leaves a re-created file over its old content: a pending
/// `set_len(0)` of a file with durable content is not kept while a later write to it
/// lands. That is the state of the known bug of
/// `crash_wal::recreating_a_torn_segment_never_resurrects_its_old_frames`; explorations
/// check those states also in `recreated_segment_states_of_the_workloads` (a regression test of the bug, fixed).
pub fn recreated_over_old_content(at: &CrashDirectory, plan: &CrashPlan) -> bool {
    let pending = at.pending();
    let choice = |i: usize| plan.files.get(i).copied().unwrap_or(Choice::Keep);
    pending.iter().enumerate().any(|(i, op)| {
        op.kind == PendingKind::SetLen { len: 0 }
            && choice(i) != Choice::Keep
            && op
                .path
                .as_deref()
                .and_then(|p| at.read_durable(p))
                .is_some_and(|old| !old.is_empty())
            && pending[i + 1..].iter().enumerate().any(|(j, later)| {
                later.path == op.path
                    && matches!(later.kind, PendingKind::Write { .. })
                    && choice(i + 1 + j) != Choice::Drop
            })
    })
}

/// Which crash states an exploration checks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every state.
    Main,
    /// Only those of [`recreated_over_old_content`] (the regression test of its bug).
    KnownBug,
}
