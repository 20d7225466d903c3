//! `weir acls list|add|remove`: ACLs over the Kafka protocol (DescribeAcls,
//! CreateAcls, DeleteAcls), with kafka-acls.sh's flags. The broker's
//! listener must let this client in: PLAINTEXT, so its principal is
//! `User:ANONYMOUS`, which needs to be a super user (or hold the cluster
//! ALTER/DESCRIBE ACLs) once `acl_enabled` is on.

use crate::groups::fail_on;
use crate::Bootstrap;
use anyhow::{bail, Context};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use weir_client::Client;
use weir_shards::metadata::acl::{Operation, PatternType, Permission, ResourceType, ANY, CLUSTER_NAME, MATCH};

/// The resources a command names (none: every resource, for list and remove).
#[derive(clap::Args)]
pub struct Resources {
    #[arg(long)]
    topic: Vec<String>,
    #[arg(long)]
    group: Vec<String>,
    #[arg(long)]
    transactional_id: Vec<String>,
    /// The cluster resource (kafka-cluster).
    #[arg(long)]
    cluster: bool,
    /// literal or prefixed; list and remove also take any and match
    /// [default: literal for add, any for list and remove].
    #[arg(long)]
    resource_pattern_type: Option<String>,
}

/// The ACL entries a command names.
#[derive(clap::Args)]
pub struct Entries {
    /// A principal to allow, e.g. User:alice or User:* (repeatable).
    #[arg(long)]
    allow_principal: Vec<String>,
    /// A principal to deny (repeatable).
    #[arg(long)]
    deny_principal: Vec<String>,
    /// The host the entries apply to: an IP address or * [default: *].
    #[arg(long, default_value = "*")]
    host: String,
    /// Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs,
    /// IdempotentWrite or All (repeatable) [default: All].
    #[arg(long)]
    operation: Vec<String>,
}

#[derive(clap::Subcommand)]
pub enum AclsCommand {
    /// The ACLs on the resources named (all without any).
    List {
        #[command(flatten)]
        resources: Resources,
        /// Only this principal's ACLs.
        #[arg(long)]
        principal: Option<String>,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Add ACLs: each principal, operation and resource.
    Add(Change),
    /// Remove the ACLs the flags match (a principal or operation left out matches any).
    Remove(Change),
}

/// What `add` and `remove` take.
#[derive(clap::Args)]
pub struct Change {
    #[command(flatten)]
    resources: Resources,
    #[command(flatten)]
    entries: Entries,
    #[command(flatten)]
    bootstrap: Bootstrap,
}

pub fn run(command: AclsCommand) -> anyhow::Result<()> {
    match command {
        AclsCommand::List { resources, principal, bootstrap } => list(&resources, principal, &bootstrap.bootstrap),
        AclsCommand::Add(Change { resources, entries, bootstrap }) => add(&resources, &entries, &bootstrap.bootstrap),
        AclsCommand::Remove(Change { resources, entries, bootstrap }) => {
            remove(&resources, &entries, &bootstrap.bootstrap)
        }
    }
}

/// A filter's view of one resource (code ANY with no name: every resource).
struct Named {
    resource_type: i8,
    name: Option<String>,
    pattern: i8,
}

impl Resources {
    /// The resources named, with the pattern type code (`default` unless
    /// `--resource-pattern-type` is given).
    fn named(&self, default: i8) -> anyhow::Result<Vec<Named>> {
        let pattern = match self.resource_pattern_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("literal") => PatternType::Literal as i8,
            Some("prefixed") => PatternType::Prefixed as i8,
            Some("any") => ANY,
            Some("match") => MATCH,
            Some(other) => bail!("unknown --resource-pattern-type {other} (literal, prefixed, any, match)"),
        };
        let cluster = self.cluster.then(|| CLUSTER_NAME.to_string());
        let named = [
            (ResourceType::Topic, &self.topic[..]),
            (ResourceType::Group, &self.group[..]),
            (ResourceType::TransactionalId, &self.transactional_id[..]),
            (ResourceType::Cluster, cluster.as_slice()),
        ];
        let named = named.into_iter().flat_map(|(resource_type, names)| {
            names.iter().map(move |name| Named {
                resource_type: resource_type as i8,
                name: Some(name.clone()),
                pattern,
            })
        });
        Ok(named.collect())
    }
}

impl Entries {
    /// Each (principal, permission) named.
    fn principals(&self) -> Vec<(String, Permission)> {
        let allow = self.allow_principal.iter().map(|p| (p.clone(), Permission::Allow));
        allow.chain(self.deny_principal.iter().map(|p| (p.clone(), Permission::Deny))).collect()
    }

    fn operations(&self) -> anyhow::Result<Vec<Operation>> {
        self.operation
            .iter()
            .map(|name| Operation::from_name(name).with_context(|| format!("unknown --operation {name}")))
            .collect()
    }
}

fn list(resources: &Resources, principal: Option<String>, bootstrap: &str) -> anyhow::Result<()> {
    let mut named = resources.named(ANY)?;
    if named.is_empty() {
        named.push(Named { resource_type: ANY, name: None, pattern: ANY });
    }
    let mut client = Client::connect(bootstrap)?;
    println!(
        "{:<16} {:<24} {:<9} {:<20} {:<15} {:<16} permission",
        "type", "name", "pattern", "principal", "host", "operation"
    );
    for resource in named {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(resource.resource_type)
            .with_resource_name_filter(resource.name.map(StrBytes::from_string))
            .with_pattern_type_filter(resource.pattern)
            .with_principal_filter(principal.clone().map(StrBytes::from_string))
            .with_host_filter(None)
            .with_operation(ANY)
            .with_permission_type(ANY);
        let response = client.send(&request, 3)?;
        fail_on(response.error_code, "describing ACLs")?;
        for r in &response.resources {
            for acl in &r.acls {
                println!(
                    "{:<16} {:<24} {:<9} {:<20} {:<15} {:<16} {}",
                    name_of(ResourceType::from_code(r.resource_type)),
                    r.resource_name.as_str(),
                    name_of(PatternType::from_code(r.pattern_type)),
                    acl.principal.as_str(),
                    acl.host.as_str(),
                    name_of(Operation::from_code(acl.operation)),
                    name_of(Permission::from_code(acl.permission_type)),
                );
            }
        }
    }
    Ok(())
}

fn name_of(known: Option<impl std::fmt::Debug>) -> String {
    known.map_or_else(|| "?".into(), |k| format!("{k:?}"))
}

fn add(resources: &Resources, entries: &Entries, bootstrap: &str) -> anyhow::Result<()> {
    let named = resources.named(PatternType::Literal as i8)?;
    let principals = entries.principals();
    if named.is_empty() || principals.is_empty() {
        bail!("name a resource (--topic, --group, --transactional-id, --cluster) and an --allow-principal or --deny-principal");
    }
    if named.iter().any(|n| PatternType::from_code(n.pattern).is_none()) {
        bail!("add takes --resource-pattern-type literal or prefixed");
    }
    let mut operations = entries.operations()?;
    if operations.is_empty() {
        operations.push(Operation::All);
    }
    let creations =
        each_combination(&named, &principals, &operations, |resource, (principal, permission), operation| {
            AclCreation::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(StrBytes::from_string(resource.name.clone().unwrap_or_default()))
                .with_resource_pattern_type(resource.pattern)
                .with_principal(StrBytes::from_string(principal.clone()))
                .with_host(StrBytes::from_string(entries.host.clone()))
                .with_operation(*operation as i8)
                .with_permission_type(*permission as i8)
        });
    let response = Client::connect(bootstrap)?.send(&CreateAclsRequest::default().with_creations(creations), 3)?;
    for result in &response.results {
        if result.error_code != 0 {
            let why = result.error_message.as_deref().unwrap_or("");
            fail_on(result.error_code, &format!("adding ACLs: {why}"))?;
        }
    }
    println!("added {} ACL(s)", response.results.len());
    Ok(())
}

fn remove(resources: &Resources, entries: &Entries, bootstrap: &str) -> anyhow::Result<()> {
    let mut named = resources.named(ANY)?;
    if named.is_empty() {
        named.push(Named { resource_type: ANY, name: None, pattern: ANY });
    }
    let principals: Vec<(Option<String>, i8)> = match entries.principals() {
        principals if principals.is_empty() => vec![(None, ANY)],
        principals => principals.into_iter().map(|(p, permission)| (Some(p), permission as i8)).collect(),
    };
    let operations: Vec<i8> = match entries.operations()? {
        operations if operations.is_empty() => vec![ANY],
        operations => operations.into_iter().map(|o| o as i8).collect(),
    };
    let host = (entries.host != "*").then(|| StrBytes::from_string(entries.host.clone()));
    let filters = each_combination(&named, &principals, &operations, |resource, (principal, permission), operation| {
        DeleteAclsFilter::default()
            .with_resource_type_filter(resource.resource_type)
            .with_resource_name_filter(resource.name.clone().map(StrBytes::from_string))
            .with_pattern_type_filter(resource.pattern)
            .with_principal_filter(principal.clone().map(StrBytes::from_string))
            .with_host_filter(host.clone())
            .with_operation(*operation)
            .with_permission_type(*permission)
    });
    let response = Client::connect(bootstrap)?.send(&DeleteAclsRequest::default().with_filters(filters), 3)?;
    let mut removed = 0;
    for result in &response.filter_results {
        fail_on(result.error_code, "removing ACLs")?;
        removed += result.matching_acls.len();
    }
    println!("removed {removed} ACL(s)");
    Ok(())
}

/// What `make` builds of every resource, principal and operation together
/// (kafka-acls.sh's ACLs and filters are that cross product).
fn each_combination<R, P, O, T>(
    resources: &[R],
    principals: &[P],
    operations: &[O],
    make: impl Fn(&R, &P, &O) -> T,
) -> Vec<T> {
    let make = &make;
    (resources.iter())
        .flat_map(|r| principals.iter().flat_map(move |p| operations.iter().map(move |o| make(r, p, o))))
        .collect()
}
