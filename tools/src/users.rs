//! `weir users list|add|delete`: SCRAM users (PLAIN checks against them
//! too). Two ways in: `--bootstrap`, over the Kafka protocol
//! (DescribeUserScramCredentials, AlterUserScramCredentials; the password is
//! salted and hashed here, only SaltedPassword travels), for a broker with a
//! PLAINTEXT listener; or `--data-dir`, editing a stopped broker's
//! `metadata.toml` directly, to create the first users of a SASL-only broker
//! (as Kafka's `kafka-storage format --add-scram`). The password is read
//! from standard input (its first line), never from the command line.

use crate::groups::fail_on;
use anyhow::{bail, Context};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest};
use kafka_protocol::protocol::StrBytes;
use std::path::{Path, PathBuf};
use weir_client::Client;
use weir_net::sasl::scram::{random_salt, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use weir_shards::metadata::{MetadataStore, ScramChange};

/// Where the users are: a running broker, or a stopped broker's data directory.
#[derive(clap::Args, Clone)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// host:port of a broker with a PLAINTEXT listener.
    #[arg(long, short = 'b')]
    bootstrap: Option<String>,
    /// The data directory of a stopped broker.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum UsersCommand {
    /// Users and their SCRAM mechanisms and iteration counts.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Add a user or change their password (read from standard input).
    Add {
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512; given twice, both.
        #[arg(long, short = 'm', default_values = ["SCRAM-SHA-256", "SCRAM-SHA-512"])]
        mechanism: Vec<String>,
        /// PBKDF2 iterations (4096..=16384).
        #[arg(long, default_value_t = 8192)]
        iterations: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a user's credentials (all mechanisms unless given).
    Delete {
        user: String,
        #[arg(long, short = 'm')]
        mechanism: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
}

pub fn run(command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::List { target } => list(&target),
        UsersCommand::Add { user, mechanism, iterations, target } => {
            if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                bail!("--iterations must be within {MIN_ITERATIONS}..={MAX_ITERATIONS}");
            }
            let mechanisms = mechanisms(&mechanism)?;
            let mut password = String::new();
            std::io::stdin().read_line(&mut password).context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                bail!("no password on standard input");
            }
            add(&target, &user, &mechanisms, iterations, password)
        }
        UsersCommand::Delete { user, mechanism, target } => {
            let mechanisms = match mechanism.is_empty() {
                true => ScramMechanism::ALL.to_vec(),
                false => mechanisms(&mechanism)?,
            };
            delete(&target, &user, &mechanisms)
        }
    }
}

fn mechanisms(names: &[String]) -> anyhow::Result<Vec<ScramMechanism>> {
    names
        .iter()
        .map(|n| {
            ScramMechanism::from_name(n)
                .with_context(|| format!("unknown mechanism {n} (SCRAM-SHA-256, SCRAM-SHA-512)"))
        })
        .collect()
}

fn list(target: &Target) -> anyhow::Result<()> {
    let mut rows: Vec<(String, String, u32)> = Vec::new();
    if let Some(dir) = &target.data_dir {
        let snapshot = MetadataStore::load(dir).map_err(anyhow::Error::msg)?.snapshot();
        for (user, by_mechanism) in &snapshot.scram_credentials {
            rows.extend(by_mechanism.iter().map(|(m, c)| (user.clone(), m.clone(), c.iterations)));
        }
    } else {
        let mut client = connect(target)?;
        let response = client.send(&DescribeUserScramCredentialsRequest::default().with_users(None), 0)?;
        fail_on(response.error_code, "describing users")?;
        for user in &response.results {
            fail_on(user.error_code, "describing users")?;
            for info in &user.credential_infos {
                let mechanism = ScramMechanism::from_code(info.mechanism).map_or("?", |m| m.name());
                rows.push((user.user.to_string(), mechanism.into(), info.iterations.max(0) as u32));
            }
        }
    }
    println!("{:<32} {:<14} iterations", "user", "mechanism");
    for (user, mechanism, iterations) in rows {
        println!("{user:<32} {mechanism:<14} {iterations}");
    }
    Ok(())
}

fn add(
    target: &Target,
    user: &str,
    mechanisms: &[ScramMechanism],
    iterations: u32,
    password: &str,
) -> anyhow::Result<()> {
    let salted: Vec<(ScramMechanism, Vec<u8>, Vec<u8>)> = mechanisms
        .iter()
        .map(|&m| {
            let salt = random_salt().map_err(|e| anyhow::anyhow!("no random salt: {e}"))?;
            let salted = m.salted_password(password.as_bytes(), &salt, iterations);
            Ok((m, salt, salted))
        })
        .collect::<anyhow::Result<_>>()?;
    if let Some(dir) = &target.data_dir {
        let changes = salted
            .iter()
            .map(|(m, salt, salted)| ScramChange::Upsert {
                mechanism: m.name().into(),
                credential: m.credential(salted, salt, iterations),
            })
            .collect();
        return alter_offline(dir, user, changes);
    }
    let upsertions = salted
        .into_iter()
        .map(|(m, salt, salted)| {
            ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_string(user.to_string()))
                .with_mechanism(m.code())
                .with_iterations(iterations as i32)
                .with_salt(salt.into())
                .with_salted_password(salted.into())
        })
        .collect();
    alter_online(target, AlterUserScramCredentialsRequest::default().with_upsertions(upsertions))
}

fn delete(target: &Target, user: &str, mechanisms: &[ScramMechanism]) -> anyhow::Result<()> {
    if let Some(dir) = &target.data_dir {
        let snapshot = MetadataStore::load(dir).map_err(anyhow::Error::msg)?.snapshot();
        // Deleting every mechanism deletes those the user has.
        let changes = mechanisms
            .iter()
            .filter(|m| mechanisms.len() == 1 || snapshot.scram_credential(user, m.name()).is_some())
            .map(|m| ScramChange::Delete { mechanism: m.name().into() })
            .collect();
        return alter_offline(dir, user, changes);
    }
    let mut client = connect(target)?;
    let mut deletions = Vec::new();
    let described = client.send(
        &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default()
                .with_name(StrBytes::from_string(user.to_string())),
        ])),
        0,
    )?;
    let has = |m: ScramMechanism| {
        described.results.iter().any(|r| r.credential_infos.iter().any(|i| i.mechanism == m.code()))
    };
    for &m in mechanisms {
        if mechanisms.len() == 1 || has(m) {
            deletions.push(
                ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_string(user.to_string()))
                    .with_mechanism(m.code()),
            );
        }
    }
    if deletions.is_empty() {
        bail!("user {user} has no SCRAM credentials");
    }
    alter_online(target, AlterUserScramCredentialsRequest::default().with_deletions(deletions))
}

fn connect(target: &Target) -> anyhow::Result<Client> {
    Client::connect(target.bootstrap.as_deref().unwrap_or("127.0.0.1:9092"))
}

fn alter_online(target: &Target, request: AlterUserScramCredentialsRequest) -> anyhow::Result<()> {
    let response = connect(target)?.send(&request, 0)?;
    for result in &response.results {
        if result.error_code != 0 {
            let why = result.error_message.as_deref().unwrap_or("");
            bail!("user {}: error {}: {why}", &*result.user, result.error_code);
        }
    }
    Ok(())
}

/// Changes a stopped broker's store; refuses while its `listen.addr` says it runs.
fn alter_offline(dir: &Path, user: &str, changes: Vec<ScramChange>) -> anyhow::Result<()> {
    if weir_shards::listen::address_file(dir).exists() {
        bail!(
            "a broker seems to be running on {} ({} exists): stop it, or use --bootstrap",
            dir.display(),
            weir_shards::listen::ADDRESS_FILE
        );
    }
    if user.is_empty() {
        bail!("the user name must not be empty");
    }
    if changes.is_empty() {
        bail!("user {user} has no SCRAM credentials");
    }
    let mut store = MetadataStore::load(dir).map_err(anyhow::Error::msg)?;
    let mut planned = store.changes();
    match planned.alter_scram_credentials(&[(user.to_string(), changes)]).pop() {
        Some(Ok(())) => store.commit(planned).map(drop).map_err(anyhow::Error::from),
        Some(Err(weir_shards::TopicError::Unknown)) => bail!("user {user} has no such credential"),
        Some(Err(e)) => bail!("{e}"),
        None => Ok(()),
    }
}
