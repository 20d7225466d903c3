//! The Kafka listen addresses, one per listener: each claimed once for this
//! process, then bound by every shard, then reported.
//!
//! Every shard listens on each address with SO_REUSEPORT, and the kernel
//! spreads new connections over them. SO_REUSEPORT alone would also let a
//! second broker of the same user join silently (and take part of the
//! clients), so at start, before the shards recover their partitions, the
//! process claims the address with a socket bound *without* SO_REUSEPORT:
//! that bind fails if anyone listens there. Only then is SO_REUSEPORT set on
//! the claim, which then listens (so a later broker's own claim fails) and
//! becomes shard 0's listener; the other shards bind beside it. Port 0 is
//! resolved by the claim, and the shards bind the port it got. (Connections
//! that arrive while the shards recover wait in the claim's backlog.)

use crate::config::Listener;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use weir_engine::durable;

/// How long a claim keeps trying while the address is in use: the listeners
/// of a broker killed a moment ago can outlive it briefly (its io_uring is
/// torn down asynchronously).
pub const CLAIM_WAIT: Duration = Duration::from_secs(5);
/// The file in the data directory that holds the bound addresses (a line
/// each, in the order of `listeners`) once every shard listens.
pub const ADDRESS_FILE: &str = "listen.addr";
/// Connections the kernel queues per listener before the shard accepts them
/// (as glommio's own bind).
const LISTEN_BACKLOG: i32 = 1024;

/// One listener as a shard serves it: what it is, and the shard's socket.
pub struct ShardListener {
    pub listener: std::rc::Rc<Listener>,
    pub socket: weir_runtime::net::TcpListener,
}

/// The listen address, held by this process: a listening socket.
pub struct Claim {
    socket: Socket,
    address: SocketAddr,
}

impl Claim {
    /// The bound address (port 0 resolved).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The claim as a shard's listener (called on that shard's thread).
    pub fn into_listener(self) -> weir_runtime::net::TcpListener {
        into_glommio(self.socket)
    }
}

/// Claims `listen` for this process, retrying for `wait` while it is in use.
pub fn claim(listen: &str, wait: Duration) -> Result<Claim, String> {
    let address = listen
        .to_socket_addrs()
        .map_err(|e| format!("bad listen address '{listen}': {e}"))?
        .next()
        .ok_or_else(|| format!("listen address '{listen}' resolves to nothing"))?;
    let start = Instant::now();
    loop {
        match claim_once(address) {
            Ok(claim) => return Ok(claim),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(format!("cannot listen on {listen}: another process is already listening there ({e})"))
            }
            Err(e) => return Err(format!("cannot listen on {listen}: {e}")),
        }
    }
}

fn claim_once(address: SocketAddr) -> io::Result<Claim> {
    let socket = new_socket(address)?;
    socket.bind(&address.into())?;
    socket.set_reuse_port(true)?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    let address = socket.local_addr()?.as_socket().expect("an IP socket has an IP address");
    Ok(Claim { socket, address })
}

/// A TCP socket with SO_REUSEADDR: a restart can bind while the previous
/// run's connections sit in TIME_WAIT (the kernel allows that only when both
/// sides set it), but never beside a listening socket.
fn new_socket(address: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// One shard's listener on the claimed address.
pub fn bind_shard(claim: SocketAddr) -> io::Result<weir_runtime::net::TcpListener> {
    let socket = new_socket(claim)?;
    socket.set_reuse_port(true)?;
    socket.bind(&claim.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(into_glommio(socket))
}

fn into_glommio(socket: Socket) -> weir_runtime::net::TcpListener {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let listener: std::net::TcpListener = socket.into();
    // SAFETY: a bound, listening socket we own; ownership moves to glommio.
    unsafe { weir_runtime::net::TcpListener::from_raw_fd(listener.into_raw_fd()) }
}

/// `<data_dir>/listen.addr`.
pub fn address_file(data_dir: &Path) -> PathBuf {
    data_dir.join(ADDRESS_FILE)
}

/// Says that the broker accepts connections on `addresses` (its
/// listeners', in order): a line `listening on <address>` for each on
/// stdout, and each address plus a newline in `<data_dir>/listen.addr`
/// (replaced durably, so a reader never sees half of it, even after a
/// crash).
pub fn report(data_dir: &Path, addresses: &[SocketAddr]) -> io::Result<()> {
    use std::io::Write;
    let file = address_file(data_dir);
    let lines: String = addresses.iter().map(|address| format!("{address}\n")).collect();
    durable::replace_file(&file, &file.with_extension("addr.tmp"), lines.as_bytes())?;
    let mut stdout = io::stdout().lock();
    for address in addresses {
        writeln!(stdout, "listening on {address}")?;
    }
    stdout.flush()
}

/// Removes a previous run's address file, so that nobody reads a stale one.
pub fn forget(data_dir: &Path) {
    match std::fs::remove_file(address_file(data_dir)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove {}: {e}", address_file(data_dir).display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_resolved_and_a_second_claim_fails() {
        let first = claim("127.0.0.1:0", Duration::ZERO).unwrap();
        let port = first.address().port();
        assert_ne!(port, 0);
        let taken = first.address().to_string();
        let err = claim(&taken, Duration::ZERO).err().expect("the address is claimed");
        assert!(err.contains("another process is already listening there"), "{err}");
        // The wildcard address overlaps every address of the port.
        assert!(claim(&format!("0.0.0.0:{port}"), Duration::ZERO).is_err());
    }

    #[test]
    fn a_claim_fails_beside_another_reuseport_listener() {
        // What a broker's shards are to a second broker of the same user.
        let address: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let other = new_socket(address).unwrap();
        other.set_reuse_port(true).unwrap();
        other.bind(&address.into()).unwrap();
        other.listen(8).unwrap();
        let taken = other.local_addr().unwrap().as_socket().unwrap().to_string();
        let err = claim(&taken, Duration::ZERO).err().expect("in use");
        assert!(err.contains("already listening"), "{err}");
    }

    #[test]
    fn a_claim_fails_beside_a_plain_listener() {
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = claim(&other.local_addr().unwrap().to_string(), Duration::ZERO).err().expect("in use");
        assert!(err.contains("already listening"), "{err}");
    }

    #[test]
    fn report_writes_the_address_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let addresses: Vec<SocketAddr> = vec!["127.0.0.1:4321".parse().unwrap(), "[::1]:4322".parse().unwrap()];
        report(dir.path(), &addresses).unwrap();
        assert_eq!(std::fs::read_to_string(address_file(dir.path())).unwrap(), "127.0.0.1:4321\n[::1]:4322\n");
        forget(dir.path());
        assert!(!address_file(dir.path()).exists());
    }
}
