//! A TCP proxy that can hold connections at a closed gate: an upstream that is as slow as a
//! test needs, for exactly as long as it needs, without guessing how long a transfer takes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The gate's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Closed,
    Open,
    /// The proxy was dropped: every connection ends.
    Stopped,
}

/// A TCP proxy on 127.0.0.1 in front of `target`. While the gate is open it forwards every
/// connection; while it is closed it accepts new connections and holds them (nothing is
/// forwarded, the target is not even connected) until it opens. Connections already forwarded
/// are not affected by closing. Stopped on drop, with every connection it holds or forwards.
///
/// A sync through a closed gate is a sync that is running (claimed, started, waiting on the
/// network) for as long as the test keeps the gate closed: [`GateProxy::held`] says when it got
/// there.
pub struct GateProxy {
    addr: SocketAddr,
    gate: Arc<watch::Sender<Gate>>,
    held: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl GateProxy {
    /// Starts the proxy, its gate open, on a free port of 127.0.0.1.
    pub async fn start(target: SocketAddr) -> GateProxy {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let gate = Arc::new(watch::channel(Gate::Open).0);
        let held = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn({
            let (gate, held, accepted) =
                (Arc::clone(&gate), Arc::clone(&held), Arc::clone(&accepted));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    accepted.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(client, target, gate.subscribe(), Arc::clone(&held)));
                }
            }
        });
        GateProxy {
            addr,
            gate,
            held,
            accepted,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/<repo>`: for a proxy in front of an HTTP git server.
    pub fn http_url(&self, repo: &str) -> String {
        format!("http://{}/{repo}", self.addr)
    }

    /// Holds every new connection until [`open`](Self::open).
    pub fn close(&self) {
        self.gate.send_replace(Gate::Closed);
    }

    /// Lets held and new connections through.
    pub fn open(&self) {
        self.gate.send_replace(Gate::Open);
    }

    /// How many connections wait at the closed gate now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for GateProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.gate.send_replace(Gate::Stopped);
    }
}

async fn serve(
    mut client: TcpStream,
    target: SocketAddr,
    mut gate: watch::Receiver<Gate>,
    held: Arc<AtomicUsize>,
) {
    held.fetch_add(1, Ordering::SeqCst);
    let passed = gate.wait_for(|g| *g != Gate::Closed).await.ok().map(|g| *g);
    held.fetch_sub(1, Ordering::SeqCst);
    if passed != Some(Gate::Open) {
        return;
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = gate.wait_for(|g| *g == Gate::Stopped) => {}
    }
}
