//! A small in-test Kubernetes API server: just enough of the real list/watch protocol for a
//! kube-rs client, with knobs to misbehave.
//!
//! - `GET <collection>`: a list with `metadata.resourceVersion`; `fieldSelector=metadata.name=X`.
//! - `GET <collection>?watch=true&resourceVersion=N`: newline-delimited watch events after N,
//!   then live ones; BOOKMARKs every second when asked; a watch from a resourceVersion older
//!   than the last compaction gets an `ERROR` event with a 410 `Expired` Status inside a 200
//!   response, as a real API server sends it, which makes the client relist.
//! - `GET`, `POST`, `PUT`, `PATCH` (merge patch) of single objects and their `/status`, with
//!   optimistic concurrency on `metadata.resourceVersion` for PUT (Leases).
//! - `apply` as `kubectl apply` does: a custom resource applied without status keeps its own,
//!   and `metadata.generation` grows when the spec changes.
//! - Knobs: `set_down(true)` drops every connection, open or new (the API server is gone);
//!   `cut_watches()` ends open watches cleanly; `compact()` expires every resourceVersion so far.
//!
//! Resources are named by their collection path without the leading slash, e.g.
//! `api/v1/services` or `apis/cilium.io/v2alpha1/ciliumbgppeeringpolicies`.

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Clone, Debug)]
struct Event {
    rv: u64,
    resource: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    rv: u64,
    compacted: u64,
    /// resource -> "ns/name" or "name" -> object
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    log: Vec<Event>,
    down: bool,
    /// Collections that answer 404 (a CRD that is not installed).
    missing: std::collections::BTreeSet<String>,
    /// Every write a client made: (method, path, body).
    pub writes: Vec<(String, String, Value)>,
}

pub struct ListWatchServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Event>,
    /// Ends open watches when a message is sent; `true` also drops the connections hard.
    cut: broadcast::Sender<bool>,
    _thread: std::thread::JoinHandle<()>,
}

/// Where a request goes: the collection, and the object name and subresource if any.
struct Target {
    resource: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// `/api/v1/namespaces/ns/services/name/status` -> resource `api/v1/services`, ns, name, status.
fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix_len, rest) = match *parts.first()? {
        "api" => (2, parts.get(2..)?),
        "apis" => (3, parts.get(3..)?),
        _ => return None,
    };
    let prefix = parts[..prefix_len].join("/");
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name, sub) = match rest {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name.to_string()), None),
        [plural, name, sub] => (plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return None,
    };
    Some(Target { resource: format!("{prefix}/{plural}"), namespace, name, subresource: sub })
}

fn key(ns: Option<&str>, name: &str) -> String {
    match ns {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn object_key(o: &Value) -> String {
    key(o["metadata"]["namespace"].as_str(), o["metadata"]["name"].as_str().unwrap_or_default())
}

fn full(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("static header"));
    r
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code})
}

fn error(code: u16, reason: &str, message: &str) -> Response<Body> {
    full(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &status(code, reason, message))
}

/// JSON merge patch (RFC 7386).
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in p {
                if v.is_null() {
                    target.as_object_mut().expect("object").remove(k);
                } else {
                    merge(target.as_object_mut().expect("object").entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn query(req: &Request<Incoming>) -> BTreeMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.replace("%3D", "=").replace("%2F", "/"))))
        .collect()
}

fn name_selector(q: &BTreeMap<String, String>) -> Option<String> {
    q.get("fieldSelector").and_then(|f| f.strip_prefix("metadata.name=")).map(str::to_owned)
}

impl ListWatchServer {
    /// Binds 127.0.0.1 inside network namespace `ns` (kbgp runs there) and serves.
    pub fn start(ns: &str) -> ListWatchServer {
        let listener = super::in_netns(ns, || std::net::TcpListener::bind("127.0.0.1:0").expect("bind"));
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let (events, _) = broadcast::channel(100_000);
        let (cut, _) = broadcast::channel(16);
        let (st, ev, ct) = (state.clone(), events.clone(), cut.clone());
        let thread = std::thread::spawn(move || {
            let rt =
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    if st.lock().expect("state").down {
                        drop(stream);
                        continue;
                    }
                    let (st, ev, ct) = (st.clone(), ev.clone(), ct.clone());
                    let mut hard = ct.subscribe();
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let (st, ev, ct) = (st.clone(), ev.clone(), ct.clone());
                            async move { Ok::<_, Infallible>(handle(req, st, ev, ct).await) }
                        });
                        let conn =
                            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                        tokio::select! {
                            _ = conn => {}
                            _ = async { loop { if let Ok(true) = hard.recv().await { break } } } => {}
                        }
                    });
                }
            })
        });
        ListWatchServer { port, state, events, cut, _thread: thread }
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster: {{server: \"http://127.0.0.1:{}\"}}\n\
             users:\n- name: test\n  user: {{}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: test}}\ncurrent-context: test\n",
            self.port
        )
    }

    /// Creates or replaces an object (from YAML or JSON text) in `resource`.
    pub fn apply(&self, resource: &str, text: &str) {
        let mut o: Value = serde_yaml::from_str(text).expect("object");
        let mut st = self.state.lock().expect("state");
        st.rv += 1;
        let rv = st.rv;
        let k = object_key(&o);
        let old = st.objects.get(resource).and_then(|m| m.get(&k)).cloned();
        let existed = old.is_some();
        // As the API server: a custom resource applied without status keeps the one it has
        // (written through /status), and a new spec is a new generation.
        if let Some(old) = &old
            && resource.starts_with("apis/")
            && o.get("status").is_none()
            && let Some(st) = old.get("status")
        {
            o["status"] = st.clone();
        }
        let generation = match &old {
            Some(old) if old.get("spec") == o.get("spec") => old["metadata"]["generation"].as_i64().unwrap_or(1),
            Some(old) => old["metadata"]["generation"].as_i64().unwrap_or(1) + 1,
            None => 1,
        };
        let meta = o["metadata"].as_object_mut().expect("metadata");
        meta.insert("generation".into(), json!(generation));
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.entry("uid").or_insert(json!(format!("uid-{k}")));
        meta.entry("creationTimestamp").or_insert(json!("2026-01-01T00:00:00Z"));
        st.objects.entry(resource.to_string()).or_default().insert(k, o.clone());
        let e = Event { rv, resource: resource.into(), kind: if existed { "MODIFIED" } else { "ADDED" }, object: o };
        st.log.push(e.clone());
        let _ = self.events.send(e);
    }

    pub fn delete(&self, resource: &str, namespace: Option<&str>, name: &str) {
        let mut st = self.state.lock().expect("state");
        let Some(mut o) = st.objects.get_mut(resource).and_then(|m| m.remove(&key(namespace, name))) else { return };
        st.rv += 1;
        let rv = st.rv;
        o["metadata"]["resourceVersion"] = json!(rv.to_string());
        let e = Event { rv, resource: resource.into(), kind: "DELETED", object: o };
        st.log.push(e.clone());
        let _ = self.events.send(e);
    }

    pub fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.state.lock().expect("state").objects.get(resource).and_then(|m| m.get(&key(namespace, name)).cloned())
    }

    /// Every write clients made so far: (method, path, body).
    pub fn writes(&self) -> Vec<(String, String, Value)> {
        self.state.lock().expect("state").writes.clone()
    }

    /// The API server goes away (`true`): open connections are dropped, new ones closed.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("state").down = down;
        if down {
            let _ = self.cut.send(true);
        }
    }

    /// Makes a collection answer 404, as a CRD that is not installed does.
    pub fn set_missing(&self, resource: &str) {
        self.state.lock().expect("state").missing.insert(resource.to_string());
    }

    /// Ends every open watch cleanly (the client re-watches from its resourceVersion).
    pub fn cut_watches(&self) {
        let _ = self.cut.send(false);
    }

    /// Expires every resourceVersion so far, including the one a client just saw in a
    /// bookmark: its next watch gets 410 and it must relist.
    pub fn compact(&self) {
        let mut st = self.state.lock().expect("state");
        st.rv += 1;
        st.compacted = st.rv;
        st.log.clear();
        drop(st);
        self.cut_watches();
    }
}

async fn handle(
    req: Request<Incoming>,
    st: Arc<Mutex<State>>,
    events: broadcast::Sender<Event>,
    cut: broadcast::Sender<bool>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(t) = parse_path(&path) else { return error(404, "NotFound", &format!("no route {path}")) };
    let q = query(&req);
    let method = req.method().clone();
    if st.lock().expect("state").missing.contains(&t.resource) {
        return error(404, "NotFound", &format!("the server could not find the requested resource ({})", t.resource));
    }
    if method == Method::GET && t.name.is_none() {
        return if q.get("watch").is_some_and(|w| w == "true" || w == "1") {
            watch(&t, &q, st, events, cut)
        } else {
            list(&t, &q, &st)
        };
    }
    let body: Value = match req.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let mut s = st.lock().expect("state");
    if method != Method::GET {
        s.writes.push((method.to_string(), path.clone(), body.clone()));
    }
    let name = t.name.clone().or_else(|| body["metadata"]["name"].as_str().map(str::to_owned)).unwrap_or_default();
    let k = key(t.namespace.as_deref(), &name);
    let existing = s.objects.get(&t.resource).and_then(|m| m.get(&k)).cloned();
    let mut updated = match (&method, existing) {
        (&Method::GET, Some(o)) => return full(StatusCode::OK, &o),
        (&Method::GET, None) | (&Method::PATCH, None) | (&Method::PUT, None) => {
            return error(404, "NotFound", &format!("{} {name} not found", t.resource));
        }
        (&Method::POST, Some(_)) => return error(409, "AlreadyExists", &format!("{name} already exists")),
        (&Method::POST, None) => {
            let mut o = body;
            if let Some(ns) = &t.namespace {
                o["metadata"]["namespace"] = json!(ns);
            }
            o
        }
        (&Method::PUT, Some(o)) => {
            let want = body["metadata"]["resourceVersion"].as_str().unwrap_or("");
            if !want.is_empty() && Some(want) != o["metadata"]["resourceVersion"].as_str() {
                return error(
                    409,
                    "Conflict",
                    "the object has been modified; please apply your changes to the latest version",
                );
            }
            body
        }
        (&Method::PATCH, Some(mut o)) => {
            match t.subresource.as_deref() {
                Some("status") => merge(&mut o["status"], &body["status"]),
                _ => merge(&mut o, &body),
            }
            o
        }
        _ => return error(405, "MethodNotAllowed", "not supported here"),
    };
    s.rv += 1;
    let rv = s.rv;
    updated["metadata"]["resourceVersion"] = json!(rv.to_string());
    if updated["metadata"]["creationTimestamp"].is_null() {
        updated["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    let created = method == Method::POST;
    s.objects.entry(t.resource.clone()).or_default().insert(k, updated.clone());
    let e = Event {
        rv,
        resource: t.resource.clone(),
        kind: if created { "ADDED" } else { "MODIFIED" },
        object: updated.clone(),
    };
    s.log.push(e.clone());
    let _ = events.send(e);
    full(if created { StatusCode::CREATED } else { StatusCode::OK }, &updated)
}

fn list(t: &Target, q: &BTreeMap<String, String>, st: &Arc<Mutex<State>>) -> Response<Body> {
    let s = st.lock().expect("state");
    let only = name_selector(q);
    let items: Vec<Value> = s
        .objects
        .get(&t.resource)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|o| only.as_deref().is_none_or(|n| o["metadata"]["name"] == json!(n)))
        .filter(|o| t.namespace.as_deref().is_none_or(|ns| o["metadata"]["namespace"] == json!(ns)))
        .cloned()
        .collect();
    let limit = q.get("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(usize::MAX);
    let items: Vec<Value> = items.into_iter().take(limit.max(1)).collect();
    full(
        StatusCode::OK,
        &json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
    )
}

fn watch(
    t: &Target,
    q: &BTreeMap<String, String>,
    st: Arc<Mutex<State>>,
    events: broadcast::Sender<Event>,
    cut: broadcast::Sender<bool>,
) -> Response<Body> {
    let from: u64 = q.get("resourceVersion").and_then(|r| r.parse().ok()).unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|b| b == "true");
    let timeout = Duration::from_secs(q.get("timeoutSeconds").and_then(|s| s.parse().ok()).unwrap_or(290));
    let only = name_selector(q);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let line = |kind: &str, o: &Value| Bytes::from(format!("{}\n", json!({"type": kind, "object": o})));
    // Subscribe before reading the log, so nothing falls between the two.
    let mut live = events.subscribe();
    let mut cut = cut.subscribe();
    let (backlog, expired) = {
        let s = st.lock().expect("state");
        let expired = from < s.compacted && from != 0;
        let backlog: Vec<Event> = s.log.iter().filter(|e| e.resource == t.resource && e.rv > from).cloned().collect();
        (backlog, expired)
    };
    let resource = t.resource.clone();
    let wanted = move |e: &Event| {
        e.resource == resource && only.as_deref().is_none_or(|n| e.object["metadata"]["name"] == json!(n))
    };
    tokio::spawn(async move {
        if expired {
            let _ = tx.send(line("ERROR", &status(410, "Expired", &format!("too old resource version: {from}")))).await;
            return;
        }
        let mut last = from;
        for e in backlog.iter().filter(|e| wanted(e)) {
            last = e.rv;
            if tx.send(line(e.kind, &e.object)).await.is_err() {
                return;
            }
        }
        let end = tokio::time::sleep(timeout);
        tokio::pin!(end);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut end => return,
                _ = cut.recv() => return,
                e = live.recv() => match e {
                    Ok(e) if e.rv > last && wanted(&e) => {
                        last = e.rv;
                        if tx.send(line(e.kind, &e.object)).await.is_err() { return; }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(_) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    let rv = st.lock().expect("state").rv;
                    let o = json!({"kind": "Bookmark", "apiVersion": "v1", "metadata": {"resourceVersion": rv.to_string()}});
                    if tx.send(line("BOOKMARK", &o)).await.is_err() { return; }
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream.boxed())));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, "application/json".parse().expect("static header"));
    r
}
