// Goal: `tally audit` works end to end against a real `tallyd`: the online commands
// fetch checkpoints, proofs and an export into real files; once the server is stopped,
// the offline `verify-*` commands accept them with the key `tallyd pubkey` prints, re-derive
// the same balances the server reported, and refuse a wrong key or a changed proof hash;
// a key rotation keeps old and new pins working; `watch` advances its state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tally::Tallyd;
use tally_client::{
    AccountSpec, AccountType, AsOf, Client, Decimal, PostPendingSpec, ReverseSpec, Transaction,
    TrialBalanceQuery, VoidPendingSpec,
};

/// A key that never signed anything of these ledgers (docs/audit-proofs.md §8.2).
const FOREIGN_VKEY: &str =
    "tally.example/key-1+4e513526+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";

/// Runs `tally ARGS` against `url` (an address nothing listens on for offline
/// commands), with the admin key.
fn tally(url: &str, args: &[&str]) -> Output {
    tally::tally_command()
        .args(args)
        .env("TALLY_SERVER", url)
        .output()
        .expect("run tally")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `tally ARGS`, asserts success and returns stdout.
fn ok(url: &str, args: &[&str]) -> String {
    let output = tally(url, args);
    assert!(
        output.status.success(),
        "tally {args:?} exited with {}: {}{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Runs `tally ARGS`, asserts that verification failed (exit 1) and returns stderr.
fn fails(url: &str, args: &[&str]) -> String {
    let output = tally(url, args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "tally {args:?}: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stderr)
}

/// `tallyd pubkey --data-dir DIR`: the vkey, without its newline.
fn pubkey(data_dir: &Path) -> String {
    let output = Command::new(tally::tallyd_binary())
        .args(["pubkey", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run tallyd pubkey");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_string()
}

fn rotate_key(data_dir: &Path) {
    let output = Command::new(tally::tallyd_binary())
        .args(["keygen", "--rotate", "--data-dir"])
        .arg(data_dir)
        .output()
        .expect("run tallyd keygen --rotate");
    assert!(output.status.success(), "{}", text(&output.stderr));
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

fn d(text: &str) -> Decimal {
    text.parse().expect("decimal literal")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("tokio runtime")
}

const ACCOUNTS: [(&str, AccountType, &str); 5] = [
    ("assets:cash", AccountType::Asset, "USD"),
    ("revenue:sales", AccountType::Revenue, "USD"),
    ("liabilities:wallet", AccountType::Liability, "USD"),
    ("assets:yen", AccountType::Asset, "JPY"),
    ("equity:yen", AccountType::Equity, "JPY"),
];

/// Currencies, accounts and one transaction of every kind; returns the sale.
async fn shop(client: &Client) -> Transaction {
    client.define_currency("USD", 2).await.unwrap();
    client.define_currency("JPY", 0).await.unwrap();
    let specs = ACCOUNTS.map(|(name, kind, currency)| AccountSpec::new(name, kind, currency));
    for result in client.create_accounts(specs).await.unwrap() {
        result.unwrap();
    }
    let sale = Transaction::builder("sale-1")
        .debit("assets:cash", d("10.50"))
        .credit("revenue:sales", d("10.50"))
        .description("first sale");
    let sale = client.post_transaction(sale).await.unwrap();
    let yen = Transaction::builder("yen-1")
        .debit("assets:yen", d("1000"))
        .credit("equity:yen", d("1000"));
    client.post_transaction(yen).await.unwrap();
    for (id, amount) in [("hold-1", "7.00"), ("hold-2", "3.00")] {
        let hold = Transaction::builder(id)
            .debit("assets:cash", d(amount))
            .credit("liabilities:wallet", d(amount))
            .pending();
        client.post_transaction(hold).await.unwrap();
    }
    let partial = PostPendingSpec::new("post-1", "hold-1").amounts([d("5.00"), d("5.00")]);
    client.post_pending(partial).await.unwrap();
    client
        .void_pending(VoidPendingSpec::new("void-2", "hold-2").reason("no"))
        .await
        .unwrap();
    client
        .reverse(ReverseSpec::new("rev-1", "sale-1"))
        .await
        .unwrap();
    sale
}

async fn more_sales(client: &Client, prefix: &str, count: u32) {
    for i in 0..count {
        let sale = Transaction::builder(format!("{prefix}-{i}"))
            .debit("assets:cash", d("1.25"))
            .credit("revenue:sales", d("1.25"));
        client.post_transaction(sale).await.unwrap();
    }
}

/// Per account: posted debits, posted credits, pending debits, pending credits, balance.
type Figures = BTreeMap<String, [Decimal; 5]>;
/// Per account or currency: a trial balance's debit and credit columns.
type Columns = BTreeMap<String, [Decimal; 2]>;

/// What the server says, through the client: the balances of every account, and its trial
/// balance (each account's net balance in the debit or credit column, and totals).
async fn server_figures(client: &Client) -> (Figures, Columns, Columns) {
    let names = ACCOUNTS.map(|(name, _, _)| name);
    let balances = client.balances(names, AsOf::Now).await.unwrap();
    let accounts = balances
        .balances
        .into_iter()
        .map(|account| {
            let b = account.balance;
            let figures = [
                b.debits_posted,
                b.credits_posted,
                b.debits_pending,
                b.credits_pending,
                b.balance,
            ];
            (account.account, figures)
        })
        .collect();
    let trial_balance = client
        .trial_balance(TrialBalanceQuery::default())
        .await
        .unwrap();
    let lines = trial_balance
        .lines
        .into_iter()
        .map(|line| (line.account, [line.debit, line.credit]))
        .collect();
    let totals = trial_balance
        .totals
        .into_iter()
        .map(|total| (total.currency, [total.debit, total.credit]))
        .collect();
    (accounts, lines, totals)
}

/// The lines of `section` of the verify-export report, up to the next blank line, without
/// the header line.
fn section<'a>(report: &'a str, title: &str) -> Vec<Vec<&'a str>> {
    let lines = report
        .lines()
        .skip_while(|line| *line != title)
        .skip(2)
        .take_while(|line| !line.trim().is_empty());
    lines
        .map(|line| line.split_whitespace().collect())
        .collect()
}

/// The report's accounts (id name type currency debits credits pdebits pcredits balance),
/// and the server's kind of trial balance computed from them: each account's posted net in
/// the debit or credit column, summed per currency. The report's own trial balance sums
/// the gross debits and credits, so it must equal the column sums of the accounts.
fn report_figures(report: &str) -> (Figures, Columns, Columns) {
    let (mut accounts, mut lines, mut totals) = (Figures::new(), Columns::new(), Columns::new());
    let zero = Decimal::ZERO;
    let mut gross = Columns::new();
    for cells in section(report, "accounts") {
        assert_eq!(cells.len(), 9, "account line {cells:?}");
        let figures = [cells[4], cells[5], cells[6], cells[7], cells[8]].map(d);
        let net = figures[0] - figures[1];
        let columns = [net.max(zero), (-net).max(zero)];
        lines.insert(cells[1].to_string(), columns);
        let total = totals.entry(cells[3].to_string()).or_insert([zero; 2]);
        (total[0], total[1]) = (total[0] + columns[0], total[1] + columns[1]);
        let sum = gross.entry(cells[3].to_string()).or_insert([zero; 2]);
        (sum[0], sum[1]) = (sum[0] + figures[0], sum[1] + figures[1]);
        accounts.insert(cells[1].to_string(), figures);
    }
    let reported: Columns = section(report, "trial balance")
        .into_iter()
        .map(|cells| (cells[0].to_string(), [d(cells[1]), d(cells[2])]))
        .collect();
    assert_eq!(reported, gross, "{report}");
    (accounts, lines, totals)
}

/// Changes one hex digit of the first hash of the bundle's `proof`.
fn tamper_proof(bundle: &Path, out: &Path) {
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    let first = value["proof"][0]
        .as_str()
        .expect("a proof hash")
        .to_string();
    let flipped = if first.starts_with('0') { "1" } else { "0" };
    value["proof"][0] = format!("{flipped}{}", &first[1..]).into();
    std::fs::write(out, serde_json::to_vec(&value).unwrap()).unwrap();
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn proofs_and_exports_verify_offline_with_the_servers_key() {
    let data = tempfile::tempdir().unwrap();
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
    };
    let server = Tallyd::start(data.path());
    let url = server.url.clone();
    let rt = runtime();
    let client = rt.block_on(tally::connect(url.clone())).unwrap();
    let sale = rt.block_on(shop(&client));

    // Online: a checkpoint now, more entries, then proofs against a newer checkpoint.
    let old_note = files.path("old.note");
    let line = ok(
        &url,
        &[
            "audit",
            "checkpoint",
            "--create",
            "--out",
            path_arg(&old_note),
        ],
    );
    assert!(line.starts_with("wrote the checkpoint of "), "{line}");
    rt.block_on(more_sales(&client, "later", 5));
    let inclusion = files.path("inclusion.json");
    let seq = sale.seq.to_string();
    ok(
        &url,
        &[
            "audit",
            "prove-inclusion",
            "--seq",
            &seq,
            "--out",
            path_arg(&inclusion),
        ],
    );
    let consistency = files.path("consistency.json");
    let args = [
        "audit",
        "prove-consistency",
        "--old",
        path_arg(&old_note),
        "--out",
    ];
    ok(&url, &[&args[..], &[path_arg(&consistency)]].concat());
    let export = files.path("journal.export");
    ok(&url, &["audit", "export", "--out", path_arg(&export)]);
    let keys = ok(&url, &["audit", "keys"]);
    let server_said = rt.block_on(server_figures(&client));
    drop(client);
    drop(rt);
    assert!(server.terminate().success());

    // Offline, with the key the server's operator publishes.
    let vkey = pubkey(data.path());
    assert!(keys.contains(&vkey), "{keys}");
    let key_file = files.path("ledger.vkey");
    std::fs::write(&key_file, format!("{vkey}\n")).unwrap();
    let key_at = format!("@{}", key_file.display());
    let checkpoint = ok(
        &url,
        &[
            "audit",
            "verify-checkpoint",
            path_arg(&old_note),
            "--key",
            &vkey,
        ],
    );
    assert!(
        checkpoint.starts_with("checkpoint verified\n"),
        "{checkpoint}"
    );
    let entry = ok(
        &url,
        &[
            "audit",
            "verify-inclusion",
            path_arg(&inclusion),
            "--key",
            &key_at,
        ],
    );
    assert!(
        entry.contains(&format!("seq         {}\n", sale.seq)),
        "{entry}"
    );
    assert!(
        entry.contains("kind        transaction_recorded\n"),
        "{entry}"
    );
    assert!(entry.contains("\"id\":\"sale-1\""), "{entry}");
    let extended = ok(
        &url,
        &[
            "audit",
            "verify-consistency",
            path_arg(&consistency),
            "--key",
            &vkey,
        ],
    );
    assert!(extended.starts_with("consistency verified: "), "{extended}");
    let report = ok(
        &url,
        &["audit", "verify-export", path_arg(&export), "--key", &vkey],
    );
    assert!(report.starts_with("journal export verified\n"), "{report}");
    assert_eq!(report_figures(&report), server_said, "{report}");

    // Usage errors (exit 2): a missing file, a malformed key.
    let missing = files.path("missing.export");
    let output = tally(
        &url,
        &["audit", "verify-export", path_arg(&missing), "--key", &vkey],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    let output = tally(
        &url,
        &[
            "audit",
            "verify-export",
            path_arg(&export),
            "--key",
            "k+1+2",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));

    // A key that did not sign, and proofs with one hash changed, fail precisely.
    let wrong = ["--key", FOREIGN_VKEY];
    let stderr = fails(
        &url,
        &[&["audit", "verify-export", path_arg(&export)][..], &wrong].concat(),
    );
    assert!(stderr.contains("none of the pinned keys"), "{stderr}");
    let stderr = fails(
        &url,
        &[
            &["audit", "verify-inclusion", path_arg(&inclusion)][..],
            &wrong,
        ]
        .concat(),
    );
    assert!(
        stderr.contains("checkpoint: no signature by a known key"),
        "{stderr}"
    );
    let tampered = files.path("tampered-inclusion.json");
    tamper_proof(&inclusion, &tampered);
    let stderr = fails(
        &url,
        &[
            "audit",
            "verify-inclusion",
            path_arg(&tampered),
            "--key",
            &vkey,
        ],
    );
    assert!(
        stderr.contains("the inclusion proof does not verify"),
        "{stderr}"
    );
    // A bundle that states another size than its signed checkpoint, or holds bad hex.
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&inclusion).unwrap()).unwrap();
    let lying = files.path("lying-inclusion.json");
    for (field, value, expected) in [
        (
            "tree_size",
            serde_json::json!(1_000_000),
            "field \"tree_size\" is 1000000 but the signed checkpoint has",
        ),
        (
            "prev_hash",
            serde_json::json!("xyz"),
            "field \"prev_hash\": must be 64 lowercase hex digits",
        ),
    ] {
        let mut changed = bundle.clone();
        changed[field] = value;
        std::fs::write(&lying, serde_json::to_vec(&changed).unwrap()).unwrap();
        let stderr = fails(
            &url,
            &[
                "audit",
                "verify-inclusion",
                path_arg(&lying),
                "--key",
                &vkey,
            ],
        );
        assert!(stderr.contains(expected), "{stderr}");
    }
    let tampered = files.path("tampered-consistency.json");
    tamper_proof(&consistency, &tampered);
    let stderr = fails(
        &url,
        &[
            "audit",
            "verify-consistency",
            path_arg(&tampered),
            "--key",
            &vkey,
        ],
    );
    assert!(stderr.contains("fork: the checkpoint of"), "{stderr}");
    assert!(stderr.contains("is not consistent with"), "{stderr}");
}

/// `tally audit watch --once`, asserting success; returns its line.
fn watch_once(url: &str, state: &Path, vkey: &str) -> String {
    ok(
        url,
        &[
            "audit",
            "watch",
            "--once",
            "--state",
            path_arg(state),
            "--key",
            vkey,
        ],
    )
}

#[test]
fn watch_follows_the_ledger_across_a_key_rotation() {
    let data = tempfile::tempdir().unwrap();
    let files = Files {
        dir: tempfile::tempdir().unwrap(),
    };
    let server = Tallyd::start(data.path());
    let rt = runtime();
    let client = rt.block_on(tally::connect(server.url.clone())).unwrap();
    rt.block_on(shop(&client));
    let old_vkey = pubkey(data.path());
    let state = files.path("watch.state");

    ok(&server.url, &["audit", "checkpoint", "--create"]);
    let first = watch_once(&server.url, &state, &old_vkey);
    assert!(first.starts_with("trusted on first use: "), "{first}");
    let trusted = std::fs::read_to_string(&state).unwrap();
    rt.block_on(more_sales(&client, "a", 3));
    ok(&server.url, &["audit", "checkpoint", "--create"]);
    let second = watch_once(&server.url, &state, &old_vkey);
    assert!(
        second.contains("extends the verified checkpoint"),
        "{second}"
    );
    assert_ne!(std::fs::read_to_string(&state).unwrap(), trusted);
    drop(client);
    drop(rt);
    assert!(server.terminate().success());

    // Rotate; the restarted server signs with the new key only.
    rotate_key(data.path());
    let new_vkey = pubkey(data.path());
    assert_ne!(new_vkey, old_vkey);
    let server = Tallyd::start(data.path());
    let rt = runtime();
    let client = rt.block_on(tally::connect(server.url.clone())).unwrap();
    rt.block_on(more_sales(&client, "b", 3));
    ok(&server.url, &["audit", "checkpoint", "--create"]);
    // Pinning only the old key, watch learns the new one through the rotation note.
    let third = watch_once(&server.url, &state, &old_vkey);
    assert!(third.contains("extends the verified checkpoint"), "{third}");
    let export = files.path("rotated.export");
    ok(
        &server.url,
        &["audit", "export", "--out", path_arg(&export)],
    );
    drop(client);
    drop(rt);
    assert!(server.terminate().success());

    for pinned in [&old_vkey, &new_vkey] {
        let report = ok(
            &server_gone(),
            &["audit", "verify-export", path_arg(&export), "--key", pinned],
        );
        assert!(report.contains("rotated in at entry"), "{report}");
        assert!(
            report.contains(&format!("pinned          {pinned}")),
            "{report}"
        );
    }
    let stderr = fails(
        &server_gone(),
        &[
            "audit",
            "verify-export",
            path_arg(&export),
            "--key",
            FOREIGN_VKEY,
        ],
    );
    assert!(stderr.contains("none of the pinned keys"), "{stderr}");
}

/// An address nothing listens on: offline commands must not need a server.
fn server_gone() -> String {
    "http://127.0.0.1:9".to_string()
}
