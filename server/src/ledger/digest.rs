//! The request digest: a blake3 hash over a request's content, so that a retry
//! can be told apart from a different request reusing an id.
//!
//! Every field is fed with a length or a tag, so no two different requests feed
//! the same bytes. Decimals are normalized first: `10.0` and `10` are one
//! amount.

use super::command::{PostingSpec, TransactionCommand};
use rust_decimal::Decimal;
use tally_core::entry::{Digest, Metadata, Side};

/// The digest's input, gathered into one buffer and hashed once: blake3 is a
/// stream, so this gives the hash of the concatenation, at a fraction of the
/// cost of one hasher update per field (this runs for every item of every batch).
struct Feed(Vec<u8>);

impl Feed {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0
            .extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        self.0.extend_from_slice(bytes);
    }
    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_be_bytes());
    }
    fn tag(&mut self, tag: u8) {
        self.0.push(tag);
    }
    /// The normalized decimal's text, length first, written in place.
    fn decimal(&mut self, value: &Decimal) {
        use std::fmt::Write;
        struct Text<'a>(&'a mut Vec<u8>);
        impl Write for Text<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 8]);
        write!(Text(&mut self.0), "{}", value.normalize()).expect("writing to a Vec cannot fail");
        let len = (self.0.len() - at - 8) as u64;
        self.0[at..at + 8].copy_from_slice(&len.to_be_bytes());
    }
    fn option_i64(&mut self, value: Option<i64>) {
        match value {
            None => self.tag(0),
            Some(v) => {
                self.tag(1);
                self.0.extend_from_slice(&v.to_be_bytes());
            }
        }
    }
    fn metadata(&mut self, metadata: &Metadata) {
        self.u64(metadata.len() as u64);
        for (key, value) in metadata {
            self.str(key);
            self.str(value);
        }
    }
    fn posting(&mut self, posting: &PostingSpec) {
        self.str(&posting.account);
        self.tag(match posting.side {
            Side::Debit => 0,
            Side::Credit => 1,
        });
        self.decimal(&posting.amount);
        match &posting.currency {
            None => self.tag(0),
            Some(code) => {
                self.tag(1);
                self.str(code);
            }
        }
    }
}

/// Digest of one transaction command (its kind and every field).
pub fn request_digest(command: &TransactionCommand) -> Digest {
    let mut feed = Feed(Vec::with_capacity(256));
    feed.0.extend_from_slice(b"tally/request/v1");
    match command {
        TransactionCommand::Transaction(spec) => {
            feed.tag(1);
            feed.str(&spec.id);
            feed.u64(spec.postings.len() as u64);
            spec.postings.iter().for_each(|p| feed.posting(p));
            feed.option_i64(spec.effective_at);
            feed.str(&spec.description);
            feed.metadata(&spec.metadata);
            feed.tag(u8::from(spec.pending));
            feed.u64(spec.timeout_seconds);
        }
        TransactionCommand::PostPending(spec) => {
            feed.tag(2);
            feed.str(&spec.id);
            feed.str(&spec.pending_id);
            feed.u64(spec.amounts.len() as u64);
            spec.amounts.iter().for_each(|a| feed.decimal(a));
            feed.option_i64(spec.effective_at);
            feed.str(&spec.description);
            feed.metadata(&spec.metadata);
        }
        TransactionCommand::VoidPending(spec) => {
            feed.tag(3);
            feed.str(&spec.id);
            feed.str(&spec.pending_id);
            feed.str(&spec.reason);
        }
        TransactionCommand::Reverse(spec) => {
            feed.tag(4);
            feed.str(&spec.id);
            feed.str(&spec.transaction_id);
            feed.option_i64(spec.effective_at);
            feed.str(&spec.description);
            feed.metadata(&spec.metadata);
        }
    }
    *blake3::hash(&feed.0).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::command::{PostPendingSpec, TransactionSpec};
    use std::str::FromStr;

    fn hex(digest: Digest) -> String {
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Digests are stored in the journal and compared with a retry's after
    /// any restart or upgrade: their value is frozen here.
    #[test]
    fn digests_are_frozen() {
        let transaction = TransactionCommand::Transaction(TransactionSpec {
            id: "t-1".into(),
            postings: vec![
                PostingSpec {
                    account: "assets:cash".into(),
                    side: Side::Debit,
                    amount: Decimal::from_str("10.50").unwrap(),
                    currency: Some("USD".into()),
                },
                PostingSpec {
                    account: "revenue".into(),
                    side: Side::Credit,
                    amount: Decimal::from_str("10.5").unwrap(),
                    currency: None,
                },
            ],
            effective_at: Some(1_700_000_000_000_000_000),
            description: "lunch".into(),
            metadata: [("k".to_string(), "v".to_string())].into_iter().collect(),
            pending: true,
            timeout_seconds: 60,
        });
        let post = TransactionCommand::PostPending(PostPendingSpec {
            id: "p-1".into(),
            pending_id: "t-1".into(),
            amounts: vec![Decimal::from_str("1.000").unwrap()],
            effective_at: None,
            description: String::new(),
            metadata: Metadata::new(),
        });
        assert_eq!(
            hex(request_digest(&transaction)),
            "1e5e9d554789062b2b5efd06b973a66f88ea18118802ba0ab8532ec362ba73da"
        );
        assert_eq!(
            hex(request_digest(&post)),
            "28745b8f7473adf5970179a967d9c33e9f4b907d70ade7f78551088907913dce"
        );
    }
}
