//! The VirtualService routes of one step, as Flagger writes them for each strategy: the
//! weighted route of the canary and Blue/Green strategies (with the mirror when traffic is
//! mirrored), the matched and default routes of A/B testing, and the sticky, weighted and
//! clean-up routes of session affinity. Pure: the same Canary and record give the same bytes.
//!
//! Every route carries the Canary's `service.match` and its rewrite, timeout, retries, CORS
//! policy and headers, in Flagger's field order. Where weir differs from Flagger it says so
//! next to the rule.

use crate::core::record::State;
use crate::core::spec::{Canary, Strategy};
use serde_json::Value as Json;
use serde_yaml::{Mapping, Value};

fn key(k: &str) -> Value {
    Value::String(k.to_string())
}

fn yaml(j: &Json) -> Value {
    serde_yaml::to_value(j).unwrap_or(Value::Null)
}

/// The `http` routes of the VirtualService for `state`.
pub fn http_routes(canary: &Canary, state: &State) -> Vec<Value> {
    let svc = &canary.service;
    let primary = format!("{}-primary", svc.name);
    let canary_host = format!("{}-canary", svc.name);
    let w = state.canary_weight.get();
    let pw = 100 - w;
    // Flagger adds the port to destinations only with portDiscovery, and then only when
    // the first gateway is not the mesh (or the VirtualService is a delegate).
    let port = (svc.port_discovery
        && (svc.delegation || svc.gateways.first().is_some_and(|g| g != "mesh")))
    .then_some(svc.port);
    let dest = |host: &str, weight: u8, headers: Option<Value>| {
        let mut d = Mapping::new();
        let mut target = Mapping::new();
        target.insert(key("host"), key(host));
        if let Some(port) = port {
            let mut number = Mapping::new();
            number.insert(key("number"), Value::from(port));
            target.insert(key("port"), Value::Mapping(number));
        }
        d.insert(key("destination"), Value::Mapping(target));
        d.insert(key("weight"), Value::from(weight));
        if let Some(h) = headers {
            d.insert(key("headers"), h);
        }
        Value::Mapping(d)
    };
    let service_match: Vec<Value> = svc.match_.iter().map(yaml).collect();
    // One route: name, match, destinations, then the service-level fields in Flagger's order.
    let route = |name: &str,
                 matches: &[Value],
                 destinations: Vec<Value>,
                 mirror: bool,
                 extra_headers: Option<Value>| {
        let mut r = Mapping::new();
        r.insert(key("name"), key(name));
        if !matches.is_empty() {
            r.insert(key("match"), Value::Sequence(matches.to_vec()));
        }
        r.insert(key("route"), Value::Sequence(destinations));
        if let Some(v) = &svc.rewrite {
            r.insert(key("rewrite"), yaml(v));
        }
        if let Some(v) = &svc.timeout {
            r.insert(key("timeout"), key(v));
        }
        if let Some(v) = &svc.retries {
            r.insert(key("retries"), yaml(v));
        }
        if mirror {
            let mut m = Mapping::new();
            m.insert(key("host"), key(&canary_host));
            r.insert(key("mirror"), Value::Mapping(m));
            if let Some(weight) = canary.analysis.mirror_weight {
                let mut p = Mapping::new();
                p.insert(key("value"), Value::from(weight.get()));
                r.insert(key("mirrorPercentage"), Value::Mapping(p));
            }
        }
        if let Some(v) = &svc.cors_policy {
            r.insert(key("corsPolicy"), yaml(v));
        }
        let headers = match (svc.headers.as_ref().map(yaml), extra_headers) {
            (None, None) => None,
            (Some(h), None) => Some(h),
            (base, Some(extra)) => {
                Some(merge(base.unwrap_or(Value::Mapping(Mapping::new())), extra))
            }
        };
        if let Some(h) = headers {
            r.insert(key("headers"), h);
        }
        Value::Mapping(r)
    };
    let weighted = |mirror: bool| {
        route(
            "weir-canary",
            &service_match,
            vec![dest(&primary, pw, None), dest(&canary_host, w, None)],
            mirror,
            None,
        )
    };

    // Adopting: every request goes to the target's pods until the primary is ready, whatever
    // the strategy (the record holds the canary at 100 then).
    if state.phase == crate::core::spec::Phase::Initializing {
        return vec![weighted(false)];
    }
    match &canary.analysis.strategy {
        Strategy::AbTesting { match_, .. } => {
            let matched: Vec<Value> = merge_matches(match_, &svc.match_);
            vec![
                route(
                    "weir-ab-testing",
                    &matched,
                    vec![dest(&primary, pw, None), dest(&canary_host, w, None)],
                    false,
                    None,
                ),
                // Flagger writes the primary's weight here (0 during the analysis); a sole
                // destination takes all traffic whatever its weight, so weir writes 100.
                route(
                    "weir-primary",
                    &service_match,
                    vec![dest(&primary, 100, None)],
                    false,
                    None,
                ),
            ]
        }
        _ => match &canary.analysis.session_affinity {
            Some(sa) => {
                let sticky = |cookie: &str| {
                    let (name, value) = cookie.split_once('=').unwrap_or((cookie, ""));
                    let regex = format!(".*{}.*{}.*", regex_escape(name), value);
                    let mut m = Mapping::new();
                    let mut headers = Mapping::new();
                    let mut cookie_match = Mapping::new();
                    cookie_match.insert(key("regex"), key(&regex));
                    headers.insert(key("Cookie"), Value::Mapping(cookie_match));
                    m.insert(key("headers"), Value::Mapping(headers));
                    merge_matches(
                        &[serde_json::to_value(&m).unwrap_or(Json::Null)],
                        &svc.match_,
                    )
                };
                let set_cookie = |value: String| {
                    let mut add = Mapping::new();
                    add.insert(key("Set-Cookie"), key(&value));
                    let mut response = Mapping::new();
                    response.insert(key("add"), Value::Mapping(add));
                    let mut h = Mapping::new();
                    h.insert(key("response"), Value::Mapping(response));
                    Value::Mapping(h)
                };
                let mut routes = Vec::new();
                match (&state.session_affinity_cookie, w) {
                    (Some(cookie), w) if w > 0 => {
                        routes.push(route(
                            "weir-sticky-canary",
                            &sticky(cookie),
                            vec![dest(&primary, 0, None), dest(&canary_host, 100, None)],
                            false,
                            None,
                        ));
                        let primary_cookie = state
                            .primary_session_affinity_cookie
                            .as_ref()
                            .filter(|_| sa.primary_cookie_name.is_some());
                        if let Some(pc) = primary_cookie {
                            routes.push(route(
                                "weir-sticky-primary",
                                &sticky(pc),
                                vec![dest(&primary, 100, None), dest(&canary_host, 0, None)],
                                false,
                                None,
                            ));
                        }
                        let interval = canary.analysis.interval.as_secs() as i64;
                        routes.push(route(
                            "weir-canary",
                            &service_match,
                            vec![
                                dest(
                                    &primary,
                                    pw,
                                    primary_cookie
                                        .map(|pc| set_cookie(sa.set_cookie(pc, interval))),
                                ),
                                dest(
                                    &canary_host,
                                    w,
                                    Some(set_cookie(sa.set_cookie(cookie, i64::from(sa.max_age)))),
                                ),
                            ],
                            false,
                            None,
                        ));
                    }
                    _ => {
                        // Back on the primary: users still holding the last run's cookie get
                        // it expired. weir keeps the cookie's Domain and Path, which a
                        // browser needs to delete it (Flagger leaves them out).
                        if let Some(previous) = &state.previous_session_affinity_cookie {
                            routes.push(route(
                                "weir-cookie-cleanup",
                                &sticky(previous),
                                vec![dest(&primary, 100, None), dest(&canary_host, 0, None)],
                                false,
                                Some(set_cookie(sa.set_cookie(previous, -1))),
                            ));
                        }
                        routes.push(weighted(false));
                    }
                }
                routes
            }
            None => vec![weighted(state.mirrored)],
        },
    }
}

/// The hosts of the VirtualService: the Canary's, plus the apex name unless it is there or
/// `*` is (Flagger's rule); none for a delegate.
pub fn hosts(canary: &Canary) -> Vec<String> {
    let svc = &canary.service;
    if svc.delegation {
        return Vec::new();
    }
    let mut hosts = svc.hosts.clone();
    if !hosts.iter().any(|h| h == &svc.name || h == "*") {
        hosts.push(svc.name.clone());
    }
    hosts
}

/// A/B match conditions merged with `service.match`: every analysis condition combined with
/// every service condition. Flagger keeps only the analysis condition's headers and
/// sourceLabels in that case; weir keeps all its fields (they override the service's).
fn merge_matches(analysis: &[Json], service: &[Json]) -> Vec<Value> {
    if service.is_empty() {
        return analysis.iter().map(yaml).collect();
    }
    let mut out = Vec::new();
    for a in analysis {
        for s in service {
            let mut m = s.clone();
            if let (Some(m), Some(a)) = (m.as_object_mut(), a.as_object()) {
                for (k, v) in a {
                    m.insert(k.clone(), v.clone());
                }
            }
            out.push(yaml(&m));
        }
    }
    out
}

/// Merges `extra` into `base` (maps key by key, deeper maps merged, other values replaced).
fn merge(base: Value, extra: Value) -> Value {
    match (base, extra) {
        (Value::Mapping(mut b), Value::Mapping(e)) => {
            for (k, v) in e {
                let merged = match b.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Mapping(b)
        }
        (_, e) => e,
    }
}

/// Escapes RE2 metacharacters, so a cookie name matches itself.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
