//! Typed objects on top of the byte-level [`Store`]: the stored encoding of a Krake object,
//! listings of a kind's prefix, the server-side
//! fields of a new object, and conditional reads and writes with the retry upstream does
//! on concurrent writes.

use std::sync::Arc;

use krake_crds::{Resource, Timestamp};

use super::{KeyValue, Store, WriteOutcome};
use crate::error::Error;

/// A loaded object with the revision it was read at.
pub struct Loaded<R> {
    /// The object (with `resource_version` set).
    pub object: R,
    /// Its storage `mod_revision`.
    pub revision: i64,
}

/// Decode a stored value. Stored objects were validated when written, possibly by an
/// older upstream version: the required fields such a version did not know are served
/// with their defaults ([`krake_crds::decode_stored`]), and nothing is re-validated. A
/// value that still cannot be decoded is a server-side problem, not a client's.
pub fn decode_stored<R: Resource>(kv: &KeyValue) -> Result<R, Error> {
    let mut object: R = krake_crds::decode_stored(&kv.value).map_err(|e| Error::CorruptObject {
        key: kv.key.clone(),
        reason: e.to_string(),
    })?;
    object.metadata_mut().resource_version = Some(kv.mod_revision.to_string());
    Ok(object)
}

/// The bytes stored for an object: upstream's JSON, without the `resource_version`
/// extension (it is derived from the storage revision on every read).
pub fn encode_for_storage<R: Resource>(object: &mut R) -> Vec<u8> {
    let rv = object.metadata_mut().resource_version.take();
    let bytes = krake_crds::json::to_vec(object);
    object.metadata_mut().resource_version = rv;
    bytes
}

/// The objects of kind `R` in a listing of its prefix, with their keys. Keys that do not
/// match the kind's key template are skipped, as upstream does.
pub fn decode_listing<R: Resource>(
    kvs: &[KeyValue],
) -> impl Iterator<Item = (&str, Result<R, Error>)> {
    kvs.iter()
        .filter(|kv| R::parse_key(&kv.key).is_some())
        .map(|kv| (kv.key.as_str(), decode_stored::<R>(kv)))
}

/// Give a decoded create body its server-side fields: the namespace (always `None` for
/// global kinds, where upstream keeps whatever the client sent), a new `uid`, `created` =
/// `modified` = now, no `deleted`, and the initial status.
pub fn initialize_new<R: Resource>(object: &mut R, namespace: Option<String>) {
    let now = Timestamp::now();
    let meta = object.metadata_mut();
    meta.namespace = namespace;
    meta.uid = uuid::Uuid::new_v4().to_string();
    meta.created = now;
    meta.modified = now;
    meta.deleted = None;
    object.reset_status();
}

/// Typed, conditional access to the objects of a store.
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn Store>,
    retry_transactions: u32,
}

impl Objects {
    /// Objects in `store`; a conflicting concurrent write is retried up to
    /// `retry_transactions` times by [`Objects::retrying`].
    pub fn new(store: Arc<dyn Store>, retry_transactions: u32) -> Self {
        Objects {
            store,
            retry_transactions,
        }
    }

    /// Read one object, or `NotFound`.
    pub async fn load<R: Resource>(
        &self,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Loaded<R>, Error> {
        let key = R::key(namespace, name);
        match self.store.get(&key).await? {
            Some(kv) => Ok(Loaded {
                object: decode_stored::<R>(&kv)?,
                revision: kv.mod_revision,
            }),
            None => Err(Error::NotFound {
                kind: R::KIND,
                name: name.to_string(),
                namespace: namespace.map(str::to_string),
            }),
        }
    }

    /// Conditionally overwrite an object read at `revision`; returns the new revision,
    /// or `None` on a conflicting concurrent write.
    pub async fn write<R: Resource>(
        &self,
        object: &mut R,
        revision: i64,
    ) -> Result<Option<i64>, Error> {
        let key = R::key(
            object.metadata().namespace.as_deref(),
            &object.metadata().name,
        );
        let value = encode_for_storage(object);
        match self.store.update(&key, value, revision).await? {
            WriteOutcome::Written(rev) => {
                object.metadata_mut().resource_version = Some(rev.to_string());
                Ok(Some(rev))
            }
            WriteOutcome::Conflict => Ok(None),
        }
    }

    /// Conditionally remove an object read at `revision`; `None` on conflict.
    pub async fn remove<R: Resource>(
        &self,
        object: &R,
        revision: i64,
    ) -> Result<Option<i64>, Error> {
        let key = R::key(
            object.metadata().namespace.as_deref(),
            &object.metadata().name,
        );
        match self.store.delete(&key, revision).await? {
            WriteOutcome::Written(rev) => Ok(Some(rev)),
            WriteOutcome::Conflict => Ok(None),
        }
    }

    /// Run `attempt` until it does not hit a conflicting concurrent write, at most
    /// `1 + retry_transactions` times (upstream re-runs the whole handler on conflicts).
    pub async fn retrying<T, F, Fut>(&self, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>, Error>>,
    {
        for _ in 0..=self.retry_transactions {
            if let Some(done) = attempt().await? {
                return Ok(done);
            }
        }
        Err(Error::Transaction("Concurrent writes to database".into()))
    }
}
