//! Object metadata shared by every persisted kind, owner references and timestamps.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Metadata of every persisted resource: identity, labels, ownership and lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Metadata {
    /// Resource name; immutable.
    pub name: String,
    /// Namespace; `null` for global kinds.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Free labels, validated with the label rule.
    #[serde(default)]
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// A Cluster with this flag inherits its Cloud's labels.
    #[serde(default, deserialize_with = "crate::coercion::bool")]
    pub inherit_labels: bool,
    /// Finalizers blocking the final removal of the object.
    #[serde(default)]
    pub finalizers: Vec<String>,
    /// Server-generated UUID; read-only.
    #[serde(default)]
    pub uid: String,
    /// Creation time; read-only.
    #[serde(default)]
    pub created: Timestamp,
    /// Last spec modification time; read-only.
    #[serde(default)]
    pub modified: Timestamp,
    /// Deletion time; set by DELETE; read-only.
    #[serde(default)]
    pub deleted: Option<Timestamp>,
    /// Owners of the object, used by the garbage collector.
    #[serde(default)]
    pub owners: Vec<ResourceRef>,
    /// Extension: the storage modification revision of the object, as a string.
    /// Never stored; set on every object returned by the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

impl Metadata {
    /// Metadata with a name and everything else at its default.
    pub fn named(name: impl Into<String>) -> Self {
        Metadata {
            name: name.into(),
            namespace: None,
            labels: Default::default(),
            inherit_labels: false,
            finalizers: Vec::new(),
            uid: String::new(),
            created: Timestamp::default(),
            modified: Timestamp::default(),
            deleted: None,
            owners: Vec::new(),
            resource_version: None,
        }
    }
}

/// Reference to another resource (owner reference, binding target).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ResourceRef {
    /// API group of the referenced object.
    pub api: String,
    /// Namespace of the referenced object, `null` for global kinds.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Kind of the referenced object.
    pub kind: String,
    /// Name of the referenced object.
    pub name: String,
}

/// An ISO 8601 timestamp, rendered like Python's `datetime.isoformat()`.
///
/// A value keeps whether it carried an offset, because upstream echoes naive
/// client-supplied datetimes back without one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    local: NaiveDateTime,
    offset: Option<FixedOffset>,
}

impl Timestamp {
    /// The current time in UTC, with microsecond precision (as Python).
    pub fn now() -> Self {
        let now = Utc::now();
        let micros = now.timestamp_micros();
        let dt = DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or(now);
        Timestamp {
            local: dt.naive_utc(),
            offset: Some(FixedOffset::east_opt(0).expect("zero offset is valid")),
        }
    }

    /// The instant as UTC, treating naive values as UTC.
    pub fn to_utc(&self) -> DateTime<Utc> {
        match self.offset {
            Some(off) => (self.local - off).and_utc(),
            None => self.local.and_utc(),
        }
    }

    /// Parse the ISO 8601 forms accepted by upstream (`2026-11-21T09:02:37.560425+00:00`,
    /// `2026-11-21T09:02:37`, `...Z`, space instead of `T`).
    pub fn parse(s: &str) -> Option<Self> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(Timestamp {
                local: dt.naive_local(),
                offset: Some(*dt.offset()),
            });
        }
        for fmt in [
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%Y-%m-%d %H:%M:%S%.f%:z",
            "%Y-%m-%dT%H:%M%:z",
        ] {
            if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
                return Some(Timestamp {
                    local: dt.naive_local(),
                    offset: Some(*dt.offset()),
                });
            }
        }
        for fmt in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(local) = NaiveDateTime::parse_from_str(s, fmt) {
                return Some(Timestamp {
                    local,
                    offset: None,
                });
            }
        }
        None
    }
}

impl Default for Timestamp {
    fn default() -> Self {
        Timestamp {
            local: DateTime::<Utc>::UNIX_EPOCH.naive_utc(),
            offset: Some(FixedOffset::east_opt(0).expect("zero offset is valid")),
        }
    }
}

impl PartialOrd for Timestamp {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timestamp {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_utc().cmp(&other.to_utc())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::Timelike;
        if self.local.nanosecond() / 1000 == 0 {
            write!(f, "{}", self.local.format("%Y-%m-%dT%H:%M:%S"))?;
        } else {
            write!(
                f,
                "{}.{:06}",
                self.local.format("%Y-%m-%dT%H:%M:%S"),
                self.local.nanosecond() / 1000
            )?;
        }
        if let Some(off) = self.offset {
            let secs = off.local_minus_utc();
            let sign = if secs < 0 { '-' } else { '+' };
            let secs = secs.abs();
            write!(f, "{}{:02}:{:02}", sign, secs / 3600, (secs % 3600) / 60)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Non-strings are "Not a valid datetime." as upstream; null keeps serde's
        // "invalid type: null" (rendered "Field may not be null." by `decode`).
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => {
                Timestamp::parse(&s).ok_or_else(|| D::Error::custom("Not a valid datetime."))
            }
            serde_json::Value::Null => Err(D::Error::custom(crate::coercion::NULL_MSG)),
            _ => Err(D::Error::custom("Not a valid datetime.")),
        }
    }
}

impl JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "format": "date-time"})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_python_isoformat() {
        for s in [
            "2026-11-21T09:02:37.560425+00:00",
            "2026-11-21T09:02:37+00:00",
            "2026-11-21T09:02:37",
            "2026-11-21T11:02:37.000001+02:00",
        ] {
            assert_eq!(Timestamp::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            Timestamp::parse("2026-11-21T09:02:37Z")
                .unwrap()
                .to_string(),
            "2026-11-21T09:02:37+00:00"
        );
        assert!(Timestamp::parse("garbage").is_none());
        let err = serde_json::from_value::<Timestamp>(serde_json::json!(5)).unwrap_err();
        assert_eq!(err.to_string(), "Not a valid datetime.");
        let err = serde_json::from_value::<Timestamp>(serde_json::json!(null)).unwrap_err();
        assert_eq!(err.to_string(), crate::coercion::NULL_MSG);
        let ok: Option<Timestamp> = serde_json::from_value(serde_json::json!(null)).unwrap();
        assert!(ok.is_none());
    }

    #[test]
    fn now_is_utc_with_micros_and_ordered() {
        let a = Timestamp::now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Timestamp::now();
        assert!(b > a);
        assert!(a.to_string().ends_with("+00:00"));
    }
}
