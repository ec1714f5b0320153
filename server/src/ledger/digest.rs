//! The request digest: a blake3 hash over a request's content, so that a retry
//! can be told apart from a different request reusing an id.
//!
//! Every field is fed with a length or a tag, so no two different requests feed
//! the same bytes. Decimals are normalized first: `10.0` and `10` are one
//! amount.

use super::command::{PostingSpec, TransactionCommand};
use rust_decimal::Decimal;
use tally_core::entry::{Digest, Metadata, Side};

struct Feed(blake3::Hasher);

impl Feed {
    fn bytes(&mut self, bytes: &[u8]) {
        self.0.update(&(bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
    }
    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.0.update(&value.to_be_bytes());
    }
    fn tag(&mut self, tag: u8) {
        self.0.update(&[tag]);
    }
    fn decimal(&mut self, value: &Decimal) {
        self.str(&value.normalize().to_string());
    }
    fn option_i64(&mut self, value: Option<i64>) {
        match value {
            None => self.tag(0),
            Some(v) => {
                self.tag(1);
                self.0.update(&v.to_be_bytes());
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
    let mut feed = Feed(blake3::Hasher::new());
    feed.0.update(b"tally/request/v1");
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
    *feed.0.finalize().as_bytes()
}
