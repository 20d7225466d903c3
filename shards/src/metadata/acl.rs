//! ACLs with Kafka's semantics (its `StandardAuthorizer`): a binding allows
//! or denies one principal, from one host, one operation on the resources a
//! pattern names. DENY wins over ALLOW; an operation is allowed by itself,
//! by ALL, or by one that implies it (READ, WRITE, DELETE and ALTER imply
//! DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS). A resource no binding
//! names is allowed to everyone only with `allow_everyone_if_no_acl_found`.
//! The numbers are Kafka's wire codes.

use serde::{Deserialize, Serialize};

/// Kafka's `ResourceType` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
}

/// Kafka's `PatternType` codes for a binding (filters add ANY and MATCH).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PatternType {
    Literal = 3,
    Prefixed = 4,
}

/// Kafka's `AclOperation` codes (ANY, 1, only in filters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Operation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
}

/// Kafka's `AclPermissionType` codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    Deny = 2,
    Allow = 3,
}

/// The one name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// A LITERAL name or a principal that matches every one.
pub const WILDCARD: &str = "*";
const WILDCARD_PRINCIPAL: &str = "User:*";

/// The filter code for "any" (resource type, pattern type, operation,
/// permission), and MATCH: the patterns that apply to a name.
pub const ANY: i8 = 1;
pub const MATCH: i8 = 2;

impl ResourceType {
    pub fn from_code(code: i8) -> Option<Self> {
        [Self::Topic, Self::Group, Self::Cluster, Self::TransactionalId].into_iter().find(|t| *t as i8 == code)
    }

    /// The operations Kafka defines on this resource type, the bits of
    /// `authorized_operations` (Kafka's `AclEntry.supportedOperations`).
    pub fn operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            Self::Topic => &[Read, Write, Create, Delete, Alter, Describe, DescribeConfigs, AlterConfigs],
            Self::Group => &[Read, Describe, Delete],
            Self::Cluster => &[Create, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite],
            Self::TransactionalId => &[Describe, Write],
        }
    }
}

impl PatternType {
    pub fn from_code(code: i8) -> Option<Self> {
        [Self::Literal, Self::Prefixed].into_iter().find(|t| *t as i8 == code)
    }
}

impl Operation {
    pub const EVERY: [Operation; 11] = [
        Self::All,
        Self::Read,
        Self::Write,
        Self::Create,
        Self::Delete,
        Self::Alter,
        Self::Describe,
        Self::ClusterAction,
        Self::DescribeConfigs,
        Self::AlterConfigs,
        Self::IdempotentWrite,
    ];

    pub fn from_code(code: i8) -> Option<Self> {
        Self::EVERY.into_iter().find(|o| *o as i8 == code)
    }

    /// Kafka's name (`kafka-acls.sh --operation`): `Read`, `IdempotentWrite`.
    pub fn from_name(name: &str) -> Option<Self> {
        let squashed: String = name.chars().filter(|c| *c != '_').collect();
        Self::EVERY.into_iter().find(|o| format!("{o:?}").eq_ignore_ascii_case(&squashed))
    }

    /// Whether an ALLOW of `self` allows `wanted`.
    fn allows(self, wanted: Operation) -> bool {
        use Operation::*;
        self == All
            || self == wanted
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

impl Permission {
    pub fn from_code(code: i8) -> Option<Self> {
        [Self::Deny, Self::Allow].into_iter().find(|p| *p as i8 == code)
    }
}

/// One ACL: `permission` for `principal` from `host` to do `operation` on
/// the resources of `resource_type` that `name` and `pattern` name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub name: String,
    pub pattern: PatternType,
    /// `User:<name>`, or `User:*` for every principal.
    pub principal: String,
    /// An IP address, or `*` for every host.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Kafka's checks of a binding to create (its `AclControlManager`); the
    /// reason for INVALID_REQUEST otherwise.
    pub fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("Resource name should not be empty".into());
        }
        if self.resource_type == ResourceType::Cluster && self.name != CLUSTER_NAME {
            return Err(format!("The only valid name for the CLUSTER resource is {CLUSTER_NAME}"));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(format!("Could not parse principal from `{}`", self.principal)),
        }
        if self.host.is_empty() {
            return Err("Invalid host: an IP address or *".into());
        }
        Ok(())
    }

    /// Whether this binding's pattern names `name` (of its resource type).
    fn names(&self, name: &str) -> bool {
        match self.pattern {
            PatternType::Literal => self.name == name || self.name == WILDCARD,
            PatternType::Prefixed => name.starts_with(&self.name),
        }
    }
}

/// ACLs to create (CreateAcls) or remove (DeleteAcls, the bindings its
/// filters matched), through the controller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclChange {
    Create(Vec<AclBinding>),
    Remove(Vec<AclBinding>),
}

impl AclChange {
    pub fn acls(&self) -> &[AclBinding] {
        match self {
            AclChange::Create(acls) | AclChange::Remove(acls) => acls,
        }
    }
}

/// A DescribeAcls or DeleteAcls filter, as the request codes it: `None`
/// names match anything; the codes may be ANY (and MATCH for the pattern).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub name: Option<String>,
    pub pattern: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

impl AclFilter {
    /// Kafka's `AclBindingFilter.matches`.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let code = |filter: i8, value: i8| filter == ANY || filter == value;
        let text = |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        code(self.resource_type, acl.resource_type as i8)
            && self.pattern_matches(acl)
            && text(&self.principal, &acl.principal)
            && text(&self.host, &acl.host)
            && code(self.operation, acl.operation as i8)
            && code(self.permission, acl.permission as i8)
    }

    /// Kafka's `ResourcePatternFilter.matches`: MATCH takes every pattern
    /// that applies to the name, the others the pattern as written.
    fn pattern_matches(&self, acl: &AclBinding) -> bool {
        if self.pattern != ANY && self.pattern != MATCH && self.pattern != acl.pattern as i8 {
            return false;
        }
        match &self.name {
            None => true,
            Some(name) if self.pattern == MATCH => acl.names(name),
            Some(name) => *name == acl.name,
        }
    }

    /// Kafka's checks of a filter before use; the reason for
    /// INVALID_REQUEST otherwise (unknown codes).
    pub fn check(&self) -> Result<(), String> {
        let known = |code: i8, valid: bool| code == ANY || valid;
        if !known(self.resource_type, ResourceType::from_code(self.resource_type).is_some())
            || !known(self.pattern, self.pattern == MATCH || PatternType::from_code(self.pattern).is_some())
            || !known(self.operation, Operation::from_code(self.operation).is_some())
            || !known(self.permission, Permission::from_code(self.permission).is_some())
        {
            return Err("The filter has an unknown resource, pattern, operation or permission type".into());
        }
        Ok(())
    }
}

/// Who asks: a principal (`User:alice`) from a host (an IP address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    pub principal: String,
    pub host: String,
}

/// Whether `requester` may do `operation` on the resource `name` of
/// `resource_type` by `acls` alone (super users and a disabled authorizer
/// are the caller's): a DENY that applies refuses; otherwise an ALLOW
/// that applies allows; a resource no binding names is allowed only with
/// `allow_if_none`.
pub fn authorize<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding>,
    requester: &Requester,
    operation: Operation,
    resource_type: ResourceType,
    name: &str,
    allow_if_none: bool,
) -> bool {
    let mut named = acls.into_iter().filter(|acl| acl.resource_type == resource_type && acl.names(name)).peekable();
    if named.peek().is_none() {
        return allow_if_none;
    }
    let mut allowed = false;
    for acl in named {
        let principal = acl.principal == requester.principal || acl.principal == WILDCARD_PRINCIPAL;
        let host = acl.host == requester.host || acl.host == WILDCARD;
        if !(principal && host) {
            continue;
        }
        match acl.permission {
            Permission::Deny if acl.operation == operation || acl.operation == Operation::All => return false,
            Permission::Deny => {}
            Permission::Allow => allowed |= acl.operation.allows(operation),
        }
    }
    allowed
}

/// Whether `requester` may do `operation` on some resource of
/// `resource_type` (Kafka's `authorizeByResourceType`, used for an
/// idempotent producer's WRITE on any topic): an ALLOW for it that no DENY
/// overrides on the name it allows.
pub fn authorize_any<'a>(
    acls: impl IntoIterator<Item = &'a AclBinding> + Clone,
    requester: &Requester,
    operation: Operation,
    resource_type: ResourceType,
) -> bool {
    let applies = |acl: &AclBinding| {
        (acl.principal == requester.principal || acl.principal == WILDCARD_PRINCIPAL)
            && (acl.host == requester.host || acl.host == WILDCARD)
    };
    acls.clone()
        .into_iter()
        .filter(|acl| acl.resource_type == resource_type && acl.permission == Permission::Allow)
        .filter(|acl| applies(acl) && acl.operation.allows(operation))
        .any(|acl| authorize(acls.clone(), requester, operation, resource_type, &acl.name, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        pattern: PatternType,
        name: &str,
        principal: &str,
        operation: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: "*".into(),
            operation,
            permission,
        }
    }

    fn alice() -> Requester {
        Requester { principal: "User:alice".into(), host: "127.0.0.1".into() }
    }

    fn may(acls: &[AclBinding], operation: Operation, topic: &str) -> bool {
        authorize(acls, &alice(), operation, ResourceType::Topic, topic, false)
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;

    #[test]
    fn operations_imply_describe_and_all_covers_everything() {
        for op in [Read, Write, Delete, Alter] {
            let acls = [acl(Literal, "t", "User:alice", op, Allow)];
            assert!(may(&acls, Describe, "t") && may(&acls, op, "t"), "{op:?}");
            assert!(!may(&acls, Create, "t"), "{op:?} allowed Create");
        }
        let configs = [acl(Literal, "t", "User:alice", AlterConfigs, Allow)];
        assert!(may(&configs, DescribeConfigs, "t") && !may(&configs, Describe, "t"));
        let all = [acl(Literal, "t", "User:alice", All, Allow)];
        assert!(Operation::EVERY.iter().all(|op| may(&all, *op, "t")));
    }

    #[test]
    fn deny_wins_and_denies_only_its_operation_or_all() {
        let acls = [acl(Literal, "t", "User:*", All, Allow), acl(Prefixed, "t", "User:alice", Write, Deny)];
        assert!(!may(&acls, Write, "t") && may(&acls, Read, "t") && may(&acls, Describe, "t"));
        let bob = Requester { principal: "User:bob".into(), host: "10.0.0.1".into() };
        assert!(authorize(&acls, &bob, Write, ResourceType::Topic, "t", false));
        let deny_all = [acl(Literal, "*", "User:alice", All, Deny), acl(Literal, "t", "User:alice", Read, Allow)];
        assert!(!may(&deny_all, Read, "t"));
    }

    #[test]
    fn patterns_name_their_resources_and_unnamed_ones_follow_allow_if_none() {
        let acls = [acl(Prefixed, "pay", "User:alice", Read, Allow), acl(Literal, "*", "User:bob", Read, Allow)];
        assert!(may(&acls, Read, "payments") && may(&acls, Read, "pay"));
        // `other` is named by bob's wildcard, so no ACL found does not apply.
        assert!(!may(&acls, Read, "other"));
        let prefixed_only = [acl(Prefixed, "pay", "User:alice", Read, Allow)];
        assert!(!may(&prefixed_only, Read, "other"));
        assert!(authorize(&prefixed_only, &alice(), Read, ResourceType::Topic, "other", true));
        assert!(!authorize(&prefixed_only, &alice(), Read, ResourceType::Group, "pay", false));
        let elsewhere = [AclBinding { host: "10.0.0.9".into(), ..acl(Literal, "t", "User:alice", Read, Allow) }];
        assert!(!may(&elsewhere, Read, "t"));
    }

    #[test]
    fn some_topic_is_writable_unless_denied() {
        let any = |acls: &[AclBinding]| authorize_any(acls, &alice(), Write, ResourceType::Topic);
        assert!(!any(&[]));
        assert!(!any(&[acl(Literal, "t", "User:alice", Read, Allow)]));
        assert!(any(&[acl(Prefixed, "t", "User:*", All, Allow)]));
        assert!(!any(&[acl(Literal, "t", "User:alice", Write, Allow), acl(Literal, "*", "User:alice", Write, Deny)]));
    }

    #[test]
    fn filters_match_as_kafka_matches_them() {
        let literal = acl(Literal, "payments", "User:alice", Read, Allow);
        let prefixed = acl(Prefixed, "pay", "User:alice", Write, Deny);
        let wildcard = acl(Literal, "*", "User:bob", Read, Allow);
        let filter = |pattern: i8, name: Option<&str>| AclFilter {
            resource_type: ANY,
            name: name.map(str::to_string),
            pattern,
            principal: None,
            host: None,
            operation: ANY,
            permission: ANY,
        };
        let matching = |f: &AclFilter| [&literal, &prefixed, &wildcard].into_iter().filter(|a| f.matches(a)).count();
        assert_eq!(matching(&filter(ANY, None)), 3);
        assert_eq!(matching(&filter(MATCH, Some("payments"))), 3);
        assert_eq!(matching(&filter(ANY, Some("payments"))), 1);
        assert_eq!(matching(&filter(Prefixed as i8, Some("pay"))), 1);
        assert_eq!(matching(&filter(Literal as i8, None)), 2);
        let denies = AclFilter { permission: Deny as i8, ..filter(ANY, None) };
        assert_eq!(matching(&denies), 1);
        assert!(AclFilter { operation: 0, ..filter(ANY, None) }.check().is_err());
        assert!(filter(MATCH, Some("x")).check().is_ok());
    }

    #[test]
    fn bindings_are_checked_as_kafka_checks_them() {
        let ok = acl(Literal, "t", "User:alice", Read, Allow);
        assert!(ok.check().is_ok());
        assert!(AclBinding { principal: "alice".into(), ..ok.clone() }.check().is_err());
        assert!(AclBinding { name: String::new(), ..ok.clone() }.check().is_err());
        let cluster = AclBinding { resource_type: ResourceType::Cluster, name: "other".into(), ..ok };
        assert!(cluster.check().is_err());
        assert_eq!(Operation::from_name("IdempotentWrite"), Some(IdempotentWrite));
        assert_eq!(Operation::from_name("describe_configs"), Some(DescribeConfigs));
    }
}
