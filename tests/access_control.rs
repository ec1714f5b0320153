//! Access control end to end: a real `tallyd`, real keys, every RPC.
//!
//! The role table has one source, `tally_server::auth::permissions::RULES`;
//! these tests check that the server serves exactly the methods it names,
//! that `docs/security.md` shows the same table, and that every method
//! answers every kind of key as the table says.

use std::collections::BTreeSet;
use std::time::Duration;

use prost::Message;
use tally::{Tallyd, ADMIN_TOKEN};
use tally_client::{Client, ClientError, Role};
use tally_server::auth::permissions::{Access, RULES};
use tonic::Code;

/// Every `/package.Service/Method` in the served schema.
fn served_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(tally_proto::v1::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut methods = BTreeSet::new();
    for file in set.file {
        let package = file.package.unwrap_or_default();
        for service in file.service {
            for method in service.method {
                methods.insert(format!(
                    "/{package}.{}/{}",
                    service.name.clone().unwrap_or_default(),
                    method.name.unwrap_or_default()
                ));
            }
        }
    }
    methods
}

#[test]
fn every_served_method_has_exactly_one_rule() {
    let ruled: BTreeSet<String> = RULES.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(ruled.len(), RULES.len(), "a method has two rules");
    assert_eq!(served_methods(), ruled);
}

#[test]
fn the_documented_role_table_is_the_enforced_one() {
    // docs/security.md holds one row per rule:
    // | `/tally.v1.Ledger/GetLedgerInfo` | read | admin, poster, finance, auditor |
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
        .expect("docs/security.md");
    let documented: BTreeSet<(String, String, String)> = doc
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .trim()
                .strip_prefix('|')?
                .strip_suffix('|')?
                .split('|')
                .map(str::trim)
                .collect();
            let method = cells.first()?.strip_prefix("`/")?.strip_suffix('`')?;
            Some((
                format!("/{method}"),
                cells.get(1)?.to_string(),
                cells.get(2)?.to_string(),
            ))
        })
        .collect();
    let enforced: BTreeSet<(String, String, String)> = RULES
        .iter()
        .map(|rule| {
            let access = match rule.access {
                Access::Read => "read",
                Access::Write => "write",
            };
            let roles: Vec<&str> = rule.roles.iter().map(|r| r.name()).collect();
            (
                rule.method.to_string(),
                access.to_string(),
                roles.join(", "),
            )
        })
        .collect();
    assert_eq!(documented, enforced, "docs/security.md and RULES differ");
}

/// Calls `method` with an empty request message and the given token; the
/// status code of the answer (Ok when the call itself succeeded).
async fn call(url: &str, method: &str, token: Option<&str>, streaming: bool) -> Code {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(());
    request.set_timeout(Duration::from_secs(10));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let path = method.parse().unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let answer = if streaming {
        grpc.server_streaming(request, path, codec)
            .await
            .map(|_| ())
    } else {
        grpc.unary(request, path, codec).await.map(|_| ())
    };
    match answer {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn is_streaming(method: &str) -> bool {
    method.ends_with("/FollowJournal")
        || method.ends_with("/ExportJournal")
        || method.ends_with("/RunBilling")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_answers_every_kind_of_key_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let server = Tallyd::start(dir.path());
    let admin = server.client().await.unwrap();
    // A checkpoint, so that the audit reads have something to answer with.
    admin.create_checkpoint().await.unwrap();
    let mut tokens = vec![(Role::Admin, false, ADMIN_TOKEN.to_string())];
    for role in [Role::Poster, Role::Finance, Role::Auditor] {
        let created = admin
            .create_api_key(format!("{role}-key"), role, false)
            .await
            .unwrap();
        tokens.push((role, false, created.token));
    }
    let read_only = admin
        .create_api_key("poster-read-only", Role::Poster, true)
        .await
        .unwrap();
    tokens.push((Role::Poster, true, read_only.token));

    for rule in RULES {
        let streaming = is_streaming(rule.method);
        let without = call(&server.url, rule.method, None, streaming).await;
        assert_eq!(
            without,
            Code::Unauthenticated,
            "{} without a key",
            rule.method
        );
        let wrong = format!("tly_{}_{}", "0123456789abcdef", "ab".repeat(32));
        let with_wrong = call(&server.url, rule.method, Some(&wrong), streaming).await;
        assert_eq!(
            with_wrong,
            Code::Unauthenticated,
            "{} with an unknown key",
            rule.method
        );
        for (role, read_only, token) in &tokens {
            let role_name = role.name();
            let allowed = rule.roles.iter().any(|r| r.name() == role_name)
                && !(*read_only && rule.access == Access::Write);
            let code = call(&server.url, rule.method, Some(token), streaming).await;
            if allowed {
                assert!(
                    !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                    "{} refused to {role_name} (read-only {read_only}): {code:?}",
                    rule.method
                );
            } else {
                assert_eq!(
                    code,
                    Code::PermissionDenied,
                    "{} to {role_name} (read-only {read_only})",
                    rule.method
                );
            }
        }
    }
    drop(server);
}

async fn client_with(url: &str, token: &str) -> Client {
    Client::builder(url)
        .api_key(token)
        .retries(0)
        .build()
        .await
        .unwrap()
}

fn code_of(error: &ClientError) -> Option<Code> {
    error.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stops_at_once_and_refused_calls_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Tallyd::start(dir.path());
    let admin = server.client().await.unwrap();
    admin.define_currency("USD", 2).await.unwrap();
    let poster = admin
        .create_api_key("frontend", Role::Poster, false)
        .await
        .unwrap();
    let frontend = client_with(&server.url, &poster.token).await;
    let opened = frontend
        .open_account(tally_client::AccountSpec::new(
            "assets:cash",
            tally_client::AccountType::Asset,
            "USD",
        ))
        .await
        .unwrap();

    // Every entry records the key that caused it.
    let entry = admin.audit_entry(opened.opened_seq).await.unwrap();
    let decoded = tally_core::codec::decode(&entry.canonical).unwrap();
    assert_eq!(decoded.key_id, poster.api_key.key_id);

    let length = admin.ledger_info().await.unwrap().journal_length;
    admin.revoke_api_key(&poster.api_key.key_id).await.unwrap();
    let revoked_at = admin.ledger_info().await.unwrap().journal_length;
    assert_eq!(revoked_at, length + 1, "the revocation is one entry");
    let refused = frontend
        .open_account(tally_client::AccountSpec::new(
            "assets:bank",
            tally_client::AccountType::Asset,
            "USD",
        ))
        .await
        .unwrap_err();
    assert_eq!(code_of(&refused), Some(Code::Unauthenticated), "{refused}");
    // A poster may not define currencies; an auditor may not post.
    let auditor = admin
        .create_api_key("auditor", Role::Auditor, false)
        .await
        .unwrap();
    let auditor = client_with(&server.url, &auditor.token).await;
    let after_keys = admin.ledger_info().await.unwrap().journal_length;
    let denied = auditor.define_currency("EUR", 2).await.unwrap_err();
    assert_eq!(code_of(&denied), Some(Code::PermissionDenied), "{denied}");
    assert!(denied.to_string().contains("auditor"), "{denied}");
    assert_eq!(
        admin.ledger_info().await.unwrap().journal_length,
        after_keys,
        "refused calls append nothing"
    );
    let listed = admin.list_api_keys().await.unwrap();
    let frontend_key = listed
        .iter()
        .find(|k| k.key_id == poster.api_key.key_id)
        .unwrap();
    assert_eq!(frontend_key.revoked_seq, Some(revoked_at - 1));
    assert_eq!(auditor.who_am_i().await.unwrap().role, Role::Auditor);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_limit_is_told_so_and_others_are_not() {
    // Goal: with 5 requests per second and key, a burst of 20 calls gets
    // RATE_LIMITED (ResourceExhausted) naming the limit; another key still
    // gets through.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tallyd.toml");
    std::fs::write(&config, "[auth]\nrequests-per-second-per-key = 5\n").unwrap();
    let server = Tallyd::start_with_args(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let admin = client_with(&server.url, ADMIN_TOKEN).await;
    let mut limited = None;
    for _ in 0..20 {
        if let Err(error) = admin.ledger_info().await {
            limited = Some(error);
            break;
        }
    }
    let limited = limited.expect("20 calls at once stayed under 5 per second");
    assert_eq!(
        code_of(&limited),
        Some(Code::ResourceExhausted),
        "{limited}"
    );
    assert!(
        limited.to_string().contains("5 requests per second"),
        "{limited}"
    );
    // Wait for a refill, then make a second key and use it at once.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let other = admin
        .create_api_key("other", Role::Auditor, false)
        .await
        .unwrap();
    let other = client_with(&server.url, &other.token).await;
    other.ledger_info().await.unwrap();
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_replaced_atomically() {
    // Goal: rotation gives a new token for the same name and role, the old
    // token stops at once, and the journal holds both changes (two entries).
    let dir = tempfile::tempdir().unwrap();
    let server = Tallyd::start(dir.path());
    let admin = server.client().await.unwrap();
    let old = admin
        .create_api_key("frontend", Role::Poster, true)
        .await
        .unwrap();
    let before = admin.ledger_info().await.unwrap().journal_length;
    let new = admin.rotate_api_key(&old.api_key.key_id).await.unwrap();
    assert_eq!(
        admin.ledger_info().await.unwrap().journal_length,
        before + 2
    );
    assert_ne!(new.api_key.key_id, old.api_key.key_id);
    assert_eq!(
        (
            new.api_key.name.as_str(),
            new.api_key.role,
            new.api_key.read_only
        ),
        ("frontend", Role::Poster, true)
    );
    let stale = client_with(&server.url, &old.token).await;
    let refused = stale.ledger_info().await.unwrap_err();
    assert_eq!(code_of(&refused), Some(Code::Unauthenticated), "{refused}");
    let fresh = client_with(&server.url, &new.token).await;
    assert_eq!(fresh.who_am_i().await.unwrap().key_id, new.api_key.key_id);
    // A revoked key cannot be rotated again; nothing is written.
    let again = admin.rotate_api_key(&old.api_key.key_id).await.unwrap_err();
    assert_eq!(code_of(&again), Some(Code::InvalidArgument), "{again}");
    assert_eq!(
        admin.ledger_info().await.unwrap().journal_length,
        before + 2
    );
    drop(server);
}
