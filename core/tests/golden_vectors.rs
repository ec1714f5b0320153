use std::collections::BTreeMap;
use tally_core::chain::{entry_hash, GENESIS_PREV_HASH};
use tally_core::codec::{decode, encode};
use tally_core::entry::*;

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>()
}

fn digest(start: u8, step: u8) -> Digest {
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate() {
        *b = start.wrapping_add(step.wrapping_mul(i as u8));
    }
    d
}

fn examples() -> Vec<Entry> {
    // 2023-11-14T22:13:20Z and later, in ns since the Unix epoch.
    let t0: TimestampNs = 1_700_000_000_000_000_000;
    let sec: TimestampNs = 1_000_000_000;
    vec![
        Entry {
            recorded_at: t0,
            key_id: String::new(),
            body: EntryBody::LedgerCreated {
                ledger_id: [
                    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc,
                    0xdd, 0xee, 0xff,
                ],
            },
        },
        Entry {
            recorded_at: t0 + sec,
            key_id: "key-admin".to_string(),
            body: EntryBody::CurrencyDefined {
                code: "USD".to_string(),
                scale: 2,
            },
        },
        Entry {
            recorded_at: t0 + 2 * sec,
            key_id: "key-admin".to_string(),
            body: EntryBody::AccountOpened(AccountOpened {
                account_id: 1,
                name: "Cash".to_string(),
                account_type: AccountType::Asset,
                currency: "USD".to_string(),
                constraint: BalanceConstraint::CreditsMustNotExceedDebits,
                metadata: meta(&[("region", "eu-west"), ("owner", "ops")]),
            }),
        },
        Entry {
            recorded_at: t0 + 3 * sec,
            key_id: "key-admin".to_string(),
            body: EntryBody::AccountClosed {
                account_id: 0x0102_0304_0506_0708,
            },
        },
        Entry {
            recorded_at: t0 + 4 * sec,
            key_id: "key-7".to_string(),
            body: EntryBody::TransactionRecorded(TransactionRecorded {
                id: "tx-pending".to_string(),
                request_digest: digest(0x01, 0x07),
                mode: TransactionMode::Pending {
                    expires_at: Some(t0 + 3600 * sec),
                },
                postings: vec![
                    Posting {
                        account_id: 1,
                        side: Side::Debit,
                        // 2^96 - 1, the largest amount (money::AMOUNT_MINOR_MAX).
                        amount_minor: 79_228_162_514_264_337_593_543_950_335,
                    },
                    Posting {
                        account_id: 2,
                        side: Side::Credit,
                        amount_minor: 79_228_162_514_264_337_593_543_950_000,
                    },
                    Posting {
                        account_id: 3,
                        side: Side::Credit,
                        amount_minor: 335,
                    },
                ],
                effective_at: None,
                description: "hold €1".to_string(),
                metadata: meta(&[("order", "A-17"), ("channel", "web")]),
            }),
        },
        Entry {
            recorded_at: t0 + 5 * sec,
            key_id: "key-7".to_string(),
            body: EntryBody::TransactionRecorded(TransactionRecorded {
                id: "tx-standard".to_string(),
                request_digest: digest(0xff, 0xfd),
                mode: TransactionMode::Standard,
                postings: vec![
                    Posting {
                        account_id: 1,
                        side: Side::Credit,
                        amount_minor: 1250,
                    },
                    Posting {
                        account_id: 4,
                        side: Side::Debit,
                        amount_minor: 1250,
                    },
                ],
                // 1969-12-31T00:00:00Z: before the epoch, so negative.
                effective_at: Some(-86_400 * sec),
                description: String::new(),
                metadata: Metadata::new(),
            }),
        },
        Entry {
            recorded_at: t0 + 6 * sec,
            key_id: "key-7".to_string(),
            body: EntryBody::TransactionRecorded(TransactionRecorded {
                id: "tx-reversal".to_string(),
                request_digest: digest(0x80, 0x01),
                mode: TransactionMode::Reversal {
                    reverses: "tx-standard".to_string(),
                },
                postings: vec![
                    Posting {
                        account_id: 1,
                        side: Side::Debit,
                        amount_minor: 1250,
                    },
                    Posting {
                        account_id: 4,
                        side: Side::Credit,
                        amount_minor: 1250,
                    },
                ],
                effective_at: Some(t0 + 5 * sec),
                description: "undo".to_string(),
                metadata: meta(&[("reason", "duplicate"), ("ticket", "T-9")]),
            }),
        },
        Entry {
            recorded_at: t0 + 7 * sec,
            key_id: "key-7".to_string(),
            body: EntryBody::PendingPosted(PendingPosted {
                id: "post-1".to_string(),
                request_digest: digest(0x10, 0x10),
                pending_id: "tx-pending".to_string(),
                postings: vec![
                    Posting {
                        account_id: 1,
                        side: Side::Debit,
                        amount_minor: 1_000_000_000_000_000_000_000,
                    },
                    Posting {
                        account_id: 2,
                        side: Side::Credit,
                        amount_minor: 1_000_000_000_000_000_000_000,
                    },
                    Posting {
                        account_id: 3,
                        side: Side::Credit,
                        amount_minor: 0,
                    },
                ],
                effective_at: Some(t0 + 6 * sec),
                description: "partial post".to_string(),
                metadata: meta(&[("batch", "7"), ("by", "cron")]),
            }),
        },
        Entry {
            recorded_at: t0 + 8 * sec,
            key_id: "key-7".to_string(),
            body: EntryBody::PendingVoided(PendingVoided {
                id: "void-1".to_string(),
                request_digest: digest(0x55, 0x00),
                pending_id: "tx-other".to_string(),
                reason: "customer cancelled".to_string(),
            }),
        },
        Entry {
            recorded_at: t0 + 9 * sec,
            key_id: String::new(),
            body: EntryBody::PendingExpired {
                pending_id: "tx-late".to_string(),
            },
        },
        Entry {
            recorded_at: t0 + 10 * sec,
            key_id: "key-7".to_string(),
            body: EntryBody::TransactionRejected(TransactionRejected {
                id: "tx-broke".to_string(),
                request_digest: digest(0xa0, 0x03),
                error_code: 0x0001_0203,
                field: "postings[0].account_id".to_string(),
                message: "account 99 not found".to_string(),
            }),
        },
    ]
}

#[test]
fn gen() {
    let mut prev = GENESIS_PREV_HASH;
    for (seq, e) in examples().iter().enumerate() {
        let b = encode(e);
        let h = entry_hash(seq as u64, &prev, &b);
        prev = h;
        println!("// {seq} {}", e.body.kind_name());
        println!("concat!(");
        for chunk in hex::encode(&b).as_bytes().chunks(64) {
            println!("    \"{}\",", std::str::from_utf8(chunk).unwrap());
        }
        println!("),");
        println!("\"{}\",", hex::encode(h));
        assert_eq!(decode(&b).unwrap(), *e);
    }
}
