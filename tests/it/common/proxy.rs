//! A TCP proxy in front of a test server that records what the client sends (the request lines
//! or parameters a test counts) and can be switched off: new connections are then closed and open
//! ones cut.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Takes the complete records at the front of what the client sent so far out of `pending`
/// (leaving an incomplete one in place), appending them to `records`.
pub type Scan = fn(pending: &mut Vec<u8>, records: &mut Vec<String>);

/// The proxy: its address, its switch, the records.
#[derive(Clone)]
pub struct RecordingProxy {
    addr: SocketAddr,
    up: watch::Sender<bool>,
    records: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    /// Listens on 127.0.0.1:0 and forwards to `upstream`, `up` or not, recording with `scan`.
    pub async fn start(upstream: SocketAddr, up: bool, scan: Scan) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (switch, _) = watch::channel(up);
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            up: switch,
            records: Arc::default(),
        };
        let accept = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !*accept.up.borrow() {
                    drop(client);
                    continue;
                }
                let mut state = accept.up.subscribe();
                let records = Arc::clone(&accept.records);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        () = pump(client, server, records, scan) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    pub fn records(&self) -> Vec<String> {
        self.records.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.records.lock().unwrap().clear();
    }
}

/// Copies both ways, scanning what goes upstream.
async fn pump(client: TcpStream, server: TcpStream, records: Arc<Mutex<Vec<String>>>, scan: Scan) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        loop {
            let n = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            pending.extend_from_slice(&buffer[..n]);
            scan(&mut pending, &mut records.lock().unwrap());
            // What no record starts in (a body) is not kept beyond the last KiB.
            if pending.len() > 8 * 1024 {
                pending.drain(..pending.len() - 1024);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::join!(upstream, downstream);
}
