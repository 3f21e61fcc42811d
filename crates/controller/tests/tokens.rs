//! Client tokens through the controller's API: created, listed and revoked with an admin token,
//! refused without one, and handed to nodes in `/v1/seen` answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use haze_controller::api::{CreateTokenRequest, SeenRequest};
use haze_controller::tokens::{AuthError, Right, TokenId};
use haze_controller::{
    ClientError, ClusterId, Controller, ControllerClient, MoveLimits, ServeOptions,
};
use tokio_util::sync::CancellationToken;

/// The wall clock the controller reads, which tests move.
const T0: u64 = 1_700_000_000_000;

struct Running {
    addr: String,
    clock: Arc<AtomicU64>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
    }
}

async fn start(dir: &std::path::Path, auth: bool) -> Running {
    let controller = Controller::open(dir, ClusterId(9), 64, 2).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let clock = Arc::new(AtomicU64::new(T0));
    let now = clock.clone();
    let options = ServeOptions::new(MoveLimits::default())
        .with_auth(auth)
        .with_clock(move || now.load(Ordering::SeqCst));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        haze_controller::serve_with(controller, options, listener, stop)
            .await
            .unwrap();
    });
    // Answered once serving, after any admin token file is written.
    ControllerClient::new(&addr).status().await.unwrap();
    Running {
        addr,
        clock,
        shutdown,
        task,
    }
}

fn admin_token(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// A raw request: the status, the headers and the body.
async fn raw(
    addr: &str,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn scoped(prefixes: &[&str], rights: &[Right]) -> CreateTokenRequest {
    CreateTokenRequest {
        prefixes: prefixes.iter().map(ToString::to_string).collect(),
        rights: rights.to_vec(),
        ..CreateTokenRequest::default()
    }
}

fn refused(err: &ClientError) -> &str {
    match err {
        ClientError::Refused(e) => &e.error,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn an_admin_token_creates_lists_and_revokes_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), true).await;
    let admin = ControllerClient::new(&c.addr).with_token(admin_token(dir.path()));
    let list = admin.list_tokens().await.unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].id, &list[0].rights[..]),
        (TokenId(1), &[Right::Admin][..])
    );

    let mut request = scoped(&["user:42/"], &[Right::Write, Right::Read]);
    request.expires_in_ms = Some(3_600_000);
    request.description = "phone".into();
    let created = admin.create_token(&request).await.unwrap();
    assert!(haze_controller::tokens::well_formed(&created.token));
    assert!(
        !format!("{created:?}").contains(&created.token),
        "Debug hides it"
    );
    let info = &created.info;
    assert_eq!(info.id, TokenId(2));
    assert_eq!(info.rights, [Right::Read, Right::Write]);
    assert_eq!(info.prefixes, ["user:42/"]);
    assert_eq!(info.expires_at_ms, Some(T0 + 3_600_000));
    assert_eq!((info.created_ms, info.expired), (T0, false));

    let (status, _, body) = raw(
        &c.addr,
        "GET",
        "/v1/tokens",
        Some(&format!("Bearer {}", admin_token(dir.path()))),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let hash = haze_controller::tokens::TokenHash::of(&created.token).to_string();
    assert!(
        !body.contains(&created.token[5..]) && !body.contains(&hash),
        "{body}"
    );
    assert!(
        body.contains("\"id\":\"t2\"") && body.contains("\"phone\""),
        "{body}"
    );

    let revoked = admin.revoke_token(TokenId(2)).await.unwrap();
    assert_eq!(revoked.description, "phone");
    let ids: Vec<TokenId> = admin
        .list_tokens()
        .await
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, [TokenId(1)]);
    let again = admin.revoke_token(TokenId(2)).await.unwrap_err();
    assert_eq!(refused(&again), "unknown_token");
    // Ids are not reused.
    let next = admin
        .create_token(&scoped(&[], &[Right::Read]))
        .await
        .unwrap();
    assert_eq!(next.info.id, TokenId(3));

    // A token pasted where an id goes is refused without being quoted back.
    let bearer = format!("Bearer {}", admin_token(dir.path()));
    let path = format!("/v1/tokens/{}", next.token);
    let (status, _, body) = raw(&c.addr, "DELETE", &path, Some(&bearer), "").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("bad_request") && !body.contains(&next.token),
        "{body}"
    );

    for bad in [
        CreateTokenRequest {
            expires_in_ms: Some(1),
            expires_at_ms: Some(T0 + 5),
            ..scoped(&[], &[Right::Read])
        },
        CreateTokenRequest {
            expires_at_ms: Some(T0),
            ..scoped(&[], &[Right::Read])
        },
        scoped(&[], &[]),
        scoped(&[""], &[Right::Read]),
    ] {
        let err = admin.create_token(&bad).await.unwrap_err();
        assert_eq!(refused(&err), "bad_request", "{bad:?}: {err}");
    }
    let (status, _, _) = raw(
        &c.addr,
        "POST",
        "/v1/tokens",
        Some(&bearer),
        "{\"rights\": [\"root\"]}",
    )
    .await;
    assert_eq!(status, 400);
    c.stop().await;
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn changes_need_an_admin_token_and_reads_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), true).await;
    let admin = ControllerClient::new(&c.addr).with_token(admin_token(dir.path()));
    let user = admin
        .create_token(&scoped(&[], &[Right::Read, Right::Write]))
        .await
        .unwrap()
        .token;
    let mut expiring = scoped(&[], &[Right::Admin]);
    expiring.expires_in_ms = Some(1_000);
    let expiring = admin.create_token(&expiring).await.unwrap().token;
    let (stranger, _) = haze_controller::tokens::generate(&ring_random()).unwrap();

    let changes = [
        ("POST", "/v1/cluster/add", "{\"nodes\": [\"n1\"]}"),
        ("POST", "/v1/cluster/remove", "{\"nodes\": [\"n1\"]}"),
        ("POST", "/v1/cluster/plan", "{\"add\": [\"n1\"]}"),
        ("POST", "/v1/cluster/commit", ""),
        ("POST", "/v1/tokens", "{\"rights\": [\"admin\"]}"),
        ("GET", "/v1/tokens", ""),
        ("DELETE", "/v1/tokens/t1", ""),
    ];
    let tries: [(Option<String>, u16, &str); 5] = [
        (None, 401, "unauthorized"),
        (Some("Bearer nope".into()), 401, "unauthorized"),
        (Some("Basic YWRtaW4=".into()), 401, "unauthorized"),
        (
            Some(format!("Bearer {}", stranger.expose())),
            401,
            "unauthorized",
        ),
        (Some(format!("Bearer {user}")), 403, "forbidden"),
    ];
    for (method, path, body) in changes {
        for (auth, status, code) in &tries {
            let (got, head, answer) = raw(&c.addr, method, path, auth.as_deref(), body).await;
            assert_eq!(got, *status, "{method} {path} with {auth:?}: {answer}");
            assert!(
                answer.contains(&format!("\"error\":\"{code}\"")),
                "{answer}"
            );
            assert_eq!(head.contains("www-authenticate: bearer"), *status == 401);
        }
    }
    // The admin token was not used up by any of that; the expiring one works until it expires.
    let with = |t: &str| ControllerClient::new(&c.addr).with_token(t);
    assert_eq!(with(&expiring).list_tokens().await.unwrap().len(), 3);
    c.clock.fetch_add(1_000, Ordering::SeqCst);
    let err = with(&expiring).list_tokens().await.unwrap_err();
    assert_eq!(refused(&err), "unauthorized");
    assert!(err.to_string().contains("t3 has expired"), "{err}");
    assert!(admin.list_tokens().await.unwrap()[2].expired);
    let err = with("haze_nope\r\nX-Evil: 1")
        .list_tokens()
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::BadToken), "{err:?}");

    // What nodes send, and reading the status, need no token.
    let anyone = ControllerClient::new(&c.addr);
    let node = anyone.register("127.0.0.1:7701").await.unwrap().node;
    let seen = anyone.seen(&report(node, None, None)).await.unwrap();
    assert_eq!(seen.members.len(), 1);
    anyone.status().await.unwrap();
    for path in ["/metrics", "/health", "/v1/cluster"] {
        assert_eq!(raw(&c.addr, "GET", path, None, "").await.0, 200, "{path}");
    }
    admin.add(&["n1".into()]).await.unwrap();
    c.stop().await;

    // Without --auth, everything is open, as before tokens.
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), false).await;
    assert!(!dir.path().join("admin.token").exists());
    let anyone = ControllerClient::new(&c.addr);
    let made = anyone
        .create_token(&scoped(&[], &[Right::Read]))
        .await
        .unwrap();
    assert_eq!(made.info.id, TokenId(1));
    assert_eq!(anyone.list_tokens().await.unwrap().len(), 1);
    c.stop().await;
}

fn ring_random() -> ring::rand::SystemRandom {
    ring::rand::SystemRandom::new()
}

fn report(node: haze_ring::NodeId, known: Option<u64>, wait_ms: Option<u64>) -> SeenRequest {
    SeenRequest {
        node,
        epoch: None,
        streams: vec![],
        cleaned: vec![],
        known,
        wait_ms,
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn nodes_get_the_token_table_and_a_revoke_reaches_a_waiting_poll() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(dir.path(), true).await;
    let admin = ControllerClient::new(&c.addr).with_token(admin_token(dir.path()));
    let node = ControllerClient::new(&c.addr);
    let me = node.register("127.0.0.1:7701").await.unwrap().node;
    let mut request = scoped(&["user:42/"], &[Right::Read]);
    request.description = "a phone".into();
    request.expires_in_ms = Some(60_000);
    let phone = admin.create_token(&request).await.unwrap();

    let first = node.seen(&report(me, None, None)).await.unwrap();
    let table = first.tokens.expect("a /v1/seen answer carries the tokens");
    assert_eq!(table.len(), 2);
    let grant = table.check(&phone.token, T0).unwrap();
    assert_eq!(grant.id, phone.info.id);
    assert!(grant.allows(b"user:42/x", Right::Read));
    assert!(!grant.allows(b"user:420", Right::Read));
    assert!(!grant.allows(b"user:42/x", Right::Write));
    assert_eq!(
        table.check(&phone.token, T0 + 60_000),
        Err(AuthError::Expired(phone.info.id))
    );
    assert!(
        table.tokens().iter().all(|t| t.description.is_empty()),
        "descriptions are for people"
    );
    // People's status never carries it.
    assert_eq!(node.status().await.unwrap().tokens, None);
    let (_, _, body) = raw(&c.addr, "GET", "/v1/cluster", None, "").await;
    assert!(
        !body.contains("\"tokens\"") && !body.contains("rights"),
        "{body}"
    );

    // A node waiting with the current version hears of the revoke at once.
    let version = first.version.unwrap();
    let waiting = {
        let node = node.clone();
        tokio::spawn(async move { node.seen(&report(me, Some(version), Some(5_000))).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let asked = tokio::time::Instant::now();
    admin.revoke_token(phone.info.id).await.unwrap();
    let news = waiting.await.unwrap().unwrap();
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(2),
        "woken by the revoke"
    );
    assert_ne!(news.version, Some(version));
    let table = news.tokens.unwrap();
    assert_eq!(table.check(&phone.token, T0), Err(AuthError::Unknown));
    assert_eq!(table.len(), 1);
    c.stop().await;
}
