//! A bounded, time-limited cache of identity-provider answers, keyed by a SHA-256 of the
//! token (tokens themselves are never stored or logged).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Default number of tokens remembered per identity provider.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The cache key of a token: its SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// The key of `token`.
    pub fn of(token: impl AsRef<[u8]>) -> Self {
        TokenKey(Sha256::digest(token.as_ref()).into())
    }

    /// The first 12 hex digits of the hash, to tell tokens apart in logs.
    pub fn short(&self) -> String {
        self.0[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What an identity provider said about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The token belongs to this user.
    User(String),
    /// The provider rejected the token; the problem detail to answer with.
    Rejected(String),
}

/// Answers remembered for a fixed time, at most `capacity` of them.
#[derive(Debug)]
pub struct IdentityCache<V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<TokenKey, (Instant, V)>>,
}

impl<V: Clone> IdentityCache<V> {
    /// A cache keeping answers for `ttl` (zero: nothing is cached).
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        IdentityCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The remembered answer for `key`, if it has not expired.
    pub fn get(&self, key: &TokenKey) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(key) {
            Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remember `value` for `key` for the cache's time to live.
    pub fn insert(&self, key: TokenKey, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            entries.retain(|_, (expires, _)| *expires > now);
            while entries.len() >= self.capacity {
                // Still full of live answers: forget the one closest to expiry.
                let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (expires, _))| *expires)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                entries.remove(&oldest);
            }
        }
        entries.insert(key, (now + self.ttl, value));
    }

    /// Number of remembered answers (expired ones included until they are noticed).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is remembered.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, (Instant, V)>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_tokens() {
        assert_eq!(TokenKey::of("a"), TokenKey::of(b"a"));
        assert_ne!(TokenKey::of("a"), TokenKey::of("b"));
        let short = TokenKey::of("secret").short();
        assert_eq!(short.len(), 12);
        assert!(!short.contains("secret"));
    }

    #[test]
    fn answers_expire() {
        let cache = IdentityCache::new(Duration::from_millis(50), 10);
        let key = TokenKey::of("t");
        cache.insert(key, Verdict::User("alice".into()));
        assert_eq!(cache.get(&key), Some(Verdict::User("alice".into())));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(cache.get(&key), None);
        assert!(cache.is_empty());
    }

    #[test]
    fn zero_ttl_caches_nothing() {
        let cache = IdentityCache::new(Duration::ZERO, 10);
        cache.insert(TokenKey::of("t"), 1);
        assert_eq!(cache.get(&TokenKey::of("t")), None);
    }

    #[test]
    fn size_is_bounded() {
        let cache = IdentityCache::new(Duration::from_secs(60), 3);
        for i in 0..10 {
            cache.insert(TokenKey::of(format!("t{i}")), i);
            assert!(cache.len() <= 3);
        }
        // The most recent answers are kept.
        assert_eq!(cache.get(&TokenKey::of("t9")), Some(9));
        assert_eq!(cache.get(&TokenKey::of("t0")), None);
    }
}
