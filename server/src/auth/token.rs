//! API key tokens: `tly_<key id>_<secret>`.
//!
//! The key id (16 lowercase hex digits) is public: it names the key in the
//! journal and in logs. The secret (32 random bytes, 64 lowercase hex digits)
//! is shown once, at creation; the ledger keeps only
//! `blake3("tally/api-key/v1" || key id || secret)`. A 256-bit random secret
//! needs no slow password hash: there is nothing to guess.

use tally_core::entry::Digest;

const PREFIX: &str = "tly_";
const KEY_ID_HEX: usize = 16;
const SECRET_BYTES: usize = 32;
const HASH_CONTEXT: &[u8] = b"tally/api-key/v1";

/// A parsed token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    key_id: String,
    secret: [u8; SECRET_BYTES],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// A new random token.
    pub fn generate() -> Token {
        use rand_core::RngCore;
        let mut id = [0u8; KEY_ID_HEX / 2];
        let mut secret = [0u8; SECRET_BYTES];
        rand_core::OsRng.fill_bytes(&mut id);
        rand_core::OsRng.fill_bytes(&mut secret);
        Token {
            key_id: hex::encode(id),
            secret,
        }
    }

    /// Parses `tly_<16 hex>_<64 hex>` (lowercase only: one spelling per token).
    pub fn parse(text: &str) -> Result<Token, &'static str> {
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or("an api key starts with tly_")?;
        let (key_id, secret_hex) = rest
            .split_once('_')
            .ok_or("an api key is tly_<key id>_<secret>")?;
        let lower_hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if key_id.len() != KEY_ID_HEX || !lower_hex(key_id) {
            return Err("the key id of an api key is 16 lowercase hex digits");
        }
        if secret_hex.len() != SECRET_BYTES * 2 || !lower_hex(secret_hex) {
            return Err("the secret of an api key is 64 lowercase hex digits");
        }
        let mut secret = [0u8; SECRET_BYTES];
        hex::decode_to_slice(secret_hex, &mut secret)
            .map_err(|_| "the secret of an api key is 64 lowercase hex digits")?;
        Ok(Token {
            key_id: key_id.to_string(),
            secret,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// What the ledger stores instead of the secret.
    pub fn secret_hash(&self) -> Digest {
        let mut hasher = blake3::Hasher::new();
        hasher.update(HASH_CONTEXT);
        hasher.update(self.key_id.as_bytes());
        hasher.update(&self.secret);
        *hasher.finalize().as_bytes()
    }

    /// Whether this token's secret hashes to `stored`, compared in constant time.
    pub fn matches(&self, stored: &Digest) -> bool {
        blake3::Hash::from(self.secret_hash()) == blake3::Hash::from(*stored)
    }

    /// The token text, to show once.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}_{}", self.key_id, hex::encode(self.secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_round_trips_and_matches_only_its_hash() {
        let token = Token::generate();
        let text = token.reveal();
        assert_eq!(text.len(), 4 + 16 + 1 + 64);
        let parsed = Token::parse(&text).unwrap();
        assert_eq!(parsed, token);
        assert!(parsed.matches(&token.secret_hash()));
        assert!(!Token::generate().matches(&token.secret_hash()));
        assert!(
            !format!("{token:?}").contains(&text[21..]),
            "Debug hides the secret"
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = Token::generate().reveal();
        let cases = [
            String::new(),
            good.replacen("tly_", "tlx_", 1),
            good.to_uppercase(),
            good[..good.len() - 1].to_string(),
            format!("{good}0"),
            good.replacen('_', "-", 2),
            format!("tly_{}_{}", "g".repeat(16), "0".repeat(64)),
        ];
        for case in cases {
            assert!(Token::parse(&case).is_err(), "{case:?} was accepted");
        }
    }

    #[test]
    fn the_hash_is_the_documented_formula() {
        let text = format!("tly_{}_{}", "3f2a9c0d1e4b5a67", hex::encode([7u8; 32]));
        let token = Token::parse(&text).unwrap();
        let mut expected = b"tally/api-key/v1".to_vec();
        expected.extend_from_slice(b"3f2a9c0d1e4b5a67");
        expected.extend_from_slice(&[7u8; 32]);
        assert_eq!(token.secret_hash(), *blake3::hash(&expected).as_bytes());
    }
}
