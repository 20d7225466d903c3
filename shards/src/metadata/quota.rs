//! Client quotas as Kafka has them (KIP-13, KIP-55, KIP-124): byte rates
//! and a request-time percentage set on a user, a client id, or both, each
//! named or the default. Pure data and rules: which entity's quota applies
//! to a client (KIP-55's precedence), AlterClientQuotas' checks and
//! DescribeClientQuotas' filters. Enforcement is `crate::throttle`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kafka's entity types.
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";

/// One part of an entity: the default of its type, or a name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntityName {
    Default,
    Name(String),
}

impl EntityName {
    /// Kafka's wire form: a null name is the default.
    pub fn from_wire(name: Option<&str>) -> EntityName {
        name.map_or(EntityName::Default, |n| EntityName::Name(n.to_string()))
    }

    pub fn to_wire(&self) -> Option<&str> {
        match self {
            EntityName::Default => None,
            EntityName::Name(name) => Some(name),
        }
    }
}

/// What a quota is set on: a user, a client id, or a user's client id;
/// never neither.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuotaEntity {
    pub user: Option<EntityName>,
    pub client_id: Option<EntityName>,
}

/// The quota keys Weir knows (Kafka's `QuotaConfigs` for users and client
/// ids, without `controller_mutation_rate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum QuotaKey {
    /// Bytes per second of produce requests (`producer_byte_rate`).
    ProducerByteRate,
    /// Bytes per second of fetch responses (`consumer_byte_rate`).
    ConsumerByteRate,
    /// Percentage of one thread's time spent on the client's requests
    /// (`request_percentage`).
    RequestPercentage,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 3] =
        [QuotaKey::ProducerByteRate, QuotaKey::ConsumerByteRate, QuotaKey::RequestPercentage];

    pub fn name(self) -> &'static str {
        match self {
            QuotaKey::ProducerByteRate => "producer_byte_rate",
            QuotaKey::ConsumerByteRate => "consumer_byte_rate",
            QuotaKey::RequestPercentage => "request_percentage",
        }
    }

    pub fn from_name(name: &str) -> Option<QuotaKey> {
        QuotaKey::ALL.into_iter().find(|key| key.name() == name)
    }

    /// The byte rates are LONG configs in Kafka: whole numbers only.
    fn integral(self) -> bool {
        self != QuotaKey::RequestPercentage
    }
}

/// The quotas set on one entity.
pub type Quotas = BTreeMap<QuotaKey, f64>;

/// An entity's quotas, as the metadata image keeps them (a list, sorted by
/// entity: neither TOML nor JSON takes a struct as a map key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientQuota {
    pub entity: QuotaEntity,
    pub quotas: Quotas,
}

/// Every entity's quotas, sorted by entity, none empty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientQuotas(Vec<ClientQuota>);

/// Who the quota of a client is counted for: the entity the quota came from
/// with its defaults replaced by the client's names, so that clients under
/// one `user` quota share one rate and clients under a default client-id
/// quota each have their own (Kafka's quota metric tags).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SensorKey {
    pub user: Option<String>,
    pub client_id: Option<String>,
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ClientQuota> {
        self.0.iter()
    }

    pub fn get(&self, entity: &QuotaEntity) -> Option<&Quotas> {
        let found = self.0.binary_search_by(|q| q.entity.cmp(entity)).ok()?;
        Some(&self.0[found].quotas)
    }

    /// Replaces an entity's quotas; empty removes the entity.
    pub fn set(&mut self, entity: QuotaEntity, quotas: Quotas) {
        match (self.0.binary_search_by(|q| q.entity.cmp(&entity)), quotas.is_empty()) {
            (Ok(at), true) => {
                self.0.remove(at);
            }
            (Ok(at), false) => self.0[at].quotas = quotas,
            (Err(_), true) => {}
            (Err(at), false) => self.0.insert(at, ClientQuota { entity, quotas }),
        }
    }

    /// The quota of `key` for a client of `user` with `client_id`, from the
    /// first entity in KIP-55's order that sets it: user and client id,
    /// user and default client id, user, default user and client id,
    /// default user and default client id, default user, client id, default
    /// client id. With the key its rate is counted under.
    pub fn quota_for(&self, user: &str, client_id: &str, key: QuotaKey) -> Option<(f64, SensorKey)> {
        use EntityName::{Default, Name};
        let (user_name, client_name) = (|| Name(user.to_string()), || Name(client_id.to_string()));
        let order = [
            (Some(user_name()), Some(client_name())),
            (Some(user_name()), Some(Default)),
            (Some(user_name()), None),
            (Some(Default), Some(client_name())),
            (Some(Default), Some(Default)),
            (Some(Default), None),
            (None, Some(client_name())),
            (None, Some(Default)),
        ];
        order.into_iter().find_map(|(user_part, client_part)| {
            let entity = QuotaEntity { user: user_part, client_id: client_part };
            let quota = *self.get(&entity)?.get(&key)?;
            let sensor = SensorKey {
                user: entity.user.map(|_| user.to_string()),
                client_id: entity.client_id.map(|_| client_id.to_string()),
            };
            Some((quota, sensor))
        })
    }
}

/// One change of AlterClientQuotas: set `key` to `value`, or remove it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuotaOp {
    pub key: QuotaKey,
    /// `None` removes the key.
    pub value: Option<f64>,
}

/// One entity's changes, checked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    pub ops: Vec<QuotaOp>,
}

/// Why AlterClientQuotas or DescribeClientQuotas refuses: Kafka's error
/// (INVALID_REQUEST or UNSUPPORTED_VERSION) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaRefusal {
    pub unsupported: bool,
    pub message: String,
}

impl QuotaRefusal {
    fn invalid(message: impl Into<String>) -> QuotaRefusal {
        QuotaRefusal { unsupported: false, message: message.into() }
    }
}

/// An entity of AlterClientQuotas, as (type, name) pairs, checked as
/// Kafka's controller checks it (`ClientQuotaControlManager.validateEntity`).
/// `ip` entities (`connection_creation_rate`) are not served.
pub fn entity_from_wire<'a>(
    parts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<QuotaEntity, QuotaRefusal> {
    let mut entity = QuotaEntity { user: None, client_id: None };
    let mut empty = true;
    for (entity_type, name) in parts {
        empty = false;
        let slot = match entity_type {
            USER => &mut entity.user,
            CLIENT_ID => &mut entity.client_id,
            _ => {
                return Err(QuotaRefusal {
                    unsupported: true,
                    message: format!("Unhandled client quota entity type: {entity_type}"),
                })
            }
        };
        if slot.is_some() {
            return Err(QuotaRefusal::invalid(format!(
                "Invalid empty client quota entity, duplicate entity entry {entity_type}"
            )));
        }
        if name == Some("") {
            return Err(QuotaRefusal::invalid(format!("Empty {entity_type} not supported")));
        }
        *slot = Some(EntityName::from_wire(name));
    }
    if empty {
        return Err(QuotaRefusal::invalid("Invalid empty client quota entity"));
    }
    Ok(entity)
}

/// One op of AlterClientQuotas, checked as Kafka checks it
/// (`validateQuotaKeyValue`): a known key, and a value above zero, whole
/// for the byte rates. A removal's value is not looked at.
pub fn op_from_wire(key: &str, value: f64, remove: bool) -> Result<QuotaOp, QuotaRefusal> {
    let Some(quota_key) = QuotaKey::from_name(key) else {
        return Err(QuotaRefusal::invalid(format!("Invalid configuration key {key}")));
    };
    if remove {
        return Ok(QuotaOp { key: quota_key, value: None });
    }
    if value.is_nan() || value <= 0.0 {
        return Err(QuotaRefusal::invalid(format!("Quota {key} must be greater than 0")));
    }
    if quota_key.integral() && (value.fract() != 0.0 || value > i64::MAX as f64) {
        return Err(QuotaRefusal::invalid(format!("Value for key {key} must be an integer")));
    }
    Ok(QuotaOp { key: quota_key, value: Some(value) })
}

impl QuotaAlteration {
    /// The entity's quotas after the ops, from `current`.
    pub fn applied_to(&self, current: Option<&Quotas>) -> Quotas {
        let mut quotas = current.cloned().unwrap_or_default();
        for op in &self.ops {
            match op.value {
                Some(value) => quotas.insert(op.key, value),
                None => quotas.remove(&op.key),
            };
        }
        quotas
    }
}

/// How a DescribeClientQuotas component matches an entity type's part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartMatch {
    /// Exactly this name, or the default.
    Exact(EntityName),
    /// Any part of the type, named or the default (as Kafka's KRaft image).
    Any,
}

/// A DescribeClientQuotas filter (Kafka's `ClientQuotaFilter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaFilter {
    pub user: Option<PartMatch>,
    pub client_id: Option<PartMatch>,
    /// Only entities with exactly the filtered types.
    pub strict: bool,
}

/// Kafka's match types on the wire.
const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_SPECIFIED: i8 = 2;

impl QuotaFilter {
    /// The filter of DescribeClientQuotas' components, (type, match type,
    /// name), checked as Kafka's `ClientQuotasImage.describe` does.
    pub fn from_wire<'a>(
        components: impl IntoIterator<Item = (&'a str, i8, Option<&'a str>)>,
        strict: bool,
    ) -> Result<QuotaFilter, QuotaRefusal> {
        let mut filter = QuotaFilter { user: None, client_id: None, strict };
        for (entity_type, match_type, name) in components {
            let slot = match entity_type {
                "" => return Err(QuotaRefusal::invalid("Invalid empty entity type.")),
                USER => &mut filter.user,
                CLIENT_ID => &mut filter.client_id,
                _ => {
                    return Err(QuotaRefusal {
                        unsupported: true,
                        message: format!("Unknown entity type {entity_type}"),
                    })
                }
            };
            if slot.is_some() {
                return Err(QuotaRefusal::invalid(format!(
                    "Entity type {entity_type} cannot appear more than once in the filter."
                )));
            }
            *slot = Some(match match_type {
                MATCH_EXACT => PartMatch::Exact(EntityName::from_wire(name)),
                MATCH_DEFAULT => PartMatch::Exact(EntityName::Default),
                MATCH_SPECIFIED => PartMatch::Any,
                other => return Err(QuotaRefusal::invalid(format!("Unexpected match type: {other}"))),
            });
        }
        Ok(filter)
    }

    pub fn matches(&self, entity: &QuotaEntity) -> bool {
        let part_matches = |wanted: &Option<PartMatch>, part: &Option<EntityName>| match (wanted, part) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(PartMatch::Any), Some(_)) => true,
            (Some(PartMatch::Exact(name)), Some(part)) => name == part,
        };
        let types = |a: bool, b: bool| a as usize + b as usize;
        let same_types = types(self.user.is_some(), self.client_id.is_some())
            == types(entity.user.is_some(), entity.client_id.is_some());
        (!self.strict || same_types)
            && part_matches(&self.user, &entity.user)
            && part_matches(&self.client_id, &entity.client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EntityName::{Default, Name};

    fn name(n: &str) -> Option<EntityName> {
        Some(Name(n.to_string()))
    }

    fn with(entries: &[(Option<EntityName>, Option<EntityName>, f64)]) -> ClientQuotas {
        let mut quotas = ClientQuotas::default();
        for (user, client_id, rate) in entries {
            let entity = QuotaEntity { user: user.clone(), client_id: client_id.clone() };
            quotas.set(entity, Quotas::from([(QuotaKey::ProducerByteRate, *rate)]));
        }
        quotas
    }

    #[test]
    fn the_most_specific_entity_wins_in_kip_55_order() {
        // Each entity of KIP-55's table with its rank as the rate, most specific first.
        let ranked = [
            (name("u"), name("c")),
            (name("u"), Some(Default)),
            (name("u"), None),
            (Some(Default), name("c")),
            (Some(Default), Some(Default)),
            (Some(Default), None),
            (None, name("c")),
            (None, Some(Default)),
        ];
        // Removing the best one at a time, the next one in the order applies.
        for best in 0..ranked.len() {
            let entries: Vec<_> =
                ranked[best..].iter().zip(best..).map(|((u, c), r)| (u.clone(), c.clone(), r as f64)).collect();
            let (rate, _) = with(&entries).quota_for("u", "c", QuotaKey::ProducerByteRate).unwrap();
            assert_eq!(rate, best as f64, "with entities {best}.. set");
        }
        assert_eq!(with(&[]).quota_for("u", "c", QuotaKey::ProducerByteRate), None);
    }

    #[test]
    fn other_names_and_other_keys_do_not_apply() {
        let quotas = with(&[(name("other"), None, 1.0), (None, name("other"), 2.0)]);
        assert_eq!(quotas.quota_for("u", "c", QuotaKey::ProducerByteRate), None);
        let quotas = with(&[(name("u"), None, 1.0)]);
        assert_eq!(quotas.quota_for("u", "c", QuotaKey::ConsumerByteRate), None);
    }

    #[test]
    fn each_key_takes_its_own_most_specific_entity() {
        let mut quotas = with(&[(None, Some(Default), 10.0)]);
        let user = QuotaEntity { user: name("u"), client_id: None };
        quotas.set(user, Quotas::from([(QuotaKey::ConsumerByteRate, 5.0)]));
        assert_eq!(quotas.quota_for("u", "c", QuotaKey::ProducerByteRate).unwrap().0, 10.0);
        assert_eq!(quotas.quota_for("u", "c", QuotaKey::ConsumerByteRate).unwrap().0, 5.0);
    }

    #[test]
    fn a_default_is_counted_per_name_a_named_user_for_all_its_clients() {
        let per_client = with(&[(None, Some(Default), 1.0)]).quota_for("u", "c", QuotaKey::ProducerByteRate);
        assert_eq!(per_client.unwrap().1, SensorKey { user: None, client_id: Some("c".into()) });
        let per_user = with(&[(name("u"), None, 1.0)]).quota_for("u", "c", QuotaKey::ProducerByteRate);
        assert_eq!(per_user.unwrap().1, SensorKey { user: Some("u".into()), client_id: None });
        let both = with(&[(Some(Default), Some(Default), 1.0)]).quota_for("u", "c", QuotaKey::ProducerByteRate);
        assert_eq!(both.unwrap().1, SensorKey { user: Some("u".into()), client_id: Some("c".into()) });
    }

    #[test]
    fn setting_nothing_removes_the_entity() {
        let mut quotas = with(&[(name("u"), None, 1.0), (None, name("c"), 2.0)]);
        quotas.set(QuotaEntity { user: name("u"), client_id: None }, Quotas::new());
        assert_eq!(quotas.iter().count(), 1);
        assert_eq!(quotas.quota_for("u", "x", QuotaKey::ProducerByteRate), None);
    }

    #[test]
    fn alterations_are_checked_as_kafka_checks_them() {
        assert!(op_from_wire("producer_byte_rate", 1024.0, false).is_ok());
        assert!(op_from_wire("request_percentage", 12.5, false).is_ok());
        for (key, value) in [("producer_byte_rate", 0.0), ("consumer_byte_rate", -5.0), ("producer_byte_rate", 1.5)] {
            let refusal = op_from_wire(key, value, false).unwrap_err();
            assert!(!refusal.unsupported, "{key}={value}");
        }
        assert_eq!(op_from_wire("bogus", 1.0, false).unwrap_err().message, "Invalid configuration key bogus");
        // A removal's value does not matter.
        assert_eq!(op_from_wire("producer_byte_rate", -1.0, true).unwrap().value, None);

        assert!(entity_from_wire([]).is_err());
        assert!(entity_from_wire([(USER, Some("a")), (USER, Some("b"))]).is_err());
        assert!(entity_from_wire([(USER, Some(""))]).is_err());
        assert!(entity_from_wire([("ip", Some("1.2.3.4"))]).unwrap_err().unsupported);
        let entity = entity_from_wire([(USER, None), (CLIENT_ID, Some("c"))]).unwrap();
        assert_eq!(entity, QuotaEntity { user: Some(Default), client_id: name("c") });
    }

    #[test]
    fn filters_match_as_kafkas_image_does() {
        let entities = [
            QuotaEntity { user: name("u"), client_id: None },
            QuotaEntity { user: Some(Default), client_id: None },
            QuotaEntity { user: name("u"), client_id: name("c") },
            QuotaEntity { user: None, client_id: name("c") },
        ];
        let matched = |components: &[(&str, i8, Option<&str>)], strict| {
            let filter = QuotaFilter::from_wire(components.iter().copied(), strict).unwrap();
            entities.iter().map(|e| filter.matches(e)).collect::<Vec<_>>()
        };
        assert_eq!(matched(&[], false), [true; 4]);
        assert_eq!(matched(&[], true), [false; 4]);
        assert_eq!(matched(&[(USER, MATCH_EXACT, Some("u"))], false), [true, false, true, false]);
        assert_eq!(matched(&[(USER, MATCH_EXACT, Some("u"))], true), [true, false, false, false]);
        assert_eq!(matched(&[(USER, MATCH_DEFAULT, None)], false), [false, true, false, false]);
        assert_eq!(matched(&[(USER, MATCH_SPECIFIED, None)], true), [true, true, false, false]);
        assert_eq!(matched(&[(CLIENT_ID, MATCH_SPECIFIED, None)], false), [false, false, true, true]);

        let refused = |components: &[(&str, i8, Option<&str>)]| {
            QuotaFilter::from_wire(components.iter().copied(), false).unwrap_err()
        };
        assert!(refused(&[("ip", MATCH_EXACT, None)]).unsupported);
        assert!(!refused(&[("", MATCH_EXACT, None)]).unsupported);
        assert!(!refused(&[(USER, MATCH_EXACT, None), (USER, MATCH_DEFAULT, None)]).unsupported);
        assert!(!refused(&[(USER, 7, None)]).unsupported);
    }
}
