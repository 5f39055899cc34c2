//! Alerts over real HTTP: every provider kind reaches a receiver on loopback in the shape it
//! expects, retries are bounded, targets are served at once, severities filter, proxies
//! carry the message, and a receiver that never takes an alert neither stalls weir nor gets
//! its address or token into a log.

use crate::support::receiver::Receiver;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::instrument::WithSubscriber;
use weir::adapters::alerts::{payload, Delivery, DeliveryError, HttpNotifier, NotifierSettings};
use weir::core::alert::Alert;
use weir::core::app::AppRef;
use weir::core::secret::Secret;
use weir::core::spec::{AlertSeverity, AlertTarget, Phase, ProviderKind, Weight};
use weir::ports::Notifier;

fn settings() -> NotifierSettings {
    NotifierSettings {
        timeout: Duration::from_secs(2),
        attempts: 3,
        retry_wait: Duration::from_millis(10),
    }
}

fn target(provider: &str, kind: ProviderKind, address: String) -> AlertTarget {
    AlertTarget {
        provider: provider.into(),
        kind,
        address: Secret::new(address),
        token: None,
        channel: None,
        username: None,
        proxy: None,
        min_severity: AlertSeverity::Info,
    }
}

fn alert(severity: AlertSeverity, targets: Vec<AlertTarget>) -> Alert {
    Alert {
        app: AppRef {
            namespace: "prod".into(),
            name: "backend".into(),
            dir: "apps/backend".into(),
        },
        severity,
        message: "Canary analysis failed, rollback finished.".into(),
        phase: Phase::Failed,
        canary_weight: Weight::new(0).unwrap(),
        failed_checks: 5,
        threshold: 5,
        failing: vec!["request-success-rate 91.3 < 99".into()],
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        fields: vec![("Target".into(), "Deployment/backend.prod".into())],
        targets,
    }
}

fn outcomes(deliveries: &[Delivery]) -> Vec<(&str, Result<u32, DeliveryError>)> {
    deliveries
        .iter()
        .map(|d| (d.provider.as_str(), d.outcome.clone()))
        .collect()
}

#[tokio::test]
async fn each_provider_kind_is_delivered_as_its_receiver_expects() {
    let receiver = Receiver::start();
    let base = receiver.url();
    let mut slack = target(
        "prod/slack",
        ProviderKind::Slack,
        format!("{base}/services/T0/B0/SLACKPATHTOKEN"),
    );
    slack.token = Some(Secret::new("xoxb-slack-token"));
    slack.channel = Some("on-call".into());
    let mut discord = target(
        "prod/discord",
        ProviderKind::Discord,
        format!("{base}/api/webhooks/1/DISCORDTOKEN"),
    );
    // Only Slack sends a token, as in Flagger.
    discord.token = Some(Secret::new("never-sent"));
    let targets = vec![
        slack,
        discord,
        target(
            "prod/rocket",
            ProviderKind::Rocket,
            format!("{base}/hooks/rocket"),
        ),
        target(
            "prod/teams",
            ProviderKind::Msteams,
            format!("{base}/webhookb2/teams"),
        ),
        target(
            "prod/gchat",
            ProviderKind::Gchat,
            format!("{base}/v1/spaces/X/messages?key=k"),
        ),
        target(
            "prod/generic",
            ProviderKind::Generic,
            format!("{base}/weir"),
        ),
    ];
    let a = alert(AlertSeverity::Error, targets.clone());
    let notifier = HttpNotifier::new(settings()).unwrap();
    let deliveries = notifier.deliver(&a).await;
    assert_eq!(
        outcomes(&deliveries),
        [
            ("prod/slack", Ok(1)),
            ("prod/discord", Ok(1)),
            ("prod/rocket", Ok(1)),
            ("prod/teams", Ok(1)),
            ("prod/gchat", Ok(1)),
            ("prod/generic", Ok(1)),
        ]
    );
    let requests = receiver.requests();
    assert_eq!(requests.len(), 6);
    let paths = [
        "/services/T0/B0/SLACKPATHTOKEN",
        "/api/webhooks/1/DISCORDTOKEN/slack",
        "/hooks/rocket",
        "/webhookb2/teams",
        "/v1/spaces/X/messages?key=k",
        "/weir",
    ];
    for (t, path) in targets.iter().zip(paths) {
        let r = requests
            .iter()
            .find(|r| r.target == path)
            .unwrap_or_else(|| panic!("nothing arrived at {path}: {requests:?}"));
        assert_eq!(r.method, "POST", "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{path}");
        let expected_auth = (t.kind == ProviderKind::Slack).then_some("Bearer xoxb-slack-token");
        assert_eq!(r.header("authorization"), expected_auth, "{path}");
        // Byte for byte what the builder makes, keys in their order.
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            String::from_utf8_lossy(&payload(&a, t).to_json()),
            "{path}"
        );
        let body = r.json();
        match t.kind {
            ProviderKind::Slack => {
                assert_eq!(body["channel"], "on-call");
                assert_eq!(body["username"], "weir");
                assert_eq!(body["attachments"][0]["color"], "danger");
                assert_eq!(body["attachments"][0]["author_name"], "backend.prod");
            }
            ProviderKind::Discord => {
                assert_eq!(body["channel"], "general");
                assert_eq!(body["attachments"][0]["color"], "danger");
            }
            ProviderKind::Rocket => assert_eq!(body["attachments"][0]["color"], "#FF0000"),
            ProviderKind::Msteams => {
                assert_eq!(body["@type"], "MessageCard");
                assert_eq!(body["themeColor"], "FF0000");
                assert_eq!(body["sections"][0]["facts"][3]["value"], "5/5");
            }
            ProviderKind::Gchat => {
                assert_eq!(body["cards"][0]["header"]["title"], "weir");
                assert_eq!(
                    body["cards"][0]["sections"][5]["widgets"][0]["textParagraph"]["text"],
                    "Failing<br><b>request-success-rate 91.3 &lt; 99</b>"
                );
            }
            ProviderKind::Generic => {
                assert_eq!(body["app"], "prod/backend");
                assert_eq!(body["severity"], "error");
                assert_eq!(body["canaryWeight"], 0);
                assert_eq!(body["failing"][0], "request-success-rate 91.3 < 99");
                assert_eq!(body["fields"]["Target"], "Deployment/backend.prod");
            }
        }
    }
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_alert_on_the_third_attempt() {
    let receiver = Receiver::start();
    receiver.fail_next(2);
    let t = target(
        "prod/slack",
        ProviderKind::Slack,
        format!("{}/hook", receiver.url()),
    );
    let notifier = HttpNotifier::new(settings()).unwrap();
    let deliveries = notifier.deliver(&alert(AlertSeverity::Info, vec![t])).await;
    assert_eq!(outcomes(&deliveries), [("prod/slack", Ok(3))]);
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.body == requests[0].body));
}

/// A log sink for one test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Reads what weir logs, so it runs alone in a child process of this test binary: tracing
/// caches per call site, process-wide, whether a line is wanted, and other tests logging on
/// other threads at the same moment can leave that cache stale for this test's subscriber.
#[test]
fn a_receiver_that_never_takes_it_costs_bounded_time_and_leaks_no_secret() {
    const CHILD: &str = "WEIR_TEST_ALONE";
    if std::env::var_os(CHILD).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(receiver_that_never_takes_it());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "alerts::a_receiver_that_never_takes_it_costs_bounded_time_and_leaks_no_secret",
            "--test-threads",
            "1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "the child ran the test: {text}");
}

async fn receiver_that_never_takes_it() {
    // Answers 500 and echoes the request, Authorization header and webhook path included.
    let failing = Receiver::answering(500);
    failing.echo();
    let mut slack = target(
        "prod/slack",
        ProviderKind::Slack,
        format!("{}/services/T0/B0/SLACKPATHTOKEN", failing.url()),
    );
    slack.token = Some(Secret::new("xoxb-slack-token"));
    // Nothing listens there any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let refused = target(
        "prod/teams",
        ProviderKind::Msteams,
        format!("http://127.0.0.1:{closed_port}/webhookb2/TEAMSPATHTOKEN"),
    );
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging = target(
        "prod/discord",
        ProviderKind::Discord,
        format!(
            "http://127.0.0.1:{}/api/webhooks/1/DISCORDTOKEN",
            silent.local_addr().unwrap().port()
        ),
    );
    let secrets = [
        "SLACKPATHTOKEN",
        "xoxb-slack-token",
        "TEAMSPATHTOKEN",
        "DISCORDTOKEN",
    ];
    let settings = NotifierSettings {
        timeout: Duration::from_millis(500),
        ..settings()
    };
    let notifier = HttpNotifier::new(settings).unwrap();
    let a = alert(AlertSeverity::Error, vec![slack, refused, hanging]);

    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let started = Instant::now();
    let deliveries = notifier.deliver(&a).with_subscriber(subscriber).await;
    // Three attempts of at most 0.5 s and two short waits, for all targets at once; the
    // bound only catches a hang.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    assert_eq!(failing.count(), 3, "three attempts, then it gives up");
    let errors: Vec<String> = deliveries
        .iter()
        .map(|d| d.outcome.clone().unwrap_err().to_string())
        .collect();
    assert!(
        errors[0].starts_with("the receiver answered HTTP 500: your request was: POST "),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("cannot reach the receiver: "),
        "{errors:?}"
    );
    assert_eq!(errors[2], "no answer within 500ms", "{errors:?}");

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    for provider in ["prod/slack", "prod/teams", "prod/discord"] {
        assert!(
            logs.lines()
                .any(|l| l.contains("alert not delivered") && l.contains(provider)),
            "{provider} is named in a warning:\n{logs}"
        );
    }
    assert!(
        logs.contains("kind=\"slack\"") || logs.contains("kind=slack"),
        "{logs}"
    );
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the log:\n{logs}"
        );
        for e in &errors {
            assert!(!e.contains(secret), "{secret} leaked into an error: {e}");
        }
    }

    // Through the port, the same failures are neither an error nor a panic.
    let started = Instant::now();
    notifier.notify(&a).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(silent);
}

#[tokio::test]
async fn each_target_takes_its_severity_and_above() {
    let everything = Receiver::start();
    let errors_only = Receiver::start();
    let mut on_call = target(
        "prod/on-call",
        ProviderKind::Generic,
        format!("{}/on-call", errors_only.url()),
    );
    on_call.min_severity = AlertSeverity::Error;
    let team = target(
        "prod/team",
        ProviderKind::Generic,
        format!("{}/team", everything.url()),
    );
    let notifier = HttpNotifier::new(settings()).unwrap();
    let targets = vec![on_call, team];

    let warned = notifier
        .deliver(&alert(AlertSeverity::Warn, targets.clone()))
        .await;
    assert_eq!(outcomes(&warned), [("prod/team", Ok(1))]);
    assert_eq!((everything.count(), errors_only.count()), (1, 0));

    let failed = notifier
        .deliver(&alert(AlertSeverity::Error, targets.clone()))
        .await;
    assert_eq!(
        outcomes(&failed),
        [("prod/on-call", Ok(1)), ("prod/team", Ok(1))]
    );
    assert_eq!((everything.count(), errors_only.count()), (2, 1));
    assert_eq!(errors_only.requests()[0].json()["severity"], "error");
    assert_eq!(everything.requests()[0].json()["severity"], "warn");
}

#[tokio::test]
async fn targets_are_served_at_once() {
    // Neither request is answered before both have arrived: one after the other, the first
    // would time out.
    let receiver = Receiver::start();
    receiver.hold_until(2);
    let targets = vec![
        target(
            "prod/a",
            ProviderKind::Generic,
            format!("{}/a", receiver.url()),
        ),
        target(
            "prod/b",
            ProviderKind::Generic,
            format!("{}/b", receiver.url()),
        ),
    ];
    let settings = NotifierSettings {
        attempts: 1,
        ..settings()
    };
    let notifier = HttpNotifier::new(settings).unwrap();
    let deliveries = notifier.deliver(&alert(AlertSeverity::Info, targets)).await;
    assert_eq!(
        outcomes(&deliveries),
        [("prod/a", Ok(1)), ("prod/b", Ok(1))]
    );
}

#[tokio::test]
async fn a_proxy_carries_the_alert_and_its_credentials() {
    let proxy = Receiver::start();
    let mut t = target(
        "prod/slack",
        ProviderKind::Slack,
        "http://alerts.invalid/services/T0/B0/SLACKPATHTOKEN".into(),
    );
    t.proxy = Some(Secret::new(format!(
        "http://relay:proxy-pw@127.0.0.1:{}",
        proxy.port()
    )));
    let notifier = HttpNotifier::new(settings()).unwrap();
    let deliveries = notifier
        .deliver(&alert(AlertSeverity::Info, vec![t.clone(), t]))
        .await;
    assert_eq!(
        outcomes(&deliveries),
        [("prod/slack", Ok(1)), ("prod/slack", Ok(1))]
    );
    let requests = proxy.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        assert_eq!(
            r.target,
            "http://alerts.invalid/services/T0/B0/SLACKPATHTOKEN"
        );
        assert_eq!(
            r.header("proxy-authorization"),
            Some(
                format!(
                    "Basic {}",
                    weir::core::secret::basic_credential("relay", "proxy-pw")
                )
                .as_str()
            )
        );
    }
}

#[tokio::test]
async fn refusals_that_will_not_change_are_not_retried() {
    let gone = Receiver::answering(404);
    let slack_api = Receiver::start();
    slack_api.set_body(r#"{"ok":false,"error":"invalid_auth"}"#);
    let mut api = target(
        "prod/slack-api",
        ProviderKind::Slack,
        format!("{}/api/chat.postMessage", slack_api.url()),
    );
    api.token = Some(Secret::new("xoxb-revoked"));
    let mut bad_proxy = target(
        "prod/bad-proxy",
        ProviderKind::Generic,
        format!("{}/x", gone.url()),
    );
    bad_proxy.proxy = Some(Secret::new("not a url"));
    let targets = vec![
        target(
            "prod/gone",
            ProviderKind::Msteams,
            format!("{}/webhook", gone.url()),
        ),
        api,
        bad_proxy,
        target(
            "prod/no-url",
            ProviderKind::Gchat,
            "chat.googleapis.com/x".into(),
        ),
    ];
    let notifier = HttpNotifier::new(settings()).unwrap();
    let deliveries = notifier.deliver(&alert(AlertSeverity::Info, targets)).await;
    assert_eq!(
        outcomes(&deliveries),
        [
            (
                "prod/gone",
                Err(DeliveryError::Http {
                    status: 404,
                    answer: "ok".into()
                })
            ),
            (
                "prod/slack-api",
                Err(DeliveryError::Refused("invalid_auth".into()))
            ),
            ("prod/bad-proxy", Err(DeliveryError::BadProxy)),
            ("prod/no-url", Err(DeliveryError::BadAddress)),
        ]
    );
    assert_eq!((gone.count(), slack_api.count()), (1, 1));
}

/// A secret key that is a FIFO (nothing would ever finish writing it) is refused rather than
/// read for ever. Here, not in the library's unit tests: making the FIFO takes `mkfifo`.
#[cfg(unix)]
#[test]
fn a_fifo_in_the_secrets_folder_is_refused_rather_than_read_forever() {
    use weir::adapters::secrets::MountedSecrets;
    use weir::core::spec::alert_provider::{resolve, AlertProviderSpec};
    use weir::ports::Secrets;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("flagger/on-call-url");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("address"), "https://ok.example/hook").unwrap();
    let fifo = folder.join("token");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success(), "mkfifo (coreutils) makes the fifo");
    let provider = AlertProviderSpec {
        file: "platform/alerts/on-call.yaml".into(),
        name: "on-call".into(),
        namespace: Some("flagger".into()),
        kind: ProviderKind::Slack,
        channel: None,
        username: None,
        address: None,
        proxy: None,
        secret_ref: Some("on-call-url".into()),
    };
    let secrets = MountedSecrets::new(dir.path());
    let read = |ns: &str, name: &str| secrets.read(ns, name);
    let err = resolve(&provider, Some(&read)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: not a regular file", fifo.display())
    );
}
