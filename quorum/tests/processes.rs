//! Three voters as three OS processes on 127.0.0.1, each with its own
//! directory: writes through followers (forwarded), `ask_leader` from a
//! follower, `kill -9` of the leader, a new leader taking writes (the time
//! from the kill to the first write is printed), and the killed voter,
//! restarted, catching up.
//!
//! The voters are this test binary run again: `voter_process` (ignored in
//! a normal run) becomes a voter when `VOTER_ENV` is set. The test drives
//! each voter through a line-based control port.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{AsyncBufReadExt, AsyncWriteExt};
use weir_quorum::{parse_voters, AskHandler, QuorumConfig, QuorumNode, StateMachine};
use weir_runtime::net::TcpListener;
use weir_runtime::{LocalExecutorBuilder, Placement};

/// `id;voters;control port;directory` of the voter this process is to be.
const VOTER_ENV: &str = "WEIR_QUORUM_TEST_VOTER";

/// How long any one step may take: generous, for a loaded 2-core machine.
const STEP: Duration = Duration::from_secs(20);

/// Named counters: a command adds to one and is answered with its new
/// value.
#[derive(Default)]
struct Counters(BTreeMap<String, u64>);

impl StateMachine for Counters {
    type Command = (String, u64);
    type Response = u64;

    fn apply(&mut self, (name, amount): (String, u64)) -> u64 {
        let value = self.0.entry(name).or_default();
        *value += amount;
        *value
    }

    fn snapshot(&self) -> Vec<u8> {
        postcard::to_stdvec(&self.0).expect("a map of strings and numbers encodes")
    }

    fn restore(&mut self, snapshot: &[u8]) -> std::io::Result<()> {
        self.0 = postcard::from_bytes(snapshot).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        Ok(())
    }
}

/// The voter's side: runs until killed.
#[test]
#[ignore = "a voter process that `three_voter_processes_fail_over_and_catch_up` starts"]
fn voter_process() {
    let Ok(spec) = std::env::var(VOTER_ENV) else { return };
    let fields: Vec<&str> = spec.split(';').collect();
    let [id, voters, control, dir] = fields[..] else { panic!("{VOTER_ENV}={spec:?}") };
    let id: u64 = id.parse().unwrap();
    let voters = parse_voters(voters).unwrap();
    let control: u16 = control.parse().unwrap();
    let config = QuorumConfig::new(id, voters.clone(), voters[&id], PathBuf::from(dir));
    let ask: AskHandler = Rc::new(move |question: Vec<u8>| {
        Box::pin(async move { format!("node {id} heard {}", String::from_utf8_lossy(&question)).into_bytes() })
    });
    let executor = LocalExecutorBuilder::new(Placement::Unbound).make().unwrap();
    executor.run(async move {
        let node = Rc::new(QuorumNode::start(config, Counters::default(), ask).await.unwrap());
        let listener = TcpListener::bind(("127.0.0.1", control)).unwrap();
        loop {
            let stream = listener.accept().await.unwrap();
            let node = node.clone();
            weir_runtime::spawn_local(async move {
                let mut stream = futures::io::BufReader::new(stream);
                let mut line = String::new();
                if stream.read_line(&mut line).await.is_ok() {
                    let answer = control_command(&node, line.trim()).await;
                    let _ = stream.write_all(format!("{answer}\n").as_bytes()).await;
                    let _ = stream.flush().await;
                }
            })
            .detach();
        }
    });
}

async fn control_command(node: &QuorumNode<Counters>, line: &str) -> String {
    let (verb, argument) = line.split_once(' ').unwrap_or((line, ""));
    match verb {
        // `write NAME AMOUNT`
        "write" => {
            let (name, amount) = argument.split_once(' ').unwrap_or((argument, ""));
            match node.write(&(name.to_string(), amount.parse().unwrap_or(0))).await {
                Ok(value) => format!("ok {value}"),
                Err(e) => format!("err {e}"),
            }
        }
        "ask" => match node.ask_leader(argument.as_bytes().to_vec()).await {
            Ok(answer) => format!("ok {}", String::from_utf8_lossy(&answer)),
            Err(e) => format!("err {e}"),
        },
        "leader" => node.leader().map_or("none".to_string(), |leader| leader.to_string()),
        // `read NAME`
        "read" => node.read(|c| c.0.get(argument).copied().unwrap_or(0)).to_string(),
        _ => format!("err unknown command {line:?}"),
    }
}

/// The test's side of one voter.
struct Voter {
    id: u64,
    control: u16,
    dir: PathBuf,
    process: Option<Child>,
}

impl Voter {
    fn start(&mut self, voters: &str) {
        std::fs::create_dir_all(&self.dir).unwrap();
        // Kept across restarts, for a failure's post-mortem.
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("output")).unwrap();
        let spec = format!("{};{voters};{};{}", self.id, self.control, self.dir.display());
        let process = Command::new(std::env::current_exe().unwrap())
            .args(["voter_process", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(VOTER_ENV, spec)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.process = Some(process);
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().unwrap();
            process.wait().unwrap();
        }
    }

    /// Sends one control command; `None` if the voter is not up (yet).
    fn control(&self, command: &str) -> Option<String> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.control));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(STEP)).ok()?;
        stream.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).ok()?;
        (!answer.is_empty()).then(|| answer.trim().to_string())
    }

    fn leader(&self) -> Option<u64> {
        self.control("leader")?.parse().ok()
    }
}

impl Drop for Voter {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Free ports: bound by the OS, then released for the voters to bind.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Polls `check` until it gives a value, for at most [`STEP`].
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The leader every running voter names.
fn agreed_leader(voters: &BTreeMap<u64, Voter>) -> u64 {
    eventually("a leader all running voters agree on", || {
        let running = voters.values().filter(|v| v.process.is_some());
        let named: Vec<Option<u64>> = running.map(Voter::leader).collect();
        let first = named.first().copied().flatten()?;
        named.iter().all(|l| *l == Some(first)).then_some(first)
    })
}

/// Adds `amount` to the counter through `voter`, retrying while the
/// quorum answers with a (retriable) error; the counter's new value.
fn write(voter: &Voter, amount: u64) -> u64 {
    eventually(&format!("a write through node {}", voter.id), || {
        let answer = voter.control(&format!("write counter {amount}"))?;
        answer.strip_prefix("ok ").map(|total| total.parse().unwrap())
    })
}

#[test]
fn three_voter_processes_fail_over_and_catch_up() {
    let root = tempfile::tempdir().unwrap();
    let ports = free_ports(6);
    let spec: Vec<String> = (1..=3).map(|id| format!("{id}@127.0.0.1:{}", ports[id - 1])).collect();
    let spec = spec.join(",");
    let mut voters: BTreeMap<u64, Voter> = (1..=3)
        .map(|id| {
            let voter =
                Voter { id, control: ports[2 + id as usize], dir: root.path().join(id.to_string()), process: None };
            (id, voter)
        })
        .collect();
    for voter in voters.values_mut() {
        voter.start(&spec);
    }

    let first = agreed_leader(&voters);
    let follower = voters.values().find(|v| v.id != first).unwrap();
    let mut total = 0;
    for amount in 1..=5 {
        total += amount;
        assert_eq!(write(follower, amount), total, "a write forwarded by node {}", follower.id);
    }
    let answer = follower.control("ask ping").unwrap();
    assert_eq!(answer, format!("ok node {first} heard ping"), "ask_leader from a follower");

    // kill -9 the leader; the survivors elect one of themselves.
    voters.get_mut(&first).unwrap().kill();
    let killed = Instant::now();
    let survivors: Vec<u64> = voters.keys().copied().filter(|id| *id != first).collect();
    let new_total = eventually("a write after the leader's death", || {
        survivors
            .iter()
            .find_map(|id| voters[id].control("write counter 100")?.strip_prefix("ok ")?.parse::<u64>().ok())
    });
    let took = killed.elapsed();
    total += 100;
    assert_eq!(new_total, total);
    println!("kill -9 of leader {first} to the first successful write: {took:?}");
    let second = agreed_leader(&voters);
    assert_ne!(second, first);
    for id in &survivors {
        total += 1;
        assert_eq!(write(&voters[id], 1), total);
    }

    // The killed voter comes back from its directory and catches up.
    let back = voters.get_mut(&first).unwrap();
    back.start(&spec);
    let back = &voters[&first];
    eventually("the restarted voter to catch up", || {
        (back.control("read counter")? == total.to_string()).then_some(())
    });
    total += 1;
    assert_eq!(write(back, 1), total, "a write through the restarted voter");
}
