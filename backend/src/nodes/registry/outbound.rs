//! Outbound nodes' sockets: which primary holds each (`connected_via`, written so the other
//! primaries learn it through the change log) and the sockets this primary holds.

use super::Registry;
use crate::error::AppResult;
use crate::nodes::NodeId;
use crate::nodes::repo;
use crate::nodes::tunnels::{TunnelSession, Tunnels};

impl Registry {
    /// The sockets this primary holds.
    pub fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }

    /// A node's socket opened here: registered (replacing an older one), and this primary
    /// recorded as its holder.
    pub async fn tunnel_opened(&self, node: &NodeId) -> AppResult<TunnelSession> {
        let session = self.tunnels.open(node);
        let (id, own) = (node.clone(), self.own_id.clone());
        let recorded = self
            .db
            .write(move |conn| {
                if repo::set_connected_via(conn, &id, Some(&own), None)? {
                    super::changed(conn, &id, &own)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = recorded {
            self.tunnels.close(&session);
            return Err(e.into());
        }
        let own = self.own_id.clone();
        self.cache.update(node, |n| n.connected_via = Some(own));
        Ok(session)
    }

    /// A node's socket here closed: forgotten, and, unless a newer socket took over (here
    /// or on another primary), the node recorded as held by nobody.
    pub async fn tunnel_closed(&self, session: &TunnelSession) -> AppResult<()> {
        if !self.tunnels.close(session) {
            return Ok(());
        }
        let (id, own) = (session.node.clone(), self.own_id.clone());
        let cleared = self
            .db
            .write(move |conn| {
                let cleared = repo::set_connected_via(conn, &id, None, Some(&own))?;
                if cleared {
                    super::changed(conn, &id, &own)?;
                }
                Ok(cleared)
            })
            .await?;
        if cleared {
            self.cache.update(&session.node, |n| n.connected_via = None);
        }
        Ok(())
    }

    /// At start: this primary holds no socket yet, whatever its last run left recorded.
    pub(super) async fn forget_own_tunnels(&self) -> AppResult<()> {
        let own = self.own_id.clone();
        let ids = self
            .db
            .write(move |conn| {
                let ids = repo::clear_connected_via(conn, &own)?;
                for id in &ids {
                    super::changed(conn, &NodeId::from_db(id.clone()), &own)?;
                }
                Ok(ids)
            })
            .await?;
        for id in ids {
            self.cache.update(&NodeId::from_db(id), |n| n.connected_via = None);
        }
        Ok(())
    }
}
