//! The first admin token (created once, in a file only its owner reads), and what is kept of
//! tokens: their hashes in `controller.json`, never their texts, there or in the logs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use haze_controller::api::CreateTokenRequest;
use haze_controller::tokens::{NewToken, Right, TokenId, generate, well_formed};
use haze_controller::{
    ADMIN_TOKEN_FILE, Bootstrap, ClusterId, Controller, ControllerClient, MoveLimits, ServeOptions,
};
use ring::rand::SystemRandom;
use tokio_util::sync::CancellationToken;

fn open(dir: &std::path::Path) -> Controller {
    Controller::open(dir, ClusterId(3), 64, 2).unwrap()
}

#[test]
fn the_admin_token_file_is_created_once_for_its_owner_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(ADMIN_TOKEN_FILE);
    let random = SystemRandom::new();
    let mut c = open(dir.path());
    let made = c.bootstrap_admin(&random, 1_000).unwrap();
    assert_eq!(
        made,
        Bootstrap::Created {
            path: path.clone(),
            id: TokenId(1)
        }
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.ends_with('\n') && well_formed(text.trim()), "{text:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let grant = c.state().tokens().check(text.trim(), 1_000).unwrap();
    assert!(grant.is_admin() && grant.prefixes.is_empty() && grant.expires_at_ms.is_none());

    // Started again: it works, nothing is made.
    drop(c);
    let mut c = open(dir.path());
    assert_eq!(
        c.bootstrap_admin(&random, 2_000).unwrap(),
        Bootstrap::NotNeeded
    );
    assert_eq!(c.state().tokens().len(), 1);

    // No admin token works any more: the file is kept as it is, and no token is made.
    c.change(|s| s.revoke_token(TokenId(1))).unwrap();
    assert_eq!(
        c.bootstrap_admin(&random, 3_000).unwrap(),
        Bootstrap::FileExists { path: path.clone() }
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert!(c.state().tokens().is_empty());
    // Removing it is how an operator gets a new one.
    std::fs::remove_file(&path).unwrap();
    let again = c.bootstrap_admin(&random, 4_000).unwrap();
    assert_eq!(
        again,
        Bootstrap::Created {
            path: path.clone(),
            id: TokenId(2)
        }
    );
    assert_ne!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn tokens_are_kept_as_hashes_and_a_file_without_them_still_reads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("controller.json");
    let mut c = open(dir.path());
    c.change(|s| s.register("127.0.0.1:7701")).unwrap();
    let before = std::fs::read_to_string(&file).unwrap();
    assert!(
        !before.contains("token"),
        "no tokens, no new fields: {before}"
    );

    let (secret, hash) = generate(&SystemRandom::new()).unwrap();
    let new = NewToken {
        prefixes: vec!["user:42/".into()],
        rights: BTreeSet::from([Right::Read]),
        expires_at_ms: Some(9_000),
        description: "phone".into(),
    };
    let token = c.change(|s| s.create_token(new, hash, 1_000)).unwrap();
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(!saved.contains(&secret.expose()[5..]), "{saved}");
    assert!(
        saved.contains(&hash.to_string()) && saved.contains("phone"),
        "{saved}"
    );
    drop(c);
    let mut c = open(dir.path());
    assert_eq!(c.state().tokens().get(token.id), Some(&token));
    assert!(c.state().tokens().check(secret.expose(), 8_999).is_ok());
    c.change(|s| s.revoke_token(token.id)).unwrap();
    drop(c);
    let c = open(dir.path());
    assert!(c.state().tokens().is_empty(), "a revoke is kept");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(
        saved.contains("\"next_token\": 2"),
        "ids are not reused: {saved}"
    );

    // A file that names a token id at or past the next one contradicts itself.
    drop(c);
    let (_, hash) = generate(&SystemRandom::new()).unwrap();
    let forged = saved.replace(
        "\"next_token\": 2",
        &format!(
            "\"tokens\": [{{\"id\": \"t5\", \"hash\": \"{hash}\", \"rights\": [\"admin\"], \
             \"created_ms\": 1}}], \"next_token\": 2"
        ),
    );
    std::fs::write(&file, forged).unwrap();
    let err = Controller::open(dir.path(), ClusterId(3), 64, 2).unwrap_err();
    assert!(err.to_string().contains("t5"), "{err}");
}

/// Collects everything logged, from every thread.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(unhandled_panic = "shutdown_runtime")]
async fn no_token_text_is_logged_shown_or_saved_after_its_creation() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // The one test of this binary that sets it (nextest runs it alone in its process).
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    let options = ServeOptions::new(MoveLimits::default()).with_auth(true);
    let task = tokio::spawn(haze_controller::serve_with(
        open(dir.path()),
        options,
        listener,
        shutdown.clone(),
    ));
    let admin_path = dir.path().join(ADMIN_TOKEN_FILE);
    // Answered once serving, after the file is written.
    let status = ControllerClient::new(&addr).status().await.unwrap();
    assert_eq!(status.tokens, None);
    let admin = std::fs::read_to_string(&admin_path).unwrap();
    let admin = admin.trim().to_string();
    let client = ControllerClient::new(&addr).with_token(&admin);
    let made = client
        .create_token(&CreateTokenRequest {
            rights: vec![Right::Read],
            description: "phone".into(),
            ..CreateTokenRequest::default()
        })
        .await
        .unwrap();
    client.list_tokens().await.unwrap();
    client.revoke_token(made.info.id).await.unwrap();
    let status = serde_json::to_string(&client.status().await.unwrap()).unwrap();
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains(&admin_path.display().to_string()),
        "{logged}"
    );
    assert!(
        logged.contains("token created") && logged.contains("token revoked"),
        "{logged}"
    );
    let saved = std::fs::read_to_string(dir.path().join("controller.json")).unwrap();
    for secret in [&admin, &made.token] {
        let bits = &secret[5..];
        assert!(!logged.contains(bits), "logged: {logged}");
        assert!(!saved.contains(bits), "saved: {saved}");
        assert!(!status.contains(bits), "shown: {status}");
    }
}
