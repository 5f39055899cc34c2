//! Property tests: whatever bytes a team commits in its app folder, or writes over weir's
//! record, the parsers answer with located errors or a value, never a panic or a hang. The
//! inputs are real files cut, spliced and sprinkled with the YAML that breaks parsers
//! (anchors, aliases, merge keys, tags, flow brackets, tabs, BOMs, huge numbers).

use super::scan_file;
use proptest::prelude::*;
use std::time::Duration;

const CANARY: &str = include_str!("../../../fixtures/gitops-istio/apps/backend/canary.yaml");
const TEMPLATES: &str =
    include_str!("../../../fixtures/gitops-istio/istio/gateway/flagger-metrics.yaml");
const RECORD: &str = "# Rollout record of prod/backend, written by weir on every step.
apiVersion: weir.dev/v1alpha1
kind: RolloutState
metadata:
  name: backend
  namespace: prod
status:
  phase: Progressing
  canaryWeight: 20
  iterations: 1
  failedChecks: 0
  canaryRevision: abcabcabcabcabcabcabcabcabcabcabcabcabca
  promotedRevision: defdefdefdefdefdefdefdefdefdefdefdefdefd
  promotedCommit: 0123456789012345678901234567890123456789
  primaryImages:
  - ghcr.io/acme/backend:6.1.0
  lastStepAt: 2026-11-24T10:00:00.250Z
  lastTransitionAt: 2026-11-24T10:00:00.250Z
  message: advance canary weight 10 -> 20
";

/// Pieces that parsers trip on.
const SPLICES: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a\n",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    ": ",
    "\n  ",
    "\n",
    "\t",
    "---\n",
    "...\n",
    "!!binary ",
    "!!map ",
    "!custom ",
    "? ",
    "- ",
    "|\n",
    ">-\n",
    "#",
    "\u{feff}",
    "99999999999999999999999",
    "-1",
    "1e400",
    ".nan",
    "-.inf",
    "null",
    "~",
    "\0",
    "\r",
    "%YAML 1.2\n",
    "&a [*a, *a, *a, *a]",
    "\u{202e}",
    "é",
    "0x1F",
    "0o17",
    "true",
    "2026-13-45T99:99:99Z",
];

#[derive(Debug, Clone)]
enum Edit {
    Cut(usize),
    Delete(usize, usize),
    Splice(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Cut),
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), 0..SPLICES.len()).prop_map(|(a, s)| Edit::Splice(a, s)),
    ]
}

/// The nearest char boundary at or before `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(seed: &str, edits: &[Edit]) -> String {
    let mut text = seed.to_string();
    for e in edits {
        match *e {
            Edit::Cut(at) => text.truncate(boundary(&text, at)),
            Edit::Delete(at, n) => {
                let from = boundary(&text, at);
                let to = boundary(&text[from..], n) + from;
                text.replace_range(from..to, "");
            }
            Edit::Splice(at, s) => {
                let at = boundary(&text, at);
                text.insert_str(at, SPLICES[s]);
            }
        }
    }
    text
}

/// Lines as YAML counts them: a lone carriage return breaks a line too.
fn lines(text: &str) -> usize {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .count()
        + 1
}

proptest! {
    // No regression files: the repository's top level is fixed; a case worth keeping
    // becomes a named test below.
    #![proptest_config(ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn specs_are_read_or_refused_with_a_place(
        seed in prop_oneof![Just(CANARY), Just(TEMPLATES)],
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let text = apply(seed, &edits);
        let scan = scan_file("apps/x/canary.yaml", text.as_bytes(), Duration::from_secs(10));
        let errors = scan
            .errors
            .iter()
            .chain(scan.canaries.iter().filter_map(|c| c.as_ref().err()).flat_map(|c| &c.errors))
            .chain(scan.templates.iter().filter_map(|t| t.as_ref().err()).flatten());
        for e in errors {
            prop_assert_eq!(&e.file, "apps/x/canary.yaml");
            prop_assert!(e.line >= 1 && e.line <= lines(&text), "{} in\n{}", e, text);
            prop_assert!(e.col >= 1, "{}", e);
            prop_assert!(!e.field.is_empty() && !e.message.is_empty(), "{}", e);
            prop_assert!(!e.to_string().contains('\n') || e.message.contains('\n'), "{}", e);
        }
    }

    #[test]
    fn records_are_read_or_refused_with_a_place(
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let text = apply(RECORD, &edits);
        match crate::core::record::parse("apps/x.weir/state.yaml", text.as_bytes()) {
            Ok(record) => {
                // A record that parses holds values weir can act on.
                prop_assert!(record.status.canary_weight.get() <= 100);
                prop_assert!(record.status.failed_checks <= crate::core::record::MAX_COUNT);
            }
            Err(crate::core::located::LocatedError { file, line, col, field, message, .. }) => {
                prop_assert_eq!(file, "apps/x.weir/state.yaml");
                prop_assert!(line >= 1 && line <= lines(&text), "{}:{} in\n{}", line, col, text);
                prop_assert!(col >= 1);
                prop_assert!(!field.is_empty() && !message.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = scan_file("f.yaml", &bytes, Duration::from_secs(10));
        let _ = crate::core::record::parse("s.yaml", &bytes);
        let _ = crate::core::duration::GoDuration::parse(&String::from_utf8_lossy(&bytes));
    }
}

/// Anchors that expand exponentially are refused before they are expanded.
#[test]
fn an_alias_bomb_is_refused_quickly() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    text.push_str("apiVersion: flagger.app/v1beta1\nkind: Canary\n");
    let scan = scan_file("bomb.yaml", text.as_bytes(), Duration::from_secs(10));
    assert!(!scan.errors.is_empty(), "{:?}", scan.canaries.len());
    let record = format!("{text}status: {{}}\n");
    assert!(crate::core::record::parse("s.yaml", record.as_bytes()).is_err());
}

/// libyaml refuses what yaml-rust2 reads (a C1 control character): the file is one located
/// syntax error. serde_yaml's document iterator repeats such an error for ever; the scan must
/// stop at it rather than spin.
#[test]
fn a_document_only_libyaml_refuses_is_one_error_not_a_spin() {
    let text = "apiVersion: flagger.app/v1beta1\nkind: Canary\n---\nkind: Canary\nx: \u{8b}\n";
    let scan = scan_file(
        "apps/x/canary.yaml",
        text.as_bytes(),
        Duration::from_secs(10),
    );
    assert_eq!(scan.errors.len(), 1, "{:?}", scan.errors);
    assert!(scan.canaries.is_empty() && scan.templates.is_empty());
    let e = &scan.errors[0];
    assert_eq!((e.field.as_str(), e.line), ("(syntax)", 5), "{e}");
}
