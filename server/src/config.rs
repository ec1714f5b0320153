//! `tallyd`'s configuration: a TOML file, overridden by command-line flags.
//!
//! Every key is optional; the default of each is stated on its field. Unknown
//! keys are errors, so that a misspelt setting is never silently ignored.
//!
//! ```toml
//! data-dir = "/var/lib/tally"
//! listen = "0.0.0.0:50051"
//! log-level = "info"
//! grpc-message-bytes-max = 67108864
//!
//! [engine]
//! queue-depth-max = 4096
//! group-items-max = 65536
//! cache-capacity-bytes = 268435456
//!
//! [audit]
//! log-host = "tally.local"
//! checkpoint-every-entries = 10000
//! checkpoint-interval-ms = 10000
//!
//! [auth]
//! requests-per-second-per-key = 10000
//! # bootstrap-admin-key = "tly_..."   (better: TALLY_BOOTSTRAP_ADMIN_KEY)
//!
//! [tls]
//! cert-file = "/etc/tally/server.pem"   # the certificate chain, PEM
//! key-file = "/etc/tally/server.key"    # its private key, PEM
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tonic::transport::{Identity, ServerTlsConfig};

use crate::audit::checkpoints::CheckpointPolicy;
use crate::engine::EngineConfig;

/// A configuration that cannot be used, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Where the journal and its caches live (default `./tally-data`).
    pub data_dir: PathBuf,
    /// Address of the gRPC listener, `host:port`; port 0 picks a free port
    /// (default `127.0.0.1:50051`).
    pub listen: String,
    /// Log filter, in `tracing` env-filter syntax; `RUST_LOG` overrides it
    /// (default `info`).
    pub log_level: String,
    /// Largest gRPC message, either way, in bytes. A full batch of 8,190
    /// transactions needs several MiB (default 64 MiB).
    pub grpc_message_bytes_max: usize,
    pub engine: EngineSection,
    pub audit: AuditSection,
    pub auth: AuthSection,
    pub tls: TlsSection,
}

/// The `[tls]` group: serve gRPC over TLS. Both keys or neither; without
/// them the listener speaks plain HTTP/2.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsSection {
    /// The server's certificate chain, PEM, leaf first.
    pub cert_file: Option<PathBuf>,
    /// The certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

impl TlsSection {
    /// Reads and checks both files: `None` when TLS is not configured. Names
    /// the key at fault: a missing file, no certificate or key in it, or a
    /// key that does not go with the certificate.
    pub fn server_tls_config(&self) -> Result<Option<ServerTlsConfig>, ConfigError> {
        let (cert_file, key_file) = match (&self.cert_file, &self.key_file) {
            (None, None) => return Ok(None),
            (Some(cert_file), Some(key_file)) => (cert_file, key_file),
            (Some(_), None) => return Err(invalid("tls.key-file", "is needed with tls.cert-file")),
            (None, Some(_)) => return Err(invalid("tls.cert-file", "is needed with tls.key-file")),
        };
        let cert = read_pem_file("tls.cert-file", cert_file)?;
        let certs = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| {
                invalid(
                    "tls.cert-file",
                    format!("{}: not a PEM certificate: {error}", cert_file.display()),
                )
            })?;
        if certs.is_empty() {
            return Err(invalid(
                "tls.cert-file",
                format!(
                    "{}: holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    cert_file.display()
                ),
            ));
        }
        let key = read_pem_file("tls.key-file", key_file)?;
        if let Err(error) = PrivateKeyDer::from_pem_slice(&key) {
            return Err(invalid(
                "tls.key-file",
                format!(
                    "{}: holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {error}",
                    key_file.display()
                ),
            ));
        }
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .timeout(TLS_HANDSHAKE_TIMEOUT);
        // Building the acceptor checks that the key is the certificate's.
        if let Err(error) = tonic::transport::Server::builder().tls_config(tls.clone()) {
            return Err(invalid(
                "tls.key-file",
                format!(
                    "{} does not go with the certificate in {}: {}",
                    key_file.display(),
                    cert_file.display(),
                    error_chain(&error)
                ),
            ));
        }
        Ok(Some(tls))
    }
}

/// How long a client may take over the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn read_pem_file(key: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|error| invalid(key, format!("cannot read {}: {error}", path.display())))
}

/// An error and its sources, `: `-separated.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The `[auth]` group: API keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuthSection {
    /// The token of the first admin key, used once, when the ledger has no
    /// key yet. Unset (the default): a random key is made and printed once.
    /// The environment variable `TALLY_BOOTSTRAP_ADMIN_KEY` overrides it.
    pub bootstrap_admin_key: Option<String>,
    /// Requests per second per API key, with a burst of one second's worth;
    /// 0 means no limit (default 10,000).
    pub requests_per_second_per_key: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            bootstrap_admin_key: None,
            requests_per_second_per_key: 10_000,
        }
    }
}

/// The `[audit]` group: signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuditSection {
    /// Names the operator in each checkpoint's origin line,
    /// `<log-host>/ledger/<ledger id>/blake3` (default `tally.local`).
    pub log_host: String,
    /// Sign a checkpoint after this many new entries (default 10,000).
    pub checkpoint_every_entries: u64,
    /// Sign a checkpoint at least this often while entries come, in
    /// milliseconds (default 10,000).
    pub checkpoint_interval_ms: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        let policy = CheckpointPolicy::default();
        AuditSection {
            log_host: policy.log_host,
            checkpoint_every_entries: policy.every_entries,
            checkpoint_interval_ms: policy.interval.as_millis() as u64,
        }
    }
}

/// The `[engine]` group: how the writer queues and groups work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngineSection {
    /// Requests waiting for the writer before senders wait (default 4096).
    pub queue_depth_max: usize,
    /// Transaction items per group commit (default 65,536).
    pub group_items_max: usize,
    /// Storage page cache, bytes (default 256 MiB).
    pub cache_capacity_bytes: u64,
}

/// Smallest accepted `grpc-message-bytes-max`: gRPC's own default, 4 MiB.
pub const GRPC_MESSAGE_BYTES_MIN: usize = 4 * 1024 * 1024;

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./tally-data"),
            listen: "127.0.0.1:50051".to_string(),
            log_level: "info".to_string(),
            grpc_message_bytes_max: 64 * 1024 * 1024,
            engine: EngineSection::default(),
            audit: AuditSection::default(),
            auth: AuthSection::default(),
            tls: TlsSection::default(),
        }
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        // The engine's own defaults, so that there is one source for them.
        let engine = EngineConfig::new(PathBuf::new());
        EngineSection {
            queue_depth_max: engine.queue_depth_max,
            group_items_max: engine.group_items_max,
            cache_capacity_bytes: engine.cache_capacity_bytes,
        }
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (without validating the values).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|error| error.to_string().trim_end().to_string())
    }

    /// Checks every value, naming the first bad key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir", "must not be empty"));
        }
        validate_listen(&self.listen)?;
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(invalid(
                "log-level",
                format!("{:?} is not a log filter: {error}", self.log_level),
            ));
        }
        if self.grpc_message_bytes_max < GRPC_MESSAGE_BYTES_MIN {
            return Err(invalid(
                "grpc-message-bytes-max",
                format!("must be at least {GRPC_MESSAGE_BYTES_MIN}"),
            ));
        }
        if self.engine.queue_depth_max == 0 {
            return Err(invalid("engine.queue-depth-max", "must be at least 1"));
        }
        if self.engine.group_items_max == 0 {
            return Err(invalid("engine.group-items-max", "must be at least 1"));
        }
        let log_host = &self.audit.log_host;
        if log_host.is_empty() || !log_host.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "audit.log-host",
                "must be non-empty printable ASCII without spaces",
            ));
        }
        if self.audit.checkpoint_every_entries == 0 {
            return Err(invalid(
                "audit.checkpoint-every-entries",
                "must be at least 1",
            ));
        }
        if let Some(token) = &self.auth.bootstrap_admin_key {
            if let Err(reason) = crate::auth::token::Token::parse(token) {
                return Err(invalid("auth.bootstrap-admin-key", reason));
            }
        }
        if self.audit.checkpoint_interval_ms == 0 {
            return Err(invalid(
                "audit.checkpoint-interval-ms",
                "must be at least 1",
            ));
        }
        self.tls.server_tls_config()?;
        Ok(())
    }

    /// The engine's settings.
    pub fn engine_config(&self) -> EngineConfig {
        let mut engine = EngineConfig::new(self.data_dir.clone());
        engine.queue_depth_max = self.engine.queue_depth_max;
        engine.group_items_max = self.engine.group_items_max;
        engine.cache_capacity_bytes = self.engine.cache_capacity_bytes;
        engine.bootstrap_admin_key = self.auth.bootstrap_admin_key.clone();
        engine.checkpoints = CheckpointPolicy {
            log_host: self.audit.log_host.clone(),
            every_entries: self.audit.checkpoint_every_entries,
            interval: std::time::Duration::from_millis(self.audit.checkpoint_interval_ms),
        };
        engine
    }
}

/// `host:port` with a numeric port; the host may be a name (resolved at bind).
fn validate_listen(listen: &str) -> Result<(), ConfigError> {
    if listen.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let valid = listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(())
    } else {
        Err(invalid(
            "listen",
            format!("{listen:?} is not host:port (e.g. 127.0.0.1:50051)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        // Goal: every key is optional and the defaults validate.
        let config = Config::parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listen, "127.0.0.1:50051");
        assert_eq!(config.data_dir, PathBuf::from("./tally-data"));
        assert_eq!(config.grpc_message_bytes_max, 64 * 1024 * 1024);
        assert_eq!(config.engine.queue_depth_max, 4096);
        config.validate().unwrap();
    }

    #[test]
    fn keys_are_kebab_case_and_map_onto_the_engine() {
        // Goal: the documented keys are read and reach EngineConfig.
        let config = Config::parse(
            r#"
            data-dir = "/tmp/t"
            listen = "localhost:0"
            log-level = "tally_server=debug,info"
            grpc-message-bytes-max = 8388608
            [engine]
            queue-depth-max = 8
            group-items-max = 9
            cache-capacity-bytes = 10
            [audit]
            log-host = "books.example"
            checkpoint-every-entries = 11
            checkpoint-interval-ms = 12
            "#,
        )
        .unwrap();
        config.validate().unwrap();
        let engine = config.engine_config();
        assert_eq!(engine.data_dir, PathBuf::from("/tmp/t"));
        assert_eq!(engine.queue_depth_max, 8);
        assert_eq!(engine.group_items_max, 9);
        assert_eq!(engine.cache_capacity_bytes, 10);
        assert_eq!(engine.checkpoints.log_host, "books.example");
        assert_eq!(engine.checkpoints.every_entries, 11);
        assert_eq!(
            engine.checkpoints.interval,
            std::time::Duration::from_millis(12)
        );
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        // Goal: a typo is an error that names the key, not a silent default.
        let error = Config::parse("data_dir = \"x\"").unwrap_err();
        assert!(error.contains("data_dir"), "{error}");
        let error = Config::parse("[engine]\nqueue-depth = 1").unwrap_err();
        assert!(error.contains("queue-depth"), "{error}");
    }

    /// A self-signed certificate for `localhost` and its key, as PEM files in
    /// `dir`: (cert path, key path).
    fn write_self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let cert_file = dir.join(format!("{name}.pem"));
        let key_file = dir.join(format!("{name}.key"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, signing_key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }

    fn tls_error_key(cert_file: Option<&Path>, key_file: Option<&Path>) -> &'static str {
        let mut config = Config::default();
        config.tls.cert_file = cert_file.map(Path::to_path_buf);
        config.tls.key_file = key_file.map(Path::to_path_buf);
        match config.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tls_reads_both_pem_files() {
        // Goal: `[tls]` takes a certificate and its key; both are read at
        // validation, and the server config comes out of them.
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = write_self_signed(dir.path(), "server");
        let config = Config::parse(&format!(
            "[tls]\ncert-file = {:?}\nkey-file = {:?}\n",
            cert_file.display().to_string(),
            key_file.display().to_string()
        ))
        .unwrap();
        config.validate().unwrap();
        assert_eq!(config.tls.cert_file.as_deref(), Some(cert_file.as_path()));
        assert!(config.tls.server_tls_config().unwrap().is_some());
        assert!(Config::default().tls.server_tls_config().unwrap().is_none());
        let error = Config::parse("[tls]\ncert = \"x\"").unwrap_err();
        assert!(error.contains("cert"), "{error}");
    }

    #[test]
    fn tls_errors_name_the_bad_key() {
        // Goal: one file without the other, a missing file, a file without PEM,
        // and a key of another certificate are each refused by key name.
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = write_self_signed(dir.path(), "server");
        let (_, other_key) = write_self_signed(dir.path(), "other");
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not pem at all").unwrap();
        assert_eq!(tls_error_key(Some(&cert_file), None), "tls.key-file");
        assert_eq!(tls_error_key(None, Some(&key_file)), "tls.cert-file");
        assert_eq!(
            tls_error_key(Some(&missing), Some(&key_file)),
            "tls.cert-file"
        );
        assert_eq!(
            tls_error_key(Some(&cert_file), Some(&missing)),
            "tls.key-file"
        );
        assert_eq!(
            tls_error_key(Some(&garbage), Some(&key_file)),
            "tls.cert-file"
        );
        assert_eq!(
            tls_error_key(Some(&cert_file), Some(&garbage)),
            "tls.key-file"
        );
        // Swapped files: a key is no certificate, a certificate is no key.
        assert_eq!(
            tls_error_key(Some(&key_file), Some(&cert_file)),
            "tls.cert-file"
        );
        assert_eq!(
            tls_error_key(Some(&cert_file), Some(&cert_file)),
            "tls.key-file"
        );
        assert_eq!(
            tls_error_key(Some(&cert_file), Some(&other_key)),
            "tls.key-file"
        );
        let mut config = Config::default();
        config.tls.cert_file = Some(missing.clone());
        config.tls.key_file = Some(key_file);
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("missing.pem"), "{message}");
    }

    #[test]
    fn validate_names_the_bad_key() {
        // Goal: each bad value is reported with its key.
        type Spoil = fn(&mut Config);
        let cases: [(&str, Spoil); 7] = [
            ("audit.log-host", |c| c.audit.log_host = "a b".to_string()),
            ("audit.checkpoint-every-entries", |c| {
                c.audit.checkpoint_every_entries = 0
            }),
            ("listen", |c| c.listen = "nowhere".to_string()),
            ("log-level", |c| c.log_level = "[[[".to_string()),
            ("grpc-message-bytes-max", |c| c.grpc_message_bytes_max = 10),
            ("engine.queue-depth-max", |c| c.engine.queue_depth_max = 0),
            ("data-dir", |c| c.data_dir = PathBuf::new()),
        ];
        for (key, spoil) in cases {
            let mut config = Config::default();
            spoil(&mut config);
            match config.validate() {
                Err(ConfigError::Invalid { key: bad, .. }) => assert_eq!(bad, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
