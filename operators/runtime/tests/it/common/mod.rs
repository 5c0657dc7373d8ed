//! An in-memory fake of one kind of the Krake API (list with revision, watch with replay,
//! compaction → 410, disconnections, list failures), for tests with a paused clock.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use krake_client::{Error, ObjectList, WatchEvent};
use krake_crds::Resource;
use krake_crds::core::Role;
use krake_runtime::Source;
use tokio::sync::mpsc;

struct Inner<R> {
    revision: i64,
    objects: BTreeMap<String, R>,
    history: Vec<(i64, WatchEvent<R>)>,
    /// Watches from a revision below this are answered with 410.
    oldest: i64,
    watchers: Vec<mpsc::UnboundedSender<Result<WatchEvent<R>, Error>>>,
    list_failures: u32,
    calls: Vec<String>,
}

/// The fake API; clones share it.
pub struct FakeApi<R> {
    inner: Arc<Mutex<Inner<R>>>,
}

impl<R> Clone for FakeApi<R> {
    fn clone(&self) -> Self {
        FakeApi {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Resource> Default for FakeApi<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Resource> FakeApi<R> {
    pub fn new() -> Self {
        FakeApi {
            inner: Arc::new(Mutex::new(Inner {
                revision: 1,
                objects: BTreeMap::new(),
                history: Vec::new(),
                oldest: 0,
                watchers: Vec::new(),
                list_failures: 0,
                calls: Vec::new(),
            })),
        }
    }

    fn publish(inner: &mut Inner<R>, event: WatchEvent<R>) {
        inner.history.push((inner.revision, event.clone()));
        inner.watchers.retain(|w| w.send(Ok(event.clone())).is_ok());
    }

    /// Create or replace an object; returns its new revision.
    pub fn put(&self, mut obj: R) -> i64 {
        let mut inner = self.inner.lock().unwrap();
        inner.revision += 1;
        let rev = inner.revision;
        obj.metadata_mut().resource_version = Some(rev.to_string());
        let name = obj.metadata().name.clone();
        let event = if inner.objects.insert(name, obj.clone()).is_some() {
            WatchEvent::Modified(obj)
        } else {
            WatchEvent::Added(obj)
        };
        Self::publish(&mut inner, event);
        rev
    }

    /// Change an object without telling any watcher (a lost event).
    pub fn put_silently(&self, mut obj: R) {
        let mut inner = self.inner.lock().unwrap();
        inner.revision += 1;
        obj.metadata_mut().resource_version = Some(inner.revision.to_string());
        let name = obj.metadata().name.clone();
        inner.objects.insert(name, obj);
    }

    /// Remove an object.
    pub fn remove(&self, name: &str) {
        let mut inner = self.inner.lock().unwrap();
        let Some(mut obj) = inner.objects.remove(name) else {
            return;
        };
        inner.revision += 1;
        obj.metadata_mut().resource_version = Some(inner.revision.to_string());
        Self::publish(&mut inner, WatchEvent::Deleted(obj));
    }

    /// The stored object.
    pub fn get(&self, name: &str) -> Option<R> {
        self.inner.lock().unwrap().objects.get(name).cloned()
    }

    /// Forget the history: resuming from any earlier revision gives 410.
    pub fn compact(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.history.clear();
        inner.oldest = inner.revision;
    }

    /// End every open watch stream.
    pub fn disconnect_watchers(&self) {
        self.inner.lock().unwrap().watchers.clear();
    }

    /// Make the next `n` lists fail.
    pub fn fail_lists(&self, n: u32) {
        self.inner.lock().unwrap().list_failures = n;
    }

    /// The calls received so far: `list`, `watch <rv>`.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn revision(&self) -> i64 {
        self.inner.lock().unwrap().revision
    }
}

impl<R: Resource> Source<R> for FakeApi<R> {
    fn list(&self) -> BoxFuture<'static, Result<ObjectList<R>, Error>> {
        let mut inner = self.inner.lock().unwrap();
        inner.calls.push("list".into());
        let result = if inner.list_failures > 0 {
            inner.list_failures -= 1;
            Err(Error::Transport("connection refused".into()))
        } else {
            Ok(ObjectList {
                items: inner.objects.values().cloned().collect(),
                resource_version: Some(inner.revision.to_string()),
            })
        };
        Box::pin(async move { result })
    }

    fn watch(
        &self,
        resource_version: Option<&str>,
    ) -> BoxStream<'static, Result<WatchEvent<R>, Error>> {
        let mut inner = self.inner.lock().unwrap();
        inner
            .calls
            .push(format!("watch {}", resource_version.unwrap_or("-")));
        let after: i64 = resource_version
            .map(|rv| rv.parse().unwrap())
            .unwrap_or(inner.revision);
        if after < inner.oldest {
            return stream::once(async {
                Err(Error::Gone {
                    detail: "too old".into(),
                })
            })
            .boxed();
        }
        let replay: Vec<Result<WatchEvent<R>, Error>> = inner
            .history
            .iter()
            .filter(|(rev, _)| *rev > after)
            .map(|(_, e)| Ok(e.clone()))
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        inner.watchers.push(tx);
        let live = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) });
        stream::iter(replay).chain(live).boxed()
    }
}

/// A role named `name` with one label.
pub fn role(name: &str, label: &str) -> Role {
    let mut meta = krake_crds::Metadata::named(name);
    meta.labels
        .insert("v".into(), serde_json::Value::String(label.into()));
    Role::new(meta, vec![])
}
