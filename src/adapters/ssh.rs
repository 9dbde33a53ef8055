//! The VPS over SSH with the openssh crate: one multiplexed master per VPS, host keys checked
//! against the configured known_hosts, key-only authentication (BatchMode: never a prompt).

use openssh::{KnownHosts, Session, SessionBuilder};

use crate::config::VpsConfig;

/// Opens the master connection to the VPS.
pub async fn connect(vps: &VpsConfig) -> anyhow::Result<Session> {
    let mut b = SessionBuilder::default();
    if let Some(cfg) = &vps.ssh_config {
        b.config_file(cfg);
    }
    b.user_known_hosts_file(&vps.known_hosts)
        .known_hosts_check(KnownHosts::Strict)
        .connect_timeout(vps.connect_timeout);
    b.connect_mux(&vps.ssh_host)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open SSH to {} ({}): {e}", vps.name, vps.ssh_host))
}

/// `config check`: connect and run `true`.
pub async fn check(vps: &VpsConfig) -> anyhow::Result<String> {
    let session = connect(vps).await?;
    let status = session.command("true").status().await?;
    session.close().await.ok();
    anyhow::ensure!(status.success(), "`true` exited with {status}");
    Ok(format!("{} ({}) runs commands", vps.name, vps.ssh_host))
}
