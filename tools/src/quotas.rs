//! `weir quotas describe|alter`: client quotas over the Kafka protocol
//! (DescribeClientQuotas, AlterClientQuotas), with kafka-configs.sh's
//! semantics for `--entity-type users/clients`: an entity is a user, a
//! client id or both, each named or the default; `--add-config` sets
//! quotas, `--delete-config` removes them.

use crate::groups::fail_on;
use crate::Bootstrap;
use anyhow::{bail, Context};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;
use weir_client::Client;
use weir_shards::metadata::quota::{CLIENT_ID, USER};

/// The entity a command names; none at all, for describe: every entity.
#[derive(clap::Args)]
pub struct Entity {
    /// A user (the principal's name: alice for User:alice, ANONYMOUS unauthenticated).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default user (every user without a quota of their own).
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// The default client id.
    #[arg(long)]
    client_id_default: bool,
}

#[derive(clap::Subcommand)]
pub enum QuotasCommand {
    /// The quotas of the entity named (exactly it), or of every entity.
    Describe {
        #[command(flatten)]
        entity: Entity,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
    /// Set or remove quotas of an entity.
    Alter {
        #[command(flatten)]
        entity: Entity,
        /// Quotas to set, e.g. producer_byte_rate=1048576,consumer_byte_rate=2097152
        /// (also request_percentage).
        #[arg(long, value_delimiter = ',')]
        add_config: Vec<String>,
        /// Quotas to remove, e.g. producer_byte_rate.
        #[arg(long, value_delimiter = ',')]
        delete_config: Vec<String>,
        /// Check the change without making it.
        #[arg(long)]
        validate_only: bool,
        #[command(flatten)]
        bootstrap: Bootstrap,
    },
}

pub fn run(command: QuotasCommand) -> anyhow::Result<()> {
    match command {
        QuotasCommand::Describe { entity, bootstrap } => describe(&entity, &bootstrap.bootstrap),
        QuotasCommand::Alter { entity, add_config, delete_config, validate_only, bootstrap } => {
            alter(&entity, &add_config, &delete_config, validate_only, &bootstrap.bootstrap)
        }
    }
}

impl Entity {
    /// The parts named, (type, name), `None` for the default.
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let part = |name: &Option<String>, default: bool| (name.clone(), default);
        [(USER, part(&self.user, self.user_default)), (CLIENT_ID, part(&self.client_id, self.client_id_default))]
            .into_iter()
            .filter(|(_, (name, default))| name.is_some() || *default)
            .map(|(entity_type, (name, _))| (entity_type, name))
            .collect()
    }
}

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn describe(entity: &Entity, bootstrap: &str) -> anyhow::Result<()> {
    let parts = entity.parts();
    // Kafka's match types: 0 a name, 1 the default.
    let components = (parts.iter())
        .map(|(entity_type, name)| {
            ComponentData::default()
                .with_entity_type(str_bytes(entity_type))
                .with_match_type(if name.is_some() { 0 } else { 1 })
                .with_match(name.as_deref().map(str_bytes))
        })
        .collect();
    let request = DescribeClientQuotasRequest::default().with_components(components).with_strict(!parts.is_empty());
    let response = Client::connect(bootstrap)?.send(&request, 1)?;
    fail_on(response.error_code, "describing quotas")?;
    println!("{:<24} {:<24} {:<20} value", "user", "client-id", "quota");
    for entry in response.entries.unwrap_or_default() {
        let name_of = |entity_type: &str| {
            let part = entry.entity.iter().find(|e| e.entity_type.as_str() == entity_type);
            part.map_or(String::new(), |e| e.entity_name.as_ref().map_or("<default>".into(), |n| n.to_string()))
        };
        let (user, client_id) = (name_of(USER), name_of(CLIENT_ID));
        for value in &entry.values {
            println!("{user:<24} {client_id:<24} {:<20} {}", value.key.as_str(), value.value);
        }
    }
    Ok(())
}

fn alter(
    entity: &Entity,
    add: &[String],
    delete: &[String],
    validate_only: bool,
    bootstrap: &str,
) -> anyhow::Result<()> {
    let parts = entity.parts();
    if parts.is_empty() {
        bail!("name an entity: --user or --user-default, --client-id or --client-id-default, or both");
    }
    if add.is_empty() && delete.is_empty() {
        bail!("nothing to change: give --add-config or --delete-config");
    }
    let mut ops = Vec::new();
    for setting in add {
        let (key, value) = setting.split_once('=').with_context(|| format!("--add-config {setting}: not key=value"))?;
        let value: f64 = value.parse().with_context(|| format!("--add-config {setting}: not a number"))?;
        ops.push(OpData::default().with_key(str_bytes(key)).with_value(value));
    }
    ops.extend(delete.iter().map(|key| OpData::default().with_key(str_bytes(key)).with_remove(true)));
    let entity = (parts.iter())
        .map(|(entity_type, name)| {
            EntityData::default()
                .with_entity_type(str_bytes(entity_type))
                .with_entity_name(name.as_deref().map(str_bytes))
        })
        .collect();
    let request = AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default().with_entity(entity).with_ops(ops)])
        .with_validate_only(validate_only);
    let response = Client::connect(bootstrap)?.send(&request, 1)?;
    for entry in &response.entries {
        if entry.error_code != 0 {
            let why = entry.error_message.as_deref().unwrap_or("");
            fail_on(entry.error_code, &format!("altering quotas ({why})"))?;
        }
    }
    println!("{}", if validate_only { "valid" } else { "altered" });
    Ok(())
}
