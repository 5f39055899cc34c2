//! weir's files deleted or edited by hand mid-release: weir puts them back from the rollout
//! record (never from the current tree, which holds the unanalysed canary), and the analysis
//! goes on where it was. A record missing at the head is read from the commit weir last
//! wrote it in, so deleting weir's folder cannot promote a build that was never analysed.

use crate::primary::{drive_fake, fake_engine};
use crate::support::repo::{docs, find, flux_build, git, image, Fixture};
use std::time::Duration;
use weir::core::spec::Phase;

fn tree_id(fixture: &Fixture, path: &str) -> String {
    git(&fixture.remote, &["rev-parse", &format!("main:{path}")])
        .trim()
        .to_string()
}

fn last_subject(fixture: &Fixture) -> String {
    fixture.log().last().unwrap().1.clone()
}

#[tokio::test]
async fn deleted_and_edited_files_are_restored_from_the_record_and_the_analysis_goes_on() {
    let fixture = Fixture::new();
    let (mut engine, clock, _) = fake_engine(&fixture);
    engine.tick().await.unwrap();
    fixture.bump("backend", "6.1.1");
    engine.tick().await.unwrap();
    clock.advance(Duration::from_secs(3));
    engine.tick().await.unwrap();
    let before = fixture.state("backend").unwrap();
    assert_eq!(
        (before.phase, before.canary_weight.get()),
        (Phase::Progressing, 25)
    );
    let primary = tree_id(&fixture, "apps/backend.weir/primary");

    // The primary folder is deleted: it comes back byte for byte, the record unchanged.
    fixture.push_change("oops", |work| {
        std::fs::remove_dir_all(work.join("apps/backend.weir/primary")).unwrap();
    });
    engine.tick().await.unwrap();
    assert!(
        last_subject(&fixture).starts_with("backend: primary restored to revision "),
        "{}",
        last_subject(&fixture)
    );
    assert_eq!(tree_id(&fixture, "apps/backend.weir/primary"), primary);
    let after = fixture.state("backend").unwrap();
    assert_eq!(after.canary_weight, before.canary_weight);
    assert_eq!(
        after.last_step_at, before.last_step_at,
        "a repair is not a step"
    );
    assert_eq!(after.promoted_revision, before.promoted_revision);

    // The analysis goes on.
    clock.advance(Duration::from_secs(3));
    engine.tick().await.unwrap();
    assert_eq!(
        last_subject(&fixture),
        "backend: advance canary weight 25 -> 50"
    );

    // A hand edit of the routing is undone.
    fixture.push_change("send everything to the canary", |work| {
        let vs = work.join("apps/backend.weir/virtualservice.yaml");
        let text = std::fs::read_to_string(&vs).unwrap();
        std::fs::write(&vs, text.replace("weight: 50", "weight: 100")).unwrap();
    });
    engine.tick().await.unwrap();
    assert_eq!(
        last_subject(&fixture),
        "backend: routing rendered again from the Canary spec"
    );
    assert_eq!(fixture.state("backend").unwrap().canary_weight.get(), 50);

    // The record is deleted: it is read from the commit weir last wrote it in. Without that,
    // weir would initialise again and make the unanalysed 6.1.1 the primary.
    let record = fixture.state("backend").unwrap();
    fixture.push_change("oops", |work| {
        std::fs::remove_file(work.join("apps/backend.weir/state.yaml")).unwrap();
    });
    engine.tick().await.unwrap();
    assert!(
        last_subject(&fixture).starts_with("backend: rollout record restored from commit "),
        "{}",
        last_subject(&fixture)
    );
    let restored = fixture.state("backend").unwrap();
    assert_eq!(restored.phase, record.phase);
    assert_eq!(restored.canary_weight, record.canary_weight);
    assert_eq!(restored.promoted_revision, record.promoted_revision);

    // The whole folder is deleted: the same.
    fixture.push_change("clean up", |work| {
        std::fs::remove_dir_all(work.join("apps/backend.weir")).unwrap();
    });
    engine.tick().await.unwrap();
    assert!(
        last_subject(&fixture).starts_with("backend: rollout record restored from commit "),
        "{}",
        last_subject(&fixture)
    );
    assert_eq!(tree_id(&fixture, "apps/backend.weir/primary"), primary);

    // And the release completes as if nothing happened.
    drive_fake(&mut engine, &clock, &fixture, |f| {
        f.state("backend")
            .is_some_and(|s| s.phase == Phase::Succeeded)
    })
    .await;

    // At no commit of weir's (or CI's) did the primary run the unanalysed tag before its
    // promotion. The person's breaking commits are skipped: they do not build, by design.
    let mut promoted = false;
    for (sha, subject) in fixture.log().iter().skip(1) {
        if !subject.starts_with("backend: ") && !subject.starts_with("weir: ") {
            continue;
        }
        promoted |= subject.starts_with("backend: promoting revision");
        let built = docs(&flux_build(&fixture, sha));
        let primary = find(&built, "Deployment", "backend-primary").expect("primary");
        let want = if promoted { "6.1.1" } else { "6.1.0" };
        assert_eq!(
            image(primary),
            format!("ghcr.io/acme/backend:{want}"),
            "at {subject}"
        );
    }
    assert!(promoted);
}
