//! PR mode: each app's next step goes to a branch of its own (`weir/<namespace>/<name>`) and
//! one open pull request, updated in place, that weir merges itself once the step is planned
//! again with fresh evidence, and, at the steps a team marks as needing a person (at least the
//! promotion), once someone approved that very commit. Behind the same [`Publisher`] port as
//! direct commits; the planner does not know which one runs.
//!
//! A step is kept while the planner keeps planning it: a pull request already carrying the
//! same step is not rebuilt (so an approval stays valid while other apps move the branch). A
//! different step for the app (the next one, a halt, a rollback, a new revision) rewrites the
//! pull request with a commit on top of its branch and says why in a comment. Nothing is
//! ever force-pushed: a new commit on the app's branch has both the branch's tip and the
//! planned head as parents, so the branch only moves forward and the pull request shows only
//! weir's folder of the app.

use crate::adapters::github::{
    GitHub, MergeMethod, MergeOutcome, MergeRequest, NewPullRequest, PullRequest, ReviewVerdict,
};
use crate::core::events::commit_message;
use crate::core::names::STATE_FILE;
use crate::core::record::{self, Interval, Reading, MAX_INTERVALS};
use crate::core::spec::Phase;
use crate::core::text::clean;
use crate::ports::{BoxFuture, ConfigRepo, Publisher};
use crate::repo::change::{ChangeSet, Publication, PushOutcome, RepoError, Waiting};
use crate::repo::objects::{Node, ObjectId};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::sync::Arc;

/// How pull requests are made and merged.
#[derive(Debug, Clone)]
pub struct PrSettings {
    /// The branch pull requests merge into (the config branch).
    pub base: String,
    /// Prepended to every title.
    pub prefix: String,
    /// Steps that lead to these phases wait for an approving review of their commit.
    pub review: Vec<Phase>,
    /// How weir merges.
    pub method: MergeMethod,
}

impl Default for PrSettings {
    fn default() -> PrSettings {
        PrSettings {
            base: "main".into(),
            prefix: String::new(),
            review: vec![Phase::Promoting],
            method: MergeMethod::Squash,
        }
    }
}

/// The pull request publisher.
pub struct PullRequests {
    github: Arc<dyn GitHub>,
    settings: PrSettings,
}

/// What came of one app's step.
enum Outcome {
    /// Nothing to propose (the step changes no file).
    Nothing,
    /// Merged: the commit on the branch and its message.
    Merged(ObjectId, String),
    /// Waiting in its pull request, and why.
    Waiting(String),
}

/// Where the branches of weir's pull requests live.
pub const BRANCH_PREFIX: &str = "weir/";

/// The branch of an app's pull request: `weir/<namespace>/<name>`.
pub fn branch_of(namespace: &str, name: &str) -> String {
    format!("{BRANCH_PREFIX}{namespace}/{name}")
}

/// The apps' branches on the remote, each a step waiting to merge.
pub fn waiting(repo: &mut dyn ConfigRepo) -> Result<Vec<Waiting>, RepoError> {
    Ok(repo
        .branches(BRANCH_PREFIX)?
        .into_iter()
        .filter_map(|(branch, tip)| {
            let (namespace, name) = branch.strip_prefix(BRANCH_PREFIX)?.split_once('/')?;
            Some(Waiting {
                namespace: namespace.to_string(),
                name: name.to_string(),
                place: branch.clone(),
                tip,
            })
        })
        .collect())
}

/// The first line of a pull request body: which step it carries, by which weir finds it.
const STEP_MARKER: &str = "<!-- weir step: ";

impl PullRequests {
    /// Publishes through `github` with `settings`.
    pub fn new(github: Arc<dyn GitHub>, settings: PrSettings) -> PullRequests {
        PullRequests { github, settings }
    }

    async fn one(
        &self,
        repo: &mut dyn ConfigRepo,
        head: ObjectId,
        change: &ChangeSet,
        at: DateTime<Utc>,
    ) -> Result<Outcome, RepoError> {
        let branch = branch_of(&change.app.namespace, &change.app.name);
        let message = commit_message(&self.settings.prefix, &change.events);
        let title = message.lines().next().unwrap_or_default().to_string();
        let key = step_key(change);
        let open = self
            .github
            .find_pull_request(&branch)
            .await
            .map_err(gh_err)?;
        let tip = repo.branch_tip(&branch)?;
        // The same step, on a branch whose tip is the commit weir built for it: kept, so
        // that an approval of it stays valid. Anything someone else pushed is never merged.
        let mut foreign = false;
        let kept = match (open.as_ref(), tip) {
            (Some(pr), Some(t))
                if carried_step(&pr.body) == Some(key.as_str()) && t.to_string() == pr.head_sha =>
            {
                foreign = !weirs_own(repo, t, head, change)?;
                (!foreign).then(|| pr.clone())
            }
            _ => None,
        };
        let (pr, sha) = match kept {
            Some(pr) => {
                let sha = pr.head_sha.clone();
                (pr, sha)
            }
            None => {
                let parents: Vec<ObjectId> = std::iter::once(head).chain(tip).collect();
                let Some(commit) =
                    repo.commit_onto(head, &parents, std::slice::from_ref(change), &message, at)?
                else {
                    return Ok(Outcome::Nothing);
                };
                match repo.push_branch(&branch, tip, commit)? {
                    PushOutcome::Pushed => {}
                    PushOutcome::Raced { .. } => {
                        return Ok(Outcome::Waiting(format!(
                            "branch {branch} moved while weir wrote it; written again next tick"
                        )))
                    }
                }
                let body = body(change, &key, &message);
                let pr = match open {
                    Some(old) => {
                        let pr = self
                            .github
                            .update_pull_request(old.number, &title, &body)
                            .await
                            .map_err(gh_err)?;
                        let why = if foreign {
                            format!(
                                "Rewritten: the branch held changes weir did not make, which weir never merges. This pull request carries `{}` again, as weir built it; an approval of the earlier head does not count.",
                                cell(&title)
                            )
                        } else {
                            format!(
                                "Superseded: this pull request now carries `{}` (it carried `{}`); the planner decided the next step on fresh evidence.",
                                cell(&title),
                                cell(&old.title)
                            )
                        };
                        self.github
                            .comment(old.number, &why)
                            .await
                            .map_err(gh_err)?;
                        pr
                    }
                    None => self
                        .github
                        .open_pull_request(&NewPullRequest {
                            head: branch.clone(),
                            base: self.settings.base.clone(),
                            title: title.clone(),
                            body,
                        })
                        .await
                        .map_err(gh_err)?,
                };
                (pr, commit.to_string())
            }
        };
        if self.needs_review(change) && !self.approved(&pr, &sha).await? {
            return Ok(Outcome::Waiting(format!(
                "#{} waits for an approving review of {}",
                pr.number,
                short(&sha)
            )));
        }
        let merged = self
            .github
            .merge(&MergeRequest {
                number: pr.number,
                expected_head: sha,
                method: self.settings.method,
                title: Some(title),
                message: Some(body_of_message(&message)),
            })
            .await
            .map_err(gh_err)?;
        match merged {
            MergeOutcome::Merged { sha } => {
                let commit = ObjectId::from_hex(&sha).ok_or_else(|| {
                    RepoError::permanent(format!(
                        "GitHub merged #{} as `{}`, not a commit id",
                        pr.number,
                        clean(&sha, 60)
                    ))
                })?;
                Ok(Outcome::Merged(commit, message))
            }
            MergeOutcome::NotMergeable { reason } => Ok(Outcome::Waiting(format!(
                "#{} cannot be merged yet ({}); tried again next tick",
                pr.number,
                clean(&reason, 200)
            ))),
            MergeOutcome::Conflict { reason } | MergeOutcome::StaleHead { reason } => {
                Ok(Outcome::Waiting(format!(
                    "#{} was not merged ({}); written again on the branch's new head next tick",
                    pr.number,
                    clean(&reason, 200)
                )))
            }
        }
    }

    /// The app's own review phases (its Canary's annotation), else the setting's.
    fn needs_review(&self, change: &ChangeSet) -> bool {
        let phases = change.review.as_ref().unwrap_or(&self.settings.review);
        change.events.iter().any(|e| phases.contains(&e.phase))
    }

    /// Someone who may write to the repository approved exactly `sha`, and no such person's
    /// standing verdict asks for changes (as GitHub's branch protection counts reviews: a
    /// review by anyone else, possible on a public repository, counts for nothing).
    async fn approved(&self, pr: &PullRequest, sha: &str) -> Result<bool, RepoError> {
        let reviews = self.github.reviews(pr.number).await.map_err(gh_err)?;
        let mut approved = false;
        for r in &reviews {
            let counts = match r.verdict {
                ReviewVerdict::ChangesRequested => true,
                ReviewVerdict::Approved => !approved && r.commit.as_deref() == Some(sha),
                _ => false,
            };
            if !counts || !self.github.can_write(&r.reviewer).await.map_err(gh_err)? {
                continue;
            }
            if r.verdict == ReviewVerdict::ChangesRequested {
                return Ok(false);
            }
            approved = true;
        }
        Ok(approved)
    }
}

impl Publisher for PullRequests {
    fn publish<'a>(
        &'a mut self,
        repo: &'a mut dyn ConfigRepo,
        head: ObjectId,
        changes: &'a [ChangeSet],
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Publication, RepoError>> {
        Box::pin(async move {
            let mut merged = Vec::new();
            let mut waiting = Vec::new();
            for change in changes {
                match self.one(repo, head, change, at).await {
                    Ok(Outcome::Nothing) => {}
                    Ok(Outcome::Merged(commit, message)) => {
                        merged.push((change.app.clone(), commit, message))
                    }
                    Ok(Outcome::Waiting(why)) => waiting.push((change.app.clone(), why)),
                    // One app's trouble with GitHub holds that app only.
                    Err(e) if e.transient => waiting.push((change.app.clone(), e.message)),
                    Err(e) => return Err(e),
                }
            }
            if merged.is_empty() && waiting.is_empty() {
                return Ok(Publication::Nothing);
            }
            Ok(Publication::Proposed { merged, waiting })
        })
    }

    fn shows_remaining_steps(&self) -> bool {
        true
    }

    fn pending(&self, repo: &mut dyn ConfigRepo) -> Result<Vec<Waiting>, RepoError> {
        waiting(repo)
    }
}

/// Whether `tip` is the step weir built for `change`: merged, it changes weir's folder of the
/// app and nothing else, and the folder holds exactly the planned files, but for what moves
/// with every look: the record may differ in what no decision reads (times, message,
/// history) and in which commit holds the promoted revision, and the primary may differ in
/// the note naming that commit.
fn weirs_own(
    repo: &dyn ConfigRepo,
    tip: ObjectId,
    head: ObjectId,
    change: &ChangeSet,
) -> Result<bool, RepoError> {
    if !repo.changes_only(tip, &change.dir, head)? {
        return Ok(false);
    }
    let tree = repo.tree(tip)?;
    let tree = tree.as_ref();
    let Some(planned) = &change.tree else {
        return Ok(tree.id(&change.dir).is_none());
    };
    let record = format!("{}/{STATE_FILE}", change.dir);
    let parse = |bytes: &[u8]| record::parse(&record, bytes).ok();
    let (Some(theirs), Some(Node::File(ours))) = (
        tree.read(&record).ok().as_deref().and_then(parse),
        planned.entries.get(STATE_FILE),
    ) else {
        return Ok(false);
    };
    let Some(ours) = parse(ours) else {
        return Ok(false);
    };
    if theirs.metadata != ours.metadata || !theirs.status.decides_as(&ours.status) {
        return Ok(false);
    }
    let note = |s: &record::State| {
        s.promoted_commit
            .as_deref()
            .map(crate::repo::render::primary::commit_note)
    };
    let swap = note(&ours.status).zip(note(&theirs.status));
    let mut rest = planned.clone();
    rest.entries.remove(STATE_FILE);
    Ok(same_files(tree, &change.dir, &rest, swap.as_ref(), true))
}

/// Whether the folder `path` of `tree` holds exactly `planned` (record aside when `top`),
/// with the note `swap.0` in a planned file read as `swap.1`.
fn same_files(
    tree: &dyn crate::repo::source::SourceTree,
    path: &str,
    planned: &crate::repo::objects::Dir,
    swap: Option<&(String, String)>,
    top: bool,
) -> bool {
    let Ok(entries) = tree.list(path) else {
        return false;
    };
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|e| !(top && e.name == STATE_FILE))
        .collect();
    entries.len() == planned.entries.len()
        && entries.iter().all(|entry| {
            let at = format!("{path}/{}", entry.name);
            let Some(node) = planned.entries.get(&entry.name) else {
                return false;
            };
            if entry.link || entry.is_dir != node.is_dir() {
                return false;
            }
            if entry.id == node.id() {
                return true;
            }
            match (node, swap) {
                (Node::Dir(d), _) => same_files(tree, &at, d, swap, false),
                (Node::File(ours), Some((from, to))) => {
                    let ours = String::from_utf8_lossy(ours).replace(from.as_str(), to);
                    tree.read(&at).is_ok_and(|theirs| theirs == ours.as_bytes())
                }
                _ => false,
            }
        })
}

fn gh_err(e: crate::adapters::github::GitHubError) -> RepoError {
    RepoError {
        message: e.message,
        transient: e.transient,
        repaired: false,
        local: false,
    }
}

/// Identifies a step: the same step planned again has the same key.
fn step_key(change: &ChangeSet) -> String {
    let text: Vec<String> = change
        .events
        .iter()
        .map(|e| format!("{}|{}|{}|{}", e.app, e.phase, e.weight, e.summary))
        .collect();
    ObjectId::for_blob(text.join("\n").as_bytes()).short(12)
}

/// The step a pull request body says it carries.
fn carried_step(body: &str) -> Option<&str> {
    body.lines()
        .next()?
        .strip_prefix(STEP_MARKER)?
        .strip_suffix(" -->")
}

fn short(sha: &str) -> &str {
    crate::core::text::short(sha)
}

fn body_of_message(message: &str) -> String {
    message.lines().skip(2).collect::<Vec<_>>().join("\n")
}

/// A table cell: one line, at most 300 characters (a record edited by hand cannot push a
/// body past GitHub's limit).
fn cell(s: &str) -> String {
    clean(&crate::core::text::cell(s), 300)
}

/// GitHub refuses bodies over 65536 characters.
const MAX_BODY: usize = 60_000;

/// The pull request body: the step, the gate results of the release so far, the steps that
/// follow, and charts GitHub renders of the canary weight per step and of each metric per
/// interval.
fn body(change: &ChangeSet, key: &str, message: &str) -> String {
    let mut md = format!("{STEP_MARKER}{key} -->\n");
    for e in &change.events {
        let _ = writeln!(
            md,
            "**{}**: {} (phase {}, canary weight {}%)\n",
            e.app,
            cell(&e.summary),
            e.phase,
            e.weight
        );
        if !e.details.is_empty() {
            md.push_str("| evidence of this step |\n| --- |\n");
            for d in &e.details {
                let _ = writeln!(md, "| {} |", cell(d));
            }
            md.push('\n');
        }
    }
    // What the record keeps at most, however long a hand-edited one is.
    let history = &change.history[change.history.len().saturating_sub(MAX_INTERVALS)..];
    gate_table(&mut md, history);
    if !change.remaining.is_empty() {
        md.push_str("The steps that follow when every gate passes:\n\n| after | phase | canary weight | step |\n| --- | --- | --- | --- |\n");
        for s in &change.remaining {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                crate::core::duration::GoDuration(s.after),
                s.phase,
                s.canary_weight,
                cell(&s.event)
            );
        }
        md.push('\n');
    }
    weight_chart(&mut md, history, change);
    metric_charts(&mut md, history);
    if md.len() > MAX_BODY {
        let mut cut = MAX_BODY;
        while !md.is_char_boundary(cut) {
            cut -= 1;
        }
        md.truncate(cut);
        md.push_str("\n\n(cut at GitHub's limit for a body; the rollout record has the rest)\n");
    }
    let _ = write!(
        md,
        "\n<details><summary>commit message</summary>\n\n```text\n{}\n```\n</details>\n",
        message.replace("```", "'''")
    );
    md
}

/// The most reading rows a body shows; the record keeps the rest.
const MAX_ROWS: usize = 150;

/// Every reading of the release so far, one row per gate per interval.
fn gate_table(md: &mut String, history: &[Interval]) {
    let rows: Vec<(usize, &Interval, &Reading)> = history
        .iter()
        .enumerate()
        .flat_map(|(i, interval)| interval.gates.iter().map(move |r| (i + 1, interval, r)))
        .collect();
    if rows.is_empty() {
        return;
    }
    md.push_str("Gate results of this release so far:\n\n| interval | at (UTC) | canary weight | gate | value | bound | result |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    let skipped = rows.len().saturating_sub(MAX_ROWS);
    for (n, interval, r) in &rows[skipped..] {
        let value = match (r.value, &r.note) {
            (Some(v), _) => value_text(v),
            (None, Some(note)) => cell(note),
            (None, None) => String::new(),
        };
        let bound = match (r.min, r.max) {
            (None, None) if r.value.is_none() => String::new(),
            (min, max) => crate::core::plan::bound(min, max),
        };
        let _ = writeln!(
            md,
            "| {n} | {} | {} | {} | {value} | {bound} | {} |",
            interval.at.format("%H:%M:%S"),
            interval.canary_weight,
            cell(&r.gate),
            if r.passed { "pass" } else { "**fail**" }
        );
    }
    if skipped > 0 {
        let _ = writeln!(
            md,
            "\n{skipped} earlier readings are in the rollout record."
        );
    }
    md.push('\n');
}

/// The canary weight at each interval so far, now, and at each planned step.
fn weight_chart(md: &mut String, history: &[Interval], change: &ChangeSet) {
    let now = change.events.first().map(|e| e.weight.get()).unwrap_or(0);
    let past = history.iter().map(|i| i.canary_weight.get());
    let planned = change.remaining.iter().map(|s| s.canary_weight.get());
    if history.is_empty() && change.remaining.is_empty() {
        return;
    }
    let labels: Vec<String> = (1..=history.len())
        .map(|i| i.to_string())
        .chain(std::iter::once("now".to_string()))
        .chain((1..=change.remaining.len()).map(|i| format!("+{i}")))
        .collect();
    let weights: Vec<String> = past
        .chain(std::iter::once(now))
        .chain(planned)
        .map(|w| w.to_string())
        .collect();
    let _ = write!(
        md,
        "```mermaid\nxychart-beta\n    title \"canary weight: intervals so far, now, planned steps\"\n    x-axis [{}]\n    y-axis \"weight %\" 0 --> 100\n    line [{}]\n```\n\n",
        labels.iter().map(|l| format!("\"{l}\"")).collect::<Vec<_>>().join(", "),
        weights.join(", ")
    );
}

/// The most metric charts a body shows.
const MAX_CHARTS: usize = 8;

/// One chart per metric: its value at each interval that had one, and its bounds.
fn metric_charts(md: &mut String, history: &[Interval]) {
    let mut names: Vec<&str> = Vec::new();
    for r in history.iter().flat_map(|i| &i.gates) {
        if r.value.is_some() && !names.contains(&r.gate.as_str()) {
            names.push(&r.gate);
        }
    }
    for name in names.into_iter().take(MAX_CHARTS) {
        let points: Vec<(usize, &Reading)> = history
            .iter()
            .enumerate()
            .filter_map(|(i, interval)| {
                let r = interval.gates.iter().find(|r| r.gate == name)?;
                r.value.map(|_| (i + 1, r))
            })
            .collect();
        let series = |f: &dyn Fn(&Reading) -> Option<f64>| -> Option<String> {
            let values: Option<Vec<String>> =
                points.iter().map(|(_, r)| f(r).map(value_text)).collect();
            values.map(|v| v.join(", "))
        };
        let _ = writeln!(
            md,
            "```mermaid\nxychart-beta\n    title \"{} per interval\"\n    x-axis [{}]",
            chart_text(name),
            points
                .iter()
                .map(|(n, _)| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(values) = series(&|r| r.value) {
            let _ = writeln!(md, "    line [{values}]");
        }
        for bound in [series(&|r| r.min), series(&|r| r.max)]
            .into_iter()
            .flatten()
        {
            let _ = writeln!(md, "    line [{bound}]");
        }
        md.push_str("```\n\n");
    }
}

/// A value as the table and charts show it: two decimals, as in commit messages, except for
/// small values, which keep their digits (a latency of 0.0034 s is not 0).
fn value_text(v: f64) -> String {
    if v != 0.0 && v.abs() < 0.01 {
        v.to_string()
    } else {
        crate::core::plan::number(v)
    }
}

/// A name as chart text: letters, digits and a few marks, nothing that ends the quotes.
fn chart_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '/' | ' ' => c,
            _ => '_',
        })
        .take(80)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_marker_round_trips() {
        let body = format!("{STEP_MARKER}0123abcd4567 -->\nrest");
        assert_eq!(carried_step(&body), Some("0123abcd4567"));
        assert_eq!(carried_step("no marker"), None);
    }

    /// A record edited by hand to hold thousands of long readings still gives a body GitHub
    /// takes: the step marker first, bounded rows, cells and charts.
    #[test]
    fn a_huge_history_gives_a_body_github_takes() {
        use crate::core::app::AppRef;
        use crate::core::spec::Weight;
        let app = AppRef {
            namespace: "prod".into(),
            name: "backend".into(),
            dir: "apps/backend".into(),
        };
        let reading = |i: usize| Reading {
            gate: format!("metric-{i}"),
            value: Some(i as f64),
            note: Some("x".repeat(10_000)),
            min: Some(1.0),
            max: None,
            passed: i.is_multiple_of(2),
        };
        let interval = Interval {
            at: DateTime::<Utc>::UNIX_EPOCH,
            canary_weight: Weight::new(10).unwrap(),
            gates: (0..50).map(reading).collect(),
        };
        let change = ChangeSet {
            app: app.clone(),
            dir: "apps/backend.weir".into(),
            tree: None,
            events: vec![crate::core::events::Event {
                app,
                phase: Phase::Progressing,
                weight: Weight::new(20).unwrap(),
                summary: "advance canary weight 10 -> 20".into(),
                details: vec!["y".repeat(5_000)],
            }],
            remaining: Vec::new(),
            history: vec![interval; 500],
            review: None,
        };
        let md = body(&change, "0123abcd4567", "subject\n\nbody");
        assert!(md.len() < 65_536, "{}", md.len());
        assert_eq!(carried_step(&md), Some("0123abcd4567"));
        assert_eq!(md.matches("per interval\"").count(), MAX_CHARTS);
        assert!(md.lines().all(|l| l.chars().count() < 2_000));
        assert!(md.contains(&format!(
            "| {MAX_INTERVALS} | 00:00:00 | 10 | metric-49 | 49 | >= 1 | **fail** |"
        )));
    }

    #[test]
    fn small_values_keep_their_digits() {
        assert_eq!(value_text(0.0034), "0.0034");
        assert_eq!(value_text(-0.0001), "-0.0001");
        assert_eq!(value_text(0.0), "0");
        assert_eq!(value_text(99.12345), "99.12");
    }
}
