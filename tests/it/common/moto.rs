//! moto in server mode (S3, IAM and STS on one port), from the interop venv, killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use super::KillOnDrop;

/// Where scripts/test.sh builds the venv: $CARGO_TARGET_DIR (default target)/interop-venv.
pub fn venv() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    target.join("interop-venv")
}

/// moto's server (S3, IAM, STS, ...) on a port of its own choosing, killed when dropped.
pub struct Moto {
    pub addr: SocketAddr,
    _child: KillOnDrop,
}

impl Moto {
    pub async fn start() -> Self {
        Self::start_with_env(&[]).await
    }

    /// [`Self::start`] with `env` in moto's environment (`INITIAL_NO_AUTH_ACTION_COUNT=0`: every
    /// request must carry the keys of an IAM user moto knows).
    pub async fn start_with_env(env: &[(&str, &str)]) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let venv = venv();
        let bin = venv.join("bin/moto_server");
        let python = venv.join("bin/python");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/test.sh once (it installs moto from \
             tests/interop/requirements.txt into $CARGO_TARGET_DIR/interop-venv)",
            bin.display()
        );
        // moto_server on port 0, with S3 routing for unsigned discovery paths (see the script).
        // Its server (werkzeug) logs the address it is listening on: " * Running on http://ADDR".
        let mut child = KillOnDrop(
            Process::new(&python)
                .arg(root.join("tests/it/common/moto_s3.py"))
                .args(["-H", "127.0.0.1", "-p", "0"])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let stderr = child.stderr.take().unwrap();
        let (found, listening) = tokio::sync::oneshot::channel();
        // Reads the log until the address, then drains it (a request is a line) to the end.
        std::thread::spawn(move || {
            use std::io::{BufRead as _, BufReader};
            let mut found = Some(found);
            let mut log = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if found.is_none() {
                    continue;
                }
                match line.split("Running on http://").nth(1) {
                    Some(rest) => {
                        let addr: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | ':'))
                            .collect();
                        let _ = found.take().unwrap().send(Ok(addr));
                    }
                    None => {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            }
            if let Some(found) = found {
                let _ = found.send(Err(log));
            }
        });
        let addr: SocketAddr = match tokio::time::timeout(Duration::from_secs(60), listening).await
        {
            Ok(Ok(Ok(addr))) => addr.parse().unwrap(),
            Ok(Ok(Err(log))) => panic!("moto_server exited before listening:\n{log}"),
            Ok(Err(_)) => panic!("moto_server's log reader failed"),
            Err(_) => panic!("moto_server did not listen within 60s"),
        };
        Self {
            addr,
            _child: child,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
