//! TLS end to end: a real `tallyd` with `[tls]` in its config file, the client
//! crate and the `tally` CLI over `https://` with the CA, and the refusals: a
//! client that does not trust the CA, and a plain-HTTP client on the TLS port.
//!
//! The certificates are made here with rcgen: a throwaway CA, and a server
//! certificate it signs for `localhost` and `127.0.0.1`.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rust_decimal::Decimal;
use tally::{client_builder, tally_command, Tallyd};
use tally_client::{AccountSpec, AccountType, AsOf, Client, ClientError, TransactionSpec};

/// The PEM files of one test's PKI.
struct Pki {
    ca_file: PathBuf,
    ca_pem: String,
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// A CA, and a server certificate and key signed by it, written to `dir`.
fn make_pki(dir: &Path, name: &str) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("Tally test CA {name}"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_cert = params.signed_by(&server_key, &ca).unwrap();

    let pki = Pki {
        ca_file: dir.join(format!("{name}-ca.pem")),
        ca_pem: ca.pem(),
        cert_file: dir.join(format!("{name}-server.pem")),
        key_file: dir.join(format!("{name}-server.key")),
    };
    std::fs::write(&pki.ca_file, &pki.ca_pem).unwrap();
    std::fs::write(&pki.cert_file, server_cert.pem()).unwrap();
    std::fs::write(&pki.key_file, server_key.serialize_pem()).unwrap();
    pki
}

/// Starts `tallyd --config FILE` with `[tls]` naming the PKI's server files.
fn start_tls_server(dir: &Path, pki: &Pki) -> Tallyd {
    let config = dir.join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert-file = {:?}\nkey-file = {:?}\n",
            pki.cert_file.to_str().unwrap(),
            pki.key_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let data_dir = dir.join("data");
    Tallyd::start_with_args(&data_dir, &["--config", config.to_str().unwrap()])
}

/// The port of a harness URL (`http://127.0.0.1:PORT`).
fn port_of(server: &Tallyd) -> u16 {
    server.url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A client that gives up at once: refusals are what is tested.
async fn quick_client(url: &str, ca_pem: Option<&str>) -> tally_client::Result<Client> {
    let mut builder = client_builder(url)
        .retries(0)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        builder = builder.ca_certificate(pem);
    }
    let client = builder.build().await?;
    client.ledger_info().await?;
    Ok(client)
}

fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_posts_and_reads_back_over_tls_with_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "ledger");
    let server = start_tls_server(dir.path(), &pki);
    let port = port_of(&server);
    let https = format!("https://localhost:{port}");

    let client = client_builder(&https)
        .ca_certificate(&pki.ca_pem)
        .build()
        .await
        .unwrap();
    client.define_currency("USD", 2).await.unwrap();
    for (name, account_type) in [
        ("assets:cash", AccountType::Asset),
        ("revenue:sales", AccountType::Revenue),
    ] {
        client
            .open_account(AccountSpec::new(name, account_type, "USD"))
            .await
            .unwrap();
    }
    let posted = client
        .post_transaction(
            TransactionSpec::new("sale-1")
                .debit("assets:cash", dec("10.50"))
                .credit("revenue:sales", dec("10.50"))
                .description("over TLS"),
        )
        .await
        .unwrap();
    let read = client.get_transaction("sale-1").await.unwrap();
    assert_eq!(read, posted);
    assert_eq!(read.description, "over TLS");
    let balances = client.balances(["assets:cash"], AsOf::Now).await.unwrap();
    assert_eq!(balances.balances[0].account, "assets:cash");

    // The certificate names 127.0.0.1 too; the address's host is checked.
    let by_ip = quick_client(&format!("https://127.0.0.1:{port}"), Some(&pki.ca_pem))
        .await
        .unwrap();
    assert_eq!(
        by_ip.get_transaction("sale-1").await.unwrap().entry_hash,
        posted.entry_hash
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_trust_the_ca_or_skip_tls_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "ledger");
    let other = make_pki(dir.path(), "other");
    let server = start_tls_server(dir.path(), &pki);
    let port = port_of(&server);
    let https = format!("https://localhost:{port}");

    // No CA: nothing is trusted, the handshake fails.
    let error = quick_client(&https, None).await.unwrap_err();
    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    assert!(error.to_string().contains("certificate"), "{error}");

    // Another CA: the server's certificate does not chain to it.
    let error = quick_client(&https, Some(&other.ca_pem)).await.unwrap_err();
    assert!(matches!(error, ClientError::Transport(_)), "{error:?}");

    // A name the certificate does not hold (the CA is right): through the
    // full TLS settings, which the CA is added to.
    let tls = tonic::transport::ClientTlsConfig::new().domain_name("ledger.example");
    let mismatch = client_builder(&https)
        .tls_config(tls)
        .ca_certificate(&pki.ca_pem)
        .retries(0)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(mismatch, ClientError::Transport(_)),
        "{mismatch:?}"
    );
    assert!(
        mismatch.to_string().contains("not valid for name"),
        "{mismatch}"
    );

    // Plain HTTP/2 on the TLS port: the server does not speak it.
    let error = quick_client(&format!("http://127.0.0.1:{port}"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::Transport(_) | ClientError::Timeout),
        "{error:?}"
    );

    // A CA with a plain address is a mistake, refused before connecting.
    let error = quick_client(&format!("127.0.0.1:{port}"), Some(&pki.ca_pem))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::InvalidRequest(_)), "{error:?}");

    // The server is still fine for a client that trusts its CA.
    quick_client(&https, Some(&pki.ca_pem)).await.unwrap();
    drop(server);
}

fn tally(args: &[&str]) -> Output {
    tally_command()
        .args(args)
        .env_remove("TALLY_SERVER")
        .env_remove("TALLY_CA_CERT")
        .output()
        .expect("run tally")
}

#[test]
fn the_cli_connects_over_tls_with_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "ledger");
    let server = start_tls_server(dir.path(), &pki);
    let https = format!("https://localhost:{}", port_of(&server));
    let ca = pki.ca_file.to_str().unwrap();

    let output = tally(&["--server", &https, "--ca-cert", ca, "info"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("ledger id"), "{stdout}");

    // The same from the environment.
    let output = tally_command()
        .args(["--json", "info"])
        .env("TALLY_SERVER", &https)
        .env("TALLY_CA_CERT", ca)
        .output()
        .expect("run tally");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(info["journal_length"].as_u64().is_some(), "{info}");

    // Without the CA the call fails (exit 1) and says why.
    let output = tally(&["--server", &https, "--timeout", "10s", "info"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    // A CA file that is not there is a usage error (exit 2).
    let missing = dir.path().join("missing.pem");
    let output = tally(&[
        "--server",
        &https,
        "--ca-cert",
        missing.to_str().unwrap(),
        "info",
    ]);
    assert_eq!(output.status.code(), Some(2));
    drop(server);
}

#[test]
fn tallyd_refuses_a_tls_section_it_cannot_use() {
    // A key file that is not a key: tallyd exits with a usage error naming the key.
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path(), "ledger");
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert-file = {:?}\nkey-file = {:?}\n",
            pki.cert_file.to_str().unwrap(),
            pki.ca_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(tally::tallyd_binary())
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("run tallyd");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tls.key-file"), "{stderr}");
}
